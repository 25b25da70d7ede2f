//! A small authoritative DNS server on loopback for the MX, policy and
//! SPF tests: UDP and TCP on the same port of 127.0.0.1, answering from a
//! zone given as data (MX, A, AAAA, TXT, PTR, CNAME and the obsolete SPF
//! type 99), NXDOMAIN for names it does not hold, NODATA (NOERROR, no
//! answer) for a type a known name lacks, SERVFAIL for chosen names, and
//! no answer at all (the client times out) for others, or for the types
//! a name lacks. CNAMEs are followed inside the zone, as an authoritative
//! server does (a loop ends the chain); a UDP answer longer than the
//! client takes (512 bytes, or its EDNS size up to 1232) is sent
//! truncated (TC), for the client to ask again over TCP.
//! Postern is pointed at it with `[dns] servers = ["127.0.0.1:PORT"]`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NULL, PTR, SOA, TXT};
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
    /// Names silent for the types they have no record of.
    silent_otherwise: Vec<String>,
}

#[derive(Clone, Debug)]
enum Value {
    Mx(u16, String),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Txt(String),
    /// One TXT record of exactly these character-strings.
    TxtStrings(Vec<String>),
    /// The obsolete SPF type (99, RFC 4408; RFC 7208 section 3.1 says
    /// not to use it): a TXT's data under another type.
    Spf(Vec<String>),
    Ptr(String),
    Cname(String),
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

    /// `name TXT "s1" "s2" ...`: one record of exactly these strings
    /// (each at most 255 bytes; none at all is allowed, if odd), which a
    /// client joins without a space.
    pub fn txt_strings(mut self, name: &str, strings: &[&str]) -> Zone {
        let strings = strings.iter().map(|s| s.to_string()).collect();
        self.records.push((norm(name), Value::TxtStrings(strings)));
        self
    }

    /// `name SPF "s1" ...` (type 99, as a TXT's data), which RFC 7208
    /// clients do not ask for.
    pub fn spf(mut self, name: &str, strings: &[&str]) -> Zone {
        let strings = strings.iter().map(|s| s.to_string()).collect();
        self.records.push((norm(name), Value::Spf(strings)));
        self
    }

    /// The PTR record of an IPv4 address: `d.c.b.a.in-addr.arpa PTR host`.
    pub fn ptr(self, ip: &str, host: &str) -> Zone {
        let ip: Ipv4Addr = ip.parse().expect("an IPv4 address");
        let o = ip.octets();
        let name = format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
        self.ptr_at(&name, host)
    }

    /// `name PTR host`, the owner written out (an `in-addr.arpa` or
    /// `ip6.arpa` name).
    pub fn ptr_at(mut self, name: &str, host: &str) -> Zone {
        self.records.push((norm(name), Value::Ptr(norm(host))));
        self
    }

    /// `name CNAME target`: queries for other types of `name` are
    /// answered with the CNAME and what `target` has (followed inside
    /// the zone). `target` keeps its case, as a zone file's does.
    pub fn cname(mut self, name: &str, target: &str) -> Zone {
        let target = target.trim_end_matches('.').to_string();
        self.records.push((norm(name), Value::Cname(target)));
        self
    }

    /// Queries for `name` (any type) get no answer at all: the client
    /// times out.
    pub fn silent(mut self, name: &str) -> Zone {
        self.silent.push(norm(name));
        self
    }

