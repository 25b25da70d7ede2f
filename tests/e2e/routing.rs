//! Routing in qmgr with the whole system: transport table entries
//! (`error:`, `discard:`, `smtp:[127.0.0.1]:PORT` to a scripted SMTP sink
//! in the test), local domains, the relay host (null client), and the
//! smtp agent's deferral reason in mailq.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn an_error_entry_bounces_at_once_with_its_text() {
    let p = Postern::start(
        "[relay]\ntransport = { \"remote.example\" = \"error:5.7.1 no mail for you\" }\n",
    );
    let u = p.user.clone();
    let id = send(
        &p,
        &format!("{u}@localhost"),
        &["x@remote.example"],
        "Subject: refused\r\n\r\nbody",
    );
    p.wait_log(
        &format!("{id}: to=<x@remote.example>, relay=none, delay="),
        1,
        20,
    );
    p.wait_log("dsn=5.7.1, status=bounced (no mail for you)", 1, 5);
    p.wait_log(&format!("{id}: sender non-delivery notification: "), 1, 20);
    let files = p.wait_delivered(&u, 1, 20);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("Subject: Undelivered Mail Returned to Sender"),
        "{text}"
    );
    assert!(
        text.contains("Final-Recipient: rfc822; x@remote.example"),
        "{text}"
    );
    assert!(text.contains("Status: 5.7.1"), "{text}");
    assert!(
        text.contains("Diagnostic-Code: X-Postern; no mail for you"),
        "{text}"
    );
    assert!(
        text.contains("<x@remote.example>: no mail for you"),
        "{text}"
    );
}

#[test]
fn a_discard_entry_is_logged_sent_and_local_domains_still_go_local() {
    let p = Postern::start("[relay]\ntransport = { \"quiet.example\" = \"discard:\" }\n");
    let u = p.user.clone();
    let id = send(
        &p,
        "s@example.org",
        &["x@quiet.example", &format!("{u}@localhost")],
        "Subject: half of it\r\n\r\nbody",
    );
    p.wait_log(
        &format!("{id}: to=<x@quiet.example>, relay=none, delay="),
        1,
        20,
    );
    p.wait_log("dsn=2.0.0, status=sent (discarded)", 1, 5);
    p.wait_log(&format!("{id}: to=<{u}@localhost>, relay=local"), 1, 20);
    p.wait_log(&format!("{id}: removed"), 1, 20);
    let files = p.wait_delivered(&u, 1, 20);
    assert_eq!(files.len(), 1);
    assert!(
        std::fs::read_to_string(&files[0])
            .unwrap()
            .contains("Subject: half of it")
    );
}

/// The smtp agent's reason for a deferral is what mailq shows, in
/// parentheses (here a closed port on loopback; the placeholder agent
/// defers everything with its own text).
#[test]
fn mailq_shows_the_smtp_agents_deferral_reason() {
    let port = closed_port();
    let p = Postern::start(&format!(
        "[relay]\ntransport = {{ \"remote.example\" = \"smtp:[127.0.0.1]:{port}\" }}\n"
    ));
    let id = send(
        &p,
        "s@example.org",
        &["far@remote.example"],
        "Subject: later\r\n\r\nx",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let reason = loop {
        let json = p.postern(&["queue", "list", "--json"]);
        let text = String::from_utf8_lossy(&json.stdout).to_string();
        if let Some(line) = text.lines().find(|l| l.contains(&id)) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(r) = v["recipients"][0]["delay_reason"].as_str() {
                break r.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no deferral reason in the queue listing:\n{text}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!reason.is_empty());
    let out = p.postern(&["queue", "list"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].starts_with(&id), "{text}");
    assert_eq!(lines[2].trim_start(), format!("({reason})"), "{text}");
    assert_eq!(lines[3], format!("{:47}far@remote.example", ""));
}

#[test]
fn a_transport_entry_reaches_the_smtp_sink() {
    let sink = Sink::start(|_| "250 2.1.5 Ok");
    let p = Postern::start(&format!(
        "[relay]\ntransport = {{ \"remote.example\" = \"smtp:[127.0.0.1]:{}\" }}\n",
        sink.port
    ));
    let id = send(
        &p,
        "s@example.org",
        &["x@remote.example"],
        "Subject: out\r\n\r\nover the wire",
    );
    let t = sink.wait(1, 30).remove(0);
    assert!(
        t.mail_from.starts_with("MAIL FROM:<s@example.org>"),
        "{t:?}"
    );
    assert_eq!(t.rcpts, ["x@remote.example"]);
    assert!(t.data.contains("Subject: out\r\n"), "{t:?}");
    assert!(t.data.contains("over the wire"), "{t:?}");
    p.wait_log(&format!("{id}: to=<x@remote.example>, relay="), 1, 20);
    p.wait_log("status=sent", 1, 5);
    p.wait_log(&format!("{id}: removed"), 1, 20);
}

/// One recipient refused with 550, the other accepted: the refused one
/// bounces, and the sender's DSN quotes the remote host's reply.
#[test]
fn a_remote_refusal_is_quoted_in_the_bounce() {
    let sink = Sink::start(|rcpt| {
        if rcpt.starts_with("bad@") {
            "550 5.1.1 <bad@remote.example>: Recipient address rejected"
        } else {
            "250 2.1.5 Ok"
        }
    });
    let p = Postern::start(&format!(
        "[relay]\ntransport = {{ \"remote.example\" = \"smtp:[127.0.0.1]:{}\" }}\n",
        sink.port
    ));
    let u = p.user.clone();
    let id = send(
        &p,
        &format!("{u}@localhost"),
        &["ok@remote.example", "bad@remote.example"],
        "Subject: half\r\n\r\nx",
    );
    let t = sink.wait(1, 30).remove(0);
    assert_eq!(t.rcpts, ["ok@remote.example"]);
    p.wait_log(&format!("{id}: sender non-delivery notification: "), 1, 30);
    let files = p.wait_delivered(&u, 1, 20);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("Final-Recipient: rfc822; bad@remote.example"),
        "{text}"
    );
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(text.contains("Remote-MTA: dns; "), "{text}");
    assert!(
        text.contains("Diagnostic-Code: smtp; 550 5.1.1 <bad@remote.example>: Recipient address"),
        "{text}"
    );
    assert!(!text.contains("Final-Recipient: rfc822; ok@remote.example"));
}

/// The null client: only its own host name is local; everything else,
/// `localhost` included, goes to the relay host.
#[test]
fn a_null_client_sends_everything_else_to_the_relay_host() {
    let sink = Sink::start(|_| "250 2.1.5 Ok");
    let p = Postern::start(&format!(
        "[server]\nhostname = \"ws.test.example\"\nrun_directory = \"{{dir}}/run\"\n\n\
         [local]\nmailbox = \"{{dir}}/mail/$user/Maildir/\"\ndomains = [\"$hostname\"]\n\
         alias_files = [\"{{dir}}/aliases\"]\n\n\
         [relay]\nhost = \"[127.0.0.1]:{}\"\n",
        sink.port
    ));
    let u = p.user.clone();
    send(
        &p,
        "s@example.org",
        &["someone@foo.example", &format!("{u}@ws.test.example")],
        "Subject: both\r\n\r\nx",
    );
    send(
        &p,
        "s@example.org",
        &["root@localhost"],
        "Subject: up\r\n\r\nx",
    );
    p.wait_delivered(&u, 1, 20);
    let mut rcpts: Vec<String> = sink.wait(2, 30).into_iter().flat_map(|t| t.rcpts).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["root@localhost", "someone@foo.example"]);
}

