//! qmgr — the queue manager.
//!
//! SECURITY: runs as the unprivileged postern user with no capabilities
//! (switching to it itself when started as root), confined by Landlock to
//! writing the queue and forbidden TCP (see [`crate::sandbox`]).
//! It trusts the queue's framing only as far as the checksums go: records
//! are parsed, never executed, and a bad record is skipped with a warning.
//! It writes only the queue directory. Its control socket is 0600.
//!
//! What it does: owns the queue. It reads the segments smtpd appends to
//! `queue/incoming/` (woken by smtpd through the `qmgr` socket after each
//! group commit, and by a scan at start and every few seconds), keeps the
//! state of the messages in its active window in memory (at most
//! `queue.active_limit`; the rest waits on disk: segments not read yet,
//! and deferred messages evicted to `queue/deferred/` files with their
//! state, in the background, a batch at a time (a message deferred again
//! gets a Snapshot record appended to its file), taken back by a scan of
//! that directory every `queue.run_delay` as their next attempt comes, or
//! by `postern flush`; both are counted in `postern status` and the
//! metrics, listed, held, released and deleted like the others; see
//! `engine/evict.rs`), routes each recipient ([`route`]:
//! the transport table, then local domains, then virtual mailbox
//! domains, then the relay host or the recipient domain's MX hosts;
//! `lmtp:` next hops go to the smtp agent too), hands it to the delivery agent that route
//! names (`local` socket: one recipient per request; `smtp-client` socket:
//! one message's recipients for one next hop per request; one JSON request
//! per line), bounces (`error:`) or drops (`discard:`) it itself when the
//! transport table says so; when local passes mailboxes on
//! (`local.mailbox_transport`), it hands them to the smtp agent in LMTP
//! mode and records the recipient's outcome only with that answer (the
//! recipient stays active meanwhile, nothing recorded); it records every
//! outcome in its own state log (`queue/state/`, group committed) before
//! acting on it, defers with back-off (the next attempt after the message's
//! age, clamped to `queue.minimal_backoff` … `queue.maximal_backoff`, as
//! Postfix), expires messages older than `queue.maximal_lifetime`, moves
//! messages deferred longer than `queue.move_deferred_after` to
//! `queue/deferred/` files of their own, and deletes a segment when every
//! message in it is finished.
//!
//! Dead destinations (issue 22, Postfix's `qmgr_queue_throttle`): when the
//! smtp agent reports that a delivery got no session with its next hop at
//! all (`ipc::HopStatus::Unreachable`: every address refused, unreachable
//! or timed out, no greeting or a refusing one), that next hop (transport
//! and next hop, the key of the per-destination limit) is marked dead for
//! `queue.minimal_backoff`, after one such failure with no session in
//! between (Postfix waits for a failed cohort of its initial concurrency).
//! Meanwhile its recipients that come due, are parked or arrive are
//! deferred at once, without a connection, with `delivery temporarily
//! suspended: REASON` and the failure's code, retried after the usual
//! back-off; deliveries in flight finish. A delivery that reports a
//! session, the retry time, or `postern flush` (not `queue requeue ID`)
//! clears the mark. Logged once each: `destination smtp:[HOST]:PORT is
//! dead for 300s (queue.minimal_backoff): REASON; …` and `destination … is
//! alive again: WHY`; the gauge `postern_dead_destinations` counts them.
//! The marks are not kept across a restart.
//!
//! Recovery at start replays the segments, the state log and the
//! `deferred/` files it has news of (the others stay on disk, counted);
//! a torn tail is detected by its checksum and ignored; then the state log
//! is compacted into a snapshot. A crash at any moment loses no message
//! that got a `250`; a recipient may at worst be delivered twice
//! (delivered, crash before the outcome was committed), never zero times.
//!
//! Damage (issue 14): the reader passes over damaged records and goes on
//! with the next valid one, so a damaged segment costs the messages whose
//! records were hit; every skipped range is logged with its file and
//! offsets, and so is an incomplete record at the end of a segment whose
//! writer is gone (sealed, a newer segment, or no lock held: see
//! [`crate::queue::log`]). A damaged segment is kept in `corrupt/` with
//! `<name>.done` (the messages read from it) once they are finished.
//! Damage to the state log holds every message whose state it may have
//! held (`qmgr/damage.rs`) rather than deliver it again, and the damaged state
//! file is kept in `corrupt/`.
//!
//! Inputs: the `qmgr` listener (LISTEN_FDS): `{"op":"wake"}` and
//! `{"op":"status"}` lines, and smtpd's metrics counts
//! (`{"op":"counters",…}`, once a second, the first of a connection with
//! smtpd's process: qmgr counts a new one as a restart where no supervisor
//! does); the `metrics` listener
//! (`metrics.sock`, 0600): `{"op":"metrics"}` only, answered with the
//! Prometheus exposition ([`crate::metrics`]; qmgr keeps the counts); the transport files (read again when they
//! change, checked at most once a second). Outputs: requests on
//! `<run_directory>/local.sock` (`LOCAL_SLOTS` connections) and
//! `<run_directory>/smtp.sock` (`SMTP_SLOTS` connections, at most
//! `smtp.destination_concurrency_limit` requests per next hop in flight);
//! state records; log lines `ID: from=<…>, size=N, nrcpt=N (queue
//! active)`, `ID: removed`, and `ID: to=<…>, relay=none, …` for the
//! outcomes qmgr decides itself (transport table `error:` and `discard:`,
//! an unusable table, a lost smtp agent); the agents log their own.
//! Warnings for damage: `FILE: skipped N bytes at offset A..B (why); at
//! least K messages lost; damaged records say: …`, `FILE: incomplete
//! record at offset A, N bytes to the end of the file: …`, `ID: hold:
//! state log damaged (FILE offset A..B), delivery status unknown`.
//!
//! Administration (the same socket, `postern queue …`): hold, release,
//! delete and requeue messages, as postsuper; hold, release and delete are
//! recorded in the state log, so they survive a restart.
//!
//! Service manager (see [`crate::notify`]): `READY=1` once the queue is
//! recovered and the control sockets served, `STATUS=active 3, deferred
//! 120 (oldest 2h), hold 0, 41 msg/min in, 40 out` (messages per queue as
//! `mailq` names them, messages taken in and recipients delivered over the
//! last minute; at most every 2 s), `STOPPING=1` on SIGTERM. SIGHUP
//! reloads the configuration file in place: back-off, lifetimes,
//! notifications, routing (local domains, relay host, transport table,
//! per-destination limits) and the mailq users change from the next
//! decision on; deliveries in flight and times already set stay; an
//! invalid file is refused and the running configuration kept.
//!
//! Configuration read: `queue.*`, `local.domains`,
//! `local.recipient_delimiter`, `relay.host`, `relay.transport`,
//! `relay.transport_files`, `virtual.mailbox_domains`, `virtual.transport`,
//! `smtp.destination_concurrency_limit`,
//! `smtp.destination_recipient_limit`, `server.run_directory`.

