//! The queue engine: the state of every message in memory, rebuilt at start
//! from the segments, `deferred/` and the state log; outcomes recorded
//! durably (group commit) before they change that state.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::state::{Replayed, SnapRcpt, SnapState, Snapshot, StateRecord, replay};
use crate::config::Config;
use crate::ipc::{DeliveryRequest, DeliveryStatus, QmgrStatus, SmtpRequest};
use crate::queue::log::LogWriter;
use crate::queue::message::decode_message;
use crate::queue::record::{Entry, LogReader, RecordType};
use crate::queue::{
    CORRUPT, ContentRef, DEFERRED, Envelope, INCOMING, IdGenerator, QueueId, STATE, now_micros,
};
use crate::transport::LiveTransport;
use dispatch::Outbound;

mod admin;
mod deferred;
mod dispatch;
mod notify;
mod outcomes;

/// Segment file name prefixes in `incoming/`: `S` smtpd's, `B` the
/// notifications qmgr itself queues (bounces).
pub const SEGMENT_PREFIXES: [char; 2] = ['S', 'B'];

/// Compact the state log once this many bytes were appended since the last
/// snapshot.
const COMPACT_AFTER_BYTES: u64 = 64 << 20;
/// A recipient whose local delivery was lost (agent crashed) is retried
/// after this.
const LOST_RETRY_US: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RState {
    Pending { due: u64 },
    Active,
    Done,
    Bounced,
}

impl RState {
    fn is_final(self) -> bool {
        matches!(self, RState::Done | RState::Bounced)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    Segment(String),
    Deferred,
}

struct Message {
    env: Envelope,
    content: ContentRef,
    origin: Origin,
    rcpts: Vec<RState>,
    active_us: u64,
    first_deferred_us: Option<u64>,
    /// On hold (`postern queue hold`): kept, not delivered.
    held: bool,
    /// Deleted while a delivery was in flight: every outcome is final.
    deleted: bool,
    /// The sender got its delay warning (`queue.delay_warning_time`).
    warned: bool,
    /// Per recipient, why its last attempt failed (for `mailq`).
    reasons: Vec<Option<String>>,
}

#[derive(Default)]
struct Segment {
    offset: u64,
    sealed: bool,
    corrupt: bool,
    live: HashSet<QueueId>,
    finished: HashSet<QueueId>,
}

/// One outcome to record and apply.
pub struct Pending {
    id: QueueId,
    rcpt: usize,
    status: DeliveryStatus,
    dsn: String,
    reason: String,
    /// Addresses to queue the message anew for (alias expansion).
    forward: Vec<String>,
    /// Lists to queue the message anew for, from their owners.
    lists: Vec<crate::ipc::ListForward>,
    /// Failures to report to a list's owner.
    owner_failures: Vec<crate::ipc::OwnerFailure>,
    /// For the DSN: `Remote-MTA:` and `Diagnostic-Code:` (smtp results).
    remote_mta: Option<String>,
    diagnostic: Option<String>,
    /// qmgr decided this outcome itself, so it logs the `to=<…>` line
    /// (the agents log their own).
    log_here: bool,
}

pub struct Engine {
    cfg: Arc<Config>,
    qdir: PathBuf,
    log: LogWriter,
    messages: BTreeMap<QueueId, Message>,
    segments: BTreeMap<String, Segment>,
    /// Due now, not routed yet.
    ready: VecDeque<(QueueId, usize)>,
    timers: BTreeMap<u64, Vec<(QueueId, usize)>>,
    /// The local agent's slots.
    slots: Vec<mpsc::Sender<DeliveryRequest>>,
    idle: Vec<usize>,
    /// Routed to local, waiting for a slot.
    local_ready: VecDeque<(QueueId, usize)>,
    /// The smtp agent's slots and what waits for them.
    out: Outbound,
    /// The transport table (`relay.transport`, `relay.transport_files`).
    transport: LiveTransport,
    /// Outcomes decided without an agent (`error:`, `discard:`, …).
    decided: Vec<Pending>,
    state_bytes: u64,
    last_move_check: u64,
    /// Files to delete once the state log is synced.
    removals: Vec<Removal>,
    /// Writer of qmgr's own segments (notifications).
    notices: LogWriter,
    notice_ids: IdGenerator,
    /// A notification was queued: scan `incoming/` for it.
    notices_queued: bool,
}

/// A file finished messages leave behind.
enum Removal {
    Remove(PathBuf),
    /// A corrupt segment, kept in `corrupt/` for inspection.
    Corrupt(PathBuf),
}

impl Engine {
    /// `log` is the state log; `notices` the writer of qmgr's own
    /// segments in `incoming/` (prefix `B`), for the notifications it
    /// queues; `slots` and `smtp_slots` the agents' slots.
    pub fn new(
        cfg: Arc<Config>,
        log: LogWriter,
        notices: LogWriter,
        slots: Vec<mpsc::Sender<DeliveryRequest>>,
        smtp_slots: Vec<mpsc::Sender<SmtpRequest>>,
    ) -> Engine {
        let idle = (0..slots.len()).rev().collect();
        Engine {
            transport: LiveTransport::from_config(&cfg),
            local_ready: VecDeque::new(),
            out: Outbound::new(smtp_slots),
            qdir: cfg.queue.directory.clone(),
            cfg,
            log,
            notices,
            notice_ids: IdGenerator::new('B'),
            notices_queued: false,
            messages: BTreeMap::new(),
            segments: BTreeMap::new(),
            ready: VecDeque::new(),
            timers: BTreeMap::new(),
            slots,
            idle,
            decided: Vec::new(),
            state_bytes: 0,
            last_move_check: 0,
            removals: Vec::new(),
        }
    }

