//! From a next hop to the hosts to try, in order (RFC 5321 section 5.1,
//! RFC 7505), through hickory-resolver.
//!
//! * `[host]` (and an address literal): the host's A and AAAA records (the
//!   literal itself), no MX lookup.
//! * `host` (MX lookup): the MX records by preference (equal preferences
//!   in random order), each host's addresses; no MX records: the
//!   domain's own addresses. A null MX (a single MX of `.`) bounces
//!   `5.1.10`; an MX host that is this host (`server.hostname`) and every
//!   MX host of the same or a worse preference are dropped, and if none is
//!   left the mail bounces `5.4.6 mail for DOMAIN loops back to myself`.
//! * Errors, with Postfix's texts: NXDOMAIN bounces `5.4.4 Host or domain
//!   name not found. Name service error for name=NAME type=TYPE: Host not
//!   found`, a temporary failure (SERVFAIL, timeout) defers `4.4.3 ...:
//!   Host not found, try again`.
//!
//! Addresses: IPv4 first, then IPv6. Names are looked up fully qualified
//! (no search domains). The resolver uses /etc/hosts and /etc/resolv.conf
//! (/etc/hosts alone, and no MX lookups, when it names no nameserver), or
//! `dns.servers` (UDP and TCP, 3 s timeout, 2 attempts, no hosts
//! file) when set.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;

use crate::dns::Failure;
use crate::outcome::{Enhanced, code};
use hickory_resolver::proto::rr::{RData, RecordType};

use crate::ipc::DeliveryStatus;
use crate::transport::Nexthop;

/// Addresses tried for one delivery, at most (Postfix
/// `smtp_mx_address_limit`).
pub const MAX_ADDRESSES: usize = 5;

/// One address to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The host's name (for logs, `Remote-MTA:` and certificate checks):
    /// the MX host, the next hop's host, or the address literal; for a
    /// Unix-domain socket, this host's name (`server.hostname`, as
    /// Postfix's lmtp logs `relay=myhostname[/path]`).
    pub host: String,
    pub addr: Addr,
}

/// Where a [`Target`] is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Inet(SocketAddr),
    /// A Unix-domain socket (`lmtp:unix:/path`).
    Unix(PathBuf),
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Addr {
        Addr::Inet(a)
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Inet(a) => write!(f, "{a}"),
            Addr::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Addr {
    /// The IP address, or the socket's path, as logs show it in brackets.
    pub fn bracketed(&self) -> String {
        match self {
            Addr::Inet(a) => a.ip().to_string(),
            Addr::Unix(p) => p.display().to_string(),
        }
    }
}

/// Why a next hop has no hosts to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsFailure {
    /// Deferred or bounced.
    pub status: DeliveryStatus,
    pub dsn: Enhanced,
    pub reason: String,
}

/// The answer to one query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    Found(T),
    /// The name exists, without records of the type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// No answer now (SERVFAIL, timeout, no resolver).
    Temporary,
}

/// What an MX lookup leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MxPlan {
    /// These hosts, in this order.
    Hosts(Vec<String>),
    /// No MX records: the domain's own addresses.
    Domain,
}

/// The resolver, as configured.
pub struct Resolver {
    inner: Result<TokioResolver, String>,
    /// No nameserver: /etc/hosts alone, no MX lookups.
    hosts_only: bool,
}

impl Resolver {
    /// The system's resolver, or `dns_servers` when there are some. A
    /// resolver configuration that cannot be read is logged; lookups then
    /// fail temporarily (literal next hops still work). With no nameserver
    /// in /etc/resolv.conf, host names come from /etc/hosts and a domain's
    /// mail goes to the domain's own address, as there is no DNS to ask
    /// for its MX records (Postfix with `smtp_host_lookup = native` and no
    /// DNS does the same).
    pub fn new(dns_servers: &[SocketAddr]) -> Resolver {
        let (inner, source) = match crate::dns::resolver(dns_servers, Duration::from_secs(3)) {
            Ok((r, source)) => (Ok(r), source),
            Err(e) => {
                log::error!("{e}; lookups will fail until it is repaired");
                (Err(e), crate::dns::Source::System)
            }
        };
        let hosts_only = source == crate::dns::Source::HostsOnly;
        if hosts_only {
            log::warn!(
                "{} names no nameserver: host names resolve from /etc/hosts alone, \
                 and mail for a domain goes to the domain's own address (no MX lookups)",
                crate::dns::RESOLV_CONF
            );
        }
        Resolver { inner, hosts_only }
    }

