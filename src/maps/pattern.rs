//! regexp and pcre tables (Postfix's regexp_table(5) and pcre_table(5)).
//!
//! Rules, tried in order, the first match winning, each seeing the whole
//! input:
//!
//! - `/pattern/flags result`: `result` when the input matches, with
//!   `$1`, `${1}`, `$(1)` replaced by the capture groups and `$$` by `$`;
//! - `!/pattern/flags result`: `result` when it does not match (no `$n`);
//! - `/p1/!/p2/ result` (legacy): when `p1` matches and `p2` does not;
//! - `if /pattern/flags` (or `if !/pattern/`) … `endif`: the rules inside
//!   are tried only when the condition holds; blocks nest.
//!
//! The delimiter is any character that is neither alphanumeric nor
//! whitespace; a backslash escapes it inside the pattern.
//!
//! `regexp:` tables use the `regex` crate (linear time whatever the
//! input). Its flags toggle Postfix's POSIX defaults: `i` (on:
//! case-insensitive), `m` (off: REG_NEWLINE, `.` then stops at newlines and
//! `^`/`$` match at them); `x` would turn extended syntax off, which postern
//! does not support (an error).
//!
//! `pcre:` tables use real PCRE2 (Perl syntax: `\b`, look-around,
//! back-references). Flags toggle Postfix's defaults: `i` (on), `m` (off),
//! `s` (on: `.` matches a newline), `x` (off), `A` (anchored), `U`
//! (ungreedy); `X` is accepted and ignored (PCRE2 has it always), `E`
//! (dollar-end-only) is not supported. Every pattern is compiled with
//! `(*LIMIT_MATCH=…)(*LIMIT_DEPTH=…)` in front, which lowers PCRE2's
//! limits for that pattern (with or without JIT): a pathological pattern
//! fails fast instead of stalling the daemon; such a failure is logged and
//! counts as no match, as Postfix does.
//!
//! Problems that Postfix only warns about (an unknown flag, a missing
//! `endif`, a rule without a result) are errors here: a table with errors
//! is not used.

use crate::maps::text::{Diagnostic, table_lines};

/// PCRE2 match limit per lookup (Postfix leaves PCRE's default of ten
/// million; one million is ~2 ms with JIT on a catastrophic pattern).
const PCRE_MATCH_LIMIT: u32 = 1_000_000;
/// PCRE2 backtracking depth limit (bounds the heap a match may use).
const PCRE_DEPTH_LIMIT: u32 = 10_000;
/// Compiled-size cap for one `regex` pattern.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

/// Which regular expression engine a table uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    /// `regexp:` (POSIX-like, on the regex crate).
    Regexp,
    /// `pcre:` (PCRE2).
    Pcre,
}

impl Engine {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Engine::Regexp => "regexp",
            Engine::Pcre => "pcre",
        }
    }
}

/// A parsed regexp or pcre table.
pub struct PatternTable {
    /// Where it came from (for warnings at match time).
    name: String,
    rules: Vec<Rule>,
}

struct Rule {
    line: usize,
    kind: RuleKind,
}

enum RuleKind {
    Match {
        re: Matcher,
        negate: bool,
        and_not: Option<Matcher>,
        result: Vec<Piece>,
    },
    /// Skip to `end` (the index of the matching endif) unless it holds.
    If {
        re: Matcher,
        negate: bool,
        end: usize,
    },
    Endif,
}

/// A piece of a result template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

enum Matcher {
    Regex(regex::bytes::Regex),
    Pcre(pcre2::bytes::Regex),
}

/// Capture group spans (index 0: the whole match; None: did not take part).
type Spans = Vec<Option<(usize, usize)>>;

/// A match that could not be completed (PCRE2's match or depth limit).
struct MatchLimit(String);

impl Matcher {
    fn groups(&self) -> usize {
        match self {
            Matcher::Regex(r) => r.captures_len() - 1,
            Matcher::Pcre(r) => r.captures_len() - 1,
        }
    }

