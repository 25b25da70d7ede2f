//! MX delivery with a DNS server of the test's own: MX preference, the
//! next MX when the first is down, the A record when there is no MX,
//! null MX (RFC 7505) and NXDOMAIN bounce, SERVFAIL defers. The MX hosts
//! are sinks on 127.0.0.10/11/12, one port P for all, reached through
//! `[smtp] port = P`.

use std::time::Duration;

use super::dns::{DnsServer, Zone};
use super::sink::{Script, Sink, close, same_port};
use super::*;

/// The test zone. The MX records are listed out of preference order, so
/// answer order is not what picks mx1. nullmx.test also has an A record
/// (a sink that must never be called).
fn zone() -> Zone {
    Zone::new()
        .mx("example.test", 20, "mx2.example.test")
        .mx("example.test", 10, "mx1.example.test")
        .a("mx1.example.test", "127.0.0.10")
        .a("mx2.example.test", "127.0.0.11")
        .a("amx.test", "127.0.0.12")
        .null_mx("nullmx.test")
        .a("nullmx.test", "127.0.0.12")
        .servfail("broken.test")
}

/// A postern that finds MX hosts through `dns` and connects to them on
/// `port`.
fn postern(dns: &DnsServer, port: u16) -> Postern {
    Postern::start(&format!(
        "[smtp]\nport = {port}\n\n{}\n",
        dns.config_table()
    ))
}

