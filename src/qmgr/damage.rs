//! Judging damage to qmgr's state log at recovery (issue 14, item 5).
//!
//! A damaged range of the state log held records that are lost: a
//! `Delivered` or `Bounced` (the recipient would be delivered again), a
//! `hold` or `delete` (held or deleted mail would go out), a snapshot. So a
//! message that may have had a record there is held, not delivered, and
//! the administrator releases it (`postern queue release`) once they have
//! looked. Which messages:
//!
//! - when every record in the range can still be told (its header checks,
//!   so the range is a chain of whole records, and each one's `"id"`
//!   agrees with its `"ck"`, see [`super::state::verified_id`]): exactly
//!   the messages they were about;
//! - otherwise any message, except one that a later intact record
//!   describes whole (a `Snapshot`, or a `delete`: records before it no
//!   longer matter), and one that arrived after the range was written (the
//!   range is older than the first intact record after it, by that
//!   record's `at` stamp, or than the next state file, by its name; give or
//!   take [`CLOCK_SLACK_US`] for the order of writes within a batch and a
//!   clock stepped back). With no date at all, every message.
//!
//! A torn tail of the state log (a write cut short by a crash) is not
//! damage: those records were written lazily, and the documented
//! consequence of a crash is a delivery repeated, never one lost.

use std::collections::HashMap;

use super::state::{AdminOp, StateRecord, verified_id};
use crate::queue::QueueId;
use crate::queue::record::{HEADER_LEN, damaged_records};

/// How much later than the range's date a message may have arrived and
/// still have had a record in it.
pub(crate) const CLOCK_SLACK_US: u64 = 10_000_000;

/// Where a record or a range lies: (file number in replay order, offset).
type Pos = (usize, u64);

/// One damaged range of the state log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DamagedRange {
    /// The file, relative to the queue directory (`state/<ID>.log`).
    pub file: String,
    pub start: u64,
    pub end: u64,
    file_no: usize,
    /// The messages whose records the range held, when all of them can be
    /// told; `None`: any message may have had a record there.
    pub ids: Option<Vec<QueueId>>,
    /// The records in the range were written no later than this
    /// (microseconds since the epoch); `u64::MAX` when unknown.
    written_by: u64,
}

/// Damage found while reading the state log, and what is needed to judge
/// it.
#[derive(Debug, Default)]
pub(crate) struct StateDamage {
    ranges: Vec<DamagedRange>,
    /// Per message, the last record that describes it whole.
    resets: HashMap<QueueId, Pos>,
    /// Ranges still waiting for a date.
    undated: Vec<usize>,
    file_no: usize,
}

impl StateDamage {
    /// The next state file begins, created at `created_us` (0: unknown):
    /// ranges of the files before were written before it.
    pub(crate) fn next_file(&mut self, file_no: usize, created_us: u64) {
        self.file_no = file_no;
        if created_us > 0 {
            self.date(created_us);
        }
    }

    /// An intact record at `offset` of the current file, written at
    /// `written_us` if it says.
    pub(crate) fn record(&mut self, offset: u64, rec: &StateRecord, written_us: Option<u64>) {
        let whole = match rec {
            StateRecord::Snapshot(_) => true,
            StateRecord::Admin(a) => a.op == AdminOp::Delete,
            _ => false,
        };
        if whole {
            self.resets.insert(rec.id().clone(), (self.file_no, offset));
        }
        if let Some(at) = written_us {
            self.date(at);
        }
    }

    /// A damaged range `start..end` of the current file `file`; `bytes`
    /// its content when it could be read.
    pub(crate) fn damaged(&mut self, file: &str, start: u64, end: u64, bytes: Option<&[u8]>) {
        self.undated.push(self.ranges.len());
        self.ranges.push(DamagedRange {
            file: file.to_string(),
            start,
            end,
            file_no: self.file_no,
            ids: bytes.and_then(attribute),
            written_by: u64::MAX,
        });
    }

