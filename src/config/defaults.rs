//! The built-in configuration, computed from the system like Postfix's
//! defaults: the host name from `gethostname()`, the directories from whether
//! we run as root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::value::check_hostname;
use super::{
    BareNewline, Checks, Config, Dns, DnsFailure, Local, Queue, Relay, Restrictions, Sandbox,
    Server, Smtp, Smtpd, Tls, TlsLevel,
};

/// What the defaults depend on. Tests build their own.
#[derive(Clone, Debug)]
pub(super) struct System {
    /// `gethostname()`, or `localhost` if that is not a valid host name.
    pub hostname: String,
    /// Whether we run as root or as the `postern` user (system directories)
    /// or not (per-user ones).
    pub root: bool,
    /// Base of the per-user directories: `$XDG_STATE_HOME/postern`, else
    /// `$HOME/.local/state/postern`.
    pub state_dir: PathBuf,
    /// Whether `/etc/aliases` exists: the default `local.alias_files`
    /// names it only then (a configured file that is missing defers mail
    /// to aliases; a machine without one still delivers to its users).
    pub etc_aliases: bool,
}

impl System {
    /// The system we run on.
    pub(crate) fn current() -> System {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| check_hostname(h).is_ok())
            .unwrap_or_else(|| "localhost".to_string());
        // The system paths are the defaults of root and of the mail
        // system's own user (smtpd and qmgr under systemd run as postern
        // from the start); everyone else gets per-user directories.
        let euid = nix::unistd::geteuid();
        let root = euid.is_root()
            || nix::unistd::User::from_uid(euid)
                .ok()
                .flatten()
                .is_some_and(|u| u.name == DEFAULT_USER);
        System {
            hostname,
            root,
            state_dir: state_dir(),
            etc_aliases: Path::new(ETC_ALIASES).exists(),
        }
    }

    /// The system [`Config::load`](super::Config::load) reads `file`
    /// on: [`DEFAULT_PATH`](super::DEFAULT_PATH) is the system's mail
    /// system, with the system's directories whoever reads it.
    pub(crate) fn for_file(file: &Path) -> System {
        let mut system = System::current();
        if file == Path::new(super::DEFAULT_PATH) {
            system.root = true;
        }
        system
    }

    /// Postfix's `myhostname` default: `gethostname()` if it has a dot, else
    /// that plus `.` and `domain` (Postfix: `$mydomain`, itself defaulting to
    /// `localdomain`).
    pub(crate) fn default_hostname(&self, domain: Option<&str>) -> String {
        if self.hostname.contains('.') {
            self.hostname.clone()
        } else {
            format!("{}.{}", self.hostname, domain.unwrap_or("localdomain"))
        }
    }

    pub(crate) fn default_queue_directory(&self) -> PathBuf {
        if self.root {
            PathBuf::from("/var/spool/postern")
        } else {
            self.state_dir.join("queue")
        }
    }

    pub(crate) fn default_run_directory(&self) -> PathBuf {
        if self.root {
            PathBuf::from("/run/postern")
        } else {
            self.state_dir.join("run")
        }
    }
}

/// `$XDG_STATE_HOME/postern`, else `$HOME/.local/state/postern`, else the
/// same under the password file's home directory. Relative values are
/// ignored, as the XDG specification asks.
fn state_dir() -> PathBuf {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(state) = absolute("XDG_STATE_HOME") {
        return state.join("postern");
    }
    let home = absolute("HOME")
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".local/state/postern")
}

/// Postfix's `mydomain` default: `hostname` minus its first label,
/// `localdomain` if it has no dot.
pub(super) fn default_domain(hostname: &str) -> String {
    match hostname.split_once('.') {
        Some((_, rest)) if !rest.is_empty() => rest.to_string(),
        _ => "localdomain".to_string(),
    }
}

/// Postfix's `mydestination` default: `$myhostname, localhost.$mydomain,
/// localhost`, lower-cased.
pub(super) fn default_domains(hostname: &str, domain: &str) -> Vec<String> {
    vec![
        hostname.to_ascii_lowercase(),
        format!("localhost.{}", domain.to_ascii_lowercase()),
        "localhost".to_string(),
    ]
}

/// Postfix's `smtpd_banner` default is `$myhostname ESMTP $mail_name`.
pub(super) fn default_banner(hostname: &str) -> String {
    format!("{hostname} ESMTP postern")
}

pub(super) const DEFAULT_USER: &str = "postern";
pub(super) const ETC_ALIASES: &str = "/etc/aliases";
pub(super) const DEFAULT_MAILBOX: &str = "Maildir/";

/// `local.concurrency_per_user` when the mailbox is a Maildir: no lock, and
/// on ext4 with a journal parallel deliveries share journal commits (8
/// delivered 30–50 % more than 4 there, and the same without a journal;
/// docs/performance.md).
pub(super) const MAILDIR_CONCURRENCY: usize = 8;

/// `local.concurrency_per_user` for mbox: Postfix's
/// `local_destination_concurrency_limit`, since deliveries to one mbox
/// wait for each other's lock.
pub(super) const MBOX_CONCURRENCY: usize = 2;

