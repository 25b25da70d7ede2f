//! Configuration: `/etc/postern/postern.toml` (STUB: the loader, expansion,
//! validation and `config show` are being written; the field names and
//! types below are the contract the roles use).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub server: Server,
    pub local: Local,
    pub relay: Relay,
    pub queue: Queue,
    pub smtpd: Smtpd,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    /// myhostname
    pub hostname: String,
    /// mydomain
    pub domain: String,
    /// myorigin
    pub origin: String,
    /// mail_owner: the user smtpd and qmgr run as when started as root.
    pub user: String,
    /// Directory for the Unix sockets (qmgr.sock, local.sock, submit.sock).
    pub run_directory: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Local {
    /// mydestination, lower-case, expanded.
    pub domains: Vec<String>,
    /// home_mailbox: relative to the home directory, or absolute; may hold
    /// `$user` and `$home` (expanded per delivery). A trailing `/` means
    /// Maildir.
    pub mailbox: String,
    /// How long a per-user delivery child waits for more work.
    pub worker_idle: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Relay {
    /// mynetworks
    pub networks: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Queue {
    /// queue_directory
    pub directory: PathBuf,
    /// Content above this many bytes goes to a file of its own.
    pub large_message_threshold: u64,
    /// minimal_backoff_time
    pub minimal_backoff: Duration,
    /// maximal_backoff_time
    pub maximal_backoff: Duration,
    /// queue_run_delay
    pub run_delay: Duration,
    /// maximal_queue_lifetime
    pub maximal_lifetime: Duration,
    /// A message deferred this long moves to `deferred/` as a file of its own.
    pub move_deferred_after: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareNewline {
    Normalize,
    Reject,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Smtpd {
    /// TCP listeners used when not socket-activated.
    pub listen: Vec<SocketAddr>,
    /// smtpd_banner (after 220)
    pub banner: String,
    /// message_size_limit, bytes; 0 = unlimited.
    pub message_size_limit: u64,
    /// smtpd_recipient_limit
    pub recipient_limit: usize,
    /// line_length_limit for commands.
    pub line_length_limit: usize,
    /// smtpd_timeout: deadline for each command.
    pub timeout: Duration,
    /// smtpd_hard_error_limit
    pub hard_error_limit: u32,
    /// Total simultaneous connections.
    pub max_connections: usize,
    /// smtpd_client_connection_count_limit
    pub max_connections_per_client: usize,
    /// !disable_vrfy_command (default off: VRFY answers 502)
    pub vrfy: bool,
    /// smtpd_forbid_bare_newline
    pub forbid_bare_newline: BareNewline,
    /// smtpd_forbid_unauth_pipelining
    pub forbid_unauth_pipelining: bool,
}

impl Config {
    pub fn builtin() -> Config {
        let hostname = "localhost.localdomain".to_string();
        let root = nix::unistd::geteuid().is_root();
        let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
        let (queue_dir, run_dir) = if root {
            (PathBuf::from("/var/spool/postern"), PathBuf::from("/run/postern"))
        } else {
            let base = PathBuf::from(&home).join(".local/state/postern");
            (base.join("queue"), base.join("run"))
        };
        Config {
            server: Server {
                hostname: hostname.clone(),
                domain: "localdomain".into(),
                origin: hostname.clone(),
                user: "postern".into(),
                run_directory: run_dir,
            },
            local: Local {
                domains: vec![hostname, "localhost.localdomain".into(), "localhost".into()],
                mailbox: "Maildir/".into(),
                worker_idle: Duration::from_secs(60),
            },
            relay: Relay {
                networks: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            },
            queue: Queue {
                directory: queue_dir,
                large_message_threshold: 1 << 20,
                minimal_backoff: Duration::from_secs(300),
                maximal_backoff: Duration::from_secs(4000),
                run_delay: Duration::from_secs(300),
                maximal_lifetime: Duration::from_secs(5 * 86400),
                move_deferred_after: Duration::from_secs(3600),
            },
            smtpd: Smtpd {
                listen: vec!["127.0.0.1:2525".parse().unwrap()],
                banner: "localhost.localdomain ESMTP postern".into(),
                message_size_limit: 10_240_000,
                recipient_limit: 1000,
                line_length_limit: 2048,
                timeout: Duration::from_secs(300),
                hard_error_limit: 20,
                max_connections: 100,
                max_connections_per_client: 50,
                vrfy: false,
                forbid_bare_newline: BareNewline::Normalize,
                forbid_unauth_pipelining: true,
            },
        }
    }
}
