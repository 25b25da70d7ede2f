//! Postfix's `queue_minfree` check (`smtpd_check_queue`): is there room
//! in the queue's file system for a message? Used by a session at MAIL
//! and by `sendmail` before it leaves a message in the drop directory
//! (which lies in the queue's file system).

use std::path::Path;

/// Postfix's `queue_minfree` in effect: never below 1.5 times the message
/// size limit (when there is one).
pub(crate) fn effective_minfree(minfree: u64, message_size_limit: u64) -> u64 {
    minfree.max(message_size_limit.saturating_add(message_size_limit / 2))
}

/// Postfix's `smtpd_check_queue`: a message of `size` bytes may come when
/// the free space stays above `minfree` after it, and it takes less than
/// half of what is free.
pub(crate) fn room_for(free: u64, minfree: u64, size: u64) -> bool {
    free > minfree && size < free - minfree && size < free / 2
}

/// Bytes free for an unprivileged writer on the file system of `dir`.
pub(crate) fn free_space(dir: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.blocks_available().saturating_mul(st.fragment_size()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_space_as_postfix_checks_it() {
        // The default: 1.5 times the 10240000 size limit.
        assert_eq!(effective_minfree(0, 10_240_000), 15_360_000);
        assert_eq!(effective_minfree(20_000_000, 10_240_000), 20_000_000);
        assert_eq!(effective_minfree(7, 0), 7);
        let gb = 1 << 30;
        assert!(room_for(gb, 15_360_000, 0));
        assert!(room_for(gb, 15_360_000, 3_000_000));
        assert!(!room_for(15_360_000, 15_360_000, 0));
        assert!(!room_for(16_000_000, 15_360_000, 1_000_000));
        // Never more than half of what is free.
        assert!(!room_for(100, 0, 50));
        assert!(room_for(100, 0, 49));
        assert!(!room_for(0, 0, 0));
    }

    #[test]
    fn free_space_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).unwrap() > 0);
        assert!(free_space(&dir.path().join("missing")).is_err());
    }
}
