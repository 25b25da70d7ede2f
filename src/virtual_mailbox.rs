//! The virtual mailbox address class (Postfix's `virtual_mailbox_domains`,
//! `virtual_mailbox_maps`, `virtual_transport`): domains whose users have
//! mailboxes on a mailbox server, usually Dovecot over LMTP, instead of
//! system accounts.
//!
//! smtpd asks [`recipient`] at RCPT (a virtual mailbox domain is a final
//! destination for `reject_unauth_destination`, and a recipient there must
//! be listed, else `550 5.1.1 … User unknown in virtual mailbox table`);
//! qmgr asks [`is_domain`] when it routes a recipient no transport table
//! entry names, and sends it to `virtual.transport`.
//!
//! Lookups in `virtual.mailbox_maps` (Postfix's `mail_addr_find`): an
//! exact table is asked for `user+ext@domain`, then `user@domain` (the
//! extension split off by `local.recipient_delimiter`), then `@domain`;
//! a regexp or pcre table for the whole address, then without the
//! extension. The first table that answers wins; the value is not used.

use crate::config::Config;
use crate::maps::{MapError, Table};

/// Whether `domain` (without a trailing dot, any case) is a virtual
/// mailbox domain: named in `virtual.mailbox_domains`, or a key of a table
/// named there. `Err` when a table cannot be read now (defer).
pub fn is_domain(config: &Config, domain: &str) -> Result<bool, MapError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() {
        return Ok(false);
    }
    for entry in &config.r#virtual.mailbox_domains {
        if entry.contains(':') {
            if Table::open(entry, config)?.get(&domain)?.is_some() {
                return Ok(true);
            }
        } else if *entry == domain {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What the virtual mailbox tables say of a recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Not in a virtual mailbox domain: for the other classes to decide.
    Elsewhere,
    /// Listed in `virtual.mailbox_maps` (the key that matched).
    Listed(String),
    /// In a virtual mailbox domain, listed nowhere.
    Unknown,
}

/// The standing of `address` (`user@domain`); `Err` when a table cannot
/// be read now.
pub fn recipient(config: &Config, address: &str) -> Result<Standing, MapError> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Ok(Standing::Elsewhere);
    };
    if !is_domain(config, domain)? {
        return Ok(Standing::Elsewhere);
    }
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let local = local.to_lowercase();
    let (user, ext) = crate::address::split_extension(&local, &config.local.recipient_delimiter);
    let full = format!("{local}@{domain}");
    let bare = ext.map(|_| format!("{user}@{domain}"));
    for spec in &config.r#virtual.mailbox_maps {
        let table = Table::open(spec, config)?;
        let mut keys = vec![full.clone()];
        keys.extend(bare.clone());
        if !table.is_pattern() {
            keys.push(format!("@{domain}"));
        }
        for key in keys {
            if table.get(&key)?.is_some() {
                return Ok(Standing::Listed(key));
            }
        }
    }
    Ok(Standing::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(domains: &[&str], maps: &[&str]) -> Config {
        let mut c = Config::builtin();
        c.local.recipient_delimiter = "+".into();
        c.r#virtual.mailbox_domains = domains.iter().map(|d| d.to_string()).collect();
        c.r#virtual.mailbox_maps = maps.iter().map(|d| d.to_string()).collect();
        c
    }

    #[test]
    fn domains_by_name_and_by_table() {
        let c = config(&["v.example", "inline:{ t.example=1 }"], &[]);
        assert!(is_domain(&c, "V.Example.").unwrap());
        assert!(is_domain(&c, "t.example").unwrap());
        assert!(!is_domain(&c, "sub.v.example").unwrap());
        assert!(!is_domain(&c, "").unwrap());
    }

    #[test]
    fn recipients_by_address_without_extension_and_catch_all() {
        let c = config(
            &["v.example", "all.example"],
            &[
                "inline:{ bob@v.example=1, @all.example=1 }",
                "regexp:{ {/^re-.*@v\\.example$/ 1} }",
            ],
        );
        let r = |a| recipient(&c, a).unwrap();
        assert_eq!(r("Bob@V.example"), Standing::Listed("bob@v.example".into()));
        assert_eq!(
            r("bob+box@v.example"),
            Standing::Listed("bob@v.example".into())
        );
        assert_eq!(r("x@all.example"), Standing::Listed("@all.example".into()));
        assert_eq!(
            r("re-1@v.example"),
            Standing::Listed("re-1@v.example".into())
        );
        assert_eq!(r("eve@v.example"), Standing::Unknown);
        assert_eq!(r("bob@other.example"), Standing::Elsewhere);
        assert_eq!(r("root"), Standing::Elsewhere);
    }

    #[test]
    fn an_unreadable_table_is_an_error_not_an_answer() {
        let c = config(&["v.example"], &["hash:/nonexistent/postern/vmailbox"]);
        assert!(recipient(&c, "bob@v.example").is_err());
        let c = config(&["hash:/nonexistent/postern/vdomains"], &[]);
        assert!(is_domain(&c, "v.example").is_err());
    }
}
