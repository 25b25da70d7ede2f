//! Scriptable SMTP servers that postern delivers to: each records what it
//! was sent (connections, peers, commands, envelopes, the message bytes
//! after dot-unstuffing, whether TLS was on) and answers by its script:
//! accept everything, 451 at RCPT until the test releases it, 550 for one
//! recipient, or never say a word. STARTTLS with a given certificate on
//! request. Several sinks can share one port on different loopback
//! addresses (the MX hosts of one domain), and a "down host" is a port
//! that was bound and closed. Threads only; stopped when dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a sink answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 250 to everything.
    Accept,
    /// `451 4.3.0 <rcpt>: Temporary failure, try again later` to every
    /// RCPT until [`Sink::release`], then as `Accept`.
    TempFailRcptUntilReleased,
    /// `550 5.1.1 <rcpt>: Recipient address rejected: User unknown` for
    /// this recipient (case-insensitive), 250 for the others.
    RejectRcpt(String),
    /// Accept the TCP connection and never send a byte.
    Silent,
}

/// A sink's script: its behaviour, the name in its greeting and EHLO
/// reply, and STARTTLS when given a server configuration.
#[derive(Clone)]
pub struct Script {
    pub behaviour: Behaviour,
    pub hostname: String,
    pub starttls: Option<Arc<rustls::ServerConfig>>,
}

impl Script {
    pub fn accept() -> Script {
        Script::new(Behaviour::Accept)
    }

    pub fn temp_fail_until_released() -> Script {
        Script::new(Behaviour::TempFailRcptUntilReleased)
    }

    pub fn reject_rcpt(addr: &str) -> Script {
        Script::new(Behaviour::RejectRcpt(addr.to_string()))
    }

    pub fn silent() -> Script {
        Script::new(Behaviour::Silent)
    }

    fn new(behaviour: Behaviour) -> Script {
        Script {
            behaviour,
            hostname: "sink.test".into(),
            starttls: None,
        }
    }

    pub fn named(mut self, hostname: &str) -> Script {
        self.hostname = hostname.to_string();
        self
    }

    pub fn with_starttls(mut self, config: Arc<rustls::ServerConfig>) -> Script {
        self.starttls = Some(config);
        self
    }
}

/// What a sink has seen.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub connections: usize,
    pub peers: Vec<SocketAddr>,
    /// Every command line (without CRLF), in order, over all connections.
    pub commands: Vec<String>,
    pub tls_established: usize,
    /// STARTTLS handshakes the client broke off (e.g. it refused the
    /// certificate).
    pub tls_failed: usize,
    /// 451 replies given to RCPT.
    pub temp_failures: usize,
    /// Messages accepted (DATA answered 250), in order.
    pub messages: Vec<Received>,
}

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Received {
    pub peer: SocketAddr,
    pub helo: String,
    pub tls: bool,
    /// The MAIL FROM command as sent, parameters included.
    pub mail_command: String,
    /// The reverse path without the angle brackets.
    pub sender: String,
    /// The accepted recipients, in order.
    pub recipients: Vec<String>,
    /// The content as it came, CRLF line ends kept, leading dots removed,
    /// without the final `.` line.
    pub data: Vec<u8>,
}

/// A running sink; stopped when dropped.
pub struct Sink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    script: Script,
    stop: AtomicBool,
    released: AtomicBool,
    seen: Mutex<Seen>,
}

impl Sink {
    /// A sink on `ip`, on a free port.
    pub fn start(ip: &str, script: Script) -> Sink {
        Sink::on(TcpListener::bind((ip, 0)).unwrap(), script)
    }