mod agents;
mod damage;
#[cfg(test)]
mod damage_tests;
mod engine;
mod error;
#[cfg(test)]
mod evict_tests;
#[cfg(test)]
mod outbound_tests;
#[cfg(test)]
mod recovery_tests;
pub mod route;
pub(crate) mod state;

use std::os::unix::net::UnixListener as StdUnixListener;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::ipc::{self, QmgrRequest, QmgrStatus, QueueAction, QueueOpResult};
use crate::notify::{self, reload::Reload};
use crate::queue::log::{LogOptions, LogWriter};
use crate::queue::{IdGenerator, STATE, now_micros};
use agents::SlotReport;
use engine::Engine;
use error::QmgrError;

/// Parallel deliveries to the local agent.
const LOCAL_SLOTS: usize = 16;
/// Requests in flight to the smtp agent, over all destinations (each one
/// connection to `smtp.sock`; the agent works on them at once). Postfix's
/// `default_process_limit`, which caps its smtp processes, is 100 too.
/// Per next hop, qmgr keeps at most `smtp.destination_concurrency_limit`
/// of them in flight (20 by default), so one slow or dead destination
/// holds a fifth of the slots at most and the others keep moving.
const SMTP_SLOTS: usize = 100;
/// Fallback scan of `incoming/` when no wake-up came.
const SCAN_EVERY: Duration = Duration::from_secs(5);
/// How often the main loop looks whether an eviction batch is written.
const EVICTION_POLL: Duration = Duration::from_millis(10);
/// How long a starting qmgr waits for the queue's previous owner to
/// finish stopping before it gives up (see [`crate::queue::owner`]).
const OWNER_PATIENCE: Duration = Duration::from_secs(3);
/// How often the `STATUS=` line (queue counts) may change.
const STATUS_EVERY: Duration = Duration::from_secs(2);

