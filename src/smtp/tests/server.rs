//! A tiny scripted SMTP server on 127.0.0.1:0 for the agent's tests: it
//! answers each command as its [`Script`] says and records what it got.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// How the server behaves.
#[derive(Clone)]
pub(crate) struct Script {
    /// The greeting; `None`: never say anything.
    pub greeting: Option<String>,
    /// Seconds to wait before the greeting.
    pub greeting_delay: Duration,
    /// EHLO extensions (`PIPELINING`, `SIZE 100`); `None`: EHLO is
    /// unknown (502), HELO works.
    pub ehlo: Option<Vec<String>>,
    pub mail: String,
    /// Replies to RCPT for addresses containing the key; others get 250.
    pub rcpt: Vec<(String, String)>,
    pub data: String,
    pub dot: String,
    /// Stop answering after this command (`MAIL`, `DATA`, `.` for the
    /// end of data).
    pub hang_at: Option<&'static str>,
    /// Offer STARTTLS with this acceptor.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Answer STARTTLS with 220 and then garbage instead of a handshake.
    pub broken_tls: bool,
    /// The answers to AUTH and to each line after a `334` answer, in
    /// order (offering AUTH is up to `ehlo`); past the end: 535.
    pub auth: Vec<String>,
    /// LMTP: answer LHLO (not EHLO), and after the data one reply per
    /// accepted recipient: the first of `lmtp_dot` whose key the
    /// recipient's RCPT line contains, else `dot`.
    pub lmtp: bool,
    pub lmtp_dot: Vec<(String, String)>,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            greeting: Some("220 mx.test ESMTP".into()),
            greeting_delay: Duration::ZERO,
            ehlo: Some(vec![
                "PIPELINING".into(),
                "SIZE 10240000".into(),
                "8BITMIME".into(),
                "DSN".into(),
            ]),
            mail: "250 2.1.0 Ok".into(),
            rcpt: Vec::new(),
            data: "354 End data with <CR><LF>.<CR><LF>".into(),
            dot: "250 2.0.0 Ok: queued as TEST".into(),
            hang_at: None,
            tls: None,
            broken_tls: false,
            auth: Vec::new(),
            lmtp: false,
            lmtp_dot: Vec::new(),
        }
    }
}

/// What the server got.
#[derive(Default)]
pub(crate) struct Record {
    pub accepts: AtomicUsize,
    /// Command lines, without CRLF; after STARTTLS prefixed `TLS `.
    pub commands: Mutex<Vec<String>>,
    /// Each message's data as received (dot-stuffed, CRLF), without the
    /// final `.` line.
    pub messages: Mutex<Vec<Vec<u8>>>,
    /// Commands read while more input was already waiting (pipelining).
    pub pipelined: AtomicUsize,
    pub tls_sessions: AtomicUsize,
}

pub(crate) struct Server {
    pub addr: SocketAddr,
    pub record: Arc<Record>,
}

impl Server {
    pub(crate) fn commands(&self) -> Vec<String> {
        self.record.commands.lock().unwrap().clone()
    }

    pub(crate) fn messages(&self) -> Vec<Vec<u8>> {
        self.record.messages.lock().unwrap().clone()
    }

    pub(crate) fn accepts(&self) -> usize {
        self.record.accepts.load(Ordering::SeqCst)
    }

    pub(crate) fn pipelined(&self) -> usize {
        self.record.pipelined.load(Ordering::SeqCst)
    }
}

/// The server on a Unix-domain socket at `path` (no STARTTLS).
pub(crate) async fn start_unix(script: Script, path: &std::path::Path) -> Arc<Record> {
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    let record = Arc::new(Record::default());
    let (script, rec) = (Arc::new(script), record.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            rec.accepts.fetch_add(1, Ordering::SeqCst);
            let io = BufReader::new(stream);
            let (script, rec) = (script.clone(), rec.clone());
            tokio::spawn(async move { converse(io, &script, &rec, false).await });
        }
    });
    record
}

pub(crate) async fn start(script: Script) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let record = Arc::new(Record::default());
    let script = Arc::new(script);
    let rec = record.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            rec.accepts.fetch_add(1, Ordering::SeqCst);
            let (script, rec) = (script.clone(), rec.clone());
            tokio::spawn(async move {
                let io = BufReader::new(stream);
                if let Some(io) = converse(io, &script, &rec, false).await {
                    let tcp = io.into_inner();
                    let Some(acceptor) = script.tls.clone() else {
                        return;
                    };
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        rec.tls_sessions.fetch_add(1, Ordering::SeqCst);
                        converse(BufReader::new(tls), &script, &rec, true).await;
                    }
                }
            });
        }
    });
    Server { addr, record }
}

