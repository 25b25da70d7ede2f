//! Address rewriting as a message enters the queue, and the address
//! classes of recipient domains (Postfix's cleanup(8) rewriting and
//! trivial-rewrite's classes; ADDRESS_REWRITING_README, virtual(5),
//! canonical(5)).
//!
//! smtpd calls it for every message it queues, so SMTP clients and local
//! submissions (`sendmail` on submit.sock and the drop directory, which
//! go through the same session) are rewritten alike, in Postfix's order:
//!
//! 1. the sender: `rewrite.sender_canonical_maps`, then
//!    `rewrite.canonical_maps` ([`canonical::map11`]), then
//!    `rewrite.masquerade_domains` ([`canonical::masquerade`]);
//! 2. each recipient: `rewrite.recipient_canonical_maps`, then
//!    `rewrite.canonical_maps`, then `virtual.alias_maps`
//!    ([`virtual_alias::expand`]: recursive, limits as Postfix's); the
//!    result replaces the recipient in the queue, which keeps the address
//!    given as the recipient's `original` (Postfix's `orig_to=`, the
//!    DSN's Original-Recipient); duplicates are dropped.
//!
//! At RCPT, [`Rewriter::class`] says which class a domain is in: local
//! (`local.domains`), virtual alias (`virtual.alias_domains`), relay
//! (`relay.domains`) or default; the first three pass
//! `reject_unauth_destination`, and `policy::known_recipient` refuses
//! the unknown users of each.
//!
//! 3. for mail from this host (local submissions and loopback clients,
//!    Postfix's default `local_header_rewrite_clients =
//!    permit_inet_interfaces`; its `remote_header_rewrite_domain` is empty,
//!    so others' headers are left alone), the addresses of the sender and
//!    recipient header fields ([`header`]): canonical mapping (sender or
//!    recipient tables, then `canonical_maps`) and masquerading, never
//!    virtual aliases.
//!
//! The entries of `relay.domains` and `virtual.alias_domains` are parsed
//! by [`pattern`], a leaf of syntax the configuration reads without the
//! rest of this module (`tests/imports.rs`).
//!
//! Configuration read: `[virtual]`, `[rewrite]`, `relay.domains`,
//! `relay.recipient_maps`, `local.domains`, `local.recipient_delimiter`,
//! `server.origin`, `[maps]`.

pub(crate) mod canonical;
pub(crate) mod header;
pub(crate) mod lookup;
pub(crate) mod pattern;
pub(crate) mod virtual_alias;

use std::sync::Arc;

use crate::config::Config;
use crate::maps::MapError;
use crate::queue::Recipient;

use self::lookup::{DomainList, Maps};
pub(crate) use self::pattern::ALIAS_MAPS;

/// The class of a recipient's domain (ADDRESS_CLASS_README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// `local.domains` (mydestination).
    Local,
    /// `virtual.alias_domains`: every address an alias.
    VirtualAlias,
    /// `relay.domains`: relayed from anyone.
    Relay,
    /// Everything else: relayed for trusted clients only.
    Default,
}

impl Class {
    /// Where mail for the class may come from anyone
    /// (`reject_unauth_destination` lets it pass).
    pub(crate) fn is_authorized(self) -> bool {
        self != Class::Default
    }

    /// The key that put a domain in the class, for the tracer.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Class::Local => "local.domains",
            Class::VirtualAlias => "virtual.alias_domains",
            Class::Relay => "relay.domains",
            Class::Default => "no class key (the default class)",
        }
    }
}

/// Why a message's addresses could not be rewritten: the message is not
/// taken now (`451 4.6.0`), the client tries again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// Past a nesting or expansion limit (the text for the log).
    #[error("{0}")]
    Limit(String),
    #[error("table lookup problem: {0}")]
    Lookup(MapError),
}

/// The rewriting tables of one configuration, opened.
pub(crate) struct Rewriter {
    config: Arc<Config>,
    alias_maps: Maps,
    alias_domains: DomainList,
    relay_domains: DomainList,
    relay_recipients: Maps,
    canonical: Maps,
    sender_canonical: Maps,
    recipient_canonical: Maps,
    problems: Vec<String>,
}