enum Event {
    Wake,
    Counters(
        crate::metrics::registry::Registry,
        Option<crate::ipc::Started>,
    ),
    Metrics(oneshot::Sender<String>),
    Status(oneshot::Sender<QmgrStatus>),
    Queue(QueueAction, Vec<String>, oneshot::Sender<QueueOpResult>),
    /// The messages in memory, and what reads the rest from disk.
    List(oneshot::Sender<(Vec<crate::ipc::QueueEntry>, engine::EvictedListing)>),
    Show(String, oneshot::Sender<Option<crate::ipc::ShownMessage>>),
}

pub(crate) use crate::ipc::QmgrSide as Side;

/// `listener` is the control socket (`qmgr`, 0600); `side` the others.
/// SIGHUP reloads the configuration for the next queue run (see
/// [`Reload`]).
pub(crate) async fn run(
    config: Arc<Config>,
    listener: StdUnixListener,
    side: Side,
    reload: Reload,
) -> anyhow::Result<()> {
    run_queue(config, listener, side, reload)
        .await
        .map_err(QmgrError::into_anyhow)
}

/// [`run`], its errors sorted by blame.
async fn run_queue(
    config: Arc<Config>,
    listener: StdUnixListener,
    side: Side,
    reload: Reload,
) -> Result<(), QmgrError> {
    crate::metrics::registry::sink::enable(!config.metrics.listen.is_empty());
    // One queue manager per queue, before anything is read.
    let _owner = crate::queue::owner::lock(&config.queue.directory, OWNER_PATIENCE)
        .map_err(|e| QmgrError::Owned(e.to_string()))?;
    listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(listener)?;
    let (report_tx, mut reports) = mpsc::unbounded_channel::<SlotReport>();
    let (mut engine, log, notices) = start_engine(&config, report_tx).await?;

    let (event_tx, events) = mpsc::unbounded_channel::<Event>();
    // The configuration in effect, for the showq socket's users.
    let (current, config_rx) = watch::channel(config);
    if let Some(showq) = side.showq {
        showq.set_nonblocking(true)?;
        tokio::spawn(control_loop(
            UnixListener::from_std(showq)?,
            event_tx.clone(),
            Mode::Showq(config_rx),
        ));
    }
    if let Some(metrics) = side.metrics {
        metrics.set_nonblocking(true)?;
        tokio::spawn(control_loop(
            UnixListener::from_std(metrics)?,
            event_tx.clone(),
            Mode::Metrics,
        ));
    }
    tokio::spawn(control_loop(listener, event_tx, Mode::Control));
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    notify::ready();

    let inputs = Inputs {
        events,
        term,
        reload,
        current,
    };
    serve(&mut engine, &mut reports, inputs).await;
    // Let deliveries in progress report, briefly, so their outcomes are
    // recorded rather than repeated after the restart.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while engine.busy() {
        match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Some(r)) => engine.complete(vec![r], Vec::new()).await,
            _ => break,
        }
    }
    engine.settle_eviction().await;
    engine.flush_removals().await;
    let _ = log.shutdown().await;
    let _ = notices.shutdown().await;
    Ok(())
}

