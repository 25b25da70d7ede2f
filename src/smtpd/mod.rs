//! smtpd — the SMTP server (RFC 5321, 5322; ESMTP extensions PIPELINING
//! RFC 2920, SIZE RFC 1870, 8BITMIME RFC 6152, ENHANCEDSTATUSCODES RFC 2034
//! and 3463, SMTPUTF8 RFC 6531, DSN RFC 3461, STARTTLS RFC 3207, AUTH RFC
//! 4954, CHUNKING RFC 3030 without BINARYMIME, as Postfix; the same on
//! every listener, `submit.sock` included) and the submission server (RFC
//! 6409, implicit TLS RFC 8314).
//!
//! SECURITY: runs as the unprivileged postern user with no capabilities
//! (switching to it itself when started as root), confined by Landlock to
//! writing `queue/incoming`, `queue/maildrop` and `queue/maildrop-bad`,
//! and forbidden outbound TCP except to DNS ports (the restrictions'
//! lookups; see [`crate::sandbox`]). A file in the drop directory is any
//! local user's input: opened without following links, judged by `fstat`
//! on the open descriptor (a regular file, one link, the directory's
//! group, size-capped), its envelope read by a strict bounded parser
//! (fuzzed), its owner the only identity; whatever fails is moved aside,
//! never delivered.
//! It trusts nothing from the network: every line goes through the sans-IO
//! parsers ([`line`], [`command`], [`data`], [`chunk`]), which are fuzzed;
//! memory per session is bounded (command lines by
//! `smtpd.line_length_limit`, message content, from DATA or from BDAT
//! chunks of any size, streamed and spilled to a file of its own above
//! `queue.large_message_threshold`); every command has a deadline
//! (`smtpd.timeout`) and every session one (`smtpd.session_time_limit`),
//! so a client trickling bytes cannot hold a connection; junk commands
//! count as errors past `smtpd.junk_command_limit`; connections are capped
//! in total (`smtpd.max_connections`, within the open file limit, which
//! smtpd raises to its hard limit) and per client. Near the cap smtpd is
//! in stress mode (shorter timeouts, lower limits, as Postfix's stress
//! mode), and at the cap it closes the longest-idle session outside a
//! transaction rather than refuse a new client ([`limits`]). MAIL is
//! refused with `452 4.3.1` when the queue's file system is short of space
//! (`queue.minfree`), before a message is uploaded for nothing.
//! It writes only `queue/incoming/`, and removes from `queue/maildrop/`
//! what it took in (moving what it refused to `queue/maildrop-bad/`).
//!
//! What it does: speaks SMTP on every listener it is handed, decides per
//! recipient with the access policy ([`crate::policy`]: the restriction
//! lists, relay control among them, then the recipient check of the
//! address's class: local, virtual alias, relay), rewrites the envelope
//! (and, for mail from this host, header addresses) as the message
//! enters the queue ([`crate::rewrite`]: canonical maps, masquerading,
//! virtual aliases),
//! receives the message with the DATA reader (only CRLF.CRLF
//! ends it: SMTP smuggling is impossible) or in BDAT chunks (read by their
//! count, whatever they hold; the BDAT reader gives the same stored form,
//! and the rest is shared: same Received header, checks, size limit and
//! queueing, Postfix's `250 2.0.0 Ok: N bytes [queued as ID]`), applies
//! the header and body checks to it as it streams in ([`crate::content`]:
//! REJECT answers the end of the message with 550, DISCARD, HOLD and
//! REDIRECT change what is queued), adds
//! the Received header, appends the message to its segment in
//! `queue/incoming/` through the group-commit log writer and answers
//! `250 … queued as ID` only after the record is durable. Then it wakes
//! qmgr through the `qmgr` socket.
//!
//! Inputs: TCP listeners named `smtp` (`smtpd.listen`), `submission`
//! (`submission.listen`: STARTTLS, then AUTH before MAIL) and
//! `submissions` (`submission.implicit_tls_listen`: the TLS handshake
//! before the greeting), and the Unix listener `submit` on
//! which the `sendmail` command submits (LISTEN_FDS): a local submission is
//! known by its uid (SO_PEERCRED), checked against
//! `smtpd.authorized_submit_users` and `smtpd.sender_override_users`,
//! trusted to relay, and recorded as `Received: by HOST (postern, from
//! userid N)` and `ID: uid=N from=<…>`. And the drop directory
//! `queue/maildrop` ([`crate::maildrop`]), where `sendmail` leaves a
//! message while nothing answers on `submit.sock`: smtpd's pickup reads
//! it at start and every second and submits each file through that same
//! local session, with the file's owner as the uid ([`pickup`]). Outputs:
//! queue records; wake-ups on `<run_directory>/qmgr.sock`; log lines in
//! Postfix's shapes; with `metrics.listen` set, its metrics counts
//! (sessions, replies, accepted messages, restriction hits, DNSBL answers,
//! TLS handshakes, its queue log's group commits) on the same socket once
//! a second ([`crate::metrics`]).
//!
//! Service manager (see [`crate::notify`]): `READY=1` once the listeners
//! are served, `STATUS=smtpd: N sessions` (at most once a second),
//! `STOPPING=1` on SIGTERM. SIGHUP reloads the configuration file in
//! place: new sessions get the new configuration and alias table, each
//! open session keeps the one it started with; an invalid file is refused
//! and the running configuration kept.
//!
//! Content: a recipient given twice in one transaction is queued once; a
//! message whose headers end without an empty line (a first line that is
//! no header) gets one inserted, as Postfix's cleanup does
//! ([`header_block`]).
//!
//! Configuration read: `server.hostname`, `server.origin`, `smtpd.*`,
//! `local.domains`, `local.aliases`, `local.alias_files`,
//! `local.recipient_delimiter`, `virtual.mailbox_domains`,
//! `virtual.mailbox_maps` (a recipient there must be listed: 550 5.1.1
//! User unknown in virtual mailbox table), `checks.*` (and the `[maps]`
//! tables they name),
//! `relay.networks`, `queue.directory`, `queue.large_message_threshold`,
//! `queue.minfree`, `queue.minimal_backoff`, `queue.maximal_backoff` and
//! `queue.maximal_lifetime` (the pickup's retries),
//! `server.run_directory`, `restrictions.*`, `[maps]`, `dns.servers`,
//! `virtual.*`, `rewrite.*`, `relay.domains`, `relay.recipient_maps`.
//!
//! Client addresses and names: an IPv4 client on a dual-stack (`[::]`)
//! listener is taken as IPv4 (`::ffff:192.0.2.1` is `192.0.2.1`) where
//! the connection is accepted, so the log, `Received:`, `relay.networks`
//! and the blocklists all see the one form. Every TCP client's name is
//! looked up before the greeting and the `connect from` line, as
//! Postfix's smtpd does (`smtpd_peername_lookup = yes`): PTR, then the
//! forward lookup that must lead back to the address, at most
//! [`crate::policy::dns::CLIENT_NAME_DEADLINE`] in all, on the policy's
//! resolver (`dns.servers`); the log and `Received:` say `name[addr]`, and
//! `unknown[addr]` when the lookup fails or times out. The restrictions
//! use the same result (`check_client_access`, `reject_rhsbl_client`,
//! `reject_unknown_client_hostname`). Loopback addresses are answered by
//! the resolver itself (RFC 6761): 127.0.0.1 and ::1 are `localhost`.
//! Connections refused at once (too many) are logged as `unknown[addr]`
//! without a lookup.

