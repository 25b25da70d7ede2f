//! `loopback`: the SMTP round trip's ceiling on this machine, and the
//! measure of the client's own overhead. A trivial in-process server on
//! 127.0.0.1 answers every command with a canned reply and throws the data
//! away; the `load` client drives it for a fixed time, first with one
//! message per session (connect, EHLO, MAIL, RCPT, DATA, QUIT), then with
//! many messages per session.
//!
//! The same server, given a Maildir, writes each message into it (tmp/,
//! then new/, no fsync): the tests run `load` against it, with STARTTLS
//! too when given a TLS acceptor.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::message::{Message, RunNonce};
use crate::round;
use crate::smtp_client::{Envelope, Session};

pub struct Config {
    pub sessions: u64,
    /// How long each of the two phases lasts.
    pub phase: Duration,
    pub size: usize,
}

/// The JSON line of `loopback`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub sessions: u64,
    pub size: usize,
    pub seconds: f64,
    /// Many messages per session.
    pub messages_per_sec: f64,
    /// One message per session.
    pub sessions_per_sec: f64,
}

/// Runs both phases against a fresh trivial server.
pub async fn run(config: &Config) -> anyhow::Result<Report> {
    let server = spawn(ServerOptions::default())
        .await
        .context("cannot start the trivial server")?;
    let template = Message::template(
        &RunNonce::random(),
        "bench@example.org",
        "user@localhost",
        config.size,
    );
    let load = Load {
        server: server.addr(),
        sessions: config.sessions,
        template,
        envelope: Arc::new(Envelope::new("bench@example.org", "user@localhost")),
    };
    let messages_per_sec = load.phase(config.phase, Reuse::ManyPerSession).await?;
    eprintln!("loopback: {messages_per_sec:.0} messages/s, many per session");
    let sessions_per_sec = load.phase(config.phase, Reuse::OnePerSession).await?;
    eprintln!("loopback: {sessions_per_sec:.0} messages/s, one per session");
    Ok(Report {
        mode: "loopback",
        sessions: config.sessions,
        size: load.template.size(),
        seconds: config.phase.as_secs_f64(),
        messages_per_sec: round(messages_per_sec, 1),
        sessions_per_sec: round(sessions_per_sec, 1),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reuse {
    OnePerSession,
    ManyPerSession,
}

struct Load {
    server: SocketAddr,
    sessions: u64,
    template: Message,
    envelope: Arc<Envelope>,
}

impl Load {
    /// Sends for `length` over `self.sessions` concurrent sessions; returns
    /// the messages accepted per second.
    async fn phase(&self, length: Duration, reuse: Reuse) -> anyhow::Result<f64> {
        let start = Instant::now();
        let deadline = start + length;
        let mut tasks = JoinSet::new();
        for s in 0..self.sessions {
            let (server, step) = (self.server, self.sessions);
            let mut message = self.template.clone();
            let envelope = Arc::clone(&self.envelope);
            tasks.spawn(async move {
                let mut sent = 0u64;
                let mut session = None;
                while Instant::now() < deadline {
                    let mut open = match session.take() {
                        Some(open) => open,
                        None => Session::open(server, "loopback.localhost", None).await?,
                    };
                    message.set_number(s + sent * step);
                    open.send(&envelope, message.wire()).await?;
                    sent += 1;
                    match reuse {
                        Reuse::OnePerSession => open.quit().await?,
                        Reuse::ManyPerSession => session = Some(open),
                    }
                }
                if let Some(open) = session {
                    open.quit().await?;
                }
                anyhow::Ok(sent)
            });
        }
        let mut total = 0;
        while let Some(joined) = tasks.join_next().await {
            total += joined.context("session task")??;
        }
        Ok(total as f64 / start.elapsed().as_secs_f64())
    }
}

/// What the trivial server does beyond canned replies.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Write each message into this Maildir.
    pub maildir: Option<PathBuf>,
    /// Advertise PIPELINING in the EHLO reply.
    pub pipelining: bool,
    /// Reject RCPT TO commands that contain this text with 550.
    pub reject_rcpt: Option<String>,
    /// Offer STARTTLS, with this server configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            maildir: None,
            pipelining: true,
            reject_rcpt: None,
            tls: None,
        }
    }
}

/// A running trivial server; stops accepting when dropped.
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the trivial server on 127.0.0.1 with a free port.
pub async fn spawn(options: ServerOptions) -> io::Result<Server> {
    if let Some(maildir) = &options.maildir {
        for sub in ["tmp", "new", "cur"] {
            tokio::fs::create_dir_all(maildir.join(sub)).await?;
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let options = Arc::new(options);
    let delivered = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let options = Arc::clone(&options);
            let delivered = Arc::clone(&delivered);
            tokio::spawn(async move {
                // A broken connection only ends itself.
                let _ = serve(stream, &options, &delivered).await;
            });
        }
    });
    Ok(Server { addr, task })
}

const EHLO_PIPELINING: &[u8] =
    b"250-loopback\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
const EHLO_PLAIN: &[u8] = b"250-loopback\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";

