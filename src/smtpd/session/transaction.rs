//! The transaction level of a session ([`Transaction`]: from MAIL to the
//! end of DATA or BDAT LAST, RSET or the next EHLO/HELO) and its commands:
//! MAIL (with the queue's free space checked first, Postfix's
//! `queue_minfree`) and RCPT (with duplicate recipients dropped, as
//! Postfix's cleanup drops them), and the checks of a local submitter.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use super::bdat::Chunking;
use super::milter::{Said, Stage};
use crate::address::{Address, Path};
use crate::auth_results::SpfChecks;
use crate::policy::{Decision, When};
use crate::queue::space::{effective_minfree, free_space, room_for};
use crate::queue::{QueueId, Recipient};
use crate::reply::Reply;
use crate::smtpd::command::{MailParams, RcptParams};

/// One mail transaction.
pub(super) struct Transaction {
    pub(super) sender: String,
    pub(super) params: MailParams,
    /// Each recipient once (duplicates are dropped).
    pub(super) rcpts: Vec<Recipient>,
    /// RCPT commands accepted, duplicates included
    /// (`smtpd.recipient_limit`).
    rcpt_count: usize,
    /// Given at DATA or the first BDAT chunk.
    pub(super) id: Option<QueueId>,
    /// The message coming in BDAT chunks, from the first one: no DATA,
    /// MAIL or RCPT until LAST.
    pub(super) chunking: Option<Chunking>,
    /// An access table said HOLD (the reason as logged).
    pub(super) hold: Option<String>,
    /// An access table said DISCARD: accept, then drop the message.
    pub(super) discard: Option<String>,
    /// Headers an access table said to PREPEND.
    pub(super) prepend: Vec<String>,
    /// SPF for HELO and MAIL FROM, once a restriction asked at RCPT
    /// (`reject_spf_fail`, `check_spf`); the message's
    /// `Authentication-Results:` reuses it.
    pub(super) spf: Arc<tokio::sync::OnceCell<SpfChecks>>,
}

impl Transaction {
    fn new(sender: String, params: MailParams) -> Transaction {
        Transaction {
            sender,
            params,
            rcpts: Vec::new(),
            rcpt_count: 0,
            id: None,
            chunking: None,
            spf: Arc::default(),
            hold: None,
            discard: None,
            prepend: Vec::new(),
        }
    }

    /// A recipient given twice is queued once, with the first one's
    /// ORCPT and NOTIFY (Postfix's cleanup does this).
    fn has(&self, to: &Address) -> bool {
        self.rcpts.iter().any(|r| same_mailbox(&r.address, to))
    }

