//! Maildir delivery (the Maildir specification, cr.yp.to/proto/maildir.html,
//! and Postfix `deliver_maildir`): write the message under a unique name in
//! `tmp/`, fsync it, hard-link it into `new/`, remove the `tmp/` name, fsync
//! `new/`. No lock is taken: the unique names make concurrent writers safe,
//! also on many hosts sharing the Maildir over NFS.
//!
//! Runs in the delivery child, as the recipient user: every file and
//! directory here is created with the user's credentials.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::errno;
use crate::ipc::DeliveryStatus;
use crate::logging::strerror;

/// Copy buffer: the content is streamed, never held whole (and the buffer
/// is never larger than the message).
const CHUNK: usize = 64 * 1024;

/// The parts of a unique Maildir name that one writer controls.
pub(crate) struct NameGen {
    host: String,
    pid: u32,
    counter: AtomicU64,
}

impl NameGen {
    /// Names for this process on this host (`gethostname`, not the
    /// configured mail host name, as the Maildir specification asks).
    pub(crate) fn new() -> NameGen {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        NameGen::with(&host, std::process::id())
    }

    pub(crate) fn with(host: &str, pid: u32) -> NameGen {
        NameGen {
            host: sanitize_host(host),
            pid,
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self, now: SystemTime) -> Unique<'_> {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        Unique {
            sec: since.as_secs(),
            usec: since.subsec_micros(),
            pid: self.pid,
            seq: self.counter.fetch_add(1, Ordering::Relaxed),
            host: &self.host,
        }
    }
}

impl Default for NameGen {
    fn default() -> NameGen {
        NameGen::new()
    }
}

/// `/` and `:` may not appear in a name's host part: the specification
/// writes them as `\057` and `\072`.
fn sanitize_host(host: &str) -> String {
    if host.is_empty() {
        return "localhost".into();
    }
    host.replace('/', "\\057").replace(':', "\\072")
}

/// One delivery's name: `<sec>.M<usec>P<pid>Q<seq>` plus, in `new/`,
/// `V<dev>I<ino>` of the file written, then `.<host>`.
struct Unique<'a> {
    sec: u64,
    usec: u32,
    pid: u32,
    seq: u64,
    host: &'a str,
}

impl Unique<'_> {
    /// The part both names share: `SEC.MUSECPPIDQSEQ`.
    fn stem(&self) -> String {
        let Unique {
            sec,
            usec,
            pid,
            seq,
            ..
        } = self;
        format!("{sec}.M{usec}P{pid}Q{seq}")
    }

    fn tmp_name(&self) -> String {
        format!("{}.{}", self.stem(), self.host)
    }

    fn new_name(&self, dev: u64, ino: u64) -> String {
        format!("{}V{dev:x}I{ino:x}.{}", self.stem(), self.host)
    }
}

/// How a delivery names its file in `new/`.
#[derive(Clone, Copy)]
pub(crate) struct Name<'a> {
    /// The `tmp/` name, and the `new/` name without a stem.
    pub generated: &'a NameGen,
    /// The part before `.<host>` of the name in `new/`, chosen by local
    /// from the queue ID, the arrival time and the target: a delivery made
    /// again (its first answer lost in a crash) finds the first one's file
    /// and adds no copy. Ignored unless it is a plain name part.
    pub stem: Option<&'a str>,
}

impl Name<'_> {
    /// The stem when it is usable: not empty, no `/`, no `:`, no leading
    /// dot.
    fn stem(&self) -> Option<&str> {
        self.stem
            .filter(|s| !s.is_empty() && !s.starts_with('.') && !s.contains(['/', ':', '\0']))
    }
}

