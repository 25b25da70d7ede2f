//! The readers and the check of the keys that send mailboxes elsewhere:
//! the `[virtual]` mailbox keys (`virtual.mailbox_domains`,
//! `virtual.transport`) and `local.mailbox_transport`.

use super::Config;
use super::error::ConfigError;
use super::load::{Field, Given};
use crate::transport::syntax::Transport;

/// `virtual.mailbox_domains`: domain names (lower-cased, checked as host
/// names) and table specs (anything with a `:`, or an absolute path).
pub(super) fn mailbox_domains(f: &Field, c: &mut Config, g: &mut Given) -> Result<(), ConfigError> {
    c.r#virtual.mailbox_domains = f.parsed(domain_or_table)?;
    g.virtual_domains_line = f.strings()?.first().map(|at| at.line);
    Ok(())
}

fn domain_or_table(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.contains(':') || text.starts_with('/') {
        return crate::maps::spec::parse_spec(text);
    }
    let name = text.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return Err("empty domain".to_string());
    }
    super::check_hostname(&name)?;
    Ok(name)
}

/// `virtual.transport`: a transport result (`lmtp:unix:/run/dovecot/lmtp`).
pub(super) fn transport(f: &Field, c: &mut Config, _: &mut Given) -> Result<(), ConfigError> {
    let at = f.located()?;
    c.r#virtual.transport = match at.text.trim() {
        "" => None,
        t => Some(Transport::parse(t).map_err(|reason| f.bad(format!("{t:?}"), reason))?),
    };
    Ok(())
}

/// `local.mailbox_transport`: an LMTP server, in one of the forms
/// [`crate::transport::syntax::parse_mailbox_transport`] takes; empty: none.
pub(super) fn mailbox_transport(
    f: &Field,
    c: &mut Config,
    _: &mut Given,
) -> Result<(), ConfigError> {
    let at = f.located()?;
    c.local.mailbox_transport = match at.text.trim() {
        "" => None,
        t => Some(
            crate::transport::syntax::parse_mailbox_transport(t)
                .map_err(|reason| f.bad(format!("{t:?}"), reason))?,
        ),
    };
    Ok(())
}

/// Virtual mailbox domains need `virtual.transport` (Postfix's default,
/// its `virtual` agent, does not exist here).
pub(super) fn check(config: &Config, line: Option<usize>, file: &str) -> Result<(), ConfigError> {
    let v = &config.r#virtual;
    if !v.mailbox_domains.is_empty() && v.transport.is_none() {
        return Err(ConfigError::BadValue {
            file: file.to_string(),
            line: line.unwrap_or(1),
            key: "virtual.mailbox_domains".to_string(),
            value: format!("{:?}", v.mailbox_domains),
            reason: "needs virtual.transport, where their mail goes \
                     (for Dovecot: \"lmtp:unix:/run/dovecot/lmtp\")"
                .to_string(),
        });
    }
    Ok(())
}
