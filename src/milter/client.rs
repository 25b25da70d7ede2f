//! One milter connection, as Postfix's `milter8.c` keeps one: opened and
//! negotiated for one SMTP session ([`Client::open`]), then one call per
//! SMTP stage, each sending the stage's macros first and returning the
//! milter's [`Answer`], then [`Client::quit`].
//!
//! The client keeps the milter's state so that smtpd may call every stage
//! blindly, whatever the milter said before:
//!
//! - a stage the milter asked not to get (`SMFIP_NO*`, or one its
//!   protocol version does not know) or not to answer (`SMFIP_NR_*`)
//!   answers [`Answer::Continue`] without waiting (its macros still go, as
//!   Postfix sends them);
//! - after [`Answer::Accept`] at CONNECT or HELO, and after a reject,
//!   tempfail or reply code there, the milter is done with the
//!   connection: the socket is closed, later stages answer `Continue`
//!   (after an accept) or the same reject again (Postfix's sticky reply);
//! - after `Accept` or `Discard` at MAIL, RCPT, DATA, a header, the end of
//!   the headers or a body chunk, the milter is done with the message:
//!   later stages of the transaction answer `Continue` until
//!   [`Client::abort`];
//! - after [`Answer::Shutdown`] nothing more goes, every stage answers
//!   `Shutdown`;
//! - after an [`Error`] the socket is closed and every stage answers
//!   [`Error::AfterError`] (smtpd applies its default action each time,
//!   as Postfix's sticky default reply does).
//!
//! smtpd calls [`Client::abort`] at the end of every transaction (RSET, a
//! new HELO, after the message, MAIL refused), as Postfix's smtpd does.
//!
//! Timeouts ([`super::Timeouts`]): `connect` to connect and negotiate (as
//! Postfix's manual says; its code waits `command` for the negotiation's
//! reply), `command` for each reply to a connection or envelope stage,
//! `content` for each write and reply while the message goes; each reply
//! (a progress reply too) starts the wait again.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};

mod error;
mod reply;
mod state;

use error::Secs;
pub use error::{Doing, Error, Violation};
pub use state::Negotiated;
use state::{
    BODY, CONNECT, DATA, EOB, EOH, Event, HEADER, HELO, Level, MAIL, RCPT, State, UNKNOWN,
};

use super::message;
use super::protocol::{
    self, Actions, Command, ConnectAddress, Decoder, MAX_PACKET, ProtocolFlags, Reply, smfic,
};
use super::{Address, Answer, EndOfMessage, Modification, Timeouts};

/// The actions postern offers: every one of version 6 (edit.rs applies
/// them all), with SMFIF_SETSYMLIST.
pub const OFFERED_ACTIONS: Actions = Actions::ALL;

/// The protocol flags postern offers: every one of version 6 (as Postfix's
/// `milter_protocol = 6`): the milter may skip any stage or any reply,
/// answer a body chunk with SMFIR_SKIP, ask for rejected recipients, and
/// have header values with their leading space.
pub const OFFERED_PROTOCOL: ProtocolFlags = ProtocolFlags::ALL;

/// How much one read of replies takes at most.
const READ_CHUNK: usize = 64 * 1024;

