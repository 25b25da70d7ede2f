//! The aliases(5) text format: logical lines, RFC 822-style tokens, names
//! and [`Target`]s, and the way back (`Display`, which quotes as needed).

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use super::table::{Entry, Source, Table};
use super::{Diagnostic, Severity};
use crate::wire::lines::{LogicalLines, is_space, logical_lines};

/// One value on the right-hand side of an alias. The strings are in
/// internal form: quotes removed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `user` (local) or `user@domain`; split at the last `@`.
    Address(String),
    /// `/path`: append to the file; a path ending in `/` is a Maildir.
    File(PathBuf),
    /// `|command`: the command line, without the `|`.
    Command(String),
    /// `:include:/abs/path`: more targets, read from the file.
    Include(PathBuf),
    /// `\user`: the user's mailbox, without alias or `.forward` expansion.
    NoExpand(String),
}

impl Target {
    /// A `File` target whose path ends in `/`.
    #[cfg(test)]
    pub(crate) fn is_maildir(&self) -> bool {
        matches!(self, Target::File(p) if p.as_os_str().as_encoded_bytes().ends_with(b"/"))
    }

    /// The target as one string before quoting: `|cmd`, `/path`,
    /// `:include:/path`, `\user`, `user@domain`.
    fn internal(&self) -> String {
        match self {
            Target::Address(a) => a.clone(),
            Target::File(p) => p.to_string_lossy().into_owned(),
            Target::Command(c) => format!("|{c}"),
            Target::Include(p) => format!(":include:{}", p.to_string_lossy()),
            Target::NoExpand(u) => format!("\\{u}"),
        }
    }
}

/// The external form, quoted when needed, which [`parse_value`] reads back
/// into the same target.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&external(&self.internal(), false))
    }
}

/// Renders one line `name: t1, t2`, the name quoted when needed.
pub(super) fn render_line(name: &str, targets: &[Target]) -> String {
    let mut line = format!("{}:", external(name, true));
    for (i, t) in targets.iter().enumerate() {
        line.push_str(if i == 0 { " " } else { ", " });
        line.push_str(&t.to_string());
    }
    line
}

/// `word` bare when the tokenizer reads it back unchanged, else in double
/// quotes with `"` and `\` escaped. A name also quotes `:`, `@` and `%`.
fn external(word: &str, is_name: bool) -> Cow<'_, str> {
    let needs_quotes = |c: char| {
        is_space(c)
            || c.is_control()
            || matches!(c, '"' | '(' | ')' | ',' | ';' | '<' | '>')
            || (is_name && matches!(c, ':' | '@' | '%'))
    };
    if !word.is_empty() && !word.starts_with('#') && !word.contains(needs_quotes) {
        return Cow::Borrowed(word);
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('"');
    for c in word.chars() {
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Cow::Owned(quoted)
}

/// Parses an aliases file. Every entry of the table has a [`Source::File`];
/// problems are diagnostics naming `file` and the line (see the module
/// documentation for what is an error and what a warning).
pub fn parse(text: &str, file: &Path) -> (Table, Vec<Diagnostic>) {
    let mut table = Table::new();
    let LogicalLines { lines, orphans } = logical_lines(text);
    let mut diagnostics: Vec<Diagnostic> = orphans
        .into_iter()
        .map(|line| {
            Diagnostic::new(
                file,
                Some(line),
                Severity::Error,
                "logical line must not start with whitespace".to_string(),
            )
        })
        .collect();
    for (line_no, line) in lines {
        let mut report = |severity, message| {
            diagnostics.push(Diagnostic::new(file, Some(line_no), severity, message));
        };
        let Some((name, value)) = split_entry(&line, &mut report) else {
            continue;
        };
        let source = Source::File {
            path: file.to_path_buf(),
            line: line_no,
        };
        let Some(targets) = targets_of(value, "need name:value pair", &mut report) else {
            continue;
        };
        if let Some(first) = table.get(&name).map(|e| e.source.clone()) {
            let at = match first {
                Source::File { line, .. } => format!(" (first at line {line})"),
                _ => String::new(),
            };
            report(
                Severity::Warning,
                format!("duplicate entry: \"{name}\"{at}; this one is ignored"),
            );
            continue;
        }
        table.insert(name, Entry { targets, source });
    }
    (table, diagnostics)
}

/// Parses the inline aliases of the configuration: each value is read
/// like a file line's right-hand side; the name is taken as it is (no
/// quoting layer) and lower-cased. Diagnostics name `origin` and the key
/// (`local.aliases.NAME: ...`), without a line.
pub fn parse_inline<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    origin: &Path,
) -> (Table, Vec<Diagnostic>) {
    let mut table = Table::new();
    let mut diagnostics = Vec::new();
    for (raw_name, value) in pairs {
        let mut report = |severity, message: String| {
            diagnostics.push(Diagnostic::new(
                origin,
                None,
                severity,
                format!("local.aliases.{raw_name}: {message}"),
            ));
        };
        let name = raw_name.to_ascii_lowercase();
        if let Some(problem) = name_problem(&name, name.contains(['@', '%'])) {
            report(Severity::Error, problem.to_string());
            continue;
        }
        let Some(targets) = targets_of(value, "empty value", &mut report) else {
            continue;
        };
        if table.get(&name).is_some() {
            report(
                Severity::Warning,
                format!("duplicate entry: \"{name}\"; this one is ignored"),
            );
            continue;
        }
        table.insert(
            name,
            Entry {
                targets,
                source: Source::Inline,
            },
        );
    }
    (table, diagnostics)
}

