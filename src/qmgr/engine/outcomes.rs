//! Recording outcomes: the agents' reports and the outcomes qmgr decides
//! itself become state records (appended before the state changes),
//! deferrals with back-off, expiry, notifications (DSN) and the removal of
//! finished messages.

use std::collections::{BTreeMap, HashMap};

use super::{Engine, LOST_RETRY_US, Message, Pending, RState, notify};
use crate::dsn;
use crate::ipc::{DeliveryRequest, DeliveryStatus};
use crate::outcome::code;
use crate::qmgr::agents::{Report, SlotReport};
use crate::qmgr::state::{Outcome, StateRecord};
use crate::queue::{QueueId, now_micros};

impl Engine {
    /// Outcomes decided in `dispatch` without an agent.
    pub(crate) fn take_decided(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.decided)
    }

    /// Record and apply a batch of agent reports and decided outcomes.
    pub(crate) async fn complete(&mut self, reports: Vec<SlotReport>, mut decided: Vec<Pending>) {
        let now = now_micros();
        for rep in reports {
            self.take_report(rep, &mut decided, now);
        }
        if decided.is_empty() {
            return;
        }
        // Decide deferrals and expiry, then make the records durable, then
        // change the state.
        let mut batch = Batch::default();
        for mut p in decided {
            // Forwarding first, durably: the recipient counts as done only
            // once the new messages (and the owners' reports) are queued.
            // A deferred recipient is expanded again on its next attempt.
            if p.status != DeliveryStatus::Deferred
                && let Err(e) = self.pass_on(&mut p).await
            {
                p.status = DeliveryStatus::Deferred;
                p.dsn = code::SYSTEM_TEMP;
                p.reason = format!("cannot queue the forwarded message: {e}");
                log::warn!(queue_id = p.id.as_str(); "{}: {}", p.id, p.reason);
            }
            self.judge(p, now, &mut batch);
        }
        // Notifications first, durably: a crash after them repeats the
        // outcome (and at worst the notice), never loses the notice.
        for (id, outcomes) in std::mem::take(&mut batch.reportable) {
            self.notify(&id, outcomes).await;
        }
        // Lazy: losing one of these in a crash repeats a delivery at worst;
        // nothing is deleted on their strength before they are synced
        // (flush_removals).
        let ok = self
            .append_all(std::mem::take(&mut batch.records), true)
            .await;
        if ok.iter().any(|ok| !ok) {
            log::warn!("state log write failed; outcomes kept in memory only");
        }
        let delivered = batch
            .applied
            .iter()
            .filter(|(_, _, st)| *st == RState::Done)
            .count();
        self.rates.note_out(now, delivered as u64);
        self.apply(batch, now);
        if self.notices.take_queued() {
            self.scan_incoming(&mut HashMap::new());
        }
    }

    /// An agent's report: its outcomes join `decided`, its slot is free
    /// again; a lost local delivery is retried shortly.
    fn take_report(&mut self, rep: SlotReport, decided: &mut Vec<Pending>, now: u64) {
        match rep {
            SlotReport::Local(Report::Done {
                slot,
                request,
                mut result,
            }) => {
                self.sched.idle.push(slot);
                self.add_counts(Default::default(), result.started.take());
                let pass = result.mailbox_transport.take();
                let p = Pending {
                    id: request.id.clone(),
                    rcpt: request.rcpt_index,
                    status: result.status,
                    dsn: result.dsn,
                    reason: result.reason,
                    forward: result.forward,
                    lists: result.lists,
                    owner_failures: result.owner_failures,
                    remote_mta: result.remote_mta,
                    diagnostic: result.diagnostic,
                    log_here: false,
                    transport: "local",
                };
                match pass {
                    Some(pass) if p.status != DeliveryStatus::Deferred => {
                        if let Some(p) = self.pass_mailboxes(p, pass) {
                            decided.push(p);
                        }
                    }
                    _ => decided.push(p),
                }
            }
            SlotReport::Local(Report::Lost {
                slot,
                request,
                why,
                unreachable,
            }) => {
                self.sched.idle.push(slot);
                self.local_lost(&request, &why, unreachable, now);
            }
            SlotReport::Smtp(Report::Done {
                slot,
                request,
                mut result,
            }) => {
                let counts = result.counts.take().unwrap_or_default();
                self.add_counts(counts, result.started.take());
                self.hop_learned(&request.nexthop, result.hop.take(), now);
                self.smtp_returned(slot, &request.nexthop);
                if let Some(local) = self.passed_back(&request) {
                    let lost = request.recipients.len() > result.results.len();
                    decided.push(join_passed(local, result.results, lost));
                    return;
                }
                for r in request.recipients {
                    let found = result
                        .results
                        .iter()
                        .position(|x| x.rcpt_index == r.rcpt_index)
                        .map(|n| result.results.swap_remove(n));
                    decided.push(match found {
                        Some(res) => Pending {
                            id: request.id.clone(),
                            rcpt: r.rcpt_index,
                            status: res.status,
                            dsn: res.dsn,
                            reason: res.reason,
                            forward: Vec::new(),
                            lists: Vec::new(),
                            owner_failures: Vec::new(),
                            remote_mta: res.remote_mta,
                            diagnostic: res.diagnostic,
                            log_here: false,
                            transport: "smtp",
                        },
                        None => {
                            smtp_lost(&request.id, r.rcpt_index, "no result for this recipient")
                        }
                    });
                }
            }
            SlotReport::Smtp(Report::Lost {
                slot, request, why, ..
            }) => {
                self.smtp_returned(slot, &request.nexthop);
                log::warn!("{}: {why}", request.id);
                if let Some(local) = self.passed_back(&request) {
                    let lost = smtp_lost(&request.id, local.rcpt, &why);
                    decided.push(join_passed(local, Vec::new(), false).worst(lost));
                    return;
                }
                for r in request.recipients {
                    decided.push(smtp_lost(&request.id, r.rcpt_index, &why));
                }
            }
        }
    }

    /// Local passed mailbox deliveries on (`local.mailbox_transport`):
    /// queue them for the smtp agent in LMTP mode, and keep local's
    /// outcome `p` (nothing recorded, the recipient active) until their
    /// answer joins it. `Some`: an outcome to record now instead.
    fn pass_mailboxes(
        &mut self,
        p: Pending,
        pass: crate::ipc::MailboxTransport,
    ) -> Option<Pending> {
        let Some(m) = self.messages.get(&p.id) else {
            return Some(p);
        };
        if !pass.nexthop.lmtp || pass.addresses.is_empty() {
            log::warn!(
                queue_id = p.id.as_str();
                "{}: local passed mailboxes to {} (no LMTP server); deferred",
                p.id,
                pass.nexthop
            );
            return Some(Pending {
                status: DeliveryStatus::Deferred,
                dsn: code::CONFIG_TEMP,
                reason: "mail system configuration error".into(),
                log_here: true,
                ..p
            });
        }
        let Some(queued) = m.env.recipients.get(p.rcpt) else {
            return Some(p);
        };
        // The address the sender gave: orig_to= in the LMTP agent's line
        // when it is not the one passed on (a bare `user` from sendmail
        // is `user@$origin`).
        let given = queued.original.as_ref().unwrap_or(&queued.address);
        let same = |address: &str| match given.contains('@') {
            true => address.eq_ignore_ascii_case(given),
            false => address.eq_ignore_ascii_case(&format!("{given}@{}", self.cfg.server.origin)),
        };
        let orcpt = queued
            .orcpt
            .clone()
            .unwrap_or_else(|| format!("rfc822;{given}"));
        let recipients = pass
            .addresses
            .into_iter()
            .map(|address| crate::ipc::SmtpRecipient {
                rcpt_index: p.rcpt,
                original: (!same(&address)).then(|| given.clone()),
                address,
                orcpt: Some(orcpt.clone()),
                notify: queued.notify.clone(),
            })
            .collect();
        let req = super::dispatch::smtp_request(&p.id, m, recipients, pass.nexthop);
        self.sched.out.passed.push_back(req);
        self.passes.insert((p.id.clone(), p.rcpt), p);
        None
    }

    /// Local's outcome waiting for this request, when it carries the
    /// mailbox deliveries local passed on.
    fn passed_back(&mut self, request: &crate::ipc::SmtpRequest) -> Option<Pending> {
        let first = request.recipients.first()?.rcpt_index;
        if request.recipients.iter().any(|r| r.rcpt_index != first) {
            return None;
        }
        self.passes.remove(&(request.id.clone(), first))
    }

    /// A local delivery that got no answer: retried after
    /// [`LOST_RETRY_US`], without a record (nothing was decided).
    fn local_lost(&mut self, request: &DeliveryRequest, why: &str, unreachable: bool, now: u64) {
        if unreachable {
            // The agent is down (restarting): every waiting
            // recipient would say so each second.
            if self.sched.log_local_unavailable(now) {
                log::warn!("{why}; local deliveries wait and are retried every second");
            }
        } else {
            log::warn!(
                "{}: {why}; delivery to <{}> will be retried",
                request.id,
                request.recipient
            );
        }
        if let Some(m) = self.messages.get_mut(&request.id)
            && let Some(r) = m.rcpts.get_mut(request.rcpt_index)
        {
            *r = RState::Pending {
                due: now + LOST_RETRY_US,
            };
        }
        self.sched
            .schedule(&request.id, request.rcpt_index, now + LOST_RETRY_US, now);
    }

    /// Decide what `p` makes of its recipient (delivered, bounced,
    /// expired, deferred until when), whether the sender hears of it, and
    /// add its record to `batch`.
    fn judge(&self, p: Pending, now: u64, batch: &mut Batch) {
        let Some(m) = self.messages.get(&p.id) else {
            return;
        };
        let min = self.cfg.queue.minimal_backoff.as_micros() as u64;
        let max = self.cfg.queue.maximal_backoff.as_micros() as u64;
        let lifetime = self.cfg.queue.maximal_lifetime.as_micros() as u64;
        let age = now.saturating_sub(m.env.arrival_us);
        let rec = match p.status {
            DeliveryStatus::Sent => (RState::Done, StateRecord::Delivered(outcome(&p, 0))),
            DeliveryStatus::Bounced => (RState::Bounced, StateRecord::Bounced(outcome(&p, 0))),
            // Deleted by the administrator meanwhile: nothing more.
            DeliveryStatus::Deferred if m.deleted => {
                (RState::Bounced, StateRecord::Bounced(outcome(&p, 0)))
            }
            DeliveryStatus::Deferred if age >= lifetime => {
                log::info!(
                    queue_id = p.id.as_str(),
                    status = "expired";
                    "{}: from=<{}>, status=expired, returned to sender",
                    p.id,
                    m.env.sender
                );
                (RState::Bounced, StateRecord::Bounced(outcome(&p, 0)))
            }
            DeliveryStatus::Deferred => {
                let due = now + age.clamp(min, max);
                (
                    RState::Pending { due },
                    StateRecord::Deferred(outcome(&p, due)),
                )
            }
        };
        count(&p, m, rec.0, now);
        if p.log_here {
            // The agents log their own deliveries; qmgr logs what it
            // decided itself.
            log_decided(&p, m, now);
        }
        if let Some(kind) = self.report_kind(m, p.rcpt, rec.0, age) {
            batch
                .reportable
                .entry(p.id.clone())
                .or_default()
                .push(notify::Reportable {
                    rcpt: p.rcpt,
                    kind,
                    dsn: p.dsn,
                    reason: p.reason.clone(),
                    remote_mta: p.remote_mta.clone(),
                    diagnostic: p.diagnostic.clone(),
                });
        }
        if let RState::Pending { .. } = rec.0 {
            batch
                .reasons_now
                .insert((p.id.clone(), p.rcpt), p.reason.clone());
        }
        batch.records.push(rec.1);
        batch.applied.push((p.id, p.rcpt, rec.0));
    }

    /// What the sender hears of: failures (not deletions), and
    /// deliveries when NOTIFY asked for SUCCESS, and a delay once.
    fn report_kind(
        &self,
        m: &Message,
        rcpt: usize,
        st: RState,
        age: u64,
    ) -> Option<dsn::ReportKind> {
        let notify = m.env.recipients[rcpt].notify.as_deref();
        let wants_success = dsn::should_report(dsn::ReportKind::Success, notify);
        let warn_after = self.cfg.queue.delay_warning_time.as_micros() as u64;
        match st {
            RState::Bounced if !m.deleted => Some(dsn::ReportKind::Failure),
            RState::Done if wants_success => Some(dsn::ReportKind::Success),
            RState::Pending { .. } if warn_after > 0 && age >= warn_after && !m.warned => {
                Some(dsn::ReportKind::Delay)
            }
            _ => None,
        }
    }

    /// Change the state as the batch's (now durable) records say:
    /// reschedule the deferred, finish the messages that are done.
    fn apply(&mut self, mut batch: Batch, now: u64) {
        for (id, i, st) in batch.applied {
            let Some(m) = self.messages.get_mut(&id) else {
                continue;
            };
            if let Some(r) = m.rcpts.get_mut(i) {
                *r = st;
            }
            if let (RState::Pending { .. }, Some(reason)) = (st, m.reasons.get_mut(i)) {
                *reason = batch
                    .reasons_now
                    .remove(&(id.clone(), i))
                    .map(|r| self.reasons.share(&r));
            }
            let finished = m.rcpts.iter().all(|r| r.is_final());
            if let RState::Pending { due } = st {
                m.first_deferred_us.get_or_insert(now);
                self.sched.schedule(&id, i, due, now);
            }
            if finished {
                self.finish(&id);
            }
        }
    }
}

