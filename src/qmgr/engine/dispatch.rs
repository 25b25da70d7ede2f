//! Handing ready recipients to the delivery agents: each recipient is
//! routed ([`crate::qmgr::route`]) when it comes up, then
//!
//! * local → a local slot, one recipient per request;
//! * smtp → an smtp slot, with the message's other due recipients for the
//!   same next hop, at most `smtp.destination_recipient_limit` per
//!   request, and at most `smtp.destination_concurrency_limit` requests in
//!   flight per next hop (more wait, "parked", until one of that hop's
//!   requests returns, so one slow destination cannot take every slot);
//! * `error:`, `discard:`, an unusable table → an outcome qmgr decides
//!   (and logs) itself, without an agent;
//! * mailboxes local passed on (`local.mailbox_transport`) → an smtp slot
//!   before anything else (their recipient is active already), one
//!   request per local result, to its LMTP server.
//!
//! A next hop the smtp agent could not get a session with at all (every
//! address refused, unreachable or timed out, no greeting or a refusing
//! one: [`HopStatus::Unreachable`]) is marked dead (Postfix's
//! `qmgr_queue_throttle`) until `queue.minimal_backoff` has passed, a
//! delivery to it reports a session again, or `postern flush` clears the
//! marks (Postfix's `QMGR_FLUSH_DEAD`). One failed delivery with no
//! session in between is enough (simpler than Postfix, which waits for a
//! failed "cohort" of the initial destination concurrency): the
//! deliveries already in flight finish, and every recipient for that hop
//! that comes up meanwhile — parked, due, or new mail — is deferred at
//! once, without a connection, with `delivery temporarily suspended:
//! REASON` and the failure's enhanced code, its next attempt after the
//! normal back-off.
//!
//! Queue entries are `(message, recipient index)` and may go stale (the
//! recipient was taken by a grouped request, rescheduled, the message held
//! or finished): every entry is checked when it comes up and dropped when
//! the recipient is no longer due.

use std::collections::{HashMap, VecDeque};

use tokio::sync::mpsc;

use super::{Engine, Message, Pending, RState};
use crate::config::Config;
use crate::ipc::{DeliveryRequest, DeliveryStatus, HopStatus, SmtpRecipient, SmtpRequest};
use crate::outcome::{Enhanced, code};
use crate::qmgr::route::{Route, route};
use crate::queue::{QueueId, now_micros};
use crate::transport::{Current, Nexthop};

/// The smtp agent's slots and the recipients waiting for them.
pub(crate) struct Outbound {
    slots: Vec<mpsc::Sender<SmtpRequest>>,
    idle: Vec<usize>,
    /// Routed to smtp, waiting for a slot.
    ready: VecDeque<(QueueId, usize, Nexthop)>,
    /// Requests in flight per next hop.
    in_flight: HashMap<Nexthop, usize>,
    /// Waiting because their next hop has its fill of requests in flight.
    parked: HashMap<Nexthop, VecDeque<(QueueId, usize)>>,
    /// Mailbox deliveries local passed on, waiting for a slot.
    pub(super) passed: VecDeque<SmtpRequest>,
    /// Next hops marked dead, and why.
    dead: HashMap<Nexthop, Dead>,
}

/// A next hop marked dead: its last delivery got no session.
pub(crate) struct Dead {
    /// When the mark goes (µs): `queue.minimal_backoff` after it was set.
    until: u64,
    /// The failure that marked it.
    dsn: Enhanced,
    reason: String,
}

/// `smtp:[host]:port` or `lmtp:…`, as the transport table writes a next
/// hop, for the log.
fn hop_name(nexthop: &Nexthop) -> String {
    let hop = nexthop.clone();
    let transport = if hop.lmtp {
        crate::transport::Transport::Lmtp(hop)
    } else {
        crate::transport::Transport::Smtp(Some(hop))
    };
    transport.to_string()
}

impl Outbound {
    pub(crate) fn new(slots: Vec<mpsc::Sender<SmtpRequest>>) -> Outbound {
        Outbound {
            idle: (0..slots.len()).rev().collect(),
            slots,
            ready: VecDeque::new(),
            in_flight: HashMap::new(),
            parked: HashMap::new(),
            passed: VecDeque::new(),
            dead: HashMap::new(),
        }
    }

