//! The supervisor as the administrator drives it: start in the
//! background, status, stop; a second start refused.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn background_start_status_stop() {
    let p = Postern::configure("", &[], None);
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("--config")
            .arg(&p.config)
            .args(args)
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
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("postern: started; log in "));

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
