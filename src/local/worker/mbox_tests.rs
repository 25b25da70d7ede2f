//! mbox delivery beside the code: the `From ` line, quoting, the checks on
//! the mailbox, locks, and truncation after a failure. Deliveries through
//! the real worker are in `tests/local_delivery.rs`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use chrono::NaiveDate;

use super::*;
use crate::local::worker::lock::lock_path;

fn quick() -> LockPolicy {
    LockPolicy {
        attempts: 2,
        delay: Duration::from_millis(10),
        stale: Duration::from_secs(500),
    }
}

fn me() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn quote(chunks: &[&[u8]]) -> Vec<u8> {
    let mut q = FromQuoter::default();
    let mut out = Vec::new();
    for c in chunks {
        q.feed(c, &mut out);
    }
    q.finish(&mut out);
    out
}

/// Deliver `content` to `path` as the current user with quick locks.
fn put(path: &Path, content: &[u8]) -> (Result<Appended, MboxError>, Vec<String>) {
    let mut notes = Vec::new();
    let r = deliver(
        path,
        me(),
        b"ENV\n",
        &mut &content[..],
        content.len() as u64,
        &quick(),
        &mut notes,
    );
    (r, notes)
}

#[test]
fn the_from_line() {
    let when = NaiveDate::from_ymd_opt(2025, 1, 5)
        .unwrap()
        .and_hms_opt(7, 8, 9)
        .unwrap();
    assert_eq!(
        from_line("alice@example.org", when),
        b"From alice@example.org  Sun Jan  5 07:08:09 2025\n"
    );
    assert_eq!(
        from_line("", when),
        b"From MAILER-DAEMON  Sun Jan  5 07:08:09 2025\n"
    );
    let when = NaiveDate::from_ymd_opt(1999, 12, 31)
        .unwrap()
        .and_hms_opt(23, 59, 0)
        .unwrap();
    assert_eq!(
        from_line("\"a b\"@x\n", when),
        b"From \"a b\"@x?  Fri Dec 31 23:59:00 1999\n"
    );
}

#[test]
fn only_from_space_at_a_line_start_is_quoted() {
    let body = b"From a\n>From b\nFromage\nFrom\nx From y\n From z\nFROM w\nFrom \n";
    assert_eq!(
        quote(&[body]),
        b">From a\n>From b\nFromage\nFrom\nx From y\n From z\nFROM w\n>From \n\n"
    );
    // The message ends with the empty line; a last line without its LF
    // gets one first.
    assert_eq!(quote(&[b"a\n"]), b"a\n\n");
    assert_eq!(quote(&[b"a"]), b"a\n\n");
    assert_eq!(quote(&[b""]), b"\n");
    assert_eq!(quote(&[b"Fro"]), b"Fro\n\n");
    assert_eq!(quote(&[b"From "]), b">From \n\n");
    assert_eq!(quote(&[b"\nFrom x"]), b"\n>From x\n\n");
}

