//! pickup: smtpd takes in the files `sendmail` left in the drop directory
//! (`<queue>/maildrop`, see [`crate::maildrop`]) while nothing answered
//! on `submit.sock`, as Postfix's pickup does with its maildrop.
//!
//! The directory is read at start and then every second. Each `d…` file
//! is opened with `O_NOFOLLOW|O_NONBLOCK` and judged by `fstat` on that
//! descriptor: a regular file with one link, in the drop directory's
//! group, no larger than `smtpd.message_size_limit` plus the envelope.
//! Its owner (`st_uid`) is the submitter; nothing in the file can say
//! otherwise. The file's envelope is read by the strict parser, then the
//! message is submitted through exactly the path of a `submit.sock`
//! session: an SMTP session ([`super::session::serve`] with
//! [`Peer::Local`] and that uid) over an in-memory stream, so
//! `smtpd.authorized_submit_users`, `smtpd.sender_override_users`, the
//! size and space checks, the header and body checks, the `Received: by
//! HOST (postern, from userid N)` header and the `ID: uid=N from=<…>`
//! line are those of the socket, not copies of them. The file is removed
//! only after the `250`, which smtpd gives after the group commit.
//!
//! What does not pass is moved to `<queue>/maildrop-bad` with a warning
//! naming the file, its owner and why, and never delivered: anything that
//! is not a regular file with one link (a symbolic link, a hard link, a
//! FIFO, a directory), a file in another group or too large, a malformed
//! envelope, a name `sendmail` does not make, a sender or submitter the
//! checks refuse (5xx). A temporary refusal (4xx: the queue's file system
//! is full, a table cannot be read) keeps the file and tries again after
//! `queue.minimal_backoff`, doubling up to `queue.maximal_backoff`; a file
//! still refused after `queue.maximal_lifetime` is moved aside. A
//! recipient refused for good (an unknown local user) is logged, and the
//! message goes to the others. A file shorter than its envelope says, or
//! not yet readable, is being written: it is left alone for an hour, then
//! moved aside; a `t…` file (sendmail's name while writing) older than an
//! hour is removed. An exclusive `flock` on the open file keeps a second
//! smtpd on the same queue from taking it twice.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::Shared;
use super::session::{self, Peer};
use crate::maildrop::{self, Head, Name};
use crate::wire::data::DataWriter;

/// How often the directory is read.
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// A file still being written after this long never will be.
const STALE: Duration = Duration::from_secs(3600);
/// The longest wait for one reply from the session (which has its own
/// timeouts; this only guards against a session that hangs).
const REPLY_TIMEOUT: Duration = Duration::from_secs(600);
/// Content is streamed to the session in pieces of this size.
const CHUNK: usize = 64 * 1024;

