//! The supervisor: `postern start` binds the listeners, starts one process
//! per role the way systemd would (sockets by LISTEN_FDS, LISTEN_PID and
//! LISTEN_FDNAMES), restarts a crashed role with back-off, and stops
//! everything gracefully on SIGTERM. `postern stop` and `postern status`
//! talk to it through its pid file and status file in the run directory.
//! `postern reload` (SIGHUP) opens the log file again (logrotate), checks
//! the configuration, writes the effective file and has each role reload
//! it in place (SIGHUP; each opens the log file again too), so SMTP
//! sessions and deliveries in progress go on. When no supervisor runs but
//! systemd runs this postern, `status`, `reload`, `stop` and `start`
//! (in the background) report and act through systemd instead
//! ([`crate::systemd::systemctl`]). Run by systemd as one service
//! (`postern start --foreground`, `Type=notify-reload`), it is the one that
//! tells the service manager: `READY=1` once the roles are started,
//! `RELOADING=1`/`READY=1` around a reload, `STOPPING=1`, `WATCHDOG=1`;
//! the roles never see NOTIFY_SOCKET.
//!
//! SECURITY: started as root it creates the queue and run directories,
//! binds the sockets, and starts smtpd and qmgr as the unprivileged
//! `server.user` (postern); local stays root because its delivery children
//! become the recipients. It reads no network input itself.

use std::collections::HashMap;
use std::fs;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::config::Config;
use crate::ipc::names::{
    JOURNAL_DIR, LOCAL_SOCKET, METRICS_SOCKET, QMGR_SOCKET, SHOWQ_SOCKET, SMTP_SOCKET,
    SUBMIT_SOCKET, SUPERVISOR_ENV,
};
use crate::ipc::{EX_CONFIG, Unrecoverable};
use crate::notify::reload::{Fixed, keep_fixed};
use crate::role::Role;
use crate::sys::{self, Credentials};

pub(crate) const PID_FILE: &str = "postern.pid";
pub(crate) const STATUS_FILE: &str = "status.json";
pub(crate) const EFFECTIVE_CONFIG: &str = crate::config::EFFECTIVE_FILE;

mod control;
mod role;

use control::running_pid;
pub use control::{queue_op, queue_show, reload, status, stop};
pub use role::run_role;

