//! smtpd's milters for one session (`milters.smtpd`, or
//! `milters.non_smtpd` for a local submission): each connected when the
//! session starts, asked at every stage in order, as Postfix's
//! `milter.c` asks them, their answers turned into replies and their
//! modifications applied to the message (`milter::edit`).
//!
//! A milter that cannot be reached or breaks the protocol is logged
//! (`warning: milter …`) and from then on answers what
//! `milters.default_action` says, for the rest of the session.

use std::net::IpAddr;

use crate::config::{MilterDefault, Milters as Settings};
use crate::milter::client::Client;
use crate::milter::edit::{Message, bare};
use crate::milter::{Address, Answer, Modification, Timeouts};
use crate::reply::Reply;

/// Macros as name/value pairs (`j`, `{client_addr}`, …).
pub(crate) type Macros = Vec<(String, String)>;

/// What the session does after a stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// On (every milter continued or accepted).
    Go,
    /// Refuse the command (or the message) with this reply, which a
    /// milter chose (`milter` names it for the log).
    Refuse { reply: Reply, milter: String },
    /// Accept the message and drop it.
    Discard { milter: String },
}

/// What the milters did to the message at its end.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Refuse or discard, as at the other stages; `None`: queue it.
    pub verdict: Option<Verdict>,
    /// The client's part of the message, changed (`None`: unchanged).
    pub content: Option<Vec<u8>>,
    /// SMFIR_QUARANTINE (or `default_action = "quarantine"`): hold, with
    /// the reason.
    pub hold: Option<String>,
    /// The new sender (SMFIR_CHGFROM), without `<>`.
    pub sender: Option<String>,
    pub add_rcpts: Vec<String>,
    pub del_rcpts: Vec<String>,
    /// What changed, one line each, for the log.
    pub changes: Vec<String>,
}

