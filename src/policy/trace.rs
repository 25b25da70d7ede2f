//! The policy tracer, `postern policy test`: the real restriction lists,
//! tables and DNS of a configuration run for a client, HELO name, sender
//! and recipients given on the command line, without any mail being sent.
//! Every list and element evaluated is printed with what each table
//! returned and what DNS answered, then the reply each recipient would
//! get. It answers "why was this rejected?" and "am I an open relay?".
//! With a message, what smtpd does at the end of DATA (`message`): the
//! header and body checks, and the DKIM, SPF and DMARC verification
//! (`auth`).
//!
//! [`Trace`] is also what the evaluation records into ([`super::Policy::check_traced`]).

mod auth;
mod message;
mod milters;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::dns::{NameStatus, Rtype};
use super::element::Stage;
use super::{Context, Decision, Event, Policy, When};
use crate::address::Address;
use crate::config::Config;
use crate::reply::Reply;

/// What was evaluated for one command, list by list.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Trace {
    pub lists: Vec<ListTrace>,
    /// Steps begun and not yet ended (nested inside one another).
    #[serde(skip)]
    open: Vec<Step>,
}

/// One restriction list.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ListTrace {
    pub stage: Stage,
    pub steps: Vec<Step>,
    /// `permit`, the reply, or why the list was skipped.
    pub result: String,
}

/// One element and what it found.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Step {
    pub element: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Detail>,
    /// Elements an access table's result named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// `no decision`, `permit`, or the reply.
    pub result: String,
}

/// What an element looked at.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Detail {
    /// A table lookup: what was asked, the key that matched and its value
    /// (both absent: not found).
    Lookup {
        table: String,
        query: String,
        key: Option<String>,
        value: Option<String>,
    },
    /// A DNS query and its answer.
    Dns {
        name: String,
        rtype: &'static str,
        answer: String,
    },
    Note {
        text: String,
    },
}

impl Trace {
    pub(crate) fn begin_list(&mut self, stage: Stage) {
        self.lists.push(ListTrace {
            stage,
            steps: Vec::new(),
            result: String::new(),
        });
    }

    pub(crate) fn end_list(&mut self, result: String) {
        while !self.open.is_empty() {
            self.end_step("unfinished".to_string());
        }
        if let Some(list) = self.lists.last_mut() {
            list.result = result;
        }
    }

    pub(crate) fn begin_step(&mut self, element: String) {
        self.open.push(Step {
            element,
            details: Vec::new(),
            steps: Vec::new(),
            result: String::new(),
        });
    }

    pub(crate) fn end_step(&mut self, result: String) {
        let Some(mut step) = self.open.pop() else {
            return;
        };
        step.result = result;
        match self.open.last_mut() {
            Some(parent) => parent.steps.push(step),
            None => {
                if let Some(list) = self.lists.last_mut() {
                    list.steps.push(step);
                }
            }
        }
    }

    pub(crate) fn detail(&mut self, detail: Detail) {
        if let Some(step) = self.open.last_mut() {
            step.details.push(detail);
        } else if let Some(list) = self.lists.last_mut() {
            // Outside any element: a note on the list itself.
            list.steps.push(Step {
                element: String::new(),
                details: vec![detail],
                steps: Vec::new(),
                result: String::new(),
            });
        }
    }
}

/// What to test: a client, its HELO name, a sender, recipients.
#[derive(Clone, Debug)]
pub struct Probe {
    pub client: IpAddr,
    /// The client's name as verified; `None`: looked up as smtpd does.
    pub client_name: Option<String>,
    pub helo: Option<String>,
    /// `""` for the null sender.
    pub sender: String,
    pub recipients: Vec<String>,
    /// A message for the header and body checks.
    pub message: Option<PathBuf>,
    /// The login of a client that authenticated.
    pub sasl_user: Option<String>,
    /// On a submission listener (`[submission]`'s lists).
    pub submission: bool,
}

