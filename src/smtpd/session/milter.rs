//! The session's side of the milters ([`crate::smtpd::milters`]): the
//! macros of each stage from what the session knows, the stage calls,
//! and Postfix's log lines for what a milter decided
//! (`milter-reject: RCPT from host[ip]: 550 5.7.1 Command rejected;
//! from=<…> to=<…> proto=ESMTP helo=<…>`).

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use super::transaction::Transaction;
use crate::content::Verdict as ContentVerdict;
use crate::milter::Address;
use crate::queue::QueueId;
use crate::reply::Reply;
use crate::smtpd::milters::{Macros, Milters, Verdict};

/// A stage before the message, as the session names it.
#[derive(Clone, Copy)]
pub(super) enum Stage<'a> {
    Helo(&'a str),
    Mail(&'a [String]),
    Rcpt(&'a [String]),
    Data,
}

/// What the session does with a milter's verdict before the message.
pub(super) enum Said {
    Go,
    Refuse(Reply),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The milters of this session: `milters.smtpd` for a TCP client,
    /// `milters.non_smtpd` for a local submission.
    fn milter_addresses(&self) -> &[Address] {
        match self.client.uid {
            Some(_) => &self.cfg().milters.non_smtpd,
            None => &self.cfg().milters.smtpd,
        }
    }

    /// Connect the milters and tell them of the client. `Some`: the reply
    /// that replaces the greeting.
    pub(super) async fn milters_connect(&mut self) -> Option<Reply> {
        if self.milter_addresses().is_empty() {
            return None;
        }
        let addresses = self.milter_addresses().to_vec();
        let mut milters = Milters::open(&addresses, &self.cfg().milters).await;
        let macros = self.macros(&self.cfg().milters.connect_macros.clone(), None, None);
        let name = (self.client.name != "unknown").then(|| self.client.name.clone());
        let verdict = milters
            .connect(&macros, name.as_deref(), self.client.ip)
            .await;
        self.milters = Some(milters);
        match verdict {
            Verdict::Go | Verdict::Discard { .. } => None,
            Verdict::Refuse { reply, milter } => {
                self.milter_log(
                    None,
                    "reject",
                    "CONNECT",
                    &reply.to_string(),
                    &milter,
                    (None, None),
                );
                let hostname = self.hostname();
                Some(if reply.code >= 500 {
                    Reply::plain(554, format!("{hostname} ESMTP not accepting connections"))
                } else {
                    Reply::plain(
                        421,
                        format!("{hostname} Service unavailable - try again later"),
                    )
                })
            }
        }
    }

    /// One stage to the milters. A refusal is logged here; a DISCARD
    /// marks the transaction.
    pub(super) async fn milter_stage(&mut self, stage: Stage<'_>) -> Said {
        let Some(mut milters) = self.milters.take() else {
            return Said::Go;
        };
        let m = &self.cfg().milters;
        let (names, rcpt) = match stage {
            Stage::Helo(_) => (m.helo_macros.clone(), None),
            Stage::Mail(_) => (m.mail_macros.clone(), None),
            Stage::Rcpt(args) => (m.rcpt_macros.clone(), args.first().map(|a| bare(a))),
            Stage::Data => (m.data_macros.clone(), None),
        };
        let macros = self.macros(&names, rcpt.as_deref(), self.tx.as_ref());
        let verdict = match stage {
            Stage::Helo(name) => {
                milters.abort().await;
                milters.helo(&macros, name).await
            }
            Stage::Mail(args) => milters.mail(&macros, args).await,
            Stage::Rcpt(args) => milters.rcpt(&macros, args).await,
            Stage::Data => milters.data(&macros).await,
        };
        self.milters = Some(milters);
        let (what, to) = match stage {
            Stage::Helo(_) => ("HELO", None),
            Stage::Mail(_) => ("MAIL", None),
            Stage::Rcpt(_) => ("RCPT", rcpt),
            Stage::Data => ("DATA", None),
        };
        match verdict {
            Verdict::Go => Said::Go,
            Verdict::Discard { milter } => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.discard = Some(format!("milter {milter}"));
                }
                self.milter_log(
                    None,
                    "discard",
                    what,
                    "milter triggers DISCARD action",
                    &milter,
                    (None, to.as_deref()),
                );
                Said::Go
            }
            Verdict::Refuse { reply, milter } => {
                let sender = self.tx.as_ref().map(|t| t.sender.clone());
                let sender = match stage {
                    Stage::Mail(args) => args.first().map(|a| bare(a)),
                    _ => sender,
                };
                self.milter_log(
                    None,
                    "reject",
                    what,
                    &reply.to_string(),
                    &milter,
                    (sender.as_deref(), to.as_deref()),
                );
                Said::Refuse(reply)
            }
        }
    }

    /// The message to the milters: `content` is the client's part of the
    /// stored form. Their changes to the envelope are made in `tx` and
    /// logged; the changed content is returned (`None`: unchanged). A
    /// refusal is `Err` (logged), a DISCARD marks `tx`, a quarantine
    /// sets `verdict.hold`.
    pub(super) async fn milters_message(
        &mut self,
        id: &QueueId,
        tx: &mut Transaction,
        content: &[u8],
        verdict: &mut ContentVerdict,
    ) -> Result<Option<Vec<u8>>, Reply> {
        let Some(mut milters) = self.milters.take() else {
            return Ok(None);
        };
        let m = &self.cfg().milters;
        let (eoh, eom) = (m.end_of_header_macros.clone(), m.end_of_data_macros.clone());
        // The transaction is the caller's now, not the session's.
        let (eoh, eom) = (
            self.macros(&eoh, None, Some(tx)),
            self.macros(&eom, None, Some(tx)),
        );
        let outcome = milters.message(&eoh, &eom, content).await;
        self.milters = Some(milters);
        let rcpt = tx.rcpts.last().map(|r| r.address.clone());
        for change in &outcome.changes {
            log::info!(queue_id = id.as_str(); "{id}: milter {change}");
        }
        match outcome.verdict {
            Some(Verdict::Refuse { reply, milter }) => {
                // Postfix's cleanup writes the enhanced code and text.
                let text = match &reply.enhanced {
                    Some(e) => format!("{e} {}", reply.text),
                    None => reply.text.clone(),
                };
                let text = text.replace('\n', " ");
                self.milter_log(
                    Some(id),
                    "reject",
                    "END-OF-MESSAGE",
                    &text,
                    &milter,
                    (Some(&tx.sender), rcpt.as_deref()),
                );
                return Err(reply);
            }
            Some(Verdict::Discard { milter }) => {
                self.milter_log(
                    Some(id),
                    "discard",
                    "END-OF-MESSAGE",
                    "milter triggers DISCARD action",
                    &milter,
                    (Some(&tx.sender), rcpt.as_deref()),
                );
                tx.discard = Some(format!("milter {milter}"));
                return Ok(None);
            }
            Some(Verdict::Go) | None => {}
        }
        if let Some(reason) = &outcome.hold {
            self.milter_log(
                Some(id),
                "hold",
                "END-OF-MESSAGE",
                &format!("milter triggers HOLD action: {reason}"),
                "",
                (Some(&tx.sender), rcpt.as_deref()),
            );
            verdict.hold = true;
        }
        if let Some(sender) = outcome.sender {
            tx.sender = sender;
        }
        for gone in &outcome.del_rcpts {
            tx.rcpts.retain(|r| !r.address.eq_ignore_ascii_case(gone));
        }
        for added in outcome.add_rcpts {
            if !tx
                .rcpts
                .iter()
                .any(|r| r.address.eq_ignore_ascii_case(&added))
            {
                tx.rcpts.push(crate::queue::Recipient {
                    address: added,
                    orcpt: None,
                    notify: None,
                    original: None,
                });
            }
        }
        if tx.rcpts.is_empty() {
            // Every recipient deleted: nothing to deliver (Postfix drops it too).
            log::info!(queue_id = id.as_str(); "{id}: no recipients left after the milters: discarded");
            tx.discard = Some("milters deleted every recipient".into());
        }
        Ok(outcome.content)
    }

    /// A transaction ended without its message (RSET, a refused DATA).
    pub(super) async fn milters_abort(&mut self) {
        if let Some(m) = self.milters.as_mut() {
            m.abort().await;
        }
    }

    /// The session's end.
    pub(super) async fn milters_quit(&mut self) {
        if let Some(m) = self.milters.take() {
            m.quit().await;
        }
    }

    /// Postfix's line for a milter's decision:
    /// `NOQUEUE: milter-reject: MAIL from host[ip]: TEXT; from=<…> proto=ESMTP helo=<…>`.
    pub(super) fn milter_log(
        &self,
        id: Option<&QueueId>,
        action: &str,
        what: &str,
        text: &str,
        milter: &str,
        (sender, rcpt): (Option<&str>, Option<&str>),
    ) {
        let mut items = String::new();
        if let Some(s) = sender {
            items += &format!(" from=<{s}>");
        }
        if let Some(r) = rcpt {
            items += &format!(" to=<{r}>");
        }
        let prefix = match id {
            Some(id) => format!("{id}: "),
            None => self.qid_prefix(),
        };
        let milter = match milter {
            "" => String::new(),
            m => format!(" (milter {m})"),
        };
        log::info!(
            queue_id = id.map(QueueId::as_str).or(self.queue_id()),
            client:% = self.client.field(),
            status = action;
            "{prefix}milter-{action}: {what} from {}: {text};{items} proto={} helo=<{}>{milter}",
            self.client(),
            self.proto(),
            self.helo().unwrap_or("")
        );
    }

    /// The values of the macros named (those the session knows; the
    /// others are not sent), as Postfix's milter macros mean them.
    pub(super) fn macros(
        &self,
        names: &[String],
        rcpt: Option<&str>,
        tx: Option<&Transaction>,
    ) -> Macros {
        let cfg = self.cfg();
        let tls = self.io.tls();
        names
            .iter()
            .filter_map(|name| {
                let value = match name.as_str() {
                    "j" | "{daemon_name}" => Some(cfg.server.hostname.clone()),
                    "v" => Some(format!("postern {}", env!("CARGO_PKG_VERSION"))),
                    "_" => Some(format!("{} [{}]", self.client.name, self.client.ip)),
                    "{client_addr}" => Some(self.client.ip.to_string()),
                    "{client_name}" => Some(self.client.name.clone()),
                    "i" => tx
                        .and_then(|t| t.id.as_ref())
                        .map(|id| id.as_str().to_string()),
                    "{auth_type}" => self.auth.as_ref().map(|a| a.mechanism.name().to_string()),
                    "{auth_authen}" => self.sasl_user().map(str::to_string),
                    "{mail_addr}" => tx.map(|t| t.sender.clone()),
                    "{rcpt_addr}" => rcpt.map(str::to_string),
                    "{rcpt_host}" => rcpt
                        .and_then(|r| r.rsplit_once('@'))
                        .map(|(_, d)| d.to_string()),
                    "{rcpt_mailer}" => rcpt.map(|r| {
                        let domain = r.rsplit_once('@').map_or("", |(_, d)| d);
                        if cfg.is_local_domain(domain) {
                            "local"
                        } else {
                            "smtp"
                        }
                        .to_string()
                    }),
                    "{tls_version}" => tls.as_ref().map(|(v, _)| v.clone()),
                    "{cipher}" => tls.as_ref().map(|(_, c)| c.clone()),
                    _ => None,
                }?;
                Some((name.clone(), value))
            })
            .collect()
    }
}

fn bare(address: &str) -> String {
    crate::milter::edit::bare(address).to_string()
}
