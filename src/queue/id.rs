//! Queue IDs: unique across restarts, sorting by arrival, safe as file names.
//!
//! An ID is the arrival time in microseconds since the epoch as 13 upper-case
//! hexadecimal digits, followed by one letter naming the writer (`A` for
//! smtpd, `B` for messages qmgr creates such as bounces). Within one process
//! the time is bumped so that two IDs are never equal; across restarts the
//! clock has moved on, and a writer that finds newer IDs on disk at start
//! (a clock stepped back) continues after them with [`IdGenerator::observe`].

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A parsed queue ID. Build one with [`IdGenerator::next`] or by parsing.
///
/// Held inline (its 14 ASCII bytes, no heap allocation): qmgr keeps an ID
/// in several maps and queues per message in its window, and a `String`
/// cost a 32-byte allocation besides its 24 bytes each time (issue 22).
/// The bytes sort as the text does.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueId([u8; ID_LEN]);

const TIME_DIGITS: usize = 13;
const ID_LEN: usize = TIME_DIGITS + 1;

impl QueueId {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked by `from_str`, made by
        // `IdGenerator::next`).
        std::str::from_utf8(&self.0).unwrap_or("?")
    }

    /// The arrival time encoded in the ID, in microseconds since the epoch.
    pub(crate) fn micros(&self) -> u64 {
        u64::from_str_radix(&self.as_str()[..TIME_DIGITS], 16).unwrap_or(0)
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("QueueId").field(&self.as_str()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad queue ID {0:?}")]
pub struct BadQueueId(String);

impl FromStr for QueueId {
    type Err = BadQueueId;
    fn from_str(s: &str) -> Result<QueueId, BadQueueId> {
        let b = s.as_bytes();
        let ok = b.len() == ID_LEN
            && b[..TIME_DIGITS]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
            && b[TIME_DIGITS].is_ascii_uppercase();
        match <[u8; ID_LEN]>::try_from(b) {
            Ok(a) if ok => Ok(QueueId(a)),
            _ => Err(BadQueueId(s.to_string())),
        }
    }
}

impl TryFrom<String> for QueueId {
    type Error = BadQueueId;
    fn try_from(s: String) -> Result<QueueId, BadQueueId> {
        s.parse()
    }
}

impl From<QueueId> for String {
    fn from(id: QueueId) -> String {
        id.as_str().to_string()
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl QueueId {
    /// The ID of arrival time `t` (microseconds; its low 52 bits) by the
    /// writer `tag` (an upper-case ASCII letter).
    fn made(t: u64, tag: char) -> QueueId {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut a = [0u8; ID_LEN];
        for (i, c) in a[..TIME_DIGITS].iter_mut().enumerate() {
            *c = HEX[((t >> (4 * (TIME_DIGITS - 1 - i))) & 0xF) as usize];
        }
        a[TIME_DIGITS] = if tag.is_ascii_uppercase() {
            tag as u8
        } else {
            b'X'
        };
        QueueId(a)
    }
}

/// Hands out IDs for one writer.
pub struct IdGenerator {
    tag: char,
    last: AtomicU64,
}

impl IdGenerator {
    /// `tag` must be an upper-case ASCII letter.
    pub(crate) const fn new(tag: char) -> IdGenerator {
        IdGenerator {
            tag,
            last: AtomicU64::new(0),
        }
    }

    /// Never hand out an ID at or before `id` (used at start with the newest
    /// ID found on disk).
    pub(crate) fn observe(&self, id: &QueueId) {
        self.last.fetch_max(id.micros(), Ordering::SeqCst);
    }

    pub(crate) fn next(&self) -> QueueId {
        let now = now_micros();
        let mut prev = self.last.load(Ordering::SeqCst);
        loop {
            let t = now.max(prev + 1);
            match self
                .last
                .compare_exchange(prev, t, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return QueueId::made(t, self.tag),
                Err(p) => prev = p,
            }
        }
    }
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sorted() {
        let g = IdGenerator::new('A');
        let ids: Vec<QueueId> = (0..1000).map(|_| g.next()).collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1]);
        }
        assert_eq!(ids[0].as_str().len(), 14);
        let parsed: QueueId = ids[5].as_str().parse().unwrap();
        assert_eq!(parsed, ids[5]);
    }

    #[test]
    fn made_ids_read_as_the_time_in_hex() {
        for t in [0, 1, 0x18C2_F3A4_B5C6, now_micros(), (1 << 52) - 1] {
            let id = QueueId::made(t, 'A');
            assert_eq!(id.as_str(), format!("{t:013X}A"));
            assert_eq!(id.micros(), t);
            assert_eq!(id.as_str().parse::<QueueId>().unwrap(), id);
            assert_eq!(format!("{id:?}"), format!("QueueId(\"{t:013X}A\")"));
        }
    }

    #[test]
    fn observe_moves_past_a_future_id() {
        let g = IdGenerator::new('A');
        let future: QueueId = format!("{:013X}A", now_micros() + 10_000_000)
            .parse()
            .unwrap();
        g.observe(&future);
        assert!(g.next() > future);
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in ["", "../etc/passwd", "0000000000000a", "00000000000000A"] {
            assert!(bad.parse::<QueueId>().is_err(), "{bad}");
        }
    }
}
