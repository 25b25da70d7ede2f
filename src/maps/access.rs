//! access(5) lookups with Postfix's key orders, and the actions an access
//! table or a header/body check may return.
//!
//! Each lookup returns the first (key that matched, value) found. Exact
//! tables are searched key by key (Postfix's partial-key search); pattern
//! tables (regexp, pcre) get the whole string once:
//!
//! - client: the name (`unknown` when there is none), its parent domains,
//!   then the address and its prefixes (`1.2.3.4`, `1.2.3`, `1.2`, `1`;
//!   IPv6 dropping a `:group` at a time); a `DUNNO` for the name still lets
//!   the address be looked up, as `check_client_access` does;
//! - domain (HELO names, sender and recipient domains): the name, then its
//!   parent domains, each as `example.com` and `.example.com` (postern
//!   matches subdomains with both forms, so tables written for either
//!   setting of Postfix's `parent_domain_matches_subdomains` work);
//! - address: `user+ext@domain`, `user@domain`, `domain` and its parents,
//!   `user+ext@`, `user@`; the null sender as `<>` (Postfix's
//!   `smtpd_null_access_lookup_key`).

use std::net::IpAddr;

use super::{MapError, Table};

/// An access(5) action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// OK, RELAY, or an all-digit value (Postfix: permit).
    Ok,
    Dunno,
    Reject(Option<String>),
    Defer(Option<String>),
    DeferIfPermit(Option<String>),
    DeferIfReject(Option<String>),
    /// `4NN text` / `5NN text`, the text possibly starting with a DSN.
    Code {
        code: u16,
        dsn: Option<String>,
        text: String,
    },
    Discard(Option<String>),
    Hold(Option<String>),
    Warn(Option<String>),
    /// PREPEND header: value (may be empty: the caller warns).
    Prepend(String),
    Redirect(String),
    /// Header and body checks: delete the line.
    Ignore,
    /// Header and body checks: REPLACE text.
    Replace(String),
    /// Anything else: the whole value as written (a restriction such as
    /// `reject_unauth_destination`, or a list `permit_mynetworks, reject`,
    /// or a restriction class name; INFO, BCC, FILTER land here too).
    Restriction(String),
}

/// Reads a table's value as an action (the action word is
/// case-insensitive). An empty value is OK, as Postfix treats it (with a
/// warning from the caller).
pub fn parse_action(value: &str) -> Action {
    let value = value.trim();
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return Action::Ok;
    }
    let (word, rest) = match value.find(char::is_whitespace) {
        Some(i) => (&value[..i], value[i..].trim()),
        None => (value, ""),
    };
    let text = || (!rest.is_empty()).then(|| rest.to_string());
    match word.to_ascii_uppercase().as_str() {
        "OK" | "RELAY" => Action::Ok,
        "DUNNO" => Action::Dunno,
        "REJECT" => Action::Reject(text()),
        "DEFER" => Action::Defer(text()),
        "DEFER_IF_PERMIT" => Action::DeferIfPermit(text()),
        "DEFER_IF_REJECT" => Action::DeferIfReject(text()),
        "DISCARD" => Action::Discard(text()),
        "HOLD" => Action::Hold(text()),
        "WARN" => Action::Warn(text()),
        "PREPEND" => Action::Prepend(rest.to_string()),
        "REDIRECT" => Action::Redirect(rest.to_string()),
        "IGNORE" => Action::Ignore,
        "REPLACE" => Action::Replace(rest.to_string()),
        _ => match code(word) {
            Some(code) => {
                let (dsn, text) = split_dsn(rest);
                Action::Code {
                    code,
                    dsn: dsn.map(str::to_string),
                    text: text.to_string(),
                }
            }
            None => Action::Restriction(value.to_string()),
        },
    }
}

/// A 4NN or 5NN reply code.
fn code(word: &str) -> Option<u16> {
    let n: u16 = word.parse().ok()?;
    (word.len() == 3 && (400..600).contains(&n)).then_some(n)
}

