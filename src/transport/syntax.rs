//! Transport results and next hops as transport(5) and the configuration
//! write them (`smtp:[mail.example.com]:587`, `lmtp:unix:/run/dovecot/lmtp`,
//! `error:5.1.1 text`; see [`crate::transport`]): the types, their parsers
//! and their printed form. A leaf of syntax: it names nothing of the crate
//! but [`crate::wire`], never `crate::config` (`tests/imports.rs`).

use std::fmt;
use std::path::PathBuf;

/// A transport table's answer for a recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Local delivery (`local:`).
    Local,
    /// SMTP to this next hop; `None`: the default route.
    Smtp(Option<Nexthop>),
    /// Bounce with this text (`error:`); it may open with an enhanced
    /// status code (`5.1.1 no such user`).
    Error(String),
    /// Drop the recipient, reported as delivered (`discard:`).
    Discard(String),
    /// LMTP to this next hop (`lmtp:`): the smtp agent in LMTP mode, as
    /// Postfix's lmtp is its smtp client in LMTP mode. `lmtp` is set in it.
    Lmtp(Nexthop),
}

/// The LMTP port when a next hop names none (Postfix `lmtp_tcp_port`).
pub const LMTP_PORT: u16 = 24;

/// An SMTP next hop: `[host]:port` (no MX lookup) or `host:port` (MX
/// lookup of host).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Nexthop {
    /// Host name or IP address literal (without brackets).
    pub host: String,
    /// The port; `None`: `smtp.port` (25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Look up MX records of `host` (it was written without brackets).
    pub mx: bool,
    /// Speak LMTP (RFC 2033) instead of SMTP: an `lmtp:` transport.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lmtp: bool,
    /// A Unix-domain socket instead of a host (`lmtp:unix:/path`); `host`
    /// is empty then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix: Option<PathBuf>,
}

impl Nexthop {
    /// Parse `[host]:port`, `[host]`, `host:port` or `host` (a port may be
    /// a number or `smtp`, `submission`, `smtps`; an IPv6 literal is
    /// written in brackets, optionally as `[ipv6:…]`).
    pub fn parse(text: &str) -> Result<Nexthop, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty next hop".into());
        }
        let (host, rest, mx) = if let Some(inner) = text.strip_prefix('[') {
            let Some((host, rest)) = inner.split_once(']') else {
                return Err(format!("{text:?}: missing ']'"));
            };
            let host = host
                .strip_prefix("ipv6:")
                .or_else(|| host.strip_prefix("IPv6:"))
                .unwrap_or(host);
            (host, rest, false)
        } else {
            let (host, rest) = text.split_at(text.find(':').unwrap_or(text.len()));
            (host, rest, true)
        };
        let port = match rest {
            "" => None,
            r => match r.strip_prefix(':') {
                Some(p) => Some(parse_port(p).ok_or_else(|| format!("{text:?}: bad port {p:?}"))?),
                None => return Err(format!("{text:?}: unexpected {r:?} after the host")),
            },
        };
        if host.is_empty() {
            return Err(format!("{text:?}: empty host"));
        }
        let literal = host.parse::<std::net::IpAddr>().is_ok();
        if !literal {
            crate::wire::hostname::check_hostname(host).map_err(|e| format!("{text:?}: {e}"))?;
        }
        Ok(Nexthop {
            host: host.to_ascii_lowercase(),
            port,
            mx: mx && !literal,
            lmtp: false,
            unix: None,
        })
    }

    /// Parse an LMTP next hop (Postfix lmtp(8)): `unix:/path` (an absolute
    /// path), `inet:host:port`, `inet:[host]:port`, `[host]:port`,
    /// `host:port` or `host`. Hosts are never looked up as MX; the port is
    /// 24 unless given.
    pub fn parse_lmtp(text: &str) -> Result<Nexthop, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(
                "an lmtp: transport needs a next hop (unix:/path/to/socket or inet:host:port)"
                    .into(),
            );
        }
        if let Some(path) = text.strip_prefix("unix:") {
            let path = PathBuf::from(path.trim());
            if !path.is_absolute() {
                return Err(format!(
                    "{text:?}: the socket must be an absolute path (unix:/run/dovecot/lmtp)"
                ));
            }
            return Ok(Nexthop {
                host: String::new(),
                port: None,
                mx: false,
                lmtp: true,
                unix: Some(path),
            });
        }
        let inet = text.strip_prefix("inet:").unwrap_or(text);
        let n = Nexthop::parse(inet)?;
        Ok(Nexthop {
            port: Some(n.port.unwrap_or(LMTP_PORT)),
            mx: false,
            lmtp: true,
            ..n
        })
    }
}

