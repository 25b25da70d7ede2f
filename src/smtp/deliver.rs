//! One request from qmgr, start to end: a delivery slot for the
//! destination, a cached session or the next hop's hosts in order, one
//! transaction per host until every recipient is decided, the log lines
//! and the results.
//!
//! Hosts are tried as Postfix does: a connection failure, a refusing
//! greeting, a broken conversation or a 4xx reply leaves a recipient for
//! the next host (at most [`MAX_ADDRESSES`] addresses and
//! [`MAX_SESSIONS`] sessions, Postfix's `smtp_mx_address_limit` and
//! `smtp_mx_session_limit`); sent and bounced are final. What is still
//! undecided after the last host is deferred with its last reason.

use std::sync::Arc;

use crate::config::Config;
use crate::ipc::{DeliveryStatus, HopStatus, SmtpRecipient, SmtpRequest, SmtpResult};
use crate::outcome::code;
use crate::queue::id::now_micros;
use crate::sasl::client::Logins;

use super::client::{self, HostFailure, Session, Setup, Timeouts};
use super::content::Content;
use super::dns::{Addr, MAX_ADDRESSES, Resolver, Target};
use super::outcome::{Outcome, relay};
use super::pool::Pool;
use super::tls::TlsClient;
use super::transaction::{Envelope, transaction};

/// Sessions (connections that got as far as a transaction) per delivery.
pub(crate) const MAX_SESSIONS: usize = 2;

/// The agent under one configuration.
pub(crate) struct Agent {
    config: Arc<Config>,
    resolver: Resolver,
    tls: TlsClient,
    timeouts: Timeouts,
    pool: Pool,
    /// The DKIM keys (`dkim.keys`), read at start and on reload.
    dkim: crate::dkim::Keys,
}

/// The message of a request: its content, and the DKIM-Signature
/// fields sent before it (empty when it is not signed).
struct Message<'a> {
    content: &'a mut Content,
    signatures: &'a [u8],
}

/// One recipient's progress.
#[derive(Clone, Debug, Default)]
struct Track {
    outcome: Option<Outcome>,
    /// `host[ip]:port` of the session that decided it.
    relay: Option<String>,
    conn_use: u32,
    /// When that session was ready (µs).
    ready_us: Option<u64>,
    end_us: u64,
}

impl Agent {
    pub(crate) fn new(config: Arc<Config>) -> Agent {
        let smtp = &config.smtp;
        Agent {
            resolver: Resolver::new(&config.dns.servers),
            tls: TlsClient::new(&config.tls),
            timeouts: Timeouts::of(smtp),
            dkim: crate::dkim::Keys::load(&config.dkim),
            pool: Pool::new(
                smtp.destination_concurrency_limit,
                smtp.connection_cache_time,
            ),
            config,
        }
    }

    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Deliver one request: one result per recipient, in order.
    pub(crate) async fn deliver(&self, request: &SmtpRequest) -> SmtpResult {
        self.deliver_via(request, None).await
    }

    /// [`Agent::deliver`], with the hosts already resolved when `targets`
    /// is given (tests).
    pub(crate) async fn deliver_via(
        &self,
        request: &SmtpRequest,
        targets: Option<Vec<Target>>,
    ) -> SmtpResult {
        let _permit = self.pool.acquire(&request.nexthop).await;
        let start_us = now_micros();
        let n = request.recipients.len();
        let mut tracks = vec![Track::default(); n];
        let mut hop = None;
        match Content::open(&self.config.queue.directory, &request.content).await {
            Ok(mut content) => {
                match super::dkim::signatures(&self.dkim, &self.config, request, &mut content).await
                {
                    Ok(signatures) => {
                        let limit = self.config.smtp.destination_recipient_limit.max(1);
                        let all: Vec<usize> = (0..n).collect();
                        let mut message = Message {
                            content: &mut content,
                            signatures: &signatures,
                        };
                        for chunk in all.chunks(limit) {
                            self.deliver_chunk(
                                request,
                                chunk,
                                &mut message,
                                &mut tracks,
                                targets.clone(),
                                &mut hop,
                            )
                            .await;
                        }
                    }
                    Err(o) => {
                        for t in &mut tracks {
                            t.outcome = Some(o.clone());
                        }
                    }
                }
            }
            Err(e) => {
                log::warn!(
                    queue_id = request.id.as_str();
                    "{}: cannot read the message content: {e}",
                    request.id
                );
                let o = Outcome::deferred(
                    code::SYSTEM_TEMP,
                    format!("cannot read the message content: {e}"),
                );
                for t in &mut tracks {
                    t.outcome = Some(o.clone());
                }
            }
        }
        let results = request
            .recipients
            .iter()
            .zip(&mut tracks)
            .map(|(r, t)| {
                let outcome = t
                    .outcome
                    .take()
                    .unwrap_or_else(|| Outcome::deferred(code::NO_ANSWER, "no mail host to try"));
                if t.end_us == 0 {
                    t.end_us = now_micros();
                }
                log_delivery(request, r, t, &outcome, start_us);
                outcome.result(r.rcpt_index)
            })
            .collect();
        SmtpResult {
            results,
            hop,
            counts: None,
            started: None,
        }
    }

