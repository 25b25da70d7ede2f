//! The administrator's operations on messages (`postern queue hold |
//! release | delete | requeue ID… | ALL`), Postfix's postsuper -h / -H / -d
//! and postqueue -i. Hold, release and delete are recorded durably in the
//! state log before they take effect; requeue only changes times.

use std::collections::HashSet;
use std::path::PathBuf;

use super::deferred::{read_deferred, snapshot_or_default};
use super::{Engine, RState};
use crate::ipc::{QueueAction, QueueEntry, QueueOpResult, QueueRecipient};
use crate::qmgr::state::{Admin, AdminOp, SnapState, StateRecord};
use crate::queue::{DEFERRED, QueueId, now_micros};

/// The part of a listing read from `deferred/`: the messages out of
/// memory.
pub(crate) struct EvictedListing {
    qdir: PathBuf,
    in_memory: HashSet<QueueId>,
    /// Segments with records not read yet (the window was full), from
    /// where.
    unread: Vec<(String, u64)>,
    /// What the state log says about some of those: finished or moved
    /// (not listed), held, deferred before a restart.
    unread_state: std::collections::HashMap<QueueId, UnreadState>,
}

/// See [`EvictedListing::unread_state`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum UnreadState {
    Gone,
    Held,
    Deferred,
}

impl EvictedListing {
    /// Read every file in `deferred/` of a message not in memory, and the
    /// messages not read yet from segments (`incoming`), blocking.
    #[cfg(test)]
    pub(crate) fn read(self) -> Vec<QueueEntry> {
        let mut out = Vec::new();
        self.read_chunks(|chunk| {
            out.extend(chunk);
            true
        });
        out
    }

    /// Read every file in `deferred/` of a message not in memory, and the
    /// messages not read yet from segments (`incoming`), blocking; handed
    /// to `sink` a few thousand at a time (so a listing of a million
    /// messages never sits in qmgr's memory whole), until it says stop.
    pub(crate) fn read_chunks(self, mut sink: impl FnMut(Vec<QueueEntry>) -> bool) {
        if !self.read_unread(&mut sink) {
            return;
        }
        let Ok(rd) = std::fs::read_dir(self.qdir.join(DEFERRED)) else {
            return;
        };
        // A chunk of names at a time from the directory: never every name
        // of a million-message queue at once.
        let mut names = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.parse::<QueueId>()
                    .is_ok_and(|id| !self.in_memory.contains(&id))
            });
        let qdir = &self.qdir;
        loop {
            let names: Vec<String> = names.by_ref().take(LIST_CHUNK).collect();
            if names.is_empty() {
                return;
            }
            // A few readers at once: each file is an open and a page.
            let per = names.len().div_ceil(LIST_READERS).max(1);
            let mut out = Vec::with_capacity(names.len());
            std::thread::scope(|s| {
                let parts: Vec<_> = names
                    .chunks(per)
                    .map(|names| {
                        s.spawn(move || names.iter().filter_map(|n| listed(qdir, n)).collect())
                    })
                    .collect();
                for p in parts {
                    let part: Vec<QueueEntry> = p.join().unwrap_or_default();
                    out.extend(part);
                }
            });
            if !sink(out) {
                return;
            }
        }
    }

    /// The messages not read yet from segments, to `sink` a chunk at a
    /// time; false when it said stop.
    fn read_unread(&self, sink: &mut impl FnMut(Vec<QueueEntry>) -> bool) -> bool {
        use crate::queue::message::decode_message;
        use crate::queue::record::{LogReader, RecordType};
        let mut out = Vec::new();
        for (name, offset) in &self.unread {
            let rel = format!("{}/{name}", crate::queue::INCOMING);
            let Ok(mut r) = LogReader::open(&self.qdir.join(&rel), *offset) else {
                continue;
            };
            while let Ok(Some(rec)) = r.next_record() {
                if rec.rtype != RecordType::Message {
                    continue;
                }
                let Ok((env, _)) = decode_message(&rec.payload, rec.payload_offset(), &rel) else {
                    continue;
                };
                let queue_name = match self.unread_state.get(&env.id) {
                    Some(UnreadState::Gone) => continue,
                    Some(UnreadState::Held) => "hold",
                    Some(UnreadState::Deferred) => "deferred",
                    None => "incoming",
                };
                if out.len() >= LIST_CHUNK && !sink(std::mem::take(&mut out)) {
                    return false;
                }
                out.push(QueueEntry {
                    queue_name: queue_name.into(),
                    queue_id: env.id.to_string(),
                    arrival_time: env.arrival_us / 1_000_000,
                    message_size: env.size,
                    forced_expire: false,
                    sender: env.sender.clone(),
                    recipients: env
                        .recipients
                        .iter()
                        .map(|r| QueueRecipient {
                            address: r.address.clone(),
                            delay_reason: None,
                        })
                        .collect(),
                });
            }
        }
        sink(out)
    }
}