/// A milter's TCP connection that acknowledges what it reads at once
/// (`TCP_QUICKACK` after each read). libmilter writes a modification and
/// the reply after it as two small packets; the milter's kernel holds
/// the second (Nagle) until our ACK, which Linux otherwise delays up to
/// 40 ms: every message with a change waited that long
/// (`bench/run --milter`, docs/performance.md).
struct QuickAck(tokio::net::TcpStream);

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(()))) && buf.filled().len() > before {
            // Not permanent in the kernel: set again after every read.
            let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A milter's socket, Unix or TCP (or a test's in-memory pipe).
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One milter connection; see the module documentation.
pub struct Client {
    address: Address,
    timeouts: Timeouts,
    /// `None` once closed.
    stream: Option<Box<dyn Stream>>,
    decoder: Decoder,
    /// Packets to write.
    out: Vec<u8>,
    negotiated: Negotiated,
    /// Stages the milter's protocol version does not have.
    not_in_version: ProtocolFlags,
    state: State,
    /// After SMFIR_SKIP: further events with this code are not sent
    /// (until one of another code).
    skip: Option<u8>,
    /// Where replies are read into (one per connection, not per reply).
    scratch: Vec<u8>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("negotiated", &self.negotiated)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connect to the milter (within `timeouts.connect`) and negotiate:
    /// protocol version 6, every action, every protocol flag.
    pub async fn open(address: &Address, timeouts: Timeouts) -> Result<Client, Error> {
        let connect_error = |source| Error::Connect {
            milter: address.clone(),
            source,
        };
        let timed_out = || {
            connect_error(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {}", Secs(timeouts.connect)),
            ))
        };
        let stream: Box<dyn Stream> = match address {
            Address::Unix(path) => Box::new(
                timeout(timeouts.connect, tokio::net::UnixStream::connect(path))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(connect_error)?,
            ),
            Address::Inet(addr) => {
                let tcp = timeout(timeouts.connect, tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(connect_error)?;
                // Small packets, each awaited: no Nagle delay.
                let _ = tcp.set_nodelay(true);
                Box::new(QuickAck(tcp))
            }
        };
        Client::negotiate(stream, address.clone(), timeouts).await
    }

    /// Negotiate over an open stream (tests give an in-memory one).
    pub(crate) async fn negotiate(
        stream: Box<dyn Stream>,
        address: Address,
        timeouts: Timeouts,
    ) -> Result<Client, Error> {
        let mut client = Client {
            address,
            timeouts,
            stream: Some(stream),
            decoder: Decoder::new(MAX_PACKET),
            out: Vec::new(),
            negotiated: Negotiated {
                version: protocol::VERSION,
                actions: Actions(0),
                protocol: ProtocolFlags(0),
                macros: Default::default(),
            },
            not_in_version: ProtocolFlags(0),
            state: State::Ready,
            skip: None,
            scratch: vec![0; READ_CHUNK],
        };
        Command::OptNeg {
            version: protocol::VERSION,
            actions: OFFERED_ACTIONS,
            protocol: OFFERED_PROTOCOL,
        }
        .encode(&mut client.out);
        let deadline = Instant::now() + timeouts.connect;
        client.flush(smfic::OPTNEG, deadline).await?;
        let reply = client.read_reply(smfic::OPTNEG, deadline).await?;
        let Reply::OptNeg {
            version,
            actions,
            protocol,
            macros,
        } = reply
        else {
            return Err(client.violation(Violation::Unexpected {
                reply: reply.code(),
                command: smfic::OPTNEG,
            }));
        };
        if version > protocol::VERSION {
            return Err(client.violation(Violation::Version(version)));
        }
        if !OFFERED_ACTIONS.contains(actions) {
            return Err(client.violation(Violation::Actions(actions.0)));
        }
        client.negotiated.version = version;
        client.negotiated.actions = actions;
        client.negotiated.protocol = ProtocolFlags(protocol.0 & OFFERED_PROTOCOL.0);
        // An older milter gets only the stages of its version (Postfix's
        // np_mask); the NR_* flags, SKIP and the rest came with version 6.
        if version < 3 {
            client.not_in_version = client.not_in_version | ProtocolFlags::NO_UNKNOWN;
        }
        if version < 4 {
            client.not_in_version = client.not_in_version | ProtocolFlags::NO_DATA;
        }
        for (stage, names) in macros {
            match client.negotiated.macros.get_mut(stage as usize) {
                Some(list) => {
                    let names = String::from_utf8_lossy(&names);
                    *list = Some(
                        names
                            .split([' ', ',', '\t'])
                            .filter(|n| !n.is_empty())
                            .map(str::to_string)
                            .collect(),
                    );
                }
                None => log::warn!(
                    "milter {}: ignoring unknown macro type {stage}",
                    client.address
                ),
            }
        }
        Ok(client)
    }

