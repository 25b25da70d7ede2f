//! One SMTP session: the state machine over the sans-IO parsers.
//!
//! The session's state is in three levels, each a type of its own, so
//! that what a command may touch and what resets it are visible:
//!
//! * the connection ([`connection`]: [`Client`], [`Io`], [`Counters`],
//!   the configuration taken at the connect, and whether the client
//!   restrictions refused the connection), for the whole connection;
//! * the greeting ([`greeting::Greeting`]): what EHLO or HELO said, none
//!   until then; the next EHLO/HELO replaces it (and STARTTLS, issue 18,
//!   will clear it: EHLO is required again);
//! * the transaction ([`transaction::Transaction`]): from MAIL to the end
//!   of DATA or BDAT LAST, or RSET, or the next EHLO/HELO.
//!
//! [`verbs`] dispatches a command line to one short handler per command;
//! [`transaction`] has MAIL and RCPT, [`data_phase`] DATA (and the intake
//! of a message's content, which BDAT shares), [`bdat`] BDAT,
//! [`restrict`] the seam to the access policy.
//!
//! Replies are buffered and flushed only when the session must wait for
//! input (RFC 2920), so a pipelined group gets its replies in order in one
//! write. Each command has a deadline (`smtpd.timeout`) that covers every
//! read until the whole line is there, and the whole session has one
//! (`smtpd.session_time_limit`); both are shorter in stress mode, which a
//! session notices while it waits ([`super::limits`]). A session waiting
//! for a command outside a transaction may be closed to make room for a
//! new client.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Shared;
use super::limits::{Limits, Ticket};
use super::line::{Framed, LineEnd, next_line, skip_long_line};
use crate::aliases::LiveTable;
use crate::config::{BareNewline, Config, TlsInbound};
use crate::policy::{Policy, When};
use crate::reply::Reply;
use connection::{Client, Counters, Io, Read};
use greeting::Greeting;
use transaction::Transaction;

mod auth;
mod bdat;
mod connection;
mod data_phase;
mod greeting;
mod milter;
mod restrict;
mod transaction;
mod verbs;
mod verify;

/// Who is on the other end.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Peer {
    /// A network client, on a listener of this service.
    Tcp(IpAddr, Service),
    /// A local submission on `submit.sock` by this uid.
    Local { uid: u32 },
}

/// Which listener a session came in on: what it offers and which
/// restriction lists apply (Postfix's master.cf services).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    /// `smtpd.listen` (port 25): STARTTLS per `tls.inbound`, AUTH only
    /// with `sasl.smtpd_listeners`.
    Smtp,
    /// `submission.listen` (port 587): STARTTLS per `submission.tls`,
    /// AUTH required before MAIL.
    Submission,
    /// `submission.implicit_tls_listen` (port 465): TLS from the first
    /// byte, AUTH required before MAIL.
    Submissions,
    /// `submit.sock`: the `sendmail` command.
    Local,
}

impl Service {
    /// The socket name a listener of this service is handed by.
    pub(crate) fn from_socket(name: &str) -> Option<Service> {
        match name {
            "smtp" => Some(Service::Smtp),
            "submission" => Some(Service::Submission),
            "submissions" => Some(Service::Submissions),
            "submit" => Some(Service::Local),
            _ => None,
        }
    }

    /// Its name in the metrics' `listener` label: the socket's.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Submissions => "submissions",
            Service::Local => "submit",
        }
    }

    /// A listener of `[submission]`.
    pub(crate) fn is_submission(self) -> bool {
        matches!(self, Service::Submission | Service::Submissions)
    }
}

