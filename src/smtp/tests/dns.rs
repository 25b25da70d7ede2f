//! The resolver against a tiny DNS server on loopback (UDP), to check
//! that hickory's answers and errors are read as meant. (The end-to-end
//! MX tests with a real DNS server are in tests/e2e.)

use std::net::{Ipv4Addr, SocketAddr};

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, MX};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

use crate::ipc::DeliveryStatus;
use crate::smtp::dns::{Resolver, Target};
use crate::transport::Nexthop;

/// Answer queries from a fixed zone until the test ends.
async fn dns_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(q) = query.queries.first().cloned() else {
                continue;
            };
            let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.add_query(q.clone());
            let name = q.name().to_ascii().to_ascii_lowercase();
            let (code, answers) = zone(&name, q.query_type());
            reply.metadata.response_code = code;
            for rdata in answers {
                reply.add_answer(Record::from_rdata(q.name().clone(), 60, rdata));
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, from).await;
            }
        }
    });
    addr
}

fn name(n: &str) -> Name {
    Name::from_ascii(n).unwrap()
}

fn a(ip: [u8; 4]) -> RData {
    RData::A(A(Ipv4Addr::from(ip)))
}

fn zone(qname: &str, kind: RecordType) -> (ResponseCode, Vec<RData>) {
    use RecordType::{A as TA, MX as TMX};
    let mx = |p, n: &str| RData::MX(MX::new(p, name(n)));
    match (qname, kind) {
        ("mx.test.", TMX) => (
            ResponseCode::NoError,
            vec![
                mx(20, "b.mx.test."),
                mx(10, "a.mx.test."),
                mx(30, "gone.mx.test."),
            ],
        ),
        ("a.mx.test.", TA) => (ResponseCode::NoError, vec![a([127, 0, 0, 1])]),
        ("b.mx.test.", TA) => (
            ResponseCode::NoError,
            vec![a([127, 0, 0, 2]), a([127, 0, 0, 3])],
        ),
        ("gone.mx.test.", _) => (ResponseCode::NXDomain, vec![]),
        ("nomx.test.", TA) => (ResponseCode::NoError, vec![a([127, 0, 0, 4])]),
        ("null.test.", TMX) => (ResponseCode::NoError, vec![mx(0, ".")]),
        ("self.test.", TMX) => (
            ResponseCode::NoError,
            vec![mx(10, "client.test."), mx(20, "a.mx.test.")],
        ),
        (n, _) if n.starts_with("nx.") => (ResponseCode::NXDomain, vec![]),
        (n, _) if n.starts_with("fail.") => (ResponseCode::ServFail, vec![]),
        _ => (ResponseCode::NoError, vec![]),
    }
}

async fn resolve(
    server: SocketAddr,
    nexthop: &str,
) -> Result<Vec<Target>, crate::smtp::dns::DnsFailure> {
    let resolver = Resolver::new(&[server]);
    resolver
        .resolve(&Nexthop::parse(nexthop).unwrap(), 25, "client.test")
        .await
}

fn addrs(targets: &[Target]) -> Vec<String> {
    targets
        .iter()
        .map(|t| format!("{} {}", t.host, t.addr))
        .collect()
}

#[tokio::test]
async fn mx_hosts_in_preference_order_with_their_addresses() {
    let server = dns_server().await;
    let targets = resolve(server, "mx.test").await.unwrap();
    // The MX host that does not exist is skipped.
    assert_eq!(
        addrs(&targets),
        [
            "a.mx.test 127.0.0.1:25",
            "b.mx.test 127.0.0.2:25",
            "b.mx.test 127.0.0.3:25"
        ]
    );
    // [host]: no MX lookup.
    let targets = resolve(server, "[a.mx.test]:2525").await.unwrap();
    assert_eq!(addrs(&targets), ["a.mx.test 127.0.0.1:25"]);
}

#[tokio::test]
async fn without_mx_the_domain_itself() {
    let server = dns_server().await;
    let targets = resolve(server, "nomx.test").await.unwrap();
    assert_eq!(addrs(&targets), ["nomx.test 127.0.0.4:25"]);
}

#[tokio::test]
async fn failures_bounce_or_defer() {
    let server = dns_server().await;
    let e = resolve(server, "null.test").await.unwrap_err();
    assert_eq!(
        (e.status, e.dsn),
        (DeliveryStatus::Bounced, crate::outcome::code::NULL_MX)
    );
    let e = resolve(server, "nx.test").await.unwrap_err();
    assert_eq!(
        (e.status, e.dsn),
        (DeliveryStatus::Bounced, crate::outcome::code::NO_ROUTE)
    );
    assert_eq!(
        e.reason,
        "Host or domain name not found. Name service error for name=nx.test type=MX: Host not found"
    );
    let e = resolve(server, "fail.test").await.unwrap_err();
    assert_eq!(
        (e.status, e.dsn),
        (DeliveryStatus::Deferred, crate::outcome::code::DNS_TEMP)
    );
    assert_eq!(
        e.reason,
        "Host or domain name not found. Name service error for name=fail.test type=MX: Host not found, try again"
    );
    let e = resolve(server, "[nx.host.test]").await.unwrap_err();
    assert_eq!(
        (e.status, e.dsn),
        (DeliveryStatus::Bounced, crate::outcome::code::NO_ROUTE)
    );
    let e = resolve(server, "[nothing.test]").await.unwrap_err();
    assert_eq!(
        (e.status, e.reason.as_str()),
        (
            DeliveryStatus::Bounced,
            "Host or domain name not found. Name service error for name=nothing.test type=A: \
             Host found but no data record of requested type"
        )
    );
    let e = resolve(server, "self.test").await.unwrap_err();
    assert_eq!(
        (e.status, e.dsn, e.reason.as_str()),
        (
            DeliveryStatus::Bounced,
            crate::outcome::code::LOOP,
            "mail for self.test loops back to myself"
        )
    );
}
