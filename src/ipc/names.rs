//! The names by which postern's processes find each other: the sockets in
//! the run directory (`server.run_directory`, `/run/postern`), the
//! directory local keeps its delivery record in there, and the variable
//! the supervisor sets for the roles it starts. Whoever binds, connects,
//! creates or confines (the supervisor, systemd's units, the roles, the
//! sandbox, the command-line clients) takes the name from here.

/// qmgr's control socket (LISTEN_FDNAMES `qmgr`, 0600): smtpd's wake-ups
/// and the administrator's commands.
pub(crate) const QMGR_SOCKET: &str = "qmgr.sock";
/// The queue listing (`mailq`, LISTEN_FDNAMES `showq`), world-connectable,
/// read-only.
pub(crate) const SHOWQ_SOCKET: &str = "showq.sock";
/// qmgr's metrics socket (LISTEN_FDNAMES `metrics`, 0600): the
/// exposition for the metrics role, and nothing else.
pub(crate) const METRICS_SOCKET: &str = "metrics.sock";
/// The local delivery agent's socket (LISTEN_FDNAMES `local`).
pub(crate) const LOCAL_SOCKET: &str = "local.sock";
/// The smtp delivery agent's socket (LISTEN_FDNAMES `smtp-client`).
pub(crate) const SMTP_SOCKET: &str = "smtp.sock";
/// The `sendmail` command's socket (LISTEN_FDNAMES `submit`),
/// world-connectable.
pub const SUBMIT_SOCKET: &str = "submit.sock";
/// local's delivery record (its journal), a directory in the run
/// directory that the supervisor creates and local's sandbox lets it
/// write.
pub(crate) const JOURNAL_DIR: &str = "local";
/// Set by the supervisor for every role it starts: its own pid. A role
/// that finds it dies with the supervisor.
pub(crate) const SUPERVISOR_ENV: &str = "POSTERN_SUPERVISOR_PID";
