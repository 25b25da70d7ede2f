//! MAIL FROM and RCPT TO parameters (RFC 1869 syntax): SIZE (RFC 1870),
//! BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET / ENVID / NOTIFY / ORCPT
//! (RFC 3461, RFC 6533 for `utf-8` ORCPT; the xtext itself is
//! [`crate::wire::xtext`]).

use super::{CommandError, Word};
use crate::queue::{Body, Ret};
use crate::wire::xtext;

/// MAIL FROM parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// RFC 1870 SIZE, as declared.
    pub size: Option<u64>,
    /// RFC 6152 BODY=7BIT / BODY=8BITMIME.
    pub body: Option<Body>,
    /// RFC 6531 SMTPUTF8 (accepted only when the server offers it).
    pub smtputf8: bool,
    /// RFC 3461 RET=FULL / RET=HDRS.
    pub ret: Option<Ret>,
    /// RFC 3461 ENVID, xtext-decoded (printable ASCII).
    pub envid: Option<String>,
}

/// RCPT TO parameters (RFC 3461).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NEVER`, or a comma list of `SUCCESS`, `FAILURE`, `DELAY` in that
    /// order, upper-case, each once.
    pub notify: Option<String>,
    /// `addr-type;address` with the address xtext-decoded (for the
    /// `utf-8` type, RFC 6533 `\x{...}` escapes decoded too).
    pub orcpt: Option<String>,
}

/// The words after `MAIL FROM:<address>`. `utf8_ok`: SMTPUTF8 is offered.
pub(super) fn parse_mail_params(
    words: &[Word<'_>],
    utf8_ok: bool,
) -> Result<MailParams, CommandError> {
    let mut p = MailParams::default();
    for word in words {
        let w = word.text;
        if w.eq_ignore_ascii_case("BODY=8BITMIME") {
            p.body = Some(Body::EightBitMime);
        } else if w.eq_ignore_ascii_case("BODY=7BIT") {
            p.body = Some(Body::SevenBit);
        } else if let Some(v) = strip_keyword(w, "SIZE=") {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CommandError::BadSize);
            }
            p.size = Some(v.parse().map_err(|_| CommandError::SizeOverflow)?);
        } else if utf8_ok && w.eq_ignore_ascii_case("SMTPUTF8") {
            p.smtputf8 = true;
        } else if let Some(v) = strip_keyword(w, "RET=") {
            let ret = if v.eq_ignore_ascii_case("FULL") {
                Ret::Full
            } else if v.eq_ignore_ascii_case("HDRS") {
                Ret::Hdrs
            } else {
                return Err(CommandError::BadRet);
            };
            if p.ret.replace(ret).is_some() {
                return Err(CommandError::BadRet);
            }
        } else if let Some(v) = strip_keyword(w, "ENVID=") {
            let envid = xtext::decode(v)
                .filter(|e| !e.is_empty() && e.bytes().all(|b| (b' '..=b'~').contains(&b)))
                .ok_or(CommandError::BadEnvid)?;
            if p.envid.replace(envid).is_some() {
                return Err(CommandError::BadEnvid);
            }
        } else if strip_keyword(w, "AUTH=").is_some_and(|v| xtext::decode(v).is_some()) {
            // RFC 4954 section 5: the identity a relaying client vouches
            // for. Accepted and not trusted (Postfix ignores it too
            // unless the client is authorized).
        } else {
            return Err(unsupported("mail", w));
        }
    }
    Ok(p)
}

/// The words after `RCPT TO:<address>`.
pub(super) fn parse_rcpt_params(words: &[Word<'_>]) -> Result<RcptParams, CommandError> {
    let mut p = RcptParams::default();
    for word in words {
        let w = word.text;
        if let Some(v) = strip_keyword(w, "NOTIFY=") {
            let notify = parse_notify(v).ok_or(CommandError::BadNotify)?;
            if p.notify.replace(notify).is_some() {
                return Err(CommandError::BadNotify);
            }
        } else if let Some(v) = strip_keyword(w, "ORCPT=") {
            let orcpt = parse_orcpt(v).ok_or(CommandError::BadOrcpt)?;
            if p.orcpt.replace(orcpt).is_some() {
                return Err(CommandError::BadOrcpt);
            }
        } else {
            return Err(unsupported("rcpt", w));
        }
    }
    Ok(p)
}

fn unsupported(verb: &'static str, option: &str) -> CommandError {
    CommandError::UnsupportedOption {
        verb,
        option: option.to_string(),
    }
}

/// `word` without its case-insensitive `keyword` prefix (`SIZE=`).
fn strip_keyword<'a>(word: &'a str, keyword: &str) -> Option<&'a str> {
    let head = word.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| &word[keyword.len()..])
}

