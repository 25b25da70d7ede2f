//! The connection-level state of a session: what lasts from the connect
//! to the disconnect, whatever EHLO, a transaction or (issue 18) STARTTLS
//! do. Three parts, each with its own methods:
//!
//! * [`Client`]: who is on the other end (name, how far it was verified,
//!   address, a local submitter's uid), learned once before the greeting;
//! * [`Io`]: the byte stream, the input not yet used, the replies not yet
//!   sent, and what may end a wait (shutdown, eviction, stress mode).
//!   STARTTLS will replace the stream here, and must find no input
//!   buffered (RFC 3207, section 6);
//! * [`Counters`]: the clock and the counts that the limits
//!   (`smtpd.hard_error_limit`, `smtpd.junk_command_limit`,
//!   `smtpd.session_time_limit`) and the disconnect line read.

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Peer;
use crate::policy::{NameStatus, Policy};
use crate::reply::Reply;
use crate::smtpd::limits::{Limits, Ticket};

/// Room made in the input buffer for a read during DATA…
const READ_CHUNK: usize = 64 * 1024;
/// …and while waiting for a command: an idle session stays small.
const COMMAND_CHUNK: usize = 4 * 1024;

/// Who is on the other end, for the whole connection.
pub(super) struct Client {
    pub(super) name: String,
    /// How far `name` was verified (for reject_unknown_client_hostname).
    pub(super) name_status: NameStatus,
    pub(super) ip: IpAddr,
    /// A local submission's uid (SO_PEERCRED).
    pub(super) uid: Option<u32>,
}

impl Client {
    /// The client as the log and the restrictions know it. A TCP
    /// client's name is looked up before the greeting, as Postfix does:
    /// once, for the log, the Received header and the restrictions.
    pub(super) async fn look_up(peer: Peer, policy: &Policy) -> Client {
        match peer {
            Peer::Tcp(ip, _) => {
                let found = policy.client_name(ip).await;
                Client {
                    name: found.name,
                    name_status: found.status,
                    ip,
                    uid: None,
                }
            }
            Peer::Local { uid } => Client {
                name: "localhost".into(),
                name_status: NameStatus::Verified,
                ip: IpAddr::from([127, 0, 0, 1]),
                uid: Some(uid),
            },
        }
    }

    /// `name[ip]`, as every log line names the client.
    pub(super) fn text(&self) -> String {
        format!("{}[{}]", self.name, self.ip)
    }

    /// The journal's CLIENT field: `uid N` for a local submitter.
    pub(super) fn field(&self) -> String {
        crate::logging::client_field(self.uid, self.text())
    }
}

/// Why a wait for input ended.
pub(super) enum Read {
    Data,
    Eof,
    Timeout,
    Stop,
    /// Chosen to make room for a new client.
    Evicted,
    /// Stress mode started or ended: compute the deadline again.
    Again,
    Error,
}

/// The byte stream and its buffers. Replies are buffered and flushed
/// only when the session must wait for input (RFC 2920).
pub(super) struct Io<S> {
    stream: Stream<S>,
    /// Read and not yet used.
    pub(super) inbuf: Vec<u8>,
    /// Replies not yet sent.
    out: Vec<u8>,
    /// This session's place in the connection count.
    pub(super) ticket: Ticket,
    /// Whether smtpd is in stress mode.
    stress: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    pub(super) fn new(
        stream: S,
        ticket: Ticket,
        stress: watch::Receiver<bool>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Io {
            stream: Stream::Plain(stream),
            inbuf: Vec::with_capacity(4096),
            out: Vec::new(),
            ticket,
            stress,
            stop,
        }
    }

    /// Whether smtpd is in stress mode now.
    pub(super) fn stressed(&self) -> bool {
        *self.stress.borrow()
    }

    pub(super) fn reply(&mut self, r: &Reply) {
        count_reply(r);
        r.write_wire(&mut self.out);
    }

