//! Dovecot's authentication protocol, client side: what Postfix's smtpd
//! speaks with `smtpd_sasl_type = dovecot` to the socket Dovecot's `auth`
//! service offers (`service auth { unix_listener … }`), as documented by
//! Dovecot ("Authentication Protocol", version 1.2).
//!
//! One connection per authentication: the handshake (`VERSION 1 2`,
//! `CPID`; Dovecot answers `VERSION`, one `MECH` per mechanism, `SPID`,
//! `CUID`, `COOKIE`, `DONE`), then one `AUTH` with the client's login as
//! a PLAIN initial response (LOGIN's two answers are sent the same way),
//! and Dovecot's `OK`, `FAIL` or `CONT`. Dovecot applies its own
//! failure delay (`auth_failure_delay`) before a `FAIL`.
//!
//! Every line read is bounded ([`MAX_LINE`], [`MAX_HANDSHAKE_LINES`]),
//! every step has the timeout; a socket that cannot be reached, or an
//! answer that makes no sense, is [`Verdict::Unavailable`] (454), never
//! a success.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{Credentials, Verdict};

/// The longest line taken from Dovecot.
pub const MAX_LINE: usize = 16 * 1024;
/// The most lines of Dovecot's half of the handshake.
pub const MAX_HANDSHAKE_LINES: usize = 64;

/// Dovecot's authentication socket.
#[derive(Clone, Debug)]
pub struct Dovecot {
    pub socket: PathBuf,
    /// For the connection and each answer.
    pub timeout: Duration,
}

/// What Dovecot is told about the connection.
#[derive(Clone, Debug, Default)]
pub struct Peer {
    /// The address the client connected to.
    pub local: Option<IpAddr>,
    /// The client's address.
    pub remote: Option<IpAddr>,
    /// The connection is encrypted (TLS).
    pub secured: bool,
}

impl Dovecot {
    /// Dovecot's word on `creds`.
    pub async fn authenticate(&self, creds: &Credentials, peer: &Peer) -> Verdict {
        match tokio::time::timeout(self.timeout * 3, self.exchange(creds, peer)).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(reason)) => Verdict::Unavailable {
                reason: format!("{}: {reason}", self.socket.display()),
            },
            Err(_) => Verdict::Unavailable {
                reason: format!("{}: no answer in time", self.socket.display()),
            },
        }
    }

    async fn exchange(&self, creds: &Credentials, peer: &Peer) -> Result<Verdict, String> {
        let stream = tokio::time::timeout(self.timeout, UnixStream::connect(&self.socket))
            .await
            .map_err(|_| "cannot connect: timed out".to_string())?
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let hello = format!("VERSION\t1\t2\nCPID\t{}\n", std::process::id());
        write
            .write_all(hello.as_bytes())
            .await
            .map_err(|e| format!("cannot write: {e}"))?;
        let mechanisms = handshake(&mut read).await?;
        if !mechanisms.iter().any(|m| m.eq_ignore_ascii_case("PLAIN")) {
            return Err(format!(
                "Dovecot offers no PLAIN mechanism (it offers {}; set auth_mechanisms = plain login)",
                mechanisms.join(", ")
            ));
        }
        write
            .write_all(auth_line(creds, peer).as_bytes())
            .await
            .map_err(|e| format!("cannot write: {e}"))?;
        let answer = read_line(&mut read).await?;
        Ok(verdict(&answer, &creds.login))
    }
}

