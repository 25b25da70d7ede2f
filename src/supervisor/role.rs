//! A role's side of the supervisor: `postern daemon ROLE` runs one role
//! in this process, and dies with the supervisor that started it.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};

use crate::config::Config;
use crate::ipc::Unrecoverable;
use crate::ipc::names::SUPERVISOR_ENV;
use crate::notify::reload::Reload;
use crate::role::Role;

/// Run one role in this process (`postern daemon ROLE`). `path` is where
/// `config` was read from (`--config`; `None`: the default), read again on
/// SIGHUP to reload in place.
pub fn run_role(
    role: Role,
    config: Config,
    path: Option<PathBuf>,
    fds: Vec<(String, OwnedFd)>,
) -> anyhow::Result<()> {
    follow_supervisor()?;
    crate::role::note_start(role);
    let config = Arc::new(config);
    let runtime = runtime(role)?;
    let result = runtime.block_on(async move {
        // SIGHUP reloads from now on (before READY=1).
        let reload = Reload::new(path).context("cannot handle SIGHUP")?;
        crate::notify::spawn_watchdog();
        match role {
            Role::Smtpd => crate::smtpd::run(config, fds, reload).await,
            Role::Metrics => crate::metrics::run(config, fds, reload).await,
            Role::Qmgr => {
                let mut fds = fds;
                let mut take = |name: &str| {
                    fds.iter()
                        .position(|(n, _)| n == name)
                        .map(|i| UnixListener::from(fds.remove(i).1))
                };
                let showq = take("showq");
                let metrics = take("metrics");
                let side = crate::ipc::QmgrSide { showq, metrics };
                crate::qmgr::run(config, unix_listener(fds, "qmgr")?, side, reload).await
            }
            Role::Local => crate::local::run(config, unix_listener(fds, "local")?, reload).await,
            Role::Smtp => {
                crate::smtp::run(config, unix_listener(fds, "smtp-client")?, reload).await
            }
        }
    });
    if let Err(e) = &result {
        log::error!("{e:#}");
    }
    result
}

/// The role's runtime. qmgr, local and the metrics endpoint run on one
/// thread: their work is many small steps (a record, a job, a result),
/// and on two worker threads every step woke the other thread through a
/// futex and the event loop's eventfd (qmgr: 6 futex calls and 4
/// `epoll_wait`s per message; issue 22). Their blocking work goes to the
/// blocking pool as before. smtpd (sessions, TLS handshakes) and smtp
/// (outbound sessions) keep two worker threads.
fn runtime(role: Role) -> std::io::Result<tokio::runtime::Runtime> {
    match role {
        Role::Qmgr | Role::Local | Role::Metrics => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Role::Smtpd | Role::Smtp => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
}

/// A role started by `postern start` dies with it: the parent-death
/// signal (SIGTERM: the role stops gracefully) is set here, after the
/// sandbox changed the user (a change of credentials clears it, so it
/// cannot be set before the exec), and a watcher thread notices a changed
/// parent anyway (the signal follows the thread that forked, and a parent
/// gone between fork and now was missed): it asks the role to stop, and
/// ends the process if it has not stopped 15 s later. Without the
/// variable (systemd, a shell) nothing is done: the role's lifetime is
/// its service manager's business.
fn follow_supervisor() -> anyhow::Result<()> {
    let Some(expected) = std::env::var(SUPERVISOR_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return Ok(());
    };
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .context("cannot set the parent-death signal")?;
    if nix::unistd::getppid().as_raw() != expected {
        return Err(Unrecoverable(format!(
            "the supervisor (pid {expected}) is gone; not starting"
        ))
        .into());
    }
    std::thread::Builder::new()
        .name("supervisor-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                if nix::unistd::getppid().as_raw() != expected {
                    break;
                }
            }
            log::error!("the supervisor (pid {expected}) is gone; stopping");
            let _ = kill(nix::unistd::getpid(), Signal::SIGTERM);
            std::thread::sleep(Duration::from_secs(15));
            log::error!("did not stop within 15 s of the supervisor's end; exiting");
            std::process::exit(75);
        })
        .context("cannot start the supervisor watcher")?;
    Ok(())
}

fn unix_listener(fds: Vec<(String, OwnedFd)>, name: &str) -> anyhow::Result<UnixListener> {
    fds.into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, fd)| UnixListener::from(fd))
        .with_context(|| format!("no socket named {name:?} was handed over (LISTEN_FDNAMES)"))
}
