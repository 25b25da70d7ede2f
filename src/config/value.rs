//! Parsers for the typed values of the configuration: durations, client
//! networks, listen addresses, host and user names. Each returns the typed
//! value or a short reason for the error message. Host names are checked
//! by [`crate::wire::hostname`], where the feature modules' value parsers
//! (next hops, DKIM keys) reach them without the configuration.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

pub(crate) use crate::wire::hostname::check_hostname;

/// Units a duration may carry, largest first, with their length in seconds
/// (Postfix's time units).
const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86400),
    ('d', 86400),
    ('h', 3600),
    ('m', 60),
    ('s', 1),
];

/// The longest duration accepted, in seconds: Postfix's limit (an `int`),
/// about 68 years. Longer ones would overflow `Instant` arithmetic.
pub(super) const MAX_DURATION_SECS: u64 = i32::MAX as u64;

/// Checks a number of seconds against [`MAX_DURATION_SECS`].
pub(super) fn duration_from_secs(secs: u64) -> Result<Duration, String> {
    if secs > MAX_DURATION_SECS {
        return Err(format!(
            "duration too large (at most {MAX_DURATION_SECS}s, about 68 years)"
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// Parses `"300s"`, `"5d"`, `"90"` (seconds): digits and an optional unit
/// `s`, `m`, `h`, `d` or `w`.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    const USAGE: &str =
        "expected a number of seconds or a number with a unit s, m, h, d or w (\"300s\", \"5d\")";
    let (digits, unit) = match text.char_indices().last() {
        None => return Err("empty duration; ".to_string() + USAGE),
        Some((at, c)) if c.is_ascii_alphabetic() => (&text[..at], c),
        Some(_) => (text, 's'),
    };
    let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(format!("unknown time unit `{unit}`; {USAGE}"));
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(USAGE.to_string());
    }
    let secs = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .unwrap_or(u64::MAX);
    duration_from_secs(secs)
}

/// Formats a duration with the largest unit that divides it exactly
/// (`"5d"`, `"300s"`, `"90m"`); sub-second parts are dropped.
pub(super) fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    UNITS
        .iter()
        .find(|(_, scale)| secs.is_multiple_of(*scale))
        .map(|(unit, scale)| format!("{}{unit}", secs / scale))
        .unwrap_or_else(|| format!("{secs}s"))
}

/// Parses a client network: CIDR (`10.0.0.0/8`, `::1/128`, Postfix-style
/// `[::1]/128`) or a bare address (`192.0.2.1`, `::1`, `[::1]`), which
/// means that one host. Host bits must be zero, as in Postfix.
pub(super) fn parse_network(text: &str) -> Result<IpNet, String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let unbracketed = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let ip: IpAddr = unbracketed
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    if unbracketed.len() != addr.len() && ip.is_ipv4() {
        return Err("brackets are for IPv6 addresses only".to_string());
    }
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
            .parse::<u8>()
            .map_err(|_| format!("bad prefix length `{p}`"))?,
        Some(p) => return Err(format!("bad prefix length `{p}`")),
    };
    let net = IpNet::new(ip, len).map_err(|_| format!("prefix length {len} is above {max}"))?;
    let base = net.trunc();
    if base != net {
        return Err(format!("host bits are set; did you mean `{base}`?"));
    }
    Ok(net)
}

/// Parses a listen address `ip:port` (`0.0.0.0:25`, `[::1]:25`).
pub(super) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| "expected ip:port, e.g. \"0.0.0.0:25\" or \"[::1]:25\"".to_string())
}

/// Two listeners of `smtpd.listen` that cannot both be bound: the same
/// address twice, or a wildcard of one family (`0.0.0.0`, `[::]`) and
/// another address of that family on the same port. `[::]:P` beside
/// IPv4 addresses on port P is fine: it is then bound IPv6-only (see
/// [`v6_only`]), as Postfix binds with `inet_protocols = all`. Port 0
/// (any free port) never collides.
pub(super) fn colliding_listeners(addrs: &[SocketAddr]) -> Option<(SocketAddr, String)> {
    let covers = |a: &SocketAddr, b: &SocketAddr| {
        a.ip() == b.ip() || (a.ip().is_unspecified() && a.is_ipv6() == b.is_ipv6())
    };
    for (i, a) in addrs.iter().enumerate() {
        for b in addrs.iter().skip(i + 1) {
            if a.port() != b.port() || a.port() == 0 {
                continue;
            }
            if a == b {
                return Some((*b, format!("{b} is named twice")));
            }
            if covers(a, b) || covers(b, a) {
                let (wide, narrow) = if covers(a, b) { (a, b) } else { (b, a) };
                return Some((
                    *b,
                    format!("{wide} already listens on {narrow}: the two cannot both be bound"),
                ));
            }
        }
    }
    None
}

/// Whether the IPv6 listener `addr` of `all` must take IPv6 only: when
/// an IPv4 address listens on the same port too (else a wildcard `[::]`
/// takes IPv4 as well, dual-stack).
pub(crate) fn v6_only(addr: &SocketAddr, all: &[SocketAddr]) -> bool {
    addr.is_ipv6() && all.iter().any(|a| a.is_ipv4() && a.port() == addr.port())
}

