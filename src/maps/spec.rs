//! A table spec as the configuration writes it (`hash:/etc/postern/access`,
//! `inline:{ key=value }`, an absolute path): the kinds of table and the
//! parser of a spec. A leaf of syntax: it names nothing else of the crate,
//! so the configuration reads its table keys without the tables
//! (`tests/imports.rs`).

/// The kinds of table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// hash, texthash and the other indexed types: exact keys.
    Hash,
    Regexp,
    Pcre,
    Inline,
    Static,
    /// Networks (`192.0.2.0/24`, `2001:db8::/32`), first match wins:
    /// Postfix's `cidr:` tables, for client addresses.
    Cidr,
}

impl Kind {
    /// The kind named by a spec's type (`hash`, `pcre`, …).
    pub(crate) fn from_type(t: &str) -> Option<Kind> {
        Some(match t {
            "hash" | "texthash" | "btree" | "cdb" | "lmdb" | "dbm" | "sdbm" => Kind::Hash,
            "regexp" => Kind::Regexp,
            "pcre" => Kind::Pcre,
            "inline" => Kind::Inline,
            "static" => Kind::Static,
            "cidr" => Kind::Cidr,
            _ => return None,
        })
    }
}

/// A table as a configuration key lists it (`relay.sasl_password_files`),
/// in full: `type:name` of a known type, a file type's name an absolute
/// path; an absolute path alone is `texthash:PATH` (the form of a
/// Postfix table whose type is left out). Whether the file is there and
/// parses is for [`crate::maps::Table::open`] (`postern check`, the daemon).
pub(crate) fn parse_spec(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.starts_with('/') {
        return Ok(format!("texthash:{text}"));
    }
    let Some((ty, rest)) = text.split_once(':') else {
        return Err(
            "expected type:name (\"hash:/etc/postern/sasl_passwd\") or an absolute path".into(),
        );
    };
    let kind = Kind::from_type(ty).ok_or_else(|| {
        format!("unsupported table type {ty:?} (hash, texthash, regexp, pcre, inline, static)")
    })?;
    let rest = rest.trim();
    let problem = match kind {
        Kind::Static => None,
        _ if rest.starts_with('{') => None,
        Kind::Inline if rest.is_empty() => Some("expected inline:NAME or inline:{ key=value }"),
        Kind::Inline => None,
        _ if !rest.starts_with('/') => Some("the file must be an absolute path"),
        _ => None,
    };
    match problem {
        Some(p) => Err(p.to_string()),
        None => Ok(format!("{ty}:{rest}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_of_configuration_keys() {
        assert_eq!(parse_spec("/etc/x").unwrap(), "texthash:/etc/x");
        assert_eq!(parse_spec(" hash: /etc/x ").unwrap(), "hash:/etc/x");
        assert_eq!(parse_spec("static:u:p").unwrap(), "static:u:p");
        assert_eq!(parse_spec("inline:logins").unwrap(), "inline:logins");
        assert_eq!(parse_spec("inline:{ a=b }").unwrap(), "inline:{ a=b }");
        assert!(
            parse_spec("pcre:relative")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(parse_spec("inline:").is_err());
        assert!(parse_spec("ldap:/x").unwrap_err().contains("unsupported"));
        assert!(parse_spec("relative").unwrap_err().contains("type:name"));
    }
}
