//! The table of roles, as Postfix's master.cf is: one row per daemon,
//! with everything the mail system decides about its trust — the user it
//! runs as and the capabilities it keeps, the sockets it is handed, the
//! directories it makes, its Landlock room, its systemd unit. The
//! sandbox, the supervisor, the units and `postern daemon` read a role's
//! row; none of them matches on a role's name.
//!
//! | role | runs as | keeps | sockets (run directory) | makes | room |
//! |---|---|---|---|---|---|
//! | local | root | SETUID SETGID SETPCAP DAC_READ_SEARCH KILL | local.sock | `RUN/local` | [`Profile::local`] |
//! | smtp | `server.user` | – | smtp.sock | – | [`Profile::smtp`] |
//! | qmgr | `server.user` | – | qmgr.sock, showq.sock (0666), metrics.sock | the queue | [`Profile::qmgr`] |
//! | smtpd | `server.user` | – | submit.sock (0666), `smtpd.listen`, `submission.listen`, `submission.implicit_tls_listen` | `queue/incoming`, the drop directories | [`Profile::smtpd`] |
//! | metrics | `server.user` | – | `metrics.listen` (only when set) | – | [`Profile::metrics`] |
//!
//! The order of the table is the start order: a role starts after those
//! it hands work to.

use std::path::Path;

use crate::config::Config;
use crate::ipc::names;
pub use crate::sandbox::privileges::RunAs;
use crate::sandbox::{Confinement, Dir, Profile};

/// smtpd's systemd unit (the others are named only in the table).
pub const SMTPD_UNIT: &str = "postern-smtpd.service";

/// A daemon of the mail system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Local,
    Smtp,
    Qmgr,
    Smtpd,
    Metrics,
}

