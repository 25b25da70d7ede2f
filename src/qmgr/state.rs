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

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::queue::QueueId;
use crate::queue::record::RecordType;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: QueueId,
    pub rcpt: usize,
    pub dsn: String,
    pub reason: String,
    /// Deferred: next attempt, microseconds since the epoch.
    #[serde(default)]
    pub until: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub id: QueueId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminOp {
    Hold,
    Release,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    pub id: QueueId,
    pub op: AdminOp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapState {
    Pending,
    Done,
    Bounced,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapRcpt {
    pub state: SnapState,
    #[serde(default)]
    pub until: u64,
    /// Why the last attempt failed (for `mailq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateRecord {
    Delivered(Outcome),
    Bounced(Outcome),
    Deferred(Outcome),
    Moved(Moved),
    Snapshot(Snapshot),
    Admin(Admin),
    Warned(Moved),
}

impl StateRecord {
    pub fn id(&self) -> &QueueId {
        match self {
            StateRecord::Delivered(o) | StateRecord::Bounced(o) | StateRecord::Deferred(o) => &o.id,
            StateRecord::Moved(m) => &m.id,
            StateRecord::Snapshot(s) => &s.id,
            StateRecord::Admin(a) => &a.id,
            StateRecord::Warned(w) => &w.id,
        }
    }

    pub fn encode(&self) -> (RecordType, Vec<u8>) {
        let json = match self {
            StateRecord::Delivered(o) | StateRecord::Bounced(o) | StateRecord::Deferred(o) => {
                serde_json::to_vec(o)
            }
            StateRecord::Moved(m) => serde_json::to_vec(m),
            StateRecord::Snapshot(s) => serde_json::to_vec(s),
            StateRecord::Admin(a) => serde_json::to_vec(a),
            StateRecord::Warned(w) => serde_json::to_vec(w),
        };
        let t = match self {
            StateRecord::Delivered(_) => RecordType::Delivered,
            StateRecord::Bounced(_) => RecordType::Bounced,
            StateRecord::Deferred(_) => RecordType::Deferred,
            StateRecord::Moved(_) => RecordType::Moved,
            StateRecord::Snapshot(_) => RecordType::Snapshot,
            StateRecord::Admin(_) => RecordType::Admin,
            StateRecord::Warned(_) => RecordType::Warned,
        };
        // Serializing these plain structs cannot fail.
        (t, json.unwrap_or_default())
    }

    pub fn decode(t: RecordType, payload: &[u8]) -> Option<StateRecord> {
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

/// What replaying the state log says about one message.
#[derive(Debug, Default)]
pub struct Replayed {
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
}

/// Fold a sequence of state records (in log order) per message.
pub fn replay(records: impl IntoIterator<Item = StateRecord>) -> HashMap<QueueId, Replayed> {
    let mut map: HashMap<QueueId, Replayed> = HashMap::new();
    for r in records {
        let e = map.entry(r.id().clone()).or_default();
        match &r {
            StateRecord::Moved(_) => {
                e.moved = true;
                e.finished = false;
                e.records.clear();
            }
            StateRecord::Warned(_) => e.warned = true,
            StateRecord::Admin(a) => match a.op {
                AdminOp::Hold => (e.held, e.held_known) = (true, true),
                AdminOp::Release => (e.held, e.held_known) = (false, true),
                AdminOp::Delete => {
                    e.finished = true;
                    e.records.clear();
                }
            },
            StateRecord::Snapshot(s) => {
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
    map
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
            StateRecord::Snapshot(Snapshot {
                id: id(1),
                deferred: false,
                finished: true,
                held: false,
                warned: false,
                rcpts: vec![],
            }),
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
