//! What smtpd asks when a client logs in: the backend of `sasl.backend`
//! ([`Authenticator`]: Dovecot's socket, or the password file read again
//! when it changes) and the per-client failure count
//! ([`Failures`]: `sasl.failure_limit` within `sasl.failure_window`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::dovecot::{Dovecot, Peer};
use super::passwd::PasswordFile;
use super::{Credentials, Verdict};
use crate::config::{Config, SaslBackend};
use crate::watch::{CHECK_EVERY, Stamp, stamp};

/// How long smtpd waits for Dovecot's socket and each of its answers.
const DOVECOT_TIMEOUT: Duration = Duration::from_secs(10);

/// The backend that checks passwords.
pub enum Authenticator {
    Dovecot(Dovecot),
    Passwd(LiveFile),
}

impl Authenticator {
    /// The backend `config` names; `None` without AUTH. A password file
    /// that cannot be read is an error here (at start, and at reload,
    /// which then keeps the running one).
    pub fn from_config(config: &Config) -> Result<Option<Arc<Authenticator>>, String> {
        let sasl = &config.sasl;
        Ok(match sasl.backend {
            SaslBackend::None => None,
            SaslBackend::Dovecot => Some(Arc::new(Authenticator::Dovecot(Dovecot {
                socket: sasl.dovecot_socket.clone(),
                timeout: DOVECOT_TIMEOUT,
            }))),
            SaslBackend::Passwd => Some(Arc::new(Authenticator::Passwd(LiveFile::load(
                sasl.password_file.clone(),
            )?))),
        })
    }

    /// The backend's word on `creds`. The password file's hashes are slow
    /// on purpose: they are computed off the async threads.
    pub async fn check(&self, creds: &Credentials, peer: &Peer) -> Verdict {
        match self {
            Authenticator::Dovecot(d) => d.authenticate(creds, peer).await,
            Authenticator::Passwd(live) => {
                if !creds.authzid.is_empty() && creds.authzid != creds.login {
                    return Verdict::Fail {
                        reason: format!(
                            "{:?} may not act as {:?} (no authorization identities in the password file)",
                            creds.login, creds.authzid
                        ),
                    };
                }
                let file = live.current();
                let creds = creds.clone();
                tokio::task::spawn_blocking(move || file.verify(&creds.login, &creds.password))
                    .await
                    .unwrap_or_else(|e| Verdict::Unavailable {
                        reason: format!("password check failed: {e}"),
                    })
            }
        }
    }
}

/// The password file, read again when it changes (looked at no more than
/// once per [`CHECK_EVERY`]); a new version that does not parse is
/// refused with a log line and the one before kept.
pub struct LiveFile {
    path: PathBuf,
    state: Mutex<(Arc<PasswordFile>, Stamp, Instant)>,
}

impl LiveFile {
    pub fn load(path: PathBuf) -> Result<LiveFile, String> {
        let seen = stamp(&path);
        let file = PasswordFile::load(&path).map_err(|e| e.to_string())?;
        Ok(LiveFile {
            path,
            state: Mutex::new((Arc::new(file), seen, Instant::now())),
        })
    }

    /// The file as it is now.
    pub fn current(&self) -> Arc<PasswordFile> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.2.elapsed() >= CHECK_EVERY {
            state.2 = Instant::now();
            let now = stamp(&self.path);
            if now != state.1 {
                state.1 = now;
                match PasswordFile::load(&self.path) {
                    Ok(file) => {
                        log::info!(
                            "{}: read again ({} logins)",
                            self.path.display(),
                            file.len()
                        );
                        state.0 = Arc::new(file);
                    }
                    Err(e) => log::error!("{e}; the logins read before are kept"),
                }
            }
        }
        state.0.clone()
    }
}

/// Failed logins per client address: after `limit` within `window`, the
/// address may not try again until the window has passed since its first
/// failure.
pub struct Failures {
    counts: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// At most this many client addresses are remembered; beyond it the
/// oldest entries are dropped (a flood of addresses cannot grow smtpd).
const MAX_REMEMBERED: usize = 100_000;

impl Failures {
    pub fn new() -> Failures {
        Failures {
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` has used up its failures (`limit` 0: never).
    pub fn blocked(&self, ip: IpAddr, limit: u32, window: Duration) -> bool {
        if limit == 0 {
            return false;
        }
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .get(&ip)
            .is_some_and(|(n, since)| *n >= limit && since.elapsed() < window)
    }

    /// One more failure of `ip`; the count so far in the window.
    pub fn add(&self, ip: IpAddr, window: Duration) -> u32 {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= MAX_REMEMBERED {
            counts.retain(|_, (_, since)| since.elapsed() < window);
            if counts.len() >= MAX_REMEMBERED {
                counts.clear();
            }
        }
        let entry = counts.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
        entry.0
    }

    /// A good login clears the address's count.
    pub fn clear(&self, ip: IpAddr) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip);
    }
}

impl Default for Failures {
    fn default() -> Self {
        Failures::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_an_address_within_the_window_only() {
        let f = Failures::new();
        let (a, b): (IpAddr, IpAddr) = ([192, 0, 2, 1].into(), [192, 0, 2, 2].into());
        let window = Duration::from_secs(600);
        for n in 1..=3 {
            assert!(!f.blocked(a, 3, window));
            assert_eq!(f.add(a, window), n);
        }
        assert!(f.blocked(a, 3, window));
        assert!(!f.blocked(b, 3, window));
        assert!(!f.blocked(a, 0, window), "0: no limit");
        assert!(!f.blocked(a, 3, Duration::ZERO), "the window has passed");
        f.clear(a);
        assert!(!f.blocked(a, 3, window));
    }
}
