//! SMTP replies: the code, the enhanced status code and the text live here,
//! in one place, so that the reply a client sees and the log line that
//! records a reject are built from the same value.

use std::borrow::Cow;
use std::fmt;

/// One SMTP reply (RFC 5321 section 4.2) with an optional RFC 3463 enhanced
/// status code. Multi-line replies are written with `lines`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The enhanced status code; usually a constant, built at run time
    /// where an access table gives one (`REJECT 5.7.0 go away`).
    pub enhanced: Option<Cow<'static, str>>,
    pub text: String,
}

impl Reply {
    pub(crate) fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(Cow::Borrowed(enhanced)),
            text: text.into(),
        }
    }

    pub(crate) fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            text: text.into(),
        }
    }

    /// 2xx.
    pub(crate) fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The reply as it goes on the wire, CRLF terminated.
    pub(crate) fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_wire(&mut out);
        out
    }

    /// Appends the reply as it goes on the wire (as [`Reply::to_wire`])
    /// to `out`, copied piece by piece rather than through the formatter
    /// (smtpd writes several replies per message; issue 22).
    pub(crate) fn write_wire(&self, out: &mut Vec<u8>) {
        let code = [
            b'0' + (self.code / 100 % 10) as u8,
            b'0' + (self.code / 10 % 10) as u8,
            b'0' + (self.code % 10) as u8,
        ];
        let mut lines = self.text.split('\n').peekable();
        while let Some(line) = lines.next() {
            if (100..1000).contains(&self.code) {
                out.extend_from_slice(&code);
            } else {
                out.extend_from_slice(self.code.to_string().as_bytes());
            }
            out.push(if lines.peek().is_some() { b'-' } else { b' ' });
            if let Some(e) = &self.enhanced {
                out.extend_from_slice(e.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    // Replies shared by several commands. Texts are Postfix's, because
    // clients and log parsers depend on them.

    pub(crate) fn ok() -> Reply {
        Reply::new(250, "2.0.0", "Ok")
    }
    pub(crate) fn mail_ok() -> Reply {
        Reply::new(250, "2.1.0", "Ok")
    }
    pub(crate) fn rcpt_ok() -> Reply {
        Reply::new(250, "2.1.5", "Ok")
    }
    pub(crate) fn start_data() -> Reply {
        Reply::plain(354, "End data with <CR><LF>.<CR><LF>")
    }
    pub(crate) fn queued(id: &str) -> Reply {
        Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))
    }
    /// A BDAT chunk taken, not the last (RFC 3030).
    pub(crate) fn chunk_ok(octets: u64) -> Reply {
        Reply::new(250, "2.0.0", format!("Ok: {octets} bytes"))
    }
    /// BDAT LAST: the octets of all the message's chunks, and its ID.
    pub(crate) fn chunks_queued(octets: u64, id: &str) -> Reply {
        Reply::new(250, "2.0.0", format!("Ok: {octets} bytes queued as {id}"))
    }
    /// `BDAT 0` without LAST: an empty chunk that ends nothing.
    pub(crate) fn null_bdat() -> Reply {
        Reply::new(551, "5.7.1", "Null BDAT request")
    }
    /// DATA, MAIL or RCPT in a transaction whose content began with BDAT.
    pub(crate) fn after_bdat(verb: &str) -> Reply {
        Reply::new(503, "5.5.1", format!("Error: {verb} after BDAT"))
    }
    pub(crate) fn bye() -> Reply {
        Reply::new(221, "2.0.0", "Bye")
    }
    pub(crate) fn relay_denied(rcpt: &str) -> Reply {
        Reply::new(554, "5.7.1", format!("<{rcpt}>: Relay access denied"))
    }
    pub(crate) fn unknown_local_user(rcpt: &str) -> Reply {
        Reply::new(
            550,
            "5.1.1",
            format!("<{rcpt}>: Recipient address rejected: User unknown in local recipient table"),
        )
    }
    /// An address in a virtual alias domain (`virtual.alias_domains`)
    /// that no alias names (Postfix's `unknown_virtual_alias_reject_code`).
    pub(crate) fn unknown_virtual_alias(rcpt: &str) -> Reply {
        Reply::new(
            550,
            "5.1.1",
            format!("<{rcpt}>: Recipient address rejected: User unknown in virtual alias table"),
        )
    }
    /// An address in `relay.domains` not in `relay.recipient_maps`
    /// (Postfix's `unknown_relay_recipient_reject_code`).
    pub(crate) fn unknown_relay_recipient(rcpt: &str) -> Reply {
        Reply::new(
            550,
            "5.1.1",
            format!("<{rcpt}>: Recipient address rejected: User unknown in relay recipient table"),
        )
    }
    /// Virtual alias expansion past its limits, or a table that failed,
    /// at the end of the message: try again later (Postfix's cleanup).
    pub(crate) fn alias_expansion_error() -> Reply {
        Reply::new(451, "4.6.0", "Alias expansion error")
    }
    pub(crate) fn unknown_virtual_mailbox(rcpt: &str) -> Reply {
        Reply::new(
            550,
            "5.1.1",
            format!("<{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"),
        )
    }
    pub(crate) fn temporary_lookup_failure(rcpt: &str) -> Reply {
        Reply::new(451, "4.3.0", format!("<{rcpt}>: Temporary lookup failure"))
    }
    pub(crate) fn size_exceeds_limit() -> Reply {
        Reply::new(552, "5.3.4", "Message size exceeds fixed limit")
    }
    pub(crate) fn message_too_big() -> Reply {
        Reply::new(552, "5.3.4", "Error: message file too big")
    }
    pub(crate) fn too_many_recipients() -> Reply {
        Reply::new(452, "4.5.3", "Error: too many recipients")
    }
    pub(crate) fn need_mail() -> Reply {
        Reply::new(503, "5.5.1", "Error: need MAIL command")
    }
    pub(crate) fn need_rcpt() -> Reply {
        Reply::new(503, "5.5.1", "Error: need RCPT command")
    }
    pub(crate) fn nested_mail() -> Reply {
        Reply::new(503, "5.5.1", "Error: nested MAIL command")
    }
    pub(crate) fn no_valid_recipients() -> Reply {
        Reply::new(554, "5.5.1", "Error: no valid recipients")
    }
    /// 502, as Postfix's smtpd sends it (not 500).
    pub(crate) fn not_recognized() -> Reply {
        Reply::new(502, "5.5.2", "Error: command not recognized")
    }
    /// RFC 6531 section 3.7.4.1.
    pub(crate) fn must_declare_smtputf8() -> Reply {
        Reply::new(
            553,
            "5.6.7",
            "Must declare SMTPUTF8 to send unicode address",
        )
    }
    pub(crate) fn vrfy_disabled() -> Reply {
        Reply::new(502, "5.5.1", "VRFY command is disabled")
    }
    pub(crate) fn sync_error() -> Reply {
        Reply::new(554, "5.5.0", "Error: SMTP protocol synchronization")
    }
    /// A milter's SMFIR_REJECT (Postfix's milter8 words).
    pub(crate) fn milter_reject() -> Reply {
        Reply::new(550, "5.7.1", "Command rejected")
    }
    /// A milter's SMFIR_TEMPFAIL, or one that failed under
    /// `default_action = "tempfail"`.
    pub(crate) fn milter_tempfail() -> Reply {
        Reply::new(451, "4.7.1", "Service unavailable - try again later")
    }
    /// A milter's SMFIR_REPLYCODE: `550 5.7.1 text`, possibly several
    /// lines (`550-5.7.1 a` CRLF `550 5.7.1 b`), as the milter wrote it.
    /// Not 4xx or 5xx, or not a reply: a temporary failure, as Postfix
    /// takes it.
    pub(crate) fn from_milter(text: &str) -> Reply {
        let mut code = None;
        let mut enhanced = None;
        let mut lines = Vec::new();
        for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
            let Some(this) = line.get(..3).and_then(|c| c.parse::<u16>().ok()) else {
                return Reply::milter_tempfail();
            };
            if !(400..600).contains(&this) || code.is_some_and(|c| c != this) {
                return Reply::milter_tempfail();
            }
            code = Some(this);
            let rest = line[3..].trim_start_matches(['-', ' ']);
            let (dsn, words) = crate::maps::access::split_dsn(rest);
            if enhanced.is_none() {
                enhanced = dsn.map(str::to_string);
            }
            lines.push(crate::wire::printable::printable(words, true).into_owned());
        }
        let Some(code) = code else {
            return Reply::milter_tempfail();
        };
        let class = if code >= 500 { '5' } else { '4' };
        let enhanced = match enhanced {
            Some(e) if e.starts_with(class) => e,
            _ => format!("{class}.7.1"),
        };
        Reply {
            code,
            enhanced: Some(Cow::Owned(enhanced)),
            text: lines.join("\n"),
        }
    }
    /// A message whose `From:` domain fails DMARC under `p=reject`
    /// (OpenDMARC's words).
    pub(crate) fn dmarc_reject(domain: &str) -> Reply {
        Reply::new(
            550,
            "5.7.1",
            format!("rejected by DMARC policy for {domain}"),
        )
    }
    /// `reject_spf_fail`: the sender's domain does not allow the client
    /// (RFC 7372's 5.7.23, "SPF validation failed").
    pub(crate) fn spf_fail(sender: &str, why: &str) -> Reply {
        Reply::new(
            550,
            "5.7.23",
            format!("<{sender}>: Sender address rejected: SPF fail: {why}"),
        )
    }
    /// An SPF check that could not finish (a DNS failure), under
    /// `restrictions.dns_failure = "defer"` (RFC 7372's 4.7.24).
    pub(crate) fn spf_temperror(sender: &str) -> Reply {
        Reply::new(
            451,
            "4.7.24",
            format!("<{sender}>: Sender address rejected: SPF temporary error"),
        )
    }
    pub(crate) fn queue_write_error() -> Reply {
        Reply::new(451, "4.3.0", "Error: queue file write error")
    }
    pub(crate) fn timeout(hostname: &str) -> Reply {
        Reply::new(421, "4.4.2", format!("{hostname} Error: timeout exceeded"))
    }
    pub(crate) fn too_many_errors(hostname: &str) -> Reply {
        Reply::new(421, "4.7.0", format!("{hostname} Error: too many errors"))
    }
    pub(crate) fn too_many_connections(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.7.0",
            format!("{hostname} Error: too many connections"),
        )
    }
    pub(crate) fn too_many_connections_from(hostname: &str, ip: &str) -> Reply {
        Reply::new(
            421,
            "4.7.0",
            format!("{hostname} Error: too many connections from {ip}"),
        )
    }
    pub(crate) fn bare_lf(hostname: &str) -> Reply {
        Reply::new(
            550,
            "5.5.2",
            format!("{hostname} Error: bare <LF> received"),
        )
    }
    pub(crate) fn command_too_long(hostname: &str) -> Reply {
        Reply::new(500, "5.5.2", format!("{hostname} Error: command too long"))
    }
    /// MAIL when the queue's file system is short of space
    /// (`queue.minfree`, Postfix's `queue_minfree`).
    pub(crate) fn insufficient_storage() -> Reply {
        Reply::new(452, "4.3.1", "Insufficient system storage")
    }
    /// A HELO or EHLO name that cannot be a name (a NUL in it); Postfix's
    /// text for `reject_invalid_helo_hostname`.
    pub(crate) fn invalid_helo_name(name: &str) -> Reply {
        Reply::new(
            501,
            "5.5.2",
            format!("<{name}>: Helo command rejected: Invalid name"),
        )
    }
    /// An idle session closed to make room for a new client at
    /// `smtpd.max_connections`.
    pub(crate) fn idle_session_closed(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!("{hostname} Error: too many connections, closing idle session"),
        )
    }
    /// `smtpd.session_time_limit` reached.
    pub(crate) fn session_time_limit(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.4.2",
            format!("{hostname} Error: session time limit exceeded"),
        )
    }
    // Restrictions (crate::policy), Postfix's texts (smtpd_check.c).

    /// A restriction's reply with a DSN known only at run time. The text
    /// is made safe as Postfix makes it: control characters become
    /// spaces, and the whole reply line stays within 510 bytes.
    pub(crate) fn restriction(code: u16, dsn: String, text: impl Into<String>) -> Reply {
        let mut text: String = text
            .into()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let room = 510usize.saturating_sub(4 + dsn.len() + 1);
        if text.len() > room {
            let mut end = room;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        Reply {
            code,
            enhanced: Some(Cow::Owned(dsn)),
            text,
        }
    }
    /// `<name>: Class rejected: text`, the shape of every access reply.
    pub(crate) fn rejected(code: u16, dsn: String, name: &str, class: &str, text: &str) -> Reply {
        Reply::restriction(code, dsn, format!("<{name}>: {class} rejected: {text}"))
    }
    /// A DNS blocklist: `554 5.7.1 Service unavailable; Client host
    /// [1.2.3.4] blocked using zone; TXT`.
    pub(crate) fn rbl_blocked(class: &str, what: &str, zone: &str, reason: Option<&str>) -> Reply {
        let mut text = format!("Service unavailable; {class} [{what}] blocked using {zone}");
        if let Some(reason) = reason.filter(|r| !r.is_empty()) {
            text.push_str("; ");
            text.push_str(reason);
        }
        Reply::restriction(554, "5.7.1".to_string(), text)
    }
    pub(crate) fn relay_deferred(rcpt: &str) -> Reply {
        Reply::new(454, "4.7.1", format!("<{rcpt}>: Relay access denied"))
    }
    /// `reject_unknown_client_hostname` (RFC 7372's 4.7.25).
    pub(crate) fn unknown_client_hostname(ip: &str) -> Reply {
        Reply::new(
            450,
            "4.7.25",
            format!("Client host rejected: cannot find your hostname, [{ip}]"),
        )
    }
    /// Every command after a client restriction refused the connection
    /// (`restrictions.delay_reject = false`).
    pub(crate) fn access_denied_for(client: &str) -> Reply {
        Reply::new(503, "5.7.0", format!("Error: access denied for {client}"))
    }
    pub(crate) fn server_configuration_error() -> Reply {
        Reply::new(451, "4.3.5", "Server configuration error")
    }
    pub(crate) fn shutting_down(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!("{hostname} Service shutting down, closing transmission channel"),
        )
    }
}

