//! Private keys: read from PEM (PKCS#8 `PRIVATE KEY`: RSA or Ed25519;
//! PKCS#1 `RSA PRIVATE KEY`), the algorithm taken from the key, and made
//! (`postern dkim keygen`: PKCS#8 PEM). The cryptography is ring's,
//! through mail-auth; the few DER structures around a key (the PKCS#8
//! and SubjectPublicKeyInfo wrappings of an RSA key) are written here.

use std::path::Path;

use base64::Engine;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::dkim::generate::DkimKeyPair;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

/// The signing algorithm, as the key says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `rsa-sha256` (`k=rsa`).
    Rsa,
    /// `ed25519-sha256` (`k=ed25519`, RFC 8463).
    Ed25519,
}

impl Algorithm {
    /// The `a=` tag's value.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa-sha256",
            Algorithm::Ed25519 => "ed25519-sha256",
        }
    }

    /// The `k=` tag's value.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

/// RSA keys ring signs with.
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// A private key, ready to sign, with its public half as DNS publishes it.
pub struct PrivateKey {
    pub key: DkimKey,
    pub algorithm: Algorithm,
    /// The `p=` bytes: an RSA key's SubjectPublicKeyInfo (DER), an
    /// Ed25519 key's 32 bytes (RFC 8463 section 4.2).
    pub public: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "PrivateKey({})", self.algorithm.name())
    }
}

/// The OID of Ed25519 (1.3.101.112) as DER: how a PKCS#8 key says it is one.
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// rsaEncryption (1.2.840.113549.1.1.1) with its NULL parameters.
const RSA_ALGORITHM_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

impl PrivateKey {
    /// Read the key file at `path`. The error names the file.
    pub fn load(path: &Path) -> Result<PrivateKey, String> {
        let pem = std::fs::read(path)
            .map_err(|e| format!("{}: {}", path.display(), crate::logging::strerror(&e)))?;
        PrivateKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A PEM private key: PKCS#8 (RSA or Ed25519) or PKCS#1 (RSA).
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|_| "not a PEM private key (PKCS#8 or PKCS#1)".to_string())?;
        if let PrivateKeyDer::Pkcs8(k) = &der
            && algorithm_is(k.secret_pkcs8_der(), ED25519_OID)
        {
            // OpenSSL writes PKCS#8 v1 (no public key): not "checked".
            let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(k.secret_pkcs8_der())
                .map_err(|e| format!("not a usable Ed25519 key: {e}"))?;
            let public = key.public_key();
            return Ok(PrivateKey {
                key: DkimKey::Ed25519(key),
                algorithm: Algorithm::Ed25519,
                public,
            });
        }
        if matches!(der, PrivateKeyDer::Sec1(_)) {
            return Err("an EC key: DKIM signs with RSA or Ed25519 keys only".into());
        }
        let key = RsaKey::<Sha256>::from_key_der(der)
            .map_err(|e| format!("not a usable RSA key (2048 to 4096 bits): {e}"))?;
        let public = spki_of_rsa(&key.public_key());
        Ok(PrivateKey {
            key: DkimKey::Rsa(key),
            algorithm: Algorithm::Rsa,
            public,
        })
    }

    /// A new key: RSA of `bits` or Ed25519, as PKCS#8 PEM, and the key
    /// read back from it.
    pub fn generate(algorithm: Algorithm, bits: usize) -> Result<(String, PrivateKey), String> {
        let der = match algorithm {
            Algorithm::Rsa => {
                if !RSA_BITS.contains(&bits) {
                    return Err(format!(
                        "--bits {bits}: RSA keys of {} to {} bits",
                        RSA_BITS.start(),
                        RSA_BITS.end()
                    ));
                }
                let pair = DkimKeyPair::generate_rsa(bits).map_err(|e| e.to_string())?;
                pkcs8_of_rsa(pair.private_key())
            }
            Algorithm::Ed25519 => {
                let pair = DkimKeyPair::generate_ed25519().map_err(|e| e.to_string())?;
                pkcs8_v1_of_ed25519(pair.private_key())?
            }
        };
        let pem = pem("PRIVATE KEY", &der);
        let key = PrivateKey::from_pem(pem.as_bytes())?;
        Ok((pem, key))
    }
}

/// Whether a PKCS#8 document's algorithm is `oid`: the OID is in its
/// first bytes, after the version (never searched for in the key itself).
fn algorithm_is(pkcs8: &[u8], oid: &[u8]) -> bool {
    let head = &pkcs8[..pkcs8.len().min(16)];
    head.windows(oid.len()).any(|w| w == oid)
}

/// DER: a tag, the length, the content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// SubjectPublicKeyInfo of a PKCS#1 RSAPublicKey: what `p=` holds for
/// RSA (`openssl rsa -pubout`, as OpenDKIM publishes it).
pub fn spki_of_rsa(pkcs1: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut body = RSA_ALGORITHM_ID.to_vec();
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

/// PKCS#8 PrivateKeyInfo of a PKCS#1 RSAPrivateKey.
fn pkcs8_of_rsa(pkcs1: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(RSA_ALGORITHM_ID);
    body.extend(tlv(0x04, pkcs1));
    tlv(0x30, &body)
}

/// ring's Ed25519 PKCS#8 v2 document (RFC 5958, with the public key) as
/// the v1 form of RFC 8410 (the seed alone), which OpenSSL 3.0 and other
/// tools read too.
fn pkcs8_v1_of_ed25519(v2: &[u8]) -> Result<Vec<u8>, String> {
    // The seed: OCTET STRING (34) holding OCTET STRING (32).
    const SEED_AT: &[u8] = &[0x04, 0x22, 0x04, 0x20];
    let at = v2
        .windows(SEED_AT.len())
        .position(|w| w == SEED_AT)
        .ok_or("an Ed25519 key without its seed")?
        + SEED_AT.len();
    let seed = v2
        .get(at..at + 32)
        .ok_or("an Ed25519 key without its seed")?;
    let mut body = vec![0x02, 0x01, 0x00, 0x30, 0x05];
    body.extend_from_slice(ED25519_OID);
    body.extend(tlv(0x04, &tlv(0x04, seed)));
    Ok(tlv(0x30, &body))
}

/// PEM text: base64 in 64-character lines between the labels.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
