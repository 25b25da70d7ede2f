//! The client side of qmgr's sockets (Postfix's `*_clnt.c`): what smtpd,
//! `postern queue`, `mailq`, `postern status` and the queue salvage send
//! to qmgr, one request a connection (a wake-up on a kept connection), in
//! the line format of [`crate::ipc`].

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use super::names::{QMGR_SOCKET, SHOWQ_SOCKET};
use super::{QmgrRequest, QmgrStatus, QueueAction, QueueEntry, QueueOpResult, ShownMessage};

/// [`QmgrRequest::Wake`] as a line.
const WAKE: &[u8] = b"{\"op\":\"wake\"}\n";

/// The queue counts (`postern status`).
pub(crate) fn status(run_dir: &Path) -> anyhow::Result<QmgrStatus> {
    ask(&run_dir.join(QMGR_SOCKET), &QmgrRequest::Status)
}

/// The queue's contents (`mailq`), on the world-connectable socket.
pub fn list(run_dir: &Path) -> anyhow::Result<Vec<QueueEntry>> {
    ask(&run_dir.join(SHOWQ_SOCKET), &QmgrRequest::List)
}

/// One message (`postern queue show`); `None` when there is no such
/// message.
pub(crate) fn show(run_dir: &Path, id: &str) -> anyhow::Result<Option<ShownMessage>> {
    let request = QmgrRequest::Show { id: id.to_string() };
    ask(&run_dir.join(QMGR_SOCKET), &request)
}

/// hold, release, delete or requeue the messages `ids` (`ALL`: every one).
pub(crate) fn queue_op(
    run_dir: &Path,
    action: QueueAction,
    ids: Vec<String>,
) -> anyhow::Result<QueueOpResult> {
    ask(
        &run_dir.join(QMGR_SOCKET),
        &QmgrRequest::Queue { action, ids },
    )
}

/// Tell qmgr to read `incoming/` now, once; if it does not answer it reads
/// it at its next scan or start.
pub fn wake(run_dir: &Path) {
    if let Ok(mut s) = UnixStream::connect(run_dir.join(QMGR_SOCKET)) {
        let _ = s.write_all(WAKE);
    }
}

/// smtpd's wake-ups: each time `notify` fires (new records are durable),
/// tell qmgr on one kept connection; wake-ups that arrive while one is
/// being sent are coalesced into the next. If qmgr is down, its scan at
/// start finds the records.
pub(crate) async fn wake_on(run_dir: &Path, notify: Arc<Notify>) {
    let path: PathBuf = run_dir.join(QMGR_SOCKET);
    let mut conn: Option<tokio::net::UnixStream> = None;
    loop {
        notify.notified().await;
        for _attempt in 0..2 {
            if conn.is_none() {
                conn = tokio::net::UnixStream::connect(&path).await.ok();
            }
            let sent = match conn.as_mut() {
                Some(c) => c.write_all(WAKE).await.is_ok(),
                None => false,
            };
            if sent {
                break;
            }
            conn = None;
        }
    }
}

/// How often smtpd sends its metrics' counts to qmgr.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// smtpd's metrics: every [`REPORT_EVERY`], what it counted since (when
/// anything) as one `counters` line on a kept connection. Counts that
/// cannot be sent (qmgr restarting) are kept for the next attempt.
pub(crate) async fn report_counts(run_dir: &Path) {
    use crate::metrics::registry::sink;
    let path: PathBuf = run_dir.join(QMGR_SOCKET);
    let mut conn: Option<tokio::net::UnixStream> = None;
    let mut every = tokio::time::interval(REPORT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let counts = sink::take();
        // A new connection says who this is first (qmgr counts the
        // restarts it hears of), even with nothing counted.
        if counts.is_empty() && conn.is_some() {
            continue;
        }
        let started = conn.is_none().then(crate::role::me).flatten();
        let request = QmgrRequest::Counters { counts, started };
        let Ok(mut line) = serde_json::to_vec(&request) else {
            continue;
        };
        line.push(b'\n');
        if conn.is_none() {
            conn = tokio::net::UnixStream::connect(&path).await.ok();
        }
        let sent = match conn.as_mut() {
            Some(c) => c.write_all(&line).await.is_ok(),
            None => false,
        };
        if !sent {
            conn = None;
            if let QmgrRequest::Counters { counts, .. } = request {
                sink::give_back(counts);
            }
        }
    }
}

/// One request on one of qmgr's sockets, one answer.
fn ask<T: serde::de::DeserializeOwned>(path: &Path, req: &QmgrRequest) -> anyhow::Result<T> {
    let mut s = UnixStream::connect(path).with_context(|| {
        format!(
            "cannot reach qmgr at {} (is postern running?)",
            path.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    Ok(serde_json::from_str(&answer)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wake_line_is_the_request() {
        let line = serde_json::to_vec(&QmgrRequest::Wake).unwrap();
        assert_eq!([line.as_slice(), b"\n"].concat(), WAKE);
    }
}
