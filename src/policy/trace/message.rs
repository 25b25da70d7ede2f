//! `--message FILE`: what smtpd does at the end of DATA, in its order.
//! The header and body checks run as the message streams; their REJECT
//! or DISCARD ends it there. Otherwise mail from outside is verified
//! (DKIM, SPF, DMARC: [`super::auth`]) and a DMARC failure under
//! `p=reject` does what `verify.dmarc_reject` says. The verification is
//! shown for any client; for one smtpd does not verify, for information.
//!
//! The file is read as a user gives it (LF or CRLF line ends) and taken
//! in the stored form (LF), as the queue, the inspector and the verifier
//! have it.

use std::path::Path;

use super::Probe;
use super::auth::{self, AuthReport};
use crate::auth_results::{Identity, SpfChecks, not_verified, without_ours};
use crate::config::{Choice, Config, DmarcReject};
use crate::content::Verdict;
use crate::policy::Policy;
use crate::reply::Reply;

/// The end of DATA.
pub(super) struct EndOfData {
    /// The file, the checks' log lines and the reply to the message.
    pub text: String,
    pub authentication: Option<AuthReport>,
    /// The message would be taken (queued, held or discarded).
    pub accepted: bool,
}

/// Runs the checks on the file at `path` for `probe`'s client (`client`
/// as the log names it: `name[ip]`), with the transaction's SPF when a
/// restriction made it at RCPT.
pub(super) async fn end_of_data(
    config: &Config,
    policy: &Policy,
    probe: &Probe,
    client: &str,
    path: &Path,
    spf: Option<&SpfChecks>,
) -> EndOfData {
    let stored = match read_stored(path) {
        Ok(s) => s,
        Err(text) => {
            return EndOfData {
                text,
                authentication: None,
                accepted: false,
            };
        }
    };
    let checks = content_checks(config, &stored, probe, client);
    let for_milters = (!config.milters.smtpd.is_empty()).then(|| stored.clone());
    let ip = probe.client.to_canonical();
    let why_not = not_verified(config, ip, probe.sasl_user.is_some(), false);
    let mut dmarc_rejects = None;
    let authentication = match &policy.verifier {
        None => None,
        Some(verifier) => {
            // smtpd takes away fields that claim its name before it
            // verifies (and only then).
            let hostname = &config.server.hostname;
            let (content, removed) = match why_not {
                None => without_ours(&stored, hostname).unwrap_or((stored, 0)),
                Some(_) => (stored, 0),
            };
            let who = Identity {
                client_ip: ip,
                helo: probe.helo.as_deref().unwrap_or(""),
                mail_from: &probe.sender,
            };
            let verified = verifier.report(&content, &who, spf.cloned()).await;
            if why_not.is_none() && verified.dmarc_rejects() {
                dmarc_rejects = verified.dmarc.as_ref().map(|d| d.domain().to_string());
            }
            let report = auth::explain(verified, policy.resolver(), why_not, removed);
            Some(report.await)
        }
    };
    let (mut lines, verdict) = match checks {
        Ok(found) => found,
        Err(text) => {
            return EndOfData {
                text,
                authentication,
                accepted: false,
            };
        }
    };
    // The milters, when nothing before them refused the message.
    let refused_before = verdict.reject.is_some()
        || verdict.discard
        || (dmarc_rejects.is_some() && config.verify.dmarc_reject == DmarcReject::Reject);
    let milters = match for_milters {
        Some(stored) if !refused_before => {
            let name = client.split('[').next().unwrap_or("unknown");
            Some(super::milters::ask(config, probe, name, &stored).await)
        }
        _ => None,
    };
    let accepted = outcome(
        config,
        &verdict,
        dmarc_rejects.as_deref(),
        milters,
        &mut lines,
    );
    EndOfData {
        text: format!("{}\n  {}", path.display(), lines.join("\n  ")),
        authentication,
        accepted,
    }
}

/// The message file in the stored form: LF line ends (a CRLF, as a user
/// may give it, becomes LF).
fn read_stored(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    Ok(crate::wire::data::lf_form(&bytes))
}

