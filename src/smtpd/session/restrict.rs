//! The seam between a session and the access policy
//! ([`crate::policy`]): the context a command is checked in, the lists due
//! at CONNECT, HELO and MAIL without delay_reject, and the policy's log
//! lines in Postfix's shape (`NOQUEUE: reject: RCPT from host[ip]: …;
//! from=<…> to=<…> proto=ESMTP helo=<…>`).

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::policy::{Context, Decision, When};
use crate::reply::Reply;

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Session<R, W> {
    /// The restrictions of CONNECT, HELO (`arg` the name) or MAIL (`arg`
    /// the sender) when `restrictions.delay_reject` is false: the reply
    /// when they refuse (logged here). Local submissions are not checked.
    pub(super) async fn restrict(&mut self, when: When, arg: Option<&str>) -> Option<Reply> {
        if self.cfg().restrictions.delay_reject || self.uid.is_some() {
            return None;
        }
        let helo = match when {
            When::Helo => arg,
            _ => self.helo.as_deref(),
        };
        let sender = match when {
            When::Mail => arg,
            _ => None,
        };
        let ctx = Context {
            ip: self.ip,
            name: &self.name,
            name_status: self.name_status,
            helo,
            sender,
            recipient: None,
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
            ip: self.ip,
            name: &self.name,
            name_status: self.name_status,
            helo: self.helo.as_deref(),
            sender: Some(sender),
            recipient: Some(rcpt),
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
        self.whatsup_at(action, when, text, sender, rcpt, self.helo.as_deref());
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
            queue_id = self.tx.as_ref().and_then(|t| t.id.as_ref()).map(|i| i.as_str()),
            client:% = crate::logging::client_field(self.uid, self.client()),
            recipient = rcpt,
            status = action;
            "{}{action}: {} from {}: {text};{items}",
            self.qid_prefix(),
            // The command at hand as Postfix names it (EHLO or HELO).
            if when == When::Connect { "CONNECT" } else { self.last_cmd },
            self.client()
        );
    }
}