/// One `complete` call's decisions, before they are applied.
#[derive(Default)]
struct Batch {
    /// State records, appended before the state changes.
    records: Vec<StateRecord>,
    /// Per recipient, its new state.
    applied: Vec<(QueueId, usize, RState)>,
    /// Per message, the outcomes its sender hears of.
    reportable: BTreeMap<QueueId, Vec<notify::Reportable>>,
    /// Why deferred recipients failed this time (for `mailq`).
    reasons_now: HashMap<(QueueId, usize), String>,
}

impl Engine {
    /// Queue what an alias expansion passed on: the message anew for
    /// other addresses (same sender), for lists from their owners, and
    /// the owners' failure reports.
    async fn pass_on(&mut self, p: &mut Pending) -> anyhow::Result<()> {
        let forward = std::mem::take(&mut p.forward);
        if !forward.is_empty() {
            self.forward(&p.id, p.rcpt, None, &forward).await?;
        }
        for list in std::mem::take(&mut p.lists) {
            self.forward(&p.id, p.rcpt, Some(&list.sender), &list.addresses)
                .await?;
        }
        let failures = std::mem::take(&mut p.owner_failures);
        let mut owners: Vec<&str> = failures.iter().map(|f| f.owner.as_str()).collect();
        owners.sort_unstable();
        owners.dedup();
        for owner in owners {
            let mine: Vec<_> = failures.iter().filter(|f| f.owner == owner).collect();
            self.notify_owner(&p.id, p.rcpt, owner, &mine).await?;
        }
        Ok(())
    }
}