/// Dovecot's half of the handshake, up to `DONE`: the mechanisms it
/// offers.
async fn handshake(
    read: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> Result<Vec<String>, String> {
    let mut mechanisms = Vec::new();
    for _ in 0..MAX_HANDSHAKE_LINES {
        let line = read_line(read).await?;
        let mut fields = line.split('\t');
        match fields.next() {
            Some("VERSION") if fields.next() != Some("1") => {
                return Err(format!("unsupported protocol: {line:?}"));
            }
            Some("MECH") => mechanisms.extend(fields.next().map(str::to_string)),
            Some("DONE") => return Ok(mechanisms),
            // SPID, CUID, COOKIE and what later versions add.
            _ => {}
        }
    }
    Err("no DONE in Dovecot's handshake".to_string())
}

/// One line, without its newline; bounded.
async fn read_line(
    read: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> Result<String, String> {
    let mut buf = Vec::new();
    let n = (&mut *read)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| format!("cannot read: {e}"))?;
    if n == 0 {
        return Err("Dovecot closed the connection".to_string());
    }
    if buf.last() != Some(&b'\n') {
        return Err("a line from Dovecot too long".to_string());
    }
    buf.pop();
    String::from_utf8(buf).map_err(|_| "a line from Dovecot not UTF-8".to_string())
}

/// The `AUTH` request: PLAIN with the login as its initial response.
fn auth_line(creds: &Credentials, peer: &Peer) -> String {
    let mut response = Vec::new();
    response.extend_from_slice(creds.authzid.as_bytes());
    response.push(0);
    response.extend_from_slice(creds.login.as_bytes());
    response.push(0);
    response.extend_from_slice(creds.password.as_bytes());
    let mut line = String::from("AUTH\t1\tPLAIN\tservice=smtp\tnologin");
    if let Some(ip) = peer.local {
        line.push_str(&format!("\tlip={ip}"));
    }
    if let Some(ip) = peer.remote {
        line.push_str(&format!("\trip={ip}"));
    }
    if peer.secured {
        line.push_str("\tsecured");
    }
    line.push_str(&format!("\tresp={}\n", STANDARD.encode(&response)));
    line
}

/// Dovecot's answer to request 1.
fn verdict(line: &str, login: &str) -> Verdict {
    let mut fields = line.split('\t');
    let (kind, id) = (fields.next(), fields.next());
    if id != Some("1") {
        return Verdict::Unavailable {
            reason: format!("unexpected answer {:?}", truncate(line)),
        };
    }
    let params: Vec<&str> = fields.collect();
    let param = |name: &str| {
        params
            .iter()
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
    };
    match kind {
        Some("OK") => Verdict::Ok {
            login: param("user").unwrap_or(login).to_string(),
        },
        Some("FAIL") if params.contains(&"temp") => Verdict::Unavailable {
            reason: param("reason").unwrap_or("temporary failure").to_string(),
        },
        Some("FAIL") => Verdict::Fail {
            reason: param("reason")
                .unwrap_or("authentication failed")
                .to_string(),
        },
        // PLAIN with an initial response needs no further step.
        Some("CONT") => Verdict::Fail {
            reason: "Dovecot asked for more than PLAIN gives".to_string(),
        },
        _ => Verdict::Unavailable {
            reason: format!("unexpected answer {:?}", truncate(line)),
        },
    }
}

fn truncate(line: &str) -> &str {
    let mut end = line.len().min(100);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_connection_and_the_login() {
        let creds = Credentials {
            authzid: String::new(),
            login: "alice".into(),
            password: "secret".into(),
        };
        let peer = Peer {
            local: Some("192.0.2.1".parse().unwrap()),
            remote: Some("198.51.100.7".parse().unwrap()),
            secured: true,
        };
        assert_eq!(
            auth_line(&creds, &peer),
            "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.1\trip=198.51.100.7\tsecured\tresp=AGFsaWNlAHNlY3JldA==\n"
        );
    }

    #[test]
    fn answers() {
        assert_eq!(
            verdict("OK\t1\tuser=alice@example.org", "alice"),
            Verdict::Ok {
                login: "alice@example.org".into()
            }
        );
        assert_eq!(
            verdict("FAIL\t1\tuser=alice", "alice"),
            Verdict::Fail {
                reason: "authentication failed".into()
            }
        );
        assert!(matches!(
            verdict("FAIL\t1\ttemp\treason=db down", "a"),
            Verdict::Unavailable { .. }
        ));
        assert!(matches!(verdict("OK\t2", "a"), Verdict::Unavailable { .. }));
        assert!(matches!(verdict("CONT\t1\t", "a"), Verdict::Fail { .. }));
        assert!(matches!(verdict("", "a"), Verdict::Unavailable { .. }));
    }
}