    /// The milter's address, as configured.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// What the negotiation settled.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// SMFIC_CONNECT: the SMTP client's name (`None` when it has none: the
    /// milter gets `[address]`, as Postfix sends it), address and port.
    pub async fn connect(
        &mut self,
        macros: &[(String, String)],
        hostname: Option<&str>,
        ip: IpAddr,
        port: u16,
    ) -> Result<Answer, Error> {
        if self.state != State::Ready {
            return self.standing();
        }
        let ip = ip.to_canonical();
        let hostname = match hostname {
            Some(name) => name.to_string(),
            None => format!("[{ip}]"),
        };
        let address = match ip {
            IpAddr::V4(v4) => ConnectAddress::Inet(v4, port),
            IpAddr::V6(v6) => ConnectAddress::Inet6(v6, port),
        };
        self.state = State::Envelope;
        let command = Command::Connect {
            hostname: hostname.into_bytes(),
            address,
        };
        let answer = self.stage(CONNECT, macros, command).await?;
        Ok(self.settle(Level::Connection, answer))
    }

    /// SMFIC_HELO: the name the client gave in HELO or EHLO.
    pub async fn helo(&mut self, macros: &[(String, String)], name: &str) -> Result<Answer, Error> {
        if !matches!(self.state, State::Envelope | State::AcceptedMessage) {
            return self.standing();
        }
        let command = Command::Helo(name.as_bytes().to_vec());
        let answer = self.stage(HELO, macros, command).await?;
        Ok(self.settle(Level::Connection, answer))
    }

    /// SMFIC_MAIL: `<sender>` then each ESMTP parameter (`SIZE=1000`).
    /// A transaction the milter had accepted and that was not aborted is
    /// aborted first.
    pub async fn mail<S: AsRef<str>>(
        &mut self,
        macros: &[(String, String)],
        args: &[S],
    ) -> Result<Answer, Error> {
        if self.state == State::AcceptedMessage {
            self.abort().await?;
        }
        self.envelope_stage(MAIL, macros, Command::Mail(strings(args)))
            .await
    }

    /// SMFIC_RCPT: `<recipient>` then each ESMTP parameter. A reject is for
    /// this recipient only.
    pub async fn rcpt<S: AsRef<str>>(
        &mut self,
        macros: &[(String, String)],
        args: &[S],
    ) -> Result<Answer, Error> {
        self.envelope_stage(RCPT, macros, Command::Rcpt(strings(args)))
            .await
    }

    /// SMFIC_DATA.
    pub async fn data(&mut self, macros: &[(String, String)]) -> Result<Answer, Error> {
        self.envelope_stage(DATA, macros, Command::Data).await
    }

    /// SMFIC_UNKNOWN: a command smtpd does not know, as the client sent
    /// it.
    pub async fn unknown(
        &mut self,
        macros: &[(String, String)],
        line: &str,
    ) -> Result<Answer, Error> {
        let command = Command::Unknown(line.as_bytes().to_vec());
        self.envelope_stage(UNKNOWN, macros, command).await
    }

    /// The message, in postern's stored form (LF line ends): each header
    /// field (SMFIC_HEADER: its name, its value with folded lines joined
    /// by LF, as Postfix and Sendmail send them, without the one space
    /// after the colon unless the milter negotiated
    /// `SMFIP_HDR_LEADSPC`), SMFIC_EOH, the body with CRLF line ends in
    /// chunks of at most 65535 bytes (SMFIC_BODY; stopped early by
    /// SMFIR_SKIP), SMFIC_EOB; then the modifications until the final
    /// answer. `eoh_macros` go before each header and the end of the
    /// headers, `eom_macros` before each body chunk and the end of the
    /// message, as Postfix sends them.
    ///
    /// `stored` is the message as the milter is to see it: Postfix hides
    /// its own `Received:` field (the first), and so should smtpd; see
    /// [`Modification`] for what the header indexes count.
    pub async fn message(
        &mut self,
        eoh_macros: &[(String, String)],
        eom_macros: &[(String, String)],
        stored: &[u8],
    ) -> Result<EndOfMessage, Error> {
        if self.state != State::Envelope {
            return Ok(EndOfMessage {
                answer: self.standing()?,
                modifications: Vec::new(),
            });
        }
        // A replaced body comes in one packet from rspamd: allow for a
        // body twice the message's size.
        self.decoder
            .set_limit(MAX_PACKET.saturating_add(stored.len().saturating_mul(2)));
        let sent = self.send_message(eoh_macros, eom_macros, stored).await;
        self.decoder.set_limit(MAX_PACKET);
        if self.state == State::AcceptedMessage {
            self.state = State::Envelope;
        }
        sent
    }

