//! Deciding: the lists due at a command, each element in order, the first
//! decisive answer winning; access tables' actions as Postfix's
//! `check_table_result`; deferred decisions (`defer_if_permit`,
//! `defer_if_reject`, DNS failures under `dns_failure = "defer"`).

use std::net::Ipv4Addr;

use super::dns::{self, Answer, NameStatus, Rtype};
use super::element::{Access, Element, RblFilter, RblTarget, Stage, parse_result};
use super::syntax::{
    CLIENT, HELO, RECIPIENT, SENDER, Target, access_reply, access_reply_dsn, access_reply_or,
    dsn_fix, invalid_helo, non_fqdn_address, non_fqdn_helo, rejected,
};
use super::trace::{Detail, Trace};
use super::{Context, Decision, Event, Policy, When};
use crate::auth_results::{Identity, SpfChecks, spf_name};
use crate::config::DnsFailure;
use crate::maps::{self, Action, MapError, Table};
use crate::reply::Reply;
use mail_auth::SpfResult;

/// The result of one element, or of one list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No decision: the next element decides.
    Dunno,
    Permit,
    /// Refused (4xx or 5xx).
    Reject(Reply),
}

/// `postern_restriction_hits_total`: the element that decided a list
/// (its keyword: `check_client_access`, `reject_rbl_client`, …) and how.
fn count_hit(element: &Element, outcome: &Outcome) {
    use crate::metrics::registry::{self as reg, sink};
    if !sink::enabled() {
        return;
    }
    let action = match outcome {
        Outcome::Dunno => return,
        Outcome::Permit => "permit",
        Outcome::Reject(r) if r.code < 500 => "defer",
        Outcome::Reject(_) => "reject",
    };
    let text = element.to_string();
    let keyword = text.split_whitespace().next().unwrap_or("");
    sink::inc(
        reg::RESTRICTION_HITS,
        &[("element", keyword), ("action", action)],
    );
}

/// Postfix's `unknown_address_reject_code`: an unknown sender or
/// recipient domain is refused for now, not for good (a new domain's DNS
/// may not be there yet).
const UNKNOWN_ADDRESS_REJECT_CODE: u16 = 450;

/// One evaluation of the lists due at a command.
pub(crate) struct Eval<'a, 't> {
    pub(super) policy: &'a Policy,
    when: When,
    pub(super) ctx: &'a Context<'a>,
    trace: Option<&'t mut Trace>,
    decision: Decision,
    defer_if_permit: Option<Reply>,
    defer_if_reject: Option<Reply>,
}

impl<'a, 't> Eval<'a, 't> {
    pub(crate) fn new(
        policy: &'a Policy,
        when: When,
        ctx: &'a Context<'a>,
        trace: Option<&'t mut Trace>,
    ) -> Self {
        Eval {
            policy,
            when,
            ctx,
            trace,
            decision: Decision::default(),
            defer_if_permit: None,
            defer_if_reject: None,
        }
    }

    /// Runs the lists due now; the first that refuses ends the check.
    pub(crate) async fn run(mut self) -> Decision {
        use Stage::*;
        let delay = self.policy.config.restrictions.delay_reject;
        let stages: &[Stage] = match (self.when, delay) {
            (When::Rcpt, true) => &[Client, Helo, Sender, Relay, Recipient],
            (When::Rcpt, false) => &[Relay, Recipient],
            (When::Connect, false) => &[Client],
            (When::Helo, false) => &[Helo],
            (When::Mail, false) => &[Sender],
            (_, true) => &[],
        };
        for &stage in stages {
            let missing = match stage {
                Helo if self.ctx.helo.is_none() => Some("no HELO or EHLO given"),
                Sender if self.ctx.sender.is_none() => Some("no MAIL FROM given"),
                _ => None,
            };
            if let Some(why) = missing {
                if let Some(t) = self.trace.as_deref_mut() {
                    t.begin_list(stage);
                    t.end_list(format!("skipped ({why})"));
                }
                continue;
            }
            if let Outcome::Reject(reply) = self.list(stage).await {
                let reply = match self.defer_if_reject.take() {
                    Some(deferral) if reply.code >= 500 => deferral,
                    _ => reply,
                };
                self.decision.reject = Some(reply);
                return self.decision;
            }
        }
        if let Some(deferral) = self.defer_if_permit.take() {
            self.note(format!(
                "a deferred decision turns the permit into: {deferral}"
            ));
            self.decision.reject = Some(deferral);
        }
        self.decision
    }

