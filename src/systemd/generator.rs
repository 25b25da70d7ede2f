//! The systemd generator: `postern generate systemd NORMAL [EARLY LATE]`
//! (systemd.generator(7); Debian installs a wrapper as
//! `/usr/lib/systemd/system-generators/postern-generator`).
//!
//! systemd runs it at boot and on every `systemctl daemon-reload`, before
//! it loads the units, with a fresh output directory. It reads
//! `smtpd.listen` from the configuration and writes, in NORMAL (below the
//! administrator's `/etc`, above the package's `/usr/lib`):
//!
//! * `postern-smtpd.socket.d/50-postern-listen.conf`: `ListenStream=`
//!   emptied, then one `ListenStream=` per listener; `BindIPv6Only=both`
//!   when one is `[::]` (it takes IPv4 as well, as `postern start` binds
//!   it), `ipv6-only` when an IPv4 address shares a `[::]`'s port (as
//!   `postern start` binds that pair; the setting is the unit's, so every
//!   `[::]` of it is then IPv6-only), `FreeBind=yes` when one is a specific address other than
//!   loopback (it may come up after the socket: DHCP, a failover address);
//!   `SourcePath=` names the configuration, so `systemctl status` says when
//!   it changed since the last daemon-reload.
//! * when there is no listener to write (`smtpd.listen = []`, or a
//!   configuration that is missing or cannot be read): the same drop-in
//!   with `ListenStream=` emptied only, and `postern-smtpd.socket` masked
//!   (a symlink to `/dev/null`). smtpd still serves `submit.sock`; a
//!   broken file never makes postern listen anywhere it was not told to,
//!   and a copy of the unit in `/etc` that wins over the mask refuses to
//!   load without a listener rather than listen on its own.
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
//! output directory cannot be written (then the unit's own listener,
//! 127.0.0.1:25, applies).
//!
//! A listener on port 0 (any free port: tests) cannot be a socket unit's;
//! it is left out with a warning.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// The drop-in's name inside `postern-smtpd.socket.d/`.
pub const DROPIN: &str = "50-postern-listen.conf";
/// The paths drop-ins' name, in each unit's `.d/`.
pub const PATHS_DROPIN: &str = "50-postern-paths.conf";
/// Where the units in systemd/ expect the queue and the sockets.
pub const UNIT_QUEUE: &str = "/var/spool/postern";
pub const UNIT_RUN: &str = "/run/postern";
/// Each Unix socket unit and the file it listens on in the run directory.
pub const UNIX_SOCKETS: [(&str, &str); 5] = [
    ("postern-submit.socket", crate::ipc::names::SUBMIT_SOCKET),
    ("postern-qmgr.socket", crate::ipc::names::QMGR_SOCKET),
    ("postern-showq.socket", crate::ipc::names::SHOWQ_SOCKET),
    ("postern-local.socket", crate::ipc::names::LOCAL_SOCKET),
    ("postern-smtp.socket", crate::ipc::names::SMTP_SOCKET),
];
/// Every unit a paths drop-in may be written for (an earlier one of ours
/// that the configuration no longer needs is removed).
const PATH_UNITS: [&str; 8] = [
    "postern-smtpd.service",
    "postern-qmgr.service",
    "postern-local.service",
    "postern-submit.socket",
    "postern-qmgr.socket",
    "postern-showq.socket",
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

/// What the generator writes for one configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Output {
    /// The listeners written (`ListenStream=`), in the configuration's order.
    pub listen: Vec<SocketAddr>,
    /// The drop-in's text.
    pub dropin: String,
    /// Whether `postern-smtpd.socket` is masked: nothing to listen on.
    pub mask: bool,
    /// Paths drop-ins: (unit, text), for a queue or run directory the
    /// units do not expect.
    pub paths: Vec<(&'static str, String)>,
    /// What to log.
    pub messages: Vec<(Severity, String)>,
}

/// The output for `config` (or the reason it could not be read), read
/// from `source`. Pure: the tests call it with every kind of input.
pub(crate) fn plan(config: Result<&Config, String>, source: &Path) -> Output {
    let source = source.display();
    let mut messages = Vec::new();
    let mut head = format!(
        "# Written by {NAME} (`postern generate systemd`) at boot and on\n\
         # `systemctl daemon-reload`, from smtpd.listen in {source}.\n\
         # Do not edit: change smtpd.listen there, then run\n\
         # `systemctl daemon-reload` and `systemctl restart postern.target`.\n"
    );
    let paths = match &config {
        Ok(c) => paths(c, &source.to_string(), &mut messages),
        Err(_) => Vec::new(),
    };
    let listen = match config {
        Ok(c) => usable_listeners(c, &source.to_string(), &mut head, &mut messages),
        Err(reason) => {
            unreadable(&reason, &mut head, &mut messages);
            Vec::new()
        }
    };
    let text = socket_dropin(head, &source.to_string(), &listen);
    Output {
        mask: listen.is_empty(),
        listen,
        dropin: text,
        paths,
        messages,
    }
}

/// The listeners of `config` a socket unit can have (not port 0), with
/// what to log and say in the drop-in's head about the others.
fn usable_listeners(
    c: &Config,
    source: &str,
    head: &mut String,
    messages: &mut Vec<(Severity, String)>,
) -> Vec<SocketAddr> {
    let (usable, port0): (Vec<SocketAddr>, Vec<SocketAddr>) =
        c.smtpd.listen.iter().partition(|a| a.port() != 0);
    for a in &port0 {
        messages.push((
            Severity::Warning,
            format!(
                "{source}: smtpd.listen: {a} (port 0, any free port) cannot be a socket \
                 unit's listener; left out"
            ),
        ));
    }
    if usable.is_empty() {
        let why = if port0.is_empty() {
            "smtpd.listen is empty"
        } else {
            "smtpd.listen names no usable listener"
        };
        messages.push((
            Severity::Info,
            format!(
                "{source}: {why}: {} masked, no TCP listener (sendmail's submit.sock still works)",
                super::SMTPD_SOCKET
            ),
        ));
        let _ = writeln!(
            head,
            "#\n# {why}: no TCP listener; {} is masked beside this file.",
            super::SMTPD_SOCKET
        );
    }
    usable
}

/// A configuration that cannot be read: logged, and said in the head.
fn unreadable(reason: &str, head: &mut String, messages: &mut Vec<(Severity, String)>) {
    messages.push((
        Severity::Error,
        format!(
            "{reason}; {} will not listen until the file is fixed (`postern check`) \
             and `systemctl daemon-reload` runs",
            super::SMTPD_SOCKET
        ),
    ));
    head.push_str("#\n# The configuration could not be read:\n");
    for line in reason.lines() {
        let _ = writeln!(head, "#   {line}");
    }
    let _ = writeln!(
        head,
        "# so there is no TCP listener: {} is masked beside this file.",
        super::SMTPD_SOCKET
    );
}

/// The drop-in of `postern-smtpd.socket` for `listen`.
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
        for (unit, file) in UNIX_SOCKETS {
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

/// Write `out` into `dir` (the generator's normal directory), replacing
/// what an earlier run wrote there; the paths written.
pub(crate) fn write(out: &Output, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dropin_dir = dir.join(format!("{}.d", super::SMTPD_SOCKET));
    std::fs::create_dir_all(&dropin_dir)?;
    let dropin = dropin_dir.join(DROPIN);
    let tmp = dropin_dir.join(format!(".{DROPIN}.tmp"));
    std::fs::write(&tmp, &out.dropin)?;
    std::fs::rename(&tmp, &dropin)?;
    let mut written = vec![dropin];
    let mask = dir.join(super::SMTPD_SOCKET);
    // Only a mask of ours is replaced; anything else there is left alone.
    if std::fs::read_link(&mask).is_ok_and(|t| t == Path::new("/dev/null")) {
        std::fs::remove_file(&mask)?;
    }
    if out.mask {
        std::os::unix::fs::symlink("/dev/null", &mask)?;
        written.push(mask);
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
mod tests {
    use super::*;

    const SOURCE: &str = "/etc/postern/postern.toml";

    fn plan_for(toml: &str) -> Output {
        let config = Config::from_toml(toml, SOURCE).unwrap();
        plan(Ok(&config), Path::new(SOURCE))
    }

    /// The `[Socket]` section's lines, comments left out.
    fn socket_lines(out: &Output) -> Vec<&str> {
        out.dropin
            .split_once("[Socket]\n")
            .unwrap()
            .1
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect()
    }

    /// Issue 16: a queue or run directory the units do not expect is
    /// followed by drop-ins; the units' own need none.
    #[test]
    fn moved_queue_and_run_directories_get_paths_dropins() {
        assert!(plan_for("").paths.is_empty());
        let out =
            plan_for("[queue]\ndirectory = \"/srv/q\"\n[server]\nrun_directory = \"/run/mx\"\n");
        let units: Vec<&str> = out.paths.iter().map(|(u, _)| *u).collect();
        assert_eq!(
            units,
            [
                "postern-smtpd.service",
                "postern-qmgr.service",
                "postern-submit.socket",
                "postern-qmgr.socket",
                "postern-showq.socket",
                "postern-local.socket",
                "postern-smtp.socket",
                "postern-local.service",
            ]
        );
        assert!(
            out.paths[0]
                .1
                .ends_with("\n[Service]\nReadWritePaths=-/srv/q\n")
        );
        assert!(
            out.paths[2]
                .1
                .ends_with("\n[Socket]\nListenStream=\nListenStream=/run/mx/submit.sock\n")
        );
        assert!(out.messages.is_empty(), "{:?}", out.messages);
        let out = plan_for("[queue]\ndirectory = \"/home/mail/queue\"\n");
        assert_eq!(out.paths.len(), 2);
        assert_eq!(out.messages.len(), 1);
        let out = plan_for("[server]\nrun_directory = \"/run/user/1000/postern\"\n");
        assert_eq!(out.messages.len(), 1);
        assert!(
            out.messages[0].1.contains("server.run_directory"),
            "{:?}",
            out.messages
        );
        assert!(
            out.messages[0].1.contains("ProtectHome="),
            "{:?}",
            out.messages
        );
        // Written, then removed when the file goes back to the default.
        let dir = tempfile::tempdir().unwrap();
        let moved = plan_for("[queue]\ndirectory = \"/srv/q\"\n");
        write(&moved, dir.path()).unwrap();
        let file = dir.path().join("postern-qmgr.service.d").join(PATHS_DROPIN);
        assert!(file.exists());
        write(&plan_for(""), dir.path()).unwrap();
        assert!(!file.exists());
    }

    #[test]
    fn loopback_only() {
        let out = plan_for("[smtpd]\nlisten = [\"127.0.0.1:25\"]\n");
        assert_eq!(
            socket_lines(&out),
            ["ListenStream=", "ListenStream=127.0.0.1:25"]
        );
        assert!(!out.mask);
        assert!(out.messages.is_empty(), "{:?}", out.messages);
        assert!(out.dropin.starts_with("# Written by postern-generator"));
        assert!(
            out.dropin
                .contains("\n[Unit]\nSourcePath=/etc/postern/postern.toml\n")
        );
    }

    #[test]
    fn ipv6_wildcard_takes_ipv4_too() {
        let out = plan_for("[smtpd]\nlisten = [\"[::]:25\"]\n");
        assert_eq!(
            socket_lines(&out),
            ["ListenStream=", "ListenStream=[::]:25", "BindIPv6Only=both"]
        );
        let out = plan_for("[smtpd]\nlisten = [\"[::1]:25\"]\n");
        assert_eq!(
            socket_lines(&out),
            ["ListenStream=", "ListenStream=[::1]:25"]
        );
        // Both wildcards on one port: the IPv6 one takes IPv6 only.
        let out = plan_for("[smtpd]\nlisten = [\"0.0.0.0:25\", \"[::]:25\"]\n");
        assert_eq!(
            socket_lines(&out),
            [
                "ListenStream=",
                "ListenStream=0.0.0.0:25",
                "ListenStream=[::]:25",
                "BindIPv6Only=ipv6-only"
            ]
        );
    }

    #[test]
    fn several_listeners_and_a_specific_address() {
        let out = plan_for(
            "[smtpd]\nlisten = [\"127.0.0.1:25\", \"192.0.2.7:25\", \"[2001:db8::7]:2525\", \"0.0.0.0:587\"]\n",
        );
        assert_eq!(
            socket_lines(&out),
            [
                "ListenStream=",
                "ListenStream=127.0.0.1:25",
                "ListenStream=192.0.2.7:25",
                "ListenStream=[2001:db8::7]:2525",
                "ListenStream=0.0.0.0:587",
                "FreeBind=yes",
            ]
        );
        assert_eq!(out.listen.len(), 4);
        assert!(!out.mask);
    }

    #[test]
    fn no_listener_masks_the_socket() {
        let out = plan_for("[smtpd]\nlisten = []\n");
        assert_eq!(socket_lines(&out), ["ListenStream="]);
        assert!(out.mask);
        assert_eq!(out.messages.len(), 1);
        assert_eq!(out.messages[0].0, Severity::Info);
        assert!(
            out.messages[0].1.contains("smtpd.listen is empty"),
            "{:?}",
            out.messages
        );
    }

    #[test]
    fn port_zero_is_left_out() {
        let out = plan_for("[smtpd]\nlisten = [\"127.0.0.1:0\", \"[::1]:25\"]\n");
        assert_eq!(
            socket_lines(&out),
            ["ListenStream=", "ListenStream=[::1]:25"]
        );
        assert_eq!(out.messages[0].0, Severity::Warning);
        assert!(out.messages[0].1.contains("127.0.0.1:0"));
        let out = plan_for("[smtpd]\nlisten = [\"127.0.0.1:0\"]\n");
        assert!(out.mask);
        assert_eq!(socket_lines(&out), ["ListenStream="]);
    }

    #[test]
    fn a_broken_file_never_listens() {
        let reason =
            "/etc/postern/postern.toml:3: unknown key `smtpd.lisen`; did you mean `listen`?";
        let out = plan(Err(reason.to_string()), Path::new(SOURCE));
        assert_eq!(socket_lines(&out), ["ListenStream="]);
        assert!(out.listen.is_empty());
        assert!(out.mask);
        assert_eq!(out.messages.len(), 1);
        assert_eq!(out.messages[0].0, Severity::Error);
        assert!(out.messages[0].1.starts_with(reason), "{:?}", out.messages);
        // The reason is in the file too, as comments.
        assert!(
            out.dropin.contains(&format!("#   {reason}\n")),
            "{}",
            out.dropin
        );
    }

    #[test]
    fn write_replaces_what_an_earlier_run_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let masked = plan_for("[smtpd]\nlisten = []\n");
        let written = write(&masked, dir.path()).unwrap();
        assert_eq!(written.len(), 2);
        let mask = dir.path().join("postern-smtpd.socket");
        assert_eq!(std::fs::read_link(&mask).unwrap(), Path::new("/dev/null"));

        let open = plan_for("[smtpd]\nlisten = [\"127.0.0.1:25\"]\n");
        let written = write(&open, dir.path()).unwrap();
        assert_eq!(
            written,
            [dir.path()
                .join("postern-smtpd.socket.d/50-postern-listen.conf")]
        );
        assert!(
            std::fs::symlink_metadata(&mask).is_err(),
            "the mask is still there"
        );
        assert_eq!(std::fs::read_to_string(&written[0]).unwrap(), open.dropin);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("postern-smtpd.socket.d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["50-postern-listen.conf"]);
    }

    #[test]
    fn a_missing_file_is_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let written = run(&dir.path().join("nope.toml"), &[dir.path().to_path_buf()]).unwrap();
        assert_eq!(written.len(), 2);
        let text = std::fs::read_to_string(&written[0]).unwrap();
        assert!(text.contains("nope.toml"), "{text}");
        assert!(
            text.trim_end().ends_with("[Socket]\nListenStream="),
            "{text}"
        );
    }
}
