//! Issue 15, item 2: `sendmail` keeps the mail when the mail system is
//! down. The message waits in the drop directory (`queue/maildrop`, 3733,
//! group postern), each file its user's own; smtpd takes it in at start
//! and while it runs, through the submit.sock path, with the file owner
//! as the submitter; anything else there is moved aside, never delivered.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::sendmail::sendmail;

const NOBODY: u32 = 65534;

fn drop_dir(p: &Postern) -> PathBuf {
    p.queue_dir().join("maildrop")
}

fn bad_dir(p: &Postern) -> PathBuf {
    p.queue_dir().join("maildrop-bad")
}

/// The names in a directory (we are root, or its owner).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn postern_gid() -> u32 {
    nix::unistd::User::from_name("postern")
        .unwrap()
        .expect("as root the tests need the user postern (useradd --system --user-group postern; .ci/run does)")
        .gid
        .as_raw()
}

/// A drop file as `sendmail` writes it.
fn drop_file(sender: &str, rcpt: &str, message: &str) -> Vec<u8> {
    format!(
        "postern-maildrop 1\nsize {}\nfrom <{sender}>\nto <{rcpt}>\n\n{message}",
        message.len()
    )
    .into_bytes()
}

/// Write `data` into the drop directory as `name`, as the user `uid`
/// would by hand (a shell, mode 0640).
fn drop_by_hand(p: &Postern, uid: u32, name: &str, data: &[u8]) {
    let path = drop_dir(p).join(name);
    let out = run_with_input(
        command_as(Some(uid), "sh")
            .args(["-c", "umask 027 && cat > \"$1\"", "sh"])
            .arg(&path),
        data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run a program as `uid`; it must succeed.
fn run_as(uid: u32, program: &str, args: &[&Path]) {
    let out = command_as(Some(uid), program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_gone(path: &Path, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} is still there",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn skipped(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!(
        "\n*** SKIPPED {test}: needs root to become nobody (uid 65534) and to run smtpd as postern ***\n"
    );
    true
}

#[test]
fn issue_15_mail_sent_while_postern_is_down_is_delivered_when_it_starts() {
    if skipped("issue_15_mail_sent_while_postern_is_down_is_delivered_when_it_starts") {
        return;
    }
    let mut p = Postern::configure("", &[], None);
    // Installed (postern start made the queue), then stopped.
    p.launch();
    p.stop();
    let drop = drop_dir(&p);
    let dm = std::fs::metadata(&drop).unwrap();
    assert_eq!(dm.mode() & 0o7777, 0o3733);
    assert_eq!(dm.gid(), postern_gid());
    assert_eq!(
        std::fs::metadata(p.queue_dir()).unwrap().mode() & 0o7777,
        0o711
    );

    let out = sendmail(
        &p,
        &["root@localhost"],
        b"Subject: while down\n\nkept for later\n",
        Some(NOBODY),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = names(&drop);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with('d'), "{files:?}");
    let file = drop.join(&files[0]);
    let m = std::fs::symlink_metadata(&file).unwrap();
    assert!(m.is_file());
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!(m.uid(), NOBODY);
    assert_eq!(m.gid(), postern_gid());
    // Users cannot list the drop directory, nor read the file.
    let ls = command_as(Some(NOBODY), "ls").arg(&drop).output().unwrap();
    assert!(!ls.status.success(), "nobody listed the drop directory");
    let ls = command_as(Some(NOBODY), "ls")
        .arg(p.queue_dir())
        .output()
        .unwrap();
    assert!(!ls.status.success(), "nobody listed the queue");

    p.launch();
    let delivered = p.wait_delivered("root", 1, 20);
    let text = std::fs::read_to_string(&delivered[0]).unwrap();
    assert!(
        text.contains("Received: by mail.test.example (postern, from userid 65534)"),
        "{text}"
    );
    assert!(text.contains("\nSubject: while down\n"), "{text}");
    assert!(text.contains("\nFrom: "), "{text}");
    assert!(text.ends_with("\n\nkept for later\n"), "{text}");
    p.wait_log(": uid=65534 from=<nobody@mail.test.example>", 1, 10);
    p.wait_log(
        &format!(": maildrop/{}: uid=65534: queued", files[0]),
        1,
        10,
    );
    wait_gone(&file, 10);
    // Exactly once.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(p.delivered("root").len(), 1);
    assert!(names(&bad_dir(&p)).is_empty());
}

/// While postern is down, sendmail says at once what smtpd would say
/// (the same checks, the same exit codes), and keeps nothing then.
#[test]
fn issue_15_while_down_sendmail_refuses_what_smtpd_would_refuse() {
    if skipped("issue_15_while_down_sendmail_refuses_what_smtpd_would_refuse") {
        return;
    }
    let mut p = Postern::configure(
        "",
        &[
            "authorized_submit_users = [\"root\", \"nobody\"]",
            "sender_override_users = [\"root\"]",
        ],
        None,
    );
    p.launch();
    p.stop();
    let forged = sendmail(
        &p,
        &["-f", "boss@example.org", "root@localhost"],
        b"Subject: forged\n\nx\n",
        Some(NOBODY),
    );
    assert_eq!(forged.status.code(), Some(77));
    let err = String::from_utf8_lossy(&forged.stderr);
    assert!(err.contains("not owned by user nobody"), "{err}");
    p.edit_config("\"root\", \"nobody\"", "\"root\"");
    let out = sendmail(&p, &["root@localhost"], b"Subject: x\n\nx\n", Some(NOBODY));
    assert_eq!(out.status.code(), Some(77));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not allowed to submit mail"), "{err}");
    assert!(names(&drop_dir(&p)).is_empty());
}

#[test]
fn issue_15_a_file_dropped_by_hand_while_postern_runs_is_picked_up() {
    if skipped("issue_15_a_file_dropped_by_hand_while_postern_runs_is_picked_up") {
        return;
    }
    let p = Postern::start("");
    let started = Instant::now();
    drop_by_hand(
        &p,
        NOBODY,
        "dbyhand",
        &drop_file(
            "nobody@mail.test.example",
            "root@localhost",
            "Subject: by hand\n\nhello\n",
        ),
    );
    let delivered = p.wait_delivered("root", 1, 10);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let text = std::fs::read_to_string(&delivered[0]).unwrap();
    assert!(text.contains("(postern, from userid 65534)"), "{text}");
    assert!(text.ends_with("\n\nhello\n"), "{text}");
    wait_gone(&drop_dir(&p).join("dbyhand"), 10);
    p.wait_log(": maildrop/dbyhand: uid=65534: queued", 1, 10);
}

#[test]
fn issue_15_hostile_files_in_the_drop_directory_are_moved_aside() {
    if skipped("issue_15_hostile_files_in_the_drop_directory_are_moved_aside") {
        return;
    }
    // nobody may not choose another sender.
    let p = Postern::start_with("", &["sender_override_users = [\"root\"]"]);
    let drop = drop_dir(&p);
    let root_mail = |subject: &str| {
        drop_file(
            "root@mail.test.example",
            "root@localhost",
            &format!("Subject: {subject}\n\nx\n"),
        )
    };
    // A symbolic link to a well-formed file of root's: followed, it would
    // be mail from root.
    let target = p.dir.path().join("roots-file");
    std::fs::write(&target, root_mail("followed a symlink")).unwrap();
    run_as(
        NOBODY,
        "ln",
        &[Path::new("-s"), &target, &drop.join("dlink")],
    );
    // A hard link: the same file under two names (written under a name
    // the pickup leaves alone first).
    drop_by_hand(&p, NOBODY, "thard", &root_mail("a hard link"));
    run_as(NOBODY, "ln", &[&drop.join("thard"), &drop.join("dhard")]);
    // Garbage, and an identity claimed inside the file.
    drop_by_hand(&p, NOBODY, "dgarbage", b"From: x\n\nnot a drop file\n");
    drop_by_hand(
        &p,
        NOBODY,
        "dclaim",
        b"postern-maildrop 1\nuid 0\nsize 3\nfrom <root@mail.test.example>\nto <root@localhost>\n\nx\n",
    );
    // Another sender than nobody's own: refused as on submit.sock.
    drop_by_hand(
        &p,
        NOBODY,
        "dforged",
        &drop_file(
            "boss@example.org",
            "root@localhost",
            "Subject: forged\n\nx\n",
        ),
    );
    // A FIFO (opening it must not hang the pickup).
    run_as(NOBODY, "mkfifo", &[&drop.join("dfifo")]);
    // A name sendmail does not make.
    drop_by_hand(&p, NOBODY, "junk", &root_mail("junk"));

    for line in [
        "maildrop/dlink: uid=65534: not a regular file (a symbolic link); moved to maildrop-bad/",
        "maildrop/dhard: uid=65534: 2 links to it (a hard link); moved to maildrop-bad/",
        "maildrop/dgarbage: uid=65534: malformed: not a postern drop file",
        "maildrop/dclaim: uid=65534: malformed: line 2: unknown key \"uid\"; moved to maildrop-bad/",
        "maildrop/dforged: uid=65534: 553 5.7.1 <boss@example.org>: Sender address rejected: not owned by user nobody; moved to maildrop-bad/",
        "maildrop/dfifo: uid=65534: not a regular file (a FIFO); moved to maildrop-bad/",
        "maildrop/junk: uid=65534: a name sendmail does not make; moved to maildrop-bad/",
    ] {
        p.wait_log(line, 1, 10);
    }
    // The forged sender is refused with the socket's own line.
    assert!(
        p.log().contains("NOQUEUE: reject: MAIL from localhost[127.0.0.1] (uid 65534): 553 5.7.1 <boss@example.org>: Sender address rejected: not owned by user nobody"),
        "{}",
        p.log()
    );
    let bad = names(&bad_dir(&p));
    for name in [
        "dlink", "dhard", "dgarbage", "dclaim", "dforged", "dfifo", "junk",
    ] {
        assert!(
            bad.iter().any(|b| b.ends_with(&format!(".{name}"))),
            "{name} not in {bad:?}"
        );
    }
    // Only the temporary name is left (removed after an hour).
    assert_eq!(names(&drop), vec!["thard".to_string()]);
    // Nothing was delivered, nothing queued.
    std::thread::sleep(Duration::from_secs(2));
    assert!(p.delivered("root").is_empty(), "{}", p.log());
    assert!(!p.log().contains("(queue active)"), "{}", p.log());
    assert_eq!(
        std::fs::symlink_metadata(&target).unwrap().len(),
        root_mail("followed a symlink").len() as u64
    );
}

#[test]
fn issue_15_check_reports_a_drop_directory_with_the_wrong_mode_or_group() {
    let mut p = Postern::configure("", &[], None);
    p.launch();
    p.stop();
    let drop = drop_dir(&p);
    let check = |p: &Postern| {
        let out = p.postern(&["check"]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = check(&p);
    assert!(!err.contains("maildrop"), "{err}");
    std::fs::set_permissions(&drop, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let err = check(&p);
    assert!(
        err.contains(&format!(
            "postern: error: {}: mode 1777, should be 3733",
            drop.display()
        )),
        "{err}"
    );
    std::fs::set_permissions(&drop, std::fs::Permissions::from_mode(0o3733)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&drop, None, Some(0)).unwrap();
        std::fs::set_permissions(&drop, std::fs::Permissions::from_mode(0o3733)).unwrap();
        let err = check(&p);
        assert!(
            err.contains(&format!(
                "postern: error: {}: group root, should be postern",
                drop.display()
            )),
            "{err}"
        );
    }
}