    /// A sink on a listener the test bound (see [`same_port`]).
    pub fn on(listener: TcpListener, script: Script) -> Sink {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            script,
            stop: AtomicBool::new(false),
            released: AtomicBool::new(false),
            seen: Mutex::new(Seen::default()),
        });
        let s = shared.clone();
        let thread = std::thread::spawn(move || accept_loop(listener, &s));
        Sink {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn seen(&self) -> Seen {
        self.shared.seen.lock().unwrap().clone()
    }

    /// End the temporary failures of `temp_fail_until_released`.
    pub fn release(&self) {
        self.shared.released.store(true, Ordering::SeqCst);
    }

    /// Wait until at least `n` messages arrived; returns all of them.
    pub fn wait_messages(&self, n: usize, secs: u64, log: impl Fn() -> String) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self.seen();
            if seen.messages.len() >= n {
                return seen.messages;
            }
            assert!(
                Instant::now() < deadline,
                "sink {} got {} of {n} messages; saw {seen:?}\nlog:\n{}",
                self.addr,
                seen.messages.len(),
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until `pred` holds for what the sink has seen.
    pub fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self.seen();
            if pred(&seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "sink {}: never {what}; saw {seen:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Listeners on the same free port of each of `ips` (the MX hosts of one
/// domain, reached through `[smtp] port`).
pub fn same_port(ips: &[&str]) -> Vec<TcpListener> {
    'again: for _ in 0..100 {
        let first = TcpListener::bind((ips[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let mut all = vec![first];
        for ip in &ips[1..] {
            match TcpListener::bind((*ip, port)) {
                Ok(l) => all.push(l),
                Err(_) => continue 'again,
            }
        }
        return all;
    }
    panic!("no port free on all of {ips:?}");
}

/// A down host: `listener`'s address once it is closed (connections are
/// refused).
pub fn close(listener: TcpListener) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) {
    let mut conns = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                {
                    let mut seen = shared.seen.lock().unwrap();
                    seen.connections += 1;
                    seen.peers.push(peer);
                }
                let s = shared.clone();
                conns.push(std::thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                    Session::new(stream, peer, &s).run();
                }));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    Gone,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Gone => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Gone => Err(ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Gone => Ok(()),
        }
    }
}

/// One SMTP session.
struct Session<'a> {
    shared: &'a Shared,
    stream: Stream,
    buf: Vec<u8>,
    peer: SocketAddr,
    helo: String,
    tls: bool,
    mail_command: Option<String>,
    recipients: Vec<String>,
}

/// How long a connection may stay idle before the sink drops it.
const IDLE: Duration = Duration::from_secs(120);

