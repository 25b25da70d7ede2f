//! One SMTP session: the state machine over the sans-IO parsers.
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

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Shared;
use super::command::{Command, MailParams, parse_command};
use super::limits::{Limits, Ticket};
use super::line::{Framed, LineEnd, next_line, skip_long_line};
use crate::config::BareNewline;
use crate::policy::{NameStatus, Policy, When};
use crate::queue::{QueueId, Recipient};
use crate::reply::Reply;

/// Room made in the input buffer for a read during DATA…
const READ_CHUNK: usize = 64 * 1024;
/// …and while waiting for a command: an idle session stays small.
const COMMAND_CHUNK: usize = 4 * 1024;

mod data_phase;
mod restrict;
mod transaction;

/// Who is on the other end.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Peer {
    /// A network client.
    Tcp(IpAddr),
    /// A local submission on `submit.sock` by this uid.
    Local { uid: u32 },
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
    let (rd, wr) = tokio::io::split(stream);
    // This session's configuration, whatever a reload does meanwhile.
    let (config, aliases, policy) = shared.current();
    let (name, name_status, ip, uid) = match peer {
        // Before the greeting, as Postfix: the name for the log, the
        // Received header and the restrictions, looked up once.
        Peer::Tcp(ip) => {
            let found = policy.client_name(ip).await;
            (found.name, found.status, ip, None)
        }
        Peer::Local { uid } => (
            "localhost".into(),
            NameStatus::Verified,
            IpAddr::from([127, 0, 0, 1]),
            Some(uid),
        ),
    };
    let stress = shared.conns.stress();
    let mut s = Session {
        rd,
        wr,
        inbuf: Vec::with_capacity(4096),
        out: Vec::new(),
        name,
        name_status,
        ip,
        uid,
        helo: None,
        esmtp: false,
        tx: None,
        errors: 0,
        junk: 0,
        started: Instant::now(),
        stats: Vec::new(),
        last_cmd: "CONNECT",
        config,
        aliases,
        policy,
        access_denied: false,
        shared,
        ticket,
        stress,
        stop,
    };
    log::info!(
        client:% = crate::logging::client_field(s.uid, s.client());
        "connect from {}",
        s.client()
    );
    let end = s.run().await;
    // Postfix's lines for a session that ended abnormally.
    let reason = match end {
        End::Quit | End::Closed => None,
        End::Lost => Some("lost connection"),
        End::Timeout => Some("timeout"),
        End::TooManyErrors => Some("too many errors"),
        End::SessionLimit => Some("session time limit exceeded"),
        End::Evicted => Some("idle session closed"),
    };
    if let Some(reason) = reason {
        let why = match end {
            End::Evicted => ": too many connections",
            _ => "",
        };
        log::info!(
            queue_id = s.tx.as_ref().and_then(|t| t.id.as_ref()).map(|i| i.as_str()),
            client:% = crate::logging::client_field(s.uid, s.client());
            "{}{reason} after {} from {}{why}",
            s.qid_prefix(),
            s.last_cmd,
            s.client()
        );
    }
    log::info!(
        client:% = crate::logging::client_field(s.uid, s.client());
        "disconnect from {}{}",
        s.client(),
        s.stats_text()
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

struct Transaction {
    sender: String,
    params: MailParams,
    /// Each recipient once (duplicates are dropped).
    rcpts: Vec<Recipient>,
    /// RCPT commands accepted, duplicates included
    /// (`smtpd.recipient_limit`).
    rcpt_count: usize,
    id: Option<QueueId>,
    /// An access table said HOLD (the reason as logged).
    hold: Option<String>,
    /// An access table said DISCARD: accept, then drop the message.
    discard: Option<String>,
    /// Headers an access table said to PREPEND.
    prepend: Vec<String>,
}

struct Session<R, W> {
    rd: R,
    wr: W,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    name: String,
    /// How far `name` was verified (for reject_unknown_client_hostname).
    name_status: NameStatus,
    ip: IpAddr,
    /// A local submission's uid (SO_PEERCRED).
    uid: Option<u32>,
    helo: Option<String>,
    esmtp: bool,
    tx: Option<Transaction>,
    errors: u32,
    /// Junk commands (`smtpd.junk_command_limit`).
    junk: u32,
    /// For `smtpd.session_time_limit`.
    started: Instant,
    /// (verb, ok, total) for the disconnect line.
    stats: Vec<(&'static str, u32, u32)>,
    last_cmd: &'static str,
    config: Arc<crate::config::Config>,
    aliases: Arc<crate::aliases::LiveTable>,
    policy: Arc<Policy>,
    /// The client restrictions refused the connection at its start
    /// (`restrictions.delay_reject = false`): every command but QUIT gets
    /// `503 5.7.0 Error: access denied for …`.
    access_denied: bool,
    shared: Arc<Shared>,
    /// This session's place in the connection count.
    ticket: Ticket,
    /// Whether smtpd is in stress mode.
    stress: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
}

enum Read {
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

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Session<R, W> {
    fn cfg(&self) -> &crate::config::Config {
        &self.config
    }

    /// The limits in effect now (shorter in stress mode).
    fn limits(&self) -> Limits {
        Limits::new(&self.config.smtpd, *self.stress.borrow())
    }

    /// When the session must end, if it has a time limit.
    fn session_deadline(&self) -> Option<Instant> {
        self.limits().session_time_limit.map(|l| self.started + l)
    }

    /// The earlier of `deadline` and the session's.
    fn capped(&self, deadline: Instant) -> Instant {
        self.session_deadline()
            .map_or(deadline, |end| end.min(deadline))
    }

    /// The session's time is up.
    fn session_over(&self) -> bool {
        self.session_deadline()
            .is_some_and(|end| Instant::now() >= end)
    }

    fn hostname(&self) -> String {
        self.cfg().server.hostname.clone()
    }

    fn client(&self) -> String {
        format!("{}[{}]", self.name, self.ip)
    }

    fn qid_prefix(&self) -> String {
        match self.tx.as_ref().and_then(|t| t.id.as_ref()) {
            Some(id) => format!("{id}: "),
            None => "NOQUEUE: ".into(),
        }
    }

    fn proto(&self) -> &'static str {
        if self.esmtp { "ESMTP" } else { "SMTP" }
    }

    fn reply(&mut self, r: &Reply) {
        self.out.extend_from_slice(&r.to_wire());
    }

    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let out = std::mem::take(&mut self.out);
        let t = self.limits().timeout;
        matches!(
            tokio::time::timeout(t, async {
                self.wr.write_all(&out).await?;
                self.wr.flush().await
            })
            .await,
            Ok(Ok(()))
        )
    }

    /// Read more input, until `deadline`. `command`: waiting for a command
    /// line, when a shutdown or a new client may end the wait.
    async fn read_more(&mut self, deadline: Instant, command: bool) -> Read {
        // Read straight into the spare capacity of the input buffer (no
        // zeroed chunk per read).
        self.inbuf
            .reserve(if command { COMMAND_CHUNK } else { READ_CHUNK });
        let mut stop = self.stop.clone();
        let read = tokio::time::timeout_at(deadline, self.rd.read_buf(&mut self.inbuf));
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

    fn count(&mut self, verb: &'static str, ok: bool) {
        match self.stats.iter_mut().find(|(v, _, _)| *v == verb) {
            Some(e) => {
                e.1 += ok as u32;
                e.2 += 1;
            }
            None => self.stats.push((verb, ok as u32, 1)),
        }
    }

    fn stats_text(&self) -> String {
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

    /// Reply with an error and count it; true when the hard limit is hit.
    fn error(&mut self, r: &Reply) -> bool {
        self.reply(r);
        self.errors += 1;
        self.errors >= self.limits().hard_error_limit
    }

    async fn run(&mut self) -> End {
        let banner = Reply::plain(220, self.cfg().smtpd.banner.clone());
        match self.restrict(When::Connect, None).await {
            // Postfix: the reject replaces the greeting.
            Some(r) => {
                self.reply(&r);
                self.errors += 1;
                self.access_denied = true;
            }
            None => self.reply(&banner),
        }
        loop {
            let (line, end) = match self.next_command().await {
                Ok(got) => got,
                Err(end) => return end,
            };
            if end == LineEnd::BareLf && self.cfg().smtpd.forbid_bare_newline == BareNewline::Reject
            {
                let r = Reply::bare_lf(&self.hostname());
                log::info!(
                    queue_id = self.tx.as_ref().and_then(|t| t.id.as_ref()).map(|i| i.as_str()),
                    client:% = crate::logging::client_field(self.uid, self.client()),
                    status = "reject";
                    "{}reject: {} from {}: {r}; proto={} helo=<{}>",
                    self.qid_prefix(),
                    "CONNECT",
                    self.client(),
                    self.proto(),
                    self.helo.as_deref().unwrap_or("")
                );
                self.reply(&r);
                self.flush().await;
                return End::Closed;
            }
            if let Some(end) = self.command(&line).await {
                return end;
            }
        }
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
        self.ticket.idle(self.tx.is_none());
        loop {
            if skipping {
                match skip_long_line(&self.inbuf) {
                    Some(n) => {
                        self.inbuf.drain(..n);
                        skipping = false;
                        self.too_long().await?;
                        waiting_since = Instant::now();
                    }
                    None => self.inbuf.clear(),
                }
            }
            if !skipping {
                match next_line(&self.inbuf, self.cfg().smtpd.line_length_limit) {
                    Framed::Line {
                        line,
                        end,
                        consumed,
                    } => {
                        let l = line.to_vec();
                        self.inbuf.drain(..consumed);
                        self.ticket.idle(false);
                        return Ok((l, end));
                    }
                    Framed::TooLong { consumed: Some(n) } => {
                        self.inbuf.drain(..n);
                        self.too_long().await?;
                        waiting_since = Instant::now();
                        continue;
                    }
                    Framed::TooLong { consumed: None } => {
                        self.inbuf.clear();
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
                    self.reply(&r);
                    self.flush().await;
                    return Err(End::Timeout);
                }
                Read::Stop => {
                    let r = Reply::shutting_down(&self.hostname());
                    self.reply(&r);
                    self.flush().await;
                    return Err(End::Closed);
                }
                Read::Evicted => {
                    let r = Reply::idle_session_closed(&self.hostname());
                    self.reply(&r);
                    self.flush().await;
                    return Err(End::Evicted);
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
        self.reply(&r);
        self.flush().await;
        End::SessionLimit
    }

    async fn too_many_errors(&mut self) -> End {
        let r = Reply::too_many_errors(&self.hostname());
        self.reply(&r);
        self.flush().await;
        End::TooManyErrors
    }

    /// RFC 2920 and Postfix's smtpd_forbid_unauth_pipelining: a client that
    /// did not say EHLO may not pipeline at all, and nobody may send ahead
    /// of the reply to a command that ends a group. Remote clients only,
    /// as Postfix's documentation says: a local submitter on submit.sock
    /// (`sendmail -bs` fed by a script, which writes the whole session at
    /// once) is no spambot racing the greeting.
    fn improper_pipelining(&self, ends_group: bool) -> bool {
        self.cfg().smtpd.forbid_unauth_pipelining
            && self.uid.is_none()
            && !self.inbuf.is_empty()
            && (!self.esmtp || ends_group)
    }

    async fn command(&mut self, line: &[u8]) -> Option<End> {
        let utf8 = true;
        let cmd = match parse_command(line, utf8) {
            Ok(c) => c,
            Err(e) => {
                self.count("unknown", false);
                self.last_cmd = "UNKNOWN";
                let r = e.reply();
                if e.disconnects() {
                    log::warn!(
                        client:% = crate::logging::client_field(self.uid, self.client());
                        "non-SMTP command from {}: {}",
                        self.client(),
                        String::from_utf8_lossy(&line[..line.len().min(100)])
                    );
                    self.reply(&r);
                    self.flush().await;
                    return Some(End::Closed);
                }
                if self.error(&r) {
                    return Some(self.too_many_errors().await);
                }
                return None;
            }
        };
        let verb = cmd.verb_name();
        self.last_cmd = last_cmd_name(verb);
        if self.access_denied && !matches!(cmd, Command::Quit) {
            let r = Reply::access_denied_for(&self.client());
            self.count(verb, false);
            if self.error(&r) {
                return Some(self.too_many_errors().await);
            }
            return None;
        }
        let ends_group = matches!(
            cmd,
            Command::Ehlo(_)
                | Command::Helo(_)
                | Command::Data
                | Command::Vrfy(_)
                | Command::Expn(_)
                | Command::Noop
                | Command::Quit
                | Command::Help
        );
        if self.improper_pipelining(ends_group) {
            let pending = String::from_utf8_lossy(&self.inbuf[..self.inbuf.len().min(100)])
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            log::info!(
                client:% = crate::logging::client_field(self.uid, self.client());
                "improper command pipelining after {} from {}: {}",
                self.last_cmd,
                self.client(),
                pending
            );
            self.count(verb, false);
            self.reply(&Reply::sync_error());
            self.flush().await;
            return Some(End::Closed);
        }
        let ok = match cmd {
            Command::Helo(name) => self.helo_cmd(&name, false).await,
            Command::Ehlo(name) => self.helo_cmd(&name, true).await,
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt { to, params } => self.rcpt(to, params).await,
            Command::Data => return self.data().await,
            Command::Rset => {
                self.tx = None;
                self.reply(&Reply::ok());
                true
            }
            Command::Noop => {
                self.reply(&Reply::ok());
                true
            }
            Command::Quit => {
                self.count("quit", true);
                self.reply(&Reply::bye());
                self.flush().await;
                return Some(End::Quit);
            }
            Command::Help => {
                self.reply(&Reply::new(
                    214,
                    "2.0.0",
                    "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY",
                ));
                true
            }
            Command::Vrfy(arg) => {
                if self.cfg().smtpd.vrfy {
                    self.reply(&Reply::new(252, "2.0.0", printable(&arg)));
                    true
                } else {
                    let r = Reply::vrfy_disabled();
                    self.count(verb, false);
                    if self.error(&r) {
                        return Some(self.too_many_errors().await);
                    }
                    return None;
                }
            }
            _ => {
                let r = super::command::not_implemented();
                self.count(verb, false);
                if self.error(&r) {
                    return Some(self.too_many_errors().await);
                }
                return None;
            }
        };
        self.count(verb, ok);
        // Postfix's smtpd_junk_command_limit: past it, each junk command
        // counts as an error, so only sending NOOPs (or RSET, HELO...)
        // does not hold a connection for ever.
        let limits = self.limits();
        if ok && is_junk(verb) {
            self.junk = self.junk.saturating_add(1);
            if self.junk > limits.junk_command_limit {
                self.errors += 1;
            }
        }
        if self.errors >= limits.hard_error_limit {
            return Some(self.too_many_errors().await);
        }
        None
    }

    /// HELO or EHLO: the helo restrictions (without delay_reject), then
    /// the greeting.
    async fn helo_cmd(&mut self, name: &str, esmtp: bool) -> bool {
        let name = printable(name);
        if let Some(r) = self.restrict(When::Helo, Some(&name)).await {
            return self.fail(r);
        }
        self.helo = Some(name);
        self.esmtp = esmtp;
        self.tx = None;
        let r = if esmtp {
            self.ehlo_reply()
        } else {
            Reply::plain(250, self.hostname())
        };
        self.reply(&r);
        true
    }

    fn ehlo_reply(&self) -> Reply {
        let c = &self.cfg().smtpd;
        let mut lines = vec![self.hostname(), "PIPELINING".to_string()];
        lines.push(if c.message_size_limit > 0 {
            format!("SIZE {}", c.message_size_limit)
        } else {
            "SIZE".into()
        });
        if c.vrfy {
            lines.push("VRFY".into());
        }
        for k in ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8"] {
            lines.push(k.into());
        }
        Reply::plain(250, lines.join("\n"))
    }

    /// Reply with an error for a transaction command; false.
    fn fail(&mut self, r: Reply) -> bool {
        self.error(&r);
        false
    }
}

/// Resolves when the value changes; never once the sender is gone.
async fn changed(rx: &mut watch::Receiver<bool>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Commands that can be repeated without end and do nothing for mail
/// (Postfix's `SMTPD_CMD_FLAG_LIMIT`, and HELP).
fn is_junk(verb: &str) -> bool {
    matches!(
        verb,
        "helo" | "ehlo" | "rset" | "noop" | "vrfy" | "etrn" | "help"
    )
}

/// The command name as Postfix writes it in "lost connection after X".
fn last_cmd_name(verb: &str) -> &'static str {
    match verb {
        "helo" => "HELO",
        "ehlo" => "EHLO",
        "mail" => "MAIL",
        "rcpt" => "RCPT",
        "data" => "DATA",
        "rset" => "RSET",
        "noop" => "NOOP",
        "quit" => "QUIT",
        "vrfy" => "VRFY",
        "help" => "HELP",
        _ => "UNKNOWN",
    }
}

/// Non-printable characters replaced by `?`, as Postfix stores HELO names.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