    /// Send the buffered replies, within `timeout`; false when the
    /// client is gone.
    pub(super) async fn flush(&mut self, timeout: Duration) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let out = std::mem::take(&mut self.out);
        matches!(
            tokio::time::timeout(timeout, async {
                self.stream.write_all(&out).await?;
                self.stream.flush().await
            })
            .await,
            Ok(Ok(()))
        )
    }

    /// Read more input, until `deadline`. `command`: waiting for a command
    /// line, when a shutdown or a new client may end the wait.
    pub(super) async fn read_more(&mut self, deadline: Instant, command: bool) -> Read {
        // Read straight into the spare capacity of the input buffer (no
        // zeroed chunk per read).
        self.inbuf
            .reserve(if command { COMMAND_CHUNK } else { READ_CHUNK });
        let mut stop = self.stop.clone();
        let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.inbuf));
        let r = tokio::select! {
            r = read => r,
            _ = stop.wait_for(|s| *s), if command => return Read::Stop,
            _ = self.ticket.evicted(), if command => return Read::Evicted,
            _ = changed(&mut self.stress) => return Read::Again,
        };
        match r {
            Err(_) => Read::Timeout,
            Ok(Ok(0)) => Read::Eof,
            Ok(Ok(_)) => Read::Data,
            Ok(Err(_)) => Read::Error,
        }
    }

    /// After a large message: the input buffer back to `kept` bytes of
    /// room, so an idle session stays small.
    pub(super) fn shrink_input(&mut self, kept: usize) {
        if self.inbuf.capacity() > 4 * kept && self.inbuf.len() < kept {
            self.inbuf.shrink_to(kept);
        }
    }

    /// The start of the input that came ahead of its turn, for the log:
    /// its first line, at most 100 bytes.
    pub(super) fn pending_line(&self) -> String {
        String::from_utf8_lossy(&self.inbuf[..self.inbuf.len().min(100)])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    /// STARTTLS: the handshake on the plain stream, within `timeout`;
    /// afterwards every read and write goes through TLS. Whatever the
    /// client sent after STARTTLS before the handshake is discarded (RFC
    /// 3207 section 6: plaintext injected ahead of TLS must not count as
    /// said inside it). On failure the stream is gone: the session ends.
    pub(super) async fn start_tls(
        &mut self,
        acceptor: tokio_rustls::TlsAcceptor,
        timeout: Duration,
    ) -> Result<(), String> {
        self.inbuf.clear();
        let Stream::Plain(plain) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err("TLS already active".into());
        };
        match tokio::time::timeout(timeout, acceptor.accept(plain)).await {
            Ok(Ok(tls)) => {
                self.stream = Stream::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Whether STARTTLS succeeded on this connection.
    pub(super) fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The TLS protocol and cipher in use, once STARTTLS succeeded, in
    /// OpenSSL's names as Postfix logs them: (`TLSv1.3`,
    /// `TLS_AES_256_GCM_SHA384 (256/256 bits)`).
    pub(super) fn tls(&self) -> Option<(String, String)> {
        let Stream::Tls(tls) = &self.stream else {
            return None;
        };
        let (_, conn) = tls.get_ref();
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|s| {
                let (name, bits) = crate::certs::openssl_suite(&format!("{:?}", s.suite()));
                format!("{name} ({bits}/{bits} bits)")
            })
            .unwrap_or_default();
        Some((version, cipher))
    }
}

/// The connection's bytes: plain, or TLS after STARTTLS; `Gone` only in
/// the instant of the switch (or after a failed handshake).
enum Stream<S> {
    Plain(S),
    Tls(Box<tokio_rustls::server::TlsStream<S>>),
    Gone,
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "the connection is gone")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => std::task::Poll::Ready(Err(gone())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => std::task::Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => std::task::Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => std::task::Poll::Ready(Ok(())),
        }
    }
}