/// Threads reading `deferred/` for a listing.
const LIST_READERS: usize = 4;
/// Entries read and written out at a time.
const LIST_CHUNK: usize = 2048;

/// Write a listing to `w` as one JSON array on one line (what
/// `ipc::write_line` of the whole `Vec` would write): `entries`, then what
/// `rest` reads, a chunk at a time.
pub(crate) async fn write_listing<W>(
    w: &mut W,
    entries: Vec<QueueEntry>,
    rest: EvictedListing,
) -> std::io::Result<()>
where
    W: tokio::io::AsyncWriteExt + Unpin,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<QueueEntry>>(2);
    let reader =
        tokio::task::spawn_blocking(move || rest.read_chunks(|c| tx.blocking_send(c).is_ok()));
    let mut buf = b"[".to_vec();
    let mut first = true;
    let mut put = |buf: &mut Vec<u8>, e: &QueueEntry| -> std::io::Result<()> {
        if !std::mem::take(&mut first) {
            buf.push(b',');
        }
        serde_json::to_writer(&mut *buf, e).map_err(std::io::Error::other)
    };
    for e in &entries {
        put(&mut buf, e)?;
    }
    drop(entries);
    w.write_all(&buf).await?;
    while let Some(chunk) = rx.recv().await {
        buf.clear();
        for e in &chunk {
            put(&mut buf, e)?;
        }
        w.write_all(&buf).await?;
    }
    let _ = reader.await;
    w.write_all(b"]\n").await?;
    w.flush().await
}

/// The listing of `deferred/<name>`; None when it is gone meanwhile
/// (delivered, or taken into memory) or unreadable.
fn listed(qdir: &std::path::Path, name: &str) -> Option<QueueEntry> {
    let f = read_deferred(qdir, name).ok()?;
    let snap = snapshot_or_default(&f);
    let recipients = snap
        .rcpts
        .iter()
        .zip(&f.env.recipients)
        .filter(|(r, _)| r.state == SnapState::Pending)
        .map(|(r, rcpt)| QueueRecipient {
            address: rcpt.address.clone(),
            delay_reason: r.reason.clone(),
        })
        .collect();
    Some(QueueEntry {
        queue_name: if snap.held { "hold" } else { "deferred" }.into(),
        queue_id: f.env.id.to_string(),
        arrival_time: f.env.arrival_us / 1_000_000,
        message_size: f.env.size,
        forced_expire: false,
        sender: f.env.sender.clone(),
        recipients,
    })
}

/// Merge the two parts of a listing, in arrival order.
#[cfg(test)]
pub(crate) fn merge_listing(mut a: Vec<QueueEntry>, b: Vec<QueueEntry>) -> Vec<QueueEntry> {
    a.extend(b);
    a.sort_by(|x, y| x.queue_id.cmp(&y.queue_id));
    a.dedup_by(|x, y| x.queue_id == y.queue_id);
    a
}

impl Engine {
    /// The queue as `mailq` shows it: every message with recipients still
    /// to deliver, in arrival order. The messages in memory now; those in
    /// `deferred/` out of memory are read by the [`EvictedListing`] (in a
    /// blocking thread, so qmgr goes on meanwhile).
    pub(crate) fn listing_parts(&self) -> (Vec<QueueEntry>, EvictedListing) {
        let rest = EvictedListing {
            qdir: self.qdir.clone(),
            in_memory: self.messages.keys().cloned().collect(),
            unread: self
                .segments
                .iter()
                .filter(|(_, s)| s.unread)
                .map(|(n, s)| (n.clone(), s.offset))
                .collect(),
            unread_state: self
                .win
                .replay_rest
                .iter()
                .filter_map(|(id, r)| {
                    let st = if r.finished || r.moved {
                        UnreadState::Gone
                    } else if r.held {
                        UnreadState::Held
                    } else if !r.records.is_empty() {
                        UnreadState::Deferred
                    } else {
                        return None;
                    };
                    Some((id.clone(), st))
                })
                .collect(),
        };
        (self.listing_in_memory(), rest)
    }

    /// The whole listing at once (reading `deferred/` here).
    #[cfg(test)]
    pub(crate) fn listing(&self) -> Vec<QueueEntry> {
        let (a, b) = self.listing_parts();
        merge_listing(a, b.read())
    }