    /// The recipients `chunk` (indexes into the request), as one or more
    /// transactions: on the cached connection to the nexthop if there is
    /// one, then on new ones to its hosts; `hop` learns whether the next
    /// hop was reached.
    async fn deliver_chunk(
        &self,
        request: &SmtpRequest,
        chunk: &[usize],
        content: &mut Message<'_>,
        tracks: &mut [Track],
        targets: Option<Vec<Target>>,
        hop: &mut Option<HopStatus>,
    ) {
        let mut pending = chunk.to_vec();
        let cached_at = self.on_cached(request, &mut pending, content, tracks).await;
        if cached_at.is_some() {
            *hop = Some(HopStatus::Reached);
        }
        if pending.is_empty() {
            return;
        }
        let targets = match targets {
            Some(t) => t,
            None => {
                let nexthop = &request.nexthop;
                let port = nexthop.port.unwrap_or(self.config.smtp.port);
                match self
                    .resolver
                    .resolve(nexthop, port, &self.config.server.hostname)
                    .await
                {
                    Ok(t) => t,
                    Err(f) => {
                        let o = Outcome::local(f.status, f.dsn, f.reason);
                        unreachable(hop, &o);
                        for &i in &pending {
                            decide(&mut tracks[i], o.clone(), None, 0, None);
                        }
                        return;
                    }
                }
            }
        };
        let candidates: Vec<&Target> = targets
            .iter()
            .filter(|t| Some(&t.addr) != cached_at.as_ref())
            .take(MAX_ADDRESSES)
            .collect();
        self.on_new(request, &candidates, &mut pending, content, tracks, hop)
            .await;
    }

    /// A transaction on the connection the pool keeps to the nexthop, if
    /// it is still alive; the address it was connected to (not to be tried
    /// again in this round).
    async fn on_cached(
        &self,
        request: &SmtpRequest,
        pending: &mut Vec<usize>,
        content: &mut Message<'_>,
        tracks: &mut [Track],
    ) -> Option<Addr> {
        let nexthop = &request.nexthop;
        let mut s = self.pool.take(nexthop)?;
        if !s.probe().await {
            // Gone stale while idle: not a failure, just a new connection.
            tokio::spawn(s.quit());
            return None;
        }
        let cached_at = s.target.addr.clone();
        self.transact(&mut s, request, pending, content, tracks)
            .await;
        self.pool.put(nexthop, s);
        Some(cached_at)
    }

