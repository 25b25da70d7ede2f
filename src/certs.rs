//! Server certificates for inbound TLS (issue 18: STARTTLS on 25 and 587,
//! implicit TLS on 465), read as Postfix reads `smtpd_tls_chain_files`:
//! PEM files holding, in order, a private key and its certificate chain,
//! then optionally another key and its chain (RSA and ECDSA side by side,
//! or Ed25519). Each handshake gets the first chain whose key can sign
//! with a scheme the client offers, so an old client that knows only RSA
//! still gets the RSA chain.
//!
//! TLS 1.2 and 1.3 only, with rustls's default cipher suites (AEAD only,
//! forward secrecy only), chosen in the server's order (AES-256-GCM,
//! AES-128-GCM, ChaCha20-Poly1305), not the client's, as Postfix does with
//! `tls_preempt_cipherlist = yes`: nothing a 2026 scanner flags
//! (`testssl --starttls smtp`, tests/e2e/testssl.rs).
//!
//! [`Live`] holds the configuration in effect and reads the files again
//! when they change (a renewed certificate): a new set that does not load
//! is refused with a log line naming the file and why, and the old one
//! keeps serving; handshakes in progress are not disturbed.
//!
//! SECURITY: the key files are read by smtpd alone (its Landlock room
//! follows the configured paths); a key is never logged, and errors name
//! files and lines, never contents.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::watch::{Stamp, stamp};

/// Why a set of chain files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("no certificate chain files given")]
    Empty,
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

fn file_error(path: &Path, reason: impl Into<String>) -> CertError {
    CertError::File {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The chains of `files`, each key followed by its certificates.
pub fn chains(
    files: &[PathBuf],
    provider: &CryptoProvider,
) -> Result<Vec<Arc<CertifiedKey>>, CertError> {
    if files.is_empty() {
        return Err(CertError::Empty);
    }
    let mut out: Vec<(
        PathBuf,
        PrivateKeyDer<'static>,
        Vec<CertificateDer<'static>>,
    )> = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).map_err(|e| file_error(file, e.to_string()))?;
        let mut seen = 0;
        for item in Item::pem_slice_iter(&bytes) {
            let item: Item = item.map_err(|e| file_error(file, format!("not PEM: {e}")))?;
            seen += 1;
            match item {
                Item::Key(key) => out.push((file.clone(), key, Vec::new())),
                Item::Cert(cert) => match out.last_mut() {
                    Some((_, _, chain)) => chain.push(cert),
                    None => {
                        return Err(file_error(
                            file,
                            "a certificate before any private key (each key comes first, then its chain)",
                        ));
                    }
                },
            }
        }
        if seen == 0 {
            return Err(file_error(file, "no private key or certificate in it"));
        }
    }
    out.into_iter()
        .map(|(file, key, chain)| {
            if chain.is_empty() {
                return Err(file_error(&file, "a private key without its certificate"));
            }
            check_dates(&file, &chain[0])?;
            let signing = provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| file_error(&file, format!("unusable private key: {e}")))?;
            let certified = CertifiedKey::new(chain, signing);
            match certified.keys_match() {
                Ok(())
                | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                    Ok(Arc::new(certified))
                }
                Err(e) => Err(file_error(
                    &file,
                    format!("the key does not belong to the certificate after it ({e})"),
                )),
            }
        })
        .collect()
}

/// A certificate that is not valid now (expired, or not yet valid) is
/// refused at load, as a mismatched key is: served, it would fail every
/// client that checks it.
fn check_dates(file: &Path, cert: &CertificateDer<'_>) -> Result<(), CertError> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| file_error(file, format!("the certificate does not parse: {e}")))?;
    let validity = x509.validity();
    let now = x509_parser::time::ASN1Time::now();
    if validity.not_after < now {
        return Err(file_error(
            file,
            format!("the certificate expired on {}", validity.not_after),
        ));
    }
    if validity.not_before > now {
        return Err(file_error(
            file,
            format!(
                "the certificate is not valid before {}",
                validity.not_before
            ),
        ));
    }
    Ok(())
}

