//! Delivery status notifications (RFC 3464), built the way Postfix's bounce
//! daemon builds them: non-delivery reports ("bounces"), delay warnings and
//! success reports.
//!
//! [`build_report`] is a pure function: from a [`ReportInput`] (the original
//! message's envelope facts, its content, one [`RecipientReport`] per
//! recipient to report, and the current time) it returns the complete
//! notification as it is to be stored in the queue, with LF line ends. It
//! reads no clock, no file and no configuration; the caller (qmgr) queues the
//! result with the null sender `<>` and one recipient, the original sender.
//!
//! The shape follows Postfix 3.x (`bounce_notify_util.c`,
//! `bounce_templates.c`; the shared Postfix reference, section 8.5):
//!
//! - headers `From: Mail Delivery System <MAILER-DAEMON@$myhostname>`,
//!   `Subject:` per kind, `To:`, `References:`/`In-Reply-To:` with the
//!   original Message-ID, `Auto-Submitted: auto-replied`, `MIME-Version`,
//!   `Content-Type: multipart/report; report-type=delivery-status;` with the
//!   boundary `<new-id>.<unix-time>/<myhostname>` on a folded line,
//!   `Content-Transfer-Encoding`; then `Date:` and `Message-Id:
//!   <YYYYMMDDHHMMSS.<new-id>@$myhostname>` as Postfix's cleanup adds them.
//!   The builder writes both, so the caller must not add its own;
//! - the preamble `This is a MIME-encapsulated message.`;
//! - part 1, `text/plain`, `Content-Description: Notification`: Postfix's
//!   built-in template text for the kind, then one entry per recipient,
//!   `<rcpt>: reason` or `<rcpt> (expanded from <orig>): reason`, wrapped at
//!   79 columns with a 4-space indent;
//! - part 2, `message/delivery-status` (`message/global-delivery-status`
//!   for SMTPUTF8), `Content-Description: Delivery report`: the per-message
//!   fields (`Reporting-MTA`, `Original-Envelope-Id`, `X-Postern-Queue-ID`,
//!   `X-Postern-Sender`, `Arrival-Date`) and one block per recipient
//!   (`Final-Recipient`, `Original-Recipient`, `Action`, `Status`,
//!   `Remote-MTA`, `Diagnostic-Code`, and `Will-Retry-Until` for delays);
//! - part 3, the original with `Return-Path: <sender>` prepended:
//!   `message/rfc822` (`message/global` for SMTPUTF8), or only its header
//!   section as `text/rfc822-headers` (`message/global-headers`) when RET=HDRS
//!   was asked for, when the message is larger than `bounce_size_limit`, and
//!   always for delay warnings (as Postfix does).
//!
//! Where Postfix's defaults depend on main.cf (`header_from_format`,
//! `smtputf8_enable`) the builder takes the standard form. Two deliberate
//! differences: dates are written in UTC (`+0000 (UTC)`) so that nothing
//! depends on the local time zone, and `Content-Transfer-Encoding: 8bit` is
//! declared where a part really holds 8-bit data, instead of Postfix's blanket
//! `8bit` whenever SMTPUTF8 support is enabled. The MIME is written by hand:
//! mail-builder would choose its own boundaries, header order, transfer
//! encodings (base64/quoted-printable for 8-bit text) and CRLF line ends, none
//! of which is Postfix's shape or the queue's storage form.
//!
//! Everything that came from outside (addresses, the remote server's reply,
//! ENVID) is masked like Postfix's `printable()`: control characters become
//! `?`, and non-ASCII too unless the original was an SMTPUTF8 message. No
//! field value can break its line or inject a header. The MIME boundary is
//! checked against every part and made longer until it occurs in none.

mod text;

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::queue::Ret;
use crate::wire::date;

pub(crate) use text::header_section;

/// Which notification: the template, subject and per-recipient action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ReportKind {
    /// Non-delivery report ("bounce"): RFC 3461 NOTIFY=FAILURE.
    Failure,
    /// Delay warning: NOTIFY=DELAY.
    Delay,
    /// Delivery confirmation: NOTIFY=SUCCESS.
    Success,
}