    /// A reload: `cfg` from the next decision on (back-off, expiry,
    /// notifications, routing: local domains, relay host, transport
    /// table, per-destination limits); the queue directory and the number
    /// of slots stay.
    pub fn reconfigure(&mut self, cfg: Arc<Config>) {
        if cfg.relay.transport != self.cfg.relay.transport
            || cfg.relay.transport_files != self.cfg.relay.transport_files
        {
            self.transport = LiveTransport::from_config(&cfg);
        }
        self.cfg = cfg;
    }

    pub fn status(&self) -> QmgrStatus {
        let now = now_micros();
        let mut s = QmgrStatus {
            messages: self.messages.len(),
            ..QmgrStatus::default()
        };
        for m in self.messages.values() {
            s.held += m.held as usize;
            for r in &m.rcpts {
                match r {
                    RState::Active => s.active += 1,
                    RState::Pending { due } if *due > now => s.deferred += 1,
                    _ => {}
                }
            }
        }
        s
    }

    /// The IDs of the messages still to deliver.
    #[cfg(test)]
    pub fn live_ids(&self) -> Vec<QueueId> {
        self.messages.keys().cloned().collect()
    }

    pub fn busy(&self) -> bool {
        self.idle.len() < self.slots.len() || self.out.busy()
    }

    // ---- recovery ------------------------------------------------------

