//! From a command line to its handler: the parser's verdict, the checks
//! every command passes first (a connection the client restrictions
//! refused, improper pipelining), one short handler per command, and the
//! counts after it (Postfix's junk and error limits). EHLO and HELO are in
//! [`super::greeting`], MAIL and RCPT in [`super::transaction`], DATA in
//! [`super::data_phase`], BDAT in [`super::bdat`].

use tokio::io::{AsyncRead, AsyncWrite};

use super::greeting::printable;
use super::{End, Session};
use crate::reply::Reply;
use crate::smtpd::command::{Command, CommandError, parse_command};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// One command line: `Some` when the session ends with it.
    pub(super) async fn command(&mut self, line: &[u8]) -> Option<End> {
        let utf8 = true;
        let cmd = match parse_command(line, utf8) {
            Ok(c) => c,
            Err(e) => return self.unparsable(line, e).await,
        };
        let verb = cmd.verb_name();
        self.counters.last_cmd = last_cmd_name(verb);
        if self.access_denied && !matches!(cmd, Command::Quit) {
            // A refused BDAT's chunk is read past all the same: its
            // octets are no commands.
            if let Command::Bdat { size, .. } = cmd
                && let Err(end) = self.skip_chunk(size).await
            {
                return Some(end);
            }
            let r = Reply::access_denied_for(&self.client());
            return self.refuse(verb, &r).await;
        }
        // Input after STARTTLS is discarded by STARTTLS itself (RFC 3207).
        if !matches!(cmd, Command::StartTls) && self.improper_pipelining(&cmd) {
            return Some(self.sync_error(verb).await);
        }
        let ok = match cmd {
            Command::Helo(name) => self.helo_cmd(&name, false).await,
            Command::Ehlo(name) => self.helo_cmd(&name, true).await,
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt { to, params } => self.rcpt(to, params).await,
            Command::Data => return self.data().await,
            Command::Bdat { size, last } => return self.bdat(size, last).await,
            Command::Rset => {
                self.milters_abort().await;
                self.rset()
            }
            Command::Noop => self.noop(),
            Command::Quit => return Some(self.quit().await),
            Command::StartTls => return self.starttls().await,
            Command::Auth {
                mechanism,
                initial_response,
            } => return self.auth_cmd(&mechanism, initial_response).await,
            Command::Help => self.help(),
            Command::Vrfy(arg) if self.cfg().smtpd.vrfy => self.vrfy(&arg),
            Command::Vrfy(_) => return self.refuse(verb, &Reply::vrfy_disabled()).await,
            _ => {
                return self
                    .refuse(verb, &crate::smtpd::command::not_implemented())
                    .await;
            }
        };
        self.counted(verb, ok).await
    }

    /// A line the parser refused: answered and counted as an error, or
    /// (not SMTP at all) the connection closed.
    async fn unparsable(&mut self, line: &[u8], e: CommandError) -> Option<End> {
        self.counters.last_cmd = "UNKNOWN";
        let r = e.reply();
        if !e.disconnects() {
            return self.refuse("unknown", &r).await;
        }
        let shown = String::from_utf8_lossy(&line[..line.len().min(100)]);
        if e == CommandError::BdatSyntax {
            // Without the chunk's size, its octets cannot be told from
            // the commands after it: 521 and the end (Postfix).
            self.counters.last_cmd = "BDAT";
            self.count("bdat", false);
            log::warn!(
                queue_id = self.queue_id(),
                client:% = self.client.field();
                "{}malformed BDAT command syntax from {}: {shown}",
                self.qid_prefix(),
                self.client()
            );
        } else {
            self.count("unknown", false);
            log::warn!(
                client:% = self.client.field();
                "non-SMTP command from {}: {shown}",
                self.client()
            );
        }
        Some(self.close(&r, End::Closed).await)
    }

    /// A command refused before it did anything: the reply, counted as a
    /// failed `verb` and as an error.
    pub(super) async fn refuse(&mut self, verb: &'static str, r: &Reply) -> Option<End> {
        self.count(verb, false);
        if self.error(r) {
            return Some(self.too_many_errors().await);
        }
        None
    }

    /// RFC 2920 and Postfix's smtpd_forbid_unauth_pipelining: a client that
    /// did not say EHLO may not pipeline at all, and nobody may send ahead
    /// of the reply to a command that ends a group. Remote clients only,
    /// as Postfix's documentation says: a local submitter on submit.sock
    /// (`sendmail -bs` fed by a script, which writes the whole session at
    /// once) is no spambot racing the greeting.
    ///
    /// A BDAT command's chunk is part of it, not input ahead of its turn:
    /// only what comes after the chunk counts.
    fn improper_pipelining(&self, cmd: &Command) -> bool {
        let esmtp = self.greeting.as_ref().is_some_and(|g| g.esmtp);
        let ahead = match cmd {
            Command::Bdat { size, .. } => self.io.inbuf.len() as u64 > *size,
            _ => !self.io.inbuf.is_empty(),
        };
        self.cfg().smtpd.forbid_unauth_pipelining
            && self.client.uid.is_none()
            && ahead
            && (!esmtp || ends_group(cmd))
    }

    /// Input came ahead of its turn: logged, answered, and closed.
    async fn sync_error(&mut self, verb: &'static str) -> End {
        log::info!(
            client:% = self.client.field();
            "improper command pipelining after {} from {}: {}",
            self.counters.last_cmd,
            self.client(),
            self.io.pending_line()
        );
        self.count(verb, false);
        self.close(&Reply::sync_error(), End::Closed).await
    }

    /// After a handler: the command counted, a junk command past
    /// `smtpd.junk_command_limit` counted as an error, and the session
    /// ended at `smtpd.hard_error_limit`.
    pub(super) async fn counted(&mut self, verb: &'static str, ok: bool) -> Option<End> {
        self.count(verb, ok);
        let limits = self.limits();
        if ok && is_junk(verb) {
            self.counters.junk_command(&limits);
        }
        if self.counters.errors >= limits.hard_error_limit {
            return Some(self.too_many_errors().await);
        }
        None
    }

    /// STARTTLS (RFC 3207): `220`, the handshake, and the session back
    /// to its start: no greeting (EHLO again), no transaction, and
    /// nothing the client sent before the handshake.
    async fn starttls(&mut self) -> Option<End> {
        let Some(certs) = self.tls_offered() else {
            return self
                .refuse("starttls", &crate::smtpd::command::not_implemented())
                .await;
        };
        if self.io.is_tls() {
            let r = Reply::new(554, "5.5.1", "Error: TLS already active");
            return self.refuse("starttls", &r).await;
        }
        if self.tx.is_some() {
            let r = Reply::new(503, "5.5.1", "Error: MAIL transaction in progress");
            return self.refuse("starttls", &r).await;
        }
        self.reply(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        if !self.flush().await {
            return Some(End::Lost);
        }
        if !self.io.inbuf.is_empty() {
            log::warn!(
                client:% = self.client.field();
                "{}: discarding {} bytes of plaintext sent after STARTTLS before the handshake: {}",
                self.client(),
                self.io.inbuf.len(),
                self.io.pending_line()
            );
        }
        match self.handshake(&certs).await {
            Ok(()) => {
                // RFC 3207 section 4.2: nothing learned before counts.
                self.greeting = None;
                self.tx = None;
                self.auth = None;
                self.count("starttls", true);
                None
            }
            Err(end) => {
                self.count("starttls", false);
                Some(end)
            }
        }
    }

    /// The TLS handshake (after STARTTLS, or at the connect on the
    /// submissions listener) within the command timeout, logged as
    /// Postfix logs it: `Anonymous TLS connection established from
    /// host[ip]: TLSv1.3 with cipher …`, or `SSL_accept error from …`.
    pub(super) async fn handshake(&mut self, certs: &crate::certs::Live) -> Result<(), End> {
        let timeout = self.limits().timeout;
        let acceptor = tokio_rustls::TlsAcceptor::from(certs.current());
        let started = self.io.start_tls(acceptor, timeout).await;
        crate::metrics::registry::sink::inc(
            crate::metrics::registry::TLS_HANDSHAKES,
            &[
                ("direction", "inbound"),
                ("outcome", if started.is_ok() { "ok" } else { "failed" }),
            ],
        );
        if let Err(e) = started {
            log::info!(
                client:% = self.client.field();
                "SSL_accept error from {}: {e}",
                self.client()
            );
            return Err(End::Lost);
        }
        let (version, cipher) = self.io.tls().unwrap_or_default();
        log::info!(
            client:% = self.client.field();
            "Anonymous TLS connection established from {}: {version} with cipher {cipher}",
            self.client()
        );
        Ok(())
    }

    fn rset(&mut self) -> bool {
        self.tx = None;
        self.reply(&Reply::ok());
        true
    }

    fn noop(&mut self) -> bool {
        self.reply(&Reply::ok());
        true
    }

    async fn quit(&mut self) -> End {
        self.count("quit", true);
        self.close(&Reply::bye(), End::Quit).await
    }

    fn help(&mut self) -> bool {
        self.reply(&Reply::new(
            214,
            "2.0.0",
            "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY",
        ));
        true
    }

    /// VRFY (`smtpd.vrfy`): 252, the argument said back, nothing looked up.
    fn vrfy(&mut self, arg: &str) -> bool {
        self.reply(&Reply::new(252, "2.0.0", printable(arg)));
        true
    }

    /// Reply with an error for a transaction command; false.
    pub(super) fn fail(&mut self, r: Reply) -> bool {
        self.error(&r);
        false
    }
}

/// A command after which the client must wait for the reply (RFC 2920).
fn ends_group(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Ehlo(_)
            | Command::Helo(_)
            | Command::Data
            | Command::Vrfy(_)
            | Command::Expn(_)
            | Command::Noop
            | Command::Quit
            | Command::Help
            | Command::Auth { .. }
            | Command::StartTls
    )
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
        "bdat" => "BDAT",
        "rset" => "RSET",
        "noop" => "NOOP",
        "quit" => "QUIT",
        "vrfy" => "VRFY",
        "help" => "HELP",
        "auth" => "AUTH",
        "starttls" => "STARTTLS",
        _ => "UNKNOWN",
    }
}