impl ReportKind {
    /// Postfix's subject for a report to the sender.
    pub(crate) fn subject(self) -> &'static str {
        match self {
            ReportKind::Failure => "Undelivered Mail Returned to Sender",
            ReportKind::Delay => "Delayed Mail (still being retried)",
            ReportKind::Success => "Successful Mail Delivery Report",
        }
    }

    /// "Undelivered" for failures and delays, as in Postfix's part 3
    /// `Content-Description`.
    fn undelivered(self) -> bool {
        matches!(self, ReportKind::Failure | ReportKind::Delay)
    }
}

/// RFC 3464 section 2.3.3 `Action:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    Failed,
    Delayed,
    Delivered,
    // RFC 3464's other two: postern reports no relay to a server without
    // DSN and no alias expansion yet (architecture.md, "Seams").
    #[expect(dead_code, reason = "RFC 3464 action not reported yet")]
    Relayed,
    #[expect(dead_code, reason = "RFC 3464 action not reported yet")]
    Expanded,
}

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }
}

/// What happened to one recipient, as the delivery agent reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecipientReport {
    /// The address delivery was attempted to (external form, as in the
    /// envelope).
    pub final_recipient: String,
    /// The RFC 3461 ORCPT as stored in the envelope (`rfc822;addr`),
    /// written verbatim as `Original-Recipient:`.
    pub orcpt: Option<String>,
    /// The address before alias expansion or forwarding, when it differs:
    /// `(expanded from <...>)` in part 1, and `Original-Recipient: rfc822;
    /// <...>` when there is no ORCPT.
    pub original_address: Option<String>,
    /// Ignored for [`ReportKind::Failure`], which always says `failed`.
    pub action: Action,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: crate::outcome::Enhanced,
    /// `Remote-MTA:` value, e.g. `dns; mx.example.com`, when a remote host
    /// answered.
    pub remote_mta: Option<String>,
    /// `Diagnostic-Code:` value with its type, e.g. `smtp; 550 5.1.1 <b@x>:
    /// Recipient address rejected`. `None` gives `X-Postern; <reason>`.
    pub diagnostic: Option<String>,
    /// The human-readable reason (Postfix's `dsn->reason`): the text after
    /// `<rcpt>: ` in part 1, e.g. `host mx.example.com[192.0.2.1] said: 550
    /// 5.1.1 ... (in reply to RCPT TO command)` or `unknown user: "bob"`.
    pub reason: String,
}

/// Everything [`build_report`] needs. Times are given, never read.
#[derive(Clone, Debug)]
pub(crate) struct ReportInput<'a> {
    pub kind: ReportKind,
    /// `myhostname`: Reporting-MTA, the From domain, boundary, Message-Id.
    pub reporting_mta: &'a str,
    /// The original message's queue ID (`X-Postern-Queue-ID:`).
    pub queue_id: &'a str,
    /// The notification's own queue ID (boundary and Message-Id).
    pub new_queue_id: &'a str,
    /// The original envelope sender, external form; the notification goes
    /// to it. Never empty in practice (nobody reports to `<>`).
    pub sender: &'a str,
    /// RFC 3461 ENVID, decoded, as stored in the envelope.
    pub envid: Option<&'a str>,
    /// When the original arrived (`Arrival-Date:`).
    pub arrival: SystemTime,
    /// Now: `Date:`, the boundary time stamp and the Message-Id.
    pub now: SystemTime,
    /// The recipients to report, already filtered with [`should_report`].
    pub recipients: &'a [RecipientReport],
    /// The original content as stored (LF line ends), headers and body.
    pub original: &'a [u8],
    /// RFC 3461 RET; `None` means FULL (up to `size_limit`).
    pub ret: Option<Ret>,
    /// `bounce_size_limit` (Postfix default 50000): a larger original is
    /// returned as headers only. 0 means no limit.
    pub size_limit: usize,
    /// The original was an SMTPUTF8 message: the `global` MIME types, and
    /// UTF-8 kept in addresses and texts.
    pub smtputf8: bool,
    /// `delay_warning_time`, for the delay template's "more than N hour(s)".
    pub delay_warning_time: Duration,
    /// `maximal_queue_lifetime`, for the delay template's "until it is N
    /// day(s) old" and `Will-Retry-Until:` (arrival plus this).
    pub maximal_queue_lifetime: Duration,
}