/// Checks a login name: 1 to 32 bytes of letters, digits, `.`, `_`, `-`,
/// not starting with `-`.
pub(super) fn check_user(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty user name".to_string());
    }
    if name.len() > 32 {
        return Err("user name longer than 32 bytes".to_string());
    }
    if name.starts_with('-') {
        return Err("user name starts with `-`".to_string());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!("character {c:?} is not allowed in a user name")),
        None => Ok(()),
    }
}

/// Checks the SMTP greeting text: it follows `220 ` on one reply line.
pub(super) fn check_banner(banner: &str) -> Result<(), String> {
    if banner.trim().is_empty() {
        return Err("empty banner".to_string());
    }
    if banner.chars().any(|c| c.is_control()) {
        return Err("control characters (line breaks) are not allowed".to_string());
    }
    if banner.len() > 500 {
        return Err("longer than 500 bytes (an SMTP reply line is at most 512)".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5d"), Ok(Duration::from_secs(5 * 86400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86400)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7m"), Ok(Duration::from_secs(420)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "5x",
            "+5",
            "-5",
            "5 s",
            " 5s",
            "5S",
            "1h30m",
            "5é",
            "99999999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(
            parse_duration("5x")
                .unwrap_err()
                .contains("unknown time unit `x`")
        );
        assert!(
            parse_duration("40000000000000w")
                .unwrap_err()
                .starts_with("duration too large")
        );
        assert!(
            parse_duration("3551w")
                .unwrap_err()
                .starts_with("duration too large")
        );
        assert_eq!(
            parse_duration("3550w"),
            Ok(Duration::from_secs(3550 * 7 * 86400))
        );
        assert_eq!(
            parse_duration("2147483647"),
            Ok(Duration::from_secs(MAX_DURATION_SECS))
        );
        assert!(parse_duration("2147483648").is_err());
    }

    #[test]
    fn durations_format_with_the_largest_exact_unit() {
        let f = |s| format_duration(Duration::from_secs(s));
        assert_eq!(f(0), "0s");
        assert_eq!(f(300), "5m");
        assert_eq!(f(4000), "4000s");
        assert_eq!(f(5 * 86400), "5d");
        assert_eq!(f(7 * 86400), "1w");
        assert_eq!(f(5400), "90m");
        assert_eq!(f(3600), "1h");
        for s in [
            0,
            1,
            59,
            60,
            61,
            3600,
            86399,
            86400,
            604800,
            MAX_DURATION_SECS,
        ] {
            assert_eq!(parse_duration(&f(s)), Ok(Duration::from_secs(s)));
        }
    }

    #[test]
    fn networks() {
        let ok = |s: &str| parse_network(s).unwrap().to_string();
        assert_eq!(ok("10.0.0.0/8"), "10.0.0.0/8");
        assert_eq!(ok("192.0.2.1"), "192.0.2.1/32");
        assert_eq!(ok("::1"), "::1/128");
        assert_eq!(ok("[::1]/128"), "::1/128");
        assert_eq!(ok("[::1]"), "::1/128");
        assert_eq!(ok("2001:db8::/32"), "2001:db8::/32");
        assert_eq!(ok("0.0.0.0/0"), "0.0.0.0/0");
        assert_eq!(
            parse_network("10.0.0.1/8").unwrap_err(),
            "host bits are set; did you mean `10.0.0.0/8`?"
        );
        assert_eq!(
            parse_network("10.0.0.0/33").unwrap_err(),
            "prefix length 33 is above 32"
        );
        assert_eq!(
            parse_network("10.0.0.0/").unwrap_err(),
            "bad prefix length ``"
        );
        assert_eq!(
            parse_network("10.0.0.0/+8").unwrap_err(),
            "bad prefix length `+8`"
        );
        assert_eq!(
            parse_network("[10.0.0.1]").unwrap_err(),
            "brackets are for IPv6 addresses only"
        );
        assert_eq!(
            parse_network("example.com").unwrap_err(),
            "`example.com` is not an IP address"
        );
        assert!(parse_network("").is_err());
        assert!(parse_network("::1/129").is_err());
        assert!(parse_network("::1/1/2").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("0.0.0.0:25").unwrap().to_string(),
            "0.0.0.0:25"
        );
        assert_eq!(parse_listen("[::1]:25").unwrap().to_string(), "[::1]:25");
        for bad in [
            "",
            "localhost:25",
            "::1:25",
            "0.0.0.0",
            "0.0.0.0:99999",
            ":25",
        ] {
            assert!(parse_listen(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn users_and_banners() {
        assert_eq!(check_user("postern"), Ok(()));
        assert_eq!(check_user("mail_owner-1.x"), Ok(()));
        for bad in ["", "-x", "a b", "a:b", "a/b", &"u".repeat(33)] {
            assert!(check_user(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_banner("mail.example ESMTP"), Ok(()));
        for bad in ["", "  ", "a\r\n250 x", "a\tb", &"x".repeat(501)] {
            assert!(check_banner(bad).is_err(), "{bad:?}");
        }
    }
}