/// The tracer's findings.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    pub client: ClientReport,
    pub helo: Option<String>,
    pub sender: String,
    /// The login of `--sasl-user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_username: Option<String>,
    /// `--submission`: the lists of `[submission]`.
    pub listener: &'static str,
    /// Problems of the configuration (tables that cannot be opened, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Checks at CONNECT, HELO and MAIL (only with
    /// `restrictions.delay_reject = false`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandReport>,
    pub recipients: Vec<CommandReport>,
    /// Header and body checks of `--message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// DKIM, SPF and DMARC of `--message` (`accepted` depends on them
    /// only through DMARC's `p=reject` and `verify.dmarc_reject`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<auth::AuthReport>,
    /// Every recipient would be accepted.
    pub accepted: bool,
}

/// The client as smtpd would see it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ClientReport {
    pub ip: String,
    pub name: String,
    pub name_status: NameStatus,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<Detail>,
}

/// One command: what ran and the reply.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct CommandReport {
    /// `CONNECT`, `HELO`, `MAIL FROM:<…>`, `RCPT TO:<…>`.
    pub command: String,
    pub lists: Vec<ListTrace>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prepend: Vec<String>,
    /// Recipients only: the recipient check of the address's class
    /// (`policy::known_recipient`: local, virtual alias, virtual mailbox,
    /// relay); the JSON name stays `local_recipient`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_recipient: Option<String>,
    pub reply: String,
    pub accepted: bool,
}

/// Runs the probe against `config`.
pub(crate) async fn run(config: Arc<Config>, probe: &Probe) -> Report {
    let policy = Policy::new(config.clone());
    let ip = probe.client.to_canonical();
    let client = client_report(&policy, probe, ip).await;
    let name = client.name.clone();
    let mut report = Report {
        client,
        helo: probe.helo.clone(),
        sender: probe.sender.clone(),
        sasl_username: probe.sasl_user.clone(),
        listener: if probe.submission {
            "submission"
        } else {
            "smtp"
        },
        warnings: policy.problems().to_vec(),
        commands: Vec::new(),
        recipients: Vec::new(),
        message: None,
        authentication: None,
        accepted: true,
    };
    // SPF once for all recipients, as in a session's transaction.
    let spf = tokio::sync::OnceCell::new();
    let aliases = crate::aliases::LiveTable::from_config(&config);
    let mut ctx = Context {
        ip,
        name: &name,
        name_status: report.client.name_status,
        helo: None,
        sender: None,
        recipient: None,
        sasl_user: probe.sasl_user.as_deref(),
        submission: probe.submission,
        spf: Some(&spf),
        aliases: Some(&aliases),
    };
    let refused = match config.restrictions.delay_reject {
        true => None,
        false => early_commands(&policy, probe, &mut ctx, &mut report.commands).await,
    };
    ctx.helo = probe.helo.as_deref();
    ctx.sender = Some(&probe.sender);
    for rcpt in &probe.recipients {
        let command = recipient(
            &policy,
            (&config, &aliases),
            rcpt,
            &mut ctx,
            refused.as_ref(),
        );
        report.recipients.push(command.await);
    }
    let mut message_ok = true;
    if let Some(path) = &probe.message {
        let client = format!("{name}[{ip}]");
        let end = message::end_of_data(&config, &policy, probe, &client, path, spf.get());
        let end = end.await;
        report.message = Some(end.text);
        report.authentication = end.authentication;
        message_ok = end.accepted;
    }
    report.accepted = report.commands.iter().all(|c| c.accepted)
        && report.recipients.iter().all(|c| c.accepted)
        && message_ok;
    report
}

