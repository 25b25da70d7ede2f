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
const SERVICES: [(&str, f64); 4] = [
    ("postern-smtpd.service", 2.0),
    ("postern-qmgr.service", 2.0),
    ("postern-smtp.service", 2.0),
    ("postern-local.service", 5.0),
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
    assert_eq!(names.len(), 12, "{names:?}");
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
            vec!["smtp", "submission", "submit"],
        ),
        ("postern-qmgr.service", vec!["qmgr", "showq"]),
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
        found
            .entry(service.clone())
            .or_default()
            .push(keys["FileDescriptorName"].clone());
        // The service takes this socket's fds.
        let svc = unit_keys(&units_dir().join(&service));
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
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

impl Activated {
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut daemons = Activated {
        dir: p.dir.path().to_path_buf(),
        config: p.config.clone(),
        procs: Vec::new(),
    };
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
