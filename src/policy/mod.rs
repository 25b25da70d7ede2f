//! The SMTP access policy: Postfix's restriction lists (`[restrictions]`
//! `client`, `helo`, `sender`, `relay`, `recipient`), evaluated for smtpd
//! and for `postern policy test`.
//!
//! Each list is a sequence of [`Element`]s ([`parse_list`]: typed once,
//! when the configuration is read, so that a typo is an error naming the
//! file, the line and the element). Within a list the first element that
//! decides wins: permit ends the list (and only that list), a reject or a
//! deferral answers the command; reaching the end is a permit for that
//! list. With `restrictions.delay_reject` (the default, Postfix's
//! `smtpd_delay_reject`) every RCPT runs the client, helo (when HELO was
//! given), sender, relay and recipient lists in that order; otherwise the
//! client list runs at connect, helo at HELO, sender at MAIL, and RCPT
//! runs relay and recipient. The first list that refuses stops the rest.
//!
//! Access tables (`check_*_access TABLE`, or a bare table) are
//! [`crate::maps::Table`]s asked in access(5)'s key orders; their actions
//! (OK, DUNNO, REJECT, DEFER, 4NN/5NN, DISCARD, HOLD, WARN, PREPEND, or
//! restriction names) follow Postfix's `check_table_result`. DNS checks
//! (blocklists, unknown sender domains, the client's name) ask the resolver
//! of `dns.servers` ([`dns`]); a DNS failure never rejects
//! (`restrictions.dns_failure`: pass, or defer with a 4xx when nothing else
//! refuses).
//!
//! Replies come from [`crate::reply::Reply`], Postfix's texts; the caller
//! logs them (`NOQUEUE: reject: RCPT from …`) together with the
//! [`Decision`]'s events (`warn`, `hold`, `discard`, `reject_warning`).
//! HOLD, DISCARD and PREPEND belong to the whole transaction: the caller
//! keeps them from RCPT to the end of DATA.
//!
//! Module map: `element` parses, `eval` decides, `dns` asks DNS, `trace`
//! records and prints what was evaluated (`postern policy test`;
//! `trace::auth`: a message's DKIM, SPF and DMARC results). `element` is
//! a leaf of syntax: the configuration parses the lists with it and names
//! nothing else of `policy` (`tests/imports.rs`).
//!
//! Configuration read: `restrictions.*`, `relay.networks`,
//! `local.domains`, `local.recipient_delimiter`, `virtual.mailbox_domains`
//! and `virtual.mailbox_maps` (final destinations, listed recipients),
//! `dns.servers`, `[maps]`; the address classes and their tables through
//! [`crate::rewrite`] (`virtual.alias_*`, `rewrite.*`, `relay.domains`,
//! `relay.recipient_maps`).

pub(crate) mod dns;
pub(crate) mod element;
pub(crate) mod eval;
mod login;
mod service;
pub(crate) mod submitter;
mod syntax;
pub mod trace;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::auth_results::{SpfChecks, Verifier};
use crate::config::Config;
use crate::maps::{MapError, Table};
use crate::reply::Reply;

pub use self::dns::{ClientName, NameStatus};
pub use self::element::{
    Access, Element, ParseError, RblFilter, RblTarget, Stage, has_relay_guard, parse_list,
    parse_result,
};
pub(crate) use self::trace::Trace;

/// When the restrictions are asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum When {
    /// A client connected (the client list, without delay_reject).
    Connect,
    /// HELO or EHLO (the helo list, without delay_reject).
    Helo,
    /// MAIL FROM (the sender list, without delay_reject).
    Mail,
    /// RCPT TO: the lists not run before, then relay and recipient.
    Rcpt,
}

/// What the session knows when it asks.
#[derive(Clone, Debug)]
pub(crate) struct Context<'a> {
    pub ip: IpAddr,
    /// The verified name, or `unknown`.
    pub name: &'a str,
    pub name_status: NameStatus,
    /// The HELO/EHLO argument, once given.
    pub helo: Option<&'a str>,
    /// The envelope sender once MAIL was given; `""` for `<>`.
    pub sender: Option<&'a str>,
    pub recipient: Option<&'a str>,
    /// The login, once the client authenticated (SMTP AUTH).
    pub sasl_user: Option<&'a str>,
    /// A session on a submission listener: the lists of `[submission]`.
    pub submission: bool,
    /// The transaction's SPF results, made once when an element first
    /// asks (`reject_spf_fail`, `check_spf`) and kept for the message's
    /// `Authentication-Results:`; `None`: made for this check only.
    pub spf: Option<&'a tokio::sync::OnceCell<SpfChecks>>,
    /// The alias table, for `reject_unlisted_recipient` (local domains'
    /// recipients); `None`: that check is skipped.
    pub aliases: Option<&'a crate::aliases::LiveTable>,
}

