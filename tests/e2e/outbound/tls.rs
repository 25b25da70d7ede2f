//! STARTTLS on the way out, at Postfix's security levels
//! (`[tls] outbound`): `may` encrypts without judging the certificate,
//! `verify` refuses a certificate nobody vouches for (the mail waits) and
//! accepts one from the CA in `tls.ca_file`, `encrypt` refuses a server
//! without STARTTLS.

use std::time::Duration;

use super::dns::{DnsServer, Zone};
use super::pki;
use super::sink::{Script, Sink};
use super::*;

fn transport(port: u16) -> String {
    format!("[relay]\ntransport = {{ \"example.test\" = \"smtp:[127.0.0.1]:{port}\" }}\n\n")
}

#[test]
fn may_delivers_over_tls_to_a_self_signed_certificate() {
    let cert = pki::self_signed(&["mx.tls.test"]);
    let sink = Sink::start(
        "127.0.0.1",
        Script::accept().with_starttls(cert.server_config()),
    );
    let p = Postern::start(&format!(
        "{}[tls]\noutbound = \"may\"\n",
        transport(sink.port())
    ));
    let sender = format!("{}@localhost", p.user);
    let id = submit(&p, &sender, &["rcpt@example.test"], MESSAGE);
    let msgs = sink.wait_messages(1, 20, || p.log());
    p.wait_log(&format!("{id}: removed"), 1, 20);
    let m = &msgs[0];
    assert!(m.tls, "the message went over TLS");
    assert_eq!(m.helo, "mail.test.example", "EHLO again after STARTTLS");
    assert_eq!(after_received(&m.data), MESSAGE);
    let seen = sink.seen();
    assert_eq!(seen.tls_established, 1);
    let verbs: Vec<String> = seen
        .commands
        .iter()
        .map(|c| c.split([' ', ':']).next().unwrap().to_ascii_uppercase())
        .collect();
    assert_eq!(
        &verbs[..3],
        ["EHLO", "STARTTLS", "EHLO"],
        "{:?}",
        seen.commands
    );
    let st = status(&p, &id, "rcpt@example.test");
    assert_eq!(st.relay, format!("127.0.0.1[127.0.0.1]:{}", sink.port()));
    assert_eq!((st.dsn.as_str(), st.status.as_str()), ("2.0.0", "sent"));
    assert_eq!(st.text, "250 2.0.0 Ok: queued as S1");
}

#[test]
fn verify_defers_a_self_signed_certificate() {
    let cert = pki::self_signed(&["mx.tls.test"]);
    let sink = Sink::start(
        "127.0.0.1",
        Script::accept().with_starttls(cert.server_config()),
    );
    let p = Postern::start(&format!(
        "{}[tls]\noutbound = \"verify\"\n",
        transport(sink.port())
    ));
    let u = p.user.clone();
    let id = submit(
        &p,
        &format!("{u}@localhost"),
        &["rcpt@example.test"],
        MESSAGE,
    );
    // Two attempts, both refused; the mail waits.
    p.wait_log(&format!("{id}: to=<rcpt@example.test>, "), 2, 30);
    let st = status(&p, &id, "rcpt@example.test");
    assert_eq!(st.status, "deferred");
    assert!(st.dsn.starts_with("4."), "{}", st.dsn);
    assert!(
        st.text.to_ascii_lowercase().contains("certificate"),
        "{}",
        st.text
    );
    let reason = delay_reason(&p, &id, "rcpt@example.test").expect("still queued");
    assert!(
        reason.to_ascii_lowercase().contains("certificate"),
        "{reason}"
    );
    let q = mailq(&p);
    assert!(mailq_entry(&q, &id).contains(&format!("({reason})")), "{q}");
    // Never in plain text instead.
    let seen = sink.seen();
    assert!(seen.messages.is_empty());
    assert!(
        !seen
            .commands
            .iter()
            .any(|c| c.to_ascii_uppercase().starts_with("MAIL")),
        "no fallback to plain text: {:?}",
        seen.commands
    );
    assert!(!p.log().contains("status=bounced"), "{}", p.log());
    assert!(p.delivered(&u).is_empty());
}

#[test]
fn verify_delivers_when_the_ca_file_vouches_for_the_server() {
    let (ca, server) = pki::ca_and_server(&["mx.tls.test"]);
    let sink = Sink::start(
        "127.0.0.1",
        Script::accept()
            .named("mx.tls.test")
            .with_starttls(server.server_config()),
    );
    let dns = DnsServer::start(Zone::new().a("mx.tls.test", "127.0.0.1"));
    let mut p = Postern::configure(
        &format!(
            "[relay]\ntransport = {{ \"example.test\" = \"smtp:[mx.tls.test]:{}\" }}\n\n{}\n[tls]\noutbound = \"verify\"\nca_file = \"{{dir}}/ca.pem\"\n",
            sink.port(),
            dns.config_table()
        ),
        &[],
        None,
    );
    // Readable by the postern user the daemons run as under root.
    ca.write_pem(&p.dir.path().join("ca.pem"));
    p.launch();
    let sender = format!("{}@localhost", p.user);
    let id = submit(&p, &sender, &["rcpt@example.test"], MESSAGE);
    let msgs = sink.wait_messages(1, 20, || p.log());
    p.wait_log(&format!("{id}: removed"), 1, 20);
    assert!(msgs[0].tls);
    assert_eq!(after_received(&msgs[0].data), MESSAGE);
    let st = status(&p, &id, "rcpt@example.test");
    assert_eq!(st.relay, format!("mx.tls.test[127.0.0.1]:{}", sink.port()));
    assert_eq!((st.dsn.as_str(), st.status.as_str()), ("2.0.0", "sent"));
}

#[test]
fn encrypt_defers_when_starttls_is_not_offered() {
    let sink = Sink::start("127.0.0.1", Script::accept());
    let p = Postern::start(&format!(
        "{}[tls]\noutbound = \"encrypt\"\n",
        transport(sink.port())
    ));
    let u = p.user.clone();
    let id = submit(
        &p,
        &format!("{u}@localhost"),
        &["rcpt@example.test"],
        MESSAGE,
    );
    p.wait_log(&format!("{id}: to=<rcpt@example.test>, "), 1, 20);
    let st = status(&p, &id, "rcpt@example.test");
    assert_eq!(st.status, "deferred");
    assert!(st.dsn.starts_with("4."), "{}", st.dsn);
    assert!(st.text.contains("TLS"), "{}", st.text);
    std::thread::sleep(Duration::from_millis(300));
    let seen = sink.seen();
    assert!(seen.messages.is_empty());
    assert!(
        !seen
            .commands
            .iter()
            .any(|c| c.to_ascii_uppercase().starts_with("MAIL")),
        "{:?}",
        seen.commands
    );
    assert!(delay_reason(&p, &id, "rcpt@example.test").is_some());
}
