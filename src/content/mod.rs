//! Header and body checks on arriving mail (Postfix cleanup's
//! `header_checks`, `mime_header_checks`, `nested_header_checks` and
//! `body_checks`; header_checks(5)), applied by smtpd while DATA is read,
//! before the `250`.
//!
//! [`Inspector`] is sans-IO: the message's bytes go in as the DATA reader
//! stores them (LF line ends, in pieces of any size), the content to store
//! comes out (changed by IGNORE, PREPEND, REPLACE), with log lines in
//! Postfix's shapes and, at the end, a [`Verdict`] (reject, discard, hold,
//! redirect). Memory stays bounded: lines are cut into pieces of
//! [`LINE_LIMIT`] bytes, each piece a body "line" as in Postfix; a header
//! is matched on its first [`HEADER_LIMIT`] bytes (what comes after is
//! passed through, or dropped with the header).
//!
//! What is matched:
//!
//! - a header is one logical line: a folded header is one string, the
//!   physical lines joined with `\n`, the continuation's leading
//!   whitespace kept (`Subject: make\n money`);
//! - the message's own headers go to `checks.header`; MIME headers
//!   (Content-*, MIME-Version) and the headers of MIME parts to
//!   `checks.mime_header` (or `checks.header` when that is empty, as
//!   Postfix's default `$header_checks`); the headers of attached messages
//!   (message/rfc822) to `checks.header` (Postfix's nested_header_checks);
//! - body lines (of every part, boundaries included), only the first
//!   [`BODY_LIMIT`] bytes of each part; empty lines never.
//!
//! The first table that has an answer decides a line. Actions:
//! `REJECT [text]` (`550 5.7.1 text`, default "message content rejected";
//! a `4.x.x` text defers with 451), `WARN`, `INFO`, `DISCARD`, `HOLD`,
//! `IGNORE`, `STRIP`, `PREPEND`, `REPLACE`, `REDIRECT`, `PASS`, `DUNNO`,
//! `OK`. REJECT, DISCARD, REDIRECT and PASS stop the inspection of the
//! rest of the message, as in Postfix. Anything else is logged as an
//! unknown command and ignored.

mod mime;

use crate::config::Config;
use crate::maps::access::split_dsn;
use crate::maps::{Action, MapError, Table, parse_action};
use crate::reply::Reply;
use crate::wire::header::is_header;

pub(crate) use self::mime::Class;
use self::mime::Mime;

/// Body lines longer than this are inspected in pieces (Postfix's
/// line_length_limit).
pub(crate) const LINE_LIMIT: usize = 2048;
/// Headers are matched on this many bytes at most (Postfix's
/// header_size_limit).
pub(crate) const HEADER_LIMIT: usize = 102_400;
/// Only this much of each body part is inspected (Postfix's
/// body_checks_size_limit).
pub(crate) const BODY_LIMIT: u64 = 51_200;
/// Log lines show this much of the matched text (Postfix's `%.200s`).
const LOG_TEXT: usize = 200;

/// The opened tables of `[checks]`.
#[derive(Clone, Default)]
pub struct ContentChecks {
    header: Vec<Table>,
    mime_header: Vec<Table>,
    body: Vec<Table>,
}

impl ContentChecks {
    /// Opens every table of `checks.header`, `checks.mime_header` and
    /// `checks.body` (tables are shared process-wide, see
    /// [`crate::maps`]).
    pub(crate) fn open(config: &Config) -> Result<ContentChecks, MapError> {
        let open = |specs: &[String]| -> Result<Vec<Table>, MapError> {
            specs.iter().map(|s| Table::open(s, config)).collect()
        };
        let header = open(&config.checks.header)?;
        let mime_header = if config.checks.mime_header.is_empty() {
            header.clone()
        } else {
            open(&config.checks.mime_header)?
        };
        Ok(ContentChecks {
            header,
            mime_header,
            body: open(&config.checks.body)?,
        })
    }

    /// From tables already opened (tests, the policy tracer).
    pub fn new(header: Vec<Table>, mime_header: Vec<Table>, body: Vec<Table>) -> ContentChecks {
        ContentChecks {
            header,
            mime_header,
            body,
        }
    }

    /// No table at all: nothing to inspect.
    pub(crate) fn is_empty(&self) -> bool {
        self.header.is_empty() && self.mime_header.is_empty() && self.body.is_empty()
    }
}

/// Who sent the message, for the log lines (Postfix's cleanup_act_log).
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub queue_id: String,
    /// `host[ip]`, or `local` for a local submission.
    pub origin: String,
    /// The envelope sender (empty for `<>`).
    pub sender: String,
    /// The last envelope recipient, as Postfix logs it.
    pub recipient: Option<String>,
    /// `SMTP` or `ESMTP`.
    pub proto: Option<String>,
    pub helo: Option<String>,
}

