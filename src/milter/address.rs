//! Where a milter or a policy server listens (`unix:/path`,
//! `inet:host:port`): the type and its parser, as `milter.smtpd`,
//! `milter.non_smtpd` and `check_policy_service` write it. A leaf: it
//! names nothing else of the crate, so the configuration reads it without
//! the milter client (`tests/imports.rs`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// Where a milter listens: Postfix's `unix:/path` (or `local:/path`) and
/// `inet:host:port` (`inet:[::1]:port` for IPv6). Hosts are IP
/// addresses: smtpd's sandbox resolves no names for this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Inet(SocketAddr),
}

/// What is wrong with a milter or policy server address; the text names
/// the address, its user says what it is (`milter address …`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("\"{0}\": expected unix:/path, local:/path or inet:host:port")]
    NoTransport(String),
    #[error(
        "\"{0}\": unknown transport \"{1}\" (unix, local or inet; libmilter's inet6: is written inet:[addr]:port)"
    )]
    UnknownTransport(String, String),
    #[error("\"{0}\": the socket path must be absolute")]
    RelativePath(String),
    #[error("\"{0}\": expected inet:host:port (IPv6: inet:[addr]:port)")]
    NoPort(String),
    #[error("\"{0}\": bad port \"{1}\" (1 to 65535)")]
    BadPort(String, String),
    #[error("\"{0}\": the host \"{1}\" is not an IP address (smtpd resolves no names for these)")]
    BadHost(String, String),
    #[error("\"{0}\": an IPv6 address goes in brackets: inet:[addr]:port")]
    Unbracketed(String),
}

impl Address {
    /// Parse Postfix's milter address forms: `unix:/path`, `local:/path`
    /// (the same), `inet:192.0.2.1:11332`, `inet:[2001:db8::1]:11332`.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let whole = || text.to_string();
        let (transport, endpoint) = text
            .split_once(':')
            .filter(|(t, e)| !t.is_empty() && !e.is_empty())
            .ok_or_else(|| AddressError::NoTransport(whole()))?;
        match transport {
            "unix" | "local" => {
                let path = PathBuf::from(endpoint);
                if !path.is_absolute() {
                    return Err(AddressError::RelativePath(whole()));
                }
                Ok(Address::Unix(path))
            }
            "inet" => {
                let (host, port) = endpoint
                    .rsplit_once(':')
                    .ok_or_else(|| AddressError::NoPort(whole()))?;
                let port_number = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| AddressError::BadPort(whole(), port.to_string()))?;
                let ip = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                    Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
                    // An IPv6 address without brackets lost its last
                    // group to the port, or has no port.
                    None if host.contains(':') => return Err(AddressError::Unbracketed(whole())),
                    // rspamd's and OpenDKIM's documentation write it so.
                    None if host.eq_ignore_ascii_case("localhost") => {
                        Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
                    }
                    None => host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
                };
                let ip = ip.ok_or_else(|| AddressError::BadHost(whole(), host.to_string()))?;
                Ok(Address::Inet(SocketAddr::new(ip, port_number)))
            }
            other => Err(AddressError::UnknownTransport(whole(), other.to_string())),
        }
    }
}

impl Address {
    /// [`Address::parse`] with its error as text (the configuration's
    /// readers take those).
    pub fn parse_text(text: &str) -> Result<Address, String> {
        Address::parse(text).map_err(|e| format!("milter address {e}"))
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Address, AddressError> {
        Address::parse(text)
    }
}

/// Postfix's form, as in its log lines: `unix:/run/x.sock`,
/// `inet:127.0.0.1:11332`, `inet:[::1]:11332`.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Inet(addr) => write!(f, "inet:{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_as_postfix_writes_them() {
        for (text, address) in [
            (
                "unix:/run/rspamd/milter.sock",
                Address::Unix("/run/rspamd/milter.sock".into()),
            ),
            (
                "inet:127.0.0.1:11332",
                Address::Inet("127.0.0.1:11332".parse().unwrap()),
            ),
            (
                "inet:[::1]:8891",
                Address::Inet("[::1]:8891".parse().unwrap()),
            ),
        ] {
            assert_eq!(Address::parse(text), Ok(address.clone()));
            assert_eq!(address.to_string(), text);
        }
        assert_eq!(
            "local:/run/x.sock".parse::<Address>(),
            Ok(Address::Unix("/run/x.sock".into()))
        );
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        let error = |text: &str| Address::parse_text(text).unwrap_err();
        assert_eq!(
            error("127.0.0.1:11332"),
            "milter address \"127.0.0.1:11332\": unknown transport \"127.0.0.1\" (unix, local or inet; libmilter's inet6: is written inet:[addr]:port)"
        );
        assert_eq!(
            error("/run/x.sock"),
            "milter address \"/run/x.sock\": expected unix:/path, local:/path or inet:host:port"
        );
        assert_eq!(
            error("unix:run/x.sock"),
            "milter address \"unix:run/x.sock\": the socket path must be absolute"
        );
        assert_eq!(
            error("inet:11332"),
            "milter address \"inet:11332\": expected inet:host:port (IPv6: inet:[addr]:port)"
        );
        assert_eq!(
            error("inet:127.0.0.1:0"),
            "milter address \"inet:127.0.0.1:0\": bad port \"0\" (1 to 65535)"
        );
        assert_eq!(
            error("inet:127.0.0.1:+25"),
            "milter address \"inet:127.0.0.1:+25\": bad port \"+25\" (1 to 65535)"
        );
        assert_eq!(
            error("inet:mail.example:11332"),
            "milter address \"inet:mail.example:11332\": the host \"mail.example\" is not an IP address (smtpd resolves no names for these)"
        );
        assert_eq!(
            Address::parse("inet:localhost:11332").unwrap().to_string(),
            "inet:127.0.0.1:11332"
        );
        assert_eq!(
            error("inet:::1:11332"),
            "milter address \"inet:::1:11332\": an IPv6 address goes in brackets: inet:[addr]:port"
        );
        assert!(Address::parse("inet:[127.0.0.1]:25").is_err());
        assert!(Address::parse("inet::25").is_err());
    }
}