/// The policy's answer to one command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The command is refused with this reply (4xx or 5xx).
    pub reject: Option<Reply>,
    /// Lines to log in Postfix's shape (`NOQUEUE: warn: RCPT from …: text;
    /// from=<…> …`), in order.
    pub events: Vec<Event>,
    /// HOLD: the whole message goes to the hold queue (with the reason).
    pub hold: Option<String>,
    /// DISCARD: the whole message is accepted and dropped.
    pub discard: Option<String>,
    /// PREPEND: headers (`Name: value`) to put on top of the message.
    pub prepend: Vec<String>,
}

/// One log line of a decision: `action` is Postfix's verb (`warn`,
/// `hold`, `discard`, `reject_warning`, `info`), `text` what follows the
/// client in the line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Event {
    pub action: &'static str,
    pub text: String,
}

/// The restriction lists of one configuration, their tables opened, and
/// the resolver; built when smtpd starts or reloads.
pub(crate) struct Policy {
    config: Arc<Config>,
    lists: [Result<Vec<Element>, ParseError>; 5],
    /// The lists on the submission listeners: `submission.sender` and
    /// `submission.relay`, the others empty.
    submission: [Result<Vec<Element>, ParseError>; 5],
    /// `sasl.sender_login_maps`, opened.
    login_maps: Vec<Result<Table, MapError>>,
    /// The address classes and rewriting tables (`[virtual]`,
    /// `[rewrite]`, `relay.domains`, `relay.recipient_maps`).
    rewriter: crate::rewrite::Rewriter,
    tables: HashMap<String, Result<Table, MapError>>,
    resolver: dns::Resolver,
    /// SPF, DKIM and DMARC on arrival (`[verify]`, `reject_spf_fail`,
    /// `check_spf`), on a resolver of its own (`dns.servers`); `None`
    /// when it could not be built (logged).
    pub(crate) verifier: Option<Arc<Verifier>>,
    problems: Vec<String>,
}

impl Policy {
    /// Parses the lists and opens their tables. Problems (a table that
    /// cannot be opened, a list that does not parse when the configuration
    /// did not come from the file) are logged and kept: the restriction
    /// concerned answers `451 4.3.x` until it is repaired, as Postfix does.
    pub(crate) fn new(config: Arc<Config>) -> Policy {
        let resolver = dns::Resolver::new(&config.dns.servers);
        let verifier = Verifier::new(&config.dns.servers, &config.server.hostname);
        let mut policy = Policy::with_resolver(config, resolver);
        match verifier {
            Ok(v) => policy.verifier = Some(Arc::new(v)),
            Err(e) => {
                let problem = format!("SPF, DKIM and DMARC verification: {e}");
                log::warn!("{problem}");
                policy.problems.push(problem);
            }
        }
        policy
    }

    fn with_resolver(config: Arc<Config>, resolver: dns::Resolver) -> Policy {
        let r = &config.restrictions;
        let lists = Stage::ALL.map(|stage| {
            let items = match stage {
                Stage::Client => &r.client,
                Stage::Helo => &r.helo,
                Stage::Sender => &r.sender,
                Stage::Relay => &r.relay,
                Stage::Recipient => &r.recipient,
            };
            parse_list(stage, items)
        });
        let sub = &config.submission;
        let submission = Stage::ALL.map(|stage| match stage {
            Stage::Sender => parse_list(stage, &sub.sender),
            Stage::Relay => parse_list(stage, &sub.relay),
            _ => Ok(Vec::new()),
        });
        let mut problems = Vec::new();
        let mut tables = HashMap::new();
        let all = Stage::ALL
            .iter()
            .map(|s| (*s, "restrictions"))
            .zip(&lists)
            .chain(
                Stage::ALL
                    .iter()
                    .map(|s| (*s, "submission"))
                    .zip(&submission),
            );
        for ((stage, section), list) in all {
            let list = match list {
                Ok(list) => list,
                Err(e) => {
                    problems.push(format!("{section}.{}: {e}", stage.name()));
                    continue;
                }
            };
            for element in list {
                let element = match element {
                    Element::WarnIfReject(inner) => inner,
                    e => e,
                };
                match element {
                    Element::CheckAccess { table, .. } if !tables.contains_key(table) => {
                        let opened = Table::open(table, &config);
                        if let Err(e) = &opened {
                            problems.push(format!("{section}.{}: {table}: {e}", stage.name()));
                        }
                        tables.insert(table.clone(), opened);
                    }
                    Element::RejectMapsRbl => problems.push(format!(
                        "restrictions.{}: support for restriction \"reject_maps_rbl\" has been \
                         removed in Postfix 3.9; postern runs it as \"reject_rbl_client\" for \
                         each of restrictions.rbl_domains ({}); specify \"reject_rbl_client \
                         domain-name\" instead",
                        stage.name(),
                        r.rbl_domains.join(", ")
                    )),
                    _ => {}
                }
            }
        }
        let login_maps = config
            .sasl
            .sender_login_maps
            .iter()
            .map(|spec| {
                let opened = Table::open(spec, &config);
                if let Err(e) = &opened {
                    problems.push(format!("sasl.sender_login_maps: {spec}: {e}"));
                }
                opened
            })
            .collect();
        for p in &problems {
            log::warn!("{p}");
        }
        let rewriter = crate::rewrite::Rewriter::new(config.clone());
        problems.extend(rewriter.problems().iter().cloned());
        Policy {
            config,
            lists,
            submission,
            login_maps,
            rewriter,
            tables,
            resolver,
            verifier: None,
            problems,
        }
    }

