//! Tests of the group-commit writer.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::AtomicU32;

use proptest::prelude::*;

use super::*;
use crate::queue::record::{EndState, LogReader, MAX_PAYLOAD, Record};

/// Options naming segments `S0001.log`, `S0002.log`, ….
fn options() -> LogOptions {
    let n = AtomicU32::new(0);
    LogOptions::new("S", move || {
        format!("{:04}", n.fetch_add(1, Ordering::Relaxed) + 1)
    })
}

fn read_segment(path: &Path) -> (Vec<Record>, EndState) {
    let mut r = LogReader::open(path, 0).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec);
    }
    (out, r.end_state())
}

/// Every segment of `dir`, sorted by name, with its records.
fn read_dir(dir: &Path) -> Vec<(String, Vec<Record>, EndState)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let (records, end) = read_segment(&dir.join(&name));
            (name, records, end)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_are_grouped_and_each_record_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogWriter::start(dir.path().to_path_buf(), options()).unwrap();
    let mut tasks = Vec::new();
    for task in 0..200u32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut placed = Vec::new();
            for i in 0..5u32 {
                let payload = format!("task {task} record {i}").into_bytes();
                let at = log.append(RecordType::Message, payload.clone()).await;
                placed.push((payload, at.unwrap()));
            }
            placed
        }));
    }
    let mut expected = HashMap::new();
    for t in tasks {
        for (payload, at) in t.await.unwrap() {
            assert!(expected.insert((at.path, at.offset), payload).is_none());
        }
    }
    log.shutdown().await.unwrap();

    let mut found = 0;
    for (name, records, end) in read_dir(dir.path()) {
        assert_eq!(end, EndState::Clean);
        assert_eq!(records.last().unwrap().rtype, RecordType::Seal);
        for rec in records.iter().filter(|r| r.rtype == RecordType::Message) {
            let key = (PathBuf::from(&name), rec.payload_offset());
            assert_eq!(expected.remove(&key), Some(rec.payload.clone()));
            found += 1;
        }
    }
    assert_eq!(found, 1000);
    assert!(expected.is_empty());
    let stats = log.stats();
    assert_eq!(stats.records, 1000);
    assert_eq!(stats.failures, 0);
    // One sync per batch plus the final seal: far fewer than records.
    assert!(stats.data_syncs <= 1000 / 4, "{stats:?}");
    assert_eq!(stats.data_syncs, stats.batches + 1);
}

#[tokio::test]
async fn segments_rotate_when_full_and_end_with_a_seal() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.max_segment_bytes = 1000;
    let log = LogWriter::start(dir.path().to_path_buf(), opts).unwrap();
    let mut placed = Vec::new();
    for i in 0..50u8 {
        placed.push(
            log.append(RecordType::Delivered, vec![i; 100])
                .await
                .unwrap(),
        );
    }
    log.shutdown().await.unwrap();

    let segments = read_dir(dir.path());
    assert!(segments.len() >= 5, "{}", segments.len());
    let mut payloads = Vec::new();
    for (name, records, end) in &segments {
        assert_eq!(end, &EndState::Clean);
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(meta.len() < 1000 + 115 + 15, "{name}: {}", meta.len());
        let (seal, data) = records.split_last().unwrap();
        assert_eq!(seal.rtype, RecordType::Seal);
        assert!(seal.payload.is_empty());
        for rec in data {
            assert_eq!(rec.rtype, RecordType::Delivered);
            payloads.push(rec.payload[0]);
        }
    }
    assert_eq!(payloads, (0..50).collect::<Vec<u8>>());
    assert_eq!(placed[0].path, PathBuf::from("S0001.log"));
    assert_eq!(placed[0].offset, HEADER_LEN as u64);
    assert_eq!(log.stats().segments, segments.len() as u64);
}