impl<'a> Session<'a> {
    fn new(stream: TcpStream, peer: SocketAddr, shared: &'a Shared) -> Session<'a> {
        Session {
            shared,
            stream: Stream::Plain(stream),
            buf: Vec::new(),
            peer,
            helo: String::new(),
            tls: false,
            mail_command: None,
            recipients: Vec::new(),
        }
    }

    fn run(mut self) {
        let script = &self.shared.script;
        if matches!(script.behaviour, Behaviour::Silent) {
            // Read (and note) whatever comes, answer nothing.
            while let Some(line) = self.line() {
                self.note(&line);
            }
            return;
        }
        if !self.reply(&format!("220 {} ESMTP sink", script.hostname)) {
            return;
        }
        while let Some(line) = self.line() {
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            self.note(&line);
            let verb = text
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let arg = text.get(verb.len()..).unwrap_or("").trim().to_string();
            let ok = match verb.as_str() {
                "EHLO" => self.ehlo(&arg),
                "HELO" => {
                    self.helo = arg;
                    self.reset();
                    self.reply(&format!("250 {}", script.hostname))
                }
                "STARTTLS" => self.starttls(),
                "MAIL" => self.mail(&text),
                "RCPT" => self.rcpt(&text),
                "DATA" => self.data(),
                "RSET" => {
                    self.reset();
                    self.reply("250 2.0.0 Ok")
                }
                "NOOP" => self.reply("250 2.0.0 Ok"),
                "QUIT" => {
                    self.reply("221 2.0.0 Bye");
                    return;
                }
                _ => self.reply("502 5.5.2 Error: command not recognized"),
            };
            if !ok {
                return;
            }
        }
    }

    fn note(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        self.shared.seen.lock().unwrap().commands.push(text);
    }

    fn reset(&mut self) {
        self.mail_command = None;
        self.recipients.clear();
    }

    fn ehlo(&mut self, arg: &str) -> bool {
        self.helo = arg.to_string();
        self.reset();
        let script = &self.shared.script;
        let mut lines = vec![
            script.hostname.clone(),
            "PIPELINING".into(),
            "SIZE 10240000".into(),
            "ENHANCEDSTATUSCODES".into(),
            "8BITMIME".into(),
            "DSN".into(),
        ];
        if script.starttls.is_some() && !self.tls {
            lines.push("STARTTLS".into());
        }
        lines.push("SMTPUTF8".into());
        let last = lines.len() - 1;
        let text: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
            .collect();
        self.reply(&text.join("\r\n"))
    }

    fn starttls(&mut self) -> bool {
        let Some(config) = self.shared.script.starttls.clone() else {
            return self.reply("502 5.5.1 Error: command not implemented");
        };
        if self.tls {
            return self.reply("554 5.5.1 Error: TLS already active");
        }
        if !self.reply("220 2.0.0 Ready to start TLS") {
            return false;
        }
        // Whatever was pipelined after STARTTLS is discarded (RFC 3207).
        self.buf.clear();
        let Stream::Plain(mut tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return false;
        };
        let mut conn = match rustls::ServerConnection::new(config) {
            Ok(c) => c,
            Err(_) => return false,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while conn.is_handshaking() {
            match conn.complete_io(&mut tcp) {
                Ok((0, 0)) => {
                    self.shared.seen.lock().unwrap().tls_failed += 1;
                    return false;
                }
                Ok(_) => {}
                Err(e)
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                        && Instant::now() < deadline
                        && !self.shared.stop.load(Ordering::SeqCst) => {}
                Err(_) => {
                    self.shared.seen.lock().unwrap().tls_failed += 1;
                    return false;
                }
            }
        }
        self.shared.seen.lock().unwrap().tls_established += 1;
        self.stream = Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)));
        self.tls = true;
        self.helo.clear();
        self.reset();
        true
    }

    fn mail(&mut self, text: &str) -> bool {
        if self.mail_command.is_some() {
            return self.reply("503 5.5.1 Error: nested MAIL command");
        }
        if path(text).is_none() {
            return self.reply("501 5.5.4 Syntax: MAIL FROM:<address>");
        }
        self.mail_command = Some(text.to_string());
        self.reply("250 2.1.0 Ok")
    }

    fn rcpt(&mut self, text: &str) -> bool {
        if self.mail_command.is_none() {
            return self.reply("503 5.5.1 Error: need MAIL command");
        }
        let Some(rcpt) = path(text) else {
            return self.reply("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        match &self.shared.script.behaviour {
            Behaviour::TempFailRcptUntilReleased
                if !self.shared.released.load(Ordering::SeqCst) =>
            {
                self.shared.seen.lock().unwrap().temp_failures += 1;
                return self.reply(&format!(
                    "451 4.3.0 <{rcpt}>: Temporary failure, try again later"
                ));
            }
            Behaviour::RejectRcpt(bad) if bad.eq_ignore_ascii_case(&rcpt) => {
                return self.reply(&format!(
                    "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
                ));
            }
            _ => {}
        }
        self.recipients.push(rcpt);
        self.reply("250 2.1.5 Ok")
    }

    fn data(&mut self) -> bool {
        let Some(mail_command) = self.mail_command.clone() else {
            return self.reply("503 5.5.1 Error: need RCPT command");
        };
        if self.recipients.is_empty() {
            return self.reply("554 5.5.1 Error: no valid recipients");
        }
        if !self.reply("354 End data with <CR><LF>.<CR><LF>") {
            return false;
        }
        let mut data = Vec::new();
        loop {
            let Some(line) = self.line() else {
                return false;
            };
            if line == b".\r\n" {
                break;
            }
            match line.strip_prefix(b".") {
                Some(rest) => data.extend_from_slice(rest),
                None => data.extend_from_slice(&line),
            }
        }
        let n = {
            let mut seen = self.shared.seen.lock().unwrap();
            seen.messages.push(Received {
                peer: self.peer,
                helo: self.helo.clone(),
                tls: self.tls,
                sender: path(&mail_command).unwrap_or_default(),
                mail_command,
                recipients: std::mem::take(&mut self.recipients),
                data,
            });
            seen.messages.len()
        };
        self.reset();
        self.reply(&format!("250 2.0.0 Ok: queued as S{n}"))
    }

    /// One line with its line end; `None` at end of stream, on an error,
    /// when idle too long or when the sink stops.
    fn line(&mut self) -> Option<Vec<u8>> {
        let mut last = Instant::now();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                return Some(self.buf.drain(..=pos).collect());
            }
            if self.shared.stop.load(Ordering::SeqCst) || last.elapsed() > IDLE {
                return None;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    last = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }

    fn reply(&mut self, text: &str) -> bool {
        self.stream
            .write_all(format!("{text}\r\n").as_bytes())
            .and_then(|_| self.stream.flush())
            .is_ok()
    }
}

/// The address between `<` and `>` of a MAIL or RCPT command.
fn path(command: &str) -> Option<String> {
    let start = command.find('<')?;
    let end = start + command[start..].find('>')?;
    Some(command[start + 1..end].to_string())
}