    /// One list: the first decisive element, or permit at its end.
    async fn list(&mut self, stage: Stage) -> Outcome {
        let policy = self.policy;
        if let Some(t) = self.trace.as_deref_mut() {
            t.begin_list(stage);
        }
        let outcome = match &policy.lists_for(self.ctx.submission)[stage as usize] {
            Err(e) => {
                log::warn!("restrictions.{}: {e}", stage.name());
                self.note(format!("the list does not parse: {e}"));
                Outcome::Reject(Reply::server_configuration_error())
            }
            Ok(list) => {
                let target = self.target(stage);
                let mut outcome = Outcome::Permit;
                for element in list {
                    match self.element(element, &target, true).await {
                        Outcome::Dunno => continue,
                        decided => {
                            count_hit(element, &decided);
                            outcome = decided;
                            break;
                        }
                    }
                }
                outcome
            }
        };
        if let Some(t) = self.trace.as_deref_mut() {
            t.end_list(describe(&outcome));
        }
        outcome
    }

    /// Who the replies of a list's own elements (`reject`, a bare table)
    /// speak of.
    fn target(&self, stage: Stage) -> Target {
        match stage {
            Stage::Client => Target {
                name: self.namaddr(),
                class: CLIENT,
            },
            Stage::Helo => Target {
                name: self.ctx.helo.unwrap_or("").to_string(),
                class: HELO,
            },
            Stage::Sender => Target {
                name: self.ctx.sender.unwrap_or("").to_string(),
                class: SENDER,
            },
            Stage::Relay | Stage::Recipient => Target {
                name: self.ctx.recipient.unwrap_or("").to_string(),
                class: RECIPIENT,
            },
        }
    }

    /// `name[ip]`.
    fn namaddr(&self) -> String {
        format!("{}[{}]", self.ctx.name, self.ctx.ip)
    }

    /// One element, traced; `tables` is false inside an access table's
    /// result, where tables are not allowed.
    async fn element(&mut self, element: &Element, target: &Target, tables: bool) -> Outcome {
        if let Some(t) = self.trace.as_deref_mut() {
            t.begin_step(element.to_string());
        }
        let mut inner = element;
        let mut warn_only = false;
        while let Element::WarnIfReject(next) = inner {
            warn_only = true;
            inner = next;
        }
        let mut outcome = match inner {
            Element::CheckAccess { what, table } if tables => self.access(*what, table).await,
            other => self.simple(other, target).await,
        };
        if warn_only && let Outcome::Reject(reply) = &outcome {
            self.event("reject_warning", reply.to_string());
            self.note(format!("warn_if_reject: logged instead of {reply}"));
            outcome = Outcome::Dunno;
        }
        if let Some(t) = self.trace.as_deref_mut() {
            t.end_step(describe(&outcome));
        }
        outcome
    }

    /// Every element but an access table.
    async fn simple(&mut self, element: &Element, target: &Target) -> Outcome {
        match element {
            Element::Permit
            | Element::Reject
            | Element::Defer
            | Element::DeferIfPermit
            | Element::DeferIfReject => self.fixed(element, target),
            Element::PermitMynetworks => self.permit_mynetworks(),
            Element::PermitSaslAuthenticated => self.permit_sasl_authenticated(),
            Element::SenderLoginMismatch(check) => self.sender_login_mismatch(*check),
            Element::PermitAuthDestination
            | Element::RejectUnauthDestination
            | Element::DeferUnauthDestination => self.destination(element),
            Element::RejectUnlistedRecipient => self.unlisted_recipient(),
            Element::CheckAccess { table, .. } => {
                log::warn!("a lookup table in an access table's result: {table}");
                Outcome::Reject(Reply::server_configuration_error())
            }
            Element::RejectRbl {
                target: what,
                zone,
                filter,
            } => self.rbl(*what, zone, filter.as_ref()).await,
            Element::RejectMapsRbl => self.maps_rbl().await,
            Element::RejectUnknownSenderDomain
            | Element::RejectUnknownRecipientDomain
            | Element::RejectNonFqdnSender
            | Element::RejectNonFqdnRecipient
            | Element::RejectNonFqdnHeloHostname
            | Element::RejectInvalidHeloHostname
            | Element::RejectUnknownHeloHostname => self.envelope(element).await,
            Element::RejectUnknownClientHostname => self.unknown_client_hostname(),
            Element::RejectSpfFail => self.reject_spf_fail().await,
            Element::CheckPolicyService(service) => self.policy_service(service).await,
            Element::WarnIfReject(_) => Outcome::Dunno,
        }
    }

