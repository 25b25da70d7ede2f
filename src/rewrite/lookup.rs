//! Tables asked for addresses and domains, in Postfix's orders:
//! [`Maps`] is a list of tables asked as `mail_addr_find` asks
//! (`user+ext@domain`, `user@domain`, `user+ext` and `user` for local
//! domains, `@domain`), [`DomainList`] a match list of domains
//! (`relay.domains`, `virtual.alias_domains`: names, `.names` and tables,
//! `!` negating, first match wins).

use crate::config::Config;
use crate::maps::{MapError, Table};

/// Tables of one key (`virtual.alias_maps`), in order; one that could not
/// be opened makes every lookup fail (the caller defers), as in Postfix.
pub(crate) struct Maps {
    tables: Vec<Result<Table, String>>,
}

/// A value found, and the extension to add to each address of it (the
/// key that matched had it taken off).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    /// The key that matched (`user@domain`, `@domain`, …).
    pub key: String,
    pub value: String,
    pub extension: Option<String>,
}

impl Maps {
    /// Opens `specs` (the tables of the key `name`); problems are added
    /// to `problems`.
    pub(crate) fn open(
        name: &str,
        specs: &[String],
        config: &Config,
        problems: &mut Vec<String>,
    ) -> Maps {
        let tables = specs
            .iter()
            .map(|spec| {
                Table::open(spec, config).map_err(|e| {
                    let problem = format!("{name}: {spec}: {e}");
                    problems.push(problem.clone());
                    problem
                })
            })
            .collect();
        Maps { tables }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// One key in each table in turn; `full` says the key is the whole
    /// address (pattern tables are asked only with that, as Postfix asks
    /// regexp and pcre tables).
    pub(crate) fn get(&self, key: &str, full: bool) -> Result<Option<String>, MapError> {
        for table in &self.tables {
            let table = table
                .as_ref()
                .map_err(|e| MapError::Unavailable(e.clone()))?;
            if !full && table.is_pattern() {
                continue;
            }
            if let Some(v) = table.get(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Postfix's `mail_addr_find` for `addr`: `user+ext@domain`,
    /// `user@domain`, then for a local domain (`local`) `user+ext` and
    /// `user`, then `@domain`. A match on a key without the extension
    /// gives the extension (with its delimiter) to propagate.
    pub(crate) fn find(
        &self,
        addr: &str,
        delimiters: &str,
        local: bool,
    ) -> Result<Option<Found>, MapError> {
        if self.is_empty() {
            return Ok(None);
        }
        let (localpart, domain) = match addr.rsplit_once('@') {
            Some((l, d)) => (l, Some(d)),
            None => (addr, None),
        };
        let (user, ext) = crate::address::split_extension(localpart, delimiters);
        let ext = ext.map(|(c, e)| format!("{c}{e}"));
        let ext = ext.as_deref();
        let mut keys: Vec<(String, bool, Option<&str>)> = vec![(addr.to_string(), true, None)];
        if let (Some(ext), Some(domain)) = (ext, domain) {
            keys.push((format!("{user}@{domain}"), false, Some(ext)));
        }
        if local {
            if domain.is_some() {
                keys.push((localpart.to_string(), false, None));
            }
            if let Some(ext) = ext {
                keys.push((user.to_string(), false, Some(ext)));
            }
        }
        if let Some(domain) = domain {
            keys.push((format!("@{domain}"), false, None));
        }
        for (key, full, extension) in keys {
            if let Some(value) = self.get(&key, full)? {
                return Ok(Some(Found {
                    key,
                    value,
                    extension: extension.map(str::to_string),
                }));
            }
        }
        Ok(None)
    }
}

/// One entry of a domain match list.
enum Entry {
    /// `example.com`: the domain (and, where parents match subdomains,
    /// its subdomains).
    Name(String),
    /// `.example.com`: its subdomains.
    Subdomains(String),
    Table(Maps),
}

/// A list of domains as `relay.domains` and `virtual.alias_domains`
/// write them; the first entry that matches decides (`!entry`: no).
pub(crate) struct DomainList {
    entries: Vec<(bool, Entry)>,
    /// Postfix's `parent_domain_matches_subdomains` for this list:
    /// `example.com` matches `a.example.com` too, and tables are asked
    /// with the parent domains (`example.com`, `com`) rather than
    /// `.example.com`, `.com`.
    parent: bool,
}

impl DomainList {
    /// The list of `name`, its entries as [`super::pattern::parse_domain_pattern`]
    /// left them; `$alias_maps` stands for `alias_maps`' tables.
    pub(crate) fn open(
        name: &str,
        items: &[String],
        alias_maps: &[String],
        parent: bool,
        config: &Config,
        problems: &mut Vec<String>,
    ) -> DomainList {
        let mut entries = Vec::new();
        for item in items {
            let (negated, text) = match item.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, item.trim()),
            };
            let entry = if text == super::ALIAS_MAPS {
                Entry::Table(Maps::open(name, alias_maps, config, problems))
            } else if text.contains(':') {
                Entry::Table(Maps::open(name, &[text.to_string()], config, problems))
            } else if let Some(sub) = text.strip_prefix('.') {
                Entry::Subdomains(sub.to_ascii_lowercase())
            } else {
                Entry::Name(text.to_ascii_lowercase())
            };
            entries.push((negated, entry));
        }
        DomainList { entries, parent }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `domain` is in the list.
    pub(crate) fn matches(&self, domain: &str) -> Result<bool, MapError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() {
            return Ok(false);
        }
        for (negated, entry) in &self.entries {
            let hit = match entry {
                Entry::Name(name) => {
                    domain == *name || (self.parent && is_subdomain(&domain, name))
                }
                Entry::Subdomains(name) => is_subdomain(&domain, name),
                Entry::Table(maps) => self.table_matches(maps, &domain)?,
            };
            if hit {
                return Ok(!negated);
            }
        }
        Ok(false)
    }

    /// Postfix's `match_hostname` for a table: the name, then its parent
    /// domains (`b.c`, `c` with parent matching; `.b.c`, `.c` without).
    fn table_matches(&self, maps: &Maps, domain: &str) -> Result<bool, MapError> {
        if maps.get(domain, true)?.is_some() {
            return Ok(true);
        }
        let mut rest = domain;
        while let Some(at) = rest[1..].find('.') {
            let dot = &rest[at + 1..];
            let key = if self.parent { &dot[1..] } else { dot };
            if !key.is_empty() && maps.get(key, false)?.is_some() {
                return Ok(true);
            }
            rest = dot;
        }
        Ok(false)
    }
}

/// `a.example.com` below `example.com`.
fn is_subdomain(domain: &str, parent: &str) -> bool {
    domain.len() > parent.len() + 1
        && domain.ends_with(parent)
        && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
}