    fn date(&mut self, at: u64) {
        for i in self.undated.drain(..) {
            self.ranges[i].written_by = at;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The last range found.
    pub(crate) fn last(&self) -> Option<&DamagedRange> {
        self.ranges.last()
    }

    /// A damaged range that may have held a record about message `id`,
    /// which arrived at `arrival_us` (see the module doc).
    pub(crate) fn suspect(&self, id: &QueueId, arrival_us: u64) -> Option<&DamagedRange> {
        let reset = self.resets.get(id);
        self.ranges.iter().find(|r| {
            if reset.is_some_and(|p| *p >= (r.file_no, r.end)) {
                return false;
            }
            match &r.ids {
                Some(ids) => ids.contains(id),
                None => arrival_us <= r.written_by.saturating_add(CLOCK_SLACK_US),
            }
        })
    }
}

/// The messages the state records in a damaged range were about, if every
/// one of them can be told: the range is a chain of records whose headers
/// check, from its start to its end, each naming a verified ID.
pub(crate) fn attribute(range: &[u8]) -> Option<Vec<QueueId>> {
    let found = damaged_records(range);
    let last = found.last()?;
    let whole = found[0].at == 0
        && found.iter().all(|d| d.chained)
        && last.at + HEADER_LEN + last.payload_len as usize == range.len();
    if !whole {
        return None;
    }
    found.iter().map(|d| verified_id(d.payload)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qmgr::state::{Admin, Outcome, Snapshot};
    use crate::queue::record::{RecordType, encode_into};

    fn id(n: u64) -> QueueId {
        format!("{:013X}A", n).parse().unwrap()
    }

    fn delivered(n: u64) -> StateRecord {
        StateRecord::Delivered(Outcome {
            id: id(n),
            rcpt: 0,
            dsn: "2.0.0".into(),
            reason: "delivered to maildir".into(),
            until: 0,
        })
    }

    fn snapshot(n: u64) -> StateRecord {
        StateRecord::Snapshot(Snapshot {
            id: id(n),
            deferred: false,
            finished: false,
            held: false,
            warned: false,
            rcpts: vec![],
        })
    }

    /// Records as a state log, with each one's (start, end).
    fn log(records: &[(StateRecord, u64)]) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut out = Vec::new();
        let mut spans = Vec::new();
        for (r, at) in records {
            let (t, p) = r.encode_at(*at);
            let start = out.len();
            encode_into(&mut out, t, &p).unwrap();
            spans.push((start, out.len()));
        }
        (out, spans)
    }

    #[test]
    fn a_damaged_payload_is_attributed_to_its_message() {
        let (mut bytes, spans) = log(&[(delivered(1), 10), (delivered(2), 11)]);
        // A flipped bit in the reason text of the second record.
        bytes[spans[1].1 - 5] ^= 0x20;
        let range = &bytes[spans[1].0..spans[1].1];
        assert_eq!(attribute(range), Some(vec![id(2)]));
        // Two records, both damaged in their payloads.
        bytes[spans[0].1 - 5] ^= 0x20;
        assert_eq!(attribute(&bytes), Some(vec![id(1), id(2)]));
    }

    #[test]
    fn a_damaged_header_or_id_cannot_be_attributed() {
        let (bytes, spans) = log(&[(delivered(1), 10), (delivered(2), 11)]);
        let mut bad = bytes.clone();
        bad[0] = 0;
        assert_eq!(attribute(&bad[..spans[0].1]), None);
        // The ID itself damaged: it no longer agrees with its check.
        let mut bad = bytes.clone();
        let at = bad.windows(6).position(|w| w == b"\"id\":\"").unwrap() + 19;
        bad[at] ^= 0x02;
        assert_eq!(attribute(&bad[..spans[0].1]), None);
        // A range that is not exactly whole records.
        assert_eq!(attribute(&bytes[..spans[0].1 - 1]), None);
        assert_eq!(attribute(&bytes[1..spans[0].1]), None);
        assert_eq!(attribute(&[]), None);
        // Records from before the check existed.
        let mut old = Vec::new();
        encode_into(
            &mut old,
            RecordType::Delivered,
            br#"{"id":"0000000000001A","rcpt":0,"dsn":"2.0.0","reason":"x"}"#,
        )
        .unwrap();
        assert_eq!(attribute(&old), None);
    }

    #[test]
    fn attributed_damage_holds_only_its_messages() {
        let mut d = StateDamage::default();
        d.next_file(0, 0);
        d.record(0, &delivered(1), Some(100));
        let (bytes, _) = log(&[(delivered(2), 150)]);
        d.damaged("state/x.log", 50, 80, Some(&bytes));
        d.record(80, &delivered(3), Some(200));
        assert!(d.suspect(&id(2), 0).is_some());
        assert!(d.suspect(&id(1), 0).is_none());
        assert!(d.suspect(&id(3), 0).is_none());
    }

    #[test]
    fn unattributed_damage_holds_what_may_have_been_there() {
        let mut d = StateDamage::default();
        d.next_file(0, 1_000);
        d.record(0, &snapshot(1), Some(1_000));
        d.record(10, &snapshot(2), Some(1_000));
        d.damaged("state/x.log", 20, 40, None);
        // Dated by the next intact record.
        d.record(40, &delivered(9), Some(50_000_000));
        d.record(60, &snapshot(3), Some(50_000_001));
        // 1 and 2 were described whole before the damage: suspect.
        assert!(d.suspect(&id(1), 500).is_some());
        // 3 is described whole after it.
        assert!(d.suspect(&id(3), 500).is_none());
        // Arrived long after the range was written.
        assert!(d.suspect(&id(4), 50_000_000 + CLOCK_SLACK_US + 1).is_none());
        assert!(d.suspect(&id(4), 50_000_000 + CLOCK_SLACK_US).is_some());
        // A delete after the damage describes a message whole too.
        d.record(
            80,
            &StateRecord::Admin(Admin {
                id: id(5),
                op: AdminOp::Delete,
            }),
            None,
        );
        assert!(d.suspect(&id(5), 0).is_none());
    }

    #[test]
    fn undated_damage_is_dated_by_the_next_file_or_not_at_all() {
        let mut d = StateDamage::default();
        d.next_file(0, 0);
        d.damaged("state/a.log", 0, 10, None);
        d.next_file(1, 2_000_000_000);
        d.record(0, &snapshot(1), None);
        d.damaged("state/b.log", 30, 40, None);
        // The first range is older than the second file.
        assert_eq!(
            d.suspect(&id(7), 2_000_000_000 + CLOCK_SLACK_US + 1)
                .map(|r| r.file.as_str()),
            Some("state/b.log")
        );
        // The second has no date: any message may have been in it.
        assert!(d.suspect(&id(8), u64::MAX - 1).is_some());
        // 1's snapshot is after the first range, not after the second.
        assert_eq!(
            d.suspect(&id(1), 0).map(|r| r.file.as_str()),
            Some("state/b.log")
        );
    }
}