/// Take files from `<queue>/maildrop` until `stop` turns true; the file
/// at hand is finished first.
pub(super) async fn run(shared: Arc<Shared>, queue: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut pickup = Pickup {
        shared,
        dir: queue.join(maildrop::DIR),
        bad: queue.join(maildrop::BAD_DIR),
        retry: HashMap::new(),
        reported: HashSet::new(),
        dir_error: None,
    };
    loop {
        pickup.scan(&stop).await;
        tokio::select! {
            _ = tokio::time::sleep(SCAN_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

struct Pickup {
    shared: Arc<Shared>,
    dir: PathBuf,
    bad: PathBuf,
    /// Files refused for now: when to try again, and the next delay.
    retry: HashMap<OsString, (Instant, Duration)>,
    /// Entries already reported as impossible to move (by inode), so
    /// that they are logged once, not every second.
    reported: HashSet<(u64, u64)>,
    /// The last error reading the directory (logged when it changes).
    dir_error: Option<String>,
}

/// A file that passed the checks on its descriptor, locked.
struct Taken {
    file: Flock<File>,
    uid: u32,
    envelope: maildrop::Envelope,
    offset: u64,
    ino: (u64, u64),
    ctime: SystemTime,
}

/// What became of one file.
enum Outcome {
    /// Queued, with the recipients refused for good (and why).
    Queued {
        id: String,
        refused: Vec<(String, String)>,
    },
    /// Refused for good: moved aside.
    Refused(String),
    /// Refused for now: tried again later.
    Deferred(String),
}

impl Pickup {
    async fn scan(&mut self, stop: &watch::Receiver<bool>) {
        let (names, dir_gid) = match read_dir(&self.dir) {
            Ok(found) => {
                self.dir_error = None;
                found
            }
            Err(e) => {
                let text = e.to_string();
                if self.dir_error.as_ref() != Some(&text) {
                    log::warn!(
                        "cannot read the drop directory {}: {text}; mail left there by sendmail waits",
                        self.dir.display()
                    );
                    self.dir_error = Some(text);
                }
                return;
            }
        };
        let present: HashSet<&OsString> = names.iter().collect();
        self.retry.retain(|n, _| present.contains(n));
        let mut seen = HashSet::new();
        for name in &names {
            if *stop.borrow() {
                break;
            }
            if let Ok(m) = std::fs::symlink_metadata(self.dir.join(name)) {
                let ino = (m.dev(), m.ino());
                seen.insert(ino);
                // Refused, and could not be moved aside: said once.
                if self.reported.contains(&ino) {
                    continue;
                }
            }
            match maildrop::classify(name.as_bytes()) {
                Name::Ready => self.take(name, dir_gid).await,
                Name::Temporary => self.stale_temporary(name),
                Name::Other => self.quarantine(name, None, "a name sendmail does not make"),
            }
        }
        self.reported.retain(|i| seen.contains(i));
    }

    /// One `d…` file: check it, submit it, remove it or move it aside.
    async fn take(&mut self, name: &OsStr, dir_gid: u32) {
        if self
            .retry
            .get(name)
            .is_some_and(|(when, _)| Instant::now() < *when)
        {
            return;
        }
        let config = self.shared.current().0;
        let limit = maildrop::file_limit(config.smtpd.message_size_limit);
        let taken = match open(&self.dir, name, dir_gid, limit) {
            Ok(Some(t)) => t,
            Ok(None) => return,
            Err(reason) => return self.quarantine(name, None, &reason),
        };
        let (uid, ino) = (taken.uid, taken.ino);
        let outcome = self.submit(&taken).await;
        let shown = maildrop::printable_name(name.as_bytes());
        match outcome {
            Outcome::Queued { id, refused } => {
                for (rcpt, reply) in refused {
                    log::warn!(
                        queue_id = id.as_str();
                        "{id}: maildrop/{shown}: uid={uid}: recipient <{rcpt}> refused: {reply}; queued for the other recipients"
                    );
                }
                // The name still holds the file that was queued (its
                // owner may have renamed it meanwhile): remove it.
                let path = self.dir.join(name);
                let same =
                    std::fs::symlink_metadata(&path).is_ok_and(|m| (m.dev(), m.ino()) == ino);
                let removed = same && std::fs::remove_file(&path).is_ok();
                drop(taken);
                self.retry.remove(name);
                log::info!(
                    queue_id = id.as_str();
                    "{id}: maildrop/{shown}: uid={uid}: queued{}",
                    if removed { "" } else { "; the file was not removed" }
                );
            }
            Outcome::Refused(reason) => {
                drop(taken);
                self.retry.remove(name);
                self.quarantine(name, Some(ino), &reason);
            }
            Outcome::Deferred(reason) => {
                let lifetime = config.queue.maximal_lifetime;
                let age = SystemTime::now()
                    .duration_since(taken.ctime)
                    .unwrap_or_default();
                drop(taken);
                if age > lifetime {
                    self.retry.remove(name);
                    let why = format!(
                        "{reason}; still not accepted after {}s (queue.maximal_lifetime)",
                        age.as_secs()
                    );
                    return self.quarantine(name, Some(ino), &why);
                }
                let delay = match self.retry.get(name) {
                    Some((_, d)) => (*d * 2).min(config.queue.maximal_backoff),
                    None => config.queue.minimal_backoff,
                };
                self.retry
                    .insert(name.to_os_string(), (Instant::now() + delay, delay));
                log::warn!(
                    "maildrop/{shown}: uid={uid}: {reason}; trying again in {}s",
                    delay.as_secs()
                );
            }
        }
    }

    /// Submit through a `submit.sock` session with the file owner's uid.
    async fn submit(&self, taken: &Taken) -> Outcome {
        let content = match taken.file.try_clone() {
            Ok(f) => tokio::fs::File::from_std(f),
            Err(e) => return Outcome::Deferred(format!("cannot read the file: {e}")),
        };
        let (client, server) = tokio::io::duplex(CHUNK);
        let ticket = self.shared.conns.admit_local();
        // The session is not cut short by a shutdown: the pickup stops
        // between files, and waits for this one.
        let (_keep, never) = watch::channel(false);
        let peer = Peer::Local { uid: taken.uid };
        let (outcome, ()) = tokio::join!(
            dialogue(client, &taken.envelope, content, taken.offset),
            session::serve(server, peer, self.shared.clone(), ticket, never),
        );
        outcome
    }

    /// A `t…` file older than an hour: a `sendmail` that never finished.
    fn stale_temporary(&mut self, name: &OsStr) {
        let path = self.dir.join(name);
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            return;
        };
        if age(&m) <= STALE {
            return;
        }
        if m.is_dir() {
            return self.quarantine(name, None, "a directory");
        }
        if std::fs::remove_file(&path).is_ok() {
            log::info!(
                "maildrop/{}: uid={}: removed: a temporary file left for more than an hour (a sendmail that did not finish)",
                maildrop::printable_name(name.as_bytes()),
                m.uid()
            );
        }
    }

    /// Move an entry to `maildrop-bad/` (never delivered), with a warning.
    /// `ino`: only if the name still holds that file.
    fn quarantine(&mut self, name: &OsStr, ino: Option<(u64, u64)>, reason: &str) {
        let from = self.dir.join(name);
        let Ok(m) = std::fs::symlink_metadata(&from) else {
            return;
        };
        let here = (m.dev(), m.ino());
        if ino.is_some_and(|i| i != here) || self.reported.contains(&here) {
            return;
        }
        let shown = maildrop::printable_name(name.as_bytes());
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let safe: String = name
            .as_bytes()
            .iter()
            .take(100)
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
                    char::from(*b)
                } else {
                    '_'
                }
            })
            .collect();
        let mut last = None;
        for n in 0..10 {
            let target = match n {
                0 => format!("{stamp}.{safe}"),
                n => format!("{stamp}.{safe}.{n}"),
            };
            match nix::fcntl::renameat2(
                None,
                &from,
                None,
                &self.bad.join(&target),
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            ) {
                Ok(()) => {
                    log::warn!(
                        "maildrop/{shown}: uid={}: {reason}; moved to {}/{target}, not delivered",
                        m.uid(),
                        maildrop::BAD_DIR
                    );
                    return;
                }
                Err(nix::errno::Errno::EEXIST) => continue,
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        // A directory of another user cannot be moved (its ".." would
        // change): an empty one is removed.
        if m.is_dir() && std::fs::remove_dir(&from).is_ok() {
            log::warn!(
                "maildrop/{shown}: uid={}: {reason}; removed, not delivered",
                m.uid()
            );
            return;
        }
        self.reported.insert(here);
        log::error!(
            "maildrop/{shown}: uid={}: {reason}; cannot move it to {}: {}; left where it is, not delivered",
            m.uid(),
            self.bad.display(),
            last.map_or_else(|| "no free name".to_string(), |e| e.desc().to_string())
        );
    }
}

/// Open and check a `d…` file: `Ok(None)` when it is not ready yet
/// (or gone, or taken by another smtpd), `Err` with the reason when it
/// must be moved aside.
fn open(dir: &Path, name: &OsStr, dir_gid: u32, limit: u64) -> Result<Option<Taken>, String> {
    let path = dir.join(name);
    let first = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    if !first.file_type().is_file() {
        return Err(format!("not a regular file ({})", kind(&first)));
    }
    let stale = age(&first) > STALE;
    // Not finished yet (or smtpd's own trouble: out of descriptors, an
    // I/O error): tried again at the next scan, moved aside after an hour.
    let not_yet = |what: String| if stale { Err(what) } else { Ok(None) };
    let trouble = |what: String| {
        log::warn!(
            "maildrop/{}: {what}; trying again",
            maildrop::printable_name(name.as_bytes())
        );
        not_yet(what)
    };
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err("not a regular file (a symbolic link)".into());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // Its owner may still be setting its mode.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return not_yet(format!("cannot be opened: {e}"));
        }
        Err(e) => return trouble(format!("cannot be opened: {e}")),
    };
    // Judged by the descriptor, whatever the name points to now.
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return trouble(format!("fstat: {e}")),
    };
    if !meta.file_type().is_file() {
        return Err(format!("not a regular file ({})", kind(&meta)));
    }
    if meta.nlink() != 1 {
        return Err(format!("{} links to it (a hard link)", meta.nlink()));
    }
    if meta.gid() != dir_gid {
        return Err(format!(
            "group {}, not the drop directory's group {dir_gid}",
            meta.gid()
        ));
    }
    if meta.len() > limit {
        return Err(format!(
            "{} bytes, more than the {limit} a drop file may have (smtpd.message_size_limit and the envelope)",
            meta.len()
        ));
    }
    let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(f) => f,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
        Err((_, e)) => return trouble(format!("cannot be locked: {e}")),
    };
    let mut head = Vec::new();
    let want = meta.len().min(maildrop::MAX_HEAD as u64);
    if let Err(e) = (&*file).take(want).read_to_end(&mut head) {
        return trouble(format!("cannot be read: {e}"));
    }
    let (envelope, offset) = match maildrop::parse_head(&head) {
        Err(e) => return Err(format!("malformed: {e}")),
        Ok(Head::Incomplete) => {
            return not_yet("incomplete: the envelope never ended".into());
        }
        Ok(Head::Complete { envelope, offset }) => (envelope, offset as u64),
    };
    let total = offset.saturating_add(envelope.size);
    if meta.len() < total {
        return not_yet(format!("incomplete: {} of {total} bytes", meta.len()));
    }
    if meta.len() > total {
        return Err(format!(
            "malformed: {} bytes, {total} by its size line",
            meta.len()
        ));
    }
    Ok(Some(Taken {
        file,
        uid: meta.uid(),
        envelope,
        offset,
        ino: (meta.dev(), meta.ino()),
        ctime: ctime(&meta),
    }))
}

