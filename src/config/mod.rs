//! Configuration: the one file `/etc/postern/postern.toml`.
//!
//! The file is TOML with these tables: `[server]`, `[local]`, `[relay]`,
//! `[queue]`, `[smtpd]`, `[submission]`, `[sasl]`, `[restrictions]`,
//! `[maps]`, `[checks]`, `[smtp]`, `[tls]`, `[dkim]`, `[dns]` and
//! `[sandbox]`, whose keys are the field names below. Every key
//! is optional; the defaults follow Postfix's where they are safe, and each
//! key's documentation names the Postfix parameter it replaces.
//!
//! Unlike Postfix, postern is strict: an unknown key or table, a value of the
//! wrong type or a value that does not parse is fatal, and the error names the
//! file, the line and the dotted key (`smtpd.message_size_limit`), and for an
//! unknown key the nearest valid one ([`ConfigError`]).
//!
//! String values may refer to the `[server]` settings Postfix-style:
//! `$hostname`, `${domain}`, `$(origin)`, `$user` (and Postfix's names
//! `$myhostname`, `$mydomain`, `$myorigin`, `$mail_owner`); `$$` is a literal
//! `$`. Expansion is recursive and happens once, at load time, in
//! `server.hostname`, `server.domain`, `server.origin`, `server.user`,
//! `server.run_directory`, `local.domains`, `queue.directory` and
//! `smtpd.banner`. `local.mailbox` is not expanded: its `$user` and `$home`
//! are per-delivery variables.
//!
//! [`Config::to_toml`] prints the effective configuration (`postern config
//! show`, like `postconf`), optionally only what differs from the defaults
//! (like `postconf -n`).
//!
//! Module map: `load` walks the TOML document into typed values, `expand`
//! resolves `$name` references, `value` parses durations, networks,
//! addresses and names, `defaults` computes the built-in configuration from
//! the system, `show` prints, `error` holds [`ConfigError`].
//!
//! Values that belong to a feature are parsed by that feature's leaf
//! syntax module, and this module names nothing else of the crate:
//! `policy::element` (restriction lists), `maps::spec` (table specs),
//! `transport::syntax` (transports, next hops), `dkim::key_entry`,
//! `milter::address`, `rewrite::pattern` (domain entries) and `wire`
//! (host names, main.cf's logical lines). None of them names `config`, so
//! the configuration is in no import loop; what needs the whole
//! configuration (`postern check`) calls it from outside
//! (`tests/imports.rs`, docs/architecture.md "Modules: who may import
//! whom").

mod defaults;
mod dkim;
mod docs;
mod error;
mod expand;
pub mod import;
pub(crate) mod keys;
mod load;
mod show;
mod value;
mod virtual_keys;

use std::path::{Path, PathBuf};

pub use docs::{json_schema, man_keys};
pub use error::ConfigError;
pub use keys::{
    Checks, Dkim, Dns, Local, Metrics, Milters, Queue, Relay, Restrictions, Rewrite, Sandbox, Sasl,
    Server, Smtp, Smtpd, Submission, Tls, Verify, Virtual,
};
pub(crate) use value::{check_hostname, v6_only};

use defaults::System;

/// Where the configuration is read from when no path is given.
pub const DEFAULT_PATH: &str = "/etc/postern/postern.toml";

/// The default of `sasl.password_file`, where `postern passwd` writes
/// when not told (`crate::sasl::passwd::DEFAULT_PATH` names it there).
pub const SASL_PASSWORD_FILE: &str = "/etc/postern/passwd";

/// The effective configuration `postern start` writes in the run
/// directory and starts every role with.
pub(crate) const EFFECTIVE_FILE: &str = "postern.toml";

/// The whole configuration; see the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub server: Server,
    pub local: Local,
    pub relay: Relay,
    pub r#virtual: Virtual,
    pub rewrite: Rewrite,
    pub queue: Queue,
    pub smtpd: Smtpd,
    pub submission: Submission,
    pub sasl: Sasl,
    pub restrictions: Restrictions,
    pub maps: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    pub checks: Checks,
    pub smtp: Smtp,
    pub tls: Tls,
    pub dkim: Dkim,
    pub verify: Verify,
    pub milters: Milters,
    pub dns: Dns,
    pub sandbox: Sandbox,
    pub metrics: Metrics,
}

