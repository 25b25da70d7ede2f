//! The active window (issue 22): at most `queue.active_limit` messages in
//! memory; the rest of the queue waits on disk. Deferred messages leave
//! memory for `deferred/<ID>` (`deferred.rs` writes the files) when the
//! window fills; the deferred scan takes them back, oldest due first, as
//! their next attempt comes; `postern flush` takes them all, a window at a
//! time. Only counters stay in memory for the evicted ones.

use std::collections::{BinaryHeap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::deferred::{
    HELD_MTIME_SECS, Prepared, read_deferred, snapshot_or_default, write_files, write_jobs,
};
use super::{Engine, Origin, RState};
use crate::qmgr::state::{Moved, Replayed, SnapState, StateRecord};
use crate::queue::{DEFERRED, QueueId, now_micros};

/// A message leaves memory only when every pending recipient is due
/// further away than this.
pub(super) const EVICT_HORIZON_US: u64 = 60_000_000;
/// Eviction looks at the window at most this often.
const EVICT_EVERY_US: u64 = 1_000_000;
/// Files written per batch.
const EVICT_BATCH: usize = 2000;
/// A scan that left due files behind is repeated after this, when the
/// window has room again.
const RESCAN_AFTER_US: u64 = 1_000_000;
/// At most this often, the allocator's free memory is given back (see
/// [`Engine::release_memory`]).
const RELEASE_EVERY_US: u64 = 1_000_000;

/// The messages out of the window, in `deferred/`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Evicted {
    pub deferred: usize,
    pub held: usize,
    /// The oldest arrival among the deferred and among the held ones
    /// (from the last scan, and the evictions since).
    pub oldest_deferred_us: Option<u64>,
    pub oldest_held_us: Option<u64>,
}

/// The window's bookkeeping.
#[derive(Default)]
pub(crate) struct Window {
    pub evicted: Evicted,
    pub last_evict: u64,
    /// When `deferred/` was last scanned.
    pub last_scan: Option<u64>,
    /// The last scan left due files behind for want of room.
    pub scan_more: bool,
    pub flush: Option<FlushPass>,
    /// Files the flush pass has still to take (counted as due now, not as
    /// deferred: they were flushed).
    pub flushing: usize,
    /// A segment was left with records unread for want of room.
    pub incoming_waiting: bool,
    /// At start: what the state log says about messages in segments not
    /// read yet.
    pub replay_rest: std::collections::HashMap<QueueId, Replayed>,
    /// The segments there at start: a message in them may have a
    /// `deferred/` file already (a crash before its `Moved` record).
    pub start_segments: HashSet<String>,
    /// The eviction batch being written.
    pub in_flight: Option<InFlight>,
    /// Messages that came into memory or left it since the allocator
    /// last gave its free memory back (see [`Engine::release_memory`]).
    pub churn: usize,
    /// When it last did.
    pub last_release: u64,
}

/// An eviction batch whose files are being written in the background.
/// Its messages are out of `Engine.messages` (counted as evicted, their
/// timers dropped, so the window has their room already) but kept here
/// until their files are in place: one that could not be written comes
/// back. They are not in any segment's list of finished messages yet (a
/// segment stays until they are in `deferred/`), and nothing reads
/// `deferred/` for them meanwhile (see [`Engine::settle_eviction`]).
pub(crate) struct InFlight {
    msgs: Vec<(QueueId, Box<super::Message>)>,
    ids: HashSet<QueueId>,
    task: tokio::task::JoinHandle<Vec<bool>>,
    /// A full batch: more may be evictable.
    full: bool,
}

fn older(o: &mut Option<u64>, a: u64) {
    *o = Some(o.map_or(a, |o| o.min(a)));
}

/// `postern flush` going through `deferred/`.
pub(crate) struct FlushPass {
    entries: fs::ReadDir,
    /// Files changed after this were written after the flush (tried again
    /// since): not taken twice.
    before: SystemTime,
}

/// What a pass over `deferred/` found (files not in memory).
struct ScanResult {
    /// Due files, oldest due first, as many as the window had room for.
    due: Vec<String>,
    /// More files were due than that.
    more: bool,
    evicted: Evicted,
}

