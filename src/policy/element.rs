//! Restriction elements, parsed from the strings of a `[restrictions]`
//! list as Postfix writes them: `permit_mynetworks`, `check_client_access
//! hash:/etc/postern/badclient`, `reject_rbl_client zen.example=127.0.0.[2..11]`,
//! a bare table (`inline:badclient`) meaning `check_<stage>_access TABLE`.
//!
//! One string may hold several elements (`"permit_mynetworks,
//! reject_unauth_destination"`): the text is split at commas and white
//! space, except inside `{ … }` (Postfix's inline tables). An unknown name
//! is an error that names it, with the nearest known name.
//!
//! A leaf of syntax: the configuration reads its lists with this file, so
//! it names nothing of the crate but [`crate::milter::address`] (itself a
//! leaf), never `crate::config` (`tests/imports.rs`).

use std::fmt;

/// The five restriction lists, in the order Postfix evaluates them at RCPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Client,
    Helo,
    Sender,
    Relay,
    Recipient,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Client,
        Stage::Helo,
        Stage::Sender,
        Stage::Relay,
        Stage::Recipient,
    ];

    /// `client`, `helo`, … (the key in `[restrictions]`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stage::Client => "client",
            Stage::Helo => "helo",
            Stage::Sender => "sender",
            Stage::Relay => "relay",
            Stage::Recipient => "recipient",
        }
    }

    /// What a bare table in this list looks up.
    pub(crate) fn access(self) -> Access {
        match self {
            Stage::Client => Access::Client,
            Stage::Helo => Access::Helo,
            Stage::Sender => Access::Sender,
            Stage::Relay | Stage::Recipient => Access::Recipient,
        }
    }
}

/// What an access table is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// The client's name and address (`check_client_access`).
    Client,
    /// The HELO name (`check_helo_access`).
    Helo,
    /// The envelope sender (`check_sender_access`).
    Sender,
    /// The recipient (`check_recipient_access`).
    Recipient,
    /// The SPF result of MAIL FROM (`check_spf`): `pass`, `fail`,
    /// `softfail`, `neutral`, `none`, `temperror` or `permerror`.
    Spf,
}

/// What a DNS blocklist is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RblTarget {
    /// The client's address, reversed (`reject_rbl_client`).
    ClientAddress,
    /// The client's name (`reject_rhsbl_client`).
    ClientName,
    /// The HELO name (`reject_rhsbl_helo`).
    Helo,
    /// The sender's domain (`reject_rhsbl_sender`).
    Sender,
    /// The recipient's domain (`reject_rhsbl_recipient`).
    Recipient,
}

/// One restriction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Element {
    Permit,
    Reject,
    Defer,
    /// Remember a 4xx that replaces a final permit.
    DeferIfPermit,
    /// Remember a 4xx that replaces a later 5xx.
    DeferIfReject,
    /// The next restriction logs `reject_warning` instead of rejecting.
    WarnIfReject(Box<Element>),
    PermitMynetworks,
    /// The client logged in with AUTH.
    PermitSaslAuthenticated,
    /// `reject_sender_login_mismatch` and its halves: which login may use
    /// which envelope sender (`sasl.sender_login_maps`).
    SenderLoginMismatch(LoginCheck),
    PermitAuthDestination,
    RejectUnauthDestination,
    DeferUnauthDestination,
    /// The recipient must be known in its address class
    /// (`policy::known_recipient`): Postfix's `reject_unlisted_recipient`.
    RejectUnlistedRecipient,
    CheckAccess {
        what: Access,
        table: String,
    },
    RejectRbl {
        target: RblTarget,
        zone: String,
        filter: Option<RblFilter>,
    },
    /// The deprecated `reject_maps_rbl`: `reject_rbl_client` for each of
    /// `restrictions.rbl_domains`.
    RejectMapsRbl,
    RejectUnknownSenderDomain,
    RejectUnknownRecipientDomain,
    RejectNonFqdnSender,
    RejectNonFqdnRecipient,
    RejectNonFqdnHeloHostname,
    RejectUnknownClientHostname,
    RejectUnknownHeloHostname,
    RejectInvalidHeloHostname,
    /// SPF says the client may not send for the MAIL FROM domain (`550
    /// 5.7.23`).
    RejectSpfFail,
    /// `check_policy_service inet:host:port|unix:/path`: Postfix's policy
    /// delegation (postgrey, policyd-spf): the server's `action=` is an
    /// access table's action.
    CheckPolicyService(String),
}

