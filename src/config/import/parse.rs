//! main.cf and master.cf as Postfix reads them: logical lines
//! ([`crate::wire::lines`]: a line that starts with white space continues
//! the previous one; a line whose first non-blank character is `#` is a
//! comment, even inside a continued line), `name = value` pairs in main.cf (the last one wins), services with their
//! `-o name=value` overrides in master.cf.

use std::collections::BTreeMap;

use super::ImportError;
use crate::wire::lines::{LogicalLines, logical_lines};

/// One parameter of main.cf: its value as written and its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Param {
    pub value: String,
    pub line: usize,
}

/// main.cf: the parameters by name, and the warnings Postfix would log.
#[derive(Debug, Default)]
pub(crate) struct MainCf {
    pub params: BTreeMap<String, Param>,
    pub warnings: Vec<String>,
}

/// Parses main.cf; `file` names it in errors and warnings.
pub(crate) fn main_cf(text: &str, file: &str) -> Result<MainCf, ImportError> {
    let mut cf = MainCf::default();
    let LogicalLines { lines, orphans } = logical_lines(text);
    for line in orphans {
        cf.warnings.push(format!(
            "{file}:{line}: logical line must not start with whitespace (ignored)"
        ));
    }
    for (line, text) in lines {
        let Some((name, value)) = text.split_once('=') else {
            return Err(ImportError::Syntax {
                file: file.to_string(),
                line,
                reason: format!("missing '=' after attribute name: \"{}\"", text.trim()),
            });
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(ImportError::Syntax {
                file: file.to_string(),
                line,
                reason: "missing attribute name".to_string(),
            });
        }
        let value = value.trim().to_string();
        if let Some(old) = cf.params.get(name).filter(|old| old.value != value) {
            cf.warnings.push(format!(
                "{file}:{line}: overriding earlier entry: {name}={}",
                old.value
            ));
        }
        cf.params.insert(name.to_string(), Param { value, line });
    }
    Ok(cf)
}

/// One service of master.cf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Service {
    /// The first column: `smtp`, `submission`, `127.0.0.1:10025`.
    pub name: String,
    /// `inet`, `unix`, `unix-dgram`, `fifo`, `pass`.
    pub kind: String,
    /// The program: `smtpd`, `postscreen`, `pipe`…
    pub command: String,
    /// The `-o name=value` overrides, in order.
    pub overrides: Vec<(String, String)>,
    /// The other arguments (`flags=… argv=…`).
    pub args: Vec<String>,
    pub line: usize,
}

/// Parses master.cf: eight columns, then the command's arguments.
pub(crate) fn master_cf(text: &str, file: &str) -> Result<Vec<Service>, ImportError> {
    let mut out = Vec::new();
    let lines = logical_lines(text).lines;
    for (line, text) in lines {
        let words = split_args(&text);
        if words.len() < 8 {
            return Err(ImportError::Syntax {
                file: file.to_string(),
                line,
                reason: format!(
                    "a service needs 8 fields (service type private unpriv chroot wakeup maxproc command): \"{}\"",
                    text.trim()
                ),
            });
        }
        let (overrides, args) = overrides(&words[8..]);
        out.push(Service {
            name: words[0].clone(),
            kind: words[1].clone(),
            command: words[7].clone(),
            overrides,
            args,
            line,
        });
    }
    Ok(out)
}

/// Splits at white space, keeping `{ … }` groups (Postfix 3.0's way of
/// writing an argument with white space) whole.
fn split_args(text: &str) -> Vec<String> {
    split_keeping_braces(text, &[' ', '\t'])
}

/// The `-o name=value` (also `-o { name = value }`) pairs, and the rest.
fn overrides(words: &[String]) -> (Vec<(String, String)>, Vec<String>) {
    let mut pairs = Vec::new();
    let mut rest = Vec::new();
    let mut iter = words.iter();
    while let Some(word) = iter.next() {
        let setting = if word == "-o" {
            iter.next().map(String::as_str)
        } else {
            word.strip_prefix("-o").filter(|s| s.contains('='))
        };
        match setting {
            Some(s) => {
                let s = s
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .unwrap_or(s);
                if let Some((name, value)) = s.split_once('=') {
                    pairs.push((name.trim().to_string(), value.trim().to_string()));
                }
            }
            None => rest.push(word.clone()),
        }
    }
    (pairs, rest)
}

/// Splits a list value at commas and white space, keeping `{ … }` groups
/// whole (restriction lists, table lists).
pub(crate) fn split_list(text: &str) -> Vec<String> {
    split_keeping_braces(text, &[',', ' ', '\t', '\r', '\n'])
}

/// Splits at `separators` outside `{ … }`.
fn split_keeping_braces(text: &str, separators: &[char]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            c if depth == 0 && separators.contains(&c) => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_and_the_last_assignment() {
        let text =
            "a = 1\nb = x,\n  # a comment inside\n    y\n# c = 3\nc = 4 # not a comment\na = 2\n";
        let cf = main_cf(text, "main.cf").unwrap();
        assert_eq!(cf.params["a"].value, "2");
        assert_eq!(cf.params["a"].line, 7);
        assert_eq!(cf.params["b"].value, "x,    y");
        assert_eq!(cf.params["c"].value, "4 # not a comment");
        assert_eq!(
            cf.warnings,
            ["main.cf:7: overriding earlier entry: a=1".to_string()]
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = main_cf("a = 1\n\nbroken line\n", "/etc/postfix/main.cf").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/postfix/main.cf:3: missing '=' after attribute name: \"broken line\""
        );
        let e = main_cf("= 1\n", "main.cf").unwrap_err();
        assert!(e.to_string().contains("missing attribute name"), "{e}");
        let e = master_cf("smtp inet n - n\n", "master.cf").unwrap_err();
        assert!(
            e.to_string().starts_with("master.cf:1: a service needs 8"),
            "{e}"
        );
    }

    #[test]
    fn orphan_continuations_are_warned_about() {
        let cf = main_cf("  orphan\na = 1\n", "main.cf").unwrap();
        assert_eq!(cf.params.len(), 1);
        assert!(cf.warnings[0].contains("main.cf:1: logical line must not start"));
    }

    #[test]
    fn services_and_overrides() {
        let text = "smtp inet n - y - - smtpd\nsubmission inet n - y - - smtpd\n  -o syslog_name=postfix/$service_name\n  -o { smtpd_client_restrictions = permit_sasl_authenticated, reject }\n#  -o commented=out\nmaildrop unix - n n - - pipe\n  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}\n";
        let s = master_cf(text, "master.cf").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].name, "submission");
        assert_eq!(s[1].line, 2);
        assert_eq!(
            s[1].overrides,
            [
                (
                    "syslog_name".to_string(),
                    "postfix/$service_name".to_string()
                ),
                (
                    "smtpd_client_restrictions".to_string(),
                    "permit_sasl_authenticated, reject".to_string()
                )
            ]
        );
        assert_eq!(s[2].command, "pipe");
        assert_eq!(s[2].args[0], "flags=DRXhu");
    }

    #[test]
    fn lists_keep_braces_whole() {
        assert_eq!(
            split_list("permit_mynetworks,\n  check_client_access inline:{ a=b, c=d }  reject"),
            [
                "permit_mynetworks",
                "check_client_access",
                "inline:{ a=b, c=d }",
                "reject"
            ]
        );
    }
}