/// A leading RFC 3463 status code (`5.7.1 text`): (code, rest).
pub(crate) fn split_dsn(text: &str) -> (Option<&str>, &str) {
    let (first, rest) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    };
    let parts: Vec<&str> = first.split('.').collect();
    let ok = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        (Some(first), rest)
    } else {
        (None, text)
    }
}

type Found = Option<(String, String)>;

/// check_client_access: the name, its parents, the address, its prefixes.
pub fn client(t: &Table, ip: IpAddr, name: Option<&str>) -> Result<Found, MapError> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let name = name.unwrap_or("unknown");
    let mut dunno = None;
    if let Some(hit) = domain(t, name)? {
        if parse_action(&hit.1) != Action::Dunno {
            return Ok(Some(hit));
        }
        dunno = Some(hit);
    }
    let keys = if t.is_pattern() {
        vec![ip.to_string()]
    } else {
        address_prefixes(ip)
    };
    Ok(first(t, keys)?.or(dunno))
}

/// check_helo_access and the domain part of sender/recipient lookups: the
/// name, then its parents.
pub fn domain(t: &Table, name: &str) -> Result<Found, MapError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if t.is_pattern() {
        return first(t, [name.to_string()]);
    }
    first(t, domain_keys(name))
}

/// check_sender_access / check_recipient_access: the address keys in
/// Postfix's order. `delimiter` holds the recipient delimiter characters
/// (`local.recipient_delimiter`; empty: none).
pub fn address(t: &Table, address: &str, delimiter: &str) -> Result<Found, MapError> {
    let address = address.trim();
    if address.is_empty() || address == "<>" {
        return first(t, ["<>".to_string()]);
    }
    if t.is_pattern() {
        return first(t, [address.to_string()]);
    }
    let (local, dom) = match address.rfind('@') {
        Some(i) => (&address[..i], Some(&address[i + 1..])),
        None => (address, None),
    };
    let base = local
        .find(|c| !delimiter.is_empty() && delimiter.contains(c))
        .filter(|&i| i > 0)
        .map(|i| &local[..i]);
    let at = |l: &str| match dom {
        Some(d) => format!("{l}@{d}"),
        None => l.to_string(),
    };
    let mut keys = vec![at(local)];
    keys.extend(base.map(at));
    if let Some(d) = dom.filter(|d| !d.is_empty()) {
        keys.extend(domain_keys(d.strip_suffix('.').unwrap_or(d)));
    }
    keys.push(format!("{local}@"));
    keys.extend(base.map(|b| format!("{b}@")));
    first(t, keys)
}

/// The first key with a value.
fn first(t: &Table, keys: impl IntoIterator<Item = String>) -> Result<Found, MapError> {
    for key in keys {
        if let Some(v) = t.get(&key)? {
            return Ok(Some((key, v)));
        }
    }
    Ok(None)
}

/// `a.b.c`, then `b.c`, `.b.c`, `c`, `.c`; a numeric name (an address
/// literal) has no parents.
fn domain_keys(name: &str) -> Vec<String> {
    let mut keys = vec![name.to_string()];
    let numeric = name.starts_with('[')
        || name
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b':');
    if numeric {
        return keys;
    }
    let mut rest = name;
    while let Some(i) = rest.find('.') {
        rest = &rest[i + 1..];
        if rest.is_empty() {
            break;
        }
        keys.push(rest.to_string());
        keys.push(format!(".{rest}"));
    }
    keys
}

/// `1.2.3.4`, `1.2.3`, `1.2`, `1`; IPv6 as Postfix: the compressed form,
/// then cut at the last `:` again and again.
fn address_prefixes(ip: IpAddr) -> Vec<String> {
    let full = ip.to_string();
    let delim = if ip.is_ipv4() { '.' } else { ':' };
    let mut keys = vec![full.clone()];
    let mut cur = full.as_str();
    while let Some(i) = cur.rfind(delim) {
        cur = &cur[..i];
        if !cur.is_empty() && keys.last().is_none_or(|k| k != cur) {
            keys.push(cur.to_string());
        }
    }
    keys
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
