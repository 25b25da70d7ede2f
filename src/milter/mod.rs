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
//! - [`address`]: where a milter (or a policy server) listens, as the
//!   configuration writes it: a leaf of syntax that `config` and
//!   `policy` read without the rest of this module.

pub(crate) mod address;
pub mod client;
pub mod edit;
mod message;
pub mod protocol;

use std::time::Duration;

pub use address::{Address, AddressError};

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