impl Rewriter {
    /// Opens the tables; one that cannot be opened is logged and kept as
    /// a problem: lookups in it fail (RCPT 451 4.3.0, DATA 451 4.6.0)
    /// until it is repaired, as Postfix's do.
    pub(crate) fn new(config: Arc<Config>) -> Rewriter {
        let mut problems = Vec::new();
        let c = &config;
        let v = &c.r#virtual;
        let r = &c.rewrite;
        let alias_maps = Maps::open("virtual.alias_maps", &v.alias_maps, c, &mut problems);
        let alias_domains = DomainList::open(
            "virtual.alias_domains",
            &v.alias_domains,
            &v.alias_maps,
            false,
            c,
            &mut problems,
        );
        let relay_domains = DomainList::open(
            "relay.domains",
            &c.relay.domains,
            &[],
            true,
            c,
            &mut problems,
        );
        let relay_recipients = Maps::open(
            "relay.recipient_maps",
            &c.relay.recipient_maps,
            c,
            &mut problems,
        );
        let canonical = Maps::open(
            "rewrite.canonical_maps",
            &r.canonical_maps,
            c,
            &mut problems,
        );
        let sender_canonical = Maps::open(
            "rewrite.sender_canonical_maps",
            &r.sender_canonical_maps,
            c,
            &mut problems,
        );
        let recipient_canonical = Maps::open(
            "rewrite.recipient_canonical_maps",
            &r.recipient_canonical_maps,
            c,
            &mut problems,
        );
        for p in &problems {
            log::warn!("{p}");
        }
        Rewriter {
            config,
            alias_maps,
            alias_domains,
            relay_domains,
            relay_recipients,
            canonical,
            sender_canonical,
            recipient_canonical,
            problems,
        }
    }

    /// What was wrong when the tables were opened (also logged).
    pub(crate) fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The class of `domain`: local first, then virtual alias, relay,
    /// default (trivial-rewrite's order).
    pub(crate) fn class(&self, domain: &str) -> Result<Class, MapError> {
        let domain = domain.trim_end_matches('.');
        if self.config.is_local_domain(domain) {
            return Ok(Class::Local);
        }
        if !self.alias_domains.is_empty() && self.alias_domains.matches(domain)? {
            return Ok(Class::VirtualAlias);
        }
        if !self.relay_domains.is_empty() && self.relay_domains.matches(domain)? {
            return Ok(Class::Relay);
        }
        Ok(Class::Default)
    }

