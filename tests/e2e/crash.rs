//! Crashes (issue 14): the roles die with their supervisor, one queue has
//! one queue manager, a role that ran well is restarted at once, and a
//! role that cannot run as configured stops `postern start`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::{BIN, Postern, free_port, is_root, send, write_file};

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
    let queue = p.queue_dir();
    // The first qmgr holds the queue (its pid in the lock file) before the
    // second starts: smtpd listening does not mean qmgr has locked yet.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(queue.join("qmgr.lock")).unwrap_or_default()
        != format!("{qmgr}\n")
    {
        assert!(
            Instant::now() < deadline,
            "qmgr {qmgr} never took the queue"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another postern (its own run directory and port) on the same queue.
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

/// One SMTP session that sends messages until told to stop or the
/// connection fails; every token that got `250` is pushed to `acked`.
fn send_session(
    addr: std::net::SocketAddr,
    to: &str,
    next: &std::sync::atomic::AtomicUsize,
    total: usize,
    acked: &std::sync::Mutex<Vec<usize>>,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut reply = || -> std::io::Result<String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(all);
            }
        }
    };
    let expect = |got: String, code: &str| {
        if got.starts_with(code) {
            Ok(())
        } else {
            Err(std::io::Error::other(got))
        }
    };
    expect(reply()?, "220")?;
    w.write_all(b"EHLO crash.example\r\n")?;
    expect(reply()?, "250")?;
    loop {
        let token = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if acked.lock().unwrap().len() >= total {
            return Ok(());
        }
        w.write_all(format!("MAIL FROM:<s@example.org>\r\nRCPT TO:<{to}>\r\nDATA\r\n").as_bytes())?;
        expect(reply()?, "250")?;
        expect(reply()?, "250")?;
        expect(reply()?, "354")?;
        w.write_all(
            format!("Subject: token-{token}-end\r\n\r\nmessage {token}\r\n.\r\n").as_bytes(),
        )?;
        expect(reply()?, "250")?;
        acked.lock().unwrap().push(token);
    }
}

/// Issue 14: kill -9 of every role, the supervisor included, in a loop
/// while mail arrives: every message that got `250` is delivered, and
/// none twice.
#[test]
fn issue_14_a_crash_loop_loses_nothing_and_delivers_nothing_twice() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    // bench/crash-loop runs the longer version.
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let total = env("POSTERN_CRASH_MESSAGES", 3000) as usize;
    let every = Duration::from_millis(env("POSTERN_CRASH_KILL_MS", 150));
    let mut p = Postern::configure("", &[], None);
    p.set_listen(&[format!("127.0.0.1:{}", free_port())]);
    p.launch();
    let addr = p.addr;
    let to = format!("{}@localhost", p.user);
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (next, acked, done, to) = (next.clone(), acked.clone(), done.clone(), to.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) && acked.lock().unwrap().len() < total {
                    if send_session(addr, &to, &next, total, &acked).is_err() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut kills = 0;
    let cycle = [
        "qmgr",
        "local",
        "smtpd",
        "smtp",
        "qmgr",
        "local",
        "supervisor",
    ];
    while acked.lock().unwrap().len() < total {
        assert!(
            started.elapsed() < Duration::from_secs(60 + total as u64 / 10),
            "only {} of {total} accepted in time:\n{}",
            acked.lock().unwrap().len(),
            p.log()
        );
        std::thread::sleep(every);
        let role = cycle[kills % cycle.len()];
        kills += 1;
        if role == "supervisor" {
            let before = roles(&p);
            let child = p.child.as_mut().unwrap();
            kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
            let _ = child.wait();
            p.child = None;
            let deadline = Instant::now() + Duration::from_secs(30);
            while before.iter().any(|(_, pid)| alive(*pid)) {
                assert!(Instant::now() < deadline, "{}", p.log());
                std::thread::sleep(Duration::from_millis(20));
            }
            p.launch();
        } else {
            let pid = p.role_pid(role);
            if pid > 0 {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    for s in senders {
        s.join().unwrap();
    }
    let acked: Vec<usize> = acked.lock().unwrap().clone();
    // Let the queue drain.
    let deadline = Instant::now() + Duration::from_secs(120);
    let count = |p: &Postern| -> std::collections::HashMap<usize, usize> {
        let mut seen = std::collections::HashMap::new();
        for f in p.delivered(&p.user) {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            if let Some(t) = text
                .split("Subject: token-")
                .nth(1)
                .and_then(|r| r.split('-').next())
                .and_then(|t| t.parse().ok())
            {
                *seen.entry(t).or_insert(0) += 1;
            }
        }
        seen
    };
    loop {
        let seen = count(&p);
        if acked.iter().all(|t| seen.contains_key(t)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted messages never arrived",
            acked.iter().filter(|t| !seen.contains_key(t)).count()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Anything still in flight arrives now, or not at all.
    std::thread::sleep(Duration::from_secs(3));
    let seen = count(&p);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "crash loop: {} accepted, {} kills in {:.0} s, {} delivered, {} twice",
        acked.len(),
        kills,
        started.elapsed().as_secs_f64(),
        seen.len(),
        twice.len()
    );
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    // An agent being restarted is said once, not once per waiting message.
    let unavailable = p
        .log()
        .matches("cannot connect to the local delivery agent")
        .count();
    assert!(
        unavailable <= kills,
        "{unavailable} lines for {kills} kills"
    );
}

/// smtpd killed while its segment has room of zeros ahead of its records
/// (docs/architecture.md, the queue): the segment is finished as it is,
/// its zeros are no damage (nothing in `corrupt/`, no warning), and every
/// message before and after the kill is delivered once.
#[test]
fn a_segment_left_with_its_room_of_zeros_is_no_damage() {
    let p = Postern::start("");
    let me = format!("{}@localhost", p.user);
    for i in 0..5 {
        send(
            &p,
            &me,
            &[&me],
            &format!("Subject: before {i}\r\n\r\nbody\r\n"),
        );
    }
    let incoming = p.queue_dir().join("incoming");
    let live: Vec<_> = std::fs::read_dir(&incoming)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    assert!(
        live.iter().any(|len| len % (1 << 20) == 0),
        "no segment with its room of zeros: {live:?}"
    );
    let old = p.role_pid("smtpd");
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    p.wait_log(&format!("smtpd pid {old} killed by signal 9"), 1, 10);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.role_pid("smtpd") == old || p.role_pid("smtpd") == 0 {
        assert!(Instant::now() < deadline, "smtpd not restarted");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..5 {
        send(
            &p,
            &me,
            &[&me],
            &format!("Subject: after {i}\r\n\r\nbody\r\n"),
        );
    }
    let delivered = p.wait_delivered(&p.user, 10, 30);
    assert_eq!(delivered.len(), 10);
    // The full scan (every 5 s) finds the old segment's writer gone.
    std::thread::sleep(Duration::from_secs(6));
    let log = p.log();
    for bad in ["incomplete record", "damaged", "skipped", "corrupt"] {
        assert!(!log.contains(bad), "{bad:?} in the log:\n{log}");
    }
    let corrupt = p.queue_dir().join("corrupt");
    let kept = std::fs::read_dir(&corrupt).map_or(0, |d| d.count());
    assert_eq!(kept, 0, "files in corrupt/");
    assert_eq!(p.wait_delivered(&p.user, 10, 1).len(), 10);
}
