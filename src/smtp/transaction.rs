//! One mail transaction on an open session: MAIL FROM, RCPT TO for each
//! recipient, DATA, the content, the final reply (RFC 5321 section 3.3),
//! pipelined when the server offers PIPELINING (RFC 2920), with SIZE
//! (RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531) and the DSN
//! parameters RET, ENVID, NOTIFY, ORCPT (RFC 3461) when the server
//! supports them.
//!
//! Each recipient gets its own outcome: a 2xx to its RCPT makes it a
//! candidate, whom the reply to the end of the data decides; a 4xx
//! defers and a 5xx bounces it. A reply to MAIL FROM or DATA that is not
//! positive decides for all. A conversation that breaks leaves every
//! undecided recipient deferred (`conversation with HOST[IP] timed out
//! while ...`).
//!
//! In LMTP mode (RFC 2033) the end of the data gets one reply per accepted
//! recipient instead of one for all ([`lmtp_replies`]).

use crate::ipc::{DeliveryStatus, SmtpRecipient};
use crate::outcome::code;
use crate::queue::{Body, Ret};
use crate::wire::data::{DataWriter, StoredCr};
use crate::wire::xtext;

use super::client::{Broken, Session};
use super::content::Content;
use super::outcome::Outcome;
use super::reply::Reply;

const MAIL: &str = "sending MAIL FROM";
const RCPT: &str = "sending RCPT TO";
const DATA: &str = "sending DATA command";
const BODY: &str = "sending message body";
const DOT: &str = "sending end of data -- message may be sent more than once";

/// What is sent for one message.
pub(crate) struct Envelope<'a> {
    /// Empty for `<>`.
    pub sender: &'a str,
    pub recipients: &'a [SmtpRecipient],
    /// For SIZE= and the server's limit.
    pub size: u64,
    pub body: Body,
    /// The message was received with SMTPUTF8.
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    pub envid: Option<&'a str>,
    /// Header fields sent before the content: its DKIM signatures
    /// (CRLF lines), empty for none.
    pub signatures: &'a [u8],
}

/// Run one transaction: one outcome per recipient of `env`, in order.
/// Afterwards `s.broken` tells whether the session may be used again.
pub(crate) async fn transaction(
    s: &mut Session,
    env: &Envelope<'_>,
    content: &mut Content,
) -> Vec<Outcome> {
    s.uses += 1;
    let n = env.recipients.len();
    let all = |o: Outcome| vec![o; n];
    let who = s.namaddr();
    if let Some(limit) = s.features.size_limit.filter(|l| env.size > *l) {
        return all(Outcome::local(
            DeliveryStatus::Bounced,
            code::TOO_BIG,
            format!(
                "message size {} exceeds size limit {limit} of server {who}",
                env.size
            ),
        ));
    }
    let utf8_envelope =
        !env.sender.is_ascii() || env.recipients.iter().any(|r| !r.address.is_ascii());
    if env.smtputf8 && utf8_envelope && !s.features.smtputf8 {
        return all(Outcome::local(
            DeliveryStatus::Bounced,
            code::NO_SMTPUTF8,
            format!("SMTPUTF8 is required, but was not offered by host {who}"),
        ));
    }
    if !safe(env.sender) {
        return all(Outcome::local(
            DeliveryStatus::Bounced,
            code::BAD_SENDER_SYNTAX,
            "bad sender address syntax",
        ));
    }
    if let Err(e) = content.rewind().await {
        return all(Outcome::deferred(
            code::SYSTEM_TEMP,
            format!("cannot read the message content: {e}"),
        ));
    }

    // None: undecided (not yet asked, or accepted and waiting for the data).
    let mut outcomes: Vec<Option<Outcome>> = env
        .recipients
        .iter()
        .map(|r| {
            (!safe(&r.address)).then(|| {
                Outcome::local(
                    DeliveryStatus::Bounced,
                    code::BAD_SYNTAX,
                    "bad recipient address syntax",
                )
            })
        })
        .collect();
    let asked: Vec<usize> = (0..n).filter(|i| outcomes[*i].is_none()).collect();
    if asked.is_empty() {
        return outcomes.into_iter().flatten().collect();
    }
    let mail = mail_command(s, env);
    let rcpts: Vec<String> = asked
        .iter()
        .map(|&i| rcpt_command(s, &env.recipients[i]))
        .collect();
    let lines = (mail.as_str(), rcpts.as_slice());
    let result = if s.features.pipelining {
        pipelined(s, env, lines, &asked, &mut outcomes, content).await
    } else {
        one_by_one(s, env, lines, &asked, &mut outcomes, content).await
    };
    if let Err(broken) = result {
        let o = broken.outcome(&s.target);
        for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
            *slot = Some(o.clone());
        }
    }
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| Outcome::deferred(code::SYSTEM_TEMP, "transaction ended undecided"))
        })
        .collect()
}