/// A port on loopback that nobody listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One mail transaction the sink received.
#[derive(Clone, Debug)]
struct Transaction {
    /// The MAIL command as sent.
    mail_from: String,
    /// The accepted recipients' addresses.
    rcpts: Vec<String>,
    /// The message as sent (CRLF, dot-stuffed), without the final dot.
    data: String,
}

/// A tiny scripted SMTP server on 127.0.0.1:0: ESMTP with PIPELINING and
/// 8BITMIME, no STARTTLS; RCPT is answered by `rcpt_reply(address)`.
struct Sink {
    port: u16,
    seen: Arc<Mutex<Vec<Transaction>>>,
}

impl Sink {
    fn start(rcpt_reply: fn(&str) -> &'static str) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let all = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let all = all.clone();
                std::thread::spawn(move || serve(stream, rcpt_reply, &all));
            }
        });
        Sink { port, seen }
    }

    /// Wait until at least `n` transactions arrived; returns them all.
    fn wait(&self, n: usize, secs: u64) -> Vec<Transaction> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self.seen.lock().unwrap().clone();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "the sink got {} of {n} transactions",
                seen.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(stream: TcpStream, rcpt_reply: fn(&str) -> &'static str, all: &Mutex<Vec<Transaction>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut say = |text: &str| w.write_all(format!("{text}\r\n").as_bytes()).is_ok();
    if !say("220 sink.test ESMTP") {
        return;
    }
    let mut current: Option<Transaction> = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let ok = match verb.as_str() {
            "EHLO" => say("250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10240000"),
            "HELO" => say("250 sink.test"),
            "MAIL" => {
                current = Some(Transaction {
                    mail_from: line.clone(),
                    rcpts: Vec::new(),
                    data: String::new(),
                });
                say("250 2.1.0 Ok")
            }
            "RCPT" => {
                let addr = line
                    .split_once('<')
                    .and_then(|(_, a)| a.split_once('>'))
                    .map_or("", |(a, _)| a)
                    .to_string();
                let reply = rcpt_reply(&addr);
                if reply.starts_with('2')
                    && let Some(t) = current.as_mut()
                {
                    t.rcpts.push(addr);
                }
                say(reply)
            }
            "DATA" => {
                if !say("354 End data with <CR><LF>.<CR><LF>") {
                    return;
                }
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).unwrap_or(0) == 0 {
                        return;
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    data.push_str(&l);
                }
                if let Some(mut t) = current.take() {
                    t.data = data;
                    all.lock().unwrap().push(t);
                }
                say("250 2.0.0 Ok: queued")
            }
            "RSET" => {
                current = None;
                say("250 2.0.0 Ok")
            }
            "NOOP" => say("250 2.0.0 Ok"),
            "QUIT" => {
                say("221 2.0.0 Bye");
                return;
            }
            _ => say("502 5.5.2 Error: command not recognized"),
        };
        if !ok {
            return;
        }
    }
}
