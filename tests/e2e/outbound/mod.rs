//! Outbound delivery (issue 7): postern's smtp agent delivering to SMTP
//! servers the tests run on loopback — scriptable sinks (`sink`), a real
//! one from outside the project (aiosmtpd, `real_server`), another
//! postern (`null_client`) — found through a relay host, a transport
//! table or MX records from a DNS server of the test's own (`dns`); and
//! a relay host that wants a login (`relay_auth`, aiosmtpd again); a
//! relay host that is dead, then comes up (`dead_destination`).
//!
//! until it is merged; the infrastructure's self-tests run always.

mod dead_destination;
pub(crate) mod dns;
mod mx;
mod null_client;
pub(crate) mod pki;
pub(crate) mod real_server;
mod relay_auth;
mod replies;
pub(crate) mod sink;
mod tls;

use std::path::Path;

use crate::common::*;

/// A message that tests the transparency of the path: leading dots, a
/// line of one dot, two dots, an empty line, trailing blanks. CRLF, as on
/// the wire.
pub const MESSAGE: &[u8] = b"From: Sender <sender@example.org>\r\nTo: rcpt@example.test\r\nSubject: outbound test\r\nMessage-ID: <outbound-1@example.org>\r\n\r\nfirst line\r\n.a line with a leading dot\r\n.\r\n..two dots\r\n\r\ntrailing blanks   \r\nlast line\r\n";

/// Send one message to postern over SMTP from 127.0.0.1 (every
/// recipient must be accepted); `msg` is CRLF text ending in CRLF, dot-
/// stuffed here. Returns the queue ID.
pub fn submit(p: &Postern, from: &str, rcpts: &[&str], msg: &[u8]) -> String {
    assert!(msg.ends_with(b"\r\n"));
    let mut c = p.client();
    assert!(c.cmd("EHLO client.example").starts_with("250"));
    assert_eq!(c.cmd(&format!("MAIL FROM:<{from}>")), "250 2.1.0 Ok");
    for r in rcpts {
        assert_eq!(c.cmd(&format!("RCPT TO:<{r}>")), "250 2.1.5 Ok", "{r}");
    }
    assert!(c.cmd("DATA").starts_with("354"));
    let mut data = dot_stuff(msg);
    data.extend_from_slice(b".\r\n");
    c.send(&data);
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    c.cmd("QUIT");
    r.rsplit(' ').next().unwrap().to_string()
}

/// RFC 5321 4.5.2: a dot in front of every line that starts with one.
pub fn dot_stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 16);
    let mut start = true;
    for &b in msg {
        if start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        start = b == b'\n';
    }
    out
}

/// Split off the first header when it is `name:` (with its continuation
/// lines; CRLF or LF): (that header, the rest).
pub fn split_header<'a>(data: &'a [u8], name: &str) -> (&'a [u8], &'a [u8]) {
    let prefix = format!("{name}: ");
    assert!(
        data.starts_with(prefix.as_bytes()),
        "expected a {name} header first: {:?}",
        String::from_utf8_lossy(&data[..data.len().min(300)])
    );
    let mut end = data.iter().position(|b| *b == b'\n').unwrap() + 1;
    while data.get(end).is_some_and(|b| *b == b'\t' || *b == b' ') {
        end += data[end..].iter().position(|b| *b == b'\n').unwrap() + 1;
    }
    data.split_at(end)
}

/// The Received header postern's smtpd put on what a sink got, checked,
/// and the content after it: what the test submitted, byte for byte.
pub fn after_received(data: &[u8]) -> &[u8] {
    let (received, rest) = split_header(data, "Received");
    let text = String::from_utf8_lossy(received);
    assert!(
        text.contains("by mail.test.example (postern)"),
        "not postern's Received: {text}"
    );
    assert!(
        text.ends_with("\r\n") && !text.replace("\r\n", "").contains('\n'),
        "bare LF in {text:?}"
    );
    rest
}

/// `postern queue list` (mailq).
pub fn mailq(p: &Postern) -> String {
    String::from_utf8_lossy(&p.postern(&["queue", "list"]).stdout).into_owned()
}

