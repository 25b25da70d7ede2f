//! qmgr's records in `queue/state/` and the in-memory state of the queue
//! they describe.
//!
//! Record payloads are JSON (see [`StateRecord`]), framed by
//! [`crate::queue::record`]. Replay rules:
//!
//! * `Delivered`, `Bounced`, `Deferred` set one recipient's state;
//! * `Moved` says the message now lives in `deferred/<ID>` with only its
//!   pending recipients, renumbered: records before it no longer apply;
//! * `Admin` is an administrator's operation: `hold` and `release` set
//!   whether the message may be delivered, `delete` finishes it;
//! * `Warned` says the delay warning went out (never twice);
//! * `Snapshot` states a message's whole state at the time it was written
//!   (or, with `finished`, that the message is done and only its segment
//!   copy remains): records before it no longer apply.
//!
//! Every record also carries `at`, when it was written (microseconds since
//! the epoch), and `ck`, the CRC-32 of its queue ID, so that a record whose
//! own checksum failed can still be told apart ([`verified_id`]) and damage
//! can be dated (see `qmgr/damage.rs`). Both are ignored by [`replay`];
//! records written before they existed lack them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::queue::record::RecordType;
use crate::queue::{QueueId, now_micros};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub id: QueueId,
    pub rcpt: usize,
    pub dsn: String,
    pub reason: String,
    /// Deferred: next attempt, microseconds since the epoch.
    #[serde(default)]
    pub until: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Moved {
    pub id: QueueId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AdminOp {
    Hold,
    Release,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Admin {
    pub id: QueueId,
    pub op: AdminOp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SnapState {
    Pending,
    Done,
    Bounced,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapRcpt {
    pub state: SnapState,
    #[serde(default)]
    pub until: u64,
    /// Why the last attempt failed (for `mailq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub id: QueueId,
    /// The message lives in `deferred/` (indices refer to that copy).
    #[serde(default)]
    pub deferred: bool,
    /// The message is finished; only its segment copy may remain.
    #[serde(default)]
    pub finished: bool,
    /// On hold: kept, not delivered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// The delay warning went out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warned: bool,
    #[serde(default)]
    pub rcpts: Vec<SnapRcpt>,
}

impl Snapshot {
    /// The snapshot of a finished message: nothing left of it but,
    /// perhaps, its segment copy.
    pub(crate) fn finished(id: QueueId) -> Snapshot {
        Snapshot {
            id,
            deferred: false,
            finished: true,
            held: false,
            warned: false,
            rcpts: vec![],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StateRecord {
    Delivered(Outcome),
    Bounced(Outcome),
    Deferred(Outcome),
    Moved(Moved),
    Snapshot(Snapshot),
    Admin(Admin),
    Warned(Moved),
}

impl StateRecord {
    pub(crate) fn id(&self) -> &QueueId {
        match self {
            StateRecord::Delivered(o) | StateRecord::Bounced(o) | StateRecord::Deferred(o) => &o.id,
            StateRecord::Moved(m) => &m.id,
            StateRecord::Snapshot(s) => &s.id,
            StateRecord::Admin(a) => &a.id,
            StateRecord::Warned(w) => &w.id,
        }
    }

    /// The record's type and payload, stamped with the time now.
    pub(crate) fn encode(&self) -> (RecordType, Vec<u8>) {
        self.encode_at(now_micros())
    }

    /// The record's type and payload, stamped `at` (see the module doc).
    pub(crate) fn encode_at(&self, at: u64) -> (RecordType, Vec<u8>) {
        let json = match self {
            StateRecord::Delivered(o) | StateRecord::Bounced(o) | StateRecord::Deferred(o) => {
                serde_json::to_vec(o)
            }
            StateRecord::Moved(m) => serde_json::to_vec(m),
            StateRecord::Snapshot(s) => serde_json::to_vec(s),
            StateRecord::Admin(a) => serde_json::to_vec(a),
            StateRecord::Warned(w) => serde_json::to_vec(w),
        };
        // Serializing these plain structs cannot fail; each is an object,
        // never empty (it has its `id`): `at` and `ck` go first, written in
        // place (not through a `Value` map; readers look fields up by
        // name, in any order).
        let body = json.unwrap_or_default();
        let mut json = Vec::with_capacity(body.len() + 40);
        match body.strip_prefix(b"{") {
            Some(rest) => {
                let ck = id_check(self.id());
                json.extend_from_slice(format!("{{\"at\":{at},\"ck\":{ck},").as_bytes());
                json.extend_from_slice(rest);
            }
            None => json = body,
        }
        let t = match self {
            StateRecord::Delivered(_) => RecordType::Delivered,
            StateRecord::Bounced(_) => RecordType::Bounced,
            StateRecord::Deferred(_) => RecordType::Deferred,
            StateRecord::Moved(_) => RecordType::Moved,
            StateRecord::Snapshot(_) => RecordType::Snapshot,
            StateRecord::Admin(_) => RecordType::Admin,
            StateRecord::Warned(_) => RecordType::Warned,
        };
        (t, json)
    }

    pub(crate) fn decode(t: RecordType, payload: &[u8]) -> Option<StateRecord> {
        Some(match t {
            RecordType::Delivered => StateRecord::Delivered(serde_json::from_slice(payload).ok()?),
            RecordType::Bounced => StateRecord::Bounced(serde_json::from_slice(payload).ok()?),
            RecordType::Deferred => StateRecord::Deferred(serde_json::from_slice(payload).ok()?),
            RecordType::Moved => StateRecord::Moved(serde_json::from_slice(payload).ok()?),
            RecordType::Snapshot => StateRecord::Snapshot(serde_json::from_slice(payload).ok()?),
            RecordType::Admin => StateRecord::Admin(serde_json::from_slice(payload).ok()?),
            RecordType::Warned => StateRecord::Warned(serde_json::from_slice(payload).ok()?),
            _ => return None,
        })
    }
}

/// When a record was written, if it says (see the module doc).
pub(crate) fn written_at(payload: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Stamp {
        #[serde(default)]
        at: u64,
    }
    serde_json::from_slice::<Stamp>(payload)
        .ok()
        .map(|s| s.at)
        .filter(|&at| at > 0)
}

/// The `ck` field of a record about `id`.
fn id_check(id: &QueueId) -> u32 {
    crc32fast::hash(id.as_str().as_bytes())
}

/// The queue ID a state record's payload is about, if it can be trusted
/// although the record's checksum failed: its `"id"` and its `"ck"` (the
/// ID's CRC-32) agree. Total on any bytes.
pub(crate) fn verified_id(payload: &[u8]) -> Option<QueueId> {
    const ID: &[u8] = b"\"id\":\"";
    const CK: &[u8] = b"\"ck\":";
    let ck_at = find(payload, CK, 0)? + CK.len();
    let digits: &[u8] = {
        let rest = &payload[ck_at..];
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        &rest[..n.min(10)]
    };
    let ck: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let mut from = 0;
    while let Some(at) = find(payload, ID, from) {
        from = at + 1;
        let start = at + ID.len();
        let Some(text) = payload.get(start..start + 14) else {
            continue;
        };
        if payload.get(start + 14) != Some(&b'"') {
            continue;
        }
        let Some(id) = std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<QueueId>().ok())
        else {
            continue;
        };
        if id_check(&id) == ck {
            return Some(id);
        }
    }
    None
}

/// The first index at or after `from` where `needle` occurs in `hay`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// What replaying the state log says about one message.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// The message was moved to `deferred/`; `records` refer to that copy.
    pub moved: bool,
    /// A snapshot (or a delete) said the message is finished.
    pub finished: bool,
    /// On hold.
    pub held: bool,
    /// `held` was set by a record (hold, release, snapshot), so it wins
    /// over the envelope's hold flag (smtpd's HOLD at queue time).
    pub held_known: bool,
    /// The delay warning went out.
    pub warned: bool,
    /// Records to apply, in order, after the last Moved/Snapshot reset.
    pub records: Vec<StateRecord>,
    /// Something was recorded after the last `Moved`: the `deferred/`
    /// file's own Snapshot is not the whole truth (see
    /// `engine/evict.rs`).
    pub after_move: bool,
    /// Held or released after the last `Moved` (a snapshot counts).
    pub held_after_move: Option<bool>,
}

/// Fold a sequence of state records (in log order) per message.
#[cfg(test)]
pub(crate) fn replay(records: impl IntoIterator<Item = StateRecord>) -> HashMap<QueueId, Replayed> {
    let mut map: HashMap<QueueId, Replayed> = HashMap::new();
    for r in records {
        replay_one(&mut map, r);
    }
    map
}

/// Fold one more state record (in log order) into `map`: recovery reads
/// the state log a record at a time, never holding it whole.
pub(crate) fn replay_one(map: &mut HashMap<QueueId, Replayed>, r: StateRecord) {
    {
        let e = map.entry(r.id().clone()).or_default();
        match &r {
            StateRecord::Moved(_) => {
                e.moved = true;
                e.finished = false;
                e.records.clear();
                e.after_move = false;
                e.held_after_move = None;
                return;
            }
            _ => e.after_move = true,
        }
        match &r {
            StateRecord::Moved(_) => {}
            StateRecord::Warned(_) => e.warned = true,
            StateRecord::Admin(a) => match a.op {
                AdminOp::Hold => {
                    (e.held, e.held_known) = (true, true);
                    e.held_after_move = Some(true);
                }
                AdminOp::Release => {
                    (e.held, e.held_known) = (false, true);
                    e.held_after_move = Some(false);
                }
                AdminOp::Delete => {
                    e.finished = true;
                    e.records.clear();
                }
            },
            StateRecord::Snapshot(s) => {
                e.held_after_move = Some(s.held);
                e.moved = s.deferred;
                e.finished = s.finished;
                e.held = s.held;
                e.held_known = true;
                e.warned = s.warned;
                e.records.clear();
                if !s.finished {
                    e.records.push(r.clone());
                }
            }
            _ => e.records.push(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> QueueId {
        format!("{:013X}A", n).parse().unwrap()
    }

    fn out(n: u8, rcpt: usize) -> Outcome {
        Outcome {
            id: id(n),
            rcpt,
            dsn: "2.0.0".into(),
            reason: "x".into(),
            until: 0,
        }
    }

    #[test]
    fn records_round_trip() {
        let r = StateRecord::Deferred(out(1, 2));
        let (t, p) = r.encode();
        assert_eq!(StateRecord::decode(t, &p), Some(r));
    }

    #[test]
    fn records_are_stamped_and_their_id_checked() {
        let r = StateRecord::Delivered(out(7, 0));
        let (_, p) = r.encode_at(1234);
        assert_eq!(written_at(&p), Some(1234));
        assert_eq!(verified_id(&p), Some(id(7)));
        // A record from before the stamps.
        let old = br#"{"id":"0000000000007A","rcpt":0,"dsn":"2.0.0","reason":"x"}"#;
        assert_eq!(StateRecord::decode(RecordType::Delivered, old), Some(r));
        assert_eq!(written_at(old), None);
        assert_eq!(verified_id(old), None);
        // A damaged byte in the ID (or in the check) is caught; elsewhere
        // it leaves the ID readable.
        let id_at = p.windows(5).position(|w| w == b"\"id\":").unwrap() + 6;
        for at in 0..p.len() {
            let mut bad = p.clone();
            bad[at] ^= 0x01;
            if let Some(found) = verified_id(&bad) {
                assert_eq!(found, id(7), "byte {at}");
            }
            if (id_at..id_at + 14).contains(&at) {
                assert_eq!(verified_id(&bad), None, "byte {at}");
            }
        }
        assert_eq!(verified_id(b""), None);
        assert_eq!(verified_id(b"\"ck\":99999999999999\"id\":\""), None);
    }

    #[test]
    fn moved_resets_earlier_records() {
        let m = replay([
            StateRecord::Delivered(out(1, 0)),
            StateRecord::Moved(Moved { id: id(1) }),
            StateRecord::Deferred(out(1, 0)),
            StateRecord::Delivered(out(2, 0)),
        ]);
        let one = &m[&id(1)];
        assert!(one.moved);
        assert_eq!(one.records, vec![StateRecord::Deferred(out(1, 0))]);
        assert!(!m[&id(2)].moved);
    }

    #[test]
    fn finished_snapshot() {
        let m = replay([
            StateRecord::Delivered(out(1, 0)),
            StateRecord::Snapshot(Snapshot::finished(id(1))),
        ]);
        assert!(m[&id(1)].finished);
        assert!(m[&id(1)].records.is_empty());
    }

    #[test]
    fn admin_records() {
        let admin = |n, op| StateRecord::Admin(Admin { id: id(n), op });
        let m = replay([
            admin(1, AdminOp::Hold),
            StateRecord::Deferred(out(1, 0)),
            admin(2, AdminOp::Hold),
            admin(2, AdminOp::Release),
            StateRecord::Delivered(out(3, 0)),
            admin(3, AdminOp::Delete),
        ]);
        assert!(m[&id(1)].held);
        assert_eq!(m[&id(1)].records.len(), 1);
        assert!(!m[&id(2)].held);
        // A release is known: it wins over smtpd's hold flag.
        assert!(m[&id(2)].held_known);
        // Records that say nothing about holding leave the flag in charge.
        assert!(!m[&id(3)].held_known);
        assert!(m[&id(3)].finished);
        let r = admin(1, AdminOp::Delete);
        let (t, p) = r.encode();
        assert_eq!(StateRecord::decode(t, &p), Some(r));
    }
}
