//! The built-in configuration, computed from the system like Postfix's
//! defaults: the host name from `gethostname()`, the directories from whether
//! we run as root.

use std::path::{Path, PathBuf};

use super::value::check_hostname;
use super::{
    Checks, Config, Dkim, Dns, Local, Metrics, Milters, Queue, Relay, Restrictions, Rewrite,
    Sandbox, Sasl, Server, Smtp, Smtpd, Submission, Tls, Verify, Virtual,
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

/// What the defaults of [`super::keys`] are computed from.
pub(super) struct Cx<'a> {
    pub system: &'a System,
    /// The default `server.hostname`.
    pub hostname: String,
    /// The default `server.domain`.
    pub domain: String,
}

/// The configuration an empty file gives on `system`.
pub(super) fn builtin(system: &System) -> Config {
    let hostname = system.default_hostname(None);
    let domain = default_domain(&hostname);
    let cx = Cx {
        system,
        hostname,
        domain,
    };
    Config {
        server: Server::builtin(&cx),
        local: Local::builtin(&cx),
        relay: Relay::builtin(&cx),
        r#virtual: Virtual::builtin(&cx),
        rewrite: Rewrite::builtin(&cx),
        queue: Queue::builtin(&cx),
        smtpd: Smtpd::builtin(&cx),
        submission: Submission::builtin(&cx),
        sasl: Sasl::builtin(&cx),
        restrictions: Restrictions::builtin(&cx),
        maps: Default::default(),
        checks: Checks::builtin(&cx),
        smtp: Smtp::builtin(&cx),
        tls: Tls::builtin(&cx),
        dkim: Dkim::builtin(&cx),
        verify: Verify::builtin(&cx),
        milters: Milters::builtin(&cx),
        dns: Dns::builtin(&cx),
        sandbox: Sandbox::builtin(&cx),
        metrics: Metrics::builtin(&cx),
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
