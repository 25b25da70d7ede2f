//! STAND-IN (replaced by the maps branch): access(5) lookups with
//! Postfix's key orders, and the access actions.

use std::net::IpAddr;

use super::{MapError, Table};

/// An access(5) action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Ok,
    Dunno,
    Reject(Option<String>),
    Defer(Option<String>),
    DeferIfPermit(Option<String>),
    DeferIfReject(Option<String>),
    Code {
        code: u16,
        dsn: Option<String>,
        text: String,
    },
    Discard(Option<String>),
    Hold(Option<String>),
    Warn(Option<String>),
    Prepend(String),
    Redirect(String),
    Ignore,
    Replace(String),
    Restriction(String),
}

/// The action of a table value; unknown words are restriction names.
pub fn parse_action(value: &str) -> Action {
    let value = value.trim();
    let (word, rest) = match value.find([' ', '\t']) {
        Some(i) => (&value[..i], value[i..].trim()),
        None => (value, ""),
    };
    let text = || Some(rest.to_string()).filter(|t| !t.is_empty());
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) && rest.is_empty() {
        return Action::Ok;
    }
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
        _ => {
            let b = word.as_bytes();
            if b.len() == 3
                && matches!(b[0], b'4' | b'5')
                && b[1].is_ascii_digit()
                && b[2].is_ascii_digit()
            {
                let code = u16::from(b[0] - b'0') * 100
                    + u16::from(b[1] - b'0') * 10
                    + u16::from(b[2] - b'0');
                let (dsn, text) = match rest.split_once(' ') {
                    Some((d, t)) if is_dsn(d) => (Some(d.to_string()), t.trim().to_string()),
                    _ if is_dsn(rest) => (Some(rest.to_string()), String::new()),
                    _ => (None, rest.to_string()),
                };
                return Action::Code { code, dsn, text };
            }
            Action::Restriction(value.to_string())
        }
    }
}

fn is_dsn(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The client's name (and its parent domains), then its address and the
/// address's prefixes.
pub fn client(
    t: &Table,
    ip: IpAddr,
    name: Option<&str>,
) -> Result<Option<(String, String)>, MapError> {
    if let Some(name) = name
        && let Some(found) = domain(t, name)?
    {
        return Ok(Some(found));
    }
    let addr = ip.to_canonical().to_string();
    if t.is_pattern() {
        return first(t, [addr]);
    }
    let sep = if addr.contains(':') { ':' } else { '.' };
    let mut keys = vec![addr.clone()];
    let mut rest = addr.as_str();
    while let Some(i) = rest.rfind(sep) {
        rest = &rest[..i];
        if !rest.is_empty() {
            keys.push(rest.to_string());
        }
    }
    first(t, keys)
}

/// A name and its parent domains.
pub fn domain(t: &Table, name: &str) -> Result<Option<(String, String)>, MapError> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if t.is_pattern() {
        return first(t, [name]);
    }
    let mut keys = vec![name.clone()];
    let mut rest = name.as_str();
    while let Some(i) = rest.find('.') {
        keys.push(rest[i + 1..].to_string());
        keys.push(rest[i..].to_string());
        rest = &rest[i + 1..];
    }
    first(t, keys)
}

/// `user+ext@domain`, `user@domain`, the domain and its parents,
/// `user+ext@`, `user@`; the null address as `<>`.
pub fn address(
    t: &Table,
    address: &str,
    delimiter: &str,
) -> Result<Option<(String, String)>, MapError> {
    if address.is_empty() {
        return first(t, ["<>".to_string()]);
    }
    let lower = address.to_ascii_lowercase();
    if t.is_pattern() {
        return first(t, [lower]);
    }
    let (local, dom) = match lower.rsplit_once('@') {
        Some((l, d)) => (l.to_string(), d.to_string()),
        None => (lower.clone(), String::new()),
    };
    let (user, ext) = crate::address::split_extension(&local, delimiter);
    let mut keys = Vec::new();
    if !dom.is_empty() {
        keys.push(format!("{local}@{dom}"));
        if ext.is_some() {
            keys.push(format!("{user}@{dom}"));
        }
    }
    if let Some(found) = first(t, keys)? {
        return Ok(Some(found));
    }
    if !dom.is_empty()
        && let Some(found) = domain(t, &dom)?
    {
        return Ok(Some(found));
    }
    let mut keys = vec![format!("{local}@")];
    if ext.is_some() {
        keys.push(format!("{user}@"));
    }
    first(t, keys)
}

fn first(
    t: &Table,
    keys: impl IntoIterator<Item = String>,
) -> Result<Option<(String, String)>, MapError> {
    for key in keys {
        if let Some(value) = t.get(&key)? {
            return Ok(Some((key, value)));
        }
    }
    Ok(None)
}
