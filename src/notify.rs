//! Telling the service manager how a daemon is doing (`sd_notify(3)`):
//! `READY=1` once it serves, `STATUS=` lines for `systemctl status`,
//! `RELOADING=1` (with `MONOTONIC_USEC`, as `Type=notify-reload` requires)
//! and `READY=1` again around a reload, `STOPPING=1` on the way out, and
//! `WATCHDOG=1` at half of `WatchdogSec` when systemd asks for it.
//!
//! Only the process systemd started (the main PID) is listened to, so
//! these go to `$NOTIFY_SOCKET` when it is set, and nowhere otherwise:
//! without it every function here does nothing. Both kinds of socket
//! address are understood (a path, or `@name` for the abstract namespace).
//! The socket is created on first use; nothing is opened by path, so a
//! Landlock ruleset applied after start does not stand in the way.
//!
//! [`reload`] holds what the daemons share for reloading in place on
//! SIGHUP.
//!
//! SECURITY: only writes, to a socket named by our own environment; reads
//! nothing.

pub(crate) mod reload;

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

/// How often a `STATUS=` line that follows a value may change.
pub(crate) const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Whether there is a service manager to tell (`$NOTIFY_SOCKET` is set).
pub(crate) fn enabled() -> bool {
    target().is_some()
}

/// `READY=1`: the daemon serves (at start, and after a reload).
pub(crate) fn ready() {
    send(&[NotifyState::Ready]);
}

/// `RELOADING=1` with `MONOTONIC_USEC=`: a reload has begun; `READY=1`
/// ends it.
pub(crate) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(e) => {
            log::warn!("sd_notify: no monotonic clock: {e}");
            send(&[NotifyState::Reloading]);
        }
    }
}

/// `STATUS=text`, shown by `systemctl status`.
pub(crate) fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// `STOPPING=1`: the daemon is on its way out.
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Run `work` until it ends, or until SIGTERM: then `STOPPING=1`, a log
/// line, and `Ok` (the daemons whose work in flight needs no draining).
pub(crate) async fn until_terminated(
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = work => r,
        _ = term.recv() => {
            stopping();
            log::info!("terminating on signal");
            Ok(())
        }
    }
}

/// `WATCHDOG=1`: still alive.
pub(crate) fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`, for this
/// process), when there is a service manager to tell.
pub(crate) fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero() && enabled())
}

/// When systemd asks for a watchdog, send `WATCHDOG=1` at half its
/// interval from a task on the current tokio runtime, which stops with
/// the runtime (that is, with the daemon). Must be called inside the
/// runtime.
pub(crate) fn spawn_watchdog() {
    let Some(interval) = watchdog_interval() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            watchdog();
        }
    });
}

/// A `STATUS=` line that follows `values`: sent when the text changes, at
/// most once per [`STATUS_EVERY`], until the sender goes. Nothing is spawned
/// without a service manager. Must be called inside a tokio runtime.
pub(crate) fn spawn_status<T, F>(mut values: watch::Receiver<T>, text: F)
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> String + Send + 'static,
{
    if !enabled() {
        return;
    }
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            let line = text(&values.borrow_and_update());
            if line != last {
                status(&line);
                last = line;
            }
            tokio::time::sleep(STATUS_EVERY).await;
            if values.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Where notifications go: read once from the environment (which the
/// daemons never change).
fn target() -> Option<&'static SocketAddr> {
    static TARGET: OnceLock<Option<SocketAddr>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let value = std::env::var_os("NOTIFY_SOCKET")?;
            match socket_address(&value) {
                Ok(addr) => Some(addr),
                Err(e) => {
                    log::warn!("sd_notify: NOTIFY_SOCKET={value:?} is unusable: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// `NOTIFY_SOCKET`'s value as an address: `@name` is in the abstract
/// namespace, anything else a path.
fn socket_address(value: &OsStr) -> io::Result<SocketAddr> {
    match value.as_bytes() {
        [] => Err(io::Error::new(io::ErrorKind::InvalidInput, "empty")),
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name),
        _ => SocketAddr::from_pathname(value),
    }
}

/// The datagram for `states`: one `KEY=VALUE` line each.
fn message(states: &[NotifyState]) -> String {
    states.iter().map(|s| format!("{s}\n")).collect()
}

fn send(states: &[NotifyState]) {
    let Some(addr) = target() else {
        return;
    };
    if let Err(e) = send_to(addr, message(states).as_bytes()) {
        // Said once: a manager that went away is not news every second.
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            log::warn!("sd_notify: cannot notify the service manager: {e}");
        }
    }
}

fn send_to(addr: &SocketAddr, message: &[u8]) -> io::Result<()> {
    static SOCKET: OnceLock<io::Result<UnixDatagram>> = OnceLock::new();
    let socket = match SOCKET.get_or_init(UnixDatagram::unbound) {
        Ok(s) => s,
        Err(e) => return Err(io::Error::new(e.kind(), e.to_string())),
    };
    let sent = socket.send_to_addr(message, addr)?;
    if sent != message.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "datagram cut short",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lines() {
        assert_eq!(message(&[NotifyState::Ready]), "READY=1\n");
        assert_eq!(
            message(&[NotifyState::Reloading, NotifyState::MonotonicUsec(42)]),
            "RELOADING=1\nMONOTONIC_USEC=42\n"
        );
        assert_eq!(
            message(&[NotifyState::Status("smtpd: 2 sessions")]),
            "STATUS=smtpd: 2 sessions\n"
        );
    }

    #[test]
    fn path_and_abstract_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let addr = socket_address(path.as_os_str()).unwrap();
        send_to(&addr, b"READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");

        let name = format!("postern-notify-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let addr = socket_address(OsStr::new(&format!("@{name}"))).unwrap();
        assert_eq!(addr.as_abstract_name(), Some(name.as_bytes()));
        send_to(&addr, b"STOPPING=1\n").unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\n");

        assert!(socket_address(OsStr::new("")).is_err());
    }

    #[test]
    fn without_a_socket_nothing_happens() {
        // The test runner has no NOTIFY_SOCKET (systemd never starts it).
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            assert!(!enabled());
            assert_eq!(watchdog_interval(), None);
            ready();
            reloading();
            status("x");
            stopping();
        }
    }
}
