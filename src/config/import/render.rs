//! The output: the TOML (tables and keys in `config show`'s order, each
//! key with its Postfix parameter beside it), loaded by the ordinary
//! loader first (a value it refuses is left out and reported), and the
//! report, which also ends the TOML as comments.

use std::fmt::Write;

use super::ImportError;
use super::translate::{Entry, Item};
use crate::config::ConfigError;
use crate::config::keys::{self, KEYS};

/// The entries the loader accepts; each it refuses becomes an item.
pub(crate) fn validated(
    (mut entries, mut items): (Vec<Entry>, Vec<Item>),
) -> Result<(Vec<Entry>, Vec<Item>), ImportError> {
    loop {
        let text = body(&entries);
        let error = match crate::config::Config::from_toml(&text, "postern.toml") {
            Ok(_) => return Ok((entries, items)),
            Err(e) => e,
        };
        let (key, reason) = match &error {
            ConfigError::BadValue { key, reason, .. } => (key.clone(), reason.clone()),
            ConfigError::WrongType { key, expected, .. } => {
                (key.clone(), format!("expected {expected}"))
            }
            _ => return Err(ImportError::Generated(error.to_string())),
        };
        let before = entries.len();
        let mut removed = Vec::new();
        entries.retain(|e| {
            let keep = e.key.dotted() != key;
            if !keep {
                removed.push(e.clone());
            }
            keep
        });
        if entries.len() == before {
            return Err(ImportError::Generated(error.to_string()));
        }
        for e in removed {
            items.push(Item {
                origin: e.origin.clone(),
                name: e.from.clone(),
                text: format!("{key} = {}: refused by postern: {reason}", e.value),
                left_out: true,
            });
        }
    }
}

/// The comment at the top.
pub(crate) fn header(main: &str, master: &str) -> String {
    format!(
        "# postern.toml written by `postern config import-postfix` from {main} and {master}.\n\
         # Beside each key: the Postfix parameter it comes from. Every parameter main.cf\n\
         # sets that postern has a key for is written, also when its value is postern's\n\
         # default; so are Postfix's defaults that differ from postern's. What could\n\
         # not be translated is listed at the end.\n"
    )
}

/// The keys, table by table.
fn body(entries: &[Entry]) -> String {
    let mut out = String::new();
    for table in keys::tables() {
        let mut first = true;
        for key in KEYS.iter().filter(|k| k.table == table) {
            let Some(e) = entries.iter().find(|e| std::ptr::eq(e.key, key)) else {
                continue;
            };
            if first {
                let _ = writeln!(out, "\n[{table}]");
                first = false;
            }
            out.push_str(&line(e));
        }
    }
    out
}

/// `name = value  # postfix`, a long array one element a line.
fn line(e: &Entry) -> String {
    let value = e.value.to_string();
    let comment = format!("# {}", e.from);
    match &e.value {
        toml::Value::Array(items) if value.len() + e.key.name.len() > 72 && items.len() > 1 => {
            let mut out = format!("{} = [  {comment}\n", e.key.name);
            for item in items {
                let _ = writeln!(out, "    {item},");
            }
            out.push_str("]\n");
            out
        }
        _ => format!("{} = {value}  {comment}\n", e.key.name),
    }
}

/// The report: what was left out, then the notes.
pub(crate) fn report(items: &[Item], complete: bool) -> String {
    let mut out = String::new();
    for (title, left_out) in [("Not translated:", true), ("Notes:", false)] {
        let mine: Vec<&Item> = items.iter().filter(|i| i.left_out == left_out).collect();
        if mine.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{title}");
        for i in mine {
            let mut head = i.origin.clone();
            if !i.name.is_empty() {
                if !head.is_empty() {
                    head.push(' ');
                }
                head.push_str(&i.name);
            }
            let sep = if head.is_empty() { "" } else { ": " };
            let _ = writeln!(out, "  {head}{sep}{}", i.text);
        }
    }
    let left = items.iter().filter(|i| i.left_out).count();
    if complete {
        let _ = writeln!(out, "Complete: everything was translated.");
    } else {
        let _ = writeln!(
            out,
            "Incomplete: {left} item(s) not translated (exit status 2)."
        );
    }
    out
}

/// The whole file.
pub(crate) fn toml(header: &str, entries: &[Entry], report: &str) -> String {
    let mut out = header.to_string();
    out.push_str(&body(entries));
    out.push('\n');
    for line in report.lines() {
        let _ = writeln!(out, "# {line}");
    }
    out
}
