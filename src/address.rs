//! Email addresses and SMTP paths (RFC 5321 section 4.1.2, RFC 6531).
//!
//! [`parse_path`] turns the argument of `MAIL FROM:` / `RCPT TO:` into a
//! [`Path`]: `<>` is the null path, `<local@domain>` a mailbox. It is as
//! lenient as Postfix with `strict_rfc821_envelopes = no`, where that is
//! harmless:
//!
//! - the angle brackets may be left out (`MAIL FROM:u@example.com`);
//! - a source route (`<@a,@b:u@example.com>`) is accepted and dropped;
//! - an unquoted local part may hold dots anywhere (`a..b`, `a.`), as some
//!   real senders use; it is re-quoted on output;
//! - a local part without a domain (`<postmaster>`, `<user>`) is accepted:
//!   the [`Address`] then has an empty domain and the caller decides (Postfix
//!   appends `$myorigin` or treats it as local).
//!
//! Domains are host names (labels of letters, digits, `-` and, as Postfix's
//! `valid_hostname` allows, `_`; non-ASCII U-labels only with SMTPUTF8) or
//! address literals `[192.0.2.1]` / `[IPv6:2001:db8::1]`. Case is kept as
//! given; comparisons are the caller's business.
//!
//! Length limits (RFC 5321 section 4.5.3.1) are measured on the address as
//! postern stores it: the local part without its quotes and backslashes at
//! most 64 octets, the domain at most 255, and `<local@domain>` at most 256.
//! A dropped source route does not count. Measuring the stored form (not
//! the wire form) keeps `parse(display(a)) == a` true for every address.
//!
//! Every function here is total: arbitrary input gives `Ok` or `Err`, never
//! a panic, and allocates at most the size of its input.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// RFC 5321 section 4.5.3.1.1.
pub(crate) const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 section 4.5.3.1.2.
pub(crate) const MAX_DOMAIN: usize = 255;
/// RFC 5321 section 4.5.3.1.3, angle brackets included.
pub(crate) const MAX_PATH: usize = 256;
/// RFC 1035 section 2.3.4.
const MAX_LABEL: usize = 63;

/// A mailbox `local@domain`. The local part is stored unquoted (`a b` for
/// `"a b"@example.com`); the domain as given, address literals with their
/// brackets. The domain is empty for a bare local part (`<postmaster>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    local: String,
    domain: String,
}

/// The argument of MAIL FROM or RCPT TO.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// `<>`: the null reverse-path of bounces.
    Null,
    Mailbox(Address),
}

/// A domain: a host name or an address literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Domain {
    /// Dot-separated labels, as given.
    Name(String),
    /// `[192.0.2.1]` or `[IPv6:2001:db8::1]`; `text` is the literal as
    /// given, brackets included.
    Literal { ip: IpAddr, text: String },
}

/// Why an address was refused. The SMTP reply is the command's
/// (`501 5.1.7 Bad sender address syntax`, ...); this says why, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum AddressError {
    #[error("empty address")]
    Empty,
    #[error("bad address syntax: {0}")]
    Syntax(&'static str),
    /// Non-ASCII where SMTPUTF8 is not in effect (the caller may answer
    /// `553 5.6.7 Must declare SMTPUTF8 to send unicode address`).
    #[error("non-ASCII address without SMTPUTF8")]
    NonAscii,
    #[error("local part longer than {MAX_LOCAL_PART} octets")]
    LocalTooLong,
    #[error("domain longer than {MAX_DOMAIN} octets")]
    DomainTooLong,
    #[error("path longer than {MAX_PATH} octets")]
    PathTooLong,
}

/// Parses a MAIL FROM / RCPT TO argument: `<>`, `<local@domain>`,
/// `<@route,@route:local@domain>`, `<local>`, or the same without the angle
/// brackets. `utf8` allows non-ASCII (RFC 6531); without it non-ASCII gives
/// [`AddressError::NonAscii`]. No whitespace is allowed outside a quoted
/// local part.
pub fn parse_path(s: &str, utf8: bool) -> Result<Path, AddressError> {
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    let Some(rest) = s.strip_prefix('<') else {
        return Address::parse(s, utf8).map(Path::Mailbox);
    };
    let inner = rest
        .strip_suffix('>')
        .ok_or(AddressError::Syntax("missing '>'"))?;
    if inner.is_empty() {
        return Ok(Path::Null);
    }
    let mailbox = match inner.strip_prefix('@') {
        Some(_) => skip_source_route(inner, utf8)?,
        None => inner,
    };
    Address::parse(mailbox, utf8).map(Path::Mailbox)
}