/// `local.mailbox_transport` (Postfix `mailbox_transport`): an LMTP
/// server, written `lmtp:unix:/absolute/path`, `lmtp:inet:host:port`
/// (`lmtp:inet:host`: port 24) or `lmtp:[host]:port`, and nothing else:
/// Postfix's other values name master.cf services (a `pipe` to
/// Dovecot's `deliver`, `cyrus`) that postern does not have, and its
/// relative `unix:private/dovecot-lmtp` lies in Postfix's queue directory.
pub fn parse_mailbox_transport(text: &str) -> Result<Transport, String> {
    const FORMS: &str = "lmtp:unix:/run/dovecot/lmtp, lmtp:inet:host:port or lmtp:[host]:port";
    let text = text.trim();
    let (transport, nexthop) = text.split_once(':').unwrap_or((text, ""));
    if !transport.eq_ignore_ascii_case("lmtp") {
        return Err(format!(
            "only an LMTP server can take the mailbox deliveries: {FORMS}"
        ));
    }
    let nexthop = nexthop.trim();
    if let Some(path) = nexthop.strip_prefix("unix:")
        && !path.trim().is_empty()
        && !path.trim().starts_with('/')
    {
        let path = path.trim();
        return Err(format!(
            "the socket must be an absolute path: give the LMTP server's socket as \
             lmtp:unix:/path (Postfix's {path:?} is relative to its queue directory, \
             e.g. /var/spool/postfix/{path}; Dovecot's own is /run/dovecot/lmtp)"
        ));
    }
    if !(nexthop.starts_with("unix:") || nexthop.starts_with("inet:") || nexthop.starts_with('[')) {
        return Err(format!("write the LMTP server as {FORMS}"));
    }
    Nexthop::parse_lmtp(nexthop).map(Transport::Lmtp)
}

fn parse_port(p: &str) -> Option<u16> {
    match p {
        "smtp" => Some(25),
        "submission" => Some(587),
        "smtps" | "submissions" => Some(465),
        n => n.parse().ok().filter(|n| *n > 0),
    }
}