    /// The addresses to try for `nexthop`, in order, at most
    /// [`MAX_ADDRESSES`]; `port` is the next hop's or `smtp.port`.
    pub async fn resolve(
        &self,
        nexthop: &Nexthop,
        port: u16,
        myhostname: &str,
    ) -> Result<Vec<Target>, DnsFailure> {
        if let Some(path) = &nexthop.unix {
            return Ok(vec![Target {
                host: myhostname.to_string(),
                addr: Addr::Unix(path.clone()),
            }]);
        }
        if let Ok(ip) = nexthop.host.parse::<IpAddr>() {
            return Ok(vec![Target {
                host: nexthop.host.clone(),
                addr: SocketAddr::new(ip, port).into(),
            }]);
        }
        let hosts = if nexthop.mx {
            match mx_plan(&nexthop.host, self.mx(&nexthop.host).await, myhostname)? {
                MxPlan::Hosts(hosts) => hosts,
                MxPlan::Domain => vec![nexthop.host.clone()],
            }
        } else {
            vec![nexthop.host.clone()]
        };
        let mut targets = Vec::new();
        let mut failures = Vec::new();
        for host in hosts {
            if targets.len() >= MAX_ADDRESSES {
                break;
            }
            match self.addresses(&host).await {
                Answer::Found(ips) => targets.extend(ips.into_iter().map(|ip| Target {
                    host: host.clone(),
                    addr: SocketAddr::new(ip, port).into(),
                })),
                other => failures.push((host, other)),
            }
        }
        targets.truncate(MAX_ADDRESSES);
        if targets.is_empty() {
            if self.hosts_only {
                return Err(not_in_hosts(&failures));
            }
            return Err(no_addresses(&failures));
        }
        Ok(targets)
    }

    /// The MX records of `domain`: (preference, exchange without the
    /// final dot; `.` stays `.`).
    async fn mx(&self, domain: &str) -> Answer<Vec<(u16, String)>> {
        if self.hosts_only {
            // No DNS to ask: as if the domain had no MX records.
            return Answer::NoData;
        }
        let Ok(resolver) = &self.inner else {
            return Answer::Temporary;
        };
        match resolver.mx_lookup(fqdn(domain)).await {
            Ok(lookup) => {
                let records: Vec<_> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, host_name(&mx.exchange.to_ascii()))),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    Answer::NoData
                } else {
                    Answer::Found(records)
                }
            }
            Err(e) => classify(&e),
        }
    }

    /// The A, then AAAA addresses of `host`.
    async fn addresses(&self, host: &str) -> Answer<Vec<IpAddr>> {
        let Ok(resolver) = &self.inner else {
            return Answer::Temporary;
        };
        let name = fqdn(host);
        let (a, aaaa) = tokio::join!(
            resolver.lookup(name.as_str(), RecordType::A),
            resolver.lookup(name.as_str(), RecordType::AAAA)
        );
        let ips = |lookup: Result<hickory_resolver::lookup::Lookup, NetError>| match lookup {
            Ok(lookup) => {
                let ips: Vec<IpAddr> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    })
                    .collect();
                if ips.is_empty() {
                    Answer::NoData
                } else {
                    Answer::Found(ips)
                }
            }
            Err(e) => classify(&e),
        };
        combine_addresses(ips(a), ips(aaaa))
    }
}

/// `name.`: looked up as it is, without search domains.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// A host name from DNS, lower-case and without the final dot (the root
/// stays `.`).
fn host_name(name: &str) -> String {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        ".".into()
    } else {
        name.to_ascii_lowercase()
    }
}

