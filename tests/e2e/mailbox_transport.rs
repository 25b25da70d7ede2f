//! `local.mailbox_transport` (Postfix's `mailbox_transport`, issue 21):
//! local users' mailboxes kept by a real Dovecot, reached over LMTP.
//! Aliases and `|command`s stay local's; what would go into the mailbox
//! goes to Dovecot, once, read back through Dovecot's IMAP server. A
//! user Dovecot does not know bounces with the server's reply; Dovecot
//! down defers (listed by `mailq` with the reason) until it is back.
//!
//! Needs root and Dovecot (see `lmtp.rs`); skipped with a message
//! otherwise.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;
use crate::lmtp::{BODY, Dovecot, STORED, body, skip};

/// A postern whose local mailboxes are Dovecot's over its Unix socket,
/// Dovecot knowing the test's user only (not `daemon`).
fn postern_with_dovecot() -> (Postern, Dovecot) {
    let p = Postern::configure("", &[], None);
    let dovecot = Dovecot::configure_local(&p.dir.path().join("dovecot"), &[&p.user]);
    p.edit_config(
        "[local]\n",
        &format!(
            "[local]\nmailbox_transport = \"lmtp:unix:{}\"\n",
            dovecot.socket().display()
        ),
    );
    (p, dovecot)
}

fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn mailbox_transport_delivers_local_users_through_dovecot_and_keeps_commands_local() {
    if skip() {
        return;
    }
    let (mut p, mut dovecot) = postern_with_dovecot();
    dovecot.start();
    let u = p.user.clone();
    let socket = dovecot.socket();
    // An alias to the user and to a command: the command runs here (as
    // nobody: root owns the alias file), the user's copy goes to Dovecot.
    let out = p.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(
        p.dir.path().join("aliases"),
        format!("team: {u}, \"|cat > {}/team.txt\"\n", out.display()),
    )
    .unwrap();
    p.launch();
    let relay = format!("relay=mail.test.example[{}]", socket.display());

    // Over SMTP.
    let data = format!("Subject: over smtp\r\nMessage-ID: <mt-1@c.example>\r\n\r\n{BODY}");
    let id = send(&p, "s@example.org", &[&format!("{u}@localhost")], &data);
    p.wait_log(&format!("{id}: to=<{u}@localhost>, {relay}, "), 1, 20);
    let log = p.log();
    let sent = lines_with(&log, &format!("{id}: to=<{u}@localhost>, {relay}, "));
    assert_eq!(sent.len(), 1, "{log}");
    assert!(
        sent[0].contains(&format!(
            "dsn=2.0.0, status=sent (250 2.0.0 <{u}@localhost> "
        )),
        "{}",
        sent[0]
    );
    // local says where it passed the mailbox, without a status of its own.
    let passed = lines_with(&log, &format!("{id}: to=<{u}@localhost>, relay=local"));
    assert_eq!(passed.len(), 1, "{log}");
    assert!(
        passed[0].ends_with(&format!(
            "mailbox delivery passed to lmtp:unix:{}",
            socket.display()
        )),
        "{}",
        passed[0]
    );
    assert!(!passed[0].contains("status="), "{}", passed[0]);

    // Through sendmail, to the bare name.
    let sendmail = crate::sendmail::sendmail(
        &p,
        &[&u],
        b"Subject: from sendmail\n\nsubmitted\nlocally\n",
        None,
    );
    assert_eq!(
        sendmail.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&sendmail.stderr)
    );
    p.wait_log(&format!("to=<{u}@mail.test.example>, {relay}, "), 1, 20);

    // Through the alias: Dovecot gets the user's copy, the command its own.
    let data = format!("Subject: to the team\r\n\r\n{BODY}");
    let team = send(&p, "s@example.org", &["team@localhost"], &data);
    p.wait_log(
        &format!("{team}: to=<{u}@mail.test.example>, orig_to=<team@localhost>, {relay}, "),
        1,
        20,
    );
    p.wait_log(
        &format!("{team}: to=<team@localhost>, relay=local, "),
        1,
        20,
    );
    let got = std::fs::read(out.join("team.txt")).unwrap();
    assert!(
        String::from_utf8_lossy(&got).contains("Subject: to the team\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // Read back through Dovecot: each once, bodies byte for byte.
    let messages = dovecot.imap_messages(&u);
    assert_eq!(messages.len(), 3, "{:?}", messages);
    let text: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert!(
        text[0].contains("\r\nSubject: over smtp\r\n"),
        "{}",
        text[0]
    );
    assert!(
        text[0].starts_with("Return-Path: <s@example.org>\r\n"),
        "{}",
        text[0]
    );
    assert_eq!(String::from_utf8_lossy(body(&messages[0])), STORED);
    assert!(
        text[1].contains("\r\nSubject: from sendmail\r\n"),
        "{}",
        text[1]
    );
    assert_eq!(
        String::from_utf8_lossy(body(&messages[1])),
        "submitted\r\nlocally\r\n"
    );
    assert!(
        text[2].contains("\r\nSubject: to the team\r\n"),
        "{}",
        text[2]
    );
    assert_eq!(String::from_utf8_lossy(body(&messages[2])), STORED);
    assert_eq!(dovecot.maildir_files(&format!("{u}@local")), 3);
    // local wrote no mailbox of its own.
    assert!(p.delivered(&u).is_empty());
    assert!(!p.maildir(&u).exists());

    // A user of this machine whom Dovecot does not know: Dovecot's 550
    // bounces, and the sender (the user, whose mailbox is Dovecot's)
    // gets the DSN with the server's reply.
    let id = send(
        &p,
        &format!("{u}@localhost"),
        &["daemon@localhost"],
        "Subject: nobody home\r\n\r\nx\r\n",
    );
    p.wait_log(&format!("{id}: to=<daemon@localhost>, {relay}, "), 1, 20);
    let log = p.log();
    let bounced = lines_with(&log, &format!("{id}: to=<daemon@localhost>, {relay}, "));
    assert!(
        bounced[0].contains("dsn=5.1.1, status=bounced ("),
        "{}",
        bounced[0]
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let dsn = loop {
        let messages = dovecot.imap_messages(&u);
        if messages.len() == 4 {
            break String::from_utf8_lossy(&messages[3]).into_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no bounce: {log}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        dsn.contains("Final-Recipient: rfc822; daemon@localhost"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("Status: 5.1.1"), "{dsn}");
    assert!(dsn.contains("Remote-MTA: dns; mail.test.example"), "{dsn}");
    assert!(dsn.contains("Diagnostic-Code: smtp; 550 5.1.1 "), "{dsn}");
    assert!(dsn.contains("Subject: nobody home"), "{dsn}");
    // Nothing is left in the queue.
    p.wait_log(&format!("{id}: removed"), 1, 10);
}

#[test]
fn mailbox_transport_defers_while_dovecot_is_down_or_full_then_delivers_once() {
    if skip() {
        return;
    }
    let (mut p, mut dovecot) = postern_with_dovecot();
    let u = p.user.clone();
    let socket = dovecot.socket();
    // Warned of, not refused: Dovecot may start after postern.
    let check = p.postern(&["check"]);
    let text = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "{} (local.mailbox_transport): No such file or directory (os error 2): mail for local users is deferred until the LMTP server listens there",
            socket.display()
        )),
        "{text}"
    );
    p.launch();
    let relay = format!("relay=mail.test.example[{}]", socket.display());

    // Dovecot is not running: the socket is not there.
    let data = format!("Subject: later\r\n\r\n{BODY}");
    let id = send(&p, "s@example.org", &[&format!("{u}@localhost")], &data);
    let refused = format!(
        "connect to mail.test.example[{}]: No such file or directory",
        socket.display()
    );
    p.wait_log(&format!("{id}: to=<{u}@localhost>, relay=none, "), 1, 20);
    let log = p.log();
    let deferred = lines_with(&log, &format!("{id}: to=<{u}@localhost>, relay=none, "));
    assert!(
        deferred[0].ends_with(&format!("dsn=4.4.1, status=deferred ({refused})")),
        "{}",
        deferred[0]
    );
    let listing = mailq(&p);
    assert!(listing.contains(&id), "{listing}");
    assert!(listing.contains(&format!("({refused})")), "{listing}");
    assert!(listing.contains(&format!("{u}@localhost")), "{listing}");

    dovecot.start();
    let out = p.postern(&["flush"]);
    assert!(out.status.success(), "{out:?}");
    p.wait_log(&format!("{id}: to=<{u}@localhost>, {relay}, "), 1, 20);
    p.wait_log(&format!("{id}: removed"), 1, 10);
    let log = p.log();
    assert_eq!(
        lines_with(&log, "status=sent (250 2.0.0 ").len(),
        1,
        "{log}"
    );

    // Dovecot answers 452 (the mailbox is full): deferred with its reply,
    // delivered once there is room again.
    dovecot.set_quota(&u, "1B");
    dovecot.stop();
    dovecot.start();
    let data = format!("Subject: when there is room\r\n\r\n{BODY}");
    let full = send(&p, "s@example.org", &[&format!("{u}@localhost")], &data);
    p.wait_log(&format!("{full}: to=<{u}@localhost>, {relay}, "), 1, 20);
    let log = p.log();
    let deferred = lines_with(&log, &format!("{full}: to=<{u}@localhost>, {relay}, "));
    assert!(
        deferred[0].contains("dsn=4.2.2, status=deferred (host mail.test.example["),
        "{}",
        deferred[0]
    );
    assert!(
        deferred[0].contains(
            "Quota exceeded (mailbox for user is full) (in reply to end of DATA command))"
        ),
        "{}",
        deferred[0]
    );
    let listing = mailq(&p);
    assert!(listing.contains(&full), "{listing}");
    assert!(listing.contains("Quota exceeded"), "{listing}");
    // A larger quota, not none: Dovecot would keep the limit its
    // maildirsize file remembers.
    dovecot.set_quota(&u, "100M");
    dovecot.stop();
    dovecot.start();
    let out = p.postern(&["flush"]);
    assert!(out.status.success(), "{out:?}");
    p.wait_log(&format!("{full}: removed"), 1, 20);
    let log = p.log();
    assert_eq!(
        lines_with(&log, "status=sent (250 2.0.0 ").len(),
        2,
        "{log}"
    );

    // Each once, as sent.
    let messages = dovecot.imap_messages(&u);
    assert_eq!(messages.len(), 2);
    for m in &messages {
        assert_eq!(String::from_utf8_lossy(body(m)), STORED);
    }
    assert!(String::from_utf8_lossy(&messages[1]).contains("Subject: when there is room\r\n"));
    assert_eq!(dovecot.maildir_files(&format!("{u}@local")), 2);
    assert!(p.delivered(&u).is_empty());
}

/// The queue listing, from the binary called `mailq`.
fn mailq(p: &Postern) -> String {
    let link = p.dir.path().join("mailq");
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, &link).unwrap();
    }
    let out = std::process::Command::new(&link)
        .arg("--config")
        .arg(&p.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
