//! The systemd units in `systemd/`: `systemd-analyze verify` and
//! `security` on the files, their socket names against what the daemons
//! take, the tmpfiles.d and sysusers.d files applied to a scratch root,
//! and the daemons started the way systemd starts them
//! (`systemd-socket-activate`), or refusing to start without sockets.
//!
//! The tests that need a systemd tool skip with a note when it is missing
//! (`.ci/run` installs the `systemd` package).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// The services and the highest `systemd-analyze security` exposure each
/// may have (issue 6).
const SERVICES: [(&str, f64); 5] = [
    ("postern-smtpd.service", 2.0),
    ("postern-qmgr.service", 2.0),
    ("postern-smtp.service", 2.0),
    ("postern-local.service", 5.0),
    ("postern-metrics.service", 2.0),
];

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

/// The unit files (.service, .socket, .target), sorted.
fn unit_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(units_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("service" | "socket" | "target")
            )
        })
        .collect();
    v.sort();
    v
}

/// True when `tool` runs; otherwise prints why the test is skipped.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("--version").output().is_ok();
    if !ok {
        eprintln!("skipped: {tool} is not installed (apt-get install systemd; .ci/run does)");
    }
    ok
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        return;
    }
    // verify wants the executables to exist: point them at the built one.
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for f in unit_files() {
        let unit = std::fs::read_to_string(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(
            dir.path().join(&name),
            unit.replace("/usr/sbin/postern", BIN),
        )
        .unwrap();
        names.push(name);
    }
    assert_eq!(names.len(), 16, "{names:?}");
    // --recursive-errors=no: only our units decide the exit status, not
    // the host's multi-user.target and what it pulls in.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--recursive-errors=no"])
        .args(&names)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let all = text(&out);
    println!("systemd-analyze verify: {}", out.status);
    for line in all.lines() {
        println!("  {line}");
    }
    assert!(out.status.success(), "verify failed:\n{all}");
    let ours: Vec<&str> = all.lines().filter(|l| l.contains("postern")).collect();
    assert!(ours.is_empty(), "verify complained:\n{}", ours.join("\n"));
}

/// The listeners of postern-smtpd.socket, postern-submission.socket,
/// postern-submissions.socket and postern-metrics.socket (none: masked).
type Listeners<'a> = [&'a [&'a str]; 4];

/// The socket units whose listeners only the generator writes.
const SUBMISSION_SOCKETS: [&str; 2] = ["postern-submission.socket", "postern-submissions.socket"];

#[test]
fn services_exposure_within_limits() {
    if !have("systemd-analyze") {
        return;
    }
    let mut failed = Vec::new();
    for (unit, max) in SERVICES {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(units_dir().join(unit))
            .output()
            .unwrap();
        let all = text(&out);
        let needle = format!("Overall exposure level for {unit}: ");
        let score: f64 = all
            .lines()
            .find_map(|l| l.split_once(needle.as_str()))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level for {unit}:\n{all}"));
        println!("{unit}: exposure {score:.1} (at most {max:.1})");
        if score > max {
            failed.push(format!("{unit}: {score} > {max}\n{all}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// `Key=value` lines of a unit file (values of repeated keys joined with
/// a space), comments left out.
fn unit_keys(path: &Path) -> BTreeMap<String, String> {
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let e = keys.entry(k.to_string()).or_default();
            if !e.is_empty() {
                e.push(' ');
            }
            e.push_str(v);
        }
    }
    keys
}

#[test]
fn socket_names_are_those_the_daemons_take() {
    // The names each role looks for in LISTEN_FDNAMES (DESIGN.md).
    let expected: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        (
            "postern-smtpd.service",
            vec!["smtp", "submission", "submissions", "submit"],
        ),
        ("postern-qmgr.service", vec!["metrics", "qmgr", "showq"]),
        ("postern-metrics.service", vec!["http"]),
        ("postern-local.service", vec!["local"]),
        ("postern-smtp.service", vec!["smtp-client"]),
    ]);
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in unit_files()
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "socket"))
    {
        let keys = unit_keys(f);
        let service = keys["Service"].clone();
        // The unit the role table names for this socket.
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let row = postern::role::TABLE
            .iter()
            .flat_map(|r| r.sockets)
            .find(|s| s.name == keys["FileDescriptorName"])
            .unwrap_or_else(|| {
                panic!(
                    "{name}: no socket {} in the role table",
                    keys["FileDescriptorName"]
                )
            });
        assert_eq!(row.unit, name);
        found
            .entry(service.clone())
            .or_default()
            .push(keys["FileDescriptorName"].clone());
        // The service takes this socket's fds.
        let svc = unit_keys(&units_dir().join(&service));
        assert!(
            svc["Sockets"].split_whitespace().any(|s| s == name),
            "{service} does not list {name} in Sockets="
        );
    }
    for names in found.values_mut() {
        names.sort();
    }
    let expected: BTreeMap<String, Vec<String>> = expected
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(found, expected);
    for (service, _) in SERVICES {
        let keys = unit_keys(&units_dir().join(service));
        let role = service
            .trim_start_matches("postern-")
            .trim_end_matches(".service");
        assert_eq!(
            keys["ExecStart"],
            format!("/usr/sbin/postern --config /etc/postern/postern.toml daemon {role}")
        );
        assert_eq!(keys["RestartPreventExitStatus"], "78");
    }
}

