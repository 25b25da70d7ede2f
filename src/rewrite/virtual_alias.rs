//! Virtual alias expansion (Postfix's `cleanup_map1n` over
//! `virtual_alias_maps`): one address becomes the addresses its aliases
//! name, each expanded again, until none matches; an address that maps
//! to itself is kept. Past [`RECURSION_LIMIT`] levels for one address or
//! [`EXPANSION_LIMIT`] addresses the message is not taken (the client
//! tries again later), as Postfix does.

use std::collections::HashSet;

use super::Failure;
use crate::maps::MapError;

/// Postfix's `virtual_alias_recursion_limit`.
pub(crate) const RECURSION_LIMIT: usize = 1000;
/// Postfix's `virtual_alias_expansion_limit`.
pub(crate) const EXPANSION_LIMIT: usize = 1000;

/// What one lookup gives: the addresses an address maps to (already split
/// and with extensions propagated), `None` when no table knows it.
pub(crate) type Aliases = Result<Option<Vec<String>>, MapError>;

/// Expands `addr` with `lookup` (one address to its aliases, already
/// split and with extensions propagated; `None`: no alias).
pub(crate) fn expand(
    addr: &str,
    mut lookup: impl FnMut(&str) -> Aliases,
) -> Result<Vec<String>, Failure> {
    expand_with(addr, RECURSION_LIMIT, EXPANSION_LIMIT, &mut lookup)
}

pub(crate) fn expand_with(
    addr: &str,
    recursion_limit: usize,
    expansion_limit: usize,
    lookup: &mut dyn FnMut(&str) -> Aliases,
) -> Result<Vec<String>, Failure> {
    let mut out = vec![addr.to_string()];
    // Addresses that expanded into themselves: not expanded again.
    let mut itself: HashSet<String> = HashSet::new();
    let mut arg = 0;
    while arg < out.len() {
        if out.len() > expansion_limit {
            return Err(Failure::Limit(format!(
                "unreasonable virtual_alias_maps map expansion size for {addr}"
            )));
        }
        let mut count = 0;
        loop {
            if itself.contains(&out[arg].to_ascii_lowercase()) {
                break;
            }
            if count >= recursion_limit {
                return Err(Failure::Limit(format!(
                    "unreasonable virtual_alias_maps map nesting for {addr}"
                )));
            }
            let Some(results) = lookup(&out[arg]).map_err(Failure::Lookup)? else {
                break;
            };
            if results.is_empty() {
                break;
            }
            let lhs = out[arg].clone();
            for (i, r) in results.into_iter().enumerate() {
                if r.eq_ignore_ascii_case(&lhs) {
                    itself.insert(lhs.to_ascii_lowercase());
                }
                if i == 0 {
                    out[arg] = r;
                } else {
                    out.push(r);
                }
            }
            count += 1;
        }
        arg += 1;
    }
    let mut seen = HashSet::new();
    out.retain(|a| seen.insert(a.to_ascii_lowercase()));
    Ok(out)
}

/// The addresses of an alias's value: a list separated by commas and
/// white space; each with `extension` inserted before its `@` (Postfix's
/// `propagate_unmatched_extensions = canonical, virtual`) and qualified
/// with `origin` when it has no domain.
pub(crate) fn addresses(value: &str, extension: Option<&str>, origin: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            let a = a
                .strip_prefix('<')
                .and_then(|a| a.strip_suffix('>'))
                .unwrap_or(a);
            let (local, domain) = match a.rsplit_once('@') {
                Some((l, d)) => (l, Some(d)),
                None => (a, None),
            };
            let local = match extension {
                Some(ext) => format!("{local}{ext}"),
                None => local.to_string(),
            };
            match domain {
                Some(d) => format!("{local}@{d}"),
                None if origin.is_empty() => local,
                None => format!("{local}@{origin}"),
            }
        })
        .collect()
}
