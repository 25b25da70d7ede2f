//! Recovery at start: replay the state log (resynchronising over damage,
//! and judging which messages it may have cost their state, see
//! [`crate::qmgr::damage`]), load `deferred/` and the segments, then
//! compact the state log into a snapshot; and compaction later on.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::time::Duration;

use super::incoming::read_range;
use super::{Engine, Origin, sorted_files};
use crate::qmgr::damage::StateDamage;
use crate::qmgr::state::{Admin, AdminOp, Replayed, Snapshot, StateRecord, replay_one, written_at};
use crate::queue::record::{EndState, Entry, LogReader, RecordType};
use crate::queue::{CORRUPT, ContentRef, DEFERRED, INCOMING, QueueId, STATE};

/// Compact the state log once this many bytes were appended since the last
/// snapshot. A restart replays at most this much (what it says about each
/// message in a map while it reads), so this bounds the restart's memory,
/// not the queue (issue 22: evicted messages are in no snapshot, their
/// files describe them); a compaction writes a snapshot of the active
/// window only.
pub(super) const COMPACT_AFTER_BYTES: u64 = 16 << 20;
/// Largest damaged range of the state log read again to tell which
/// messages its records were about.
const FORENSIC_MAX: u64 = 1 << 20;

impl Engine {
    /// Rebuild the state from disk, then compact the state log.
    pub(crate) async fn recover(&mut self) -> std::io::Result<()> {
        let state_dir = self.qdir.join(STATE);
        let old_state = sorted_files(&state_dir, |n| n.ends_with(".log"))?;
        let (mut replayed, damage) = self.read_state(&old_state);
        if !damage.is_empty() {
            self.suspect = Some(damage);
        }

        // deferred/: a file is loaded only when the state log says
        // something about it after its last `Moved` (or damage may have
        // hidden that); the others stay on disk, found by the scan below.
        let deferred_dir = self.qdir.join(DEFERRED);
        for name in sorted_files(&deferred_dir, |n| n.parse::<QueueId>().is_ok())? {
            let Ok(id) = name.parse::<QueueId>() else {
                continue;
            };
            // Records about a segment copy (no `Moved`) are older than
            // the file: it is in charge.
            let r = replayed.remove(&id).filter(|r| r.moved);
            let suspect = self
                .suspect
                .as_ref()
                .is_some_and(|d| d.suspect(&id, id.micros()).is_some());
            if suspect || r.as_ref().is_some_and(|r| r.after_move || r.finished) {
                self.load_evicted(&name, r, false);
            }
        }
        self.win.start_segments = sorted_files(&self.qdir.join(INCOMING), |n| n.ends_with(".log"))
            .unwrap_or_default()
            .into_iter()
            .collect();
        self.scan_incoming(&mut replayed);
        if self.win.incoming_waiting {
            self.win.replay_rest = replayed;
        }
        if self.suspect.take().is_some() {
            let held = self.held_for_damage;
            log::warn!(
                "state log damaged: {held} message{} held, delivery status unknown; \
                 check them (postern queue list, postern queue show ID) and release them \
                 (postern queue release ID) or delete them",
                if held == 1 { "" } else { "s" }
            );
        }
        self.remove_orphan_files();
        self.compact(old_state).await;
        self.flush_removals().await;
        self.scan_deferred().await;
        Ok(())
    }

