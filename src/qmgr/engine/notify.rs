//! Delivery status notifications (RFC 3464) that qmgr queues itself:
//! non-delivery reports ("bounces") to the envelope sender, success reports
//! when NOTIFY=SUCCESS asked for one, and the double bounce to postmaster
//! when a notification itself cannot be delivered.
//!
//! A notification is appended durably to qmgr's own segments
//! (`incoming/B<ID>.log`) *before* the outcomes that caused it are
//! recorded: a crash in between repeats the attempt (and at worst the
//! notification), it never loses the notification. Postfix's rules: mail
//! from the null sender is never bounced to its sender; its failures go to
//! postmaster with the envelope sender `double-bounce@$origin`, and mail
//! from `double-bounce` is never reported at all, so nothing loops.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Engine, read_content_prefix};
use crate::dsn::{self, Action, RecipientReport, ReportInput, ReportKind};
use crate::ipc::OwnerFailure;
use crate::queue::log::{LogError, LogWriter};
use crate::queue::message::{ContentKind, encode_message_head};
use crate::queue::record::RecordType;
use crate::queue::{Client, Envelope, IdGenerator, QueueId, Recipient, now_micros};

/// The local part of the sender of double bounces (Postfix's
/// `double-bounce`): its mail is never reported.
pub(crate) const DOUBLE_BOUNCE: &str = "double-bounce";

/// qmgr's own segments in `incoming/` (prefix `B`): the messages it
/// queues itself (notifications, forwarded copies), read back like
/// smtpd's.
pub(crate) struct Notices {
    writer: LogWriter,
    ids: IdGenerator,
    /// A message was queued since the last [`Notices::take_queued`].
    queued: bool,
}

impl Notices {
    pub(crate) fn new(writer: LogWriter) -> Notices {
        Notices {
            writer,
            ids: IdGenerator::new('B'),
            queued: false,
        }
    }

    /// The ID of the next message qmgr queues.
    fn next_id(&self) -> QueueId {
        self.ids.next()
    }

    /// Append a message (its encoded head, then its content), durably.
    async fn queue(&mut self, head: Vec<u8>, content: Vec<u8>) -> Result<(), LogError> {
        self.writer
            .append_parts(RecordType::Message, vec![head, content])
            .await?;
        self.queued = true;
        Ok(())
    }

    /// Whether a message was queued since the last call: `incoming/` is
    /// then scanned for it.
    pub(crate) fn take_queued(&mut self) -> bool {
        std::mem::take(&mut self.queued)
    }
}

/// One recipient's outcome to report.
pub(crate) struct Reportable {
    pub rcpt: usize,
    pub kind: ReportKind,
    pub dsn: crate::outcome::Enhanced,
    pub reason: String,
    /// `Remote-MTA:` and `Diagnostic-Code:` when a remote host answered.
    pub remote_mta: Option<String>,
    pub diagnostic: Option<String>,
}

impl Engine {
    /// Queue the notifications for one message's outcomes of this batch.
    pub(super) async fn notify(&mut self, id: &QueueId, outcomes: Vec<Reportable>) {
        for kind in [ReportKind::Failure, ReportKind::Delay, ReportKind::Success] {
            let mine: Vec<&Reportable> = outcomes.iter().filter(|o| o.kind == kind).collect();
            if !mine.is_empty() {
                self.notify_kind(id, kind, &mine).await;
            }
        }
    }