    /// Transactions on new connections to `candidates` in order, until
    /// every pending recipient is decided or [`MAX_SESSIONS`] sessions
    /// were had (Postfix's `smtp_mx_session_limit`); `hop` learns whether
    /// any of them got a session.
    async fn on_new(
        &self,
        request: &SmtpRequest,
        candidates: &[&Target],
        pending: &mut Vec<usize>,
        content: &mut Message<'_>,
        tracks: &mut [Track],
        hop: &mut Option<HopStatus>,
    ) {
        let setup = Setup {
            helo_name: &self.config.smtp.helo_name,
            bind_address: self.config.smtp.bind_address,
            timeouts: &self.timeouts,
            tls: &self.tls,
            nexthop: &request.nexthop,
            logins: Logins {
                config: &self.config,
            },
            sasl_plaintext: self.config.relay.sasl_plaintext,
        };
        let mut sessions = 0;
        for (k, target) in candidates.iter().enumerate() {
            let last = k + 1 == candidates.len();
            match open(request, target, &setup).await {
                Ok(mut s) => {
                    *hop = Some(HopStatus::Reached);
                    sessions += 1;
                    self.transact(&mut s, request, pending, content, tracks)
                        .await;
                    self.pool.put(&request.nexthop, s);
                }
                Err(f) => {
                    if f.session {
                        sessions += 1;
                        *hop = Some(HopStatus::Reached);
                    } else if !f.local {
                        unreachable(hop, &f.outcome);
                    }
                    let at = f.connected.then(|| relay(target));
                    for &i in pending.iter() {
                        decide(&mut tracks[i], f.outcome.clone(), at.clone(), 0, None);
                    }
                    if f.outcome.is_final() {
                        pending.clear();
                    } else if !last {
                        // Postfix says why it moves on.
                        log::info!(queue_id = request.id.as_str(); "{}: {}", request.id, f.outcome.reason);
                    }
                }
            }
            pending.retain(|&i| !tracks[i].outcome.as_ref().is_some_and(Outcome::is_final));
            if pending.is_empty() || sessions >= MAX_SESSIONS {
                break;
            }
        }
    }

    /// One transaction for the `pending` recipients on `s`; the decided
    /// ones leave `pending`.
    async fn transact(
        &self,
        s: &mut Session,
        request: &SmtpRequest,
        pending: &mut Vec<usize>,
        message: &mut Message<'_>,
        tracks: &mut [Track],
    ) {
        let ready_us = now_micros();
        let recipients: Vec<SmtpRecipient> = pending
            .iter()
            .map(|&i| request.recipients[i].clone())
            .collect();
        let envelope = Envelope {
            sender: &request.sender,
            recipients: &recipients,
            // What goes on the wire: the signatures too.
            size: request.size + message.signatures.len() as u64,
            body: request.body,
            smtputf8: request.smtputf8,
            ret: request.ret,
            envid: request.envid.as_deref(),
            signatures: message.signatures,
        };
        let outcomes = transaction(s, &envelope, message.content).await;
        let at = relay(&s.target);
        for (&i, o) in pending.iter().zip(outcomes) {
            decide(&mut tracks[i], o, Some(at.clone()), s.uses, Some(ready_us));
        }
        pending.retain(|&i| !tracks[i].outcome.as_ref().is_some_and(Outcome::is_final));
    }

    /// Idle sessions kept now.
    #[cfg(test)]
    pub(crate) fn idle_sessions(&self) -> usize {
        self.pool.idle()
    }
}

/// A host (or the name lookup) failed before any session: the next hop
/// counts as unreachable with this failure, unless a session with another
/// of its hosts existed. Only a temporary failure counts: a permanent one
/// is a reply, and decides its recipients anyway.
fn unreachable(hop: &mut Option<HopStatus>, o: &Outcome) {
    if o.status == DeliveryStatus::Deferred && hop.as_ref() != Some(&HopStatus::Reached) {
        *hop = Some(HopStatus::Unreachable {
            dsn: o.dsn,
            reason: o.reason.clone(),
        });
    }
}

fn decide(t: &mut Track, o: Outcome, relay: Option<String>, conn_use: u32, ready_us: Option<u64>) {
    t.outcome = Some(o);
    t.relay = relay;
    t.conn_use = conn_use;
    t.ready_us = ready_us;
    t.end_us = now_micros();
}