/// A socket a role is handed (LISTEN_FDNAMES), and where it listens.
#[derive(Clone, Copy, Debug)]
pub struct Socket {
    /// The name it is handed by (`FileDescriptorName=`).
    pub name: &'static str,
    /// The systemd socket unit that carries it (one unit per name:
    /// `FileDescriptorName=` names every socket of a unit alike).
    pub unit: &'static str,
    /// Its file in the run directory and mode; `None`: TCP listeners,
    /// those of [`Socket::tcp`].
    pub file: Option<(&'static str, u32)>,
    /// The key that names a TCP socket's listeners (`smtpd.listen`);
    /// empty for a Unix socket.
    pub key: &'static str,
    /// The addresses of a TCP socket, the values of [`Socket::key`].
    pub tcp: fn(&Config) -> &[std::net::SocketAddr],
    /// Whether the configuration wants it at all: qmgr's `metrics` only
    /// with `metrics.listen` set. One not wanted is neither bound by
    /// `postern start` nor listened on under systemd (postern-generator
    /// masks its unit).
    pub wanted: fn(&Config) -> bool,
}

fn no_tcp(_: &Config) -> &[std::net::SocketAddr] {
    &[]
}

/// TCP listeners: the addresses `key` names, in the socket unit `unit`
/// (its listeners written by postern-generator from the key).
const fn tcp(
    name: &'static str,
    unit: &'static str,
    key: &'static str,
    addrs: fn(&Config) -> &[std::net::SocketAddr],
) -> Socket {
    Socket {
        name,
        unit,
        file: None,
        key,
        tcp: addrs,
        wanted: always,
    }
}

/// One row of the table.
pub struct Row {
    pub role: Role,
    /// As in `postern daemon NAME`, the log's `postern/NAME` and the unit.
    pub name: &'static str,
    pub unit: &'static str,
    pub run_as: RunAs,
    pub sockets: &'static [Socket],
    /// The directories it makes at start, while it still may (under
    /// systemd the queue may be brand new).
    pub makes: fn(&Config) -> Vec<Dir>,
    /// Its Landlock room: what it may read, write, execute and connect
    /// to; the second argument is the file the configuration came from.
    pub room: fn(&Config, Option<&Path>) -> Profile,
    /// Whether the configuration wants it run at all (the metrics role
    /// only when `metrics.listen` names a listener).
    pub wanted: fn(&Config) -> bool,
}

fn always(_: &Config) -> bool {
    true
}

const fn unix(name: &'static str, unit: &'static str, file: &'static str, mode: u32) -> Socket {
    Socket {
        name,
        unit,
        file: Some((file, mode)),
        key: "",
        tcp: no_tcp,
        wanted: always,
    }
}

/// With the metrics endpoint on (`metrics.listen` set).
fn metrics_on(c: &Config) -> bool {
    !c.metrics.listen.is_empty()
}

/// The table, in start order.
pub static TABLE: [Row; 5] = [
    Row {
        role: Role::Local,
        name: "local",
        unit: "postern-local.service",
        run_as: RunAs::Root(&crate::sandbox::privileges::LOCAL_KEEPS),
        sockets: &[unix(
            "local",
            "postern-local.socket",
            names::LOCAL_SOCKET,
            0o600,
        )],
        // The delivery record's room.
        makes: |c| {
            vec![Dir {
                path: c.server.run_directory.join(names::JOURNAL_DIR),
                mode: 0o700,
                without: Some("local keeps no delivery record"),
            }]
        },
        room: Profile::local,
        wanted: always,
    },
    Row {
        role: Role::Smtp,
        name: "smtp",
        unit: "postern-smtp.service",
        run_as: RunAs::MailUser,
        sockets: &[unix(
            "smtp-client",
            "postern-smtp.socket",
            names::SMTP_SOCKET,
            0o600,
        )],
        makes: |_| Vec::new(),
        room: Profile::smtp,
        wanted: always,
    },
    Row {
        role: Role::Qmgr,
        name: "qmgr",
        unit: "postern-qmgr.service",
        run_as: RunAs::MailUser,
        // mailq for every user: a read-only listing socket (Postfix's showq).
        sockets: &[
            unix("qmgr", "postern-qmgr.socket", names::QMGR_SOCKET, 0o600),
            unix("showq", "postern-showq.socket", names::SHOWQ_SOCKET, 0o666),
            // The metrics role's question, and nothing else; only with
            // the endpoint on.
            Socket {
                wanted: metrics_on,
                ..unix(
                    "metrics",
                    "postern-qmgr-metrics.socket",
                    names::METRICS_SOCKET,
                    0o600,
                )
            },
        ],
        makes: |c| {
            let q = &c.queue.directory;
            crate::queue::SUBDIRS
                .iter()
                .map(|d| Dir::needed(q.join(d), 0o700))
                .collect()
        },
        room: Profile::qmgr,
        wanted: always,
    },
    Row {
        role: Role::Smtpd,
        name: "smtpd",
        unit: SMTPD_UNIT,
        run_as: RunAs::MailUser,
        // Anyone may submit mail: smtpd learns who from the peer
        // credentials.
        sockets: &[
            tcp("smtp", "postern-smtpd.socket", "smtpd.listen", |c| {
                &c.smtpd.listen
            }),
            tcp(
                "submission",
                "postern-submission.socket",
                "submission.listen",
                |c| &c.submission.listen,
            ),
            tcp(
                "submissions",
                "postern-submissions.socket",
                "submission.implicit_tls_listen",
                |c| &c.submission.implicit_tls_listen,
            ),
            unix(
                "submit",
                "postern-submit.socket",
                names::SUBMIT_SOCKET,
                0o666,
            ),
        ],
        // The drop directory and the one for refused files, when missing
        // (under systemd, tmpfiles makes them): smtpd still serves without.
        makes: |c| {
            let q = &c.queue.directory;
            let lost = "sendmail cannot keep mail there while postern is down";
            vec![
                Dir::needed(q.join(crate::queue::INCOMING), 0o700),
                Dir {
                    path: q.join(crate::maildrop::DIR),
                    mode: crate::maildrop::DIR_MODE,
                    without: Some(lost),
                },
                Dir {
                    path: q.join(crate::maildrop::BAD_DIR),
                    mode: 0o700,
                    without: Some(lost),
                },
            ]
        },
        room: Profile::smtpd,
        wanted: always,
    },
    Row {
        role: Role::Metrics,
        name: "metrics",
        unit: "postern-metrics.service",
        run_as: RunAs::MailUser,
        sockets: &[tcp(
            "http",
            "postern-metrics.socket",
            "metrics.listen",
            |c| &c.metrics.listen,
        )],
        makes: |_| Vec::new(),
        room: Profile::metrics,
        wanted: metrics_on,
    },
];

impl Role {
    /// Every role, in start order.
    pub const ALL: [Role; 5] = [
        Role::Local,
        Role::Smtp,
        Role::Qmgr,
        Role::Smtpd,
        Role::Metrics,
    ];