/// Parses an `:include:` file: each line whose first non-blank character is
/// not `#` is read like an alias right-hand side (no continuation lines, as
/// in Postfix). Gives each target with its 1-based line.
pub fn parse_include(text: &str, file: &Path) -> (Vec<(usize, Target)>, Vec<Diagnostic>) {
    let mut targets = Vec::new();
    let mut diagnostics = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim_start_matches(is_space).starts_with('#') {
            continue;
        }
        let (found, problems) = parse_value(line);
        targets.extend(found.into_iter().map(|t| (i + 1, t)));
        diagnostics.extend(
            problems
                .into_iter()
                .map(|(severity, message)| Diagnostic::new(file, Some(i + 1), severity, message)),
        );
    }
    (targets, diagnostics)
}

/// Parses a right-hand side (`a, "|cmd x", :include:/f`) into targets and
/// the problems found; a value with a problem is left out. Empty values
/// (`a,,b`) are skipped with a warning.
pub fn parse_value(text: &str) -> (Vec<Target>, Vec<(Severity, String)>) {
    let mut problems = Vec::new();
    let words = match scan(text, false) {
        Ok(scanned) => scanned.tokens,
        Err(e) => return (Vec::new(), vec![(Severity::Error, e)]),
    };
    if words.is_empty() {
        return (Vec::new(), problems);
    }
    let mut targets = Vec::new();
    for element in words.split(|t| matches!(t, Token::Comma)) {
        let words: Vec<&Word> = element
            .iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w),
                Token::Comma => None,
            })
            .collect();
        match classify(&words) {
            Ok(Some(t)) => targets.push(t),
            Ok(None) => problems.push((Severity::Warning, "empty value ignored".to_string())),
            Err(e) => problems.push((Severity::Error, e)),
        }
    }
    (targets, problems)
}

/// The targets of a line's value, problems reported. `None` (the line is
/// skipped, `empty` reported) when there is not one value, good or bad.
fn targets_of(
    value: &str,
    empty: &str,
    report: &mut impl FnMut(Severity, String),
) -> Option<Vec<Target>> {
    let (targets, problems) = parse_value(value);
    let all_empty = problems.iter().all(|(s, _)| *s == Severity::Warning);
    if targets.is_empty() && all_empty {
        report(Severity::Error, empty.to_string());
        return None;
    }
    for (severity, message) in problems {
        report(severity, message);
    }
    if targets.is_empty() {
        report(
            Severity::Error,
            "no usable value: mail to this name is deferred".to_string(),
        );
    }
    Some(targets)
}

/// Splits a logical line into its lower-cased name and the value text.
fn split_entry<'l>(
    line: &'l str,
    report: &mut impl FnMut(Severity, String),
) -> Option<(String, &'l str)> {
    let scanned = match scan(line, true) {
        Ok(s) => s,
        Err(e) => {
            report(Severity::Error, e);
            return None;
        }
    };
    let Some(rest) = scanned.rest else {
        report(Severity::Error, "need name:value pair".to_string());
        return None;
    };
    let words: Vec<&Word> = scanned
        .tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w),
            Token::Comma => None,
        })
        .collect();
    if words.len() != scanned.tokens.len() || words.is_empty() {
        report(Severity::Error, "need name:value pair".to_string());
        return None;
    }
    if words.len() > 1 {
        report(
            Severity::Error,
            "a name with spaces must be quoted (\"first last\": ...)".to_string(),
        );
        return None;
    }
    let name = words[0].text.to_ascii_lowercase();
    if let Some(problem) = name_problem(&name, words[0].bare_route) {
        report(Severity::Error, problem.to_string());
        return None;
    }
    Some((name, &line[rest..]))
}

fn name_problem(name: &str, routed: bool) -> Option<&'static str> {
    if name.is_empty() {
        Some("need name:value pair")
    } else if routed {
        Some("name must be local and have no domain")
    } else if name.chars().any(|c| c.is_control()) {
        Some("control character in name")
    } else {
        None
    }
}

