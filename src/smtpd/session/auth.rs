//! AUTH (RFC 4954) and the implicit TLS of the submissions listener (RFC
//! 8314): when AUTH is offered, the exchange of PLAIN and LOGIN, the
//! backend's verdict ([`crate::sasl::server`]), the per-client failure
//! limit and delay, and the log lines in Postfix's shape (`warning:
//! host[ip]: SASL LOGIN authentication failed: …`, which fail2ban's
//! postfix-sasl filter reads).

use tokio::io::{AsyncRead, AsyncWrite};

use super::{End, Service, Session};
use crate::reply::Reply;
use crate::sasl::{self, Credentials, Mechanism, ResponseError, Verdict};

/// Who the client logged in as.
pub(super) struct Authenticated {
    pub(super) login: String,
    pub(super) mechanism: Mechanism,
}

/// Why an exchange gave no credentials.
enum NoCredentials {
    /// The client's answer cannot be used: this reply.
    Refused(Reply),
    /// The session ends.
    End(End),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Whether AUTH is offered now: a backend, a listener that offers it
    /// (submission, or `smtpd.listen` with `sasl.smtpd_listeners`), and
    /// TLS unless `sasl.tls_only` is off.
    pub(super) fn auth_offered(&self) -> bool {
        let sasl = &self.cfg().sasl;
        let listener = match self.service {
            Service::Submission | Service::Submissions => true,
            Service::Smtp => sasl.smtpd_listeners,
            Service::Local => false,
        };
        listener && (self.io.is_tls() || !sasl.tls_only) && self.shared.sasl().is_some()
    }

    /// Whether MAIL must wait for AUTH: on the submission listeners.
    pub(super) fn auth_required(&self) -> bool {
        self.service.is_submission() && self.auth.is_none()
    }

    /// The AUTH keyword of the EHLO reply, when offered.
    pub(super) fn auth_keyword(&self) -> Option<String> {
        self.auth_offered().then(|| {
            let names: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
            format!("AUTH {}", names.join(" "))
        })
    }

    /// `, sasl_method=PLAIN, sasl_username=alice` after AUTH, as
    /// Postfix's `client=` line has it; empty before.
    pub(super) fn sasl_log_items(&self) -> String {
        match &self.auth {
            Some(a) => format!(
                ", sasl_method={}, sasl_username={}",
                a.mechanism.name(),
                a.login
            ),
            None => String::new(),
        }
    }

    /// The submissions listener: the TLS handshake before the greeting.
    pub(super) async fn implicit_tls(&mut self) -> Result<(), End> {
        let Some(certs) = self.shared.tls() else {
            log::error!("submissions: no TLS certificates loaded (tls.chain_files)");
            return Err(End::Closed);
        };
        self.handshake(&certs).await
    }

    /// AUTH mechanism [initial-response].
    pub(super) async fn auth_cmd(
        &mut self,
        mechanism: &str,
        initial: Option<String>,
    ) -> Option<End> {
        if let Some(r) = self.auth_refusal() {
            return self.refuse("auth", &r).await;
        }
        let config = self.config.clone();
        let sasl = &config.sasl;
        if self.shared.auth_failures.blocked(
            self.client.ip,
            sasl.failure_limit,
            sasl.failure_window,
        ) {
            log::warn!(
                client:% = self.client.field();
                "{}: too many failed logins: AUTH refused for up to {}s",
                self.client(),
                sasl.failure_window.as_secs()
            );
            let r = Reply::new(
                421,
                "4.7.0",
                format!("{} Error: too many failed logins", self.hostname()),
            );
            self.count("auth", false);
            return Some(self.close(&r, End::Closed).await);
        }
        let Some(mechanism) = Mechanism::from_name(mechanism) else {
            let r = Reply::new(504, "5.5.4", "Unsupported authentication mechanism");
            return self.refuse("auth", &r).await;
        };
        let creds = match self.exchange(mechanism, initial).await {
            Ok(c) => c,
            Err(NoCredentials::End(end)) => return Some(end),
            Err(NoCredentials::Refused(r)) => return self.refuse("auth", &r).await,
        };
        self.verdict(mechanism, creds).await
    }

