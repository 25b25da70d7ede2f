//! `postern status|reload|stop|start` when systemd runs the mail system.
//!
//! Without a supervisor (no live pid in `postern.pid`), postern asks
//! `systemctl` whether systemd's `postern-qmgr.socket` listens on this
//! configuration's `<run_directory>/qmgr.sock` ([`managed`]): then the
//! systemd-run postern is the one meant, and the commands report and act
//! through systemd rather than say "not running":
//!
//! * `status`: `postern.target` and each role's service (state, main pid,
//!   since when, why it failed), the TCP listeners of each TCP socket unit
//!   (`postern-smtpd.socket`, `postern-submission.socket`,
//!   `postern-submissions.socket`), any socket not listening; the queue
//!   counts come from qmgr's control socket as with the supervisor.
//! * `reload`: the configuration is checked as `ExecReload=` checks it
//!   (errors: nothing is reloaded, exit 1), then `systemctl reload
//!   postern.target`, which the target passes on to every service
//!   (`PropagatesReloadTo=`).
//! * `stop`: `systemctl stop postern.target` and every postern socket and
//!   service (the sockets too: nothing starts smtpd again behind the
//!   administrator's back).
//! * `start` (not `--foreground`): the check, `systemctl reset-failed` of
//!   the postern units (a unit that gave up after failed starts is taken
//!   up again at once), then `systemctl start postern.target`.
//!
//! The arguments are computed by [`commands`] and the report by
//! [`render_status`], both pure; `systemctl` itself is found on `PATH`,
//! so a test can put a stand-in there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::{QMGR_SOCKET_UNIT, SMTPD_SERVICE, TARGET, off_by_default, services, tcp_sockets};
use crate::check::Level;
use crate::config::Config;

/// Every socket unit of the role table, for the report: the TCP ones
/// first.
fn socket_units() -> Vec<&'static str> {
    let unix = crate::role::TABLE
        .iter()
        .flat_map(|r| r.sockets)
        .filter(|s| s.file.is_some());
    tcp_sockets().chain(unix).map(|s| s.unit).collect()
}

/// What `systemctl show` says of one unit: each property's values (one
/// for most, one per listener for `Listen`).
pub(crate) type Props = BTreeMap<String, Vec<String>>;

/// One property's (first) value, empty when absent.
fn prop<'a>(p: &'a Props, key: &str) -> &'a str {
    p.get(key)
        .and_then(|v| v.first())
        .map(String::as_str)
        .unwrap_or("")
}

/// `systemctl show` output: blocks of `Key=value` lines, one block per
/// unit, separated by empty lines.
pub(crate) fn parse_show(text: &str) -> Vec<Props> {
    let mut units = Vec::new();
    let mut current = Props::new();
    for line in text.lines() {
        if line.is_empty() {
            if !current.is_empty() {
                units.push(std::mem::take(&mut current));
            }
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            current
                .entry(k.to_string())
                .or_default()
                .push(v.to_string());
        }
    }
    if !current.is_empty() {
        units.push(current);
    }
    units
}

/// Whether the unit was skipped at its last start for a condition (the
/// submission sockets without the generator's drop-in): it listens
/// nowhere, whatever `Listen` says.
fn skipped(p: &Props) -> bool {
    prop(p, "ConditionResult") == "no"
}

/// The TCP addresses among `Listen` values (`127.0.0.1:25 (Stream)`,
/// `[::]:25 (Stream)`); paths and the like are left out.
pub(crate) fn tcp_listeners(p: &Props) -> Vec<SocketAddr> {
    p.get("Listen")
        .into_iter()
        .flatten()
        .filter_map(|v| v.split(" (").next()?.parse().ok())
        .collect()
}

/// Whether systemd's qmgr socket unit (as `systemctl show` describes it)
/// is `run_dir`'s `qmgr.sock`: then systemd runs the postern that a
/// configuration with this run directory describes.
pub(crate) fn ours(qmgr_socket: &Props, run_dir: &Path) -> bool {
    let want = run_dir.join(crate::ipc::names::QMGR_SOCKET);
    prop(qmgr_socket, "LoadState") == "loaded"
        && qmgr_socket
            .get("Listen")
            .into_iter()
            .flatten()
            .filter_map(|v| v.split(" (").next())
            .any(|path| Path::new(path) == want)
}

