//! Printing the effective configuration as TOML (`postern config show`):
//! every key, or only those that differ from the defaults (like
//! `postconf -n`). The output parses back into an equal configuration.

use std::collections::BTreeSet;

use super::defaults::System;
use super::expand::escape;
use super::keys::{KEYS, tables};
use super::load;
use super::value::format_duration;
use super::{Choice, Config};

/// The configuration as TOML; with `non_default`, only the keys that must be
/// written for the file to give this configuration on `system`.
pub(super) fn to_toml(config: &Config, non_default: bool, system: &System) -> String {
    let values = entries(config);
    if !non_default {
        return render(&values, |_| true);
    }
    // A default may depend on other keys (`server.domain` on
    // `server.hostname`, the hostname on the domain), so keys are added one
    // at a time, the first that the output read back gets wrong each time.
    let mut printed: BTreeSet<&str> = BTreeSet::new();
    loop {
        let text = render(&values, |key| printed.contains(key));
        let Ok(reread) = load::parse(&text, "(config show)", system) else {
            return render(&values, |_| true);
        };
        let reread = entries(&reread);
        match values.iter().zip(&reread).find(|(a, b)| a.1 != b.1) {
            Some(((key, _), _)) if printed.insert(key.as_str()) => {}
            // Nothing differs, or a printed key still differs (impossible:
            // a printed value is read back as itself): done.
            Some(_) => return render(&values, |_| true),
            None => return text,
        }
    }
}