/// The header and body checks of `[checks]` on `stored`, as smtpd runs
/// them while DATA streams: every log line they would write, and their
/// verdict; `Err` when they cannot run.
fn content_checks(
    config: &Config,
    stored: &[u8],
    probe: &Probe,
    client: &str,
) -> Result<(Vec<String>, Verdict), String> {
    use crate::content::{ContentChecks, Context as ContentContext, Inspector};
    let checks = ContentChecks::open(config)
        .map_err(|e| format!("header and body checks unavailable: {e}"))?;
    if checks.is_empty() {
        let none = "no header or body checks configured".to_string();
        return Ok((vec![none], Verdict::default()));
    }
    let ctx = ContentContext {
        queue_id: "TRACE".to_string(),
        origin: client.to_string(),
        sender: probe.sender.clone(),
        recipient: probe.recipients.last().cloned(),
        proto: Some("ESMTP".to_string()),
        helo: probe.helo.clone(),
    };
    let mut inspector = Inspector::new(checks, ctx);
    inspector.feed(stored, &mut |_| {});
    inspector.finish(&mut |_| {});
    let lines = inspector
        .take_log()
        .into_iter()
        .map(|l| match l.warn {
            true => format!("warning: {}", l.text),
            false => l.text,
        })
        .collect();
    Ok((lines, inspector.verdict().clone()))
}

/// The reply to the message, added to `lines`: a check's REJECT or
/// DISCARD first, then DMARC's `p=reject` failure of the From: domain
/// `dmarc_rejects` (mail smtpd verifies only), then a HOLD; whether it
/// is taken.
fn outcome(
    config: &Config,
    verdict: &Verdict,
    dmarc_rejects: Option<&str>,
    milters: Option<super::milters::Said>,
    lines: &mut Vec<String>,
) -> bool {
    if let Some(r) = &verdict.reject {
        lines.push(format!("DATA: {r}"));
        return false;
    }
    if verdict.discard {
        lines.push("DATA: 250, then discarded".to_string());
        return true;
    }
    let action = config.verify.dmarc_reject;
    if let Some(domain) = dmarc_rejects {
        lines.push(format!(
            "DMARC: fail under p=reject of {domain}; verify.dmarc_reject = \"{}\"",
            action.word()
        ));
        match action {
            DmarcReject::Reject => {
                lines.push(format!("DATA: {}", Reply::dmarc_reject(domain)));
                return false;
            }
            DmarcReject::Hold => {
                lines.push("DATA: 250, held in the queue".to_string());
                return true;
            }
            DmarcReject::Header => {}
        }
    }
    let mut hold = verdict.hold;
    if let Some(said) = milters {
        lines.extend(said.lines);
        match said.refused {
            Some(Some(r)) => {
                lines.push(format!("DATA: {r}"));
                return false;
            }
            Some(None) => {
                lines.push("DATA: 250, then discarded (milter)".to_string());
                return true;
            }
            None => hold |= said.hold,
        }
    }
    lines.push(match hold {
        true => "DATA: 250, held in the queue".to_string(),
        false => "DATA: 250 accepted".to_string(),
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(action: &str) -> Config {
        let mut config = Config::builtin();
        config.verify.dmarc_reject = DmarcReject::from_name(action).unwrap();
        config
    }

    #[test]
    fn a_dmarc_failure_under_p_reject_does_what_verify_dmarc_reject_says() {
        let fine = Verdict::default();
        let mut lines = Vec::new();
        assert!(!outcome(
            &config("reject"),
            &fine,
            Some("example.org"),
            None,
            &mut lines
        ));
        assert_eq!(
            lines,
            [
                "DMARC: fail under p=reject of example.org; verify.dmarc_reject = \"reject\"",
                "DATA: 550 5.7.1 rejected by DMARC policy for example.org"
            ]
        );
        let mut lines = Vec::new();
        assert!(outcome(
            &config("hold"),
            &fine,
            Some("example.org"),
            None,
            &mut lines
        ));
        assert_eq!(lines[1], "DATA: 250, held in the queue");
        let mut lines = Vec::new();
        assert!(outcome(
            &config("header"),
            &fine,
            Some("example.org"),
            None,
            &mut lines
        ));
        assert_eq!(lines[1], "DATA: 250 accepted");
        // A header check's REJECT comes first: smtpd verifies nothing then.
        let refused = Verdict {
            reject: Some(Reply::new(550, "5.7.1", "message content rejected")),
            ..Verdict::default()
        };
        let mut lines = Vec::new();
        assert!(!outcome(
            &config("hold"),
            &refused,
            Some("example.org"),
            None,
            &mut lines
        ));
        assert_eq!(lines, ["DATA: 550 5.7.1 message content rejected"]);
    }

    #[test]
    fn a_message_file_is_taken_with_lf_line_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.eml");
        std::fs::write(&path, b"Subject: a\r\n\r\nbare\rcr\r\nlf\n").unwrap();
        assert_eq!(read_stored(&path).unwrap(), b"Subject: a\n\nbare\rcr\nlf\n");
        let missing = read_stored(&dir.path().join("none")).unwrap_err();
        assert!(missing.contains("none: cannot read: "), "{missing}");
    }
}
