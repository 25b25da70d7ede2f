//! Messages in `deferred/<ID>`, files of their own: long-deferred messages
//! moved out of their segments (so the segments can be deleted), and
//! messages out of the active window (see `evict.rs`).
//!
//! A file is a Message record (the envelope and the content, or the path
//! of a large message's file), then a Snapshot record: each recipient's
//! state, next attempt and last failure reason, held, warned. Its mtime is
//! the message's next attempt (the earliest pending recipient's due;
//! [`HELD_MTIME`] when held), as Postfix keeps it: the deferred scan needs
//! a `stat` per file, not a read. Files from before the Snapshot existed
//! have only the Message record: every recipient pending, due now.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{Engine, Origin, RState, load_file_message, read_content};
use crate::qmgr::state::{Moved, SnapRcpt, SnapState, Snapshot, StateRecord};
use crate::queue::message::{MessageContent, decode_message, encode_message};
use crate::queue::record::{LogReader, RecordType, encode};
use crate::queue::{ContentRef, DEFERRED, Envelope, QueueId, now_micros};

/// The mtime of a held message's file: never due (the year 2096).
pub(super) const HELD_MTIME_SECS: u64 = 4_000_000_000;
/// Files written and fsync'd at once (the journal merges concurrent
/// commits).
const WRITERS: usize = 8;
/// A file whose appended Snapshots pass this many bytes is written anew
/// (its Message record and the last Snapshot) when it is evicted again.
const REWRITE_AFTER: u64 = 64 << 10;

/// A `deferred/` file as read back.
pub(super) struct DeferredFile {
    pub env: Envelope,
    pub content: ContentRef,
    /// None in a file from before the Snapshot.
    pub snapshot: Option<Snapshot>,
    /// The Message record's bytes, header included.
    pub message_bytes: usize,
}

/// Read `deferred/<name>`.
pub(super) fn read_deferred(qdir: &Path, name: &str) -> anyhow::Result<DeferredFile> {
    let rel = format!("{DEFERRED}/{name}");
    let mut r = LogReader::open(&qdir.join(&rel), 0)?;
    let (env, content) = match r.next_record()? {
        Some(rec) if rec.rtype == RecordType::Message => {
            decode_message(&rec.payload, rec.payload_offset(), &rel)?
        }
        _ => anyhow::bail!("no message record"),
    };
    let message_bytes = r.offset() as usize;
    // The last Snapshot is the truth: a message deferred again gets one
    // appended (see `append_snapshots`); a torn last one (a crash in the
    // append) is passed over and the one before it counts.
    let mut snapshot = None;
    while let Some(rec) = r.next_record()? {
        if rec.rtype != RecordType::Snapshot {
            continue;
        }
        match StateRecord::decode(rec.rtype, &rec.payload) {
            Some(StateRecord::Snapshot(s)) if s.id == env.id => snapshot = Some(s),
            _ => anyhow::bail!("bad snapshot record"),
        }
    }
    Ok(DeferredFile {
        env,
        content,
        snapshot,
        message_bytes,
    })
}

/// The snapshot a file without one stands for: every recipient pending,
/// due now.
pub(super) fn snapshot_or_default(f: &DeferredFile) -> Snapshot {
    f.snapshot.clone().unwrap_or_else(|| Snapshot {
        id: f.env.id.clone(),
        deferred: true,
        finished: false,
        held: false,
        warned: false,
        rcpts: vec![
            SnapRcpt {
                state: SnapState::Pending,
                until: 0,
                reason: None,
            };
            f.env.recipients.len()
        ],
    })
}

/// The mtime a file with `snap` gets: its next attempt.
pub(super) fn mtime_of(snap: &Snapshot) -> SystemTime {
    let us = if snap.held {
        HELD_MTIME_SECS * 1_000_000
    } else {
        snap.rcpts
            .iter()
            .filter(|r| r.state == SnapState::Pending)
            .map(|r| r.until)
            .min()
            .unwrap_or(0)
    };
    SystemTime::UNIX_EPOCH + Duration::from_micros(us)
}