/// A PEM item we use: a private key (PKCS#8, PKCS#1 or SEC1) or a
/// certificate; other sections are skipped.
enum Item {
    Key(PrivateKeyDer<'static>),
    Cert(CertificateDer<'static>),
}

impl PemObject for Item {
    fn from_pem(kind: rustls::pki_types::pem::SectionKind, der: Vec<u8>) -> Option<Self> {
        use rustls::pki_types::pem::SectionKind;
        match kind {
            SectionKind::Certificate => Some(Item::Cert(CertificateDer::from(der))),
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                PrivateKeyDer::from_pem(kind, der).map(Item::Key)
            }
            _ => None,
        }
    }
}

/// Picks, for each client, the first chain whose key can sign with a
/// scheme the client offers.
#[derive(Debug)]
struct ByScheme(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for ByScheme {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let offered = hello.signature_schemes();
        self.0
            .iter()
            .find(|c| c.key.choose_scheme(offered).is_some())
            .cloned()
    }
}

/// A server configuration for `files`: TLS 1.2 and 1.3, the server's
/// cipher order, no client certificates.
pub fn server_config(files: &[PathBuf]) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chains = chains(files, &provider)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| CertError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ByScheme(chains)));
    // Every suite offered is strong; the server's order still decides, so
    // that a client listing a weaker one first does not get it (testssl
    // rates a server without an order of its own HIGH: "cipher_order").
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The configuration in effect, read again when the files change.
pub struct Live {
    files: Vec<PathBuf>,
    state: Mutex<(Vec<Stamp>, Arc<rustls::ServerConfig>)>,
}

impl Live {
    /// Load `files`; an error here is the caller's to report (at start,
    /// nothing would serve TLS).
    pub fn new(files: Vec<PathBuf>) -> Result<Live, CertError> {
        let config = server_config(&files)?;
        let stamps = files.iter().map(|f| stamp(f)).collect();
        Ok(Live {
            files,
            state: Mutex::new((stamps, config)),
        })
    }

    /// The configuration for a new handshake: the files are read again
    /// when one of them changed; a set that does not load is logged and
    /// the one in effect kept.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        let stamps: Vec<Stamp> = self.files.iter().map(|f| stamp(f)).collect();
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.0 != stamps {
            match server_config(&self.files) {
                Ok(config) => {
                    log::info!("TLS: certificates read again from {}", self.shown());
                    state.1 = config;
                }
                Err(e) => log::error!("TLS: new certificates refused, the old ones kept: {e}"),
            }
            // Either way, not again until they change again.
            state.0 = stamps;
        }
        state.1.clone()
    }

    fn shown(&self) -> String {
        self.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests;

/// A cipher suite's OpenSSL name and key bits, from rustls's name
/// (`TLS13_AES_256_GCM_SHA384` is `TLS_AES_256_GCM_SHA384`,
/// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256` is
/// `ECDHE-RSA-AES128-GCM-SHA256`), as Postfix's log and Received header
/// name them.
pub(crate) fn openssl_suite(rustls_name: &str) -> (String, u16) {
    let bits = if rustls_name.contains("AES_128") {
        128
    } else {
        256
    };
    if let Some(rest) = rustls_name.strip_prefix("TLS13_") {
        return (format!("TLS_{rest}"), bits);
    }
    let Some((kx, cipher)) = rustls_name
        .strip_prefix("TLS_")
        .and_then(|n| n.split_once("_WITH_"))
    else {
        return (rustls_name.to_string(), bits);
    };
    let cipher = match cipher {
        "CHACHA20_POLY1305_SHA256" => "CHACHA20-POLY1305".to_string(),
        c => c.replacen("AES_", "AES", 1).replace('_', "-"),
    };
    (format!("{}-{cipher}", kx.replace('_', "-")), bits)
}

#[cfg(test)]
mod suite_names {
    #[test]
    fn rustls_suites_get_openssl_names() {
        for (rustls, openssl, bits) in [
            ("TLS13_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", 256),
            ("TLS13_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", 128),
            (
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_CHACHA20_POLY1305_SHA256",
                256,
            ),
            (
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "ECDHE-RSA-AES256-GCM-SHA384",
                256,
            ),
            (
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                128,
            ),
            (
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                "ECDHE-RSA-CHACHA20-POLY1305",
                256,
            ),
        ] {
            assert_eq!(super::openssl_suite(rustls), (openssl.to_string(), bits));
        }
    }
}