    /// Queries for `name` are answered for the types it has records of;
    /// for the others there is no answer at all (the client times out).
    pub fn silent_otherwise(mut self, name: &str) -> Zone {
        self.silent_otherwise.push(norm(name));
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
        if let Some(reply) = answer(shared, &buf[..n], Transport::Udp) {
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
            let Some(reply) = answer(shared, &msg, Transport::Tcp) else {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// The largest UDP answer sent whole: 512 bytes (RFC 1035 4.2.1), or the
/// client's EDNS size up to 1232 (what the server itself offers).
fn udp_limit(req: &Message) -> usize {
    req.edns
        .as_ref()
        .map_or(512, |e| usize::from(e.max_payload()).clamp(512, 1232))
}

/// The response to one query message; `None` for what is not a query,
/// or for a silent name.
fn answer(shared: &Shared, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
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
    let header_only = resp.clone();
    for r in answers {
        resp.add_answer(r);
    }
    if let Some(soa) = soa {
        resp.authorities.push(soa);
    }
    let whole = resp.to_vec().ok()?;
    if transport == Transport::Udp && whole.len() > udp_limit(&req) {
        // RFC 2181 9: no partial RRset, the TC bit; the client asks
        // again over TCP.
        let mut truncated = header_only;
        truncated.metadata.truncation = true;
        return truncated.to_vec().ok();
    }
    Some(whole)
}

/// A name as the zone keys it: its labels' bytes as they are (no
/// escaping of `:` or `/`, which some test names hold), lower case,
/// without the final dot.
fn key(name: &Name) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    labels.join(".")
}

/// The longest CNAME chain followed.
const CNAME_HOPS: usize = 8;

/// Response code, answer records and (for a negative answer) the SOA for
/// the authority section; `None` for a silent name.
fn lookup(shared: &Shared, q: &Query) -> Option<(ResponseCode, Vec<Record>, Option<Record>)> {
    let qtype = q.query_type();
    let mut name = key(q.name());
    shared
        .queries
        .lock()
        .unwrap()
        .push((name.clone(), qtype.to_string()));
    let zone = &shared.zone;
    let mut owner = q.name().clone();
    let mut answers = Vec::new();
    let mut seen = Vec::new();
    loop {
        if zone.silent.contains(&name) {
            return None;
        }
        if zone.servfail.contains(&name) {
            return Some((ResponseCode::ServFail, Vec::new(), None));
        }
        let (known, found, cname) = rrset(zone, &name, &owner, qtype);
        if zone.silent_otherwise.contains(&name) && found.is_empty() && cname.is_none() {
            return None;
        }
        answers.extend(found);
        let Some(target) = cname else {
            // A chain that ends in a name the zone lacks is NXDOMAIN, with
            // the CNAMEs (RFC 6604 section 2.1).
            let code = if known {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            let negative = !answers.iter().any(|r| r.record_type() == qtype);
            return Some((code, answers, negative.then(|| soa(&name))));
        };
        seen.push(name.clone());
        let target_key = norm(&target);
        if seen.contains(&target_key) || seen.len() > CNAME_HOPS {
            // A loop: the chain as far as it goes.
            return Some((ResponseCode::NoError, answers, None));
        }
        owner = Name::from_ascii(format!("{target}.")).ok()?;
        name = target_key;
    }
}

/// What `name` has of `qtype`, as records owned by `owner`: whether the
/// zone knows the name, the records, and the CNAME target to follow
/// (when the name is an alias and `qtype` is not CNAME; its CNAME record
/// is among the records then).
fn rrset(
    zone: &Zone,
    name: &str,
    owner: &Name,
    qtype: RecordType,
) -> (bool, Vec<Record>, Option<String>) {
    let mut known = false;
    let mut records = Vec::new();
    let mut follow = None;
    for (n, v) in &zone.records {
        if n != name {
            continue;
        }
        known = true;
        let strings = |s: &[String]| TXT::new(s.to_vec());
        let rdata = match (v, qtype) {
            (Value::Mx(pref, exch), RecordType::MX) => {
                let exchange = if norm(exch).is_empty() {
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
            (Value::TxtStrings(s), RecordType::TXT) => RData::TXT(strings(s)),
            (Value::Spf(s), RecordType::Unknown(SPF_TYPE)) => {
                let mut data = Vec::new();
                for s in s {
                    data.push(u8::try_from(s.len()).expect("a string of at most 255 bytes"));
                    data.extend_from_slice(s.as_bytes());
                }
                RData::Unknown {
                    code: RecordType::Unknown(SPF_TYPE),
                    rdata: NULL::with(data),
                }
            }
            (Value::Ptr(host), RecordType::PTR) => RData::PTR(PTR(Name::from_ascii(format!(
                "{host}."
            ))
            .expect("a host name"))),
            (Value::Cname(target), t) => {
                if t != RecordType::CNAME {
                    follow = Some(target.clone());
                }
                RData::CNAME(CNAME(
                    Name::from_ascii(format!("{target}.")).expect("a target name"),
                ))
            }
            _ => continue,
        };
        records.push(Record::from_rdata(owner.clone(), 60, rdata));
    }
    (known, records, follow)
}

/// The obsolete SPF record type's number.
pub const SPF_TYPE: u16 = 99;

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

    fn txt_of(r: &Message) -> Vec<Vec<String>> {
        r.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    /// What the SPF test suite needs: TXT records of several strings (or
    /// none), type 99 beside TXT, CNAME chains and loops, names silent
    /// for the types they lack, long answers truncated over UDP.
    #[test]
    fn answers_strings_spf_cname_and_truncates() {
        let long = "x".repeat(200);
        let mut zone = Zone::new()
            .txt_strings("split.test", &["v=spf1 ip4:", "192.0.2.5 -all"])
            .txt_strings("split.test", &["", "x"])
            .txt_strings("empty.test", &[])
            .spf("spfonly.test", &["v=spf1 -all"])
            .cname("alias.test", "Split.TEST.")
            .cname("loop.test", "Loop2.test")
            .cname("loop2.test", "LOOP.test")
            .cname("dangling.test", "nowhere.test")
            .txt("half.test", "v=spf1 -all")
            .silent_otherwise("half.test");
        for _ in 0..10 {
            zone = zone.txt("big.test", &long);
        }
        let dns = DnsServer::start(zone);
        for tcp in [false, true] {
            let r = query(dns.addr, "split.test.", RecordType::TXT, tcp);
            assert_eq!(
                txt_of(&r),
                vec![vec!["v=spf1 ip4:", "192.0.2.5 -all"], vec!["", "x"]]
            );
            // Type 99 is served; TXT for that name is NODATA.
            let r = query(
                dns.addr,
                "spfonly.test.",
                RecordType::Unknown(SPF_TYPE),
                tcp,
            );
            match &r.answers[0].data {
                RData::Unknown { code, rdata } => {
                    assert_eq!(*code, RecordType::Unknown(SPF_TYPE));
                    assert_eq!(rdata.anything, b"\x0bv=spf1 -all");
                }
                other => panic!("{other:?}"),
            }
            let r = query(dns.addr, "spfonly.test.", RecordType::TXT, tcp);
            assert_eq!(r.metadata.response_code, ResponseCode::NoError);
            assert!(r.answers.is_empty());
            // An alias: its CNAME, then the target's records.
            let r = query(dns.addr, "alias.test.", RecordType::TXT, tcp);
            assert_eq!(r.answers[0].record_type(), RecordType::CNAME);
            assert_eq!(r.answers[1].name.to_ascii(), "Split.TEST.");
            assert_eq!(txt_of(&r).len(), 2);
            let r = query(dns.addr, "loop.test.", RecordType::A, tcp);
            assert_eq!(r.metadata.response_code, ResponseCode::NoError);
            assert_eq!(r.answers.len(), 2, "{r:?}");
            let r = query(dns.addr, "dangling.test.", RecordType::A, tcp);
            assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
            assert_eq!(r.answers.len(), 1);
            let r = query(dns.addr, "half.test.", RecordType::TXT, tcp);
            assert_eq!(txt_of(&r), vec![vec!["v=spf1 -all"]]);
        }
        // Over 512 bytes: UDP says TC with no answer, TCP has it all.
        let r = query(dns.addr, "big.test.", RecordType::TXT, false);
        assert!(r.metadata.truncation);
        assert!(r.answers.is_empty());
        let r = query(dns.addr, "big.test.", RecordType::TXT, true);
        assert!(!r.metadata.truncation);
        assert_eq!(txt_of(&r).len(), 10);
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        // A TXT record of no string at all (illegal, RFC 1035 3.3.14): an
        // RDLENGTH of 0 at the end of the answer; hickory cannot read it.
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("empty.test.").unwrap(),
            RecordType::TXT,
        ));
        s.send_to(&m.to_vec().unwrap(), dns.addr).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        assert!(buf[..n].ends_with(&[0, 16, 0, 1, 0, 0, 0, 60, 0, 0]));
        assert!(Message::from_vec(&buf[..n]).is_err());
        // The types half.test lacks get no answer.
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("half.test.").unwrap(),
            RecordType::A,
        ));
        s.send_to(&m.to_vec().unwrap(), dns.addr).unwrap();
        let mut buf = [0u8; 512];
        assert!(s.recv_from(&mut buf).is_err(), "a silent type was answered");
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
