//! `postern check` beyond the configuration file, as `postfix check`
//! does: the postern user, the queue and run directories (owner, mode),
//! the configuration file's permissions, every alias source, and the
//! transport files (`relay.transport_files`, with FILE:LINE).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Warning,
    Error,
}

/// Every problem found, in order.
pub fn check_system(config: &Config, config_path: Option<&Path>) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    let root = nix::unistd::geteuid().is_root();
    let user = match nix::unistd::User::from_name(&config.server.user) {
        Ok(Some(u)) => Some(u),
        _ => {
            if root {
                out.push((
                    Level::Error,
                    format!(
                        "the user {:?} (server.user) does not exist; create it with: useradd --system --user-group --home-dir {} --shell /usr/sbin/nologin {}",
                        config.server.user,
                        config.queue.directory.display(),
                        config.server.user
                    ),
                ));
            }
            None
        }
    };
    // As root the queue belongs to server.user; otherwise to whoever runs
    // postern.
    let owner = if root {
        user.map(|u| u.uid.as_raw())
    } else {
        Some(nix::unistd::geteuid().as_raw())
    };
    let q = &config.queue.directory;
    let mut dirs = vec![q.clone()];
    // A queue yet to be made is one warning, not one per subdirectory.
    if q.exists() {
        dirs.extend(crate::queue::SUBDIRS.iter().map(|d| q.join(d)));
    }
    for d in &dirs {
        match std::fs::metadata(d) {
            Err(_) => out.push((
                Level::Warning,
                format!("{}: missing; postern start creates it", d.display()),
            )),
            Ok(m) if !m.is_dir() => {
                out.push((Level::Error, format!("{}: not a directory", d.display())))
            }
            Ok(m) => {
                if owner.is_some_and(|o| o != m.uid()) {
                    out.push((
                        Level::Error,
                        format!(
                            "{}: owned by uid {}, not by {}",
                            d.display(),
                            m.uid(),
                            config.server.user
                        ),
                    ));
                }
                if m.mode() & 0o077 != 0 {
                    out.push((
                        Level::Error,
                        format!(
                            "{}: mode {:o}, should be 700",
                            d.display(),
                            m.mode() & 0o7777
                        ),
                    ));
                }
            }
        }
    }
    let r = &config.server.run_directory;
    if let Ok(m) = std::fs::metadata(r)
        && m.mode() & 0o022 != 0
    {
        out.push((
            Level::Error,
            format!(
                "{}: group- or world-writable (mode {:o})",
                r.display(),
                m.mode() & 0o7777
            ),
        ));
    }
    if let Some(path) = config_path
        && let Ok(m) = std::fs::metadata(path)
        && m.mode() & 0o022 != 0
    {
        out.push((
            Level::Warning,
            format!("{}: group- or world-writable", path.display()),
        ));
    }
    let read = |p: &Path| std::fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned());
    let files: Vec<_> = config
        .local
        .alias_files
        .iter()
        .filter(|p| p.exists())
        .cloned()
        .collect();
    for d in crate::aliases::check(
        config
            .local
            .aliases
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        Path::new("postern.toml [local.aliases]"),
        &files,
        &crate::aliases::expand_options(config),
        read,
    ) {
        let level = if d.is_error() {
            Level::Error
        } else {
            Level::Warning
        };
        out.push((level, d.to_string()));
    }
    out.extend(check_transport_files(config));
    out.extend(check_tables(config));
    out
}

/// The tables of the restriction lists and of the header and body checks:
/// each must open (a missing file or a syntax error, with FILE:LINE, is an
/// error: smtpd would answer `451 4.3.5 Server configuration error`).
fn check_tables(config: &Config) -> Vec<(Level, String)> {
    let mut out: Vec<(Level, String)> = Vec::new();
    let policy = crate::policy::Policy::new(std::sync::Arc::new(config.clone()));
    for p in policy.problems() {
        out.push((Level::Error, p.clone()));
    }
    if let Err(e) = crate::content::ContentChecks::open(config) {
        out.push((Level::Error, format!("checks: {e}")));
    }
    out
}

/// Every transport file: missing or unreadable ones (qmgr defers all mail
/// while one is), lines that do not parse, duplicates.
fn check_transport_files(config: &Config) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    for path in &config.relay.transport_files {
        let text = match crate::transport::read_file(path) {
            Ok(t) => t,
            Err(e) => {
                out.push((Level::Error, e));
                continue;
            }
        };
        let (_, diagnostics) = crate::transport::parse_file(&text, path);
        for d in diagnostics {
            let level = match d.severity {
                crate::transport::Severity::Error => Level::Error,
                crate::transport::Severity::Warning => Level::Warning,
            };
            out.push((level, d.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bad_modes_missing_dirs_and_alias_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::builtin();
        config.queue.directory = dir.path().join("queue");
        config.server.run_directory = dir.path().join("run");
        config.local.alias_files = vec![dir.path().join("aliases")];
        std::fs::write(dir.path().join("aliases"), "bad line\n").unwrap();
        std::fs::create_dir(&config.queue.directory).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            &config.queue.directory,
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let found = check_system(&config, None);
        let text: Vec<String> = found.iter().map(|(l, m)| format!("{l:?}: {m}")).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("Error") && t.contains("mode 755")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("Warning") && t.contains("incoming: missing")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("Error") && t.contains("aliases:1")),
            "{text:?}"
        );
    }

    #[test]
    fn reports_transport_files_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::builtin();
        config.queue.directory = dir.path().join("queue");
        config.server.run_directory = dir.path().join("run");
        config.local.alias_files = Vec::new();
        let file = dir.path().join("transport");
        let missing = dir.path().join("missing");
        config.relay.transport_files = vec![file.clone(), missing.clone()];
        std::fs::write(
            &file,
            "# routes\nexample.com smtp:[mx.example.com]\n\nbad.example uucp:x\nexample.com local:\n",
        )
        .unwrap();
        let found = check_system(&config, None);
        let text: Vec<String> = found.iter().map(|(l, m)| format!("{l:?}: {m}")).collect();
        let f = file.display();
        assert!(
            text.iter().any(|t| t.starts_with(&format!(
                "Error: {f}:4: bad.example uucp:x: unknown transport"
            ))),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with(&format!("Warning: {f}:5: duplicate entry"))),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with(&format!(
                "Error: transport table {} unavailable: ",
                missing.display()
            ))),
            "{text:?}"
        );
    }
}