/// What the administrator asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Start,
    Stop,
    Reload,
}

/// The `systemctl` invocations for `action`, in order.
pub(crate) fn commands(action: Action) -> Vec<Vec<&'static str>> {
    const ALL: [&str; 3] = [TARGET, "postern-*.socket", "postern-*.service"];
    let with = |verb: &'static str, units: &[&'static str]| {
        let mut v = vec![verb];
        v.extend_from_slice(units);
        v
    };
    match action {
        // A unit that hit its start limit is taken up again at once.
        Action::Start => vec![with("reset-failed", &ALL), with("start", &[TARGET])],
        // PartOf= would take the units along; naming them also stops one
        // that a drop-in detached, and a socket nothing else stops.
        Action::Stop => vec![with("stop", &ALL)],
        // The target passes it on (PropagatesReloadTo=).
        Action::Reload => vec![with("reload", &[TARGET])],
    }
}

/// The properties [`render_status`] reads.
const STATUS_PROPS: [&str; 11] = [
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "ReloadResult",
    "MainPID",
    "ActiveEnterTimestamp",
    "Listen",
    "ConditionResult",
    "NRestarts",
];

/// What `systemctl show` said, found by unit `Id` (an absent unit has no
/// properties).
struct Units<'a>(&'a [Props]);

impl<'a> Units<'a> {
    fn get(&self, id: &str) -> &'a Props {
        static NONE: Props = Props::new();
        self.0.iter().find(|p| prop(p, "Id") == id).unwrap_or(&NONE)
    }
}

/// A unit waiting to be restarted after a failure is "activating" too:
/// that is no daemon running.
fn restarting(p: &Props) -> bool {
    prop(p, "SubState") == "auto-restart"
}

/// Whether a service's daemon runs (or is on its way up).
fn runs(p: &Props) -> bool {
    matches!(prop(p, "ActiveState"), "active" | "reloading")
        || (prop(p, "ActiveState") == "activating" && !restarting(p))
}

/// ` since TIMESTAMP`, or nothing when systemd has no timestamp.
fn since(p: &Props) -> String {
    match prop(p, "ActiveEnterTimestamp") {
        "" | "n/a" => String::new(),
        t => format!(" since {t}"),
    }
}

/// The report of `postern status` from what `systemctl show` said of the
/// target, the services and the sockets (matched by `Id`), and whether
/// the mail system runs (a daemon does: with every one failed, an active
/// target is no mail system).
pub(crate) fn render_status(units: &[Props]) -> (Vec<String>, bool) {
    let units = Units(units);
    let running = services().any(|(_, s)| runs(units.get(s)));
    let builtin = Config::builtin();
    let mut lines = vec![headline(units.get(TARGET), running)];
    for (role, service) in services() {
        let p = units.get(service);
        // A role off by default (metrics) is worth a line only when it
        // runs or failed.
        let optional =
            crate::role::Role::from_name(role).is_some_and(|r| !(r.row().wanted)(&builtin));
        if optional
            && !matches!(
                prop(p, "ActiveState"),
                "active" | "reloading" | "activating" | "failed"
            )
        {
            continue;
        }
        lines.push(format!("  {role:<6} {}", service_state(p, service)));
    }
    lines.extend(listener_lines(&units, running, &builtin));
    lines.extend(socket_unit_lines(&units, running));
    (lines, running)
}

/// The first line: whether postern runs, and the target's state.
fn headline(target: &Props, running: bool) -> String {
    if running {
        format!(
            "postern is running under systemd ({TARGET} {}{})",
            prop(target, "ActiveState"),
            since(target)
        )
    } else {
        format!(
            "postern is not running (systemd: {TARGET} {}{})",
            match prop(target, "ActiveState") {
                "" => "unknown",
                s => s,
            },
            if prop(target, "ActiveState") == "active" {
                ", no daemon runs"
            } else {
                ""
            }
        )
    }
}

