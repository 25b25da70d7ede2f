//! One SMTP client connection: connect, the greeting, EHLO (HELO when
//! EHLO is refused), STARTTLS at the configured level and EHLO again,
//! AUTH when the password tables have a login for the server (`auth`),
//! and the reading of replies and sending of commands under each stage's
//! timeout (Postfix's `smtp_*_timeout`). The transaction itself is in
//! `transaction`.
//!
//! In LMTP mode (an `lmtp:` next hop, RFC 2033) the same session says
//! `LHLO` (no HELO fallback), over TCP or a Unix-domain socket, and never
//! STARTTLS or AUTH: LMTP servers are the mail system's own mailbox
//! servers (Postfix's lmtp defaults to no TLS, no SASL, likewise).
//!
//! A failure while talking is a [`Broken`] conversation, reported in
//! Postfix's words: `conversation with HOST[IP] timed out while STAGE`,
//! `lost connection with HOST[IP] while STAGE` (4.4.2).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio::time::{Instant, timeout, timeout_at};

use crate::config::{Smtp, TlsLevel};
use crate::ipc::DeliveryStatus;
use crate::logging::strerror;
use crate::outcome::{Enhanced, code};
use crate::sasl::client::Logins;
use crate::transport::Nexthop;

use super::dns::{Addr, Target};
use super::outcome::{Outcome, namaddr};
use super::reply::{Parsed, Reply, ReplyError, parse_reply};
use super::tls::{HandshakeFailure, TlsClient, server_name};

pub(crate) const GREETING: &str = "receiving the initial server greeting";
pub(crate) const EHLO: &str = "performing the EHLO handshake";
pub(crate) const HELO: &str = "performing the HELO handshake";
pub(crate) const LHLO: &str = "performing the LHLO handshake";
pub(crate) const STARTTLS: &str = "receiving the STARTTLS response";
pub(crate) const AUTH: &str = "performing the SASL authentication";
pub(crate) const RSET: &str = "sending RSET probe";

/// The stage timeouts (Postfix's names in `config::Smtp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub helo: Duration,
    pub starttls: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    pub data_xfer: Duration,
    pub data_done: Duration,
    pub quit: Duration,
    /// The RSET before a cached connection is used again (Postfix
    /// `smtp_rset_timeout`, 20s; never above `smtp.mail_timeout`).
    pub rset: Duration,
}

impl Timeouts {
    pub(crate) fn of(smtp: &Smtp) -> Timeouts {
        Timeouts {
            connect: smtp.connect_timeout,
            helo: smtp.helo_timeout,
            starttls: smtp.starttls_timeout,
            mail: smtp.mail_timeout,
            rcpt: smtp.rcpt_timeout,
            data_init: smtp.data_init_timeout,
            data_xfer: smtp.data_xfer_timeout,
            data_done: smtp.data_done_timeout,
            quit: smtp.quit_timeout,
            rset: smtp.mail_timeout.min(Duration::from_secs(20)),
        }
    }
}

/// What opening a session needs.
pub(crate) struct Setup<'a> {
    pub helo_name: &'a str,
    pub bind_address: Option<IpAddr>,
    pub timeouts: &'a Timeouts,
    pub tls: &'a TlsClient,
    /// The next hop the hosts are for (a key of the password tables).
    pub nexthop: &'a Nexthop,
    /// `relay.sasl_password_files`.
    pub logins: Logins<'a>,
    /// `relay.sasl_plaintext`: a login may go over a session without TLS.
    pub sasl_plaintext: bool,
}

/// The ESMTP extensions a server offers (RFC 5321, 2920, 1870, 6152,
/// 6531, 3461, 3207, 2034).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Features {
    /// EHLO was accepted (HELO: none of the others).
    pub esmtp: bool,
    pub pipelining: bool,
    /// SIZE with a limit (`SIZE` alone or `SIZE 0`: offered, no limit).
    pub size: bool,
    pub size_limit: Option<u64>,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub starttls: bool,
    pub enhanced_status_codes: bool,
    /// The SASL mechanisms of `AUTH` (or the old `AUTH=`), upper-cased.
    pub auth: Vec<String>,
}