impl Engine {
    /// Room left in the window.
    pub(super) fn room(&self) -> usize {
        self.cfg
            .queue
            .active_limit
            .saturating_sub(self.messages.len())
    }

    /// Give the memory the allocator keeps free back to the kernel, at
    /// most once per [`RELEASE_EVERY_US`] and only when messages came into
    /// memory or left it since: an eviction batch, a scan or a flush step
    /// frees and allocates thousands of envelopes, and glibc's malloc
    /// otherwise keeps the free pages of all its arenas, so qmgr's
    /// resident memory would grow to its peak over the whole queue
    /// (issue 22).
    pub(crate) fn release_memory(&mut self) {
        let now = now_micros();
        if self.win.churn == 0 || now.saturating_sub(self.win.last_release) < RELEASE_EVERY_US {
            return;
        }
        self.win.churn = 0;
        self.win.last_release = now;
        crate::sys::release_free_memory();
        if log::log_enabled!(log::Level::Debug) {
            let h = crate::sys::heap_use();
            log::debug!(
                "memory: {} messages in the window, {} KiB allocated, {} KiB free kept by the allocator",
                self.messages.len(),
                h.in_use >> 10,
                h.free_kept >> 10
            );
        }
    }

    /// Whether `m` may leave memory now.
    fn evictable(m: &super::Message, now: u64) -> bool {
        if m.deleted || m.rcpts.contains(&RState::Active) || m.rcpts.iter().all(|r| r.is_final()) {
            return false;
        }
        m.held
            || m.rcpts.iter().all(|r| match r {
                RState::Pending { due } => *due > now + EVICT_HORIZON_US,
                _ => true,
            })
    }

    /// The window's work, once per turn of the main loop: evict when it
    /// is at least half full, take in what waits in segments, go on with
    /// a flush, scan `deferred/` when it is time.
    pub(crate) async fn window(&mut self) {
        let now = now_micros();
        let limit = self.cfg.queue.active_limit;
        if now.saturating_sub(self.win.last_evict) >= EVICT_EVERY_US {
            self.win.last_evict = now;
            if self.messages.len() * 2 >= limit {
                self.evict(now);
            }
        }
        if self.win.incoming_waiting && self.room() > 0 {
            self.scan_incoming(&mut Default::default());
        }
        if self.win.flush.is_some() && self.room() > 0 {
            self.flush_step();
        }
        let run_delay = self.cfg.queue.run_delay.as_micros() as u64;
        let due = match self.win.last_scan {
            None => true,
            Some(t) => {
                now.saturating_sub(t) >= run_delay
                    || (self.win.scan_more
                        && now.saturating_sub(t) >= RESCAN_AFTER_US
                        && self.room() * 2 >= limit.max(2))
            }
        };
        // A flush pass takes every file anyway; the scan after it counts
        // them all again.
        if due && self.win.flush.is_none() {
            self.scan_deferred().await;
        }
    }

    /// Take a batch of evictable messages out of memory and write them to
    /// `deferred/` in the background (dispatch goes on meanwhile; see
    /// [`InFlight`]). One batch at a time.
    fn evict(&mut self, now: u64) {
        if self.win.in_flight.is_some() {
            return;
        }
        let ids: Vec<QueueId> = self
            .messages
            .iter()
            .filter(|(_, m)| Self::evictable(m, now))
            .map(|(id, _)| id.clone())
            .take(EVICT_BATCH)
            .collect();
        if ids.is_empty() {
            return;
        }
        let full = ids.len() == EVICT_BATCH;
        let mut jobs = Vec::with_capacity(ids.len());
        let mut msgs = Vec::with_capacity(ids.len());
        for id in ids {
            let job = match self.eviction_job(&id) {
                Ok(j) => j,
                Err(e) => {
                    log::warn!("{id}: cannot write it to {DEFERRED}/: {e}");
                    continue;
                }
            };
            let Some(m) = self.messages.remove(&id) else {
                continue;
            };
            let e = &mut self.win.evicted;
            if m.held {
                e.held += 1;
                older(&mut e.oldest_held_us, m.env.arrival_us);
            } else {
                e.deferred += 1;
                older(&mut e.oldest_deferred_us, m.env.arrival_us);
            }
            jobs.push(job);
            msgs.push((id, m));
        }
        let gone: Vec<QueueId> = msgs.iter().map(|(id, _)| id.clone()).collect();
        self.sched.forget_many(&gone);
        let n = jobs.len();
        let log = self.log.clone();
        let dir = self.qdir.join(DEFERRED);
        let task = tokio::spawn(async move {
            // Every record the new files' Snapshots reflect is durable
            // first (a file's Snapshot is then never newer than what a
            // power loss leaves of the state log before it).
            if let Err(e) = log.sync().await {
                log::warn!("state log sync failed, nothing moved to {DEFERRED}/ for now: {e}");
                return vec![false; n];
            }
            tokio::task::spawn_blocking(move || write_jobs(&dir, jobs))
                .await
                .unwrap_or_else(|_| vec![false; n])
        });
        let ids = gone.into_iter().collect();
        self.win.in_flight = Some(InFlight {
            msgs,
            ids,
            task,
            full,
        });
    }