pub mod chunk;
pub mod command;
pub mod data;
pub mod header_block;
pub(crate) mod limits;
pub mod line;
pub(crate) mod milters;
mod pickup;
mod received;
mod session;
mod store;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::aliases::LiveTable;
use crate::config::Config;
use crate::notify::{self, reload::Reload};
use crate::policy::Policy;
use crate::queue::log::{LogOptions, LogWriter};
use crate::queue::{INCOMING, IdGenerator};
use crate::reply::Reply;
use crate::sasl::server::{Authenticator, Failures};
use limits::{Connections, Refusal};

/// Everything the sessions share.
pub(crate) struct Shared {
    /// The configuration in effect and the alias table built from it
    /// (aliases make local recipients valid, Postfix's
    /// local_recipient_maps): a session takes both at its start, a reload
    /// replaces them.
    current: RwLock<Current>,
    pub ids: IdGenerator,
    pub log: LogWriter,
    pub incoming: PathBuf,
    pub wake_qmgr: Arc<Notify>,
    /// Every session, the limits and stress mode.
    pub conns: Arc<Connections>,
    /// The most connections the open file limit allows.
    fd_connections: usize,
    /// The server certificates when `tls.inbound` offers STARTTLS (read
    /// again as they change; replaced on reload).
    tls: RwLock<Option<Arc<crate::certs::Live>>>,
    /// The SMTP AUTH backend of `sasl.backend` (replaced on reload).
    sasl: RwLock<Option<Arc<Authenticator>>>,
    /// Failed logins per client address (`sasl.failure_limit`).
    pub auth_failures: Failures,
}