    /// Rebuild the state from disk, then compact the state log.
    pub async fn recover(&mut self) -> anyhow::Result<()> {
        let state_dir = self.qdir.join(STATE);
        let old_state = sorted_files(&state_dir, |n| n.ends_with(".log"))?;
        let mut records = Vec::new();
        for name in &old_state {
            let mut r = LogReader::open(&state_dir.join(name), 0)?;
            while let Some(rec) = r.next_record()? {
                let t = rec.rtype;
                match StateRecord::decode(t, &rec.payload) {
                    Some(rec) => records.push(rec),
                    None => log::warn!("state/{name}: unreadable record of type {t:?} ignored"),
                }
            }
            for s in r.skipped() {
                log::warn!("state/{name}: {s}");
            }
        }
        let mut replayed = replay(records);

        let deferred_dir = self.qdir.join(DEFERRED);
        for name in sorted_files(&deferred_dir, |n| n.parse::<QueueId>().is_ok())? {
            let rel = format!("{DEFERRED}/{name}");
            match load_file_message(&self.qdir, &rel) {
                Ok((env, content)) => {
                    let r = replayed.remove(&env.id).filter(|r| r.moved);
                    self.add_message(env, content, Origin::Deferred, r);
                }
                Err(e) => {
                    log::warn!("{rel}: {e}; moved to corrupt/");
                    let _ = fs::rename(self.qdir.join(&rel), self.qdir.join(CORRUPT).join(&name));
                }
            }
        }
        self.scan_incoming(&mut replayed);
        self.remove_orphan_files();
        self.compact(old_state).await;
        self.flush_removals().await;
        Ok(())
    }

