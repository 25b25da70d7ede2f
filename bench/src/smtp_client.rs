//! A lean SMTP client session, shared by `load` and `loopback`.
//!
//! One session: connect, read the greeting, EHLO (with `--starttls`:
//! STARTTLS, the TLS handshake, EHLO again, see [`crate::tls`]); then per
//! message
//! MAIL FROM, RCPT TO and DATA (in one write when the server advertises
//! PIPELINING, as MTAs do; otherwise one at a time), the dot-stuffed
//! payload in one write, and the reply to the end-of-data dot, whose wait
//! is the message's accept latency; QUIT at the end. Any reply outside the
//! expected class ends the session with [`SmtpError::Rejected`].
//!
//! Nothing is allocated per message: the command bytes are built once per
//! run ([`Envelope`]) and replies are read into buffers the session keeps.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::tls::Stream;

/// How long QUIT waits for the server to close the connection.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The step of the dialogue an error happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    MailFrom,
    RcptTo,
    Data,
    EndOfData,
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::EndOfData => "end of data",
            Stage::Quit => "QUIT",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("{stage}: server replied \"{reply}\"")]
    Rejected { stage: Stage, reply: String },
    #[error("{stage}: malformed reply \"{line}\"")]
    Malformed { stage: Stage, line: String },
    #[error("{stage}: connection closed by the server")]
    Closed { stage: Stage },
    #[error("{stage}: {source}")]
    Io { stage: Stage, source: io::Error },
    #[error("STARTTLS: not offered in the reply to EHLO")]
    NoStartTls,
    #[error("STARTTLS: the server sent more after its 220")]
    Injected,
}

/// The per-transaction commands, built once per run.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// `MAIL FROM:<…>` CRLF `RCPT TO:<…>` CRLF `DATA` CRLF.
    commands: Vec<u8>,
    /// Where RCPT and DATA start in `commands`.
    rcpt_at: usize,
    data_at: usize,
}

impl Envelope {
    pub fn new(from: &str, to: &str) -> Envelope {
        let mail = format!("MAIL FROM:<{from}>\r\n");
        let rcpt = format!("RCPT TO:<{to}>\r\n");
        let commands = format!("{mail}{rcpt}DATA\r\n").into_bytes();
        Envelope {
            commands,
            rcpt_at: mail.len(),
            data_at: mail.len() + rcpt.len(),
        }
    }
}

/// An open SMTP session after a successful EHLO.
pub struct Session {
    stream: BufReader<Stream>,
    pipelining: bool,
    /// How long the TLS handshake took, after STARTTLS.
    handshake: Option<Duration>,
    /// The reply being read, all its lines.
    reply: Vec<u8>,
}

impl Session {
    /// Connects, reads the 220 greeting and says EHLO; with `tls`, then
    /// STARTTLS, the handshake and EHLO again.
    pub async fn open(
        server: SocketAddr,
        helo: &str,
        tls: Option<&TlsConnector>,
    ) -> Result<Session, SmtpError> {
        let stream = TcpStream::connect(server)
            .await
            .map_err(|source| SmtpError::Io {
                stage: Stage::Connect,
                source,
            })?;
        // Every write is a whole flight of commands or the whole payload,
        // so Nagle's algorithm could only delay a payload's last segment.
        stream.set_nodelay(true).map_err(|source| SmtpError::Io {
            stage: Stage::Connect,
            source,
        })?;
        let mut session = Session {
            stream: BufReader::with_capacity(16 * 1024, Stream::Plain(stream)),
            pipelining: false,
            handshake: None,
            reply: Vec::with_capacity(512),
        };
        session.read_reply(Stage::Greeting, 2).await?;
        let ehlo = format!("EHLO {helo}\r\n");
        session.write(Stage::Ehlo, ehlo.as_bytes()).await?;
        session.read_reply(Stage::Ehlo, 2).await?;
        if let Some(connector) = tls {
            session = session.start_tls(connector, server).await?;
            session.write(Stage::Ehlo, ehlo.as_bytes()).await?;
            session.read_reply(Stage::Ehlo, 2).await?;
        }
        session.pipelining = advertises(&session.reply, b"PIPELINING");
        Ok(session)
    }

