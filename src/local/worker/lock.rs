//! Mailbox locks for mbox delivery, as Postfix takes them on Linux
//! (`mailbox_delivery_lock = fcntl, dotlock`), dot-lock first:
//!
//! * [`DotLock`]: `<mailbox>.lock`, created with `O_CREAT|O_EXCL`, removed
//!   when released. A lock file older than
//!   [`LockPolicy::stale`] (by its change time) is someone's leftover and is
//!   removed (Postfix `stale_lock_time`).
//! * [`lock_exclusive`]: an `fcntl` write lock on the whole open file, held
//!   until the file is closed. It is an open-file-description lock
//!   (`F_OFD_SETLK`) on Linux, which conflicts with the classic `F_SETLK`
//!   locks mail readers take, and is not lost when some other descriptor of
//!   the same file is closed in this process.
//!
//! Both are tried [`LockPolicy::attempts`] times, [`LockPolicy::delay`]
//! apart (Postfix `deliver_lock_attempts` = 20, `deliver_lock_delay` = 1s).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How hard to try for a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LockPolicy {
    /// Tries before giving up (Postfix `deliver_lock_attempts`).
    pub attempts: u32,
    /// Pause between tries (Postfix `deliver_lock_delay`).
    pub delay: Duration,
    /// A dot-lock older than this is removed (Postfix `stale_lock_time`).
    pub stale: Duration,
}

impl Default for LockPolicy {
    /// Postfix's defaults: 20 tries 1 s apart, stale after 500 s.
    fn default() -> LockPolicy {
        LockPolicy {
            attempts: 20,
            delay: Duration::from_secs(1),
            stale: Duration::from_secs(500),
        }
    }
}

/// A dot-lock held by this process. [`release`](Self::release) removes the
/// lock file; dropping the guard does too, quietly.
#[derive(Debug)]
pub(crate) struct DotLock {
    path: PathBuf,
    held: bool,
}

impl DotLock {
    /// Create `<mailbox>.lock`. `Err` with `EEXIST` when it was still held by
    /// someone else after every try; any other error at once (a spool the
    /// user may not write to will not become writable by waiting). A stale
    /// lock broken on the way is reported in `notes`.
    pub(crate) fn acquire(
        mailbox: &Path,
        policy: &LockPolicy,
        notes: &mut Vec<String>,
    ) -> Result<DotLock, (PathBuf, io::Error)> {
        let path = lock_path(mailbox);
        let mut tries = 0;
        loop {
            tries += 1;
            let created = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            let e = match created {
                Ok(_) => return Ok(DotLock { path, held: true }),
                Err(e) => e,
            };
            if e.kind() != io::ErrorKind::AlreadyExists || tries >= policy.attempts {
                return Err((path, e));
            }
            match remove_if_stale(&path, policy.stale, SystemTime::now()) {
                Ok(Some(age)) => notes.push(format!(
                    "removed stale lock file {} ({}s old)",
                    path.display(),
                    age.as_secs()
                )),
                Ok(None) => std::thread::sleep(policy.delay),
                Err(e) => return Err((path, e)),
            }
        }
    }

    /// Remove the lock file; a failure is reported in `notes`.
    pub(crate) fn release(mut self, notes: &mut Vec<String>) {
        self.held = false;
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            notes.push(format!(
                "cannot remove lock file {}: {e}",
                self.path.display()
            ));
        }
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if self.held {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `/var/mail/bob` → `/var/mail/bob.lock`.
pub(crate) fn lock_path(mailbox: &Path) -> PathBuf {
    let mut name = OsString::from(mailbox.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

/// Remove the lock file when its change time is more than `stale` before
/// `now`, and say how old it was. A file that vanished meanwhile is fine.
fn remove_if_stale(path: &Path, stale: Duration, now: SystemTime) -> io::Result<Option<Duration>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let changed = UNIX_EPOCH
        + Duration::from_secs(meta.ctime().max(0) as u64)
        + Duration::from_nanos(meta.ctime_nsec().max(0) as u64);
    let age = now.duration_since(changed).unwrap_or_default();
    if age <= stale {
        return Ok(None);
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(Some(age)),
    }
}

/// Take an exclusive `fcntl` lock on all of `file` (open for writing),
/// trying as `policy` says while someone else holds a conflicting lock.
pub(crate) fn lock_exclusive(file: &File, policy: &LockPolicy) -> io::Result<()> {
    let mut tries = 0;
    loop {
        tries += 1;
        match try_lock(file) {
            Ok(()) => return Ok(()),
            Err(e)
                if tries < policy.attempts
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EAGAIN | libc::EACCES | libc::EINTR | libc::ENOLCK)
                    ) =>
            {
                std::thread::sleep(policy.delay);
            }
            Err(e) => return Err(e),
        }
    }
}

fn try_lock(file: &File) -> io::Result<()> {
    let whole = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        // Must be 0 for open-file-description locks.
        l_pid: 0,
    };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let arg = nix::fcntl::FcntlArg::F_OFD_SETLK(&whole);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let arg = nix::fcntl::FcntlArg::F_SETLK(&whole);
    nix::fcntl::fcntl(file.as_raw_fd(), arg)
        .map(drop)
        .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(attempts: u32) -> LockPolicy {
        LockPolicy {
            attempts,
            delay: Duration::from_millis(10),
            stale: Duration::from_secs(500),
        }
    }

