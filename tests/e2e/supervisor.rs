//! The supervisor as the administrator drives it: start in the
//! background, status, stop; a second start refused.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn background_start_status_stop() {
    let p = Postern::configure("", &[], None);
    // No syslog socket (whether the machine has /dev/log or not): the
    // detached postern logs in the run directory (see logs.rs for syslog).
    let no_syslog = p.dir.path().join("no-syslog-here");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("--config")
            .arg(&p.config)
            .args(args)
            .env("POSTERN_SYSLOG_SOCKET", &no_syslog)
            .output()
            .unwrap()
    };
    let out = run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "postern is not running\n"
    );

    let out = run(&["start"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "postern: started; log in {}\n",
            p.run_dir().join("postern.log").display()
        )
    );

    let out = run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for role in ["smtpd", "qmgr", "local"] {
        assert!(
            text.contains(&format!("  {role:<6} running (pid ")),
            "{text}"
        );
    }
    assert!(text.contains("queue: 0 messages"), "{text}");

    let again = run(&["start"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("postern is already running (pid "));

    let out = run(&["stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "postern: stopped\n");
    std::thread::sleep(Duration::from_millis(100));
    let out = run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    let log = std::fs::read_to_string(p.run_dir().join("postern.log")).unwrap();
    assert!(log.contains("postern/master["), "{log}");
    assert!(
        log.contains("]: warning: cannot log to syslog at "),
        "{log}"
    );
    assert!(log.contains("terminating on signal"), "{log}");
}

#[test]
fn crashed_role_is_restarted() {
    let p = Postern::start("");
    let old = p.role_pid("smtpd");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    p.wait_log(&format!("smtpd pid {old} killed by signal 9"), 1, 10);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while p.role_pid("smtpd") == old || p.role_pid("smtpd") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "smtpd not restarted:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The new smtpd serves the same listening socket.
    let mut c = p.client();
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
}

#[test]
fn reload_takes_a_good_configuration_and_refuses_a_bad_one() {
    let p = Postern::start("");
    p.edit_config(
        "[smtpd]\n",
        "[smtpd]\nbanner = \"reloaded.example ESMTP\"\n",
    );
    let out = p.postern(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.wait_log("reloading", 1, 5);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = std::net::TcpStream::connect(p.addr).unwrap();
        let mut banner = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut s), &mut banner).unwrap();
        if banner == "220 reloaded.example ESMTP\r\n" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {banner:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A bad file: refused by the command, nothing changes.
    p.edit_config("[smtpd]\n", "[smtpd]\nbogus = 1\n");
    let out = p.postern(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
    // Signalled anyway, the supervisor refuses it too and keeps running.
    let pid: i32 = std::fs::read_to_string(p.run_dir().join("postern.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    p.wait_log("reload refused, the running configuration is kept", 1, 5);
    let mut s = std::net::TcpStream::connect(p.addr).unwrap();
    let mut banner = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut s), &mut banner).unwrap();
    assert_eq!(banner, "220 reloaded.example ESMTP\r\n");
}