/// What the checks decided about the whole message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Refuse the message with this reply (550, or 451 for a `4.x.x`
    /// text or a table that cannot be read).
    pub reject: Option<Reply>,
    /// Accept it and throw it away.
    pub discard: bool,
    /// Queue it on hold.
    pub hold: bool,
    /// Replace every recipient with this address.
    pub redirect: Option<String>,
}

/// One line for the mail log: `warn` for Postfix's msg_warn, otherwise an
/// info line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub warn: bool,
    pub text: String,
}

/// A logical header being collected.
struct Header {
    class: Class,
    /// The raw bytes (LF line ends), until it is decided.
    raw: Vec<u8>,
    /// Decided early (too long): keep (true) or drop what follows.
    decided: Option<bool>,
}

/// What happens to the line that matched.
enum Effect {
    Keep,
    Drop,
    Replace(String),
}

/// The content inspector of one message; see the module documentation.
pub struct Inspector {
    checks: ContentChecks,
    ctx: Context,
    line: Vec<u8>,
    /// The previous piece did not end its line.
    cont: bool,
    mime: Mime,
    header: Option<Header>,
    /// Still inspecting (REJECT, DISCARD, REDIRECT, PASS stop it).
    filtering: bool,
    verdict: Verdict,
    log: Vec<LogLine>,
}

impl Inspector {
    pub fn new(checks: ContentChecks, ctx: Context) -> Inspector {
        Inspector {
            checks,
            ctx,
            line: Vec::new(),
            cont: false,
            mime: Mime::new(),
            header: None,
            filtering: true,
            verdict: Verdict::default(),
            log: Vec::new(),
        }
    }