    /// Delete `.msg` files no message refers to (left by a crash between
    /// writing the file and committing its record), once they are old.
    fn remove_orphan_files(&self) {
        let used: HashSet<String> = self
            .messages
            .values()
            .filter_map(|m| match &m.content {
                ContentRef::File { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        let dir = self.qdir.join(INCOMING);
        let Ok(names) = sorted_files(&dir, |n| n.ends_with(".msg")) else {
            return;
        };
        for name in names {
            let rel = format!("{INCOMING}/{name}");
            let old = fs::metadata(dir.join(&name))
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(3600))
                .unwrap_or(false);
            if old && !used.contains(&rel) {
                log::info!("removing orphan {rel}");
                let _ = fs::remove_file(dir.join(&name));
            }
        }
    }

    /// Write a snapshot of every live message (and tombstones for finished
    /// messages whose segments remain) and delete the state files `old`.
    async fn compact(&mut self, old: Vec<String>) {
        let _ = self.log.seal().await;
        let mut recs = Vec::new();
        for (id, m) in &self.messages {
            let rcpts = m
                .rcpts
                .iter()
                .zip(&m.reasons)
                .map(|(r, reason)| match r {
                    RState::Done => SnapRcpt {
                        state: SnapState::Done,
                        until: 0,
                        reason: reason.clone(),
                    },
                    RState::Bounced => SnapRcpt {
                        state: SnapState::Bounced,
                        until: 0,
                        reason: reason.clone(),
                    },
                    RState::Pending { due } => SnapRcpt {
                        state: SnapState::Pending,
                        until: *due,
                        reason: reason.clone(),
                    },
                    RState::Active => SnapRcpt {
                        state: SnapState::Pending,
                        until: 0,
                        reason: reason.clone(),
                    },
                })
                .collect();
            recs.push(StateRecord::Snapshot(Snapshot {
                id: id.clone(),
                deferred: m.origin == Origin::Deferred,
                finished: false,
                held: m.held,
                warned: m.warned,
                rcpts,
            }));
        }
        for seg in self.segments.values() {
            for id in &seg.finished {
                recs.push(StateRecord::Snapshot(Snapshot {
                    id: id.clone(),
                    deferred: false,
                    finished: true,
                    held: false,
                    warned: false,
                    rcpts: vec![],
                }));
            }
        }
        if !self.append_all(recs, false).await.iter().all(|ok| *ok) {
            log::warn!("state log snapshot failed; keeping the old state files");
            return;
        }
        let dir = self.qdir.join(STATE);
        for name in old {
            let _ = fs::remove_file(dir.join(name));
        }
        self.state_bytes = 0;
    }

    pub async fn maybe_compact(&mut self) {
        // Deliveries in flight are snapshotted as pending; their outcomes
        // are appended after the snapshot, so compaction need not wait.
        if self.state_bytes < COMPACT_AFTER_BYTES {
            return;
        }
        match sorted_files(&self.qdir.join(STATE), |n| n.ends_with(".log")) {
            Ok(old) => self.compact(old).await,
            Err(e) => log::warn!("cannot list state files: {e}"),
        }
    }

    // ---- incoming ------------------------------------------------------

    /// Read new records from every segment in `incoming/`.
    pub fn scan_incoming(&mut self, replayed: &mut HashMap<QueueId, Replayed>) {
        let dir = self.qdir.join(INCOMING);
        let names = match sorted_files(&dir, |n| {
            n.starts_with(SEGMENT_PREFIXES) && n.ends_with(".log")
        }) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("cannot list {}: {e}", dir.display());
                return;
            }
        };
        for name in &names {
            if self.removing(&dir.join(name)) {
                continue;
            }
            let seg = self.segments.entry(name.clone()).or_default();
            if seg.sealed {
                continue;
            }
            let offset = seg.offset;
            let rel = format!("{INCOMING}/{name}");
            let mut reader = match LogReader::open(&dir.join(name), offset) {
                Ok(r) => r,
                Err(e) => {
                    log::warn!("{rel}: {e}");
                    continue;
                }
            };
            loop {
                match reader.next_entry() {
                    Ok(Some(Entry::Record(rec))) if rec.rtype == RecordType::Message => {
                        let off = rec.payload_offset();
                        match decode_message(&rec.payload, off, &rel) {
                            Ok((env, content)) => {
                                self.incoming_message(name, env, content, replayed)
                            }
                            Err(e) => log::warn!("{rel}: offset {off}: bad message record: {e}"),
                        }
                    }
                    Ok(Some(Entry::Record(rec))) if rec.rtype == RecordType::Seal => {
                        if let Some(seg) = self.segments.get_mut(name) {
                            seg.sealed = true;
                        }
                    }
                    Ok(Some(Entry::Record(rec))) => log::warn!(
                        "{rel}: offset {}: unexpected record {:?}",
                        rec.offset,
                        rec.rtype
                    ),
                    Ok(Some(Entry::Skipped(s))) => {
                        log::warn!(
                            "{rel}: {s}; at least {} message(s) lost",
                            s.records_at_least()
                        );
                        if let Some(seg) = self.segments.get_mut(name) {
                            seg.corrupt = true;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        log::warn!("{rel}: read error: {e}");
                        break;
                    }
                }
            }
            if let Some(seg) = self.segments.get_mut(name) {
                seg.offset = reader.offset();
            }
        }
        self.segments.retain(|n, _| names.contains(n));
        let all: Vec<String> = self.segments.keys().cloned().collect();
        for name in all {
            self.maybe_delete_segment(&name);
        }
    }

    fn incoming_message(
        &mut self,
        seg: &str,
        env: Envelope,
        content: ContentRef,
        replayed: &mut HashMap<QueueId, Replayed>,
    ) {
        let id = env.id.clone();
        let r = replayed.remove(&id);
        let obsolete =
            self.messages.contains_key(&id) || r.as_ref().is_some_and(|r| r.moved || r.finished);
        if obsolete {
            if let Some(s) = self.segments.get_mut(seg) {
                s.finished.insert(id);
            }
            return;
        }
        self.add_message(env, content, Origin::Segment(seg.to_string()), r);
    }

    fn add_message(
        &mut self,
        env: Envelope,
        content: ContentRef,
        origin: Origin,
        r: Option<Replayed>,
    ) {
        let now = now_micros();
        let id = env.id.clone();
        let mut rcpts = vec![RState::Pending { due: now }; env.recipients.len()];
        let mut reasons: Vec<Option<String>> = vec![None; env.recipients.len()];
        let mut first_deferred = None;
        let (held, deleted, warned) = r
            .as_ref()
            .map(|r| (r.held, r.finished, r.warned))
            .unwrap_or_default();
        // smtpd's HOLD (a header or body check): held until released.
        let held = held || (env.hold && !r.as_ref().is_some_and(|r| r.held_known));
        if deleted {
            rcpts.fill(RState::Bounced);
        }
        for rec in r.map(|r| r.records).unwrap_or_default() {
            match rec {
                StateRecord::Delivered(o) => set(&mut rcpts, o.rcpt, RState::Done),
                StateRecord::Bounced(o) => set(&mut rcpts, o.rcpt, RState::Bounced),
                StateRecord::Deferred(o) => {
                    first_deferred.get_or_insert(now);
                    if let Some(r) = reasons.get_mut(o.rcpt) {
                        *r = Some(o.reason.clone());
                    }
                    set(&mut rcpts, o.rcpt, RState::Pending { due: o.until })
                }
                StateRecord::Snapshot(s) => {
                    for (i, sr) in s.rcpts.iter().enumerate() {
                        if let Some(r) = reasons.get_mut(i) {
                            r.clone_from(&sr.reason);
                        }
                        let st = match sr.state {
                            SnapState::Done => RState::Done,
                            SnapState::Bounced => RState::Bounced,
                            SnapState::Pending => RState::Pending { due: sr.until },
                        };
                        set(&mut rcpts, i, st);
                    }
                }
                StateRecord::Moved(_) | StateRecord::Admin(_) | StateRecord::Warned(_) => {}
            }
        }
        let finished = rcpts.iter().all(|r| r.is_final());
        if finished {
            if let Origin::Segment(seg) = &origin
                && let Some(s) = self.segments.get_mut(seg)
            {
                s.finished.insert(id.clone());
            }
            self.remove_content(&content, &origin, &id);
            return;
        }
        log::info!(
            queue_id = id.as_str();
            "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
            env.sender,
            env.size,
            env.recipients.len()
        );
        if held {
            log::info!(queue_id = id.as_str(); "{id}: on hold");
        }
        for (i, r) in rcpts.iter().enumerate() {
            if let RState::Pending { due } = r
                && !held
            {
                self.schedule(&id, i, *due, now);
            }
        }
        if let Origin::Segment(seg) = &origin
            && let Some(s) = self.segments.get_mut(seg)
        {
            s.live.insert(id.clone());
        }
        self.messages.insert(
            id,
            Message {
                env,
                content,
                origin,
                rcpts,
                active_us: now,
                first_deferred_us: first_deferred,
                held,
                deleted: false,
                warned,
                reasons,
            },
        );
    }

    fn schedule(&mut self, id: &QueueId, rcpt: usize, due: u64, now: u64) {
        if due <= now {
            self.ready.push_back((id.clone(), rcpt));
        } else {
            self.timers.entry(due).or_default().push((id.clone(), rcpt));
        }
    }

    // ---- dispatch ------------------------------------------------------

    /// The time of the next retry, if any.
    pub fn next_timer(&self) -> Option<u64> {
        self.timers.keys().next().copied()
    }

    async fn append_all(&mut self, records: Vec<StateRecord>, lazy: bool) -> Vec<bool> {
        let mut set = JoinSet::new();
        for (n, rec) in records.into_iter().enumerate() {
            let (t, payload) = rec.encode();
            self.state_bytes += payload.len() as u64 + 16;
            let log = self.log.clone();
            set.spawn(async move {
                let r = if lazy {
                    log.append_lazy(t, payload).await
                } else {
                    log.append(t, payload).await
                };
                (n, r.is_ok())
            });
        }
        let mut ok = vec![false; set.len()];
        while let Some(r) = set.join_next().await {
            if let Ok((n, good)) = r {
                ok[n] = good;
            }
        }
        ok
    }

    fn finish(&mut self, id: &QueueId) {
        let Some(m) = self.messages.remove(id) else {
            return;
        };
        log::info!(queue_id = id.as_str(); "{id}: removed");
        self.remove_content(&m.content, &m.origin, id);
        if let Origin::Segment(seg) = &m.origin {
            if let Some(s) = self.segments.get_mut(seg) {
                s.live.remove(id);
                s.finished.insert(id.clone());
            }
            self.maybe_delete_segment(seg);
        }
    }

    fn remove_content(&mut self, content: &ContentRef, origin: &Origin, id: &QueueId) {
        if let ContentRef::File { path, .. } = content {
            self.removals.push(Removal::Remove(self.qdir.join(path)));
        }
        if *origin == Origin::Deferred {
            self.removals
                .push(Removal::Remove(self.qdir.join(DEFERRED).join(id.as_str())));
        }
    }

    /// Delete what finished messages leave behind, once the outcomes that
    /// finished them are durable.
    pub async fn flush_removals(&mut self) {
        if self.removals.is_empty() {
            return;
        }
        if let Err(e) = self.log.sync().await {
            log::warn!("state log sync failed, files kept for now: {e}");
            return;
        }
        for r in std::mem::take(&mut self.removals) {
            let result = match &r {
                Removal::Remove(p) => fs::remove_file(p),
                Removal::Corrupt(p) => match p.file_name() {
                    Some(name) => fs::rename(p, self.qdir.join(CORRUPT).join(name)),
                    None => Ok(()),
                },
            };
            match result {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    let (Removal::Remove(p) | Removal::Corrupt(p)) = &r;
                    log::warn!("cannot remove {}: {e}", p.display());
                }
                _ => {}
            }
        }
    }

