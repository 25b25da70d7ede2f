//! A small authoritative DNS server on loopback for the MX and policy
//! tests: UDP and TCP on the same port of 127.0.0.1, answering from a zone
//! given as data (MX, A, AAAA, TXT, PTR), NXDOMAIN for names it does not
//! hold, NODATA (NOERROR, no answer) for a type a known name lacks,
//! SERVFAIL for chosen names, and no answer at all (the client times out)
//! for others.
//! Postern is pointed at it with `[dns] servers = ["127.0.0.1:PORT"]`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The data the server answers from.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    /// (owner name, lower-case without the final dot; value), in the
    /// order given: answers keep it, so a test can list MX records out of
    /// preference order.
    records: Vec<(String, Value)>,
    servfail: Vec<String>,
    silent: Vec<String>,
}

#[derive(Clone, Debug)]
enum Value {
    Mx(u16, String),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Txt(String),
    Ptr(String),
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// `name MX preference exchange`; an exchange of "." is the null MX.
    pub fn mx(mut self, name: &str, preference: u16, exchange: &str) -> Zone {
        self.records
            .push((norm(name), Value::Mx(preference, exchange.to_string())));
        self
    }

    /// RFC 7505: `name MX 0 .`
    pub fn null_mx(self, name: &str) -> Zone {
        self.mx(name, 0, ".")
    }

    pub fn a(mut self, name: &str, ip: &str) -> Zone {
        let ip = ip.parse().expect("an IPv4 address");
        self.records.push((norm(name), Value::A(ip)));
        self
    }

    pub fn aaaa(mut self, name: &str, ip: &str) -> Zone {
        let ip = ip.parse().expect("an IPv6 address");
        self.records.push((norm(name), Value::Aaaa(ip)));
        self
    }

    /// Every query for `name` (any type) gets SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Zone {
        self.servfail.push(norm(name));
        self
    }

    /// `name TXT "text"` (a text longer than 255 bytes in several
    /// strings, which a client joins).
    pub fn txt(mut self, name: &str, text: &str) -> Zone {
        self.records
            .push((norm(name), Value::Txt(text.to_string())));
        self
    }

    /// The PTR record of an IPv4 address: `d.c.b.a.in-addr.arpa PTR host`.
    pub fn ptr(mut self, ip: &str, host: &str) -> Zone {
        let ip: Ipv4Addr = ip.parse().expect("an IPv4 address");
        let o = ip.octets();
        let name = format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
        self.records.push((name, Value::Ptr(norm(host))));
        self
    }

    /// Queries for `name` (any type) get no answer at all: the client
    /// times out.
    pub fn silent(mut self, name: &str) -> Zone {
        self.silent.push(norm(name));
        self
    }
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The running server; stopped when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    zone: Zone,
    stop: AtomicBool,
    /// Every question asked: (name, type), e.g. ("example.test", "MX").
    queries: Mutex<Vec<(String, String)>>,
}

impl DnsServer {
    /// Serve `zone` on 127.0.0.1, UDP and TCP on one free port.
    pub fn start(zone: Zone) -> DnsServer {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            zone,
            stop: AtomicBool::new(false),
            queries: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let udp_thread = std::thread::spawn(move || serve_udp(udp, &s));
        let s = shared.clone();
        let tcp_thread = std::thread::spawn(move || serve_tcp(tcp, &s));
        DnsServer {
            addr,
            shared,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// The questions asked so far, as (name, type).
    pub fn queries(&self) -> Vec<(String, String)> {
        self.shared.queries.lock().unwrap().clone()
    }

    /// The `[dns]` table that points postern at this server.
    pub fn config_table(&self) -> String {
        format!("[dns]\nservers = [\"{}\"]\n", self.addr)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A UDP socket and a TCP listener on the same port of 127.0.0.1.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP");
}

fn serve_udp(sock: UdpSocket, shared: &Shared) {
    let mut buf = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = answer(shared, &buf[..n]) {
            let _ = sock.send_to(&reply, peer);
        }
    }
}

fn serve_tcp(listener: TcpListener, shared: &Arc<Shared>) {
    let mut conns = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let s = shared.clone();
                conns.push(std::thread::spawn(move || serve_tcp_conn(stream, &s)));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

/// RFC 1035 4.2.2: each message with a two-byte length in front.
fn serve_tcp_conn(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    let mut idle = 0;
    while !shared.stop.load(Ordering::SeqCst) && idle < 200 {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                idle = 0;
                pending.extend_from_slice(&buf[..n]);
            }
            Err(_) => {
                idle += 1;
                continue;
            }
        }
        while pending.len() >= 2 {
            let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
            if pending.len() < 2 + len {
                break;
            }
            let msg: Vec<u8> = pending.drain(..2 + len).skip(2).collect();
            let Some(reply) = answer(shared, &msg) else {
                // Not a query, or a silent name: no reply.
                continue;
            };
            let mut out = (reply.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&reply);
            if stream.write_all(&out).is_err() {
                return;
            }
        }
    }
}

/// The response to one query message; `None` for what is not a query.
fn answer(shared: &Shared, bytes: &[u8]) -> Option<Vec<u8>> {
    let req = Message::from_vec(bytes).ok()?;
    if req.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.authoritative = true;
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.add_queries(req.queries.iter().cloned());
    if req.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        resp.set_edns(edns);
    }
    let (code, answers, soa) = match (req.metadata.op_code, req.queries.first()) {
        (OpCode::Query, Some(q)) => lookup(shared, q)?,
        _ => (ResponseCode::FormErr, Vec::new(), None),
    };
    resp.metadata.response_code = code;
    for r in answers {
        resp.add_answer(r);
    }
    if let Some(soa) = soa {
        resp.authorities.push(soa);
    }
    resp.to_vec().ok()
}

