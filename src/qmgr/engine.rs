//! The queue engine: the state of every message in memory, rebuilt at start
//! from the segments, `deferred/` and the state log; outcomes recorded
//! durably (group commit) before they change that state.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::damage::StateDamage;
use super::state::{Replayed, SnapState, StateRecord};
use crate::config::Config;
use crate::ipc::{DeliveryRequest, DeliveryStatus, QmgrStatus, SmtpRequest};
use crate::queue::log::LogWriter;
use crate::queue::message::decode_message;
use crate::queue::record::{LogReader, RecordType};
use crate::queue::{ContentRef, DEFERRED, Envelope, QueueId, now_micros};
use crate::transport::LiveTransport;
pub(crate) use admin::{EvictedListing, write_listing};
use notify::Notices;
use scheduler::Scheduler;

mod admin;
mod deferred;
#[cfg(test)]
pub(crate) use deferred::crash;
mod dispatch;
mod evict;
mod incoming;
mod metrics;
mod notify;
mod outcomes;
mod recover;
mod scheduler;

/// Segment file name prefixes in `incoming/`: `S` smtpd's, `B` the
/// notifications qmgr itself queues (bounces), `R` messages re-queued by
/// `postern queue salvage`.
pub(crate) const SEGMENT_PREFIXES: [char; 3] = ['S', 'B', 'R'];
/// A recipient whose local delivery was lost (agent crashed) is retried
/// after this.
const LOST_RETRY_US: u64 = 1_000_000;
/// How often an unreachable local agent is logged while it stays so.
const UNAVAILABLE_LOG_US: u64 = 10_000_000;

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
    /// Per recipient, why its last attempt failed (for `mailq`); shared
    /// between messages deferred for the same reason ([`Reasons`]).
    reasons: Vec<Option<Arc<str>>>,
}

/// The deferral reasons of the messages in memory, one copy each: a
/// destination that is down defers thousands of messages with the same
/// text (~100 characters), which each kept a copy of (issue 22).
#[derive(Default)]
struct Reasons(HashSet<Arc<str>>);

/// At most this many reasons are kept for sharing (a reason no message
/// uses any more is dropped when the set is full).
const REASONS_KEPT: usize = 1024;

impl Reasons {
    /// `r`, shared with the messages that have the same reason.
    fn share(&mut self, r: &str) -> Arc<str> {
        if let Some(a) = self.0.get(r) {
            return a.clone();
        }
        if self.0.len() >= REASONS_KEPT {
            self.0.retain(|a| Arc::strong_count(a) > 1);
        }
        let a: Arc<str> = Arc::from(r);
        if self.0.len() < REASONS_KEPT {
            self.0.insert(a.clone());
        }
        a
    }
}

#[derive(Default)]
struct Segment {
    offset: u64,
    sealed: bool,
    /// Not sealed, but its writer is gone: nothing more will come.
    abandoned: bool,
    /// Damaged (a skipped range, or a final incomplete tail): kept in
    /// `corrupt/` once its messages are finished.
    corrupt: bool,
    /// The final incomplete tail was logged.
    tail_logged: bool,
    /// Records after `offset` are not read yet: the active window was
    /// full.
    unread: bool,
    /// The messages after `offset` as last counted: the offset, where the
    /// records counted end, and the counts (see [`Engine::unread`]).
    unread_count: std::cell::Cell<Option<(u64, u64, incoming::Unread)>>,
    /// Messages read from it and not finished.
    live: HashSet<QueueId>,
    /// Messages read from it and finished (or living elsewhere now).
    finished: HashSet<QueueId>,
    /// The reader that read it last, kept while its writer may append:
    /// the next scan reads on from it without opening the file again.
    reader: Option<LogReader>,
}

/// One outcome to record and apply.
#[derive(Clone)]
pub(crate) struct Pending {
    id: QueueId,
    rcpt: usize,
    status: DeliveryStatus,
    dsn: crate::outcome::Enhanced,
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
    /// Who decided it, for the metrics: `local`, `smtp`, or qmgr itself
    /// (`error`, `discard`, `none`).
    transport: &'static str,
}

impl Pending {
    /// An outcome qmgr decided itself (a route to `error:`, `discard:`,
    /// a deferral, an agent gone): nothing to forward, no remote server,
    /// logged here.
    fn decided_here(
        id: QueueId,
        rcpt: usize,
        status: DeliveryStatus,
        dsn: crate::outcome::Enhanced,
        reason: String,
        transport: &'static str,
    ) -> Pending {
        Pending {
            id,
            rcpt,
            status,
            dsn,
            reason,
            forward: Vec::new(),
            lists: Vec::new(),
            owner_failures: Vec::new(),
            remote_mta: None,
            diagnostic: None,
            log_here: true,
            transport,
        }
    }
}

