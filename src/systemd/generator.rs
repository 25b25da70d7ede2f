//! The systemd generator: `postern generate systemd NORMAL [EARLY LATE]`
//! (systemd.generator(7); Debian installs a wrapper as
//! `/usr/lib/systemd/system-generators/postern-generator`).
//!
//! systemd runs it at boot and on every `systemctl daemon-reload`, before
//! it loads the units, with a fresh output directory. It reads the keys
//! that name TCP listeners from the configuration — one socket unit each,
//! as the role table says ([`super::tcp_sockets`]): `smtpd.listen` →
//! `postern-smtpd.socket`, `submission.listen` →
//! `postern-submission.socket`, `submission.implicit_tls_listen` →
//! `postern-submissions.socket`, `metrics.listen` →
//! `postern-metrics.socket` — and writes, in NORMAL (below the
//! administrator's `/etc`, above the package's `/usr/lib`), for each:
//!
//! * `UNIT.d/50-postern-listen.conf`: `ListenStream=`
//!   emptied, then one `ListenStream=` per listener; `BindIPv6Only=both`
//!   when one is `[::]` (it takes IPv4 as well, as `postern start` binds
//!   it), `ipv6-only` when an IPv4 address shares a `[::]`'s port (as
//!   `postern start` binds that pair; the setting is the unit's, so every
//!   `[::]` of it is then IPv6-only), `FreeBind=yes` when one is a specific address other than
//!   loopback (it may come up after the socket: DHCP, a failover address);
//!   `SourcePath=` names the configuration, so `systemctl status` says when
//!   it changed since the last daemon-reload.
//! * when there is no listener to write (the key is empty — the
//!   submission keys are by default —, or the configuration is missing
//!   or cannot be read): the same drop-in with `ListenStream=` emptied
//!   only, and the unit masked (a symlink to `/dev/null`). smtpd still
//!   serves `submit.sock` and the other sockets; a broken file never
//!   makes postern listen anywhere it was not told to, and a copy of the
//!   unit in `/etc` that wins over the mask refuses to load without a
//!   listener rather than listen on its own. The submission units start
//!   only when this drop-in exists (`ConditionPathExists=`): without the
//!   generator they are skipped, whatever placeholder they ship with.
//!
//! * a Unix socket the configuration does not want, masked: qmgr's
//!   `postern-qmgr-metrics.socket` (the metrics role's question) unless
//!   `metrics.listen` names a listener (also when the file cannot be
//!   read: the endpoint is off by default). qmgr's unit only wants it.
//!   `postern-metrics.service` is not masked (a masked service still
//!   running would keep its listener through `systemctl restart
//!   postern.target`): it only wants its socket, and starts only when the
//!   socket is not masked (`ConditionPathExists=!` of the mask), so a
//!   restart after the endpoint went stops it and leaves it stopped.
//!
//! * when `queue.directory` or `server.run_directory` is not where the
//!   units expect it (`/var/spool/postern`, `/run/postern`), drop-ins
//!   named `50-postern-paths.conf` that follow it: `ReadWritePaths=` for
//!   the queue in smtpd's and qmgr's units (`ProtectSystem=strict` makes
//!   everything else read-only), and for local's delivery record in the
//!   run directory; the Unix sockets' `ListenStream=` in the run
//!   directory (systemd makes the directory). A queue under `/home`,
//!   `/root` or `/run/user` (or a run directory there) is hidden from the
//!   daemons by `ProtectHome=`:
//!   that is logged as an error. Nothing makes the queue directory itself
//!   (tmpfiles.d names the default one): it must exist, owned by postern.
//!
//! It never fails the boot: problems go to the kernel log (`/dev/kmsg`,
//! as generators must log; `journalctl -b -t postern-generator`) or to
//! stderr when not run by systemd, and the exit status is 0 unless the
//! output directory cannot be written (then `postern-smtpd.socket`'s own
//! listener applies, 127.0.0.1:25, and the submission units are skipped
//! for want of their drop-in; smtpd and `postern.target` only want them).
//!
//! A listener on port 0 (any free port: tests) cannot be a socket unit's;
//! it is left out with a warning.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::role::Socket;

