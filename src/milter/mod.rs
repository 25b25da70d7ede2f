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
    ChangeFrom { sender: String, args: Option<String> },
    /// SMFIR_QUARANTINE: hold the message, with the milter's reason.
    Quarantine(String),
}

/// The end of the message: the final answer and what was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndOfMessage {
    pub answer: Answer,
    pub modifications: Vec<Modification>,
}
