//! The milter packets (sans-IO): Sendmail's libmilter protocol, version 6
//! (`include/libmilter/mfdef.h`), as Postfix's `milter8.c` speaks it.
//!
//! Every packet is a 4-byte big-endian length, then that many bytes: a
//! command byte and its data. Strings are NUL-terminated. The MTA sends
//! [`Command`]s (SMFIC_*), the milter answers with [`Reply`]s (SMFIR_*).
//! [`Command::encode`] and [`Reply::encode`] write packets;
//! [`Decoder`] takes bytes as they come and gives whole packets back,
//! replies for the MTA ([`Decoder::pop`]), commands for a milter
//! ([`Decoder::pop_command`], the tests' fake milters). Nothing here does
//! I/O or keeps protocol state: that is [`super::client`].
//!
//! # The size limit
//!
//! libmilter reads at most 64 KiB of data a packet (`MILTER_MAX_DATA_SIZE`,
//! 1 MiB when negotiated) and sends body replacements in 64 KiB chunks;
//! but rspamd sends a replaced body in one SMFIR_REPLBODY packet, which is
//! why Postfix's `milter8.c` went from twice the chunk size to `INT_MAX /
//! 2`. The [`Decoder`] takes its limit from the caller: [`MAX_PACKET`]
//! (libmilter's largest, 1 MiB) for every stage, more at the end of a
//! message (the client allows twice the message's size on top). A
//! length over the limit is refused as soon as its 4 bytes are there,
//! before anything is buffered: a service that is not a milter (an SMTP
//! greeting reads as a length of 842 MB) fails at once.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

mod codes;
mod decoder;

pub use codes::{Actions, ProtocolFlags, command_name, reply_name, smfic, smfim, smfir};
pub use decoder::Decoder;

/// The protocol version postern speaks (libmilter's `SMFI_PROT_VERSION`).
pub const VERSION: u32 = 6;

/// The most body bytes in one SMFIC_BODY packet (`MILTER_CHUNK_SIZE`).
pub const CHUNK_SIZE: usize = 65535;

/// The default limit on a packet's length (its command byte and data):
/// libmilter's largest negotiable data size, `MILTER_MDS_1M`, and its
/// command byte.
pub const MAX_PACKET: usize = 1024 * 1024;

/// The SMTP client's address in SMFIC_CONNECT: a family byte (`SMFIA_*`)
/// and, but for `Unknown`, a port and the address as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectAddress {
    /// `'4'`.
    Inet(Ipv4Addr, u16),
    /// `'6'`: the address without brackets or `IPv6:` (as Postfix).
    Inet6(Ipv6Addr, u16),
    /// `'L'`: a local socket's path; the port is 0.
    Unix(Vec<u8>),
    /// `'U'`: nothing follows.
    Unknown,
}

/// A command, MTA to milter. Texts are bytes (a header may hold 8-bit
/// data); none may hold a NUL, which would end it early on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// SMFIC_OPTNEG: what the MTA offers.
    OptNeg {
        version: u32,
        actions: Actions,
        protocol: ProtocolFlags,
    },
    /// SMFIC_MACRO: the macros for the stage whose command code is
    /// `stage`, name and value pairs (`j`, `{client_addr}`).
    Macro {
        stage: u8,
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Connect {
        hostname: Vec<u8>,
        address: ConnectAddress,
    },
    Helo(Vec<u8>),
    /// SMFIC_MAIL: `<sender>`, then each ESMTP parameter.
    Mail(Vec<Vec<u8>>),
    /// SMFIC_RCPT: `<recipient>`, then each ESMTP parameter.
    Rcpt(Vec<Vec<u8>>),
    Data,
    Header {
        name: Vec<u8>,
        value: Vec<u8>,
    },
    EndOfHeaders,
    /// SMFIC_BODY: at most [`CHUNK_SIZE`] bytes, CRLF line ends.
    Body(Vec<u8>),
    EndOfBody,
    Abort,
    Quit,
    /// SMFIC_QUIT_NC: quit, a new connection follows on this socket.
    QuitNewConnection,
    Unknown(Vec<u8>),
}