    /// permit, reject, defer and defer_if_*: the same answer always.
    fn fixed(&mut self, element: &Element, target: &Target) -> Outcome {
        match element {
            Element::Permit => Outcome::Permit,
            Element::Reject => Outcome::Reject(rejected(554, "5.7.1", target, "Access denied")),
            Element::Defer => Outcome::Reject(rejected(450, "4.3.2", target, "Try again later")),
            Element::DeferIfPermit => {
                let r = rejected(450, "4.7.0", target, "defer_if_permit requested");
                self.defer_if_permit.get_or_insert(r);
                Outcome::Dunno
            }
            Element::DeferIfReject => {
                let r = rejected(450, "4.7.0", target, "defer_if_reject requested");
                self.defer_if_reject.get_or_insert(r);
                Outcome::Dunno
            }
            // `simple` sends nothing else here.
            _ => Outcome::Dunno,
        }
    }

    fn permit_mynetworks(&mut self) -> Outcome {
        let ip = self.ctx.ip.to_canonical();
        let config = &self.policy.config;
        match config.relay.networks.iter().find(|n| n.contains(&ip)) {
            Some(net) => {
                let note = format!("{ip} is in relay.networks ({net})");
                self.note(note);
                Outcome::Permit
            }
            None => {
                self.note(format!("{ip} is not in relay.networks"));
                Outcome::Dunno
            }
        }
    }

    /// permit_auth_destination, reject_unauth_destination and
    /// defer_unauth_destination.
    fn destination(&mut self, element: &Element) -> Outcome {
        let Some(rcpt) = self.ctx.recipient else {
            return self.skip("no recipient yet");
        };
        let authorized = match self.authorized_destination(rcpt) {
            Ok(authorized) => authorized,
            Err(r) => return Outcome::Reject(r),
        };
        match (element, authorized) {
            (Element::PermitAuthDestination, true) => Outcome::Permit,
            (Element::RejectUnauthDestination, false) => Outcome::Reject(Reply::relay_denied(rcpt)),
            (Element::DeferUnauthDestination, false) => {
                Outcome::Reject(Reply::relay_deferred(rcpt))
            }
            _ => Outcome::Dunno,
        }
    }

    /// reject_unlisted_recipient: the recipient must be known in its
    /// class (`policy::known_recipient`).
    fn unlisted_recipient(&mut self) -> Outcome {
        let Some(rcpt) = self.ctx.recipient else {
            return self.skip("no recipient yet");
        };
        let Some(aliases) = self.ctx.aliases else {
            return self.skip("no alias table here");
        };
        let Ok(to) = crate::address::Address::parse(rcpt, true) else {
            return self.skip("not an address");
        };
        match super::known_recipient(&self.policy.config, self.policy.rewriter(), aliases, &to) {
            Ok(why) => {
                self.note(why);
                Outcome::Dunno
            }
            Err(r) => Outcome::Reject(r),
        }
    }

    /// reject_maps_rbl: `reject_rbl_client` for each of
    /// `restrictions.rbl_domains`.
    async fn maps_rbl(&mut self) -> Outcome {
        let zones = self.policy.config.restrictions.rbl_domains.clone();
        for zone in &zones {
            let zone = zone.trim_end_matches('.').to_ascii_lowercase();
            match self.rbl(RblTarget::ClientAddress, &zone, None).await {
                Outcome::Dunno => continue,
                decided => return decided,
            }
        }
        Outcome::Dunno
    }

    /// The checks of the sender, the recipient and the HELO name.
    async fn envelope(&mut self, element: &Element) -> Outcome {
        let ctx = self.ctx;
        match element {
            Element::RejectUnknownSenderDomain => match ctx.sender {
                None => self.skip("no MAIL FROM given"),
                Some("") => self.skip("null sender"),
                Some(sender) => self.unknown_address(sender, SENDER).await,
            },
            Element::RejectUnknownRecipientDomain => match ctx.recipient {
                None => self.skip("no recipient yet"),
                Some(rcpt) => self.unknown_address(rcpt, RECIPIENT).await,
            },
            Element::RejectNonFqdnSender => match ctx.sender {
                None => self.skip("no MAIL FROM given"),
                Some("") => self.skip("null sender"),
                Some(sender) => reply_or_dunno(non_fqdn_address(sender, SENDER)),
            },
            Element::RejectNonFqdnRecipient => match ctx.recipient {
                None => self.skip("no recipient yet"),
                Some(rcpt) => reply_or_dunno(non_fqdn_address(rcpt, RECIPIENT)),
            },
            Element::RejectNonFqdnHeloHostname => match ctx.helo {
                None => self.skip("no HELO or EHLO given"),
                Some(helo) => reply_or_dunno(non_fqdn_helo(helo)),
            },
            Element::RejectInvalidHeloHostname => match ctx.helo {
                None => self.skip("no HELO or EHLO given"),
                Some(helo) => reply_or_dunno(invalid_helo(helo)),
            },
            Element::RejectUnknownHeloHostname => match ctx.helo {
                None => self.skip("no HELO or EHLO given"),
                Some(helo) => self.unknown_helo(helo).await,
            },
            // `simple` sends nothing else here.
            _ => Outcome::Dunno,
        }
    }