/// One file to put in place.
pub(super) struct Prepared {
    pub id: QueueId,
    pub bytes: Vec<u8>,
    pub mtime: SystemTime,
    /// The recipients kept, by their index in memory (all of them when the
    /// message already lived in `deferred/`).
    pub keep: Vec<usize>,
}

impl Prepared {
    /// A file of `message` (the Message record's bytes) and `snap`.
    pub(super) fn new(
        message: Vec<u8>,
        snap: &Snapshot,
        keep: Vec<usize>,
    ) -> anyhow::Result<Prepared> {
        let (t, payload) = StateRecord::Snapshot(snap.clone()).encode();
        let mut bytes = message;
        bytes.extend(encode(t, &payload)?);
        Ok(Prepared {
            id: snap.id.clone(),
            bytes,
            mtime: mtime_of(snap),
            keep,
        })
    }
}

/// Write `files` into `deferred/` (each a tmp file, written, its mtime
/// set, fsync'd, several at once; then renamed, the directory fsync'd
/// once). Per file, whether it is in place.
pub(super) fn write_files(dir: &Path, files: &[Prepared]) -> Vec<bool> {
    let tmp = |p: &Prepared| dir.join(format!("{}.tmp", p.id));
    let write = |p: &Prepared| -> std::io::Result<()> {
        use std::io::Write;
        let path = tmp(p);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        f.write_all(&p.bytes)?;
        f.set_modified(p.mtime)?;
        f.sync_all()
    };
    let mut ok = vec![false; files.len()];
    let chunk = files.len().div_ceil(WRITERS).max(1);
    std::thread::scope(|s| {
        for (files, ok) in files.chunks(chunk).zip(ok.chunks_mut(chunk)) {
            s.spawn(move || {
                for (p, ok) in files.iter().zip(ok.iter_mut()) {
                    match write(p) {
                        Ok(()) => *ok = true,
                        Err(e) => {
                            log::warn!("{}: cannot write {DEFERRED}/{}: {e}", p.id, p.id);
                            let _ = fs::remove_file(tmp(p));
                        }
                    }
                }
            });
        }
    });
    for (p, ok) in files.iter().zip(ok.iter_mut()) {
        if *ok && let Err(e) = fs::rename(tmp(p), dir.join(p.id.as_str())) {
            log::warn!("{}: cannot put {DEFERRED}/{} in place: {e}", p.id, p.id);
            let _ = fs::remove_file(tmp(p));
            *ok = false;
        }
    }
    if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        log::warn!("cannot sync {}: {e}", dir.display());
        ok.fill(false);
    }
    ok
}

/// A Snapshot to append to a message's `deferred/` file (it is evicted
/// again: tried since it was read back, and deferred).
pub(super) struct Append {
    pub id: QueueId,
    /// The Snapshot record, header included.
    pub record: Vec<u8>,
    pub mtime: SystemTime,
}