/// The state log, the agents' slots (reporting on `report_tx`), the
/// writer of qmgr's own segments, and the engine recovered from the
/// queue; the state log and that writer are returned for the shutdown.
async fn start_engine(
    config: &Arc<Config>,
    report_tx: mpsc::UnboundedSender<SlotReport>,
) -> Result<(Engine, LogWriter, LogWriter), QmgrError> {
    let state_dir = config.queue.directory.join(STATE);
    let ids = Arc::new(IdGenerator::new('Q'));
    let log = LogWriter::start(
        state_dir.clone(),
        LogOptions {
            max_segment_bytes: u64::MAX,
            seal_after_idle: None,
            metrics: Some("state"),
            ..LogOptions::new("", move || ids.next().to_string())
        },
    )
    .map_err(|source| QmgrError::Open {
        what: "the state log",
        dir: state_dir.clone(),
        source,
    })?;

    let run_dir = &config.server.run_directory;
    let slots = agents::start_slots(
        LOCAL_SLOTS,
        run_dir.join(crate::ipc::names::LOCAL_SOCKET),
        report_tx.clone(),
    );
    let smtp_slots = agents::start_slots(
        SMTP_SLOTS,
        run_dir.join(crate::ipc::names::SMTP_SOCKET),
        report_tx,
    );
    let incoming = config.queue.directory.join(crate::queue::INCOMING);
    let segment_ids = Arc::new(IdGenerator::new('B'));
    let notices = LogWriter::start(
        incoming.clone(),
        LogOptions {
            seal_after_idle: Some(Duration::from_secs(30)),
            ..LogOptions::new("B", move || segment_ids.next().to_string())
        },
    )
    .map_err(|source| QmgrError::Open {
        what: "the queue",
        dir: incoming.clone(),
        source,
    })?;
    let mut engine = Engine::new(
        config.clone(),
        log.clone(),
        notices.clone(),
        slots,
        smtp_slots,
    );
    engine.recover().await?;
    Ok((engine, log, notices))
}

/// What the main loop listens to besides the agents' reports.
struct Inputs {
    events: mpsc::UnboundedReceiver<Event>,
    term: tokio::signal::unix::Signal,
    reload: Reload,
    /// The configuration in effect, replaced on reload.
    current: watch::Sender<Arc<Config>>,
}