    /// The transaction's SPF results (made now if no element asked
    /// before), traced; `None` without a sender or a verifier.
    async fn spf(&mut self) -> Option<SpfChecks> {
        let ctx = self.ctx;
        let verifier = self.policy.verifier.as_ref()?;
        let who = Identity {
            client_ip: ctx.ip.to_canonical(),
            helo: ctx.helo.unwrap_or(""),
            mail_from: ctx.sender?,
        };
        let checks = match ctx.spf {
            Some(cell) => cell.get_or_init(|| verifier.spf(&who)).await.clone(),
            None => verifier.spf(&who).await,
        };
        let said =
            |out: &mail_auth::SpfOutput| format!("{} for {}", spf_name(out.result()), out.domain());
        self.note(format!(
            "SPF of {}: MAIL FROM {}, HELO {}",
            who.client_ip,
            said(&checks.mail_from),
            said(&checks.helo)
        ));
        Some(checks)
    }

    /// `check_policy_service`: the server's action, as an access table's
    /// for the recipient (the client before RCPT); a server that cannot
    /// be asked is `451 4.3.5 Server configuration problem`, Postfix's
    /// `smtpd_policy_service_default_action`.
    async fn policy_service(&mut self, service: &str) -> Outcome {
        let ctx = self.ctx;
        let state = match self.when {
            When::Connect => "CONNECT",
            When::Helo => "EHLO",
            When::Mail => "MAIL",
            When::Rcpt => "RCPT",
        };
        let name = ctx.name.to_string();
        let attributes = [
            ("request", "smtpd_access_policy".to_string()),
            ("protocol_state", state.to_string()),
            ("protocol_name", "ESMTP".to_string()),
            ("client_address", ctx.ip.to_canonical().to_string()),
            ("client_name", name.clone()),
            ("reverse_client_name", name),
            ("helo_name", ctx.helo.unwrap_or("").to_string()),
            ("sender", ctx.sender.unwrap_or("").to_string()),
            ("recipient", ctx.recipient.unwrap_or("").to_string()),
            ("recipient_count", "0".to_string()),
            ("queue_id", String::new()),
            ("instance", String::new()),
            ("size", "0".to_string()),
            ("sasl_username", ctx.sasl_user.unwrap_or("").to_string()),
        ];
        let action = match super::service::ask(service, &attributes).await {
            Ok(action) => action,
            Err(e) => {
                log::warn!("problem talking to server {service}: {e}");
                self.note(format!("policy server {service}: {e}"));
                return Outcome::Reject(Reply::new(451, "4.3.5", "Server configuration problem"));
            }
        };
        self.note(format!("policy server {service}: action={action}"));
        let target = match ctx.recipient {
            Some(r) => Target {
                name: r.to_string(),
                class: RECIPIENT,
            },
            None => Target {
                name: self.namaddr(),
                class: CLIENT,
            },
        };
        self.table_result(service, "policy query", &action, &target)
            .await
    }

    /// `reject_spf_fail`: MAIL FROM's SPF result is `fail` (for the null
    /// sender, HELO's). A `temperror` is a DNS failure
    /// (`restrictions.dns_failure`); every other result says nothing.
    async fn reject_spf_fail(&mut self) -> Outcome {
        let Some(sender) = self.ctx.sender else {
            return self.skip("no MAIL FROM given");
        };
        let Some(spf) = self.spf().await else {
            return self.skip("SPF verification is unavailable (see the log)");
        };
        let out = &spf.mail_from;
        match out.result() {
            SpfResult::Fail => {
                let why = out
                    .explanation()
                    .map(|e| {
                        crate::wire::printable::printable(e, false)
                            .chars()
                            .take(200)
                            .collect()
                    })
                    .unwrap_or_else(|| {
                        format!(
                            "{} is not a permitted sender of {}",
                            self.ctx.ip.to_canonical(),
                            out.domain()
                        )
                    });
                Outcome::Reject(Reply::spf_fail(sender, &why))
            }
            SpfResult::TempError => {
                let why = format!("{}: SPF check: temporary DNS failure", out.domain());
                self.dns_failure(why, Reply::spf_temperror(sender))
            }
            _ => Outcome::Dunno,
        }
    }

    fn unknown_client_hostname(&mut self) -> Outcome {
        let ctx = self.ctx;
        let reply = Reply::unknown_client_hostname(&ctx.ip.to_string());
        match ctx.name_status {
            NameStatus::Verified => Outcome::Dunno,
            NameStatus::Permanent => Outcome::Reject(reply),
            NameStatus::Temporary => {
                let why = format!("{}: temporary failure looking up its name", ctx.ip);
                self.dns_failure(why, reply)
            }
        }
    }

