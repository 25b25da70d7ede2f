//! DNS for the restrictions: blocklist query names (IPv4 reversed by
//! octet, IPv6 by nibble), the answers as text (for the checks and the
//! tracer), and the client's verified name (PTR, then the forward lookup
//! that must lead back to the address, as Postfix's smtpd does).
//!
//! The resolver is hickory's, on `dns.servers` when set (UDP and TCP,
//! 2 s per try, 2 tries, no hosts file), else the system's
//! (/etc/resolv.conf). Every lookup ends within [`LOOKUP_DEADLINE`]: a
//! server that does not answer makes a temporary failure, never a wait
//! as long as the client's patience. The resolver is built by
//! [`crate::dns::resolver`], as the smtp client's is.

#[cfg(test)]
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, RecordType};

use crate::dns::Failure;

/// The longest one lookup may take, retries included.
pub(crate) const LOOKUP_DEADLINE: Duration = Duration::from_secs(5);

/// The longest the client's name may take, PTR and forward lookups
/// together: smtpd waits for it before its greeting.
pub(crate) const CLIENT_NAME_DEADLINE: Duration = Duration::from_secs(5);

/// The record types the checks ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rtype {
    A,
    Aaaa,
    Mx,
    Txt,
    Ptr,
}

impl Rtype {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Rtype::A => "A",
            Rtype::Aaaa => "AAAA",
            Rtype::Mx => "MX",
            Rtype::Txt => "TXT",
            Rtype::Ptr => "PTR",
        }
    }

    fn record_type(self) -> RecordType {
        match self {
            Rtype::A => RecordType::A,
            Rtype::Aaaa => RecordType::AAAA,
            Rtype::Mx => RecordType::MX,
            Rtype::Txt => RecordType::TXT,
            Rtype::Ptr => RecordType::PTR,
        }
    }
}

/// The answer to one query, records as text: addresses for A and AAAA,
/// `preference exchange` for MX (the root as `.`), the joined strings of
/// each TXT record, host names (lower case, no final dot) for PTR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Found(Vec<String>),
    /// The name exists, without records of the type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// No answer now (SERVFAIL, timeout, no resolver): never a reason to
    /// reject.
    Temporary(String),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Found(records) => f.write_str(&records.join(", ")),
            Answer::NoData => f.write_str("no records of that type"),
            Answer::NxDomain => f.write_str("NXDOMAIN (no such name)"),
            Answer::Temporary(why) => write!(f, "temporary failure ({why})"),
        }
    }
}

/// How far the client's name was verified (Postfix's name status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NameStatus {
    /// The PTR name leads back to the address.
    Verified,
    /// A DNS failure: the name may exist.
    Temporary,
    /// No PTR, or its name does not lead back to the address.
    Permanent,
}

/// The client's name as smtpd logs it: `unknown` unless verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientName {
    pub name: String,
    pub status: NameStatus,
    /// The queries asked, for the tracer: (name, type, answer).
    pub queries: Vec<(String, Rtype, Answer)>,
}

/// The resolver, as configured.
pub(crate) struct Resolver {
    inner: Inner,
}

enum Inner {
    Dns(Result<Box<TokioResolver>, String>),
    /// Fixed answers, for unit tests: anything not listed is NXDOMAIN.
    #[cfg(test)]
    Fixed(BTreeMap<(String, Rtype), Answer>),
}

impl Resolver {
    /// The system's resolver, or `servers` when there are some. A resolver
    /// that cannot be set up makes every lookup fail temporarily.
    pub fn new(servers: &[SocketAddr]) -> Resolver {
        let inner = crate::dns::resolver(servers, Duration::from_secs(2)).map(|(r, source)| {
            if source == crate::dns::Source::HostsOnly {
                log::warn!(
                    "{} names no nameserver: DNS-based restrictions and client name \
                     lookups answer from /etc/hosts alone",
                    crate::dns::RESOLV_CONF
                );
            }
            Box::new(r)
        });
        if let Err(e) = &inner {
            log::error!("{e}; DNS-based restrictions will not decide until it is repaired");
        }
        Resolver {
            inner: Inner::Dns(inner),
        }
    }

    /// A resolver with fixed answers (unit tests).
    #[cfg(test)]
    pub(crate) fn fixed(
        answers: impl IntoIterator<Item = (&'static str, Rtype, Answer)>,
    ) -> Resolver {
        Resolver {
            inner: Inner::Fixed(
                answers
                    .into_iter()
                    .map(|(n, t, a)| ((n.to_string(), t), a))
                    .collect(),
            ),
        }
    }

    /// One query for `name` (looked up as it is, without search domains).
    pub(crate) async fn lookup(&self, name: &str, rtype: Rtype) -> Answer {
        let resolver = match &self.inner {
            Inner::Dns(Ok(r)) => r,
            Inner::Dns(Err(e)) => return Answer::Temporary(e.clone()),
            #[cfg(test)]
            Inner::Fixed(map) => {
                let key = (name.trim_end_matches('.').to_ascii_lowercase(), rtype);
                return map.get(&key).cloned().unwrap_or(Answer::NxDomain);
            }
        };
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let lookup = resolver.lookup(fqdn.as_str(), rtype.record_type());
        match tokio::time::timeout(LOOKUP_DEADLINE, lookup).await {
            Err(_) => Answer::Temporary("timed out".to_string()),
            Ok(Err(e)) => classify(&e),
            Ok(Ok(lookup)) => {
                let records: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| text(&r.data))
                    .collect();
                if records.is_empty() {
                    Answer::NoData
                } else {
                    Answer::Found(records)
                }
            }
        }
    }

