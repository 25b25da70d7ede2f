//! Aliases end to end: the table makes recipients valid at RCPT, local
//! expands them at delivery, qmgr queues forwarded copies, loops bounce,
//! duplicates are delivered once, and edits are noticed without a restart.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn alias_forms_end_to_end() {
    let p = Postern::start("");
    let u = p.user.clone();
    let aliases = p.dir.path().join("aliases");
    // Before the file exists, the name is unknown.
    let mut c = p.client();
    c.cmd("EHLO c.example");
    c.cmd("MAIL FROM:<s@example.org>");
    assert!(c.cmd("RCPT TO:<staff@localhost>").starts_with("550 5.1.1"));
    c.cmd("QUIT");
    write_file(
        &aliases,
        format!(
            "# staff list\nstaff: {u},\n  dup\ndup: {u}, {u}\nfar: someone@remote.example, {u}\n\
             loopa: loopb\nloopb: loopa\nself: \\{u}\nprog: \"|/bin/cat\"\n"
        )
        .as_bytes(),
    );
    // Picked up without a restart.
    std::thread::sleep(Duration::from_millis(1100));

    // Several targets and a nested alias that names the same user: one copy.
    let id = send(
        &p,
        "s@example.org",
        &["staff@localhost"],
        "Subject: to staff\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: removed"), 1, 20);
    assert_eq!(p.delivered(&u).len(), 1);
    assert!(p.log().contains(&format!(
        "{id}: to=<{u}@mail.test.example>, orig_to=<staff@localhost>, relay=local"
    )));

    // A remote address is forwarded as a new message; the local one delivered.
    let id = send(
        &p,
        "s@example.org",
        &["far@localhost"],
        "Subject: far\r\n\r\nx",
    );
    p.wait_log(
        &format!("{id}: to=<far@localhost>, relay=local, delay="),
        1,
        20,
    );
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("{id}: to=<far@localhost>")) && l.contains("forwarded as"))
        .expect("forwarded line");
    let new_id = line
        .rsplit("forwarded as ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    p.wait_log(&format!("{new_id}: to=<someone@remote.example>"), 1, 20);
    p.wait_delivered(&u, 2, 20);

    // \user delivers to the mailbox without expansion.
    let id = send(
        &p,
        "s@example.org",
        &["self@localhost"],
        "Subject: self\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: removed"), 1, 20);
    p.wait_delivered(&u, 3, 20);

    // A loop bounces, it does not storm.
    let id = send(
        &p,
        "s@example.org",
        &["loopa@localhost"],
        "Subject: loop\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: to=<loopa@localhost>, relay=local"), 1, 20);
    p.wait_log("alias database loop for", 1, 5);
    p.wait_log(&format!("{id}: removed"), 1, 20);

    // A command (as nobody when root runs postern: the file is root's).
    let id = send(
        &p,
        "s@example.org",
        &["prog@localhost"],
        "Subject: prog\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: to=<prog@localhost>, relay=local"), 1, 20);
    p.wait_log("status=sent (delivered to command: /bin/cat)", 1, 5);

    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(p.delivered(&u).len(), 3, "{}", p.log());
}

#[test]
fn inline_aliases_win_over_files() {
    let dir_marker = "{dir}";
    let p = Postern::start(&format!(
        "[local]\nmailbox = \"{dir_marker}/mail/$user/Maildir/\"\ndomains = [\"$hostname\", \"localhost\"]\nalias_files = [\"{dir_marker}/aliases\"]\naliases = {{ team = \"nobody\" }}\n"
    ));
    write_file(
        &p.dir.path().join("aliases"),
        format!("team: {}\n", p.user).as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let id = send(
        &p,
        "s@example.org",
        &["team@localhost"],
        "Subject: team\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: removed"), 1, 20);
    assert!(
        p.log().contains(&format!(
            "{id}: to=<nobody@mail.test.example>, orig_to=<team@localhost>"
        )),
        "{}",
        p.log()
    );
}

#[test]
fn aliases_build_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let aliases = dir.path().join("aliases");
    std::fs::write(
        &aliases,
        "ok: root\nbad line without colon\nuser@host: root\na: b\nb: a\n",
    )
    .unwrap();
    let conf = dir.path().join("postern.toml");
    std::fs::write(
        &conf,
        format!("[local]\nalias_files = [\"{}\"]\n", aliases.display()),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .args(["aliases", "build"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2: error:", aliases.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}:3: error:", aliases.display())),
        "{err}"
    );
    assert!(err.contains("alias database loop"), "{err}");
    // newaliases is the same check.
    let newaliases = dir.path().join("newaliases");
    std::os::unix::fs::symlink(BIN, &newaliases).unwrap();
    let out = Command::new(&newaliases)
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":2: error:"));
    std::fs::write(&aliases, "ok: root\n").unwrap();
    let out = Command::new(&newaliases)
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .args(["aliases", "build"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory in the test's directory that `nobody` (whom commands and
/// files of a root-owned alias file run as) may write to.
fn work_dir(p: &Postern) -> std::path::PathBuf {
    let work = p.dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o1777)).unwrap();
    work
}

