//! `postern check`'s part for `[dkim]` (not with `--no-system`: keys are
//! secrets, not in a build sandbox): each key file loads as a key, the
//! roles' user can read it, others cannot (a warning), and smtpd's
//! sandbox cannot (an error: keys inside smtpd's room, such as under
//! /etc, would be readable by the process that parses the Internet's
//! input).

use std::path::Path;

use super::key::PrivateKey;
use crate::check::{Level, world_readable};
use crate::config::Config;
use crate::sandbox::Profile;

const KEY: &str = "dkim.keys";

/// Every problem of the keys of `config`; `cannot_read` says why the
/// roles' user could not read a file, when it could not.
pub fn keys(
    config: &Config,
    config_path: Option<&Path>,
    cannot_read: &dyn Fn(&Path) -> Option<String>,
) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    if config.dkim.keys.is_empty() {
        return out;
    }
    let smtpd = Profile::smtpd(config, config_path);
    for entry in &config.dkim.keys {
        let path = &entry.path;
        let f = path.display();
        if let Err(e) = PrivateKey::load(path) {
            out.push((
                Level::Error,
                format!(
                    "{KEY}: {e}: mail from {} would be deferred (4.7.5) until the key can be used",
                    entry.domain
                ),
            ));
        }
        if let Ok(m) = std::fs::metadata(path) {
            if let Some(problem) = cannot_read(path) {
                out.push((
                    Level::Error,
                    format!("{f} ({KEY}): {problem}: the smtp client could not sign with it"),
                ));
            }
            let fix = format!("chown {u} {f} && chmod 600 {f}", u = config.server.user);
            out.extend(world_readable(path, &m, KEY, "is a private key", &fix));
        }
        if let Some(room) = smtpd.covers(path) {
            out.push((
                Level::Error,
                format!(
                    "{f} ({KEY}): smtpd's sandbox can read it (through {}): keep DKIM keys where only the smtp client reads them, out of /etc and the configuration's directory (postern dkim keygen: /var/lib/postern/dkim)",
                    room.display()
                ),
            ));
        }
    }
    out
}
