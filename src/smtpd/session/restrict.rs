//! The seam between a session and the access policy
//! ([`crate::policy`]): the context a command is checked in, the lists due
//! at CONNECT, HELO and MAIL without delay_reject, and the policy's log
//! lines in Postfix's shape (`NOQUEUE: reject: RCPT from host[ip]: …;
//! from=<…> to=<…> proto=ESMTP helo=<…>`).

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::policy::{Context, Decision, When};
use crate::reply::Reply;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The restrictions of CONNECT, HELO (`arg` the name) or MAIL (`arg`
    /// the sender) when `restrictions.delay_reject` is false: the reply
    /// when they refuse (logged here). Local submissions are not checked.
    pub(super) async fn restrict(&mut self, when: When, arg: Option<&str>) -> Option<Reply> {
        if self.cfg().restrictions.delay_reject || self.client.uid.is_some() {
            return None;
        }
        let helo = match when {
            When::Helo => arg,
            _ => self.helo(),
        };
        let sender = match when {
            When::Mail => arg,
            _ => None,
        };
        let ctx = Context {
            ip: self.client.ip,
            name: &self.client.name,
            name_status: self.client.name_status,
            helo,
            sender,
            recipient: None,
            sasl_user: self.sasl_user(),
            submission: self.service.is_submission(),
            spf: None,
            aliases: Some(&self.aliases),
        };
        let decision = self.policy.check(when, &ctx).await;
        for e in &decision.events {
            self.whatsup_at(e.action, when, &e.text, sender, None, helo);
        }
        let r = decision.reject?;
        self.whatsup_at("reject", when, &r.to_string(), sender, None, helo);
        Some(r)
    }

    /// The restrictions at RCPT; the decision's events are logged here,
    /// its reject by the caller.
    pub(super) async fn policy_check(&mut self, when: When, sender: &str, rcpt: &str) -> Decision {
        let ctx = Context {
            ip: self.client.ip,
            name: &self.client.name,
            name_status: self.client.name_status,
            helo: self.helo(),
            sender: Some(sender),
            recipient: Some(rcpt),
            sasl_user: self.sasl_user(),
            submission: self.service.is_submission(),
            spf: self.tx.as_ref().map(|tx| &*tx.spf),
            aliases: Some(&self.aliases),
        };
        let decision = self.policy.check(when, &ctx).await;
        for e in &decision.events {
            self.whatsup(e.action, when, &e.text, Some(sender), Some(rcpt));
        }
        decision
    }

    /// A policy log line in Postfix's shape (`log_whatsup`):
    /// `NOQUEUE: reject: RCPT from host[ip]: TEXT; from=<…> to=<…>
    /// proto=ESMTP helo=<…>`, each item only when known.
    pub(super) fn whatsup(
        &self,
        action: &str,
        when: When,
        text: &str,
        sender: Option<&str>,
        rcpt: Option<&str>,
    ) {
        self.whatsup_at(action, when, text, sender, rcpt, self.helo());
    }

    fn whatsup_at(
        &self,
        action: &str,
        when: When,
        text: &str,
        sender: Option<&str>,
        rcpt: Option<&str>,
        helo: Option<&str>,
    ) {
        let mut items = String::new();
        if let Some(s) = sender {
            items += &format!(" from=<{s}>");
        }
        if let Some(r) = rcpt {
            items += &format!(" to=<{r}>");
        }
        items += &format!(" proto={}", self.proto());
        if let Some(h) = helo {
            items += &format!(" helo=<{h}>");
        }
        log::info!(
            queue_id = self.queue_id(),
            client:% = self.client.field(),
            recipient = rcpt,
            status = action;
            "{}{action}: {} from {}: {text};{items}",
            self.qid_prefix(),
            // The command at hand as Postfix names it (EHLO or HELO).
            if when == When::Connect { "CONNECT" } else { self.counters.last_cmd },
            self.client()
        );
    }
}