    /// STARTTLS and the handshake, timed (the reply to STARTTLS not
    /// included).
    async fn start_tls(
        mut self,
        connector: &TlsConnector,
        server: SocketAddr,
    ) -> Result<Session, SmtpError> {
        if !advertises(&self.reply, b"STARTTLS") {
            return Err(SmtpError::NoStartTls);
        }
        self.write(Stage::StartTls, b"STARTTLS\r\n").await?;
        self.read_reply(Stage::StartTls, 2).await?;
        if !self.stream.buffer().is_empty() {
            return Err(SmtpError::Injected);
        }
        let Stream::Plain(tcp) = self.stream.into_inner() else {
            return Err(SmtpError::Malformed {
                stage: Stage::StartTls,
                line: "TLS is already on".into(),
            });
        };
        let started = Instant::now();
        let tls = connector
            .connect(ServerName::IpAddress(server.ip().into()), tcp)
            .await
            .map_err(|source| SmtpError::Io {
                stage: Stage::StartTls,
                source,
            })?;
        Ok(Session {
            stream: BufReader::with_capacity(16 * 1024, Stream::Tls(Box::new(tls))),
            handshake: Some(started.elapsed()),
            ..self
        })
    }

    /// Whether the server advertised PIPELINING.
    pub fn pipelining(&self) -> bool {
        self.pipelining
    }

    /// How long the TLS handshake took (None without STARTTLS).
    pub fn handshake(&self) -> Option<Duration> {
        self.handshake
    }

    /// The TLS protocol version and cipher suite (None without STARTTLS).
    pub fn tls_info(&self) -> Option<(String, String)> {
        self.stream.get_ref().tls_info()
    }

    /// Sends one message; returns the wait from the end-of-data dot being
    /// written to its 2xx reply.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        payload: &[u8],
    ) -> Result<Duration, SmtpError> {
        let c = &envelope.commands;
        if self.pipelining {
            self.write(Stage::MailFrom, c).await?;
            self.read_reply(Stage::MailFrom, 2).await?;
            self.read_reply(Stage::RcptTo, 2).await?;
        } else {
            self.write(Stage::MailFrom, &c[..envelope.rcpt_at]).await?;
            self.read_reply(Stage::MailFrom, 2).await?;
            self.write(Stage::RcptTo, &c[envelope.rcpt_at..envelope.data_at])
                .await?;
            self.read_reply(Stage::RcptTo, 2).await?;
            self.write(Stage::Data, &c[envelope.data_at..]).await?;
        }
        self.read_reply(Stage::Data, 3).await?;
        self.write(Stage::EndOfData, payload).await?;
        let sent = Instant::now();
        self.read_reply(Stage::EndOfData, 2).await?;
        Ok(sent.elapsed())
    }

    /// Says QUIT, reads the 221 and waits (briefly) for the server to close,
    /// so that the closing side's TIME_WAIT stays with the server.
    pub async fn quit(mut self) -> Result<(), SmtpError> {
        self.write(Stage::Quit, b"QUIT\r\n").await?;
        self.read_reply(Stage::Quit, 2).await?;
        let mut rest = [0u8; 64];
        let _ = tokio::time::timeout(CLOSE_WAIT, self.stream.read(&mut rest)).await;
        Ok(())
    }

    /// Writes `bytes` and flushes them (a TLS stream may keep records
    /// back until flushed; for TCP the flush does nothing).
    async fn write(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), SmtpError> {
        let io = |source| SmtpError::Io { stage, source };
        self.stream.write_all(bytes).await.map_err(io)?;
        self.stream.flush().await.map_err(io)
    }

    /// Reads one (possibly multi-line) reply into `self.reply`; an error
    /// unless its code is `class`xx.
    async fn read_reply(&mut self, stage: Stage, class: u8) -> Result<(), SmtpError> {
        self.reply.clear();
        loop {
            let start = self.reply.len();
            let n = self
                .stream
                .read_until(b'\n', &mut self.reply)
                .await
                .map_err(|source| SmtpError::Io { stage, source })?;
            if n == 0 {
                return Err(SmtpError::Closed { stage });
            }
            match parse_reply_line(&self.reply[start..]) {
                Some(ReplyLine { code, last }) => {
                    if last {
                        return if code / 100 == u16::from(class) {
                            Ok(())
                        } else {
                            Err(SmtpError::Rejected {
                                stage,
                                reply: printable(&self.reply),
                            })
                        };
                    }
                }
                None => {
                    return Err(SmtpError::Malformed {
                        stage,
                        line: printable(&self.reply[start..]),
                    });
                }
            }
        }
    }
}

