//! Connection limits and stress mode.
//!
//! With async I/O a connection costs a few KiB, so `smtpd.max_connections`
//! is sized for thousands; what keeps those from being held by clients
//! that send nothing useful is this module:
//!
//! - [`Connections`] counts sessions, in total and per client address,
//!   and admits or refuses a new TCP client. At the limit it does not
//!   refuse while some session is idle outside a mail transaction (waiting
//!   for a command before MAIL, or between messages): the one that has
//!   waited longest is told to close ([`Ticket::evicted`]) and the new
//!   client is served. Local submissions (`submit.sock`) are counted but
//!   never refused or closed.
//! - Stress mode, as Postfix's (`stress=yes` when all its smtpd processes
//!   are busy): from [`STRESS_ENTER_PERCENT`] of the limit on, every session
//!   applies the shorter [`Limits`] (`smtpd_timeout` 10s,
//!   `smtpd_hard_error_limit` 1, `smtpd_junk_command_limit` 1, a session
//!   time limit of 5 minutes), until the count falls below
//!   [`STRESS_LEAVE_PERCENT`]. Entering and leaving are logged once each.
//!   Sessions watch the mode ([`Connections::stress`]) and shorten the
//!   deadline they are waiting on when it starts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Smtpd;

/// Postfix's stress default `smtpd_timeout = ${stress?{10}:{300}}s`.
pub(crate) const STRESS_TIMEOUT: Duration = Duration::from_secs(10);
/// Postfix's stress default `smtpd_hard_error_limit = ${stress?{1}:{20}}`.
pub(crate) const STRESS_HARD_ERROR_LIMIT: u32 = 1;
/// Postfix's stress default `smtpd_junk_command_limit = ${stress?{1}:{100}}`.
pub(crate) const STRESS_JUNK_COMMAND_LIMIT: u32 = 1;
/// The session time limit under stress (Postfix has none; long enough for
/// a 10 MB message at 50 KB/s).
pub(crate) const STRESS_SESSION_TIME_LIMIT: Duration = Duration::from_secs(300);
/// Stress mode starts when this share of `smtpd.max_connections` is in use…
pub(crate) const STRESS_ENTER_PERCENT: usize = 80;
/// …and ends when fewer than this share are.
pub(crate) const STRESS_LEAVE_PERCENT: usize = 60;

/// The limits a session applies at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Deadline for each command (and each write).
    pub timeout: Duration,
    pub hard_error_limit: u32,
    pub junk_command_limit: u32,
    /// `None`: no limit.
    pub session_time_limit: Option<Duration>,
}

impl Limits {
    /// The configured limits, or under stress the smaller of them and
    /// Postfix's stress values.
    pub(crate) fn new(c: &Smtpd, stress: bool) -> Limits {
        let session = (!c.session_time_limit.is_zero()).then_some(c.session_time_limit);
        if !stress {
            return Limits {
                timeout: c.timeout,
                hard_error_limit: c.hard_error_limit,
                junk_command_limit: c.junk_command_limit,
                session_time_limit: session,
            };
        }
        Limits {
            timeout: c.timeout.min(STRESS_TIMEOUT),
            hard_error_limit: c.hard_error_limit.min(STRESS_HARD_ERROR_LIMIT),
            junk_command_limit: c.junk_command_limit.min(STRESS_JUNK_COMMAND_LIMIT),
            session_time_limit: Some(session.map_or(STRESS_SESSION_TIME_LIMIT, |s| {
                s.min(STRESS_SESSION_TIME_LIMIT)
            })),
        }
    }
}

/// Whether `live` connections of at most `max` mean stress, given whether
/// smtpd is in stress now (the two thresholds keep it from flapping).
pub(crate) fn stress_after(live: usize, max: usize, now: bool) -> bool {
    let percent = live.saturating_mul(100) / max.max(1);
    if now {
        percent >= STRESS_LEAVE_PERCENT
    } else {
        percent >= STRESS_ENTER_PERCENT
    }
}

