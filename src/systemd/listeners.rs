//! Whether smtpd listens where `smtpd.listen` says.
//!
//! The TOML is the one source of truth, but the sockets are bound by
//! whoever started smtpd: systemd (from the socket unit the generator
//! wrote at the last boot or daemon-reload) or `postern start`. So they
//! can differ: the file was edited and `systemctl daemon-reload` not run,
//! the generator is not installed, a drop-in in `/etc` names other
//! addresses, the socket was not restarted. smtpd compares the sockets it
//! is handed as it starts ([`warn_about_handed`]); `postern check`
//! compares what systemd's socket unit will hand over and what the
//! running smtpd holds (read from `/proc`: [`held_by`]).

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::Path;

use crate::config::Config;

/// How the listeners in use differ from the configured ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Difference {
    /// Configured, not listened on.
    pub missing: Vec<SocketAddr>,
    /// Listened on, not configured.
    pub unexpected: Vec<SocketAddr>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[SocketAddr]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (self.missing.is_empty(), self.unexpected.is_empty()) {
            (false, false) => write!(
                f,
                "not on {} of smtpd.listen, but on {} that it does not name",
                list(&self.missing),
                list(&self.unexpected)
            ),
            (false, true) => write!(f, "not on {} of smtpd.listen", list(&self.missing)),
            _ => write!(
                f,
                "on {} that smtpd.listen does not name",
                list(&self.unexpected)
            ),
        }
    }
}

/// `actual` against `configured`; `None` when they agree. A configured
/// port 0 (any free port) is met by any port on its address.
pub(crate) fn compare(configured: &[SocketAddr], actual: &[SocketAddr]) -> Option<Difference> {
    let meets = |c: &SocketAddr, a: &SocketAddr| {
        c.ip() == a.ip() && (c.port() == a.port() || c.port() == 0)
    };
    let missing: Vec<SocketAddr> = configured
        .iter()
        .filter(|c| !actual.iter().any(|a| meets(c, a)))
        .copied()
        .collect();
    let unexpected: Vec<SocketAddr> = actual
        .iter()
        .filter(|a| !configured.iter().any(|c| meets(c, a)))
        .copied()
        .collect();
    (!missing.is_empty() || !unexpected.is_empty()).then_some(Difference {
        missing,
        unexpected,
    })
}

/// The local addresses of the TCP sockets named `smtp` among `fds`.
pub(crate) fn handed(fds: &[(String, OwnedFd)]) -> Vec<SocketAddr> {
    fds.iter()
        .filter(|(name, _)| name == "smtp")
        .filter_map(|(_, fd)| {
            // A duplicate, so that the fd itself stays as it is.
            let dup = fd.try_clone().ok()?;
            TcpListener::from(dup).local_addr().ok()
        })
        .collect()
}

/// smtpd, as it starts: a warning when the TCP sockets it was handed are
/// not those of `smtpd.listen`.
pub fn warn_about_handed(config: &Config, fds: &[(String, OwnedFd)]) {
    let actual = handed(fds);
    let Some(diff) = compare(&config.smtpd.listen, &actual) else {
        return;
    };
    let hint = if std::env::var_os(crate::ipc::names::SUPERVISOR_ENV).is_some() {
        "smtpd.listen changes with postern stop and postern start"
    } else {
        "the socket unit's listeners are written from smtpd.listen by postern-generator: \
         run systemctl daemon-reload, then systemctl restart postern.target"
    };
    log::warn!("the sockets handed over listen {diff}; {hint}");
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

    #[test]
    fn equal_lists_agree_in_any_order() {
        let c = addrs(&["127.0.0.1:25", "[::1]:25"]);
        assert_eq!(compare(&c, &addrs(&["[::1]:25", "127.0.0.1:25"])), None);
        assert_eq!(compare(&[], &[]), None);
    }

    #[test]
    fn port_zero_is_any_port() {
        let c = addrs(&["127.0.0.1:0"]);
        assert_eq!(compare(&c, &addrs(&["127.0.0.1:40123"])), None);
        assert!(compare(&c, &addrs(&["[::1]:40123"])).is_some());
    }

    #[test]
    fn differences_name_both_sides() {
        let d = compare(
            &addrs(&["[::]:25"]),
            &addrs(&["127.0.0.1:25", "0.0.0.0:587"]),
        )
        .unwrap();
        assert_eq!(d.missing, addrs(&["[::]:25"]));
        assert_eq!(d.unexpected, addrs(&["127.0.0.1:25", "0.0.0.0:587"]));
        assert_eq!(
            d.to_string(),
            "not on [::]:25 of smtpd.listen, but on 127.0.0.1:25, 0.0.0.0:587 that it does not name"
        );
        let d = compare(&addrs(&["127.0.0.1:25"]), &[]).unwrap();
        assert_eq!(d.to_string(), "not on 127.0.0.1:25 of smtpd.listen");
        let d = compare(&[], &addrs(&["0.0.0.0:25"])).unwrap();
        assert_eq!(
            d.to_string(),
            "on 0.0.0.0:25 that smtpd.listen does not name"
        );
    }

    #[test]
    fn handed_reads_the_smtp_sockets() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let fds = vec![
            ("smtp".to_string(), OwnedFd::from(l)),
            ("submission".to_string(), OwnedFd::from(other)),
        ];
        assert_eq!(handed(&fds), vec![addr]);
        // Still usable afterwards.
        assert_eq!(handed(&fds), vec![addr]);
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
