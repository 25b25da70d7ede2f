//! Configuration that would lose mail (issue 14, item 9): `postern check`
//! names it, and at run time it defers instead of bouncing.

use std::os::unix::fs::PermissionsExt;

use crate::common::{Postern, is_root};

fn check(p: &Postern) -> (bool, String) {
    let out = p.postern(&["check"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn issue_14_a_missing_alias_file_defers_and_fails_check() {
    let p = Postern::start("");
    let aliases = p.dir.path().join("aliases");
    std::fs::write(&aliases, "team: root\n").unwrap();
    let mut c = p.client();
    c.cmd("EHLO client.example");
    assert!(c.cmd("MAIL FROM:<a@client.example>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<team@localhost>").starts_with("250"));
    c.cmd("RSET");
    std::fs::remove_file(&aliases).unwrap();
    // The table is looked at again within a second.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert!(c.cmd("MAIL FROM:<a@client.example>").starts_with("250"));
    assert_eq!(
        c.cmd("RCPT TO:<team@localhost>"),
        "451 4.3.0 <team@localhost>: Temporary lookup failure"
    );
    let (ok, text) = check(&p);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("{} (local.alias_files):", aliases.display())),
        "{text}"
    );
    assert!(text.contains("would be deferred"), "{text}");
}

#[test]
fn issue_14_an_alias_file_postern_cannot_read_fails_check() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (a file only root can read)");
        return;
    }
    let p = Postern::configure("", &[], None);
    let aliases = p.dir.path().join("aliases");
    std::fs::write(&aliases, "team: root\n").unwrap();
    std::fs::set_permissions(&aliases, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, text) = check(&p);
    assert!(!ok, "{text}");
    assert!(
        text.contains("the postern user cannot read it (mode 600, owner uid 0)"),
        "{text}"
    );
}

#[test]
fn issue_14_a_listener_named_twice_fails_check() {
    let p = Postern::configure(
        "",
        &["listen = [\"127.0.0.1:2525\", \"127.0.0.1:2525\"]"],
        None,
    );
    // configure() put its own listen first: drop it.
    p.edit_config("listen = [\"127.0.0.1:0\"]\n", "");
    let (ok, text) = check(&p);
    assert!(!ok, "{text}");
    assert!(text.contains("127.0.0.1:2525 is named twice"), "{text}");
}