    async fn notify_kind(&mut self, id: &QueueId, kind: ReportKind, outcomes: &[&Reportable]) {
        let Some(m) = self.messages.get(id) else {
            return;
        };
        let origin = self.cfg.server.origin.clone();
        let sender = m.env.sender.clone();
        let sender_local = sender.rsplit_once('@').map_or(sender.as_str(), |(l, _)| l);
        // Who gets it, from whom, and which recipients it reports.
        let (to, from, label, reports): (String, String, &str, Vec<RecipientReport>) =
            if sender_local.eq_ignore_ascii_case(DOUBLE_BOUNCE) {
                log::info!(
                    queue_id = id.as_str();
                    "{id}: notification to {DOUBLE_BOUNCE} discarded"
                );
                return;
            } else if sender.is_empty() {
                if kind != ReportKind::Failure {
                    return;
                }
                let reports = outcomes.iter().map(|o| report(&m.env, o)).collect();
                (
                    format!("postmaster@{origin}"),
                    format!("{DOUBLE_BOUNCE}@{origin}"),
                    "postmaster non-delivery notification",
                    reports,
                )
            } else {
                let reports: Vec<RecipientReport> = outcomes
                    .iter()
                    .filter(|o| {
                        let notify = m
                            .env
                            .recipients
                            .get(o.rcpt)
                            .and_then(|r| r.notify.as_deref());
                        dsn::should_report(kind, notify)
                    })
                    .map(|o| report(&m.env, o))
                    .collect();
                let label = match kind {
                    ReportKind::Failure => "sender non-delivery notification",
                    ReportKind::Delay => "sender delay notification",
                    ReportKind::Success => "sender delivery status notification",
                };
                (sender.clone(), String::new(), label, reports)
            };
        if reports.is_empty() {
            return;
        }
        match self.queue_notice(id, kind, &to, from, &reports).await {
            Ok(new_id) => {
                log::info!(queue_id = id.as_str(); "{id}: {label}: {new_id}");
                if kind == ReportKind::Delay {
                    self.mark_warned(id).await;
                }
            }
            Err(e) => log::warn!(
                queue_id = id.as_str();
                "{id}: cannot queue its notification: {e}"
            ),
        }
    }

    /// Report failures an owner answers for (see `local::route`) to the
    /// owner `owner`, from the null sender; `rcpt` is the recipient whose
    /// expansion failed.
    pub(super) async fn notify_owner(
        &mut self,
        id: &QueueId,
        rcpt: usize,
        owner: &str,
        failures: &[&OwnerFailure],
    ) -> anyhow::Result<()> {
        let m = self
            .messages
            .get(id)
            .ok_or_else(|| anyhow::anyhow!("no such message"))?;
        let reports: Vec<RecipientReport> = failures
            .iter()
            .map(|f| {
                let mut r = report(
                    &m.env,
                    &Reportable {
                        rcpt,
                        kind: ReportKind::Failure,
                        dsn: f.dsn,
                        reason: f.reason.clone(),
                        remote_mta: None,
                        diagnostic: None,
                    },
                );
                r.final_recipient = f.recipient.clone();
                r
            })
            .collect();
        let new_id = self
            .queue_notice(id, ReportKind::Failure, owner, String::new(), &reports)
            .await?;
        log::info!(queue_id = id.as_str(); "{id}: owner non-delivery notification: {new_id}");
        Ok(())
    }

    /// Build the report on message `id` for `to` and append it, from
    /// `from`, durably to qmgr's own segments; its queue ID.
    async fn queue_notice(
        &mut self,
        id: &QueueId,
        kind: ReportKind,
        to: &str,
        from: String,
        reports: &[RecipientReport],
    ) -> anyhow::Result<QueueId> {
        let m = self
            .messages
            .get(id)
            .ok_or_else(|| anyhow::anyhow!("no such message"))?;
        let sender = m.env.sender.clone();
        let limit = self.cfg.queue.bounce_size_limit;
        let original = match read_content_prefix(&self.qdir, &m.content, limit as u64 + 1) {
            Ok(c) => c,
            Err(e) => {
                log::warn!(
                    queue_id = id.as_str();
                    "{id}: cannot read the message for its notification: {e}"
                );
                Vec::new()
            }
        };
        let new_id = self.notices.next_id();
        let now = SystemTime::now();
        let body = dsn::build_report(&ReportInput {
            kind,
            reporting_mta: &self.cfg.server.hostname,
            queue_id: id.as_str(),
            new_queue_id: new_id.as_str(),
            sender: if sender.is_empty() { to } else { &sender },
            envid: m.env.envid.as_deref(),
            arrival: UNIX_EPOCH + Duration::from_micros(m.env.arrival_us),
            now,
            recipients: reports,
            original: &original,
            ret: m.env.ret,
            size_limit: self.cfg.queue.bounce_size_limit,
            smtputf8: m.env.smtputf8,
            delay_warning_time: self.cfg.queue.delay_warning_time,
            maximal_queue_lifetime: self.cfg.queue.maximal_lifetime,
        });
        let envelope = Envelope {
            id: new_id.clone(),
            arrival_us: now_micros(),
            sender: from,
            recipients: vec![Recipient {
                address: to.to_string(),
                orcpt: None,
                notify: None,
                original: None,
            }],
            ret: None,
            envid: None,
            body: if body.iter().any(|b| *b >= 0x80) {
                crate::queue::Body::EightBitMime
            } else {
                crate::queue::Body::SevenBit
            },
            smtputf8: m.env.smtputf8,
            client: Client {
                name: "localhost".into(),
                addr: "127.0.0.1".into(),
                helo: None,
                protocol: Client::NOTICE_PROTOCOL.into(),
                sasl_username: None,
                uid: None,
            },
            message_id: None,
            size: body.len() as u64,
            hold: false,
        };
        let head = encode_message_head(&envelope, ContentKind::Inline)?;
        self.notices.queue(head, body).await?;
        Ok(new_id)
    }
}

