//! Signing: the configured keys, each read again when its file changes
//! ([`Keys`]), and one pass over a message that makes its
//! `DKIM-Signature:` fields ([`Pass`], fed the message in its CRLF form,
//! in pieces of any size; mail-auth's streaming signer hashes the body as
//! it comes).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use mail_auth::common::crypto::DkimKey;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, DkimSigningStream, Done};

use super::KeyEntry;
use super::key::{Algorithm, PrivateKey};
use crate::config::{Dkim, DkimCanonicalization};
use crate::watch::{CHECK_EVERY, Stamp, stamp};

/// One key, ready: its entry and the signer built from the key and the
/// `[dkim]` settings.
pub struct Signer {
    pub entry: KeyEntry,
    pub algorithm: Algorithm,
    signer: DkimSigner<DkimKey, Done>,
}

impl Signer {
    pub fn new(entry: KeyEntry, key: PrivateKey, settings: &Dkim) -> Signer {
        let (header, body) = canonicalization(settings.canonicalization);
        let signer = DkimSigner::from_key(key.key)
            .domain(entry.domain.clone())
            .selector(entry.selector.clone())
            .headers(settings.headers.iter().cloned())
            .header_canonicalization(header)
            .body_canonicalization(body);
        Signer {
            entry,
            algorithm: key.algorithm,
            signer,
        }
    }

    /// Read `entry`'s key file and build its signer.
    pub fn load(entry: &KeyEntry, settings: &Dkim) -> Result<Signer, String> {
        let key = PrivateKey::load(&entry.path)?;
        Ok(Signer::new(entry.clone(), key, settings))
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The entry, never the key.
        write!(f, "Signer({}, {})", self.entry, self.algorithm.name())
    }
}

/// mail-auth's canonicalizations, header and body.
pub fn canonicalization(c: DkimCanonicalization) -> (Canonicalization, Canonicalization) {
    use Canonicalization::{Relaxed, Simple};
    match c {
        DkimCanonicalization::RelaxedRelaxed => (Relaxed, Relaxed),
        DkimCanonicalization::RelaxedSimple => (Relaxed, Simple),
        DkimCanonicalization::SimpleRelaxed => (Simple, Relaxed),
        DkimCanonicalization::SimpleSimple => (Simple, Simple),
    }
}

/// A key file read again when it changes (looked at no more than once
/// per [`CHECK_EVERY`]); a new version that does not load is refused with
/// a log line and the key before it kept. A key that never loaded is the
/// reason it did not.
struct LiveKey {
    entry: KeyEntry,
    state: Mutex<LiveState>,
}

struct LiveState {
    loaded: Result<Arc<Signer>, String>,
    seen: Stamp,
    checked: Instant,
}

impl LiveKey {
    fn load(entry: &KeyEntry, settings: &Dkim) -> LiveKey {
        let seen = stamp(&entry.path);
        let loaded = Signer::load(entry, settings).map(Arc::new);
        if let Err(e) = &loaded {
            log::error!(
                "DKIM key {} of {} unusable: {e}; its mail is deferred until it is fixed",
                entry.selector,
                entry.domain
            );
        }
        LiveKey {
            entry: entry.clone(),
            state: Mutex::new(LiveState {
                loaded,
                seen,
                checked: Instant::now(),
            }),
        }
    }

    fn current(&self, settings: &Dkim) -> Result<Arc<Signer>, String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= CHECK_EVERY {
            state.checked = Instant::now();
            let now = stamp(&self.entry.path);
            if now != state.seen {
                state.seen = now;
                match (Signer::load(&self.entry, settings), &state.loaded) {
                    (Ok(signer), _) => {
                        log::info!("{}: DKIM key read again", self.entry.path.display());
                        state.loaded = Ok(Arc::new(signer));
                    }
                    (Err(e), Ok(_)) => {
                        log::error!("DKIM key unusable: {e}; the key read before is kept")
                    }
                    (Err(e), Err(_)) => state.loaded = Err(e),
                }
            }
        }
        state.loaded.clone()
    }
}

/// The keys of `dkim.keys`, live.
pub struct Keys {
    settings: Dkim,
    keys: Vec<LiveKey>,
}