/// Postfix's `bounce_size_limit` default.
#[cfg(test)]
pub(crate) const DEFAULT_SIZE_LIMIT: usize = 50_000;

/// The `Diagnostic-Code:` type for postern's own reasons (Postfix writes
/// `X-Postfix`).
pub(crate) const DIAGNOSTIC_TYPE: &str = "X-Postern";

/// RFC 3461 section 4.1: whether a recipient with this NOTIFY parameter (as
/// given, e.g. `SUCCESS,DELAY`; `None` when absent) wants a report of this
/// kind. Absent means `FAILURE,DELAY`; `NEVER` means none; keywords are
/// case-insensitive and unknown ones are ignored.
pub(crate) fn should_report(kind: ReportKind, notify: Option<&str>) -> bool {
    let Some(notify) = notify.filter(|n| !n.trim().is_empty()) else {
        return kind != ReportKind::Success;
    };
    let wanted = match kind {
        ReportKind::Failure => "FAILURE",
        ReportKind::Delay => "DELAY",
        ReportKind::Success => "SUCCESS",
    };
    let mut words = notify.split(',').map(str::trim);
    !words.clone().any(|w| w.eq_ignore_ascii_case("NEVER"))
        && words.any(|w| w.eq_ignore_ascii_case(wanted))
}

/// A NOTIFY list without SUCCESS (for a list's copies, as Postfix), `None`
/// when nothing is left (the default then applies).
pub(crate) fn without_success(notify: &str) -> Option<String> {
    let kept: Vec<&str> = notify
        .split(',')
        .map(str::trim)
        .filter(|n| !n.eq_ignore_ascii_case("SUCCESS") && !n.is_empty())
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// Builds the whole notification message (headers and MIME body, LF line
/// ends). See the module documentation for its exact shape.
pub(crate) fn build_report(input: &ReportInput) -> Vec<u8> {
    let utf8 = input.smtputf8;
    let host = text::printable(input.reporting_mta, false);
    let sender = text::printable(input.sender, utf8);

    let notification = notification_text(input, &host);
    let status = delivery_status(input, &host, &sender);
    let (returned, headers_only) = returned_message(input, &sender);
    let boundary = choose_boundary(input, &host, [&notification, &status, &returned]);

    let eight_bit = |b: &[u8]| !b.is_ascii();
    let any_8bit = eight_bit(&notification) || eight_bit(&status) || eight_bit(&returned);
    let mut m = String::new();

    // Top-level header.
    let _ = writeln!(m, "From: Mail Delivery System <MAILER-DAEMON@{host}>");
    let _ = writeln!(m, "Subject: {}", input.kind.subject());
    let _ = writeln!(m, "To: {sender}");
    if let Some(id) = text::original_message_id(header_section(input.original), utf8) {
        let _ = writeln!(m, "References: {id}");
        let _ = writeln!(m, "In-Reply-To: {id}");
    }
    m.push_str("Auto-Submitted: auto-replied\n");
    m.push_str("MIME-Version: 1.0\n");
    m.push_str("Content-Type: multipart/report; report-type=delivery-status;\n");
    let _ = writeln!(m, "\tboundary=\"{boundary}\"");
    let _ = writeln!(m, "Content-Transfer-Encoding: {}", cte(any_8bit));
    let _ = writeln!(m, "Date: {}", date::mail_date(input.now));
    let new_id = text::printable(input.new_queue_id, false);
    let stamp = date::message_id_stamp(input.now);
    let _ = writeln!(m, "Message-Id: <{stamp}.{new_id}@{host}>");
    m.push_str("\nThis is a MIME-encapsulated message.\n");

    // Part 1: the text for people.
    let _ = writeln!(m, "\n--{boundary}");
    m.push_str("Content-Description: Notification\n");
    let charset = if eight_bit(&notification) {
        "utf-8"
    } else {
        "us-ascii"
    };
    let _ = writeln!(m, "Content-Type: text/plain; charset={charset}");
    if eight_bit(&notification) {
        m.push_str("Content-Transfer-Encoding: 8bit\n");
    }
    m.push('\n');
    let mut out = m.into_bytes();
    out.extend_from_slice(&notification);

    // Part 2: the report for programs.
    let mut m = String::new();
    let _ = writeln!(m, "\n--{boundary}");
    m.push_str("Content-Description: Delivery report\n");
    let global = if utf8 { "global-" } else { "" };
    let _ = writeln!(m, "Content-Type: message/{global}delivery-status");
    if eight_bit(&status) {
        m.push_str("Content-Transfer-Encoding: 8bit\n");
    }
    m.push('\n');
    out.extend_from_slice(m.as_bytes());
    out.extend_from_slice(&status);

    // Part 3: the original, or its headers.
    let mut m = String::new();
    let _ = writeln!(m, "\n--{boundary}");
    let _ = writeln!(
        m,
        "Content-Description: {}{}",
        if input.kind.undelivered() {
            "Undelivered "
        } else {
            ""
        },
        if headers_only {
            "Message Headers"
        } else {
            "Message"
        }
    );
    let content_type = match (utf8, headers_only) {
        (false, false) => "message/rfc822",
        (false, true) => "text/rfc822-headers",
        (true, false) => "message/global",
        (true, true) => "message/global-headers",
    };
    let _ = writeln!(m, "Content-Type: {content_type}");
    if eight_bit(&returned) {
        m.push_str("Content-Transfer-Encoding: 8bit\n");
    }
    m.push('\n');
    out.extend_from_slice(m.as_bytes());
    out.extend_from_slice(&returned);
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    out
}

fn cte(eight_bit: bool) -> &'static str {
    if eight_bit { "8bit" } else { "7bit" }
}

