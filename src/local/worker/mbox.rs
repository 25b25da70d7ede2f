//! mbox delivery (Postfix `deliver_mailbox_file`, `mbox_open`, and
//! `mail_copy` with `MAIL_COPY_MBOX`): append the message to one file that
//! holds all of a user's mail, each message opened by a `From ` line.
//!
//! 1. A mailbox that exists must be a regular file (`/dev/null` is never
//!    locked or opened for writing).
//! 2. Dot-lock `<mailbox>.lock`, then open (creating it, mode 0600, when
//!    missing) with `O_APPEND`, then take an `fcntl` lock: the order and
//!    the waits of Postfix on Linux ([`super::lock`]). The dot-lock is
//!    always removed afterwards.
//! 3. Checks on the open file, as Postfix `safe_open` and
//!    `strict_mailbox_ownership = yes`: a regular file with one link, not a
//!    symbolic link (unless root's, in a directory only root may change),
//!    owned by the recipient.
//! 4. Write the `From ` line ([`from_line`]), the delivery headers and the
//!    message with every line that begins `From ` quoted as `>From `
//!    ([`FromQuoter`]), then an empty line; fsync.
//! 5. Any error while writing (the disk full, the quota, the content source
//!    failing) truncates the file back to its size before, so a failed
//!    delivery never leaves part of a message behind.
//!
//! Runs in the delivery child, as the recipient user.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;

use super::errno;
use super::lock::{DotLock, LockPolicy, lock_exclusive};
use super::maildir::{CopyError, copy_exact};
use crate::ipc::DeliveryStatus;
use crate::logging::strerror;

/// The form of a body line that must be quoted.
const FROM_: &[u8] = b"From ";

/// A delivered message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    /// Where its `From ` line starts in the mailbox (Postfix's biff offset).
    pub offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum MboxError {
    #[error("destination {} is not a regular file", .0.display())]
    NotRegular(PathBuf),
    #[error("destination {} is not owned by recipient", .0.display())]
    NotOwned(PathBuf),
    #[error("cannot lock mailbox: unable to create lock file {}: {}", path.display(), strerror(source))]
    DotLock { path: PathBuf, source: io::Error },
    #[error("cannot lock mailbox: unable to lock for exclusive access: {}", strerror(.0))]
    Lock(io::Error),
    #[error("cannot open file: {}", strerror(.0))]
    Open(io::Error),
    /// A link or a file that changed under us (Postfix `safe_open`).
    #[error("{0}")]
    Unsafe(String),
    #[error("error writing message: {}", strerror(.0))]
    Write(io::Error),
    /// The content source ended early or failed: not a mailbox problem.
    #[error("message content ended after {got} of {len} bytes")]
    ShortContent { got: u64, len: u64 },
    #[error("read message content: {0}")]
    Content(io::Error),
    /// A `/file` delivery to a file with an execute bit (Postfix refuses
    /// to feed programs).
    #[error("file is executable")]
    Executable(PathBuf),
}

impl MboxError {
    /// Delivery status and enhanced code: errno as [`errno::status`]; a
    /// destination that is no file bounces (5.2.0), an executable one
    /// 5.7.1; a mailbox held locked by
    /// someone else, of another owner, or reached through a link defers
    /// (4.2.0).
    pub(crate) fn status(&self) -> (DeliveryStatus, &'static str) {
        match self {
            MboxError::NotRegular(_) => (DeliveryStatus::Bounced, "5.2.0"),
            MboxError::Executable(_) => (DeliveryStatus::Bounced, "5.7.1"),
            MboxError::NotOwned(_) | MboxError::Unsafe(_) => (DeliveryStatus::Deferred, "4.2.0"),
            MboxError::DotLock { source, .. } if source.kind() == io::ErrorKind::AlreadyExists => {
                (DeliveryStatus::Deferred, "4.2.0")
            }
            MboxError::DotLock { source, .. }
            | MboxError::Lock(source)
            | MboxError::Open(source)
            | MboxError::Write(source) => errno::status(source),
            MboxError::ShortContent { .. } | MboxError::Content(_) => {
                (DeliveryStatus::Deferred, "4.3.0")
            }
        }
    }

    /// True for `EACCES`/`EPERM` on the lock file or the mailbox.
    pub(crate) fn is_access_problem(&self) -> bool {
        match self {
            MboxError::DotLock { source, .. } | MboxError::Open(source) => {
                errno::is_access_problem(source)
            }
            _ => false,
        }
    }
}

/// What an mbox delivery insists on beside the common checks (a regular
/// file with one link, no untrusted symbolic link).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rules {
    /// The file must belong to this uid (`strict_mailbox_ownership`):
    /// a user's mailbox. `None` for `/file` deliveries.
    pub owner: Option<u32>,
    /// Go on without the dot-lock when it cannot be made for any reason
    /// other than someone holding it (Postfix `MBOX_DOT_LOCK_MAY_FAIL`, for
    /// `/file` deliveries: the file's directory need not be writable).
    pub dotlock_may_fail: bool,
    /// Refuse a file with an execute bit (`/file` deliveries).
    pub refuse_executable: bool,
}