    /// The client's verified name: the PTR names of `ip`, each looked up
    /// forward until one leads back to `ip`; all within
    /// [`CLIENT_NAME_DEADLINE`] (a temporary failure after that).
    pub(crate) async fn client_name(&self, ip: IpAddr) -> ClientName {
        match tokio::time::timeout(CLIENT_NAME_DEADLINE, self.verified_name(ip)).await {
            Ok(name) => name,
            Err(_) => unknown(NameStatus::Temporary, Vec::new()),
        }
    }

    async fn verified_name(&self, ip: IpAddr) -> ClientName {
        let ip = ip.to_canonical();
        let mut queries = Vec::new();
        let ptr_name = reverse_name(ip);
        let answer = self.lookup(&ptr_name, Rtype::Ptr).await;
        queries.push((ptr_name, Rtype::Ptr, answer.clone()));
        let names = match answer {
            Answer::Found(names) => names,
            Answer::Temporary(_) => return unknown(NameStatus::Temporary, queries),
            Answer::NoData | Answer::NxDomain => return unknown(NameStatus::Permanent, queries),
        };
        let rtype = if ip.is_ipv4() { Rtype::A } else { Rtype::Aaaa };
        let mut status = NameStatus::Permanent;
        for name in names
            .iter()
            .filter(|n| super::syntax::valid_hostname(n))
            .take(5)
        {
            let answer = self.lookup(name, rtype).await;
            queries.push((name.clone(), rtype, answer.clone()));
            match answer {
                Answer::Found(addrs)
                    if addrs
                        .iter()
                        .any(|a| a.parse::<IpAddr>().is_ok_and(|a| a == ip)) =>
                {
                    return ClientName {
                        name: name.clone(),
                        status: NameStatus::Verified,
                        queries,
                    };
                }
                Answer::Temporary(_) => status = NameStatus::Temporary,
                _ => log::warn!("hostname {name} does not resolve to address {ip}"),
            }
        }
        unknown(status, queries)
    }
}

fn unknown(status: NameStatus, queries: Vec<(String, Rtype, Answer)>) -> ClientName {
    ClientName {
        name: "unknown".to_string(),
        status,
        queries,
    }
}

/// A record's data as text, for the types the checks ask for.
fn text(data: &RData) -> Option<String> {
    Some(match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::MX(mx) => format!("{} {}", mx.preference, host_name(&mx.exchange.to_ascii())),
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        RData::PTR(ptr) => host_name(&ptr.0.to_ascii()),
        _ => return None,
    })
}

/// A host name from DNS: lower case, no final dot; the root stays `.`.
fn host_name(name: &str) -> String {
    match name.strip_suffix('.').unwrap_or(name) {
        "" => ".".to_string(),
        n => n.to_ascii_lowercase(),
    }
}

fn classify(e: &NetError) -> Answer {
    match crate::dns::failure(e) {
        Failure::NxDomain => Answer::NxDomain,
        Failure::NoData => Answer::NoData,
        Failure::Temporary => Answer::Temporary(e.to_string()),
    }
}

/// The labels of an address reversed: `4.3.2.1` for 1.2.3.4, 32 nibbles
/// for IPv6 (`1.0.0.0.…`); an IPv4-mapped IPv6 address counts as IPv4.
pub(crate) fn reversed(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut labels = Vec::with_capacity(32);
            for byte in v6.octets().iter().rev() {
                labels.push(format!("{:x}", byte & 0x0f));
                labels.push(format!("{:x}", byte >> 4));
            }
            labels.join(".")
        }
    }
}

/// The DNSBL query for a client address: `4.3.2.1.zone`.
pub(crate) fn rbl_query(ip: IpAddr, zone: &str) -> String {
    format!("{}.{zone}", reversed(ip))
}

/// The PTR query name: `4.3.2.1.in-addr.arpa`, `….ip6.arpa`.
pub(crate) fn reverse_name(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(_) => format!("{}.in-addr.arpa", reversed(ip)),
        IpAddr::V6(_) => format!("{}.ip6.arpa", reversed(ip)),
    }
}

/// TXT texts as Postfix puts them in a reply: joined with ` / `, at most
/// 500 characters.
pub(crate) fn txt_reason(records: &[String]) -> String {
    let mut text = records.join(" / ");
    if text.len() > 500 {
        let mut end = 500;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
