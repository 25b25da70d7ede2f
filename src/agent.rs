//! The daemon skeleton of the delivery agents (`local`, `smtp`): serve
//! qmgr's connections on the agent's socket with the agent in effect,
//! replace the agent when SIGHUP brings a new configuration (requests that
//! arrive afterwards get the new one; deliveries in progress finish with
//! theirs), and tell the service manager how many deliveries are in
//! progress. What a connection carries (requests answered one at a time,
//! or pipelined) is the agent's own: [`DeliveryAgent::serve_connection`].
//!
//! Like Postfix's `single_server`/`multi_server` skeletons, this holds
//! what is the same in every agent so that each agent's module holds only
//! what it delivers and how.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::net::UnixStream;
use tokio::sync::watch;

use crate::config::Config;
use crate::notify::{self, reload::Reload};

/// What the skeleton needs of an agent.
pub(crate) trait DeliveryAgent: Send + Sync + Sized + 'static {
    /// The role's name, for `STATUS=` (`local`, `smtp`).
    const ROLE: &'static str;
    /// The socket's name (LISTEN_FDNAMES), for messages.
    const SOCKET: &'static str;

    /// The configuration this agent delivers with.
    fn config(&self) -> &Arc<Config>;

    /// This agent with `config` (a reload), for the requests that arrive
    /// from now on.
    fn reconfigured(&self, config: Arc<Config>) -> Self;

    /// Answer qmgr's requests on one connection until it closes, each
    /// delivery counted with [`Live::delivering`].
    fn serve_connection(
        live: Arc<Live<Self>>,
        stream: UnixStream,
    ) -> impl Future<Output = ()> + Send;
}

/// The agent in effect, replaced on reload, and the deliveries in
/// progress.
pub(crate) struct Live<A> {
    agent: RwLock<Arc<A>>,
    in_progress: Arc<watch::Sender<usize>>,
}

impl<A> Live<A> {
    pub(crate) fn new(agent: A) -> Live<A> {
        Live {
            agent: RwLock::new(Arc::new(agent)),
            in_progress: Arc::new(watch::Sender::new(0)),
        }
    }

    /// The agent in effect now.
    pub(crate) fn agent(&self) -> Arc<A> {
        // A writer that panicked left a whole Arc behind: use it.
        self.agent.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A reload: `agent` for the requests that arrive from now on.
    pub(crate) fn replace(&self, agent: A) {
        *self.agent.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(agent);
    }

    /// The number of deliveries in progress, as it changes.
    pub(crate) fn in_progress(&self) -> watch::Receiver<usize> {
        self.in_progress.subscribe()
    }

    /// Count one delivery as in progress until the guard is dropped (also
    /// when the delivery's task panics).
    pub(crate) fn delivering(&self) -> Delivering {
        self.in_progress.send_modify(|n| *n += 1);
        Delivering(self.in_progress.clone())
    }
}

/// One delivery in progress; see [`Live::delivering`].
pub(crate) struct Delivering(Arc<watch::Sender<usize>>);

impl Drop for Delivering {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Serve `listener` (the agent's socket from socket activation) with
/// `live`'s agent until the process ends; SIGHUP reloads the
/// configuration when `reload` is given. `READY=1` once serving, and
/// again after each reload (or refusal of one).
pub(crate) async fn serve<A: DeliveryAgent>(
    listener: std::os::unix::net::UnixListener,
    live: Arc<Live<A>>,
    mut reload: Option<Reload>,
) -> anyhow::Result<()> {
    let what = || format!("{} socket", A::SOCKET);
    listener.set_nonblocking(true).with_context(what)?;
    let listener = tokio::net::UnixListener::from_std(listener).with_context(what)?;
    notify::spawn_status(live.in_progress(), |n| {
        format!(
            "{}: {n} deliver{} in progress",
            A::ROLE,
            if *n == 1 { "y" } else { "ies" }
        )
    });
    notify::ready();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(A::serve_connection(live.clone(), stream));
                }
                Err(e) => {
                    // EMFILE and friends: wait for connections to close.
                    log::warn!("accept on the {} socket: {e}", A::SOCKET);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = notify::reload::hangup(&mut reload) => {
                let running = live.agent();
                if let Some(new) = reload.as_ref().and_then(|r| r.load(running.config())) {
                    live.replace(running.reconfigured(Arc::new(new)));
                }
                notify::ready();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_counted_until_their_guard_goes() {
        let live = Live::new(());
        let seen = live.in_progress();
        let a = live.delivering();
        let b = live.delivering();
        assert_eq!(*seen.borrow(), 2);
        drop(a);
        assert_eq!(*seen.borrow(), 1);
        let panicked = std::thread::spawn({
            let guard = b;
            move || {
                let _guard = guard;
                panic!("a delivery that panics");
            }
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(*seen.borrow(), 0);
        live.replace(());
        assert_eq!(*live.agent(), ());
    }
}
