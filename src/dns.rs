//! The DNS resolver that smtpd's checks and the smtp client share:
//! hickory-resolver on the system's configuration (/etc/hosts first, then
//! the nameservers of /etc/resolv.conf, as glibc's `hosts: files dns`), or
//! on `dns.servers` (UDP and TCP, no hosts file, no search domains).
//!
//! A system whose /etc/resolv.conf names no nameserver (a NixOS test VM, a
//! container without network, a host that lists its peers in /etc/hosts)
//! still resolves what /etc/hosts lists: hickory refuses to build a
//! resolver from such a file, so postern builds one with no nameserver and
//! the hosts file alone ([`Source::HostsOnly`]), and says so once in the log.
//!
//! The verifier's resolver ([`auth_resolver`]) is the same but for one
//! thing: an address lookup asks A alone. mail-auth's SPF `exists:` asks
//! hickory's `lookup_ip`, which asks AAAA when there is no A; RFC 7208
//! section 5.7 wants A alone, whatever the client's address family
//! (the RFC 7208 test suite's `exists-ip6only`). mail-auth asks A and
//! AAAA by name everywhere else.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::RuntimeProvider;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::system_conf::parse_resolv_conf;
use hickory_resolver::{ResolverBuilder, TokioResolver};

/// The system's resolver configuration.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Where a resolver's answers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `dns.servers`: those nameservers only.
    Servers,
    /// /etc/hosts, then the nameservers of /etc/resolv.conf.
    System,
    /// /etc/resolv.conf is missing or names no nameserver: /etc/hosts
    /// alone; every other name fails temporarily.
    HostsOnly,
}

/// A resolver for `servers` (the system's when empty), each query waiting
/// `timeout` per attempt, 2 attempts.
pub fn resolver(
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<(TokioResolver, Source), String> {
    resolver_with(servers, timeout, LookupIpStrategy::default())
}

/// As [`resolver`], with address lookups (`lookup_ip`) that ask A alone:
/// for mail-auth's checks.
pub fn auth_resolver(
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<(TokioResolver, Source), String> {
    resolver_with(servers, timeout, LookupIpStrategy::Ipv4Only)
}

fn resolver_with(
    servers: &[SocketAddr],
    timeout: Duration,
    ip: LookupIpStrategy,
) -> Result<(TokioResolver, Source), String> {
    if servers.is_empty() {
        return system_resolver(Path::new(RESOLV_CONF), ip);
    }
    let servers = servers
        .iter()
        .map(|s| {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = s.port();
            let mut server = NameServerConfig::udp_and_tcp(s.ip());
            server.connections = vec![udp, tcp];
            server
        })
        .collect();
    let mut builder = without_tls(TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        TokioRuntimeProvider::default(),
    ));
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 2;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    opts.ip_strategy = ip;
    builder
        .build()
        .map(|r| (r, Source::Servers))
        .map_err(|e| format!("cannot set up the resolver: {e}"))
}

/// The system's resolver from `resolv_conf`, or /etc/hosts alone when it
/// names no nameserver.
fn system_resolver(
    resolv_conf: &Path,
    ip: LookupIpStrategy,
) -> Result<(TokioResolver, Source), String> {
    let text = match std::fs::read(resolv_conf) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(format!(
                "cannot read the system's resolver configuration {}: {e}",
                resolv_conf.display()
            ));
        }
    };
    if let Some(text) = text.filter(|t| names_a_nameserver(t)) {
        return parse_resolv_conf(text)
            .and_then(|(config, opts)| {
                let mut builder = without_tls(TokioResolver::builder_with_config(
                    config,
                    TokioRuntimeProvider::default(),
                ));
                *builder.options_mut() = opts;
                builder.options_mut().use_hosts_file = ResolveHosts::Always;
                builder.options_mut().ip_strategy = ip;
                builder.build()
            })
            .map(|r| (r, Source::System))
            .map_err(|e| {
                format!(
                    "cannot use the system's resolver configuration {}: {e}",
                    resolv_conf.display()
                )
            });
    }
    let mut builder = without_tls(TokioResolver::builder_with_config(
        ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
        TokioRuntimeProvider::default(),
    ));
    builder.options_mut().use_hosts_file = ResolveHosts::Always;
    builder.options_mut().ndots = 0;
    builder.options_mut().ip_strategy = ip;
    builder
        .build()
        .map(|r| (r, Source::HostsOnly))
        .map_err(|e| format!("cannot set up a resolver on /etc/hosts: {e}"))
}