/// The names in the drop directory, and its group.
fn read_dir(dir: &Path) -> std::io::Result<(Vec<OsString>, u32)> {
    let gid = std::fs::metadata(dir)?.gid();
    let names = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    Ok((names, gid))
}

/// Since the inode last changed (its owner cannot set that time back).
fn age(m: &Metadata) -> Duration {
    SystemTime::now()
        .duration_since(ctime(m))
        .unwrap_or_default()
}

fn ctime(m: &Metadata) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(m.ctime()).unwrap_or(0))
}

/// What kind of entry, for the log.
fn kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// The client's side of the session: what `sendmail` would say on
/// `submit.sock` for this envelope (plus SIZE), one command at a time.
async fn dialogue<S>(
    stream: S,
    envelope: &maildrop::Envelope,
    mut content: tokio::fs::File,
    offset: u64,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (rd, wr) = tokio::io::split(stream);
    let mut c = Client {
        rd: BufReader::new(rd),
        wr,
    };
    let result = async {
        c.expect(None, 220).await?;
        c.expect(Some("EHLO localhost".into()), 250).await?;
        let mail = envelope.mail_command(Some(envelope.size));
        c.expect(Some(mail), 250).await?;
        let mut accepted = 0;
        let mut refused = Vec::new();
        for rcpt in &envelope.recipients {
            match c.expect(Some(envelope.rcpt_command(rcpt)), 250).await {
                Ok(_) => accepted += 1,
                Err(Outcome::Refused(reply)) => refused.push((rcpt.clone(), reply)),
                Err(other) => return Err(other),
            }
        }
        if accepted == 0 {
            let all: Vec<String> = refused
                .iter()
                .map(|(r, why)| format!("<{r}>: {why}"))
                .collect();
            return Err(Outcome::Refused(format!(
                "no recipient accepted: {}",
                all.join("; ")
            )));
        }
        c.expect(Some("DATA".into()), 354).await?;
        use std::io::SeekFrom;
        use tokio::io::AsyncSeekExt;
        content
            .seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| Outcome::Deferred(format!("cannot read the file: {e}")))?;
        let mut writer = DataWriter::new();
        let mut left = envelope.size;
        let mut chunk = vec![0u8; CHUNK];
        let mut wire = Vec::with_capacity(CHUNK + CHUNK / 8);
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
            let n = content
                .read(&mut chunk[..want])
                .await
                .map_err(|e| Outcome::Deferred(format!("cannot read the file: {e}")))?;
            if n == 0 {
                return Err(Outcome::Deferred("the file got shorter".into()));
            }
            left -= n as u64;
            wire.clear();
            writer.write(&chunk[..n], &mut wire);
            c.send(&wire).await?;
        }
        wire.clear();
        writer.finish(&mut wire);
        c.send(&wire).await?;
        let reply = c.expect(None, 250).await?;
        let id = reply
            .split_once("queued as ")
            .map_or("NOQUEUE", |(_, id)| id.trim())
            .to_string();
        Ok(Outcome::Queued { id, refused })
    }
    .await;
    let outcome = match result {
        Ok(o) => o,
        Err(o) => {
            let _ = c.send(b"RSET\r\n").await;
            o
        }
    };
    let _ = c.send(b"QUIT\r\n").await;
    let _ = tokio::time::timeout(Duration::from_secs(5), c.reply()).await;
    outcome
}

