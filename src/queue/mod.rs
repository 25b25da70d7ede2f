//! The queue: an append-only log with group commit (DESIGN.md, "The queue").
//!
//! Layout under the queue directory (owned by the postern user, 0700):
//!
//! | path | written by | what |
//! |---|---|---|
//! | `incoming/S<ID>.log` | smtpd | segments: one record per accepted message |
//! | `incoming/<ID>.msg` | smtpd | content of a message above the large-message threshold |
//! | `state/<ID>.log` | qmgr | outcome records (delivered, deferred, bounced, moved) |
//! | `deferred/<ID>` | qmgr | a long-deferred message as a file of its own |
//! | `incoming/R<ID>.log` | `postern queue salvage` | messages re-queued from a damaged file |
//! | `hold/`, `corrupt/` | qmgr | rare paths, files easy to inspect |
//! | `corrupt/<name>.done` | qmgr | the messages it read from a damaged segment kept there |
//!
//! Every log file is a sequence of records (see [`record`]): length,
//! checksum and type, so a torn tail after a crash is detected and ignored,
//! and damage costs only the records it touches (the reader finds the next
//! valid record and reports the range it skipped).

pub(crate) mod envelope;
pub(crate) mod id;
pub(crate) mod log;
pub mod message;
pub(crate) mod owner;
pub mod record;
pub mod salvage;
pub(crate) mod space;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub(crate) use envelope::{Body, Client, Envelope, Recipient, Ret};
pub use id::{IdGenerator, QueueId, now_micros};

pub const INCOMING: &str = "incoming";
pub(crate) const STATE: &str = "state";
pub(crate) const DEFERRED: &str = "deferred";
pub(crate) const HOLD: &str = "hold";
pub(crate) const CORRUPT: &str = "corrupt";

/// Every subdirectory of the queue, created at start.
pub const SUBDIRS: [&str; 5] = [INCOMING, STATE, DEFERRED, HOLD, CORRUPT];

/// Where a message's content lies, relative to the queue directory. The
/// agents are given this and open the file read-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ContentRef {
    /// `len` bytes at `offset` of a log segment (or of a deferred file).
    Segment { path: String, offset: u64, len: u64 },
    /// A whole file of its own (large messages).
    File { path: String, len: u64 },
}

impl ContentRef {
    /// (relative path, offset, length).
    pub(crate) fn span(&self) -> (&str, u64, u64) {
        match self {
            ContentRef::Segment { path, offset, len } => (path, *offset, *len),
            ContentRef::File { path, len } => (path, 0, *len),
        }
    }

    /// Absolute path of the file holding the content.
    pub(crate) fn file_in(&self, queue_dir: &Path) -> PathBuf {
        queue_dir.join(self.span().0)
    }
}