/// Response code, answer records and (for a negative answer) the SOA for
/// the authority section; `None` for a silent name.
fn lookup(shared: &Shared, q: &Query) -> Option<(ResponseCode, Vec<Record>, Option<Record>)> {
    let name = norm(&q.name().to_ascii());
    let qtype = q.query_type();
    shared
        .queries
        .lock()
        .unwrap()
        .push((name.clone(), qtype.to_string()));
    if shared.zone.silent.contains(&name) {
        return None;
    }
    if shared.zone.servfail.contains(&name) {
        return Some((ResponseCode::ServFail, Vec::new(), None));
    }
    let owner = q.name().clone();
    let mut known = false;
    let mut answers = Vec::new();
    for (n, v) in &shared.zone.records {
        if *n != name {
            continue;
        }
        known = true;
        let rdata = match (v, qtype) {
            (Value::Mx(pref, exch), RecordType::MX) => {
                let exchange = if exch == "." {
                    Name::root()
                } else {
                    Name::from_ascii(format!("{}.", norm(exch))).expect("an exchange name")
                };
                RData::MX(MX::new(*pref, exchange))
            }
            (Value::A(ip), RecordType::A) => RData::A(A(*ip)),
            (Value::Aaaa(ip), RecordType::AAAA) => RData::AAAA(AAAA(*ip)),
            // A long text as a zone file has it: strings of 255 bytes.
            (Value::Txt(text), RecordType::TXT) => RData::TXT(TXT::new(
                text.as_bytes()
                    .chunks(255)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect(),
            )),
            (Value::Ptr(host), RecordType::PTR) => RData::PTR(PTR(Name::from_ascii(format!(
                "{host}."
            ))
            .expect("a host name"))),
            _ => continue,
        };
        answers.push(Record::from_rdata(owner.clone(), 60, rdata));
    }
    Some(match (known, answers.is_empty()) {
        (false, _) => (ResponseCode::NXDomain, answers, Some(soa(&name))),
        (true, true) => (ResponseCode::NoError, answers, Some(soa(&name))),
        (true, false) => (ResponseCode::NoError, answers, None),
    })
}

/// The SOA of the zone a name is in: its last label (`test.`).
fn soa(name: &str) -> Record {
    let apex = name.rsplit('.').next().unwrap_or("");
    let apex = Name::from_ascii(format!("{apex}.")).unwrap_or_else(|_| Name::root());
    let ns = Name::from_ascii("ns.test.").unwrap();
    let mbox = Name::from_ascii("hostmaster.test.").unwrap();
    Record::from_rdata(
        apex,
        60,
        RData::SOA(SOA::new(ns, mbox, 1, 3600, 600, 86400, 60)),
    )
}

/// Ask `server` one question over UDP (or TCP); the whole response.
pub fn query(server: SocketAddr, name: &str, rtype: RecordType, tcp: bool) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let bytes = m.to_vec().unwrap();
    let reply = if tcp {
        let mut s = TcpStream::connect(server).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&bytes);
        s.write_all(&out).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).unwrap();
        buf
    } else {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(&bytes, server).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    let resp = Message::from_vec(&reply).unwrap();
    assert_eq!(resp.metadata.id, m.metadata.id);
    assert_eq!(resp.metadata.message_type, MessageType::Response);
    resp
}

/// MX answers as (preference, exchange without the final dot), in order.
pub fn mx_answers(m: &Message) -> Vec<(u16, String)> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some((mx.preference, norm(&mx.exchange.to_ascii()))),
            _ => None,
        })
        .collect()
}

/// The self-tests: the server answers real DNS messages as the MX tests
/// rely on.
mod tests {
    use super::*;

    fn zone() -> Zone {
        Zone::new()
            .mx("example.test", 20, "mx2.example.test")
            .mx("example.test", 10, "mx1.example.test")
            .a("mx1.example.test", "127.0.0.10")
            .a("mx2.example.test", "127.0.0.11")
            .a("amx.test", "127.0.0.12")
            .aaaa("six.test", "::1")
            .null_mx("nullmx.test")
            .servfail("broken.test")
    }

