//! Whether smtpd listens where `smtpd.listen`, `submission.listen` and
//! `submission.implicit_tls_listen` say.
//!
//! The TOML is the one source of truth, but the sockets are bound by
//! whoever started smtpd: systemd (from the socket units the generator
//! wrote at the last boot or daemon-reload) or `postern start`. So they
//! can differ: the file was edited and `systemctl daemon-reload` not run,
//! the generator is not installed, a drop-in in `/etc` names other
//! addresses, the socket was not restarted. smtpd compares the sockets it
//! is handed, name by name, as it starts ([`warn_about_handed`]);
//! `postern check` compares what each of systemd's socket units will hand
//! over and what the running smtpd holds (read from `/proc`: [`held_by`]).

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::Path;

use crate::config::Config;
use crate::role::Role;

/// A key and the listeners it names (`("smtpd.listen", [127.0.0.1:25])`).
pub(crate) type Keyed<'a> = (&'static str, &'a [SocketAddr]);

/// How the listeners in use differ from the configured ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Difference {
    /// Configured, not listened on: each with the key that names it.
    pub missing: Vec<(SocketAddr, &'static str)>,
    /// Listened on, named by none of the keys.
    pub unexpected: Vec<SocketAddr>,
    /// The keys compared, in order.
    pub keys: Vec<&'static str>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &mut dyn Iterator<Item = &SocketAddr>| {
            v.map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        // "A, B of smtpd.listen, C of submission.listen", in key order.
        let missing = self
            .keys
            .iter()
            .filter_map(|key| {
                let of: Vec<&SocketAddr> = self
                    .missing
                    .iter()
                    .filter(|(_, k)| k == key)
                    .map(|(a, _)| a)
                    .collect();
                (!of.is_empty()).then(|| format!("{} of {key}", list(&mut of.into_iter())))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let unexpected = list(&mut self.unexpected.iter());
        let names = match self.keys.as_slice() {
            [one] => one.to_string(),
            [first @ .., last] => format!(
                "none of {} and {last}",
                first
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            [] => "the configuration".to_string(),
        };
        let one = self.keys.len() == 1;
        match (self.missing.is_empty(), self.unexpected.is_empty()) {
            (false, false) if one => write!(
                f,
                "not on {missing}, but on {unexpected} that it does not name"
            ),
            (false, false) => write!(
                f,
                "not on {missing}, but on {unexpected} that {names} names"
            ),
            (false, true) => write!(f, "not on {missing}"),
            _ if one => write!(f, "on {unexpected} that {names} does not name"),
            _ => write!(f, "on {unexpected} that {names} names"),
        }
    }
}

/// `actual` against the listeners of `configured` (each key's); `None`
/// when they agree. A configured port 0 (any free port) is met by any
/// port on its address.
pub(crate) fn compare(configured: &[Keyed<'_>], actual: &[SocketAddr]) -> Option<Difference> {
    let meets = |c: &SocketAddr, a: &SocketAddr| {
        c.ip() == a.ip() && (c.port() == a.port() || c.port() == 0)
    };
    let all = || {
        configured
            .iter()
            .flat_map(|(k, v)| v.iter().map(|a| (*a, *k)))
    };
    let missing: Vec<(SocketAddr, &'static str)> = all()
        .filter(|(c, _)| !actual.iter().any(|a| meets(c, a)))
        .collect();
    let unexpected: Vec<SocketAddr> = actual
        .iter()
        .filter(|a| !all().any(|(c, _)| meets(&c, a)))
        .copied()
        .collect();
    (!missing.is_empty() || !unexpected.is_empty()).then(|| Difference {
        missing,
        unexpected,
        keys: configured.iter().map(|(k, _)| *k).collect(),
    })
}

/// The key and listeners in `config` of each TCP socket `role` is handed
/// (smtpd: `smtpd.listen`, `submission.listen`,
/// `submission.implicit_tls_listen`; metrics: `metrics.listen`).
pub(crate) fn configured(role: Role, config: &Config) -> Vec<Keyed<'_>> {
    super::tcp_sockets_of(role)
        .map(|s| (s.key, (s.tcp)(config)))
        .collect()
}

/// The local addresses of the TCP sockets named `name` among `fds`.
pub(crate) fn handed(fds: &[(String, OwnedFd)], name: &str) -> Vec<SocketAddr> {
    fds.iter()
        .filter(|(n, _)| n == name)
        .filter_map(|(_, fd)| {
            // A duplicate, so that the fd itself stays as it is.
            let dup = fd.try_clone().ok()?;
            TcpListener::from(dup).local_addr().ok()
        })
        .collect()
}

/// A role, as it starts: a warning for each name of its TCP sockets
/// (smtpd's `smtp`, `submission`, `submissions`; the metrics role's
/// `http`) whose sockets are not those of its key.
pub fn warn_about_handed(role: Role, config: &Config, fds: &[(String, OwnedFd)]) {
    for socket in super::tcp_sockets_of(role) {
        let actual = handed(fds, socket.name);
        let Some(diff) = compare(&[(socket.key, (socket.tcp)(config))], &actual) else {
            continue;
        };
        let key = socket.key;
        let hint = if std::env::var_os(crate::ipc::names::SUPERVISOR_ENV).is_some() {
            format!("{key} changes with postern stop and postern start")
        } else {
            format!(
                "the socket unit's listeners are written from {key} by postern-generator: \
                 run systemctl daemon-reload, then systemctl restart postern.target"
            )
        };
        log::warn!("the sockets handed over listen {diff}; {hint}");
    }
}

/// The TCP addresses process `pid` listens on: its socket fds
/// (`/proc/PID/fd`) looked up in its network namespace's
/// `/proc/PID/net/tcp` and `tcp6`. Needs the right to read the process's
/// fds (root, or the same user).
pub(crate) fn held_by(pid: u32) -> std::io::Result<Vec<SocketAddr>> {
    let proc = Path::new("/proc").join(pid.to_string());
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(proc.join("fd"))? {
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue;
        };
        if let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok())
        {
            inodes.insert(inode);
        }
    }
    let mut found = Vec::new();
    for (file, v6) in [("tcp", false), ("tcp6", true)] {
        // No IPv6 in the kernel: no tcp6.
        let Ok(text) = std::fs::read_to_string(proc.join("net").join(file)) else {
            continue;
        };
        found.extend(
            parse_proc_net_tcp(&text, v6)
                .into_iter()
                .filter(|(_, inode)| inodes.contains(inode))
                .map(|(addr, _)| addr),
        );
    }
    Ok(found)
}

/// The listening sockets in a `/proc/net/tcp` (or `tcp6`) table: local
/// address and inode. The kernel prints each 32-bit word of the address
/// as a native-endian number, the port in host order.
fn parse_proc_net_tcp(text: &str, v6: bool) -> Vec<(SocketAddr, u64)> {
    const LISTEN: &str = "0A";
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&LISTEN) {
                return None;
            }
            let (addr, port) = fields.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let inode = fields.get(9)?.parse().ok()?;
            let ip = if v6 {
                if addr.len() != 32 {
                    return None;
                }
                let mut bytes = [0u8; 16];
                for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                    chunk.copy_from_slice(&word(addr.get(i * 8..i * 8 + 8)?)?);
                }
                Ipv6Addr::from(bytes).into()
            } else {
                Ipv4Addr::from(word(addr)?).into()
            };
            Some((SocketAddr::new(ip, port), inode))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(v: &[&str]) -> Vec<SocketAddr> {
        v.iter().map(|a| a.parse().unwrap()).collect()
    }

    const SMTPD: &str = "smtpd.listen";

    /// Each role is compared with its own keys: smtpd's sockets never
    /// with metrics.listen (it warned at every start with metrics on).
    #[test]
    fn each_role_has_its_own_keys() {
        let c = Config::from_toml(
            "[smtpd]\nlisten = [\"127.0.0.1:25\"]\n[metrics]\nlisten = [\"127.0.0.1:9154\"]\n",
            "t.toml",
        )
        .unwrap();
        let keys = |role| -> Vec<&str> { configured(role, &c).iter().map(|k| k.0).collect() };
        assert_eq!(
            keys(Role::Smtpd),
            [
                "smtpd.listen",
                "submission.listen",
                "submission.implicit_tls_listen"
            ]
        );
        assert_eq!(keys(Role::Metrics), ["metrics.listen"]);
        assert!(keys(Role::Qmgr).is_empty());
        let smtpd = configured(Role::Smtpd, &c);
        assert_eq!(compare(&smtpd, &addrs(&["127.0.0.1:25"])), None);
    }

    #[test]
    fn equal_lists_agree_in_any_order() {
        let c = addrs(&["127.0.0.1:25", "[::1]:25"]);
        assert_eq!(
            compare(&[(SMTPD, &c)], &addrs(&["[::1]:25", "127.0.0.1:25"])),
            None
        );
        assert_eq!(compare(&[(SMTPD, &[])], &[]), None);
    }

    #[test]
    fn port_zero_is_any_port() {
        let c = addrs(&["127.0.0.1:0"]);
        assert_eq!(compare(&[(SMTPD, &c)], &addrs(&["127.0.0.1:40123"])), None);
        assert!(compare(&[(SMTPD, &c)], &addrs(&["[::1]:40123"])).is_some());
    }

    #[test]
    fn differences_name_both_sides() {
        let d = compare(
            &[(SMTPD, &addrs(&["[::]:25"]))],
            &addrs(&["127.0.0.1:25", "0.0.0.0:587"]),
        )
        .unwrap();
        assert_eq!(d.missing, [("[::]:25".parse().unwrap(), SMTPD)]);
        assert_eq!(d.unexpected, addrs(&["127.0.0.1:25", "0.0.0.0:587"]));
        assert_eq!(
            d.to_string(),
            "not on [::]:25 of smtpd.listen, but on 127.0.0.1:25, 0.0.0.0:587 that it does not name"
        );
        let d = compare(&[(SMTPD, &addrs(&["127.0.0.1:25"]))], &[]).unwrap();
        assert_eq!(d.to_string(), "not on 127.0.0.1:25 of smtpd.listen");
        let d = compare(&[(SMTPD, &[])], &addrs(&["0.0.0.0:25"])).unwrap();
        assert_eq!(
            d.to_string(),
            "on 0.0.0.0:25 that smtpd.listen does not name"
        );
    }

    /// Issue 18: a whole smtpd's listeners against every key: each
    /// missing address with its key, the others named by none.
    #[test]
    fn differences_across_keys_name_each_key() {
        let smtp = addrs(&["127.0.0.1:25"]);
        let sub = addrs(&["127.0.0.1:587", "[::1]:587"]);
        let subs = addrs(&["127.0.0.1:465"]);
        let keys = [
            (SMTPD, smtp.as_slice()),
            ("submission.listen", sub.as_slice()),
            ("submission.implicit_tls_listen", subs.as_slice()),
        ];
        let all = addrs(&[
            "127.0.0.1:465",
            "[::1]:587",
            "127.0.0.1:25",
            "127.0.0.1:587",
        ]);
        assert_eq!(compare(&keys, &all), None);
        let d = compare(&keys, &addrs(&["127.0.0.1:25", "0.0.0.0:2525"])).unwrap();
        assert_eq!(
            d.to_string(),
            "not on 127.0.0.1:587, [::1]:587 of submission.listen, 127.0.0.1:465 of \
             submission.implicit_tls_listen, but on 0.0.0.0:2525 that none of smtpd.listen, \
             submission.listen and submission.implicit_tls_listen names"
        );
        let d = compare(&keys, &[all.as_slice(), &addrs(&["0.0.0.0:2525"])].concat()).unwrap();
        assert_eq!(
            d.to_string(),
            "on 0.0.0.0:2525 that none of smtpd.listen, submission.listen and \
             submission.implicit_tls_listen names"
        );
    }

    #[test]
    fn handed_reads_the_sockets_by_name() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let other_addr = other.local_addr().unwrap();
        let fds = vec![
            ("smtp".to_string(), OwnedFd::from(l)),
            ("submission".to_string(), OwnedFd::from(other)),
        ];
        assert_eq!(handed(&fds, "smtp"), vec![addr]);
        // Still usable afterwards.
        assert_eq!(handed(&fds, "smtp"), vec![addr]);
        assert_eq!(handed(&fds, "submission"), vec![other_addr]);
        assert_eq!(handed(&fds, "submissions"), vec![]);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn proc_net_tcp_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                  0: 0100007F:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0\n\
                  1: 0100007F:0019 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 31338 1 0000000000000000 20 4 30 10 -1\n\
                  2: 00000000:024B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 42 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(
            parse_proc_net_tcp(v4, false),
            vec![
                ("127.0.0.1:25".parse().unwrap(), 31337),
                ("0.0.0.0:587".parse().unwrap(), 42)
            ]
        );
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                  0: 00000000000000000000000001000000:0019 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1 0000000000000000 100 0 0 10 0\n\
                  1: 00000000000000000000000000000000:0019 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 8 1 0000000000000000 100 0 0 10 0\n\
                  2: B80D0120000000000000000007000000:09C4 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(
            parse_proc_net_tcp(v6, true),
            vec![
                ("[::1]:25".parse().unwrap(), 7),
                ("[::]:25".parse().unwrap(), 8),
                ("[2001:db8::7]:2500".parse().unwrap(), 9)
            ]
        );
    }

    #[test]
    fn held_by_this_process() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let held = held_by(std::process::id()).unwrap();
        assert!(held.contains(&addr), "{held:?} lacks {addr}");
    }
}
