//! `/file` delivery (Postfix `local/file.c`): append the message in mbox
//! format to a file named in an alias or a `.forward`, in the delivery
//! child, as the user the agent chose.
//!
//! * A regular file (created, mode 0600, when missing) gets what a mailbox
//!   gets ([`super::mbox`]): the `From ` line, `Return-Path:`,
//!   `Delivered-To:`, the message with `>From ` quoting and an empty line,
//!   under a dot-lock and an `fcntl` lock, truncated back on failure. The
//!   file need not be the user's (only writable by the user), and the
//!   dot-lock may be impossible to make (a directory the user cannot
//!   write): then the `fcntl` lock alone is taken, as in Postfix.
//! * A file with an execute bit bounces `5.7.1`.
//! * A character device (`/dev/null`) is written to without locks.
//! * A path ending in `/` is a Maildir; the worker sends it to
//!   `super::maildir`.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::lock::LockPolicy;
use super::mbox::{self, MboxError, Rules};

/// Append the message to the file at `path` (see the module
/// documentation). On an error the rest of `content` is left unread.
pub(crate) fn deliver(
    path: &Path,
    envelope: &[u8],
    content: &mut impl Read,
    len: u64,
    policy: &LockPolicy,
    notes: &mut Vec<String>,
) -> Result<(), MboxError> {
    let is_device = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device());
    if is_device {
        return to_device(path, envelope, content, len);
    }
    mbox::deliver_with(path, &Rules::file(), envelope, content, len, policy, notes).map(|_| ())
}

/// A device gets the mbox form too, without locks, fsync or truncation.
fn to_device(
    path: &Path,
    envelope: &[u8],
    content: &mut impl Read,
    len: u64,
) -> Result<(), MboxError> {
    let file = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(MboxError::Open)?;
    mbox::append(&file, envelope, content, len)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn policy() -> LockPolicy {
        LockPolicy {
            attempts: 2,
            delay: std::time::Duration::from_millis(10),
            ..LockPolicy::default()
        }
    }

    fn put(path: &Path, message: &[u8]) -> Result<(), MboxError> {
        let mut notes = Vec::new();
        let envelope = b"From a@b  Thu Jan  1 00:00:00 1970\nReturn-Path: <a@b>\n";
        deliver(
            path,
            envelope,
            &mut &message[..],
            message.len() as u64,
            &policy(),
            &mut notes,
        )
    }

    #[test]
    fn appends_in_mbox_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive");
        put(&path, b"Subject: 1\n\nFrom here\n").unwrap();
        put(&path, b"Subject: 2\n\nno newline").unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"From a@b  Thu Jan  1 00:00:00 1970\nReturn-Path: <a@b>\nSubject: 1\n\n>From here\n\n\
              From a@b  Thu Jan  1 00:00:00 1970\nReturn-Path: <a@b>\nSubject: 2\n\nno newline\n\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.path().join("archive.lock").exists());
    }

    #[test]
    fn executable_files_bounce() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prog");
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = put(&path, b"x\n").unwrap_err();
        assert!(matches!(e, MboxError::Executable(_)), "{e:?}");
        assert_eq!(e.status(), (crate::ipc::DeliveryStatus::Bounced, "5.7.1"));
        assert_eq!(e.to_string(), "file is executable");
        assert_eq!(std::fs::read(&path).unwrap(), b"#!/bin/sh\n");
    }

    #[test]
    fn devices_and_directories() {
        put(Path::new("/dev/null"), b"Subject: x\n\nhi\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = put(dir.path(), b"x\n").unwrap_err();
        assert!(matches!(e, MboxError::NotRegular(_)), "{e:?}");
    }

    #[test]
    fn a_file_of_another_owner_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared");
        std::fs::write(&path, b"").unwrap();
        // Owned by someone else: only writability counts (root can write
        // it anyway; as another user this shows the missing owner check).
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        }
        put(&path, b"x\n").unwrap();
        assert!(std::fs::read(&path).unwrap().ends_with(b"x\n\n"));
    }
}