/// The resolver with TLS settings that load nothing. hickory is built
/// with DNS over TLS because mail-auth asks for it, and then makes its
/// TLS settings eagerly, at every build, loading the system's CA
/// certificates: time, and a warning per certificate in smtpd's sandbox,
/// which cannot read them. postern asks its nameservers over UDP and TCP
/// only, so no certificate is ever needed.
fn without_tls<P: RuntimeProvider>(builder: ResolverBuilder<P>) -> ResolverBuilder<P> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => builder.with_tls_config(
            b.with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
        Err(_) => builder,
    }
}

/// Whether resolv.conf text has a `nameserver` line (glibc's reading:
/// the keyword at the start of a line, `#` and `;` start comments).
fn names_a_nameserver(text: &[u8]) -> bool {
    String::from_utf8_lossy(text).lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some("nameserver") && words.next().is_some()
    })
}

/// Why a lookup found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The name does not exist.
    NxDomain,
    /// The name exists, without records of the type.
    NoData,
    /// No answer now (SERVFAIL, timeout, no resolver).
    Temporary,
}

/// How hickory reports a lookup that found nothing.
pub fn failure(e: &NetError) -> Failure {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr))
            if nr.response_code == ResponseCode::NXDomain =>
        {
            Failure::NxDomain
        }
        NetError::Dns(DnsError::NoRecordsFound(_)) => Failure::NoData,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)) => Failure::NxDomain,
        _ => Failure::Temporary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nameserver_line_is_what_counts() {
        assert!(names_a_nameserver(b"nameserver 192.0.2.1\n"));
        assert!(names_a_nameserver(
            b"# systemd\nsearch lan\n  nameserver\t::1\n"
        ));
        assert!(!names_a_nameserver(b""));
        assert!(!names_a_nameserver(b"search example.org\noptions edns0\n"));
        assert!(!names_a_nameserver(
            b"# nameserver 192.0.2.1\n;nameserver 1.1.1.1\n"
        ));
        assert!(!names_a_nameserver(b"nameserver\n"));
    }

    /// Issue 16: no nameserver is no reason to forget /etc/hosts (the
    /// machine's own file names localhost); other names fail at once,
    /// without a query anywhere.
    #[tokio::test]
    async fn issue_16_without_a_nameserver_etc_hosts_still_answers() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("empty", ""), ("search", "search example.org\n")] {
            let conf = dir.path().join(name);
            std::fs::write(&conf, text).unwrap();
            let (r, source) = system_resolver(&conf, LookupIpStrategy::default()).unwrap();
            assert_eq!(source, Source::HostsOnly);
            let ips = r.lookup_ip("localhost.").await.unwrap();
            assert!(ips.iter().any(|ip| ip.is_loopback()), "{ips:?}");
            let started = std::time::Instant::now();
            let e = r.lookup_ip("mail.postern-test.net.").await.unwrap_err();
            assert_eq!(failure(&e), Failure::Temporary, "{e}");
            assert!(started.elapsed() < Duration::from_secs(2));
        }
        let (_, source) =
            system_resolver(&dir.path().join("missing"), LookupIpStrategy::default()).unwrap();
        assert_eq!(source, Source::HostsOnly);
        let conf = dir.path().join("one");
        std::fs::write(&conf, "nameserver 127.0.0.1\n").unwrap();
        assert_eq!(
            system_resolver(&conf, LookupIpStrategy::default())
                .unwrap()
                .1,
            Source::System
        );
    }
}
