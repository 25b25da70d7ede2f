//! STARTTLS for the client (RFC 3207) with rustls and the `ring`
//! provider, at Postfix's security levels (`tls.outbound`):
//!
//! * `may` and `encrypt`: the server's certificate is not checked (a
//!   self-signed one is fine), but the handshake still proves that the
//!   server holds the key of the certificate it sent
//!   ([`DangerAcceptAnyCertificate`]);
//! * `verify`: the chain must lead to a trusted root (`tls.ca_file`, else
//!   the system's, /etc/ssl/certs) and name the host: the next hop's host
//!   for `[host]`, the MX host's name for MX delivery.
//!
//! A handshake failure at `verify` names its cause as Postfix does:
//! `Server certificate not trusted` (unknown issuer, expired, ...) or
//! `Server certificate not verified` (a name mismatch), both 4.7.5.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

use crate::config::{Tls, TlsLevel};

/// The client's TLS settings, built once per configuration.
#[derive(Clone)]
pub(crate) struct TlsClient {
    pub level: TlsLevel,
    /// For `may` and `encrypt`.
    unverified: Result<Arc<ClientConfig>, String>,
    /// For `verify` (only built at that level): the trusted roots.
    verified: Option<Result<Arc<ClientConfig>, String>>,
}

/// Why a handshake failed, in Postfix's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    /// `Cannot start TLS: handshake failure`.
    Handshake,
    /// `Server certificate not trusted`.
    NotTrusted,
    /// `Server certificate not verified`.
    NotVerified,
}

impl HandshakeFailure {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            HandshakeFailure::Handshake => "Cannot start TLS: handshake failure",
            HandshakeFailure::NotTrusted => "Server certificate not trusted",
            HandshakeFailure::NotVerified => "Server certificate not verified",
        }
    }

    /// The cause of a failed `connect` of tokio-rustls.
    pub(crate) fn of(error: &std::io::Error) -> HandshakeFailure {
        use rustls::CertificateError as C;
        let tls = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        match tls {
            Some(rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            )) => HandshakeFailure::NotVerified,
            Some(rustls::Error::InvalidCertificate(_)) => HandshakeFailure::NotTrusted,
            _ => HandshakeFailure::Handshake,
        }
    }
}

impl TlsClient {
    /// The settings of `tls`. Problems (an unreadable `tls.ca_file`, no
    /// roots at all) are logged here and make every delivery that needs
    /// them defer (`TLS is required, but our TLS engine is unavailable`).
    pub(crate) fn new(tls: &Tls) -> TlsClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let unverified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map(|b| {
                Arc::new(
                    b.dangerous()
                        .with_custom_certificate_verifier(Arc::new(DangerAcceptAnyCertificate {
                            provider: provider.clone(),
                        }))
                        .with_no_client_auth(),
                )
            })
            .map_err(|e| e.to_string());
        // Only built at `verify`: the system's roots are read only then.
        let verified = (tls.outbound == TlsLevel::Verify).then(|| {
            roots(tls).and_then(|roots| {
                ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                    .map_err(|e| e.to_string())
            })
        });
        let wanted = match tls.outbound {
            TlsLevel::None => None,
            TlsLevel::May | TlsLevel::Encrypt => Some(&unverified),
            TlsLevel::Verify => verified.as_ref(),
        };
        if let Some(Err(e)) = wanted {
            log::error!("TLS is unavailable: {e}");
        }
        TlsClient {
            level: tls.outbound,
            unverified,
            verified,
        }
    }

    /// The connector for this level, or why there is none.
    pub(crate) fn connector(&self) -> Result<tokio_rustls::TlsConnector, &str> {
        let config = match (self.level, &self.verified) {
            (TlsLevel::Verify, Some(verified)) => verified,
            (TlsLevel::Verify, None) => return Err("no trusted certificates"),
            _ => &self.unverified,
        };
        config
            .as_ref()
            .map(|c| tokio_rustls::TlsConnector::from(c.clone()))
            .map_err(String::as_str)
    }
}

/// The name to verify and to send as SNI: a DNS name, or an address.
pub(crate) fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.to_string()).ok()
}

/// The trusted roots: `tls.ca_file`, else the system's.
fn roots(tls: &Tls) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
                store
                    .add(cert)
                    .map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
            }
            if store.is_empty() {
                return Err(format!(
                    "tls.ca_file {}: no certificates in it",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(format!(
                    "no trusted certificates in the system's store{why}"
                ));
            }
        }
    }
    Ok(store)
}

/// A certificate verifier that accepts any certificate (levels `may` and
/// `encrypt`, like Postfix's), while still checking the handshake's
/// signatures with the certificate's key.
#[derive(Debug)]
struct DangerAcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for DangerAcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