/// `postern start`.
/// `source` is where the configuration came from (`--config`), read again
/// on `postern reload`.
pub fn start(config: Config, source: Option<PathBuf>, foreground: bool) -> anyhow::Result<()> {
    let run_dir = config.server.run_directory.clone();
    if let Some(pid) = running_pid(&run_dir) {
        bail!("postern is already running (pid {pid})");
    }
    if !foreground && let Some(systemd) = crate::systemd::systemctl::managed(&config) {
        return systemd.start(&config, source.as_deref());
    }
    if !foreground {
        return start_background(&config, source.as_deref());
    }
    crate::logging::init_for("master", config.server.log_file.as_deref())?;
    let user = role_user(&config)?;
    prepare_directories(&config, user.as_ref())?;
    give_log_file(&config, user.as_ref())?;
    let effective = run_dir.join(EFFECTIVE_CONFIG);
    write_file(&effective, config.to_toml(false).as_bytes(), 0o644)?;

    // Bind everything before starting anyone: a port in use is a clear
    // error now, not a crash loop later. Each role is handed the sockets
    // of its row of the role table.
    let mut sockets: HashMap<Role, Vec<(&'static str, OwnedFd)>> = HashMap::new();
    for row in &crate::role::TABLE {
        if !(row.wanted)(&config) {
            continue;
        }
        let mut fds = Vec::new();
        for socket in row.sockets {
            if !(socket.wanted)(&config) {
                // Not listened on; a file left by a run that wanted it goes.
                if let Some((file, _)) = socket.file {
                    let _ = fs::remove_file(run_dir.join(file));
                }
                continue;
            }
            match socket.file {
                None => {
                    let all = (socket.tcp)(&config);
                    for addr in all {
                        let v6_only = crate::config::v6_only(addr, all);
                        let l = bind_tcp(addr, v6_only)
                            .with_context(|| format!("cannot listen on {addr}"))?;
                        log::info!("listening on {}", l.local_addr()?);
                        fds.push((socket.name, OwnedFd::from(l)));
                    }
                }
                Some((file, mode)) => {
                    let path = run_dir.join(file);
                    let l = bind_unix(&path, user.as_ref())?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
                    fds.push((socket.name, OwnedFd::from(l)));
                }
            }
        }
        sockets.insert(row.role, fds);
    }
    let exe = std::env::current_exe().context("cannot find the postern binary")?;

    let mut sup = Supervisor {
        exe,
        source,
        config: config.clone(),
        config_path: effective,
        sockets,
        children: HashMap::new(),
        restarts: HashMap::new(),
        restart_counts: HashMap::new(),
        run_dir: run_dir.clone(),
        fatal: None,
    };
    write_file(
        &run_dir.join(PID_FILE),
        format!("{}\n", std::process::id()).as_bytes(),
        0o644,
    )?;
    let result = sup.run();
    let _ = fs::remove_file(run_dir.join(PID_FILE));
    let _ = fs::remove_file(run_dir.join(STATUS_FILE));
    let _ = fs::remove_file(run_dir.join(crate::role::STATES_FILE));
    let _ = fs::remove_file(run_dir.join(QMGR_SOCKET));
    let _ = fs::remove_file(run_dir.join(LOCAL_SOCKET));
    let _ = fs::remove_file(run_dir.join(SMTP_SOCKET));
    let _ = fs::remove_file(run_dir.join(SUBMIT_SOCKET));
    let _ = fs::remove_file(run_dir.join(SHOWQ_SOCKET));
    let _ = fs::remove_file(run_dir.join(METRICS_SOCKET));
    result
}

/// smtpd and qmgr open the log file as the role user: one we created
/// (root's) becomes theirs; someone else's file is left as it is.
fn give_log_file(config: &Config, user: Option<&Credentials>) -> anyhow::Result<()> {
    if let (Some(path), Some(u)) = (&config.server.log_file, user)
        && fs::metadata(path).is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
    {
        chown(path, Some(u.uid), Some(u.gid))
            .with_context(|| format!("cannot chown {}", path.display()))?;
    }
    Ok(())
}

/// Detach: run `postern start --foreground` in its own session, logging
/// where a detached process logs (the log file, the journal, syslog, else
/// the run directory's postern.log; see [`crate::logging`]), its stderr
/// in the run directory's postern.log, and wait until it is up.
fn start_background(config: &Config, source: Option<&Path>) -> anyhow::Result<()> {
    let run_dir = &config.server.run_directory;
    fs::create_dir_all(run_dir)
        .with_context(|| format!("cannot create run directory {}", run_dir.display()))?;
    let log_path = run_dir.join("postern.log");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe);
    // The same source (file or defaults), so that reload reads it again.
    if let Some(path) = source {
        child.arg("--config").arg(path);
    }
    child
        .args(["start", "--foreground"])
        // Nobody reads its stderr: the logger chooses accordingly.
        .env(crate::logging::DETACHED_ENV, "1")
        .env_remove("JOURNAL_STREAM")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut child, 0);
    let mut child = child.spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if running_pid(run_dir).is_some() && run_dir.join(STATUS_FILE).exists() {
            // A role that cannot run as configured exits at once and
            // takes the supervisor with it: wait that long before saying
            // it started.
            let settled = Instant::now() + START_SETTLE;
            while Instant::now() < settled {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "postern stopped right after starting ({status}); see {}",
                        log_path.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            use crate::logging::Destination;
            let dest = crate::logging::destination_when_detached(config.server.log_file.as_deref());
            match dest {
                Destination::File(path) => println!("postern: started; log in {}", path.display()),
                Destination::Journal => println!("postern: started; log in the journal"),
                Destination::Syslog(path) => println!(
                    "postern: started; log in syslog ({}, facility mail)",
                    path.display()
                ),
                Destination::Stderr => {
                    println!("postern: started; log in {}", log_path.display())
                }
            }
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "postern did not start ({status}); see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "postern did not report being up within 10 s; see {}",
        log_path.display()
    )
}