/// A reply, milter to MTA. Texts are bytes as the milter sent them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The answer to SMFIC_OPTNEG, with the macro lists the milter wants
    /// (SMFIR_SETSYMLIST: a stage, `SMFIM_*`, and names separated by
    /// spaces), if any.
    OptNeg {
        version: u32,
        actions: Actions,
        protocol: ProtocolFlags,
        macros: Vec<(u32, Vec<u8>)>,
    },
    Accept,
    Continue,
    Discard,
    Reject,
    TempFail,
    Progress,
    Skip,
    Shutdown,
    ConnFail,
    /// SMFIR_REPLYCODE: `550 5.7.1 text`, lines joined by CRLF.
    ReplyCode(Vec<u8>),
    AddHeader {
        name: Vec<u8>,
        value: Vec<u8>,
    },
    InsertHeader {
        index: u32,
        name: Vec<u8>,
        value: Vec<u8>,
    },
    ChangeHeader {
        index: u32,
        name: Vec<u8>,
        value: Vec<u8>,
    },
    /// One chunk of the new body.
    ReplaceBody(Vec<u8>),
    AddRcpt(Vec<u8>),
    AddRcptPar {
        rcpt: Vec<u8>,
        args: Option<Vec<u8>>,
    },
    DelRcpt(Vec<u8>),
    ChangeFrom {
        sender: Vec<u8>,
        args: Option<Vec<u8>>,
    },
    Quarantine(Vec<u8>),
}

/// What is wrong with the bytes a peer sent. After one, the stream is
/// out of step: the [`Decoder`] gives the same error again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unreasonable packet length: {length} > {limit}")]
    Oversized { length: u32, limit: usize },
    #[error("bad packet length: 0 (no command code)")]
    Empty,
    #[error("unknown reply code {}", ShowCode(*.0))]
    UnknownReply(u8),
    #[error("unknown command code {}", ShowCode(*.0))]
    UnknownCommand(u8),
    /// A known packet whose data does not fit it.
    #[error("malformed {name}: {problem}")]
    Malformed {
        name: &'static str,
        problem: Problem,
    },
}

/// How a packet's data is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{0} data bytes where none belong")]
    Unexpected(usize),
    #[error("{0} data bytes left over")]
    LeftOver(usize),
    #[error("packet too short for {0}")]
    Short(&'static str),
    #[error("missing NUL after {0}")]
    Unterminated(&'static str),
    #[error("NUL inside {0}")]
    InnerNul(&'static str),
    #[error("bad address family {}", ShowCode(*.0))]
    Family(u8),
    #[error("bad {0} address")]
    BadAddress(&'static str),
}

/// A code byte for an error text: `'a'` when printable, `0x07` else.
struct ShowCode(u8);

impl fmt::Display for ShowCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", self.0 as char)
        } else {
            write!(f, "0x{:02x}", self.0)
        }
    }
}

/// Start a packet with `code`: its length is filled in by [`finish`].
fn start(out: &mut Vec<u8>, code: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, code]);
    at
}

fn finish(out: &mut [u8], at: usize) {
    // Packets are built from our own data, far below 4 GiB.
    let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(text);
    out.push(0);
}

impl Command {
    /// The command code.
    pub fn code(&self) -> u8 {
        match self {
            Command::OptNeg { .. } => smfic::OPTNEG,
            Command::Macro { .. } => smfic::MACRO,
            Command::Connect { .. } => smfic::CONNECT,
            Command::Helo(_) => smfic::HELO,
            Command::Mail(_) => smfic::MAIL,
            Command::Rcpt(_) => smfic::RCPT,
            Command::Data => smfic::DATA,
            Command::Header { .. } => smfic::HEADER,
            Command::EndOfHeaders => smfic::EOH,
            Command::Body(_) => smfic::BODY,
            Command::EndOfBody => smfic::BODYEOB,
            Command::Abort => smfic::ABORT,
            Command::Quit => smfic::QUIT,
            Command::QuitNewConnection => smfic::QUIT_NC,
            Command::Unknown(_) => smfic::UNKNOWN,
        }
    }

