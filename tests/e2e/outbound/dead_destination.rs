//! Issue 22: a relay host that takes connections and closes them before
//! any greeting is marked dead after one failed delivery. 200 messages for
//! it make a handful of connection attempts, not 200; each waits in the
//! queue with `delivery temporarily suspended: …`; `postern flush` tries
//! the host again with a few connections; once a real SMTP server
//! (aiosmtpd) listens on the port, a flush delivers every message exactly
//! once.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::real_server::AioSmtpd;
use super::*;

const MESSAGES: usize = 200;
/// `smtp.destination_concurrency_limit` in this test.
const CONCURRENCY: usize = 5;

/// A listener on 127.0.0.1 that counts the connections and closes each at
/// once; it stops (and frees its port) when dropped.
struct Closer {
    port: u16,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Closer {
    fn start() -> Closer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (count.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        drop(conn);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Closer {
            port,
            count,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `postern status`'s queue line: (messages, being delivered, deferred).
fn counts(p: &Postern) -> Option<(usize, usize, usize)> {
    let out = p.postern(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with("queue: ") && l.contains(" deferred"))?;
    let n: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    (n.len() >= 3).then(|| (n[0], n[1], n[2]))
}

/// Until every message is in the queue, none being delivered, all
/// deferred.
fn wait_all_deferred(p: &Postern, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = counts(p);
        if c == Some((MESSAGES, 0, MESSAGES)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not all {MESSAGES} deferred: {c:?}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each message's delay reason, from `postern queue list --json`.
fn reasons(p: &Postern) -> Vec<String> {
    let out = p.postern(&["queue", "list", "--json"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["recipients"][0]["delay_reason"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn a_dead_relay_host_is_tried_a_few_times_not_once_per_message() {
    let closer = Closer::start();
    let port = closer.port;
    let p = Postern::start(&format!(
        "[queue]\ndirectory = \"{{dir}}/queue\"\nminimal_backoff = \"300s\"\nmaximal_backoff = \"600s\"\n\n\
         [relay]\nhost = \"[127.0.0.1]:{port}\"\n\n\
         [smtp]\ndestination_concurrency_limit = {CONCURRENCY}\n"
    ));
    // 200 messages in one session.
    let mut c = p.client();
    assert!(c.cmd("EHLO client.example").starts_with("250"));
    for i in 0..MESSAGES {
        assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
        assert_eq!(
            c.cmd(&format!("RCPT TO:<r{i}@far.example>")),
            "250 2.1.5 Ok"
        );
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(
            format!("Subject: dead {i}\r\nMessage-ID: <dead-{i}@example.org>\r\n\r\nx\r\n.\r\n")
                .as_bytes(),
        );
        queue_id(&c.reply());
    }
    c.cmd("QUIT");
    wait_all_deferred(&p, "after the first pass");
    let first = closer.count();
    assert!(
        (1..=CONCURRENCY + 2).contains(&first),
        "{first} connection attempts for {MESSAGES} messages\n{}",
        p.log()
    );
    let refused =
        "lost connection with 127.0.0.1[127.0.0.1] while receiving the initial server greeting"
            .to_string();
    let suspended = format!("delivery temporarily suspended: {refused}");
    let all = reasons(&p);
    assert_eq!(all.len(), MESSAGES);
    let n_suspended = all.iter().filter(|r| **r == suspended).count();
    assert!(
        all.iter().all(|r| *r == suspended || *r == refused),
        "{all:?}"
    );
    assert!(n_suspended >= MESSAGES - first, "{all:?}");
    // mailq shows it in parentheses, as Postfix's does.
    let text = String::from_utf8_lossy(&p.postern(&["queue", "list"]).stdout).to_string();
    assert!(text.contains(&format!("({suspended})")), "{text}");
    // The log: the mark once, the deferrals as Postfix logs them.
    let hop = format!("destination smtp:[127.0.0.1]:{port}");
    p.wait_log(&format!("{hop} is dead for 300s"), 1, 5);
    let log = p.log();
    assert!(
        log.lines().any(|l| l.contains(": to=<r")
            && l.contains(", relay=none, delay=")
            && l.contains(&format!("dsn=4.4.2, status=deferred ({suspended})"))),
        "{log}"
    );

    // A flush tries the host again: a few connections, then all deferred
    // again.
    assert!(p.postern(&["flush"]).status.success());
    p.wait_log(&format!("{hop} is alive again: postern flush"), 1, 10);
    p.wait_log(&format!("{hop} is dead for 300s"), 2, 30);
    wait_all_deferred(&p, "after postern flush");
    let flushed = closer.count() - first;
    assert!(
        (1..=CONCURRENCY + 2).contains(&flushed),
        "{flushed} connection attempts for {MESSAGES} messages on postern flush\n{}",
        p.log()
    );

    // The host comes up: a flush delivers everything, each message once.
    drop(closer);
    let dir = tempfile::tempdir().unwrap();
    let server = AioSmtpd::start_on(&dir.path().join("out"), port);
    assert!(p.postern(&["flush"]).status.success());
    let got = server.wait_messages(MESSAGES, 120, || p.log());
    let deadline = Instant::now() + Duration::from_secs(30);
    while counts(&p).map(|c| c.0) != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the queue did not empty\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing more comes.
    std::thread::sleep(Duration::from_millis(500));
    let got_after = server.messages();
    assert_eq!(got_after.len(), got.len());
    let mut ids: Vec<String> = got_after
        .iter()
        .map(|(env, content)| {
            assert_eq!(env["rcpt_tos"].as_array().unwrap().len(), 1);
            let text = String::from_utf8_lossy(content);
            text.lines()
                .find(|l| l.starts_with("Message-ID: "))
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), MESSAGES, "a message arrived twice or not at all");
}
