//! Aliases end to end: the table makes recipients valid at RCPT, local
//! expands them at delivery, qmgr queues forwarded copies, loops bounce,
//! duplicates are delivered once, and edits are noticed without a restart.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn send(p: &Postern, to: &str, subject: &str) -> String {
    let mut c = p.client();
    c.cmd("EHLO c.example");
    assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")), "250 2.1.5 Ok", "{to}");
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd(&format!("Subject: {subject}\r\n\r\nx\r\n."));
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    c.cmd("QUIT");
    r.rsplit(' ').next().unwrap().to_string()
}

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
    let id = send(&p, "staff@localhost", "to staff");
    p.wait_log(&format!("{id}: removed"), 1, 20);
    assert_eq!(p.delivered(&u).len(), 1);
    assert!(p.log().contains(&format!(
        "{id}: to=<{u}@mail.test.example>, orig_to=<staff@localhost>, relay=local"
    )));

    // A remote address is forwarded as a new message; the local one delivered.
    let id = send(&p, "far@localhost", "far");
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
    let id = send(&p, "self@localhost", "self");
    p.wait_log(&format!("{id}: removed"), 1, 20);
    p.wait_delivered(&u, 3, 20);

    // A loop bounces, it does not storm.
    let id = send(&p, "loopa@localhost", "loop");
    p.wait_log(&format!("{id}: to=<loopa@localhost>, relay=local"), 1, 20);
    p.wait_log("alias database loop for", 1, 5);
    p.wait_log(&format!("{id}: removed"), 1, 20);

    // Commands are not delivered yet: deferred, kept.
    let id = send(&p, "prog@localhost", "prog");
    p.wait_log(
        &format!("{id}: to=<|/bin/cat>, orig_to=<prog@localhost>"),
        1,
        20,
    );
    assert!(p.log().contains("not available yet"));

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
    let id = send(&p, "team@localhost", "team");
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
    std::fs::write(&aliases, "ok: root\n").unwrap();
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