    /// The role's row of the table.
    pub fn row(self) -> &'static Row {
        &TABLE[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// The role called `name`.
    pub fn from_name(name: &str) -> Option<Role> {
        TABLE.iter().find(|r| r.name == name).map(|r| r.role)
    }

    /// Enter the role's sandbox: privileges, its directories, its
    /// Landlock room (`config_path`: where the configuration came from).
    pub fn enter(self, config: &Config, config_path: Option<&Path>) -> anyhow::Result<Confinement> {
        let row = self.row();
        let profile = (row.room)(config, config_path);
        crate::sandbox::enter(row.name, row.run_as, &(row.makes)(config), &profile, config)
    }

    /// Every role's name, in start order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        TABLE.iter().map(|r| r.name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_role_order_and_names_are_unique() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.role as usize, i, "{}", row.name);
            assert_eq!(Role::from_name(row.name), Some(row.role));
            assert_eq!(row.role.row().name, row.name);
        }
        assert_eq!(Role::from_name("local-worker"), None);
        assert_eq!(
            Role::names().collect::<Vec<_>>(),
            ["local", "smtp", "qmgr", "smtpd", "metrics"]
        );
    }

    /// Only local keeps a privilege; every socket name is handed once.
    #[test]
    fn only_local_runs_as_root() {
        for row in &TABLE {
            match row.run_as {
                RunAs::Root(keeps) => {
                    assert_eq!(row.role, Role::Local);
                    assert_eq!(keeps, crate::sandbox::privileges::LOCAL_KEEPS);
                }
                RunAs::MailUser => assert_ne!(row.role, Role::Local),
            }
        }
        let mut names: Vec<&str> = TABLE
            .iter()
            .flat_map(|r| r.sockets.iter().map(|s| s.name))
            .collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}

/// Per role: pid, start time and restarts ([`RoleState`]), for `postern
/// status` and qmgr's `postern_process_restarts_total`.
pub(crate) const STATES_FILE: &str = "roles.json";

/// One role in [`STATES_FILE`].
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct RoleState {
    /// 0 while it is down.
    pub pid: i32,
    /// When it started, seconds since the epoch (0 while down).
    pub started: u64,
    /// How often the supervisor started it again.
    pub restarts: u64,
}

/// The roles as the supervisor last wrote them; empty when no supervisor
/// runs (systemd runs the roles: it counts their restarts itself).
pub(crate) fn states(run_dir: &Path) -> std::collections::BTreeMap<String, RoleState> {
    std::fs::read_to_string(run_dir.join(STATES_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// This process's role and start ([`crate::ipc::Started`]), set once by
/// `postern daemon ROLE` before the role runs.
static ME: std::sync::OnceLock<crate::ipc::Started> = std::sync::OnceLock::new();

/// Note that this process runs `role`, started now.
pub(crate) fn note_start(role: Role) {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = ME.set(crate::ipc::Started {
        role: role.name().to_string(),
        pid: std::process::id(),
        at,
    });
}

/// This process's role and start, when it is a role.
pub(crate) fn me() -> Option<crate::ipc::Started> {
    ME.get().cloned()
}