/// MAIL, every RCPT and DATA in one write; then the replies in order.
async fn pipelined(
    s: &mut Session,
    env: &Envelope<'_>,
    lines: (&str, &[String]),
    asked: &[usize],
    outcomes: &mut [Option<Outcome>],
    content: &mut Content,
) -> Result<(), Broken> {
    let (mail, rcpts) = lines;
    let t = s.timeouts.clone();
    let mut batch = String::with_capacity(mail.len() + 64 * (rcpts.len() + 1));
    for line in std::iter::once(mail)
        .chain(rcpts.iter().map(String::as_str))
        .chain(["DATA"])
    {
        batch.push_str(line);
        batch.push_str("\r\n");
    }
    s.send(batch.as_bytes(), t.mail, MAIL).await?;
    let mail_reply = s.read_reply(t.mail, MAIL).await?;
    if mail_reply.code() == 421 {
        decide_undecided(s, &mail_reply, "MAIL FROM", outcomes);
        return Ok(());
    }
    let mut accepted = Vec::new();
    for &i in asked {
        let reply = s.read_reply(t.rcpt, RCPT).await?;
        if mail_reply.is_positive() {
            decide_rcpt(s, &reply, i, outcomes, &mut accepted);
        }
        if reply.code() == 421 {
            decide_undecided(s, &reply, "RCPT TO", outcomes);
            return Ok(());
        }
    }
    let data_reply = s.read_reply(t.data_init, DATA).await?;
    if !mail_reply.is_positive() {
        decide_all(s, &mail_reply, "MAIL FROM", asked, outcomes);
    } else if accepted.is_empty() {
        // Nothing to send.
    } else if data_reply.code() != 354 {
        decide_all(s, &data_reply, "DATA", &accepted, outcomes);
    } else {
        return send_content(s, &accepted, outcomes, env.signatures, content).await;
    }
    if data_reply.code() == 354 && s.lmtp {
        // An LMTP server must refuse DATA without recipients (RFC 2033
        // 4.2); one that did not would answer the end of data with no
        // reply, or one: the session cannot be trusted again.
        s.broken = true;
    } else if data_reply.code() == 354 {
        // The server wants data nobody will get: end it empty.
        s.send(b".\r\n", t.data_done, DOT).await?;
        s.read_reply(t.data_done, DOT).await?;
    }
    Ok(())
}

/// Each command waits for its reply.
async fn one_by_one(
    s: &mut Session,
    env: &Envelope<'_>,
    lines: (&str, &[String]),
    asked: &[usize],
    outcomes: &mut [Option<Outcome>],
    content: &mut Content,
) -> Result<(), Broken> {
    let (mail, rcpts) = lines;
    let t = s.timeouts.clone();
    let mail_reply = s.command(mail, t.mail, MAIL).await?;
    if !mail_reply.is_positive() {
        decide_all(s, &mail_reply, "MAIL FROM", asked, outcomes);
        return Ok(());
    }
    let mut accepted = Vec::new();
    for (line, &i) in rcpts.iter().zip(asked) {
        let reply = s.command(line, t.rcpt, RCPT).await?;
        decide_rcpt(s, &reply, i, outcomes, &mut accepted);
        if reply.code() == 421 {
            decide_undecided(s, &reply, "RCPT TO", outcomes);
            return Ok(());
        }
    }
    if accepted.is_empty() {
        return Ok(());
    }
    let data_reply = s.command("DATA", t.data_init, DATA).await?;
    if data_reply.code() != 354 {
        decide_all(s, &data_reply, "DATA", &accepted, outcomes);
        return Ok(());
    }
    send_content(s, &accepted, outcomes, env.signatures, content).await
}

/// After 354: the signatures, the content, the end of data, and its
/// reply for `accepted`.
async fn send_content(
    s: &mut Session,
    accepted: &[usize],
    outcomes: &mut [Option<Outcome>],
    signatures: &[u8],
    content: &mut Content,
) -> Result<(), Broken> {
    let t = s.timeouts.clone();
    if !signatures.is_empty() {
        // Header lines, CRLF each, none starting with a dot.
        s.send(signatures, t.data_xfer, BODY).await?;
    }
    let mut encoder = DataWriter::with(StoredCr::LineEnd);
    let (mut chunk, mut out) = (Vec::new(), Vec::new());
    loop {
        if let Err(e) = content.next_chunk(&mut chunk).await {
            // The end of data must not be sent now: drop the connection
            // and the server drops the message.
            s.broken = true;
            let o = Outcome::deferred(
                code::SYSTEM_TEMP,
                format!("cannot read the message content: {e}"),
            );
            for &i in accepted {
                outcomes[i] = Some(o.clone());
            }
            return Ok(());
        }
        out.clear();
        if chunk.is_empty() {
            encoder.finish(&mut out);
            s.send(&out, t.data_xfer, BODY).await?;
            break;
        }
        encoder.write(&chunk, &mut out);
        s.send(&out, t.data_xfer, BODY).await?;
    }
    if s.lmtp {
        return lmtp_replies(s, accepted, outcomes).await;
    }
    let reply = s.read_reply(t.data_done, DOT).await?;
    decide_all(s, &reply, "end of DATA", accepted, outcomes);
    Ok(())
}