    #[test]
    fn dot_locks_are_exclusive_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("bob");
        let mut notes = Vec::new();
        let held = DotLock::acquire(&mbox, &quick(1), &mut notes).unwrap();
        assert_eq!(lock_path(&mbox), dir.path().join("bob.lock"));
        assert!(lock_path(&mbox).exists());
        let (path, e) = DotLock::acquire(&mbox, &quick(3), &mut notes).unwrap_err();
        assert_eq!(path, dir.path().join("bob.lock"));
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        held.release(&mut notes);
        assert!(!dir.path().join("bob.lock").exists());
        let again = DotLock::acquire(&mbox, &quick(1), &mut notes).unwrap();
        drop(again);
        assert!(!dir.path().join("bob.lock").exists());
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn a_lock_freed_while_waiting_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("bob");
        let held = DotLock::acquire(&mbox, &quick(1), &mut Vec::new()).unwrap();
        let waiter = std::thread::spawn({
            let mbox = mbox.clone();
            move || {
                let lock = DotLock::acquire(&mbox, &quick(200), &mut Vec::new());
                lock.map(|l| l.path.clone())
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        assert_eq!(waiter.join().unwrap().unwrap(), lock_path(&mbox));
        assert!(!lock_path(&mbox).exists());
    }

    #[test]
    fn stale_dot_locks_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("bob");
        std::fs::write(lock_path(&mbox), b"").unwrap();
        let mut notes = Vec::new();
        // Young: left alone, so the lock stays busy.
        assert!(DotLock::acquire(&mbox, &quick(2), &mut notes).is_err());
        assert!(lock_path(&mbox).exists());
        assert!(notes.is_empty());
        // Older than the stale time: broken, then taken.
        let policy = LockPolicy {
            stale: Duration::ZERO,
            ..quick(2)
        };
        std::thread::sleep(Duration::from_millis(5));
        let lock = DotLock::acquire(&mbox, &policy, &mut notes).unwrap();
        lock.release(&mut notes);
        assert!(!lock_path(&mbox).exists());
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with("removed stale lock file "),
            "{notes:?}"
        );
        // The age is measured from the change time.
        std::fs::write(lock_path(&mbox), b"").unwrap();
        let now = SystemTime::now();
        let stale = Duration::from_secs(500);
        assert_eq!(
            remove_if_stale(&lock_path(&mbox), stale, now).unwrap(),
            None
        );
        assert!(lock_path(&mbox).exists());
        let later = now + Duration::from_secs(501);
        let age = remove_if_stale(&lock_path(&mbox), stale, later).unwrap();
        assert!(age.unwrap() > stale);
        assert!(!lock_path(&mbox).exists());
        assert_eq!(
            remove_if_stale(&lock_path(&mbox), stale, later).unwrap(),
            None
        );
    }

    #[test]
    fn other_dot_lock_errors_fail_at_once() {
        let mbox = Path::new("/nonexistent-dir-xq/bob");
        let start = std::time::Instant::now();
        let (_, e) = DotLock::acquire(mbox, &LockPolicy::default(), &mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn fcntl_locks_conflict_and_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bob");
        let open = || {
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .unwrap()
        };
        let a = open();
        let b = open();
        lock_exclusive(&a, &quick(1)).unwrap();
        let e = lock_exclusive(&b, &quick(3)).unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)),
            "{e}"
        );
        drop(a);
        lock_exclusive(&b, &quick(1)).unwrap();
    }
}