/// Which clients `reject_*sender_login_mismatch` checks (Postfix's four
/// names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginCheck {
    /// `reject_sender_login_mismatch`: a logged-in client may use only
    /// the senders its login owns, any other only senders nobody owns.
    Both,
    /// `reject_authenticated_sender_login_mismatch`: only the first half.
    Authenticated,
    /// `reject_unauthenticated_sender_login_mismatch`: only the second.
    Unauthenticated,
    /// `reject_known_sender_login_mismatch`: as `Both`, but a logged-in
    /// client may use a sender nobody owns.
    Known,
}

/// A restriction list element that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{element:?}: {reason}")]
pub struct ParseError {
    /// Which string of the list it is in (0-based).
    pub index: usize,
    /// The element as written.
    pub element: String,
    pub reason: String,
}

/// Names without an argument, with the element they stand for. Older
/// Postfix names are accepted as aliases.
const SIMPLE: [(&str, Element); 30] = [
    ("permit", Element::Permit),
    ("reject", Element::Reject),
    ("defer", Element::Defer),
    ("defer_if_permit", Element::DeferIfPermit),
    ("defer_if_reject", Element::DeferIfReject),
    ("permit_mynetworks", Element::PermitMynetworks),
    (
        "permit_sasl_authenticated",
        Element::PermitSaslAuthenticated,
    ),
    (
        "reject_sender_login_mismatch",
        Element::SenderLoginMismatch(LoginCheck::Both),
    ),
    (
        "reject_authenticated_sender_login_mismatch",
        Element::SenderLoginMismatch(LoginCheck::Authenticated),
    ),
    (
        "reject_unauthenticated_sender_login_mismatch",
        Element::SenderLoginMismatch(LoginCheck::Unauthenticated),
    ),
    (
        "reject_known_sender_login_mismatch",
        Element::SenderLoginMismatch(LoginCheck::Known),
    ),
    ("permit_auth_destination", Element::PermitAuthDestination),
    (
        "reject_unauth_destination",
        Element::RejectUnauthDestination,
    ),
    ("defer_unauth_destination", Element::DeferUnauthDestination),
    (
        "reject_unlisted_recipient",
        Element::RejectUnlistedRecipient,
    ),
    ("check_recipient_maps", Element::RejectUnlistedRecipient),
    ("reject_maps_rbl", Element::RejectMapsRbl),
    (
        "reject_unknown_sender_domain",
        Element::RejectUnknownSenderDomain,
    ),
    (
        "reject_unknown_recipient_domain",
        Element::RejectUnknownRecipientDomain,
    ),
    ("reject_non_fqdn_sender", Element::RejectNonFqdnSender),
    ("reject_non_fqdn_recipient", Element::RejectNonFqdnRecipient),
    (
        "reject_non_fqdn_helo_hostname",
        Element::RejectNonFqdnHeloHostname,
    ),
    (
        "reject_non_fqdn_hostname",
        Element::RejectNonFqdnHeloHostname,
    ),
    (
        "reject_unknown_client_hostname",
        Element::RejectUnknownClientHostname,
    ),
    (
        "reject_unknown_client",
        Element::RejectUnknownClientHostname,
    ),
    (
        "reject_unknown_helo_hostname",
        Element::RejectUnknownHeloHostname,
    ),
    (
        "reject_unknown_hostname",
        Element::RejectUnknownHeloHostname,
    ),
    (
        "reject_invalid_helo_hostname",
        Element::RejectInvalidHeloHostname,
    ),
    (
        "reject_invalid_hostname",
        Element::RejectInvalidHeloHostname,
    ),
    ("reject_spf_fail", Element::RejectSpfFail),
];

/// Postfix names postern knows but does not implement: a clear error
/// rather than "unknown restriction".
const NOT_SUPPORTED: [&str; 2] = ["reject_unverified_recipient", "reject_unverified_sender"];

/// Names that take a table.
const ACCESS: [(&str, Access); 5] = [
    ("check_client_access", Access::Client),
    ("check_helo_access", Access::Helo),
    ("check_sender_access", Access::Sender),
    ("check_recipient_access", Access::Recipient),
    ("check_spf", Access::Spf),
];