/// The keys the file `text` sets, each value as written there (`$name`
/// forms kept, a key set to its default value kept), in [`KEYS`] order:
/// `postern config show --non-default`, as `postconf -n` prints main.cf's
/// settings. `text` has been loaded without error, so every key is known.
pub(super) fn as_written(text: &str) -> String {
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return String::new();
    };
    let raw = |item: &toml_edit::Item| -> Option<String> {
        let mut value = item.as_value()?.clone();
        value.decor_mut().clear();
        Some(value.to_string().trim().to_string())
    };
    let mut values: Vec<(String, String)> = KEYS
        .iter()
        .filter_map(|k| {
            let item = doc.get(k.table)?.get(k.name)?;
            Some((k.dotted(), raw(item)?))
        })
        .collect();
    let maps = doc
        .get("maps")
        .and_then(toml_edit::Item::as_table_like)
        .map(|maps| {
            maps.iter()
                .filter_map(|(name, table)| {
                    let table = table.as_table_like()?;
                    let mut t = format!("[maps.{}]\n", toml_edit::Key::new(name));
                    for (k, v) in table.iter() {
                        t += &format!("{} = {}\n", toml_edit::Key::new(k), raw(v)?);
                    }
                    Some(t)
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    values.push(("maps".to_string(), maps));
    render(&values, |_| true)
}

/// Every key with its value as TOML, in [`KEYS`] order, and the named
/// tables of `[maps]`, each as a `[maps.NAME]` table of its own.
pub(super) fn entries(c: &Config) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = KEYS.iter().map(|k| (k.dotted(), (k.show)(c))).collect();
    let maps = c
        .maps
        .iter()
        .map(|(name, table)| {
            let mut t = format!("[maps.{}]\n", toml_edit::Key::new(name.as_str()));
            for (k, v) in table {
                t += &format!("{} = {}\n", toml_edit::Key::new(k.as_str()), s(v));
            }
            t
        })
        .collect::<Vec<_>>()
        .join("\n");
    out.push(("maps".to_string(), maps));
    out
}

/// The whole configuration as TOML, each key under a comment: its
/// summary, the Postfix parameter it replaces and its default
/// (`postern config show`).
pub(super) fn annotated(config: &Config, system: &System) -> String {
    let builtin = super::defaults::builtin(system);
    let comment = |key: &str| -> Option<String> {
        let (table, name) = key.split_once('.')?;
        let k = super::keys::find(table, name)?;
        let mut text = k.summary().to_string();
        if !k.postfix.is_empty() {
            text += &format!(" Postfix: {}.", k.postfix);
        }
        let default = default_sentence(k.doc).unwrap_or_else(|| (k.show)(&builtin));
        text += &format!(" Default: {default}.");
        Some(text)
    };
    render_with(&entries(config), |_| true, comment)
}

/// `postern config show KEY…`, as `postconf NAME…`: one `table.key =
/// value` line per key asked, in the order asked. A key is named as in
/// the file (`relay.networks`) or by its Postfix parameter
/// (`mynetworks`: every key that replaces it). `Err`: the names not
/// known.
pub(super) fn some(config: &Config, names: &[String]) -> Result<String, String> {
    let values = entries(config);
    let mut out = String::new();
    let mut unknown = Vec::new();
    for name in names {
        let dotted: Vec<String> = match name.split_once('.') {
            Some((table, key)) => super::keys::find(table, key)
                .map(|k| vec![k.dotted()])
                .unwrap_or_default(),
            None => KEYS
                .iter()
                .filter(|k| !k.postfix.is_empty() && k.postfix == name)
                .map(|k| k.dotted())
                .collect(),
        };
        if dotted.is_empty() {
            unknown.push(name.clone());
        }
        for key in dotted {
            if let Some((_, value)) = values.iter().find(|(k, _)| *k == key) {
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
    }
    match unknown.is_empty() {
        true => Ok(out),
        false => Err(format!(
            "unknown configuration key{}: {} (a key is written table.key, as \
             relay.networks, or by its Postfix name, as mynetworks)",
            if unknown.len() > 1 { "s" } else { "" },
            unknown.join(", ")
        )),
    }
}

/// The default as the documentation says it: the text after `Default:`
/// up to the end of its sentence.
fn default_sentence(doc: &str) -> Option<String> {
    let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    let rest = &flat[flat.find("Default: ")? + "Default: ".len()..];
    let end = rest.find(". ").unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches('.').to_string())
}

// Renderers of values as TOML, one per kind of field (named in
// `keys`'s entries).

fn s(text: &str) -> String {
    toml_edit::Value::from(text).to_string()
}

/// A string in which `$` would be expanded when read back.
pub(super) fn expandable(text: &str) -> String {
    s(&escape(text))
}

pub(super) fn path(p: &std::path::Path) -> String {
    expandable(&p.to_string_lossy())
}

pub(super) fn optional_path(p: &Option<std::path::PathBuf>) -> String {
    s(&p.as_deref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default())
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}

pub(super) fn expandable_list(items: &[String]) -> String {
    list(items.iter().map(|i| expandable(i)))
}

pub(super) fn string(text: &str) -> String {
    s(text)
}

pub(super) fn strings(items: &[String]) -> String {
    list(items.iter().map(|i| s(i)))
}

pub(super) fn paths(items: &[std::path::PathBuf]) -> String {
    list(items.iter().map(|p| s(&p.to_string_lossy())))
}

pub(super) fn duration(d: &std::time::Duration) -> String {
    s(&format_duration(*d))
}

pub(super) fn plain<T: std::fmt::Display>(value: &T) -> String {
    value.to_string()
}

pub(super) fn display_list<T: std::fmt::Display>(items: &[T]) -> String {
    list(items.iter().map(|i| s(&i.to_string())))
}

pub(super) fn optional_display<T: std::fmt::Display>(value: &Option<T>) -> String {
    s(&value.as_ref().map(|v| v.to_string()).unwrap_or_default())
}

pub(super) fn optional_expandable<T: std::fmt::Display>(value: &Option<T>) -> String {
    expandable(&value.as_ref().map(|v| v.to_string()).unwrap_or_default())
}

pub(super) fn choice<T: Choice>(value: &T) -> String {
    s(value.word())
}

pub(super) fn choices<T: Choice>(values: &[T]) -> String {
    list(values.iter().map(|v| s(v.word())))
}

pub(super) fn display_table<T: std::fmt::Display>(
    table: &std::collections::BTreeMap<String, T>,
) -> String {
    let items: Vec<String> = table
        .iter()
        .map(|(k, v)| {
            format!(
                "{} = {}",
                toml_edit::Key::new(k.as_str()),
                s(&v.to_string())
            )
        })
        .collect();
    if items.is_empty() {
        "{}".to_string()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

/// The selected keys as TOML, one table per section, empty tables left out.
fn render(values: &[(String, String)], selected: impl Fn(&str) -> bool) -> String {
    render_with(values, selected, |_| None)
}

/// As [`render`], with a comment line above each key where `comment`
/// gives one.
fn render_with(
    values: &[(String, String)],
    selected: impl Fn(&str) -> bool,
    comment: impl Fn(&str) -> Option<String>,
) -> String {
    let mut out = String::new();
    for table in tables() {
        let mut lines = values
            .iter()
            .filter(|(key, _)| selected(key))
            .filter_map(|(key, value)| {
                Some((key, key.strip_prefix(table)?.strip_prefix('.')?, value))
            })
            .peekable();
        if lines.peek().is_none() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("[{table}]\n"));
        for (dotted, key, value) in lines {
            if let Some(text) = comment(dotted) {
                out.push_str(&wrap_comment(&text));
            }
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    if let Some((_, maps)) = values
        .iter()
        .find(|(key, value)| key == "maps" && !value.is_empty() && selected(key))
    {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(maps);
    }
    out
}

/// `text` as `# ` lines of at most 78 columns.
fn wrap_comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 78 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}
