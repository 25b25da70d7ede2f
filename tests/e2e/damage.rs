//! Damaged queue files (issue 14, items 4 and 5): a matrix of damage to a
//! 200-message segment (a flipped bit, a bad length byte, 4 KiB zeroed,
//! the first magic byte, a truncation inside record 150) and to qmgr's
//! state log (a flipped byte, the first byte). For each: how many messages
//! survive, each delivered exactly once, every loss logged with its
//! offsets, the damaged file kept in corrupt/; for the state log, nothing
//! delivered twice, the messages whose state is unknown held. And `postern
//! queue salvage`. bench/damage runs the longer version.
//!
//! The 200 messages are queued once (held by a body check, so none is
//! delivered), and each case starts a fresh postern on a damaged copy of
//! that segment, then releases the queue.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use postern::queue::message::decode_message;
use postern::queue::record::{Entry, HEADER_LEN, RecordType, read_all};
use postern::queue::{ContentRef, INCOMING};

use crate::common::*;

const MESSAGES: usize = 200;
/// Every message of the template has this in its body: held at once.
const HOLD_CHECK: &str = "/hold-for-damage-test/ HOLD\n";

/// The 200-message segment every segment case starts from.
struct Template {
    name: String,
    bytes: Vec<u8>,
    /// Per message record, in file order: (start, end, queue ID, tag).
    records: Vec<(usize, usize, String, String)>,
    owner: (u32, u32),
}

fn configure() -> Postern {
    let p = Postern::configure("[checks]\nbody = [\"pcre:{dir}/body_checks\"]\n", &[], None);
    write_file(&p.dir.path().join("body_checks"), HOLD_CHECK.as_bytes());
    p
}

/// Send `tags.len()` messages with `rcpts` recipients over a few sessions
/// at once; each message's Subject is its tag. Their queue IDs.
fn send_all(p: &Postern, tags: &[String], rcpts: &[String], body: &str) -> Vec<String> {
    let sessions = 4;
    let mut handles = Vec::new();
    for s in 0..sessions {
        let mine: Vec<String> = tags.iter().skip(s).step_by(sessions).cloned().collect();
        let (addr, rcpts, body) = (p.addr, rcpts.to_vec(), body.to_string());
        handles.push(std::thread::spawn(move || {
            let mut c = Client::connect(addr, None);
            c.cmd("EHLO c.example");
            let mut ids = Vec::new();
            for tag in mine {
                assert_eq!(c.cmd("MAIL FROM:<s@example.org>"), "250 2.1.0 Ok");
                for r in &rcpts {
                    assert_eq!(c.cmd(&format!("RCPT TO:<{r}>")), "250 2.1.5 Ok");
                }
                assert!(c.cmd("DATA").starts_with("354"));
                let r = c.cmd(&format!("Subject: {tag}\r\n\r\n{tag} {body}\r\n."));
                assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
                ids.push(r.rsplit(' ').next().unwrap().to_string());
            }
            c.cmd("QUIT");
            ids
        }));
    }
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let mut p = configure();
        p.launch();
        let tags: Vec<String> = (0..MESSAGES).map(|i| format!("dmg-{i:03}")).collect();
        let rcpt = format!("{}@localhost", p.user);
        send_all(&p, &tags, &[rcpt], "hold-for-damage-test");
        p.stop();
        let dir = p.queue_dir().join(INCOMING);
        let segs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('S'))
            .collect();
        assert_eq!(segs.len(), 1, "one segment expected: {segs:?}");
        let name = segs[0].file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(segs[0].path()).unwrap();
        let meta = std::fs::metadata(segs[0].path()).unwrap();
        use std::os::unix::fs::MetadataExt;
        let (entries, _) = read_all(&bytes);
        let mut records = Vec::new();
        for e in entries {
            let Entry::Record(r) = e else {
                panic!("the template segment is damaged")
            };
            if r.rtype != RecordType::Message {
                continue;
            }
            let (env, content) = decode_message(&r.payload, r.payload_offset(), &name).unwrap();
            let ContentRef::Segment { offset, len, .. } = content else {
                panic!("inline content expected")
            };
            let text = String::from_utf8_lossy(&bytes[offset as usize..(offset + len) as usize]);
            let tag = subject(&text).expect("a tag");
            records.push((
                r.offset as usize,
                r.end_offset() as usize,
                env.id.to_string(),
                tag,
            ));
        }
        assert_eq!(records.len(), MESSAGES);
        Template {
            name,
            bytes,
            records,
            owner: (meta.uid(), meta.gid()),
        }
    })
}

fn subject(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .map(|s| s.trim().to_string())
}