    /// Whether mail for `rcpt` may come from anyone: a domain of a final
    /// class (local, virtual alias) or a relay domain
    /// ([`crate::rewrite::Class`]), without sender-specified routing
    /// (`a%b@here`, `a@b@here`, `b!a@here`). `Err`: a table failed.
    fn authorized_destination(&mut self, rcpt: &str) -> Result<bool, Reply> {
        let (local, domain) = rcpt.rsplit_once('@').unwrap_or((rcpt, ""));
        if let Some(ours) = self.virtual_mailbox_destination(rcpt, domain) {
            return Ok(ours);
        }
        let class = match self.policy.rewriter().class(domain) {
            Ok(class) => class,
            Err(e) => {
                log::warn!("{e}");
                self.note(format!("{domain}: table lookup failed: {e}"));
                return Err(Reply::temporary_lookup_failure(rcpt));
            }
        };
        if !class.is_authorized() {
            self.note(format!(
                "{domain} is not in local.domains, virtual.alias_domains or relay.domains"
            ));
            return Ok(false);
        }
        if local.contains(['@', '%', '!']) {
            self.note(format!("{rcpt} carries sender-specified routing"));
            return Ok(false);
        }
        self.note(format!(
            "{} is in {}",
            domain.to_ascii_lowercase(),
            class.key()
        ));
        Ok(true)
    }

    /// A virtual mailbox domain is a final destination too (`None`: not
    /// one). A domain table that cannot be read counts as ours here: the
    /// recipient check after the restrictions then defers (451 4.3.0)
    /// instead of refusing relay for good.
    fn virtual_mailbox_destination(&mut self, rcpt: &str, domain: &str) -> Option<bool> {
        let local = rcpt.rsplit_once('@').map_or(rcpt, |(l, _)| l);
        match crate::virtual_mailbox::is_domain(&self.policy.config, domain) {
            Ok(false) => None,
            Ok(true) if local.contains(['@', '%', '!']) => None,
            Ok(true) => {
                let note = format!(
                    "{} is in virtual.mailbox_domains",
                    domain.to_ascii_lowercase()
                );
                self.note(note);
                Some(true)
            }
            Err(e) => {
                self.note(format!("virtual.mailbox_domains: {e}"));
                Some(true)
            }
        }
    }