/// What a session starts with: the configuration, the alias table and
/// the access policy (restriction lists, tables, resolver) built from it.
pub(crate) type Current = (Arc<Config>, Arc<LiveTable>, Arc<Policy>);

impl Shared {
    /// The configuration, alias table and policy in effect now.
    pub(crate) fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The certificates in effect, when STARTTLS is offered.
    pub(crate) fn tls(&self) -> Option<Arc<crate::certs::Live>> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The SMTP AUTH backend, when `sasl.backend` names one.
    pub(crate) fn sasl(&self) -> Option<Arc<Authenticator>> {
        self.sasl.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `smtpd.max_connections`, within what the open file limit allows.
    fn max_connections(&self, config: &Config) -> usize {
        config.smtpd.max_connections.min(self.fd_connections)
    }

    /// A reload: `config` for the sessions that start from now on.
    fn replace(&self, config: Config) {
        warn_about_open_files(&config, self.fd_connections);
        let aliases = Arc::new(LiveTable::from_config(&config));
        let config = Arc::new(config);
        let policy = Arc::new(Policy::new(config.clone()));
        match tls_for(&config) {
            Ok(tls) => *self.tls.write().unwrap_or_else(|e| e.into_inner()) = tls,
            Err(e) => log::error!("reload: TLS certificates refused, the old ones kept: {e}"),
        }
        match Authenticator::from_config(&config) {
            Ok(sasl) => *self.sasl.write().unwrap_or_else(|e| e.into_inner()) = sasl,
            Err(e) => log::error!("reload: sasl: {e}; the running SASL backend kept"),
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (config, aliases, policy);
    }
}

/// The certificates `config` names, when a listener serves TLS
/// (`tls.inbound`, or the submission listeners).
fn tls_for(config: &Config) -> Result<Option<Arc<crate::certs::Live>>, crate::certs::CertError> {
    match config.serves_tls() {
        false => Ok(None),
        true => crate::certs::Live::new(config.tls.chain_files.clone()).map(|l| Some(Arc::new(l))),
    }
}

/// Run smtpd on the sockets handed over by socket activation; SIGHUP
/// reloads the configuration for new sessions (see [`Reload`]).
pub(crate) async fn run(
    config: Arc<Config>,
    fds: Vec<(String, OwnedFd)>,
    reload: Reload,
) -> anyhow::Result<()> {
    let incoming = config.queue.directory.join(INCOMING);
    let fd_connections = match crate::sys::raise_open_files_limit() {
        Ok(soft) => limits::connections_for_open_files(soft),
        Err(e) => {
            log::warn!("cannot read the open file limit: {e}");
            usize::MAX
        }
    };
    warn_about_open_files(&config, fd_connections);
    let ids = queue_ids(&incoming);
    let log = open_queue(&incoming, &ids)?;
    // Certificates that cannot be used: nothing would serve TLS as the
    // file says, and a restart will not fix them.
    let tls = tls_for(&config).map_err(|e| crate::ipc::Unrecoverable(format!("smtpd: {e}")))?;
    let sasl = Authenticator::from_config(&config)
        .map_err(|e| crate::ipc::Unrecoverable(format!("smtpd: sasl: {e}")))?;
    let shared = Arc::new(Shared {
        tls: RwLock::new(tls),
        sasl: RwLock::new(sasl),
        auth_failures: Failures::new(),
        ids,
        log,
        incoming,
        wake_qmgr: Arc::new(Notify::new()),
        conns: Connections::new(),
        fd_connections,
        current: RwLock::new((
            config.clone(),
            Arc::new(LiveTable::from_config(&config)),
            Arc::new(Policy::new(config.clone())),
        )),
    });
    let (run_dir, wake) = (
        config.server.run_directory.clone(),
        shared.wake_qmgr.clone(),
    );
    tokio::spawn(async move { crate::ipc::qmgr_client::wake_on(&run_dir, wake).await });
    // The metrics' counts, to qmgr once a second (when the endpoint is on).
    if !config.metrics.listen.is_empty() {
        crate::metrics::registry::sink::enable(true);
        let run_dir = config.server.run_directory.clone();
        tokio::spawn(async move { crate::ipc::qmgr_client::report_counts(&run_dir).await });
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    // What sendmail left in the drop directory while nothing answered on
    // submit.sock: now, and every second from now on.
    let pickup = tokio::spawn(pickup::run(
        shared.clone(),
        config.queue.directory.clone(),
        stop_rx.clone(),
    ));
    let listeners = listen(fds, &shared, &stop_rx)?;
    serve_until_terminated(&shared, reload).await?;
    notify::stopping();
    log::info!("terminating on signal");
    let _ = stop_tx.send(true);
    for l in &listeners {
        l.abort();
    }
    // Give sessions a moment to finish the command at hand.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while shared.conns.total() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The pickup finishes the file at hand (removed only once queued).
    let _ = tokio::time::timeout_at(deadline, pickup).await;
    let _ = shared.log.shutdown().await;
    Ok(())
}

/// The queue IDs of this smtpd. A clock stepped back must not reuse IDs:
/// they continue after the newest segment on disk.
fn queue_ids(incoming: &Path) -> IdGenerator {
    let ids = IdGenerator::new('A');
    if let Ok(dir) = std::fs::read_dir(incoming) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_prefix('S')
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse().ok())
            {
                ids.observe(&id);
            }
        }
    }
    ids
}