/// Resolves when the value changes; never once the sender is gone.
async fn changed(rx: &mut watch::Receiver<bool>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The session's clock and counts.
pub(super) struct Counters {
    /// For `smtpd.session_time_limit`.
    started: Instant,
    pub(super) errors: u32,
    /// Junk commands (`smtpd.junk_command_limit`).
    pub(super) junk: u32,
    /// (verb, ok, total) for the disconnect line.
    stats: Vec<(&'static str, u32, u32)>,
    /// The command at hand, as "lost connection after X" names it.
    pub(super) last_cmd: &'static str,
}

impl Counters {
    pub(super) fn new() -> Counters {
        Counters {
            started: Instant::now(),
            errors: 0,
            junk: 0,
            stats: Vec::new(),
            last_cmd: "CONNECT",
        }
    }

    /// When the session must end, if it has a time limit.
    pub(super) fn session_deadline(&self, limits: &Limits) -> Option<Instant> {
        limits.session_time_limit.map(|l| self.started + l)
    }

    pub(super) fn count(&mut self, verb: &'static str, ok: bool) {
        match self.stats.iter_mut().find(|(v, _, _)| *v == verb) {
            Some(e) => {
                e.1 += ok as u32;
                e.2 += 1;
            }
            None => self.stats.push((verb, ok as u32, 1)),
        }
    }

    /// Postfix's smtpd_junk_command_limit: past it, each junk command
    /// counts as an error, so only sending NOOPs (or RSET, HELO...)
    /// does not hold a connection for ever.
    pub(super) fn junk_command(&mut self, limits: &Limits) {
        self.junk = self.junk.saturating_add(1);
        if self.junk > limits.junk_command_limit {
            self.errors += 1;
        }
    }

    /// The counts of the disconnect line (` ehlo=1 mail=1 … commands=5`).
    pub(super) fn stats_text(&self) -> String {
        let mut s = String::new();
        let (mut ok, mut total) = (0, 0);
        for (v, o, t) in &self.stats {
            ok += o;
            total += t;
            if o == t {
                s.push_str(&format!(" {v}={o}"));
            } else {
                s.push_str(&format!(" {v}={o}/{t}"));
            }
        }
        if ok == total && total > 0 {
            s.push_str(&format!(" commands={ok}"));
        } else {
            s.push_str(&format!(" commands={ok}/{total}"));
        }
        s
    }
}

/// `postern_smtpd_replies_total{class, code}`: the reply's class (`2xx`)
/// and enhanced status code (`none` without one).
fn count_reply(r: &Reply) {
    use crate::metrics::registry::{self as reg, sink};
    if !sink::enabled() {
        return;
    }
    let class = match r.code / 100 {
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    };
    let code = r.enhanced.as_deref().unwrap_or("none");
    sink::inc(reg::SMTPD_REPLIES, &[("class", class), ("code", code)]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_disconnect_line_counts_as_postfix_does() {
        let mut c = Counters::new();
        assert_eq!(c.stats_text(), " commands=0/0");
        c.count("ehlo", true);
        c.count("mail", true);
        c.count("rcpt", false);
        c.count("rcpt", true);
        assert_eq!(c.stats_text(), " ehlo=1 mail=1 rcpt=1/2 commands=3/4");
        let mut c = Counters::new();
        c.count("quit", true);
        assert_eq!(c.stats_text(), " quit=1 commands=1");
    }

    #[test]
    fn junk_past_the_limit_counts_as_errors() {
        let limits = Limits::new(&Config::builtin().smtpd, false);
        let mut c = Counters::new();
        for _ in 0..limits.junk_command_limit {
            c.junk_command(&limits);
        }
        assert_eq!(c.errors, 0);
        c.junk_command(&limits);
        assert_eq!(c.errors, 1);
    }

    #[test]
    fn a_local_submitter_is_named_by_uid() {
        let local = Client {
            name: "localhost".into(),
            name_status: NameStatus::Verified,
            ip: IpAddr::from([127, 0, 0, 1]),
            uid: Some(1000),
        };
        assert_eq!(local.text(), "localhost[127.0.0.1]");
        assert_eq!(local.field(), "uid 1000");
        let tcp = Client { uid: None, ..local };
        assert_eq!(tcp.field(), "localhost[127.0.0.1]");
    }
}
