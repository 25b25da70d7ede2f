//! The protocol's numbers (libmilter's `mfdef.h`): command and reply
//! codes, macro stages, action and protocol flags.

use std::ops::BitOr;

/// The stages of the macro lists a milter may ask for (`SMFIM_*`, in
/// [`Reply::OptNeg`]'s `macros`).
pub mod smfim {
    pub const CONNECT: u32 = 0;
    pub const HELO: u32 = 1;
    pub const ENVFROM: u32 = 2;
    pub const ENVRCPT: u32 = 3;
    pub const DATA: u32 = 4;
    pub const EOM: u32 = 5;
    pub const EOH: u32 = 6;
}

/// Command codes, MTA to milter (`SMFIC_*`).
pub mod smfic {
    pub const ABORT: u8 = b'A';
    pub const BODY: u8 = b'B';
    pub const CONNECT: u8 = b'C';
    pub const MACRO: u8 = b'D';
    pub const BODYEOB: u8 = b'E';
    pub const HELO: u8 = b'H';
    pub const QUIT_NC: u8 = b'K';
    pub const HEADER: u8 = b'L';
    pub const MAIL: u8 = b'M';
    pub const EOH: u8 = b'N';
    pub const OPTNEG: u8 = b'O';
    pub const QUIT: u8 = b'Q';
    pub const RCPT: u8 = b'R';
    pub const DATA: u8 = b'T';
    pub const UNKNOWN: u8 = b'U';
}

/// Reply codes, milter to MTA (`SMFIR_*`).
pub mod smfir {
    pub const ADDRCPT: u8 = b'+';
    pub const DELRCPT: u8 = b'-';
    pub const ADDRCPT_PAR: u8 = b'2';
    pub const SHUTDOWN: u8 = b'4';
    pub const ACCEPT: u8 = b'a';
    pub const REPLBODY: u8 = b'b';
    pub const CONTINUE: u8 = b'c';
    pub const DISCARD: u8 = b'd';
    pub const CHGFROM: u8 = b'e';
    pub const CONN_FAIL: u8 = b'f';
    pub const ADDHEADER: u8 = b'h';
    pub const INSHEADER: u8 = b'i';
    /// Not a packet of its own: the macro lists ride in the SMFIC_OPTNEG
    /// answer ([`super::Reply::OptNeg`]'s `macros`).
    pub const SETSYMLIST: u8 = b'l';
    pub const CHGHEADER: u8 = b'm';
    pub const PROGRESS: u8 = b'p';
    pub const QUARANTINE: u8 = b'q';
    pub const REJECT: u8 = b'r';
    pub const SKIP: u8 = b's';
    pub const TEMPFAIL: u8 = b't';
    pub const REPLYCODE: u8 = b'y';
    /// The answer to SMFIC_OPTNEG has the command's own code.
    pub const OPTNEG: u8 = b'O';
}

/// A command's name as libmilter and Postfix's logs write it
/// (`SMFIC_EOB` for the end of the body, as Postfix says).
pub fn command_name(code: u8) -> &'static str {
    match code {
        smfic::ABORT => "SMFIC_ABORT",
        smfic::BODY => "SMFIC_BODY",
        smfic::CONNECT => "SMFIC_CONNECT",
        smfic::MACRO => "SMFIC_MACRO",
        smfic::BODYEOB => "SMFIC_EOB",
        smfic::HELO => "SMFIC_HELO",
        smfic::QUIT_NC => "SMFIC_QUIT_NC",
        smfic::HEADER => "SMFIC_HEADER",
        smfic::MAIL => "SMFIC_MAIL",
        smfic::EOH => "SMFIC_EOH",
        smfic::OPTNEG => "SMFIC_OPTNEG",
        smfic::QUIT => "SMFIC_QUIT",
        smfic::RCPT => "SMFIC_RCPT",
        smfic::DATA => "SMFIC_DATA",
        smfic::UNKNOWN => "SMFIC_UNKNOWN",
        _ => "(unknown MTA command)",
    }
}