/// `ID: to=<rcpt>, relay=host[ip]:port, [conn_use=N, ]delay=D,
/// delays=a/b/c/d, dsn=X.Y.Z, status=WORD (reason)` (Postfix's
/// `log_adhoc`): a = before the active queue, b = waiting in it (and for
/// a delivery slot), c = connection setup, d = transmission.
fn log_delivery(request: &SmtpRequest, r: &SmtpRecipient, t: &Track, o: &Outcome, start_us: u64) {
    let line = log_line(request, r, t, o, start_us);
    let status = crate::logging::status_field(o.status);
    log::info!(
        queue_id = request.id.as_str(),
        recipient = r.address.as_str(),
        status = status;
        "{line}"
    );
}

fn log_line(
    request: &SmtpRequest,
    r: &SmtpRecipient,
    t: &Track,
    o: &Outcome,
    start_us: u64,
) -> String {
    let ready = t.ready_us.unwrap_or(t.end_us);
    let delays = crate::wire::delay::Delays {
        arrival: request.arrival_us,
        active: request.active_us,
        start: start_us,
        ready,
        end: t.end_us,
    };
    let conn_use = if t.conn_use > 1 {
        format!("conn_use={}, ", t.conn_use)
    } else {
        String::new()
    };
    // Postfix's orig_to: the address given, when rewriting changed it.
    let orig_to = r
        .original
        .as_deref()
        .map(|o| format!(", orig_to=<{}>", o.replace(char::is_control, "?")))
        .unwrap_or_default();
    format!(
        "{}: to=<{}>{orig_to}, relay={}, {conn_use}{delays}, dsn={}, status={} ({})",
        request.id,
        r.address.replace(char::is_control, "?"),
        t.relay.as_deref().unwrap_or("none"),
        o.dsn,
        crate::logging::status_field(o.status),
        o.reason,
    )
}

/// A session with `target`; when TLS failed in a way that allows it, a
/// second attempt without TLS.
async fn open(
    request: &SmtpRequest,
    target: &Target,
    setup: &Setup<'_>,
) -> Result<Session, HostFailure> {
    match client::open(target, setup, false).await {
        Err(f) if f.retry_plain => {
            log::info!(
                queue_id = request.id.as_str();
                "{}: {}: {}; trying again without TLS",
                request.id,
                relay(target),
                f.outcome.reason
            );
            client::open(target, setup, true).await
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_line_has_postfix_shape() {
        let request = SmtpRequest {
            id: "0000000000001A".parse().unwrap(),
            sender: "a@example.org".into(),
            recipients: vec![],
            nexthop: crate::transport::Nexthop::parse("example.com").unwrap(),
            content: crate::queue::ContentRef::File {
                path: "x".into(),
                len: 1,
            },
            size: 1,
            body: crate::queue::Body::SevenBit,
            smtputf8: false,
            ret: None,
            envid: None,
            arrival_us: 1_000_000,
            active_us: 1_100_000,
            client: Default::default(),
        };
        let r = SmtpRecipient {
            rcpt_index: 0,
            address: "b@example.com".into(),
            original: None,
            orcpt: None,
            notify: None,
        };
        let t = Track {
            outcome: None,
            relay: Some("mx.example.com[192.0.2.1]:25".into()),
            conn_use: 2,
            ready_us: Some(1_500_000),
            end_us: 2_200_000,
        };
        let o = Outcome::local(
            DeliveryStatus::Sent,
            crate::outcome::code::OK,
            "250 2.0.0 Ok: queued as X",
        );
        assert_eq!(
            log_line(&request, &r, &t, &o, 1_200_000),
            "0000000000001A: to=<b@example.com>, relay=mx.example.com[192.0.2.1]:25, conn_use=2, \
             delay=1.2, delays=0.1/0.1/0.3/0.7, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)"
        );
        let t = Track {
            relay: None,
            conn_use: 0,
            ready_us: None,
            ..t
        };
        let o = Outcome::deferred(
            crate::outcome::code::NO_ANSWER,
            "connect to mx[192.0.2.1]:25: Connection refused",
        );
        assert_eq!(
            log_line(&request, &r, &t, &o, 1_200_000),
            "0000000000001A: to=<b@example.com>, relay=none, delay=1.2, delays=0.1/0.1/1/0, \
             dsn=4.4.1, status=deferred (connect to mx[192.0.2.1]:25: Connection refused)"
        );
    }
}