impl Address {
    /// Parses `local@domain` or a bare `local`, without angle brackets.
    pub(crate) fn parse(s: &str, utf8: bool) -> Result<Address, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        let (local, rest) = if let Some(quoted) = s.strip_prefix('"') {
            parse_quoted(quoted, utf8)?
        } else {
            let end = s.find('@').unwrap_or(s.len());
            let (local, rest) = s.split_at(end);
            check_unquoted_local(local, utf8)?;
            (local.to_string(), rest)
        };
        let domain = match rest.strip_prefix('@') {
            None if rest.is_empty() => String::new(),
            None => return Err(AddressError::Syntax("text after the local part")),
            Some(d) => Domain::parse(d, utf8)?.as_str().to_string(),
        };
        Address::checked(local, domain)
    }

    /// Builds an address from an unquoted local part and a domain (empty for
    /// none), validating both as [`Address::parse`] would.
    #[cfg(test)]
    pub(crate) fn new(local: &str, domain: &str, utf8: bool) -> Result<Address, AddressError> {
        for c in local.chars() {
            check_quoted_char(c, utf8)?;
        }
        let domain = if domain.is_empty() {
            String::new()
        } else {
            Domain::parse(domain, utf8)?.as_str().to_string()
        };
        Address::checked(local.to_string(), domain)
    }

    fn checked(local: String, domain: String) -> Result<Address, AddressError> {
        if local.len() > MAX_LOCAL_PART {
            return Err(AddressError::LocalTooLong);
        }
        if domain.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong);
        }
        let at = usize::from(!domain.is_empty());
        if local.len() + at + domain.len() + 2 > MAX_PATH {
            return Err(AddressError::PathTooLong);
        }
        Ok(Address { local, domain })
    }

    /// The local part, unquoted.
    pub(crate) fn local(&self) -> &str {
        &self.local
    }

    /// The domain as given (`[192.0.2.1]` for a literal); empty when the
    /// address had none.
    pub(crate) fn domain(&self) -> &str {
        &self.domain
    }

    /// False when the address needs SMTPUTF8 to be relayed.
    pub(crate) fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

impl fmt::Display for Address {
    /// `local@domain`, quoting the local part when it is not a dot-atom;
    /// just the local part when there is no domain.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_atom(&self.local) {
            f.write_str(&self.local)?;
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        if !self.domain.is_empty() {
            write!(f, "@{}", self.domain)?;
        }
        Ok(())
    }
}

impl Path {
    pub(crate) fn address(&self) -> Option<&Address> {
        match self {
            Path::Null => None,
            Path::Mailbox(a) => Some(a),
        }
    }
}

impl fmt::Display for Path {
    /// The address without angle brackets, empty for the null path, as
    /// Postfix logs it inside `from=<...>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Null => Ok(()),
            Path::Mailbox(a) => a.fmt(f),
        }
    }
}

impl Domain {
    /// Parses a host name or an address literal. `utf8` allows U-labels.
    pub(crate) fn parse(s: &str, utf8: bool) -> Result<Domain, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Syntax("empty domain"));
        }
        if s.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong);
        }
        if let Some(rest) = s.strip_prefix('[') {
            let inner = rest
                .strip_suffix(']')
                .ok_or(AddressError::Syntax("missing ']'"))?;
            let ip = parse_literal(inner).ok_or(AddressError::Syntax("bad address literal"))?;
            return Ok(Domain::Literal {
                ip,
                text: s.to_string(),
            });
        }
        for label in s.split('.') {
            check_label(label, utf8)?;
        }
        Ok(Domain::Name(s.to_string()))
    }

    /// The domain as given.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Domain::Name(s) => s,
            Domain::Literal { text, .. } => text,
        }
    }

    /// The IP address of an address literal.
    #[cfg(test)]
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        match self {
            Domain::Name(_) => None,
            Domain::Literal { ip, .. } => Some(*ip),
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Skips `@a,@b:` (RFC 5321 A-d-l) and returns what follows the colon.
fn skip_source_route(mut s: &str, utf8: bool) -> Result<&str, AddressError> {
    const BAD: AddressError = AddressError::Syntax("bad source route");
    loop {
        s = s.strip_prefix('@').ok_or(BAD)?;
        let end = if s.starts_with('[') {
            s.find(']').map(|i| i + 1)
        } else {
            s.find([',', ':'])
        };
        let (domain, rest) = s.split_at(end.ok_or(BAD)?);
        Domain::parse(domain, utf8)?;
        if let Some(more) = rest.strip_prefix(',') {
            s = more;
        } else {
            return rest.strip_prefix(':').ok_or(BAD);
        }
    }
}

/// Parses a quoted local part (after its opening quote); returns the
/// unquoted text and what follows the closing quote.
fn parse_quoted(s: &str, utf8: bool) -> Result<(String, &str), AddressError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => {
                let (_, q) = chars
                    .next()
                    .ok_or(AddressError::Syntax("unterminated quoted string"))?;
                if !(' '..='~').contains(&q) {
                    return Err(AddressError::Syntax("bad quoted pair"));
                }
                out.push(q);
            }
            _ => {
                check_quoted_char(c, utf8)?;
                out.push(c);
            }
        }
        if out.len() > MAX_LOCAL_PART {
            return Err(AddressError::LocalTooLong);
        }
    }
    Err(AddressError::Syntax("unterminated quoted string"))
}

