//! postern's password file for SMTP AUTH: one `login:hash` per line, `#`
//! comments, in the shape of Dovecot's passwd-file so that one file can
//! serve both (fields after the hash are ignored; a Dovecot scheme prefix
//! such as `{ARGON2ID}` or `{SHA512-CRYPT}` is understood). Hashes:
//! argon2id (what `postern passwd` writes), argon2i/argon2d, SHA-512-crypt
//! and SHA-256-crypt (`$6$`, `$5$`: what `doveadm pw -s SHA512-CRYPT` and
//! `mkpasswd -m sha-512` write). Anything else is refused when the file is
//! read, with its file and line, never silently at login time.
//!
//! The file should be 0640, owner root, group postern (`postern passwd`
//! makes it so): smtpd reads it, nobody else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use sha_crypt::ShaCrypt;

use super::Verdict;

/// Where `postern passwd` writes when not told: the default of
/// `sasl.password_file`, defined with the key.
pub use crate::config::SASL_PASSWORD_FILE as DEFAULT_PATH;

/// A hash scheme postern can check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Argon2,
    ShaCrypt,
}

/// The file as read.
#[derive(Clone, Debug)]
pub struct PasswordFile {
    path: PathBuf,
    /// Login → (scheme, hash without a Dovecot prefix).
    entries: BTreeMap<String, (Scheme, String)>,
}

/// A file that cannot be used, with where.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
}

/// A stand-in hash checked for a login that does not exist, so that a
/// wrong login takes as long as a wrong password (no user enumeration by
/// timing). Made once, from a password nobody knows.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("postern decoy: no such login").unwrap_or_default())
}

impl PasswordFile {
    /// Read and check every line of `path`.
    pub fn load(path: &Path) -> Result<PasswordFile, PasswdError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PasswdError::Read {
            path: shown.clone(),
            source,
        })?;
        PasswordFile::parse(&text, path)
    }

    /// The file's text, read from `path` (for messages).
    pub fn parse(text: &str, path: &Path) -> Result<PasswordFile, PasswdError> {
        let shown = path.display().to_string();
        let mut entries = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |reason: String| PasswdError::Line {
                path: shown.clone(),
                line: i + 1,
                reason,
            };
            let line = line.trim_end();
            if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, ':');
            let (Some(login), Some(hash)) = (fields.next(), fields.next()) else {
                return Err(bad("expected login:hash".to_string()));
            };
            if login.is_empty() || login.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad(format!("bad login {login:?}")));
            }
            let hash = strip_scheme(hash);
            let scheme = scheme_of(hash).ok_or_else(|| {
                bad(format!(
                    "the hash of {login:?} is not argon2 or SHA-crypt ($argon2id$…, $6$…, $5$…); \
                     make one with `postern passwd`"
                ))
            })?;
            check_hash(scheme, hash).map_err(|e| bad(format!("the hash of {login:?}: {e}")))?;
            if entries
                .insert(login.to_string(), (scheme, hash.to_string()))
                .is_some()
            {
                return Err(bad(format!("{login:?} is listed twice")));
            }
        }
        Ok(PasswordFile {
            path: path.to_path_buf(),
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many logins the file has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `password` is `login`'s. Slow on purpose (the hash's cost):
    /// call it off the async threads.
    pub fn verify(&self, login: &str, password: &str) -> Verdict {
        let Some((scheme, hash)) = self.entries.get(login) else {
            let _ = Argon2::default().verify_password(password.as_bytes(), decoy());
            return Verdict::Fail {
                reason: format!("no such login in {}", self.path.display()),
            };
        };
        let ok = match scheme {
            Scheme::Argon2 => Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok(),
            Scheme::ShaCrypt => ShaCrypt::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok(),
        };
        match ok {
            true => Verdict::Ok {
                login: login.to_string(),
            },
            false => Verdict::Fail {
                reason: "wrong password".to_string(),
            },
        }
    }
}

/// Dovecot's `{SCHEME}` prefix, if any, taken off.
fn strip_scheme(hash: &str) -> &str {
    match hash.strip_prefix('{').and_then(|h| h.split_once('}')) {
        Some((_, rest)) => rest,
        None => hash,
    }
}

fn scheme_of(hash: &str) -> Option<Scheme> {
    if ["$argon2id$", "$argon2i$", "$argon2d$"]
        .iter()
        .any(|p| hash.starts_with(p))
    {
        Some(Scheme::Argon2)
    } else if hash.starts_with("$6$") || hash.starts_with("$5$") {
        Some(Scheme::ShaCrypt)
    } else {
        None
    }
}