/// The group-commit log writer of `queue/incoming/` (segments `S…`).
fn open_queue(incoming: &Path, ids: &IdGenerator) -> anyhow::Result<LogWriter> {
    let seg_ids = Arc::new(IdGenerator::new('A'));
    seg_ids.observe(&ids.next());
    LogWriter::start(
        incoming.to_path_buf(),
        LogOptions {
            max_segment_bytes: 64 << 20,
            seal_after_idle: Some(Duration::from_secs(30)),
            metrics: Some("incoming"),
            ..LogOptions::new("S", move || seg_ids.next().to_string())
        },
    )
    .with_context(|| format!("cannot open the queue in {}", incoming.display()))
}

/// Serve every listener handed over: `submit` (Unix) and the TCP
/// listeners `smtp`, `submission` and `submissions`.
fn listen(
    fds: Vec<(String, OwnedFd)>,
    shared: &Arc<Shared>,
    stop_rx: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut listeners = Vec::new();
    for (name, fd) in fds {
        if name == "submit" {
            // The sendmail command's socket: world-connectable; the
            // submitter is known by its peer credentials.
            let std_l = std::os::unix::net::UnixListener::from(fd);
            std_l.set_nonblocking(true)?;
            let l = tokio::net::UnixListener::from_std(std_l)
                .context("socket \"submit\" is not a Unix listener")?;
            listeners.push(tokio::spawn(submit_loop(
                l,
                shared.clone(),
                stop_rx.clone(),
            )));
            continue;
        }
        let service = session::Service::from_socket(&name).unwrap_or_else(|| {
            log::warn!("socket {name:?}: an unknown name, served as smtp (port 25)");
            session::Service::Smtp
        });
        let std_l = std::net::TcpListener::from(fd);
        std_l.set_nonblocking(true)?;
        let l = TcpListener::from_std(std_l)
            .with_context(|| format!("socket {name:?} is not a TCP listener"))?;
        listeners.push(tokio::spawn(accept_loop(
            l,
            service,
            shared.clone(),
            stop_rx.clone(),
        )));
    }
    if listeners.is_empty() {
        anyhow::bail!("no listening socket was handed over (LISTEN_FDS)");
    }
    Ok(listeners)
}

