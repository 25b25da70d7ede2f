//! `postern aliases build`: every problem in the alias sources, with its
//! file and line: the parse diagnostics of each file, of each `:include:`
//! file reachable from them, and what expanding every name finds (loops,
//! targets not allowed in their context, unreadable `:include:` files).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use super::expand::{Context, ExpandError, ExpandOptions, Failure, expand};
use super::table::{Source, Table};
use super::{Diagnostic, Severity, parse, parse_inline};

/// Checks the aliases files `paths` (read from the disk; bytes that are not
/// UTF-8 are replaced) as [`check`] does, without inline aliases.
pub fn check_files(paths: &[PathBuf], options: &ExpandOptions) -> Vec<Diagnostic> {
    let read = |path: &Path| std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned());
    check([], Path::new(""), paths, options, read)
}

/// Checks the inline aliases (`origin`: the configuration file) and the
/// files `paths` together, as local delivery would combine them, reading
/// files and `:include:` files with `read`. An unreadable file is an error.
/// The result is in the order found, without repeats.
pub fn check<'a>(
    inline: impl IntoIterator<Item = (&'a str, &'a str)>,
    origin: &Path,
    paths: &[PathBuf],
    options: &ExpandOptions,
    mut read: impl FnMut(&Path) -> io::Result<String>,
) -> Vec<Diagnostic> {
    let (inline, mut found) = parse_inline(inline, origin);
    let mut layers = vec![inline];
    for path in paths {
        match read(path) {
            Ok(text) => {
                let (table, diagnostics) = parse(&text, path);
                found.extend(diagnostics);
                layers.push(table);
            }
            Err(e) => found.push(Diagnostic::new(
                path,
                None,
                Severity::Error,
                format!("cannot read: {e}"),
            )),
        }
    }
    let table = Table::layered(layers);

    let mut report = Report {
        seen: found.iter().cloned().collect(),
        out: found,
        loops: HashSet::new(),
        too_deep: false,
    };
    let mut cache: HashMap<PathBuf, Result<String, (io::ErrorKind, String)>> = HashMap::new();
    for (name, _) in table.iter() {
        let cached_read = |path: &Path| {
            let result = cache
                .entry(path.to_path_buf())
                .or_insert_with(|| read(path).map_err(|e| (e.kind(), e.to_string())));
            result
                .clone()
                .map_err(|(kind, message)| io::Error::new(kind, message))
        };
        let expansion = expand(&table, name, options, cached_read);
        for warning in expansion.warnings {
            report.push(warning);
        }
        for failure in &expansion.failures {
            report.failure(failure, origin, options.max_depth);
        }
    }
    report.out
}

struct Report {
    out: Vec<Diagnostic>,
    seen: HashSet<Diagnostic>,
    /// Loops reported, by their sorted names.
    loops: HashSet<Vec<String>>,
    /// Whether a nesting deeper than the limit was reported (once: every
    /// name along a long chain would report it again).
    too_deep: bool,
}

impl Report {
    fn push(&mut self, diagnostic: Diagnostic) {
        if self.seen.insert(diagnostic.clone()) {
            self.out.push(diagnostic);
        }
    }

    fn failure(&mut self, failure: &Failure, origin: &Path, max_depth: usize) {
        let detail = match &failure.error {
            // Reported by the parse, at the bad values.
            ExpandError::Unavailable { .. } => return,
            ExpandError::Loop { name } => {
                let chain = &failure.chain;
                match chain.iter().position(|c| c == name) {
                    Some(start) => {
                        let mut cycle = chain[start..].to_vec();
                        cycle.sort();
                        if !self.loops.insert(cycle) {
                            return;
                        }
                        format!(
                            "{}: {} -> {name}",
                            failure.error,
                            chain[start..].join(" -> ")
                        )
                    }
                    None => {
                        if std::mem::replace(&mut self.too_deep, true) {
                            return;
                        }
                        format!(
                            "{}: more than {max_depth} nesting levels: {} -> ... -> {name}",
                            failure.error, chain[0]
                        )
                    }
                }
            }
            other => other.log_message(),
        };
        let (file, line, message) = match (&failure.context, &failure.source) {
            (Context::Include { path, line }, _) => (path.clone(), Some(*line), detail),
            (Context::Alias, Source::File { path, line }) => (path.clone(), Some(*line), detail),
            (Context::Alias, Source::Inline) => {
                let name = failure.chain.last().map_or("", String::as_str);
                (
                    origin.to_path_buf(),
                    None,
                    format!("local.aliases.{name}: {detail}"),
                )
            }
            (Context::Alias, Source::Default) => {
                (PathBuf::from("(built-in aliases)"), None, detail)
            }
        };
        self.push(Diagnostic::new(&file, line, Severity::Error, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aliases::Allow;

    fn files(list: &[(&str, &str)]) -> impl FnMut(&Path) -> io::Result<String> + use<> {
        let map: HashMap<PathBuf, String> = list
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        move |p: &Path| {
            map.get(p)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
    }

    fn run(list: &[(&str, &str)], options: &ExpandOptions) -> Vec<String> {
        let paths = [PathBuf::from("/etc/aliases")];
        check([], Path::new("postern.toml"), &paths, options, files(list))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_clean_file_has_no_diagnostics() {
        let found = run(
            &[("/etc/aliases", "root: admin\nadmin: \\admin, |/bin/log\n")],
            &ExpandOptions::default(),
        );
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn every_problem_has_its_file_and_line() {
        let text = "\
# comment
root: admin
bad line
x@y: z
root: other
list: :include:/etc/list, :include:/missing
a: b
b: c
c: a
";
        let include = "ok\n|/bin/cmd\n\"unterminated\n";
        let found = run(
            &[("/etc/aliases", text), ("/etc/list", include)],
            &ExpandOptions::default(),
        );
        assert_eq!(
            found,
            [
                "/etc/aliases:3: error: need name:value pair",
                "/etc/aliases:4: error: name must be local and have no domain",
                "/etc/aliases:5: warning: duplicate entry: \"root\" (first at line 2); \
                 this one is ignored",
                "/etc/aliases:9: error: alias database loop for a: a -> b -> c -> a",
                "/etc/list:3: error: unterminated quoted string",
                "/etc/list:2: error: mail to command is restricted",
                "/etc/aliases:6: error: cannot open include file /missing: entity not found",
            ]
        );
    }

    #[test]
    fn commands_in_include_files_pass_when_allowed() {
        let options = ExpandOptions {
            allow_commands: Allow {
                include: true,
                ..Allow::POSTFIX
            },
            ..ExpandOptions::default()
        };
        let found = run(
            &[
                ("/etc/aliases", "list: :include:/etc/list\n"),
                ("/etc/list", "|/bin/cmd\n"),
            ],
            &options,
        );
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let found = run(&[], &ExpandOptions::default());
        assert_eq!(
            found,
            ["/etc/aliases: error: cannot read: entity not found"]
        );
    }

    #[test]
    fn inline_loops_name_the_key() {
        let paths: [PathBuf; 0] = [];
        let found: Vec<String> = check(
            [("a", "b"), ("b", "a")],
            Path::new("postern.toml"),
            &paths,
            &ExpandOptions::default(),
            files(&[]),
        )
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            found,
            ["postern.toml: error: local.aliases.b: alias database loop for a: a -> b -> a"]
        );
    }

    #[test]
    fn a_long_chain_is_reported_once() {
        let text: String = (0..150).map(|i| format!("a{i}: a{}\n", i + 1)).collect();
        let found = run(&[("/etc/aliases", &text)], &ExpandOptions::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("more than 100 nesting levels"),
            "{found:?}"
        );
    }
}