/// `postern queue list --json`: one object per message.
pub fn mailq_json(p: &Postern) -> Vec<serde_json::Value> {
    let out = p.postern(&["queue", "list", "--json"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The delay reason mailq shows for `rcpt` of message `id`, if listed.
pub fn delay_reason(p: &Postern, id: &str, rcpt: &str) -> Option<String> {
    mailq_json(p).into_iter().find(|m| m["queue_id"] == id)?["recipients"]
        .as_array()?
        .iter()
        .find(|r| r["address"] == rcpt)?["delay_reason"]
        .as_str()
        .map(str::to_string)
}

/// The mailq text of one message: from its ID line to the blank line.
pub fn mailq_entry(text: &str, id: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with(id) {
            inside = true;
        }
        if inside {
            if line.is_empty() {
                break;
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The log line `ID: to=<rcpt>, …` with `status=` (the last one).
pub fn status_line(p: &Postern, id: &str, rcpt: &str) -> String {
    let needle = format!("{id}: to=<{rcpt}>, ");
    p.log()
        .lines()
        .rev()
        .find(|l| l.contains(&needle) && l.contains("status="))
        .unwrap_or_else(|| panic!("no status line for {rcpt}:\n{}", p.log()))
        .to_string()
}

/// The fields of a delivery log line, Postfix's shape: `ID: to=<rcpt>,
/// [orig_to=<…>, ]relay=…, [conn_use=N, ]delay=D, delays=a/b/c/d,
/// dsn=X.Y.Z, status=WORD (TEXT)`.
#[derive(Debug)]
pub struct Status {
    pub relay: String,
    pub dsn: String,
    /// `sent`, `deferred`, `bounced`.
    pub status: String,
    /// The text in the parentheses.
    pub text: String,
}

/// Parse (and check the shape of) the last delivery log line of `rcpt`
/// of message `id`.
pub fn status(p: &Postern, id: &str, rcpt: &str) -> Status {
    parse_status(&status_line(p, id, rcpt), id, rcpt)
}

pub fn parse_status(line: &str, id: &str, rcpt: &str) -> Status {
    let head = format!("{id}: to=<{rcpt}>, ");
    let start = line.find(&head).unwrap_or_else(|| panic!("{line}")) + head.len();
    let rest = &line[start..];
    let (fields, st) = rest
        .split_once(", status=")
        .unwrap_or_else(|| panic!("no status= in {line}"));
    let (word, text) = st
        .split_once(" (")
        .unwrap_or_else(|| panic!("no (reason) in {line}"));
    let text = text
        .strip_suffix(')')
        .unwrap_or_else(|| panic!("reason not closed: {line}"));
    let mut relay = None;
    let mut dsn = None;
    let mut delay = false;
    for f in fields.split(", ") {
        let (k, v) = f
            .split_once('=')
            .unwrap_or_else(|| panic!("{f:?} in {line}"));
        match k {
            "relay" => relay = Some(v.to_string()),
            "dsn" => dsn = Some(v.to_string()),
            "delay" => {
                v.parse::<f64>()
                    .unwrap_or_else(|_| panic!("delay {v:?}: {line}"));
                delay = true;
            }
            "delays" => {
                let parts: Vec<_> = v.split('/').collect();
                assert_eq!(parts.len(), 4, "delays=a/b/c/d: {line}");
                for d in parts {
                    d.parse::<f64>()
                        .unwrap_or_else(|_| panic!("delays {v:?}: {line}"));
                }
            }
            "orig_to" | "conn_use" => {}
            _ => panic!("unexpected field {k:?} in {line}"),
        }
    }
    assert!(delay, "no delay= in {line}");
    Status {
        relay: relay.unwrap_or_else(|| panic!("no relay= in {line}")),
        dsn: dsn.unwrap_or_else(|| panic!("no dsn= in {line}")),
        status: word.to_string(),
        text: text.to_string(),
    }
}

/// A delivery status notification read back with mail-parser: the human
/// readable part and the message/delivery-status part, each with folded
/// lines unfolded and runs of blanks made one.
pub struct Dsn {
    pub text: String,
    pub status: String,
    pub raw: String,
}

pub fn read_dsn(file: &Path) -> Dsn {
    let data = std::fs::read(file).unwrap();
    let (_, text, status) = report_parts(&data);
    Dsn {
        text: unfold(&text),
        status: unfold(&status),
        raw: String::from_utf8_lossy(&data).into_owned(),
    }
}

/// Unfold header-style continuation lines (a line end before a blank)
/// and make every run of blanks one space.
pub fn unfold(s: &str) -> String {
    let s = s.replace("\r\n", "\n");
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' && chars.peek().is_some_and(|n| *n == ' ' || *n == '\t') {
            out.push(' ');
            continue;
        }
        if (c == ' ' || c == '\t') && out.ends_with(' ') {
            continue;
        }
        out.push(if c == '\t' { ' ' } else { c });
    }
    out
}

/// The `[local]` table the harness writes, with other domains.
pub fn local_table(domains: &[&str]) -> String {
    let list: Vec<String> = domains.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        "[local]\nmailbox = \"{{dir}}/mail/$user/Maildir/\"\ndomains = [{}]\nalias_files = [\"{{dir}}/aliases\"]\n\n",
        list.join(", ")
    )
}

mod tests {
    use super::*;

    #[test]
    fn helpers_stuff_split_and_unfold() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n");
        let (h, rest) = split_header(b"Received: from x\r\n\tby y\r\nSubject: s\r\n", "Received");
        assert_eq!(h, b"Received: from x\r\n\tby y\r\n");
        assert_eq!(rest, b"Subject: s\r\n");
        assert_eq!(
            unfold("Diagnostic-Code: smtp; 550 5.1.1 <a@b>:\r\n    Recipient  rejected\r\n"),
            "Diagnostic-Code: smtp; 550 5.1.1 <a@b>: Recipient rejected\n"
        );
        let q = "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\nAAAA  1 t s\n  (why)\n   r\n\nBBBB 2 t s\n\n";
        assert_eq!(mailq_entry(q, "AAAA"), "AAAA  1 t s\n  (why)\n   r\n");
        let st = parse_status(
            "Jan  1 00:00:00 h postern/smtp[1]: 4B3F2A1C9D0000: to=<a@b.test>, relay=mx.b.test[127.0.0.10]:2525, delay=0.12, delays=0.01/0/0.05/0.06, dsn=4.3.0, status=deferred (host mx.b.test[127.0.0.10] said: 451 4.3.0 busy, try later (in reply to RCPT TO command))",
            "4B3F2A1C9D0000",
            "a@b.test",
        );
        assert_eq!(st.relay, "mx.b.test[127.0.0.10]:2525");
        assert_eq!(st.dsn, "4.3.0");
        assert_eq!(st.status, "deferred");
        assert_eq!(
            st.text,
            "host mx.b.test[127.0.0.10] said: 451 4.3.0 busy, try later (in reply to RCPT TO command)"
        );
    }
}
