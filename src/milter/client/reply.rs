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
    let need = |action: Actions, name: &'static str| {
        if negotiated.actions.contains(action) {
            Ok(())
        } else {
            Err(Violation::NotNegotiated {
                reply: code,
                action: name,
            })
        }
    };
    let named = |name: &[u8]| {
        if name.is_empty() {
            Err(Violation::HeaderName(code))
        } else {
            Ok(text(name))
        }
    };
    // Values as they follow the colon: the space a milter without
    // SMFIP_HDR_LEADSPC leaves out is put back (Postfix's
    // MILTER8_HDR_SPACE); an empty value (a deletion) stays empty.
    let leading_space = negotiated.leading_space();
    let value = |v: &[u8]| {
        let v = text(v);
        if leading_space || v.is_empty() {
            v
        } else {
            format!(" {v}")
        }
    };
    let args = |a: Option<Vec<u8>>| a.filter(|a| !a.is_empty()).map(|a| text(&a));
    Ok(match reply {
        Reply::AddHeader { name, value: v } => {
            need(Actions::ADD_HEADERS, "SMFIF_ADDHDRS")?;
            Modification::AddHeader {
                name: named(&name)?,
                value: value(&v),
            }
        }
        Reply::InsertHeader {
            index,
            name,
            value: v,
        } => {
            need(Actions::ADD_HEADERS, "SMFIF_ADDHDRS")?;
            Modification::InsertHeader {
                index,
                name: named(&name)?,
                value: value(&v),
            }
        }
        Reply::ChangeHeader {
            index,
            name,
            value: v,
        } => {
            need(Actions::CHANGE_HEADERS, "SMFIF_CHGHDRS")?;
            Modification::ChangeHeader {
                // Sendmail takes 0 for the first, as Postfix does.
                index: index.max(1),
                name: named(&name)?,
                value: value(&v),
            }
        }
        Reply::ReplaceBody(chunk) => {
            need(Actions::CHANGE_BODY, "SMFIF_CHGBODY")?;
            Modification::ReplaceBody(chunk)
        }
        Reply::AddRcpt(rcpt) => {
            need(Actions::ADD_RCPT, "SMFIF_ADDRCPT")?;
            Modification::AddRcpt {
                rcpt: text(&rcpt),
                args: None,
            }
        }
        Reply::AddRcptPar { rcpt, args: a } => {
            need(Actions::ADD_RCPT_PAR, "SMFIF_ADDRCPT_PAR")?;
            Modification::AddRcpt {
                rcpt: text(&rcpt),
                args: args(a),
            }
        }
        Reply::DelRcpt(rcpt) => {
            need(Actions::DELETE_RCPT, "SMFIF_DELRCPT")?;
            Modification::DelRcpt(text(&rcpt))
        }
        Reply::ChangeFrom { sender, args: a } => {
            need(Actions::CHANGE_FROM, "SMFIF_CHGFROM")?;
            Modification::ChangeFrom {
                sender: text(&sender),
                args: args(a),
            }
        }
        Reply::Quarantine(reason) => {
            need(Actions::QUARANTINE, "SMFIF_QUARANTINE")?;
            Modification::Quarantine(text(&reason))
        }
        other => {
            return Err(Violation::Unexpected {
                reply: other.code(),
                command: smfic::BODYEOB,
            });
        }
    })
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
