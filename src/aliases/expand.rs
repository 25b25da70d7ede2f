//! Recursive expansion of a recipient through the alias table and
//! `:include:` files, with Postfix's loop rules, context restrictions and
//! duplicate suppression (see the module documentation of `aliases`).

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use super::Diagnostic;
use super::parse::{Target, parse_include};
use super::table::{Entry, Source, Table};
use crate::outcome::{Enhanced, code};

/// How [`expand`] treats what it finds. `Default` is Postfix's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpandOptions {
    /// `recipient_delimiter`: a set of characters; empty or `None` for none.
    pub delimiter: Option<String>,
    /// Domains whose addresses are local (`mydestination`): `user@d` with
    /// `d` in this list is expanded like `user`. Compared without case.
    pub local_domains: Vec<String>,
    /// `allow_mail_to_commands`.
    pub allow_commands: Allow,
    /// `allow_mail_to_files`.
    pub allow_files: Allow,
    /// Nesting levels of aliases and `:include:` files (Postfix: 100).
    pub max_depth: usize,
}

impl Default for ExpandOptions {
    fn default() -> Self {
        ExpandOptions {
            delimiter: None,
            local_domains: Vec::new(),
            allow_commands: Allow::POSTFIX,
            allow_files: Allow::POSTFIX,
            max_depth: 100,
        }
    }
}

/// The contexts in which `|command` or `/file` targets are allowed
/// (Postfix's `alias`, `forward`, `include`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allow {
    pub alias: bool,
    pub forward: bool,
    pub include: bool,
}

impl Allow {
    /// `alias, forward`: Postfix's default for both lists.
    pub(crate) const POSTFIX: Allow = Allow {
        alias: true,
        forward: true,
        include: false,
    };

    fn allows(self, context: &Context) -> bool {
        match context {
            Context::Alias => self.alias,
            Context::Include { .. } => self.include,
        }
    }
}

/// Where a target was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Context {
    /// In an alias entry (see the [`Source`] beside it).
    Alias,
    /// In an `:include:` file, at a 1-based line.
    Include { path: PathBuf, line: usize },
}

/// What expanding one recipient gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The alias name that matched the recipient (`user+ext` or `user`);
    /// `None`: the recipient is no alias, and local delivery goes on with
    /// `.forward` and the mailbox.
    pub matched: Option<String>,
    /// The final targets, each once, in the order found.
    pub deliveries: Vec<Delivery>,
    /// Branches that failed; the others are delivered.
    pub failures: Vec<Failure>,
    /// Problems in `:include:` files (lines skipped), for the log.
    pub warnings: Vec<Diagnostic>,
}

/// One final target.
///
/// * `Address` without `@`: a local user that is no alias (lower-cased,
///   `+ext` kept): `.forward`, then the mailbox. Addresses in a local domain
///   arrive here without their domain.
/// * `Address` with `@`: a remote address, as written: forward it.
/// * `NoExpand`: the user's mailbox directly (lower-cased).
/// * `File`, `Command`: as written (never `Include`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub target: Target,
    /// The alias names expanded to reach it, the recipient's first (for
    /// `X-Original-To` and the DSN's "expanded from").
    pub chain: Vec<String>,
    pub context: Context,
    /// The alias entry the target (or its `:include:`) was listed in.
    pub source: Source,
}

/// A branch that failed; the caller bounces or defers the recipient with
/// [`ExpandError::status`] and the error's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub error: ExpandError,
    pub chain: Vec<String>,
    /// Where the failing target was written.
    pub context: Context,
    pub source: Source,
}

/// Why a branch failed. `Display` is the DSN text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// More than `max_depth` levels, or a cycle through `name`.
    #[error("alias database loop for {name}")]
    Loop { name: String },
    #[error(":include: nesting limit exceeded")]
    IncludeNesting { path: PathBuf },
    /// A `|command` outside the allowed contexts.
    #[error("mail to command is restricted")]
    CommandRestricted,
    /// A `/file` outside the allowed contexts.
    #[error("mail to file is restricted")]
    FileRestricted,
    /// The alias has no usable value (all of them were bad).
    #[error("alias database unavailable")]
    Unavailable { name: String },
    /// The `:include:` file could not be read; `reason` is for the log.
    #[error("mail system configuration error")]
    IncludeUnreadable {
        path: PathBuf,
        reason: String,
        transient: bool,
    },
}

