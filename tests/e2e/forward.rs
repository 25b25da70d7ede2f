//! `~/.forward` end to end: test users with their home directories in the
//! test's directory, mail sent over SMTP, delivered by the real daemons.
//! Needs root (to create users); skipped otherwise.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::common::*;

/// A user made for one test and removed at its end; its home directory
/// (owned by it, 0755) is `home`.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub home: PathBuf,
}

impl TestUser {
    pub fn create(home: &Path) -> TestUser {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("pte{}x{n}", std::process::id());
        // Tests run in parallel: useradd may find passwd locked.
        for tries in 0.. {
            let st = Command::new("useradd")
                .args(["--home-dir", &home.display().to_string()])
                .args(["--no-create-home", "--shell", "/bin/sh", &name])
                .stderr(Stdio::null())
                .status()
                .unwrap();
            if st.success() {
                break;
            }
            assert!(tries < 50, "useradd {name} failed: {st}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        std::fs::create_dir_all(home).unwrap();
        nix::unistd::chown(home, Some(user.uid), Some(user.gid)).unwrap();
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o755)).unwrap();
        TestUser {
            name,
            uid: user.uid.as_raw(),
            home: home.to_path_buf(),
        }
    }

    /// Write a file in the home directory, owned by the user.
    pub fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.home.join(name);
        std::fs::write(&path, text).unwrap();
        std::os::unix::fs::chown(&path, Some(self.uid), None).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        for _ in 0..50 {
            // Forced: local's idle workers may still run as the user.
            let st = Command::new("userdel")
                .args(["--force", &self.name])
                .stderr(Stdio::null())
                .status();
            if st.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn forward_to_mailbox_command_file_and_another_user() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let p = Postern::start("");
    let user = TestUser::create(&p.dir.path().join("home-fwd"));
    let (u, h) = (&user.name, user.home.display().to_string());
    user.write(
        ".forward",
        &format!(
            "# keep a copy, and tell the others\n\\{u}\n\"|cat > {h}/cmd.out; id -u >> {h}/cmd.out\"\n\
             {h}/saved, nobody@localhost\n"
        ),
        0o644,
    );
    let id = send(
        &p,
        "s@example.org",
        &[&format!("{u}@localhost")],
        "Subject: fwd\r\n\r\nFrom here\r\nbody",
    );
    p.wait_log(&format!("{id}: removed"), 1, 20);
    let log = p.log();
    for want in [
        format!("{id}: to=<{u}@localhost>, relay=local"),
        format!("status=sent (delivered to command: cat > {h}/cmd.out; id -u >> {h}/cmd.out)"),
        format!("status=sent (delivered to file: {h}/saved)"),
        format!("{id}: to=<nobody@localhost>, orig_to=<{u}@localhost>, relay=local"),
    ] {
        assert!(log.contains(&want), "{want} not in:\n{log}");
    }
    // \user: a copy in the user's own mailbox.
    let mine = p.wait_delivered(u, 1, 5);
    let body = body_after_added_headers(&mine[0]);
    assert_eq!(body, b"Subject: fwd\n\nFrom here\nbody\n");
    // Another local user.
    assert_eq!(p.wait_delivered("nobody", 1, 5).len(), 1);
    // The command ran as the user, with the message on its input.
    let cmd = std::fs::read_to_string(user.home.join("cmd.out")).unwrap();
    assert!(cmd.starts_with("From s@example.org  "), "{cmd}");
    assert!(
        cmd.ends_with(&format!("Subject: fwd\n\nFrom here\nbody\n{}\n", user.uid)),
        "{cmd}"
    );
    // The file, in mbox form, owned by the user.
    let saved = std::fs::read_to_string(user.home.join("saved")).unwrap();
    assert!(saved.starts_with("From s@example.org  "), "{saved}");
    assert!(
        saved.contains(&format!(
            "\nReturn-Path: <s@example.org>\nDelivered-To: {u}@localhost\nReceived: "
        )),
        "{saved}"
    );
    assert!(
        saved.ends_with("Subject: fwd\n\n>From here\nbody\n\n"),
        "{saved}"
    );
    let meta = std::fs::metadata(user.home.join("saved")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (user.uid, 0o600));
}

#[test]
fn an_unsafe_forward_is_ignored() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let p = Postern::start("");
    let user = TestUser::create(&p.dir.path().join("home-unsafe"));
    let h = user.home.display().to_string();
    let forward = user.write(".forward", &format!("{h}/stolen\n"), 0o664);
    let id = send(
        &p,
        "s@example.org",
        &[&format!("{}@localhost", user.name)],
        "Subject: x\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: removed"), 1, 20);
    p.wait_log(
        &format!(
            "{id}: file {} is group-writable; ignored",
            forward.display()
        ),
        1,
        5,
    );
    assert_eq!(p.wait_delivered(&user.name, 1, 5).len(), 1);
    assert!(!user.home.join("stolen").exists());
}

#[test]
fn a_forward_loop_between_two_users_bounces() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let p = Postern::start("");
    let a = TestUser::create(&p.dir.path().join("home-a"));
    let b = TestUser::create(&p.dir.path().join("home-b"));
    a.write(".forward", &format!("{}@localhost\n", b.name), 0o644);
    b.write(".forward", &format!("{}\n", a.name), 0o644);
    let id = send(
        &p,
        "s@example.org",
        &[&format!("{}@localhost", a.name)],
        "Subject: loop\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: removed"), 1, 20);
    let log = p.log();
    let want = format!(
        "dsn=5.4.6, status=bounced (mail forwarding loop for {}@mail.test.example)",
        a.name
    );
    assert!(log.contains(&want), "{want} not in:\n{log}");
    // Once, not a storm: one bounce line for the message.
    let lines = log
        .lines()
        .filter(|l| l.contains(&format!("{id}: to=")) && l.contains("status=bounced"))
        .count();
    assert_eq!(lines, 1, "{log}");
    assert!(p.delivered(&a.name).is_empty());
    assert!(p.delivered(&b.name).is_empty());

    // A user reached twice is no loop: one copy each.
    b.write(".forward", &format!("\\{}\n", b.name), 0o644);
    a.write(
        ".forward",
        &format!("{}, {}@localhost, \\{}\n", b.name, b.name, a.name),
        0o644,
    );
    let id = send(
        &p,
        "s@example.org",
        &[&format!("{}@localhost", a.name)],
        "Subject: twice\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: removed"), 1, 20);
    assert_eq!(p.wait_delivered(&a.name, 1, 5).len(), 1);
    assert_eq!(p.wait_delivered(&b.name, 1, 5).len(), 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(p.delivered(&b.name).len(), 1, "{}", p.log());
}