    /// Next hops marked dead now.
    pub(crate) fn dead_count(&self) -> usize {
        self.dead.len()
    }

    /// When the first dead mark goes.
    pub(crate) fn next_revival(&self) -> Option<u64> {
        self.dead.values().map(|d| d.until).min()
    }

    /// Drop the marks whose time has come.
    fn revive_due(&mut self, now: u64) {
        self.dead.retain(|hop, d| {
            let keep = d.until > now;
            if !keep {
                log::info!(
                    "destination {} is alive again: its retry time has come",
                    hop_name(hop)
                );
            }
            keep
        });
    }

    /// `postern flush`: every next hop is tried again (Postfix's
    /// `QMGR_FLUSH_DEAD`).
    pub(crate) fn revive_all(&mut self) {
        for hop in std::mem::take(&mut self.dead).into_keys() {
            log::info!(
                "destination {} is alive again: postern flush",
                hop_name(&hop)
            );
        }
    }

    pub(crate) fn busy(&self) -> bool {
        self.idle.len() < self.slots.len()
    }

    /// Drop every queued entry of a message (its recipients were
    /// renumbered).
    pub(crate) fn forget(&mut self, id: &QueueId) {
        self.ready.retain(|(i, _, _)| i != id);
        for list in self.parked.values_mut() {
            list.retain(|(i, _)| i != id);
        }
    }
}

/// The route of `address`, or a deferral when the table is unavailable.
pub(crate) fn route_with(table: &Current, address: &str, cfg: &Config) -> Route {
    match table {
        Ok(t) => route(address, t, cfg),
        Err(e) => Route::Defer {
            dsn: code::SYSTEM_TEMP,
            reason: e.clone(),
        },
    }
}

/// The smtp agent's request for `recipients` of message `id` (`m`) to
/// `nexthop`.
pub(super) fn smtp_request(
    id: &QueueId,
    m: &Message,
    recipients: Vec<SmtpRecipient>,
    nexthop: Nexthop,
) -> SmtpRequest {
    let env = &m.env;
    SmtpRequest {
        id: id.clone(),
        sender: env.sender.clone(),
        recipients,
        nexthop,
        content: m.content.clone(),
        size: env.size,
        body: env.body,
        smtputf8: env.smtputf8,
        ret: env.ret,
        envid: env.envid.clone(),
        arrival_us: env.arrival_us,
        active_us: m.active_us,
        client: env.client.clone(),
    }
}

/// At most this many outcomes decided per dispatch (a dead next hop's
/// deferrals, say): the rest wait for the next pass, so a large queue is
/// recorded in batches and the main loop answers in between.
const DECIDED_PER_PASS: usize = 4096;

/// Whether recipient `i` of `m` is to be tried now.
fn due(m: &Message, i: usize, now: u64) -> bool {
    !m.held && matches!(m.rcpts.get(i), Some(RState::Pending { due }) if *due <= now)
}

impl Engine {
    /// Hand ready recipients to idle slots (and decide those that need
    /// no agent).
    pub(crate) fn dispatch(&mut self) {
        let now = now_micros();
        self.sched.fire_timers(now);
        self.sched.out.revive_due(now);
        let table = self.transport.table();
        self.dispatch_local(now);
        self.dispatch_smtp(now, &table);
        while !self.sched.idle.is_empty() || !self.sched.out.idle.is_empty() {
            if self.decided.len() >= DECIDED_PER_PASS {
                break;
            }
            let Some((id, i)) = self.sched.ready.pop_front() else {
                break;
            };
            let Some(m) = self.messages.get_mut(&id) else {
                continue;
            };
            if !due(m, i, now) {
                continue;
            }
            let (status, dsn, reason, transport) =
                match route_with(&table, &m.env.recipients[i].address, &self.cfg) {
                    Route::Local => {
                        self.sched.local_ready.push_back((id, i));
                        self.dispatch_local(now);
                        continue;
                    }
                    Route::Smtp(nexthop) => {
                        self.sched.out.ready.push_back((id, i, nexthop));
                        self.dispatch_smtp(now, &table);
                        continue;
                    }
                    Route::Bounce { dsn, reason } => {
                        (DeliveryStatus::Bounced, dsn, reason, "error")
                    }
                    Route::Discard { dsn, reason } => {
                        (DeliveryStatus::Sent, dsn, reason, "discard")
                    }
                    Route::Defer { dsn, reason } => (DeliveryStatus::Deferred, dsn, reason, "none"),
                };
            m.rcpts[i] = RState::Active;
            self.decided
                .push(Pending::decided_here(id, i, status, dsn, reason, transport));
        }
    }