    /// Why AUTH cannot be used now (RFC 4954 section 4's 503s).
    fn auth_refusal(&self) -> Option<Reply> {
        if !self.auth_offered() {
            return Some(Reply::new(
                503,
                "5.5.1",
                "Error: authentication not enabled",
            ));
        }
        if self.greeting.is_none() {
            return Some(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        if self.auth.is_some() {
            return Some(Reply::new(503, "5.5.1", "Error: already authenticated"));
        }
        if self.tx.is_some() {
            return Some(Reply::new(
                503,
                "5.5.1",
                "Error: MAIL transaction in progress",
            ));
        }
        None
    }

    /// The challenges and responses up to the credentials.
    async fn exchange(
        &mut self,
        mechanism: Mechanism,
        initial: Option<String>,
    ) -> Result<Credentials, NoCredentials> {
        let refused = |e: ResponseError| NoCredentials::Refused(response_reply(&e));
        match mechanism {
            Mechanism::Plain => {
                let response = match initial {
                    Some(r) => r,
                    None => self.challenge("").await?,
                };
                sasl::plain(&sasl::decode_response(&response).map_err(refused)?).map_err(refused)
            }
            Mechanism::Login => {
                let login = match initial {
                    Some(r) => r,
                    None => self.challenge(sasl::LOGIN_USERNAME).await?,
                };
                let login = sasl::login_step(&sasl::decode_response(&login).map_err(refused)?)
                    .map_err(refused)?;
                let password = self.challenge(sasl::LOGIN_PASSWORD).await?;
                let password =
                    sasl::login_step(&sasl::decode_response(&password).map_err(refused)?)
                        .map_err(refused)?;
                Ok(Credentials {
                    authzid: String::new(),
                    login,
                    password,
                })
            }
        }
    }

    /// `334 text`, and the client's answer line.
    async fn challenge(&mut self, text: &str) -> Result<String, NoCredentials> {
        self.reply(&Reply::plain(334, text));
        let (line, _) = self.next_command().await.map_err(NoCredentials::End)?;
        String::from_utf8(line).map_err(|_| {
            NoCredentials::Refused(response_reply(&ResponseError::Invalid("not base64")))
        })
    }

    /// The backend's word, answered and logged.
    async fn verdict(&mut self, mechanism: Mechanism, creds: Credentials) -> Option<End> {
        let backend = self.shared.sasl()?;
        let peer = sasl::dovecot::Peer {
            local: None,
            remote: Some(self.client.ip),
            secured: self.io.is_tls(),
        };
        let sasl = self.config.sasl.clone();
        match backend.check(&creds, &peer).await {
            Verdict::Ok { login } => {
                self.shared.auth_failures.clear(self.client.ip);
                self.auth = Some(Authenticated { login, mechanism });
                self.reply(&Reply::new(235, "2.7.0", "Authentication successful"));
                self.count("auth", true);
                None
            }
            Verdict::Fail { reason } => {
                self.shared
                    .auth_failures
                    .add(self.client.ip, sasl.failure_window);
                log::warn!(
                    client:% = self.client.field(),
                    sasl_username = creds.login.as_str();
                    "{}: SASL {} authentication failed: {reason}, sasl_username={}",
                    self.client(),
                    mechanism.name(),
                    creds.login
                );
                tokio::time::sleep(sasl.failure_delay).await;
                let r = Reply::new(535, "5.7.8", "Error: authentication failed");
                self.refuse("auth", &r).await
            }
            Verdict::Unavailable { reason } => {
                log::warn!(
                    client:% = self.client.field();
                    "{}: SASL {} authentication unavailable: {reason}",
                    self.client(),
                    mechanism.name()
                );
                let r = Reply::new(454, "4.7.0", "Temporary authentication failure");
                self.refuse("auth", &r).await
            }
        }
    }
}

/// The reply to a response that cannot be used (RFC 4954, Postfix's
/// texts).
fn response_reply(e: &ResponseError) -> Reply {
    match e {
        ResponseError::Cancelled => Reply::new(501, "5.7.0", "Authentication aborted"),
        ResponseError::TooLong | ResponseError::Invalid(_) => {
            Reply::new(501, "5.5.2", format!("Cannot decode response: {e}"))
        }
    }
}
