//! The active window (issue 22): a message evicted to `deferred/` and
//! the queue crashed (kill -9) right after its file was put in place and
//! before its `Moved` record, or after both: at every restart the message
//! is there exactly once, with only its recipients still to deliver and
//! their reasons; the segment copy is never read again.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::engine::{Engine, crash};
use super::recovery_tests::writer;
use super::state::{Outcome, StateRecord};
use crate::config::Config;
use crate::ipc::{QueueAction, QueueEntry};
use crate::queue::envelope::sample;
use crate::queue::log::{LogOptions, LogWriter};
use crate::queue::message::{MessageContent, encode_message};
use crate::queue::record::RecordType;
use crate::queue::{IdGenerator, QueueId, SUBDIRS, now_micros};

const REASON: &str = "connect to 192.0.2.1[192.0.2.1]:25: Connection refused";

/// A queue with messages of `rcpts` recipients each in one segment; the
/// first message's recipient 0 delivered and recipient 1 deferred for an
/// hour (durable records). Their IDs.
async fn queue(dir: &std::path::Path, rcpts: &[usize]) -> Vec<QueueId> {
    for d in SUBDIRS {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let ids = Arc::new(IdGenerator::new('A'));
    let seg_ids = ids.clone();
    let smtpd = LogWriter::start(
        dir.join("incoming"),
        LogOptions {
            seal_after_idle: None,
            ..LogOptions::new("S", move || seg_ids.next().to_string())
        },
    )
    .unwrap();
    let mut out = Vec::new();
    for n in rcpts {
        let id = ids.next();
        let payload =
            encode_message(&sample(id.clone(), *n), MessageContent::Inline(b"body\n")).unwrap();
        smtpd.append(RecordType::Message, payload).await.unwrap();
        out.push(id);
    }
    smtpd.shutdown().await.unwrap();
    let state = writer(dir, "state", "", 'Q');
    let outcome = |rcpt, reason: &str, until| Outcome {
        id: out[0].clone(),
        rcpt,
        dsn: "4.4.1".into(),
        reason: reason.into(),
        until,
    };
    for rec in [
        StateRecord::Delivered(outcome(0, "sent", 0)),
        StateRecord::Deferred(outcome(1, REASON, now_micros() + 3_600_000_000)),
    ] {
        let (t, p) = rec.encode();
        state.append(t, p).await.unwrap();
    }
    state.shutdown().await.unwrap();
    out
}

fn config(dir: &std::path::Path, limit: usize) -> Arc<Config> {
    let mut cfg = Config::builtin();
    cfg.queue.directory = dir.to_path_buf();
    cfg.queue.active_limit = limit;
    Arc::new(cfg)
}

/// A qmgr started on the queue in `dir` (its state files tagged `tag`).
async fn start(dir: &std::path::Path, cfg: &Arc<Config>, tag: char) -> (Engine, LogWriter) {
    let log = writer(dir, "state", "", tag);
    let mut engine = Engine::new(
        cfg.clone(),
        log.clone(),
        writer(dir, "incoming", "B", tag.to_ascii_lowercase()),
        Vec::new(),
        Vec::new(),
    );
    engine.recover().await.unwrap();
    (engine, log)
}

/// A listed message: its ID, its recipients and their reasons.
type Listed = (String, Vec<(String, Option<String>)>);

/// Each message the listing shows, with its recipients and their
/// reasons.
fn listed(entries: &[QueueEntry]) -> Vec<Listed> {
    entries
        .iter()
        .map(|e| {
            let r = e
                .recipients
                .iter()
                .map(|r| (r.address.clone(), r.delay_reason.clone()))
                .collect();
            (e.queue_id.clone(), r)
        })
        .collect()
}

fn run(crash_before_moved: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let ids = queue(dir.path(), &[2, 1]).await;
        let (m, n) = (ids[0].clone(), ids[1].clone());
        // A window of 2: half full, so deferred mail leaves memory.
        let cfg = config(dir.path(), 2);
        let (mut engine, log) = start(dir.path(), &cfg, 'B').await;
        assert_eq!(engine.live_ids(), vec![m.clone(), n.clone()]);
        crash::BEFORE_MOVED.with(|c| c.set(crash_before_moved));
        engine.window().await;
        engine.settle_eviction().await;
        crash::BEFORE_MOVED.with(|c| c.set(false));
        if !crash_before_moved {
            // Out of memory, still counted and listed.
            assert_eq!(engine.live_ids(), vec![n.clone()]);
            assert_eq!(engine.status().messages, 2);
        }
        // kill -9: nothing more is written.
        log.shutdown().await.unwrap();
        drop(engine);
        assert!(dir.path().join("deferred").join(m.as_str()).exists());

        let expect = vec![
            (
                m.to_string(),
                vec![("u1@elsewhere.example".to_string(), Some(REASON.to_string()))],
            ),
            (
                n.to_string(),
                vec![("u0@elsewhere.example".to_string(), None)],
            ),
        ];
        for tag in ['C', 'D'] {
            let (engine, log) = start(dir.path(), &cfg, tag).await;
            // The deferred message waits on disk (due in an hour); the
            // delivered recipient is not there to be delivered again; the
            // segment copy was not read again.
            assert_eq!(engine.live_ids(), vec![n.clone()], "start {tag}");
            assert_eq!(listed(&engine.listing()), expect, "start {tag}");
            let status = engine.status();
            assert_eq!((status.messages, status.deferred_messages), (2, Some(1)));
            log.shutdown().await.unwrap();
        }

        // `postern flush` takes it back into memory, due now, with its
        // one recipient.
        let (mut engine, log) = start(dir.path(), &cfg, 'E').await;
        let r = engine.queue_op(QueueAction::Requeue, &["ALL".into()]).await;
        assert_eq!(r.affected, 2);
        let ids: BTreeSet<QueueId> = engine.live_ids().into_iter().collect();
        assert_eq!(ids, [m.clone(), n.clone()].into_iter().collect());
        let shown = engine.show(m.as_str()).unwrap();
        assert_eq!(shown.states, vec!["pending".to_string()]);
        assert_eq!(shown.envelope.recipients.len(), 1);
        assert_eq!(shown.envelope.recipients[0].address, "u1@elsewhere.example");
        log.shutdown().await.unwrap();
    });
}

