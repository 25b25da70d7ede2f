//! The queue has one owner: the queue manager that holds `qmgr.lock`.
//!
//! Two queue managers on one queue would each deliver every message (both
//! replay the same segments), so qmgr takes an exclusive `flock` on
//! `<queue>/qmgr.lock` before it reads anything, and keeps it for its
//! life; the kernel releases it when the process ends, however it ends.
//! The file holds the owner's pid, for the error message of the one that
//! finds it taken.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

/// The lock file's name in the queue directory.
pub(crate) const LOCK_FILE: &str = "qmgr.lock";

/// The held lock; dropping it releases the queue.
#[derive(Debug)]
pub(crate) struct QueueLock {
    _file: Flock<File>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error(
        "the queue {dir} is owned by another queue manager{}: is another postern running on this queue?",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Taken { dir: PathBuf, pid: Option<i32> },
    #[error("cannot lock the queue: {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Take the queue in `dir`, waiting up to `patience` for an owner that is
/// still stopping.
pub(crate) fn lock(dir: &Path, patience: Duration) -> Result<QueueLock, LockError> {
    let path = dir.join(LOCK_FILE);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let deadline = Instant::now() + patience;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(io)?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut held) => {
                let pid = format!("{}\n", std::process::id());
                held.set_len(0)
                    .and_then(|()| held.seek(SeekFrom::Start(0)).map(drop))
                    .and_then(|()| held.write_all(pid.as_bytes()))
                    .map_err(io)?;
                return Ok(QueueLock { _file: held });
            }
            Err((back, nix::errno::Errno::EWOULDBLOCK)) => {
                file = back;
                if Instant::now() >= deadline {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(LockError::Taken {
                        dir: dir.to_path_buf(),
                        pid: text.trim().parse().ok(),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err((_, e)) => return Err(io(std::io::Error::from(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path(), Duration::ZERO).unwrap();
        let e = lock(dir.path(), Duration::from_millis(200)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
        assert!(text.contains("another postern"), "{text}");
        drop(held);
        lock(dir.path(), Duration::ZERO).unwrap();
    }
}