    /// SMFIC_ABORT: the transaction is over (RSET, a new HELO, the end of
    /// the message); the connection stays. Nothing is sent when the
    /// milter is done with the connection.
    pub async fn abort(&mut self) -> Result<(), Error> {
        match self.state {
            State::Envelope | State::AcceptedMessage => {
                self.skip = None;
                Command::Abort.encode(&mut self.out);
                let deadline = Instant::now() + self.timeouts.command;
                self.flush(smfic::ABORT, deadline).await?;
                self.state = State::Envelope;
                Ok(())
            }
            State::Failed => Err(Error::AfterError {
                milter: self.address.clone(),
            }),
            State::Ready | State::AcceptedConnection | State::Rejected(_) => Ok(()),
        }
    }

    /// SMFIC_QUIT, then close. A milter done with the connection was
    /// closed already.
    pub async fn quit(mut self) -> Result<(), Error> {
        if self.stream.is_none() {
            return Ok(());
        }
        Command::Quit.encode(&mut self.out);
        let deadline = Instant::now() + self.timeouts.command;
        self.flush(smfic::QUIT, deadline).await?;
        if let Some(mut stream) = self.stream.take() {
            let _ = timeout_at(deadline, stream.shutdown()).await;
        }
        Ok(())
    }

    /// MAIL, RCPT, DATA and unknown commands: only in a transaction the
    /// milter has not accepted.
    async fn envelope_stage(
        &mut self,
        event: Event,
        macros: &[(String, String)],
        command: Command,
    ) -> Result<Answer, Error> {
        if self.state != State::Envelope {
            return self.standing();
        }
        let answer = self.stage(event, macros, command).await?;
        Ok(self.settle(Level::Message, answer))
    }

    /// The answer of a stage that is not sent in this state.
    fn standing(&self) -> Result<Answer, Error> {
        match &self.state {
            State::Failed => Err(Error::AfterError {
                milter: self.address.clone(),
            }),
            State::Rejected(answer) => Ok(answer.clone()),
            // Before CONNECT (the smtpd called a stage out of order) the
            // milter has nothing to say.
            State::Ready | State::Envelope | State::AcceptedMessage | State::AcceptedConnection => {
                Ok(Answer::Continue)
            }
        }
    }

    /// The state an answer leaves, and the answer smtpd gets.
    fn settle(&mut self, level: Level, answer: Answer) -> Answer {
        match (&answer, level) {
            (Answer::Continue, _) => {}
            (Answer::Shutdown, _) => self.close(State::Rejected(Answer::Shutdown)),
            (Answer::Accept, Level::Connection) => self.close(State::AcceptedConnection),
            (Answer::Reject | Answer::TempFail | Answer::ReplyCode(_), Level::Connection) => {
                self.close(State::Rejected(answer.clone()))
            }
            (Answer::Discard, Level::Connection) => {
                log::warn!(
                    "milter {}: DISCARD action is not allowed for connect or helo",
                    self.address
                );
                return Answer::Continue;
            }
            (Answer::Accept | Answer::Discard, Level::Message) => {
                self.state = State::AcceptedMessage;
            }
            (Answer::Reject | Answer::TempFail | Answer::ReplyCode(_), Level::Message) => {}
        }
        answer
    }

    /// Close the socket and enter `state`.
    fn close(&mut self, state: State) {
        self.stream = None;
        self.state = state;
    }