#[test]
fn quoting_does_not_depend_on_chunks() {
    let body = b"From a\nFrom\nFr\nFrom b From c\n\nFrom d";
    let whole = quote(&[body]);
    for i in 0..=body.len() {
        for j in i..=body.len() {
            let parts = [&body[..i], &body[i..j], &body[j..]];
            assert_eq!(quote(&parts), whole, "split at {i}, {j}");
        }
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(quote(&bytes), whole);
}

proptest::proptest! {
    #[test]
    fn quoted_lines_never_start_with_from(
        data in proptest::collection::vec(
            proptest::sample::select(b"From >\nx".to_vec()), 0..200),
        cut in 0usize..200,
    ) {
        let cut = cut.min(data.len());
        let out = quote(&[&data[..cut], &data[cut..]]);
        proptest::prop_assert_eq!(&out, &quote(&[&data]));
        for line in out.split(|&c| c == b'\n') {
            proptest::prop_assert!(!line.starts_with(b"From "));
        }
        // Removing one `>` from each quoted line gives the message back.
        let mut back = Vec::new();
        for (i, line) in out.split(|&c| c == b'\n').enumerate() {
            if i > 0 {
                back.push(b'\n');
            }
            back.extend_from_slice(line.strip_prefix(b">").filter(|l| l.starts_with(b"From ")).unwrap_or(line));
        }
        let mut want = data.clone();
        if !want.is_empty() && !want.ends_with(b"\n") {
            want.push(b'\n');
        }
        want.push(b'\n');
        let original_quoted = data.split(|&c| c == b'\n').any(|l| l.starts_with(b">From "));
        if !original_quoted {
            proptest::prop_assert_eq!(back, want);
        }
    }
}

#[test]
fn appends_messages_and_creates_the_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob");
    let (r, notes) = put(&path, b"Subject: 1\n\nFrom here\n");
    assert_eq!(r.unwrap(), Appended { offset: 0 });
    assert!(notes.is_empty());
    let first = b"ENV\nSubject: 1\n\n>From here\n\n".to_vec();
    assert_eq!(std::fs::read(&path).unwrap(), first);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert!(!lock_path(&path).exists());

    let (r, _) = put(&path, b"Subject: 2\n\nno newline");
    assert_eq!(r.unwrap().offset, first.len() as u64);
    let mut want = first;
    want.extend_from_slice(b"ENV\nSubject: 2\n\nno newline\n\n");
    assert_eq!(std::fs::read(&path).unwrap(), want);
    assert!(!lock_path(&path).exists());
}

#[test]
fn not_a_regular_file_bounces() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = put(dir.path(), b"x\n");
    let e = r.unwrap_err();
    assert_eq!(e.status(), (DeliveryStatus::Bounced, "5.2.0"));
    assert_eq!(
        e.to_string(),
        format!("destination {} is not a regular file", dir.path().display())
    );
    // /dev/null is neither locked nor written.
    let (r, _) = put(Path::new("/dev/null"), b"x\n");
    assert!(matches!(r, Err(MboxError::NotRegular(_))));
    assert!(!Path::new("/dev/null.lock").exists());
}

#[test]
fn another_owner_defers_and_leaves_the_mailbox_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob");
    std::fs::write(&path, b"old\n").unwrap();
    let mut notes = Vec::new();
    let e = deliver(
        &path,
        me() + 1,
        b"ENV\n",
        &mut &b"x\n"[..],
        2,
        &quick(),
        &mut notes,
    )
    .unwrap_err();
    assert_eq!(e.status(), (DeliveryStatus::Deferred, "4.2.0"));
    assert_eq!(
        e.to_string(),
        format!("destination {} is not owned by recipient", path.display())
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"old\n");
    assert!(!lock_path(&path).exists());
}

#[test]
fn links_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"t\n").unwrap();

    let hard = dir.path().join("hard");
    std::fs::hard_link(&target, &hard).unwrap();
    let (r, _) = put(&hard, b"x\n");
    let e = r.unwrap_err();
    assert_eq!(e.to_string(), "file has 2 hard links");
    assert_eq!(e.status(), (DeliveryStatus::Deferred, "4.2.0"));

    // A symbolic link in a directory others may write to.
    std::fs::remove_file(&hard).unwrap();
    let soft = dir.path().join("soft");
    std::os::unix::fs::symlink(&target, &soft).unwrap();
    let (r, _) = put(&soft, b"x\n");
    assert_eq!(r.unwrap_err().to_string(), "file is a symbolic link");
    // A dangling one is not followed to create its target.
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let (r, _) = put(&dangling, b"x\n");
    assert!(r.is_err());
    assert!(!dir.path().join("nowhere").exists());
    assert_eq!(std::fs::read(&target).unwrap(), b"t\n");
    for p in [&soft, &dangling, &target] {
        assert!(!lock_path(p).exists());
    }

    // Root's link where only root may write is followed, as in Postfix.
    if me() == 0 {
        let safe = tempfile::tempdir().unwrap();
        std::fs::set_permissions(safe.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = safe.path().join("bob");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let (r, _) = put(&link, b"x\n");
        r.unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"t\nENV\nx\n\n");
        assert!(!lock_path(&link).exists());
    }
}