/// Part 1's body: the template, then one wrapped entry per recipient, each
/// after a blank line. Ends with LF.
fn notification_text(input: &ReportInput, host: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let template = match input.kind {
        ReportKind::Failure => FAILURE_TEMPLATE.to_string(),
        ReportKind::Delay => DELAY_TEMPLATE
            .replace(
                "$delay_warning_time_hours",
                &(input.delay_warning_time.as_secs() / 3600).to_string(),
            )
            .replace(
                "$maximal_queue_lifetime_days",
                &(input.maximal_queue_lifetime.as_secs() / 86400).to_string(),
            ),
        ReportKind::Success => SUCCESS_TEMPLATE.to_string(),
    };
    out.extend_from_slice(template.replace("$myhostname", host).as_bytes());
    let utf8 = input.smtputf8;
    for r in input.recipients {
        let rcpt = text::printable(&r.final_recipient, utf8);
        let reason = text::printable(&r.reason, utf8);
        let entry = match expanded_from(r) {
            Some(orig) => {
                let orig = text::printable(orig, utf8);
                format!("<{rcpt}> (expanded from <{orig}>): {reason}")
            }
            None => format!("<{rcpt}>: {reason}"),
        };
        out.push(b'\n');
        text::wrap(&entry, &mut out);
    }
    out
}

/// The pre-expansion address, when there is one that differs.
fn expanded_from(r: &RecipientReport) -> Option<&str> {
    r.original_address
        .as_deref()
        .filter(|o| !o.is_empty() && !o.eq_ignore_ascii_case(&r.final_recipient))
}