/// Whether `hash` parses as its scheme says (a mangled hash is an error
/// when the file is read). An argon2 hash is only parsed: computing one
/// costs 19 MiB and tens of milliseconds, too much per line of a large
/// file; SHA-crypt's format is checked by a trial (its cost is small).
fn check_hash(scheme: Scheme, hash: &str) -> Result<(), String> {
    let refused = match scheme {
        Scheme::Argon2 => argon2::PasswordHash::new(hash).err().map(|e| e.to_string()),
        Scheme::ShaCrypt => match ShaCrypt::default().verify_password(b"", hash) {
            Ok(()) | Err(argon2::password_hash::Error::PasswordInvalid) => None,
            Err(e) => Some(e.to_string()),
        },
    };
    match refused {
        None => Ok(()),
        Some(e) => Err(format!("cannot be parsed ({e})")),
    }
}

/// An argon2id hash of `password` (the crate's defaults: 19 MiB, 2
/// passes, as OWASP recommends), with a random salt.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// `text` with `login`'s line set to `login:hash` (replaced where it
/// was, else added at the end); comments and other lines kept as they
/// are.
pub fn with_login(text: &str, login: &str, hash: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in text.lines() {
        if !done && line.split(':').next() == Some(login) && !line.starts_with('#') {
            out.push_str(&format!("{login}:{hash}\n"));
            done = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !done {
        out.push_str(&format!("{login}:{hash}\n"));
    }
    out
}

/// Set `login`'s hash in the file at `path` (made if missing): written
/// to a temporary file, synced and renamed over the old one, mode 0640,
/// and, as root, owner root and group postern (smtpd reads it as
/// postern). A file that does not parse afterwards is not written.
pub fn set(path: &Path, login: &str, hash: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let new = with_login(&old, login, hash);
    PasswordFile::parse(&new, path)?;
    let tmp = path.with_extension("postern-tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(new.as_bytes())?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o640))?;
    if nix::unistd::geteuid().is_root()
        && let Ok(Some(group)) = nix::unistd::Group::from_name("postern")
    {
        std::os::unix::fs::chown(&tmp, Some(0), Some(group.gid.as_raw()))?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The new password: the first line of standard input, or, on a
/// terminal, asked for twice without echo (`None`: the two differ).
pub fn read_password() -> anyhow::Result<Option<String>> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()));
    }
    let ask = |prompt: &str| -> anyhow::Result<String> {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let fd = std::io::stdin();
        let saved = tcgetattr(&fd)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        tcsetattr(&fd, SetArg::TCSANOW, &quiet)?;
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line);
        tcsetattr(&fd, SetArg::TCSANOW, &saved)?;
        eprintln!();
        read?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };
    let first = ask("New password: ")?;
    let second = ask("Again: ")?;
    Ok((first == second).then_some(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `doveadm pw -s SHA512-CRYPT -p secret` (Dovecot 2.3).
    const DOVEADM_SHA512: &str = "{SHA512-CRYPT}$6$i03S9KEQbIlUNgUs$avDKICDgSJz.D1dZNGh23DTdL4mhqtZqMIq.17IBGNKrDqMuuuJvgmZUMNF7hAx.KaD5tcm25wfqhJem3D4QS/";

    #[test]
    fn argon2_and_sha_crypt_hashes_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        let text = format!("# users\nalice:{h}\n\nbob:{DOVEADM_SHA512}:1000:1000::/home/bob::\n");
        let f = PasswordFile::parse(&text, Path::new("/etc/postern/passwd")).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(
            f.verify("alice", "correct horse"),
            Verdict::Ok {
                login: "alice".into()
            }
        );
        assert!(matches!(f.verify("alice", "wrong"), Verdict::Fail { .. }));
        assert_eq!(
            f.verify("bob", "secret"),
            Verdict::Ok {
                login: "bob".into()
            }
        );
        assert!(matches!(f.verify("bob", "Secret"), Verdict::Fail { .. }));
        assert!(matches!(f.verify("carol", "x"), Verdict::Fail { .. }));
    }

    #[test]
    fn a_bad_line_names_file_and_line() {
        let p = Path::new("/etc/postern/passwd");
        for (text, want) in [
            ("alice\n", ":1: expected login:hash"),
            (
                "alice:plaintext\n",
                ":1: the hash of \"alice\" is not argon2",
            ),
            (
                "#\nalice:$6$abc\n",
                ":2: the hash of \"alice\": cannot be parsed",
            ),
            (":$6$x$y\n", ":1: bad login"),
        ] {
            let e = PasswordFile::parse(text, p).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.starts_with("/etc/postern/passwd:"), "{e}");
        }
        let h = hash("x").unwrap();
        let e = PasswordFile::parse(&format!("a:{h}\na:{h}\n"), p).unwrap_err();
        assert!(e.to_string().contains(":2: \"a\" is listed twice"), "{e}");
    }

    #[test]
    fn setting_a_login_replaces_or_adds_its_line() {
        let text = "# users\nalice:old\nbob:keep\n";
        assert_eq!(
            with_login(text, "alice", "new"),
            "# users\nalice:new\nbob:keep\n"
        );
        assert_eq!(
            with_login(text, "carol", "h"),
            "# users\nalice:old\nbob:keep\ncarol:h\n"
        );
    }
}