/// A service's state in words: running (with its pid), starting,
/// failed (and where to look), not running.
fn service_state(p: &Props, service: &str) -> String {
    let pid = prop(p, "MainPID");
    // The last `systemctl reload` refused (ExecReload's check failed):
    // the daemon runs with the configuration it had.
    let reload = match prop(p, "ReloadResult") {
        "" | "success" => String::new(),
        r => format!("; the last reload failed ({r}), the running configuration is kept"),
    };
    // systemd's own count of the unit's automatic restarts.
    let restarts = match prop(p, "NRestarts") {
        "" => String::new(),
        n => format!(", {n} restarts"),
    };
    match (prop(p, "LoadState"), prop(p, "ActiveState")) {
        ("loaded", "active" | "reloading") if pid != "0" && !pid.is_empty() => {
            format!("running (pid {pid}){}{restarts}{reload}", since(p))
        }
        ("loaded", "active" | "reloading") => format!("running{}{restarts}{reload}", since(p)),
        ("loaded", "activating") if restarting(p) => format!(
            "failed ({}), restarting; see journalctl -u {service}",
            prop(p, "Result")
        ),
        ("loaded", "activating") => "starting".to_string(),
        ("loaded", "deactivating") => "stopping".to_string(),
        ("loaded", "failed") => format!(
            "failed ({}); see journalctl -u {service}",
            prop(p, "Result")
        ),
        ("loaded", _) => "not running".to_string(),
        ("", _) => "unknown".to_string(),
        (load, _) => format!("{service} {load}"),
    }
}

/// Each TCP socket unit's listeners; a masked one only when its key
/// names listeners by default (the submission units are masked unless
/// configured: nothing to say).
fn listener_lines(units: &Units, running: bool, builtin: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    for socket in tcp_sockets() {
        let p = units.get(socket.unit);
        let name = socket.name;
        match prop(p, "LoadState") {
            "loaded" if prop(p, "ActiveState") == "active" => {
                let tcp = tcp_listeners(p);
                if !tcp.is_empty() {
                    let list: Vec<String> = tcp.iter().map(ToString::to_string).collect();
                    lines.push(format!("  {name} listeners: {}", list.join(", ")));
                }
            }
            "masked" if running && !off_by_default(socket, builtin) => lines.push(format!(
                "  {name} listeners: none ({} masked: {} names none, or the configuration could not be read at the last daemon-reload)",
                socket.unit, socket.key
            )),
            _ => {}
        }
    }
    lines
}

/// The socket units that are not listening: a failed one always, another
/// state while the mail system runs.
fn socket_unit_lines(units: &Units, running: bool) -> Vec<String> {
    let mut lines = Vec::new();
    for socket in socket_units() {
        let p = units.get(socket);
        if prop(p, "LoadState") != "loaded" || skipped(p) {
            continue;
        }
        match prop(p, "ActiveState") {
            "active" => {}
            "failed" => lines.push(format!(
                "  {socket} failed ({}); systemctl restart {TARGET} takes it up again",
                prop(p, "Result")
            )),
            state if running => lines.push(format!("  {socket} {state}")),
            _ => {}
        }
    }
    lines
}

/// A `systemctl` to ask.
#[derive(Clone, Debug)]
pub(crate) struct Systemctl {
    program: PathBuf,
}