    fn listing_in_memory(&self) -> Vec<QueueEntry> {
        let now = now_micros();
        self.messages
            .iter()
            .map(|(id, m)| {
                let queue_name = super::metrics::queue_of(m, now);
                let recipients = m
                    .rcpts
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| !r.is_final())
                    .map(|(i, _)| QueueRecipient {
                        address: m.env.recipients[i].address.clone(),
                        delay_reason: m
                            .reasons
                            .get(i)
                            .and_then(|r| r.as_deref().map(String::from)),
                    })
                    .collect();
                QueueEntry {
                    queue_name: queue_name.into(),
                    queue_id: id.to_string(),
                    arrival_time: m.env.arrival_us / 1_000_000,
                    message_size: m.env.size,
                    forced_expire: false,
                    sender: m.env.sender.clone(),
                    recipients,
                }
            })
            .collect()
    }

    /// One message for `postern queue show`.
    pub(crate) fn show(&self, id: &str) -> Option<crate::ipc::ShownMessage> {
        let id: QueueId = id.parse().ok()?;
        let Some(m) = self.messages.get(&id) else {
            return self.show_evicted(&id);
        };
        let content = shown_content(&self.qdir, &m.content);
        let states = m
            .rcpts
            .iter()
            .map(|r| match r {
                RState::Pending { .. } => "pending",
                RState::Active => "active",
                RState::Done => "delivered",
                RState::Bounced => "bounced",
            })
            .map(String::from)
            .collect();
        Some(crate::ipc::ShownMessage {
            envelope: m.env.clone(),
            states,
            content,
        })
    }

    pub(crate) async fn queue_op(&mut self, action: QueueAction, ids: &[String]) -> QueueOpResult {
        let mut result = QueueOpResult::default();
        // An evicted message's file is in place before it is acted on.
        self.settle_eviction().await;
        let all = ids.iter().any(|i| i == "ALL");
        if action == QueueAction::Requeue && all {
            // `postern flush`: the dead next hops are tried again too.
            self.sched.out.revive_all();
        }
        let (targets, evicted, unread) = if all {
            let in_memory = self.messages.keys().cloned().collect();
            let evicted = if action == QueueAction::Requeue {
                // `postern flush`: the pass through deferred/ takes them.
                let n = self.win.evicted.deferred;
                result.affected += n;
                self.start_flush();
                Vec::new()
            } else {
                self.evicted_ids()
            };
            (in_memory, evicted, self.unread_ids())
        } else {
            let (mut t, mut e, mut u) = (Vec::new(), Vec::new(), Vec::new());
            let mut in_segments: Option<HashSet<QueueId>> = None;
            for raw in ids {
                match raw.parse::<QueueId>() {
                    Ok(id) if self.messages.contains_key(&id) => t.push(id),
                    Ok(id) if super::deferred::deferred_path(&self.qdir, &id).exists() => {
                        e.push(id)
                    }
                    Ok(id)
                        if in_segments
                            .get_or_insert_with(|| self.unread_ids().into_iter().collect())
                            .contains(&id) =>
                    {
                        u.push(id)
                    }
                    _ => result.unknown.push(raw.clone()),
                }
            }
            (t, e, u)
        };
        // Not read yet from their segments: recorded now, applied when
        // they are read.
        result.affected += self.op_unread(action, unread).await;
        for id in targets {
            if self.apply_op(action, &id).await {
                result.affected += 1;
            }
        }
        // Out of memory: acted on in their files.
        for id in evicted {
            let changed = match action {
                QueueAction::Delete => self.delete_evicted(&id).await,
                QueueAction::Hold => self.change_evicted(&id, Some(true)).await,
                QueueAction::Release => self.change_evicted(&id, Some(false)).await,
                QueueAction::Requeue => self.change_evicted(&id, None).await,
            };
            if changed {
                result.affected += 1;
            }
        }
        result
    }

    /// `action` on messages not read yet from their segments (the window
    /// was full): the `Admin` records, durable, then what they say is kept
    /// with what the state log said about them at start, applied when
    /// they are read (and kept by compaction meanwhile). A requeue has
    /// nothing to do: they are due as soon as they are read. How many
    /// changed.
    async fn op_unread(&mut self, action: QueueAction, ids: Vec<QueueId>) -> usize {
        let op = match action {
            QueueAction::Hold => AdminOp::Hold,
            QueueAction::Release => AdminOp::Release,
            QueueAction::Delete => AdminOp::Delete,
            QueueAction::Requeue => {
                let rest = &self.win.replay_rest;
                return ids
                    .iter()
                    .filter(|id| !rest.get(*id).is_some_and(|r| r.held))
                    .count();
            }
        };
        let ids: Vec<QueueId> = ids
            .into_iter()
            .filter(|id| {
                let held = self.win.replay_rest.get(id).is_some_and(|r| r.held);
                match op {
                    AdminOp::Hold => !held,
                    AdminOp::Release => held,
                    AdminOp::Delete => true,
                }
            })
            .collect();
        let records = ids
            .iter()
            .map(|id| StateRecord::Admin(Admin { id: id.clone(), op }))
            .collect();
        let ok = self.append_all(records, false).await;
        let mut changed = 0;
        for (id, ok) in ids.into_iter().zip(ok) {
            if !ok {
                log::warn!("{id}: state log write failed; {op:?} not done");
                continue;
            }
            let r = self.win.replay_rest.entry(id.clone()).or_default();
            match op {
                AdminOp::Hold | AdminOp::Release => {
                    let hold = op == AdminOp::Hold;
                    (r.held, r.held_known, r.held_after_move) = (hold, true, Some(hold));
                    if hold {
                        log::info!("{id}: placed on hold");
                    } else {
                        log::info!("{id}: released from hold");
                    }
                }
                AdminOp::Delete => {
                    r.finished = true;
                    r.records.clear();
                    log::info!(queue_id = id.as_str(); "{id}: removed");
                }
            }
            changed += 1;
        }
        self.forget_unread_counts();
        changed
    }

    /// One message; true when it changed.
    async fn apply_op(&mut self, action: QueueAction, id: &QueueId) -> bool {
        let Some(m) = self.messages.get(id) else {
            return false;
        };
        let op = match action {
            QueueAction::Hold if !m.held => AdminOp::Hold,
            QueueAction::Release if m.held => AdminOp::Release,
            QueueAction::Delete => AdminOp::Delete,
            QueueAction::Requeue => {
                self.requeue(id);
                return true;
            }
            QueueAction::Hold | QueueAction::Release => return false,
        };
        let record = StateRecord::Admin(Admin { id: id.clone(), op });
        if !self
            .append_all(vec![record], false)
            .await
            .iter()
            .all(|ok| *ok)
        {
            log::warn!("{id}: state log write failed; {op:?} not done");
            return false;
        }
        let Some(m) = self.messages.get_mut(id) else {
            return false;
        };
        match op {
            AdminOp::Hold => {
                m.held = true;
                log::info!("{id}: placed on hold");
            }
            AdminOp::Release => {
                m.held = false;
                log::info!("{id}: released from hold");
                self.requeue(id);
            }
            AdminOp::Delete => {
                m.deleted = true;
                for r in m.rcpts.iter_mut() {
                    if matches!(r, RState::Pending { .. }) {
                        *r = RState::Bounced;
                    }
                }
                if m.rcpts.iter().all(|r| r.is_final()) {
                    self.finish(id);
                }
            }
        }
        true
    }

    /// Every waiting recipient of the message is due now.
    pub(super) fn requeue(&mut self, id: &QueueId) {
        let now = now_micros();
        let Some(m) = self.messages.get_mut(id) else {
            return;
        };
        let mut due = Vec::new();
        for (i, r) in m.rcpts.iter_mut().enumerate() {
            if let RState::Pending { .. } = r {
                *r = RState::Pending { due: now };
                due.push(i);
            }
        }
        if !due.is_empty() && !m.held {
            log::info!("{id}: requeued");
        }
        for i in due {
            self.sched.schedule(id, i, now, now);
        }
    }
}

impl Engine {
    /// `postern queue show` of a message out of memory.
    fn show_evicted(&self, id: &QueueId) -> Option<crate::ipc::ShownMessage> {
        let f = read_deferred(&self.qdir, id.as_str()).ok()?;
        let snap = snapshot_or_default(&f);
        let content = shown_content(&self.qdir, &f.content);
        let states = snap
            .rcpts
            .iter()
            .map(|r| match r.state {
                SnapState::Pending => "pending",
                SnapState::Done => "delivered",
                SnapState::Bounced => "bounced",
            })
            .map(String::from)
            .collect();
        Some(crate::ipc::ShownMessage {
            envelope: f.env,
            states,
            content,
        })
    }
}

/// A message's content for `postern queue show`, or what kept it from
/// being read.
fn shown_content(qdir: &std::path::Path, content: &crate::queue::ContentRef) -> String {
    super::read_content(qdir, content)
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .unwrap_or_else(|e| format!("(cannot read the content: {e})"))
}
