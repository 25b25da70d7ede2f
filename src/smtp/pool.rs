//! Connections per destination (the next hop): at most
//! `smtp.destination_concurrency_limit` deliveries at once
//! (Postfix's `default_destination_concurrency_limit`), and the sessions
//! kept open for `smtp.connection_cache_time` after a transaction, so the
//! next message to the same destination needs no new connection (Postfix
//! `smtp_connection_cache_time_limit`; the RSET before reuse is the
//! caller's). An idle session that times out gets QUIT.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::transport::Nexthop;

use super::client::Session;

/// The per-destination limits and the idle sessions.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    cache_time: Duration,
    slots: Mutex<HashMap<Nexthop, Arc<Semaphore>>>,
    idle: Mutex<HashMap<Nexthop, Vec<Idle>>>,
    next_id: AtomicU64,
}

struct Idle {
    id: u64,
    session: Session,
}

/// A delivery slot for one destination, held while delivering.
pub(crate) struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    inner: Arc<Inner>,
    key: Nexthop,
}

impl Pool {
    pub(crate) fn new(limit: usize, cache_time: Duration) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                limit: limit.max(1),
                cache_time,
                slots: Mutex::new(HashMap::new()),
                idle: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// Wait for a delivery slot for `key`.
    pub(crate) async fn acquire(&self, key: &Nexthop) -> Permit {
        let semaphore = lock(&self.inner.slots)
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.inner.limit)))
            .clone();
        Permit {
            // The semaphore is never closed.
            permit: semaphore.acquire_owned().await.ok(),
            inner: self.inner.clone(),
            key: key.clone(),
        }
    }

    /// The most recently used idle session to `key`, if any.
    pub(crate) fn take(&self, key: &Nexthop) -> Option<Session> {
        let mut idle = lock(&self.inner.idle);
        let list = idle.get_mut(key)?;
        let session = list.pop().map(|i| i.session);
        if list.is_empty() {
            idle.remove(key);
        }
        session
    }

    /// Keep `session` for the next delivery to `key`, or close it when it
    /// is broken or caching is off. Must be called inside the runtime.
    pub(crate) fn put(&self, key: &Nexthop, session: Session) {
        if session.broken || self.inner.cache_time.is_zero() {
            tokio::spawn(session.quit());
            return;
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let surplus = {
            let mut idle = lock(&self.inner.idle);
            let list = idle.entry(key.clone()).or_default();
            list.push(Idle { id, session });
            (list.len() > self.inner.limit).then(|| list.remove(0).session)
        };
        if let Some(old) = surplus {
            tokio::spawn(old.quit());
        }
        let inner = self.inner.clone();
        let key = key.clone();
        tokio::spawn(async move {
            tokio::time::sleep(inner.cache_time).await;
            let expired = {
                let mut idle = lock(&inner.idle);
                let session = idle.get_mut(&key).and_then(|list| {
                    let at = list.iter().position(|i| i.id == id)?;
                    Some(list.remove(at).session)
                });
                if idle.get(&key).is_some_and(Vec::is_empty) {
                    idle.remove(&key);
                }
                session
            };
            if let Some(session) = expired {
                session.quit().await;
            }
        });
    }

    /// Idle sessions kept now (all destinations).
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        lock(&self.inner.idle).values().map(Vec::len).sum()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut slots = lock(&self.inner.slots);
        // Nobody holds or waits for this destination: forget it.
        if slots
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            slots.remove(&self.key);
        }
    }
}

/// A poisoned lock only means a panic elsewhere; the maps stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_most_limit_deliveries_per_destination() {
        let pool = Pool::new(2, Duration::from_secs(2));
        let a = Nexthop::parse("a.example").unwrap();
        let b = Nexthop::parse("b.example").unwrap();
        let p1 = pool.acquire(&a).await;
        let _p2 = pool.acquire(&a).await;
        // A third waits for a slot; another destination does not.
        let third = tokio::time::timeout(Duration::from_millis(50), pool.acquire(&a)).await;
        assert!(third.is_err());
        let _pb = pool.acquire(&b).await;
        drop(p1);
        let _p3 = tokio::time::timeout(Duration::from_millis(50), pool.acquire(&a))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unused_destinations_are_forgotten() {
        let pool = Pool::new(2, Duration::from_secs(2));
        let a = Nexthop::parse("a.example").unwrap();
        let p = pool.acquire(&a).await;
        assert_eq!(lock(&pool.inner.slots).len(), 1);
        drop(p);
        assert!(lock(&pool.inner.slots).is_empty());
    }
}
