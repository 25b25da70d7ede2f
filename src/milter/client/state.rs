//! What a milter connection knows: the negotiation, where the milter is,
//! and each stage's event with the flags that skip it.

use crate::milter::Answer;
use crate::milter::protocol::{Actions, ProtocolFlags, smfic, smfim};

/// What the negotiation settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The milter's protocol version (2 to 6).
    pub version: u32,
    /// The modifications the milter may make.
    pub actions: Actions,
    /// The milter's protocol flags, within what postern offered.
    pub protocol: ProtocolFlags,
    /// The macro names the milter asked for (SMFIR_SETSYMLIST), by stage
    /// (`SMFIM_*`, 0 to 6); `None` where it did not say.
    pub macros: [Option<Vec<String>>; 7],
}

impl Negotiated {
    /// The milter wants rejected recipients too (`SMFIP_RCPT_REJ`): smtpd
    /// should call [`super::Client::rcpt`] for them as well, as Postfix does.
    pub fn wants_rejected_recipients(&self) -> bool {
        self.protocol.contains(ProtocolFlags::RCPT_REJ)
    }

    /// Header values go with the space after the colon
    /// (`SMFIP_HDR_LEADSPC`).
    pub fn leading_space(&self) -> bool {
        self.protocol.contains(ProtocolFlags::HDR_LEADSPC)
    }
}

/// Where the milter is; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Negotiated, CONNECT not yet sent.
    Ready,
    /// Connected: between transactions or in one.
    Envelope,
    /// Done with this message (accept or discard) until `abort`.
    AcceptedMessage,
    /// Done with the connection: accepted at CONNECT or HELO.
    AcceptedConnection,
    /// Done with the connection: this answer for every stage.
    Rejected(Answer),
    /// An error: the socket is closed.
    Failed,
}

/// Whether an answer is about the connection (CONNECT, HELO) or the
/// message (the rest).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    Connection,
    Message,
}

/// One stage's event: its command code, the flags that skip it or its
/// reply, its macro stage.
#[derive(Clone, Copy)]
pub(super) struct Event {
    pub(super) code: u8,
    pub(super) no_send: ProtocolFlags,
    pub(super) no_reply: ProtocolFlags,
    pub(super) macro_stage: Option<u32>,
}

pub(super) const CONNECT: Event = Event {
    code: smfic::CONNECT,
    no_send: ProtocolFlags::NO_CONNECT,
    no_reply: ProtocolFlags::NR_CONNECT,
    macro_stage: Some(smfim::CONNECT),
};
pub(super) const HELO: Event = Event {
    code: smfic::HELO,
    no_send: ProtocolFlags::NO_HELO,
    no_reply: ProtocolFlags::NR_HELO,
    macro_stage: Some(smfim::HELO),
};
pub(super) const MAIL: Event = Event {
    code: smfic::MAIL,
    no_send: ProtocolFlags::NO_MAIL,
    no_reply: ProtocolFlags::NR_MAIL,
    macro_stage: Some(smfim::ENVFROM),
};
pub(super) const RCPT: Event = Event {
    code: smfic::RCPT,
    no_send: ProtocolFlags::NO_RCPT,
    no_reply: ProtocolFlags::NR_RCPT,
    macro_stage: Some(smfim::ENVRCPT),
};
pub(super) const DATA: Event = Event {
    code: smfic::DATA,
    no_send: ProtocolFlags::NO_DATA,
    no_reply: ProtocolFlags::NR_DATA,
    macro_stage: Some(smfim::DATA),
};
pub(super) const UNKNOWN: Event = Event {
    code: smfic::UNKNOWN,
    no_send: ProtocolFlags::NO_UNKNOWN,
    no_reply: ProtocolFlags::NR_UNKNOWN,
    macro_stage: None,
};
pub(super) const HEADER: Event = Event {
    code: smfic::HEADER,
    no_send: ProtocolFlags::NO_HEADERS,
    no_reply: ProtocolFlags::NR_HEADER,
    macro_stage: Some(smfim::EOH),
};
pub(super) const EOH: Event = Event {
    code: smfic::EOH,
    no_send: ProtocolFlags::NO_EOH,
    no_reply: ProtocolFlags::NR_EOH,
    macro_stage: Some(smfim::EOH),
};
pub(super) const BODY: Event = Event {
    code: smfic::BODY,
    no_send: ProtocolFlags::NO_BODY,
    no_reply: ProtocolFlags::NR_BODY,
    macro_stage: Some(smfim::EOM),
};
pub(super) const EOB: Event = Event {
    code: smfic::BODYEOB,
    no_send: ProtocolFlags(0),
    no_reply: ProtocolFlags(0),
    macro_stage: Some(smfim::EOM),
};
