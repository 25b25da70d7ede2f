//! The sendmail command as cron, mailx and scripts call it: through a
//! `sendmail` symlink to the binary, over submit.sock, no set-uid.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// Run `sendmail ARGS` (the binary through a symlink of that name) with
/// `input` on stdin, optionally as another uid.
pub fn sendmail(
    p: &Postern,
    args: &[&str],
    input: &[u8],
    uid: Option<u32>,
) -> std::process::Output {
    let link = p.dir.path().join("sendmail");
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, &link).unwrap();
    }
    run_with_input(
        command_as(uid, &link)
            .arg("--config")
            .arg(&p.config)
            .args(args),
        input,
    )
}

#[test]
fn submits_with_added_headers_and_the_uid() {
    let p = Postern::start("");
    let u = p.user.clone();
    let out = sendmail(
        &p,
        &[&format!("{u}@localhost")],
        b"Subject: from cron\n\nline\n.\nnot sent\n",
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = p.wait_delivered(&u, 1, 20);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let uid = nix::unistd::getuid().as_raw();
    assert!(
        text.contains(&format!(
            "Received: by mail.test.example (postern, from userid {uid})"
        )),
        "{text}"
    );
    assert!(text.contains("\nFrom: "), "{text}");
    assert!(text.contains("\nDate: "), "{text}");
    assert!(text.contains("\nMessage-ID: <"), "{text}");
    assert!(text.ends_with("\nline\n"), "{text}");
    assert!(
        !text.contains("not sent"),
        "a lone dot ends the input without -i: {text}"
    );
    assert!(
        p.log()
            .contains(&format!(": uid={uid} from=<{u}@mail.test.example>")),
        "{}",
        p.log()
    );
}

#[test]
fn extract_recipients_and_keep_dots_with_i() {
    let p = Postern::start("");
    let u = p.user.clone();
    let msg = format!("To: {u}@localhost\nBcc: nobody@localhost\nSubject: t\n\na\n.\nb\n");
    let out = sendmail(
        &p,
        &["-t", "-i", "-f", "sender@example.org"],
        msg.as_bytes(),
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine = p.wait_delivered(&u, 1, 20);
    let text = std::fs::read_to_string(&mine[0]).unwrap();
    assert!(
        text.starts_with("Return-Path: <sender@example.org>\n"),
        "{text}"
    );
    assert!(!text.contains("Bcc"), "{text}");
    assert!(text.ends_with("\na\n.\nb\n"), "{text}");
    if is_root() {
        p.wait_delivered("nobody", 1, 20);
    }
}

#[test]
fn exit_codes() {
    let mut p = Postern::start("");
    // Unknown local user: 67, nothing queued.
    let out = sendmail(
        &p,
        &["no-such-user-z@localhost"],
        b"Subject: x\n\nx\n",
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(67),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("User unknown"));
    // No recipients: usage.
    assert_eq!(sendmail(&p, &[], b"x\n", None).status.code(), Some(64));
    assert_eq!(sendmail(&p, &["-Z"], b"", None).status.code(), Some(64));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!p.log().contains("(queue active)"), "{}", p.log());
    // A refusal by smtpd is never turned into a drop.
    let drop = p.queue_dir().join("maildrop");
    assert_eq!(std::fs::read_dir(&drop).unwrap().count(), 0);
    // The mail system down: the message is kept in the drop directory
    // (issue 15, item 2), 0 as Postfix's sendmail.
    p.stop();
    let out = sendmail(&p, &[&format!("{}@localhost", p.user)], b"x\n", None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&drop).unwrap().count(), 1);
    // No drop directory either: 75, so cron and mailx keep the message.
    std::fs::remove_dir_all(&drop).unwrap();
    let out = sendmail(&p, &[&format!("{}@localhost", p.user)], b"x\n", None);
    assert_eq!(out.status.code(), Some(75));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is postern running?"), "{err}");
    assert!(err.contains("the message cannot be kept in"), "{err}");
}

#[test]
fn any_user_may_submit() {
    if !is_root() {
        eprintln!("skipped: needs root to become nobody");
        return;
    }
    let p = Postern::start("");
    let out = sendmail(
        &p,
        &["root@localhost"],
        b"Subject: from nobody\n\nhi\n",
        Some(65534),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.wait_log(": uid=65534 from=<nobody@mail.test.example>", 1, 10);
    let files = p.wait_delivered("root", 1, 20);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("(postern, from userid 65534)"), "{text}");
}

