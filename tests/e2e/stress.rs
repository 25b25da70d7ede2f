//! Issue 14, item 6: many connections, idle connections and junk do not
//! lock out the clients that bring mail (connection limits, stress mode,
//! the junk command and session time limits).

use std::io::Read;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::common::*;

/// One client's whole transaction from `source`; the reply to the data.
fn send_one(addr: std::net::SocketAddr, source: &str, user: &str, go: &Barrier) -> String {
    let stream = socket2_connect(addr, source.parse().unwrap());
    let (mut c, greeting) = Client::greeted(stream);
    // Everyone is connected before anyone sends: 200 sessions at once.
    go.wait();
    if !greeting.starts_with("220 ") {
        return greeting;
    }
    c.open_data(&format!("{user}@localhost"));
    let r = c.cmd(&format!("Subject: from {source}\r\n\r\nhello\r\n."));
    c.cmd("QUIT");
    r
}

#[test]
fn issue14_two_hundred_concurrent_clients_all_get_250() {
    let p = Postern::start("");
    let user = p.user.clone();
    let n = 200;
    let go = Arc::new(Barrier::new(n));
    let started = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (addr, user, go) = (p.addr, user.clone(), go.clone());
            // From as many addresses, as the report's clients came.
            let source = format!("127.0.{}.{}", 1 + i / 250, 1 + i % 250);
            std::thread::spawn(move || send_one(addr, &source, &user, &go))
        })
        .collect();
    let replies: Vec<String> = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| "the client panicked".into()))
        .collect();
    let refused: Vec<&String> = replies
        .iter()
        .filter(|r| !r.starts_with("250 2.0.0 Ok: queued as "))
        .collect();
    assert!(refused.is_empty(), "{refused:?}\n{}", p.log());
    eprintln!("{n} concurrent transactions in {:?}", started.elapsed());
    p.wait_delivered(&user, n, 120);
    assert!(!p.log().contains("too many connections"), "{}", p.log());
}

#[test]
fn issue14_idle_sessions_make_room_for_a_new_client() {
    let p = Postern::start_with("", &["max_connections = 4"]);
    let user = p.user.clone();
    let mut idle: Vec<Client> = (1..=4)
        .map(|i| {
            let mut c = p.client_from(&format!("127.0.2.{i}"));
            assert!(c.cmd("EHLO idle.example").starts_with("250-"));
            c
        })
        .collect();
    p.wait_log("entering stress mode: 4 of 4 connections in use", 1, 5);
    // The limit is reached, yet a new client is served: the session idle
    // the longest is closed for it.
    let mut fresh = p.client_from("127.0.2.10");
    assert_eq!(
        idle[0].reply(),
        "421 4.3.2 mail.test.example Error: too many connections, closing idle session"
    );
    assert!(idle[0].closed());
    p.wait_log(
        "NOQUEUE: idle session closed after EHLO from unknown[127.0.2.1]: too many connections",
        1,
        5,
    );
    fresh.open_data(&format!("{user}@localhost"));
    assert!(
        fresh
            .cmd("Subject: made room\r\n\r\nhi\r\n.")
            .starts_with("250 2.0.0 Ok: queued as ")
    );
    p.wait_delivered(&user, 1, 20);
    // Sessions in a transaction are not closed: with every one busy the
    // next client is refused, as before.
    for c in idle[1..].iter_mut().chain([&mut fresh]) {
        assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
    }
    let mut refused = std::net::TcpStream::connect(p.addr).unwrap();
    let mut text = String::new();
    refused.read_to_string(&mut text).unwrap();
    assert_eq!(
        text,
        "421 4.7.0 mail.test.example Error: too many connections\r\n"
    );
    for c in idle[1..].iter_mut() {
        assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    }
}

