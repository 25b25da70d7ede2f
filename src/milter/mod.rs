//! The milter protocol (Sendmail's libmilter, version 6, as Postfix
//! speaks it): smtpd as the client of content filters such as rspamd,
//! OpenDKIM, OpenDMARC, clamav-milter — stage by stage, as Postfix's
//! `milter8.c` does (issue 20).
//!
//! - [`protocol`]: the packets (sans-IO): commands encoded, replies
//!   decoded from a byte stream, nothing else.
//! - [`client`]: one milter connection: negotiation, one call per SMTP
//!   stage with the macros of that stage, the message, timeouts.
//! - [`edit`]: what a milter's modifications do to the stored message
//!   and the envelope.

pub mod client;
pub mod edit;
mod message;
pub mod protocol;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Where a milter listens: Postfix's `unix:/path` (or `local:/path`) and
/// `inet:host:port` (`inet:[::1]:port` for IPv6). Hosts are IP
/// addresses: smtpd's sandbox resolves no names for this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Inet(SocketAddr),
}

/// What is wrong with a milter or policy server address; the text names
/// the address, its user says what it is (`milter address …`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("\"{0}\": expected unix:/path, local:/path or inet:host:port")]
    NoTransport(String),
    #[error(
        "\"{0}\": unknown transport \"{1}\" (unix, local or inet; libmilter's inet6: is written inet:[addr]:port)"
    )]
    UnknownTransport(String, String),
    #[error("\"{0}\": the socket path must be absolute")]
    RelativePath(String),
    #[error("\"{0}\": expected inet:host:port (IPv6: inet:[addr]:port)")]
    NoPort(String),
    #[error("\"{0}\": bad port \"{1}\" (1 to 65535)")]
    BadPort(String, String),
    #[error("\"{0}\": the host \"{1}\" is not an IP address (smtpd resolves no names for these)")]
    BadHost(String, String),
    #[error("\"{0}\": an IPv6 address goes in brackets: inet:[addr]:port")]
    Unbracketed(String),
}

impl Address {
    /// Parse Postfix's milter address forms: `unix:/path`, `local:/path`
    /// (the same), `inet:192.0.2.1:11332`, `inet:[2001:db8::1]:11332`.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let whole = || text.to_string();
        let (transport, endpoint) = text
            .split_once(':')
            .filter(|(t, e)| !t.is_empty() && !e.is_empty())
            .ok_or_else(|| AddressError::NoTransport(whole()))?;
        match transport {
            "unix" | "local" => {
                let path = PathBuf::from(endpoint);
                if !path.is_absolute() {
                    return Err(AddressError::RelativePath(whole()));
                }
                Ok(Address::Unix(path))
            }
            "inet" => {
                let (host, port) = endpoint
                    .rsplit_once(':')
                    .ok_or_else(|| AddressError::NoPort(whole()))?;
                let port_number = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| AddressError::BadPort(whole(), port.to_string()))?;
                let ip = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                    Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
                    // An IPv6 address without brackets lost its last
                    // group to the port, or has no port.
                    None if host.contains(':') => return Err(AddressError::Unbracketed(whole())),
                    // rspamd's and OpenDKIM's documentation write it so.
                    None if host.eq_ignore_ascii_case("localhost") => {
                        Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
                    }
                    None => host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
                };
                let ip = ip.ok_or_else(|| AddressError::BadHost(whole(), host.to_string()))?;
                Ok(Address::Inet(SocketAddr::new(ip, port_number)))
            }
            other => Err(AddressError::UnknownTransport(whole(), other.to_string())),
        }
    }
}

impl Address {
    /// [`Address::parse`] with its error as text (the configuration's
    /// readers take those).
    pub fn parse_text(text: &str) -> Result<Address, String> {
        Address::parse(text).map_err(|e| format!("milter address {e}"))
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Address, AddressError> {
        Address::parse(text)
    }
}

/// Postfix's form, as in its log lines: `unix:/run/x.sock`,
/// `inet:127.0.0.1:11332`, `inet:[::1]:11332`.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Inet(addr) => write!(f, "inet:{addr}"),
        }
    }
}

/// How long to wait for a milter (Postfix's `milter_connect_timeout`,
/// `milter_command_timeout` and `milter_content_timeout`, with their
/// defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// To connect, and for the negotiation's reply (30 s).
    pub connect: Duration,
    /// For each reply to a connection or envelope stage: CONNECT, HELO,
    /// MAIL, RCPT, DATA, unknown commands (30 s).
    pub command: Duration,
    /// For each reply while the message goes: headers, end of headers,
    /// body chunks, end of message (300 s). A progress reply starts the
    /// wait again.
    pub content: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(30),
            content: Duration::from_secs(300),
        }
    }
}

/// One stage's answer from a milter, after any modifications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Go on (SMFIR_CONTINUE; also what a stage the milter skipped or
    /// answers without a reply is).
    Continue,
    /// Accept: this milter says nothing more about this message (at
    /// connect or HELO: about this connection).
    Accept,
    /// SMFIR_REJECT.
    Reject,
    /// SMFIR_TEMPFAIL.
    TempFail,
    /// SMFIR_DISCARD: accept the message and drop it.
    Discard,
    /// SMFIR_REPLYCODE: the milter's own reply, as it sent it (`550 5.7.1
    /// text`, possibly multi-line: whole lines joined by CRLF, `550-…`
    /// then `550 …`); 4xx or 5xx, checked as Postfix checks it, Sendmail's
    /// `%%` already made `%`.
    ReplyCode(String),
    /// SMFIR_SHUTDOWN (or SMFIR_CONN_FAIL): the milter wants the SMTP
    /// session closed, `421` (Postfix: `421 4.7.0 Server closing
    /// connection`). Nothing more goes to this milter.
    Shutdown,
}