struct Client<R, W> {
    rd: BufReader<R>,
    wr: W,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Client<R, W> {
    /// Send `line` (if any) and read the reply: `Ok(text)` when its code
    /// is `ok` (any 2xx for 250), else the outcome it means.
    async fn expect(&mut self, line: Option<String>, ok: u16) -> Result<String, Outcome> {
        if let Some(line) = line {
            self.send(format!("{line}\r\n").as_bytes()).await?;
        }
        let reply = self.reply().await?;
        let code: u16 = reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if code == ok || (ok == 250 && (200..300).contains(&code)) {
            return Ok(reply);
        }
        let text = reply.replace('\n', " ");
        Err(match code {
            500..=599 => Outcome::Refused(text),
            _ => Outcome::Deferred(text),
        })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Outcome> {
        self.wr
            .write_all(bytes)
            .await
            .map_err(|_| Outcome::Deferred("smtpd ended the session".into()))
    }

    /// One reply, lines joined with `\n`.
    async fn reply(&mut self) -> Result<String, Outcome> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(REPLY_TIMEOUT, self.rd.read_line(&mut line)).await;
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Err(Outcome::Deferred("smtpd ended the session".into())),
            }
            let done = line.as_bytes().get(3) != Some(&b'-');
            all.push_str(line.trim_end());
            if done {
                return Ok(all);
            }
            all.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The checks on the descriptor, without a session: what is taken,
    /// what waits, what is moved aside.
    #[test]
    fn what_open_takes_waits_for_and_refuses() {
        let q = tempfile::tempdir().unwrap();
        let dir = q.path().join(maildrop::DIR);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(maildrop::DIR_MODE))
            .unwrap();
        let gid = std::fs::metadata(&dir).unwrap().gid();
        let good = b"postern-maildrop 1\nsize 3\nfrom <>\nto <r@x>\n\nhi\n";
        let write = |name: &str, data: &[u8]| std::fs::write(dir.join(name), data).unwrap();
        let open = |name: &str, limit: u64| super::open(&dir, OsStr::new(name), gid, limit);
        write("dgood", good);
        let t = open("dgood", 1 << 20).unwrap().unwrap();
        assert_eq!(t.envelope.recipients, vec!["r@x"]);
        assert_eq!(t.offset, good.len() as u64 - 3);
        assert_eq!(t.uid, nix::unistd::geteuid().as_raw());
        // Locked: a second pickup leaves it.
        assert!(open("dgood", 1 << 20).unwrap().is_none());
        drop(t);
        // Too large, another group.
        assert!(
            open("dgood", 10)
                .err()
                .unwrap()
                .contains("more than the 10")
        );
        assert!(
            super::open(&dir, OsStr::new("dgood"), gid + 1, 1 << 20)
                .err()
                .unwrap()
                .contains("not the drop directory's group")
        );
        // Still being written: waits (an hour), never guessed at.
        write("dshort", &good[..good.len() - 1]);
        assert!(open("dshort", 1 << 20).unwrap().is_none());
        write("dhalf", b"postern-maildrop 1\nsize 3\n");
        assert!(open("dhalf", 1 << 20).unwrap().is_none());
        // Moved aside.
        write("dlong", &[&good[..], b"more"].concat());
        assert!(
            open("dlong", 1 << 20)
                .err()
                .unwrap()
                .contains("by its size line")
        );
        write("dgarbage", b"Subject: x\n\nhi\n");
        assert!(
            open("dgarbage", 1 << 20)
                .err()
                .unwrap()
                .starts_with("malformed: ")
        );
        std::os::unix::fs::symlink(dir.join("dgood"), dir.join("dlink")).unwrap();
        assert_eq!(
            open("dlink", 1 << 20).err().unwrap(),
            "not a regular file (a symbolic link)"
        );
        std::fs::hard_link(dir.join("dgood"), dir.join("dhard")).unwrap();
        assert_eq!(
            open("dhard", 1 << 20).err().unwrap(),
            "2 links to it (a hard link)"
        );
        nix::unistd::mkfifo(&dir.join("dfifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(
            open("dfifo", 1 << 20).err().unwrap(),
            "not a regular file (a FIFO)"
        );
        // Gone meanwhile: nothing to do.
        assert!(open("dmissing", 1 << 20).unwrap().is_none());
    }

    /// The dialogue against a scripted server: what it sends, and what a
    /// refused recipient, a temporary and a permanent refusal become.
    #[tokio::test]
    async fn dialogue_as_sendmail_speaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("content");
        std::fs::write(&path, b"HEADSubject: x\n\n.dot\nend").unwrap();
        let envelope = maildrop::Envelope {
            size: 20,
            sender: "u@example.org".into(),
            recipients: vec!["a@x".into(), "b@x".into()],
            notify: Some("NEVER".into()),
            envid: Some("E+2B".into()),
            ..maildrop::Envelope::default()
        };
        let script = |replies: &'static [&'static str]| {
            let (client, server) = tokio::io::duplex(1 << 16);
            let task = tokio::spawn(async move {
                let (rd, mut wr) = tokio::io::split(server);
                let mut rd = BufReader::new(rd);
                let mut seen = String::new();
                wr.write_all(b"220 hi\r\n").await.unwrap();
                let mut replies = replies.iter();
                let mut in_data = false;
                loop {
                    let mut line = String::new();
                    if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                        break;
                    }
                    seen.push_str(&line);
                    if in_data {
                        in_data = line != ".\r\n";
                        if in_data {
                            continue;
                        }
                    }
                    let Some(r) = replies.next() else { break };
                    in_data = r.starts_with("354");
                    wr.write_all(format!("{r}\r\n").as_bytes()).await.unwrap();
                }
                seen
            });
            (client, task)
        };
        let file = || async { tokio::fs::File::open(&path).await.unwrap() };
        let (client, task) = script(&[
            "250 ok",
            "250 ok",
            "550 5.1.1 <a@x>: unknown",
            "250 ok",
            "354 go",
            "250 2.0.0 Ok: queued as ABC",
            "221 bye",
        ]);
        let outcome = dialogue(client, &envelope, file().await, 4).await;
        let seen = task.await.unwrap();
        match outcome {
            Outcome::Queued { id, refused } => {
                assert_eq!(id, "ABC");
                assert_eq!(
                    refused,
                    vec![("a@x".to_string(), "550 5.1.1 <a@x>: unknown".to_string())]
                );
            }
            _ => panic!("not queued"),
        }
        assert!(
            seen.starts_with(
                "EHLO localhost\r\nMAIL FROM:<u@example.org> SIZE=20 ENVID=E+2B\r\nRCPT TO:<a@x> NOTIFY=NEVER\r\nRCPT TO:<b@x> NOTIFY=NEVER\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\nend\r\n.\r\nQUIT\r\n"
            ),
            "{seen:?}"
        );
        let (client, _task) = script(&["250 ok", "553 5.7.1 not yours"]);
        assert!(matches!(
            dialogue(client, &envelope, file().await, 4).await,
            Outcome::Refused(r) if r == "553 5.7.1 not yours"
        ));
        let (client, _task) = script(&["250 ok", "452 4.3.1 Insufficient system storage"]);
        assert!(matches!(
            dialogue(client, &envelope, file().await, 4).await,
            Outcome::Deferred(_)
        ));
        let (client, _task) = script(&["250 ok", "250 ok", "550 no", "550 no"]);
        assert!(matches!(
            dialogue(client, &envelope, file().await, 4).await,
            Outcome::Refused(r) if r.starts_with("no recipient accepted: <a@x>: 550 no; <b@x>")
        ));
    }
}
