//! The daemon's socket: JSON lines in, results in request order, work
//! done concurrently.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::server::{Script, start};
use super::*;
use crate::ipc::DeliveryStatus::Sent;
use crate::ipc::SmtpResult;

#[tokio::test]
async fn results_come_back_in_request_order() {
    // The first server is slow to greet; the second is quick.
    let slow = start(Script {
        greeting_delay: Duration::from_millis(500),
        ..Script::default()
    })
    .await;
    let quick = start(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let config = Arc::new(config(&queue));
    let path = dir.path().join("smtp.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(crate::smtp::serve(config, listener, None));

    let first = request(&queue, slow.addr.port(), &["a@x.example"], MESSAGE);
    let mut second = request(
        &queue,
        quick.addr.port(),
        &["b@x.example", "c@x.example"],
        MESSAGE,
    );
    second.recipients[1].rcpt_index = 42;
    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let (read, mut write) = stream.into_split();
    let started = Instant::now();
    for r in [&first, &second, &first] {
        let mut line = serde_json::to_vec(r).unwrap();
        line.push(b'\n');
        write.write_all(&line).await.unwrap();
    }
    let mut lines = BufReader::new(read).lines();
    let mut results = Vec::new();
    for _ in 0..3 {
        let line = lines.next_line().await.unwrap().unwrap();
        results.push(serde_json::from_str::<SmtpResult>(&line).unwrap());
    }
    let indexes: Vec<Vec<usize>> = results
        .iter()
        .map(|r| r.results.iter().map(|d| d.rcpt_index).collect())
        .collect();
    assert_eq!(indexes, [vec![10], vec![10, 42], vec![10]]);
    assert!(
        results
            .iter()
            .flat_map(|r| &r.results)
            .all(|d| d.status == Sent)
    );
    // The two slow ones ran side by side.
    assert!(
        started.elapsed() < Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(quick.messages().len(), 1);
    assert_eq!(slow.messages().len(), 2);

    // A malformed line ends the connection.
    write.write_all(b"{not json}\n").await.unwrap();
    assert!(lines.next_line().await.unwrap().is_none());
}
