//! The readers of `[dkim]` that check more than each value alone: no
//! `domain:selector` twice in `dkim.keys`, and signed header field names
//! that are names, `From` among them. The key files themselves are not
//! read here: loading the configuration must not need a secret (`postern
//! check` and the smtp client read them, see [`crate::dkim`]).

use super::Config;
use super::error::ConfigError;
use super::load::{Field, Given};

/// `dkim.keys`: each entry parsed ([`crate::dkim::key_entry::KeyEntry::parse`]), a
/// selector of a domain named once.
pub(super) fn keys(f: &Field, c: &mut Config, _: &mut Given) -> Result<(), ConfigError> {
    let mut out: Vec<crate::dkim::key_entry::KeyEntry> = Vec::new();
    for at in f.strings()? {
        let entry =
            crate::dkim::key_entry::KeyEntry::parse(&at.text).map_err(|e| f.bad_at(&at, e))?;
        if let Some(first) = out
            .iter()
            .find(|e| e.domain == entry.domain && e.selector == entry.selector)
        {
            let reason = format!(
                "selector {} of {} is given twice (first: {})",
                entry.selector,
                entry.domain,
                first.path.display()
            );
            return Err(f.bad_at(&at, reason));
        }
        out.push(entry);
    }
    c.dkim.keys = out;
    Ok(())
}

/// `dkim.headers`: header field names (RFC 5322 `ftext`: printable ASCII
/// but `:`), `From` among them (RFC 6376 section 5.4 requires it).
pub(super) fn headers(f: &Field, c: &mut Config, _: &mut Given) -> Result<(), ConfigError> {
    let list = f.strings()?;
    for at in &list {
        let name = at.text.as_str();
        if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
            let reason = "not a header field name (printable ASCII, no `:` or blank)".to_string();
            return Err(f.bad_at(at, reason));
        }
    }
    if !list.iter().any(|at| at.text.eq_ignore_ascii_case("From")) {
        let shown: Vec<String> = list.iter().map(|at| format!("{:?}", at.text)).collect();
        return Err(f.bad(
            format!("[{}]", shown.join(", ")),
            "must hold \"From\" (RFC 6376 section 5.4: From is always signed)".to_string(),
        ));
    }
    c.dkim.headers = list.into_iter().map(|at| at.text).collect();
    Ok(())
}
