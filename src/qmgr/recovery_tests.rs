//! Recovery property: crash the queue at random byte points (a segment
//! and the state log cut short, garbage after the cut) and check that qmgr
//! rebuilds exactly the unfinished, acknowledged messages: none lost, none
//! invented.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;

use super::engine::Engine;
use super::state::{Outcome, StateRecord};
use crate::config::Config;
use crate::queue::envelope::sample;
use crate::queue::log::{LogOptions, LogWriter};
use crate::queue::message::{MessageContent, encode_message};
use crate::queue::record::RecordType;
use crate::queue::{IdGenerator, QueueId, SUBDIRS};

/// A log writer in `<dir>/<sub>` with segments named `<prefix><ID>.log`.
pub(super) fn writer(dir: &std::path::Path, sub: &str, prefix: &str, tag: char) -> LogWriter {
    let ids = IdGenerator::new(tag);
    LogWriter::start(
        dir.join(sub),
        LogOptions {
            seal_after_idle: None,
            ..LogOptions::new(prefix, move || ids.next().to_string())
        },
    )
    .unwrap()
}

/// One case: `n` messages with 1–2 recipients; `delivered[i]` marks which
/// recipients a durable Delivered record finished; cuts as fractions.
fn run_case(
    rcpts: Vec<usize>,
    delivered: Vec<(usize, usize)>,
    seg_cut: f64,
    state_cut: f64,
    junk: Vec<u8>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        for d in SUBDIRS {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let (acked, done_at) = write_queue(dir.path(), &rcpts, &delivered).await;

        // The crash: cut each file, then write junk after the cut.
        let cut = |rel: &std::path::Path, frac: f64| -> u64 {
            let path = rel.to_path_buf();
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let at = (len as f64 * frac) as u64;
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(at).unwrap();
            use std::io::{Seek, SeekFrom, Write};
            let mut f = f;
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&junk).unwrap();
            at
        };
        let mut seg_len = std::collections::HashMap::new();
        for (_, seg, _) in &acked {
            seg_len
                .entry(seg.clone())
                .or_insert_with(|| cut(&dir.path().join("incoming").join(seg), seg_cut));
        }
        let mut state_len = std::collections::HashMap::new();
        for (_, _, f, _) in &done_at {
            state_len
                .entry(f.clone())
                .or_insert_with(|| cut(&dir.path().join("state").join(f), state_cut));
        }

        // What must survive: messages whose record is whole, minus those
        // whose every recipient has a whole Delivered record.
        let mut expect = BTreeSet::new();
        for (m, (id, seg, end)) in acked.iter().enumerate() {
            if *end > seg_len[seg] {
                continue;
            }
            let finished = (0..rcpts[m]).all(|r| {
                done_at
                    .iter()
                    .any(|(dm, dr, f, e)| *dm == m && *dr == r && *e <= state_len[f])
            });
            if !finished {
                expect.insert(id.clone());
            }
        }

        let mut cfg = Config::builtin();
        cfg.queue.directory = dir.path().to_path_buf();
        let cfg = Arc::new(cfg);
        let live = recovered(dir.path(), &cfg, 'R').await;
        assert_eq!(live, expect);
        // And recovery is stable: a second start (after the snapshot) sees
        // the same.
        let again = recovered(dir.path(), &cfg, 'S').await;
        assert_eq!(again, expect);
    });
}

/// Acknowledged messages, `(id, segment, record end)`.
type Acked = Vec<(QueueId, std::path::PathBuf, u64)>;
/// Durable Delivered records, `(message, recipient, state file, record end)`.
type DoneAt = Vec<(usize, usize, std::path::PathBuf, u64)>;

/// Queue one message per entry of `rcpts` as smtpd does, then the
/// Delivered records of `delivered` as qmgr does.
async fn write_queue(
    dir: &std::path::Path,
    rcpts: &[usize],
    delivered: &[(usize, usize)],
) -> (Acked, DoneAt) {
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
    // (id, record end offset)
    let mut acked = Vec::new();
    for n in rcpts {
        let id = ids.next();
        let payload =
            encode_message(&sample(id.clone(), *n), MessageContent::Inline(b"body\n")).unwrap();
        let len = payload.len() as u64;
        let a = smtpd.append(RecordType::Message, payload).await.unwrap();
        acked.push((id, a.path.clone(), a.offset + len));
    }
    smtpd.shutdown().await.unwrap();
    let state = writer(dir, "state", "", 'Q');
    let mut done_at = Vec::new();
    for (m, r) in delivered {
        let Some((id, _, _)) = acked.get(*m) else {
            continue;
        };
        if *r >= rcpts[*m] {
            continue;
        }
        let rec = StateRecord::Delivered(Outcome {
            id: id.clone(),
            rcpt: *r,
            dsn: "2.0.0".into(),
            reason: "x".into(),
            until: 0,
        });
        let (t, p) = rec.encode();
        let len = p.len() as u64;
        let a = state.append(t, p).await.unwrap();
        done_at.push((*m, *r, a.path.clone(), a.offset + len));
    }
    state.shutdown().await.unwrap();
    (acked, done_at)
}

/// The messages an engine recovers from the queue in `dir`, its state
/// log's segments tagged `tag`.
async fn recovered(dir: &std::path::Path, cfg: &Arc<Config>, tag: char) -> BTreeSet<QueueId> {
    let log = writer(dir, "state", "", tag);
    let mut engine = Engine::new(
        cfg.clone(),
        log.clone(),
        writer(dir, "incoming", "B", 'N'),
        Vec::new(),
        Vec::new(),
    );
    engine.recover().await.unwrap();
    let live = engine.live_ids().into_iter().collect();
    log.shutdown().await.unwrap();
    live
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn no_acknowledged_message_is_lost(
        rcpts in proptest::collection::vec(1usize..3, 1..12),
        delivered in proptest::collection::vec((0usize..12, 0usize..2), 0..16),
        seg_cut in 0.0f64..=1.0,
        state_cut in 0.0f64..=1.0,
        junk in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        run_case(rcpts, delivered, seg_cut, state_cut, junk);
    }
}

#[test]
fn no_crash_keeps_everything_unfinished() {
    run_case(vec![1, 2, 1], vec![(0, 0), (1, 0)], 1.0, 1.0, vec![]);
}