/// A character allowed in a local part once quoted: printable ASCII,
/// space, and (with SMTPUTF8) non-ASCII other than controls.
fn check_quoted_char(c: char, utf8: bool) -> Result<(), AddressError> {
    if c.is_ascii() {
        if (' '..='~').contains(&c) {
            Ok(())
        } else {
            Err(AddressError::Syntax("control character"))
        }
    } else if !utf8 {
        Err(AddressError::NonAscii)
    } else if c.is_control() {
        Err(AddressError::Syntax("control character"))
    } else {
        Ok(())
    }
}

/// An unquoted local part: atext and dots, dots anywhere (lenient).
fn check_unquoted_local(s: &str, utf8: bool) -> Result<(), AddressError> {
    if s.is_empty() {
        return Err(AddressError::Syntax("empty local part"));
    }
    for c in s.chars() {
        if !c.is_ascii() {
            check_quoted_char(c, utf8)?;
        } else if !(c == '.' || is_atext(c)) {
            return Err(AddressError::Syntax("bad character in local part"));
        }
    }
    Ok(())
}

/// RFC 5322 atext, extended by RFC 6532 with non-ASCII (UTF8-non-ascii).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

/// True when `s` can be written without quotes: atoms separated by single
/// dots.
fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

fn check_label(label: &str, utf8: bool) -> Result<(), AddressError> {
    if label.is_empty() {
        return Err(AddressError::Syntax("empty domain label"));
    }
    if label.len() > MAX_LABEL {
        return Err(AddressError::Syntax("domain label too long"));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(AddressError::Syntax("misplaced hyphen"));
    }
    for c in label.chars() {
        if c.is_ascii() {
            if !(c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(AddressError::Syntax("bad character in domain"));
            }
        } else if !utf8 {
            return Err(AddressError::NonAscii);
        } else if c.is_control() || c.is_whitespace() {
            return Err(AddressError::Syntax("bad character in domain"));
        }
    }
    Ok(())
}