impl Systemctl {
    /// `systemctl` on `PATH`, else in `/usr/bin` or `/bin`.
    pub(crate) fn find() -> Option<Systemctl> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
            .map(|d| d.join("systemctl"))
            .find(|p| p.is_file())
            .map(|program| Systemctl { program })
    }

    /// `systemctl show` of `units` (`Id` is always asked for, so that the
    /// blocks can be told apart); one map per unit.
    pub(crate) fn show(&self, units: &[&str], props: &[&str]) -> anyhow::Result<Vec<Props>> {
        let mut all = vec!["Id"];
        all.extend(props.iter().filter(|p| **p != "Id"));
        let out = Command::new(&self.program)
            .arg("show")
            .arg(format!("--property={}", all.join(",")))
            .arg("--")
            .args(units)
            .output()
            .with_context(|| format!("cannot run {}", self.program.display()))?;
        if !out.status.success() {
            bail!(
                "systemctl show: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(parse_show(&String::from_utf8_lossy(&out.stdout)))
    }

    /// `systemctl ARGS…` with our stdin, stdout and stderr; an error
    /// naming the command when it fails.
    pub(crate) fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = Command::new(&self.program)
            .args(args)
            .status()
            .with_context(|| format!("cannot run {}", self.program.display()))?;
        if !status.success() {
            bail!("systemctl {} failed ({status})", args.join(" "));
        }
        Ok(())
    }
}

/// systemd runs the postern `config` describes.
#[derive(Clone, Debug)]
pub(crate) struct Managed {
    systemctl: Systemctl,
}

/// `Some` when systemd runs the postern that `config` describes (its
/// `postern-qmgr.socket` is this configuration's qmgr socket); `None`
/// without systemctl, without systemd as the service manager, or when
/// the units are not installed.
pub(crate) fn managed(config: &Config) -> Option<Managed> {
    let systemctl = Systemctl::find()?;
    let units = systemctl
        .show(&[QMGR_SOCKET_UNIT], &["LoadState", "Listen"])
        .ok()?;
    let qmgr = units.iter().find(|p| prop(p, "Id") == QMGR_SOCKET_UNIT)?;
    ours(qmgr, &config.server.run_directory).then_some(Managed { systemctl })
}

impl Managed {
    /// Print the report; whether the mail system runs.
    pub(crate) fn status(&self) -> anyhow::Result<bool> {
        let mut units = vec![TARGET];
        units.extend(services().map(|(_, s)| s));
        units.extend(socket_units());
        let (lines, running) = render_status(&self.systemctl.show(&units, &STATUS_PROPS)?);
        for l in lines {
            println!("{l}");
        }
        Ok(running)
    }

    /// `postern stop`.
    pub(crate) fn stop(&self) -> anyhow::Result<()> {
        for args in commands(Action::Stop) {
            self.systemctl.run(&args)?;
        }
        println!("postern: stopped ({TARGET} and its sockets, by systemd)");
        Ok(())
    }

    /// `postern reload`: nothing is reloaded when the check finds errors.
    pub(crate) fn reload(&self, config: &Config, path: Option<&Path>) -> anyhow::Result<()> {
        self.check(config, path)?;
        for args in commands(Action::Reload) {
            self.systemctl.run(&args)?;
        }
        println!("postern: reloading ({TARGET}, by systemd)");
        Ok(())
    }

    /// `postern start` (in the background): systemd starts it.
    pub(crate) fn start(&self, config: &Config, path: Option<&Path>) -> anyhow::Result<()> {
        self.check(config, path)?;
        let mut all = commands(Action::Start).into_iter();
        if let Some(reset) = all.next()
            && let Err(e) = self.systemctl.run(&reset)
        {
            eprintln!("postern: warning: {e:#}");
        }
        for args in all {
            self.systemctl.run(&args)?;
        }
        println!("postern: started ({TARGET}, by systemd)");
        Ok(())
    }

    /// The check `ExecStartPre=` and `ExecReload=` make, with the listener
    /// comparison: warnings printed, errors refuse.
    fn check(&self, config: &Config, path: Option<&Path>) -> anyhow::Result<()> {
        let mut found = crate::check::check_system(config, path);
        found.extend(self.listener_findings(config));
        let mut errors = 0;
        for (level, message) in &found {
            let word = match level {
                Level::Warning => "warning",
                Level::Error => {
                    errors += 1;
                    "error"
                }
            };
            eprintln!("postern: {word}: {message}");
        }
        if errors > 0 {
            bail!("the configuration has errors (see postern check); systemd was not asked");
        }
        Ok(())
    }

