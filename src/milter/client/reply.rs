//! What a milter's replies mean to postern: modifications checked against
//! the negotiation, reply codes checked as Postfix checks them.

use super::{Negotiated, Violation};
use crate::milter::Modification;
use crate::milter::protocol::{Actions, Reply, smfic};
use crate::wire::printable::printable_bytes;

/// A modification reply, checked against the negotiated actions.
pub(super) fn modification(
    negotiated: &Negotiated,
    reply: Reply,
) -> Result<Modification, Violation> {
    let code = reply.code();
    let unexpected = Violation::Unexpected {
        reply: code,
        command: smfic::BODYEOB,
    };
    let Some((action, name)) = action_of(&reply) else {
        return Err(unexpected);
    };
    if !negotiated.actions.contains(action) {
        return Err(Violation::NotNegotiated {
            reply: code,
            action: name,
        });
    }
    let header = Header {
        code,
        leading_space: negotiated.leading_space(),
    };
    Ok(match reply {
        Reply::AddHeader { name, value } => Modification::AddHeader {
            name: header.name(&name)?,
            value: header.value(&value),
        },
        Reply::InsertHeader { index, name, value } => Modification::InsertHeader {
            index,
            name: header.name(&name)?,
            value: header.value(&value),
        },
        Reply::ChangeHeader { index, name, value } => Modification::ChangeHeader {
            // Sendmail takes 0 for the first, as Postfix does.
            index: index.max(1),
            name: header.name(&name)?,
            value: header.value(&value),
        },
        Reply::ReplaceBody(chunk) => Modification::ReplaceBody(chunk),
        Reply::AddRcpt(rcpt) => Modification::AddRcpt {
            rcpt: text(&rcpt),
            args: None,
        },
        Reply::AddRcptPar { rcpt, args } => Modification::AddRcpt {
            rcpt: text(&rcpt),
            args: esmtp_args(args),
        },
        Reply::DelRcpt(rcpt) => Modification::DelRcpt(text(&rcpt)),
        Reply::ChangeFrom { sender, args } => Modification::ChangeFrom {
            sender: text(&sender),
            args: esmtp_args(args),
        },
        Reply::Quarantine(reason) => Modification::Quarantine(text(&reason)),
        _ => return Err(unexpected),
    })
}

/// The action a modification reply needs negotiated, with its libmilter
/// name for the error; none for a reply that is no modification.
fn action_of(reply: &Reply) -> Option<(Actions, &'static str)> {
    Some(match reply {
        Reply::AddHeader { .. } | Reply::InsertHeader { .. } => {
            (Actions::ADD_HEADERS, "SMFIF_ADDHDRS")
        }
        Reply::ChangeHeader { .. } => (Actions::CHANGE_HEADERS, "SMFIF_CHGHDRS"),
        Reply::ReplaceBody(_) => (Actions::CHANGE_BODY, "SMFIF_CHGBODY"),
        Reply::AddRcpt(_) => (Actions::ADD_RCPT, "SMFIF_ADDRCPT"),
        Reply::AddRcptPar { .. } => (Actions::ADD_RCPT_PAR, "SMFIF_ADDRCPT_PAR"),
        Reply::DelRcpt(_) => (Actions::DELETE_RCPT, "SMFIF_DELRCPT"),
        Reply::ChangeFrom { .. } => (Actions::CHANGE_FROM, "SMFIF_CHGFROM"),
        Reply::Quarantine(_) => (Actions::QUARANTINE, "SMFIF_QUARANTINE"),
        _ => return None,
    })
}

/// A header modification's name and value, as postern stores them.
struct Header {
    /// The reply's code, for the error of an empty name.
    code: u8,
    /// The milter sends the value's leading space (SMFIP_HDR_LEADSPC).
    leading_space: bool,
}

impl Header {
    fn name(&self, name: &[u8]) -> Result<String, Violation> {
        if name.is_empty() {
            Err(Violation::HeaderName(self.code))
        } else {
            Ok(text(name))
        }
    }

    /// The value as it follows the colon: the space a milter without
    /// SMFIP_HDR_LEADSPC leaves out is put back (Postfix's
    /// MILTER8_HDR_SPACE); an empty value (a deletion) stays empty.
    fn value(&self, value: &[u8]) -> String {
        let value = text(value);
        if self.leading_space || value.is_empty() {
            value
        } else {
            format!(" {value}")
        }
    }
}

/// The ESMTP arguments of SMFIR_ADDRCPT_PAR and SMFIR_CHGFROM: none when
/// empty.
fn esmtp_args(args: Option<Vec<u8>>) -> Option<String> {
    args.filter(|a| !a.is_empty()).map(|a| text(&a))
}

/// Add a modification: body chunks join the body replaced so far
/// (libmilter's `smfi_replacebody` appends).
pub(super) fn add(list: &mut Vec<Modification>, m: Modification) {
    if let Modification::ReplaceBody(chunk) = &m {
        for old in list.iter_mut() {
            if let Modification::ReplaceBody(body) = old {
                body.extend_from_slice(chunk);
                return;
            }
        }
    }
    list.push(m);
}

/// A milter's text: UTF-8 as sent, anything else with U+FFFD.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An SMFIR_REPLYCODE text checked as Postfix checks it (each line: 4xx or
/// 5xx, then a space or `-`; an enhanced code of the same class), with
/// Sendmail's `%%` made `%` and a lone `%` dropped.
pub(super) fn reply_code(raw: &[u8]) -> Result<String, Violation> {
    let bad = || Violation::ReplyCode(printable_bytes(raw));
    let mut unescaped = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().copied();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            if let Some(next) = bytes.next() {
                unescaped.push(next);
            }
        } else {
            unescaped.push(b);
        }
    }
    let text = String::from_utf8_lossy(&unescaped).into_owned();
    if text.is_empty() {
        return Err(bad());
    }
    for line in text.split("\r\n") {
        let b = line.as_bytes();
        let ok = b.len() >= 4
            && matches!(b[0], b'4' | b'5')
            && b[1].is_ascii_digit()
            && b[2].is_ascii_digit()
            && matches!(b[3], b' ' | b'-')
            && b.get(4).is_none_or(|&c| !c.is_ascii_digit() || c == b[0]);
        if !ok {
            return Err(bad());
        }
    }
    Ok(text)
}