impl ExpandError {
    /// The enhanced status code (RFC 3463).
    pub(crate) fn status(&self) -> Enhanced {
        match self {
            ExpandError::Loop { .. } | ExpandError::IncludeNesting { .. } => code::LOOP,
            ExpandError::CommandRestricted | ExpandError::FileRestricted => code::NOT_AUTHORIZED,
            ExpandError::Unavailable { .. } => code::SYSTEM_TEMP,
            ExpandError::IncludeUnreadable {
                transient: true, ..
            } => code::CONFIG_TEMP,
            ExpandError::IncludeUnreadable { .. } => code::CONFIG_PERM,
        }
    }

    /// Whether the recipient should be deferred rather than bounced.
    pub(crate) fn is_transient(&self) -> bool {
        self.status().class() == b'4'
    }

    /// A line for the log, with what the DSN text leaves out.
    pub(crate) fn log_message(&self) -> String {
        match self {
            ExpandError::IncludeNesting { path } => {
                format!(":include: nesting limit exceeded for {}", path.display())
            }
            ExpandError::IncludeUnreadable { path, reason, .. } => {
                format!("cannot open include file {}: {reason}", path.display())
            }
            ExpandError::Unavailable { name } => {
                format!("no recipient in alias lookup result for {name}")
            }
            other => other.to_string(),
        }
    }
}

/// Expands `recipient_local` (a local part; the caller has decided the
/// domain is local) through `table`. `read_include` reads an `:include:`
/// file: that is where the caller checks that it is a regular file, not
/// world-writable, and reads it with the right user's rights. Never loops
/// and never panics; the work is bounded by the table and the files.
pub fn expand(
    table: &Table,
    recipient_local: &str,
    options: &ExpandOptions,
    read_include: impl FnMut(&Path) -> io::Result<String>,
) -> Expansion {
    let mut expander = Expander {
        table,
        options,
        read_include,
        out: Expansion::default(),
        delivered: HashSet::new(),
        expanded: HashSet::new(),
        included: HashSet::new(),
        chain: Vec::new(),
    };
    let found = table.lookup(recipient_local, options.delimiter.as_deref());
    if let Some((name, entry)) = found {
        expander.out.matched = Some(name.to_string());
        expander.alias(name, entry, 1);
    }
    expander.out
}

struct Expander<'a, R> {
    table: &'a Table,
    options: &'a ExpandOptions,
    read_include: R,
    out: Expansion,
    /// Keys of the final targets delivered so far.
    delivered: HashSet<String>,
    /// Aliases expanded so far: each once.
    expanded: HashSet<&'a str>,
    /// `:include:` files read so far: each once.
    included: HashSet<PathBuf>,
    /// The aliases being expanded, outermost first.
    chain: Vec<String>,
}

/// Where a target was written: its context, the entry it belongs to, and
/// the alias being expanded (an address equal to it means the mailbox).
struct Origin<'o> {
    context: Context,
    source: &'o Source,
    parent: &'o str,
}

impl<'a, R: FnMut(&Path) -> io::Result<String>> Expander<'a, R> {
    fn alias(&mut self, name: &'a str, entry: &'a Entry, depth: usize) {
        self.expanded.insert(name);
        self.chain.push(name.to_string());
        let origin = Origin {
            context: Context::Alias,
            source: &entry.source,
            parent: name,
        };
        if entry.targets.is_empty() {
            self.fail(
                ExpandError::Unavailable {
                    name: name.to_string(),
                },
                &origin,
            );
        }
        for target in &entry.targets {
            self.target(target, &origin, depth);
        }
        self.chain.pop();
    }