/// RFC 3461 NOTIFY: `NEVER` alone, or SUCCESS / FAILURE / DELAY.
fn parse_notify(v: &str) -> Option<String> {
    const KINDS: [&str; 3] = ["SUCCESS", "FAILURE", "DELAY"];
    if v.eq_ignore_ascii_case("NEVER") {
        return Some("NEVER".to_string());
    }
    let mut seen = [false; 3];
    for item in v.split(',') {
        let k = KINDS.iter().position(|k| item.eq_ignore_ascii_case(k))?;
        seen[k] = true;
    }
    let kinds: Vec<&str> = KINDS
        .iter()
        .zip(seen)
        .filter_map(|(k, s)| s.then_some(*k))
        .collect();
    Some(kinds.join(","))
}

/// RFC 3461 ORCPT `addr-type;xtext` (RFC 6533 for `utf-8`). Returns
/// `type;decoded-address`.
fn parse_orcpt(v: &str) -> Option<String> {
    let (kind, coded) = v.split_once(';')?;
    let atom = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    if kind.is_empty() || !kind.bytes().all(atom) {
        return None;
    }
    let utf8 = kind.eq_ignore_ascii_case("utf-8");
    let decoded = if utf8 {
        xtext::utf8_decode(coded)?
    } else {
        xtext::decode(coded)?
    };
    let ok = !decoded.is_empty()
        && decoded.chars().all(|c| {
            (c.is_ascii_graphic() || c == ' ') || (utf8 && !c.is_ascii() && !c.is_control())
        });
    ok.then(|| format!("{kind};{decoded}"))
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;
    use crate::address::AddressError;

    use super::super::tests::{err, ok, reply};

    #[test]
    fn mail_params() {
        let Command::Mail { params, .. } =
            ok("MAIL FROM:<a@b> size=12345 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B+3Dx")
        else {
            panic!()
        };
        assert_eq!(
            params,
            MailParams {
                size: Some(12345),
                body: Some(Body::EightBitMime),
                smtputf8: true,
                ret: Some(Ret::Hdrs),
                envid: Some("QQ+=x".into()),
            }
        );
        let Command::Mail { params, .. } = ok("MAIL FROM:<a@b> BODY=7BIT RET=FULL") else {
            panic!()
        };
        assert_eq!(
            (params.body, params.ret),
            (Some(Body::SevenBit), Some(Ret::Full))
        );
    }

    #[test]
    fn mail_param_errors() {
        for (line, want) in [
            ("MAIL FROM:<a@b> SIZE=", "501 5.5.4 Bad message size syntax"),
            (
                "MAIL FROM:<a@b> SIZE=12k",
                "501 5.5.4 Bad message size syntax",
            ),
            (
                "MAIL FROM:<a@b> SIZE=-1",
                "501 5.5.4 Bad message size syntax",
            ),
            (
                "MAIL FROM:<a@b> SIZE=99999999999999999999999",
                "552 5.3.4 Message size exceeds file system imposed limit",
            ),
            (
                "MAIL FROM:<a@b> BODY=BINARYMIME",
                "555 5.5.4 Unsupported option: BODY=BINARYMIME",
            ),
            (
                "MAIL FROM:<a@b> XVERP",
                "555 5.5.4 Unsupported option: XVERP",
            ),
            (
                "MAIL FROM:<a@b> <c@d>",
                "555 5.5.4 Unsupported option: <c@d>",
            ),
            (
                "MAIL FROM:<a@b> SMTPUTF8=yes",
                "555 5.5.4 Unsupported option: SMTPUTF8=yes",
            ),
            (
                "MAIL FROM:<a@b> RET=ALL",
                "501 5.5.4 Bad RET parameter syntax",
            ),
            (
                "MAIL FROM:<a@b> RET=FULL RET=FULL",
                "501 5.5.4 Bad RET parameter syntax",
            ),
            (
                "MAIL FROM:<a@b> ENVID=",
                "501 5.5.4 Bad ENVID parameter syntax",
            ),
            (
                "MAIL FROM:<a@b> ENVID=a+0Ab",
                "501 5.5.4 Bad ENVID parameter syntax",
            ),
            (
                "MAIL FROM:<a@b> ENVID=a+G0",
                "501 5.5.4 Bad ENVID parameter syntax",
            ),
            (
                "MAIL FROM:<a@b> ENVID=a ENVID=b",
                "501 5.5.4 Bad ENVID parameter syntax",
            ),
            (
                "MAIL FROM:<a@b> X=\u{1}",
                "555 5.5.4 Unsupported option: X=?",
            ),
        ] {
            assert_eq!(reply(line), want, "{line}");
            assert_eq!(err(line).verb_name(), "mail");
        }
    }

    #[test]
    fn smtputf8_needs_the_server_to_offer_it() {
        let line = "MAIL FROM:<ü@example.com> SMTPUTF8";
        assert!(matches!(
            ok(line),
            Command::Mail {
                params: MailParams { smtputf8: true, .. },
                ..
            }
        ));
        assert_eq!(
            parse_command(line.as_bytes(), false),
            Err(CommandError::BadSender(AddressError::NonAscii))
        );
        assert_eq!(
            parse_command(b"MAIL FROM:<a@b> SMTPUTF8", false),
            Err(unsupported("mail", "SMTPUTF8"))
        );
    }

    #[test]
    fn rcpt_params() {
        let Command::Rcpt { params, .. } =
            ok("RCPT TO:<u@b> NOTIFY=delay,Success,DELAY ORCPT=rfc822;u+2Bx@b")
        else {
            panic!()
        };
        assert_eq!(params.notify.as_deref(), Some("SUCCESS,DELAY"));
        assert_eq!(params.orcpt.as_deref(), Some("rfc822;u+x@b"));
        let Command::Rcpt { params, .. } =
            ok(r"RCPT TO:<u@b> NOTIFY=never ORCPT=utf-8;\x{FC}ser@b")
        else {
            panic!()
        };
        assert_eq!(params.notify.as_deref(), Some("NEVER"));
        assert_eq!(params.orcpt.as_deref(), Some("utf-8;üser@b"));
        for (line, want) in [
            (
                "RCPT TO:<u@b> NOTIFY=NEVER,SUCCESS",
                "501 5.5.4 Error: Bad NOTIFY parameter syntax",
            ),
            (
                "RCPT TO:<u@b> NOTIFY=",
                "501 5.5.4 Error: Bad NOTIFY parameter syntax",
            ),
            (
                "RCPT TO:<u@b> NOTIFY=SUCCESS,",
                "501 5.5.4 Error: Bad NOTIFY parameter syntax",
            ),
            (
                "RCPT TO:<u@b> NOTIFY=SOMETIMES",
                "501 5.5.4 Error: Bad NOTIFY parameter syntax",
            ),
            (
                "RCPT TO:<u@b> NOTIFY=DELAY NOTIFY=DELAY",
                "501 5.5.4 Error: Bad NOTIFY parameter syntax",
            ),
            (
                "RCPT TO:<u@b> ORCPT=u@b",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            (
                "RCPT TO:<u@b> ORCPT=;u@b",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            (
                "RCPT TO:<u@b> ORCPT=rfc822;",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            (
                "RCPT TO:<u@b> ORCPT=rfc822;a+0Db",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            (
                "RCPT TO:<u@b> ORCPT=utf-8;\\x{+FC}",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            (
                "RCPT TO:<u@b> ORCPT=utf-8;\\x{110000}",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            (
                "RCPT TO:<u@b> ORCPT=rfc822;a ORCPT=rfc822;a",
                "501 5.5.4 Error: Bad ORCPT parameter syntax",
            ),
            (
                "RCPT TO:<u@b> SIZE=1",
                "555 5.5.4 Unsupported option: SIZE=1",
            ),
        ] {
            assert_eq!(reply(line), want, "{line}");
            assert_eq!(err(line).verb_name(), "rcpt");
        }
    }
}