#[tokio::test]
async fn seal_closes_the_segment_and_the_next_append_starts_another() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogWriter::start(dir.path().to_path_buf(), options()).unwrap();
    let mut commits = log.subscribe();
    log.seal().await.unwrap(); // nothing to seal
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());

    let a = log
        .append(RecordType::Message, b"a".to_vec())
        .await
        .unwrap();
    assert!(commits.has_changed().unwrap());
    commits.mark_unchanged();
    log.seal().await.unwrap();
    assert!(commits.has_changed().unwrap());
    let b = log
        .append(RecordType::Message, b"b".to_vec())
        .await
        .unwrap();
    assert_eq!(a.path, PathBuf::from("S0001.log"));
    assert_eq!(b.path, PathBuf::from("S0002.log"));
    let (first, _) = read_segment(&dir.path().join("S0001.log"));
    let types: Vec<_> = first.iter().map(|r| r.rtype).collect();
    assert_eq!(types, [RecordType::Message, RecordType::Seal]);
    let (second, _) = read_segment(&dir.path().join("S0002.log"));
    assert_eq!(second.len(), 1);
    log.shutdown().await.unwrap();
    assert!(matches!(
        log.append(RecordType::Message, b"c".to_vec()).await,
        Err(LogError::Closed)
    ));
    log.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_segment_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.seal_after_idle = Some(Duration::from_millis(50));
    let log = LogWriter::start(dir.path().to_path_buf(), opts).unwrap();
    let mut commits = log.subscribe();
    log.append(RecordType::Message, b"x".to_vec())
        .await
        .unwrap();
    commits.mark_unchanged();
    tokio::time::timeout(Duration::from_secs(10), commits.changed())
        .await
        .unwrap()
        .unwrap();
    let (records, _) = read_segment(&dir.path().join("S0001.log"));
    assert_eq!(records.last().unwrap().rtype, RecordType::Seal);
    // Sealed once only.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(read_segment(&dir.path().join("S0001.log")).0.len(), 2);
}

#[tokio::test]
async fn dropping_every_handle_seals() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogWriter::start(dir.path().to_path_buf(), options()).unwrap();
    log.append(RecordType::Message, b"x".to_vec())
        .await
        .unwrap();
    drop(log);
    let path = dir.path().join("S0001.log");
    for _ in 0..500 {
        if read_segment(&path).0.len() == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not sealed");
}

#[tokio::test]
async fn never_appends_to_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("S0001.log"), b"someone else's").unwrap();
    let log = LogWriter::start(dir.path().to_path_buf(), options()).unwrap();
    let at = log
        .append(RecordType::Message, b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(at.path, PathBuf::from("S0002.log"));
    assert_eq!(
        std::fs::read(dir.path().join("S0001.log")).unwrap(),
        b"someone else's"
    );
    log.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_batch_is_not_durable_and_the_next_goes_to_a_new_segment() {
    for fault in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let log = LogWriter::start(dir.path().to_path_buf(), options()).unwrap();
        let a = log
            .append(RecordType::Message, b"a".to_vec())
            .await
            .unwrap();
        log.inject_fault(fault);
        let failed = log.append(RecordType::Message, b"b".to_vec()).await;
        assert!(matches!(failed, Err(LogError::Io { .. })), "{failed:?}");
        let c = log
            .append(RecordType::Message, b"c".to_vec())
            .await
            .unwrap();
        assert_eq!(a.path, PathBuf::from("S0001.log"));
        assert_eq!(c.path, PathBuf::from("S0002.log"));
        log.shutdown().await.unwrap();

        // The abandoned segment is not sealed; "a" is in it; "b" may be
        // (written, sync failed) or be a torn tail.
        let (first, end) = read_segment(&dir.path().join("S0001.log"));
        assert_eq!(first[0].payload, b"a");
        assert!(first.iter().all(|r| r.rtype != RecordType::Seal));
        if fault == 1 {
            // Half a header over the room of zeros: passed over as
            // damage (the segment is finished), nothing after it.
            assert_eq!(first.len(), 1);
            assert_eq!(end, EndState::Clean);
        }
        let (second, _) = read_segment(&dir.path().join("S0002.log"));
        assert_eq!(second[0].payload, b"c");
        assert_eq!(log.stats().failures, 1);
    }
}

/// Issue 14: a full disk made every failed attempt leave an empty
/// segment behind. A segment whose first batch fails holds nothing
/// anyone was told is durable: it goes.
#[tokio::test]
async fn a_segment_whose_first_batch_failed_is_removed() {
    for fault in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let log = LogWriter::start(dir.path().to_path_buf(), options()).unwrap();
        for _ in 0..3 {
            log.inject_fault(fault);
            let failed = log.append(RecordType::Message, b"x".to_vec()).await;
            assert!(matches!(failed, Err(LogError::Io { .. })), "{failed:?}");
            assert!(read_dir(dir.path()).is_empty(), "fault {fault}");
        }
        let ok = log
            .append(RecordType::Message, b"y".to_vec())
            .await
            .unwrap();
        assert_eq!(ok.path, PathBuf::from("S0004.log"));
        log.shutdown().await.unwrap();
        let left = read_dir(dir.path());
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1[0].payload, b"y");
        assert_eq!(log.stats().failures, 3);
    }
}