    fn target(&mut self, target: &Target, origin: &Origin<'_>, depth: usize) {
        match target {
            Target::Command(_) if !self.options.allow_commands.allows(&origin.context) => {
                self.fail(ExpandError::CommandRestricted, origin);
            }
            Target::File(_) if !self.options.allow_files.allows(&origin.context) => {
                self.fail(ExpandError::FileRestricted, origin);
            }
            Target::Command(_) | Target::File(_) => self.deliver(target.clone(), origin),
            Target::NoExpand(user) => {
                self.deliver(Target::NoExpand(user.to_ascii_lowercase()), origin);
            }
            Target::Include(path) => self.include(path, origin, depth),
            Target::Address(address) => self.address(address, origin, depth),
        }
    }

    fn address(&mut self, address: &str, origin: &Origin<'_>, depth: usize) {
        let local = match address.rsplit_once('@') {
            None => address,
            Some((local, domain)) if self.is_local_domain(domain) => local,
            Some(_) => {
                self.deliver(Target::Address(address.to_string()), origin);
                return;
            }
        };
        let table = self.table;
        let delimiter = self.options.delimiter.as_deref();
        match table.lookup_except(local, delimiter, Some(origin.parent)) {
            None => self.deliver(Target::Address(local.to_ascii_lowercase()), origin),
            Some((name, _)) if self.chain.iter().any(|c| c == name) => {
                let name = name.to_string();
                self.fail(ExpandError::Loop { name }, origin);
            }
            Some((name, _)) if self.expanded.contains(name) => {}
            Some((name, _)) if depth >= self.options.max_depth => {
                let name = name.to_string();
                self.fail(ExpandError::Loop { name }, origin);
            }
            Some((name, entry)) => self.alias(name, entry, depth + 1),
        }
    }

    fn include(&mut self, path: &Path, origin: &Origin<'_>, depth: usize) {
        if depth >= self.options.max_depth {
            let path = path.to_path_buf();
            self.fail(ExpandError::IncludeNesting { path }, origin);
            return;
        }
        if !self.included.insert(path.to_path_buf()) {
            return;
        }
        let text = match (self.read_include)(path) {
            Ok(text) => text,
            Err(e) => {
                let error = ExpandError::IncludeUnreadable {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                    transient: is_transient(&e),
                };
                self.fail(error, origin);
                return;
            }
        };
        let (targets, warnings) = parse_include(&text, path);
        self.out.warnings.extend(warnings);
        for (line, target) in targets {
            let inner = Origin {
                context: Context::Include {
                    path: path.to_path_buf(),
                    line,
                },
                source: origin.source,
                parent: origin.parent,
            };
            self.target(&target, &inner, depth + 1);
        }
    }

    fn is_local_domain(&self, domain: &str) -> bool {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        self.options.local_domains.iter().any(|d| {
            d.strip_suffix('.')
                .unwrap_or(d)
                .eq_ignore_ascii_case(domain)
        })
    }

    fn deliver(&mut self, target: Target, origin: &Origin<'_>) {
        if !self.delivered.insert(duplicate_key(&target)) {
            return;
        }
        self.out.deliveries.push(Delivery {
            target,
            chain: self.chain.clone(),
            context: origin.context.clone(),
            source: origin.source.clone(),
        });
    }

    fn fail(&mut self, error: ExpandError, origin: &Origin<'_>) {
        self.out.failures.push(Failure {
            error,
            chain: self.chain.clone(),
            context: origin.context.clone(),
            source: origin.source.clone(),
        });
    }
}

/// What makes two final targets the same delivery: local users and domains
/// without case; remote local parts, files and commands exactly.
fn duplicate_key(target: &Target) -> String {
    match target {
        Target::Address(a) => match a.rsplit_once('@') {
            None => format!("local {}", a.to_ascii_lowercase()),
            Some((local, domain)) => format!("remote {local}@{}", domain.to_ascii_lowercase()),
        },
        Target::NoExpand(u) => format!("mailbox {}", u.to_ascii_lowercase()),
        Target::File(p) => format!("file {}", p.display()),
        Target::Command(c) => format!("command {c}"),
        Target::Include(p) => format!("include {}", p.display()),
    }
}

/// Errors that may pass when tried again (the rest mean a configuration
/// error: a missing file, wrong permissions).
fn is_transient(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::NotFound
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::InvalidData
            | io::ErrorKind::IsADirectory
            | io::ErrorKind::NotADirectory
    )
}

#[cfg(test)]
#[path = "expand_tests.rs"]
mod tests;