/// Serve one connection to the end.
pub(crate) async fn serve<S>(
    stream: S,
    peer: Peer,
    shared: Arc<Shared>,
    ticket: Ticket,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // This session's configuration, whatever a reload does meanwhile.
    let (config, aliases, policy) = shared.current();
    let client = Client::look_up(peer, &policy).await;
    let stress = shared.conns.stress();
    let service = match peer {
        Peer::Tcp(_, service) => service,
        Peer::Local { .. } => Service::Local,
    };
    let mut s = Session {
        io: Io::new(stream, ticket, stress, stop),
        client,
        service,
        auth: None,
        counters: Counters::new(),
        config,
        aliases,
        policy,
        shared,
        access_denied: false,
        greeting: None,
        tx: None,
        milters: None,
    };
    log::info!(
        client:% = s.client.field();
        "connect from {}",
        s.client()
    );
    let end = s.run().await;
    crate::metrics::registry::sink::inc(
        crate::metrics::registry::SMTPD_CONNECTIONS,
        &[("listener", s.service.name()), ("outcome", end.name())],
    );
    s.milters_quit().await;
    s.log_end(end);
    log::info!(
        client:% = s.client.field();
        "disconnect from {}{}",
        s.client(),
        s.counters.stats_text()
    );
}

enum End {
    Quit,
    /// We closed it (sync error, forbidden command, shutdown).
    Closed,
    Lost,
    Timeout,
    TooManyErrors,
    /// `smtpd.session_time_limit`.
    SessionLimit,
    /// Closed while idle to make room for a new client.
    Evicted,
}

impl End {
    /// The `outcome` label of `postern_smtpd_connections_total`.
    fn name(&self) -> &'static str {
        match self {
            End::Quit => "quit",
            End::Closed => "closed",
            End::Lost => "lost",
            End::Timeout => "timeout",
            End::TooManyErrors => "too_many_errors",
            End::SessionLimit => "session_limit",
            End::Evicted => "evicted",
        }
    }

    /// Postfix's words for a session that ended abnormally.
    fn reason(&self) -> Option<&'static str> {
        match self {
            End::Quit | End::Closed => None,
            End::Lost => Some("lost connection"),
            End::Timeout => Some("timeout"),
            End::TooManyErrors => Some("too many errors"),
            End::SessionLimit => Some("session time limit exceeded"),
            End::Evicted => Some("idle session closed"),
        }
    }
}

struct Session<S> {
    // The connection level: from the connect to the disconnect.
    io: Io<S>,
    client: Client,
    /// The listener the client came in on.
    service: Service,
    /// The login, once AUTH succeeded (until STARTTLS, which cannot
    /// follow it, or the end).
    auth: Option<auth::Authenticated>,
    counters: Counters,
    config: Arc<Config>,
    aliases: Arc<LiveTable>,
    policy: Arc<Policy>,
    shared: Arc<Shared>,
    /// The client restrictions refused the connection at its start
    /// (`restrictions.delay_reject = false`): every command but QUIT gets
    /// `503 5.7.0 Error: access denied for …`.
    access_denied: bool,
    /// The greeting level: what EHLO or HELO said.
    greeting: Option<Greeting>,
    /// The transaction level: MAIL to the end of DATA.
    tx: Option<Transaction>,
    /// The milters of this session, once connected (`[milters]`).
    milters: Option<crate::smtpd::milters::Milters>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn cfg(&self) -> &Config {
        &self.config
    }

    /// The limits in effect now (shorter in stress mode).
    fn limits(&self) -> Limits {
        Limits::new(&self.config.smtpd, self.io.stressed())
    }

    /// The earlier of `deadline` and the session's.
    fn capped(&self, deadline: Instant) -> Instant {
        self.counters
            .session_deadline(&self.limits())
            .map_or(deadline, |end| end.min(deadline))
    }

    /// The session's time is up.
    fn session_over(&self) -> bool {
        self.counters
            .session_deadline(&self.limits())
            .is_some_and(|end| Instant::now() >= end)
    }

    fn hostname(&self) -> String {
        self.cfg().server.hostname.clone()
    }

    fn client(&self) -> String {
        self.client.text()
    }

    /// The transaction's queue ID, once DATA has given it one.
    fn queue_id(&self) -> Option<&str> {
        self.tx
            .as_ref()
            .and_then(|t| t.id.as_ref())
            .map(|i| i.as_str())
    }

    fn qid_prefix(&self) -> String {
        match self.queue_id() {
            Some(id) => format!("{id}: "),
            None => "NOQUEUE: ".into(),
        }
    }

    /// The HELO or EHLO name, once given.
    fn helo(&self) -> Option<&str> {
        self.greeting.as_ref().map(|g| g.name.as_str())
    }