    /// The restriction lists of a session: `[restrictions]`, or on a
    /// submission listener those of `[submission]`.
    fn lists_for(&self, submission: bool) -> &[Result<Vec<Element>, ParseError>; 5] {
        if submission {
            &self.submission
        } else {
            &self.lists
        }
    }

    /// Who owns `sender`, from `sasl.sender_login_maps`: the first table
    /// that knows one of its keys ([`login::sender_keys`]) answers.
    fn sender_owners(&self, sender: &str) -> login::Owners {
        let keys = login::sender_keys(sender, &self.config.local.recipient_delimiter);
        for table in &self.login_maps {
            let table = match table {
                Ok(t) => t,
                Err(e) => return login::Owners::Failed(e.to_string()),
            };
            for key in &keys {
                match table.get(key) {
                    Ok(Some(value)) => return login::Owners::Logins(login::logins(&value)),
                    Ok(None) => {}
                    Err(e) => return login::Owners::Failed(e.to_string()),
                }
            }
        }
        login::Owners::Nobody
    }

    /// The address classes and the rewriting at queue entry.
    pub(crate) fn rewriter(&self) -> &crate::rewrite::Rewriter {
        &self.rewriter
    }

    /// What was wrong when the policy was built (also logged).
    pub(crate) fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The client's verified name (`unknown` when it has none), within
    /// [`dns::CLIENT_NAME_DEADLINE`]. smtpd asks once per connection and
    /// the restrictions use that answer.
    pub(crate) async fn client_name(&self, ip: IpAddr) -> ClientName {
        self.resolver.client_name(ip).await
    }

    /// The resolver of `dns.servers` the DNS checks ask.
    pub(crate) fn resolver(&self) -> &dns::Resolver {
        &self.resolver
    }

    /// Runs the lists due at `when`.
    pub(crate) async fn check(&self, when: When, ctx: &Context<'_>) -> Decision {
        eval::Eval::new(self, when, ctx, None).run().await
    }

    /// As [`Policy::check`], recording every step in `trace`.
    pub(crate) async fn check_traced(
        &self,
        when: When,
        ctx: &Context<'_>,
        trace: &mut Trace,
    ) -> Decision {
        eval::Eval::new(self, when, ctx, Some(trace)).run().await
    }
}

/// Every element of every restriction list (`[restrictions]` and
/// `[submission]`), `warn_if_reject` taken off; lists that do not parse
/// give none (the policy reports them).
fn all_elements(config: &Config) -> Vec<Element> {
    let r = &config.restrictions;
    let sub = &config.submission;
    Stage::ALL
        .iter()
        .zip([&r.client, &r.helo, &r.sender, &r.relay, &r.recipient])
        .chain([(&Stage::Sender, &sub.sender), (&Stage::Relay, &sub.relay)])
        .flat_map(|(stage, items)| parse_list(*stage, items).unwrap_or_default())
        .map(|element| match element {
            Element::WarnIfReject(inner) => *inner,
            e => e,
        })
        .collect()
}

/// The files of the tables the restriction lists name (`hash:/path`,
/// `pcre:/path`, …), for smtpd's sandbox.
pub(crate) fn table_files(config: &Config) -> Vec<std::path::PathBuf> {
    all_elements(config)
        .into_iter()
        .filter_map(|element| match element {
            Element::CheckAccess { table, .. } => {
                let (_, path) = table.split_once(':')?;
                path.starts_with('/')
                    .then(|| std::path::PathBuf::from(path))
            }
            _ => None,
        })
        .collect()
}

/// The servers of `check_policy_service` in the restriction lists, for
/// smtpd's sandbox.
pub(crate) fn policy_services(config: &Config) -> Vec<crate::milter::Address> {
    all_elements(config)
        .into_iter()
        .filter_map(|element| match element {
            Element::CheckPolicyService(service) => crate::milter::Address::parse(&service).ok(),
            _ => None,
        })
        .collect()
}

