//! Who the client is (issue 15, items 4 and 7): smtpd looks up every TCP
//! client's name before its greeting (PTR, then the forward lookup that
//! must lead back to the address, within a deadline) and the log and
//! `Received:` say `name[addr]` as Postfix's do, `unknown[addr]` when the
//! lookup fails; an IPv4 client of a dual-stack listener is IPv4.
//!
//! The resolver answers reverse lookups of 127/8 itself (RFC 6761:
//! `localhost`), so the clients whose names the test's DNS server gives
//! are documentation addresses (RFC 5737) on the loopback interface of a
//! network namespace of the test's own.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::outbound::dns::{DnsServer, Zone};

#[test]
fn issue_15_client_names_are_looked_up_and_forward_confirmed() {
    let ran = in_private_network(&["192.0.2.10", "192.0.2.20", "192.0.2.30"], || {
        let dns = DnsServer::start(
            Zone::new()
                .ptr("192.0.2.10", "client.example")
                .a("client.example", "192.0.2.10")
                // A name that does not lead back to the address.
                .ptr("192.0.2.20", "liar.example")
                .a("liar.example", "192.0.2.99")
                .silent("30.2.0.192.in-addr.arpa"),
        );
        // No restriction uses the client's name: it is looked up anyway.
        let p = Postern::start(&dns.config_table());
        let user = p.user.clone();

        let mut c = p.client_from("192.0.2.10");
        assert!(c.cmd("EHLO c.example").starts_with("250-"));
        assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
        assert!(
            c.cmd("RCPT TO:<nobody-such-user@localhost>")
                .starts_with("550 5.1.1 ")
        );
        assert_eq!(
            c.cmd(&format!("RCPT TO:<{user}@localhost>")),
            "250 2.1.5 Ok"
        );
        assert!(c.cmd("DATA").starts_with("354 "));
        let reply = c.cmd("Subject: named\r\n\r\nhello\r\n.");
        assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
        assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
        let files = p.wait_delivered(&user, 1, 20);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            text.contains("\nReceived: from c.example (client.example [192.0.2.10])\n"),
            "{text}"
        );
        for line in [
            "postern/smtpd[",
            "]: connect from client.example[192.0.2.10]\n",
            "NOQUEUE: reject: RCPT from client.example[192.0.2.10]: 550 5.1.1 ",
            ": client=client.example[192.0.2.10]\n",
            "disconnect from client.example[192.0.2.10] ehlo=1 mail=1 rcpt=1/2 data=1 quit=1",
        ] {
            p.wait_log(line, 1, 5);
        }

        // A PTR name that does not confirm: unknown, with Postfix's warning.
        let mut c = p.client_from("192.0.2.20");
        assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
        p.wait_log("connect from unknown[192.0.2.20]\n", 1, 5);
        p.wait_log(
            "warning: hostname liar.example does not resolve to address 192.0.2.20\n",
            1,
            5,
        );

        // A DNS server that never answers: unknown once the deadline
        // (5 s) has passed, and then the greeting.
        let started = Instant::now();
        let stream = socket2_connect(p.addr, "192.0.2.30".parse().unwrap());
        let (mut c, greeting) = Client::greeted(stream);
        let waited = started.elapsed();
        assert!(greeting.starts_with("220 "), "{greeting}");
        assert!(waited < Duration::from_secs(7), "greeted after {waited:?}");
        assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
        p.wait_log("connect from unknown[192.0.2.30]\n", 1, 5);
        assert!(
            dns.queries()
                .contains(&("30.2.0.192.in-addr.arpa".into(), "PTR".into())),
            "{:?}",
            dns.queries()
        );
        eprintln!("a silent DNS server held the greeting for {waited:?}");
    });
    if ran.is_none() {
        eprintln!(
            "SKIPPED issue_15_client_names_are_looked_up_and_forward_confirmed: \
             no network namespace here (needs root and unshare(CLONE_NEWNET))"
        );
    }
}

#[test]
fn issue_15_ipv4_clients_of_a_dual_stack_listener_are_ipv4() {
    if !dual_stack_works() {
        eprintln!(
            "SKIPPED issue_15_ipv4_clients_of_a_dual_stack_listener_are_ipv4: \
             no IPv6 here, or [::] does not take IPv4 clients (net.ipv6.bindv6only)"
        );
        return;
    }
    let mut p = Postern::configure(
        "[relay]\nnetworks = [\"127.0.0.0/8\"]\n\
         transport = { \"remote.example\" = \"smtp:[127.0.0.1]:1\" }\n",
        &[],
        None,
    );
    p.edit_config("listen = [\"127.0.0.1:0\"]", "listen = [\"[::]:0\"]");
    p.launch();
    assert!(p.addr.is_ipv6(), "{}", p.addr);
    let user = p.user.clone();
    let v4 = SocketAddr::from(([127, 0, 0, 1], p.addr.port()));
    let started = Instant::now();
    let mut c = Client::connect(v4, None);
    // The resolver answers for loopback itself: no wait for DNS.
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(1), "greeted after {waited:?}");

    assert!(c.cmd("EHLO c.example").starts_with("250-"));
    assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
    // 127.0.0.1 is in relay.networks (127.0.0.0/8): it may relay.
    assert_eq!(c.cmd("RCPT TO:<x@remote.example>"), "250 2.1.5 Ok");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{user}@localhost>")),
        "250 2.1.5 Ok"
    );
    assert!(c.cmd("DATA").starts_with("354 "));
    let reply = c.cmd("Subject: mapped\r\n\r\nhello\r\n.");
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    let files = p.wait_delivered(&user, 1, 20);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("\nReceived: from c.example (localhost [127.0.0.1])\n"),
        "{text}"
    );
    p.wait_log("connect from localhost[127.0.0.1]\n", 1, 5);
    p.wait_log(": client=localhost[127.0.0.1]\n", 1, 5);
    assert!(!p.log().contains("::ffff:"), "{}", p.log());
}

/// Whether a `[::]` listener takes IPv4 clients here.
fn dual_stack_works() -> bool {
    let Ok(l) = TcpListener::bind("[::]:0") else {
        return false;
    };
    let Ok(port) = l.local_addr().map(|a| a.port()) else {
        return false;
    };
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .is_ok()
}

/// Run `body` on a thread of its own in a new network namespace, with the
/// loopback interface up and also holding `addrs`; everything it starts
/// (postern, the DNS server's sockets, clients) lives there. `None` when
/// this machine gives no network namespace (not root, or refused).
fn in_private_network<T: Send + 'static>(
    addrs: &'static [&'static str],
    body: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let t = std::thread::spawn(move || {
        // Only this thread moves (a network namespace is per thread).
        if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
            return None;
        }
        let ip = |args: &[&str]| {
            // iproute2 missing: no namespace to speak of.
            let out = Command::new("ip").args(args).output().ok()?;
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(())
        };
        ip(&["link", "set", "lo", "up"])?;
        for a in addrs {
            ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"])?;
        }
        Some(body())
    });
    match t.join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
