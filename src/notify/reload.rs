//! Reloading in place on SIGHUP (systemd's `Type=notify-reload` sends it,
//! as do `ExecReload=kill -HUP $MAINPID` and `postern reload` through the
//! supervisor): the daemon reads its configuration file again, from the
//! path it was started with, and applies a valid one to new work only
//! (new SMTP sessions, the next queue run, the next delivery), never
//! cutting what is in progress. An invalid one is refused with
//! `reload refused, the running configuration is kept: <error>`.
//!
//! Either way the daemon first opens its log file (`server.log_file`)
//! again at its path, so logrotate's `postrotate` (`postern reload`, or
//! `kill -HUP`) works without `copytruncate` (see [`crate::logging`]).
//!
//! Some settings cannot change in a running daemon ([`Fixed`]): the
//! sockets, the queue and run directories and the user were set up before
//! it started, and the sandbox and the log destination are applied once
//! at its start. They keep their running values, with a warning naming
//! them.

use std::path::PathBuf;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::Config;

/// What a daemon needs to reload: the configuration's path and SIGHUP.
pub(crate) struct Reload {
    /// `--config` (or `$POSTERN_CONFIG`); `None`: the default path, else
    /// the built-in defaults, as at start.
    path: Option<PathBuf>,
    hangup: Signal,
}

/// The next SIGHUP when there is a [`Reload`]; forever pending without
/// (daemons served without signals, in tests).
pub(crate) async fn hangup(reload: &mut Option<Reload>) {
    match reload {
        Some(r) => r.requested().await,
        None => std::future::pending().await,
    }
}

