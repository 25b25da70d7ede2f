//! Connections from qmgr to the delivery agents: a fixed number of slots
//! per agent, each a task with one connection to the agent's socket
//! (`local.sock`, `smtp.sock`), carrying one request at a time: a
//! [`DeliveryRequest`] to local (one recipient), an [`SmtpRequest`] to smtp
//! (one message, one next hop, several recipients).
//!
//! A slot keeps its connection between requests; before reusing it, it
//! checks that the agent has not closed it meanwhile (a restarted agent),
//! so a request is never written into a dead connection.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::ipc::{self, DeliveryRequest, DeliveryResult, SmtpRequest, SmtpResult};

/// A request type and the agent that answers it.
pub(crate) trait Exchange: Serialize + Send + Sync + Sized + 'static {
    type Answer: DeserializeOwned + Send + 'static;
    /// The agent's name, for messages.
    const AGENT: &'static str;
    /// Whether `answer` is the answer to this request (the agents answer
    /// in order; anything else means the connection is out of step).
    fn answered_by(&self, answer: &Self::Answer) -> bool;
    /// Into the engine's report channel.
    fn report(report: Report<Self>) -> SlotReport;
}

/// What one slot reports back to the engine.
pub(crate) enum Report<Q: Exchange> {
    Done {
        slot: usize,
        request: Q,
        result: Q::Answer,
    },
    /// The agent could not be reached or the connection broke before an
    /// answer: the delivery may or may not have happened.
    Lost {
        slot: usize,
        request: Q,
        why: String,
        /// No connection could be made (the agent is down or
        /// restarting): nothing was sent.
        unreachable: bool,
    },
}

/// Reports of both agents, on one channel.
pub(crate) enum SlotReport {
    Local(Report<DeliveryRequest>),
    Smtp(Report<SmtpRequest>),
}

impl Exchange for DeliveryRequest {
    type Answer = DeliveryResult;
    const AGENT: &'static str = "local";

    fn answered_by(&self, answer: &DeliveryResult) -> bool {
        answer.rcpt_index == self.rcpt_index
    }

    fn report(report: Report<Self>) -> SlotReport {
        SlotReport::Local(report)
    }
}

impl Exchange for SmtpRequest {
    type Answer = SmtpResult;
    const AGENT: &'static str = "smtp";

    /// Every result names a recipient of the request (some may be
    /// missing: the engine defers those).
    fn answered_by(&self, answer: &SmtpResult) -> bool {
        answer
            .results
            .iter()
            .all(|r| self.recipients.iter().any(|x| x.rcpt_index == r.rcpt_index))
    }

    fn report(report: Report<Self>) -> SlotReport {
        SlotReport::Smtp(report)
    }
}

/// Start `n` slots talking to the agent on `socket`; returns their request
/// senders (each with room for one request: a slot is idle or busy).
pub(crate) fn start_slots<Q: Exchange>(
    n: usize,
    socket: PathBuf,
    reports: mpsc::UnboundedSender<SlotReport>,
) -> Vec<mpsc::Sender<Q>> {
    (0..n)
        .map(|slot| {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(slot_task(slot, socket.clone(), rx, reports.clone()));
            tx
        })
        .collect()
}

async fn slot_task<Q: Exchange>(
    slot: usize,
    socket: PathBuf,
    mut requests: mpsc::Receiver<Q>,
    reports: mpsc::UnboundedSender<SlotReport>,
) {
    let mut conn: Option<BufReader<UnixStream>> = None;
    while let Some(request) = requests.recv().await {
        let report = match exchange(&mut conn, &socket, &request).await {
            Ok(result) => Report::Done {
                slot,
                request,
                result,
            },
            Err((why, unreachable)) => {
                conn = None;
                Report::Lost {
                    slot,
                    request,
                    why,
                    unreachable,
                }
            }
        };
        if reports.send(Q::report(report)).is_err() {
            return;
        }
    }
}

