//! Verification on arrival (`[verify]`): the message's DKIM signatures,
//! SPF for HELO and MAIL FROM (made at RCPT already when a restriction
//! asked) and DMARC, written as one `Authentication-Results:` field
//! right below smtpd's own `Received:` (above every field the message
//! came with), any field that claims our authserv-id removed first; then
//! DMARC's `p=reject` as `verify.dmarc_reject` says.
//!
//! Mail from this host's own clients (`relay.networks`, logged in,
//! local) is not verified: it is what `dkim.sign` signs.

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use super::transaction::Transaction;
use crate::auth_results::{Identity, Report, not_verified, spf_name, without_ours};
use crate::config::DmarcReject;
use crate::content::Verdict;
use crate::queue::QueueId;
use crate::reply::Reply;
use crate::smtpd::store::Store;
use crate::wire::header::field_end;

/// What becomes of the message after [`Session::inspect`].
pub(super) enum Inspected {
    Keep,
    /// A milter said DISCARD (logged).
    Discard,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Whether this session's mail is verified.
    pub(super) fn verifies(&self) -> bool {
        let (logged_in, local) = (self.sasl_user().is_some(), self.client.uid.is_some());
        not_verified(self.cfg(), self.client.ip, logged_in, local).is_none()
    }

    /// The end of the message, before it is queued: verification (the
    /// field, forged ones removed, DMARC's `p=reject`), then the milters
    /// (their answer, their changes to the content and the envelope),
    /// then the field goes in below our `Received:`. The content is read
    /// back and written again only when one of them runs. `Err`: refuse
    /// the message; `verdict.hold` is set for a hold.
    pub(super) async fn inspect(
        &mut self,
        id: &QueueId,
        tx: &mut Transaction,
        store: &mut Store,
        verdict: &mut Verdict,
    ) -> Result<Inspected, Reply> {
        let verifier = self
            .verifies()
            .then(|| self.policy.verifier.clone())
            .flatten();
        let milters = self.milters.is_some();
        if verifier.is_none() && !milters {
            return Ok(Inspected::Keep);
        }
        let write_error = |e: std::io::Error| {
            log::warn!(queue_id = id.as_str(); "{id}: queue file write error: {e}");
            Reply::queue_write_error()
        };
        let mut content = store.content().await.map_err(write_error)?;
        let mut field = None;
        if let Some(verifier) = verifier {
            let hostname = self.cfg().server.hostname.clone();
            if let Some((kept, removed)) = without_ours(&content, &hostname) {
                log::info!(
                    queue_id = id.as_str();
                    "{id}: removed {removed} Authentication-Results header(s) claiming {hostname}"
                );
                content = kept;
            }
            let who = Identity {
                client_ip: self.client.ip.to_canonical(),
                helo: self.helo().unwrap_or(""),
                mail_from: &tx.sender,
            };
            let report = verifier.report(&content, &who, tx.spf.get().cloned()).await;
            log::info!(queue_id = id.as_str(); "{id}: {}", summary(&report));
            self.dmarc_action(id, tx, &report, verdict)?;
            field = Some(report.field);
        }
        // The part above stays as it is: milters change only what follows.
        let below = below_our_received(&content, id.as_str());
        if milters {
            let changed = self
                .milters_message(id, tx, &content[below..], verdict)
                .await?;
            if tx.discard.is_some() {
                return Ok(Inspected::Discard);
            }
            match changed {
                Some(changed) => {
                    content.truncate(below);
                    content.extend_from_slice(&changed);
                }
                None if field.is_none() => return Ok(Inspected::Keep),
                None => {}
            }
        }
        if let Some(field) = field {
            content.splice(below..below, field.into_bytes());
        }
        store.replace_content(content).await.map_err(write_error)?;
        Ok(Inspected::Keep)
    }

    /// `p=reject` and a DMARC `fail`: what `verify.dmarc_reject` says,
    /// logged as Postfix logs a milter's reject or hold.
    fn dmarc_action(
        &self,
        id: &QueueId,
        tx: &Transaction,
        report: &Report,
        verdict: &mut Verdict,
    ) -> Result<(), Reply> {
        let Some(dmarc) = report.dmarc.as_ref().filter(|_| report.dmarc_rejects()) else {
            return Ok(());
        };
        let domain = dmarc.domain();
        match self.cfg().verify.dmarc_reject {
            DmarcReject::Reject => {
                let r = Reply::dmarc_reject(domain);
                self.log_reject_at("END-OF-MESSAGE", id, &tx.sender, &r);
                Err(r)
            }
            DmarcReject::Hold => {
                log::info!(
                    queue_id = id.as_str(),
                    client:% = self.client.field(),
                    status = "hold";
                    "{id}: hold: END-OF-MESSAGE from {}: DMARC policy of {domain} \
                     (p=reject, verify.dmarc_reject = \"hold\"); from=<{}> proto={} helo=<{}>",
                    self.client(),
                    tx.sender,
                    self.proto(),
                    self.helo().unwrap_or("")
                );
                verdict.hold = true;
                Ok(())
            }
            DmarcReject::Header => Ok(()),
        }
    }
}

/// Where the field goes: right below smtpd's own `Received:` (the one
/// naming this queue ID), where Postfix's milters put theirs and where
/// Gmail writes its own; at the top when a header check took that
/// `Received:` away.
fn below_our_received(content: &[u8], id: &str) -> usize {
    let ours = format!("id {id}");
    let mut at = 0;
    while at < content.len() {
        let end = field_end(content, at);
        if end == at {
            break;
        }
        let field = &content[at..end];
        let is_received = field.len() > 9 && field[..9].eq_ignore_ascii_case(b"Received:");
        if is_received && String::from_utf8_lossy(field).contains(&ours) {
            return end;
        }
        at = end;
    }
    0
}

/// The results in one short line for the log:
/// `Authentication-Results: dkim=pass spf=pass dmarc=pass (p=reject)`.
fn summary(report: &Report) -> String {
    let word = |part: &str| part.split_whitespace().next().unwrap_or("").to_string();
    let mut words: Vec<String> = report.dkim.iter().map(|d| word(d)).collect();
    words.push(format!("spf={}", spf_name(report.spf.mail_from.result())));
    words.push(word(&report.dmarc_part));
    if let Some(d) = &report.dmarc {
        words.push(format!(
            "(p={} from {})",
            policy_name(d.policy()),
            d.domain()
        ));
    }
    format!("Authentication-Results: {}", words.join(" "))
}

fn policy_name(p: mail_auth::dmarc::Policy) -> &'static str {
    match p {
        mail_auth::dmarc::Policy::None | mail_auth::dmarc::Policy::Unspecified => "none",
        mail_auth::dmarc::Policy::Quarantine => "quarantine",
        mail_auth::dmarc::Policy::Reject => "reject",
    }
}