/// A delivered message.
#[derive(Debug)]
pub(crate) struct Delivered {
    /// The file's name in `new/`.
    pub name: String,
    /// The file was there already: an earlier attempt delivered it.
    pub before: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum MaildirError {
    /// Creating, writing or linking the file failed (`path` is the file in
    /// `tmp/` or, for the link, in `new/`).
    #[error("create maildir file {}: {}", path.display(), strerror(source))]
    Create { path: PathBuf, source: io::Error },
    /// The content source ended early or failed: not a mailbox problem.
    #[error("message content ended after {got} of {len} bytes")]
    ShortContent { got: u64, len: u64 },
    #[error("read message content: {0}")]
    Content(io::Error),
}

impl MaildirError {
    /// Delivery status and enhanced code ([`errno::status`]); a content
    /// problem defers (4.3.0).
    pub(crate) fn status(&self) -> (DeliveryStatus, &'static str) {
        match self {
            MaildirError::Create { source, .. } => errno::status(source),
            _ => (DeliveryStatus::Deferred, "4.3.0"),
        }
    }

    /// True for `EACCES`/`EPERM`: worth the administrator's hint.
    pub(crate) fn is_access_problem(&self) -> bool {
        matches!(self, MaildirError::Create { source, .. } if errno::is_access_problem(source))
    }
}

/// Deliver `prefix` followed by exactly `len` bytes of `content` into the
/// Maildir at `maildir`, creating it (and missing parents, mode 0700) when
/// needed. On a mailbox error the rest of `content` is left unread: the
/// caller decides what to do with it.
///
/// With a stem, the name in `new/` is `<stem>.<host>` and a file of that
/// name already there is the same delivery made before: the link fails
/// with `EEXIST`, the new copy goes, and the delivery counts as made
/// (`before`). Only `new/` is looked at: a repeat after a reader moved
/// the first copy to `cur/` still adds one.
pub(crate) fn deliver(
    maildir: &Path,
    prefix: &[u8],
    content: &mut impl Read,
    len: u64,
    naming: Name<'_>,
) -> Result<Delivered, MaildirError> {
    let unique = naming.generated.next(SystemTime::now());
    let tmp_path = maildir.join("tmp").join(unique.tmp_name());
    let create = |source| MaildirError::Create {
        path: tmp_path.clone(),
        source,
    };
    let mut file = match create_exclusive(&tmp_path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_maildir(maildir).map_err(create)?;
            create_exclusive(&tmp_path).map_err(create)?
        }
        other => other.map_err(create)?,
    };
    let tmp = TmpName(&tmp_path);

    // The delivery headers and the message's first chunk in one write.
    copy_exact_after(prefix, content, len, |chunk| file.write_all(chunk)).map_err(|e| match e {
        CopyError::Write(e) => create(e),
        CopyError::Read(e) => MaildirError::Content(e),
        CopyError::Short(got) => MaildirError::ShortContent { got, len },
    })?;
    file.sync_all().map_err(create)?;
    let name = match naming.stem() {
        Some(stem) => format!("{stem}.{}", unique.host),
        None => {
            let meta = file.metadata().map_err(create)?;
            unique.new_name(meta.dev(), meta.ino())
        }
    };
    drop(file);

    let new_dir = maildir.join("new");
    let new_path = new_dir.join(&name);
    let link_err = |source| MaildirError::Create {
        path: new_path.clone(),
        source,
    };
    let linked = match link_or_rename(&tmp_path, &new_path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_maildir(maildir).map_err(link_err)?;
            link_or_rename(&tmp_path, &new_path)
        }
        other => other,
    };
    let before = match linked {
        Ok(()) => false,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && naming.stem().is_some() => true,
        Err(e) => return Err(link_err(e)),
    };
    drop(tmp);
    // Also when it was there before: the earlier attempt may have died
    // between its link and this sync.
    sync_dir(&new_dir).map_err(link_err)?;
    Ok(Delivered { name, before })
}

/// Removes the `tmp/` name however delivery ends (after a successful link
/// only the `tmp/` name goes; the file stays in `new/`).
struct TmpName<'a>(&'a Path);

impl Drop for TmpName<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

fn create_exclusive(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Create the Maildir and its parents (mode 0700) and `tmp`, `new`, `cur`.
/// A directory that exists is left as it is.
fn make_maildir(maildir: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true).mode(0o700);
    builder.create(maildir)?;
    for sub in ["tmp", "new", "cur"] {
        builder.create(maildir.join(sub))?;
    }
    sync_dir(maildir)
}

