//! Host and domain name syntax, as Postfix's `valid_hostname` checks it:
//! for the configuration's names (`myhostname`, `mydomain`) and for the
//! value parsers of the feature modules (transport next hops, DKIM keys
//! and selectors), which reach it without the configuration.

use std::net::IpAddr;

/// Checks a host or domain name the way Postfix's `valid_hostname` does:
/// at most 255 bytes, dot-separated labels of 1 to 63 letters, digits,
/// `-` and `_`, no label starting or ending with `-`, and not an IP address.
pub(crate) fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".to_string());
    }
    if name.len() > 255 {
        return Err("name longer than 255 bytes".to_string());
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err("an IP address is not a host name".to_string());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (leading, trailing or double dot)".to_string());
        }
        if label.len() > 63 {
            return Err("label longer than 63 bytes".to_string());
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("character {c:?} is not allowed in a host name"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` starts or ends with `-`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        for good in [
            "mail.foo.example",
            "localhost",
            "a-b.c_d.example",
            "x1",
            "123.example",
        ] {
            assert_eq!(check_hostname(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".",
            "foo.",
            ".foo",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a$b",
            "192.0.2.1",
            "::1",
            "é.example",
        ] {
            assert!(check_hostname(bad).is_err(), "{bad:?}");
        }
        assert!(check_hostname(&"a".repeat(64)).is_err());
        assert!(check_hostname(&["a"; 129].join(".")).is_err());
    }
}
