//! The DNS resolver that smtpd's checks and the smtp client share:
//! hickory-resolver on the system's configuration (/etc/resolv.conf), or
//! on `dns.servers` (UDP and TCP, no hosts file, no search domains).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;

/// A resolver for `servers` (the system's when empty), each query waiting
/// `timeout` per attempt, 2 attempts.
pub fn resolver(servers: &[SocketAddr], timeout: Duration) -> Result<TokioResolver, String> {
    if servers.is_empty() {
        return TokioResolver::builder_tokio()
            .and_then(|b| b.build())
            .map_err(|e| format!("cannot use the system's resolver configuration: {e}"));
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
    let mut builder = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        TokioRuntimeProvider::default(),
    );
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 2;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    builder
        .build()
        .map_err(|e| format!("cannot set up the resolver: {e}"))
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