/// LMTP (RFC 2033 section 4.2): after the end of the data, one reply per
/// accepted recipient, in the order of their RCPT commands; each decides
/// its own recipient (2xx sent, 4xx deferred, 5xx bounced). A reply that
/// never comes leaves its recipient, and those after it, undecided (the
/// conversation broke: deferred); those decided before keep their
/// outcome.
async fn lmtp_replies(
    s: &mut Session,
    accepted: &[usize],
    outcomes: &mut [Option<Outcome>],
) -> Result<(), Broken> {
    let limit = s.timeouts.data_done;
    for &i in accepted {
        let reply = s.read_reply(limit, DOT).await?;
        outcomes[i] = Some(Outcome::of_reply(&s.target, &reply, "end of DATA"));
        if reply.code() == 421 {
            decide_undecided(s, &reply, "end of DATA", outcomes);
            break;
        }
    }
    Ok(())
}

/// A RCPT reply: 2xx accepted (decided later), else the recipient's
/// outcome.
fn decide_rcpt(
    s: &Session,
    reply: &Reply,
    i: usize,
    outcomes: &mut [Option<Outcome>],
    accepted: &mut Vec<usize>,
) {
    if reply.is_positive() {
        accepted.push(i);
    } else {
        outcomes[i] = Some(Outcome::of_reply(&s.target, reply, "RCPT TO"));
    }
}

fn decide_all(
    s: &Session,
    reply: &Reply,
    command: &str,
    who: &[usize],
    outcomes: &mut [Option<Outcome>],
) {
    let o = Outcome::of_reply(&s.target, reply, command);
    for &i in who {
        outcomes[i] = Some(o.clone());
    }
}

/// A server closing the session (421): everyone not yet decided.
fn decide_undecided(s: &Session, reply: &Reply, command: &str, outcomes: &mut [Option<Outcome>]) {
    let o = Outcome::of_reply(&s.target, reply, command);
    for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
        *slot = Some(o.clone());
    }
}

/// `MAIL FROM:<sender>` with the parameters the server understands.
fn mail_command(s: &Session, env: &Envelope<'_>) -> String {
    let f = &s.features;
    let mut line = format!("MAIL FROM:<{}>", env.sender);
    if f.size {
        line.push_str(&format!(" SIZE={}", env.size));
    }
    if env.body == Body::EightBitMime && f.eightbitmime {
        line.push_str(" BODY=8BITMIME");
    }
    if env.smtputf8 && f.smtputf8 {
        line.push_str(" SMTPUTF8");
    }
    if f.dsn {
        match env.ret {
            Some(Ret::Full) => line.push_str(" RET=FULL"),
            Some(Ret::Hdrs) => line.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(envid) = env.envid.filter(|e| !e.is_empty()) {
            line.push_str(&format!(" ENVID={}", xtext::encode(envid)));
        }
    }
    line
}

/// `RCPT TO:<address>` with NOTIFY and ORCPT when the server supports DSN.
fn rcpt_command(s: &Session, r: &SmtpRecipient) -> String {
    let mut line = format!("RCPT TO:<{}>", r.address);
    if s.features.dsn {
        if let Some(notify) = r.notify.as_deref().filter(|n| safe(n) && !n.is_empty()) {
            line.push_str(&format!(" NOTIFY={notify}"));
        }
        if let Some(orcpt) = r.orcpt.as_deref().and_then(orcpt_param) {
            line.push_str(&format!(" ORCPT={orcpt}"));
        }
    }
    line
}

/// Nothing that could end or split a command line.
fn safe(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

/// ORCPT's value from the stored `type;address` (decoded): xtext for an
/// ASCII address, RFC 6533 `utf-8;` with `\x{HEX}` escapes otherwise.
pub(crate) fn orcpt_param(orcpt: &str) -> Option<String> {
    let (kind, address) = orcpt.split_once(';')?;
    if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    if address.is_ascii() && !kind.eq_ignore_ascii_case("utf-8") {
        return Some(format!("{kind};{}", xtext::encode(address)));
    }
    Some(format!("utf-8;{}", xtext::utf8_encode(address)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orcpt() {
        assert_eq!(
            orcpt_param("rfc822;b+x@example.com").as_deref(),
            Some("rfc822;b+2Bx@example.com")
        );
        assert_eq!(
            orcpt_param("utf-8;j\u{f6}rg@example.com").as_deref(),
            Some("utf-8;j\\x{F6}rg@example.com")
        );
        assert_eq!(orcpt_param("no-separator"), None);
        assert_eq!(orcpt_param("bad type;x"), None);
    }

    #[test]
    fn control_characters_never_reach_the_wire() {
        assert!(safe("a@b.example"));
        assert!(!safe("a@b.example\r\nRCPT TO:<c@d>"));
    }
}