/// A reader can tell the segment being written from a finished one: the
/// writer holds a lock on its current segment until it lets it go.
#[tokio::test]
async fn the_current_segment_is_locked_until_the_writer_lets_it_go() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogWriter::start(dir.path().to_path_buf(), options()).unwrap();
    log.append(RecordType::Message, b"a".to_vec())
        .await
        .unwrap();
    let first = dir.path().join("S0001.log");
    assert!(!writer_gone(&first).unwrap());
    // Sealed: let go.
    log.seal().await.unwrap();
    assert!(writer_gone(&first).unwrap());
    // Abandoned after a failure: let go too.
    log.append(RecordType::Message, b"b".to_vec())
        .await
        .unwrap();
    let second = dir.path().join("S0002.log");
    assert!(!writer_gone(&second).unwrap());
    log.inject_fault(2);
    assert!(
        log.append(RecordType::Message, b"c".to_vec())
            .await
            .is_err()
    );
    assert!(writer_gone(&second).unwrap());
    log.shutdown().await.unwrap();
    // An empty file nobody locks may be a segment whose writer has not
    // locked it yet: not gone.
    let empty = dir.path().join("S0099.log");
    std::fs::write(&empty, b"").unwrap();
    assert!(!writer_gone(&empty).unwrap());
}

#[tokio::test]
async fn lazy_records_are_synced_by_the_next_sync_batch_or_seal() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogWriter::start(dir.path().to_path_buf(), options()).unwrap();
    for i in 0..5u8 {
        log.append_lazy(RecordType::Delivered, vec![i])
            .await
            .unwrap();
    }
    // Written, in order, without a single fdatasync.
    assert_eq!(log.stats().data_syncs, 0);
    let (records, _) = read_segment(&dir.path().join("S0001.log"));
    assert_eq!(records.len(), 5);
    log.sync().await.unwrap();
    assert_eq!(log.stats().data_syncs, 1);
    // Nothing unsynced: no second fdatasync.
    log.sync().await.unwrap();
    assert_eq!(log.stats().data_syncs, 1);
    // A normal append syncs the lazy ones before it too.
    log.append_lazy(RecordType::Delivered, vec![9])
        .await
        .unwrap();
    log.append(RecordType::Message, b"m".to_vec())
        .await
        .unwrap();
    assert_eq!(log.stats().data_syncs, 2);
    log.sync().await.unwrap();
    assert_eq!(log.stats().data_syncs, 2);
    // A failed sync abandons the segment: the next record starts another.
    log.append_lazy(RecordType::Delivered, vec![7])
        .await
        .unwrap();
    log.inject_fault(2);
    assert!(log.sync().await.is_err());
    let next = log
        .append(RecordType::Message, b"n".to_vec())
        .await
        .unwrap();
    assert_eq!(next.path, PathBuf::from("S0002.log"));
    log.shutdown().await.unwrap();
}

#[tokio::test]
async fn parts_are_one_record_and_too_large_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogWriter::start(dir.path().to_path_buf(), options()).unwrap();
    let at = log
        .append_parts(
            RecordType::Message,
            vec![b"head|".to_vec(), Vec::new(), b"body".to_vec()],
        )
        .await
        .unwrap();
    let big = vec![0u8; MAX_PAYLOAD as usize + 1];
    assert!(matches!(
        log.append(RecordType::Message, big).await,
        Err(LogError::TooLarge(_))
    ));
    log.shutdown().await.unwrap();
    let (records, _) = read_segment(&dir.path().join(&at.path));
    assert_eq!(records[0].payload, b"head|body");
    assert_eq!(records[0].payload_offset(), at.offset);
    assert_eq!(records.len(), 2);
}

#[test]
fn start_needs_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    assert!(LogWriter::start(dir.path().join("missing"), options()).is_err());
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(LogWriter::start(file, options()).is_err());
}