/// The listeners drop-in's name inside each TCP socket unit's `.d/`.
pub const DROPIN: &str = "50-postern-listen.conf";
/// The paths drop-ins' name, in each unit's `.d/`.
pub const PATHS_DROPIN: &str = "50-postern-paths.conf";
/// Where the units in systemd/ expect the queue and the sockets.
pub const UNIT_QUEUE: &str = "/var/spool/postern";
pub const UNIT_RUN: &str = "/run/postern";
/// Each Unix socket unit and the file it listens on in the run directory.
pub const UNIX_SOCKETS: [(&str, &str); 6] = [
    ("postern-submit.socket", crate::ipc::names::SUBMIT_SOCKET),
    ("postern-qmgr.socket", crate::ipc::names::QMGR_SOCKET),
    ("postern-showq.socket", crate::ipc::names::SHOWQ_SOCKET),
    (
        "postern-qmgr-metrics.socket",
        crate::ipc::names::METRICS_SOCKET,
    ),
    ("postern-local.socket", crate::ipc::names::LOCAL_SOCKET),
    ("postern-smtp.socket", crate::ipc::names::SMTP_SOCKET),
];
/// Every unit a paths drop-in may be written for (an earlier one of ours
/// that the configuration no longer needs is removed).
const PATH_UNITS: [&str; 9] = [
    "postern-smtpd.service",
    "postern-qmgr.service",
    "postern-local.service",
    "postern-submit.socket",
    "postern-qmgr.socket",
    "postern-showq.socket",
    "postern-qmgr-metrics.socket",
    "postern-local.socket",
    "postern-smtp.socket",
];
/// The name the generator logs under (and is installed as).
pub(crate) const NAME: &str = "postern-generator";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    /// syslog priority with facility daemon, for `/dev/kmsg`.
    fn kmsg_priority(self) -> u8 {
        const DAEMON: u8 = 3 << 3;
        DAEMON
            + match self {
                Severity::Error => 3,
                Severity::Warning => 4,
                Severity::Info => 6,
            }
    }
}

/// What the generator writes for one TCP socket unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listeners {
    /// The socket unit (`postern-smtpd.socket`).
    pub unit: &'static str,
    /// The key its listeners come from (`smtpd.listen`).
    pub key: &'static str,
    /// The listeners written (`ListenStream=`), in the configuration's order.
    pub listen: Vec<SocketAddr>,
    /// The drop-in's text.
    pub dropin: String,
    /// Whether the unit is masked: nothing to listen on.
    pub mask: bool,
}

/// What the generator writes for one configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Output {
    /// Each TCP socket unit's listeners, in the role table's order
    /// (`postern-smtpd.socket` first).
    pub sockets: Vec<Listeners>,
    /// Paths drop-ins: (unit, text), for a queue or run directory the
    /// units do not expect.
    pub paths: Vec<(&'static str, String)>,
    /// The Unix socket units the configuration does not want (qmgr's
    /// `postern-qmgr-metrics.socket` without `metrics.listen`), masked.
    pub masked_units: Vec<&'static str>,
    /// What to log.
    pub messages: Vec<(Severity, String)>,
}

/// The output for `config` (or the reason it could not be read), read
/// from `source`. Pure: the tests call it with every kind of input.
pub(crate) fn plan(config: Result<&Config, String>, source: &Path) -> Output {
    let source = source.display().to_string();
    let mut messages = Vec::new();
    let paths = match &config {
        Ok(c) => paths(c, &source, &mut messages),
        Err(_) => Vec::new(),
    };
    let tcp: Vec<&Socket> = super::tcp_sockets().collect();
    if let Err(reason) = &config {
        let units: Vec<&str> = tcp.iter().map(|s| s.unit).collect();
        messages.push((
            Severity::Error,
            format!(
                "{reason}; {} will not listen until the file is fixed (`postern check`) \
                 and `systemctl daemon-reload` runs",
                units.join(", ")
            ),
        ));
    }
    // What an empty file gives: a key empty by default (the submission
    // listeners) is masked without a word.
    let builtin = Config::builtin();
    let sockets = tcp
        .into_iter()
        .map(|socket| {
            let key = socket.key;
            let mut head = format!(
                "# Written by {NAME} (`postern generate systemd`) at boot and on\n\
                 # `systemctl daemon-reload`, from {key} in {source}.\n\
                 # Do not edit: change {key} there, then run\n\
                 # `systemctl daemon-reload` and `systemctl restart postern.target`.\n"
            );
            let listen = match &config {
                Ok(c) => usable_listeners(socket, c, &builtin, &source, &mut head, &mut messages),
                Err(reason) => {
                    unreadable(reason, socket, &mut head);
                    Vec::new()
                }
            };
            Listeners {
                unit: socket.unit,
                key,
                dropin: socket_dropin(head, &source, &listen),
                mask: listen.is_empty(),
                listen,
            }
        })
        .collect();
    // A Unix socket the configuration does not want is masked; when it
    // cannot be read, those the built-in configuration does not want.
    let wants = config.as_ref().map_or(&builtin, |c| *c);
    let masked_units = UNIX_SOCKETS
        .into_iter()
        .map(|(u, _)| u)
        .filter(|u| !unix_wanted(u, wants))
        .collect();
    Output {
        sockets,
        paths,
        masked_units,
        messages,
    }
}