#[test]
fn crash_during_eviction_after_the_file_before_its_record() {
    run(true);
}

#[test]
fn crash_during_eviction_after_the_file_and_its_record() {
    run(false);
}

/// At most `queue.active_limit` messages are read from the segments; the
/// others wait there, listed as `incoming`, and come in as room comes.
#[tokio::test]
async fn the_window_reads_no_more_than_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let ids = queue(dir.path(), &[2, 1, 1, 1, 1]).await;
    let cfg = config(dir.path(), 2);
    let (mut engine, log) = start(dir.path(), &cfg, 'B').await;
    assert_eq!(engine.live_ids(), ids[..2].to_vec());
    let listing = engine.listing();
    assert_eq!(listing.len(), 5);
    assert_eq!(
        listing
            .iter()
            .filter(|e| e.queue_name == "incoming")
            .count(),
        3
    );
    // Not read yet, but counted (from the segment's headers).
    let status = engine.status();
    assert_eq!((status.messages, status.active_messages), (5, Some(4)));
    // The first message leaves memory (deferred for an hour): one
    // more comes in.
    engine.window().await;
    engine.settle_eviction().await;
    let status = engine.status();
    assert_eq!((status.messages, status.deferred_messages), (5, Some(1)));
    let live = engine.live_ids();
    assert_eq!(live, vec![ids[1].clone(), ids[2].clone()]);
    assert_eq!(engine.listing().len(), 5);
    log.shutdown().await.unwrap();
    // A restart reads the same window, and the segment stays until
    // every message in it is read and finished.
    let (engine, log) = start(dir.path(), &cfg, 'C').await;
    assert_eq!(engine.live_ids(), vec![ids[1].clone(), ids[2].clone()]);
    assert_eq!(engine.listing().len(), 5);
    log.shutdown().await.unwrap();
}

/// Hold, release and delete act on an evicted message's file, without
/// taking it into memory, and a restart keeps what they did.
#[tokio::test]
async fn hold_release_delete_of_an_evicted_message() {
    let dir = tempfile::tempdir().unwrap();
    let ids = queue(dir.path(), &[2, 1]).await;
    let m = ids[0].to_string();
    let cfg = config(dir.path(), 2);
    let (mut engine, log) = start(dir.path(), &cfg, 'B').await;
    engine.window().await;
    engine.settle_eviction().await;
    assert_eq!(engine.live_ids(), vec![ids[1].clone()]);
    let queue_of = |e: &Engine| {
        e.listing()
            .into_iter()
            .find(|x| x.queue_id == m)
            .map(|x| x.queue_name)
    };
    let r = engine
        .queue_op(QueueAction::Hold, std::slice::from_ref(&m))
        .await;
    assert_eq!(r.affected, 1);
    assert_eq!(queue_of(&engine).as_deref(), Some("hold"));
    assert_eq!(engine.status().held, 1);
    assert_eq!(engine.live_ids(), vec![ids[1].clone()]);
    log.shutdown().await.unwrap();
    let (mut engine, log) = start(dir.path(), &cfg, 'C').await;
    assert_eq!(queue_of(&engine).as_deref(), Some("hold"));
    assert_eq!(engine.status().held, 1);
    let r = engine
        .queue_op(QueueAction::Release, std::slice::from_ref(&m))
        .await;
    assert_eq!(r.affected, 1);
    assert_eq!(engine.status().held, 0);
    let r = engine
        .queue_op(QueueAction::Delete, std::slice::from_ref(&m))
        .await;
    assert_eq!(r.affected, 1);
    engine.flush_removals().await;
    assert_eq!(queue_of(&engine), None);
    log.shutdown().await.unwrap();
    let (engine, log) = start(dir.path(), &cfg, 'D').await;
    assert_eq!(queue_of(&engine), None);
    assert_eq!(engine.status().messages, 1);
    log.shutdown().await.unwrap();
}

