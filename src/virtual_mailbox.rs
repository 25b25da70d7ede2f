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
//! The lookups are the rewriting tables' ([`crate::rewrite::lookup`]):
//! `virtual.mailbox_domains` is a domain match list (names, `.names`,
//! tables, `!` negating; a parent domain does not match its subdomains,
//! as Postfix's list is not in `parent_domain_matches_subdomains`), and
//! `virtual.mailbox_maps` is asked as Postfix's `mail_addr_find` asks:
//! `user+ext@domain`, `user@domain` (the extension split off by
//! `local.recipient_delimiter`), `@domain`, each key in every table
//! before the next key; a regexp or pcre table only for the whole
//! address. The value is not used. The tables themselves are opened
//! once per process ([`crate::maps::Table::open`]).

use crate::config::Config;
use crate::maps::MapError;
use crate::rewrite::lookup::{DomainList, Maps};

/// Whether `domain` (without a trailing dot, any case) is a virtual
/// mailbox domain: named in `virtual.mailbox_domains`, or a key of a table
/// named there. `Err` when a table cannot be read now (defer).
pub fn is_domain(config: &Config, domain: &str) -> Result<bool, MapError> {
    let domains = &config.r#virtual.mailbox_domains;
    if domains.is_empty() {
        return Ok(false);
    }
    let list = DomainList::open(
        "virtual.mailbox_domains",
        domains,
        &[],
        false,
        config,
        &mut Vec::new(),
    );
    list.matches(domain)
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
    let address = format!(
        "{}@{}",
        local.to_lowercase(),
        domain.trim_end_matches('.').to_ascii_lowercase()
    );
    let maps = Maps::open(
        "virtual.mailbox_maps",
        &config.r#virtual.mailbox_maps,
        config,
        &mut Vec::new(),
    );
    Ok(
        match maps.find(&address, &config.local.recipient_delimiter, false)? {
            Some(found) => Standing::Listed(found.key),
            None => Standing::Unknown,
        },
    )
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