/// Whether the recipient is one postern accepts without restrictions:
/// the bare `postmaster` (RFC 5321 4.5.1; Postfix accepts it before any
/// restriction).
pub(crate) fn is_bare_postmaster(recipient: &str) -> bool {
    recipient.eq_ignore_ascii_case("postmaster")
}

/// Postfix's `local_recipient_maps` for a recipient: in a local domain
/// it must be `postmaster`, a system user or an alias (its extension
/// removed by `local.recipient_delimiter`), else `550 5.1.1 … User
/// unknown in local recipient table`. `Ok` says why it passed.
pub(crate) fn local_recipient(
    config: &Config,
    aliases: &crate::aliases::LiveTable,
    to: &crate::address::Address,
) -> Result<String, Reply> {
    if let Some(decided) = virtual_mailbox_recipient(config, to) {
        return decided;
    }
    let domain = to.domain().to_ascii_lowercase();
    if !config.is_local_domain(&domain) {
        return Ok(format!("{domain} is not a local domain"));
    }
    let local_part = to.local().to_ascii_lowercase();
    let delimiter = Some(config.local.recipient_delimiter.as_str()).filter(|d| !d.is_empty());
    let (user, _) = crate::address::split_extension(&local_part, delimiter.unwrap_or(""));
    if user == "postmaster" {
        return Ok("postmaster".to_string());
    }
    if matches!(crate::users::user(user), Ok(Some(_))) {
        return Ok(format!("{user} is a system user"));
    }
    match aliases.table() {
        Ok(t) if t.lookup(&local_part, delimiter).is_some() => {
            Ok(format!("{local_part} is an alias"))
        }
        Ok(_) => Err(Reply::unknown_local_user(&to.to_string())),
        Err(e) => {
            log::warn!("{e}");
            Err(Reply::temporary_lookup_failure(&to.to_string()))
        }
    }
}

/// Postfix's unknown-recipient check (`smtpd_reject_unlisted_recipient`,
/// `reject_unlisted_recipient`): an address the canonical or virtual
/// alias tables know passes; otherwise by its domain's class, a local
/// domain's must be a local recipient ([`local_recipient`]), a virtual
/// alias domain's is unknown (`550 5.1.1 … User unknown in virtual alias
/// table`), a relay domain's must be in `relay.recipient_maps` when that
/// is set. A table that fails answers `451 4.3.0`. `Ok` says why it
/// passed.
pub(crate) fn known_recipient(
    config: &Config,
    rewriter: &crate::rewrite::Rewriter,
    aliases: &crate::aliases::LiveTable,
    to: &crate::address::Address,
) -> Result<String, Reply> {
    use crate::rewrite::Class;
    let rcpt = to.to_string();
    let failed = |e: MapError| {
        log::warn!("{e}");
        Reply::temporary_lookup_failure(&rcpt)
    };
    if let Some(key) = rewriter.listed(&rcpt).map_err(failed)? {
        return Ok(format!("{rcpt} is in {key}"));
    }
    let domain = to.domain().to_ascii_lowercase();
    match rewriter.class(&domain).map_err(failed)? {
        Class::Local => local_recipient(config, aliases, to),
        Class::VirtualAlias => Err(Reply::unknown_virtual_alias(&rcpt)),
        Class::Relay => match rewriter.relay_recipient(&rcpt).map_err(failed)? {
            true if config.relay.recipient_maps.is_empty() => {
                Ok(format!("{domain} is in relay.domains"))
            }
            true => Ok(format!("{rcpt} is in relay.recipient_maps")),
            false => Err(Reply::unknown_relay_recipient(&rcpt)),
        },
        // The default class, or a virtual mailbox domain (which
        // local_recipient asks about first).
        Class::Default => local_recipient(config, aliases, to),
    }
}

/// Postfix's `virtual_mailbox_maps` check for a recipient in a virtual
/// mailbox domain (`None` for the others): listed, or `550 5.1.1 …
/// User unknown in virtual mailbox table`; a table that cannot be read
/// now defers (451 4.3.0).
fn virtual_mailbox_recipient(
    config: &Config,
    to: &crate::address::Address,
) -> Option<Result<String, Reply>> {
    use crate::virtual_mailbox::Standing;
    let rcpt = to.to_string();
    match crate::virtual_mailbox::recipient(config, &rcpt) {
        Ok(Standing::Elsewhere) => None,
        Ok(Standing::Listed(key)) => Some(Ok(format!("{key} is in virtual.mailbox_maps"))),
        Ok(Standing::Unknown) => Some(Err(Reply::unknown_virtual_mailbox(&rcpt))),
        Err(e) => {
            log::warn!("virtual mailbox lookup for {rcpt}: {e}");
            Some(Err(Reply::temporary_lookup_failure(&rcpt)))
        }
    }
}

#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod tests;