    /// Append the packet to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let at = start(out, self.code());
        match self {
            Command::OptNeg {
                version,
                actions,
                protocol,
            } => {
                for n in [*version, actions.0, protocol.0] {
                    out.extend_from_slice(&n.to_be_bytes());
                }
            }
            Command::Macro { stage, pairs } => {
                out.push(*stage);
                for (name, value) in pairs {
                    put_str(out, name);
                    put_str(out, value);
                }
            }
            Command::Connect { hostname, address } => {
                put_str(out, hostname);
                let (family, port, text) = match address {
                    ConnectAddress::Inet(ip, port) => (b'4', *port, ip.to_string().into_bytes()),
                    ConnectAddress::Inet6(ip, port) => (b'6', *port, ip.to_string().into_bytes()),
                    ConnectAddress::Unix(path) => (b'L', 0, path.clone()),
                    ConnectAddress::Unknown => (b'U', 0, Vec::new()),
                };
                out.push(family);
                if family != b'U' {
                    out.extend_from_slice(&port.to_be_bytes());
                    put_str(out, &text);
                }
            }
            Command::Helo(text) | Command::Unknown(text) => put_str(out, text),
            Command::Mail(args) | Command::Rcpt(args) => {
                for arg in args {
                    put_str(out, arg);
                }
            }
            Command::Header { name, value } => {
                put_str(out, name);
                put_str(out, value);
            }
            Command::Body(chunk) => out.extend_from_slice(chunk),
            Command::Data
            | Command::EndOfHeaders
            | Command::EndOfBody
            | Command::Abort
            | Command::Quit
            | Command::QuitNewConnection => {}
        }
        finish(out, at);
    }

    /// The command in one packet's code and data.
    pub fn parse(code: u8, data: &[u8]) -> Result<Command, DecodeError> {
        let mut r = Reader::new(command_name(code), data);
        let command = match code {
            smfic::OPTNEG => {
                let version = r.u32("the version")?;
                let actions = Actions(r.u32("the actions")?);
                let protocol = ProtocolFlags(r.u32("the protocol flags")?);
                Command::OptNeg {
                    version,
                    actions,
                    protocol,
                }
            }
            smfic::MACRO => {
                let stage = r.byte("the stage")?;
                let mut pairs = Vec::new();
                while !r.is_empty() {
                    let name = r.string("a macro name")?;
                    let value = r.string("a macro value")?;
                    pairs.push((name, value));
                }
                Command::Macro { stage, pairs }
            }
            smfic::CONNECT => {
                let hostname = r.string("the host name")?;
                let family = r.byte("the address family")?;
                let address = if family == b'U' {
                    ConnectAddress::Unknown
                } else {
                    let port = r.u16("the port")?;
                    let text = r.string("the address")?;
                    let bad = |what| r.malformed(Problem::BadAddress(what));
                    let text_str = std::str::from_utf8(&text).ok();
                    match family {
                        b'4' => ConnectAddress::Inet(
                            text_str
                                .and_then(|t| t.parse().ok())
                                .ok_or_else(|| bad("IPv4"))?,
                            port,
                        ),
                        b'6' => ConnectAddress::Inet6(
                            text_str
                                .and_then(|t| t.parse().ok())
                                .ok_or_else(|| bad("IPv6"))?,
                            port,
                        ),
                        b'L' => ConnectAddress::Unix(text),
                        other => return Err(r.malformed(Problem::Family(other))),
                    }
                };
                Command::Connect { hostname, address }
            }
            smfic::HELO => Command::Helo(r.string("the HELO name")?),
            smfic::UNKNOWN => Command::Unknown(r.string("the command")?),
            smfic::MAIL | smfic::RCPT => {
                let mut args = vec![r.string("the address")?];
                while !r.is_empty() {
                    args.push(r.string("an ESMTP parameter")?);
                }
                if code == smfic::MAIL {
                    Command::Mail(args)
                } else {
                    Command::Rcpt(args)
                }
            }
            smfic::HEADER => Command::Header {
                name: r.string("the header name")?,
                value: r.string("the header value")?,
            },
            smfic::BODY => Command::Body(r.rest().to_vec()),
            smfic::DATA => Command::Data,
            smfic::EOH => Command::EndOfHeaders,
            smfic::BODYEOB => Command::EndOfBody,
            smfic::ABORT => Command::Abort,
            smfic::QUIT => Command::Quit,
            smfic::QUIT_NC => Command::QuitNewConnection,
            other => return Err(DecodeError::UnknownCommand(other)),
        };
        r.end()?;
        Ok(command)
    }
}