/// The extensions in an EHLO reply (keywords case-insensitive; the
/// first line is the server's name).
pub(crate) fn parse_ehlo(reply: &Reply) -> Features {
    let mut f = Features {
        esmtp: true,
        ..Features::default()
    };
    for line in reply.texts().skip(1) {
        let mut words = line.split([' ', '=']);
        let keyword = words.next().unwrap_or("").to_ascii_uppercase();
        match keyword.as_str() {
            "PIPELINING" => f.pipelining = true,
            "SIZE" => {
                f.size = true;
                f.size_limit = words.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0);
            }
            "8BITMIME" => f.eightbitmime = true,
            "SMTPUTF8" => f.smtputf8 = true,
            "DSN" => f.dsn = true,
            "STARTTLS" => f.starttls = true,
            "ENHANCEDSTATUSCODES" => f.enhanced_status_codes = true,
            "AUTH" => {
                for m in words.filter(|w| !w.is_empty()) {
                    let m = m.to_ascii_uppercase();
                    if !f.auth.contains(&m) {
                        f.auth.push(m);
                    }
                }
            }
            _ => {}
        }
    }
    f
}

/// A conversation that failed, and the stage it was in.
#[derive(Debug)]
pub(crate) enum Broken {
    Timeout(&'static str),
    Lost(&'static str),
    Protocol(&'static str, ReplyError),
}

impl Broken {
    /// Postfix's text, and 4.4.2 (4.5.0 for a server that does not speak
    /// SMTP).
    pub(crate) fn outcome(&self, target: &Target) -> Outcome {
        let who = namaddr(target);
        match self {
            Broken::Timeout(stage) => Outcome::deferred(
                code::BAD_CONNECTION,
                format!("conversation with {who} timed out while {stage}"),
            ),
            Broken::Lost(stage) => Outcome::deferred(
                code::BAD_CONNECTION,
                format!("lost connection with {who} while {stage}"),
            ),
            Broken::Protocol(stage, e) => Outcome::deferred(
                code::PROTOCOL_TEMP,
                format!("protocol error: {who} sent a bad reply while {stage}: {e}"),
            ),
        }
    }
}

/// Why a host could not be used.
#[derive(Debug)]
pub(crate) struct HostFailure {
    pub outcome: Outcome,
    /// A session was established (the log's `relay=` names the host).
    pub connected: bool,
    /// The TLS handshake failed at `may`: try this host again in plain
    /// text.
    pub retry_plain: bool,
    /// The session got past EHLO and TLS (its AUTH failed): it counts
    /// toward the sessions per delivery, as in Postfix 2.3 and later
    /// (`smtp_mx_session_limit`), so a refused password is tried at two
    /// hosts at most.
    pub session: bool,
    /// Decided here before any connection (the SASL password tables
    /// could not be read): it says nothing of the host, so it does not
    /// count toward the next hop being unreachable.
    pub local: bool,
}

enum Stream {
    Plain(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Closed,
}

/// An established session, ready for a transaction.
pub(crate) struct Session {
    stream: Stream,
    /// Bytes received and not yet parsed.
    buf: Vec<u8>,
    pub target: Target,
    pub features: Features,
    /// STARTTLS was done.
    pub tls: bool,
    /// Transactions done on it (Postfix's `conn_use`).
    pub uses: u32,
    /// A conversation failed or the server said 421: never reuse.
    pub broken: bool,
    pub timeouts: Timeouts,
    /// LMTP (RFC 2033): one reply per accepted recipient after the data.
    pub lmtp: bool,
}

/// Connect to `target` and open a session: greeting, EHLO, STARTTLS as
/// `setup.tls.level` asks (never with `plain`: the retry after a failed
/// handshake at `may`), then AUTH when the password tables have a login
/// for the server. Tables that cannot be read now defer before any
/// connection (whether a login is due is unknown).
pub(crate) async fn open(
    target: &Target,
    setup: &Setup<'_>,
    plain: bool,
) -> Result<Session, HostFailure> {
    let login = if setup.nexthop.lmtp {
        Ok(None)
    } else {
        setup.logins.find(&target.host, setup.nexthop)
    };
    let login = login.map_err(|e| HostFailure {
        outcome: Outcome::deferred(
            code::SYSTEM_TEMP,
            format!("cannot look up the SASL login for {}: {e}", namaddr(target)),
        ),
        connected: false,
        retry_plain: false,
        session: false,
        local: true,
    })?;
    let mut s = establish(target, setup, plain).await?;
    if let Some(login) = login {
        super::auth::authenticate(&mut s, &login, setup.sasl_plaintext)
            .await
            .map_err(|f| HostFailure { session: true, ..f })?;
    }
    Ok(s)
}

/// [`open`] up to the session's last EHLO.
async fn establish(
    target: &Target,
    setup: &Setup<'_>,
    plain: bool,
) -> Result<Session, HostFailure> {
    let stream = match &target.addr {
        Addr::Inet(a) => connect(*a, setup.bind_address, setup.timeouts.connect)
            .await
            .map(Stream::Plain)
            .map_err(|e| (format!("{}:{}", namaddr(target), a.port()), e)),
        Addr::Unix(path) => timeout(setup.timeouts.connect, UnixStream::connect(path))
            .await
            .unwrap_or_else(|_| Err(std::io::Error::from_raw_os_error(libc::ETIMEDOUT)))
            .map(Stream::Unix)
            .map_err(|e| (namaddr(target), e)),
    };
    let stream = stream.map_err(|(to, e)| HostFailure {
        outcome: Outcome::deferred(
            code::NO_ANSWER,
            format!("connect to {to}: {}", strerror(&e)),
        ),
        connected: false,
        retry_plain: false,
        session: false,
        local: false,
    })?;
    let lmtp = setup.nexthop.lmtp;
    let mut s = Session {
        stream,
        buf: Vec::new(),
        target: target.clone(),
        features: Features::default(),
        tls: false,
        uses: 0,
        broken: false,
        timeouts: setup.timeouts.clone(),
        lmtp,
    };
    let greeting = s
        .read_reply(setup.timeouts.helo, GREETING)
        .await
        .map_err(|b| s.failed(&b))?;
    if !greeting.is_positive() {
        let reason = format!(
            "host {} refused to talk to me: {}",
            namaddr(target),
            greeting.text()
        );
        return Err(s.refused(&greeting, reason, true));
    }
    s.hello(setup).await?;
    let level = if plain || lmtp {
        TlsLevel::None
    } else {
        setup.tls.level
    };
    match level {
        TlsLevel::None => Ok(s),
        TlsLevel::May if !s.features.starttls => Ok(s),
        TlsLevel::May => match setup.tls.connector() {
            Ok(connector) => s.start_tls(setup, connector).await,
            Err(_) => Ok(s),
        },
        TlsLevel::Encrypt | TlsLevel::Verify if !s.features.starttls => Err(s.local_failure(
            code::SECURITY_UNSUPPORTED,
            format!(
                "TLS is required, but was not offered by host {}",
                namaddr(target)
            ),
        )),
        TlsLevel::Encrypt | TlsLevel::Verify => match setup.tls.connector() {
            Ok(connector) => s.start_tls(setup, connector).await,
            Err(_) => Err(s.local_failure(
                code::CRYPTO_FAILURE,
                "TLS is required, but our TLS engine is unavailable".into(),
            )),
        },
    }
}

/// A TCP connection from `bind` (when it is of the same family).
async fn connect(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    limit: Duration,
) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = bind.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = timeout(limit, socket.connect(addr))
        .await
        .map_err(|_| std::io::Error::from_raw_os_error(libc::ETIMEDOUT))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Session {
    /// EHLO, or HELO when EHLO is refused other than with 421; LHLO
    /// alone in LMTP mode.
    async fn hello(&mut self, setup: &Setup<'_>) -> Result<(), HostFailure> {
        let t = setup.timeouts.helo;
        let (verb, stage) = if self.lmtp {
            ("LHLO", LHLO)
        } else {
            ("EHLO", EHLO)
        };
        let ehlo = self
            .command(&format!("{verb} {}", setup.helo_name), t, stage)
            .await
            .map_err(|b| self.failed(&b))?;
        if ehlo.is_positive() {
            self.features = parse_ehlo(&ehlo);
            return Ok(());
        }
        let refused = |s: &mut Session, r: &Reply| {
            let reason = format!(
                "host {} refused to talk to me: {}",
                namaddr(&s.target),
                r.text()
            );
            s.refused(r, reason, false)
        };
        if ehlo.code() == 421 || self.lmtp {
            return Err(refused(self, &ehlo));
        }
        let helo = self
            .command(&format!("HELO {}", setup.helo_name), t, HELO)
            .await
            .map_err(|b| self.failed(&b))?;
        if !helo.is_positive() {
            return Err(refused(self, &helo));
        }
        self.features = Features::default();
        Ok(())
    }

    /// STARTTLS, the handshake, EHLO again.
    async fn start_tls(
        mut self,
        setup: &Setup<'_>,
        connector: tokio_rustls::TlsConnector,
    ) -> Result<Session, HostFailure> {
        let level = setup.tls.level;
        let t = setup.timeouts.starttls;
        let reply = self
            .command("STARTTLS", t, STARTTLS)
            .await
            .map_err(|b| self.failed(&b))?;
        if !reply.is_positive() {
            if level == TlsLevel::May {
                self.features.starttls = false;
                return Ok(self);
            }
            let reason = format!(
                "TLS is required, but host {} refused to start TLS: {}",
                namaddr(&self.target),
                reply.text()
            );
            return Err(self.refused(&reply, reason, false));
        }
        if !self.buf.is_empty() {
            // Commands injected before the handshake (CVE-2011-0411).
            let b = Broken::Protocol(
                STARTTLS,
                ReplyError::Malformed("data after the STARTTLS reply".into()),
            );
            return Err(self.failed(&b));
        }
        let name =
            server_name(&self.target.host).or_else(|| server_name(&self.target.addr.bracketed()));
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(self.failed(&Broken::Lost(STARTTLS)));
        };
        let handshake = match name {
            Some(name) => timeout(t, connector.connect(name, tcp))
                .await
                .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut))),
            None => Err(std::io::Error::other("no usable server name")),
        };
        crate::metrics::registry::sink::inc(
            crate::metrics::registry::TLS_HANDSHAKES,
            &[
                ("direction", "outbound"),
                ("outcome", if handshake.is_ok() { "ok" } else { "failed" }),
            ],
        );
        match handshake {
            Ok(tls) => {
                self.stream = Stream::Tls(Box::new(tls));
                self.tls = true;
            }
            Err(e) => {
                let cause = HandshakeFailure::of(&e);
                log::info!(
                    "{}: TLS handshake failed: {}",
                    namaddr(&self.target),
                    strerror(&e)
                );
                let mut f = self.local_failure(code::CRYPTO_FAILURE, cause.reason().into());
                f.retry_plain = level == TlsLevel::May;
                return Err(f);
            }
        }
        let ehlo = self
            .command(
                &format!("EHLO {}", setup.helo_name),
                setup.timeouts.helo,
                EHLO,
            )
            .await
            .map_err(|b| self.failed(&b))?;
        if !ehlo.is_positive() {
            let reason = format!(
                "host {} refused to talk to me: {}",
                namaddr(&self.target),
                ehlo.text()
            );
            return Err(self.refused(&ehlo, reason, false));
        }
        self.features = parse_ehlo(&ehlo);
        Ok(self)
    }

