//! The alias table as the daemons use it: built from the configuration
//! (inline aliases, then `local.alias_files`, then the defaults) and built
//! again when a file changes on disk, checked at most once a second, so
//! edits to `/etc/aliases` take effect without a command or a restart.
//!
//! A configured file that cannot be read, a missing one included, makes
//! [`LiveTable::table`] fail: smtpd answers `451 4.3.0` at RCPT and
//! deliveries defer (`4.3.0 alias database unavailable`) rather than go on
//! with a partial table, which would bounce mail to its aliases as unknown
//! users (Postfix defers as well when an alias database is unavailable).
//! `postern check` names such a file. The built-in default names
//! `/etc/aliases` only where it exists.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Allow, ExpandOptions, LoadError, Table, load};
use crate::config::Config;
use crate::watch::{CHECK_EVERY, Stamp, stamp};

/// Shown by name only (a policy `Context` that holds one is `Debug`).
impl std::fmt::Debug for LiveTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveTable")
    }
}

pub struct LiveTable {
    inline: Vec<(String, String)>,
    origin: PathBuf,
    files: Vec<PathBuf>,
    options: ExpandOptions,
    inner: Mutex<Inner>,
}

struct Inner {
    table: Option<Arc<Table>>,
    stamps: Vec<Stamp>,
    checked: Option<Instant>,
}

impl LiveTable {
    pub(crate) fn from_config(config: &Config) -> LiveTable {
        LiveTable {
            inline: config
                .local
                .aliases
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            origin: PathBuf::from("postern.toml [local.aliases]"),
            files: config.local.alias_files.clone(),
            options: expand_options(config),
            inner: Mutex::new(Inner {
                table: None,
                stamps: Vec::new(),
                checked: None,
            }),
        }
    }

    /// The expansion options that go with this table.
    pub(crate) fn options(&self) -> &ExpandOptions {
        &self.options
    }

    /// The current table, built again if a file changed.
    pub(crate) fn table(&self) -> Result<Arc<Table>, LoadError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = inner.checked.is_some_and(|t| t.elapsed() < CHECK_EVERY);
        if let (true, Some(table)) = (fresh, &inner.table) {
            return Ok(table.clone());
        }
        inner.checked = Some(Instant::now());
        let stamps: Vec<Stamp> = self.files.iter().map(|p| stamp(p)).collect();
        if let Some(table) = &inner.table
            && stamps == inner.stamps
        {
            return Ok(table.clone());
        }
        let reloading = inner.table.is_some();
        let (table, diagnostics) = load(
            self.inline.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.origin,
            &self.files,
            |path| std::fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        )?;
        for d in diagnostics {
            log::warn!("{d}");
        }
        if reloading {
            log::info!("alias table reloaded ({} names)", table.len());
        }
        let table = Arc::new(table);
        inner.table = Some(table.clone());
        inner.stamps = stamps;
        Ok(table)
    }
}

/// Expansion options from the configuration (Postfix's defaults for what
/// postern does not configure yet: commands and files allowed from aliases
/// and `.forward`, not from `:include:`).
pub fn expand_options(config: &Config) -> ExpandOptions {
    ExpandOptions {
        delimiter: Some(config.local.recipient_delimiter.clone()).filter(|d| !d.is_empty()),
        local_domains: config.local.domains.clone(),
        allow_commands: allow(&config.local.allow_mail_to_commands),
        allow_files: allow(&config.local.allow_mail_to_files),
        ..ExpandOptions::default()
    }
}

fn allow(contexts: &[String]) -> Allow {
    let has = |c: &str| contexts.iter().any(|x| x == c);
    Allow {
        alias: has("alias"),
        forward: has("forward"),
        include: has("include"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn issue_14_a_missing_file_fails_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::builtin();
        config.local.alias_files = vec![dir.path().join("missing")];
        let live = LiveTable::from_config(&config);
        let e = live.table().unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        std::fs::write(dir.path().join("missing"), "staff: root\n").unwrap();
        std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
        assert!(live.table().unwrap().get("staff").is_some());
    }

    #[test]
    fn reloads_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("aliases");
        let mut config = Config::builtin();
        config.local.alias_files = vec![file.clone()];
        config.local.aliases.insert("inline".into(), "root".into());
        std::fs::write(&file, "staff: root\n").unwrap();
        let live = LiveTable::from_config(&config);
        let t = live.table().unwrap();
        assert!(t.get("staff").is_some());
        assert!(t.get("inline").is_some());
        assert!(t.get("postmaster").is_some());
        std::fs::write(&file, "staff: root\nsales: root\n").unwrap();
        // Within a second the old table is kept; then the new one is read.
        std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
        assert!(live.table().unwrap().get("sales").is_some());
    }
}