#[test]
fn a_busy_dot_lock_defers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob");
    std::fs::write(&path, b"old\n").unwrap();
    std::fs::write(lock_path(&path), b"").unwrap();
    let (r, _) = put(&path, b"x\n");
    let e = r.unwrap_err();
    assert_eq!(e.status(), (DeliveryStatus::Deferred, "4.2.0"));
    assert_eq!(
        e.to_string(),
        format!(
            "cannot lock mailbox: unable to create lock file {}: File exists",
            lock_path(&path).display()
        )
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"old\n");
    // Someone else's lock stays.
    assert!(lock_path(&path).exists());

    // A stale one is broken, and said so.
    let mut notes = Vec::new();
    let policy = LockPolicy {
        stale: Duration::ZERO,
        ..quick()
    };
    deliver(&path, me(), b"", &mut &b"x\n"[..], 2, &policy, &mut notes).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"old\nx\n\n");
    assert!(!lock_path(&path).exists());
    assert_eq!(notes.len(), 1, "{notes:?}");
}

#[test]
fn a_busy_fcntl_lock_defers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob");
    std::fs::write(&path, b"old\n").unwrap();
    let reader = OpenOptions::new().append(true).open(&path).unwrap();
    lock_exclusive(&reader, &quick()).unwrap();
    let (r, _) = put(&path, b"x\n");
    let e = r.unwrap_err();
    assert_eq!(e.status(), (DeliveryStatus::Deferred, "4.2.0"));
    assert!(
        e.to_string()
            .starts_with("cannot lock mailbox: unable to lock for exclusive access: "),
        "{e}"
    );
    assert!(!lock_path(&path).exists());
    drop(reader);
    assert!(put(&path, b"x\n").0.is_ok());
}

/// Gives `good` bytes, then fails.
struct Failing {
    good: Vec<u8>,
    at: usize,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.good.len() {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let n = buf.len().min(self.good.len() - self.at).min(1000);
        buf[..n].copy_from_slice(&self.good[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn a_failure_midway_leaves_the_mailbox_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob");
    let before = b"From x  Thu Jan  1 00:00:00 1970\nSubject: old\n\nold\n\n".to_vec();
    std::fs::write(&path, &before).unwrap();

    // The content source fails after 300 kB were written.
    let mut content = Failing {
        good: vec![b'y'; 300_000],
        at: 0,
    };
    let mut notes = Vec::new();
    let e = deliver(
        &path,
        me(),
        b"ENV\n",
        &mut content,
        1_000_000,
        &quick(),
        &mut notes,
    )
    .unwrap_err();
    assert!(matches!(e, MboxError::Content(_)), "{e}");
    assert_eq!(content.at, 300_000);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(!lock_path(&path).exists());
    assert!(notes.is_empty());

    // Or it ends early.
    let e = deliver(
        &path,
        me(),
        b"ENV\n",
        &mut &b"short"[..],
        10,
        &quick(),
        &mut notes,
    )
    .unwrap_err();
    assert!(matches!(e, MboxError::ShortContent { got: 5, len: 10 }));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn write_errors_map_like_maildir() {
    let w = |n| MboxError::Write(io::Error::from_raw_os_error(n));
    assert_eq!(
        w(libc::ENOSPC).status(),
        (DeliveryStatus::Deferred, "4.3.0")
    );
    assert_eq!(w(libc::EDQUOT).status(), (DeliveryStatus::Bounced, "5.2.2"));
    assert_eq!(w(libc::EFBIG).status(), (DeliveryStatus::Bounced, "5.2.2"));
    assert_eq!(w(libc::EBADF).status(), (DeliveryStatus::Deferred, "4.2.0"));
    assert_eq!(
        w(libc::ENOSPC).to_string(),
        "error writing message: No space left on device"
    );
    let open = MboxError::Open(io::Error::from_raw_os_error(libc::EACCES));
    assert_eq!(open.status(), (DeliveryStatus::Deferred, "4.2.0"));
    assert!(open.is_access_problem());
    assert_eq!(open.to_string(), "cannot open file: Permission denied");
}