    fn removing(&self, path: &Path) -> bool {
        self.removals
            .iter()
            .any(|r| matches!(r, Removal::Remove(p) | Removal::Corrupt(p) if p == path))
    }

    /// A segment goes when no live message is in it and smtpd no longer
    /// writes it (sealed, or a newer segment exists).
    fn maybe_delete_segment(&mut self, name: &str) {
        let Some(seg) = self.segments.get(name) else {
            return;
        };
        // A writer only appends to its newest segment: an older one of the
        // same writer (same prefix letter) is finished.
        let prefix = name.chars().next();
        let newer = self
            .segments
            .range::<str, _>((std::ops::Bound::Excluded(name), std::ops::Bound::Unbounded))
            .any(|(n, _)| n.chars().next() == prefix);
        if !seg.live.is_empty() || !(seg.sealed || newer) {
            return;
        }
        let path = self.qdir.join(INCOMING).join(name);
        self.removals.push(if seg.corrupt {
            Removal::Corrupt(path)
        } else {
            Removal::Remove(path)
        });
        self.segments.remove(name);
    }
}

fn set(rcpts: &mut [RState], i: usize, st: RState) {
    if let Some(r) = rcpts.get_mut(i) {
        *r = st;
    }
}

fn sorted_files(dir: &Path, keep: impl Fn(&str) -> bool) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| keep(n))
        .collect();
    names.sort();
    Ok(names)
}

/// A message stored as the first record of a file of its own.
fn load_file_message(qdir: &Path, rel: &str) -> anyhow::Result<(Envelope, ContentRef)> {
    let mut r = LogReader::open(&qdir.join(rel), 0)?;
    match r.next_record()? {
        Some(rec) if rec.rtype == RecordType::Message => {
            Ok(decode_message(&rec.payload, rec.payload_offset(), rel)?)
        }
        _ => anyhow::bail!("no message record"),
    }
}

fn read_content(qdir: &Path, c: &ContentRef) -> std::io::Result<Vec<u8>> {
    read_content_prefix(qdir, c, u64::MAX)
}

/// At most the first `max` bytes of a message's content.
fn read_content_prefix(qdir: &Path, c: &ContentRef, max: u64) -> std::io::Result<Vec<u8>> {
    let (path, offset, len) = c.span();
    let mut f = fs::File::open(qdir.join(path))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0; len.min(max) as usize];
    f.read_exact(&mut buf)?;
    Ok(buf)
}