/// Names that take a DNS zone.
const RBL: [(&str, RblTarget); 6] = [
    ("reject_rbl_client", RblTarget::ClientAddress),
    ("reject_rbl", RblTarget::ClientAddress),
    ("reject_rhsbl_client", RblTarget::ClientName),
    ("reject_rhsbl_helo", RblTarget::Helo),
    ("reject_rhsbl_sender", RblTarget::Sender),
    ("reject_rhsbl_recipient", RblTarget::Recipient),
];

/// Parses one restriction list (`items` as written in the configuration).
pub fn parse_list<S: AsRef<str>>(stage: Stage, items: &[S]) -> Result<Vec<Element>, ParseError> {
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let tokens = split(item.as_ref()).map_err(|reason| ParseError {
            index,
            element: item.as_ref().to_string(),
            reason,
        })?;
        if tokens.is_empty() {
            return Err(ParseError {
                index,
                element: item.as_ref().to_string(),
                reason: "empty restriction".to_string(),
            });
        }
        let mut tokens = tokens.into_iter().peekable();
        while tokens.peek().is_some() {
            out.push(
                parse_one(Some(stage), &mut tokens).map_err(|(element, reason)| ParseError {
                    index,
                    element,
                    reason,
                })?,
            );
        }
    }
    Ok(out)
}

/// Parses the restrictions an access table names as its result
/// (`reject_unauth_destination, permit`). Tables are not allowed there,
/// as in Postfix.
pub fn parse_result(value: &str) -> Result<Vec<Element>, ParseError> {
    let error = |element: String, reason: String| ParseError {
        index: 0,
        element,
        reason,
    };
    let tokens = split(value).map_err(|reason| error(value.to_string(), reason))?;
    if let Some(t) = tokens.iter().find(|t| t.contains(':')) {
        return Err(error(
            t.clone(),
            "a lookup table in an access table's result (name a restriction instead)".to_string(),
        ));
    }
    let mut tokens = tokens.into_iter().peekable();
    let mut out = Vec::new();
    while tokens.peek().is_some() {
        out.push(parse_one(None, &mut tokens).map_err(|(e, r)| error(e, r))?);
    }
    Ok(out)
}

/// One element from the front of `tokens`; `stage` is `None` where a bare
/// table is not allowed.
fn parse_one(
    stage: Option<Stage>,
    tokens: &mut std::iter::Peekable<std::vec::IntoIter<String>>,
) -> Result<Element, (String, String)> {
    let Some(token) = tokens.next() else {
        return Err((String::new(), "missing restriction".to_string()));
    };
    if token.contains(':') {
        let Some(stage) = stage else {
            return Err((token, "a lookup table is not allowed here".to_string()));
        };
        check_table(&token).map_err(|r| (token.clone(), r))?;
        return Ok(Element::CheckAccess {
            what: stage.access(),
            table: token,
        });
    }
    let name = token.to_ascii_lowercase();
    if name == "warn_if_reject" {
        if tokens.peek().is_none() {
            return Err((token, "needs a restriction after it".to_string()));
        }
        let next = parse_one(stage, tokens).map_err(|(e, r)| (format!("{token} {e}"), r))?;
        return Ok(Element::WarnIfReject(Box::new(next)));
    }
    if let Some((_, what)) = ACCESS.iter().find(|(n, _)| *n == name) {
        let table = argument(&token, tokens, "a table (type:name)")?;
        check_table(&table).map_err(|r| (format!("{token} {table}"), r))?;
        return Ok(Element::CheckAccess { what: *what, table });
    }
    if name == "check_policy_service" {
        let service = argument(&token, tokens, "a server (inet:host:port or unix:/path)")?;
        crate::milter::address::Address::parse(&service)
            .map_err(|e| (format!("{token} {service}"), format!("policy server {e}")))?;
        return Ok(Element::CheckPolicyService(service));
    }
    if let Some((_, target)) = RBL.iter().find(|(n, _)| *n == name) {
        let arg = argument(&token, tokens, "a DNS zone (zone or zone=filter)")?;
        let (zone, filter) = parse_zone(&arg).map_err(|r| (format!("{token} {arg}"), r))?;
        return Ok(Element::RejectRbl {
            target: *target,
            zone,
            filter,
        });
    }
    if NOT_SUPPORTED.contains(&name.as_str()) {
        return Err((
            token,
            "not supported yet (recipient address verification, Postfix's verify(8))".to_string(),
        ));
    }
    match SIMPLE.iter().find(|(n, _)| *n == name) {
        Some((_, element)) => Ok(element.clone()),
        None => {
            let reason = match nearest(&name) {
                Some(near) => format!("unknown restriction (did you mean {near:?}?)"),
                None => "unknown restriction".to_string(),
            };
            Err((token, reason))
        }
    }
}