/// The self-tests: each script seen from a plain client.
mod tests {
    use super::*;
    use crate::common::Client;
    use crate::outbound::pki;

    fn transaction(c: &mut Client, rcpts: &[&str]) -> Vec<String> {
        let mut replies = vec![c.cmd("MAIL FROM:<s@example.org> BODY=7BIT")];
        for r in rcpts {
            replies.push(c.cmd(&format!("RCPT TO:<{r}>")));
        }
        replies
    }

    #[test]
    fn accept_records_envelope_and_unstuffed_content() {
        let sink = Sink::start("127.0.0.10", Script::accept());
        let mut c = Client::connect(sink.addr, Some("127.0.0.2"));
        let ehlo = c.cmd("EHLO client.example");
        assert!(
            ehlo.starts_with("250-sink.test\n250-PIPELINING\n"),
            "{ehlo}"
        );
        assert!(ehlo.ends_with("\n250 SMTPUTF8"), "{ehlo}");
        assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
        // Pipelined, as postern sends it.
        c.send(b"MAIL FROM:<s@example.org> SIZE=10\r\nRCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n");
        assert_eq!(c.reply(), "250 2.1.0 Ok");
        assert_eq!(c.reply(), "250 2.1.5 Ok");
        assert_eq!(c.reply(), "250 2.1.5 Ok");
        assert!(c.reply().starts_with("354 "));
        c.send(b"Subject: x\r\n\r\n..leading dot\r\n..\r\nlast\r\n.\r\n");
        assert_eq!(c.reply(), "250 2.0.0 Ok: queued as S1");
        assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
        let seen = sink.seen();
        assert_eq!(seen.connections, 1);
        assert_eq!(seen.peers[0].ip().to_string(), "127.0.0.2");
        let m = &seen.messages[0];
        assert_eq!(m.helo, "client.example");
        assert_eq!(m.peer, seen.peers[0]);
        assert_eq!(m.sender, "s@example.org");
        assert_eq!(m.mail_command, "MAIL FROM:<s@example.org> SIZE=10");
        assert_eq!(m.recipients, vec!["a@example.test", "b@example.test"]);
        assert_eq!(m.data, b"Subject: x\r\n\r\n.leading dot\r\n.\r\nlast\r\n");
        assert!(!m.tls);
        assert_eq!(seen.commands[0], "EHLO client.example");
    }