impl Reply {
    /// The reply code.
    pub fn code(&self) -> u8 {
        match self {
            Reply::OptNeg { .. } => smfir::OPTNEG,
            Reply::Accept => smfir::ACCEPT,
            Reply::Continue => smfir::CONTINUE,
            Reply::Discard => smfir::DISCARD,
            Reply::Reject => smfir::REJECT,
            Reply::TempFail => smfir::TEMPFAIL,
            Reply::Progress => smfir::PROGRESS,
            Reply::Skip => smfir::SKIP,
            Reply::Shutdown => smfir::SHUTDOWN,
            Reply::ConnFail => smfir::CONN_FAIL,
            Reply::ReplyCode(_) => smfir::REPLYCODE,
            Reply::AddHeader { .. } => smfir::ADDHEADER,
            Reply::InsertHeader { .. } => smfir::INSHEADER,
            Reply::ChangeHeader { .. } => smfir::CHGHEADER,
            Reply::ReplaceBody(_) => smfir::REPLBODY,
            Reply::AddRcpt(_) => smfir::ADDRCPT,
            Reply::AddRcptPar { .. } => smfir::ADDRCPT_PAR,
            Reply::DelRcpt(_) => smfir::DELRCPT,
            Reply::ChangeFrom { .. } => smfir::CHGFROM,
            Reply::Quarantine(_) => smfir::QUARANTINE,
        }
    }