    /// Send the message; see [`Client::message`].
    async fn send_message(
        &mut self,
        eoh_macros: &[(String, String)],
        eom_macros: &[(String, String)],
        stored: &[u8],
    ) -> Result<EndOfMessage, Error> {
        let done = |answer| EndOfMessage {
            answer,
            modifications: Vec::new(),
        };
        let protocol = self.negotiated.protocol;
        let (fields, body) = message::split(stored);
        if !protocol.contains(ProtocolFlags::NO_HEADERS) {
            let leading_space = protocol.contains(ProtocolFlags::HDR_LEADSPC);
            for field in fields {
                let command = Command::Header {
                    name: field.name.to_vec(),
                    value: field.value(leading_space),
                };
                let answer = self.stage(HEADER, eoh_macros, command).await?;
                if answer != Answer::Continue {
                    return Ok(done(self.settle(Level::Message, answer)));
                }
            }
        }
        if !protocol.contains(ProtocolFlags::NO_EOH) {
            let answer = self.stage(EOH, eoh_macros, Command::EndOfHeaders).await?;
            if answer != Answer::Continue {
                return Ok(done(self.settle(Level::Message, answer)));
            }
        }
        if !protocol.contains(ProtocolFlags::NO_BODY) {
            for chunk in message::body_chunks(body).chunks(protocol::CHUNK_SIZE) {
                let answer = self
                    .stage(BODY, eom_macros, Command::Body(chunk.to_vec()))
                    .await?;
                if answer != Answer::Continue {
                    return Ok(done(self.settle(Level::Message, answer)));
                }
                if self.skip == Some(smfic::BODY) {
                    break;
                }
            }
        }
        let mut modifications = Vec::new();
        let answer = self
            .event(
                EOB,
                eom_macros,
                Command::EndOfBody,
                Some(&mut modifications),
            )
            .await?;
        Ok(EndOfMessage {
            answer: self.settle(Level::Message, answer),
            modifications,
        })
    }

    /// Send a stage's event and wait for its answer; modifications are
    /// refused.
    async fn stage(
        &mut self,
        event: Event,
        macros: &[(String, String)],
        command: Command,
    ) -> Result<Answer, Error> {
        self.event(event, macros, command, None).await
    }

    /// Send the macros and the event (unless skipped) and read replies
    /// until the answer; at the end of the message modifications go to
    /// `modifications`.
    async fn event(
        &mut self,
        event: Event,
        macros: &[(String, String)],
        command: Command,
        mut modifications: Option<&mut Vec<Modification>>,
    ) -> Result<Answer, Error> {
        if self.stream.is_none() {
            return self.standing();
        }
        let protocol = self.negotiated.protocol;
        if self.not_in_version.0 & event.no_send.0 != 0 {
            return Ok(Answer::Continue);
        }
        match self.skip {
            Some(code) if code == event.code => return Ok(Answer::Continue),
            Some(_) => self.skip = None,
            None => {}
        }
        let wait = self.wait_for(event.code);
        let deadline = Instant::now() + wait;
        let pairs = self.macros_for(event.macro_stage, macros);
        if !pairs.is_empty() {
            Command::Macro {
                stage: event.code,
                pairs,
            }
            .encode(&mut self.out);
        }
        if event.no_send.0 != 0 && protocol.contains(event.no_send) {
            self.flush(smfic::MACRO, deadline).await?;
            return Ok(Answer::Continue);
        }
        command.encode(&mut self.out);
        self.flush(event.code, deadline).await?;
        if event.no_reply.0 != 0 && protocol.contains(event.no_reply) {
            return Ok(Answer::Continue);
        }
        loop {
            let deadline = Instant::now() + wait;
            let reply = self.read_reply(event.code, deadline).await?;
            let unexpected = Violation::Unexpected {
                reply: reply.code(),
                command: event.code,
            };
            let answer = match reply {
                Reply::Progress => continue,
                Reply::Continue => Answer::Continue,
                Reply::Accept => Answer::Accept,
                Reply::Discard => Answer::Discard,
                Reply::Reject => Answer::Reject,
                Reply::TempFail => Answer::TempFail,
                Reply::Shutdown | Reply::ConnFail => Answer::Shutdown,
                Reply::ReplyCode(text) => match reply::reply_code(&text) {
                    Ok(text) => Answer::ReplyCode(text),
                    Err(v) => return Err(self.violation(v)),
                },
                Reply::Skip if event.code == smfic::BODY => {
                    self.skip = Some(smfic::BODY);
                    Answer::Continue
                }
                Reply::OptNeg { .. } | Reply::Skip => return Err(self.violation(unexpected)),
                modification => {
                    let Some(list) = modifications.as_deref_mut() else {
                        return Err(self.violation(unexpected));
                    };
                    match reply::modification(&self.negotiated, modification) {
                        Ok(m) => reply::add(list, m),
                        Err(v) => return Err(self.violation(v)),
                    }
                    continue;
                }
            };
            return Ok(answer);
        }
    }

