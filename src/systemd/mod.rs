//! postern under systemd: what the service manager is told, and asked.
//!
//! * [`generator`]: `postern generate systemd NORMAL [EARLY LATE]`, the
//!   systemd generator (systemd.generator(7)) that Debian installs as
//!   `/usr/lib/systemd/system-generators/postern-generator`. It writes the
//!   listeners of each TCP socket unit from its key ([`tcp_sockets`]:
//!   `postern-smtpd.socket` from `smtpd.listen`, `postern-submission.socket`
//!   from `submission.listen`, `postern-submissions.socket` from
//!   `submission.implicit_tls_listen`), at boot and on every `systemctl
//!   daemon-reload`: the TOML is the one source of truth, the socket units
//!   only carry it. A configuration that cannot be read, or a key without
//!   a listener, leaves its socket without any TCP listener (never the
//!   wildcard).
//! * [`listeners`]: the TCP listeners smtpd was handed, or that a running
//!   smtpd holds, compared with those keys: smtpd warns at start, and
//!   `postern check` warns, when they differ.
//! * [`systemctl`]: `postern status|reload|stop|start` when systemd runs
//!   the mail system (no supervisor pid file, and systemd's
//!   `postern-qmgr.socket` is this configuration's qmgr socket): they
//!   report and act through `systemctl`, with the arguments computed by
//!   pure functions.
//!
//! SECURITY: the generator runs as root very early at boot; it reads the
//! configuration file and writes into the directory systemd names, nothing
//! else, and talks to no other process (no NSS lookup of anyone but root,
//! no D-Bus). The client commands run `systemctl` with the caller's
//! privileges; systemd (polkit) decides what they may do.

pub mod generator;
pub mod listeners;
pub(crate) mod systemctl;

pub use systemctl::check_listeners;

use crate::config::Config;

/// The TCP sockets of the role table, each a socket unit of its own whose
/// listeners come from one key: smtpd's `smtp` (`postern-smtpd.socket`,
/// `smtpd.listen`), `submission` and `submissions` (port 587 and 465).
pub(crate) fn tcp_sockets() -> impl Iterator<Item = &'static crate::role::Socket> {
    crate::role::TABLE
        .iter()
        .flat_map(|r| tcp_sockets_of(r.role))
}

/// The TCP sockets of `role`'s row of the role table (smtpd's three, the
/// metrics role's `http`).
pub(crate) fn tcp_sockets_of(
    role: crate::role::Role,
) -> impl Iterator<Item = &'static crate::role::Socket> {
    role.row().sockets.iter().filter(|s| s.file.is_none())
}

/// Whether `socket`'s key names no listener by default (the submission
/// sockets): then a masked unit is its normal state, not worth a word.
pub(crate) fn off_by_default(socket: &crate::role::Socket, builtin: &Config) -> bool {
    (socket.tcp)(builtin).is_empty()
}
/// The unit that stands for the whole mail system.
pub(crate) const TARGET: &str = "postern.target";
/// qmgr's control socket unit: where systemd binds `qmgr.sock`, which
/// tells whether the systemd-run postern is the one a configuration
/// describes.
pub(crate) const QMGR_SOCKET_UNIT: &str = "postern-qmgr.socket";
/// smtpd's service.
pub const SMTPD_SERVICE: &str = crate::role::SMTPD_UNIT;
/// The services, by role, in the supervisor's start order (the role
/// table's units).
pub fn services() -> impl Iterator<Item = (&'static str, &'static str)> {
    crate::role::TABLE.iter().map(|r| (r.name, r.unit))
}

/// Whether this process runs as part of a systemd unit (`ExecStartPre=`,
/// `ExecReload=`, the daemon itself): systemd sets `$INVOCATION_ID` for
/// every process it starts for a unit.
pub(crate) fn in_unit() -> bool {
    std::env::var_os("INVOCATION_ID").is_some_and(|v| !v.is_empty())
}
