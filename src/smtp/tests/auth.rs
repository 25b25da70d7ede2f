//! AUTH to the server when `relay.sasl_password_files` has a login for
//! it: what goes on the wire, and why a recipient waits when the login
//! cannot be given.

use super::server::{Script, Server, start};
use super::starttls::acceptor;
use super::*;
use crate::ipc::DeliveryStatus::{Deferred, Sent};

/// The login of every test: `alice`, `secret`.
const TABLE: &str = "inline:{ 127.0.0.1=alice:secret }";
/// `\0alice\0secret`, base64.
const PLAIN: &str = "AUTH PLAIN AGFsaWNlAHNlY3JldA==";

/// A server offering `auth` mechanisms (after STARTTLS too, with `tls`).
fn script(mechanisms: &str, answers: &[&str], tls: bool) -> Script {
    let mut ehlo = Script::default().ehlo.unwrap_or_default();
    if !mechanisms.is_empty() {
        ehlo.push(format!("AUTH {mechanisms}"));
    }
    Script {
        ehlo: Some(ehlo),
        auth: answers.iter().map(|a| a.to_string()).collect(),
        tls: tls.then(|| acceptor("mx.test", false).0),
        ..Script::default()
    }
}

/// Deliver `MESSAGE` to b@x.example through `script`'s server, with the
/// password table `table` (may say `PORT` for the server's port).
async fn deliver_with(
    script: Script,
    table: &str,
    tweak: impl FnOnce(&mut Config),
) -> (Server, DeliveryResult) {
    let server = start(script).await;
    let port = server.addr.port();
    let s = setup(|c| {
        c.relay.sasl_password_files = vec![table.replace("PORT", &port.to_string())];
        tweak(c)
    });
    let r = request(s.queue.path(), port, &["b@x.example"], MESSAGE);
    let mut results = deliver(&s, &r).await;
    (server, results.remove(0))
}

fn plaintext(c: &mut Config) {
    c.relay.sasl_plaintext = true;
}

#[tokio::test]
async fn plain_after_starttls_then_the_mail() {
    let answers = ["235 2.7.0 Authentication successful"];
    let (server, res) = deliver_with(script("LOGIN PLAIN", &answers, true), TABLE, |c| {
        c.tls.outbound = TlsLevel::May
    })
    .await;
    assert_eq!(
        (res.status, res.reason.as_str()),
        (Sent, "250 2.0.0 Ok: queued as TEST")
    );
    let commands = server.commands();
    assert_eq!(
        commands[..4],
        [
            "EHLO client.test".to_string(),
            "STARTTLS".into(),
            "TLS EHLO client.test".into(),
            format!("TLS {PLAIN}"),
        ]
    );
    assert!(commands[4].starts_with("TLS MAIL FROM:"), "{commands:?}");
}

#[tokio::test]
async fn login_when_plain_is_not_offered() {
    let answers = ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "235 2.7.0 Ok"];
    let (server, res) =
        deliver_with(script("CRAM-MD5 LOGIN", &answers, false), TABLE, plaintext).await;
    assert_eq!(res.status, Sent, "{res:?}");
    assert_eq!(
        server.commands()[..4],
        ["EHLO client.test", "AUTH LOGIN", "YWxpY2U=", "c2VjcmV0"]
    );
}

/// The key of the next hop as written, brackets and port, when the host
/// name has none.
#[tokio::test]
async fn the_next_hop_as_written_is_a_key() {
    let table = "inline:{ other.example=bob:x, [127.0.0.1]:PORT=alice:secret }";
    let answers = ["235 2.7.0 Ok"];
    let (server, res) = deliver_with(script("PLAIN", &answers, false), table, plaintext).await;
    assert_eq!(res.status, Sent, "{res:?}");
    assert_eq!(server.commands()[1], PLAIN);
}

#[tokio::test]
async fn a_server_without_a_login_gets_no_auth() {
    let table = "inline:{ other.example=bob:x }";
    let (server, res) = deliver_with(script("PLAIN", &[], false), table, plaintext).await;
    assert_eq!(res.status, Sent, "{res:?}");
    assert!(server.commands()[1].starts_with("MAIL FROM:"));
}