/// One request and its answer, connecting first when needed. The error
/// says why, and whether the agent could not be reached at all.
async fn exchange<Q: Exchange>(
    conn: &mut Option<BufReader<UnixStream>>,
    socket: &PathBuf,
    request: &Q,
) -> Result<Q::Answer, (String, bool)> {
    if conn.as_ref().is_some_and(|c| !still_open(c)) {
        *conn = None;
    }
    let c = match conn {
        Some(c) => c,
        None => match UnixStream::connect(socket).await {
            Ok(s) => conn.insert(BufReader::new(s)),
            Err(e) => {
                // Do not spin while the agent is being restarted.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Err((
                    format!("cannot connect to the {} delivery agent: {e}", Q::AGENT),
                    true,
                ));
            }
        },
    };
    let agent = Q::AGENT;
    let lost = |why: String| (why, false);
    ipc::write_line(c.get_mut(), request)
        .await
        .map_err(|e| lost(format!("lost connection with {agent}: {e}")))?;
    match ipc::read_line::<_, Q::Answer>(c).await {
        Ok(Some(answer)) if request.answered_by(&answer) => Ok(answer),
        Ok(Some(_)) => Err(lost(format!("{agent} answered out of order"))),
        Ok(None) => Err(lost(format!("lost connection with {agent}"))),
        Err(e) => Err(lost(format!("lost connection with {agent}: {e}"))),
    }
}

/// An idle connection the agent has not closed: nothing to read yet.
fn still_open(c: &BufReader<UnixStream>) -> bool {
    let mut byte = [0u8; 1];
    match c.get_ref().try_read(&mut byte) {
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        // End of stream, or bytes nobody asked for: start afresh.
        Ok(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{ContentRef, QueueId};
    use tokio::net::UnixListener;

    fn request(i: usize) -> DeliveryRequest {
        DeliveryRequest {
            id: "0000000000001A".parse::<QueueId>().unwrap(),
            sender: String::new(),
            recipient: "u@localhost".into(),
            original: None,
            rcpt_index: i,
            content: ContentRef::File {
                path: "incoming/x.msg".into(),
                len: 1,
            },
            arrival_us: 0,
            active_us: 0,
        }
    }

    fn answer(i: usize) -> DeliveryResult {
        DeliveryResult {
            rcpt_index: i,
            status: crate::ipc::DeliveryStatus::Sent,
            dsn: crate::outcome::code::OK,
            reason: "ok".into(),
            forward: vec![],
            lists: Vec::new(),
            owner_failures: Vec::new(),
            remote_mta: None,
            diagnostic: None,
            mailbox_transport: None,
            started: None,
        }
    }

    /// An agent that answers one request per connection and then hangs
    /// up: the slot notices the closed connection and reconnects rather
    /// than losing the next request.
    #[tokio::test]
    async fn a_connection_the_agent_closed_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                if let Ok(Some(req)) = ipc::read_line::<_, DeliveryRequest>(&mut r).await {
                    ipc::write_line(&mut w, &answer(req.rcpt_index))
                        .await
                        .unwrap();
                }
            }
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let slots = start_slots::<DeliveryRequest>(1, path, tx);
        for i in 0..3 {
            slots[0].send(request(i)).await.unwrap();
            match rx.recv().await.unwrap() {
                SlotReport::Local(Report::Done { result, .. }) => assert_eq!(result.rcpt_index, i),
                SlotReport::Local(Report::Lost { why, .. }) => panic!("lost: {why}"),
                SlotReport::Smtp(_) => unreachable!(),
            }
            // Let the agent's side close.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn an_absent_agent_is_reported_lost() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let slots = start_slots::<DeliveryRequest>(1, dir.path().join("none.sock"), tx);
        slots[0].send(request(0)).await.unwrap();
        match rx.recv().await.unwrap() {
            SlotReport::Local(Report::Lost { why, .. }) => {
                assert!(
                    why.starts_with("cannot connect to the local delivery agent"),
                    "{why}"
                )
            }
            _ => panic!("expected a lost report"),
        }
    }
}
