//! `--message FILE` and the milters of `milters.smtpd`: each is asked as
//! smtpd asks it (CONNECT, HELO, MAIL, each RCPT, DATA, the message),
//! one after the other, and what it answered at each stage is shown with
//! the changes it asked for at the end. The milters are real: a rspamd
//! or OpenDKIM that the configuration names is asked for real.

use std::net::IpAddr;

use super::Probe;
use crate::config::Config;
use crate::milter::client::Client;
use crate::milter::{Answer, Modification, Timeouts};
use crate::reply::Reply;

/// What the milters said about the message.
pub(super) struct Said {
    pub lines: Vec<String>,
    /// A milter refused it (the reply), or said DISCARD (`None` reply).
    pub refused: Option<Option<Reply>>,
    /// A milter asked for a hold (quarantine).
    pub hold: bool,
}

/// Every milter of `milters.smtpd` on the probe's transaction and
/// `stored` (the message in the stored form).
pub(super) async fn ask(config: &Config, probe: &Probe, name: &str, stored: &[u8]) -> Said {
    let mut said = Said {
        lines: Vec::new(),
        refused: None,
        hold: false,
    };
    let m = &config.milters;
    let timeouts = Timeouts {
        connect: m.connect_timeout,
        command: m.command_timeout,
        content: m.content_timeout,
    };
    for address in &m.smtpd {
        said.lines.push(format!("milter {address}:"));
        let mut client = match Client::open(address, timeouts).await {
            Ok(c) => c,
            Err(e) => {
                said.lines.push(format!(
                    "  {e}: milters.default_action = \"{}\"",
                    crate::config::Choice::word(m.default_action)
                ));
                continue;
            }
        };
        let answer = stages(&mut client, config, probe, name, stored, &mut said.lines).await;
        let _ = client.quit().await;
        let Some((stage, answer, quarantined)) = answer else {
            continue;
        };
        let refused = match answer {
            Answer::Discard if stage == "END-OF-MESSAGE" || stage == "RCPT" => Some(None),
            other => other.refusal().map(Some),
        };
        if refused.is_some() {
            said.refused = refused;
            break;
        }
        said.hold |= quarantined;
    }
    said
}

/// One milter through the transaction; the stage that ended it, its
/// answer and whether it asked for a quarantine; `None` when it failed
/// (said in `lines`).
async fn stages(
    client: &mut Client,
    config: &Config,
    probe: &Probe,
    name: &str,
    stored: &[u8],
    lines: &mut Vec<String>,
) -> Option<(&'static str, Answer, bool)> {
    let m = &config.milters;
    let rcpt = probe.recipients.last().map(String::as_str);
    let macros = |names: &[String]| macros(config, probe, name, names, rcpt);
    let ip: IpAddr = probe.client.to_canonical();
    let host = (name != "unknown").then_some(name);
    let mut step =
        |stage: &'static str, got: Result<Answer, crate::milter::client::Error>| match got {
            Ok(answer) => {
                lines.push(format!("  {stage}: {}", word(&answer)));
                Some(answer)
            }
            Err(e) => {
                lines.push(format!("  {stage}: {e}"));
                None
            }
        };
    let ends = |a: &Answer| !matches!(a, Answer::Continue | Answer::Accept);
    let a = step(
        "CONNECT",
        client
            .connect(&macros(&m.connect_macros), host, ip, 0)
            .await,
    )?;
    if ends(&a) {
        return Some(("CONNECT", a, false));
    }
    let helo = probe.helo.as_deref().unwrap_or("");
    let a = step("HELO", client.helo(&macros(&m.helo_macros), helo).await)?;
    if ends(&a) {
        return Some(("HELO", a, false));
    }
    let mail = [format!("<{}>", probe.sender)];
    let a = step("MAIL", client.mail(&macros(&m.mail_macros), &mail).await)?;
    if ends(&a) {
        return Some(("MAIL", a, false));
    }
    for r in &probe.recipients {
        let args = [format!("<{r}>")];
        let a = step("RCPT", client.rcpt(&macros(&m.rcpt_macros), &args).await)?;
        if ends(&a) {
            return Some(("RCPT", a, false));
        }
    }
    let a = step("DATA", client.data(&macros(&m.data_macros)).await)?;
    if ends(&a) {
        return Some(("DATA", a, false));
    }
    let (eoh, eom) = (
        macros(&m.end_of_header_macros),
        macros(&m.end_of_data_macros),
    );
    let end = match client.message(&eoh, &eom, stored).await {
        Ok(end) => end,
        Err(e) => {
            lines.push(format!("  END-OF-MESSAGE: {e}"));
            return None;
        }
    };
    for change in &end.modifications {
        lines.push(format!("  change: {}", modification(change)));
    }
    lines.push(format!("  END-OF-MESSAGE: {}", word(&end.answer)));
    let quarantined = end
        .modifications
        .iter()
        .any(|m| matches!(m, Modification::Quarantine(_)));
    Some(("END-OF-MESSAGE", end.answer, quarantined))
}

/// The macros smtpd would send, of those named (the queue ID is
/// `TRACE`).
fn macros(
    config: &Config,
    probe: &Probe,
    name: &str,
    names: &[String],
    rcpt: Option<&str>,
) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|n| {
            let value = match n.as_str() {
                "j" | "{daemon_name}" => config.server.hostname.clone(),
                "v" => format!("postern {}", env!("CARGO_PKG_VERSION")),
                "_" => format!("{name} [{}]", probe.client),
                "{client_addr}" => probe.client.to_string(),
                "{client_name}" => name.to_string(),
                "i" => "TRACE".to_string(),
                "{auth_authen}" => probe.sasl_user.clone()?,
                "{mail_addr}" => probe.sender.clone(),
                "{rcpt_addr}" => rcpt?.to_string(),
                _ => return None,
            };
            Some((n.clone(), value))
        })
        .collect()
}

fn word(answer: &Answer) -> String {
    let name = match answer {
        Answer::Continue => "continue",
        Answer::Accept => "accept",
        Answer::Reject => "reject",
        Answer::TempFail => "tempfail",
        Answer::Discard => "discard",
        Answer::Shutdown => "shutdown",
        Answer::ReplyCode(text) => return format!("reply ({})", text.replace("\r\n", " / ")),
    };
    match answer.refusal() {
        Some(reply) => format!("{name} ({reply})"),
        None => name.to_string(),
    }
}

fn modification(m: &Modification) -> String {
    match m {
        Modification::AddHeader { name, value } => format!("add header {name}:{value}"),
        Modification::InsertHeader { index, name, value } => {
            format!("insert header at {index}: {name}:{value}")
        }
        Modification::ChangeHeader { index, name, value } if value.is_empty() => {
            format!("delete header {name} #{index}")
        }
        Modification::ChangeHeader { index, name, value } => {
            format!("change header {name} #{index} to:{value}")
        }
        Modification::ReplaceBody(body) => format!("replace the body ({} bytes)", body.len()),
        Modification::AddRcpt { rcpt, .. } => format!("add recipient {rcpt}"),
        Modification::DelRcpt(rcpt) => format!("delete recipient {rcpt}"),
        Modification::ChangeFrom { sender, .. } => format!("change sender to {sender}"),
        Modification::Quarantine(reason) => format!("quarantine: {reason}"),
    }
    .replace('\n', "\\n")
}