    /// The reply's name, for a log line.
    pub fn name(&self) -> &'static str {
        reply_name(self.code())
    }

    /// Append the packet to `out` (as libmilter writes it: the reply code
    /// and quarantine reason NUL-terminated).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let at = start(out, self.code());
        match self {
            Reply::OptNeg {
                version,
                actions,
                protocol,
                macros,
            } => {
                for n in [*version, actions.0, protocol.0] {
                    out.extend_from_slice(&n.to_be_bytes());
                }
                for (stage, names) in macros {
                    out.extend_from_slice(&stage.to_be_bytes());
                    put_str(out, names);
                }
            }
            Reply::ReplyCode(text)
            | Reply::Quarantine(text)
            | Reply::AddRcpt(text)
            | Reply::DelRcpt(text) => put_str(out, text),
            Reply::AddHeader { name, value } => {
                put_str(out, name);
                put_str(out, value);
            }
            Reply::InsertHeader { index, name, value }
            | Reply::ChangeHeader { index, name, value } => {
                out.extend_from_slice(&index.to_be_bytes());
                put_str(out, name);
                put_str(out, value);
            }
            Reply::ReplaceBody(chunk) => out.extend_from_slice(chunk),
            Reply::AddRcptPar { rcpt: first, args }
            | Reply::ChangeFrom {
                sender: first,
                args,
            } => {
                put_str(out, first);
                if let Some(args) = args {
                    put_str(out, args);
                }
            }
            Reply::Accept
            | Reply::Continue
            | Reply::Discard
            | Reply::Reject
            | Reply::TempFail
            | Reply::Progress
            | Reply::Skip
            | Reply::Shutdown
            | Reply::ConnFail => {}
        }
        finish(out, at);
    }

    /// The reply in one packet's code and data.
    pub fn parse(code: u8, data: &[u8]) -> Result<Reply, DecodeError> {
        let mut r = Reader::new(reply_name(code), data);
        let reply = match code {
            smfir::OPTNEG => {
                let version = r.u32("the version")?;
                let actions = Actions(r.u32("the actions")?);
                let protocol = ProtocolFlags(r.u32("the protocol flags")?);
                let mut macros = Vec::new();
                while !r.is_empty() {
                    let stage = r.u32("a macro stage")?;
                    macros.push((stage, r.string("a macro list")?));
                }
                Reply::OptNeg {
                    version,
                    actions,
                    protocol,
                    macros,
                }
            }
            smfir::ACCEPT => Reply::Accept,
            smfir::CONTINUE => Reply::Continue,
            smfir::DISCARD => Reply::Discard,
            smfir::REJECT => Reply::Reject,
            smfir::TEMPFAIL => Reply::TempFail,
            smfir::PROGRESS => Reply::Progress,
            smfir::SKIP => Reply::Skip,
            smfir::SHUTDOWN => Reply::Shutdown,
            smfir::CONN_FAIL => Reply::ConnFail,
            // Postfix reads these two as a buffer: the NUL libmilter and
            // rspamd put at the end is not required.
            smfir::REPLYCODE => Reply::ReplyCode(r.text("the reply")?),
            smfir::QUARANTINE => Reply::Quarantine(r.text("the reason")?),
            smfir::ADDHEADER => Reply::AddHeader {
                name: r.string("the header name")?,
                value: r.string("the header value")?,
            },
            smfir::INSHEADER | smfir::CHGHEADER => {
                let index = r.u32("the index")?;
                let name = r.string("the header name")?;
                let value = r.string("the header value")?;
                if code == smfir::INSHEADER {
                    Reply::InsertHeader { index, name, value }
                } else {
                    Reply::ChangeHeader { index, name, value }
                }
            }
            smfir::REPLBODY => Reply::ReplaceBody(r.rest().to_vec()),
            smfir::ADDRCPT => Reply::AddRcpt(r.string("the recipient")?),
            smfir::DELRCPT => Reply::DelRcpt(r.string("the recipient")?),
            smfir::ADDRCPT_PAR | smfir::CHGFROM => {
                let first = r.string("the address")?;
                let args = if r.is_empty() {
                    None
                } else {
                    Some(r.string("the ESMTP parameters")?)
                };
                if code == smfir::CHGFROM {
                    Reply::ChangeFrom {
                        sender: first,
                        args,
                    }
                } else {
                    Reply::AddRcptPar { rcpt: first, args }
                }
            }
            other => return Err(DecodeError::UnknownReply(other)),
        };
        r.end()?;
        Ok(reply)
    }
}

/// A packet's data, read field by field.
struct Reader<'a> {
    name: &'static str,
    data: &'a [u8],
    /// The data's whole length, to tell data where none belongs from
    /// data left over.
    total: usize,
}

impl<'a> Reader<'a> {
    fn new(name: &'static str, data: &'a [u8]) -> Reader<'a> {
        Reader {
            name,
            data,
            total: data.len(),
        }
    }

    fn malformed(&self, problem: Problem) -> DecodeError {
        DecodeError::Malformed {
            name: self.name,
            problem,
        }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.data.len() < n {
            return Err(self.malformed(Problem::Short(what)));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-terminated string.
    fn string(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let Some(nul) = self.data.iter().position(|&b| b == 0) else {
            return Err(self.malformed(Problem::Unterminated(what)));
        };
        let text = self.data[..nul].to_vec();
        self.data = &self.data[nul + 1..];
        Ok(text)
    }

    /// The rest as one string, its final NUL optional, none inside.
    fn text(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let rest = self.rest();
        let text = rest.strip_suffix(&[0]).unwrap_or(rest);
        if text.contains(&0) {
            return Err(self.malformed(Problem::InnerNul(what)));
        }
        Ok(text.to_vec())
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Nothing may be left: no data for a reply that has none, nothing
    /// after the last field.
    fn end(&self) -> Result<(), DecodeError> {
        match self.data.len() {
            0 => Ok(()),
            n if n == self.total => Err(self.malformed(Problem::Unexpected(n))),
            n => Err(self.malformed(Problem::LeftOver(n))),
        }
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