    #[test]
    fn answers_mx_a_nxdomain_servfail_over_udp_and_tcp() {
        let dns = DnsServer::start(zone());
        for tcp in [false, true] {
            let r = query(dns.addr, "example.test.", RecordType::MX, tcp);
            assert_eq!(r.metadata.response_code, ResponseCode::NoError);
            assert!(r.metadata.authoritative);
            assert_eq!(
                mx_answers(&r),
                vec![
                    (20, "mx2.example.test".to_string()),
                    (10, "mx1.example.test".to_string())
                ]
            );
            // Case does not matter, as in DNS.
            let r = query(dns.addr, "MX1.Example.TEST.", RecordType::A, tcp);
            let ips: Vec<_> = r
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            assert_eq!(ips, vec![Ipv4Addr::new(127, 0, 0, 10)]);
            // A name without MX: NODATA (NOERROR, no answer, an SOA).
            let r = query(dns.addr, "amx.test.", RecordType::MX, tcp);
            assert_eq!(r.metadata.response_code, ResponseCode::NoError);
            assert!(r.answers.is_empty());
            assert_eq!(r.authorities.len(), 1);
            assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
            let r = query(dns.addr, "six.test.", RecordType::AAAA, tcp);
            assert!(matches!(r.answers[0].data, RData::AAAA(a) if a.0 == Ipv6Addr::LOCALHOST));
            // Null MX: one MX with preference 0 and the root as exchange.
            let r = query(dns.addr, "nullmx.test.", RecordType::MX, tcp);
            match &r.answers[0].data {
                RData::MX(mx) => {
                    assert_eq!(mx.preference, 0);
                    assert!(mx.exchange.is_root());
                }
                other => panic!("{other:?}"),
            }
            let r = query(dns.addr, "nowhere.test.", RecordType::MX, tcp);
            assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
            assert!(r.answers.is_empty());
            let r = query(dns.addr, "broken.test.", RecordType::MX, tcp);
            assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        }
        let asked = dns.queries();
        assert!(
            asked.contains(&("example.test".into(), "MX".into())),
            "{asked:?}"
        );
        assert!(
            asked.contains(&("mx1.example.test".into(), "A".into())),
            "{asked:?}"
        );
    }

    /// TXT and PTR records are served; a silent name gets no answer.
    #[test]
    fn answers_txt_and_ptr_and_stays_silent() {
        let dns = DnsServer::start(
            Zone::new()
                .txt("2.0.0.127.bl.test", "listed, see https://bl.test/")
                .ptr("192.0.2.7", "host.example.test")
                .silent("slow.test"),
        );
        for tcp in [false, true] {
            let r = query(dns.addr, "2.0.0.127.bl.test.", RecordType::TXT, tcp);
            match &r.answers[0].data {
                RData::TXT(t) => assert_eq!(&*t.txt_data[0], b"listed, see https://bl.test/"),
                other => panic!("{other:?}"),
            }
            let r = query(dns.addr, "7.2.0.192.in-addr.arpa.", RecordType::PTR, tcp);
            match &r.answers[0].data {
                RData::PTR(p) => assert_eq!(p.0.to_ascii(), "host.example.test."),
                other => panic!("{other:?}"),
            }
        }
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("slow.test.").unwrap(),
            RecordType::A,
        ));
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.send_to(&m.to_vec().unwrap(), dns.addr).unwrap();
        let mut buf = [0u8; 512];
        assert!(s.recv_from(&mut buf).is_err(), "a silent name was answered");
        assert!(dns.queries().contains(&("slow.test".into(), "A".into())));
    }

    /// EDNS queries (as stub resolvers send them) get an OPT back.
    #[test]
    fn answers_edns_queries() {
        let dns = DnsServer::start(zone());
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("example.test.").unwrap(),
            RecordType::MX,
        ));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        m.set_edns(edns);
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(&m.to_vec().unwrap(), dns.addr).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        let r = Message::from_vec(&buf[..n]).unwrap();
        assert!(r.edns.is_some());
        assert_eq!(mx_answers(&r).len(), 2);
    }

    /// The system's own tools agree, when dig is installed (optional).
    #[test]
    fn answers_dig_when_installed() {
        let dns = DnsServer::start(zone());
        let Ok(out) = std::process::Command::new("dig")
            .args([
                "+short",
                "+tries=1",
                "+time=3",
                "-p",
                &dns.addr.port().to_string(),
                "@127.0.0.1",
                "example.test",
                "MX",
            ])
            .output()
        else {
            eprintln!("dig not installed: skipped");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text, "20 mx2.example.test.\n10 mx1.example.test.\n");
    }
}