impl Rules {
    /// A user's mailbox, which `owner` must own.
    pub(crate) fn mailbox(owner: u32) -> Rules {
        Rules {
            owner: Some(owner),
            dotlock_may_fail: false,
            refuse_executable: false,
        }
    }

    /// A `/file` from an alias or a `.forward`.
    pub(crate) fn file() -> Rules {
        Rules {
            owner: None,
            dotlock_may_fail: true,
            refuse_executable: true,
        }
    }
}

/// Append `envelope` (the `From ` line and the delivery headers) and the
/// `len` bytes of `content`, quoted, to the mbox at `path`, which must be
/// owned by `owner`. Things the administrator should hear about (a stale
/// lock broken, a failed truncation) are added to `notes`. On a mailbox
/// error the rest of `content` is left unread.
pub(crate) fn deliver(
    path: &Path,
    owner: u32,
    envelope: &[u8],
    content: &mut impl Read,
    len: u64,
    policy: &LockPolicy,
    notes: &mut Vec<String>,
) -> Result<Appended, MboxError> {
    let rules = Rules::mailbox(owner);
    deliver_with(path, &rules, envelope, content, len, policy, notes)
}

/// [`deliver`] under the given [`Rules`].
pub(crate) fn deliver_with(
    path: &Path,
    rules: &Rules,
    envelope: &[u8],
    content: &mut impl Read,
    len: u64,
    policy: &LockPolicy,
    notes: &mut Vec<String>,
) -> Result<Appended, MboxError> {
    // Postfix dot-locks only regular files and mailboxes yet to be made;
    // nothing is opened through someone's link.
    if let Ok(link) = std::fs::symlink_metadata(path) {
        trusted_link(path, &link)?;
    }
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        return Err(MboxError::NotRegular(path.into()));
    }
    let dotlock = match DotLock::acquire(path, policy, notes) {
        Ok(lock) => Some(lock),
        Err((_, source))
            if rules.dotlock_may_fail && source.kind() != io::ErrorKind::AlreadyExists =>
        {
            None
        }
        Err((path, source)) => return Err(MboxError::DotLock { path, source }),
    };
    let file = open(path)?;
    let meta = file.metadata().map_err(MboxError::Open)?;
    if rules.owner.is_some_and(|owner| meta.uid() != owner) {
        return Err(MboxError::NotOwned(path.into()));
    }
    if rules.refuse_executable && meta.mode() & 0o111 != 0 {
        return Err(MboxError::Executable(path.into()));
    }
    lock_exclusive(&file, policy).map_err(MboxError::Lock)?;
    // The status again, under the lock: a mailbox that a reader replaced
    // (renamed away or removed) while we waited is no longer the mailbox.
    let meta = file.metadata().map_err(MboxError::Open)?;
    if meta.nlink() != 1 {
        return Err(MboxError::Unsafe(
            "target file status changed unexpectedly".into(),
        ));
    }
    let start = meta.len();
    let written = append(&file, envelope, content, len)
        .and_then(|()| file.sync_all().map_err(MboxError::Write));
    if let Err(e) = written {
        if let Err(t) = file.set_len(start) {
            notes.push(format!(
                "cannot truncate {} back to {start} bytes after a failed delivery: {t}",
                path.display()
            ));
        }
        return Err(e);
    }
    drop(file);
    if let Some(dotlock) = dotlock {
        dotlock.release(notes);
    }
    Ok(Appended { offset: start })
}

/// Open the mailbox for appending, creating it (mode 0600) when missing,
/// with Postfix `safe_open`'s checks. Non-blocking, so a FIFO put in its
/// place cannot hang the delivery.
fn open(path: &Path) -> Result<File, MboxError> {
    // Twice: the mailbox may be created by someone else between the tries.
    for _ in 0..2 {
        if let Some(file) = open_existing(path)? {
            return Ok(file);
        }
        // O_EXCL: never follows a link, not even a dangling one.
        let created = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
        match created {
            Ok(file) => return Ok(file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(MboxError::Open(e)),
        }
    }
    Err(MboxError::Unsafe("file status changed unexpectedly".into()))
}

/// The existing mailbox, or `None` when there is none.
fn open_existing(path: &Path) -> Result<Option<File>, MboxError> {
    let opened = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            return Err(MboxError::NotRegular(path.into()));
        }
        Err(e) => return Err(MboxError::Open(e)),
    };
    // What was opened must be what the name holds now, or a link that
    // root made where only root may write.
    let meta = file.metadata().map_err(MboxError::Open)?;
    let changed = || MboxError::Unsafe("file status changed unexpectedly".into());
    let link = std::fs::symlink_metadata(path).map_err(|_| changed())?;
    trusted_link(path, &link)?;
    if !link.file_type().is_symlink() && (link.dev(), link.ino()) != (meta.dev(), meta.ino()) {
        return Err(changed());
    }
    if !meta.is_file() {
        return Err(MboxError::NotRegular(path.into()));
    }
    // A hard link could lure the user into writing some other file.
    if meta.nlink() != 1 {
        return Err(MboxError::Unsafe(format!(
            "file has {} hard links",
            meta.nlink()
        )));
    }
    Ok(Some(file))
}