impl Engine {
    /// Record that the delay warning went out, so it never goes twice.
    async fn mark_warned(&mut self, id: &QueueId) {
        let rec =
            crate::qmgr::state::StateRecord::Warned(crate::qmgr::state::Moved { id: id.clone() });
        self.append_all(vec![rec], false).await;
        if let Some(m) = self.messages.get_mut(id) {
            m.warned = true;
        }
    }
}

fn report(env: &Envelope, o: &Reportable) -> RecipientReport {
    let r = env.recipients.get(o.rcpt);
    RecipientReport {
        final_recipient: r.map(|r| r.address.clone()).unwrap_or_default(),
        orcpt: r.and_then(|r| r.orcpt.clone()),
        // Rewritten at queue entry (virtual aliases, canonical): "expanded
        // from <original>" and its Original-Recipient.
        original_address: r.and_then(|r| r.original.clone()),
        action: match o.kind {
            ReportKind::Failure => Action::Failed,
            ReportKind::Delay => Action::Delayed,
            ReportKind::Success => Action::Delivered,
        },
        status: o.dsn,
        remote_mta: o.remote_mta.clone(),
        diagnostic: o.diagnostic.clone(),
        reason: o.reason.clone(),
    }
}

impl Engine {
    /// Queue the message anew, same content, for `addrs`: from the same
    /// sender (an alias's addresses in other domains), or from `owner` (a
    /// list's addresses; then without the DSN envelope id, RET and ORCPT,
    /// and NOTIFY without SUCCESS, as Postfix); logs Postfix's
    /// `to=<…>, relay=local, …, status=sent (forwarded as NEWID)`.
    pub(super) async fn forward(
        &mut self,
        id: &QueueId,
        rcpt: usize,
        owner: Option<&str>,
        addrs: &[String],
    ) -> anyhow::Result<QueueId> {
        let m = self
            .messages
            .get(id)
            .ok_or_else(|| anyhow::anyhow!("no such message"))?;
        let content = super::read_content(&self.qdir, &m.content)?;
        let new_id = self.notices.next_id();
        let mut envelope = m.env.clone();
        envelope.id = new_id.clone();
        envelope.arrival_us = now_micros();
        let notify = match owner {
            Some(owner) => {
                envelope.sender = owner.to_string();
                envelope.envid = None;
                envelope.ret = None;
                let original = m.env.recipients.get(rcpt).and_then(|r| r.notify.as_deref());
                original.and_then(dsn::without_success)
            }
            None => None,
        };
        envelope.recipients = addrs
            .iter()
            .map(|a| Recipient {
                address: a.clone(),
                orcpt: None,
                notify: notify.clone(),
                original: None,
            })
            .collect();
        // Queued anew, so rewritten as every message entering the queue
        // is (Postfix's forwarded copies go through cleanup): an alias to
        // an address in a virtual alias domain reaches its target. The
        // sender stays the original one.
        let rewriter = crate::rewrite::Rewriter::new(self.cfg.clone());
        let mut sender = envelope.sender.clone();
        rewriter.envelope(&mut sender, &mut envelope.recipients)?;
        envelope.size = content.len() as u64;
        let head = encode_message_head(&envelope, ContentKind::Inline)?;
        self.notices.queue(head, content).await?;
        let age = now_micros().saturating_sub(m.env.arrival_us) as f64 / 1e6;
        log::info!(
            queue_id = id.as_str(),
            recipient = m.env.recipients.get(rcpt).map(|r| r.address.as_str()),
            status = "sent";
            "{id}: to=<{}>, relay=local, delay={}, dsn=2.0.0, status=sent (forwarded as {new_id})",
            m.env
                .recipients
                .get(rcpt)
                .map_or("", |r| r.address.as_str()),
            crate::wire::delay::format_delay(age),
        );
        Ok(new_id)
    }
}