/// The client as the probe names it, or as its reverse lookup finds it
/// (with the queries asked).
async fn client_report(policy: &Policy, probe: &Probe, ip: IpAddr) -> ClientReport {
    let (name, status, lookups) = match &probe.client_name {
        Some(name) => (name.clone(), NameStatus::Verified, Vec::new()),
        None => {
            let found = policy.client_name(ip).await;
            let lookups = found
                .queries
                .iter()
                .map(|(name, rtype, answer): &(String, Rtype, _)| Detail::Dns {
                    name: name.clone(),
                    rtype: rtype.as_str(),
                    answer: answer.to_string(),
                })
                .collect();
            (found.name, found.status, lookups)
        }
    };
    ClientReport {
        ip: ip.to_string(),
        name,
        name_status: status,
        lookups,
    }
}

/// Without `delay_reject`: the client, HELO and MAIL stages at their own
/// commands, until one refuses (its reply returned).
async fn early_commands<'a>(
    policy: &Policy,
    probe: &'a Probe,
    ctx: &mut Context<'a>,
    commands: &mut Vec<CommandReport>,
) -> Option<Reply> {
    let steps = [
        (When::Connect, "CONNECT".to_string()),
        (
            When::Helo,
            format!("HELO {}", probe.helo.as_deref().unwrap_or("")),
        ),
        (When::Mail, format!("MAIL FROM:<{}>", probe.sender)),
    ];
    for (when, command) in steps {
        match when {
            When::Helo if probe.helo.is_none() => continue,
            When::Helo => ctx.helo = probe.helo.as_deref(),
            When::Mail => ctx.sender = Some(&probe.sender),
            _ => {}
        }
        let mut trace = Trace::default();
        let decision = policy.check_traced(when, ctx, &mut trace).await;
        let command = command_report(command, trace, decision, None);
        let accepted = command.accepted;
        let reply = command.reply.clone();
        commands.push(command);
        if !accepted {
            return Some(Reply::plain(0, reply));
        }
    }
    None
}

/// One RCPT: the recipient stage and whether the address is local, or
/// not reached when an earlier command refused.
async fn recipient<'a>(
    policy: &Policy,
    (config, aliases): (&Config, &crate::aliases::LiveTable),
    rcpt: &'a str,
    ctx: &mut Context<'a>,
    refused: Option<&Reply>,
) -> CommandReport {
    let command = format!("RCPT TO:<{rcpt}>");
    if let Some(r) = refused {
        return CommandReport {
            command,
            lists: Vec::new(),
            events: Vec::new(),
            hold: None,
            discard: None,
            prepend: Vec::new(),
            local_recipient: None,
            reply: format!("not reached: refused before RCPT ({})", r.text),
            accepted: false,
        };
    }
    let mut trace = Trace::default();
    let decision = if super::is_bare_postmaster(rcpt) {
        Decision::default()
    } else {
        ctx.recipient = Some(rcpt);
        policy.check_traced(When::Rcpt, ctx, &mut trace).await
    };
    let local = match (&decision.reject, Address::parse(rcpt, true)) {
        (Some(_), _) => None,
        (None, Ok(to)) => Some(super::known_recipient(
            config,
            policy.rewriter(),
            aliases,
            &to,
        )),
        (None, Err(e)) => Some(Err(Reply::new(
            501,
            "5.1.3",
            format!("Bad recipient address syntax ({e})"),
        ))),
    };
    command_report(command, trace, decision, local)
}

fn command_report(
    command: String,
    trace: Trace,
    decision: Decision,
    local: Option<Result<String, Reply>>,
) -> CommandReport {
    let (reply, local_recipient) = match (&decision.reject, &local) {
        (Some(r), _) => (r.clone(), None),
        (None, Some(Err(r))) => (r.clone(), Some(r.to_string())),
        (None, Some(Ok(how))) => (Reply::rcpt_ok(), Some(how.clone())),
        (None, None) if command.starts_with("RCPT") => (Reply::rcpt_ok(), None),
        (None, None) => (Reply::ok(), None),
    };
    CommandReport {
        command,
        lists: trace.lists,
        events: decision.events,
        hold: decision.hold,
        discard: decision.discard,
        prepend: decision.prepend,
        local_recipient,
        accepted: reply.is_positive(),
        reply: reply.to_string(),
    }
}