/// One line of a reply: its code and whether it is the last line.
#[derive(Debug, PartialEq, Eq)]
struct ReplyLine {
    code: u16,
    last: bool,
}

/// `NNN-text` (more lines follow) or `NNN text` / `NNN` (the last line).
fn parse_reply_line(line: &[u8]) -> Option<ReplyLine> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None | Some(b' ') => Some(ReplyLine { code, last: true }),
        Some(b'-') => Some(ReplyLine { code, last: false }),
        Some(_) => None,
    }
}

/// Whether an EHLO reply lists `keyword` (as the first word of a line).
fn advertises(reply: &[u8], keyword: &[u8]) -> bool {
    reply.split(|&b| b == b'\n').any(|line| {
        line.get(4..)
            .and_then(|rest| rest.split(|b| b.is_ascii_whitespace()).next())
            .is_some_and(|word| word.eq_ignore_ascii_case(keyword))
    })
}

/// A reply's text for an error message, lines joined with " / ".
fn printable(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply)
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_parse() {
        assert_eq!(
            parse_reply_line(b"250-PIPELINING\r\n"),
            Some(ReplyLine {
                code: 250,
                last: false
            })
        );
        assert_eq!(
            parse_reply_line(b"354 go ahead\r\n"),
            Some(ReplyLine {
                code: 354,
                last: true
            })
        );
        assert_eq!(
            parse_reply_line(b"221\n"),
            Some(ReplyLine {
                code: 221,
                last: true
            })
        );
        assert_eq!(parse_reply_line(b"25x ok\r\n"), None);
        assert_eq!(parse_reply_line(b"250:ok\r\n"), None);
        assert_eq!(parse_reply_line(b"650 ok\r\n"), None);
        assert_eq!(parse_reply_line(b"250 no newline"), None);
    }

    #[test]
    fn ehlo_keywords_are_found_case_insensitively() {
        let reply = b"250-mx.example\r\n250-pipelining\r\n250-SIZE 1000\r\n250 8BITMIME\r\n";
        assert!(advertises(reply, b"PIPELINING"));
        assert!(advertises(reply, b"SIZE"));
        assert!(advertises(reply, b"8BITMIME"));
        assert!(!advertises(reply, b"STARTTLS"));
        assert!(!advertises(b"250 mx.example PIPELINING\r\n", b"PIPELINING"));
    }

    #[test]
    fn envelope_splits_into_commands() {
        let e = Envelope::new("a@x", "b@y");
        assert_eq!(&e.commands[..e.rcpt_at], b"MAIL FROM:<a@x>\r\n");
        assert_eq!(&e.commands[e.rcpt_at..e.data_at], b"RCPT TO:<b@y>\r\n");
        assert_eq!(&e.commands[e.data_at..], b"DATA\r\n");
    }

    #[test]
    fn rejected_reply_text_is_joined() {
        assert_eq!(
            printable(b"550-5.1.1 no such\r\n550 5.1.1 user\r\n"),
            "550-5.1.1 no such / 550 5.1.1 user"
        );
    }
}