/// The connection limit the open file limit allows: a descriptor per
/// connection, and a reserve for segments, large-message files, DNS and
/// the qmgr socket (an eighth, at least 64).
pub(crate) fn connections_for_open_files(soft_limit: u64) -> usize {
    let reserve = (soft_limit / 8).max(64);
    usize::try_from(soft_limit.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Why a new client was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `smtpd.max_connections`, and no idle session to close.
    Total,
    /// `smtpd.max_connections_per_client`.
    PerClient,
}

/// Every session of this smtpd; see the module documentation.
pub(crate) struct Connections {
    inner: Mutex<Inner>,
    stress: watch::Sender<bool>,
    /// The number of sessions, for the `STATUS=` line.
    sessions: watch::Sender<usize>,
}

struct Inner {
    total: usize,
    /// Sessions told to close that have not gone yet (still in `total`).
    closing: usize,
    /// The limit of the last admission, for the stress check on release.
    max: usize,
    per_client: HashMap<IpAddr, usize>,
    /// TCP sessions, which may be closed to make room.
    slots: HashMap<u64, Slot>,
    next_id: u64,
}

struct Slot {
    /// Since when the session waits for a command outside a transaction.
    idle_since: Option<Instant>,
    evict: watch::Sender<bool>,
    closing: bool,
}

impl Connections {
    pub(crate) fn new() -> Arc<Connections> {
        Arc::new(Connections {
            inner: Mutex::new(Inner {
                total: 0,
                closing: 0,
                max: usize::MAX,
                per_client: HashMap::new(),
                slots: HashMap::new(),
                next_id: 0,
            }),
            stress: watch::Sender::new(false),
            sessions: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admit a TCP client from `ip` with at most `max` sessions in all and
    /// `per_client` from one address (0: no limit). At the limit the
    /// longest idle session is told to close; the second value says so.
    pub(crate) fn admit_tcp(
        self: &Arc<Self>,
        ip: IpAddr,
        max: usize,
        per_client: usize,
    ) -> Result<(Ticket, bool), Refusal> {
        let mut inner = self.lock();
        inner.max = max.max(1);
        let mine = inner.per_client.get(&ip).copied().unwrap_or(0);
        if per_client > 0 && mine >= per_client {
            return Err(Refusal::PerClient);
        }
        let mut evicted = false;
        if inner.total - inner.closing >= inner.max {
            let victim = inner
                .slots
                .iter()
                .filter(|(_, s)| !s.closing)
                .filter_map(|(id, s)| s.idle_since.map(|t| (t, *id)))
                .min();
            let Some((_, id)) = victim else {
                return Err(Refusal::Total);
            };
            if let Some(slot) = inner.slots.get_mut(&id) {
                slot.closing = true;
                slot.idle_since = None;
                slot.evict.send_replace(true);
            }
            inner.closing += 1;
            evicted = true;
        }
        inner.total += 1;
        *inner.per_client.entry(ip).or_insert(0) += 1;
        let id = inner.next_id;
        inner.next_id += 1;
        let (evict, rx) = watch::channel(false);
        inner.slots.insert(
            id,
            Slot {
                idle_since: None,
                evict,
                closing: false,
            },
        );
        self.update(&inner);
        Ok((
            Ticket {
                conns: Arc::clone(self),
                id,
                ip: Some(ip),
                evict: Some(rx),
            },
            evicted,
        ))
    }

    /// Admit a local submission: counted, never refused or closed.
    pub(crate) fn admit_local(self: &Arc<Self>) -> Ticket {
        let mut inner = self.lock();
        inner.total += 1;
        let id = inner.next_id;
        inner.next_id += 1;
        self.update(&inner);
        Ticket {
            conns: Arc::clone(self),
            id,
            ip: None,
            evict: None,
        }
    }

    fn release(&self, id: u64, ip: Option<IpAddr>) {
        let mut inner = self.lock();
        inner.total = inner.total.saturating_sub(1);
        if let Some(slot) = inner.slots.remove(&id)
            && slot.closing
        {
            inner.closing = inner.closing.saturating_sub(1);
        }
        if let Some(ip) = ip
            && let Some(n) = inner.per_client.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.per_client.remove(&ip);
            }
        }
        self.update(&inner);
    }

    /// Publish the count and enter or leave stress mode.
    fn update(&self, inner: &Inner) {
        self.sessions.send_replace(inner.total);
        let live = inner.total - inner.closing;
        let was = *self.stress.borrow();
        let now = stress_after(live, inner.max, was);
        if now != was {
            if now {
                log::warn!(
                    "entering stress mode: {live} of {} connections in use (smtpd.max_connections)",
                    inner.max
                );
            } else {
                log::info!(
                    "leaving stress mode: {live} of {} connections in use",
                    inner.max
                );
            }
            self.stress.send_replace(now);
        }
    }

    /// Sessions now, including those being closed.
    pub(crate) fn total(&self) -> usize {
        self.lock().total
    }

    /// Whether smtpd is in stress mode, and its changes.
    pub(crate) fn stress(&self) -> watch::Receiver<bool> {
        self.stress.subscribe()
    }

    /// The number of sessions, and its changes.
    pub(crate) fn sessions(&self) -> watch::Receiver<usize> {
        self.sessions.subscribe()
    }
}

/// One admitted session; dropping it ends the session's count.
pub(crate) struct Ticket {
    conns: Arc<Connections>,
    id: u64,
    ip: Option<IpAddr>,
    evict: Option<watch::Receiver<bool>>,
}

impl Ticket {
    /// The session waits for a command outside a mail transaction (`true`,
    /// from now on), or works or is inside a transaction (`false`).
    pub(crate) fn idle(&self, idle: bool) {
        if self.evict.is_none() {
            return;
        }
        let mut inner = self.conns.lock();
        if let Some(slot) = inner.slots.get_mut(&self.id)
            && !slot.closing
        {
            match (idle, slot.idle_since) {
                (true, None) => slot.idle_since = Some(Instant::now()),
                (false, Some(_)) => slot.idle_since = None,
                _ => {}
            }
        }
    }

    /// Resolves once the session has been chosen to make room for a new
    /// client; never for a local submission.
    pub(crate) async fn evicted(&mut self) {
        let chosen = match self.evict.as_mut() {
            Some(rx) => rx.wait_for(|e| *e).await.is_ok(),
            None => false,
        };
        if !chosen {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.conns.release(self.id, self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn stress_limits_are_postfix_stress_values_at_most() {
        let mut c = crate::config::Config::builtin().smtpd;
        assert_eq!(
            Limits::new(&c, false),
            Limits {
                timeout: Duration::from_secs(300),
                hard_error_limit: 20,
                junk_command_limit: 100,
                session_time_limit: Some(Duration::from_secs(3600)),
            }
        );
        assert_eq!(
            Limits::new(&c, true),
            Limits {
                timeout: Duration::from_secs(10),
                hard_error_limit: 1,
                junk_command_limit: 1,
                session_time_limit: Some(Duration::from_secs(300)),
            }
        );
        // Smaller configured values stay; no session limit has one in stress.
        c.timeout = Duration::from_secs(2);
        c.junk_command_limit = 0;
        c.session_time_limit = Duration::ZERO;
        assert_eq!(Limits::new(&c, false).session_time_limit, None);
        let s = Limits::new(&c, true);
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!(s.junk_command_limit, 0);
        assert_eq!(s.session_time_limit, Some(STRESS_SESSION_TIME_LIMIT));
    }

    #[test]
    fn stress_has_two_thresholds() {
        assert!(!stress_after(79, 100, false));
        assert!(stress_after(80, 100, false));
        assert!(stress_after(60, 100, true));
        assert!(!stress_after(59, 100, true));
        // Tiny limits: 4 of 5 is 80 %.
        assert!(!stress_after(3, 5, false));
        assert!(stress_after(4, 5, false));
        assert!(stress_after(1, 1, false));
        assert!(!stress_after(0, 0, false));
    }

    #[test]
    fn open_file_limit_leaves_a_reserve() {
        assert_eq!(connections_for_open_files(1024), 896);
        assert_eq!(connections_for_open_files(256), 192);
        assert_eq!(connections_for_open_files(10), 1);
        assert!(connections_for_open_files(u64::MAX) > 1 << 40);
    }

    #[tokio::test]
    async fn per_client_and_total_limits() {
        let c = Connections::new();
        let a = c.admit_tcp(ip(1), 3, 2).unwrap().0;
        let _b = c.admit_tcp(ip(1), 3, 2).unwrap().0;
        assert_eq!(c.admit_tcp(ip(1), 3, 2).err(), Some(Refusal::PerClient));
        let _d = c.admit_tcp(ip(2), 3, 0).unwrap().0;
        // Full, and nobody idle: refused.
        assert_eq!(c.admit_tcp(ip(3), 3, 2).err(), Some(Refusal::Total));
        assert_eq!(c.total(), 3);
        drop(a);
        assert_eq!(c.total(), 2);
        assert!(c.admit_tcp(ip(1), 3, 2).is_ok());
        // 0 per client means no limit.
        let c = Connections::new();
        let all: Vec<_> = (0..10)
            .map(|_| c.admit_tcp(ip(9), 100, 0).unwrap().0)
            .collect();
        assert_eq!(c.total(), all.len());
    }

    #[tokio::test]
    async fn at_the_limit_the_longest_idle_session_makes_room() {
        let c = Connections::new();
        let mut old = c.admit_tcp(ip(1), 3, 0).unwrap().0;
        let mut newer = c.admit_tcp(ip(2), 3, 0).unwrap().0;
        let busy = c.admit_tcp(ip(3), 3, 0).unwrap().0;
        old.idle(true);
        tokio::time::sleep(Duration::from_millis(5)).await;
        newer.idle(true);
        busy.idle(false);
        let (fourth, evicted) = c.admit_tcp(ip(4), 3, 0).unwrap();
        assert!(evicted);
        tokio::time::timeout(Duration::from_secs(1), old.evicted())
            .await
            .expect("the oldest idle session is told to close");
        // The next one takes the other idle session, not the same twice.
        let (fifth, evicted) = c.admit_tcp(ip(5), 3, 0).unwrap();
        assert!(evicted);
        tokio::time::timeout(Duration::from_secs(1), newer.evicted())
            .await
            .expect("then the next idle one");
        // Nobody idle is left: refused, though two are still closing.
        assert_eq!(c.admit_tcp(ip(6), 3, 0).err(), Some(Refusal::Total));
        assert_eq!(c.total(), 5);
        drop((old, newer));
        assert_eq!(c.total(), 3);
        assert_eq!(c.admit_tcp(ip(6), 3, 0).err(), Some(Refusal::Total));
        // A session idle again after its transaction can be chosen.
        fourth.idle(true);
        assert!(c.admit_tcp(ip(6), 3, 0).unwrap().1);
        drop((busy, fifth));
    }

    #[tokio::test]
    async fn stress_follows_the_count_and_local_sessions_are_counted() {
        let c = Connections::new();
        let stress = c.stress();
        let mut tickets = Vec::new();
        for n in 0..3 {
            tickets.push(c.admit_tcp(ip(n), 5, 0).unwrap().0);
        }
        assert!(!*stress.borrow());
        let mut local = c.admit_local();
        assert!(*stress.borrow(), "4 of 5");
        assert_eq!(*c.sessions().borrow(), 4);
        // A local submission is never chosen to make room.
        local.idle(true);
        tickets.push(c.admit_tcp(ip(9), 5, 0).unwrap().0);
        assert_eq!(c.admit_tcp(ip(10), 5, 0).err(), Some(Refusal::Total));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), local.evicted())
                .await
                .is_err()
        );
        tickets.truncate(2);
        assert!(*stress.borrow(), "3 of 5 is still 60 %");
        tickets.truncate(1);
        assert!(!*stress.borrow());
    }
}