impl fmt::Display for Reply {
    /// Single-line form `CODE X.Y.Z text`; multi-line text (embedded `\n`)
    /// becomes `CODE-...` continuation lines joined with CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            if i > 0 {
                f.write_str("\r\n")?;
            }
            match &self.enhanced {
                Some(e) => write!(f, "{}{sep}{e} {line}", self.code)?,
                None => write!(f, "{}{sep}{line}", self.code)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form is the Display form, CRLF-terminated.
    #[test]
    fn wire_form_is_the_display_form() {
        for r in [
            Reply::ok(),
            Reply::start_data(),
            Reply::plain(250, "host\nPIPELINING\nSIZE 10240000"),
            Reply::new(550, "5.1.1", "a\n\nb"),
            Reply::plain(250, ""),
            Reply::plain(99, "x"),
        ] {
            assert_eq!(r.to_wire(), format!("{r}\r\n").into_bytes());
        }
    }

    #[test]
    fn relay_denied_is_postfix_text() {
        assert_eq!(
            Reply::relay_denied("u@elsewhere.example").to_string(),
            "554 5.7.1 <u@elsewhere.example>: Relay access denied"
        );
    }

    #[test]
    fn rbl_texts_are_postfix_texts() {
        assert_eq!(
            Reply::rbl_blocked(
                "Client host",
                "192.0.2.1",
                "zen.example",
                Some("listed, see x")
            )
            .to_string(),
            "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.example; listed, see x"
        );
        assert_eq!(
            Reply::rbl_blocked("Sender address", "a@b.example", "dbl.example", None).to_string(),
            "554 5.7.1 Service unavailable; Sender address [a@b.example] blocked using dbl.example"
        );
    }

    #[test]
    fn restriction_text_is_made_safe() {
        let r = Reply::restriction(550, "5.7.1".into(), format!("a\r\nb{}", "x".repeat(600)));
        let line = r.to_string();
        assert!(line.starts_with("550 5.7.1 a  bx"), "{line}");
        assert_eq!(line.len(), 510);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn multiline() {
        let r = Reply::plain(250, "a\nb");
        assert_eq!(r.to_string(), "250-a\r\n250 b");
    }
}
