//! Domain patterns as the configuration writes them: the entries of
//! `relay.domains` (`example.com`, `.example.com`, a table, each
//! optionally after `!`) and of `virtual.alias_domains`. A leaf of
//! syntax: it names nothing of the crate but [`crate::maps::spec`]
//! (itself a leaf), never `crate::config` (`tests/imports.rs`).

/// The entry of `virtual.alias_domains` that stands for the tables of
/// `virtual.alias_maps` (Postfix's default `$virtual_alias_maps`).
pub(crate) const ALIAS_MAPS: &str = "$alias_maps";

/// An entry of `relay.domains` as written: `example.com`, `.example.com`,
/// a table (`hash:/path`), each optionally after `!`.
pub(crate) fn parse_domain_pattern(text: &str) -> Result<String, String> {
    let text = text.trim();
    let (bang, rest) = match text.strip_prefix('!') {
        Some(rest) => ("!", rest.trim()),
        None => ("", text),
    };
    if rest.starts_with('/') {
        return Err(
            "a file of domains: name it as a table (\"texthash:/path\", one \"domain OK\" a line)"
                .into(),
        );
    }
    if rest.contains(':') {
        return crate::maps::spec::parse_spec(rest).map(|spec| format!("{bang}{spec}"));
    }
    let name = rest.trim_end_matches('.').to_ascii_lowercase();
    let bare = name.strip_prefix('.').unwrap_or(&name);
    let good = !bare.is_empty()
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !good {
        return Err(format!(
            "{rest:?} is not a domain (example.com), subdomains (.example.com) or a table (type:name)"
        ));
    }
    Ok(format!("{bang}{name}"))
}

/// An entry of `virtual.alias_domains`: as [`parse_domain_pattern`], or
/// `$alias_maps` (also Postfix's `$virtual_alias_maps`).
pub(crate) fn parse_alias_domain(text: &str) -> Result<String, String> {
    match text.trim() {
        "$alias_maps" | "${alias_maps}" | "$virtual_alias_maps" | "${virtual_alias_maps}" => {
            Ok(ALIAS_MAPS.to_string())
        }
        other => parse_domain_pattern(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse() {
        assert_eq!(parse_domain_pattern("Example.COM.").unwrap(), "example.com");
        assert_eq!(
            parse_domain_pattern(".example.com").unwrap(),
            ".example.com"
        );
        assert_eq!(
            parse_domain_pattern("! example.com").unwrap(),
            "!example.com"
        );
        assert_eq!(
            parse_domain_pattern("hash:/etc/postern/relay").unwrap(),
            "hash:/etc/postern/relay"
        );
        assert!(parse_domain_pattern("hash:relative").is_err());
        assert!(parse_domain_pattern("/etc/file").is_err());
        assert!(parse_domain_pattern("a b").is_err());
        assert_eq!(
            parse_alias_domain("$virtual_alias_maps").unwrap(),
            ALIAS_MAPS
        );
    }
}