#[test]
fn smtp_on_stdio() {
    let p = Postern::start("");
    let u = p.user.clone();
    let session = format!(
        "EHLO me\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<{u}@localhost>\r\nDATA\r\nSubject: bs\r\n\r\nx\r\n.\r\nQUIT\r\n"
    );
    // -bs talks SMTP; a careful client waits for replies (the next test),
    // a script may not: the whole session at once, before the greeting.
    let mut child = sendmail_bs(&p);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(session.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("220 "), "{text}");
    assert!(text.contains("250 2.0.0 Ok: queued as "), "{text}");
    p.wait_delivered(&u, 1, 20);
}

/// A client that waits for each reply before the next command (as MUAs
/// that submit with `sendmail -bs` do) gets every reply at once: the relay
/// between stdin/stdout and submit.sock must not wait for more bytes.
#[test]
fn smtp_on_stdio_answers_a_lockstep_client() {
    use std::io::BufRead;
    let p = Postern::start("");
    let u = p.user.clone();
    let mut child = sendmail_bs(&p);
    // A hang fails the test instead of stalling the suite.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, watch) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "EOF after {all:?}"
            );
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    };
    assert!(reply().starts_with("220 "));
    for (cmd, want) in [
        ("EHLO me".to_string(), "250 "),
        ("MAIL FROM:<s@example.org>".to_string(), "250 2.1.0"),
        (format!("RCPT TO:<{u}@localhost>"), "250 2.1.5"),
        ("DATA".to_string(), "354 "),
        (
            "Subject: lockstep\r\n\r\nx\r\n.".to_string(),
            "250 2.0.0 Ok: queued as ",
        ),
        ("QUIT".to_string(), "221 "),
    ] {
        stdin.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let r = reply();
        assert!(r.lines().last().unwrap().starts_with(want), "{cmd}: {r}");
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let _ = done.send(());
    watchdog.join().unwrap();
    p.wait_delivered(&u, 1, 20);
}

/// `sendmail -bs` (through a `sendmail` symlink) with piped stdin and stdout.
fn sendmail_bs(p: &Postern) -> std::process::Child {
    let link = p.dir.path().join("sendmail");
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, &link).unwrap();
    }
    Command::new(&link)
        .arg("--config")
        .arg(&p.config)
        .arg("-bs")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The classic first test: `echo 'This is test.' | mail -s test USER` with
/// bsd-mailx, whose sendmail is postern (a symlink named in MAILRC; the
/// configuration through POSTERN_CONFIG, since mailx passes no flags of
/// ours).
#[test]
fn mailx_and_cron_style() {
    if Command::new("bsd-mailx").arg("-V").output().is_err() {
        panic!("bsd-mailx is not installed (.ci/run installs it)");
    }
    let p = Postern::start("");
    let u = p.user.clone();
    let link = p.dir.path().join("sendmail");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let mailrc = p.dir.path().join("mailrc");
    std::fs::write(&mailrc, format!("set sendmail={}\n", link.display())).unwrap();
    let out = run_with_input(
        Command::new("bsd-mailx")
            .args(["-s", "test", &format!("{u}@localhost")])
            .env("MAILRC", &mailrc)
            .env("POSTERN_CONFIG", &p.config),
        b"This is test.\n",
    );
    assert!(out.status.success());
    let files = p.wait_delivered(&u, 1, 20);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("Subject: test\n"), "{text}");
    assert!(text.ends_with("\nThis is test.\n"), "{text}");

    // cron: sendmail -FCronDaemon -i -B8BITMIME -oem root
    let out = run_with_input(
        Command::new(&link)
            .args(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", &u])
            .env("POSTERN_CONFIG", &p.config),
        b"Subject: Cron <root@host> run-parts\n\nout\n",
    );
    assert!(out.status.success());
    let files = p.wait_delivered(&u, 2, 20);
    let cron = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .find(|t| t.contains("Subject: Cron"))
        .unwrap();
    assert!(cron.contains("From: CronDaemon <"), "{cron}");
}