    /// A recipient accepted, and what the access tables said for it (the
    /// first HOLD and DISCARD count, every PREPEND).
    fn accept(&mut self, rcpt: Recipient, decision: Decision) {
        if decision.hold.is_some() && self.hold.is_none() {
            self.hold = decision.hold;
        }
        if decision.discard.is_some() && self.discard.is_none() {
            self.discard = decision.discard;
        }
        self.prepend.extend(decision.prepend);
        self.rcpt_count += 1;
        self.rcpts.push(rcpt);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn mail(&mut self, from: Path, params: MailParams) -> bool {
        if self.tls_required() {
            return self.fail(Reply::new(
                530,
                "5.7.0",
                "Must issue a STARTTLS command first",
            ));
        }
        if self.auth_required() {
            return self.fail(Reply::new(530, "5.7.0", "Authentication required"));
        }
        if let Some(tx) = self.tx.as_ref() {
            return self.fail(match tx.chunking {
                Some(_) => Reply::after_bdat("MAIL"),
                None => Reply::nested_mail(),
            });
        }
        if from.address().is_some_and(|a| !a.is_ascii()) && !params.smtputf8 {
            return self.fail(Reply::must_declare_smtputf8());
        }
        if let Some(uid) = self.client.uid
            && let Err(r) = self.check_submitter(uid, &from)
        {
            log::info!(
                client:% = self.client.field(),
                status = "reject";
                "NOQUEUE: reject: MAIL from {} (uid {uid}): {r}",
                self.client()
            );
            return self.fail(r);
        }
        let limit = self.cfg().smtpd.message_size_limit;
        if limit > 0 && params.size.is_some_and(|s| s > limit) {
            let r = Reply::size_exceeds_limit();
            self.log_mail_reject(&r);
            return self.fail(r);
        }
        if let Err(r) = self.check_queue_space(params.size) {
            return self.fail(r);
        }
        let sender = match from {
            Path::Null => String::new(),
            Path::Mailbox(a) => a.to_string(),
        };
        if let Some(r) = self.restrict(When::Mail, Some(&sender)).await {
            return self.fail(r);
        }
        let args = milter_mail_args(&sender, &params);
        self.tx = Some(Transaction::new(sender, params));
        if let Said::Refuse(r) = self.milter_stage(Stage::Mail(&args)).await {
            self.tx = None;
            return self.fail(r);
        }
        self.reply(&Reply::mail_ok());
        true
    }

    pub(super) async fn rcpt(&mut self, to: Address, params: RcptParams) -> bool {
        let Some(tx) = self.tx.as_ref() else {
            return self.fail(Reply::need_mail());
        };
        if tx.chunking.is_some() {
            return self.fail(Reply::after_bdat("RCPT"));
        }
        if !to.is_ascii() && !tx.params.smtputf8 {
            return self.fail(Reply::must_declare_smtputf8());
        }
        if tx.rcpt_count >= self.cfg().smtpd.recipient_limit {
            return self.fail(Reply::too_many_recipients());
        }
        // A recipient given twice is queued once; the client is told 250
        // each time.
        if tx.has(&to) {
            if let Some(tx) = self.tx.as_mut() {
                tx.rcpt_count += 1;
            }
            self.reply(&Reply::rcpt_ok());
            return true;
        }
        let sender = tx.sender.clone();
        let rcpt = to.to_string();
        // The restrictions (relay control among them), then the local
        // recipient table. Local submissions skip the restrictions, as
        // Postfix's pickup does; the bare postmaster is always accepted.
        let mut decision = if self.client.uid.is_some() || crate::policy::is_bare_postmaster(&rcpt)
        {
            Decision::default()
        } else {
            self.policy_check(When::Rcpt, &sender, &rcpt).await
        };
        let refused = match decision.reject.take() {
            Some(r) => Some(r),
            None => crate::policy::known_recipient(
                self.cfg(),
                self.policy.rewriter(),
                &self.aliases,
                &to,
            )
            .err(),
        };
        if let Some(r) = refused {
            self.whatsup(
                "reject",
                When::Rcpt,
                &r.to_string(),
                Some(&sender),
                Some(&rcpt),
            );
            return self.fail(r);
        }
        let args = [format!("<{rcpt}>")];
        if let Said::Refuse(r) = self.milter_stage(Stage::Rcpt(&args)).await {
            return self.fail(r);
        }
        let recipient = Recipient {
            address: rcpt,
            orcpt: params.orcpt,
            notify: params.notify,
            original: None,
        };
        if let Some(tx) = self.tx.as_mut() {
            tx.accept(recipient, decision);
        }
        self.reply(&Reply::rcpt_ok());
        true
    }

    /// A local submission: may this user submit, and with this sender
    /// (`smtpd.authorized_submit_users`, `smtpd.sender_override_users`)?
    /// The same check for `submit.sock` and the drop directory.
    fn check_submitter(&self, uid: u32, from: &Path) -> Result<(), Reply> {
        crate::policy::submitter::check(self.cfg(), uid, &from.to_string())
    }

    /// `queue.minfree`: is there room in the queue for a message of
    /// `size` bytes (as declared with SIZE=, else 0)? The refusal is
    /// logged as Postfix logs it.
    fn check_queue_space(&self, size: Option<u64>) -> Result<(), Reply> {
        let minfree = effective_minfree(
            self.cfg().queue.minfree,
            self.cfg().smtpd.message_size_limit,
        );
        let free = match free_space(&self.shared.incoming) {
            Ok(free) => free,
            Err(e) => {
                // Not knowing is no reason to refuse mail; the write will
                // tell.
                log::warn!(
                    "cannot learn the free space of {}: {e}",
                    self.shared.incoming.display()
                );
                return Ok(());
            }
        };
        let size = size.unwrap_or(0);
        if room_for(free, minfree, size) {
            return Ok(());
        }
        let r = Reply::insufficient_storage();
        log::warn!(
            "not enough free space in mail queue: {free} bytes < {minfree} (queue.minfree) + message size {size}"
        );
        self.log_mail_reject(&r);
        Err(r)
    }

    /// Postfix's line for a MAIL refused by smtpd itself.
    fn log_mail_reject(&self, r: &Reply) {
        log::info!(
            client:% = self.client.field(),
            status = "reject";
            "NOQUEUE: reject: MAIL from {}: {r}; proto={} helo=<{}>",
            self.client(),
            self.proto(),
            self.helo().unwrap_or("")
        );
    }
}

/// The same mailbox: the local part as written (RFC 5321 leaves its case
/// to the receiving system), the domain without regard to case.
/// MAIL's arguments as a milter gets them: `<sender>`, then the ESMTP
/// parameters postern took.
fn milter_mail_args(sender: &str, params: &MailParams) -> Vec<String> {
    let mut args = vec![format!("<{sender}>")];
    if let Some(size) = params.size {
        args.push(format!("SIZE={size}"));
    }
    match params.body {
        Some(crate::queue::Body::EightBitMime) => args.push("BODY=8BITMIME".into()),
        Some(crate::queue::Body::SevenBit) => args.push("BODY=7BIT".into()),
        None => {}
    }
    if params.smtputf8 {
        args.push("SMTPUTF8".into());
    }
    args
}

fn same_mailbox(queued: &str, new: &Address) -> bool {
    let (local, domain) = match queued.rsplit_once('@') {
        Some((l, d)) => (l, d),
        None => (queued, ""),
    };
    let new_text = new.to_string();
    let (new_local, new_domain) = match new_text.rsplit_once('@') {
        Some((l, d)) => (l, d),
        None => (new_text.as_str(), ""),
    };
    local == new_local && domain.eq_ignore_ascii_case(new_domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_compare_the_domain_without_case() {
        let a = |s: &str| Address::parse(s, true).unwrap();
        assert!(same_mailbox("u@example.org", &a("u@EXAMPLE.org")));
        assert!(same_mailbox("postmaster", &a("postmaster")));
        assert!(!same_mailbox("U@example.org", &a("u@example.org")));
        assert!(!same_mailbox("u@example.org", &a("u@example.net")));
        assert!(!same_mailbox("u@example.org", &a("u")));
        let quoted = a("\"a b\"@Example.org").to_string();
        assert!(same_mailbox(&quoted, &a("\"a b\"@example.ORG")));
    }
}