/// Tags of the messages in `user`'s Maildir, with how often each came.
fn delivered_tags(p: &Postern) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for f in p.delivered(&p.user) {
        if let Some(tag) = std::fs::read_to_string(&f)
            .ok()
            .as_deref()
            .and_then(subject)
        {
            *seen.entry(tag).or_insert(0) += 1;
        }
    }
    seen
}

/// Put `bytes` as the template's segment into a fresh postern's queue.
fn with_segment(bytes: &[u8]) -> Postern {
    let t = template();
    let p = configure();
    let incoming = p.queue_dir().join(INCOMING);
    std::fs::create_dir_all(&incoming).unwrap();
    let path = incoming.join(&t.name);
    std::fs::write(&path, bytes).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&path, Some(t.owner.0), Some(t.owner.1)).unwrap();
    }
    p
}

fn wait_for(what: &str, secs: u64, p: &Postern, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}; log:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_messages(p: &Postern) -> String {
    String::from_utf8_lossy(&p.postern(&["status"]).stdout)
        .lines()
        .find(|l| l.starts_with("queue: "))
        .unwrap_or_default()
        .to_string()
}

/// The segment damaged by `damage`; `lost` the record indices it must
/// cost; `logged` what the log must say. Starts postern on it, releases
/// the queue, checks every survivor is delivered exactly once, the loss
/// logged and the file kept in corrupt/ with its list of done messages.
fn segment_case(
    damage: impl FnOnce(&mut Vec<u8>, &Template),
    lost: std::ops::Range<usize>,
    logged: &[String],
) -> Postern {
    let t = template();
    let mut bytes = t.bytes.clone();
    damage(&mut bytes, t);
    let mut p = with_segment(&bytes);
    p.launch();
    let survivors = MESSAGES - lost.len();
    // The counts are right before anything is delivered.
    p.wait_log(": on hold", survivors, 20);
    let st = status_messages(&p);
    assert!(
        st.starts_with(&format!("queue: {survivors} messages")),
        "{st}\n{}",
        p.log()
    );
    let out = p.postern(&["queue", "release", "ALL"]);
    assert!(out.status.success(), "{out:?}");
    p.wait_delivered(&p.user, survivors, 60);
    p.wait_log(": removed", survivors, 20);
    let seen = delivered_tags(&p);
    for (i, (_, _, id, tag)) in t.records.iter().enumerate() {
        let want = usize::from(!lost.contains(&i));
        assert_eq!(
            seen.get(tag).copied().unwrap_or(0),
            want,
            "message {i} ({id}, {tag})"
        );
    }
    assert_eq!(seen.values().sum::<usize>(), survivors);
    let log = p.log();
    for line in logged {
        assert!(log.contains(line.as_str()), "{line:?} not logged:\n{log}");
    }
    // Kept for inspection, beside the list of what qmgr did with it.
    let corrupt = p.queue_dir().join("corrupt");
    wait_for("the damaged segment is kept in corrupt/", 20, &p, || {
        corrupt.join(&t.name).exists()
    });
    assert_eq!(std::fs::read(corrupt.join(&t.name)).unwrap(), bytes);
    let done = std::fs::read_to_string(corrupt.join(format!("{}.done", t.name))).unwrap();
    assert_eq!(done.lines().count(), survivors);
    assert!(!p.queue_dir().join(INCOMING).join(&t.name).exists());
    p
}

/// `warning: incoming/NAME: skipped N bytes at offset A..B (REASON)`.
fn skipped_line(t: &Template, from: usize, to: usize, reason: &str) -> String {
    format!(
        "{INCOMING}/{}: skipped {} bytes at offset {from}..{to} ({reason})",
        t.name,
        to - from
    )
}

#[test]
fn issue_14_a_flipped_bit_costs_one_message() {
    let t = template();
    let (start, end, id, _) = &t.records[10];
    let mut p = segment_case(
        // In the content (the envelope says which message it was).
        |b, _| b[end - 5] ^= 0x10,
        10..11,
        &[
            skipped_line(t, *start, *end, "record checksum mismatch"),
            // What the damaged record still says, for the administrator.
            format!("at least 1 message lost; damaged records say: {id} from=<s@example.org> to=<"),
        ],
    );
    // Salvage finds nothing qmgr did not already deliver.
    let file = p.queue_dir().join("corrupt").join(&t.name);
    let out = p.postern(&["queue", "salvage", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("done (qmgr read it: listed in the .done file)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "not recoverable; the damaged records say (unverified): {id}"
        )),
        "{text}"
    );
    assert!(text.ends_with("nothing to re-queue\n"), "{text}");
    p.stop();
}

#[test]
fn issue_14_a_bad_length_byte_costs_one_message() {
    let t = template();
    let (start, end, _, _) = t.records[10];
    segment_case(
        |b, _| b[start + 4] ^= 0x40,
        10..11,
        &[skipped_line(t, start, end, "header checksum mismatch")],
    );
}