/// A port nothing listens on.
pub(crate) async fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Talk until QUIT or the end; `Some` when STARTTLS was accepted.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: BufReader<S>,
    script: &Script,
    rec: &Record,
    tls: bool,
) -> Option<BufReader<S>> {
    let hang = || tokio::time::sleep(Duration::from_secs(30));
    if !tls {
        tokio::time::sleep(script.greeting_delay).await;
        let Some(greeting) = &script.greeting else {
            hang().await;
            return None;
        };
        reply(&mut io, greeting).await?;
    }
    let mut accepted = 0;
    // The RCPT lines accepted in this transaction (LMTP's replies).
    let mut accepted_lines: Vec<String> = Vec::new();
    // The next answer of `script.auth` while an AUTH exchange is on.
    let mut auth_step: Option<usize> = None;
    loop {
        let mut line = Vec::new();
        if io.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        rec.commands.lock().unwrap().push(if tls {
            format!("TLS {text}")
        } else {
            text.clone()
        });
        if !io.buffer().is_empty() {
            rec.pipelined.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(step) = auth_step {
            let answer = auth_answer(script, step);
            auth_step = answer.starts_with("334").then_some(step + 1);
            reply(&mut io, &answer).await?;
            continue;
        }
        let verb = text
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if script.hang_at == Some(verb_name(&verb)) {
            hang().await;
            return None;
        }
        let hello = if script.lmtp { "LHLO" } else { "EHLO" };
        let answer = match verb.as_str() {
            v if v == hello => match &script.ehlo {
                Some(ext) => {
                    let mut ext = ext.clone();
                    if script.tls.is_some() && !tls || script.broken_tls {
                        ext.push("STARTTLS".into());
                    }
                    let mut lines = vec!["mx.test".to_string()];
                    lines.extend(ext);
                    let n = lines.len();
                    lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| format!("250{}{l}", if i + 1 == n { ' ' } else { '-' }))
                        .collect::<Vec<_>>()
                        .join("\r\n")
                }
                None => "502 5.5.2 Error: command not recognized".into(),
            },
            "HELO" => "250 mx.test".into(),
            "AUTH" => {
                let answer = auth_answer(script, 0);
                auth_step = answer.starts_with("334").then_some(1);
                answer
            }
            "STARTTLS" => {
                reply(&mut io, "220 2.0.0 Ready to start TLS").await?;
                if script.broken_tls {
                    // Take the ClientHello, answer nonsense.
                    let mut hello = [0u8; 512];
                    let _ = io.read(&mut hello).await;
                    let _ = io.get_mut().write_all(b"this is no TLS\r\n").await;
                    return None;
                }
                return Some(io);
            }
            "MAIL" => {
                accepted = 0;
                accepted_lines.clear();
                script.mail.clone()
            }
            "RCPT" => {
                let answer = script
                    .rcpt
                    .iter()
                    .find(|(key, _)| text.contains(key.as_str()))
                    .map_or("250 2.1.5 Ok".to_string(), |(_, r)| r.clone());
                if answer.starts_with('2') {
                    accepted += 1;
                    accepted_lines.push(text.clone());
                }
                answer
            }
            "DATA" if accepted == 0 => "554 5.5.1 Error: no valid recipients".into(),
            "DATA" => {
                reply(&mut io, &script.data).await?;
                if !script.data.starts_with("354") {
                    continue;
                }
                let body = read_data(&mut io).await?;
                rec.messages.lock().unwrap().push(body);
                if script.hang_at == Some(".") {
                    hang().await;
                    return None;
                }
                if script.lmtp {
                    let replies: Vec<String> = accepted_lines
                        .iter()
                        .map(|l| {
                            script
                                .lmtp_dot
                                .iter()
                                .find(|(key, _)| l.contains(key.as_str()))
                                .map_or(script.dot.clone(), |(_, r)| r.clone())
                        })
                        .collect();
                    replies.join("\r\n")
                } else {
                    script.dot.clone()
                }
            }
            "RSET" => "250 2.0.0 Ok".into(),
            "QUIT" => {
                let _ = reply(&mut io, "221 2.0.0 Bye").await;
                return None;
            }
            _ => "502 5.5.2 Error: command not recognized".into(),
        };
        reply(&mut io, &answer).await?;
    }
}

fn auth_answer(script: &Script, step: usize) -> String {
    script
        .auth
        .get(step)
        .cloned()
        .unwrap_or_else(|| "535 5.7.8 Error: authentication failed: authentication failure".into())
}

fn verb_name(verb: &str) -> &'static str {
    match verb {
        "MAIL" => "MAIL",
        "RCPT" => "RCPT",
        "DATA" => "DATA",
        "EHLO" => "EHLO",
        "RSET" => "RSET",
        _ => "",
    }
}

async fn read_data<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        if io.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        if line == b".\r\n" {
            return Some(body);
        }
        body.extend_from_slice(&line);
    }
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>, text: &str) -> Option<()> {
    let w = io.get_mut();
    w.write_all(format!("{text}\r\n").as_bytes()).await.ok()?;
    w.flush().await.ok()
}