/// `Ok` unless `link` (the `lstat` of `path`) is a symbolic link that
/// someone other than root made, or that lies where others may write.
fn trusted_link(path: &Path, link: &std::fs::Metadata) -> Result<(), MboxError> {
    if link.file_type().is_symlink() && (link.uid() != 0 || !only_root_may_change(path)) {
        return Err(MboxError::Unsafe("file is a symbolic link".into()));
    }
    Ok(())
}

/// Is the directory holding `path` root's and writable by root alone? Only
/// there is a (root's) symbolic link mailbox trusted.
fn only_root_may_change(path: &Path) -> bool {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::metadata(parent).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o022 == 0)
}

/// Write the envelope and the quoted message; the file is truncated by the
/// caller on error.
pub(super) fn append(
    file: &File,
    envelope: &[u8],
    content: &mut impl Read,
    len: u64,
) -> Result<(), MboxError> {
    let mut out = file;
    out.write_all(envelope).map_err(MboxError::Write)?;
    let mut quoter = FromQuoter::default();
    let mut quoted = Vec::new();
    copy_exact(content, len, |chunk| {
        quoted.clear();
        quoter.feed(chunk, &mut quoted);
        out.write_all(&quoted)
    })
    .map_err(|e| match e {
        CopyError::Write(e) => MboxError::Write(e),
        CopyError::Read(e) => MboxError::Content(e),
        CopyError::Short(got) => MboxError::ShortContent { got, len },
    })?;
    quoted.clear();
    quoter.finish(&mut quoted);
    out.write_all(&quoted).map_err(MboxError::Write)
}

/// `From <sender>  <asctime>` and LF: the null sender as `MAILER-DAEMON`,
/// two spaces, then `when` (local time) as C's `asctime`,
/// `Www Mmm dd hh:mm:ss yyyy` with the day padded by a space. The sender
/// is stored in its quoted form already; control characters, which no
/// valid address holds, become `?`.
pub(crate) fn from_line(sender: &str, when: NaiveDateTime) -> Vec<u8> {
    let sender = if sender.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        sender
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    format!("From {sender}  {}\n", when.format("%a %b %e %H:%M:%S %Y")).into_bytes()
}

/// Quotes a message for mbox, in any chunks: a line that begins exactly
/// with `From ` gets a `>` in front (`>From ` and `From` without the space
/// are left alone, as in Postfix); [`finish`](Self::finish) ends a last
/// line that lacks its LF and adds the empty line that separates messages.
#[derive(Debug)]
pub(crate) struct FromQuoter {
    /// The last byte seen ended a line (or nothing was seen yet).
    at_line_start: bool,
    /// Bytes of `From ` matched at the start of the current line and held
    /// back until the rest of the line shows whether they need the `>`.
    held: usize,
}

impl Default for FromQuoter {
    fn default() -> FromQuoter {
        FromQuoter {
            at_line_start: true,
            held: 0,
        }
    }
}

impl FromQuoter {
    /// Quote `input`, appending the result to `out`.
    pub(crate) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            if self.at_line_start {
                let want = &FROM_[self.held..];
                let same = want.iter().zip(input).take_while(|(a, b)| a == b).count();
                if same == want.len() {
                    out.push(b'>');
                    out.extend_from_slice(FROM_);
                    (self.at_line_start, self.held) = (false, 0);
                    input = &input[same..];
                    continue;
                }
                if same == input.len() {
                    self.held += same;
                    return;
                }
                out.extend_from_slice(&FROM_[..self.held + same]);
                (self.at_line_start, self.held) = (false, 0);
                input = &input[same..];
            }
            match input.iter().position(|&c| c == b'\n') {
                Some(end) => {
                    out.extend_from_slice(&input[..=end]);
                    self.at_line_start = true;
                    input = &input[end + 1..];
                }
                None => {
                    out.extend_from_slice(input);
                    input = &[];
                }
            }
        }
    }

    /// The end of the message: what was held back, a LF when the last line
    /// lacked one, and the empty line.
    pub(crate) fn finish(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&FROM_[..self.held]);
        if !self.at_line_start || self.held > 0 {
            out.push(b'\n');
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
#[path = "mbox_tests.rs"]
mod tests;