#[test]
fn delivers_to_the_most_preferred_mx() {
    let mut ls = same_port(&["127.0.0.10", "127.0.0.11"]);
    let mx2 = Sink::on(
        ls.pop().unwrap(),
        Script::accept().named("mx2.example.test"),
    );
    let mx1 = Sink::on(
        ls.pop().unwrap(),
        Script::accept().named("mx1.example.test"),
    );
    let dns = DnsServer::start(zone());
    let p = postern(&dns, mx1.port());
    let sender = format!("{}@localhost", p.user);
    let ids: Vec<String> = (0..2)
        .map(|_| submit(&p, &sender, &["rcpt@example.test"], MESSAGE))
        .collect();
    let msgs = mx1.wait_messages(2, 20, || p.log());
    for id in &ids {
        p.wait_log(&format!("{id}: removed"), 1, 20);
        let st = status(&p, id, "rcpt@example.test");
        assert_eq!(
            st.relay,
            format!("mx1.example.test[127.0.0.10]:{}", mx1.port())
        );
        assert_eq!((st.dsn.as_str(), st.status.as_str()), ("2.0.0", "sent"));
        assert!(
            st.text.starts_with("250 2.0.0 Ok: queued as S"),
            "{}",
            st.text
        );
    }
    for m in &msgs {
        assert_eq!(m.sender, sender);
        assert_eq!(m.recipients, vec!["rcpt@example.test"]);
        assert_eq!(after_received(&m.data), MESSAGE);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(mx1.seen().messages.len(), 2, "each message exactly once");
    assert_eq!(mx2.seen().connections, 0, "the less preferred MX untouched");
    assert!(
        dns.queries()
            .contains(&("example.test".to_string(), "MX".to_string())),
        "{:?}",
        dns.queries()
    );
}

#[test]
fn first_mx_down_the_second_is_used() {
    let mut ls = same_port(&["127.0.0.10", "127.0.0.11"]);
    let mx2 = Sink::on(
        ls.pop().unwrap(),
        Script::accept().named("mx2.example.test"),
    );
    // mx1: nothing listens on 127.0.0.10:P (connection refused).
    let down = close(ls.pop().unwrap());
    let dns = DnsServer::start(zone());
    let p = postern(&dns, mx2.port());
    let sender = format!("{}@localhost", p.user);
    let id = submit(&p, &sender, &["rcpt@example.test"], MESSAGE);
    let msgs = mx2.wait_messages(1, 20, || p.log());
    p.wait_log(&format!("{id}: removed"), 1, 20);
    assert_eq!(after_received(&msgs[0].data), MESSAGE);
    let st = status(&p, &id, "rcpt@example.test");
    assert_eq!(
        st.relay,
        format!("mx2.example.test[127.0.0.11]:{}", down.port())
    );
    assert_eq!((st.dsn.as_str(), st.status.as_str()), ("2.0.0", "sent"));
    assert_eq!(st.text, "250 2.0.0 Ok: queued as S1");
    // Found at the first attempt: no deferral in between.
    assert!(
        !p.log()
            .contains(&format!("{id}: to=<rcpt@example.test>, relay=none")),
        "{}",
        p.log()
    );
    assert!(!p.log().contains("status=deferred"), "{}", p.log());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(mx2.seen().messages.len(), 1, "exactly once");
}

#[test]
fn no_mx_record_the_a_record_is_used() {
    let mut ls = same_port(&["127.0.0.12"]);
    let host = Sink::on(ls.pop().unwrap(), Script::accept().named("amx.test"));
    let dns = DnsServer::start(zone());
    let p = postern(&dns, host.port());
    let sender = format!("{}@localhost", p.user);
    let id = submit(&p, &sender, &["rcpt@amx.test"], MESSAGE);
    let msgs = host.wait_messages(1, 20, || p.log());
    p.wait_log(&format!("{id}: removed"), 1, 20);
    assert_eq!(msgs[0].recipients, vec!["rcpt@amx.test"]);
    assert_eq!(after_received(&msgs[0].data), MESSAGE);
    let st = status(&p, &id, "rcpt@amx.test");
    assert_eq!(st.relay, format!("amx.test[127.0.0.12]:{}", host.port()));
    assert_eq!((st.dsn.as_str(), st.status.as_str()), ("2.0.0", "sent"));
    let asked = dns.queries();
    assert!(
        asked.contains(&("amx.test".to_string(), "MX".to_string())),
        "MX first: {asked:?}"
    );
    assert!(
        asked.contains(&("amx.test".to_string(), "A".to_string())),
        "{asked:?}"
    );
}

/// A recipient domain that must fail permanently, at once, with no
/// connection anywhere: the DSN to the local sender.
fn bounces_without_connecting(rcpt: &str, dsn_code: &str) {
    let mut ls = same_port(&["127.0.0.12"]);
    let trap = Sink::on(ls.pop().unwrap(), Script::accept());
    let dns = DnsServer::start(zone());
    let p = postern(&dns, trap.port());
    let u = p.user.clone();
    let id = submit(&p, &format!("{u}@localhost"), &[rcpt], MESSAGE);
    p.wait_log(&format!("{id}: sender non-delivery notification: "), 1, 20);
    p.wait_log(&format!("{id}: removed"), 1, 20);
    let st = status(&p, &id, rcpt);
    assert_eq!(st.relay, "none");
    assert_eq!(st.dsn, dsn_code);
    assert_eq!(st.status, "bounced");
    // At once: the first attempt was the last.
    let tries = p.log().matches(&format!("{id}: to=<{rcpt}>, ")).count();
    assert_eq!(tries, 1, "{}", p.log());
    let files = p.wait_delivered(&u, 1, 20);
    let dsn = read_dsn(&files[0]);
    for field in [
        format!("Final-Recipient: rfc822; {rcpt}\n"),
        "Action: failed\n".to_string(),
        format!("Status: {dsn_code}\n"),
    ] {
        assert!(
            dsn.status.contains(&field),
            "no {field:?} in:\n{}",
            dsn.status
        );
    }
    assert!(
        !dsn.status.contains("Remote-MTA:"),
        "no remote MTA was reached:\n{}",
        dsn.status
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(p.delivered(&u).len(), 1, "one notice");
    assert_eq!(trap.seen().connections, 0, "no connection made");
}

#[test]
fn null_mx_bounces_at_once() {
    bounces_without_connecting("rcpt@nullmx.test", "5.1.10");
}

#[test]
fn unknown_domain_bounces() {
    bounces_without_connecting("rcpt@nx.test", "5.4.4");
}

#[test]
fn dns_failure_defers() {
    let dns = DnsServer::start(zone());
    let p = postern(&dns, 25);
    let u = p.user.clone();
    let id = submit(
        &p,
        &format!("{u}@localhost"),
        &["rcpt@broken.test"],
        MESSAGE,
    );
    p.wait_log(&format!("{id}: to=<rcpt@broken.test>, "), 2, 20);
    let st = status(&p, &id, "rcpt@broken.test");
    assert_eq!(st.relay, "none");
    assert_eq!(st.dsn, "4.4.3");
    assert_eq!(st.status, "deferred");
    let reason = delay_reason(&p, &id, "rcpt@broken.test").expect("still queued");
    assert_eq!(reason, st.text);
    assert!(!p.log().contains("status=bounced"), "{}", p.log());
    assert!(p.delivered(&u).is_empty());
}