    fn dispatch_local(&mut self, now: u64) {
        while let Some(&slot) = self.sched.idle.last() {
            let Some((id, i)) = self.sched.local_ready.pop_front() else {
                break;
            };
            let Some(m) = self.messages.get_mut(&id) else {
                continue;
            };
            if !due(m, i, now) {
                continue;
            }
            self.sched.idle.pop();
            m.rcpts[i] = RState::Active;
            let req = DeliveryRequest {
                id: id.clone(),
                sender: m.env.sender.clone(),
                recipient: m.env.recipients[i].address.clone(),
                original: m.env.recipients[i].original.clone(),
                rcpt_index: i,
                content: m.content.clone(),
                arrival_us: m.env.arrival_us,
                active_us: m.active_us,
            };
            if let Err(e) = self.sched.slots[slot].try_send(req) {
                // The slot was idle, so its channel has room; a closed slot
                // means its task died: put the recipient back.
                log::warn!("local delivery slot {slot} unavailable: {e}");
                m.rcpts[i] = RState::Pending { due: now };
                self.sched.local_ready.push_front((id, i));
                break;
            }
        }
    }

    fn dispatch_smtp(&mut self, now: u64, table: &Current) {
        self.dispatch_passed();
        let per_hop = self.cfg.smtp.destination_concurrency_limit.max(1);
        let per_request = self.cfg.smtp.destination_recipient_limit.max(1);
        while self.decided.len() < DECIDED_PER_PASS {
            // A dead hop's recipients need no slot: they are deferred.
            let dead = match self.sched.out.ready.front() {
                None => break,
                Some((_, _, hop)) => self.sched.out.dead.contains_key(hop),
            };
            let slot = self.sched.out.idle.last().copied();
            if slot.is_none() && !dead {
                break;
            }
            let Some((id, i, nexthop)) = self.sched.out.ready.pop_front() else {
                break;
            };
            let Some(m) = self.messages.get_mut(&id) else {
                continue;
            };
            if !due(m, i, now) {
                continue;
            }
            if let Some(d) = self.sched.out.dead.get(&nexthop) {
                m.rcpts[i] = RState::Active;
                self.decided.push(suspended(id, i, d));
                continue;
            }
            let Some(slot) = slot else {
                // Not dead a moment ago: cannot happen; it waits.
                self.sched.out.ready.push_front((id, i, nexthop));
                break;
            };
            if self.sched.out.in_flight.get(&nexthop).copied().unwrap_or(0) >= per_hop {
                self.sched
                    .out
                    .parked
                    .entry(nexthop)
                    .or_default()
                    .push_back((id, i));
                continue;
            }
            // This recipient and the message's others due for the same hop.
            let mut picked = vec![i];
            for j in 0..m.rcpts.len() {
                if picked.len() >= per_request {
                    break;
                }
                if j != i
                    && due(m, j, now)
                    && route_with(table, &m.env.recipients[j].address, &self.cfg)
                        == Route::Smtp(nexthop.clone())
                {
                    picked.push(j);
                }
            }
            picked.sort_unstable();
            for &j in &picked {
                m.rcpts[j] = RState::Active;
            }
            let req = smtp_request(&id, m, picked_recipients(m, &picked), nexthop.clone());
            self.sched.out.idle.pop();
            if let Err(e) = self.sched.out.slots[slot].try_send(req) {
                log::warn!("smtp delivery slot {slot} unavailable: {e}");
                for &j in &picked {
                    m.rcpts[j] = RState::Pending { due: now };
                }
                self.sched.out.ready.push_front((id, i, nexthop));
                break;
            }
            *self.sched.out.in_flight.entry(nexthop).or_default() += 1;
        }
    }