/// A key whose value is one of a few words.
pub trait Choice: Sized + Copy + 'static {
    /// The words, as written in the file.
    const NAMES: &'static [&'static str];
    /// The value a word means (an alias too, where there is one).
    fn from_name(name: &str) -> Option<Self>;
    /// The word for the value.
    fn word(self) -> &'static str;
}

/// A [`Choice`] from its `as_str` and its variants.
macro_rules! choice {
    ($T:ident { $($word:literal $(| $alias:literal)* => $variant:ident),+ $(,)? }) => {
        impl $T {
            /// The value as written in the file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($T::$variant => $word,)+
                }
            }
        }

        impl Choice for $T {
            const NAMES: &'static [&'static str] = &[$($word),+];
            fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($word $(| $alias)* => Some($T::$variant),)+
                    _ => None,
                }
            }
            fn word(self) -> &'static str {
                self.as_str()
            }
        }
    };
}

choice!(DnsFailure { "pass" => Pass, "defer" => Defer });
choice!(MilterDefault {
    "accept" => Accept,
    "tempfail" => Tempfail,
    "reject" => Reject,
    "quarantine" => Quarantine,
});
choice!(DmarcReject { "reject" => Reject, "hold" => Hold, "header" => Header });
choice!(TlsLevel {
    "none" => None,
    "may" => May,
    "encrypt" => Encrypt,
    "verify" | "secure" => Verify,
});
choice!(BareNewline { "normalize" => Normalize, "reject" => Reject });
choice!(SaslBackend {
    "none" => None,
    "dovecot" => Dovecot,
    "passwd" => Passwd,
});
choice!(TlsInbound {
    "none" => None,
    "may" => May,
    "encrypt" => Encrypt,
});

choice!(DkimCanonicalization {
    "relaxed/relaxed" => RelaxedRelaxed,
    "relaxed/simple" | "relaxed" => RelaxedSimple,
    "simple/relaxed" => SimpleRelaxed,
    "simple/simple" | "simple" => SimpleSimple,
});
choice!(DkimSign {
    "mynetworks" => Mynetworks,
    "authenticated" => Authenticated,
    "local" => Local,
});

/// DKIM canonicalization, header/body (RFC 6376 section 3.4, the `c=`
/// tag); a single word is the header's, the body's being `simple`, as in
/// `c=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DkimCanonicalization {
    RelaxedRelaxed,
    RelaxedSimple,
    SimpleRelaxed,
    SimpleSimple,
}

/// Which mail is DKIM-signed (`dkim.sign`), by where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DkimSign {
    /// From a client address in `relay.networks` (Postfix's mynetworks).
    Mynetworks,
    /// From a client that logged in with SMTP AUTH.
    Authenticated,
    /// Submitted on this host: the `sendmail` command (submit.sock, the
    /// drop directory) and postern's own notices (bounces, delay
    /// warnings).
    Local,
}

/// Inbound TLS security level (Postfix's `smtpd_tls_security_level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsInbound {
    /// No STARTTLS.
    None,
    /// STARTTLS offered, not required.
    May,
    /// STARTTLS required before MAIL (`530 5.7.0`).
    Encrypt,
}

/// Who checks SMTP AUTH passwords (Postfix's `smtpd_sasl_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslBackend {
    /// No AUTH.
    None,
    /// Dovecot's authentication socket.
    Dovecot,
    /// postern's password file.
    Passwd,
}

/// What a milter that fails means (`milters.default_action`, Postfix's
/// `milter_default_action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MilterDefault {
    /// As if the milter were not configured.
    Accept,
    /// `451 4.7.1 Service unavailable - try again later`.
    Tempfail,
    /// `554 5.7.1 Service unavailable`.
    Reject,
    /// Accept and hold.
    Quarantine,
}

/// What a DMARC failure under `p=reject` does (`verify.dmarc_reject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmarcReject {
    /// `550 5.7.1` at the end of the message.
    Reject,
    /// Accepted and put on hold.
    Hold,
    /// Only the `Authentication-Results:` field.
    Header,
}

/// What a failed DNS lookup in a check does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsFailure {
    Pass,
    Defer,
}

/// Outbound TLS security level (Postfix's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsLevel {
    None,
    May,
    Encrypt,
    Verify,
}

/// `smtpd.forbid_bare_newline`, Postfix `smtpd_forbid_bare_newline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareNewline {
    /// `"normalize"`: accept a bare LF as a line end (Postfix `normalize`).
    Normalize,
    /// `"reject"`: reject a command or message line ending in a bare LF
    /// (Postfix `reject`).
    Reject,
}