/// One outcome for a recipient from local's and the LMTP server's
/// answers for the mailboxes local passed on: any deferral defers, else
/// any bounce bounces, else it was delivered (the server's answer is the
/// one kept: a success DSN shows it). `lost`: some addresses got no
/// answer.
fn join_passed(local: Pending, results: Vec<crate::ipc::DeliveryResult>, lost: bool) -> Pending {
    let mut joined = local.clone();
    let mut first = true;
    for r in results {
        let p = Pending {
            status: r.status,
            dsn: r.dsn,
            reason: r.reason,
            remote_mta: r.remote_mta,
            diagnostic: r.diagnostic,
            log_here: false,
            transport: "lmtp",
            ..local.clone()
        };
        joined = if first && local.status == DeliveryStatus::Sent {
            p
        } else {
            joined.worst(p)
        };
        first = false;
    }
    if lost {
        let p = smtp_lost(&local.id, local.rcpt, "no result for a mailbox");
        joined = joined.worst(p);
    }
    Pending {
        forward: local.forward,
        lists: local.lists,
        owner_failures: local.owner_failures,
        ..joined
    }
}

impl Pending {
    /// The worse of two outcomes for one recipient (deferred, then
    /// bounced, then sent); `self` when they are alike.
    fn worst(self, other: Pending) -> Pending {
        let rank = |s: DeliveryStatus| match s {
            DeliveryStatus::Deferred => 2,
            DeliveryStatus::Bounced => 1,
            DeliveryStatus::Sent => 0,
        };
        if rank(other.status) > rank(self.status) {
            Pending {
                forward: self.forward,
                lists: self.lists,
                owner_failures: self.owner_failures,
                ..other
            }
        } else {
            self
        }
    }
}