/// As root, the user smtpd and qmgr run as; `None` when not root.
fn role_user(config: &Config) -> anyhow::Result<Option<Credentials>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let name = &config.server.user;
    match sys::user_credentials(name)? {
        Some(c) => Ok(Some(c)),
        None => bail!(
            "the user {name:?} (server.user) does not exist; create it with:\n    \
             useradd --system --user-group --home-dir {} --shell /usr/sbin/nologin {name}",
            config.queue.directory.display()
        ),
    }
}

fn prepare_directories(config: &Config, user: Option<&Credentials>) -> anyhow::Result<()> {
    use crate::maildrop;
    let q = &config.queue.directory;
    // The queue itself is search-only for others (users reach the drop
    // directory in it, and nothing else); the drop directory takes files
    // from anyone but lists them to postern alone, and gives them its
    // group; every other directory is postern's alone.
    let mut dirs = vec![(q.clone(), maildrop::QUEUE_MODE)];
    dirs.extend(crate::queue::SUBDIRS.iter().map(|d| (q.join(d), 0o700)));
    let drop_dirs = [
        (q.join(maildrop::DIR), maildrop::DIR_MODE),
        (q.join(maildrop::BAD_DIR), 0o700),
    ];
    for (d, _) in &drop_dirs {
        // Directories every user writes to, or that hold what they
        // wrote: never chown or chmod through a symbolic link.
        if fs::symlink_metadata(d).is_ok_and(|m| !m.is_dir()) {
            bail!("{} is not a directory", d.display());
        }
    }
    dirs.extend(drop_dirs);
    for (d, mode) in &dirs {
        fs::create_dir_all(d)
            .with_context(|| format!("cannot create queue directory {}", d.display()))?;
        if let Some(u) = user {
            chown(d, Some(u.uid), Some(u.gid))
                .with_context(|| format!("cannot chown {}", d.display()))?;
        }
        fs::set_permissions(d, fs::Permissions::from_mode(*mode))?;
    }
    let r = &config.server.run_directory;
    fs::create_dir_all(r)
        .with_context(|| format!("cannot create run directory {}", r.display()))?;
    fs::set_permissions(r, fs::Permissions::from_mode(0o755))?;
    // local's delivery record: the supervisor's (root's), as local is.
    let journal = r.join(JOURNAL_DIR);
    fs::create_dir_all(&journal).with_context(|| format!("cannot create {}", journal.display()))?;
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// A TCP listener on `addr`, as std binds it (SO_REUSEADDR, backlog
/// 128), IPv6-only when `v6_only` (an IPv4 address listens on the same
/// port: `0.0.0.0:25` and `[::]:25` side by side).
fn bind_tcp(addr: &std::net::SocketAddr, v6_only: bool) -> std::io::Result<TcpListener> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt,
        socket, sockopt,
    };
    if !v6_only {
        return TcpListener::bind(addr);
    }
    let fd = socket(
        AddressFamily::Inet6,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(*addr))?;
    listen(&fd, Backlog::new(128).map_err(std::io::Error::from)?)?;
    Ok(TcpListener::from(fd))
}

fn bind_unix(path: &Path, user: Option<&Credentials>) -> anyhow::Result<UnixListener> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            bail!("{} exists and is not a socket", path.display());
        }
        fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    if let Some(u) = user {
        chown(path, Some(u.uid), Some(u.gid))?;
    }
    Ok(l)
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

struct Restart {
    delay: Duration,
    not_before: Instant,
}