/// Append each Snapshot to its file and set the file's mtime (its next
/// attempt). No fsync: the Message record in the file is durable since the
/// message first left its segment, and what an append says is also in the
/// state log until the `Moved` record that follows it; a kill -9 keeps the
/// page cache, a power loss at worst takes the message back to its
/// previous Snapshot (a delivery repeated, as a lost lazy outcome record
/// would). A file grown past [`REWRITE_AFTER`] is written anew instead
/// (tmp, fsync, rename; the directory fsync'd once). Per file, whether it
/// is in place.
pub(super) fn append_snapshots(dir: &Path, files: &[Append]) -> Vec<bool> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let mut renamed = false;
    let mut one = |a: &Append| -> std::io::Result<()> {
        let path = dir.join(a.id.as_str());
        let mut f = fs::OpenOptions::new().append(true).read(true).open(&path)?;
        let len = f.metadata()?.len();
        let mut h = [0u8; crate::queue::record::HEADER_LEN];
        f.read_exact_at(&mut h, 0)?;
        let message_len = crate::queue::record::HEADER_LEN as u64
            + u64::from(u32::from_le_bytes([h[3], h[4], h[5], h[6]]));
        if len > message_len + REWRITE_AFTER && message_len <= len {
            let mut bytes = vec![0u8; message_len as usize];
            f.read_exact_at(&mut bytes, 0)?;
            bytes.extend_from_slice(&a.record);
            let tmp = dir.join(format!("{}.tmp", a.id));
            let mut t = fs::File::create(&tmp)?;
            t.write_all(&bytes)?;
            t.set_modified(a.mtime)?;
            t.sync_all()?;
            fs::rename(&tmp, &path)?;
            renamed = true;
            return Ok(());
        }
        f.write_all(&a.record)?;
        f.set_modified(a.mtime)
    };
    let mut ok: Vec<bool> = files
        .iter()
        .map(|a| match one(a) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("{}: cannot append to {DEFERRED}/{}: {e}", a.id, a.id);
                false
            }
        })
        .collect();
    if renamed && let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        log::warn!("cannot sync {}: {e}", dir.display());
        ok.fill(false);
    }
    ok
}

/// One message's part of an eviction batch.
pub(super) enum Job {
    Append(Append),
    New(Prepared),
}

/// Write an eviction batch: the appends, then the new files (see
/// [`append_snapshots`] and [`write_files`]). Per job, whether it is in
/// place.
pub(super) fn write_jobs(dir: &Path, jobs: Vec<Job>) -> Vec<bool> {
    let (mut appends, mut news, mut order) = (Vec::new(), Vec::new(), Vec::new());
    for j in jobs {
        match j {
            Job::Append(a) => {
                order.push(true);
                appends.push(a);
            }
            Job::New(p) => {
                order.push(false);
                news.push(p);
            }
        }
    }
    let mut a = append_snapshots(dir, &appends).into_iter();
    let mut n = if news.is_empty() {
        Vec::new()
    } else {
        write_files(dir, &news)
    }
    .into_iter();
    order
        .into_iter()
        .map(|append| if append { a.next() } else { n.next() }.unwrap_or(false))
        .collect()
}

/// The Snapshot of recipients `keep` of message `m` in memory, as its
/// `deferred/` file keeps it.
fn snapshot_of(id: &QueueId, m: &super::Message, keep: &[usize]) -> Snapshot {
    Snapshot {
        id: id.clone(),
        deferred: true,
        finished: false,
        held: m.held,
        warned: m.warned,
        rcpts: snap_rcpts(&m.rcpts, &m.reasons, keep),
    }
}

/// The snapshot of recipients `keep` of a message in memory.
pub(super) fn snap_rcpts(
    rcpts: &[RState],
    reasons: &[Option<std::sync::Arc<str>>],
    keep: &[usize],
) -> Vec<SnapRcpt> {
    keep.iter()
        .map(|&i| {
            let reason = reasons.get(i).and_then(|r| r.as_deref().map(String::from));
            snap_rcpt(&rcpts[i], reason)
        })
        .collect()
}

/// One recipient's state in a Snapshot: an active recipient is pending
/// (due now) again.
pub(super) fn snap_rcpt(state: &RState, reason: Option<String>) -> SnapRcpt {
    let (state, until) = match *state {
        RState::Done => (SnapState::Done, 0),
        RState::Bounced => (SnapState::Bounced, 0),
        RState::Pending { due } => (SnapState::Pending, due),
        RState::Active => (SnapState::Pending, 0),
    };
    SnapRcpt {
        state,
        until,
        reason,
    }
}