#[test]
fn issue_14_a_zeroed_block_costs_the_messages_in_it() {
    let t = template();
    let from = t.records[10].0 + 100;
    let to = from + 4096;
    let after = t.records.iter().position(|r| r.0 >= to).unwrap();
    segment_case(
        |b, _| b[from..to].fill(0),
        10..after,
        &[skipped_line(
            t,
            t.records[10].0,
            t.records[after].0,
            "record checksum mismatch",
        )],
    );
}

#[test]
fn issue_14_a_bad_first_magic_byte_costs_one_message() {
    let t = template();
    segment_case(
        |b, _| b[0] ^= 0xFF,
        0..1,
        &[skipped_line(t, 0, t.records[1].0, "bad magic")],
    );
}

#[test]
fn issue_14_a_truncation_is_logged() {
    let t = template();
    let at = t.records[150].0;
    segment_case(
        |b, _| b.truncate(at + HEADER_LEN + 35),
        150..MESSAGES,
        &[format!(
            "{INCOMING}/{}: incomplete record at offset {at}, {} bytes to the end of the file",
            t.name,
            HEADER_LEN + 35
        )],
    );
}

/// A segment kept by an older postern (no list of what it did: it read
/// only up to the damage) is salvaged: what followed the damage is
/// re-queued once, with its queue IDs, and delivered.
#[test]
fn issue_14_salvage_requeues_what_an_older_postern_could_not_read() {
    let t = template();
    let mut bytes = t.bytes.clone();
    let (start, end, _, _) = t.records[10];
    bytes[(start + end) / 2] ^= 0x01;
    let mut p = configure();
    let corrupt = p.queue_dir().join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    let file = corrupt.join(&t.name);
    std::fs::write(&file, &bytes).unwrap();
    p.launch();
    let f = file.to_str().unwrap();

    let dry = p.postern(&["queue", "salvage", "--dry-run", f]);
    let text = String::from_utf8_lossy(&dry.stdout).to_string();
    assert_eq!(dry.status.code(), Some(0), "{text}");
    assert!(text.contains("189 would be re-queued"), "{text}");
    assert!(!file.with_extension("log.salvaged").exists());

    let out = p.postern(&["queue", "salvage", f]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("{}: from=<s@example.org>, size=", t.records[11].2))
            && text.contains("189 re-queued as incoming/R"),
        "{text}"
    );
    // Held by the envelope as they were; released, delivered once each
    // under their own queue IDs.
    p.wait_log(": on hold", 189, 20);
    p.postern(&["queue", "release", "ALL"]);
    p.wait_delivered(&p.user, 189, 60);
    p.wait_log(": removed", 189, 20);
    let seen = delivered_tags(&p);
    for (i, (_, _, id, tag)) in t.records.iter().enumerate() {
        assert_eq!(
            seen.get(tag).copied().unwrap_or(0),
            usize::from(i > 10),
            "{i}"
        );
        if i > 10 {
            assert!(p.log().contains(&format!("{id}: to=<")), "{id}");
        }
    }
    // Twice is once.
    let again = p.postern(&["queue", "salvage", f]);
    let text = String::from_utf8_lossy(&again.stdout).to_string();
    assert_eq!(again.status.code(), Some(1), "{text}");
    assert!(text.contains("re-queued before"), "{text}");
    p.stop();
}

/// `n` messages to the local user and to a remote address that defers:
/// each leaves a Delivered and a Deferred record in the state log and
/// stays queued. Stops postern; the state file and the messages' IDs.
fn delivered_and_deferred(n: usize) -> (Postern, std::path::PathBuf, Vec<String>) {
    let mut p = Postern::start("");
    let tags: Vec<String> = (0..n).map(|i| format!("st-{i:03}")).collect();
    let rcpts = [format!("{}@localhost", p.user), "far@remote.example".into()];
    let ids = send_all(&p, &tags, &rcpts, "state log test");
    p.wait_delivered(&p.user, n, 30);
    p.wait_log("status=deferred", n, 30);
    p.stop();
    let state = p.queue_dir().join("state");
    let files: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    (p, files[0].clone(), ids)
}