    /// `postern check`: whether systemd's TCP socket units, and the
    /// running smtpd, listen where `smtpd.listen`, `submission.listen` and
    /// `submission.implicit_tls_listen` say.
    pub(crate) fn listener_findings(&self, config: &Config) -> Vec<(Level, String)> {
        let mut asked: Vec<&str> = tcp_sockets().map(|s| s.unit).collect();
        asked.push(SMTPD_SERVICE);
        let Ok(units) = self.systemctl.show(
            &asked,
            &["LoadState", "Listen", "ConditionResult", "MainPID"],
        ) else {
            return Vec::new();
        };
        let find = |id: &str| units.iter().find(|p| prop(p, "Id") == id);
        let mut out = Vec::new();
        for socket in tcp_sockets() {
            let (unit, key) = (socket.unit, socket.key);
            let wanted = (socket.tcp)(config);
            let Some(p) = find(unit) else { continue };
            let listening = match prop(p, "LoadState") {
                // Skipped for want of the generator's drop-in (the
                // submission units' ConditionPathExists=): nothing.
                "loaded" if skipped(p) => Vec::new(),
                "loaded" => tcp_listeners(p),
                // Masked by the generator, or a unit without a listener.
                "masked" | "bad-setting" => Vec::new(),
                "not-found" if !wanted.is_empty() => {
                    out.push((
                        Level::Warning,
                        format!(
                            "systemd has no {unit}, so nothing listens on {key}: install the \
                             unit (it comes with the package), then systemctl daemon-reload \
                             and systemctl restart {TARGET}"
                        ),
                    ));
                    continue;
                }
                _ => continue,
            };
            if let Some(diff) = super::listeners::compare(&[(key, wanted)], &listening) {
                out.push((
                    Level::Warning,
                    format!(
                        "systemd's {unit} listens {diff}; postern-generator writes its \
                         listeners from {key}: run systemctl daemon-reload, then \
                         systemctl restart {TARGET}"
                    ),
                ));
            }
        }
        let pid: u32 = find(SMTPD_SERVICE)
            .and_then(|p| prop(p, "MainPID").parse().ok())
            .unwrap_or(0);
        // Reading another user's fds takes root; without, nothing is said.
        if pid != 0
            && let Ok(held) = super::listeners::held_by(pid)
            && let Some(diff) = super::listeners::compare(
                &super::listeners::configured(crate::role::Role::Smtpd, config),
                &held,
            )
        {
            out.push((
                Level::Warning,
                format!(
                    "the running smtpd (pid {pid}) listens {diff}; listeners change with \
                     systemctl daemon-reload and systemctl restart {TARGET}"
                ),
            ));
        }
        out
    }
}