impl fmt::Display for Nexthop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.unix {
            return write!(f, "unix:{}", path.display());
        }
        match (self.mx, self.host.contains(':')) {
            (true, _) => write!(f, "{}", self.host)?,
            (false, true) => write!(f, "[ipv6:{}]", self.host)?,
            (false, false) => write!(f, "[{}]", self.host)?,
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

impl Transport {
    /// Parse a transport(5) result (see the module documentation).
    pub fn parse(text: &str) -> Result<Transport, String> {
        let text = text.trim();
        let (transport, nexthop) = text.split_once(':').unwrap_or((text, ""));
        match transport.to_ascii_lowercase().as_str() {
            "local" => Ok(Transport::Local),
            "" | "smtp" | "relay" => match nexthop.trim() {
                "" => Ok(Transport::Smtp(None)),
                n => Nexthop::parse(n).map(|n| Transport::Smtp(Some(n))),
            },
            "error" => Ok(Transport::Error(nexthop.trim().to_string())),
            "discard" => Ok(Transport::Discard(nexthop.trim().to_string())),
            "lmtp" => Nexthop::parse_lmtp(nexthop).map(Transport::Lmtp),
            other => Err(format!(
                "unknown transport {other:?} (known: smtp, relay, lmtp, local, error, discard)"
            )),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Local => write!(f, "local:"),
            Transport::Smtp(None) => write!(f, "smtp:"),
            Transport::Smtp(Some(n)) => write!(f, "smtp:{n}"),
            Transport::Error(t) => write!(f, "error:{t}"),
            Transport::Discard(t) => write!(f, "discard:{t}"),
            Transport::Lmtp(n) => write!(f, "lmtp:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn nexthops() {
        let n = Nexthop::parse("[mail.foo.example]:587").unwrap();
        assert_eq!(
            (n.host.as_str(), n.port, n.mx),
            ("mail.foo.example", Some(587), false)
        );
        let n = Nexthop::parse("Foo.Example").unwrap();
        assert_eq!((n.host.as_str(), n.port, n.mx), ("foo.example", None, true));
        let n = Nexthop::parse("foo.example:smtp").unwrap();
        assert_eq!((n.port, n.mx), (Some(25), true));
        let n = Nexthop::parse("[127.0.0.1]:2525").unwrap();
        assert_eq!(
            (n.host.as_str(), n.port, n.mx),
            ("127.0.0.1", Some(2525), false)
        );
        let n = Nexthop::parse("[ipv6:::1]:25").unwrap();
        assert_eq!(n.host, "::1");
        assert_eq!(n.to_string(), "[ipv6:::1]:25");
        assert!(!Nexthop::parse("127.0.0.1").unwrap().mx);
        for bad in ["", "[x", "[h]x", "h:0", "h:99999", "bad_host!", "[]:25"] {
            assert!(Nexthop::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn transports() {
        assert_eq!(Transport::parse("local:").unwrap(), Transport::Local);
        assert_eq!(Transport::parse("smtp:").unwrap(), Transport::Smtp(None));
        assert_eq!(Transport::parse(":").unwrap(), Transport::Smtp(None));
        assert_eq!(
            Transport::parse("smtp:[10.0.0.1]:25").unwrap().to_string(),
            "smtp:[10.0.0.1]:25"
        );
        assert_eq!(
            Transport::parse("error:5.1.1 gone").unwrap(),
            Transport::Error("5.1.1 gone".into())
        );
        assert_eq!(
            Transport::parse("discard:").unwrap(),
            Transport::Discard(String::new())
        );
        assert!(Transport::parse("uucp:x").is_err());
    }

    #[test]
    fn lmtp_next_hops() {
        let lmtp = |text: &str| match Transport::parse(text) {
            Ok(Transport::Lmtp(n)) => n,
            other => panic!("{text}: {other:?}"),
        };
        let n = lmtp("lmtp:unix:/run/dovecot/lmtp");
        assert_eq!(n.unix.as_deref(), Some(Path::new("/run/dovecot/lmtp")));
        assert!(n.lmtp && !n.mx && n.port.is_none());
        assert_eq!(n.to_string(), "unix:/run/dovecot/lmtp");
        assert_eq!(
            Transport::Lmtp(n).to_string(),
            "lmtp:unix:/run/dovecot/lmtp"
        );
        for (text, host, port) in [
            ("lmtp:inet:127.0.0.1:2424", "127.0.0.1", 2424),
            ("lmtp:inet:mail.example.com", "mail.example.com", 24),
            ("lmtp:inet:[mail.example.com]:25", "mail.example.com", 25),
            ("lmtp:[10.0.0.1]:24", "10.0.0.1", 24),
            ("LMTP:Dovecot.Example:2003", "dovecot.example", 2003),
            ("lmtp:dovecot.example", "dovecot.example", 24),
        ] {
            let n = lmtp(text);
            assert_eq!((n.host.as_str(), n.port), (host, Some(port)), "{text}");
            assert!(n.lmtp && !n.mx && n.unix.is_none(), "{text}");
            // What is printed parses back to the same.
            assert_eq!(lmtp(&Transport::Lmtp(n.clone()).to_string()), n);
        }
        // An LMTP hop is not the SMTP hop to the same place.
        assert_ne!(
            lmtp("lmtp:[10.0.0.1]:24"),
            Nexthop::parse("[10.0.0.1]:24").unwrap()
        );
        for bad in [
            "lmtp:",
            "lmtp:unix:",
            "lmtp:unix:private/dovecot-lmtp",
            "lmtp:inet:",
            "lmtp:inet:h:0",
            "lmtp:[x",
            "lmtp:bad_host!",
        ] {
            assert!(Transport::parse(bad).is_err(), "{bad}");
        }
    }
}