#[tokio::test]
async fn a_refused_login_defers_with_the_reply() {
    let (server, res) = deliver_with(script("PLAIN", &[], false), TABLE, plaintext).await;
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.7.8"));
    assert_eq!(
        res.reason,
        "SASL authentication failed; server 127.0.0.1[127.0.0.1] said: \
         535 5.7.8 Error: authentication failed: authentication failure"
    );
    assert_eq!(res.remote_mta.as_deref(), Some("dns; 127.0.0.1"));
    assert_eq!(server.commands(), ["EHLO client.test", PLAIN]);
    assert!(server.messages().is_empty());

    // A reply without an enhanced code: 4.7.0.
    let answers = ["454 Temporary authentication failure"];
    let (_, res) = deliver_with(script("PLAIN", &answers, false), TABLE, plaintext).await;
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.7.0"));
}

/// Without TLS and without `relay.sasl_plaintext`, nothing of the login
/// is sent.
#[tokio::test]
async fn no_password_in_plain_text() {
    let (server, res) = deliver_with(script("PLAIN LOGIN", &[], false), TABLE, |_| {}).await;
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.7.0"));
    assert_eq!(
        res.reason,
        "SASL authentication failed; cannot authenticate to server 127.0.0.1[127.0.0.1]: \
         the session is not encrypted (no TLS), and the password is not sent in plain text \
         (relay.sasl_plaintext = false)"
    );
    assert_eq!(server.commands(), ["EHLO client.test"]);
}

#[tokio::test]
async fn no_mechanism_available() {
    let (_, res) = deliver_with(script("", &[], false), TABLE, plaintext).await;
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.7.0"));
    assert!(
        res.reason.ends_with(
            "cannot authenticate to server 127.0.0.1[127.0.0.1]: no mechanism available \
             (the server offers no AUTH)"
        ),
        "{}",
        res.reason
    );
    let (server, res) =
        deliver_with(script("CRAM-MD5 XOAUTH2", &[], false), TABLE, plaintext).await;
    assert!(
        res.reason.ends_with(
            "no mechanism available (the server offers CRAM-MD5 XOAUTH2; \
             postern speaks PLAIN and LOGIN)"
        ),
        "{}",
        res.reason
    );
    assert_eq!(server.commands(), ["EHLO client.test"]);
}

/// A challenge PLAIN has no answer for is cancelled with `*`.
#[tokio::test]
async fn an_unexpected_challenge_is_cancelled() {
    let answers = ["334 ", "501 5.7.0 Auth aborted"];
    let (server, res) = deliver_with(script("PLAIN", &answers, false), TABLE, plaintext).await;
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.5.0"));
    assert!(
        res.reason.contains("unexpected server challenge"),
        "{}",
        res.reason
    );
    assert_eq!(server.commands(), ["EHLO client.test", PLAIN, "*"]);
}

/// A password table that cannot be read defers before connecting.
#[tokio::test]
async fn an_unreadable_table_defers() {
    let (server, res) = deliver_with(
        script("PLAIN", &[], false),
        "hash:/nonexistent/postern/sasl_passwd",
        plaintext,
    )
    .await;
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.3.0"));
    assert!(
        res.reason
            .starts_with("cannot look up the SASL login for 127.0.0.1[127.0.0.1]: "),
        "{}",
        res.reason
    );
    assert_eq!(server.accepts(), 0);
}

/// A refused login counts as a session: with three hosts for the next
/// hop, the password is tried at two (Postfix's `smtp_mx_session_limit`).
#[tokio::test]
async fn a_refused_password_is_tried_at_two_hosts_at_most() {
    let server = start(script("PLAIN", &[], false)).await;
    let s = setup(|c| {
        c.relay.sasl_password_files = vec!["static:alice:secret".into()];
        plaintext(c);
    });
    let r = request(
        s.queue.path(),
        server.addr.port(),
        &["b@x.example"],
        MESSAGE,
    );
    let targets = ["mx1", "mx2", "mx3"]
        .iter()
        .map(|h| crate::smtp::dns::Target {
            host: format!("{h}.x.example"),
            addr: server.addr.into(),
        })
        .collect();
    let res = &s.agent.deliver_via(&r, Some(targets)).await.results[0];
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.7.8"));
    assert!(res.reason.contains("mx2.x.example"), "{}", res.reason);
    assert_eq!(server.accepts(), 2);
}