/// Turns the words between two commas into a target. `Ok(None)`: nothing
/// there.
fn classify(words: &[&Word]) -> Result<Option<Target>, String> {
    let Some(first) = words.first() else {
        return Ok(None);
    };
    if words.len() > 1 {
        let joined = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>();
        let joined = joined.join(" ");
        return match joined.strip_prefix('|') {
            Some(command) => classify_one(&format!("|{command}")).map(Some),
            None => Err(format!(
                "\"{joined}\": values must be separated by commas (quote a value with spaces)"
            )),
        };
    }
    classify_one(&first.text).map(Some)
}

const INCLUDE: &str = ":include:";

/// Classifies one value in internal form by its first characters.
fn classify_one(text: &str) -> Result<Target, String> {
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err("control character in value".to_string());
    }
    if let Some(command) = text.strip_prefix('|') {
        if command.trim_matches(is_space).is_empty() {
            return Err("empty command after \"|\"".to_string());
        }
        return Ok(Target::Command(command.to_string()));
    }
    if text.starts_with('/') {
        return Ok(Target::File(PathBuf::from(text)));
    }
    let head = text.get(..INCLUDE.len());
    if head.is_some_and(|h| h.eq_ignore_ascii_case(INCLUDE)) {
        let path = &text[INCLUDE.len()..];
        if !path.starts_with('/') {
            return Err(format!("\"{text}\": the :include: path must be absolute"));
        }
        return Ok(Target::Include(PathBuf::from(path)));
    }
    if let Some(user) = text.strip_prefix('\\') {
        if user.is_empty() || user.contains('@') {
            return Err(format!(
                "\"{text}\": \\ must be followed by a local user name"
            ));
        }
        return Ok(Target::NoExpand(user.to_string()));
    }
    if text.starts_with('~') {
        return Err(format!(
            "\"{text}\": ~/path is only valid in a .forward file"
        ));
    }
    match text.rsplit_once('@') {
        _ if text.is_empty() => Err("empty address".to_string()),
        Some((local, domain)) if local.is_empty() || domain.is_empty() => {
            Err(format!("\"{text}\": invalid address"))
        }
        _ => Ok(Target::Address(text.to_string())),
    }
}

#[derive(Debug)]
enum Token {
    Word(Word),
    Comma,
}

/// A run of atom characters and quoted strings with no space between them.
#[derive(Debug, Default)]
struct Word {
    text: String,
    /// An `@` or `%` outside quotes.
    bare_route: bool,
}

struct Scanned {
    tokens: Vec<Token>,
    /// With `stop_at_colon`: the byte offset just after the first colon.
    rest: Option<usize>,
}

/// Tokenizes `text`. Comments and whitespace separate words; `<`, `>`, `;`
/// and an unbalanced `)` are errors, as are an unterminated quote or
/// comment.
fn scan(text: &str, stop_at_colon: bool) -> Result<Scanned, String> {
    let mut tokens = Vec::new();
    let mut word: Option<Word> = None;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let w = word.get_or_insert_with(Word::default);
                loop {
                    match chars.next().map(|(_, c)| c) {
                        None => return Err("unterminated quoted string".to_string()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some((_, e)) => w.text.push(e),
                            None => return Err("unterminated quoted string".to_string()),
                        },
                        Some(c) => w.text.push(c),
                    }
                }
            }
            '(' => {
                tokens.extend(word.take().map(Token::Word));
                let mut depth = 1;
                while depth > 0 {
                    match chars.next().map(|(_, c)| c) {
                        None => return Err("unterminated comment".to_string()),
                        Some('(') => depth += 1,
                        Some(')') => depth -= 1,
                        Some('\\') => {
                            chars.next();
                        }
                        Some(_) => {}
                    }
                }
            }
            ',' => {
                tokens.extend(word.take().map(Token::Word));
                tokens.push(Token::Comma);
            }
            ':' if stop_at_colon => {
                tokens.extend(word.take().map(Token::Word));
                return Ok(Scanned {
                    tokens,
                    rest: Some(i + 1),
                });
            }
            ')' | '<' | '>' | ';' => {
                return Err(format!(
                    "unexpected '{c}' (quote a value that contains it; write addresses bare)"
                ));
            }
            c if is_space(c) => tokens.extend(word.take().map(Token::Word)),
            c => {
                let w = word.get_or_insert_with(Word::default);
                w.bare_route |= matches!(c, '@' | '%');
                w.text.push(c);
            }
        }
    }
    tokens.extend(word.take().map(Token::Word));
    Ok(Scanned { tokens, rest: None })
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
