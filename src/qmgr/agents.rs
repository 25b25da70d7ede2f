//! Connections from qmgr to the delivery agents: a fixed number of slots,
//! each a task with one connection to the `local` socket, carrying one
//! request at a time.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::ipc::{self, DeliveryRequest, DeliveryResult};

/// What a slot reports back to the engine.
#[derive(Debug)]
pub enum SlotReport {
    Done {
        slot: usize,
        request: DeliveryRequest,
        result: DeliveryResult,
    },
    /// The agent could not be reached or the connection broke before an
    /// answer: the delivery may or may not have happened; retry soon.
    Lost {
        slot: usize,
        request: DeliveryRequest,
        why: String,
    },
}

/// Start `n` slots; returns their request senders.
pub fn start_slots(
    n: usize,
    socket: PathBuf,
    reports: mpsc::UnboundedSender<SlotReport>,
) -> Vec<mpsc::Sender<DeliveryRequest>> {
    (0..n)
        .map(|slot| {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(slot_task(slot, socket.clone(), rx, reports.clone()));
            tx
        })
        .collect()
}

async fn slot_task(
    slot: usize,
    socket: PathBuf,
    mut requests: mpsc::Receiver<DeliveryRequest>,
    reports: mpsc::UnboundedSender<SlotReport>,
) {
    let mut conn: Option<BufReader<UnixStream>> = None;
    while let Some(request) = requests.recv().await {
        if conn.is_none() {
            match UnixStream::connect(&socket).await {
                Ok(s) => conn = Some(BufReader::new(s)),
                Err(e) => {
                    // Do not spin while local is being restarted.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let why = format!("cannot connect to local delivery agent: {e}");
                    let _ = reports.send(SlotReport::Lost { slot, request, why });
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let answer = async {
            ipc::write_line(c.get_mut(), &request).await?;
            ipc::read_line::<_, DeliveryResult>(c).await
        }
        .await;
        let report = match answer {
            Ok(Some(result)) if result.rcpt_index == request.rcpt_index => SlotReport::Done {
                slot,
                request,
                result,
            },
            Ok(Some(_)) => {
                conn = None;
                SlotReport::Lost {
                    slot,
                    request,
                    why: "local answered out of order".into(),
                }
            }
            Ok(None) => {
                conn = None;
                SlotReport::Lost {
                    slot,
                    request,
                    why: "lost connection with local".into(),
                }
            }
            Err(e) => {
                conn = None;
                SlotReport::Lost {
                    slot,
                    request,
                    why: format!("lost connection with local: {e}"),
                }
            }
        };
        if reports.send(report).is_err() {
            return;
        }
    }
}