fn outcome(p: &Pending, until: u64) -> Outcome {
    Outcome {
        id: p.id.clone(),
        rcpt: p.rcpt,
        dsn: p.dsn.to_string(),
        reason: p.reason.clone(),
        until,
    }
}

/// A deferral for a recipient of an smtp request that got no answer: the
/// agent went away (it logs nothing of it, so qmgr does).
fn smtp_lost(id: &QueueId, rcpt: usize, why: &str) -> Pending {
    Pending::decided_here(
        id.clone(),
        rcpt,
        DeliveryStatus::Deferred,
        code::SYSTEM_TEMP,
        format!("smtp delivery agent unavailable: {why}"),
        "smtp",
    )
}

/// The metrics of one outcome: `postern_deliveries_total`, and the
/// delay from arrival of a delivered recipient.
fn count(p: &Pending, m: &Message, st: RState, now: u64) {
    use crate::metrics::registry::{self as reg, sink};
    if !sink::enabled() {
        return;
    }
    let status = match st {
        RState::Done if p.transport == "discard" => "discarded",
        RState::Done => "sent",
        RState::Bounced => "bounced",
        RState::Pending { .. } | RState::Active => "deferred",
    };
    let transport = p.transport;
    sink::inc(
        reg::DELIVERIES,
        &[("transport", transport), ("status", status)],
    );
    if st == RState::Done {
        let delay = now.saturating_sub(m.env.arrival_us) as f64 / 1e6;
        sink::observe(reg::DELIVERY_DELAY, &[("transport", transport)], delay);
    }
}

/// Postfix's delivery line for an outcome qmgr decided:
/// `ID: to=<…>, relay=none, delay=…, delays=a/b/0/0, dsn=…, status=… (…)`.
fn log_decided(p: &Pending, m: &Message, now: u64) {
    let status = crate::logging::status_field(p.status);
    let to = m
        .env
        .recipients
        .get(p.rcpt)
        .map_or("", |r| r.address.as_str());
    // Nothing was delivered: the delivery's start, readiness and end
    // are all now (Postfix's qmgr logs `delays=a/b/0/0` so).
    let delays = crate::wire::delay::Delays {
        arrival: m.env.arrival_us,
        // Not yet active (a message refused before it was): the queue
        // manager's share starts at its arrival.
        active: m.active_us.max(m.env.arrival_us),
        start: now,
        ready: now,
        end: now,
    };
    log::info!(
        queue_id = p.id.as_str(),
        recipient = to,
        status = status;
        "{}: to=<{to}>, relay=none, {delays}, dsn={}, status={status} ({})",
        p.id,
        p.dsn,
        p.reason
    );
}