#[test]
fn issue14_stress_mode_lowers_the_error_limit() {
    let p = Postern::start_with("", &["max_connections = 5"]);
    let mut clients: Vec<Client> = (1..=3)
        .map(|i| p.client_from(&format!("127.0.3.{i}")))
        .collect();
    // Three of five: no stress; an error is just an error.
    assert_eq!(
        clients[2].cmd("FOO"),
        "502 5.5.2 Error: command not recognized"
    );
    assert_eq!(clients[2].cmd("NOOP"), "250 2.0.0 Ok");
    // The fourth makes 80 %: Postfix's stress values apply, so one error
    // ends a session (smtpd_hard_error_limit 1).
    let mut fourth = p.client_from("127.0.3.4");
    p.wait_log(
        "warning: entering stress mode: 4 of 5 connections in use (smtpd.max_connections)",
        1,
        5,
    );
    assert_eq!(fourth.cmd("FOO"), "502 5.5.2 Error: command not recognized");
    assert_eq!(
        fourth.reply(),
        "421 4.7.0 mail.test.example Error: too many errors"
    );
    assert!(fourth.closed());
    // Sessions that were there before are held to it too.
    assert_eq!(
        clients[0].cmd("BAR"),
        "502 5.5.2 Error: command not recognized"
    );
    assert_eq!(
        clients[0].reply(),
        "421 4.7.0 mail.test.example Error: too many errors"
    );
    // Two of five: stress mode ends.
    p.wait_log("leaving stress mode: 2 of 5 connections in use", 1, 5);
    assert_eq!(
        clients[1].cmd("FOO"),
        "502 5.5.2 Error: command not recognized"
    );
    assert_eq!(clients[1].cmd("QUIT"), "221 2.0.0 Bye");
    assert_eq!(p.log().matches("entering stress mode").count(), 1);
}

#[test]
fn issue14_junk_commands_count_as_errors() {
    // Postfix's defaults: 100 junk commands, then each is an error, and
    // the 20th error ends the session.
    let p = Postern::start("");
    let mut c = p.client();
    for n in 1..=120 {
        assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok", "NOOP {n}");
    }
    assert_eq!(
        c.reply(),
        "421 4.7.0 mail.test.example Error: too many errors"
    );
    assert!(c.closed());
    p.wait_log("too many errors after NOOP from localhost[127.0.0.1]", 1, 5);
    drop(p);

    // HELO, EHLO, RSET, VRFY and HELP are junk too; an accepted message
    // starts the count again.
    let p = Postern::start_with("", &["junk_command_limit = 2", "hard_error_limit = 1"]);
    let user = p.user.clone();
    let mut c = p.client();
    assert!(c.cmd("EHLO c.example").starts_with("250-"));
    assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
    assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{user}@localhost>")),
        "250 2.1.5 Ok"
    );
    assert!(c.cmd("DATA").starts_with("354 "));
    assert!(
        c.cmd("Subject: x\r\n\r\nx\r\n.")
            .starts_with("250 2.0.0 Ok: queued")
    );
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    assert!(c.cmd("HELP").starts_with("214 "));
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    assert_eq!(
        c.reply(),
        "421 4.7.0 mail.test.example Error: too many errors"
    );
    assert!(c.closed());
}

#[test]
fn issue14_session_time_limit_ends_any_session() {
    let p = Postern::start_with("", &["session_time_limit = \"2s\""]);
    let user = p.user.clone();
    // Busy with junk or silent: the session ends at its limit, long before
    // smtpd.timeout.
    let t0 = Instant::now();
    let mut c = p.client();
    for _ in 0..4 {
        assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        c.reply(),
        "421 4.4.2 mail.test.example Error: session time limit exceeded"
    );
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(1800), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(c.closed());
    p.wait_log(
        "NOQUEUE: session time limit exceeded after NOOP from localhost[127.0.0.1]",
        1,
        5,
    );
    // A message still being sent at the limit gets the same 421 and is not
    // queued.
    let mut c = p.client();
    c.open_data(&format!("{user}@localhost"));
    c.send(b"Subject: slow\r\n\r\nand never finished\r\n");
    assert_eq!(
        c.reply(),
        "421 4.4.2 mail.test.example Error: session time limit exceeded"
    );
    assert!(c.closed());
    p.wait_log(
        "session time limit exceeded after DATA from localhost[127.0.0.1]",
        1,
        5,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.delivered(&user).is_empty());
}

#[test]
fn issue14_connection_limit_stays_within_the_open_file_limit() {
    let p = Postern::start_with("", &["max_connections = 100000000"]);
    p.wait_log(
        "smtpd.max_connections = 100000000 is more than the open file limit allows: using ",
        1,
        5,
    );
    // smtpd raised its soft limit to the hard one.
    let pid = p.role_pid("smtpd");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "{line}");
    assert!(p.client().cmd("QUIT").starts_with("221"));
}
