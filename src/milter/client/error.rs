//! A milter client's errors: each names the milter and says what
//! happened as Postfix's `milter8.c` warnings do.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::milter::Address;
use crate::milter::protocol::{self, DecodeError};

/// What went wrong with a milter. Each text names the milter, fit for a
/// `warning:` log line as Postfix writes them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be reached (or not in `Timeouts::connect`).
    #[error("connect to milter service {milter}: {}", Os(.source))]
    Connect { milter: Address, source: io::Error },
    /// Nothing (or not all) came in time.
    #[error("milter {milter}: {doing}: timed out after {}", Secs(*.after))]
    Timeout {
        milter: Address,
        doing: Doing,
        after: Duration,
    },
    /// Reading or writing failed.
    #[error("milter {milter}: {doing}: {}", Os(.source))]
    Io {
        milter: Address,
        doing: Doing,
        source: io::Error,
    },
    /// The milter closed the connection.
    #[error("milter {milter}: {doing}: connection closed by the milter")]
    Closed { milter: Address, doing: Doing },
    /// The milter sent what the protocol does not allow.
    #[error("milter {milter}: {violation}")]
    Protocol {
        milter: Address,
        violation: Violation,
    },
    /// A stage called after one of the errors above: the milter is no
    /// longer used in this session.
    #[error("milter {milter}: not used after an earlier error")]
    AfterError { milter: Address },
}

/// What the client was doing when I/O failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doing {
    /// Writing the packet of this command.
    Write(u8),
    /// Reading the reply to this command; `started` when part of a packet
    /// had come.
    Read { command: u8, started: bool },
}

impl fmt::Display for Doing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Doing::Write(code) => write!(f, "error writing {}", protocol::command_name(code)),
            Doing::Read {
                command,
                started: false,
            } => write!(
                f,
                "can't read {} reply packet header",
                protocol::command_name(command)
            ),
            Doing::Read {
                command,
                started: true,
            } => write!(
                f,
                "can't read {} reply packet",
                protocol::command_name(command)
            ),
        }
    }
}

/// How a milter broke the protocol, with what it sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("{error} (reply to {})", protocol::command_name(*.command))]
    Decode { command: u8, error: DecodeError },
    #[error(
        "unexpected filter response {} after event {}",
        protocol::reply_name(*.reply),
        protocol::command_name(*.command)
    )]
    Unexpected { reply: u8, command: u8 },
    #[error(
        "{} without {action} in the negotiation",
        protocol::reply_name(*.reply)
    )]
    NotNegotiated { reply: u8, action: &'static str },
    #[error("protocol version {0} conflict with MTA protocol version 6")]
    Version(u32),
    #[error("request mask 0x{0:x} conflict with MTA request mask 0x1ff")]
    Actions(u32),
    #[error("malformed reply: {0}")]
    ReplyCode(String),
    #[error("null header name in {}", protocol::reply_name(*.0))]
    HeaderName(u8),
}

/// An I/O error as `strerror` says it, without Rust's `(os error N)`.
pub(super) struct Os<'a>(&'a io::Error);

impl fmt::Display for Os<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        match (self.0.raw_os_error(), text.rfind(" (os error ")) {
            (Some(_), Some(at)) => f.write_str(&text[..at]),
            _ => f.write_str(&text),
        }
    }
}

/// A duration as a log line says it: `30s`, `0.2s`.
pub(super) struct Secs(pub(super) Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{}s", self.0.as_secs())
        } else {
            write!(f, "{}s", self.0.as_secs_f64())
        }
    }
}
