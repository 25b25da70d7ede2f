//! The alias table: lower-cased names to their targets, sources layered in
//! priority order, and the lookup by local part.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::parse::{Target, render_line};

/// A set of aliases: lower-cased names, each with its targets and where it
/// was defined. Iteration is in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    entries: BTreeMap<String, Entry>,
}

/// The right-hand side of one alias. `targets` is empty only when none of
/// the values written could be read (mail to the name then defers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub targets: Vec<Target>,
    pub source: Source,
}

/// Where an alias was defined. For `|command` and `/file` targets the
/// caller derives the rights from it, as Postfix does from the owner of the
/// alias database (root-owned, inline and built-in: `default_privs`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Built in: `postmaster: root`, `mailer-daemon: postmaster`.
    Default,
    /// `local.aliases` in the configuration.
    Inline,
    /// An aliases file, with the line the entry starts on.
    File { path: PathBuf, line: usize },
}

/// The built-in aliases every system needs, added under all sources.
const DEFAULTS: [(&str, &str); 2] = [("postmaster", "root"), ("mailer-daemon", "postmaster")];

impl Table {
    pub(crate) fn new() -> Table {
        Table::default()
    }

    /// Only the built-in aliases.
    pub(crate) fn defaults() -> Table {
        let mut table = Table::new();
        for (name, target) in DEFAULTS {
            table.insert(
                name.to_string(),
                Entry {
                    targets: vec![Target::Address(target.to_string())],
                    source: Source::Default,
                },
            );
        }
        table
    }

    /// Combines `layers`, the first one that defines a name winning (inline
    /// aliases first, then the files in order), with the built-in defaults
    /// under them all.
    pub fn layered(layers: impl IntoIterator<Item = Table>) -> Table {
        let mut table = Table::new();
        for layer in layers.into_iter().chain([Table::defaults()]) {
            for (name, entry) in layer.entries {
                table.entries.entry(name).or_insert(entry);
            }
        }
        table
    }

    /// Adds an entry under the lower-cased `name`; an existing one with
    /// that name is kept (first wins). Returns whether it was added.
    pub(crate) fn insert(&mut self, name: String, entry: Entry) -> bool {
        match self.entries.entry(name.to_ascii_lowercase()) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(entry);
                true
            }
        }
    }

    /// The entry for exactly `name` (compared case-insensitively).
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name.to_ascii_lowercase().as_str())
    }

    /// The `owner-NAME` entry of `name`, if any: where Postfix sends the
    /// delivery problems of a list.
    pub(crate) fn owner(&self, name: &str) -> Option<&Entry> {
        self.get(&format!("owner-{name}"))
    }

    /// Finds the alias for a local part: the whole `user+ext` first, then
    /// `user` when `delimiter` (a set of characters; the first one found
    /// in the local part splits it) is given and not empty. Gives the name
    /// that matched and its entry.
    pub(crate) fn lookup(
        &self,
        local_part: &str,
        delimiter: Option<&str>,
    ) -> Option<(&str, &Entry)> {
        self.lookup_except(local_part, delimiter, None)
    }

    /// [`Table::lookup`], skipping the name `except` (an alias naming
    /// itself means the user's mailbox, not the alias again).
    pub(super) fn lookup_except(
        &self,
        local_part: &str,
        delimiter: Option<&str>,
        except: Option<&str>,
    ) -> Option<(&str, &Entry)> {
        let full = local_part.to_ascii_lowercase();
        let user = delimiter
            .map(|d| crate::address::split_extension(&full, d))
            .filter(|(_, ext)| ext.is_some())
            .map(|(user, _)| user);
        [Some(full.as_str()), user]
            .into_iter()
            .flatten()
            .filter(|candidate| Some(*candidate) != except)
            .find_map(|candidate| self.entries.get_key_value(candidate))
            .map(|(name, entry)| (name.as_str(), entry))
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries
            .iter()
            .map(|(name, entry)| (name.as_str(), entry))
    }

    /// The table in aliases(5) form, one line an entry in name order, which
    /// [`parse`](super::parse) reads back into the same names and targets.
    /// An entry left without targets is written as a comment.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, entry) in &self.entries {
            let line = render_line(name, &entry.targets);
            if entry.targets.is_empty() {
                out.push_str("# no usable value: ");
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}
