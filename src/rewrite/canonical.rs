//! Canonical mapping (canonical(5), Postfix's `cleanup_map11`) and
//! masquerading (`cleanup_masq`).

use super::Failure;
use crate::maps::MapError;

/// Postfix's nesting limit for one canonical mapping.
const NESTING_LIMIT: usize = 100;

/// `addr` mapped by `lookup` (one address to its value, the extension
/// propagated) again and again until no table knows it or it maps to
/// itself. A multi-valued entry gives its first address.
pub(crate) fn map11(
    addr: &str,
    mut lookup: impl FnMut(&str) -> Result<Option<Vec<String>>, MapError>,
) -> Result<String, Failure> {
    let mut current = addr.to_string();
    for _ in 0..NESTING_LIMIT {
        let Some(results) = lookup(&current).map_err(Failure::Lookup)? else {
            return Ok(current);
        };
        let Some(first) = results.into_iter().next() else {
            return Ok(current);
        };
        if first.eq_ignore_ascii_case(&current) {
            return Ok(first);
        }
        current = first;
    }
    Err(Failure::Limit(format!(
        "unreasonable canonical_maps map nesting for {addr}"
    )))
}

/// Postfix's masquerading: the domain of `addr` cut down to the first
/// entry of `domains` it is below (`user@host.example.com` →
/// `user@example.com`); an entry `!domain` that matches first leaves it,
/// as does an exact match, or a user in `exceptions`.
pub(crate) fn masquerade(addr: &str, domains: &[String], exceptions: &[String]) -> String {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return addr.to_string();
    };
    if exceptions.iter().any(|e| e.eq_ignore_ascii_case(local)) {
        return addr.to_string();
    }
    for entry in domains {
        let (excluded, masq) = match entry.strip_prefix('!') {
            Some(m) => (true, m),
            None => (false, entry.as_str()),
        };
        let masq = masq.trim().trim_start_matches('.');
        if masq.is_empty() {
            continue;
        }
        if masq.len() == domain.len() {
            if masq.eq_ignore_ascii_case(domain) {
                break;
            }
        } else if masq.len() < domain.len() {
            let cut = domain.len() - masq.len();
            if domain.as_bytes()[cut - 1] == b'.'
                && domain.is_char_boundary(cut)
                && domain[cut..].eq_ignore_ascii_case(masq)
            {
                if !excluded {
                    return format!("{local}@{masq}");
                }
                break;
            }
        }
    }
    addr.to_string()
}