/// The listeners of `socket`'s key a socket unit can have (not port 0),
/// with what to log and say in the drop-in's head about the others.
fn usable_listeners(
    socket: &Socket,
    c: &Config,
    builtin: &Config,
    source: &str,
    head: &mut String,
    messages: &mut Vec<(Severity, String)>,
) -> Vec<SocketAddr> {
    let key = socket.key;
    let (usable, port0): (Vec<SocketAddr>, Vec<SocketAddr>) =
        (socket.tcp)(c).iter().partition(|a| a.port() != 0);
    for a in &port0 {
        messages.push((
            Severity::Warning,
            format!(
                "{source}: {key}: {a} (port 0, any free port) cannot be a socket \
                 unit's listener; left out"
            ),
        ));
    }
    if usable.is_empty() {
        let why = if port0.is_empty() {
            format!("{key} is empty")
        } else {
            format!("{key} names no usable listener")
        };
        let unit = socket.unit;
        if !port0.is_empty() || !super::off_by_default(socket, builtin) {
            messages.push((
                Severity::Info,
                format!(
                    "{source}: {why}: {unit} masked, no TCP listener there \
                     (smtpd still serves sendmail's submit.sock)"
                ),
            ));
        }
        let _ = writeln!(
            head,
            "#\n# {why}: no TCP listener; {unit} is masked beside this file."
        );
    }
    usable
}

/// A configuration that cannot be read, said in the head of `socket`'s
/// drop-in (logged once, by [`plan`]).
fn unreadable(reason: &str, socket: &Socket, head: &mut String) {
    head.push_str("#\n# The configuration could not be read:\n");
    for line in reason.lines() {
        let _ = writeln!(head, "#   {line}");
    }
    let _ = writeln!(
        head,
        "# so there is no TCP listener: {} is masked beside this file.",
        socket.unit
    );
}

/// The drop-in of a TCP socket unit for `listen`.
fn socket_dropin(head: String, source: &str, listen: &[SocketAddr]) -> String {
    let mut text = head;
    let _ = write!(text, "\n[Unit]\nSourcePath={source}\n\n[Socket]\n");
    text.push_str("ListenStream=\n");
    for a in listen {
        let _ = writeln!(text, "ListenStream={a}");
    }
    let v6_wildcards: Vec<&SocketAddr> = listen
        .iter()
        .filter(|a| a.ip().is_unspecified() && a.is_ipv6())
        .collect();
    if v6_wildcards
        .iter()
        .any(|a| crate::config::v6_only(a, listen))
    {
        // One setting for the whole unit: IPv6-only as soon as an IPv4
        // address shares a wildcard's port (0.0.0.0:25 and [::]:25).
        text.push_str(
            "# [::] beside IPv4 on its port takes IPv6 only, as postern start binds it.\n\
             BindIPv6Only=ipv6-only\n",
        );
    } else if !v6_wildcards.is_empty() {
        text.push_str("# [::] takes IPv4 as well, as postern start binds it.\nBindIPv6Only=both\n");
    }
    if listen
        .iter()
        .any(|a| !a.ip().is_unspecified() && !a.ip().is_loopback())
    {
        text.push_str(
            "# A specific address may come up after this socket (DHCP, a failover address).\n\
             FreeBind=yes\n",
        );
    }
    text
}

/// The paths drop-ins for `config`'s queue and run directories, where
/// they are not the units' own.
fn paths(
    config: &Config,
    source: &str,
    messages: &mut Vec<(Severity, String)>,
) -> Vec<(&'static str, String)> {
    let head = |what: &str| {
        format!(
            "# Written by {NAME} (`postern generate systemd`) from {what} in {source}.\n\
             # Do not edit: change it there, then run `systemctl daemon-reload`\n\
             # and `systemctl restart postern.target`.\n"
        )
    };
    let mut out = Vec::new();
    let hidden = |p: &Path| {
        ["/home", "/root", "/run/user"]
            .iter()
            .any(|h| p.starts_with(h))
    };
    let queue = &config.queue.directory;
    let run = &config.server.run_directory;
    if hidden(run) {
        messages.push((
            Severity::Error,
            format!(
                "{source}: server.run_directory {} is under a directory the units hide \
                 (ProtectHome=): smtpd cannot reach qmgr's socket there; choose another place",
                run.display()
            ),
        ));
    }
    if queue != Path::new(UNIT_QUEUE) {
        let text = format!(
            "{}\n[Service]\nReadWritePaths=-{}\n",
            head("queue.directory"),
            queue.display()
        );
        out.push(("postern-smtpd.service", text.clone()));
        out.push(("postern-qmgr.service", text));
        if hidden(queue) {
            messages.push((
                Severity::Error,
                format!(
                    "{source}: queue.directory {} is under a directory the units hide \
                     (ProtectHome=): smtpd and qmgr cannot reach it; choose another place",
                    queue.display()
                ),
            ));
        }
    }
    if run != Path::new(UNIT_RUN) {
        // A masked unit (not wanted: qmgr's metrics socket with the
        // endpoint off) needs no paths.
        for (unit, file) in UNIX_SOCKETS
            .into_iter()
            .filter(|(u, _)| unix_wanted(u, config))
        {
            out.push((
                unit,
                format!(
                    "{}\n[Socket]\nListenStream=\nListenStream={}\n",
                    head("server.run_directory"),
                    run.join(file).display()
                ),
            ));
        }
        out.push((
            "postern-local.service",
            format!(
                "{}\n[Service]\nReadWritePaths=-{}\n",
                head("server.run_directory"),
                run.join(crate::ipc::names::JOURNAL_DIR).display()
            ),
        ));
    }
    out
}