    /// Whether message `id` is out of memory with its file being written
    /// (nothing may read its file meanwhile).
    pub(super) fn in_flight(&self, id: &QueueId) -> bool {
        self.win
            .in_flight
            .as_ref()
            .is_some_and(|f| f.ids.contains(id))
    }

    /// Recipient `rcpt` of message `id` deferred until `until` for
    /// `reason`, recorded as an outcome would be.
    #[cfg(test)]
    pub(crate) async fn defer_for_test(
        &mut self,
        id: &QueueId,
        rcpt: usize,
        reason: &str,
        until: u64,
    ) {
        let rec = StateRecord::Deferred(crate::qmgr::state::Outcome {
            id: id.clone(),
            rcpt,
            dsn: "4.4.1".into(),
            reason: reason.into(),
            until,
        });
        assert!(self.append_all(vec![rec], true).await.iter().all(|o| *o));
        let m = self.messages.get_mut(id).expect("in memory");
        m.rcpts[rcpt] = RState::Pending { due: until };
        m.reasons[rcpt] = Some(reason.into());
        self.sched.forget(id);
    }

    /// Whether an eviction batch is being written.
    pub(crate) fn evicting(&self) -> bool {
        self.win.in_flight.is_some()
    }

    /// Finish the eviction batch if its files are written.
    pub(crate) async fn poll_eviction(&mut self) {
        if self
            .win
            .in_flight
            .as_ref()
            .is_some_and(|f| f.task.is_finished())
        {
            self.settle_eviction().await;
        }
    }

    /// Wait for the eviction batch in flight, if any, and finish it: its
    /// `Moved` records; a message whose file could not be written comes
    /// back into memory. Whatever reads `deferred/` or the state log
    /// whole (a scan, a flush, a listing, an administrator's operation,
    /// compaction, the stop) waits for this first.
    pub(crate) async fn settle_eviction(&mut self) {
        let Some(f) = self.win.in_flight.take() else {
            return;
        };
        let n = f.msgs.len();
        let ok = f.task.await.unwrap_or_else(|_| vec![false; n]);
        #[cfg(test)]
        if super::deferred::crash::BEFORE_MOVED.with(|c| c.get()) {
            // The test's kill -9: the files are in place, nothing after.
            return;
        }
        // Lazy: a `Moved` lost in a crash makes a restart load the file
        // and apply the records since the previous one over its Snapshot,
        // which already reflects them.
        let moved = f
            .msgs
            .iter()
            .zip(&ok)
            .filter(|(_, ok)| **ok)
            .map(|((id, _), _)| StateRecord::Moved(Moved { id: id.clone() }))
            .collect();
        if !self.append_all(moved, true).await.iter().all(|o| *o) {
            log::warn!("state log write failed; evicted messages will be loaded at the next start");
        }
        let now = now_micros();
        let mut back = 0;
        self.win.churn += n;
        for ((id, m), ok) in f.msgs.into_iter().zip(ok) {
            if ok {
                if let Origin::Segment(seg) = &m.origin {
                    self.leave_segment(seg, &id);
                }
                continue;
            }
            back += 1;
            self.take_back(id, m, now);
        }
        if back == 0 {
            log::debug!("{n} deferred messages left memory for {DEFERRED}/");
        }
        if f.full {
            // More may be waiting: the next batch without waiting a second.
            self.win.last_evict = 0;
        }
    }