    fn is_match(&self, subject: &[u8]) -> Result<bool, MatchLimit> {
        match self {
            Matcher::Regex(r) => Ok(r.is_match(subject)),
            Matcher::Pcre(r) => r.is_match(subject).map_err(|e| MatchLimit(e.to_string())),
        }
    }

    /// The capture groups' spans (index 0: the whole match), if it matches.
    fn captures(&self, subject: &[u8]) -> Result<Option<Spans>, MatchLimit> {
        match self {
            Matcher::Regex(r) => Ok(r.captures(subject).map(|c| {
                (0..c.len())
                    .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                    .collect()
            })),
            Matcher::Pcre(r) => r
                .captures(subject)
                .map(|c| {
                    c.map(|c| {
                        (0..c.len())
                            .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                            .collect()
                    })
                })
                .map_err(|e| MatchLimit(e.to_string())),
        }
    }
}

impl PatternTable {
    /// Parses a table file's text; `file` names it in diagnostics.
    pub(crate) fn parse(engine: Engine, file: &str, text: &str) -> (PatternTable, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let lines = table_lines(file, text, &mut diags);
        let (table, more) = PatternTable::from_lines(engine, file, lines);
        diags.extend(more);
        (table, diags)
    }

    /// Parses numbered rule lines (a file's logical lines, or the elements
    /// of an inline `regexp:{ … }` table).
    pub(crate) fn from_lines(
        engine: Engine,
        file: &str,
        lines: Vec<(usize, String)>,
    ) -> (PatternTable, Vec<Diagnostic>) {
        let mut rules = Vec::new();
        let mut diags = Vec::new();
        // Indices of the open `if` rules.
        let mut open: Vec<usize> = Vec::new();
        for (n, line) in lines {
            match parse_rule(engine, line.trim()) {
                Ok(RuleKind::Endif) => match open.pop() {
                    Some(at) => {
                        let end = rules.len();
                        if let Some(Rule {
                            kind: RuleKind::If { end: e, .. },
                            ..
                        }) = rules.get_mut(at)
                        {
                            *e = end;
                        }
                        rules.push(Rule {
                            line: n,
                            kind: RuleKind::Endif,
                        });
                    }
                    None => diags.push(Diagnostic::error(file, n, "endif without a matching if")),
                },
                Ok(kind) => {
                    if matches!(kind, RuleKind::If { .. }) {
                        open.push(rules.len());
                    }
                    rules.push(Rule { line: n, kind });
                }
                Err(e) => diags.push(Diagnostic::error(file, n, e)),
            }
        }
        for at in open {
            let line = rules.get(at).map(|r| r.line).unwrap_or(0);
            diags.push(Diagnostic::error(file, line, "if has no matching endif"));
            // Close it at the end so that the table stays consistent.
            if let Some(Rule {
                kind: RuleKind::If { end, .. },
                ..
            }) = rules.get_mut(at)
            {
                *end = usize::MAX;
            }
        }
        (
            PatternTable {
                name: format!("{}:{file}", engine.name()),
                rules,
            },
            diags,
        )
    }

    /// The result of the first rule that matches `subject`.
    pub(crate) fn lookup(&self, subject: &[u8]) -> Option<String> {
        let mut i = 0;
        while let Some(rule) = self.rules.get(i) {
            i += 1;
            let outcome = match &rule.kind {
                RuleKind::Endif => continue,
                RuleKind::If { re, negate, end } => match re.is_match(subject) {
                    Ok(m) => {
                        if m == *negate {
                            i = end.saturating_add(1);
                        }
                        continue;
                    }
                    Err(e) => Err(e),
                },
                RuleKind::Match {
                    re,
                    negate,
                    and_not,
                    result,
                } => self.try_rule(subject, re, *negate, and_not.as_ref(), result),
            };
            match outcome {
                Ok(Some(found)) => return Some(found),
                Ok(None) => {}
                Err(MatchLimit(e)) => log::warn!(
                    "{}, line {}: {e}: the rule is taken as not matching",
                    self.name,
                    rule.line
                ),
            }
        }
        None
    }