/// The argument after `name`.
fn argument(
    name: &str,
    tokens: &mut std::iter::Peekable<std::vec::IntoIter<String>>,
    what: &str,
) -> Result<String, (String, String)> {
    tokens
        .next()
        .ok_or_else(|| (name.to_string(), format!("needs {what}")))
}

/// `type:name` with a lower-case type and something after the colon.
fn check_table(spec: &str) -> Result<(), String> {
    let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let good_type = !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !good_type || rest.is_empty() {
        return Err("a table is written type:name (hash:/etc/postern/access, inline:NAME)".into());
    }
    Ok(())
}

/// `zone` or `zone=filter`.
fn parse_zone(arg: &str) -> Result<(String, Option<RblFilter>), String> {
    let (zone, filter) = match arg.split_once('=') {
        Some((z, f)) => (z, Some(RblFilter::parse(f)?)),
        None => (arg, None),
    };
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    let good = !zone.is_empty()
        && zone.len() <= 253
        && zone.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !good {
        return Err(format!("{zone:?} is not a DNS zone name"));
    }
    Ok((zone, filter))
}

/// Splits at commas and white space, keeping `{ … }` groups whole.
fn split(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' => {
                if depth == 0 {
                    return Err("unbalanced '}'".to_string());
                }
                depth -= 1;
                current.push(c);
            }
            ',' | ' ' | '\t' | '\r' | '\n' if depth == 0 => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if depth > 0 {
        return Err("unbalanced '{'".to_string());
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// The known name nearest to a misspelled one.
fn nearest(name: &str) -> Option<&'static str> {
    SIMPLE
        .iter()
        .map(|(n, _)| *n)
        .chain(ACCESS.iter().map(|(n, _)| *n))
        .chain(RBL.iter().map(|(n, _)| *n))
        .chain(["warn_if_reject", "check_policy_service"])
        .map(|n| (strsim::levenshtein(name, n), n))
        .filter(|(d, n)| *d <= 3.max(n.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// A DNSBL answer filter (`127.0.0.2`, `127.0.0.[2..11]`, `127.0.0.[2;4;6..8]`):
/// each octet a number or a set of numbers and ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RblFilter {
    octets: [Vec<(u8, u8)>; 4],
    text: String,
}

impl RblFilter {
    pub fn parse(text: &str) -> Result<RblFilter, String> {
        let bad =
            || format!("{text:?} is not an address pattern like 127.0.0.2 or 127.0.0.[2..11]");
        let parts: Vec<&str> = text.split('.').collect();
        // Ranges contain dots too: rejoin `[a..b]` pieces.
        let mut octets: Vec<String> = Vec::new();
        let mut open: Option<String> = None;
        for p in parts {
            match open.take() {
                Some(mut o) => {
                    o.push('.');
                    o.push_str(p);
                    if o.ends_with(']') {
                        octets.push(o);
                    } else {
                        open = Some(o);
                    }
                }
                None if p.starts_with('[') && !p.ends_with(']') => open = Some(p.to_string()),
                None => octets.push(p.to_string()),
            }
        }
        if open.is_some() || octets.len() != 4 {
            return Err(bad());
        }
        let mut parsed: [Vec<(u8, u8)>; 4] = Default::default();
        for (slot, o) in parsed.iter_mut().zip(&octets) {
            *slot = match o.strip_prefix('[').and_then(|o| o.strip_suffix(']')) {
                Some(set) => set
                    .split(';')
                    .map(|item| match item.split_once("..") {
                        Some((a, b)) => {
                            let (a, b) = (number(a).ok_or_else(bad)?, number(b).ok_or_else(bad)?);
                            if a > b { Err(bad()) } else { Ok((a, b)) }
                        }
                        None => number(item).map(|n| (n, n)).ok_or_else(bad),
                    })
                    .collect::<Result<_, _>>()?,
                None => {
                    let n = number(o).ok_or_else(bad)?;
                    vec![(n, n)]
                }
            };
        }
        Ok(RblFilter {
            octets: parsed,
            text: text.to_string(),
        })
    }

    /// Whether an answer address matches.
    pub(crate) fn matches(&self, ip: std::net::Ipv4Addr) -> bool {
        ip.octets()
            .iter()
            .zip(&self.octets)
            .all(|(o, set)| set.iter().any(|(a, b)| (*a..=*b).contains(o)))
    }
}

/// A decimal octet without leading zeros.
fn number(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for RblFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Element {
    /// The element as Postfix writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let simple = match self {
            Element::Permit => "permit",
            Element::Reject => "reject",
            Element::Defer => "defer",
            Element::DeferIfPermit => "defer_if_permit",
            Element::DeferIfReject => "defer_if_reject",
            Element::PermitMynetworks => "permit_mynetworks",
            Element::PermitSaslAuthenticated => "permit_sasl_authenticated",
            Element::SenderLoginMismatch(LoginCheck::Both) => "reject_sender_login_mismatch",
            Element::SenderLoginMismatch(LoginCheck::Authenticated) => {
                "reject_authenticated_sender_login_mismatch"
            }
            Element::SenderLoginMismatch(LoginCheck::Unauthenticated) => {
                "reject_unauthenticated_sender_login_mismatch"
            }
            Element::SenderLoginMismatch(LoginCheck::Known) => "reject_known_sender_login_mismatch",
            Element::PermitAuthDestination => "permit_auth_destination",
            Element::RejectUnauthDestination => "reject_unauth_destination",
            Element::DeferUnauthDestination => "defer_unauth_destination",
            Element::RejectUnlistedRecipient => "reject_unlisted_recipient",
            Element::RejectMapsRbl => "reject_maps_rbl",
            Element::RejectUnknownSenderDomain => "reject_unknown_sender_domain",
            Element::RejectUnknownRecipientDomain => "reject_unknown_recipient_domain",
            Element::RejectNonFqdnSender => "reject_non_fqdn_sender",
            Element::RejectNonFqdnRecipient => "reject_non_fqdn_recipient",
            Element::RejectNonFqdnHeloHostname => "reject_non_fqdn_helo_hostname",
            Element::RejectUnknownClientHostname => "reject_unknown_client_hostname",
            Element::RejectUnknownHeloHostname => "reject_unknown_helo_hostname",
            Element::RejectInvalidHeloHostname => "reject_invalid_helo_hostname",
            Element::RejectSpfFail => "reject_spf_fail",
            Element::CheckPolicyService(service) => {
                return write!(f, "check_policy_service {service}");
            }
            Element::WarnIfReject(next) => return write!(f, "warn_if_reject {next}"),
            Element::CheckAccess { what, table } => {
                let name = ACCESS
                    .iter()
                    .find(|(_, w)| w == what)
                    .map_or("check_access", |(n, _)| n);
                return write!(f, "{name} {table}");
            }
            Element::RejectRbl {
                target,
                zone,
                filter,
            } => {
                let name = RBL
                    .iter()
                    .find(|(_, t)| t == target)
                    .map_or("reject_rbl_client", |(n, _)| n);
                return match filter {
                    Some(filter) => write!(f, "{name} {zone}={filter}"),
                    None => write!(f, "{name} {zone}"),
                };
            }
        };
        f.write_str(simple)
    }
}

/// Whether the relay and recipient lists hold a restriction that refuses
/// mail for other domains, before any `permit` (Postfix refuses to start
/// without one: an open relay is never what was meant).
pub fn has_relay_guard(relay: &[Element], recipient: &[Element]) -> bool {
    let guards = |list: &[Element]| {
        list.iter().take_while(|e| **e != Element::Permit).any(|e| {
            matches!(
                e,
                Element::RejectUnauthDestination
                    | Element::DeferUnauthDestination
                    | Element::Reject
                    | Element::Defer
                    | Element::DeferIfPermit
            )
        })
    };
    guards(relay) || guards(recipient)
}