/// Whether the configuration wants the Unix socket unit `unit` (see
/// [`crate::role::Socket::wanted`]).
fn unix_wanted(unit: &str, c: &Config) -> bool {
    crate::role::TABLE
        .iter()
        .flat_map(|r| r.sockets)
        .filter(|s| s.unit == unit)
        .all(|s| (s.wanted)(c))
}

/// Write `out` into `dir` (the generator's normal directory), replacing
/// what an earlier run wrote there; the paths written.
pub(crate) fn write(out: &Output, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for socket in &out.sockets {
        let dropin_dir = dir.join(format!("{}.d", socket.unit));
        std::fs::create_dir_all(&dropin_dir)?;
        let dropin = dropin_dir.join(DROPIN);
        let tmp = dropin_dir.join(format!(".{DROPIN}.tmp"));
        std::fs::write(&tmp, &socket.dropin)?;
        std::fs::rename(&tmp, &dropin)?;
        written.push(dropin);
        let mask = dir.join(socket.unit);
        // Only a mask of ours is replaced; anything else there is left alone.
        if std::fs::read_link(&mask).is_ok_and(|t| t == Path::new("/dev/null")) {
            std::fs::remove_file(&mask)?;
        }
        if socket.mask {
            std::os::unix::fs::symlink("/dev/null", &mask)?;
            written.push(mask);
        }
    }
    for unit in UNIX_SOCKETS.into_iter().map(|(u, _)| u) {
        let mask = dir.join(unit);
        if std::fs::read_link(&mask).is_ok_and(|t| t == Path::new("/dev/null")) {
            std::fs::remove_file(&mask)?;
        }
        if out.masked_units.contains(&unit) {
            std::os::unix::fs::symlink("/dev/null", &mask)?;
            written.push(mask);
        }
    }
    for unit in PATH_UNITS {
        let d = dir.join(format!("{unit}.d"));
        let file = d.join(PATHS_DROPIN);
        match out.paths.iter().find(|(u, _)| *u == unit) {
            Some((_, text)) => {
                std::fs::create_dir_all(&d)?;
                let tmp = d.join(format!(".{PATHS_DROPIN}.tmp"));
                std::fs::write(&tmp, text)?;
                std::fs::rename(&tmp, &file)?;
                written.push(file);
            }
            None => match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
    }
    Ok(written)
}

/// `postern generate systemd`: read `config_path`, write into the first of
/// `dirs` (systemd passes three; one is enough for tests), log. Err only
/// when the output cannot be written.
pub fn run(config_path: &Path, dirs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let Some(normal) = dirs.first() else {
        anyhow::bail!("no output directory given (systemd passes three)");
    };
    let loaded = Config::load(Some(config_path)).map_err(|e| e.to_string());
    let out = plan(loaded.as_ref().map_err(Clone::clone), config_path);
    log(&out.messages);
    write(&out, normal).map_err(|e| {
        let e = anyhow::Error::from(e).context(format!("cannot write into {}", normal.display()));
        log(&[(Severity::Error, format!("{e:#}"))]);
        e
    })
}

/// To the kernel log when systemd runs the generator (`$SYSTEMD_SCOPE`;
/// syslog is not up yet, and stderr may be nowhere), else to stderr.
fn log(messages: &[(Severity, String)]) {
    let kmsg = std::env::var_os("SYSTEMD_SCOPE").and_then(|_| {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/kmsg")
            .ok()
    });
    let pid = std::process::id();
    for (severity, message) in messages {
        match kmsg.as_ref() {
            // One write, one record.
            Some(mut k) => {
                let line = format!("<{}>{NAME}[{pid}]: {message}\n", severity.kmsg_priority());
                let _ = k.write_all(line.as_bytes());
            }
            None => {
                let word = match severity {
                    Severity::Error => "error: ",
                    Severity::Warning => "warning: ",
                    Severity::Info => "",
                };
                eprintln!("{NAME}: {word}{message}");
            }
        }
    }
}

#[cfg(test)]
mod tests;