    /// The macros to send for a stage: those the milter asked for, if it
    /// said (names compared without their braces: `{j}` is `j`).
    fn macros_for(
        &self,
        stage: Option<u32>,
        macros: &[(String, String)],
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let bare = |name: &str| {
            name.strip_prefix('{')
                .and_then(|n| n.strip_suffix('}'))
                .unwrap_or(name)
                .to_string()
        };
        let wanted = stage.and_then(|s| self.negotiated.macros.get(s as usize)?.as_ref());
        macros
            .iter()
            .filter(|(name, _)| {
                wanted.is_none_or(|list| list.iter().any(|w| bare(w) == bare(name)))
            })
            .map(|(name, value)| (name.as_bytes().to_vec(), value.as_bytes().to_vec()))
            .collect()
    }

    /// Write the queued packets by `deadline`.
    async fn flush(&mut self, command: u8, deadline: Instant) -> Result<(), Error> {
        let out = std::mem::take(&mut self.out);
        let Some(stream) = self.stream.as_mut() else {
            return Err(Error::AfterError {
                milter: self.address.clone(),
            });
        };
        let doing = Doing::Write(command);
        let written = timeout_at(deadline, async {
            stream.write_all(&out).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(self.io_error(doing, source)),
            Err(_) => Err(self.timeout(doing)),
        }
    }

    /// Read one reply to `command` by `deadline`.
    async fn read_reply(&mut self, command: u8, deadline: Instant) -> Result<Reply, Error> {
        let mut buf = std::mem::take(&mut self.scratch);
        let reply = self.read_into(command, deadline, &mut buf).await;
        self.scratch = buf;
        reply
    }

    async fn read_into(
        &mut self,
        command: u8,
        deadline: Instant,
        buf: &mut [u8],
    ) -> Result<Reply, Error> {
        loop {
            match self.decoder.pop() {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(error) => return Err(self.violation(Violation::Decode { command, error })),
            }
            let doing = Doing::Read {
                command,
                started: self.decoder.buffered() > 0,
            };
            let Some(stream) = self.stream.as_mut() else {
                return Err(Error::AfterError {
                    milter: self.address.clone(),
                });
            };
            match timeout_at(deadline, stream.read(buf)).await {
                Ok(Ok(0)) => {
                    return Err(self.fail(Error::Closed {
                        milter: self.address.clone(),
                        doing,
                    }));
                }
                Ok(Ok(n)) => self.decoder.push(&buf[..n]),
                Ok(Err(source)) => return Err(self.io_error(doing, source)),
                Err(_) => return Err(self.timeout(doing)),
            }
        }
    }

    fn io_error(&mut self, doing: Doing, source: io::Error) -> Error {
        self.fail(Error::Io {
            milter: self.address.clone(),
            doing,
            source,
        })
    }

    /// How long a write or reply of `command` may take.
    fn wait_for(&self, command: u8) -> Duration {
        match command {
            smfic::OPTNEG => self.timeouts.connect,
            smfic::HEADER | smfic::EOH | smfic::BODY | smfic::BODYEOB => self.timeouts.content,
            _ => self.timeouts.command,
        }
    }

    fn timeout(&mut self, doing: Doing) -> Error {
        let (Doing::Write(command) | Doing::Read { command, .. }) = doing;
        self.fail(Error::Timeout {
            milter: self.address.clone(),
            doing,
            after: self.wait_for(command),
        })
    }

    fn violation(&mut self, violation: Violation) -> Error {
        self.fail(Error::Protocol {
            milter: self.address.clone(),
            violation,
        })
    }

    /// After an error: close the socket (the stream is out of step) and
    /// refuse every later stage.
    fn fail(&mut self, error: Error) -> Error {
        self.close(State::Failed);
        error
    }
}

fn strings<S: AsRef<str>>(args: &[S]) -> Vec<Vec<u8>> {
    args.iter()
        .map(|a| a.as_ref().as_bytes().to_vec())
        .collect()
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