/// The main loop, until SIGTERM or the control sockets are gone: remove,
/// move, dispatch, record, then wait for an event, a report, a retry or
/// the next scan of `incoming/`.
async fn serve(
    engine: &mut Engine,
    reports: &mut mpsc::UnboundedReceiver<SlotReport>,
    mut inputs: Inputs,
) {
    let mut last_scan = tokio::time::Instant::now();
    let mut none = std::collections::HashMap::new();
    // An event taken while coalescing wake-ups, handled next.
    let mut stash: Option<Event> = None;
    let mut status = Status::default();
    loop {
        status.maybe_send(engine);
        // Files of finished messages go once their outcomes are durable.
        engine.flush_removals().await;
        // Before dispatch: a message whose retry is due is not active yet,
        // so a long-deferred one can move to deferred/ now.
        engine.maybe_move_deferred().await;
        // The active window: evict, take in, flush, scan deferred/.
        engine.poll_eviction().await;
        engine.window().await;
        engine.dispatch();
        let decided = engine.take_decided();
        if !decided.is_empty() {
            engine.complete(Vec::new(), decided).await;
            continue;
        }
        engine.maybe_compact().await;
        engine.release_memory();
        let mut wait = SCAN_EVERY.saturating_sub(last_scan.elapsed());
        if let Some(t) = engine.next_timer() {
            wait = wait.min(Duration::from_micros(t.saturating_sub(now_micros())));
        }
        if engine.evicting() {
            // Its files are written in a blocking thread: look again soon.
            wait = wait.min(EVICTION_POLL);
        }
        tokio::select! {
            ev = next_event(&mut stash, &mut inputs.events) => match ev {
                Some(Event::Wake) => {
                    // Not a full scan: that one still comes every
                    // SCAN_EVERY.
                    stash = coalesce_wakes(&mut inputs.events);
                    engine.scan_incoming_woken();
                }
                Some(Event::Status(tx)) => { let _ = tx.send(engine.status()); }
                Some(Event::Counters(counts, started)) => engine.add_counts(counts, started),
                Some(Event::Metrics(tx)) => { let _ = tx.send(engine.exposition()); }
                Some(Event::List(tx)) => {
                    engine.settle_eviction().await;
                    let _ = tx.send(engine.listing_parts());
                }
                Some(Event::Show(id, tx)) => {
                    engine.settle_eviction().await;
                    let _ = tx.send(engine.show(&id));
                }
                Some(Event::Queue(action, ids, tx)) => {
                    let _ = tx.send(engine.queue_op(action, &ids).await);
                }
                None => break,
            },
            Some(first) = reports.recv() => {
                let mut batch = vec![first];
                while let Ok(more) = reports.try_recv() {
                    batch.push(more);
                }
                engine.complete(batch, Vec::new()).await;
            }
            _ = tokio::time::sleep(wait) => {
                if last_scan.elapsed() >= SCAN_EVERY {
                    engine.scan_incoming(&mut none);
                    last_scan = tokio::time::Instant::now();
                }
            }
            _ = inputs.reload.requested() => {
                let loaded = inputs.reload.load(&inputs.current.borrow());
                if let Some(new) = loaded {
                    let new = Arc::new(new);
                    engine.reconfigure(new.clone());
                    inputs.current.send_replace(new);
                }
                notify::ready();
            }
            _ = inputs.term.recv() => {
                notify::stopping();
                log::info!("terminating on signal");
                break;
            }
        }
    }
}

/// The `STATUS=` line: queue counts, sent when they change, at most every
/// [`STATUS_EVERY`] (counting is a pass over the queue).
#[derive(Default)]
struct Status {
    last: String,
    at: Option<tokio::time::Instant>,
}

impl Status {
    fn maybe_send(&mut self, engine: &Engine) {
        if !notify::enabled() || self.at.is_some_and(|t| t.elapsed() < STATUS_EVERY) {
            return;
        }
        self.at = Some(tokio::time::Instant::now());
        let text = engine.status().summary();
        if text != self.last {
            notify::status(&text);
            self.last = text;
        }
    }
}

/// Which of qmgr's sockets a loop serves.
enum Mode {
    /// `qmgr.sock`: everything.
    Control,
    /// `showq.sock` (with the configuration in effect): listings and
    /// counts only, and only to the users in its
    /// `queue.authorized_mailq_users` (`*` anyone; root always).
    Showq(watch::Receiver<Arc<Config>>),
    /// `metrics.sock`: the exposition only.
    Metrics,
}

/// Serve one of qmgr's sockets, as its [`Mode`] allows.
/// Take the wake-ups queued behind one, so that a burst makes one scan;
/// the first other event taken is returned, to be handled next.
fn coalesce_wakes(events: &mut mpsc::UnboundedReceiver<Event>) -> Option<Event> {
    loop {
        match events.try_recv() {
            Ok(Event::Wake) => {}
            Ok(other) => return Some(other),
            Err(_) => return None,
        }
    }
}

/// The stashed event, else the next one from `events`.
async fn next_event(
    stash: &mut Option<Event>,
    events: &mut mpsc::UnboundedReceiver<Event>,
) -> Option<Event> {
    match stash.take() {
        Some(event) => Some(event),
        None => events.recv().await,
    }
}

