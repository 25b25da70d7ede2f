//! The scheduler: which recipient goes next and through which slot.
//! Recipients that are due wait in `ready`, the others under their retry
//! time in `timers`; routed ones wait for a local slot (`local_ready`) or
//! an smtp slot ([`Outbound`]). The queue state (messages, segments, the
//! state log) is the engine's; entries here are `(message, recipient
//! index)` and may go stale, so dispatch checks each against that state
//! when it comes up.

use std::collections::{BTreeMap, VecDeque};

use tokio::sync::mpsc;

use super::UNAVAILABLE_LOG_US;
use super::dispatch::Outbound;
use crate::ipc::{DeliveryRequest, SmtpRequest};
use crate::queue::QueueId;

pub(crate) struct Scheduler {
    /// Due now, not routed yet.
    pub(super) ready: VecDeque<(QueueId, usize)>,
    pub(super) timers: BTreeMap<u64, Vec<(QueueId, usize)>>,
    /// The local agent's slots.
    pub(super) slots: Vec<mpsc::Sender<DeliveryRequest>>,
    pub(super) idle: Vec<usize>,
    /// Routed to local, waiting for a slot.
    pub(super) local_ready: VecDeque<(QueueId, usize)>,
    /// When "the local agent is unavailable" was last logged: once per
    /// [`UNAVAILABLE_LOG_US`], not once per waiting recipient.
    local_unavailable_logged: Option<u64>,
    /// The smtp agent's slots and what waits for them.
    pub(super) out: Outbound,
}

impl Scheduler {
    pub(super) fn new(
        slots: Vec<mpsc::Sender<DeliveryRequest>>,
        smtp_slots: Vec<mpsc::Sender<SmtpRequest>>,
    ) -> Scheduler {
        Scheduler {
            ready: VecDeque::new(),
            timers: BTreeMap::new(),
            idle: (0..slots.len()).rev().collect(),
            slots,
            local_ready: VecDeque::new(),
            local_unavailable_logged: None,
            out: Outbound::new(smtp_slots),
        }
    }

    /// Recipient `rcpt` of `id` is due at `due`.
    pub(super) fn schedule(&mut self, id: &QueueId, rcpt: usize, due: u64, now: u64) {
        if due <= now {
            self.ready.push_back((id.clone(), rcpt));
        } else {
            self.timers.entry(due).or_default().push((id.clone(), rcpt));
        }
    }

    /// The time of the next retry or of a dead next hop's revival, if
    /// any.
    pub(super) fn next_timer(&self) -> Option<u64> {
        let retry = self.timers.keys().next().copied();
        match (retry, self.out.next_revival()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Move the recipients whose retry time has come to `ready`.
    pub(super) fn fire_timers(&mut self, now: u64) {
        while let Some((&due, _)) = self.timers.iter().next() {
            if due > now {
                break;
            }
            if let Some(list) = self.timers.remove(&due) {
                self.ready.extend(list);
            }
        }
    }

    /// Deliveries are in flight.
    pub(super) fn busy(&self) -> bool {
        self.local_busy() || self.out.busy()
    }

    /// Local deliveries are in flight.
    pub(super) fn local_busy(&self) -> bool {
        self.idle.len() < self.slots.len()
    }

    /// Whether to log, at `now`, that the local agent is unreachable:
    /// once per [`UNAVAILABLE_LOG_US`] while it stays so.
    pub(super) fn log_local_unavailable(&mut self, now: u64) -> bool {
        let log = self
            .local_unavailable_logged
            .is_none_or(|t| now >= t + UNAVAILABLE_LOG_US);
        if log {
            self.local_unavailable_logged = Some(now);
        }
        log
    }

    /// Drop a message's queued entries everywhere (it was renumbered);
    /// the caller schedules its recipients again.
    pub(super) fn forget(&mut self, id: &QueueId) {
        for list in self.timers.values_mut() {
            list.retain(|(i, _)| i != id);
        }
        self.ready.retain(|(i, _)| i != id);
        self.local_ready.retain(|(i, _)| i != id);
        self.out.forget(id);
    }

    /// Drop the waiting entries of messages that left memory (their
    /// recipients wait on disk; none is being delivered), in one pass.
    pub(super) fn forget_many(&mut self, ids: &[QueueId]) {
        if ids.is_empty() {
            return;
        }
        let gone: std::collections::HashSet<&QueueId> = ids.iter().collect();
        for list in self.timers.values_mut() {
            list.retain(|(i, _)| !gone.contains(i));
        }
        self.timers.retain(|_, list| !list.is_empty());
        self.ready.retain(|(i, _)| !gone.contains(i));
        self.local_ready.retain(|(i, _)| !gone.contains(i));
    }
}