/// Appends `sizes` through a writer (concurrently, so batches form), and
/// returns the segment's bytes and each payload with its offset.
fn write_log(sizes: &[usize]) -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut placed = rt.block_on(async {
        let log = LogWriter::start(dir.path().to_path_buf(), options()).unwrap();
        let tasks: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let payload: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8).collect();
                let log = log.clone();
                tokio::spawn(async move {
                    let at = log.append(RecordType::Message, payload.clone()).await;
                    (at.unwrap().offset, payload)
                })
            })
            .collect();
        let mut placed = Vec::new();
        for t in tasks {
            placed.push(t.await.unwrap());
        }
        log.shutdown().await.unwrap();
        placed
    });
    let bytes = std::fs::read(dir.path().join("S0001.log")).unwrap();
    placed.sort();
    (bytes, placed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A crash at any byte, perhaps with junk after it: every record that
    /// was wholly on disk is recovered exactly, nothing else.
    #[test]
    fn crash_at_any_byte_recovers_exactly_the_whole_records(
        sizes in proptest::collection::vec(0usize..2000, 1..20),
        cut_frac in 0.0f64..=1.0,
        junk in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let (bytes, placed) = write_log(&sizes);
        let cut = ((bytes.len() as f64) * cut_frac) as usize;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crashed.log");
        let mut crashed = bytes[..cut].to_vec();
        crashed.extend_from_slice(&junk);
        std::fs::write(&path, &crashed).unwrap();

        let (records, _) = read_segment(&path);
        let got: Vec<(u64, Vec<u8>)> = records
            .into_iter()
            .filter(|r| r.rtype == RecordType::Message)
            .map(|r| (r.payload_offset(), r.payload))
            .collect();
        let want: Vec<(u64, Vec<u8>)> = placed
            .into_iter()
            .filter(|(offset, p)| *offset as usize + p.len() <= cut)
            .collect();
        prop_assert_eq!(got, want);
    }
}

/// A segment being written is filled with zeros ahead of its records (a
/// batch over them changes no metadata), which a reader following it
/// stops at; sealed, it is cut to its records and the seal. A segment
/// sealed because it is full is cut too.
#[tokio::test]
async fn a_segment_keeps_zeros_ahead_and_is_cut_to_its_records_when_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogWriter::start(dir.path().to_path_buf(), options()).unwrap();
    let a = log
        .append(RecordType::Message, vec![7; 3000])
        .await
        .unwrap();
    let path = dir.path().join(&a.path);
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(len, ZERO_AHEAD, "one step of room");
    let end = a.offset + 3000;
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes[end as usize..].iter().all(|&b| b == 0));
    let mut r = LogReader::open(&path, 0).unwrap();
    r.still_written(true);
    assert_eq!(r.next_record().unwrap().unwrap().payload, vec![7; 3000]);
    assert!(r.next_record().unwrap().is_none());
    assert_eq!((r.end_state(), r.offset()), (EndState::Clean, end));
    // Past the first step: one more.
    let b = log
        .append(RecordType::Message, vec![8; ZERO_AHEAD as usize])
        .await
        .unwrap();
    assert_eq!(b.path, a.path);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * ZERO_AHEAD);
    let rec = r.next_record().unwrap().unwrap();
    assert_eq!(rec.payload_offset(), b.offset);
    log.seal().await.unwrap();
    let sealed_at = b.offset + ZERO_AHEAD;
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        sealed_at + HEADER_LEN as u64
    );
    let (records, end) = read_segment(&path);
    assert_eq!(records.len(), 3);
    assert_eq!(records[2].rtype, RecordType::Seal);
    assert_eq!(end, EndState::Clean);
    log.shutdown().await.unwrap();

    // Full: sealed in the batch that filled it, and cut.
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.max_segment_bytes = 5000;
    let log = LogWriter::start(dir.path().to_path_buf(), opts).unwrap();
    let first = log
        .append(RecordType::Message, vec![1; 3000])
        .await
        .unwrap();
    let second = log
        .append(RecordType::Message, vec![2; 3000])
        .await
        .unwrap();
    let path = dir.path().join(&first.path);
    assert_eq!(second.path, first.path);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        second.offset + 3000 + HEADER_LEN as u64
    );
    let (records, _) = read_segment(&path);
    assert_eq!(records.last().unwrap().rtype, RecordType::Seal);
    log.shutdown().await.unwrap();
}