/// Part 2's body: per-message fields, then a block per recipient. Ends with
/// LF.
fn delivery_status(input: &ReportInput, host: &str, sender: &str) -> Vec<u8> {
    let utf8 = input.smtputf8;
    let addr_type = |a: &str| {
        if utf8 && !a.is_ascii() {
            "utf-8"
        } else {
            "rfc822"
        }
    };
    let mut m = String::new();
    let _ = writeln!(m, "Reporting-MTA: dns; {host}");
    if let Some(envid) = input.envid.filter(|e| !e.is_empty()) {
        let _ = writeln!(m, "Original-Envelope-Id: {}", text::printable(envid, utf8));
    }
    let _ = writeln!(
        m,
        "X-Postern-Queue-ID: {}",
        text::printable(input.queue_id, false)
    );
    if !sender.is_empty() {
        let _ = writeln!(m, "X-Postern-Sender: {}; {sender}", addr_type(sender));
    }
    let _ = writeln!(m, "Arrival-Date: {}", date::mail_date(input.arrival));
    let mut out = m.into_bytes();

    for r in input.recipients {
        let mut m = String::new();
        let rcpt = text::printable(&r.final_recipient, utf8);
        let _ = writeln!(m, "\nFinal-Recipient: {}; {rcpt}", addr_type(&rcpt));
        if let Some(orcpt) = r.orcpt.as_deref().filter(|o| !o.is_empty()) {
            let _ = writeln!(m, "Original-Recipient: {}", text::printable(orcpt, utf8));
        } else if let Some(orig) = expanded_from(r) {
            let orig = text::printable(orig, utf8);
            let _ = writeln!(m, "Original-Recipient: {}; {orig}", addr_type(&orig));
        }
        let action = match input.kind {
            ReportKind::Failure => Action::Failed,
            _ => r.action,
        };
        let _ = writeln!(m, "Action: {}", action.as_str());
        let _ = writeln!(m, "Status: {}", r.status);
        out.extend_from_slice(m.as_bytes());
        if let Some(mta) = r.remote_mta.as_deref().filter(|s| !s.is_empty()) {
            text::wrap(
                &format!("Remote-MTA: {}", text::printable(mta, utf8)),
                &mut out,
            );
        }
        let diagnostic = match r.diagnostic.as_deref().filter(|s| !s.is_empty()) {
            Some(d) => format!("Diagnostic-Code: {}", text::printable(d, utf8)),
            None => {
                let reason = text::printable(&r.reason, utf8);
                format!("Diagnostic-Code: {DIAGNOSTIC_TYPE}; {reason}")
            }
        };
        text::wrap(&diagnostic, &mut out);
        if input.kind == ReportKind::Delay {
            let until = input.arrival.checked_add(input.maximal_queue_lifetime);
            let until = until.unwrap_or(input.arrival);
            out.extend_from_slice(
                format!("Will-Retry-Until: {}\n", date::mail_date(until)).as_bytes(),
            );
        }
    }
    out
}

/// Part 3's body and whether it holds only the header section. Ends with LF
/// (one is added when the original lacks it).
fn returned_message(input: &ReportInput, sender: &str) -> (Vec<u8>, bool) {
    let too_big = input.size_limit > 0 && input.original.len() > input.size_limit;
    let headers_only = input.kind == ReportKind::Delay || input.ret == Some(Ret::Hdrs) || too_big;
    let content = if headers_only {
        header_section(input.original)
    } else {
        input.original
    };
    let mut out = format!("Return-Path: <{sender}>\n").into_bytes();
    out.extend_from_slice(content);
    if !content.is_empty() && !content.ends_with(b"\n") {
        out.push(b'\n');
    }
    (out, headers_only)
}

/// Postfix's boundary `<new-id>.<unix-time>/<myhostname>`, restricted to
/// RFC 2046 `bchars` and 70 characters, lengthened with `.N` until no part
/// contains it.
fn choose_boundary(input: &ReportInput, host: &str, parts: [&[u8]; 3]) -> String {
    let base = format!(
        "{}.{}/{}",
        input.new_queue_id,
        date::unix_seconds(input.now),
        host
    );
    let bchar = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=?".contains(c);
    let mut base: String = base
        .chars()
        .map(|c| if bchar(c) { c } else { '-' })
        .collect();
    base.truncate(60);
    let mut boundary = base.clone();
    let mut n = 0u32;
    while parts.iter().any(|p| contains(p, boundary.as_bytes())) {
        n += 1;
        boundary = format!("{base}.{n}");
    }
    boundary
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Postfix's built-in failure template (`bounce_templates.c`), verbatim.
const FAILURE_TEMPLATE: &str = "\
This is the mail system at host $myhostname.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to <postmaster>

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system
";

/// Postfix's built-in delay template, verbatim; the two time values are
/// integer hours and days, as Postfix's `_hours`/`_days` suffixes divide.
const DELAY_TEMPLATE: &str = "\
This is the mail system at host $myhostname.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than $delay_warning_time_hours hour(s).
It will be retried until it is $maximal_queue_lifetime_days day(s) old.

For further assistance, please send mail to <postmaster>

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system
";

/// Postfix's built-in success template, verbatim.
const SUCCESS_TEMPLATE: &str = "\
This is the mail system at host $myhostname.

Your message was successfully delivered to the destination(s)
listed below. If the message was delivered to mailbox you will
receive no further notifications. Otherwise you may still receive
notifications of mail delivery errors from other systems.

                   The mail system
";

#[cfg(test)]
mod tests;