    /// Takes content bytes as stored; passes the content to store to
    /// `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut impl FnMut(&[u8])) {
        while !bytes.is_empty() {
            let room = LINE_LIMIT - self.line.len();
            let window = &bytes[..room.min(bytes.len())];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                self.line.extend_from_slice(&bytes[..i]);
                bytes = &bytes[i + 1..];
                self.piece(true, out);
            } else if bytes.len() >= room {
                self.line.extend_from_slice(window);
                bytes = &bytes[room..];
                self.piece(false, out);
            } else {
                self.line.extend_from_slice(bytes);
                bytes = &[];
            }
        }
    }

    /// The end of the content: whatever is still held goes out.
    pub fn finish(&mut self, out: &mut impl FnMut(&[u8])) {
        if !self.line.is_empty() {
            self.piece(false, out);
        }
        self.flush_header(out);
    }

    /// The log lines produced so far (each returned once).
    pub fn take_log(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.log)
    }

    /// The message will not be queued (rejected or discarded): its
    /// content need not be stored.
    pub(crate) fn stopped(&self) -> bool {
        self.verdict.reject.is_some() || self.verdict.discard
    }

    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// One piece of a line (at most LINE_LIMIT bytes).
    fn piece(&mut self, ends_line: bool, out: &mut impl FnMut(&[u8])) {
        let mut rec = std::mem::take(&mut self.line);
        let continued = self.cont;
        self.cont = !ends_line;
        let Some(class) = self.mime.header_class() else {
            self.body(rec, ends_line, continued, out);
            return;
        };
        let folded = rec.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if let Some(h) = self.header.as_mut().filter(|_| continued || folded) {
            // More of the header being collected.
            match h.decided {
                Some(true) => emit(out, &rec, ends_line),
                Some(false) => {}
                None => {
                    h.raw.extend_from_slice(&rec);
                    if ends_line {
                        h.raw.push(b'\n');
                    }
                    if h.raw.len() > HEADER_LIMIT {
                        self.decide_header(out);
                    }
                }
            }
            return;
        }
        if continued {
            // The rest of a long line that is not a header.
            self.body(rec, ends_line, true, out);
            return;
        }
        self.flush_header(out);
        if is_header(&rec) {
            if ends_line {
                rec.push(b'\n');
            }
            let long = rec.len() > HEADER_LIMIT;
            self.header = Some(Header {
                class,
                raw: rec,
                decided: None,
            });
            if long {
                self.decide_header(out);
            }
            return;
        }
        if rec.is_empty() && ends_line {
            self.mime.end_of_headers();
            out(b"\n");
            return;
        }
        self.mime.not_a_header();
        self.body(rec, ends_line, false, out);
    }

    /// A body piece: boundaries, then body_checks.
    fn body(
        &mut self,
        rec: Vec<u8>,
        ends_line: bool,
        continued: bool,
        out: &mut impl FnMut(&[u8]),
    ) {
        let offset = self.mime.body_line(&rec, continued);
        let inspect = self.filtering
            && !rec.is_empty()
            && offset < BODY_LIMIT
            && !self.checks.body.is_empty();
        let effect = if inspect {
            let tables = self.checks.body.clone();
            match self.lookup(&tables, &rec) {
                Some(value) => self.act("body", &rec, &value, "body_checks", out),
                None => Effect::Keep,
            }
        } else {
            Effect::Keep
        };
        match effect {
            Effect::Keep => emit(out, &rec, ends_line),
            Effect::Drop => {}
            Effect::Replace(text) => emit(out, text.as_bytes(), ends_line),
        }
    }

    /// The collected header is complete.
    fn flush_header(&mut self, out: &mut impl FnMut(&[u8])) {
        if self.header.as_ref().is_some_and(|h| h.decided.is_none()) {
            self.decide_header(out);
        }
        self.header = None;
    }

    /// Match the header (complete, or its first HEADER_LIMIT bytes), act,
    /// and emit it unless dropped; what follows of it (when decided early)
    /// is then passed or dropped the same way.
    fn decide_header(&mut self, out: &mut impl FnMut(&[u8])) {
        let Some(h) = self.header.as_mut() else {
            return;
        };
        let raw = std::mem::take(&mut h.raw);
        let class = h.class;
        let text = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let key = &text[..text.len().min(HEADER_LIMIT)];
        self.mime.header(key);
        let mime_header = is_mime_header(key);
        let (tables, map_class) = match class {
            Class::Primary if !mime_header => (&self.checks.header, "header_checks"),
            Class::Nested if !mime_header => (&self.checks.header, "nested_header_checks"),
            _ => (&self.checks.mime_header, "mime_header_checks"),
        };
        let tables = tables.clone();
        let found = if self.filtering && !tables.is_empty() {
            self.lookup(&tables, key)
        } else {
            None
        };
        let effect = match found {
            Some(value) => self.act("header", key, &value, map_class, out),
            None => Effect::Keep,
        };
        let keep = match effect {
            Effect::Keep => {
                out(&raw);
                true
            }
            Effect::Drop => false,
            Effect::Replace(text) => {
                out(text.as_bytes());
                out(b"\n");
                false
            }
        };
        if let Some(h) = self.header.as_mut() {
            h.decided = Some(keep);
        }
    }

    /// The first table's answer; a table that cannot be read refuses the
    /// message for now (Postfix: "map lookup problem").
    fn lookup(&mut self, tables: &[Table], key: &[u8]) -> Option<String> {
        for t in tables {
            match t.get_bytes(key) {
                Ok(Some(v)) => return Some(v),
                Ok(None) => {}
                Err(e) => {
                    self.warn(format!(
                        "{}: {} map lookup problem -- message not accepted, try again later ({e})",
                        self.ctx.queue_id,
                        t.spec()
                    ));
                    self.filtering = false;
                    self.verdict.reject = Some(Reply::queue_write_error());
                    return None;
                }
            }
        }
        None
    }

    /// Postfix's cleanup_act.
    fn act(
        &mut self,
        class: &str,
        content: &[u8],
        value: &str,
        map_class: &str,
        out: &mut impl FnMut(&[u8]),
    ) -> Effect {
        let word = value
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let rest = value.trim_start()[word.len().min(value.trim_start().len())..].trim();
        match word.as_str() {
            "INFO" => {
                self.act_log("info", class, content, rest);
                return Effect::Keep;
            }
            "STRIP" => {
                self.act_log("strip", class, content, rest);
                return Effect::Drop;
            }
            "PASS" => {
                self.act_log("pass", class, content, rest);
                self.filtering = false;
                return Effect::Keep;
            }
            _ => {}
        }
        match parse_action(value) {
            Action::Reject(text) => {
                let (code, reason) = reject_reason(text.as_deref());
                if code == 451 && text.as_deref().is_some_and(|t| t.starts_with('2')) {
                    self.warn(format!("bad DSN action in {rest} -- need 4.x.x or 5.x.x"));
                }
                self.act_log("reject", class, content, &reason);
                self.verdict.reject = Some(Reply::plain(code, reason));
                self.filtering = false;
            }
            Action::Warn(text) => {
                self.act_log("warning", class, content, text.as_deref().unwrap_or(""));
            }
            Action::Discard(text) => {
                self.act_log("discard", class, content, text.as_deref().unwrap_or(""));
                self.verdict.discard = true;
                self.filtering = false;
            }
            Action::Hold(text) => {
                if !self.verdict.hold && !self.verdict.discard {
                    self.act_log("hold", class, content, text.as_deref().unwrap_or(""));
                    self.verdict.hold = true;
                }
            }
            Action::Prepend(text) => {
                if text.is_empty() {
                    self.warn(format!("PREPEND action without text in {map_class} map"));
                } else if class == "header" && !is_header(text.as_bytes()) {
                    self.warn(format!(
                        "bad PREPEND header text \"{text}\" in {map_class} map -- need \"headername: headervalue\""
                    ));
                } else {
                    self.act_log("prepend", class, content, &text);
                    out(text.as_bytes());
                    out(b"\n");
                }
            }
            Action::Replace(text) => {
                if text.is_empty() {
                    self.warn(format!("REPLACE action without text in {map_class} map"));
                } else if class == "header" && !is_header(text.as_bytes()) {
                    self.warn(format!(
                        "bad REPLACE header text \"{text}\" in {map_class} map -- need \"headername: headervalue\""
                    ));
                } else {
                    self.act_log("replace", class, content, &text);
                    return Effect::Replace(text);
                }
            }
            Action::Redirect(addr) => {
                if addr.contains('@') {
                    self.act_log("redirect", class, content, &addr);
                    self.verdict.redirect = Some(addr);
                    self.filtering = false;
                } else {
                    self.warn(format!(
                        "bad REDIRECT target \"{addr}\" in {map_class} map -- need user@domain"
                    ));
                }
            }
            Action::Ignore => return Effect::Drop,
            Action::Dunno | Action::Ok => {}
            _ => self.warn(format!("unknown command in {map_class} map: {value}")),
        }
        Effect::Keep
    }

    /// `ID: action: header|body TEXT from ORIGIN; from=<…> to=<…>
    /// proto=… helo=<…>: text` (Postfix's cleanup_act_log).
    fn act_log(&mut self, action: &str, class: &str, content: &[u8], text: &str) {
        let c = &self.ctx;
        let mut line = format!(
            "{}: {action}: {class} {} from {};",
            c.queue_id,
            printable(&content[..content.len().min(LOG_TEXT)]),
            c.origin
        );
        line += &format!(" from=<{}>", c.sender);
        if let Some(r) = &c.recipient {
            line += &format!(" to=<{r}>");
        }
        if let Some(p) = &c.proto {
            line += &format!(" proto={p}");
        }
        if let Some(h) = &c.helo {
            line += &format!(" helo=<{h}>");
        }
        if !text.is_empty() {
            line += &format!(": {}", printable(text.as_bytes()));
        }
        self.log.push(LogLine {
            warn: false,
            text: line,
        });
    }

    fn warn(&mut self, text: String) {
        self.log.push(LogLine { warn: true, text });
    }
}