/// A connection's byte stream, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection. Replies are collected and written when no more
/// (pipelined) input is waiting, as a real server does.
async fn serve(
    stream: TcpStream,
    options: &ServerOptions,
    delivered: &AtomicU64,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut conn = Conn {
        stream: BufReader::with_capacity(64 * 1024, Box::new(stream)),
        out: b"220 loopback ESMTP postern-bench\r\n".to_vec(),
        line: Vec::with_capacity(1024),
    };
    let mut message = Vec::new();
    let mut in_tls = false;
    loop {
        if !conn.next_line().await? {
            return Ok(());
        }
        let verb = conn.line.get(..4).map(<[u8]>::to_ascii_uppercase);
        match verb.as_deref() {
            Some(b"EHLO") => {
                if options.tls.is_some() && !in_tls {
                    conn.reply(b"250-STARTTLS\r\n");
                }
                conn.reply(if options.pipelining {
                    EHLO_PIPELINING
                } else {
                    EHLO_PLAIN
                });
            }
            Some(b"STAR") if !in_tls && options.tls.is_some() => {
                let Some(config) = &options.tls else {
                    continue;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
                conn.reply(b"220 2.0.0 Ready to start TLS\r\n");
                conn.flush().await?;
                let plain = std::mem::replace(
                    &mut conn.stream,
                    BufReader::new(Box::new(tokio::io::empty())),
                );
                let tls = acceptor.accept(plain.into_inner()).await?;
                conn.stream = BufReader::with_capacity(64 * 1024, Box::new(tls));
                in_tls = true;
            }
            Some(b"HELO") => conn.reply(b"250 loopback\r\n"),
            Some(b"MAIL") => conn.reply(b"250 2.1.0 Ok\r\n"),
            Some(b"RCPT") => {
                let rejected = options.reject_rcpt.as_ref().is_some_and(|r| {
                    conn.line
                        .windows(r.len())
                        .any(|w| w.eq_ignore_ascii_case(r.as_bytes()))
                });
                conn.reply(if rejected {
                    b"550 5.1.1 Recipient address rejected\r\n"
                } else {
                    b"250 2.1.5 Ok\r\n"
                });
            }
            Some(b"DATA") => {
                conn.reply(b"354 End data with <CR><LF>.<CR><LF>\r\n");
                message.clear();
                loop {
                    if !conn.next_line().await? {
                        return Ok(());
                    }
                    let line = conn.line.as_slice();
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    if options.maildir.is_some() {
                        message.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
                    }
                }
                if let Some(maildir) = &options.maildir {
                    deliver(maildir, &message, delivered.fetch_add(1, Ordering::Relaxed)).await?;
                }
                conn.reply(b"250 2.0.0 Ok: queued\r\n");
            }
            Some(b"RSET") | Some(b"NOOP") => conn.reply(b"250 2.0.0 Ok\r\n"),
            Some(b"QUIT") => {
                conn.reply(b"221 2.0.0 Bye\r\n");
                conn.flush().await?;
                return Ok(());
            }
            _ => conn.reply(b"502 5.5.2 Error: command not recognized\r\n"),
        }
    }
}

struct Conn {
    stream: BufReader<Box<dyn Io>>,
    /// Replies not written yet.
    out: Vec<u8>,
    /// The line just read.
    line: Vec<u8>,
}

impl Conn {
    fn reply(&mut self, text: &[u8]) {
        self.out.extend_from_slice(text);
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.get_mut().write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads the next line into `self.line`, first writing the pending
    /// replies if no input is buffered (the client may be waiting for
    /// them). `false` at the end of the input.
    async fn next_line(&mut self) -> io::Result<bool> {
        if self.stream.buffer().is_empty() {
            self.flush().await?;
        }
        self.line.clear();
        Ok(self.stream.read_until(b'\n', &mut self.line).await? > 0)
    }
}

/// Writes a message into the Maildir: tmp/ first, then renamed into new/.
async fn deliver(maildir: &std::path::Path, message: &[u8], seq: u64) -> io::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!(
        "{}.M{}P{}Q{seq}.postern-bench",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id()
    );
    let tmp = maildir.join("tmp").join(&name);
    tokio::fs::write(&tmp, message).await?;
    tokio::fs::rename(&tmp, maildir.join("new").join(&name)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Talks raw protocol to the server: pipelined commands, a stuffed dot.
    #[tokio::test]
    async fn server_answers_pipelined_commands_and_unstuffs() {
        let dir = tempfile::tempdir().unwrap();
        let server = spawn(ServerOptions {
            maildir: Some(dir.path().into()),
            ..ServerOptions::default()
        })
        .await
        .unwrap();
        let mut s = TcpStream::connect(server.addr()).await.unwrap();
        s.write_all(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
            .await
            .unwrap();
        s.write_all(b"Subject: t\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
            .await
            .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).await.unwrap();
        assert_eq!(
            all,
            "220 loopback ESMTP postern-bench\r\n\
             250-loopback\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n\
             250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n\
             250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n"
        );
        let files: Vec<_> = std::fs::read_dir(dir.path().join("new"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(files.len(), 1);
        let text = std::fs::read(files[0].path()).unwrap();
        assert_eq!(text, b"Subject: t\r\n\r\n.dot\r\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_phases_send_messages() {
        let report = run(&Config {
            sessions: 3,
            phase: Duration::from_millis(200),
            size: 2048,
        })
        .await
        .unwrap();
        assert!(report.messages_per_sec > 0.0);
        assert!(report.sessions_per_sec > 0.0);
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.starts_with("{\"mode\":\"loopback\",\"sessions\":3,"));
    }
}