    fn proto(&self) -> &'static str {
        Greeting::proto(self.greeting.as_ref())
    }

    /// The protocol as the Received header says it (RFC 3848): `ESMTPS`
    /// inside TLS, `ESMTPA` after AUTH, `ESMTPSA` both.
    fn received_proto(&self) -> &'static str {
        match (self.proto(), self.io.is_tls(), self.auth.is_some()) {
            ("ESMTP", true, true) => "ESMTPSA",
            ("ESMTP", true, false) => "ESMTPS",
            ("ESMTP", false, true) => "ESMTPA",
            (proto, _, _) => proto,
        }
    }

    /// The STARTTLS level of this session's listener: `tls.inbound` on
    /// `smtpd.listen`, `submission.tls` on `submission.listen`; none on
    /// the implicit-TLS listener (TLS from the start) and `submit.sock`.
    fn tls_level(&self) -> TlsInbound {
        match self.service {
            Service::Smtp => self.cfg().tls.inbound,
            Service::Submission => self.cfg().submission.tls,
            Service::Submissions | Service::Local => TlsInbound::None,
        }
    }

    /// The certificates when this session may offer STARTTLS: a TCP
    /// client whose listener's level is not `none`, certificates loaded.
    fn tls_offered(&self) -> Option<std::sync::Arc<crate::certs::Live>> {
        if self.tls_level() == TlsInbound::None {
            return None;
        }
        self.shared.tls()
    }

    /// Whether STARTTLS is required and not yet done (level `encrypt`).
    fn tls_required(&self) -> bool {
        self.tls_level() == TlsInbound::Encrypt && !self.io.is_tls()
    }

    /// The login, once the client authenticated.
    fn sasl_user(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.login.as_str())
    }

    fn reply(&mut self, r: &Reply) {
        self.io.reply(r);
    }

    async fn flush(&mut self) -> bool {
        let timeout = self.limits().timeout;
        self.io.flush(timeout).await
    }

    async fn read_more(&mut self, deadline: Instant, command: bool) -> Read {
        self.io.read_more(deadline, command).await
    }

    fn count(&mut self, verb: &'static str, ok: bool) {
        self.counters.count(verb, ok);
    }

    /// Reply with an error and count it; true when the hard limit is hit.
    fn error(&mut self, r: &Reply) -> bool {
        self.reply(r);
        self.counters.errors += 1;
        self.counters.errors >= self.limits().hard_error_limit
    }

    /// Postfix's line for a session that ended abnormally
    /// (`lost connection after DATA from host[ip]`).
    fn log_end(&self, end: End) {
        let Some(reason) = end.reason() else {
            return;
        };
        let why = match end {
            End::Evicted => ": too many connections",
            _ => "",
        };
        log::info!(
            queue_id = self.queue_id(),
            client:% = self.client.field();
            "{}{reason} after {} from {}{why}",
            self.qid_prefix(),
            self.counters.last_cmd,
            self.client()
        );
    }

    async fn run(&mut self) -> End {
        if self.service == Service::Submissions
            && let Err(end) = self.implicit_tls().await
        {
            return end;
        }
        let banner = Reply::plain(220, self.cfg().smtpd.banner.clone());
        match self.restrict(When::Connect, None).await {
            // Postfix: the reject replaces the greeting.
            Some(r) => {
                self.reply(&r);
                self.counters.errors += 1;
                self.access_denied = true;
            }
            None => match self.milters_connect().await {
                // A milter's reject replaces the greeting as well; its
                // tempfail ends the session.
                Some(r) if r.code == 421 => {
                    self.reply(&r);
                    self.flush().await;
                    return End::Closed;
                }
                Some(r) => {
                    self.reply(&r);
                    self.counters.errors += 1;
                    self.access_denied = true;
                }
                None => self.reply(&banner),
            },
        }
        loop {
            let (line, end) = match self.next_command().await {
                Ok(got) => got,
                Err(end) => return end,
            };
            if end == LineEnd::BareLf && self.cfg().smtpd.forbid_bare_newline == BareNewline::Reject
            {
                return self.bare_lf_command().await;
            }
            if let Some(end) = self.command(&line).await {
                return end;
            }
        }
    }

    /// A command line ended by a bare LF, with `smtpd.forbid_bare_newline
    /// = reject`: refused, logged, and the connection closed.
    async fn bare_lf_command(&mut self) -> End {
        let r = Reply::bare_lf(&self.hostname());
        log::info!(
            queue_id = self.queue_id(),
            client:% = self.client.field(),
            status = "reject";
            "{}reject: {} from {}: {r}; proto={} helo=<{}>",
            self.qid_prefix(),
            "CONNECT",
            self.client(),
            self.proto(),
            self.helo().unwrap_or("")
        );
        self.close(&r, End::Closed).await
    }

    /// Wait for the next command line, with the command deadline
    /// (`smtpd.timeout`) and the session's, both shortened when stress
    /// mode starts meanwhile. A line longer than
    /// `smtpd.line_length_limit` is skipped to its end and answered once,
    /// then (`500 5.5.2 Error: command too long`); a client that never
    /// ends it gets only the timeout.
    async fn next_command(&mut self) -> Result<(Vec<u8>, LineEnd), End> {
        if self.session_over() {
            return Err(self.end_session().await);
        }
        let mut waiting_since = Instant::now();
        let mut skipping = false;
        self.io.ticket.idle(self.tx.is_none());
        loop {
            if skipping {
                match skip_long_line(&self.io.inbuf) {
                    Some(n) => {
                        self.io.inbuf.drain(..n);
                        skipping = false;
                        self.too_long().await?;
                        waiting_since = Instant::now();
                    }
                    None => self.io.inbuf.clear(),
                }
            }
            if !skipping {
                match next_line(&self.io.inbuf, self.cfg().smtpd.line_length_limit) {
                    Framed::Line {
                        line,
                        end,
                        consumed,
                    } => {
                        let l = line.to_vec();
                        self.io.inbuf.drain(..consumed);
                        self.io.ticket.idle(false);
                        return Ok((l, end));
                    }
                    Framed::TooLong { consumed: Some(n) } => {
                        self.io.inbuf.drain(..n);
                        self.too_long().await?;
                        waiting_since = Instant::now();
                        continue;
                    }
                    Framed::TooLong { consumed: None } => {
                        self.io.inbuf.clear();
                        skipping = true;
                    }
                    Framed::Incomplete => {}
                }
            }
            if !self.flush().await {
                return Err(End::Lost);
            }
            let deadline = self.capped(waiting_since + self.limits().timeout);
            match self.read_more(deadline, true).await {
                Read::Data | Read::Again => {}
                Read::Eof | Read::Error => return Err(End::Lost),
                Read::Timeout if self.session_over() => return Err(self.end_session().await),
                Read::Timeout => {
                    let r = Reply::timeout(&self.hostname());
                    return Err(self.close(&r, End::Timeout).await);
                }
                Read::Stop => {
                    let r = Reply::shutting_down(&self.hostname());
                    return Err(self.close(&r, End::Closed).await);
                }
                Read::Evicted => {
                    let r = Reply::idle_session_closed(&self.hostname());
                    return Err(self.close(&r, End::Evicted).await);
                }
            }
        }
    }

    /// An over-long command line has ended: its one reply, counted as an
    /// error (`Err` when that was one too many).
    async fn too_long(&mut self) -> Result<(), End> {
        let r = Reply::command_too_long(&self.hostname());
        self.count("unknown", false);
        if self.error(&r) {
            return Err(self.too_many_errors().await);
        }
        Ok(())
    }

    /// `smtpd.session_time_limit` is reached: say so and end.
    async fn end_session(&mut self) -> End {
        let r = Reply::session_time_limit(&self.hostname());
        self.close(&r, End::SessionLimit).await
    }

    async fn too_many_errors(&mut self) -> End {
        let r = Reply::too_many_errors(&self.hostname());
        self.close(&r, End::TooManyErrors).await
    }

    /// The last reply, sent at once (whether it arrives or not), and how
    /// the session ends.
    async fn close(&mut self, r: &Reply, end: End) -> End {
        self.reply(r);
        self.flush().await;
        end
    }
}