/// Who may submit, who may choose another sender, who may list the queue.
#[test]
fn submit_and_mailq_permissions() {
    if !is_root() {
        eprintln!("skipped: needs root to become nobody");
        return;
    }
    let p = Postern::start_with(
        "[queue]\ndirectory = \"{dir}/queue\"\nauthorized_mailq_users = [\"root\"]\n",
        &["sender_override_users = [\"root\"]"],
    );
    // nobody with its own sender: fine; with another: refused, 77.
    let ok = sendmail(&p, &["root@localhost"], b"Subject: a\n\nx\n", Some(65534));
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let forged = sendmail(
        &p,
        &["-f", "boss@example.org", "root@localhost"],
        b"Subject: b\n\nx\n",
        Some(65534),
    );
    assert_eq!(
        forged.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&forged.stderr)
    );
    assert!(String::from_utf8_lossy(&forged.stderr).contains("not owned by user nobody"));
    // root may.
    let root = sendmail(
        &p,
        &["-f", "boss@example.org", "root@localhost"],
        b"Subject: c\n\nx\n",
        None,
    );
    assert_eq!(root.status.code(), Some(0));
    // mailq: root yes, nobody no.
    assert_eq!(p.postern(&["queue", "list"]).status.code(), Some(0));
    let out = p.postern_as(65534, &["queue", "list"]);
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Nobody may not submit at all when not listed.
    drop(p);
    let p = Postern::start_with("", &["authorized_submit_users = [\"root\"]"]);
    let out = sendmail(&p, &["root@localhost"], b"Subject: d\n\nx\n", Some(65534));
    assert_eq!(
        out.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not allowed to submit mail"));
}

/// `postern sendmail …` is the same command.
#[test]
fn postern_sendmail_subcommand() {
    let p = Postern::start("");
    let u = p.user.clone();
    let out = run_with_input(
        Command::new(BIN)
            .arg("sendmail")
            .args(["--config"])
            .arg(&p.config)
            .arg(format!("{u}@localhost")),
        b"Subject: sub\n\nx\n",
    );
    assert!(out.status.success());
    p.wait_delivered(&u, 1, 20);
    let out = Command::new(BIN)
        .args(["mailq", "--config"])
        .arg(&p.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

/// Issue 15, item 6: `-f root` is qualified with the origin
/// (Postfix's append_at_myorigin).
#[test]
fn issue_15_a_bare_sender_is_qualified_with_the_origin() {
    let p = Postern::start("");
    let u = p.user.clone();
    let out = sendmail(
        &p,
        &["-f", &u, &format!("{u}@localhost")],
        b"Subject: t\n\nx\n",
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine = p.wait_delivered(&u, 1, 20);
    let text = std::fs::read_to_string(&mine[0]).unwrap();
    assert!(
        text.starts_with(&format!("Return-Path: <{u}@mail.test.example>\n")),
        "{text}"
    );
}

/// Issue 15, item 3: a typo in the configuration on disk refuses the
/// reload, but never locks anyone out: sendmail, mailq, status and stop
/// find the running system with a warning naming the error.
#[test]
fn issue_15_a_broken_configuration_file_locks_nobody_out() {
    for broken in ["[sandbox]\nrequir = true\n", "[smtpd\nnot toml at all\n"] {
        let mut p = Postern::start("");
        let u = p.user.clone();
        let mut text = std::fs::read_to_string(&p.config).unwrap();
        text.push_str(broken);
        std::fs::write(&p.config, text).unwrap();
        let out = p.postern(&["reload"]);
        assert!(!out.status.success(), "a broken file must be refused");
        let out = sendmail(
            &p,
            &[&format!("{u}@localhost")],
            b"Subject: still\n\nx\n",
            None,
        );
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains(&format!("sendmail: warning: {}", p.config.display())),
            "{stderr}"
        );
        p.wait_delivered(&u, 1, 20);
        let out = p.postern(&["status"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("postern: warning: "));
        let link = p.dir.path().join("mailq");
        std::os::unix::fs::symlink(BIN, &link).unwrap();
        let out = Command::new(&link)
            .arg("--config")
            .arg(&p.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = p.postern(&["stop"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while p.child.as_mut().unwrap().try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "stop did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