    /// Message `m`, whose file could not be written, back in memory.
    fn take_back(&mut self, id: QueueId, m: Box<super::Message>, now: u64) {
        let e = &mut self.win.evicted;
        if m.held {
            e.held = e.held.saturating_sub(1);
        } else {
            e.deferred = e.deferred.saturating_sub(1);
        }
        let dues: Vec<(usize, u64)> = m
            .rcpts
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                RState::Pending { due } => Some((i, *due)),
                _ => None,
            })
            .collect();
        let held = m.held;
        self.messages.insert(id.clone(), m);
        if !held {
            for (i, due) in dues {
                self.sched.schedule(&id, i, due, now);
            }
        }
    }

    /// Pass over `deferred/` (in a blocking thread): count the files not
    /// in memory, and take in those due within [`EVICT_HORIZON_US`],
    /// oldest due first, as many as there is room for.
    pub(crate) async fn scan_deferred(&mut self) {
        let now = now_micros();
        self.win.last_scan = Some(now);
        // In memory, or being written: counted here, not in the pass.
        let mut in_memory: HashSet<QueueId> = self
            .messages
            .iter()
            .filter(|(_, m)| m.origin == Origin::Deferred)
            .map(|(id, _)| id.clone())
            .collect();
        let mut flying = Evicted::default();
        if let Some(f) = &self.win.in_flight {
            for (id, m) in &f.msgs {
                in_memory.insert(id.clone());
                if m.held {
                    flying.held += 1;
                    older(&mut flying.oldest_held_us, m.env.arrival_us);
                } else {
                    flying.deferred += 1;
                    older(&mut flying.oldest_deferred_us, m.env.arrival_us);
                }
            }
        }
        let dir = self.qdir.join(DEFERRED);
        let room = self.room();
        let found = tokio::task::spawn_blocking(move || {
            scan_dir(&dir, &in_memory, room, now + EVICT_HORIZON_US)
        })
        .await;
        let found = match found {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                log::warn!("cannot scan {DEFERRED}/: {e}");
                return;
            }
            Err(e) => {
                log::warn!("cannot scan {DEFERRED}/: {e}");
                return;
            }
        };
        let mut e = found.evicted;
        e.deferred += flying.deferred;
        e.held += flying.held;
        if let Some(a) = flying.oldest_deferred_us {
            older(&mut e.oldest_deferred_us, a);
        }
        if let Some(a) = flying.oldest_held_us {
            older(&mut e.oldest_held_us, a);
        }
        self.win.evicted = e;
        self.win.scan_more = found.more;
        for name in found.due {
            self.load_evicted(&name, None, false);
        }
    }

    /// Take `deferred/<name>` into memory (with `r`, what the state log
    /// says after its last `Moved`, at start); with `now`, every pending
    /// recipient due now. False when it could not be read.
    pub(super) fn load_evicted(&mut self, name: &str, r: Option<Replayed>, now: bool) -> bool {
        let f = match read_deferred(&self.qdir, name) {
            Ok(f) => f,
            Err(e) => {
                let rel = format!("{DEFERRED}/{name}");
                log::warn!("{rel}: {e}; moved to corrupt/");
                let _ = fs::rename(
                    self.qdir.join(&rel),
                    self.qdir.join(crate::queue::CORRUPT).join(name),
                );
                return false;
            }
        };
        let id = f.env.id.clone();
        if self.messages.contains_key(&id) {
            return true;
        }
        let held_file = f.snapshot.as_ref().is_some_and(|s| s.held);
        let counter = if held_file {
            &mut self.win.evicted.held
        } else if now {
            &mut self.win.flushing
        } else {
            &mut self.win.evicted.deferred
        };
        *counter = counter.saturating_sub(1);
        let r = match (f.snapshot, r) {
            // A file from before the Snapshot: as the state log says.
            (None, r) => r,
            (Some(s), r) => {
                let r = r.unwrap_or_default();
                // Deleted: nothing else applies.
                let mut records = Vec::new();
                if !r.finished {
                    records.push(StateRecord::Snapshot(s.clone()));
                    records.extend(r.records);
                }
                Some(Replayed {
                    moved: true,
                    finished: r.finished,
                    held: r.held_after_move.unwrap_or(s.held),
                    held_known: true,
                    warned: s.warned || r.warned,
                    records,
                    after_move: r.after_move,
                    held_after_move: r.held_after_move,
                })
            }
        };
        self.add_message(f.env, f.content, Origin::Deferred, r);
        if now {
            self.requeue(&id);
        }
        true
    }

    /// `postern flush`: every file in `deferred/` now (not held) is taken
    /// in, due now, a window at a time.
    pub(super) fn start_flush(&mut self) {
        match fs::read_dir(self.qdir.join(DEFERRED)) {
            Ok(entries) => {
                self.win.flush = Some(FlushPass {
                    entries,
                    before: SystemTime::now(),
                });
                // Due now, all of them: not deferred any more.
                let e = &mut self.win.evicted;
                self.win.flushing += std::mem::take(&mut e.deferred);
                e.oldest_deferred_us = None;
                self.flush_step();
            }
            Err(e) => log::warn!("cannot read {DEFERRED}/: {e}"),
        }
    }

    fn flush_step(&mut self) {
        let Some(mut pass) = self.win.flush.take() else {
            return;
        };
        while self.room() > 0 {
            let Some(entry) = pass.entries.next() else {
                log::debug!("flush: went through {DEFERRED}/");
                // Count what is left there again, now.
                self.win.flushing = 0;
                self.win.last_scan = None;
                return;
            };
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(id) = name.parse::<QueueId>() else {
                continue;
            };
            if self.messages.contains_key(&id) || self.in_flight(&id) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let changed = SystemTime::UNIX_EPOCH
                + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec().max(0) as u32);
            if changed > pass.before || meta.mtime().max(0) as u64 >= HELD_MTIME_SECS {
                continue;
            }
            self.load_evicted(&name, None, true);
        }
        self.win.flush = Some(pass);
    }

    /// `postern queue hold | release | requeue` of a message in
    /// `deferred/` and out of memory: its file gets a new Snapshot (and
    /// mtime), then a `Moved` record; released and requeued ones are due
    /// now and the next scan comes soon. True when it changed.
    pub(super) async fn change_evicted(&mut self, id: &QueueId, hold: Option<bool>) -> bool {
        let f = match read_deferred(&self.qdir, id.as_str()) {
            Ok(f) => f,
            Err(e) => {
                log::warn!("{id}: cannot read {DEFERRED}/{id}: {e}");
                return false;
            }
        };
        let mut snap = snapshot_or_default(&f);
        let was_held = snap.held;
        match hold {
            Some(h) if h == snap.held => return false,
            Some(h) => snap.held = h,
            None => {}
        }
        if !snap.held {
            let now = now_micros();
            for r in snap.rcpts.iter_mut() {
                if r.state == SnapState::Pending {
                    r.until = now;
                }
            }
        }
        let mut bytes = match fs::read(self.qdir.join(DEFERRED).join(id.as_str())) {
            Ok(b) => b,
            Err(e) => {
                log::warn!("{id}: cannot read {DEFERRED}/{id}: {e}");
                return false;
            }
        };
        bytes.truncate(f.message_bytes);
        let keep = (0..snap.rcpts.len()).collect();
        let p = match Prepared::new(bytes, &snap, keep) {
            Ok(p) => p,
            Err(e) => {
                log::warn!("{id}: {e}");
                return false;
            }
        };
        let dir = self.qdir.join(DEFERRED);
        let ok = tokio::task::spawn_blocking(move || write_files(&dir, &[p]))
            .await
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(false);
        if !ok {
            return false;
        }
        let moved = StateRecord::Moved(Moved { id: id.clone() });
        if !self.append_all(vec![moved], false).await.iter().all(|o| *o) {
            log::warn!("{id}: state log write failed");
        }
        if was_held != snap.held {
            let e = &mut self.win.evicted;
            if snap.held {
                e.deferred = e.deferred.saturating_sub(1);
                e.held += 1;
                older(&mut e.oldest_held_us, id.micros());
                log::info!("{id}: placed on hold");
            } else {
                e.held = e.held.saturating_sub(1);
                e.deferred += 1;
                older(&mut e.oldest_deferred_us, id.micros());
                log::info!("{id}: released from hold");
            }
        } else {
            log::info!("{id}: requeued");
        }
        if !snap.held {
            self.win.scan_more = true;
            self.win.last_scan = self
                .win
                .last_scan
                .map(|t| t.min(now_micros() - RESCAN_AFTER_US));
        }
        true
    }

    /// `postern queue delete` of a message out of memory: the `Admin`
    /// record, then its files go once it is synced.
    pub(super) async fn delete_evicted(&mut self, id: &QueueId) -> bool {
        let f = match read_deferred(&self.qdir, id.as_str()) {
            Ok(f) => f,
            Err(e) => {
                log::warn!("{id}: cannot read {DEFERRED}/{id}: {e}");
                return false;
            }
        };
        // `Moved` first (its own append: the records of one batch may land
        // in any order): a restart then knows the delete is about the file
        // (see `recover`).
        let moved = StateRecord::Moved(Moved { id: id.clone() });
        let record = StateRecord::Admin(crate::qmgr::state::Admin {
            id: id.clone(),
            op: crate::qmgr::state::AdminOp::Delete,
        });
        if !self
            .append_all(vec![moved], false)
            .await
            .iter()
            .all(|ok| *ok)
            || !self
                .append_all(vec![record], false)
                .await
                .iter()
                .all(|ok| *ok)
        {
            log::warn!("{id}: state log write failed; Delete not done");
            return false;
        }
        let e = &mut self.win.evicted;
        if f.snapshot.as_ref().is_some_and(|s| s.held) {
            e.held = e.held.saturating_sub(1);
        } else {
            e.deferred = e.deferred.saturating_sub(1);
        }
        log::info!(queue_id = id.as_str(); "{id}: removed");
        self.remove_content(&f.content, &Origin::Deferred, id);
        true
    }

    /// The IDs of the messages in `deferred/` and out of memory.
    pub(super) fn evicted_ids(&self) -> Vec<QueueId> {
        let Ok(rd) = fs::read_dir(self.qdir.join(DEFERRED)) else {
            return Vec::new();
        };
        let mut ids: Vec<QueueId> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<QueueId>().ok())
            .filter(|id| !self.messages.contains_key(id))
            .collect();
        ids.sort();
        ids
    }
}