fn emit(out: &mut impl FnMut(&[u8]), rec: &[u8], ends_line: bool) {
    if !rec.is_empty() {
        out(rec);
    }
    if ends_line {
        out(b"\n");
    }
}

/// `550 5.7.1 text` (Postfix: dsn_prepend("5.7.1", text)); a `4.x.x` text
/// makes it `451`; a `2.x.x` one is forced to 4 (with a warning).
fn reject_reason(text: Option<&str>) -> (u16, String) {
    let text = sanitize(text.unwrap_or("message content rejected"));
    let reason = match split_dsn(&text) {
        (Some(dsn), _) if dsn.starts_with('2') => format!("4{}", &text[1..]),
        (Some(_), _) => text,
        (None, _) => format!("5.7.1 {text}"),
    };
    let code = if reason.starts_with('4') { 451 } else { 550 };
    (code, reason)
}

/// Reply text: control characters become spaces, at most 500 bytes.
fn sanitize(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut end = s.len().min(500);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

/// For the log: non-printable characters (newlines and tabs of folded
/// headers too) become `?`, as Postfix's logging does.
fn printable(bytes: &[u8]) -> String {
    crate::wire::printable::printable_bytes(bytes)
}

/// Content-Description, -Disposition, -ID, -Transfer-Encoding, -Type and
/// MIME-Version (Postfix's HDR_OPT_MIME headers).
fn is_mime_header(header: &[u8]) -> bool {
    let name = header
        .iter()
        .position(|&b| b == b':')
        .map(|i| header[..i].trim_ascii())
        .unwrap_or_default();
    [
        "content-description",
        "content-disposition",
        "content-id",
        "content-transfer-encoding",
        "content-type",
        "mime-version",
    ]
    .iter()
    .any(|m| name.eq_ignore_ascii_case(m.as_bytes()))
}

#[cfg(test)]
mod tests;