#[test]
fn sysusers_and_tmpfiles_make_the_user_and_the_queue() {
    if !is_root() {
        eprintln!("skipped: needs root (systemd-tmpfiles chowns)");
        return;
    }
    if !have("systemd-sysusers") || !have("systemd-tmpfiles") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(units_dir().join("postern.sysusers"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let entry: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("postern:"))
        .unwrap_or_else(|| panic!("no postern user in\n{passwd}"))
        .split(':')
        .collect();
    assert_eq!(entry[5], "/var/spool/postern");
    assert_eq!(entry[6], "/usr/sbin/nologin");
    let (uid, gid): (u32, u32) = (entry[2].parse().unwrap(), entry[3].parse().unwrap());

    // tmpfiles resolves postern in the scratch root's passwd.
    let out = Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.path().display()))
        .arg("--create")
        .arg(units_dir().join("postern.tmpfiles"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let queue = root.path().join("var/spool/postern");
    // The queue is search-only for others, the drop directory 3733, the
    // rest postern's alone (as `postern start` makes them).
    let mut dirs = vec![(queue.clone(), 0o711), (queue.join("maildrop"), 0o3733)];
    dirs.extend(
        postern::queue::SUBDIRS
            .iter()
            .map(|d| (queue.join(d), 0o700)),
    );
    dirs.push((queue.join("maildrop-bad"), 0o700));
    for (d, mode) in &dirs {
        let m = std::fs::metadata(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        assert!(m.is_dir());
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{}", d.display());
        assert_eq!(m.permissions().mode() & 0o7777, *mode, "{}", d.display());
    }
    let run = std::fs::metadata(root.path().join("run/postern")).unwrap();
    assert_eq!((run.uid(), run.gid()), (0, 0));
    assert_eq!(run.permissions().mode() & 0o7777, 0o755);
}

/// Daemons waiting behind `systemd-socket-activate`, each with its log;
/// all stopped when dropped.
struct Activated {
    dir: PathBuf,
    config: PathBuf,
    procs: Vec<(String, Child)>,
}

/// A loopback port nothing listens on (for a moment).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Activated {
    /// None started yet, for `p`'s configuration; logs in its directory.
    fn new(p: &Postern) -> Activated {
        Activated {
            dir: p.dir.path().to_path_buf(),
            config: p.config.clone(),
            procs: Vec::new(),
        }
    }

    /// `postern daemon ROLE` behind systemd-socket-activate listening on
    /// `listen` with the fd names `names`; the daemon runs as the postern
    /// user when `as_postern` (the sockets are bound by us, as systemd
    /// binds them). Returns once it listens.
    fn start(&mut self, role: &str, as_postern: bool, listen: &[String], names: &str) {
        let mut cmd = Command::new("systemd-socket-activate");
        for l in listen {
            cmd.arg(format!("--listen={l}"));
        }
        cmd.arg(format!("--fdname={names}"));
        if std::env::var_os("POSTERN_LOG").is_some() {
            cmd.arg("--setenv=POSTERN_LOG");
        }
        if as_postern {
            // setpriv execs the daemon in the same process: LISTEN_PID holds.
            cmd.args([
                "setpriv",
                "--reuid=postern",
                "--regid=postern",
                "--clear-groups",
                "--",
            ]);
        }
        let log_path = self.log_path(role);
        let log = std::fs::File::create(&log_path).unwrap();
        let child = cmd
            .arg(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(["daemon", role])
            // Its "Listening on" lines on stderr, not in a journal.
            .env("SYSTEMD_LOG_TARGET", "console")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs.push((role.to_string(), child));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.matches("Listening on ").count() >= listen.len() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "systemd-socket-activate for {role} does not listen:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_path(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{role}.log"))
    }

    /// Every log, for failure messages.
    fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|(role, _)| {
                let text = std::fs::read_to_string(self.log_path(role)).unwrap_or_default();
                format!("--- {role}:\n{text}")
            })
            .collect()
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        // systemd-socket-activate execs the daemon in its own process, so
        // the child is the daemon once activated (or the waiting tool).
        for (_, c) in &mut self.procs {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for (_, c) in &mut self.procs {
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The queue as `postern start` (or the tmpfiles.d file) makes it, owned
/// by the postern user when we are root.
fn make_queue(p: &Postern) {
    let q = p.queue_dir();
    let mut dirs = vec![q.clone()];
    dirs.extend(postern::queue::SUBDIRS.iter().map(|d| q.join(d)));
    let owner = is_root().then(|| {
        nix::unistd::User::from_name("postern")
            .unwrap()
            .expect("as root the tests need the user postern (useradd --system --user-group postern; .ci/run does)")
    });
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Some(u) = &owner {
            std::os::unix::fs::chown(d, Some(u.uid.as_raw()), Some(u.gid.as_raw())).unwrap();
        }
    }
    std::fs::create_dir_all(p.run_dir()).unwrap();
    std::fs::set_permissions(p.run_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn smtpd_started_by_socket_activation_accepts_mail() {
    if !have("systemd-socket-activate") {
        return;
    }
    if Command::new("swaks").arg("--version").output().is_err() {
        panic!("swaks is not installed (apt-get install swaks; .ci/run does)");
    }
    let p = Postern::configure("", &[], None);
    make_queue(&p);
    let root = is_root();
    let run = p.run_dir();
    let sock = |name: &str| run.join(name).display().to_string();
    let port = free_port();
    let mut daemons = Activated::new(&p);
    // As the units have it: local as root, its socket postern's (0600);
    // qmgr and smtpd as postern. Each starts on its first connection:
    // swaks starts smtpd, smtpd's wake-up qmgr, qmgr's delivery local.
    daemons.start("local", false, &[sock("local.sock")], "local");
    daemons.start(
        "qmgr",
        root,
        &[sock("qmgr.sock"), sock("showq.sock")],
        "qmgr:showq",
    );
    // SocketUser=postern, SocketMode= as in the socket units.
    for (name, mode) in [
        ("local.sock", 0o600),
        ("qmgr.sock", 0o600),
        ("showq.sock", 0o666),
    ] {
        let path = run.join(name);
        if root {
            let u = nix::unistd::User::from_name("postern").unwrap().unwrap();
            std::os::unix::fs::chown(&path, Some(u.uid.as_raw()), Some(u.gid.as_raw())).unwrap();
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    daemons.start("smtpd", root, &[format!("127.0.0.1:{port}")], "smtp");

    let user = p.user.clone();
    let msg = b"From: swaks@example.org\r\nSubject: socket activated\r\n\r\nbody through systemd-socket-activate\r\n.one dot\r\nlast";
    let path = p.dir.path().join("swaks.eml");
    write_file(&path, msg);
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}")])
        .args(["--to", &format!("{user}@localhost")])
        .args(["--from", "swaks@example.org", "--helo", "swaks.example"])
        .arg("--data")
        .arg(format!("@{}", path.display()))
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && transcript.contains("<-  250 2.0.0 Ok: queued as "),
        "{transcript}\n{}",
        daemons.logs()
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    while p.delivered(&user).is_empty() {
        assert!(
            Instant::now() < deadline,
            "not delivered:\n{}",
            daemons.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let files = p.delivered(&user);
    assert_eq!(files.len(), 1, "{files:?}");
    let mut expected = lf(msg);
    expected.push(b'\n');
    assert_eq!(body_after_added_headers(&files[0]), expected);
    // Each tool was replaced by its daemon (exec, same pid).
    for (role, c) in &daemons.procs {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", c.id())).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.ends_with(&format!(" daemon {role} ")) && cmdline.starts_with(BIN),
            "{role} is not running: {cmdline:?}\n{}",
            daemons.logs()
        );
    }
}

/// Run `cmd` and give it `secs` to exit; its output.
fn output_within(cmd: &mut Command, secs: u64) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {secs} s:\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn daemons_without_listen_fds_refuse_to_start() {
    let p = Postern::configure("", &[], None);
    make_queue(&p);
    for role in ["smtpd", "qmgr", "local"] {
        let out = output_within(
            Command::new(BIN)
                .arg("--config")
                .arg(&p.config)
                .args(["daemon", role])
                .env_remove("LISTEN_FDS")
                .env_remove("LISTEN_PID")
                .env_remove("LISTEN_FDNAMES"),
            10,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        println!(
            "postern daemon {role} without sockets: {}: {err}",
            out.status
        );
        assert!(!out.status.success(), "{role}: {err}");
        // LISTEN_FDS, or LISTEN_FDNAMES for the role's named socket.
        assert!(err.contains("LISTEN_FD"), "{role}: {err}");
    }
}

/// Every value of `key` in a unit file, one per line, in order.
fn unit_values(path: &Path, key: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .collect()
}

/// Issue 15: `systemctl reload` of a service fails on a broken file (the
/// check runs first, then SIGHUP), and `systemctl reload postern.target`
/// is applicable and reaches every service.
#[test]
fn reload_checks_the_file_first_and_the_target_passes_it_on() {
    for (service, _) in SERVICES {
        // The metrics unit checks the file only: it cannot see the queue.
        let check = if service == "postern-metrics.service" {
            "/usr/sbin/postern check --no-system --config /etc/postern/postern.toml"
        } else {
            "/usr/sbin/postern check --config /etc/postern/postern.toml"
        };
        assert_eq!(
            unit_values(&units_dir().join(service), "ExecReload"),
            [check, "/bin/kill -HUP $MAINPID"],
            "{service}"
        );
    }
    let mut propagated: Vec<String> =
        unit_values(&units_dir().join("postern.target"), "PropagatesReloadTo")
            .iter()
            .flat_map(|v| v.split_whitespace().map(String::from))
            .collect();
    propagated.sort();
    let mut services: Vec<String> = SERVICES.iter().map(|(s, _)| s.to_string()).collect();
    services.sort();
    assert_eq!(propagated, services);
}

/// Issue 15: without the generator the units listen on loopback only;
/// issue 18: and the submission units nowhere: they start only with the
/// generator's drop-in (`ConditionPathExists=`), which replaces their
/// loopback placeholder.
#[test]
fn without_the_generator_nothing_listens_beyond_loopback() {
    for f in unit_files() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for listen in unit_values(&f, "ListenStream") {
            if listen.starts_with('/') {
                continue;
            }
            let addr: std::net::SocketAddr = listen
                .parse()
                .unwrap_or_else(|_| panic!("{name}: ListenStream={listen} is not ip:port"));
            assert!(addr.ip().is_loopback(), "{name}: ListenStream={listen}");
        }
    }
    assert_eq!(
        unit_values(&units_dir().join("postern-smtpd.socket"), "ListenStream"),
        ["127.0.0.1:25"]
    );
    assert_eq!(
        unit_values(
            &units_dir().join("postern-smtpd.socket"),
            "ConditionPathExists"
        ),
        Vec::<String>::new()
    );
    for unit in SUBMISSION_SOCKETS {
        let f = units_dir().join(unit);
        assert_eq!(
            unit_values(&f, "ConditionPathExists"),
            [format!(
                "/run/systemd/generator/{unit}.d/50-postern-listen.conf"
            )],
            "{unit}"
        );
        assert_eq!(unit_values(&f, "PartOf"), ["postern.target"], "{unit}");
        assert_eq!(
            unit_values(&f, "Service"),
            ["postern-smtpd.service"],
            "{unit}"
        );
    }
    // Every TCP socket unit shares its port (SO_REUSEPORT), so that a
    // restart rebinds while systemd 252's (sd-chown) holds the old one.
    for unit in [
        "postern-smtpd.socket",
        SUBMISSION_SOCKETS[0],
        SUBMISSION_SOCKETS[1],
    ] {
        assert_eq!(
            unit_values(&units_dir().join(unit), "ReusePort"),
            ["yes"],
            "{unit}"
        );
    }
}

/// Issue 15: after failed starts, `systemctl restart postern.target`
/// brings the units back: the sockets and the target have no start limit
/// of their own, and the services' window is short.
#[test]
fn start_limits_let_a_restart_bring_the_units_back() {
    for f in unit_files() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let interval = unit_values(&f, "StartLimitIntervalSec");
        if name.ends_with(".service") {
            assert_eq!(interval, ["10s"], "{name}");
            assert_eq!(unit_values(&f, "StartLimitBurst"), ["5"], "{name}");
            assert_eq!(unit_values(&f, "RestartSec"), ["1s"], "{name}");
        } else {
            assert_eq!(interval, ["0"], "{name}");
        }
    }
    // smtpd starts without its TCP sockets (masked when their key names
    // none; the submission units without the generator do not even
    // load), never without submit.sock; the target only wants them too.
    let smtpd = units_dir().join("postern-smtpd.service");
    assert_eq!(unit_values(&smtpd, "Requires"), ["postern-submit.socket"]);
    let words = |f: &Path, key: &str| -> Vec<String> {
        unit_values(f, key)
            .iter()
            .flat_map(|v| v.split_whitespace().map(String::from))
            .collect()
    };
    let target = units_dir().join("postern.target");
    for tcp in [
        "postern-smtpd.socket",
        "postern-submission.socket",
        "postern-submissions.socket",
    ] {
        for (f, key) in [
            (&smtpd, "Wants"),
            (&smtpd, "After"),
            (&smtpd, "Sockets"),
            (&target, "Wants"),
        ] {
            assert!(
                words(f, key).iter().any(|w| w == tcp),
                "{}: {key}= lacks {tcp}",
                f.display()
            );
        }
        assert!(!words(&target, "Requires").iter().any(|w| w == tcp));
    }
}

/// The units with the built binary's path, in `dir`; their names.
fn units_into(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for f in unit_files() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let unit = std::fs::read_to_string(&f).unwrap();
        std::fs::write(dir.join(&name), unit.replace("/usr/sbin/postern", BIN)).unwrap();
        names.push(name);
    }
    names
}

/// Issue 15: the generator, run as systemd runs it (the installed wrapper,
/// three directories), writes listeners that `systemd-analyze verify`
/// accepts with the units, and none for a configuration without a
/// listener, a broken one or a missing one.
#[test]
fn generated_listeners_pass_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let units = scratch.path().join("units");
    std::fs::create_dir(&units).unwrap();
    let names = units_into(&units);
    let config = scratch.path().join("postern.toml");
    let wrapper = scratch.path().join("postern-generator");
    let script = std::fs::read_to_string(units_dir().join("postern-generator")).unwrap();
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    std::fs::write(
        &wrapper,
        script
            .replace("/usr/sbin/postern", BIN)
            .replace("/etc/postern/postern.toml", &config.display().to_string()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Per case: the listeners of postern-smtpd.socket, then of the
    // submission units (issue 18); none: masked.
    const TLS: &str =
        "[tls]\nchain_files = [\"/etc/postern/key.pem\"]\n[sasl]\nbackend = \"passwd\"\n";
    let submission = format!(
        "[smtpd]\nlisten = [\"127.0.0.1:25\"]\n[submission]\nlisten = [\"[::]:587\"]\n\
         implicit_tls_listen = [\"0.0.0.0:465\", \"[::]:465\"]\n{TLS}"
    );
    let only_submission =
        format!("[smtpd]\nlisten = []\n[submission]\nlisten = [\"127.0.0.1:587\"]\n{TLS}");
    let none: &[&str] = &[];
    let cases: [(&str, Option<&str>, Listeners); 10] = [
        (
            "loopback",
            Some("[smtpd]\nlisten = [\"127.0.0.1:25\"]\n"),
            [&["127.0.0.1:25"], none, none, none],
        ),
        (
            "dual stack and a specific address",
            Some("[smtpd]\nlisten = [\"[::]:25\", \"192.0.2.7:2525\"]\n"),
            [&["[::]:25", "192.0.2.7:2525"], none, none, none],
        ),
        (
            "several",
            Some("[smtpd]\nlisten = [\"127.0.0.1:25\", \"[::1]:25\", \"127.0.0.1:587\"]\n"),
            [
                &["127.0.0.1:25", "[::1]:25", "127.0.0.1:587"],
                none,
                none,
                none,
            ],
        ),
        (
            "none",
            Some("[smtpd]\nlisten = []\n"),
            [none, none, none, none],
        ),
        (
            "submission",
            Some(&submission),
            [
                &["127.0.0.1:25"],
                &["[::]:587"],
                &["0.0.0.0:465", "[::]:465"],
                none,
            ],
        ),
        (
            "submission alone",
            Some(&only_submission),
            [none, &["127.0.0.1:587"], none, none],
        ),
        (
            "moved queue and run directories",
            Some(
                "[server]\nrun_directory = \"/run/postern-mx\"\n\
                 [queue]\ndirectory = \"/srv/postern/queue\"\n\
                 [smtpd]\nlisten = [\"127.0.0.1:25\"]\n",
            ),
            [&["127.0.0.1:25"], none, none, none],
        ),
        (
            "broken",
            Some("[smtpd]\nlisen = [\"0.0.0.0:25\"]\n"),
            [none, none, none, none],
        ),
        (
            "metrics (issue 23)",
            Some(
                "[smtpd]\nlisten = [\"127.0.0.1:25\"]\n[metrics]\nlisten = [\"127.0.0.1:9154\", \"[::1]:9154\"]\n",
            ),
            [
                &["127.0.0.1:25"],
                none,
                none,
                &["127.0.0.1:9154", "[::1]:9154"],
            ],
        ),
        ("missing", None, [none, none, none, none]),
    ];
    let tcp_units = [
        "postern-smtpd.socket",
        SUBMISSION_SOCKETS[0],
        SUBMISSION_SOCKETS[1],
        "postern-metrics.socket",
    ];
    for (what, toml, expected) in cases {
        let _ = std::fs::remove_file(&config);
        if let Some(t) = toml {
            std::fs::write(&config, t).unwrap();
        }
        let normal = scratch
            .path()
            .join(format!("gen-{}", what.replace(' ', "-")));
        let (early, late) = (
            normal.with_extension("early"),
            normal.with_extension("late"),
        );
        for d in [&normal, &early, &late] {
            std::fs::create_dir(d).unwrap();
        }
        // As systemd runs generators: a minimal environment.
        let out = Command::new(&wrapper)
            .args([&normal, &early, &late])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        println!("{what}: {}\n{}", out.status, text(&out));
        assert!(out.status.success(), "{what}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{what}: stdout {}", text(&out));
        for (unit, expected) in tcp_units.iter().zip(expected) {
            let dropin =
                std::fs::read_to_string(normal.join(format!("{unit}.d/50-postern-listen.conf")))
                    .unwrap_or_else(|e| panic!("{what}: no drop-in for {unit}: {e}"));
            let listen: Vec<&str> = dropin
                .lines()
                .filter_map(|l| l.strip_prefix("ListenStream="))
                .collect();
            assert_eq!(
                listen[0], "",
                "{what}: {unit}: the list is not emptied first:\n{dropin}"
            );
            assert_eq!(&listen[1..], expected, "{what}: {unit}:\n{dropin}");
            let masked = std::fs::read_link(normal.join(unit)).ok();
            assert_eq!(
                masked.as_deref(),
                expected.is_empty().then_some(Path::new("/dev/null")),
                "{what}: {unit}"
            );
        }
        // qmgr's metrics socket goes with the endpoint (masked, no paths).
        let metrics_off = expected[3].is_empty();
        assert_eq!(
            std::fs::read_link(normal.join("postern-qmgr-metrics.socket"))
                .ok()
                .as_deref(),
            metrics_off.then_some(Path::new("/dev/null")),
            "{what}: postern-qmgr-metrics.socket"
        );
        if metrics_off {
            assert!(
                !normal.join("postern-qmgr-metrics.socket.d").exists(),
                "{what}"
            );
        }
        for d in [&early, &late] {
            assert_eq!(
                std::fs::read_dir(d).unwrap().count(),
                0,
                "{what}: wrote into {}",
                d.display()
            );
        }
        // Issue 16: the queue and the sockets follow the file.
        let paths = |unit: &str| {
            std::fs::read_to_string(normal.join(format!("{unit}.d/50-postern-paths.conf")))
                .ok()
                .map(|t| {
                    t.lines()
                        .filter(|l| !l.starts_with('#') && l.contains('='))
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
        };
        if what.starts_with("moved") {
            for unit in ["postern-smtpd.service", "postern-qmgr.service"] {
                assert_eq!(
                    paths(unit).unwrap(),
                    ["ReadWritePaths=-/srv/postern/queue"],
                    "{unit}"
                );
            }
            assert_eq!(
                paths("postern-local.service").unwrap(),
                ["ReadWritePaths=-/run/postern-mx/local"]
            );
            for (unit, sock) in [
                ("postern-submit.socket", "submit"),
                ("postern-qmgr.socket", "qmgr"),
                ("postern-showq.socket", "showq"),
                ("postern-local.socket", "local"),
                ("postern-smtp.socket", "smtp"),
            ] {
                assert_eq!(
                    paths(unit).unwrap(),
                    [
                        "ListenStream=".to_string(),
                        format!("ListenStream=/run/postern-mx/{sock}.sock")
                    ],
                    "{unit}"
                );
            }
        } else {
            assert_eq!(paths("postern-qmgr.service"), None, "{what}");
            assert_eq!(paths("postern-submit.socket"), None, "{what}");
        }
        if toml.is_none() || what == "broken" {
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("error: "),
                "{what}: {}",
                text(&out)
            );
        }

        // The drop-in above the units, as /run/systemd/generator is above
        // /usr/lib/systemd/system. A masked socket is verified through the
        // units that want it.
        let verify = |names: &[&String]| {
            Command::new("systemd-analyze")
                .args(["verify", "--man=no", "--recursive-errors=no"])
                .args(names)
                .current_dir(&units)
                .env(
                    "SYSTEMD_UNIT_PATH",
                    format!("{}:{}:", normal.display(), units.display()),
                )
                .output()
                .unwrap()
        };
        let masked: Vec<&str> = tcp_units
            .iter()
            .zip(expected)
            .filter(|(_, e)| e.is_empty())
            .map(|(u, _)| *u)
            .collect();
        let verified: Vec<&String> = names
            .iter()
            .filter(|n| !masked.contains(&n.as_str()))
            .collect();
        let out = verify(&verified);
        let all = text(&out);
        assert!(out.status.success(), "{what}: verify failed:\n{all}");
        let ours: Vec<&str> = all.lines().filter(|l| l.contains("postern")).collect();
        assert!(
            ours.is_empty(),
            "{what}: verify complained:\n{}",
            ours.join("\n")
        );
        for unit in masked {
            // A copy of the unit that wins over the mask (one in /etc)
            // gets the drop-in too, and refuses to load without a listener
            // rather than listen on its own.
            let out = verify(&[&unit.to_string()]);
            assert!(
                !out.status.success() && text(&out).contains("no Listen setting"),
                "{what}: {unit}: {}",
                text(&out)
            );
        }
    }
}

/// Issue 15: smtpd says so when the sockets it is handed are not those of
/// `smtpd.listen` (the file edited without `systemctl daemon-reload`, no
/// generator, a drop-in elsewhere).
#[test]
fn smtpd_warns_when_the_handed_sockets_are_not_smtpd_listen() {
    if !have("systemd-socket-activate") {
        return;
    }
    let p = Postern::configure("", &[], None);
    // What the file says; nothing binds it.
    p.edit_config("listen = [\"127.0.0.1:0\"]", "listen = [\"127.0.0.1:1\"]");
    make_queue(&p);
    let port = free_port();
    let mut daemons = Activated::new(&p);
    daemons.start("smtpd", is_root(), &[format!("127.0.0.1:{port}")], "smtp");
    // The first connection starts it.
    let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let needle = format!(
        "warning: the sockets handed over listen not on 127.0.0.1:1 of smtpd.listen, but on 127.0.0.1:{port} that it does not name"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemons.logs().contains(&needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in\n{}",
            daemons.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        daemons.logs().contains("systemctl daemon-reload"),
        "{}",
        daemons.logs()
    );
}
