//! qmgr on damaged queue files (issue 14, items 4 and 5): a damaged
//! segment costs only its damaged records; a damaged state log holds the
//! messages whose state it may have held instead of delivering them again.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use super::engine::Engine;
use super::recovery_tests::writer;
use super::state::{Outcome, StateRecord};
use crate::config::Config;
use crate::queue::envelope::sample;
use crate::queue::message::{MessageContent, encode_message};
use crate::queue::record::{LogReader, RecordType};
use crate::queue::{IdGenerator, QueueId, SUBDIRS};

struct Queue {
    dir: tempfile::TempDir,
    /// Message IDs in segment order, with their segment.
    ids: Vec<QueueId>,
    segment: std::path::PathBuf,
}

/// `n` messages of 2 recipients in one sealed segment.
async fn queue(n: usize) -> Queue {
    let dir = tempfile::tempdir().unwrap();
    for d in SUBDIRS {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    let smtpd = writer(dir.path(), "incoming", "S", 'A');
    let ids = IdGenerator::new('A');
    let mut out = Vec::new();
    let mut segment = None;
    for _ in 0..n {
        let id = ids.next();
        let payload =
            encode_message(&sample(id.clone(), 2), MessageContent::Inline(b"body\n")).unwrap();
        let a = smtpd.append(RecordType::Message, payload).await.unwrap();
        segment = Some(dir.path().join("incoming").join(a.path));
        out.push(id);
    }
    smtpd.shutdown().await.unwrap();
    Queue {
        dir,
        ids: out,
        segment: segment.unwrap(),
    }
}

/// Recover an engine on the queue; its live and held IDs.
async fn recover(dir: &Path, tag: char) -> (BTreeSet<QueueId>, BTreeSet<QueueId>) {
    let mut cfg = Config::builtin();
    cfg.queue.directory = dir.to_path_buf();
    let log = writer(dir, "state", "", tag);
    let mut engine = Engine::new(
        Arc::new(cfg),
        log.clone(),
        writer(dir, "incoming", "B", 'N'),
        Vec::new(),
        Vec::new(),
    );
    engine.recover().await.unwrap();
    let live = engine.live_ids().into_iter().collect();
    let held = engine
        .listing()
        .into_iter()
        .filter(|e| e.queue_name == "hold")
        .map(|e| e.queue_id.parse().unwrap())
        .collect();
    log.shutdown().await.unwrap();
    (live, held)
}

/// Record offsets of a log file.
fn offsets(path: &Path) -> Vec<(u64, u64)> {
    let mut r = LogReader::open(path, 0).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push((rec.offset, rec.end_offset()));
    }
    out
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x08;
    std::fs::write(path, bytes).unwrap();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_damaged_segment_costs_only_the_damaged_message() {
    rt().block_on(async {
        let q = queue(30).await;
        let recs = offsets(&q.segment);
        flip(&q.segment, recs[10].0 + 40);
        let (live, held) = recover(q.dir.path(), 'Q').await;
        let mut want: BTreeSet<QueueId> = q.ids.iter().cloned().collect();
        want.remove(&q.ids[10]);
        assert_eq!(live, want);
        assert!(held.is_empty());
    });
}

#[test]
fn a_finished_damaged_segment_is_kept_with_the_list_of_what_was_done() {
    rt().block_on(async {
        let q = queue(30).await;
        let recs = offsets(&q.segment);
        flip(&q.segment, recs[10].0 + 2);
        let mut cfg = Config::builtin();
        cfg.queue.directory = q.dir.path().to_path_buf();
        let log = writer(q.dir.path(), "state", "", 'Q');
        let mut engine = Engine::new(
            Arc::new(cfg),
            log.clone(),
            writer(q.dir.path(), "incoming", "B", 'N'),
            Vec::new(),
            Vec::new(),
        );
        engine.recover().await.unwrap();
        assert!(q.segment.exists());
        let r = engine
            .queue_op(crate::ipc::QueueAction::Delete, &["ALL".to_string()])
            .await;
        assert_eq!(r.affected, 29);
        engine.flush_removals().await;
        log.shutdown().await.unwrap();
        assert!(!q.segment.exists());
        let name = q
            .segment
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let corrupt = q.dir.path().join("corrupt");
        assert!(corrupt.join(&name).exists());
        let done = std::fs::read_to_string(corrupt.join(format!("{name}.done"))).unwrap();
        let mut want: Vec<String> = q.ids.iter().map(|i| i.to_string()).collect();
        want.remove(10);
        assert_eq!(done.lines().collect::<Vec<_>>(), want);
    });
}

#[test]
fn a_truncated_segment_keeps_what_is_before_the_cut() {
    rt().block_on(async {
        let q = queue(30).await;
        let recs = offsets(&q.segment);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&q.segment)
            .unwrap();
        f.set_len(recs[20].0 + 7).unwrap();
        let (live, _) = recover(q.dir.path(), 'Q').await;
        assert_eq!(live, q.ids[..20].iter().cloned().collect());
    });
}