    /// The mailbox deliveries local passed on, to idle smtp slots. They
    /// count toward their next hop's requests in flight, but do not wait
    /// for its limit: their recipients are active, and wait for nothing
    /// else.
    fn dispatch_passed(&mut self) {
        while let Some(&slot) = self.sched.out.idle.last() {
            let Some(req) = self.sched.out.passed.pop_front() else {
                break;
            };
            let nexthop = req.nexthop.clone();
            self.sched.out.idle.pop();
            if let Err(e) = self.sched.out.slots[slot].try_send(req) {
                log::warn!("smtp delivery slot {slot} unavailable");
                let req = match e {
                    mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
                };
                self.sched.out.passed.push_front(req);
                break;
            }
            *self.sched.out.in_flight.entry(nexthop).or_default() += 1;
        }
    }

    /// What a delivery to `nexthop` learned of it: a session marks it
    /// alive, no session marks it dead (once: logged when the mark is set)
    /// and sends its parked recipients back to be deferred by dispatch.
    pub(super) fn hop_learned(&mut self, nexthop: &Nexthop, hop: Option<HopStatus>, now: u64) {
        match hop {
            Some(HopStatus::Reached) if self.sched.out.dead.remove(nexthop).is_some() => {
                log::info!(
                    "destination {} is alive again: a delivery reached it",
                    hop_name(nexthop)
                );
            }
            None | Some(HopStatus::Reached) => {}
            Some(HopStatus::Unreachable { dsn, reason }) => {
                if self.sched.out.dead.contains_key(nexthop) {
                    return;
                }
                let backoff = self.cfg.queue.minimal_backoff;
                log::warn!(
                    "destination {} is dead for {}s (queue.minimal_backoff): {reason}; \
                     its mail is deferred without a connection until then or postern flush",
                    hop_name(nexthop),
                    backoff.as_secs()
                );
                let d = Dead {
                    until: now + backoff.as_micros() as u64,
                    dsn,
                    reason,
                };
                self.sched.out.dead.insert(nexthop.clone(), d);
                let out = &mut self.sched.out;
                for (id, i) in out.parked.remove(nexthop).unwrap_or_default() {
                    out.ready.push_back((id, i, nexthop.clone()));
                }
            }
        }
    }

    /// An smtp slot is free again after a request to `nexthop`: let that
    /// hop's parked recipients in, as many as it has room for.
    pub(super) fn smtp_returned(&mut self, slot: usize, nexthop: &Nexthop) {
        self.sched.out.idle.push(slot);
        let in_flight = match self.sched.out.in_flight.get_mut(nexthop) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        if in_flight == 0 {
            self.sched.out.in_flight.remove(nexthop);
        }
        let Some(parked) = self.sched.out.parked.get_mut(nexthop) else {
            return;
        };
        let mut room = self
            .cfg
            .smtp
            .destination_concurrency_limit
            .max(1)
            .saturating_sub(in_flight);
        let now = now_micros();
        let mut back = Vec::new();
        while room > 0 {
            let Some((id, i)) = parked.pop_front() else {
                break;
            };
            if self.messages.get(&id).is_some_and(|m| due(m, i, now)) {
                back.push((id, i, nexthop.clone()));
                room -= 1;
            }
        }
        if parked.is_empty() {
            self.sched.out.parked.remove(nexthop);
        }
        for entry in back.into_iter().rev() {
            self.sched.out.ready.push_front(entry);
        }
    }
}

/// Recipient `rcpt` of `id`, for a dead next hop: deferred now, without a
/// connection, with the failure that marked the hop (Postfix's
/// `delivery temporarily suspended: …`).
fn suspended(id: QueueId, rcpt: usize, dead: &Dead) -> Pending {
    Pending::decided_here(
        id,
        rcpt,
        DeliveryStatus::Deferred,
        dead.dsn,
        format!("delivery temporarily suspended: {}", dead.reason),
        "smtp",
    )
}

/// The smtp agent's recipients `picked` of message `m`.
fn picked_recipients(m: &Message, picked: &[usize]) -> Vec<SmtpRecipient> {
    let env = &m.env;
    picked
        .iter()
        .map(|&j| SmtpRecipient {
            rcpt_index: j,
            address: env.recipients[j].address.clone(),
            original: env.recipients[j].original.clone(),
            orcpt: env.recipients[j].orcpt.clone().or_else(|| {
                // Postfix's smtp client: ORCPT from the original
                // recipient when the client gave none.
                env.recipients[j]
                    .original
                    .as_ref()
                    .map(|o| format!("rfc822;{o}"))
            }),
            notify: env.recipients[j].notify.clone(),
        })
        .collect()
}