    #[test]
    fn temp_fail_until_released_then_accept() {
        let sink = Sink::start("127.0.0.1", Script::temp_fail_until_released());
        let mut c = Client::connect(sink.addr, None);
        c.cmd("EHLO c.example");
        let r = transaction(&mut c, &["a@example.test"]);
        assert_eq!(
            r[1],
            "451 4.3.0 <a@example.test>: Temporary failure, try again later"
        );
        assert_eq!(c.cmd("DATA"), "554 5.5.1 Error: no valid recipients");
        assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
        sink.release();
        let r = transaction(&mut c, &["a@example.test"]);
        assert_eq!(r[1], "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354 "));
        assert_eq!(c.cmd("x\r\n."), "250 2.0.0 Ok: queued as S1");
        let seen = sink.seen();
        assert_eq!(seen.temp_failures, 1);
        assert_eq!(seen.messages.len(), 1);
    }

    #[test]
    fn reject_one_recipient() {
        let sink = Sink::start("127.0.0.1", Script::reject_rcpt("bad@example.test"));
        let mut c = Client::connect(sink.addr, None);
        c.cmd("EHLO c.example");
        let r = transaction(&mut c, &["good@example.test", "BAD@example.test"]);
        assert_eq!(r[1], "250 2.1.5 Ok");
        assert_eq!(
            r[2],
            "550 5.1.1 <BAD@example.test>: Recipient address rejected: User unknown"
        );
        assert!(c.cmd("DATA").starts_with("354 "));
        assert_eq!(c.cmd("x\r\n."), "250 2.0.0 Ok: queued as S1");
        assert_eq!(
            sink.seen().messages[0].recipients,
            vec!["good@example.test"]
        );
    }

    #[test]
    fn silent_never_answers() {
        let sink = Sink::start("127.0.0.1", Script::silent());
        let mut s = TcpStream::connect(sink.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut b = [0u8; 16];
        let e = s.read(&mut b).unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut
        ));
        s.write_all(b"EHLO c.example\r\n").unwrap();
        sink.wait_for("the EHLO", 5, |seen| seen.commands.len() == 1);
        assert!(s.read(&mut b).is_err(), "still silent");
        assert_eq!(sink.seen().connections, 1);
    }

    #[test]
    fn same_port_on_two_addresses_and_a_down_host() {
        let mut ls = same_port(&["127.0.0.10", "127.0.0.11", "127.0.0.12"]);
        let down = close(ls.pop().unwrap());
        let mx2 = Sink::on(ls.pop().unwrap(), Script::accept().named("mx2.sink"));
        let mx1 = Sink::on(ls.pop().unwrap(), Script::accept().named("mx1.sink"));
        assert_eq!(mx1.port(), mx2.port());
        assert_eq!(down.port(), mx1.port());
        let mut c = Client::connect(mx1.addr, None);
        assert_eq!(c.cmd("HELO c"), "250 mx1.sink");
        let mut c = Client::connect(mx2.addr, None);
        assert_eq!(c.cmd("HELO c"), "250 mx2.sink");
        let e = TcpStream::connect(down).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        drop(mx1);
        let e = TcpStream::connect(down.to_string().replace(".12:", ".10:")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "stopped sink");
    }

    /// EHLO, STARTTLS, the handshake with `client`, EHLO again and one
    /// message; the handshake's error if it fails.
    fn tls_client(
        addr: SocketAddr,
        client: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> Result<(), rustls::Error> {
        let mut c = Client::connect(addr, None);
        let ehlo = c.cmd("EHLO c.example");
        assert!(ehlo.contains("\n250-STARTTLS\n"), "{ehlo}");
        assert_eq!(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS");
        let tcp = c.stream.into_inner();
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(client, server_name).unwrap();
        let mut tcp = tcp;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                let inner = e.into_inner().expect("a TLS error");
                return Err(*inner.downcast::<rustls::Error>().expect("a rustls error"));
            }
        }
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut cmd = |line: &str| -> String {
            tls.write_all(format!("{line}\r\n").as_bytes()).unwrap();
            let mut all = Vec::new();
            let mut b = [0u8; 1];
            loop {
                tls.read_exact(&mut b).unwrap();
                all.push(b[0]);
                if all.ends_with(b"\r\n") {
                    let text = String::from_utf8_lossy(&all).to_string();
                    let last = text.trim_end().rsplit("\r\n").next().unwrap().to_string();
                    if last.as_bytes().get(3) == Some(&b' ') {
                        return text;
                    }
                }
            }
        };
        let ehlo = cmd("EHLO c.example");
        assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
        cmd("MAIL FROM:<s@example.org>");
        cmd("RCPT TO:<r@example.test>");
        cmd("DATA");
        assert_eq!(cmd("over tls\r\n."), "250 2.0.0 Ok: queued as S1\r\n");
        Ok(())
    }

    #[test]
    fn starttls_with_a_self_signed_certificate() {
        let cert = pki::self_signed(&["mx.tls.test"]);
        let sink = Sink::start(
            "127.0.0.1",
            Script::accept().with_starttls(cert.server_config()),
        );
        // A client that trusts this very certificate gets through …
        tls_client(sink.addr, pki::client_config(&[&cert]), "mx.tls.test").unwrap();
        let m = &sink.seen().messages[0];
        assert!(m.tls);
        assert_eq!(m.data, b"over tls\r\n");
        // … one that verifies against other roots refuses it.
        let other = pki::self_signed(&["other.test"]);
        let e = tls_client(sink.addr, pki::client_config(&[&other]), "mx.tls.test").unwrap_err();
        assert!(matches!(e, rustls::Error::InvalidCertificate(_)), "{e:?}");
        let seen = sink.wait_for("a failed handshake", 5, |s| s.tls_failed == 1);
        assert_eq!(seen.tls_established, 1);
        assert_eq!(seen.messages.len(), 1);
    }

    #[test]
    fn starttls_with_a_certificate_from_a_private_ca() {
        let (ca, server) = pki::ca_and_server(&["mx.tls.test"]);
        let sink = Sink::start(
            "127.0.0.1",
            Script::accept().with_starttls(server.server_config()),
        );
        tls_client(sink.addr, pki::client_config(&[&ca]), "mx.tls.test").unwrap();
        let e = tls_client(sink.addr, pki::client_config(&[&ca]), "wrong.tls.test").unwrap_err();
        assert!(matches!(e, rustls::Error::InvalidCertificate(_)), "{e:?}");
        assert!(sink.seen().messages[0].tls);
    }
}