/// A message deferred again after it was taken back from `deferred/`
/// leaves memory by a Snapshot appended to its file (not a new file); the
/// last Snapshot is what a listing and a restart see.
#[tokio::test]
async fn evicted_again_appends_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let ids = queue(dir.path(), &[2, 1]).await;
    let m = ids[0].clone();
    let cfg = config(dir.path(), 2);
    let (mut engine, log) = start(dir.path(), &cfg, 'B').await;
    engine.window().await;
    engine.settle_eviction().await;
    let path = dir.path().join("deferred").join(m.as_str());
    // Taken back (requeued: its file gets a new Snapshot, due now),
    // deferred again by a new outcome, evicted again.
    engine
        .queue_op(QueueAction::Requeue, &[m.to_string()])
        .await;
    let first = std::fs::metadata(&path).unwrap();
    engine.window().await;
    assert!(engine.live_ids().contains(&m));
    let later = now_micros() + 7_200_000_000;
    engine
        .defer_for_test(&m, 0, "4.4.1 second try refused", later)
        .await;
    // Eviction looks at the window once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    engine.window().await;
    engine.settle_eviction().await;
    assert!(!engine.live_ids().contains(&m));
    let second = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(first.ino(), second.ino(), "appended, not written anew");
    assert!(second.len() > first.len());
    // Its next attempt.
    assert_eq!(second.mtime() as u64, later / 1_000_000);
    let reason = |e: &Engine| {
        e.listing()
            .into_iter()
            .find(|x| x.queue_id == m.as_str())
            .map(|x| x.recipients[0].delay_reason.clone())
    };
    assert_eq!(
        reason(&engine),
        Some(Some("4.4.1 second try refused".into()))
    );
    log.shutdown().await.unwrap();
    drop(engine);
    let (engine, log) = start(dir.path(), &cfg, 'C').await;
    assert!(!engine.live_ids().contains(&m));
    assert_eq!(
        reason(&engine),
        Some(Some("4.4.1 second try refused".into()))
    );
    assert_eq!(engine.status().messages, 2);
    log.shutdown().await.unwrap();
}

/// Hold and delete of messages not read yet from their segment (the
/// window is full) are recorded at once, counted, listed, applied when
/// they are read, and kept across a restart.
#[tokio::test]
async fn hold_delete_of_a_message_not_read_yet() {
    let dir = tempfile::tempdir().unwrap();
    let ids = queue(dir.path(), &[2, 1, 1, 1]).await;
    let (held, deleted) = (ids[2].to_string(), ids[3].to_string());
    let cfg = config(dir.path(), 2);
    let (mut engine, log) = start(dir.path(), &cfg, 'B').await;
    assert_eq!(engine.live_ids(), ids[..2].to_vec());
    let r = engine
        .queue_op(QueueAction::Hold, std::slice::from_ref(&held))
        .await;
    assert_eq!((r.affected, r.unknown.len()), (1, 0));
    let r = engine
        .queue_op(QueueAction::Delete, std::slice::from_ref(&deleted))
        .await;
    assert_eq!((r.affected, r.unknown.len()), (1, 0));
    let check = |e: &Engine| {
        let status = e.status();
        assert_eq!((status.messages, status.held), (3, 1));
        let l = e.listing();
        assert_eq!(l.len(), 3);
        assert!(
            l.iter()
                .any(|x| x.queue_id == held && x.queue_name == "hold")
        );
        assert!(!l.iter().any(|x| x.queue_id == deleted));
    };
    check(&engine);
    log.shutdown().await.unwrap();
    drop(engine);
    let (mut engine, log) = start(dir.path(), &cfg, 'C').await;
    check(&engine);
    // Room: the first message leaves memory; the held one comes in,
    // held; the deleted one never does.
    engine.window().await;
    engine.settle_eviction().await;
    engine.window().await;
    engine.settle_eviction().await;
    check(&engine);
    assert!(!engine.live_ids().iter().any(|i| i.as_str() == deleted));
    log.shutdown().await.unwrap();
}