    /// Before a cached session is used again: RSET must get 2xx.
    pub(crate) async fn probe(&mut self) -> bool {
        let ok = matches!(self.command("RSET", self.timeouts.rset, RSET).await, Ok(r) if r.is_positive());
        if !ok {
            self.broken = true;
        }
        ok
    }

    /// Send QUIT (without waiting for the reply, as Postfix's
    /// `smtp_skip_quit_response`) and close.
    pub(crate) async fn quit(mut self) {
        let t = self.timeouts.quit.min(Duration::from_secs(5));
        if !self.broken {
            let _ = self.send(b"QUIT\r\n", t, "sending QUIT").await;
        }
        let _ = timeout(t, async {
            match &mut self.stream {
                Stream::Plain(s) => s.shutdown().await,
                Stream::Unix(s) => s.shutdown().await,
                Stream::Tls(s) => s.shutdown().await,
                Stream::Closed => Ok(()),
            }
        })
        .await;
    }

    /// Send one command line and read its reply within `limit`.
    pub(crate) async fn command(
        &mut self,
        line: &str,
        limit: Duration,
        stage: &'static str,
    ) -> Result<Reply, Broken> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.send(&bytes, limit, stage).await?;
        self.read_reply(limit, stage).await
    }

    /// Write `bytes` (and flush) within `limit`.
    pub(crate) async fn send(
        &mut self,
        bytes: &[u8],
        limit: Duration,
        stage: &'static str,
    ) -> Result<(), Broken> {
        let write = async {
            match &mut self.stream {
                Stream::Plain(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Stream::Unix(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Stream::Tls(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Stream::Closed => Err(std::io::ErrorKind::NotConnected.into()),
            }
        };
        let result = match timeout(limit, write).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(_)) => Broken::Lost(stage),
            Err(_) => Broken::Timeout(stage),
        };
        self.broken = true;
        Err(result)
    }

    /// Read one reply within `limit`.
    pub(crate) async fn read_reply(
        &mut self,
        limit: Duration,
        stage: &'static str,
    ) -> Result<Reply, Broken> {
        let deadline = Instant::now() + limit;
        loop {
            match parse_reply(&self.buf) {
                Ok(Parsed::Complete(reply, used)) => {
                    self.buf.drain(..used);
                    if reply.code() == 421 {
                        // The server is closing the connection.
                        self.broken = true;
                    }
                    return Ok(reply);
                }
                Ok(Parsed::Incomplete) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(Broken::Protocol(stage, e));
                }
            }
            self.buf.reserve(4096);
            let read = async {
                match &mut self.stream {
                    Stream::Plain(s) => s.read_buf(&mut self.buf).await,
                    Stream::Unix(s) => s.read_buf(&mut self.buf).await,
                    Stream::Tls(s) => s.read_buf(&mut self.buf).await,
                    Stream::Closed => Err(std::io::ErrorKind::NotConnected.into()),
                }
            };
            match timeout_at(deadline, read).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => {
                    self.broken = true;
                    return Err(Broken::Lost(stage));
                }
                Err(_) => {
                    self.broken = true;
                    return Err(Broken::Timeout(stage));
                }
            }
        }
    }

    /// `host[ip]`.
    pub(crate) fn namaddr(&self) -> String {
        namaddr(&self.target)
    }

    pub(super) fn failed(&mut self, broken: &Broken) -> HostFailure {
        self.broken = true;
        HostFailure {
            outcome: broken.outcome(&self.target),
            connected: true,
            retry_plain: false,
            session: false,
            local: false,
        }
    }

    pub(super) fn refused(
        &mut self,
        reply: &Reply,
        reason: String,
        defer_5xx: bool,
    ) -> HostFailure {
        HostFailure {
            outcome: Outcome::refused(&self.target, reply, reason, defer_5xx),
            connected: true,
            retry_plain: false,
            session: false,
            local: false,
        }
    }

    pub(super) fn local_failure(&mut self, dsn: Enhanced, reason: String) -> HostFailure {
        HostFailure {
            outcome: Outcome::local(DeliveryStatus::Deferred, dsn, reason),
            connected: true,
            retry_plain: false,
            session: false,
            local: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> Reply {
        match parse_reply(text.as_bytes()) {
            Ok(Parsed::Complete(r, _)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ehlo_extensions() {
        let f = parse_ehlo(&reply(
            "250-mx.example.com Hello\r\n250-pipelining\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n\
             250-SMTPUTF8\r\n250-DSN\r\n250-STARTTLS\r\n250-AUTH=LOGIN PLAIN\r\n250 ENHANCEDSTATUSCODES\r\n",
        ));
        assert_eq!(
            f,
            Features {
                esmtp: true,
                pipelining: true,
                size: true,
                size_limit: Some(10_240_000),
                eightbitmime: true,
                smtputf8: true,
                dsn: true,
                starttls: true,
                enhanced_status_codes: true,
                auth: vec!["LOGIN".into(), "PLAIN".into()],
            }
        );
        let f = parse_ehlo(&reply(
            "250-mx\r\n250-AUTH PLAIN login\r\n250 AUTH=LOGIN CRAM-MD5\r\n",
        ));
        assert_eq!(f.auth, ["PLAIN", "LOGIN", "CRAM-MD5"]);
        let f = parse_ehlo(&reply("250-mx\r\n250 SIZE\r\n"));
        assert_eq!((f.size, f.size_limit, f.pipelining), (true, None, false));
        let f = parse_ehlo(&reply("250-mx\r\n250 SIZE 0\r\n"));
        assert_eq!(f.size_limit, None);
        // The server's name is not an extension.
        assert!(!parse_ehlo(&reply("250 PIPELINING\r\n")).pipelining);
    }

    #[test]
    fn system_error_texts() {
        let e = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(strerror(&e), "Connection refused");
        let e = std::io::Error::from_raw_os_error(libc::ETIMEDOUT);
        assert_eq!(strerror(&e), "Connection timed out");
    }
}
