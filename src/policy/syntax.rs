//! The checks that need no lookup and the shape of the replies: host
//! name and address syntax (Postfix's `valid_hostname`, fully-qualified
//! names, HELO address literals), access replies with their optional DSN,
//! and Postfix's `smtpd_dsn_fix`.

use std::net::Ipv4Addr;

use crate::reply::Reply;

/// Who a reply speaks of: `<name>: Class rejected: …`.
#[derive(Clone, Debug)]
pub(super) struct Target {
    pub name: String,
    pub class: &'static str,
}

pub(super) const CLIENT: &str = "Client host";
pub(super) const HELO: &str = "Helo command";
pub(super) const SENDER: &str = "Sender address";
pub(super) const RECIPIENT: &str = "Recipient address";

/// `<name>: Class rejected: text` with the DSN adjusted to the class.
pub(super) fn rejected(code: u16, dsn: &str, t: &Target, text: &str) -> Reply {
    Reply::rejected(code, dsn_fix(code, dsn, t.class), &t.name, t.class, text)
}

/// An access table's REJECT/DEFER: an optional DSN at the front of the
/// text, `Access denied` without text.
pub(super) fn access_reply(
    code: u16,
    default_dsn: &str,
    text: Option<String>,
    t: &Target,
) -> Reply {
    access_reply_or(code, default_dsn, text, t, "Access denied")
}

pub(super) fn access_reply_or(
    code: u16,
    default_dsn: &str,
    text: Option<String>,
    t: &Target,
    fallback: &str,
) -> Reply {
    let text = text.unwrap_or_default();
    let (dsn, rest) = dsn_split(&text);
    let dsn = dsn.unwrap_or(default_dsn).to_string();
    let rest = Some(rest).filter(|r| !r.is_empty()).unwrap_or(fallback);
    Reply::rejected(code, dsn_fix(code, &dsn, t.class), &t.name, t.class, rest)
}

pub(super) fn access_reply_dsn(code: u16, dsn: String, text: Option<String>, t: &Target) -> Reply {
    let text = text.unwrap_or_else(|| "Access denied".to_string());
    Reply::rejected(code, dsn_fix(code, &dsn, t.class), &t.name, t.class, &text)
}

/// A DSN at the front of `text` (`5.7.0 go away`), and the rest.
pub(crate) fn dsn_split(text: &str) -> (Option<&str>, &str) {
    let text = text.trim();
    let (first, rest) = text.split_once([' ', '\t']).unwrap_or((text, ""));
    let parts: Vec<&str> = first.split('.').collect();
    let is_dsn = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if is_dsn {
        (Some(first), rest.trim())
    } else {
        (None, text)
    }
}

/// Postfix's `smtpd_dsn_fix`: the DSN's class follows the reply code, and
/// an address status names the right kind of address (or none).
pub(crate) fn dsn_fix(code: u16, dsn: &str, class: &str) -> String {
    let first = (code / 100).to_string();
    let mut parts = dsn.splitn(3, '.');
    let (_, subject, detail) = (
        parts.next().unwrap_or("5"),
        parts.next().unwrap_or("7"),
        parts.next().unwrap_or("1"),
    );
    if subject != "1" {
        return format!("{first}.{subject}.{detail}");
    }
    let detail: u32 = detail.parse().unwrap_or(0);
    let detail = match class {
        SENDER => match detail {
            1 | 3 | 4 | 6 | 7 => 7,
            2 | 8 => 8,
            _ => 0,
        },
        RECIPIENT => match detail {
            1..=6 => detail,
            7 => 3,
            8 => 2,
            _ => 0,
        },
        _ => return format!("{first}.0.0"),
    };
    format!("{first}.1.{detail}")
}

/// `reject_non_fqdn_sender` / `_recipient`.
pub(super) fn non_fqdn_address(addr: &str, class: &'static str) -> Option<Reply> {
    let domain = addr.rsplit_once('@').map_or("", |(_, d)| d);
    if domain.starts_with('[') {
        return None;
    }
    if is_fqdn(domain) {
        return None;
    }
    Some(Reply::rejected(
        504,
        "5.5.2".into(),
        addr,
        class,
        "need fully-qualified address",
    ))
}

/// `reject_non_fqdn_helo_hostname`.
pub(super) fn non_fqdn_helo(helo: &str) -> Option<Reply> {
    if helo.starts_with('[') || is_fqdn(helo) {
        return None;
    }
    Some(Reply::rejected(
        504,
        "5.5.2".into(),
        helo,
        HELO,
        "need fully-qualified hostname",
    ))
}

/// `reject_invalid_helo_hostname`.
pub(super) fn invalid_helo(helo: &str) -> Option<Reply> {
    let reject = |text: &str| Some(Reply::rejected(501, "5.5.2".into(), helo, HELO, text));
    if let Some(inner) = helo.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ok = match inner.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("ipv6:") => {
                inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => inner.parse::<Ipv4Addr>().is_ok(),
        };
        return if ok {
            None
        } else {
            reject("invalid ip address")
        };
    }
    let name = truncate_dot(helo);
    if valid_hostname(name) || name.parse::<std::net::IpAddr>().is_ok() {
        None
    } else {
        reject("Invalid name")
    }
}

/// A fully-qualified domain name: valid, with a dot.
fn is_fqdn(name: &str) -> bool {
    let name = truncate_dot(name);
    valid_hostname(name) && name.contains('.')
}

/// One final dot removed (not from `..`).
fn truncate_dot(name: &str) -> &str {
    match name.strip_suffix('.') {
        Some(n) if !n.ends_with('.') && !n.is_empty() => n,
        _ => name,
    }
}

/// Postfix's `valid_hostname`: labels of letters, digits, `-` and `_`
/// (not at a label's ends for `-`), at most 63 characters each and 255 in
/// all, not all numeric.
pub(crate) fn valid_hostname(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let labels_ok = name.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    labels_ok && name.bytes().any(|b| !b.is_ascii_digit() && b != b'.')
}
