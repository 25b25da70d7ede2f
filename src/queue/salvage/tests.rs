//! Tests of `postern queue salvage`.

use super::*;
use crate::queue::SUBDIRS;
use crate::queue::envelope::sample;
use crate::queue::message::{MessageContent, encode_message};
use crate::queue::record::{encode, read_all};

struct Case {
    dir: tempfile::TempDir,
    file: PathBuf,
    ids: Vec<QueueId>,
    payloads: Vec<Vec<u8>>,
}

/// A queue, and in its corrupt/ a segment of 10 messages whose record 4
/// is damaged.
fn case() -> Case {
    let dir = tempfile::tempdir().unwrap();
    for d in SUBDIRS {
        fs::create_dir(dir.path().join(d)).unwrap();
    }
    let ids_gen = IdGenerator::new('A');
    let mut bytes = Vec::new();
    let mut ids = Vec::new();
    let mut payloads = Vec::new();
    let mut starts = Vec::new();
    for _ in 0..10 {
        let id = ids_gen.next();
        let p = encode_message(&sample(id.clone(), 1), MessageContent::Inline(b"body\n")).unwrap();
        starts.push(bytes.len());
        bytes.extend_from_slice(&encode(RecordType::Message, &p).unwrap());
        ids.push(id);
        payloads.push(p);
    }
    bytes.extend_from_slice(&encode(RecordType::Seal, b"").unwrap());
    // A flipped bit in the content of message 4.
    let end4 = starts.get(5).copied().unwrap_or(bytes.len());
    bytes[end4 - 2] ^= 0x04;
    let file = dir.path().join("corrupt").join("S0000000000001A.log");
    fs::write(&file, bytes).unwrap();
    Case {
        dir,
        file,
        ids,
        payloads,
    }
}

fn run(c: &Case, live: Option<HashSet<String>>, dry_run: bool) -> (usize, String) {
    let opts = Salvage {
        queue_dir: c.dir.path(),
        wake_qmgr: &|| {},
        live,
        dry_run,
    };
    let mut out = Vec::new();
    let n = salvage(&c.file, &opts, &mut out).unwrap();
    (n, String::from_utf8(out).unwrap())
}

fn new_segments(c: &Case) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(c.dir.path().join("incoming"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[test]
fn without_a_done_list_what_followed_the_damage_is_requeued_once() {
    let c = case();
    let (n, out) = run(&c, Some(HashSet::new()), false);
    assert_eq!(n, 5, "{out}");
    assert!(
        out.contains(&format!(
            "{}: from=<s@example.org>, size=5, nrcpt=1: done (read before the first damage",
            c.ids[3]
        )),
        "{out}"
    );
    // The damaged record is shown with what it still says.
    assert!(
        out.contains("not recoverable; the damaged records say (unverified): "),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{} from=<s@example.org> to=<u0@elsewhere.example>",
            c.ids[4]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: from=<s@example.org>, size=5, nrcpt=1: re-queue",
            c.ids[5]
        )),
        "{out}"
    );
    assert!(out.contains("5 re-queued as incoming/R"), "{out}");

    // The new segment: the five messages as they were, sealed.
    let segs = new_segments(&c);
    assert_eq!(segs.len(), 1, "{segs:?}");
    let name = segs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with('R') && name.ends_with(".log"), "{name}");
    let (entries, end) = read_all(&fs::read(&segs[0]).unwrap());
    assert_eq!(end, EndState::Clean);
    let payloads: Vec<Vec<u8>> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record(r) if r.rtype == RecordType::Message => Some(r.payload.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, c.payloads[5..]);
    assert!(matches!(entries.last(), Some(Entry::Record(r)) if r.rtype == RecordType::Seal));
    let list = fs::read_to_string(side_file(&c.file, "salvaged")).unwrap();
    assert_eq!(list.lines().count(), 5);
    assert!(list.starts_with(&format!("{} incoming/{name}\n", c.ids[5])));

    // A second run re-queues nothing.
    let (n, out) = run(&c, Some(HashSet::new()), false);
    assert_eq!(n, 0, "{out}");
    assert!(out.contains("re-queued before"), "{out}");
    assert!(out.ends_with("nothing to re-queue\n"), "{out}");
    assert_eq!(new_segments(&c).len(), 1);
}

#[test]
fn the_done_list_and_the_queue_are_respected() {
    let c = case();
    let done: String = c.ids[..8].iter().map(|i| format!("{i}\n")).collect();
    fs::write(side_file(&c.file, "done"), done).unwrap();
    let live: HashSet<String> = [c.ids[9].to_string()].into_iter().collect();
    let (n, out) = run(&c, Some(live), true);
    // 0-3 and 5-7 done, 4 damaged, 9 queued: only 8 is left.
    assert_eq!(n, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}: from=<s@example.org>, size=5, nrcpt=1: would be re-queued",
            c.ids[8]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: from=<s@example.org>, size=5, nrcpt=1: in the queue",
            c.ids[9]
        )),
        "{out}"
    );
    // A dry run changes nothing.
    assert!(new_segments(&c).is_empty());
    assert!(!side_file(&c.file, "salvaged").exists());
}

#[test]
fn files_in_incoming_are_refused() {
    let c = case();
    let inside = c.dir.path().join("incoming").join("S1.log");
    fs::copy(&c.file, &inside).unwrap();
    let opts = Salvage {
        queue_dir: c.dir.path(),
        wake_qmgr: &|| {},
        live: None,
        dry_run: false,
    };
    let err = salvage(&inside, &opts, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("which qmgr reads itself"), "{err}");
}
