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
pub mod protocol;

use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a milter listens: Postfix's `unix:/path` (or `local:/path`) and
/// `inet:host:port` (`inet:[::1]:port` for IPv6). Hosts are IP
/// addresses: smtpd's sandbox resolves no names for this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Inet(SocketAddr),
}

impl Address {
    /// Postfix's forms: `unix:/path` (or `local:/path`), `inet:ip:port`,
    /// `inet:[ipv6]:port`, `inet:localhost:port`.
    pub fn parse(text: &str) -> Result<Address, String> {
        let text = text.trim();
        if let Some(path) = text
            .strip_prefix("unix:")
            .or_else(|| text.strip_prefix("local:"))
        {
            if !path.starts_with('/') {
                return Err(format!(
                    "{path:?} is not an absolute path (Postfix reads a relative one from                      its queue directory; write the whole path)"
                ));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let Some(rest) = text.strip_prefix("inet:") else {
            return Err("a milter is written unix:/path or inet:host:port".to_string());
        };
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => v6
                .split_once("]:")
                .ok_or_else(|| "write an IPv6 milter as inet:[::1]:port".to_string())?,
            None => rest
                .rsplit_once(':')
                .ok_or_else(|| "inet:host:port needs a port".to_string())?,
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{port:?} is not a port number"))?;
        let ip: std::net::IpAddr = match host {
            "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
            _ => host.parse().map_err(|_| {
                format!(
                    "{host:?} is not an IP address (smtpd looks up no names for milters:                      write the address)"
                )
            })?,
        };
        Ok(Address::Inet(SocketAddr::new(ip, port)))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Inet(SocketAddr::V6(a)) => write!(f, "inet:[{}]:{}", a.ip(), a.port()),
            Address::Inet(a) => write!(f, "inet:{a}"),
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
    /// text`, possibly multi-line); 4xx or 5xx.
    ReplyCode(String),
}

/// A modification sent at the end of the message (before the final
/// answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Modification {
    /// SMFIR_ADDHEADER: a field at the end of the header section.
    AddHeader { name: String, value: String },
    /// SMFIR_INSHEADER: a field before the `index`th (0-based) field.
    InsertHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// SMFIR_CHGHEADER: the `index`th (1-based) field named `name`
    /// gets `value`; an empty value deletes it.
    ChangeHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// SMFIR_REPLBODY, all chunks joined: the new body (CRLF line ends,
    /// as sent).
    ReplaceBody(Vec<u8>),
    /// SMFIR_ADDRCPT / SMFIR_ADDRCPT_PAR: `<addr>` and ESMTP arguments.
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
    fn addresses_in_postfix_forms() {
        for (text, shown) in [
            ("inet:127.0.0.1:11332", "inet:127.0.0.1:11332"),
            ("inet:localhost:8891", "inet:127.0.0.1:8891"),
            ("inet:[::1]:8893", "inet:[::1]:8893"),
            (
                "unix:/run/rspamd/milter.sock",
                "unix:/run/rspamd/milter.sock",
            ),
            (
                "local:/run/opendkim/opendkim.sock",
                "unix:/run/opendkim/opendkim.sock",
            ),
        ] {
            assert_eq!(Address::parse(text).unwrap().to_string(), shown, "{text}");
        }
        for (text, why) in [
            ("inet:mail.example:25", "not an IP address"),
            ("inet:127.0.0.1", "needs a port"),
            ("inet:127.0.0.1:0", "not a port number"),
            ("unix:private/milter", "not an absolute path"),
            ("127.0.0.1:11332", "unix:/path or inet:host:port"),
        ] {
            let e = Address::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