/// A modification sent at the end of the message (before the final
/// answer), in the order the milter sent them.
///
/// Header values are as they follow the colon: the client puts back the
/// one space a milter without `SMFIP_HDR_LEADSPC` leaves out (Postfix's
/// `MILTER8_HDR_SPACE`), so the field is `name:value`. Folded values keep
/// the milter's line breaks: LF then a blank, as libmilter's manual asks
/// (an LF after a CR is against it, but seen). Names are never empty;
/// texts that are not UTF-8 have U+FFFD.
///
/// Header indexes (Postfix's rule, for Sendmail compatibility, see
/// `cleanup_milter.c`): an insert counts the fields of the message as
/// delivered, smtpd's own `Received:` included (index 0 puts the field
/// above it); a change counts the fields named `name` among those the
/// milter was sent, smtpd's own `Received:` not among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Modification {
    /// SMFIR_ADDHEADER: a field at the end of the header section.
    AddHeader { name: String, value: String },
    /// SMFIR_INSHEADER: a field before the `index`th (0-based) field; an
    /// index past the last field appends.
    InsertHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// SMFIR_CHGHEADER: the `index`th (1-based; a milter's 0 is made 1)
    /// field named `name` gets `value`; an empty value deletes it. An
    /// index past the last field of that name adds the field (libmilter's
    /// manual).
    ChangeHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// SMFIR_REPLBODY, all chunks joined (wherever they came among the
    /// other modifications): the new body (CRLF line ends, as sent).
    ReplaceBody(Vec<u8>),
    /// SMFIR_ADDRCPT / SMFIR_ADDRCPT_PAR: `<addr>` and ESMTP arguments
    /// (`None` when none or empty).
    AddRcpt { rcpt: String, args: Option<String> },
    /// SMFIR_DELRCPT.
    DelRcpt(String),
    /// SMFIR_CHGFROM: the new sender (`<addr>`) and ESMTP arguments.
    ChangeFrom {
        sender: String,
        args: Option<String>,
    },
    /// SMFIR_QUARANTINE: hold the message, with the milter's reason.
    Quarantine(String),
}

impl Answer {
    /// The reply an answer refuses with, as Postfix's milter8 words it
    /// (`550 5.7.1 Command rejected`, `451 4.7.1 Service unavailable -
    /// try again later`, the milter's own reply); `None`: no refusal.
    pub(crate) fn refusal(&self) -> Option<crate::reply::Reply> {
        use crate::reply::Reply;
        match self {
            Answer::Reject => Some(Reply::milter_reject()),
            Answer::TempFail | Answer::Shutdown => Some(Reply::milter_tempfail()),
            Answer::ReplyCode(text) => Some(Reply::from_milter(text)),
            Answer::Continue | Answer::Accept | Answer::Discard => None,
        }
    }
}

/// The end of the message: the final answer and what was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndOfMessage {
    pub answer: Answer,
    pub modifications: Vec<Modification>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_as_postfix_writes_them() {
        for (text, address) in [
            (
                "unix:/run/rspamd/milter.sock",
                Address::Unix("/run/rspamd/milter.sock".into()),
            ),
            (
                "inet:127.0.0.1:11332",
                Address::Inet("127.0.0.1:11332".parse().unwrap()),
            ),
            (
                "inet:[::1]:8891",
                Address::Inet("[::1]:8891".parse().unwrap()),
            ),
        ] {
            assert_eq!(Address::parse(text), Ok(address.clone()));
            assert_eq!(address.to_string(), text);
        }
        assert_eq!(
            "local:/run/x.sock".parse::<Address>(),
            Ok(Address::Unix("/run/x.sock".into()))
        );
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        let error = |text: &str| Address::parse_text(text).unwrap_err();
        assert_eq!(
            error("127.0.0.1:11332"),
            "milter address \"127.0.0.1:11332\": unknown transport \"127.0.0.1\" (unix, local or inet; libmilter's inet6: is written inet:[addr]:port)"
        );
        assert_eq!(
            error("/run/x.sock"),
            "milter address \"/run/x.sock\": expected unix:/path, local:/path or inet:host:port"
        );
        assert_eq!(
            error("unix:run/x.sock"),
            "milter address \"unix:run/x.sock\": the socket path must be absolute"
        );
        assert_eq!(
            error("inet:11332"),
            "milter address \"inet:11332\": expected inet:host:port (IPv6: inet:[addr]:port)"
        );
        assert_eq!(
            error("inet:127.0.0.1:0"),
            "milter address \"inet:127.0.0.1:0\": bad port \"0\" (1 to 65535)"
        );
        assert_eq!(
            error("inet:127.0.0.1:+25"),
            "milter address \"inet:127.0.0.1:+25\": bad port \"+25\" (1 to 65535)"
        );
        assert_eq!(
            error("inet:mail.example:11332"),
            "milter address \"inet:mail.example:11332\": the host \"mail.example\" is not an IP address (smtpd resolves no names for these)"
        );
        assert_eq!(
            Address::parse("inet:localhost:11332").unwrap().to_string(),
            "inet:127.0.0.1:11332"
        );
        assert_eq!(
            error("inet:::1:11332"),
            "milter address \"inet:::1:11332\": an IPv6 address goes in brackets: inet:[addr]:port"
        );
        assert!(Address::parse("inet:[127.0.0.1]:25").is_err());
        assert!(Address::parse("inet::25").is_err());
    }
}