impl Engine {
    /// Move long-deferred messages out of their segments into files of
    /// their own, so the segments can go.
    pub(crate) async fn maybe_move_deferred(&mut self) {
        let now = now_micros();
        if now.saturating_sub(self.last_move_check) < 1_000_000 {
            return;
        }
        self.last_move_check = now;
        let after = self.cfg.queue.move_deferred_after.as_micros() as u64;
        let candidates: Vec<QueueId> = self
            .messages
            .iter()
            .filter(|(_, m)| {
                matches!(m.origin, Origin::Segment(_))
                    && !m.rcpts.contains(&RState::Active)
                    && m.first_deferred_us
                        .is_some_and(|t| now.saturating_sub(t) >= after)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if !candidates.is_empty() {
            self.write_out(candidates).await;
        }
    }

    /// The file `deferred/<ID>` of message `id` as it stands in memory: a
    /// message from a segment with its unfinished recipients only
    /// (renumbered); one already in `deferred/` keeps its Message record
    /// byte for byte (its indices stay), with a new Snapshot.
    pub(super) fn prepare(&self, id: &QueueId) -> anyhow::Result<Prepared> {
        let m = self
            .messages
            .get(id)
            .ok_or_else(|| anyhow::anyhow!("not in memory"))?;
        let (message, keep) = match &m.origin {
            Origin::Deferred => {
                let f = read_deferred(&self.qdir, id.as_str())?;
                let mut bytes = fs::read(self.qdir.join(DEFERRED).join(id.as_str()))?;
                bytes.truncate(f.message_bytes);
                (bytes, (0..m.rcpts.len()).collect())
            }
            Origin::Segment(_) => {
                let keep: Vec<usize> = (0..m.rcpts.len())
                    .filter(|i| !m.rcpts[*i].is_final())
                    .collect();
                let mut env = m.env.clone();
                env.recipients = keep.iter().map(|i| m.env.recipients[*i].clone()).collect();
                let inline;
                let payload = match &m.content {
                    ContentRef::File { path, .. } => {
                        encode_message(&env, MessageContent::File(path))?
                    }
                    c @ ContentRef::Segment { .. } => {
                        inline = read_content(&self.qdir, c)?;
                        encode_message(&env, MessageContent::Inline(&inline))?
                    }
                };
                (encode(RecordType::Message, &payload)?, keep)
            }
        };
        Prepared::new(message, &snapshot_of(id, m, &keep), keep)
    }

    /// What evicting message `id` writes: a Snapshot appended to its file
    /// when it already lives in `deferred/` (nothing read, nothing
    /// fsync'd), else a whole new file (see [`Engine::prepare`]).
    pub(super) fn eviction_job(&self, id: &QueueId) -> anyhow::Result<Job> {
        let m = self
            .messages
            .get(id)
            .ok_or_else(|| anyhow::anyhow!("not in memory"))?;
        if m.origin != Origin::Deferred {
            return Ok(Job::New(self.prepare(id)?));
        }
        let keep: Vec<usize> = (0..m.rcpts.len()).collect();
        let snap = snapshot_of(id, m, &keep);
        let (t, payload) = StateRecord::Snapshot(snap.clone()).encode();
        Ok(Job::Append(Append {
            id: id.clone(),
            record: encode(t, &payload)?,
            mtime: mtime_of(&snap),
        }))
    }

    /// Write the messages `ids` to `deferred/` as they stand in memory,
    /// then their `Moved` records; they stay in memory, living in
    /// `deferred/` from now on. The ids written.
    pub(super) async fn write_out(&mut self, ids: Vec<QueueId>) -> Vec<QueueId> {
        let mut files = Vec::new();
        for id in ids {
            match self.prepare(&id) {
                Ok(p) => files.push(p),
                Err(e) => log::warn!("{id}: cannot write it to {DEFERRED}/: {e}"),
            }
        }
        if files.is_empty() {
            return Vec::new();
        }
        // Every record the files' Snapshots reflect is durable first: a
        // crash before the `Moved` records replays them over the files,
        // and they say what the files say.
        if let Err(e) = self.log.sync().await {
            log::warn!("state log sync failed, nothing moved to {DEFERRED}/ for now: {e}");
            return Vec::new();
        }
        let dir = self.qdir.join(DEFERRED);
        let (files, ok) = match tokio::task::spawn_blocking(move || {
            let ok = write_files(&dir, &files);
            (files, ok)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                log::warn!("writing {DEFERRED}/ failed: {e}");
                return Vec::new();
            }
        };
        let written: Vec<Prepared> = files
            .into_iter()
            .zip(ok)
            .filter_map(|(p, ok)| ok.then_some(p))
            .collect();
        // The files are in charge now (a segment copy is skipped when its
        // file exists; an older file's records mean the same recipients):
        // the records only spare a restart from loading them.
        let moved = written
            .iter()
            .map(|p| StateRecord::Moved(Moved { id: p.id.clone() }))
            .collect();
        if !self.append_all(moved, false).await.iter().all(|o| *o) {
            log::warn!("state log write failed; moved messages will be loaded at the next start");
        }
        let mut done = Vec::new();
        for p in written {
            if let Err(e) = self.now_deferred(&p) {
                log::warn!(
                    "{}: moved to {DEFERRED}/ but cannot read it back: {e}",
                    p.id
                );
            }
            done.push(p.id);
        }
        done
    }

    /// Message `p.id` lives in its new `deferred/` file from now on (kept
    /// in memory).
    fn now_deferred(&mut self, p: &Prepared) -> anyhow::Result<()> {
        let id = &p.id;
        let was_segment = self
            .messages
            .get(id)
            .is_some_and(|m| matches!(m.origin, Origin::Segment(_)));
        if !was_segment {
            return Ok(());
        }
        let (new_env, content) = load_file_message(&self.qdir, &format!("{DEFERRED}/{id}"))?;
        let now = now_micros();
        let Some(m) = self.messages.get_mut(id) else {
            return Ok(());
        };
        let old_origin = std::mem::replace(&mut m.origin, Origin::Deferred);
        m.env = new_env;
        m.content = content;
        let dues: Vec<u64> = p
            .keep
            .iter()
            .map(|i| match m.rcpts[*i] {
                RState::Pending { due } => due,
                _ => 0,
            })
            .collect();
        m.rcpts = dues.iter().map(|d| RState::Pending { due: *d }).collect();
        m.reasons = p
            .keep
            .iter()
            .map(|i| m.reasons.get(*i).cloned().flatten())
            .collect();
        let held = m.held;
        // Old scheduling entries point at old indices: reschedule.
        self.sched.forget(id);
        if !held {
            for (i, due) in dues.into_iter().enumerate() {
                self.sched.schedule(id, i, due, now);
            }
        }
        log::info!("{id}: moved to deferred/");
        if let Origin::Segment(seg) = old_origin {
            self.leave_segment(&seg, id);
        }
        Ok(())
    }

    /// Message `id`, read from segment `seg`, lives elsewhere now.
    pub(super) fn leave_segment(&mut self, seg: &str, id: &QueueId) {
        if let Some(s) = self.segments.get_mut(seg) {
            s.live.remove(id);
            s.finished.insert(id.clone());
        }
        self.maybe_delete_segment(seg);
    }
}

/// Where `deferred/<id>` is.
pub(super) fn deferred_path(qdir: &Path, id: &QueueId) -> PathBuf {
    qdir.join(DEFERRED).join(id.as_str())
}

/// A crash point for the tests (`qmgr/evict_tests.rs`).
#[cfg(test)]
pub(crate) mod crash {
    thread_local! {
        /// An eviction batch stops once its files are in place, before
        /// their `Moved` records, as a kill -9 there would.
        pub(crate) static BEFORE_MOVED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
}