    fn try_rule(
        &self,
        subject: &[u8],
        re: &Matcher,
        negate: bool,
        and_not: Option<&Matcher>,
        result: &[Piece],
    ) -> Result<Option<String>, MatchLimit> {
        if negate {
            return Ok((!re.is_match(subject)?).then(|| expand(result, subject, &[])));
        }
        let Some(groups) = re.captures(subject)? else {
            return Ok(None);
        };
        if let Some(not) = and_not
            && not.is_match(subject)?
        {
            return Ok(None);
        }
        Ok(Some(expand(result, subject, &groups)))
    }
}

fn expand(result: &[Piece], subject: &[u8], groups: &[Option<(usize, usize)>]) -> String {
    let mut out = String::new();
    for p in result {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Group(g) => {
                if let Some(Some((s, e))) = groups.get(*g) {
                    out.push_str(&String::from_utf8_lossy(&subject[*s..*e]));
                }
            }
        }
    }
    out
}

/// One logical line: a rule, `if`, or `endif`.
fn parse_rule(engine: Engine, line: &str) -> Result<RuleKind, String> {
    if let Some(rest) = keyword(line, "endif") {
        if !rest.trim().is_empty() {
            return Err(format!("unexpected text after endif: {:?}", rest.trim()));
        }
        return Ok(RuleKind::Endif);
    }
    if let Some(rest) = keyword(line, "if") {
        let (negate, re, rest) = pattern(engine, rest.trim_start())?;
        if !rest.trim().is_empty() {
            return Err(format!(
                "unexpected text after the if pattern: {:?}",
                rest.trim()
            ));
        }
        return Ok(RuleKind::If {
            re,
            negate,
            end: usize::MAX,
        });
    }
    let (negate, re, rest) = pattern(engine, line)?;
    let (and_not, rest) = match rest.strip_prefix('!') {
        Some(r) if !negate && r.starts_with(is_delimiter) => {
            let (_, re2, rest) = pattern(engine, r)?;
            (Some(re2), rest)
        }
        _ => (None, rest),
    };
    let text = rest.trim();
    if text.is_empty() {
        return Err("no result after the pattern".into());
    }
    let result = template(text)?;
    let max = result
        .iter()
        .filter_map(|p| match p {
            Piece::Group(g) => Some(*g),
            Piece::Text(_) => None,
        })
        .max();
    if let Some(max) = max {
        if negate {
            return Err("$number in the result of a !/pattern/ rule".into());
        }
        if max > re.groups() {
            return Err(format!(
                "${max} in the result, but the pattern has {} group(s)",
                re.groups()
            ));
        }
    }
    Ok(RuleKind::Match {
        re,
        negate,
        and_not,
        result,
    })
}

/// `word` at the start of `line` (any case), followed by whitespace or the
/// end: what follows it.
fn keyword<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let head = line.get(..word.len())?;
    let rest = &line[word.len()..];
    (head.eq_ignore_ascii_case(word) && (rest.is_empty() || rest.starts_with(char::is_whitespace)))
        .then_some(rest)
}

fn is_delimiter(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace()
}

/// `[!]/pattern/flags` at the start of `text`: (negated, compiled, rest).
fn pattern(engine: Engine, text: &str) -> Result<(bool, Matcher, &str), String> {
    let (negate, text) = match text.strip_prefix('!') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let mut chars = text.char_indices();
    let delim = match chars.next() {
        Some((_, c)) if is_delimiter(c) => c,
        _ => return Err("expected /pattern/ (a delimiter such as /, then the pattern)".into()),
    };
    let mut close = None;
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == delim {
            close = Some(i);
            break;
        }
    }
    let close = close.ok_or_else(|| format!("missing closing delimiter {delim:?}"))?;
    let body = &text[delim.len_utf8()..close];
    let after = &text[close + delim.len_utf8()..];
    let flag_end = after
        .find(|c: char| c.is_whitespace() || c == '!')
        .unwrap_or(after.len());
    let matcher = compile(engine, body, &after[..flag_end])?;
    Ok((negate, matcher, &after[flag_end..]))
}

