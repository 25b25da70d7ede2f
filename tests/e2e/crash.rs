//! Crashes (issue 14): the roles die with their supervisor, one queue has
//! one queue manager, a role that ran well is restarted at once, and a
//! role that cannot run as configured stops `postern start`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::{BIN, Postern, is_root, write_file};

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0): look at its state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn roles(p: &Postern) -> Vec<(&'static str, i32)> {
    ["smtpd", "qmgr", "local", "smtp"]
        .into_iter()
        .map(|r| (r, p.role_pid(r)))
        .collect()
}

/// Run `postern start --foreground` with `config` and wait for it to end.
fn start_and_wait(config: &Path, secs: u64) -> (Option<i32>, String) {
    let log = config.with_file_name("second.log");
    let f = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["start", "--foreground"])
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn issue_14_roles_die_with_their_supervisor() {
    let mut p = Postern::start("");
    let before = roles(&p);
    assert!(before.iter().all(|(_, pid)| *pid > 0), "{before:?}");
    let supervisor = p.child.as_ref().unwrap().id() as i32;
    kill(Pid::from_raw(supervisor), Signal::SIGKILL).unwrap();
    let _ = p.child.as_mut().unwrap().wait();
    p.child = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<_> = before.iter().filter(|(_, pid)| alive(*pid)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 20 s after the supervisor was killed: {left:?}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing holds the listener or the queue: the next start serves.
    p.launch();
    let mut c = p.client();
    assert!(c.cmd("EHLO t").starts_with("250"));
}

#[test]
fn issue_14_a_second_queue_manager_is_refused() {
    let p = Postern::start("");
    let qmgr = p.role_pid("qmgr");
    // Another postern (its own run directory and port) on the same queue.
    let queue = p.queue_dir();
    let second = Postern::configure(
        &format!(
            "[queue]\ndirectory = \"{}\"\nminimal_backoff = \"1s\"\n",
            queue.display()
        ),
        &[],
        None,
    );
    let (status, log) = start_and_wait(&second.config, 30);
    assert_eq!(status, Some(78), "{log}");
    assert!(
        log.contains(&format!(
            "is owned by another queue manager (pid {qmgr}): is another postern running on this queue?"
        )),
        "{log}"
    );
    assert!(
        log.contains("stopping postern instead of restarting it"),
        "{log}"
    );
    // The first one still serves.
    assert_eq!(p.role_pid("qmgr"), qmgr);
    let mut c = p.client();
    assert!(c.cmd("EHLO t").starts_with("250"));
}

#[test]
fn issue_14_a_role_that_served_is_restarted_at_once() {
    let p = Postern::start("");
    let old = p.role_pid("smtpd");
    // Healthy: it has served for more than 5 s.
    std::thread::sleep(Duration::from_millis(5500));
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    p.wait_log(&format!("smtpd pid {old} killed by signal 9"), 1, 10);
    let killed = Instant::now();
    while p.role_pid("smtpd") == old || p.role_pid("smtpd") == 0 {
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "smtpd not restarted at once:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(p.log().contains("smtpd: restarting\n"), "{}", p.log());
}

#[test]
fn issue_14_a_role_that_cannot_run_stops_start() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (the roles become the postern user)");
        return;
    }
    // The queue lies inside a directory the postern user cannot enter.
    let p = Postern::configure("", &[], None);
    let locked = p.dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    p.edit_config(
        &format!("directory = \"{}/queue\"", p.dir.path().display()),
        &format!("directory = \"{}/queue\"", locked.display()),
    );
    let started = Instant::now();
    let (status, log) = start_and_wait(&p.config, 30);
    assert_eq!(status, Some(78), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(log.contains("cannot run as configured"), "{log}");
    // `postern check` says so before anything is started.
    let out = p.postern(&["check"]);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&locked.display().to_string()), "{text}");
}

#[test]
fn issue_14_a_delivery_whose_answer_qmgr_never_got_is_not_made_again() {
    let p = Postern::start("");
    let dir = p.dir.path().display().to_string();
    // A command that says it started, takes its time, then appends the
    // message (it runs as the alias file's owner, or nobody for root's).
    write_file(
        &p.dir.path().join("aliases"),
        format!("slow: \"|touch {dir}/mail/started; sleep 2; cat >> {dir}/mail/out\"\n").as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let mut c = p.client();
    c.cmd("EHLO c.example");
    assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<slow@localhost>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd("Subject: once only\r\n\r\nbody\r\n.");
    let id = r.rsplit(' ').next().unwrap().to_string();
    c.cmd("QUIT");
    let started = p.dir.path().join("mail/started");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(Instant::now() < deadline, "{}", p.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // qmgr dies while local delivers: the answer is lost.
    let qmgr = p.role_pid("qmgr");
    kill(Pid::from_raw(qmgr), Signal::SIGKILL).unwrap();
    p.wait_log(&format!("{id}: removed"), 1, 30);
    let out = std::fs::read_to_string(p.dir.path().join("mail/out")).unwrap();
    assert_eq!(out.matches("Subject: once only").count(), 1, "{out}");
    let log = p.log();
    assert!(log.contains("cannot send the delivery result"), "{log}");
    assert!(
        log.contains("delivered before for this message; not again"),
        "{log}"
    );
}