    /// Every record of the state files `names` (in order), and the damage
    /// found in them. A damaged file is kept (see `compact`).
    fn read_state(&mut self, names: &[String]) -> (HashMap<QueueId, Replayed>, StateDamage) {
        let dir = self.qdir.join(STATE);
        let mut records = HashMap::new();
        let mut damage = StateDamage::default();
        for (no, name) in names.iter().enumerate() {
            let rel = format!("{STATE}/{name}");
            let path = dir.join(name);
            let created = name
                .strip_suffix(".log")
                .and_then(|n| n.parse::<QueueId>().ok())
                .map_or(0, |id| id.micros());
            damage.next_file(no, created);
            let mut reader = match LogReader::open(&path, 0) {
                Ok(r) => r,
                Err(e) => {
                    log::warn!("{rel}: cannot read it: {e}; treated as damaged");
                    damage.damaged(&rel, 0, u64::MAX, None);
                    self.damaged_state.insert(name.clone());
                    continue;
                }
            };
            loop {
                match reader.next_entry() {
                    // The writer seals a state file when it moves on to
                    // the next (`max_segment_bytes`): not a state record.
                    Ok(Some(Entry::Record(rec))) if rec.rtype == RecordType::Seal => {}
                    Ok(Some(Entry::Record(rec))) => {
                        let t = rec.rtype;
                        match StateRecord::decode(t, &rec.payload) {
                            Some(r) => {
                                damage.record(rec.offset, &r, written_at(&rec.payload));
                                replay_one(&mut records, r);
                            }
                            None => log::warn!(
                                "{rel}: offset {}: unreadable record of type {t:?} ignored",
                                rec.offset
                            ),
                        }
                    }
                    Ok(Some(Entry::Skipped(s))) => {
                        let bytes = (s.len() <= FORENSIC_MAX)
                            .then(|| read_range(&path, s.start, s.len()).ok())
                            .flatten();
                        damage.damaged(&rel, s.start, s.end, bytes.as_deref());
                        let about = match damage.last().and_then(|r| r.ids.as_ref()) {
                            Some(ids) => format!(
                                "records about {}",
                                ids.iter()
                                    .map(|i| i.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            None => "which messages they were about is unknown".into(),
                        };
                        log::warn!(
                            "{rel}: {s}; at least {} state record{} lost ({about})",
                            s.records_at_least(),
                            if s.records_at_least() == 1 { "" } else { "s" }
                        );
                        self.damaged_state.insert(name.clone());
                    }
                    Ok(None) => break,
                    Err(e) => {
                        log::warn!(
                            "{rel}: read error at offset {}: {e}; the rest is treated as damaged",
                            reader.offset()
                        );
                        damage.damaged(&rel, reader.offset(), u64::MAX, None);
                        self.damaged_state.insert(name.clone());
                        break;
                    }
                }
            }
            if let EndState::Incomplete { offset } = reader.end_state() {
                let len = fs::metadata(&path).map_or(offset, |m| m.len());
                log::warn!(
                    "{rel}: incomplete record at offset {offset}, {} bytes to the end of the file: \
                     a write cut short by a crash (an outcome in it may be repeated) \
                     or the file was truncated",
                    len.saturating_sub(offset)
                );
                self.damaged_state.insert(name.clone());
            }
        }
        (records, damage)
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
            // An evicted message's content (its file in deferred/ names it).
            let evicted = name
                .strip_suffix(".msg")
                .is_some_and(|id| self.qdir.join(DEFERRED).join(id).exists());
            if old && !used.contains(&rel) && !evicted {
                log::info!("removing orphan {rel}");
                let _ = fs::remove_file(dir.join(&name));
            }
        }
    }

    /// Write a snapshot of every live message (and tombstones for finished
    /// messages whose segments remain) and delete the state files `old`
    /// (those found damaged go to `corrupt/` instead).
    async fn compact(&mut self, old: Vec<String>) {
        let _ = self.log.seal().await;
        // A record per message made and dropped: memory to give back.
        self.win.churn += 1;
        let mut recs = Vec::new();
        // A message moved out of its segment and in memory again is
        // described by its Snapshot below (records in one batch may land
        // in any order: no tombstone for it).
        for seg in self.segments.values() {
            for id in seg
                .finished
                .iter()
                .filter(|id| !self.messages.contains_key(*id))
            {
                recs.push(StateRecord::Snapshot(Snapshot::finished(id.clone())));
            }
        }
        for (id, m) in &self.messages {
            let rcpts = m
                .rcpts
                .iter()
                .zip(m.reasons.iter().map(|r| r.as_deref().map(String::from)))
                .map(|(r, reason)| super::deferred::snap_rcpt(r, reason))
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
        // The records of one batch may land in any order: each message's
        // `Moved` (and flags) before its outcomes.
        let (flags, outcomes) = self.rest_records();
        let mut ok = self.append_all(recs, false).await;
        ok.extend(self.append_all(flags, false).await);
        ok.extend(self.append_all(outcomes, false).await);
        if !ok.iter().all(|ok| *ok) {
            log::warn!("state log snapshot failed; keeping the old state files");
            return;
        }
        let dir = self.qdir.join(STATE);
        for name in old {
            if self.damaged_state.contains(&name) {
                match keep_as_corrupt(&self.qdir, &dir.join(&name), None) {
                    Ok(()) => {
                        log::warn!("{STATE}/{name}: damaged; kept as {CORRUPT}/{name}");
                        self.damaged_state.remove(&name);
                    }
                    Err(e) => {
                        log::warn!("{STATE}/{name}: damaged, cannot keep it in {CORRUPT}/: {e}")
                    }
                }
                continue;
            }
            let _ = fs::remove_file(dir.join(name));
        }
        self.state_bytes = 0;
    }

    /// What the state log said about messages not read yet (the window
    /// was full at start), for the snapshot: their `Moved`, flags and
    /// finished snapshots, then their outcomes.
    fn rest_records(&self) -> (Vec<StateRecord>, Vec<StateRecord>) {
        let mut out = Vec::new();
        let mut outcomes = Vec::new();
        for (id, r) in &self.win.replay_rest {
            if r.finished {
                out.push(StateRecord::Snapshot(Snapshot::finished(id.clone())));
                continue;
            }
            if r.moved {
                out.push(StateRecord::Moved(crate::qmgr::state::Moved {
                    id: id.clone(),
                }));
            }
            if r.held_known {
                let op = if r.held {
                    AdminOp::Hold
                } else {
                    AdminOp::Release
                };
                out.push(StateRecord::Admin(Admin { id: id.clone(), op }));
            }
            if r.warned {
                out.push(StateRecord::Warned(crate::qmgr::state::Moved {
                    id: id.clone(),
                }));
            }
            outcomes.extend(r.records.iter().cloned());
        }
        (out, outcomes)
    }

    pub(crate) async fn maybe_compact(&mut self) {
        // Deliveries in flight are snapshotted as pending; their outcomes
        // are appended after the snapshot, so compaction need not wait.
        if self.state_bytes < COMPACT_AFTER_BYTES {
            return;
        }
        // The batch's messages are in no snapshot until their files are.
        self.settle_eviction().await;
        match sorted_files(&self.qdir.join(STATE), |n| n.ends_with(".log")) {
            Ok(old) => self.compact(old).await,
            Err(e) => log::warn!("cannot list state files: {e}"),
        }
    }
}

/// Moves a damaged file into `corrupt/` (under its own name), after
/// writing `done` (the IDs of the messages read from it that are finished)
/// beside it as `<name>.done`, for `postern queue salvage`. Durable before
/// it returns.
pub(super) fn keep_as_corrupt(
    qdir: &Path,
    path: &Path,
    done: Option<&[QueueId]>,
) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let corrupt = qdir.join(CORRUPT);
    if let Some(done) = done {
        let mut list = String::new();
        for id in done {
            list.push_str(id.as_str());
            list.push('\n');
        }
        let mut side = name.to_os_string();
        side.push(".done");
        let target = corrupt.join(&side);
        side.push(".tmp");
        let tmp = corrupt.join(&side);
        let mut f = fs::File::create(&tmp)?;
        f.write_all(list.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &target)?;
    }
    fs::rename(path, corrupt.join(name))?;
    fs::File::open(&corrupt)?.sync_all()?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