impl Report {
    /// The report as one JSON object.
    pub(crate) fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report for a terminal.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let c = &self.client;
        let status = match c.name_status {
            NameStatus::Verified => "verified",
            NameStatus::Temporary => "not verified: temporary DNS failure",
            NameStatus::Permanent => "no verified name",
        };
        out += &format!("client: {}[{}] ({status})\n", c.name, c.ip);
        for d in &c.lookups {
            out += &format!("  {}\n", detail_text(d));
        }
        out += &format!(
            "helo: {}\nsender: <{}>\n",
            self.helo
                .as_deref()
                .map_or("(none)".to_string(), |h| format!("<{h}>")),
            self.sender
        );
        out += &format!(
            "listener: {} ({})
login: {}
",
            self.listener,
            match self.listener {
                "submission" => "the lists of [submission]",
                _ => "the lists of [restrictions]",
            },
            self.sasl_username.as_deref().unwrap_or("(none)")
        );
        for w in &self.warnings {
            out += &format!("warning: {w}\n");
        }
        for command in self.commands.iter().chain(&self.recipients) {
            out += "\n";
            command_text(&mut out, command);
        }
        if let Some(m) = &self.message {
            out += &format!("\nmessage: {m}\n");
        }
        if let Some(a) = &self.authentication {
            a.text(&mut out);
        }
        out += if self.accepted {
            "\naccepted\n"
        } else {
            "\nrejected\n"
        };
        out
    }
}

fn command_text(out: &mut String, c: &CommandReport) {
    *out += &format!("{}\n", c.command);
    for list in &c.lists {
        let name = list.stage.name();
        if list.steps.is_empty() && list.result == "permit" {
            *out += &format!("  {name} restrictions: (empty) → permit\n");
            continue;
        }
        *out += &format!("  {name} restrictions → {}\n", list.result);
        for step in &list.steps {
            step_text(out, step, 2);
        }
    }
    for e in &c.events {
        *out += &format!("  {}: {}\n", e.action, e.text);
    }
    if let Some(h) = &c.hold {
        *out += &format!("  hold: {h}\n");
    }
    if let Some(d) = &c.discard {
        *out += &format!("  discard: {d}\n");
    }
    for p in &c.prepend {
        *out += &format!("  prepend: {p}\n");
    }
    if let Some(l) = &c.local_recipient {
        *out += &format!("  recipient check: {l}\n");
    }
    *out += &format!("  result: {}\n", c.reply);
}

fn step_text(out: &mut String, step: &Step, depth: usize) {
    let pad = "  ".repeat(depth);
    if step.element.is_empty() {
        for d in &step.details {
            *out += &format!("{pad}· {}\n", detail_text(d));
        }
        return;
    }
    *out += &format!("{pad}{} → {}\n", step.element, step.result);
    for d in &step.details {
        *out += &format!("{pad}  · {}\n", detail_text(d));
    }
    for inner in &step.steps {
        step_text(out, inner, depth + 1);
    }
}

fn detail_text(d: &Detail) -> String {
    match d {
        Detail::Lookup {
            table,
            query,
            key,
            value,
        } => match (key, value) {
            (Some(k), Some(v)) => format!("{table}: {query}: key {k:?} → {v:?}"),
            _ => format!("{table}: {query}: not found"),
        },
        Detail::Dns {
            name,
            rtype,
            answer,
        } => format!("DNS {name} {rtype} → {answer}"),
        Detail::Note { text } => text.clone(),
    }
}

/// `postern policy test`: prints the report (text or JSON); exit status
/// 0 when every recipient (and the message, at the end of DATA) would
/// be accepted, 1 otherwise.
pub fn main(config: Config, probe: Probe, json: bool) -> std::io::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(Arc::new(config), &probe));
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(if report.accepted { 0 } else { 1 })
}