#[test]
fn a_command_that_fails_for_now_is_retried() {
    let p = Postern::start("");
    let work = work_dir(&p);
    let w = work.display();
    write_file(
        &p.dir.path().join("aliases"),
        format!("flaky: \"|test -e {w}/ready || {{ echo not yet; exit 75; }}; cat > {w}/got\"\n")
            .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let id = send(
        &p,
        "s@example.org",
        &["flaky@localhost"],
        "Subject: flaky\r\n\r\nx",
    );
    p.wait_log(
        &format!("{id}: to=<flaky@localhost>, relay=local, delay="),
        1,
        20,
    );
    p.wait_log(
        "dsn=4.3.0, status=deferred (temporary failure. Command output: not yet)",
        1,
        5,
    );
    assert!(!work.join("got").exists());
    write_file(&work.join("ready"), b"");
    p.wait_log(&format!("{id}: removed"), 1, 30);
    let got = std::fs::read_to_string(work.join("got")).unwrap();
    assert!(got.starts_with("From s@example.org  "), "{got}");
    assert!(got.contains("\nDelivered-To: flaky@localhost\n"), "{got}");
    assert!(got.ends_with("Subject: flaky\n\nx\n"), "{got}");
}

#[test]
fn a_failing_command_bounces_with_its_output() {
    let p = Postern::start("");
    write_file(
        &p.dir.path().join("aliases"),
        b"broken: \"|echo cannot store this >&2; exit 1\"\n",
    );
    std::thread::sleep(Duration::from_millis(1100));
    let id = send(
        &p,
        "s@example.org",
        &["broken@localhost"],
        "Subject: broken\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: removed"), 1, 20);
    let want = format!("{id}: to=<broken@localhost>, relay=local, delay=");
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains(&want))
        .expect("delivery line");
    assert!(
        line.ends_with(
            "dsn=5.3.0, status=bounced (Command died with status 1: \
             \"echo cannot store this >&2; exit 1\". Command output: cannot store this)"
        ),
        "{line}"
    );
}

#[test]
fn a_file_gets_the_message_in_mbox_form() {
    let p = Postern::start("");
    let work = work_dir(&p);
    let archive = work.join("archive");
    write_file(
        &p.dir.path().join("aliases"),
        format!("archive: {}\n", archive.display()).as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let bodies = [
        "Subject: one\r\n\r\nFrom the start\r\n>From quoted\r\nFrom",
        "Subject: two\r\n\r\nno newline at the end",
    ];
    for (i, body) in bodies.iter().enumerate() {
        let mut c = p.client();
        c.cmd("EHLO c.example");
        c.cmd("MAIL FROM:<s@example.org>");
        assert_eq!(c.cmd("RCPT TO:<archive@localhost>"), "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354"));
        let r = c.cmd(&format!("{body}\r\n."));
        let id = r.rsplit(' ').next().unwrap().to_string();
        c.cmd("QUIT");
        p.wait_log(&format!("{id}: removed"), 1, 20);
        assert!(
            p.log()
                .contains(&format!("{id}: to=<archive@localhost>, relay=local")),
            "{i}"
        );
    }
    let data = std::fs::read(&archive).unwrap();
    let meta = std::fs::metadata(&archive).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    if is_root() {
        assert_eq!(meta.uid(), 65534, "written as nobody");
    }
    // Each message: From_ line, the delivery headers, smtpd's Received:,
    // the message with `From ` quoted, an empty line.
    let mut rest = &data[..];
    let quoted: [&[u8]; 2] = [
        b"Subject: one\n\n>From the start\n>From quoted\nFrom\n\n",
        b"Subject: two\n\nno newline at the end\n\n",
    ];
    for want in quoted {
        let end = rest.iter().position(|&b| b == b'\n').unwrap() + 1;
        let from = std::str::from_utf8(&rest[..end]).unwrap();
        assert!(from.starts_with("From s@example.org  "), "{from}");
        assert_eq!(from.len(), "From s@example.org  ".len() + 24 + 1, "{from}");
        rest = &rest[end..];
        let head = b"Return-Path: <s@example.org>\nDelivered-To: archive@localhost\nReceived: ";
        assert!(rest.starts_with(head), "{}", String::from_utf8_lossy(rest));
        rest = &rest[head.len() - "Received: ".len()..];
        // The Received: header and its continuation lines.
        let mut end = rest.iter().position(|&b| b == b'\n').unwrap() + 1;
        while rest[end] == b'\t' || rest[end] == b' ' {
            end += rest[end..].iter().position(|&b| b == b'\n').unwrap() + 1;
        }
        rest = &rest[end..];
        assert!(rest.starts_with(want), "{}", String::from_utf8_lossy(rest));
        rest = &rest[want.len()..];
    }
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(rest));
}

