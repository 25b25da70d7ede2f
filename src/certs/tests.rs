//! Chains made here with rcgen (ECDSA P-256 and Ed25519; ring cannot
//! make RSA keys), served to real rustls clients.

use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A self-signed certificate for `name` with a key of `alg`: (key PEM,
/// certificate PEM, certificate DER).
fn make(
    name: &str,
    alg: &'static rcgen::SignatureAlgorithm,
) -> (String, String, CertificateDer<'static>) {
    let key = KeyPair::generate_for(alg).unwrap();
    let cert = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (key.serialize_pem(), cert.pem(), cert.der().clone())
}

/// Handshake with a client that trusts `roots` (and, with `no_ed25519`,
/// does not offer Ed25519 signatures, as an older client); the
/// certificate the server presented.
async fn presented(
    config: Arc<rustls::ServerConfig>,
    roots: &[CertificateDer<'static>],
    no_ed25519: bool,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<CertificateDer<'static>, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if no_ed25519 {
        let algs = provider.signature_verification_algorithms;
        let mapping: Vec<_> = algs
            .mapping
            .iter()
            .filter(|(scheme, _)| *scheme != rustls::SignatureScheme::ED25519)
            .cloned()
            .collect();
        provider.signature_verification_algorithms = rustls::crypto::WebPkiSupportedAlgorithms {
            all: algs.all,
            mapping: Box::leak(mapping.into_boxed_slice()),
        };
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots_of(roots))
        .with_no_client_auth();
    handshake(config, client).await.map(|(cert, _)| cert)
}

fn roots_of(roots: &[CertificateDer<'static>]) -> rustls::RootCertStore {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    store
}

/// A handshake of `client` with `config` over a pipe, and a ping-pong
/// inside: the certificate the server presented and the suite agreed on.
async fn handshake(
    config: Arc<rustls::ServerConfig>,
    client: rustls::ClientConfig,
) -> Result<(CertificateDer<'static>, rustls::SupportedCipherSuite), String> {
    let (a, b) = tokio::io::duplex(1 << 16);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let server = tokio::spawn(async move {
        let mut s = acceptor.accept(b).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        s.write_all(b"pong").await.map_err(|e| e.to_string())?;
        s.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let name = ServerName::try_from("mx.example.org").unwrap();
    let mut c = connector
        .connect(name, a)
        .await
        .map_err(|e| e.to_string())?;
    c.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    server.await.unwrap()?;
    let (_, conn) = c.get_ref();
    Ok((
        conn.peer_certificates().unwrap()[0].clone(),
        conn.negotiated_cipher_suite().unwrap(),
    ))
}

#[tokio::test]
async fn two_chains_each_client_gets_the_one_it_can_check() {
    let dir = tempfile::tempdir().unwrap();
    let (ec_key, ec_cert, ec_der) = make("mx.example.org", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (ed_key, ed_cert, ed_der) = make("mx.example.org", &rcgen::PKCS_ED25519);
    // Postfix's layout: one file per chain, the key first.
    let ed = dir.path().join("ed25519.pem");
    let ec = dir.path().join("ecdsa.pem");
    std::fs::write(&ed, format!("{ed_key}{ed_cert}")).unwrap();
    std::fs::write(&ec, format!("{ec_key}{ec_cert}")).unwrap();
    let config = server_config(&[ed.clone(), ec.clone()]).unwrap();
    let roots = [ec_der.clone(), ed_der.clone()];
    // A client that takes Ed25519 gets the first chain, over TLS 1.3 and
    // 1.2 alike…
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let got = presented(config.clone(), &roots, false, version)
            .await
            .unwrap();
        assert_eq!(got, ed_der);
    }
    // …one that does not, the second.
    let got = presented(config, &roots, true, &rustls::version::TLS13)
        .await
        .unwrap();
    assert_eq!(got, ec_der);
}

/// Issue 18 (testssl's "cipher_order"): the server's order decides. A
/// client that lists the suites backwards, ChaCha20 first, still gets
/// AES-256-GCM, over TLS 1.3 and 1.2.
#[tokio::test]
async fn issue_18_the_server_order_picks_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert, der) = make("mx.example.org", &rcgen::PKCS_ECDSA_P256_SHA256);
    let file = dir.path().join("ecdsa.pem");
    std::fs::write(&file, format!("{key}{cert}")).unwrap();
    let config = server_config(&[file]).unwrap();
    let cases = [
        (
            &rustls::version::TLS13,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        ),
        (
            &rustls::version::TLS12,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
    ];
    for (version, want) in cases {
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites.reverse();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots_of(std::slice::from_ref(&der)))
            .with_no_client_auth();
        let (_, suite) = handshake(config.clone(), client).await.unwrap();
        assert_eq!(suite.suite(), want);
    }
}

#[test]
fn bad_files_are_refused_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert, _) = make("mx.example.org", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (other_key, _, _) = make("mx.example.org", &rcgen::PKCS_ECDSA_P256_SHA256);
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cases = [
        (
            write("cert-first.pem", &format!("{cert}{key}")),
            "a certificate before any private key",
        ),
        (
            write("key-only.pem", &key),
            "a private key without its certificate",
        ),
        (
            write("empty.pem", "hello\n"),
            "no private key or certificate",
        ),
        (
            write("mismatch.pem", &format!("{other_key}{cert}")),
            "the key does not belong to the certificate",
        ),
    ];
    for (path, want) in &cases {
        let e = server_config(std::slice::from_ref(path))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        assert!(e.contains(want), "{e}");
    }
    // Expired, and not yet valid.
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    for (from, to, want) in [
        ((2020, 1, 1), (2021, 1, 1), "the certificate expired on "),
        (
            (2099, 1, 1),
            (2100, 1, 1),
            "the certificate is not valid before ",
        ),
    ] {
        let mut params = CertificateParams::new(vec!["mx.example.org".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        let cert = params.self_signed(&key).unwrap();
        let path = write(
            "dated.pem",
            &format!("{}{}", key.serialize_pem(), cert.pem()),
        );
        let e = server_config(std::slice::from_ref(&path))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
    let missing = dir.path().join("missing.pem");
    let e = server_config(std::slice::from_ref(&missing))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.pem"), "{e}");
    assert!(matches!(server_config(&[]), Err(CertError::Empty)));
}

/// A renewed certificate is taken at the next handshake; a broken
/// replacement is refused and the old one kept.
#[tokio::test]
async fn live_follows_a_renewal_and_keeps_the_old_on_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chain.pem");
    let (k1, c1, d1) = make("mx.example.org", &rcgen::PKCS_ECDSA_P256_SHA256);
    std::fs::write(&file, format!("{k1}{c1}")).unwrap();
    let live = Live::new(vec![file.clone()]).unwrap();
    let (k2, c2, d2) = make("mx.example.org", &rcgen::PKCS_ECDSA_P256_SHA256);
    let roots = [d1.clone(), d2.clone()];
    let got = presented(live.current(), &roots, false, &rustls::version::TLS13)
        .await
        .unwrap();
    assert_eq!(got, d1);
    // Renewed by rename, as certbot and acme.sh do.
    let tmp = dir.path().join("chain.pem.new");
    std::fs::write(&tmp, format!("{k2}{c2}")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let got = presented(live.current(), &roots, false, &rustls::version::TLS13)
        .await
        .unwrap();
    assert_eq!(got, d2);
    // A half-written file: refused, the renewed chain still served.
    std::fs::write(&tmp, &k2).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let got = presented(live.current(), &roots, false, &rustls::version::TLS13)
        .await
        .unwrap();
    assert_eq!(got, d2);
}