/// After a restart on a damaged state log: every message held is logged
/// and listed as held (`must` among them), the others are tried again,
/// and nothing is delivered twice. The IDs held.
fn check_no_redelivery(p: &mut Postern, n: usize, must: &str) -> Vec<String> {
    p.launch();
    p.wait_log("state log damaged: ", 1, 20);
    let log = p.log();
    let held: Vec<String> = log
        .lines()
        .filter(|l| l.contains(": hold: state log damaged (state/"))
        .filter_map(|l| l.split("]: warning: ").nth(1)?.split(':').next())
        .map(String::from)
        .collect();
    let summary = format!(
        "state log damaged: {} message{} held, delivery status unknown",
        held.len(),
        if held.len() == 1 { "" } else { "s" }
    );
    assert!(log.contains(&summary), "{summary:?} not logged:\n{log}");
    assert!(held.iter().any(|h| h == must), "{must} not held:\n{log}");
    let listing = String::from_utf8_lossy(&p.postern(&["queue", "list"]).stdout).to_string();
    for id in &held {
        assert!(listing.contains(&format!("{id}!")), "{listing}");
    }
    // The others are tried again (their remote recipient), the local one
    // is not: wait for their retries, then count.
    let retried = n - held.len();
    p.wait_log("status=deferred", n + retried, 30);
    let seen = delivered_tags(p);
    assert_eq!(seen.len(), n);
    assert!(seen.values().all(|c| *c == 1), "delivered twice: {seen:?}");
    // The damaged state file is kept, not deleted at compaction.
    let kept = std::fs::read_dir(p.queue_dir().join("corrupt"))
        .unwrap()
        .flatten()
        .count();
    assert_eq!(kept, 1);
    held
}

#[test]
fn issue_14_a_flipped_byte_in_the_state_log_holds_that_message() {
    let n = 20;
    let (mut p, state, ids) = delivered_and_deferred(n);
    // The 6th Delivered record: a byte of its reason text.
    let bytes = std::fs::read(&state).unwrap();
    let (entries, _) = read_all(&bytes);
    let rec = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record(r) if r.rtype == RecordType::Delivered => Some(r),
            _ => None,
        })
        .nth(5)
        .unwrap();
    let text = String::from_utf8_lossy(&rec.payload).to_string();
    let id = ids
        .iter()
        .find(|id| text.contains(id.as_str()))
        .unwrap()
        .clone();
    let at = text.find("\"reason\":\"").unwrap() + 12;
    let mut bad = bytes.clone();
    bad[rec.payload_offset() as usize + at] ^= 0x01;
    std::fs::write(&state, &bad).unwrap();
    let held = check_no_redelivery(&mut p, n, &id);
    assert_eq!(held, vec![id.clone()]);
    assert!(p.log().contains(&format!(
        "at least 1 state record lost (records about {id})"
    )));
    p.stop();
}

#[test]
fn issue_14_a_damaged_first_byte_of_the_state_log_redelivers_nothing() {
    let n = 20;
    let (mut p, state, ids) = delivered_and_deferred(n);
    let mut bytes = std::fs::read(&state).unwrap();
    // Whose the first record was.
    let (entries, _) = read_all(&bytes);
    let Some(Entry::Record(first)) = entries.first() else {
        panic!("an empty state log")
    };
    let text = String::from_utf8_lossy(&first.payload).to_string();
    let first_id = ids.iter().find(|id| text.contains(id.as_str())).unwrap();
    bytes[0] ^= 0xFF;
    std::fs::write(&state, &bytes).unwrap();
    // Which message the first record was about cannot be told: every
    // message that may have had it is held (all those that arrived before
    // the next record was written; here, on an idle machine, all 20).
    let held = check_no_redelivery(&mut p, n, first_id);
    assert!(!held.is_empty());
    assert!(
        p.log()
            .contains("(which messages they were about is unknown)")
    );
    p.stop();
}

/// Issue 22, exactly once: a machine crash can lose both records of a
/// local delivery (the tail of the state log is appended lazily, and
/// local's delivery record lives in `/run`), so qmgr asks local again
/// after the restart. The Maildir file of the first attempt is durable
/// under a name every attempt shares: it is found, and no copy is added.
#[test]
fn issue_22_deliveries_whose_records_a_reboot_lost_are_not_made_twice() {
    let n = 10;
    let (mut p, state, _) = delivered_and_deferred(n);
    let bytes = std::fs::read(&state).unwrap();
    let (entries, _) = read_all(&bytes);
    let first = entries
        .iter()
        .find_map(|e| match e {
            Entry::Record(r) if r.rtype == RecordType::Delivered => Some(r.offset),
            _ => None,
        })
        .unwrap();
    std::fs::write(&state, &bytes[..first as usize]).unwrap();
    std::fs::remove_file(p.run_dir().join("local/deliveries.log")).unwrap();
    p.launch();
    p.wait_log(
        "(there already: an earlier attempt's answer was lost)",
        n,
        30,
    );
    let seen = delivered_tags(&p);
    assert_eq!(seen.len(), n);
    assert!(seen.values().all(|c| *c == 1), "delivered twice: {seen:?}");
    assert_eq!(p.delivered(&p.user).len(), n);
    p.stop();
}