/// The configuration an empty file gives on `system`.
pub(super) fn builtin(system: &System) -> Config {
    let hostname = system.default_hostname(None);
    let domain = default_domain(&hostname);
    Config {
        server: Server {
            domain: domain.clone(),
            origin: hostname.clone(),
            user: DEFAULT_USER.to_string(),
            run_directory: system.default_run_directory(),
            log_file: None,
            hostname: hostname.clone(),
        },
        local: Local {
            domains: default_domains(&hostname, &domain),
            mailbox: DEFAULT_MAILBOX.to_string(),
            worker_idle: Duration::from_secs(60),
            concurrency_per_user: MAILDIR_CONCURRENCY,
            aliases: Default::default(),
            alias_files: if system.etc_aliases {
                vec![PathBuf::from(ETC_ALIASES)]
            } else {
                Vec::new()
            },
            recipient_delimiter: String::new(),
            command_time_limit: Duration::from_secs(1000),
            default_privs: "nobody".into(),
            allow_mail_to_commands: vec!["alias".into(), "forward".into()],
            allow_mail_to_files: vec!["alias".into(), "forward".into()],
        },
        relay: Relay {
            networks: vec![
                IpNet::V4(Ipv4Net::new_assert([127, 0, 0, 0].into(), 8)),
                IpNet::V6(Ipv6Net::new_assert(std::net::Ipv6Addr::LOCALHOST, 128)),
            ],
            host: None,
            transport: Default::default(),
            transport_files: Vec::new(),
        },
        queue: Queue {
            directory: system.default_queue_directory(),
            large_message_threshold: 1 << 20,
            minimal_backoff: Duration::from_secs(300),
            maximal_backoff: Duration::from_secs(4000),
            run_delay: Duration::from_secs(300),
            maximal_lifetime: Duration::from_secs(5 * 86400),
            move_deferred_after: Duration::from_secs(3600),
            delay_warning_time: Duration::ZERO,
            bounce_size_limit: 50_000,
            authorized_mailq_users: vec!["*".into()],
            minfree: 0,
        },
        smtpd: Smtpd {
            listen: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 2525))],
            banner: default_banner(&hostname),
            message_size_limit: 10_240_000,
            recipient_limit: 1000,
            line_length_limit: 2048,
            timeout: Duration::from_secs(300),
            hard_error_limit: 20,
            junk_command_limit: 100,
            session_time_limit: Duration::from_secs(3600),
            max_connections: 2000,
            max_connections_per_client: 50,
            vrfy: false,
            forbid_bare_newline: BareNewline::Normalize,
            forbid_unauth_pipelining: true,
            authorized_submit_users: vec!["*".into()],
            sender_override_users: vec!["*".into()],
        },
        restrictions: Restrictions {
            client: Vec::new(),
            helo: Vec::new(),
            sender: Vec::new(),
            relay: vec![
                "permit_mynetworks".into(),
                "reject_unauth_destination".into(),
            ],
            recipient: Vec::new(),
            delay_reject: true,
            rbl_domains: Vec::new(),
            dns_failure: DnsFailure::Pass,
        },
        maps: Default::default(),
        checks: Checks {
            header: Vec::new(),
            mime_header: Vec::new(),
            body: Vec::new(),
        },
        dns: Dns {
            servers: Vec::new(),
        },
        smtp: Smtp {
            port: 25,
            helo_name: hostname.clone(),
            bind_address: None,
            connect_timeout: Duration::from_secs(30),
            helo_timeout: Duration::from_secs(300),
            starttls_timeout: Duration::from_secs(300),
            mail_timeout: Duration::from_secs(300),
            rcpt_timeout: Duration::from_secs(300),
            data_init_timeout: Duration::from_secs(120),
            data_xfer_timeout: Duration::from_secs(180),
            data_done_timeout: Duration::from_secs(600),
            quit_timeout: Duration::from_secs(300),
            destination_concurrency_limit: 20,
            destination_recipient_limit: 50,
            connection_cache_time: Duration::from_secs(2),
        },
        tls: Tls {
            outbound: TlsLevel::May,
            ca_file: None,
        },
        sandbox: Sandbox {
            require: false,
            local_writable: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_defaults_follow_postfix() {
        let mut sys = System {
            hostname: "mail".into(),
            root: true,
            state_dir: "/nonexistent".into(),
            etc_aliases: true,
        };
        assert_eq!(sys.default_hostname(None), "mail.localdomain");
        assert_eq!(
            sys.default_hostname(Some("foo.example")),
            "mail.foo.example"
        );
        sys.hostname = "mx.bar.example".into();
        assert_eq!(sys.default_hostname(Some("foo.example")), "mx.bar.example");
        assert_eq!(default_domain("mx.bar.example"), "bar.example");
        assert_eq!(default_domain("mx"), "localdomain");
    }

    #[test]
    fn current_system_hostname_is_valid() {
        let sys = System::current();
        assert_eq!(check_hostname(&sys.hostname), Ok(()));
        assert!(sys.state_dir.is_absolute());
    }

    #[test]
    fn directories_depend_on_root() {
        let mut sys = System {
            hostname: "h".into(),
            root: true,
            state_dir: "/home/u/.local/state/postern".into(),
            etc_aliases: true,
        };
        assert_eq!(
            sys.default_queue_directory(),
            PathBuf::from("/var/spool/postern")
        );
        assert_eq!(sys.default_run_directory(), PathBuf::from("/run/postern"));
        sys.root = false;
        assert_eq!(
            sys.default_queue_directory(),
            PathBuf::from("/home/u/.local/state/postern/queue")
        );
        assert_eq!(
            sys.default_run_directory(),
            PathBuf::from("/home/u/.local/state/postern/run")
        );
    }
}