fn classify<T>(e: &NetError) -> Answer<T> {
    match crate::dns::failure(e) {
        Failure::NxDomain => Answer::NxDomain,
        Failure::NoData => Answer::NoData,
        Failure::Temporary => Answer::Temporary,
    }
}

/// One host's A and AAAA answers together: addresses when either has
/// some (IPv4 first), else the more hopeful of the failures (a temporary
/// one over NXDOMAIN over no data).
pub fn combine_addresses(a: Answer<Vec<IpAddr>>, aaaa: Answer<Vec<IpAddr>>) -> Answer<Vec<IpAddr>> {
    match (a, aaaa) {
        (Answer::Found(mut v4), Answer::Found(v6)) => {
            v4.extend(v6);
            Answer::Found(v4)
        }
        (Answer::Found(ips), _) | (_, Answer::Found(ips)) => Answer::Found(ips),
        (Answer::Temporary, _) | (_, Answer::Temporary) => Answer::Temporary,
        (Answer::NxDomain, _) | (_, Answer::NxDomain) => Answer::NxDomain,
        (Answer::NoData, Answer::NoData) => Answer::NoData,
    }
}

/// The hosts of an MX answer for `domain`, in the order to try them.
pub fn mx_plan(
    domain: &str,
    answer: Answer<Vec<(u16, String)>>,
    myhostname: &str,
) -> Result<MxPlan, DnsFailure> {
    let records = match answer {
        Answer::Found(records) => records,
        Answer::NoData => return Ok(MxPlan::Domain),
        other => return Err(lookup_failure(domain, "MX", &other)),
    };
    if let [(_, exchange)] = records.as_slice()
        && exchange == "."
    {
        return Err(DnsFailure {
            status: DeliveryStatus::Bounced,
            dsn: code::NULL_MX,
            reason: format!("Domain {domain} does not accept mail (nullMX)"),
        });
    }
    let ordered = order_mx(records, &mut shuffle_with(seed()));
    let me = host_name(myhostname);
    let hosts: Vec<String> = match ordered.iter().position(|(_, h)| host_name(h) == me) {
        // This host and the ones it would relay to are not to be tried.
        Some(i) => {
            let mine = ordered[i].0;
            ordered
                .into_iter()
                .filter(|(p, _)| *p < mine)
                .map(|(_, h)| h)
                .collect()
        }
        None => ordered.into_iter().map(|(_, h)| h).collect(),
    };
    let hosts: Vec<String> = hosts.into_iter().filter(|h| h != ".").collect();
    if hosts.is_empty() {
        return Err(DnsFailure {
            status: DeliveryStatus::Bounced,
            dsn: code::LOOP,
            reason: format!("mail for {domain} loops back to myself"),
        });
    }
    Ok(MxPlan::Hosts(hosts))
}

/// MX records sorted by preference; `shuffle` puts each group of equal
/// preference in random order.
pub fn order_mx(
    mut records: Vec<(u16, String)>,
    shuffle: &mut impl FnMut(&mut [(u16, String)]),
) -> Vec<(u16, String)> {
    records.sort_by_key(|(p, _)| *p);
    let mut start = 0;
    while start < records.len() {
        let pref = records[start].0;
        let end = records[start..]
            .iter()
            .position(|(p, _)| *p != pref)
            .map_or(records.len(), |n| start + n);
        shuffle(&mut records[start..end]);
        start = end;
    }
    records
}