struct Supervisor {
    exe: PathBuf,
    /// Where the configuration is read from on reload (None: the default
    /// path or the built-in defaults).
    source: Option<PathBuf>,
    /// The configuration in effect.
    config: Config,
    config_path: PathBuf,
    sockets: HashMap<Role, Vec<(&'static str, OwnedFd)>>,
    children: HashMap<i32, (Role, Instant)>,
    restarts: HashMap<Role, Restart>,
    /// How often each role was started again after it ended.
    restart_counts: HashMap<Role, u64>,
    run_dir: PathBuf,
    /// The first role that exited with EX_CONFIG: postern stops.
    fatal: Option<Role>,
}

/// Restart back-off for a role that dies young (a crash loop at start):
/// the first delay, doubled at each further early death up to the most.
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(500);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// A role that ran this long was serving: it is restarted at once, and
/// its back-off starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(5);
/// How long `postern start` (in the background) watches the supervisor
/// after the roles were started before it says it started.
const START_SETTLE: Duration = Duration::from_millis(1500);
/// A role younger than this may not handle SIGHUP yet (it installs its
/// handler as it starts): a reload waits for it to be this old.
const ROLE_SETTLE: Duration = Duration::from_secs(1);

impl Supervisor {
    fn run(&mut self) -> anyhow::Result<()> {
        use signal_hook_lite::Signals;
        let signals = Signals::new()?;
        for role in Role::ALL {
            self.spawn(role)?;
        }
        self.write_status();
        // Under systemd (one service running `postern start --foreground`)
        // this process is the main PID: it speaks for the roles.
        crate::notify::ready();
        let watchdog = crate::notify::watchdog_interval().map(|d| d / 2);
        let mut last_ping = Instant::now();
        loop {
            let mut wait = self.next_restart_in();
            if let Some(every) = watchdog {
                wait = wait.min(every.saturating_sub(last_ping.elapsed()));
            }
            match signals.wait(wait) {
                Some(libc::SIGTERM) | Some(libc::SIGINT) => break,
                Some(libc::SIGHUP) => {
                    crate::notify::reloading();
                    self.reload();
                    crate::notify::ready();
                }
                _ => {}
            }
            self.reap();
            if self.fatal.is_some() {
                break;
            }
            self.restart_due();
            if watchdog.is_some_and(|every| last_ping.elapsed() >= every) {
                crate::notify::watchdog();
                last_ping = Instant::now();
            }
        }
        crate::notify::stopping();
        self.shutdown();
        match self.fatal {
            Some(role) => Err(Unrecoverable(format!(
                "{role} cannot run as configured; postern stopped (see the log above)"
            ))
            .into()),
            None => Ok(()),
        }
    }

    /// SIGHUP (`postern reload`): read the configuration again; an invalid
    /// one is refused and the running one kept. A valid one is written as
    /// the effective configuration and each role told with SIGHUP to reload
    /// it in place (sessions and deliveries in progress go on).
    ///
    /// What this process set up keeps its running value, with a warning:
    /// the listening sockets, the queue and run directories and the user
    /// (`smtpd.listen`, `queue.directory`, `server.run_directory`,
    /// `server.user`) change only with `postern stop` and `postern start`,
    /// as Postfix's inet_interfaces. What the roles apply once as they
    /// start (`sandbox.require`, `server.log_file`) makes the reload
    /// restart them, one at a time, instead.
    fn reload(&mut self) {
        // logrotate renamed the log file away: a new one, made the roles'
        // before they open it again on their SIGHUP.
        crate::logging::reopen();
        if let Err(e) =
            role_user(&self.config).and_then(|u| give_log_file(&self.config, u.as_ref()))
        {
            log::warn!("{e:#}");
        }
        let mut new = match Config::load(self.source.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                log::error!("reload refused, the running configuration is kept: {e}");
                return;
            }
        };
        let kept = keep_fixed(&self.config, &mut new, &[Fixed::Starter]);
        if !kept.is_empty() {
            log::warn!(
                "reload: {} change only with postern stop and postern start; the running values are kept",
                kept.join(", ")
            );
        }
        let at_start = keep_fixed(&self.config, &mut new.clone(), &[Fixed::Daemon]);
        if let Err(e) = write_file(&self.config_path, new.to_toml(false).as_bytes(), 0o644) {
            log::error!("reload failed: {e:#}");
            return;
        }
        self.config = new;
        log::info!("reloading");
        if at_start.is_empty() {
            self.signal_reload();
        } else {
            log::info!(
                "reload: {} take effect as a role starts: restarting the roles",
                at_start.join(", ")
            );
            self.restart_all();
        }
        self.write_status();
    }