impl Reload {
    /// From now on SIGHUP asks for a reload instead of ending the process.
    /// Must be called inside the tokio runtime, early: before
    /// [`super::ready`].
    pub(crate) fn new(path: Option<PathBuf>) -> std::io::Result<Reload> {
        Ok(Reload {
            path,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next SIGHUP (cancel-safe: for `select!`).
    pub(crate) async fn requested(&mut self) {
        if self.hangup.recv().await.is_none() {
            // The runtime is going away; so is the daemon.
            std::future::pending::<()>().await;
        }
    }

    /// Sends `RELOADING=1`, opens the log file again, reads the
    /// configuration again and checks it.
    /// `Some(new)` to apply, with the [`Fixed`] settings of `running` kept
    /// (a warning names those that differed); `None` when it is refused
    /// (logged). Either way the caller sends `READY=1` once done.
    pub(crate) fn load(&self, running: &Config) -> Option<Config> {
        super::reloading();
        // logrotate renamed the file away: the next lines go to a new one.
        crate::logging::reopen();
        let mut new = match Config::load(self.path.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                log::error!("reload refused, the running configuration is kept: {e}");
                return None;
            }
        };
        let kept = keep_fixed(running, &mut new, &[Fixed::Starter, Fixed::Daemon]);
        if !kept.is_empty() {
            log::warn!(
                "reload: {} change only with a restart; the running values are kept",
                kept.join(", ")
            );
        }
        log::info!("reloaded the configuration{}", self.from());
        Some(new)
    }

    fn from(&self) -> String {
        match &self.path {
            Some(p) => format!(" from {}", p.display()),
            None => String::new(),
        }
    }
}

/// Why a setting cannot change in a running daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fixed {
    /// Set up before the daemons start, by the supervisor or by systemd's
    /// units: `smtpd.listen`, `metrics.listen`, `queue.directory`,
    /// `server.run_directory`, `server.user`. Only a restart of the whole mail system changes them.
    Starter,
    /// Applied by each daemon once at its start (the log file, and what
    /// the Landlock ruleset is built from): `sandbox.*`, `server.log_file`,
    /// `local.allow_mail_to_commands`, `local.allow_mail_to_files`,
    /// `local.alias_files` (their directories are readable to smtpd),
    /// `relay.transport_files` (qmgr reads them), `tls.ca_file` and
    /// `relay.sasl_password_files` (smtp), and `dkim.keys` when a new key
    /// lies outside the directories of the running ones (smtp). A restart
    /// of the daemon changes them.
    Daemon,
}

/// The settings of the kinds `which` that differ between `running` and
/// `new`, by name; each is put back to its running value in `new`.
pub(crate) fn keep_fixed(running: &Config, new: &mut Config, which: &[Fixed]) -> Vec<&'static str> {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($kind:expr, $name:literal, $($field:ident).+) => {
            if which.contains(&$kind) && new.$($field).+ != running.$($field).+ {
                new.$($field).+ = running.$($field).+.clone();
                kept.push($name);
            }
        };
    }
    keep!(Fixed::Starter, "smtpd.listen", smtpd.listen);
    keep!(Fixed::Starter, "submission.listen", submission.listen);
    keep!(
        Fixed::Starter,
        "submission.implicit_tls_listen",
        submission.implicit_tls_listen
    );
    // The endpoint's listeners, and whether smtpd and qmgr count at all.
    keep!(Fixed::Starter, "metrics.listen", metrics.listen);
    keep!(Fixed::Daemon, "sasl.password_file", sasl.password_file);
    keep!(Fixed::Starter, "queue.directory", queue.directory);
    keep!(Fixed::Starter, "server.run_directory", server.run_directory);
    keep!(Fixed::Starter, "server.user", server.user);
    keep!(Fixed::Daemon, "sandbox.require", sandbox.require);
    keep!(Fixed::Daemon, "server.log_file", server.log_file);
    keep!(Fixed::Daemon, "tls.ca_file", tls.ca_file);
    keep!(
        Fixed::Daemon,
        "relay.transport_files",
        relay.transport_files
    );
    keep!(
        Fixed::Daemon,
        "relay.sasl_password_files",
        relay.sasl_password_files
    );
    keep!(
        Fixed::Daemon,
        "sandbox.local_writable",
        sandbox.local_writable
    );
    // A new DKIM key is taken at once when smtp's room already reads its
    // file (the usual: a key beside the others); one elsewhere waits for
    // a restart of smtp, the running keys kept.
    if which.contains(&Fixed::Daemon) && new.dkim.keys != running.dkim.keys {
        let rooms = |c: &Config| -> Vec<std::path::PathBuf> {
            let keys = c.dkim.keys.iter();
            keys.flat_map(|k| crate::sandbox::rooms_of(&k.path))
                .collect()
        };
        let reachable = rooms(running);
        if !rooms(new).iter().all(|r| reachable.contains(r)) {
            new.dkim.keys = running.dkim.keys.clone();
            kept.push("dkim.keys");
        }
    }
    keep!(
        Fixed::Daemon,
        "local.allow_mail_to_commands",
        local.allow_mail_to_commands
    );
    keep!(
        Fixed::Daemon,
        "local.allow_mail_to_files",
        local.allow_mail_to_files
    );
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_settings_keep_their_running_values() {
        let running = Config::builtin();
        let mut new = running.clone();
        new.smtpd.banner = "changed ESMTP".into();
        new.queue.directory = "/elsewhere".into();
        new.server.user = "other".into();
        new.sandbox.require = !running.sandbox.require;
        let mut only_starter = new.clone();
        assert_eq!(
            keep_fixed(&running, &mut only_starter, &[Fixed::Starter]),
            ["queue.directory", "server.user"]
        );
        assert_eq!(only_starter.sandbox.require, !running.sandbox.require);
        assert_eq!(
            keep_fixed(&running, &mut new, &[Fixed::Starter, Fixed::Daemon]),
            ["queue.directory", "server.user", "sandbox.require"]
        );
        let mut expected = running.clone();
        expected.smtpd.banner = "changed ESMTP".into();
        assert_eq!(new, expected);
        assert!(keep_fixed(&running, &mut new, &[Fixed::Starter, Fixed::Daemon]).is_empty());
    }

    /// Issue 19: a new DKIM key beside the running ones is taken at
    /// once (smtp's room reads its directory); one elsewhere waits for a
    /// restart.
    #[test]
    fn issue_19_new_dkim_keys_need_a_restart_only_outside_the_room() {
        let entry = |e: &str| crate::dkim::KeyEntry::parse(e).unwrap();
        let mut running = Config::builtin();
        running.dkim.keys = vec![entry("a.example:s:/var/lib/postern/dkim/a.key")];
        let mut beside = running.clone();
        beside
            .dkim
            .keys
            .push(entry("b.example:s:/var/lib/postern/dkim/b.key"));
        let mut new = beside.clone();
        assert!(keep_fixed(&running, &mut new, &[Fixed::Daemon]).is_empty());
        assert_eq!(new, beside);
        let mut elsewhere = running.clone();
        elsewhere
            .dkim
            .keys
            .push(entry("c.example:s:/srv/keys/c.key"));
        assert_eq!(
            keep_fixed(&running, &mut elsewhere, &[Fixed::Daemon]),
            ["dkim.keys"]
        );
        assert_eq!(elsewhere.dkim.keys, running.dkim.keys);
    }

    #[tokio::test]
    async fn load_takes_a_valid_file_and_refuses_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postern.toml");
        let running = Config::builtin();
        let reload = Reload::new(Some(path.clone())).unwrap();

        std::fs::write(
            &path,
            "[smtpd]\nbanner = \"new.example ESMTP\"\n[queue]\ndirectory = \"/elsewhere\"\n",
        )
        .unwrap();
        let new = reload.load(&running).unwrap();
        assert_eq!(new.smtpd.banner, "new.example ESMTP");
        assert_eq!(new.queue.directory, running.queue.directory);

        std::fs::write(&path, "[smtpd]\nbanr = \"typo\"\n").unwrap();
        assert!(reload.load(&running).is_none());
        std::fs::remove_file(&path).unwrap();
        assert!(reload.load(&running).is_none());
    }
}