/// The inside of `[...]`: a dotted quad, or `IPv6:` and an IPv6 address.
fn parse_literal(inner: &str) -> Option<IpAddr> {
    let tag = inner.get(..5);
    if tag.is_some_and(|t| t.eq_ignore_ascii_case("IPv6:")) {
        inner[5..].parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

/// `user+ext` split at the first character of `delimiters` (Postfix's
/// `recipient_delimiter`, a set of characters): the user and, when there
/// is one, the delimiter and the extension. A local part that would leave
/// no user is not split, nor, as in Postfix, `postmaster`,
/// `mailer-daemon` and `double-bounce`, nor (when `-` is a delimiter, for
/// `owner_request_special`) `owner-NAME` and `NAME-request`.
pub(crate) fn split_extension<'a>(
    local: &'a str,
    delimiters: &str,
) -> (&'a str, Option<(char, &'a str)>) {
    let is = |name: &str| local.eq_ignore_ascii_case(name);
    if is("postmaster") || is("mailer-daemon") || is("double-bounce") {
        return (local, None);
    }
    if delimiters.contains('-') {
        let head = local
            .get(..6)
            .is_some_and(|h| h.eq_ignore_ascii_case("owner-"));
        let tail = local.len() > 8
            && local
                .get(local.len() - 8..)
                .is_some_and(|t| t.eq_ignore_ascii_case("-request"));
        if head || tail {
            return (local, None);
        }
    }
    match local
        .char_indices()
        .find(|(_, c)| delimiters.contains(*c))
        .filter(|(at, _)| *at > 0)
    {
        Some((at, c)) => (&local[..at], Some((c, &local[at + c.len_utf8()..]))),
        None => (local, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mailbox(s: &str) -> Address {
        match parse_path(s, false) {
            Ok(Path::Mailbox(a)) => a,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn null_path() {
        assert_eq!(parse_path("<>", false), Ok(Path::Null));
        assert_eq!(Path::Null.to_string(), "");
    }

    #[test]
    fn plain_mailbox() {
        let a = mailbox("<u@example.com>");
        assert_eq!((a.local(), a.domain()), ("u", "example.com"));
        assert_eq!(a.to_string(), "u@example.com");
    }

    #[test]
    fn bare_mailbox_without_brackets() {
        assert_eq!(mailbox("u@example.com"), mailbox("<u@example.com>"));
    }

    #[test]
    fn source_route_is_dropped() {
        let a = mailbox("<@a.example,@b.example:u@example.com>");
        assert_eq!(a.to_string(), "u@example.com");
        assert!(parse_path("<@a.example u@example.com>", false).is_err());
        assert!(parse_path("<@:u@example.com>", false).is_err());
        assert!(parse_path("<@a,b:u@example.com>", false).is_err());
        assert!(parse_path("<@a.example>", false).is_err());
        let a = mailbox("<@[IPv6:::1],@[192.0.2.1]:u@example.com>");
        assert_eq!(a.to_string(), "u@example.com");
    }

    #[test]
    fn quoted_local_part() {
        let a = mailbox(r#"<"a b"@example.com>"#);
        assert_eq!(a.local(), "a b");
        assert_eq!(a.to_string(), r#""a b"@example.com"#);
        let a = mailbox(r#"<"a\"b\\c@d"@example.com>"#);
        assert_eq!(a.local(), r#"a"b\c@d"#);
        assert_eq!(a.to_string(), r#""a\"b\\c@d"@example.com"#);
        // Quotes that were not needed are dropped on output.
        assert_eq!(
            mailbox(r#"<"abc"@example.com>"#).to_string(),
            "abc@example.com"
        );
    }

    #[test]
    fn lenient_dots_are_requoted() {
        let a = mailbox("<a..b.@example.com>");
        assert_eq!(a.local(), "a..b.");
        assert_eq!(a.to_string(), r#""a..b."@example.com"#);
    }

    #[test]
    fn local_part_without_domain() {
        let a = mailbox("<postmaster>");
        assert_eq!((a.local(), a.domain()), ("postmaster", ""));
        assert_eq!(a.to_string(), "postmaster");
    }

    #[test]
    fn address_literals() {
        assert_eq!(mailbox("<u@[192.0.2.1]>").domain(), "[192.0.2.1]");
        assert_eq!(
            mailbox("<u@[IPv6:2001:db8::1]>").domain(),
            "[IPv6:2001:db8::1]"
        );
        assert_eq!(
            Domain::parse("[ipv6:::1]", false).map(|d| d.ip()),
            Ok(Some("::1".parse().unwrap()))
        );
        for bad in [
            "<u@[192.0.2.256]>",
            "<u@[2001:db8::1]>",
            "<u@[x]>",
            "<u@[1.2.3.4>",
        ] {
            assert!(parse_path(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "<",
            ">",
            "<u@example.com",
            "u@example.com>",
            "<<u@example.com>>",
            "<u@>",
            "<@example.com>",
            "<u@exa mple.com>",
            "<u v@example.com>",
            "<u@-example.com>",
            "<u@example-.com>",
            "<u@example..com>",
            "<u@example.com.>",
            "<\"unterminated@example.com>",
            "<\"a\"b@example.com>",
            "<u@example.com@x>",
            "<(comment)u@example.com>",
            "<u\u{7f}@example.com>",
            "<\"\u{1}\"@example.com>",
        ] {
            assert!(parse_path(bad, true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn utf8_needs_the_flag() {
        assert_eq!(
            parse_path("<ü@example.com>", false),
            Err(AddressError::NonAscii)
        );
        assert_eq!(
            parse_path("<u@exämple.com>", false),
            Err(AddressError::NonAscii)
        );
        let a = match parse_path("<ü@exämple.com>", true) {
            Ok(Path::Mailbox(a)) => a,
            other => panic!("{other:?}"),
        };
        assert!(!a.is_ascii());
        assert_eq!(a.to_string(), "ü@exämple.com");
    }

    #[test]
    fn length_limits() {
        let l64 = "a".repeat(64);
        assert!(parse_path(&format!("<{l64}@example.com>"), false).is_ok());
        assert_eq!(
            parse_path(&format!("<{l64}a@example.com>"), false),
            Err(AddressError::LocalTooLong)
        );
        assert_eq!(
            parse_path(&format!("<\"{l64}a\"@example.com>"), false),
            Err(AddressError::LocalTooLong)
        );
        // 4 labels of 63 + 3 dots = 255.
        let label = "b".repeat(63);
        let d255 = [label.as_str(); 4].join(".");
        assert_eq!(d255.len(), 255);
        assert!(Domain::parse(&d255, false).is_ok());
        assert_eq!(
            Domain::parse(&format!("{d255}x"), false),
            Err(AddressError::DomainTooLong)
        );
        assert_eq!(
            Domain::parse(&format!("{}.x", "b".repeat(64)), false),
            Err(AddressError::Syntax("domain label too long"))
        );
        // 253 octets of local@domain is the most a 256-octet path holds.
        let d = format!(
            "{}.{}.{}.{}",
            "c".repeat(63),
            "c".repeat(63),
            "c".repeat(63),
            "c".repeat(61)
        );
        assert_eq!(d.len(), 253);
        assert!(parse_path(&format!("<a@{}>", &d[2..]), false).is_ok());
        assert_eq!(
            parse_path(&format!("<a@{d}>"), false),
            Err(AddressError::PathTooLong)
        );
    }

    #[test]
    fn new_validates() {
        let a = Address::new("a b", "example.com", false).unwrap();
        assert_eq!(a.to_string(), "\"a b\"@example.com");
        assert!(Address::new("a\nb", "example.com", false).is_err());
        assert!(Address::new("a", "bad domain", false).is_err());
    }

    fn local_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]{1,20}",
            "[ -~]{0,70}",
            "[a-zé\" \\\\.]{0,10}",
        ]
    }

    fn domain_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9_]{1,10}){0,3}",
            "ex[äa]mple\\.[a-z]{2,4}",
            Just("[192.0.2.1]".to_string()),
            Just("[IPv6:2001:db8::1]".to_string()),
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,300}", utf8 in any::<bool>()) {
            let _ = parse_path(&s, utf8);
        }

        #[test]
        fn parsed_addresses_display_back(s in "[<>@\"\\\\ .,:a-zü\\[\\]0-9]{0,40}", utf8 in any::<bool>()) {
            if let Ok(Path::Mailbox(a)) = parse_path(&s, utf8) {
                prop_assert_eq!(parse_path(&format!("<{a}>"), utf8), Ok(Path::Mailbox(a.clone())));
                prop_assert_eq!(parse_path(&a.to_string(), utf8), Ok(Path::Mailbox(a)));
            }
        }

        #[test]
        fn built_addresses_round_trip(local in local_strategy(), domain in domain_strategy()) {
            if let Ok(a) = Address::new(&local, &domain, true) {
                prop_assert_eq!(a.local(), local.as_str());
                prop_assert_eq!(parse_path(&format!("<{a}>"), true), Ok(Path::Mailbox(a)));
            }
        }
    }

    #[test]
    fn extensions_split_at_the_first_delimiter() {
        assert_eq!(
            split_extension("user+ext", "+-"),
            ("user", Some(('+', "ext")))
        );
        assert_eq!(
            split_extension("user-a+b", "+-"),
            ("user", Some(('-', "a+b")))
        );
        assert_eq!(split_extension("+ext", "+"), ("+ext", None));
        assert_eq!(split_extension("user", ""), ("user", None));
        assert_eq!(
            split_extension("mailer-daemon", "-"),
            ("mailer-daemon", None)
        );
        assert_eq!(split_extension("owner-list", "+-"), ("owner-list", None));
        assert_eq!(split_extension("List-Request", "-"), ("List-Request", None));
        assert_eq!(
            split_extension("owner-list+x", "+"),
            ("owner-list", Some(('+', "x")))
        );
    }
}
