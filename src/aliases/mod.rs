//! Alias tables (Postfix aliases(5)) and their expansion: a pure library.
//!
//! # What it does
//!
//! * [`parse`] reads an aliases file into a [`Table`] and a list of
//!   [`Diagnostic`]s (`FILE:LINE: error|warning: message`); [`parse_inline`]
//!   does the same for the inline aliases of the configuration
//!   (`local.aliases = { root = "admin, |/usr/bin/x" }`), whose values are
//!   read like a file line's right-hand side.
//! * [`Table::layered`] combines sources in priority order (inline aliases,
//!   then the files in the given order: the first source that has a name
//!   wins) and adds the built-in defaults `postmaster: root` and
//!   `mailer-daemon: postmaster` unless a source defines them. [`load`] does
//!   all of this from the configuration's values.
//! * [`Table::lookup`] finds the entry for a local part: `user+ext` first,
//!   then `user` when a recipient delimiter is configured.
//! * [`expand`] expands a recipient recursively into final [`Delivery`]s
//!   (addresses that are not aliases, files, commands, `\user` mailboxes),
//!   each with the alias chain and the context it came from, and per-branch
//!   [`Failure`]s with their enhanced status codes.
//! * [`check_files`] is `postern aliases build`: it validates every file and
//!   every `:include:` file reachable from it, and reports alias loops.
//!
//! Nothing here reads the disk except [`check_files`]: files and
//! `:include:` files are read by closures the caller passes, which is where
//! the caller checks ownership and modes (an `:include:` file must be a
//! regular file, not world-writable) and chooses the user to read them as.
//!
//! # Postfix semantics followed
//!
//! File format (`postalias`, `readlline`, `tok822`):
//! * `name: value1, value2, ...`; a line starting with whitespace continues
//!   the previous one (joined without the line break, as Postfix does); a
//!   line whose first non-blank character is `#` and a blank line are
//!   ignored, also between continuation lines; a continuation with nothing
//!   before it is an error (`logical line must not start with whitespace`).
//! * RFC 822-style tokens: `"..."` quotes (with `\"` and `\\`), `(...)`
//!   comments are dropped, commas separate values. The name is everything
//!   before the first unquoted `:`; a name with whitespace, `:`, `#`, `@`
//!   or `%` must be quoted. An unquoted `@` or `%` in the name is an error
//!   (`name must be local and have no domain`). Names are lower-cased
//!   (ASCII). No `:`, no name or no value: `need name:value pair`.
//! * Duplicate names: the first wins, with a warning (`duplicate entry`).
//! * Values ([`Target`]): `user`, `user@domain`, `/file`, `/maildir/`,
//!   `|command` (quote it when it holds spaces or commas; an unquoted
//!   command may also run to the next comma), `:include:/absolute/path`,
//!   `\user`. `~/path` is rejected (it needs a user's home: `.forward`
//!   only). A value that cannot be read is an error and is dropped; the
//!   name keeps its other values, and a name left with none defers its mail
//!   (`4.3.0 alias database unavailable`) rather than delivering elsewhere.
//!
//! Stricter than Postfix, which only warns: every problem is a
//! [`Diagnostic`]; the `Error` ones are what `postern aliases build`
//! refuses. At delivery time the same parse is tolerant: bad lines and
//! values are skipped and the caller logs the diagnostics.
//!
//! Expansion (`local/alias.c`, `token.c`, `include.c`, `recipient.c`):
//! * an alias that lists itself (the name just being expanded) means the
//!   user's own mailbox: the result is that address, not expanded again;
//! * more than 100 nesting levels, or a cycle (`a -> b -> a`, found at
//!   once rather than after 100 levels), end that branch with
//!   `5.4.6 alias database loop for NAME`; `:include:` nesting past 100
//!   gives `5.4.6 :include: nesting limit exceeded`;
//! * `|command` and `/file` are allowed only in the contexts named by
//!   `allow_mail_to_commands` / `allow_mail_to_files` (default `alias,
//!   forward`: not in `:include:` files): otherwise `5.7.1 mail to command
//!   is restricted` / `mail to file is restricted`;
//! * an unreadable `:include:` file gives `5.3.5 mail system configuration
//!   error` (4.3.5 for errors that may pass, such as EIO);
//! * duplicates are suppressed: one [`Delivery`] per final target, each
//!   alias and each `:include:` file expanded once per expansion (this also
//!   bounds the work on any table);
//! * addresses in a domain listed in [`ExpandOptions::local_domains`] are
//!   expanded as local names; other addresses are final (the caller
//!   forwards them). Extensions are not propagated
//!   (`propagate_unmatched_extensions` excludes aliases).

mod check;
mod expand;
mod live;
mod parse;
mod table;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use check::{check, check_files};
pub use expand::{
    Allow, Context, Delivery, ExpandError, ExpandOptions, Expansion, Failure, expand,
};
pub use live::{LiveTable, expand_options};
pub use parse::{Target, parse, parse_include, parse_inline, parse_value};
pub use table::{Entry, Source, Table};

/// One problem found in an aliases file, an `:include:` file or the inline
/// aliases. `Display` gives `FILE:LINE: error: message` (no `:LINE` when
/// the problem has no line, as for the inline aliases).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; for a logical line, the line it starts on.
    pub line: Option<usize>,
    pub severity: Severity,
    pub message: String,
}

/// `Error`: the line or value was skipped (`postern aliases build` fails).
/// `Warning`: accepted, but probably not what was meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

impl Diagnostic {
    fn new(file: &Path, line: Option<usize>, severity: Severity, message: String) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line,
            severity,
            message,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}: {}", self.severity, self.message)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// An alias file could not be read: delivery must defer
/// (`4.3.0 alias database unavailable`) rather than go on with a partial
/// table.
#[derive(Debug, thiserror::Error)]
#[error("alias file {}: cannot read: {source}", path.display())]
pub(crate) struct LoadError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Builds the table local delivery and smtpd use: the inline aliases from
/// the configuration (`origin` is the configuration file, for the
/// diagnostics), then `files` in order, then the built-in defaults. `read`
/// reads a file; non-UTF-8 bytes are the caller's to replace. Diagnostics
/// are for the caller to log; they never stop the load.
pub(crate) fn load<'a>(
    inline: impl IntoIterator<Item = (&'a str, &'a str)>,
    origin: &Path,
    files: &[PathBuf],
    mut read: impl FnMut(&Path) -> io::Result<String>,
) -> Result<(Table, Vec<Diagnostic>), LoadError> {
    let (inline, mut diagnostics) = parse_inline(inline, origin);
    let mut layers = vec![inline];
    for path in files {
        let text = read(path).map_err(|source| LoadError {
            path: path.clone(),
            source,
        })?;
        let (table, found) = parse(&text, path);
        diagnostics.extend(found);
        layers.push(table);
    }
    Ok((Table::layered(layers), diagnostics))
}