    /// Domains listed in two classes (Postfix warns, postern refuses): a
    /// local domain that is also a virtual alias domain, or a literal
    /// relay domain that is one.
    pub(crate) fn class_conflicts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for domain in &self.config.local.domains {
            if self.alias_domains.matches(domain).unwrap_or(false) {
                out.push(format!(
                    "{domain} is in both local.domains (mydestination) and virtual.alias_domains \
                     (virtual_alias_domains): a domain is either local or a virtual alias domain; \
                     remove it from one of them (with the default \"$alias_maps\", take its bare \
                     domain key out of virtual.alias_maps)"
                ));
            }
        }
        for domain in &self.config.relay.domains {
            if domain.contains(':') || domain.starts_with(['!', '.']) {
                continue;
            }
            if self.alias_domains.matches(domain).unwrap_or(false) {
                out.push(format!(
                    "{domain} is in both relay.domains (relay_domains) and virtual.alias_domains \
                     (virtual_alias_domains): remove it from one of them"
                ));
            }
        }
        out
    }

    /// Whether the canonical or virtual alias tables know `addr` (then it
    /// is a valid recipient whatever its class, as in Postfix's
    /// `check_rcpt_maps`): the key that knows it.
    pub(crate) fn listed(&self, addr: &str) -> Result<Option<&'static str>, MapError> {
        let tables = [
            (
                &self.recipient_canonical,
                "rewrite.recipient_canonical_maps",
            ),
            (&self.canonical, "rewrite.canonical_maps"),
            (&self.alias_maps, "virtual.alias_maps"),
        ];
        for (maps, key) in tables {
            if self.find(maps, addr)?.is_some() {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// Whether `relay.recipient_maps` accepts `addr` (it does when it is
    /// empty).
    pub(crate) fn relay_recipient(&self, addr: &str) -> Result<bool, MapError> {
        if self.relay_recipients.is_empty() {
            return Ok(true);
        }
        Ok(self.find(&self.relay_recipients, addr)?.is_some())
    }

    /// One lookup in Postfix's key order for `addr`.
    fn find(&self, maps: &Maps, addr: &str) -> Result<Option<lookup::Found>, MapError> {
        let domain = addr.rsplit_once('@').map_or("", |(_, d)| d);
        maps.find(
            addr,
            &self.config.local.recipient_delimiter,
            self.is_local(domain),
        )
    }

    /// A domain for which the local part alone is a key: a local domain
    /// or `server.origin` (Postfix: `$myorigin`, `$mydestination`).
    fn is_local(&self, domain: &str) -> bool {
        self.config.is_local_domain(domain)
            || domain.eq_ignore_ascii_case(&self.config.server.origin)
    }

    /// `maps`' addresses for `addr`, extension propagated; `None`: none.
    fn addresses(&self, maps: &Maps, addr: &str) -> Result<Option<Vec<String>>, MapError> {
        Ok(self.find(maps, addr)?.map(|found| {
            virtual_alias::addresses(
                &found.value,
                found.extension.as_deref(),
                &self.config.server.origin,
            )
        }))
    }

    /// Canonical mapping by `first`'s tables, then `canonical_maps`.
    fn canonical(&self, first: &Maps, addr: &str) -> Result<String, Failure> {
        let addr = canonical::map11(addr, |a| self.addresses(first, a))?;
        canonical::map11(&addr, |a| self.addresses(&self.canonical, a))
    }

    /// The envelope sender rewritten: canonical, then masquerading. The
    /// null sender stays.
    pub(crate) fn sender(&self, sender: &str) -> Result<String, Failure> {
        if sender.is_empty() {
            return Ok(String::new());
        }
        let sender = self.canonical(&self.sender_canonical, sender)?;
        let r = &self.config.rewrite;
        Ok(canonical::masquerade(
            &sender,
            &r.masquerade_domains,
            &r.masquerade_exceptions,
        ))
    }

    /// Whether any header rewriting is configured.
    pub(crate) fn rewrites_headers(&self) -> bool {
        let r = &self.config.rewrite;
        !(self.canonical.is_empty()
            && self.sender_canonical.is_empty()
            && self.recipient_canonical.is_empty()
            && r.masquerade_domains.is_empty())
    }

    /// The message `content` (stored form) with the addresses of its
    /// sender and recipient header fields rewritten: canonical, then
    /// masquerading; `None` when nothing changed.
    pub(crate) fn headers(&self, content: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
        if !self.rewrites_headers() {
            return Ok(None);
        }
        let r = &self.config.rewrite;
        header::rewrite(content, |side, addr| {
            let first = match side {
                header::Side::Sender => &self.sender_canonical,
                header::Side::Recipient => &self.recipient_canonical,
            };
            let addr = self.canonical(first, addr)?;
            Ok(canonical::masquerade(
                &addr,
                &r.masquerade_domains,
                &r.masquerade_exceptions,
            ))
        })
    }

    /// One envelope recipient rewritten: canonical, then virtual alias
    /// expansion; each address once.
    pub(crate) fn recipient(&self, rcpt: &str) -> Result<Vec<String>, Failure> {
        let rcpt = self.canonical(&self.recipient_canonical, rcpt)?;
        if self.alias_maps.is_empty() {
            return Ok(vec![rcpt]);
        }
        virtual_alias::expand(&rcpt, |a| self.addresses(&self.alias_maps, a))
    }

    /// A message's envelope rewritten in place: the sender, and each
    /// recipient replaced by what it rewrites to (its `original` the
    /// address as given), duplicates dropped.
    pub(crate) fn envelope(
        &self,
        sender: &mut String,
        recipients: &mut Vec<Recipient>,
    ) -> Result<(), Failure> {
        *sender = self.sender(sender)?;
        let mut out: Vec<Recipient> = Vec::with_capacity(recipients.len());
        for r in recipients.drain(..) {
            for address in self.recipient(&r.address)? {
                if out.iter().any(|o| o.address.eq_ignore_ascii_case(&address)) {
                    continue;
                }
                let original = match (&r.original, address == r.address) {
                    (Some(o), _) => Some(o.clone()),
                    (None, true) => None,
                    (None, false) => Some(r.address.clone()),
                };
                out.push(Recipient {
                    address,
                    original,
                    ..r.clone()
                });
            }
        }
        *recipients = out;
        Ok(())
    }
}

/// Every table spec the rewriting and the address classes name, for
/// `postern check` and the sandbox.
pub(crate) fn table_specs(config: &Config) -> Vec<String> {
    let v = &config.r#virtual;
    let r = &config.rewrite;
    let lists = [&v.alias_domains, &config.relay.domains];
    let domain_tables = lists
        .into_iter()
        .flatten()
        .map(|e| e.trim_start_matches('!').trim())
        .filter(|e| e.contains(':'))
        .map(str::to_string);
    [
        &v.alias_maps,
        &config.relay.recipient_maps,
        &r.canonical_maps,
        &r.sender_canonical_maps,
        &r.recipient_canonical_maps,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .chain(domain_tables)
    .collect()
}

/// The files of [`table_specs`], for smtpd's sandbox.
pub(crate) fn table_files(config: &Config) -> Vec<std::path::PathBuf> {
    crate::maps::files_of(&table_specs(config))
}

#[cfg(test)]
mod tests;