/// `postern check`'s listener findings when systemd runs this postern
/// (and `postern check` is not itself run by a unit, as `ExecStartPre=`
/// and `ExecReload=` are: smtpd compares what it is handed as it starts).
pub fn check_listeners(config: &Config) -> Vec<(Level, String)> {
    if super::in_unit() {
        return Vec::new();
    }
    managed(config)
        .map(|m| m.listener_findings(config))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "Id=postern.target\nLoadState=loaded\nActiveState=active\nSubState=active\n\
        ActiveEnterTimestamp=Mon 2026-12-07 04:00:00 UTC\n\n\
        Id=postern-local.service\nLoadState=loaded\nActiveState=active\nSubState=running\nResult=success\nMainPID=101\n\
        ActiveEnterTimestamp=Mon 2026-12-07 04:00:01 UTC\nNRestarts=2\n\n\
        Id=postern-smtp.service\nLoadState=loaded\nActiveState=active\nSubState=running\nResult=success\nMainPID=102\n\n\
        Id=postern-qmgr.service\nLoadState=loaded\nActiveState=active\nSubState=running\nResult=success\nMainPID=103\n\n\
        Id=postern-smtpd.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\nResult=start-limit-hit\nMainPID=0\n\n\
        Id=postern-smtpd.socket\nLoadState=loaded\nActiveState=failed\nSubState=failed\nResult=service-start-limit-hit\n\
        Listen=127.0.0.1:25 (Stream)\nListen=[::1]:25 (Stream)\n\n\
        Id=postern-submit.socket\nLoadState=loaded\nActiveState=active\nListen=/run/postern/submit.sock (Stream)\n\n\
        Id=postern-qmgr.socket\nLoadState=loaded\nActiveState=active\nListen=/run/postern/qmgr.sock (Stream)\n";

    #[test]
    fn show_output_parses_into_blocks() {
        let units = parse_show(SHOW);
        assert_eq!(units.len(), 8);
        assert_eq!(prop(&units[4], "Result"), "start-limit-hit");
        assert_eq!(
            tcp_listeners(&units[5]),
            vec![
                "127.0.0.1:25".parse::<SocketAddr>().unwrap(),
                "[::1]:25".parse().unwrap()
            ]
        );
        assert!(tcp_listeners(&units[6]).is_empty());
    }

    #[test]
    fn ours_when_the_qmgr_socket_is_this_run_directory() {
        let units = parse_show(SHOW);
        let qmgr = &units[7];
        assert!(ours(qmgr, Path::new("/run/postern")));
        assert!(ours(qmgr, Path::new("/run/postern/")));
        assert!(!ours(qmgr, Path::new("/tmp/test/run")));
        let missing = parse_show("Id=postern-qmgr.socket\nLoadState=not-found\n");
        assert!(!ours(&missing[0], Path::new("/run/postern")));
    }

    #[test]
    fn the_commands_for_each_action() {
        assert_eq!(
            commands(Action::Stop),
            [[
                "stop",
                "postern.target",
                "postern-*.socket",
                "postern-*.service"
            ]]
        );
        assert_eq!(commands(Action::Reload), [["reload", "postern.target"]]);
        assert_eq!(
            commands(Action::Start),
            [
                vec![
                    "reset-failed",
                    "postern.target",
                    "postern-*.socket",
                    "postern-*.service"
                ],
                vec!["start", "postern.target"]
            ]
        );
    }

    #[test]
    fn status_names_each_role_and_what_failed() {
        let (lines, running) = render_status(&parse_show(SHOW));
        assert!(running);
        assert_eq!(
            lines,
            [
                "postern is running under systemd (postern.target active since Mon 2026-12-07 04:00:00 UTC)",
                "  local  running (pid 101) since Mon 2026-12-07 04:00:01 UTC, 2 restarts",
                "  smtp   running (pid 102)",
                "  qmgr   running (pid 103)",
                "  smtpd  failed (start-limit-hit); see journalctl -u postern-smtpd.service",
                "  postern-smtpd.socket failed (service-start-limit-hit); systemctl restart postern.target takes it up again",
            ]
        );
    }

    #[test]
    fn status_of_a_stopped_system() {
        let show = "Id=postern.target\nLoadState=loaded\nActiveState=inactive\n\n\
            Id=postern-smtpd.service\nLoadState=loaded\nActiveState=inactive\nMainPID=0\n\n\
            Id=postern-smtpd.socket\nLoadState=loaded\nActiveState=inactive\nListen=127.0.0.1:25 (Stream)\n";
        let (lines, running) = render_status(&parse_show(show));
        assert!(!running);
        assert_eq!(
            lines,
            [
                "postern is not running (systemd: postern.target inactive)",
                "  local  unknown",
                "  smtp   unknown",
                "  qmgr   unknown",
                "  smtpd  not running",
            ]
        );
    }

    #[test]
    fn status_of_listeners_and_a_masked_socket() {
        let running =
            "Id=postern-smtpd.service\nLoadState=loaded\nActiveState=active\nMainPID=9\n\n";
        let show = format!(
            "{running}Id=postern-smtpd.socket\nLoadState=loaded\nActiveState=active\n\
             Listen=127.0.0.1:25 (Stream)\nListen=[::1]:25 (Stream)\n"
        );
        let (lines, _) = render_status(&parse_show(&show));
        assert_eq!(lines[5], "  smtp listeners: 127.0.0.1:25, [::1]:25");
        let show =
            format!("{running}Id=postern-smtpd.socket\nLoadState=masked\nActiveState=inactive\n");
        let (lines, _) = render_status(&parse_show(&show));
        assert!(
            lines[5].starts_with("  smtp listeners: none (postern-smtpd.socket masked"),
            "{lines:#?}"
        );
        assert_eq!(lines.len(), 6, "{lines:#?}");
    }

    /// Issue 18: the submission units' listeners are reported as smtpd's
    /// are; masked (their default) they are not mentioned.
    #[test]
    fn status_of_the_submission_listeners() {
        let running = "Id=postern-smtpd.service\nLoadState=loaded\nActiveState=active\nMainPID=9\n\n\
             Id=postern-smtpd.socket\nLoadState=loaded\nActiveState=active\nListen=127.0.0.1:25 (Stream)\n\n";
        let show = format!(
            "{running}Id=postern-submission.socket\nLoadState=loaded\nActiveState=active\n\
             Listen=0.0.0.0:587 (Stream)\nListen=[::]:587 (Stream)\n\n\
             Id=postern-submissions.socket\nLoadState=masked\nActiveState=inactive\n"
        );
        let (lines, _) = render_status(&parse_show(&show));
        assert_eq!(
            lines[5..],
            [
                "  smtp listeners: 127.0.0.1:25",
                "  submission listeners: 0.0.0.0:587, [::]:587"
            ]
        );
        // Skipped for want of the generator's drop-in: not mentioned.
        let show = format!(
            "{running}Id=postern-submission.socket\nLoadState=loaded\nActiveState=inactive\n\
             ConditionResult=no\nListen=127.0.0.1:587 (Stream)\n"
        );
        let (lines, _) = render_status(&parse_show(&show));
        assert_eq!(lines[5..], ["  smtp listeners: 127.0.0.1:25"]);
        // A submission unit that failed is said, as any socket.
        let show = format!(
            "{running}Id=postern-submissions.socket\nLoadState=loaded\nActiveState=failed\n\
             Result=resources\nListen=0.0.0.0:465 (Stream)\n"
        );
        let (lines, _) = render_status(&parse_show(&show));
        assert_eq!(
            lines.last().unwrap(),
            "  postern-submissions.socket failed (resources); systemctl restart postern.target takes it up again"
        );
    }

    #[test]
    fn status_with_every_daemon_failed_is_not_running() {
        let show = "Id=postern.target\nLoadState=loaded\nActiveState=active\n\n\
            Id=postern-qmgr.service\nLoadState=loaded\nActiveState=failed\nResult=exit-code\nMainPID=0\n\n\
            Id=postern-smtpd.socket\nLoadState=masked\nActiveState=failed\nResult=service-start-limit-hit\n";
        let (lines, running) = render_status(&parse_show(show));
        assert!(!running);
        assert_eq!(
            lines[0],
            "postern is not running (systemd: postern.target active, no daemon runs)"
        );
        assert_eq!(
            lines[3],
            "  qmgr   failed (exit-code); see journalctl -u postern-qmgr.service"
        );
        assert_eq!(lines.len(), 5, "{lines:#?}");
        let show = "Id=postern-smtp.service\nLoadState=loaded\nActiveState=activating\nSubState=auto-restart\nResult=exit-code\n";
        let (lines, running) = render_status(&parse_show(show));
        assert!(!running);
        assert_eq!(
            lines[2],
            "  smtp   failed (exit-code), restarting; see journalctl -u postern-smtp.service"
        );
    }

    #[test]
    fn status_says_when_the_last_reload_was_refused() {
        let show = "Id=postern-qmgr.service\nLoadState=loaded\nActiveState=active\nMainPID=7\nReloadResult=exit-code\n";
        let (lines, running) = render_status(&parse_show(show));
        assert!(running);
        assert_eq!(
            lines[3],
            "  qmgr   running (pid 7); the last reload failed (exit-code), the running configuration is kept"
        );
    }
}