/// Ready: serve until SIGTERM, reloading on SIGHUP.
async fn serve_until_terminated(shared: &Shared, mut reload: Reload) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    notify::spawn_status(shared.conns.sessions(), |n| {
        format!("smtpd: {n} session{}", if *n == 1 { "" } else { "s" })
    });
    notify::ready();
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = reload.requested() => {
                if let Some(new) = reload.load(&shared.current().0) {
                    shared.replace(new);
                }
                notify::ready();
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    service: session::Service,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // One form for every use: an IPv4 client of a dual-stack socket
        // is IPv4, not ::ffff:a.b.c.d.
        let ip = peer.ip().to_canonical();
        let config = shared.current().0;
        let hostname = &config.server.hostname;
        let max = shared.max_connections(&config);
        let per_client = config.smtpd.max_connections_per_client;
        let ticket = match shared.conns.admit_tcp(ip, max, per_client) {
            Ok((ticket, _made_room)) => ticket,
            Err(refusal) => {
                let reply = match refusal {
                    Refusal::Total => Reply::too_many_connections(hostname),
                    Refusal::PerClient => {
                        Reply::too_many_connections_from(hostname, &ip.to_string())
                    }
                };
                log::warn!("connect from unknown[{ip}]: {reply}");
                tokio::spawn(async move {
                    let mut stream = stream;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        stream.write_all(&reply.to_wire()),
                    )
                    .await;
                });
                continue;
            }
        };
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            session::serve(
                stream,
                session::Peer::Tcp(ip, service),
                shared,
                ticket,
                stop,
            )
            .await;
        });
    }
}

/// Local submissions (`sendmail`) on `submit.sock`: each session is
/// trusted to relay, as Postfix's pickup is, and carries the submitter's
/// uid from SO_PEERCRED into the log and the Received header.
async fn submit_loop(
    listener: tokio::net::UnixListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!("accept on submit socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let uid = match stream.peer_cred() {
            Ok(c) => c.uid(),
            Err(e) => {
                log::warn!("submit socket: no peer credentials: {e}");
                continue;
            }
        };
        let shared = shared.clone();
        let stop = stop.clone();
        let ticket = shared.conns.admit_local();
        tokio::spawn(async move {
            let peer = session::Peer::Local { uid };
            session::serve(stream, peer, shared, ticket, stop).await;
        });
    }
}

/// Say so when the open file limit allows fewer connections than
/// `smtpd.max_connections`.
fn warn_about_open_files(config: &Config, fd_connections: usize) {
    let wanted = config.smtpd.max_connections;
    if wanted > fd_connections {
        log::warn!(
            "smtpd.max_connections = {wanted} is more than the open file limit allows: using {fd_connections} (raise LimitNOFILE or ulimit -n)"
        );
    }
}
