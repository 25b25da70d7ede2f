//! Why the queue manager stops, sorted by blame. qmgr has no network
//! peer: what an agent reports is an outcome, and an agent that fails or
//! vanishes is retried (`engine/outcomes.rs`); a damaged queue file is
//! held or kept in `corrupt/` (`damage.rs`). What is left stops qmgr, and
//! only at start:

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub(crate) enum QmgrError {
    /// Configuration: the queue belongs to another queue manager (two
    /// instances configured with one `queue.directory`). Restarting
    /// cannot cure it: the role exits with EX_CONFIG.
    #[error("{0}")]
    Owned(String),
    /// System: a directory of the queue cannot be opened for writing.
    #[error("cannot open {what} in {}", dir.display())]
    Open {
        what: &'static str,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// System: a socket, the signal handler, reading the queue at start.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl QmgrError {
    /// The error for the role's caller: configuration faults as
    /// [`crate::ipc::Unrecoverable`] (exit 78, not restarted), the rest
    /// with their causes chained.
    pub(crate) fn into_anyhow(self) -> anyhow::Error {
        match self {
            QmgrError::Owned(why) => crate::ipc::Unrecoverable(why).into(),
            e => e.into(),
        }
    }
}