/// Every message has 2 recipients; recipient 0 of each is delivered (a
/// Delivered record), recipient 1 waits. Returns the state file and each
/// Delivered record's span, in message order.
async fn deliver_first_recipients(q: &Queue) -> (std::path::PathBuf, Vec<(u64, u64)>) {
    let state = writer(q.dir.path(), "state", "", 'P');
    let mut file = None;
    let mut spans = Vec::new();
    for id in &q.ids {
        let rec = StateRecord::Delivered(Outcome {
            id: id.clone(),
            rcpt: 0,
            dsn: "2.0.0".into(),
            reason: "delivered to maildir".into(),
            until: 0,
        });
        let (t, p) = rec.encode();
        let len = p.len() as u64;
        let a = state.append(t, p).await.unwrap();
        file = Some(q.dir.path().join("state").join(&a.path));
        spans.push((a.offset - 15, a.offset + len));
    }
    state.shutdown().await.unwrap();
    (file.unwrap(), spans)
}

#[test]
fn a_damaged_state_record_holds_exactly_its_message() {
    rt().block_on(async {
        let q = queue(20).await;
        let (state, spans) = deliver_first_recipients(&q).await;
        // A flipped bit in the reason of message 7's Delivered record.
        flip(&state, spans[7].1 - 20);
        let (live, held) = recover(q.dir.path(), 'Q').await;
        assert_eq!(live.len(), 20);
        assert_eq!(held, [q.ids[7].clone()].into_iter().collect());
        // The damaged file is kept, and the hold survives a restart.
        let kept: Vec<_> = std::fs::read_dir(q.dir.path().join("corrupt"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(kept, vec![state.file_name().unwrap().to_os_string()]);
        let (_, again) = recover(q.dir.path(), 'R').await;
        assert_eq!(again, held);
    });
}

#[test]
fn a_damaged_first_byte_of_the_state_log_holds_rather_than_redelivers() {
    rt().block_on(async {
        let q = queue(20).await;
        let (state, _) = deliver_first_recipients(&q).await;
        flip(&state, 0);
        let (live, held) = recover(q.dir.path(), 'Q').await;
        assert_eq!(live.len(), 20);
        // Which message the first record was about cannot be told, and all
        // of them arrived before the damage was written: all held.
        assert_eq!(held, live);
    });
}

#[test]
fn damage_before_a_snapshot_spares_the_messages_it_describes() {
    rt().block_on(async {
        let q = queue(10).await;
        let (state, _) = deliver_first_recipients(&q).await;
        // A first start compacts the state into a snapshot of every
        // message; damage in the old file no longer matters then, but in
        // the new one it does.
        let (live, held) = recover(q.dir.path(), 'Q').await;
        assert_eq!((live.len(), held.len()), (10, 0));
        assert!(!state.exists());
        let snap = std::fs::read_dir(q.dir.path().join("state"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "log"))
            .unwrap();
        // The snapshot records (then the seal), and whose each one is.
        let mut r = LogReader::open(&snap, 0).unwrap();
        let mut snaps = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            if let Some(StateRecord::Snapshot(s)) = StateRecord::decode(rec.rtype, &rec.payload) {
                snaps.push((rec.offset, s.id));
            }
        }
        assert_eq!(snaps.len(), 10);
        // Destroy the header of the third snapshot record: which message it
        // was about cannot be told. The messages described whole after it
        // are spared; those before it (and the third) are held.
        flip(&snap, snaps[2].0 + 4);
        let (live, held) = recover(q.dir.path(), 'R').await;
        assert_eq!(live.len(), 10);
        let want: BTreeSet<QueueId> = snaps[..3].iter().map(|(_, id)| id.clone()).collect();
        assert_eq!(held, want);
    });
}
