//! The transport table as qmgr uses it: built from the configuration
//! (inline `relay.transport`, then `relay.transport_files`) and built again
//! when a file changes on disk, checked at most once a second, so edits
//! take effect without a reload or a restart.
//!
//! Unlike the alias files, a transport file that cannot be read (missing,
//! unreadable) makes the whole table unavailable: routing mail as if its
//! entries were not there could send it somewhere the administrator did
//! not mean, so qmgr defers instead (`4.3.0`), as Postfix does when a
//! table cannot be opened. Bad lines are logged with FILE:LINE when the
//! table is built.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Transport;
use super::table::{Severity, TransportTable, parse_file};
use crate::config::Config;
use crate::watch::{CHECK_EVERY, Stamp, stamp};

/// The current transport table, or why there is none.
pub type Current = Result<Arc<TransportTable>, String>;

pub struct LiveTransport {
    inline: std::collections::BTreeMap<String, Transport>,
    files: Vec<PathBuf>,
    inner: Mutex<Inner>,
}

struct Inner {
    current: Option<Current>,
    stamps: Vec<Stamp>,
    checked: Option<Instant>,
}

impl LiveTransport {
    pub(crate) fn from_config(config: &Config) -> LiveTransport {
        LiveTransport {
            inline: config.relay.transport.clone(),
            files: config.relay.transport_files.clone(),
            inner: Mutex::new(Inner {
                current: None,
                stamps: Vec::new(),
                checked: None,
            }),
        }
    }

    /// The current table, built again if a file changed.
    pub(crate) fn table(&self) -> Current {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = inner.checked.is_some_and(|t| t.elapsed() < CHECK_EVERY);
        if let (true, Some(current)) = (fresh, &inner.current) {
            return current.clone();
        }
        inner.checked = Some(Instant::now());
        let stamps: Vec<Stamp> = self.files.iter().map(|p| stamp(p)).collect();
        // A table that failed is tried again every time (a permission
        // fixed with chmod leaves the stamp as it was).
        if let Some(current @ Ok(_)) = &inner.current
            && stamps == inner.stamps
        {
            return current.clone();
        }
        let previous = inner.current.take();
        let current = self.build();
        match (&previous, &current) {
            (Some(_), Ok(_)) => log::info!("transport table reloaded"),
            (Some(Err(old)), Err(e)) if old == e => {}
            (_, Err(e)) => log::warn!("{e}; mail is deferred until it is fixed"),
            (None, Ok(_)) => {}
        }
        inner.current = Some(current.clone());
        inner.stamps = stamps;
        current
    }

    fn build(&self) -> Current {
        let mut files = Vec::with_capacity(self.files.len());
        for path in &self.files {
            let text = read(path)?;
            let (file, diagnostics) = parse_file(&text, path);
            for d in diagnostics {
                match d.severity {
                    Severity::Warning => log::warn!("{d}"),
                    Severity::Error => log::error!("{d}"),
                }
            }
            files.push(file);
        }
        Ok(Arc::new(TransportTable::new(&self.inline, files)))
    }
}

/// A transport file's text (invalid UTF-8 replaced), or why not.
pub fn read(path: &Path) -> Result<String, String> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| format!("transport table {} unavailable: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reloads_when_a_file_changes_and_fails_while_one_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("transport");
        let mut config = Config::builtin();
        config.relay.transport_files = vec![file.clone()];
        config
            .relay
            .transport
            .insert("inline.example".into(), Transport::Local);
        let live = LiveTransport::from_config(&config);
        let e = live.table().unwrap_err();
        assert!(
            e.starts_with(&format!("transport table {} unavailable: ", file.display())),
            "{e}"
        );
        std::fs::write(&file, "a.example discard:\n").unwrap();
        // Within a second the old answer is kept; then the file is read.
        assert!(live.table().is_err());
        std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
        let t = live.table().unwrap();
        assert_eq!(
            t.lookup("x@a.example", ""),
            Some(&Ok(Transport::Discard(String::new())))
        );
        assert_eq!(
            t.lookup("x@inline.example", ""),
            Some(&Ok(Transport::Local))
        );
        std::fs::write(&file, "b.example discard:\n").unwrap();
        std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
        let t = live.table().unwrap();
        assert_eq!(t.lookup("x@a.example", ""), None);
        assert!(t.lookup("x@b.example", "").is_some());
    }
}