pub(crate) struct Engine {
    cfg: Arc<Config>,
    qdir: PathBuf,
    log: LogWriter,
    /// The active window. Boxed: a `Message` is ~400 bytes, and B-tree
    /// nodes filled to about half by IDs in arrival order would hold that
    /// much empty room per message inline (issue 22).
    messages: BTreeMap<QueueId, Box<Message>>,
    segments: BTreeMap<String, Segment>,
    /// The segments in `incoming/` as last listed (see
    /// [`incoming::Listing`]).
    listing: incoming::Listing,
    /// Who goes next, through which slot.
    sched: Scheduler,
    /// The transport table (`relay.transport`, `relay.transport_files`).
    transport: LiveTransport,
    /// Outcomes decided without an agent (`error:`, `discard:`, …).
    decided: Vec<Pending>,
    /// Local's outcomes that wait for the mailbox deliveries local passed
    /// on (`local.mailbox_transport`), by recipient: still active, not
    /// recorded until the smtp agent's answer joins them.
    passes: std::collections::HashMap<(QueueId, usize), Pending>,
    state_bytes: u64,
    last_move_check: u64,
    /// Files to delete once the state log is synced.
    removals: Vec<Removal>,
    /// qmgr's own segments (notifications, forwarded copies).
    notices: Notices,
    /// During recovery: damage found in the state log, to judge each
    /// message by.
    suspect: Option<StateDamage>,
    /// Messages held at recovery because of that damage.
    held_for_damage: usize,
    /// Damaged state files, kept in `corrupt/` at the next compaction.
    damaged_state: HashSet<String>,
    /// The metrics' counts: qmgr's own and those the other roles sent.
    counts: crate::metrics::registry::Registry,
    /// Messages taken in and recipients delivered, per second of the last
    /// minute (`postern status`, `STATUS=`).
    rates: metrics::Rates,
    /// The roles' processes qmgr heard of (start, restarts).
    processes: metrics::Processes,
    /// The active window: what is out of memory, when to scan `deferred/`.
    win: evict::Window,
    /// The deferral reasons the window's messages share.
    reasons: Reasons,
}

/// A file finished messages leave behind.
enum Removal {
    Remove(PathBuf),
    /// A damaged segment, kept in `corrupt/` for inspection and `postern
    /// queue salvage`, with the IDs of the messages read from it (all
    /// finished) beside it.
    Corrupt {
        path: PathBuf,
        done: Vec<QueueId>,
    },
}

impl Engine {
    /// `log` is the state log; `notices` the writer of qmgr's own
    /// segments in `incoming/` (prefix `B`), for the notifications it
    /// queues; `slots` and `smtp_slots` the agents' slots.
    pub(crate) fn new(
        cfg: Arc<Config>,
        log: LogWriter,
        notices: LogWriter,
        slots: Vec<mpsc::Sender<DeliveryRequest>>,
        smtp_slots: Vec<mpsc::Sender<SmtpRequest>>,
    ) -> Engine {
        Engine {
            transport: LiveTransport::from_config(&cfg),
            sched: Scheduler::new(slots, smtp_slots),
            qdir: cfg.queue.directory.clone(),
            cfg,
            log,
            notices: Notices::new(notices),
            messages: BTreeMap::new(),
            segments: BTreeMap::new(),
            listing: Default::default(),
            decided: Vec::new(),
            passes: Default::default(),
            state_bytes: 0,
            last_move_check: 0,
            removals: Vec::new(),
            suspect: None,
            held_for_damage: 0,
            damaged_state: HashSet::new(),
            counts: Default::default(),
            rates: Default::default(),
            processes: metrics::Processes::with_me(),
            win: Default::default(),
            reasons: Reasons::default(),
        }
    }

    /// A reload: `cfg` from the next decision on (back-off, expiry,
    /// notifications, routing: local domains, relay host, transport
    /// table, per-destination limits); the queue directory and the number
    /// of slots stay.
    pub(crate) fn reconfigure(&mut self, cfg: Arc<Config>) {
        if cfg.relay.transport != self.cfg.relay.transport
            || cfg.relay.transport_files != self.cfg.relay.transport_files
        {
            self.transport = LiveTransport::from_config(&cfg);
        }
        self.cfg = cfg;
    }