/// The pass over `deferred/` (see [`Engine::scan_deferred`]).
fn scan_dir(
    dir: &Path,
    in_memory: &HashSet<QueueId>,
    room: usize,
    due_by_us: u64,
) -> std::io::Result<ScanResult> {
    let mut heap: BinaryHeap<(u64, String)> = BinaryHeap::new();
    let mut evicted = Evicted::default();
    let mut due_count = 0;
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(id) = name.parse::<QueueId>() else {
            continue;
        };
        if in_memory.contains(&id) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let mtime_us = (meta.mtime().max(0) as u64)
            .saturating_mul(1_000_000)
            .saturating_add(meta.mtime_nsec().max(0) as u64 / 1000);
        if mtime_us >= HELD_MTIME_SECS * 1_000_000 {
            evicted.held += 1;
            older(&mut evicted.oldest_held_us, id.micros());
            continue;
        }
        evicted.deferred += 1;
        older(&mut evicted.oldest_deferred_us, id.micros());
        if mtime_us > due_by_us {
            continue;
        }
        due_count += 1;
        if heap.len() < room {
            heap.push((mtime_us, name));
        } else if let Some(top) = heap.peek()
            && top.0 > mtime_us
        {
            heap.pop();
            heap.push((mtime_us, name));
        }
    }
    let due: Vec<String> = heap.into_sorted_vec().into_iter().map(|(_, n)| n).collect();
    Ok(ScanResult {
        more: due_count > due.len(),
        due,
        evicted,
    })
}
