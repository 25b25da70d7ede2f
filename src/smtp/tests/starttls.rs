//! STARTTLS at each level against servers with certificates made here.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::server::{Script, start};
use super::*;
use crate::ipc::DeliveryStatus::{Deferred, Sent};
use crate::smtp::dns::Target;

/// A server certificate for `name` signed by a CA of its own (PEM of the
/// CA), or self-signed.
pub(super) fn acceptor(name: &str, with_ca: bool) -> (tokio_rustls::TlsAcceptor, String) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec![name.to_string()]).unwrap();
    let (chain, ca_pem) = if with_ca {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        (vec![cert.der().clone()], ca.pem())
    } else {
        let cert = params.self_signed(&key).unwrap();
        (vec![cert.der().clone()], cert.pem())
    };
    let chain: Vec<CertificateDer<'static>> = chain;
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca_pem)
}

fn tls_script(acceptor: tokio_rustls::TlsAcceptor) -> Script {
    Script {
        tls: Some(acceptor),
        ..Script::default()
    }
}

#[tokio::test]
async fn may_encrypts_with_a_self_signed_certificate() {
    let (acceptor, _) = acceptor("mx.test", false);
    let (server, results) = exchange(
        tls_script(acceptor),
        |c| c.tls.outbound = TlsLevel::May,
        &["b@x.example"],
    )
    .await;
    assert_eq!(results[0].status, Sent);
    let commands = server.commands();
    assert_eq!(
        commands[..3],
        ["EHLO client.test", "STARTTLS", "TLS EHLO client.test"]
    );
    assert!(commands[3].starts_with("TLS MAIL FROM:"), "{commands:?}");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn verify_defers_a_self_signed_certificate() {
    let (acceptor, _) = acceptor("mx.test", false);
    let (server, results) = exchange(
        tls_script(acceptor),
        |c| c.tls.outbound = TlsLevel::Verify,
        &["b@x.example"],
    )
    .await;
    let res = &results[0];
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.7.5"));
    assert_eq!(res.reason, "Server certificate not trusted");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn verify_accepts_a_certificate_from_ca_file_for_the_host_name() {
    let (acceptor, ca_pem) = acceptor("mx.test", true);
    let server = start(tls_script(acceptor)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let s = setup(|c| {
        c.tls.outbound = TlsLevel::Verify;
        c.tls.ca_file = Some(ca_file);
    });
    let r = request(
        s.queue.path(),
        server.addr.port(),
        &["b@x.example"],
        MESSAGE,
    );
    let good = Target {
        host: "mx.test".into(),
        addr: server.addr.into(),
    };
    assert_eq!(
        s.agent.deliver_via(&r, Some(vec![good])).await.results[0].status,
        Sent
    );
    // The same server under another name: not verified.
    let wrong = Target {
        host: "other.test".into(),
        addr: server.addr.into(),
    };
    let s = setup(|c| {
        c.tls.outbound = TlsLevel::Verify;
        c.tls.ca_file = Some(dir.path().join("ca.pem"));
    });
    let r = request(
        s.queue.path(),
        server.addr.port(),
        &["b@x.example"],
        MESSAGE,
    );
    let res = &s.agent.deliver_via(&r, Some(vec![wrong])).await.results[0];
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.7.5"));
    assert_eq!(res.reason, "Server certificate not verified");
}

#[tokio::test]
async fn encrypt_defers_when_starttls_is_not_offered() {
    let (server, results) = exchange(
        Script::default(),
        |c| c.tls.outbound = TlsLevel::Encrypt,
        &["b@x.example"],
    )
    .await;
    let res = &results[0];
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.7.4"));
    assert_eq!(
        res.reason,
        "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    );
    assert!(!server.commands().iter().any(|c| c.starts_with("MAIL")));
}

#[tokio::test]
async fn encrypt_accepts_any_certificate() {
    let (acceptor, _) = acceptor("somewhere.else", false);
    let (server, results) = exchange(
        tls_script(acceptor),
        |c| c.tls.outbound = TlsLevel::Encrypt,
        &["b@x.example"],
    )
    .await;
    assert_eq!(results[0].status, Sent);
    assert_eq!(
        server
            .record
            .tls_sessions
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn may_retries_in_plain_text_after_a_failed_handshake() {
    let (server, results) = exchange(
        Script {
            broken_tls: true,
            ..Script::default()
        },
        |c| c.tls.outbound = TlsLevel::May,
        &["b@x.example"],
    )
    .await;
    let res = &results[0];
    assert_eq!(res.status, Sent, "{res:?}");
    assert_eq!(server.accepts(), 2);
    // The second session did not ask for TLS again.
    assert_eq!(
        server
            .commands()
            .iter()
            .filter(|c| *c == "STARTTLS")
            .count(),
        1
    );
}

#[tokio::test]
async fn none_never_starts_tls() {
    let (acceptor, _) = acceptor("mx.test", false);
    let (server, results) = exchange(
        tls_script(acceptor),
        |c| c.tls.outbound = TlsLevel::None,
        &["b@x.example"],
    )
    .await;
    assert_eq!(results[0].status, Sent);
    assert!(!server.commands().iter().any(|c| c == "STARTTLS"));
}
