//! metrics — the Prometheus endpoint (issue 23).
//!
//! SECURITY: runs as the unprivileged postern user with no capabilities,
//! confined by Landlock to reading nothing but its configuration and the
//! system's files every role reads, connecting to nothing but the Unix
//! sockets of the run directory, and no TCP at all (its listeners are
//! handed to it; see [`crate::sandbox::Profile::metrics`]). It never sees
//! the queue: on each scrape it asks qmgr for the whole exposition on
//! qmgr's `metrics` socket (`metrics.sock`, 0600), which answers that one
//! request and nothing else. What it reads from the network is a request
//! head, parsed by the sans-IO [`http::parse`] (fuzzed), bounded to
//! [`http::MAX_HEAD`] bytes (431 past it) and to `metrics.timeout` (the
//! connection is closed), one request per connection, at most
//! [`MAX_CONNECTIONS`] at once (503 past it).
//!
//! What it does: serves `GET /metrics` (the text exposition, format 0.0.4)
//! on the TCP listeners it is handed as `http` (`metrics.listen`; under
//! systemd `postern-metrics.socket`, written by postern-generator from
//! the key). Other paths: 404; other methods: 405.
//!
//! Where the numbers come from: qmgr owns them ([`registry`]). qmgr counts
//! its own (deliveries by transport and status, delivery delay, its state
//! log's group commits), computes the queue's gauges on each scrape, and
//! adds what the other roles send it: smtpd counts sessions, replies,
//! accepted messages, restriction hits, DNSBL answers, TLS handshakes and
//! its queue log's group commits into its process's [`registry::sink`] and
//! sends them to qmgr once a second (a `counters` line on qmgr's control
//! socket, only when something was counted); the smtp agent counts its
//! outbound TLS handshakes and sends them with its answers; the
//! supervisor writes its restarts into its status file, which qmgr reads,
//! and without a supervisor (systemd) qmgr counts as restarts the new
//! processes the roles announce ([`crate::ipc::Started`]). Counters survive a
//! restart of the role that counts them (qmgr keeps the sum) and start
//! from zero when qmgr restarts, as Prometheus expects of counters.
//!
//! Configuration read: `metrics.listen`, `metrics.timeout`,
//! `server.run_directory`.

pub mod http;
pub mod registry;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::notify::{self, reload::Reload};
use http::{Head, Route};

/// Connections served at once; more get 503 at once.
pub const MAX_CONNECTIONS: usize = 16;

/// Run the endpoint on the listeners named `http`.
pub(crate) async fn run(
    config: Arc<Config>,
    fds: Vec<(String, OwnedFd)>,
    mut reload: Reload,
) -> anyhow::Result<()> {
    let socket = config
        .server
        .run_directory
        .join(crate::ipc::names::METRICS_SOCKET);
    let timeout = Arc::new(std::sync::atomic::AtomicU64::new(
        config.metrics.timeout.as_millis() as u64,
    ));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut served = 0;
    for (name, fd) in fds {
        if name != "http" {
            log::warn!("ignoring the socket {name:?} (metrics serves \"http\" only)");
            continue;
        }
        let l = std::net::TcpListener::from(fd);
        l.set_nonblocking(true)?;
        let l = TcpListener::from_std(l)?;
        if let Ok(a) = l.local_addr() {
            log::info!("serving /metrics on {a}");
        }
        tokio::spawn(accept_loop(
            l,
            socket.clone(),
            timeout.clone(),
            slots.clone(),
        ));
        served += 1;
    }
    if served == 0 {
        return Err(crate::ipc::Unrecoverable(
            "metrics: no listener was handed over as \"http\" (metrics.listen)".into(),
        )
        .into());
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    notify::ready();
    let mut current = config;
    loop {
        tokio::select! {
            _ = reload.requested() => {
                if let Some(new) = reload.load(&current) {
                    timeout.store(new.metrics.timeout.as_millis() as u64,
                        std::sync::atomic::Ordering::Relaxed);
                    current = Arc::new(new);
                }
                notify::ready();
            }
            _ = term.recv() => {
                notify::stopping();
                log::info!("terminating on signal");
                return Ok(());
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    socket: PathBuf,
    timeout: Arc<std::sync::atomic::AtomicU64>,
    slots: Arc<Semaphore>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let busy = http::response(503, &[("Retry-After", "1")], "busy\n");
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&busy)).await;
            });
            continue;
        };
        let socket = socket.clone();
        let limit = Duration::from_millis(timeout.load(std::sync::atomic::Ordering::Relaxed));
        tokio::spawn(async move {
            serve(stream, &socket, limit).await;
            drop(permit);
        });
    }
}

/// What a connection's request came to.
enum Asked {
    Route(Route),
    TooLarge,
    Bad,
    /// The client closed or broke the connection.
    Gone,
}

/// One connection: one request head within `limit`, one response.
async fn serve(mut stream: TcpStream, socket: &Path, limit: Duration) {
    let asked = tokio::time::timeout(limit, async {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 2048];
        loop {
            match http::parse(&buf) {
                Head::Incomplete => {}
                Head::Request { method, path } => return Asked::Route(http::route(method, path)),
                Head::TooLarge => return Asked::TooLarge,
                Head::Bad => return Asked::Bad,
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Asked::Gone,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let response = match asked {
        // Timed out, or gone: closed without a word.
        Err(_) | Ok(Asked::Gone) => return,
        Ok(Asked::Route(Route::Metrics)) => match exposition(socket).await {
            Ok(text) => http::response(200, &[("Content-Type", http::EXPOSITION)], &text),
            Err(e) => {
                log::warn!("cannot ask qmgr for the metrics: {e:#}");
                http::response(503, &[], "qmgr does not answer\n")
            }
        },
        Ok(Asked::Route(Route::NotFound)) => http::response(404, &[], "not found; try /metrics\n"),
        Ok(Asked::Route(Route::NotAllowed)) => {
            http::response(405, &[("Allow", "GET")], "method not allowed\n")
        }
        Ok(Asked::TooLarge) => http::response(431, &[], "request head too large\n"),
        Ok(Asked::Bad) => http::response(400, &[], "bad request\n"),
    };
    let _ = tokio::time::timeout(limit, async {
        let _ = stream.write_all(&response).await;
        let _ = stream.shutdown().await;
    })
    .await;
    // What the client still sends (the rest of a head too large) is read
    // and dropped for a moment: closing with unread input would reset the
    // connection, and the client might lose the response.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// The whole exposition, from qmgr's metrics socket.
async fn exposition(socket: &Path) -> anyhow::Result<String> {
    let ask = async {
        let mut s = UnixStream::connect(socket)
            .await
            .with_context(|| format!("cannot connect to {}", socket.display()))?;
        let request = crate::ipc::QmgrRequest::Metrics {
            started: crate::role::me(),
        };
        let mut line = serde_json::to_vec(&request)?;
        line.push(b'\n');
        s.write_all(&line).await?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).await?;
        let text: String = serde_json::from_str(&line).context("qmgr's answer")?;
        anyhow::Ok(text)
    };
    tokio::time::timeout(Duration::from_secs(10), ask)
        .await
        .context("qmgr took more than 10 s")?
}