impl Keys {
    /// Read every key of `settings` (a failure is logged, and kept as the
    /// key's state until its file changes).
    pub fn load(settings: &Dkim) -> Keys {
        Keys {
            keys: settings
                .keys
                .iter()
                .map(|e| LiveKey::load(e, settings))
                .collect(),
            settings: settings.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The signers of `domain` (none: it is not signed); `Err` when one
    /// of its keys cannot be used, naming it.
    pub fn for_domain(&self, domain: &str) -> Result<Vec<Arc<Signer>>, String> {
        self.keys
            .iter()
            .filter(|k| k.entry.domain == domain)
            .map(|k| {
                k.current(&self.settings).map_err(|e| {
                    format!(
                        "DKIM key {} of {} unusable: {e}",
                        k.entry.selector, k.entry.domain
                    )
                })
            })
            .collect()
    }
}

/// The domain of the first address of the first `From:` field of a
/// header section, lower-cased; `None` without one.
pub fn from_domain(header: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(header)?;
    // The first field (`from()` is the last one).
    let field = parsed.header_values(mail_parser::HeaderName::From).next()?;
    let address = field.as_address()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// Where the header section ends in the CRLF form of a message: the
/// offset after its empty line.
pub fn header_end(message: &[u8]) -> Option<usize> {
    if message.starts_with(b"\r\n") {
        return Some(2);
    }
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// What signing gave: the fields to put before the message, and for each
/// signature its (domain, selector) for the log.
#[derive(Debug, Default)]
pub struct Signed {
    pub fields: Vec<u8>,
    pub signatures: Vec<(String, String)>,
}

/// One signing pass over a message in its CRLF form, with `signers`.
pub struct Pass<'k> {
    streams: Vec<(&'k Signer, DkimSigningStream<'k, DkimKey>)>,
}

impl<'k> Pass<'k> {
    pub fn new(signers: &'k [Arc<Signer>]) -> Pass<'k> {
        Pass {
            streams: signers
                .iter()
                .map(|s| (s.as_ref(), s.signer.sign_streaming()))
                .collect(),
        }
    }

    /// The next piece of the message.
    pub fn write(&mut self, crlf: &[u8]) {
        for (_, stream) in &mut self.streams {
            stream.write(crlf);
        }
    }

    /// The `DKIM-Signature:` fields, in the order of the keys.
    pub fn finish(self) -> Result<Signed, String> {
        let mut out = Signed::default();
        for (signer, stream) in self.streams {
            let signature = stream.finish().map_err(|e| {
                format!(
                    "DKIM signing with {} failed: {e}",
                    signer.entry.path.display()
                )
            })?;
            let field = without_trailing_fold(signature.to_header());
            out.fields.extend_from_slice(field.as_bytes());
            out.signatures
                .push((signer.entry.domain.clone(), signer.entry.selector.clone()));
        }
        Ok(out)
    }
}

/// The field without a fold between the `b=` value and its final `;`.
/// mail-auth 0.13 folds a line as soon as it is full, so a `b=` value that
/// ends a line exactly gets `CRLF TAB` before the `;`: a verifier removes
/// the value but keeps that fold (RFC 6376 section 3.5: it is not part of
/// the tag's value), while the signer hashed `b=;` — the signature would
/// fail (for RSA-2048 it did, for some domain and selector lengths).
pub(crate) fn without_trailing_fold(field: String) -> String {
    match field.strip_suffix("\r\n\t;\r\n") {
        Some(head) => format!("{head};\r\n"),
        None => field,
    }
}

/// Sign a whole message held in memory, in its stored form (LF line
/// ends): the smtp client's work on one message, for the benchmark and
/// the tests.
pub fn sign_message(signers: &[Arc<Signer>], stored: &[u8]) -> Result<Signed, String> {
    use crate::wire::data::{DataWriter, StoredCr};
    let mut crlf = Vec::with_capacity(stored.len() + stored.len() / 16 + 2);
    let mut form = DataWriter::message(StoredCr::LineEnd);
    form.write(stored, &mut crlf);
    form.finish(&mut crlf);
    let mut pass = Pass::new(signers);
    pass.write(&crlf);
    pass.finish()
}