impl Config {
    /// Whether mail for `domain` is delivered here (`local.domains`,
    /// Postfix's mydestination); an empty domain is ours too.
    /// Whether smtpd serves TLS on some listener: STARTTLS on
    /// `smtpd.listen` (`tls.inbound`), or the submission listeners.
    pub fn serves_tls(&self) -> bool {
        self.tls.inbound != TlsInbound::None || self.submission.is_on()
    }

    pub fn is_local_domain(&self, domain: &str) -> bool {
        domain.is_empty()
            || self
                .local
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Reads the configuration. With `Some(path)` that file must exist; with
    /// `None`, [`DEFAULT_PATH`] is read if it exists, else the built-in
    /// defaults ([`Config::builtin`]) are returned.
    ///
    /// [`DEFAULT_PATH`] describes the system's mail system: its defaults
    /// are the system's (`/run/postern`, `/var/spool/postern`) whoever
    /// reads it, so that `sendmail` and `mailq` of every user find the
    /// running system. Another file, and the built-in defaults, take the
    /// caller's (per-user directories for an ordinary user).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match path {
            Some(path) => (path, true),
            None => (Path::new(DEFAULT_PATH), false),
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::builtin());
            }
            Err(cause) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    cause,
                });
            }
        };
        let file_name = path.display().to_string();
        let text = load::utf8(&bytes, &file_name)?;
        load::parse(text, &file_name, &System::for_file(path))
    }

    /// For commands that only talk to the running system (`sendmail`,
    /// `mailq`, `postern status|stop|flush|queue`), when `path` (as
    /// [`Config::load`] takes it) has an error: the configuration the
    /// running system uses — the effective file the supervisor wrote in
    /// the run directory that `path` names (read leniently: only
    /// `server.run_directory`), or the default one — else the defaults
    /// with that run directory. Never fails: finding the running system
    /// needs nothing more.
    pub fn fallback(path: Option<&Path>) -> Config {
        let file = path.unwrap_or(Path::new(DEFAULT_PATH));
        let system = System::for_file(file);
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let run_dir = text
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| {
                t.get("server")?
                    .get("run_directory")?
                    .as_str()
                    .map(PathBuf::from)
            })
            // Not even TOML: the line as it is usually written.
            .or_else(|| {
                text.lines().find_map(|l| {
                    let v = l.trim().strip_prefix("run_directory")?.trim();
                    let v = v.strip_prefix('=')?.trim().strip_prefix('"')?;
                    Some(PathBuf::from(&v[..v.find('"')?]))
                })
            })
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| system.default_run_directory());
        let effective = run_dir.join(EFFECTIVE_FILE);
        if let Ok(c) = Config::load(Some(&effective)) {
            return c;
        }
        let mut c = defaults::builtin(&system);
        c.server.run_directory = run_dir;
        c
    }

    /// Parses a configuration from TOML text; `file_name` is used only in
    /// error messages.
    pub fn from_toml(text: &str, file_name: &str) -> Result<Config, ConfigError> {
        load::parse(text, file_name, &System::current())
    }

    /// The built-in configuration: what an empty file gives on this system.
    /// (As [`Config::load`] without a file.)
    pub fn builtin() -> Config {
        defaults::builtin(&System::current())
    }

    /// The configuration as TOML, like `postconf`; with `non_default`, only
    /// the keys whose value differs from the default, like `postconf -n`.
    /// The text parses back with [`Config::from_toml`] into an equal
    /// `Config`.
    pub fn to_toml(&self, non_default: bool) -> String {
        show::to_toml(self, non_default, &System::current())
    }

    /// The keys the configuration file `text` sets, each value as written
    /// there (`$hostname` kept, a key set to its default value kept), like
    /// `postconf -n`: `postern config show --non-default`.
    pub fn as_written(text: &str) -> String {
        show::as_written(text)
    }

    /// The keys named (`relay.networks`, or Postfix's `mynetworks`), one
    /// `table.key = value` line each, as `postconf NAME…`.
    pub fn show_keys(&self, names: &[String]) -> Result<String, String> {
        show::some(self, names)
    }

    /// The whole configuration as TOML with a comment above each key:
    /// what it is, the Postfix parameter it replaces, its default
    /// (`postern config show`). Parses back as [`Config::to_toml`] does.
    pub fn to_annotated_toml(&self) -> String {
        show::annotated(self, &System::current())
    }
}

#[cfg(test)]
mod tests;
