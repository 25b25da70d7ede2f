//! Local delivery as the recipients see it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::common::*;

#[test]
fn maildir_for_another_user_owned_by_that_user() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let p = Postern::start("");
    let mut c = p.client();
    c.cmd("EHLO c.example");
    c.cmd("MAIL FROM:<s@example.org>");
    assert_eq!(c.cmd("RCPT TO:<nobody@localhost>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(
        c.cmd("Subject: for nobody\r\n\r\nhi\r\n.")
            .starts_with("250 ")
    );
    let files = p.wait_delivered("nobody", 1, 20);
    let meta = std::fs::metadata(&files[0]).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(meta.uid(), nobody.uid.as_raw());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dirmeta = std::fs::metadata(p.maildir("nobody")).unwrap();
    assert_eq!(dirmeta.uid(), nobody.uid.as_raw());
    assert_eq!(dirmeta.permissions().mode() & 0o777, 0o700);
}

#[test]
fn loop_is_bounced() {
    let p = Postern::start("");
    let user = p.user.clone();
    let mut c = p.client();
    c.cmd("EHLO c.example");
    c.cmd("MAIL FROM:<s@example.org>");
    c.cmd(&format!("RCPT TO:<{user}@localhost>"));
    c.cmd("DATA");
    assert!(
        c.cmd(&format!(
            "Delivered-To: {user}@localhost\r\nSubject: loop\r\n\r\nx\r\n."
        ))
        .starts_with("250 ")
    );
    p.wait_log(
        &format!("dsn=5.4.6, status=bounced (mail forwarding loop for {user}@localhost)"),
        1,
        10,
    );
    assert!(p.delivered(&user).is_empty());
}

/// As an ordinary user (the README's first command), postern delivers to
/// that user and defers everyone else with a log line that says why.
#[test]
fn ordinary_user_delivers_only_to_itself() {
    if !is_root() {
        eprintln!("skipped: needs root to become nobody");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let p = Postern::start_full("", &[], Some(nobody.uid.as_raw()));
    assert_eq!(p.user, "nobody");
    let mut c = p.client();
    c.cmd("EHLO c.example");
    c.cmd("MAIL FROM:<s@example.org>");
    assert_eq!(c.cmd("RCPT TO:<nobody@localhost>"), "250 2.1.5 Ok");
    assert_eq!(c.cmd("RCPT TO:<root@localhost>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(
        c.cmd("Subject: as nobody\r\n\r\nhi\r\n.")
            .starts_with("250 ")
    );
    let files = p.wait_delivered("nobody", 1, 20);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().uid(),
        nobody.uid.as_raw()
    );
    p.wait_log("to=<root@localhost>, relay=local", 1, 10);
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains("to=<root@localhost>"))
        .unwrap();
    assert!(line.contains("status=deferred"), "{line}");
    assert!(line.contains("cannot deliver to user \"root\""), "{line}");
    // Every role ran as nobody.
    for role in ["smtpd", "qmgr", "local"] {
        let status = std::fs::read_to_string(format!("/proc/{}/status", p.role_pid(role))).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uid_line.split_whitespace().skip(1).all(|u| u == "65534"),
            "{role}: {uid_line}"
        );
    }
}

/// As root, smtpd and qmgr run as the postern user, local as root.
#[test]
fn roles_run_as_postern_when_started_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let p = Postern::start("");
    // Each role logs this once it has dropped its privileges.
    for role in ["smtpd", "qmgr", "local"] {
        p.wait_log(&format!("{role}: sandboxed"), 1, 10);
    }
    let postern = nix::unistd::User::from_name("postern")
        .unwrap()
        .expect("the postern user (.ci/run creates it)");
    for (role, uid) in [
        ("smtpd", postern.uid.as_raw()),
        ("qmgr", postern.uid.as_raw()),
        ("local", 0),
    ] {
        let status = std::fs::read_to_string(format!("/proc/{}/status", p.role_pid(role))).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uid_line
                .split_whitespace()
                .skip(1)
                .all(|u| u == uid.to_string()),
            "{role}: {uid_line}"
        );
    }
    // Search only for others: they reach the drop directory in it.
    let q = std::fs::metadata(p.queue_dir()).unwrap();
    assert_eq!(q.uid(), postern.uid.as_raw());
    assert_eq!(q.permissions().mode() & 0o777, 0o711);
}

/// mbox delivery end to end: From_ lines, `>From ` quoting, a blank line
/// after each message, appended in order.
#[test]
fn mbox_delivery_end_to_end() {
    let p = Postern::start(
        "[local]\nmailbox = \"{dir}/mail/$user.mbox\"\ndomains = [\"$hostname\", \"localhost\"]\n",
    );
    let u = p.user.clone();
    for n in 1..=2 {
        let mut c = p.client();
        c.cmd("EHLO c.example");
        c.cmd("MAIL FROM:<s@example.org>");
        assert_eq!(c.cmd(&format!("RCPT TO:<{u}@localhost>")), "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354"));
        let r = c.cmd(&format!(
            "Subject: mbox {n}\r\n\r\nFrom here\r\n>From there\r\nend {n}\r\n."
        ));
        assert!(r.starts_with("250 "), "{r}");
        c.cmd("QUIT");
        p.wait_log(": removed", n, 20);
    }
    let path = p.dir.path().join("mail").join(format!("{u}.mbox"));
    let text = std::fs::read_to_string(&path).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("From ")).collect();
    assert_eq!(froms.len(), 2, "{text}\n{}", p.log());
    assert!(froms[0].starts_with("From s@example.org  "), "{text}");
    // Only lines starting exactly with "From " are quoted (Postfix).
    assert!(
        text.contains("\n>From here\n>From there\nend 1\n\nFrom s@example.org  "),
        "{text}"
    );
    assert!(text.ends_with("end 2\n\n"), "{text}");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(
        !p.dir
            .path()
            .join("mail")
            .join(format!("{u}.mbox.lock"))
            .exists()
    );
}