    /// `check_*_access TABLE`.
    async fn access(&mut self, what: Access, spec: &str) -> Outcome {
        let ctx = self.ctx;
        let delimiter = &self.policy.config.local.recipient_delimiter;
        let (target, query) = match what {
            Access::Client => (
                Target {
                    name: self.namaddr(),
                    class: CLIENT,
                },
                format!("client {}", self.namaddr()),
            ),
            Access::Helo => match ctx.helo {
                None => return self.skip("no HELO or EHLO given"),
                Some(h) => (
                    Target {
                        name: h.to_string(),
                        class: HELO,
                    },
                    format!("helo {h}"),
                ),
            },
            Access::Sender => match ctx.sender {
                None => return self.skip("no MAIL FROM given"),
                Some(s) => (
                    Target {
                        name: s.to_string(),
                        class: SENDER,
                    },
                    format!("sender <{s}>"),
                ),
            },
            Access::Recipient => match ctx.recipient {
                None => return self.skip("no recipient yet"),
                Some(r) => (
                    Target {
                        name: r.to_string(),
                        class: RECIPIENT,
                    },
                    format!("recipient <{r}>"),
                ),
            },
            Access::Spf => match (ctx.sender, self.spf().await) {
                (None, _) => return self.skip("no MAIL FROM given"),
                (_, None) => return self.skip("SPF verification is unavailable (see the log)"),
                (Some(s), Some(spf)) => (
                    Target {
                        name: s.to_string(),
                        class: SENDER,
                    },
                    spf_name(spf.mail_from.result()).to_string(),
                ),
            },
        };
        let table = match self.table(spec) {
            Ok(t) => t,
            Err(MapError::Spec(e)) => {
                log::warn!("{e}");
                self.note(format!("table {spec}: {e}"));
                return Outcome::Reject(Reply::server_configuration_error());
            }
            Err(MapError::Unavailable(e)) => {
                log::warn!("{spec}: table lookup problem: {e}");
                self.note(format!("table {spec} is unavailable: {e}"));
                return Outcome::Reject(Reply::temporary_lookup_failure(&target.name));
            }
        };
        let found = match what {
            Access::Client => maps::access::client(&table, ctx.ip, Some(ctx.name)),
            Access::Helo => maps::access::domain(&table, &target.name),
            Access::Sender | Access::Recipient => {
                maps::access::address(&table, &target.name, delimiter)
            }
            Access::Spf => table
                .get(&query)
                .map(|found| found.map(|value| (query.clone(), value))),
        };
        let query = match what {
            Access::Spf => format!("SPF result {query} of <{}>", target.name),
            _ => query,
        };
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                log::warn!("{spec}: table lookup problem: {e}");
                self.note(format!("lookup failed: {e}"));
                return Outcome::Reject(Reply::temporary_lookup_failure(&target.name));
            }
        };
        self.detail(Detail::Lookup {
            table: spec.to_string(),
            query,
            key: found.as_ref().map(|(k, _)| k.clone()),
            value: found.as_ref().map(|(_, v)| v.clone()),
        });
        match found {
            None => Outcome::Dunno,
            Some((key, value)) => self.table_result(spec, &key, &value, &target).await,
        }
    }

    /// The opened table of `spec`; one that could not be opened is tried
    /// again (it may have been repaired).
    fn table(&self, spec: &str) -> Result<Table, MapError> {
        match self.policy.tables.get(spec) {
            Some(Ok(t)) => Ok(t.clone()),
            _ => Table::open(spec, &self.policy.config),
        }
    }

    /// What a table's value means (Postfix's `check_table_result`).
    async fn table_result(&mut self, spec: &str, key: &str, value: &str, t: &Target) -> Outcome {
        let in_transaction = self.ctx.sender.is_some();
        let triggers = |text: Option<String>, action: &str| {
            format!(
                "<{}>: {} {}",
                t.name,
                t.class,
                text.unwrap_or_else(|| format!("triggers {action} action"))
            )
        };
        match maps::parse_action(value) {
            Action::Ok => Outcome::Permit,
            Action::Dunno => Outcome::Dunno,
            Action::Reject(text) => Outcome::Reject(access_reply(554, "5.7.1", text, t)),
            Action::Defer(text) => Outcome::Reject(access_reply(450, "4.7.1", text, t)),
            Action::DeferIfPermit(text) => {
                let r = access_reply_or(450, "4.7.1", text, t, "Service unavailable");
                self.defer_if_permit.get_or_insert(r);
                Outcome::Dunno
            }
            Action::DeferIfReject(text) => {
                let r = access_reply_or(450, "4.7.1", text, t, "Service unavailable");
                self.defer_if_reject.get_or_insert(r);
                Outcome::Dunno
            }
            Action::Code { code, dsn, text } => {
                let dsn = dsn.unwrap_or_else(|| format!("{}.7.1", code / 100));
                let text = Some(text).filter(|t| !t.is_empty());
                Outcome::Reject(access_reply_dsn(code, dsn, text, t))
            }
            Action::Discard(text) => {
                if !in_transaction {
                    self.skipped_action(spec, "DISCARD");
                    return Outcome::Dunno;
                }
                let line = triggers(text, "DISCARD");
                self.event("discard", line.clone());
                self.decision.discard.get_or_insert(line);
                Outcome::Permit
            }
            Action::Hold(text) => {
                if !in_transaction {
                    self.skipped_action(spec, "HOLD");
                } else if self.decision.hold.is_none() {
                    let line = triggers(text, "HOLD");
                    self.event("hold", line.clone());
                    self.decision.hold = Some(line);
                }
                Outcome::Dunno
            }
            Action::Warn(text) => {
                self.event("warn", text.unwrap_or_default());
                Outcome::Dunno
            }
            Action::Prepend(header) => {
                if !in_transaction {
                    self.skipped_action(spec, "PREPEND");
                } else if crate::wire::header::is_tight_header(header.as_bytes()) {
                    self.note(format!("prepends {header:?}"));
                    self.decision.prepend.push(header);
                } else {
                    log::warn!("access table {spec} entry \"{key}\" requires header: text");
                }
                Outcome::Dunno
            }
            Action::Redirect(to) => {
                log::warn!(
                    "access table {spec} entry \"{key}\": action REDIRECT {to} is not \
                     supported in restrictions; ignored"
                );
                self.note("REDIRECT is not supported in restrictions: ignored".to_string());
                Outcome::Dunno
            }
            Action::Ignore | Action::Replace(_) => {
                log::warn!(
                    "access table {spec} entry \"{key}\": {value:?} is a header check action"
                );
                Outcome::Reject(Reply::server_configuration_error())
            }
            Action::Restriction(value) => self.restrictions_in_result(spec, key, &value, t).await,
        }
    }

    /// An access table's value that names restrictions.
    async fn restrictions_in_result(
        &mut self,
        spec: &str,
        key: &str,
        value: &str,
        target: &Target,
    ) -> Outcome {
        let word = value.split_whitespace().next().unwrap_or("");
        match word.to_ascii_uppercase().as_str() {
            "INFO" => {
                let text = value[word.len()..].trim().to_string();
                self.event("info", text);
                return Outcome::Dunno;
            }
            w @ ("FILTER" | "BCC" | "HANGUP" | "DELAY") => {
                log::warn!(
                    "access table {spec} entry \"{key}\": action {w} is not supported; ignored"
                );
                self.note(format!("{w} is not supported: ignored"));
                return Outcome::Dunno;
            }
            _ => {}
        }
        let elements = match parse_result(value) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("access table {spec} entry \"{key}\": unknown smtpd restriction: {e}");
                self.note(format!("unknown restriction in the result: {e}"));
                return Outcome::Reject(Reply::server_configuration_error());
            }
        };
        if elements.is_empty() {
            log::warn!("access table {spec} entry {key} has empty value");
            return Outcome::Permit;
        }
        for element in &elements {
            match Box::pin(self.element(element, target, false)).await {
                Outcome::Dunno => continue,
                decided => return decided,
            }
        }
        Outcome::Dunno
    }

    /// A DNS blocklist.
    async fn rbl(&mut self, what: RblTarget, zone: &str, filter: Option<&RblFilter>) -> Outcome {
        let ctx = self.ctx;
        fn named(name: &str) -> Option<&str> {
            Some(name).filter(|n| !n.is_empty() && !n.starts_with('['))
        }
        let domain_of = |addr: &str| addr.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        let (query, class, subject, reply_name) = match what {
            RblTarget::ClientAddress => {
                let ip = ctx.ip.to_canonical();
                (
                    dns::rbl_query(ip, zone),
                    CLIENT,
                    ip.to_string(),
                    self.namaddr(),
                )
            }
            RblTarget::ClientName => match Some(ctx.name).filter(|n| *n != "unknown") {
                None => return self.skip("the client has no verified name"),
                Some(n) => (format!("{n}.{zone}"), CLIENT, n.to_string(), self.namaddr()),
            },
            RblTarget::Helo => match ctx.helo.and_then(named) {
                None => return self.skip("no HELO name"),
                Some(h) => (format!("{h}.{zone}"), HELO, h.to_string(), h.to_string()),
            },
            RblTarget::Sender | RblTarget::Recipient => {
                let (addr, class) = match what {
                    RblTarget::Sender => (ctx.sender, SENDER),
                    _ => (ctx.recipient, RECIPIENT),
                };
                let Some(addr) = addr else {
                    return self.skip("no address yet");
                };
                let domain = domain_of(addr);
                match named(&domain) {
                    None => return self.skip("no domain to look up"),
                    Some(d) => (
                        format!("{d}.{zone}"),
                        class,
                        addr.to_string(),
                        addr.to_string(),
                    ),
                }
            }
        };
        match self.lookup(&query, Rtype::A).await {
            Answer::Found(addrs) => {
                let listed = addrs.iter().any(|a| {
                    filter.is_none_or(|f| a.parse::<Ipv4Addr>().is_ok_and(|ip| f.matches(ip)))
                });
                if !listed {
                    if let Some(f) = filter {
                        self.note(format!("no answer matches the filter {f}"));
                    }
                    return Outcome::Dunno;
                }
                crate::metrics::registry::sink::inc(
                    crate::metrics::registry::DNSBL_ANSWERS,
                    &[("zone", zone)],
                );
                let reason = match self.lookup(&query, Rtype::Txt).await {
                    Answer::Found(texts) => Some(dns::txt_reason(&texts)),
                    _ => None,
                };
                Outcome::Reject(Reply::rbl_blocked(class, &subject, zone, reason.as_deref()))
            }
            Answer::NoData | Answer::NxDomain => Outcome::Dunno,
            Answer::Temporary(why) => {
                let reply = Reply::rejected(
                    450,
                    "4.7.1".to_string(),
                    &reply_name,
                    class,
                    &format!("Temporary DNS failure looking up {query}"),
                );
                self.dns_failure(format!("{query}: RBL lookup error: {why}"), reply)
            }
        }
    }

    /// `reject_unknown_sender_domain` / `_recipient_domain`: no MX, A or
    /// AAAA record.
    async fn unknown_address(&mut self, addr: &str, class: &'static str) -> Outcome {
        let domain = addr.rsplit_once('@').map_or("", |(_, d)| d);
        if domain.is_empty() || domain.starts_with('[') {
            return self.skip("no domain to look up");
        }
        if self.policy.config.is_local_domain(domain) {
            return self.skip("a local domain");
        }
        if let Ok(crate::rewrite::Class::VirtualAlias) = self.policy.rewriter().class(domain) {
            return self.skip("a virtual alias domain");
        }
        let sender = class == SENDER;
        let dsn = if sender { "4.1.8" } else { "4.1.2" };
        let not_found = || {
            let code = UNKNOWN_ADDRESS_REJECT_CODE;
            Reply::rejected(
                code,
                dsn_fix(code, dsn, class),
                addr,
                class,
                "Domain not found",
            )
        };
        let mut temporary = None;
        match self.lookup(domain, Rtype::Mx).await {
            Answer::Found(mx) => {
                if mx.len() == 1 && mx[0].ends_with(" .") {
                    let (code, dsn) = if sender {
                        (550, "5.7.27")
                    } else {
                        (556, "5.1.10")
                    };
                    let text = format!("Domain {domain} does not accept mail (nullMX)");
                    return Outcome::Reject(Reply::rejected(code, dsn.into(), addr, class, &text));
                }
                return Outcome::Dunno;
            }
            Answer::NxDomain => return Outcome::Reject(not_found()),
            Answer::Temporary(why) => temporary = Some(why),
            Answer::NoData => {}
        }
        for rtype in [Rtype::A, Rtype::Aaaa] {
            match self.lookup(domain, rtype).await {
                Answer::Found(_) => return Outcome::Dunno,
                Answer::Temporary(why) => temporary = Some(why),
                Answer::NoData | Answer::NxDomain => {}
            }
        }
        match temporary {
            Some(why) => self.dns_failure(
                format!("{domain}: MX or address lookup error: {why}"),
                not_found(),
            ),
            None => Outcome::Reject(not_found()),
        }
    }

    /// `reject_unknown_helo_hostname`: no A, AAAA or MX record.
    async fn unknown_helo(&mut self, helo: &str) -> Outcome {
        if helo.starts_with('[') {
            return self.skip("an address literal");
        }
        let name = helo.strip_suffix('.').unwrap_or(helo);
        let reply = Reply::rejected(450, "4.7.1".into(), helo, HELO, "Host not found");
        let mut temporary = None;
        for rtype in [Rtype::A, Rtype::Aaaa, Rtype::Mx] {
            match self.lookup(name, rtype).await {
                Answer::Found(_) => return Outcome::Dunno,
                Answer::NxDomain => return Outcome::Reject(reply),
                Answer::Temporary(why) => temporary = Some(why),
                Answer::NoData => {}
            }
        }
        match temporary {
            Some(why) => {
                self.dns_failure(format!("{name}: address or MX lookup error: {why}"), reply)
            }
            None => Outcome::Reject(reply),
        }
    }

    /// A DNS lookup, traced.
    async fn lookup(&mut self, name: &str, rtype: Rtype) -> Answer {
        let answer = self.policy.resolver.lookup(name, rtype).await;
        self.detail(Detail::Dns {
            name: name.to_string(),
            rtype: rtype.as_str(),
            answer: answer.to_string(),
        });
        answer
    }

    /// A DNS failure never rejects: it passes, or (`dns_failure =
    /// "defer"`) turns a final permit into `reply`.
    fn dns_failure(&mut self, why: String, reply: Reply) -> Outcome {
        log::warn!("{why}");
        match self.policy.config.restrictions.dns_failure {
            DnsFailure::Pass => {
                self.note(format!(
                    "{why}: passed (restrictions.dns_failure = \"pass\")"
                ));
            }
            DnsFailure::Defer => {
                self.note(format!(
                    "{why}: deferred unless something else decides (restrictions.dns_failure = \"defer\")"
                ));
                self.defer_if_permit.get_or_insert(reply);
            }
        }
        Outcome::Dunno
    }

    pub(super) fn skip(&mut self, why: &str) -> Outcome {
        self.note(format!("skipped: {why}"));
        Outcome::Dunno
    }

    fn skipped_action(&mut self, spec: &str, action: &str) {
        log::warn!(
            "access table {spec}: with restrictions.delay_reject = false, action {action} \
             is always skipped in client or helo restrictions"
        );
        self.note(format!("{action} skipped: no mail transaction yet"));
    }

    fn event(&mut self, action: &'static str, text: String) {
        self.note(format!("{action}: {text}"));
        self.decision.events.push(Event { action, text });
    }

    pub(super) fn note(&mut self, text: String) {
        self.detail(Detail::Note { text });
    }

    fn detail(&mut self, detail: Detail) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.detail(detail);
        }
    }
}

/// An outcome as the tracer prints it.
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Dunno => "no decision".to_string(),
        Outcome::Permit => "permit".to_string(),
        Outcome::Reject(r) => r.to_string(),
    }
}

/// A syntax check's reply as an outcome.
fn reply_or_dunno(reply: Option<Reply>) -> Outcome {
    reply.map_or(Outcome::Dunno, Outcome::Reject)
}