fn compile(engine: Engine, pattern: &str, flags: &str) -> Result<Matcher, String> {
    match engine {
        Engine::Regexp => {
            let (mut icase, mut newline) = (true, false);
            for f in flags.chars() {
                match f {
                    'i' => icase = !icase,
                    'm' => newline = !newline,
                    'x' => {
                        return Err(
                            "flag x (basic instead of extended regular expressions) is not supported"
                                .into(),
                        );
                    }
                    c => return Err(format!("unknown regexp flag {c:?}")),
                }
            }
            regex::bytes::RegexBuilder::new(pattern)
                .unicode(false)
                .case_insensitive(icase)
                .multi_line(newline)
                .dot_matches_new_line(!newline)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map(Matcher::Regex)
                .map_err(|e| format!("bad regular expression: {}", one_line(&e.to_string())))
        }
        Engine::Pcre => {
            let (mut icase, mut multi, mut dotall, mut ext, mut anchored, mut ungreedy) =
                (true, false, true, false, false, false);
            for f in flags.chars() {
                match f {
                    'i' => icase = !icase,
                    'm' => multi = !multi,
                    's' => dotall = !dotall,
                    'x' => ext = !ext,
                    'A' => anchored = !anchored,
                    'U' => ungreedy = !ungreedy,
                    'X' => {}
                    'E' => return Err("pcre flag E (dollar end only) is not supported".into()),
                    c => return Err(format!("unknown pcre flag {c:?}")),
                }
            }
            // Start-of-pattern items such as (*UCP) must stay first.
            let mut rest = pattern;
            let mut items = String::new();
            while rest.starts_with("(*") {
                let Some(end) = rest.find(')') else { break };
                items.push_str(&rest[..=end]);
                rest = &rest[end + 1..];
            }
            let mut full = format!(
                "(*LIMIT_MATCH={PCRE_MATCH_LIMIT})(*LIMIT_DEPTH={PCRE_DEPTH_LIMIT}){items}"
            );
            if ungreedy {
                full.push_str("(?U)");
            }
            if anchored && ext {
                // A newline ends an x-mode comment before the closing ).
                full.push_str(&format!("\\A(?:{rest}\n)"));
            } else if anchored {
                full.push_str(&format!("\\A(?:{rest})"));
            } else {
                full.push_str(rest);
            }
            pcre2::bytes::RegexBuilder::new()
                .caseless(icase)
                .multi_line(multi)
                .dotall(dotall)
                .extended(ext)
                .jit_if_available(true)
                .build(&full)
                .map(Matcher::Pcre)
                .map_err(|e| format!("bad pcre pattern: {}", one_line(&e.to_string())))
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The result text with `$1`, `${1}`, `$(1)` and `$$`.
fn template(text: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            lit.push(c);
            continue;
        }
        let name: String = match chars.peek() {
            Some('$') => {
                chars.next();
                lit.push('$');
                continue;
            }
            Some(&open @ ('{' | '(')) => {
                chars.next();
                let close = if open == '{' { '}' } else { ')' };
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some(c) if c == close => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("missing {close:?} after ${open}")),
                    }
                }
                name
            }
            Some(c) if c.is_ascii_alphanumeric() || *c == '_' => {
                let mut name = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                name
            }
            _ => {
                lit.push('$');
                continue;
            }
        };
        let group: usize = name
            .parse()
            .map_err(|_| format!("${name}: the replacement must be a group number"))?;
        if !lit.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut lit)));
        }
        out.push(Piece::Group(group));
    }
    if !lit.is_empty() {
        out.push(Piece::Text(lit));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "pattern_tests.rs"]
mod tests;