/// `owner-NAME` (Postfix's `owner_request_special`): the list's copies
/// come from `owner-list@$origin`, and a failure inside the list is
/// reported to the owner, not to the sender, who hears nothing.
#[test]
fn a_list_with_an_owner_sends_its_problems_to_the_owner() {
    let p = Postern::start("");
    let u = p.user.clone();
    write_file(
        &p.dir.path().join("aliases"),
        format!(
            "list: {u}, \"|echo no such archive >&2; exit 1\"\nowner-list: {u}\n\
             plain: \"|exit 1\"\n"
        )
        .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let id = send(
        &p,
        "s@example.org",
        &["list@localhost"],
        "Subject: to the list\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: removed"), 1, 20);
    let log = p.log();
    let forwarded = log
        .lines()
        .find(|l| l.contains(&format!("{id}: to=<list@localhost>")) && l.contains("forwarded as"))
        .expect("forwarded line");
    let copy = forwarded.rsplit("forwarded as ").next().unwrap();
    let copy = copy.trim_end_matches(')').to_string();
    // qmgr takes the copy in after the original is removed: wait for it.
    p.wait_log(
        &format!("{copy}: from=<owner-list@mail.test.example>"),
        1,
        20,
    );
    p.wait_log(&format!("{id}: owner non-delivery notification: "), 1, 20);
    let log = p.log();
    assert!(!log.contains(&format!("{id}: sender non-delivery notification")));
    // The member's copy and the owner's report (the owner is the member).
    let files = p.wait_delivered(&u, 2, 20);
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let member = texts
        .iter()
        .find(|t| t.contains("Subject: to the list") && !t.contains("multipart/report"))
        .expect("the list's copy");
    assert!(
        member.starts_with("Return-Path: <owner-list@mail.test.example>\n"),
        "{member}"
    );
    let report = files
        .iter()
        .zip(&texts)
        .find(|(_, t)| t.contains("Undelivered Mail Returned to Sender"))
        .expect("the owner's report");
    assert!(report.1.starts_with("Return-Path: <>\n"), "{}", report.1);
    let ds = delivery_status(report.0);
    assert!(ds.contains("Final-Recipient: rfc822; list@"), "{ds}");
    assert!(ds.contains("Action: failed"), "{ds}");
    assert!(ds.contains("Status: 5.3.0"), "{ds}");
    assert!(ds.contains("no such archive"), "{ds}");

    // Without an owner the sender is told (here s@example.org, far away).
    let id = send(
        &p,
        "s@example.org",
        &["plain@localhost"],
        "Subject: no owner\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: sender non-delivery notification: "), 1, 20);
}

/// Issue 14: recipients of one message that reach one mailbox through
/// different aliases (and the user itself) get one copy, even though qmgr
/// hands local one recipient per request, at once.
#[test]
fn issue_14_one_message_reaching_a_user_twice_through_aliases_is_one_copy() {
    let p = Postern::start("");
    let u = p.user.clone();
    write_file(
        &p.dir.path().join("aliases"),
        format!("first: {u}\nsecond: {u}\nthird: second\n").as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let mut c = p.client();
    c.cmd("EHLO c.example");
    assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
    for to in ["first", "second", "third", u.as_str()] {
        assert_eq!(c.cmd(&format!("RCPT TO:<{to}@localhost>")), "250 2.1.5 Ok");
    }
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd("Subject: once\r\n\r\nx\r\n.");
    let id = r.rsplit(' ').next().unwrap().to_string();
    c.cmd("QUIT");
    p.wait_log(&format!("{id}: removed"), 1, 20);
    assert_eq!(p.delivered(&u).len(), 1, "{}", p.log());
    assert_eq!(
        p.log()
            .matches("delivered before for this message; not again")
            .count(),
        3,
        "{}",
        p.log()
    );
}