/// A reply's name (`SMFIR_ACCEPT`).
pub fn reply_name(code: u8) -> &'static str {
    match code {
        smfir::ADDRCPT => "SMFIR_ADDRCPT",
        smfir::DELRCPT => "SMFIR_DELRCPT",
        smfir::ADDRCPT_PAR => "SMFIR_ADDRCPT_PAR",
        smfir::SHUTDOWN => "SMFIR_SHUTDOWN",
        smfir::ACCEPT => "SMFIR_ACCEPT",
        smfir::REPLBODY => "SMFIR_REPLBODY",
        smfir::CONTINUE => "SMFIR_CONTINUE",
        smfir::DISCARD => "SMFIR_DISCARD",
        smfir::CHGFROM => "SMFIR_CHGFROM",
        smfir::CONN_FAIL => "SMFIR_CONN_FAIL",
        smfir::ADDHEADER => "SMFIR_ADDHEADER",
        smfir::INSHEADER => "SMFIR_INSHEADER",
        smfir::SETSYMLIST => "SMFIR_SETSYMLIST",
        smfir::CHGHEADER => "SMFIR_CHGHEADER",
        smfir::PROGRESS => "SMFIR_PROGRESS",
        smfir::QUARANTINE => "SMFIR_QUARANTINE",
        smfir::REJECT => "SMFIR_REJECT",
        smfir::SKIP => "SMFIR_SKIP",
        smfir::TEMPFAIL => "SMFIR_TEMPFAIL",
        smfir::REPLYCODE => "SMFIR_REPLYCODE",
        smfir::OPTNEG => "SMFIC_OPTNEG",
        _ => "(unknown filter reply)",
    }
}

/// The modifications a milter may make (`SMFIF_*`), offered by the MTA
/// and asked for by the milter in the negotiation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Actions(pub u32);

impl Actions {
    pub const ADD_HEADERS: Actions = Actions(1 << 0);
    pub const CHANGE_BODY: Actions = Actions(1 << 1);
    pub const ADD_RCPT: Actions = Actions(1 << 2);
    pub const DELETE_RCPT: Actions = Actions(1 << 3);
    pub const CHANGE_HEADERS: Actions = Actions(1 << 4);
    pub const QUARANTINE: Actions = Actions(1 << 5);
    pub const CHANGE_FROM: Actions = Actions(1 << 6);
    pub const ADD_RCPT_PAR: Actions = Actions(1 << 7);
    pub const SET_SYMLIST: Actions = Actions(1 << 8);

    /// Every action of version 6 (`SMFI_CURR_ACTS`).
    pub const ALL: Actions = Actions(0x1ff);

    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Actions {
    type Output = Actions;

    fn bitor(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }
}

/// Protocol flags (`SMFIP_*`): the stages a milter does not want
/// (`NO_*`), those it will not answer (`NR_*`), and the MTA's abilities
/// it takes up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtocolFlags(pub u32);

impl ProtocolFlags {
    pub const NO_CONNECT: ProtocolFlags = ProtocolFlags(1 << 0);
    pub const NO_HELO: ProtocolFlags = ProtocolFlags(1 << 1);
    pub const NO_MAIL: ProtocolFlags = ProtocolFlags(1 << 2);
    pub const NO_RCPT: ProtocolFlags = ProtocolFlags(1 << 3);
    pub const NO_BODY: ProtocolFlags = ProtocolFlags(1 << 4);
    pub const NO_HEADERS: ProtocolFlags = ProtocolFlags(1 << 5);
    pub const NO_EOH: ProtocolFlags = ProtocolFlags(1 << 6);
    /// No reply for each header (`SMFIP_NR_HDR`, once `SMFIP_NOHREPL`).
    pub const NR_HEADER: ProtocolFlags = ProtocolFlags(1 << 7);
    pub const NO_UNKNOWN: ProtocolFlags = ProtocolFlags(1 << 8);
    pub const NO_DATA: ProtocolFlags = ProtocolFlags(1 << 9);
    /// The MTA understands SMFIR_SKIP.
    pub const SKIP: ProtocolFlags = ProtocolFlags(1 << 10);
    /// The milter wants rejected recipients too.
    pub const RCPT_REJ: ProtocolFlags = ProtocolFlags(1 << 11);
    pub const NR_CONNECT: ProtocolFlags = ProtocolFlags(1 << 12);
    pub const NR_HELO: ProtocolFlags = ProtocolFlags(1 << 13);
    pub const NR_MAIL: ProtocolFlags = ProtocolFlags(1 << 14);
    pub const NR_RCPT: ProtocolFlags = ProtocolFlags(1 << 15);
    pub const NR_DATA: ProtocolFlags = ProtocolFlags(1 << 16);
    pub const NR_UNKNOWN: ProtocolFlags = ProtocolFlags(1 << 17);
    pub const NR_EOH: ProtocolFlags = ProtocolFlags(1 << 18);
    pub const NR_BODY: ProtocolFlags = ProtocolFlags(1 << 19);
    /// Header values keep the space after the colon.
    pub const HDR_LEADSPC: ProtocolFlags = ProtocolFlags(1 << 20);

    /// Every flag of version 6 (`SMFI_CURR_PROT`).
    pub const ALL: ProtocolFlags = ProtocolFlags(0x001f_ffff);

    pub fn contains(self, other: ProtocolFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for ProtocolFlags {
    type Output = ProtocolFlags;

    fn bitor(self, other: ProtocolFlags) -> ProtocolFlags {
        ProtocolFlags(self.0 | other.0)
    }
}