/// A stage before the message, with what it carries.
#[derive(Clone, Copy)]
enum Stage<'a> {
    Connect(Option<&'a str>, IpAddr),
    Helo(&'a str),
    Mail(&'a [String]),
    Rcpt(&'a [String]),
    Data,
}

struct Slot {
    address: Address,
    /// `None` after a failure: `default_action` answers for it.
    client: Option<Client>,
}

pub(crate) struct Milters {
    slots: Vec<Slot>,
    default: MilterDefault,
    /// A milter failed and `default_action = "quarantine"`: the message
    /// is held.
    quarantine: bool,
    /// MAIL went to the milters and the message has not: a new MAIL, a
    /// HELO or RSET sends ABORT first.
    in_transaction: bool,
}

impl Milters {
    /// Connect to each milter (a failure is logged and leaves the slot
    /// to `default_action`).
    pub(crate) async fn open(addresses: &[Address], settings: &Settings) -> Milters {
        let timeouts = Timeouts {
            connect: settings.connect_timeout,
            command: settings.command_timeout,
            content: settings.content_timeout,
        };
        let mut slots = Vec::with_capacity(addresses.len());
        for address in addresses {
            let client = match Client::open(address, timeouts).await {
                Ok(c) => Some(c),
                Err(e) => {
                    log::warn!("{e}");
                    None
                }
            };
            slots.push(Slot {
                address: address.clone(),
                client,
            });
        }
        Milters {
            slots,
            default: settings.default_action,
            quarantine: false,
            in_transaction: false,
        }
    }

    pub(crate) async fn connect(
        &mut self,
        macros: &Macros,
        name: Option<&str>,
        ip: IpAddr,
    ) -> Verdict {
        self.each(macros, Stage::Connect(name, ip)).await
    }

    pub(crate) async fn helo(&mut self, macros: &Macros, name: &str) -> Verdict {
        self.each(macros, Stage::Helo(name)).await
    }

    /// MAIL: `args` the sender (`<a@b>`) and its ESMTP parameters.
    pub(crate) async fn mail(&mut self, macros: &Macros, args: &[String]) -> Verdict {
        self.abort().await;
        self.in_transaction = true;
        self.quarantine = false;
        self.each(macros, Stage::Mail(args)).await
    }

    pub(crate) async fn rcpt(&mut self, macros: &Macros, args: &[String]) -> Verdict {
        self.each(macros, Stage::Rcpt(args)).await
    }

    pub(crate) async fn data(&mut self, macros: &Macros) -> Verdict {
        self.each(macros, Stage::Data).await
    }

    /// The end of a transaction without its message (RSET, a new HELO,
    /// a refused DATA).
    pub(crate) async fn abort(&mut self) {
        if !std::mem::take(&mut self.in_transaction) {
            return;
        }
        for slot in &mut self.slots {
            if let Some(c) = slot.client.as_mut()
                && let Err(e) = c.abort().await
            {
                log::warn!("{e}");
                slot.client = None;
            }
        }
    }

    /// The session's end.
    pub(crate) async fn quit(self) {
        for slot in self.slots {
            if let Some(c) = slot.client {
                let _ = c.quit().await;
            }
        }
    }

    /// The message (the client's part of the stored form), to each milter
    /// in turn, each seeing what the earlier ones changed.
    pub(crate) async fn message(&mut self, eoh: &Macros, eom: &Macros, content: &[u8]) -> Outcome {
        self.in_transaction = false;
        let mut out = Outcome::default();
        let mut message: Option<Message> = None;
        for i in 0..self.slots.len() {
            let current = message.as_ref().map(Message::to_stored);
            let stored = current.as_deref().unwrap_or(content);
            let slot = &mut self.slots[i];
            let name = slot.address.to_string();
            let Some(client) = slot.client.as_mut() else {
                if let Some(v) = self.fallback(&name) {
                    out.verdict = Some(v);
                    return out;
                }
                continue;
            };
            let end = match client.message(eoh, eom, stored).await {
                Ok(end) => end,
                Err(e) => {
                    log::warn!("{e}");
                    self.slots[i].client = None;
                    if let Some(v) = self.fallback(&name) {
                        out.verdict = Some(v);
                        return out;
                    }
                    continue;
                }
            };
            for m in &end.modifications {
                match m {
                    Modification::Quarantine(reason) => out.hold = Some(reason.clone()),
                    Modification::ChangeFrom { sender, .. } => {
                        out.sender = Some(bare(sender).to_string());
                        out.changes
                            .push(format!("{name}: sender changed to <{}>", bare(sender)));
                    }
                    Modification::AddRcpt { rcpt, .. } => {
                        out.add_rcpts.push(bare(rcpt).to_string());
                        out.changes
                            .push(format!("{name}: recipient <{}> added", bare(rcpt)));
                    }
                    Modification::DelRcpt(rcpt) => {
                        out.del_rcpts.push(bare(rcpt).to_string());
                        out.changes
                            .push(format!("{name}: recipient <{}> deleted", bare(rcpt)));
                    }
                    edit => {
                        let m = message.get_or_insert_with(|| Message::parse(content));
                        if let Some(done) = m.apply(edit) {
                            out.changes.push(format!("{name}: {done}"));
                        }
                    }
                }
            }
            match self.answer(&name, end.answer) {
                Some(v) => {
                    out.verdict = Some(v);
                    break;
                }
                None => continue,
            }
        }
        if self.quarantine && out.hold.is_none() {
            out.hold = Some("milter failure (milters.default_action = \"quarantine\")".into());
        }
        out.content = message.map(|m| m.to_stored());
        out
    }

    /// One stage to each milter in order; the first refusal ends it.
    async fn each(&mut self, macros: &Macros, stage: Stage<'_>) -> Verdict {
        for i in 0..self.slots.len() {
            let name = self.slots[i].address.to_string();
            let Some(client) = self.slots[i].client.as_mut() else {
                if let Some(v) = self.fallback(&name) {
                    return v;
                }
                continue;
            };
            let answer = match stage {
                Stage::Connect(host, ip) => client.connect(macros, host, ip, 0).await,
                Stage::Helo(helo) => client.helo(macros, helo).await,
                Stage::Mail(args) => client.mail(macros, args).await,
                Stage::Rcpt(args) => client.rcpt(macros, args).await,
                Stage::Data => client.data(macros).await,
            };
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    log::warn!("{e}");
                    self.slots[i].client = None;
                    if let Some(v) = self.fallback(&name) {
                        return v;
                    }
                    continue;
                }
            };
            if let Some(v) = self.answer(&name, answer) {
                return v;
            }
        }
        Verdict::Go
    }

    /// An answer as the session takes it (Postfix's milter8 replies);
    /// `None`: go on to the next milter.
    fn answer(&mut self, name: &str, answer: Answer) -> Option<Verdict> {
        let milter = name.to_string();
        match answer {
            Answer::Continue | Answer::Accept => None,
            Answer::Discard => Some(Verdict::Discard { milter }),
            refusing => refusing
                .refusal()
                .map(|reply| Verdict::Refuse { reply, milter }),
        }
    }

    /// What a failed milter answers (`milters.default_action`); `None`:
    /// go on without it.
    fn fallback(&mut self, name: &str) -> Option<Verdict> {
        let refuse = |reply: Reply| {
            Some(Verdict::Refuse {
                reply,
                milter: name.to_string(),
            })
        };
        match self.default {
            MilterDefault::Accept => None,
            MilterDefault::Tempfail => refuse(Reply::milter_tempfail()),
            MilterDefault::Reject => refuse(Reply::milter_reject()),
            MilterDefault::Quarantine => {
                self.quarantine = true;
                None
            }
        }
    }
}