async fn control_loop(listener: UnixListener, events: mpsc::UnboundedSender<Event>, mode: Mode) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if let Mode::Showq(config) = &mode {
            let users = config.borrow().queue.authorized_mailq_users.clone();
            let uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
            if uid != 0 && !crate::sys::user_listed(&users, &crate::sys::user_name(uid)) {
                log::warn!("showq: uid {uid} is not in queue.authorized_mailq_users");
                continue;
            }
        }
        let events = events.clone();
        let (showq, metrics) = match &mode {
            Mode::Control => (false, false),
            Mode::Showq(_) => (true, false),
            Mode::Metrics => (false, true),
        };
        tokio::spawn(serve_connection(stream, events, showq, metrics));
    }
}

/// Ask the engine with the event `make` builds, and write its answer as
/// a line; false when the connection is to end.
async fn round_trip<T: serde::Serialize>(
    events: &mpsc::UnboundedSender<Event>,
    wr: &mut tokio::net::unix::OwnedWriteHalf,
    make: impl FnOnce(oneshot::Sender<T>) -> Event,
) -> bool {
    let (tx, rx) = oneshot::channel();
    let _ = events.send(make(tx));
    let Ok(answer) = rx.await else { return false };
    ipc::write_line(wr, &answer).await.is_ok()
}

/// One connection to a qmgr socket: requests in, answers out, only those
/// its socket allows (`showq`: listings and counts; `metrics`: the
/// exposition).
async fn serve_connection(
    stream: tokio::net::UnixStream,
    events: mpsc::UnboundedSender<Event>,
    showq: bool,
    metrics: bool,
) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let request = ipc::read_line::<_, QmgrRequest>(&mut rd).await;
        if showq
            && !matches!(
                request,
                Ok(Some(QmgrRequest::List | QmgrRequest::Status)) | Ok(None)
            )
        {
            log::warn!("showq socket: refused a request that is not a listing");
            return;
        }
        if metrics && !matches!(request, Ok(Some(QmgrRequest::Metrics { .. })) | Ok(None)) {
            log::warn!("metrics socket: refused a request that is not for the metrics");
            return;
        }
        let go_on = match request {
            Ok(Some(QmgrRequest::Wake)) => {
                let _ = events.send(Event::Wake);
                true
            }
            Ok(Some(QmgrRequest::Counters { counts, started })) => {
                let _ = events.send(Event::Counters(counts, started));
                true
            }
            Ok(Some(QmgrRequest::Metrics { started })) => {
                if started.is_some() {
                    let _ = events.send(Event::Counters(Default::default(), started));
                }
                round_trip(&events, &mut wr, Event::Metrics).await
            }
            Ok(Some(QmgrRequest::Status)) => round_trip(&events, &mut wr, Event::Status).await,
            Ok(Some(QmgrRequest::Show { id })) => {
                round_trip(&events, &mut wr, |tx| Event::Show(id, tx)).await
            }
            Ok(Some(QmgrRequest::List)) => {
                let (tx, rx) = oneshot::channel();
                let _ = events.send(Event::List(tx));
                let Ok((entries, rest)) = rx.await else {
                    return;
                };
                let written = engine::write_listing(&mut wr, entries, rest).await;
                // The listing made and dropped an entry per queued
                // message, in the reading threads' arenas too: give
                // that memory back (see `Engine::release_memory`).
                crate::sys::release_free_memory();
                written.is_ok()
            }
            Ok(Some(QmgrRequest::Queue { action, ids })) => {
                round_trip(&events, &mut wr, |tx| Event::Queue(action, ids, tx)).await
            }
            Ok(None) => false,
            Err(e) => {
                log::warn!("control socket: {e}");
                false
            }
        };
        if !go_on {
            return;
        }
    }
}