/// A Fisher-Yates shuffle driven by xorshift from `seed`.
pub fn shuffle_with<T>(mut seed: u64) -> impl FnMut(&mut [T]) {
    move |items: &mut [T]| {
        for i in (1..items.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let j = (seed % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// A random seed (the standard library's per-process hash keys).
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::queue::id::now_micros());
    h.finish() | 1
}

/// Why no host of a next hop has an address: a temporary failure of any
/// defers, else the last failure bounces.
fn no_addresses(failures: &[(String, Answer<Vec<IpAddr>>)]) -> DnsFailure {
    let pick = failures
        .iter()
        .find(|(_, a)| *a == Answer::Temporary)
        .or(failures.last());
    match pick {
        Some((host, answer)) => lookup_failure(host, "A", answer),
        None => DnsFailure {
            status: DeliveryStatus::Deferred,
            dsn: code::DNS_TEMP,
            reason: "Host or domain name not found: no hosts to try".into(),
        },
    }
}

/// No nameserver, and no host of the next hop in /etc/hosts: deferred (the
/// administrator adds a nameserver or the host), saying which files to fix.
fn not_in_hosts(failures: &[(String, Answer<Vec<IpAddr>>)]) -> DnsFailure {
    let names: Vec<&str> = failures.iter().map(|(h, _)| h.as_str()).collect();
    DnsFailure {
        status: DeliveryStatus::Deferred,
        dsn: code::DNS_TEMP,
        reason: format!(
            "Host or domain name not found. Name service error for name={} type=A: \
             not in /etc/hosts, and {} names no nameserver to ask",
            names.join(","),
            crate::dns::RESOLV_CONF
        ),
    }
}

/// Postfix's text for a failed lookup of `name`.
fn lookup_failure<T>(name: &str, kind: &str, answer: &Answer<T>) -> DnsFailure {
    let (status, dsn, what) = match answer {
        Answer::NxDomain => (DeliveryStatus::Bounced, code::NO_ROUTE, "Host not found"),
        Answer::NoData | Answer::Found(_) => (
            DeliveryStatus::Bounced,
            code::NO_ROUTE,
            "Host found but no data record of requested type",
        ),
        Answer::Temporary => (
            DeliveryStatus::Deferred,
            code::DNS_TEMP,
            "Host not found, try again",
        ),
    };
    DnsFailure {
        status,
        dsn,
        reason: format!(
            "Host or domain name not found. Name service error for name={name} type={kind}: {what}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(records: &[(u16, &str)]) -> Answer<Vec<(u16, String)>> {
        Answer::Found(records.iter().map(|(p, h)| (*p, h.to_string())).collect())
    }

    fn hosts(plan: Result<MxPlan, DnsFailure>) -> Vec<String> {
        match plan {
            Ok(MxPlan::Hosts(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mx_hosts_by_preference() {
        let plan = mx_plan(
            "example.com",
            mx(&[
                (20, "b.example.com"),
                (10, "a.example.com"),
                (30, "c.example.com"),
            ]),
            "me.example.org",
        );
        assert_eq!(
            hosts(plan),
            ["a.example.com", "b.example.com", "c.example.com"]
        );
    }

    #[test]
    fn equal_preferences_are_shuffled_within_their_group() {
        let records: Vec<_> = [(10, "a1"), (20, "b1"), (10, "a2"), (10, "a3"), (20, "b2")]
            .iter()
            .map(|(p, h)| (*p, h.to_string()))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 1..200u64 {
            let ordered = order_mx(records.clone(), &mut shuffle_with(seed));
            let names: Vec<&str> = ordered.iter().map(|(_, h)| h.as_str()).collect();
            let (first, second) = names.split_at(3);
            let mut a = first.to_vec();
            a.sort_unstable();
            assert_eq!(a, ["a1", "a2", "a3"]);
            let mut b = second.to_vec();
            b.sort_unstable();
            assert_eq!(b, ["b1", "b2"]);
            seen.insert(names.join(","));
        }
        // Every order of the first group shows up.
        assert!(seen.len() >= 6, "{seen:?}");
    }

    #[test]
    fn no_mx_means_the_domain_itself() {
        assert_eq!(
            mx_plan("example.com", Answer::NoData, "me"),
            Ok(MxPlan::Domain)
        );
    }

    #[test]
    fn null_mx_bounces() {
        let e = mx_plan("example.com", mx(&[(0, ".")]), "me").unwrap_err();
        assert_eq!(
            (e.status, e.dsn),
            (DeliveryStatus::Bounced, crate::outcome::code::NULL_MX)
        );
        assert_eq!(e.reason, "Domain example.com does not accept mail (nullMX)");
        // A "." among real hosts is only skipped.
        assert_eq!(
            hosts(mx_plan("x", mx(&[(0, "."), (10, "mx.x")]), "me")),
            ["mx.x"]
        );
    }

    #[test]
    fn lookup_errors_have_postfix_texts() {
        let e = mx_plan("nowhere.example", Answer::NxDomain, "me").unwrap_err();
        assert_eq!(
            (e.status, e.dsn),
            (DeliveryStatus::Bounced, crate::outcome::code::NO_ROUTE)
        );
        assert_eq!(
            e.reason,
            "Host or domain name not found. Name service error for name=nowhere.example type=MX: Host not found"
        );
        let e = mx_plan("slow.example", Answer::Temporary, "me").unwrap_err();
        assert_eq!(
            (e.status, e.dsn),
            (DeliveryStatus::Deferred, crate::outcome::code::DNS_TEMP)
        );
        assert_eq!(
            e.reason,
            "Host or domain name not found. Name service error for name=slow.example type=MX: Host not found, try again"
        );
        // Hosts without addresses: a temporary failure wins.
        let f = no_addresses(&[
            ("a.example".into(), Answer::NxDomain),
            ("b.example".into(), Answer::Temporary),
        ]);
        assert_eq!(
            (f.status, f.dsn),
            (DeliveryStatus::Deferred, crate::outcome::code::DNS_TEMP)
        );
        assert!(f.reason.contains("name=b.example type=A"), "{}", f.reason);
        let f = no_addresses(&[("a.example".into(), Answer::NxDomain)]);
        assert_eq!(
            (f.status, f.dsn),
            (DeliveryStatus::Bounced, crate::outcome::code::NO_ROUTE)
        );
    }

    #[test]
    fn an_mx_pointing_here_does_not_loop() {
        let records = [
            (10, "mx1.example.com"),
            (20, "Mail.Example.ORG"),
            (20, "mx2.example.com"),
            (30, "mx3.example.com"),
        ];
        // Only the better ones stay.
        assert_eq!(
            hosts(mx_plan("example.com", mx(&records), "mail.example.org.")),
            ["mx1.example.com"]
        );
        // The best MX is this host: nothing to try.
        let e = mx_plan(
            "example.com",
            mx(&[(5, "mail.example.org"), (10, "b")]),
            "mail.example.org",
        )
        .unwrap_err();
        assert_eq!(
            (e.status, e.dsn),
            (DeliveryStatus::Bounced, crate::outcome::code::LOOP)
        );
        assert_eq!(e.reason, "mail for example.com loops back to myself");
    }

    #[test]
    fn addresses_combine_ipv4_first() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            combine_addresses(Answer::Found(vec![v4]), Answer::Found(vec![v6])),
            Answer::Found(vec![v4, v6])
        );
        assert_eq!(
            combine_addresses(Answer::Temporary, Answer::Found(vec![v6])),
            Answer::Found(vec![v6])
        );
        assert_eq!(
            combine_addresses(Answer::NoData, Answer::Temporary),
            Answer::Temporary
        );
        assert_eq!(
            combine_addresses(Answer::NxDomain, Answer::NoData),
            Answer::NxDomain
        );
        assert_eq!(
            combine_addresses(Answer::NoData, Answer::NoData),
            Answer::NoData
        );
    }

    #[test]
    fn names() {
        assert_eq!(host_name("MX.Example.COM."), "mx.example.com");
        assert_eq!(host_name("."), ".");
        assert_eq!(host_name(""), ".");
        assert_eq!(fqdn("a.b"), "a.b.");
        assert_eq!(fqdn("a.b."), "a.b.");
    }

    #[tokio::test]
    async fn literals_need_no_lookup() {
        let r = Resolver::new(&["127.0.0.1:9".parse().unwrap()]);
        let n = Nexthop::parse("[192.0.2.7]:2525").unwrap();
        assert_eq!(
            r.resolve(&n, 2525, "me").await.unwrap(),
            [Target {
                host: "192.0.2.7".into(),
                addr: "192.0.2.7:2525".parse::<SocketAddr>().unwrap().into()
            }]
        );
    }
}
