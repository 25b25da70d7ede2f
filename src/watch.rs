//! Noticing that a file changed: the tables that daemons read again by
//! themselves (aliases, transport maps) compare a [`Stamp`] of each file.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// How often a file that is read again when it changes is looked at, at
/// most: a `stat` per file per second, whatever the traffic.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Device, inode, size and modification time (ns) of a file; `None` when
/// it does not exist. Replacing the file (rename) or editing it in place
/// both change it.
pub(crate) type Stamp = Option<(u64, u64, u64, i64)>;

/// The [`Stamp`] of `path` now.
pub(crate) fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
    ))
}