/// Hard-link as the specification asks; a file system without hard links
/// gets the equivalent atomic rename, one that does not replace a file
/// already there (`EEXIST` as from the link) where the file system can.
fn link_or_rename(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::hard_link(from, to) {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::EXDEV | libc::EOPNOTSUPP)
            ) =>
        {
            let flags = nix::fcntl::RenameFlags::RENAME_NOREPLACE;
            match nix::fcntl::renameat2(None, from, None, to, flags) {
                Err(nix::errno::Errno::EINVAL) => std::fs::rename(from, to),
                other => other.map_err(io::Error::from),
            }
        }
        other => other,
    }
}

/// Make a directory entry durable. File systems that cannot fsync a
/// directory (EINVAL) are accepted as they are.
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir)?.sync_all() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other,
    }
}

/// Why [`copy_exact`] stopped.
pub(super) enum CopyError {
    /// Reading the content failed.
    Read(io::Error),
    /// `to` failed.
    Write(io::Error),
    /// The content ended after this many bytes.
    Short(u64),
}

/// Pass exactly `len` bytes of `from` to `to`, in chunks (the content is
/// streamed, never held whole).
pub(super) fn copy_exact(
    from: &mut impl Read,
    len: u64,
    to: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<(), CopyError> {
    copy_exact_after(b"", from, len, to)
}

/// [`copy_exact`] with `prefix` in front: `to` gets it together with the
/// first chunk (one write where there were two).
fn copy_exact_after(
    prefix: &[u8],
    from: &mut impl Read,
    len: u64,
    mut to: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<(), CopyError> {
    let chunk = len.min(CHUNK as u64) as usize;
    let mut buf = Vec::with_capacity(prefix.len() + chunk);
    buf.extend_from_slice(prefix);
    let mut start = buf.len();
    buf.resize(start + chunk.max(1), 0);
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min((buf.len() - start) as u64) as usize;
        let n = match from.read(&mut buf[start..start + want]) {
            Ok(0) => return Err(CopyError::Short(done)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to(&buf[..start + n]).map_err(CopyError::Write)?;
        done += n as u64;
        start = 0;
    }
    if len == 0 && !prefix.is_empty() {
        to(prefix).map_err(CopyError::Write)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn own(names: &NameGen) -> Name<'_> {
        Name {
            generated: names,
            stem: None,
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn delivers_into_new_and_creates_the_maildir() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("a/b/Maildir/");
        let names = NameGen::with("host.example", 4242);
        let content = b"Subject: hi\n\nbody\n";
        let got = deliver(
            &md,
            b"Return-Path: <>\n",
            &mut &content[..],
            content.len() as u64,
            own(&names),
        )
        .unwrap();
        assert_eq!(files(&md.join("new")), vec![got.name.clone()]);
        assert!(files(&md.join("tmp")).is_empty());
        assert!(files(&md.join("cur")).is_empty());
        assert!(got.name.contains("P4242Q0V"), "{}", got.name);
        assert!(got.name.ends_with(".host.example"));
        let path = md.join("new").join(&got.name);
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data, b"Return-Path: <>\nSubject: hi\n\nbody\n");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.nlink(), 1);
        for d in [
            "a",
            "a/b",
            "a/b/Maildir",
            "a/b/Maildir/tmp",
            "a/b/Maildir/new",
            "a/b/Maildir/cur",
        ] {
            let mode = std::fs::metadata(dir.path().join(d))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{d}");
        }
    }

    #[test]
    fn host_names_are_sanitized() {
        let n = NameGen::with("a/b:c", 1);
        let u = n.next(SystemTime::now());
        assert!(u.tmp_name().ends_with(".a\\057b\\072c"));
        assert!(NameGen::with("", 1).host == "localhost");
    }

    #[test]
    fn short_content_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir/");
        let err = deliver(&md, b"", &mut &b"abc"[..], 10, own(&NameGen::new())).unwrap_err();
        assert!(matches!(
            err,
            MaildirError::ShortContent { got: 3, len: 10 }
        ));
        assert!(files(&md.join("tmp")).is_empty());
        assert!(files(&md.join("new")).is_empty());
    }

    #[test]
    fn a_file_in_the_way_defers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Maildir"), b"").unwrap();
        let md = dir.path().join("Maildir/");
        let err = deliver(&md, b"", &mut &b""[..], 0, own(&NameGen::new())).unwrap_err();
        assert_eq!(err.status(), (DeliveryStatus::Deferred, "4.2.0"));
        let text = err.to_string();
        assert!(text.starts_with("create maildir file "), "{text}");
        assert!(text.ends_with(": Not a directory"), "{text}");
    }

    #[test]
    fn errno_mapping() {
        let e = |n| MaildirError::Create {
            path: "/m".into(),
            source: io::Error::from_raw_os_error(n),
        };
        use DeliveryStatus::*;
        assert_eq!(e(libc::EDQUOT).status(), (Bounced, "5.2.2"));
        assert_eq!(e(libc::EFBIG).status(), (Bounced, "5.2.2"));
        assert_eq!(e(libc::ENOSPC).status(), (Deferred, "4.3.0"));
        assert_eq!(e(libc::EIO).status(), (Deferred, "4.3.0"));
        assert_eq!(e(libc::EAGAIN).status(), (Deferred, "4.2.0"));
        assert_eq!(e(libc::ESTALE).status(), (Deferred, "4.2.0"));
        assert_eq!(e(libc::EACCES).status(), (Deferred, "4.2.0"));
        assert!(e(libc::EACCES).is_access_problem());
        assert_eq!(
            e(libc::EACCES).to_string(),
            "create maildir file /m: Permission denied"
        );
    }

    #[test]
    fn twenty_mib_streams_through() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir/");
        let len: u64 = 20 << 20;
        // A reader that makes the content on the fly: nothing holds it whole.
        let mut content = io::repeat(b'x').take(len);
        let got = deliver(&md, b"P\n", &mut content, len, own(&NameGen::new())).unwrap();
        let path = md.join("new").join(got.name);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len + 2);
        let mut f = File::open(&path).unwrap();
        let mut head = [0u8; 4];
        f.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"P\nxx");
    }

    #[test]
    fn parallel_names_are_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir/");
        let names = NameGen::new();
        let all: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (0..40)
                            .map(|_| {
                                deliver(&md, b"", &mut &b"m\n"[..], 2, own(&names))
                                    .unwrap()
                                    .name
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), 320);
        assert_eq!(files(&md.join("new")).len(), 320);
        assert!(files(&md.join("tmp")).is_empty());
    }

    #[test]
    fn a_delivery_made_again_under_its_stem_adds_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir/");
        let (first, second) = (NameGen::with("h", 1), NameGen::with("h", 2));
        let stem = |names| Name {
            generated: names,
            stem: Some("1700000000.M5Q0000000000001AT0badcafe"),
        };
        let got = deliver(&md, b"", &mut &b"m\n"[..], 2, stem(&first)).unwrap();
        assert_eq!(got.name, "1700000000.M5Q0000000000001AT0badcafe.h");
        assert!(!got.before);
        // Another process (the first one's answer lost) delivers again.
        let again = deliver(&md, b"", &mut &b"m\n"[..], 2, stem(&second)).unwrap();
        assert_eq!(again.name, got.name);
        assert!(again.before);
        assert_eq!(files(&md.join("new")), vec![got.name]);
        assert!(files(&md.join("tmp")).is_empty());
        // A stem that is not a plain name part is not used.
        for bad in ["", ".x", "a/b", "a:b"] {
            let naming = Name {
                generated: &first,
                stem: Some(bad),
            };
            let got = deliver(&md, b"", &mut &b"m\n"[..], 2, naming).unwrap();
            assert!(got.name.contains("P1Q"), "{bad}: {}", got.name);
        }
    }
}