    /// The running processes of `role`.
    fn pids_of(&self, role: Role) -> Vec<i32> {
        self.children
            .iter()
            .filter(|(_, (r, _))| *r == role)
            .map(|(p, _)| *p)
            .collect()
    }

    /// SIGHUP to every running role: each reads the effective
    /// configuration again.
    fn signal_reload(&mut self) {
        let mut children: Vec<(i32, Instant)> = self
            .children
            .iter()
            .map(|(pid, (_, started))| (*pid, *started))
            .collect();
        children.sort_by_key(|(_, started)| *started);
        for (pid, started) in children {
            if let Some(young) = ROLE_SETTLE.checked_sub(started.elapsed()) {
                std::thread::sleep(young);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGHUP);
        }
    }

    /// Stop and start every role again, one at a time, in start order.
    fn restart_all(&mut self) {
        for role in Role::ALL {
            let pids = self.pids_of(role);
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                let _ = waitpid(Pid::from_raw(pid), None);
                self.children.remove(&pid);
            }
            if let Err(e) = self.spawn(role) {
                log::error!("{e:#}");
            }
        }
    }

    fn spawn(&mut self, role: Role) -> anyhow::Result<()> {
        // A role the configuration does not want (metrics without
        // metrics.listen) has no sockets and is not run.
        let Some(sockets) = self.sockets.get(&role) else {
            return Ok(());
        };
        let fds: Vec<(&str, i32)> = sockets.iter().map(|(n, fd)| (*n, fd.as_raw_fd())).collect();
        let args = vec![
            "--config".to_string(),
            self.config_path.to_string_lossy().into_owned(),
            "daemon".to_string(),
            role.name().to_string(),
        ];
        // Only these: in particular not NOTIFY_SOCKET nor WATCHDOG_USEC
        // (systemd listens to the main PID only, which is this process).
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "PATH"
                        | "POSTERN_LOG"
                        | "RUST_BACKTRACE"
                        | "TZ"
                        | "LANG"
                        | "HOME"
                        | crate::logging::DETACHED_ENV
                        | crate::logging::SYSLOG_SOCKET_ENV
                )
            })
            .collect();
        env.push((SUPERVISOR_ENV.to_string(), std::process::id().to_string()));
        // Every role drops its own privileges (see crate::sandbox), so it
        // is started as whoever runs the supervisor, as systemd would.
        let pid = sys::spawn_with_fds(&self.exe, &args, &env, &fds, None)
            .with_context(|| format!("cannot start {role}"))?;
        self.children.insert(pid, (role, Instant::now()));
        Ok(())
    }

    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let Some(pid) = status.pid() else { break };
                    let Some((role, started)) = self.children.remove(&pid.as_raw()) else {
                        continue;
                    };
                    let how = match status {
                        WaitStatus::Exited(_, code) => format!("exit status {code}"),
                        WaitStatus::Signaled(_, sig, _) => {
                            format!("killed by signal {}", sig as i32)
                        }
                        _ => "ended".to_string(),
                    };
                    log::warn!(
                        "process {} {role} pid {} {how}",
                        self.exe.display(),
                        pid.as_raw()
                    );
                    if matches!(status, WaitStatus::Exited(_, EX_CONFIG)) {
                        log::error!(
                            "{role} cannot run as configured (exit status {EX_CONFIG}, see its error above); \
                             stopping postern instead of restarting it"
                        );
                        self.fatal.get_or_insert(role);
                        continue;
                    }
                    *self.restart_counts.entry(role).or_default() += 1;
                    let r = self.restarts.entry(role).or_insert(Restart {
                        delay: FIRST_RESTART_DELAY,
                        not_before: Instant::now(),
                    });
                    if started.elapsed() >= HEALTHY_AFTER {
                        // It had been serving: bring it back at once.
                        r.delay = FIRST_RESTART_DELAY;
                        r.not_before = Instant::now();
                        log::warn!("{role}: restarting");
                    } else {
                        // Died young: a crash loop at start, back off.
                        r.not_before = Instant::now() + r.delay;
                        log::warn!("{role}: restarting in {} ms", r.delay.as_millis());
                        r.delay = (r.delay * 2).min(MAX_RESTART_DELAY);
                    }
                }
            }
        }
        self.write_status();
    }

    fn next_restart_in(&self) -> Duration {
        let now = Instant::now();
        self.restarts
            .iter()
            .filter(|(role, _)| !self.children.values().any(|(r, _)| r == *role))
            .map(|(_, r)| r.not_before.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(5))
    }

    fn restart_due(&mut self) {
        let now = Instant::now();
        for role in Role::ALL {
            if self.children.values().any(|(r, _)| *r == role) {
                continue;
            }
            if self
                .restarts
                .get(&role)
                .is_some_and(|r| r.not_before <= now)
                && let Err(e) = self.spawn(role)
            {
                log::error!("{e:#}");
            }
        }
        self.write_status();
    }

    fn write_status(&self) {
        let roles: HashMap<&str, i32> = self
            .children
            .iter()
            .map(|(p, (r, _))| (r.name(), *p))
            .collect();
        if let Ok(json) = serde_json::to_vec(&roles) {
            let _ = write_file(&self.run_dir.join(STATUS_FILE), &json, 0o644);
        }
        let now = std::time::SystemTime::now();
        let mut states: std::collections::BTreeMap<&str, crate::role::RoleState> = Role::ALL
            .iter()
            .filter(|r| self.sockets.contains_key(r))
            .map(|r| {
                let restarts = self.restart_counts.get(r).copied().unwrap_or(0);
                (
                    r.name(),
                    crate::role::RoleState {
                        restarts,
                        ..crate::role::RoleState::default()
                    },
                )
            })
            .collect();
        for (pid, (role, started)) in &self.children {
            if let Some(st) = states.get_mut(role.name()) {
                st.pid = *pid;
                st.started = (now - started.elapsed())
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
            }
        }
        if let Ok(json) = serde_json::to_vec(&states) {
            let _ = write_file(&self.run_dir.join(crate::role::STATES_FILE), &json, 0o644);
        }
    }

    /// Stop the roles one after the other: smtpd first (no new mail),
    /// then qmgr (it lets the deliveries in flight finish and records
    /// their outcomes), then local and smtp (idle by then). Each gets SIGTERM and
    /// some seconds; what is left then gets SIGKILL.
    fn shutdown(&mut self) {
        match self.fatal {
            Some(role) => log::info!("terminating: {role} cannot run"),
            None => log::info!("terminating on signal"),
        }
        // The start order backwards.
        for role in Role::ALL.into_iter().rev() {
            let pids = self.pids_of(role);
            for pid in &pids {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while pids.iter().any(|p| self.children.contains_key(p)) && Instant::now() < deadline {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(10)),
                    Ok(s) => {
                        if let Some(p) = s.pid() {
                            self.children.remove(&p.as_raw());
                        }
                    }
                    Err(_) => break,
                }
            }
            for pid in &pids {
                if self.children.remove(pid).is_some() {
                    log::warn!("{role} pid {pid} did not stop in time; killing it");
                    let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
                    let _ = waitpid(Pid::from_raw(*pid), None);
                }
            }
        }
    }
}

/// Waiting for signals without a runtime: block SIGTERM, SIGINT, SIGHUP and
/// SIGCHLD and take them with `sigtimedwait`.
mod signal_hook_lite {
    use std::time::Duration;

    use nix::sys::signal::{SigSet, Signal};

    pub(crate) struct Signals {
        set: SigSet,
    }

    impl Signals {
        pub(crate) fn new() -> nix::Result<Signals> {
            let mut set = SigSet::empty();
            for s in [
                Signal::SIGTERM,
                Signal::SIGINT,
                Signal::SIGHUP,
                Signal::SIGCHLD,
            ] {
                set.add(s);
            }
            set.thread_block()?;
            Ok(Signals { set })
        }

        /// The next signal, or None after `timeout`.
        pub(crate) fn wait(&self, timeout: Duration) -> Option<i32> {
            crate::sys::sigtimedwait(&self.set, timeout)
        }
    }
}