    pub(crate) fn status(&self) -> QmgrStatus {
        let now = now_micros();
        let numbers = self.queue_numbers();
        let (taken_in, delivered) = self.rates.last_minute(now);
        let e = self.win.evicted;
        let u = self.unread();
        let mut s = QmgrStatus {
            // Out of memory (issue 22): counted, each as one deferred
            // recipient until it is read again; those not read yet from
            // their segments too (one recipient each: the count comes
            // from the headers).
            messages: self.messages.len() + e.deferred + e.held + u.total() + self.win.flushing,
            deferred: e.deferred + u.deferred,
            held: e.held + u.held,
            active_messages: Some(numbers[0].1.messages as usize),
            deferred_messages: Some(numbers[1].1.messages as usize),
            oldest_deferred_secs: numbers[1]
                .1
                .oldest_us
                .map(|a| now.saturating_sub(a) / 1_000_000),
            in_last_minute: Some(taken_in),
            out_last_minute: Some(delivered),
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
    pub(crate) fn live_ids(&self) -> Vec<QueueId> {
        self.messages.keys().cloned().collect()
    }

    pub(crate) fn busy(&self) -> bool {
        self.sched.busy()
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
        let Restored {
            rcpts,
            reasons,
            first_deferred,
            held,
            warned,
        } = Restored::from(&env, r, now);
        let reasons = reasons
            .iter()
            .map(|r| r.as_deref().map(|r| self.reasons.share(r)))
            .collect();
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
        // New mail (not a message recovered at start).
        if now.saturating_sub(env.arrival_us) < 60_000_000 {
            self.rates.note_in(now, 1);
        }
        let held = self.suspect_damage(&id, env.arrival_us) || held;
        if held {
            log::info!(queue_id = id.as_str(); "{id}: on hold");
        }
        for (i, r) in rcpts.iter().enumerate() {
            if let RState::Pending { due } = r
                && !held
            {
                self.sched.schedule(&id, i, *due, now);
            }
        }
        if let Origin::Segment(seg) = &origin
            && let Some(s) = self.segments.get_mut(seg)
        {
            s.live.insert(id.clone());
        }
        self.win.churn += 1;
        self.messages.insert(
            id,
            Box::new(Message {
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
            }),
        );
    }

    /// Whether the state of `id` may have been in a damaged range of
    /// the state log: then it is held rather than perhaps delivered again.
    fn suspect_damage(&mut self, id: &QueueId, arrival_us: u64) -> bool {
        let Some(place) = self
            .suspect
            .as_ref()
            .and_then(|d| d.suspect(id, arrival_us))
            .map(|r| format!("{} offset {}..{}", r.file, r.start, r.end))
        else {
            return false;
        };
        self.held_for_damage += 1;
        log::warn!(
            queue_id = id.as_str();
            "{id}: hold: state log damaged ({place}), delivery status unknown"
        );
        true
    }

    // ---- dispatch ------------------------------------------------------

    /// The time of the next retry, if any.
    pub(crate) fn next_timer(&self) -> Option<u64> {
        self.sched.next_timer()
    }

    async fn append_all(&mut self, records: Vec<StateRecord>, lazy: bool) -> Vec<bool> {
        let encoded: Vec<_> = records.iter().map(StateRecord::encode).collect();
        self.state_bytes += encoded
            .iter()
            .map(|(_, payload)| payload.len() as u64 + 16)
            .sum::<u64>();
        self.log
            .append_all(encoded, lazy)
            .await
            .iter()
            .map(Result::is_ok)
            .collect()
    }

    fn finish(&mut self, id: &QueueId) {
        let Some(m) = self.messages.remove(id) else {
            return;
        };
        self.win.churn += 1;
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
    pub(crate) async fn flush_removals(&mut self) {
        if self.removals.is_empty() {
            return;
        }
        if let Err(e) = self.log.sync().await {
            log::warn!("state log sync failed, files kept for now: {e}");
            return;
        }
        for r in std::mem::take(&mut self.removals) {
            match &r {
                Removal::Remove(p) => match fs::remove_file(p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        log::warn!("cannot remove {}: {e}", p.display());
                    }
                    _ => {}
                },
                Removal::Corrupt { path, done } => {
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    match recover::keep_as_corrupt(&self.qdir, path, Some(done)) {
                        Ok(()) => log::warn!(
                            "{}/{name}: damaged; kept as {}/{name} now that the {} messages \
                             read from it are done (listed in {}/{name}.done); \
                             see postern queue salvage",
                            crate::queue::INCOMING,
                            crate::queue::CORRUPT,
                            done.len(),
                            crate::queue::CORRUPT,
                        ),
                        Err(e) => log::warn!(
                            "{}: damaged, cannot keep it in {}/: {e}",
                            path.display(),
                            crate::queue::CORRUPT
                        ),
                    }
                }
            }
        }
    }

    fn removing(&self, path: &Path) -> bool {
        self.removals.iter().any(
            |r| matches!(r, Removal::Remove(p) | Removal::Corrupt { path: p, .. } if p == path),
        )
    }
}

/// A message's recipients as the state log left them.
struct Restored {
    rcpts: Vec<RState>,
    /// Per recipient, why its last attempt failed.
    reasons: Vec<Option<String>>,
    first_deferred: Option<u64>,
    held: bool,
    warned: bool,
}

impl Restored {
    /// `env`'s recipients all pending now, then as `r`'s records say.
    fn from(env: &Envelope, r: Option<Replayed>, now: u64) -> Restored {
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
        Restored {
            rcpts,
            reasons,
            first_deferred,
            held,
            warned,
        }
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
