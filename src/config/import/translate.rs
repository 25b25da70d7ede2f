//! main.cf's parameters to postern keys: the parameters whose postern key
//! takes their value as it is (by the key's [`Kind`]), and those that need
//! a translation of their own (the identity, the local domains and
//! mailbox, the networks, TLS, SASL, the restriction lists).

use std::path::Path;

use super::defaults::Defaults;
use super::expand::Expander;
use super::params::{self, Status};
use super::parse::{MainCf, Param, split_list};
use super::restrictions;
use crate::config::keys::{KEYS, Key, Kind};
use crate::policy::element::Stage;

/// One key of the output.
#[derive(Clone)]
pub(crate) struct Entry {
    pub key: &'static Key,
    pub value: toml::Value,
    /// The Postfix parameter it comes from (the comment beside the key).
    pub from: String,
    /// `main.cf:LINE` when `from` is a main.cf parameter, else empty.
    pub origin: String,
}

/// One line of the report.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    /// `main.cf:12`, `master.cf:3`, or empty.
    pub origin: String,
    /// The parameter, service or element.
    pub name: String,
    pub text: String,
    /// Something the Postfix configuration does that the output does not.
    pub left_out: bool,
}

/// The translation under way.
pub(crate) struct Work<'a> {
    pub x: Expander<'a>,
    pub cf: &'a MainCf,
    root: Option<&'a Path>,
    entries: Vec<Entry>,
    items: Vec<Item>,
    /// main.cf parameters without a meaning of their own, decided at the
    /// end (user-defined macros are referenced by others).
    unknown: Vec<(String, usize)>,
}

/// The `[server]` names postern's expanded keys know, under their
/// Postfix names.
pub(crate) fn server_name(name: &str) -> Option<&'static str> {
    match name {
        "myhostname" => Some("hostname"),
        "mydomain" => Some("domain"),
        "myorigin" => Some("origin"),
        _ => None,
    }
}

/// The key `table.name`.
pub(crate) fn key(dotted: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.dotted() == dotted)
}

impl<'a> Work<'a> {
    pub(crate) fn new(cf: &'a MainCf, defaults: &'a Defaults, root: Option<&'a Path>) -> Work<'a> {
        Work {
            x: Expander::new(cf, defaults),
            cf,
            root,
            entries: Vec::new(),
            items: Vec::new(),
            unknown: Vec::new(),
        }
    }

    pub(crate) fn into_parts(self) -> (Vec<Entry>, Vec<Item>) {
        (self.entries, self.items)
    }

    /// Sets `dotted` (replacing an earlier value).
    pub(crate) fn set(&mut self, dotted: &str, value: toml::Value, from: &str) {
        let Some(key) = key(dotted) else {
            self.leave_out("", from, &format!("no postern key {dotted} (importer bug)"));
            return;
        };
        self.entries.retain(|e| !std::ptr::eq(e.key, key));
        let origin = self
            .cf
            .params
            .get(from)
            .map_or_else(String::new, |p| format!("main.cf:{}", p.line));
        self.entries.push(Entry {
            key,
            value,
            from: from.to_string(),
            origin,
        });
    }

    /// The value of `dotted`, if set.
    pub(crate) fn entry(&self, dotted: &str) -> Option<toml::Value> {
        self.entries
            .iter()
            .find(|e| e.key.dotted() == dotted)
            .map(|e| e.value.clone())
    }

    /// Whether `dotted` has been set.
    pub(crate) fn is_set(&self, dotted: &str) -> bool {
        self.entries.iter().any(|e| e.key.dotted() == dotted)
    }

    pub(crate) fn leave_out(&mut self, origin: &str, name: &str, text: &str) {
        self.item(origin, name, text, true);
    }

    pub(crate) fn note(&mut self, origin: &str, name: &str, text: &str) {
        self.item(origin, name, text, false);
    }

    fn item(&mut self, origin: &str, name: &str, text: &str, left_out: bool) {
        self.items.push(Item {
            origin: origin.to_string(),
            name: name.to_string(),
            text: text.to_string(),
            left_out,
        });
    }

    /// The text of `path` (absolute, read under `--root`).
    pub(crate) fn read_file(&self, path: &str) -> Result<String, String> {
        let full = match self.root {
            Some(root) => root.join(path.trim_start_matches('/')),
            None => Path::new(path).to_path_buf(),
        };
        std::fs::read_to_string(&full).map_err(|e| format!("{}: {e}", full.display()))
    }

    /// Every main.cf parameter, in file order, then the Postfix defaults
    /// that differ from postern's.
    pub(crate) fn main_cf(&mut self) {
        let mut params: Vec<(&String, &Param)> = self.cf.params.iter().collect();
        params.sort_by_key(|(_, p)| p.line);
        for (name, p) in params {
            let origin = format!("main.cf:{}", p.line);
            self.param(name, &p.value, &origin);
        }
        self.defaults_that_differ();
    }

    /// One parameter (from main.cf, or a master.cf `-o` of the main
    /// smtpd): its own translation, its row, or its key.
    pub(crate) fn param(&mut self, name: &str, raw: &str, origin: &str) {
        if self.special(name, raw, origin) {
            return;
        }
        if let Some(row) = params::find(name) {
            self.by_row(row, name, raw, origin);
            return;
        }
        if let Some(key) = KEYS.iter().find(|k| k.postfix == name) {
            self.by_kind(key, name, raw, origin);
            return;
        }
        let line = origin.strip_prefix("main.cf:").and_then(|l| l.parse().ok());
        match line {
            Some(line) => self.unknown.push((name.to_string(), line)),
            None => self.leave_out(origin, name, "no postern equivalent"),
        }
    }

    fn by_row(&mut self, row: &params::Row, name: &str, raw: &str, origin: &str) {
        match row.status {
            Status::Ignored => self.note(origin, name, &format!("ignored: {}", row.note)),
            Status::NotYet => {
                let value = self.x.expand(raw);
                if let Some(why) = no_effect(name, &value) {
                    self.note(origin, name, why);
                    return;
                }
                self.leave_out(origin, name, &format!("not supported yet: {}", row.note))
            }
            Status::NotPlanned => {
                self.leave_out(origin, name, &format!("not planned: {}", row.note))
            }
            Status::Planned { key: target, .. } if !target.is_empty() && key(target).is_some() => {
                if let Some(k) = key(target) {
                    self.by_kind(k, name, raw, origin);
                }
            }
            Status::Planned { issue, key: target } => {
                if let Some(why) = no_effect(name, &self.x.expand(raw)) {
                    self.note(origin, name, why);
                    return;
                }
                let target = match target {
                    "" => String::new(),
                    t => format!(", as {t}"),
                };
                let text = format!("planned (issue {issue}){target}: {}", row.note);
                self.leave_out(origin, name, &text);
            }
        }
    }

    /// The user-defined macros are those referenced by other values; the
    /// rest are reported.
    pub(crate) fn finish(&mut self) {
        for (name, line) in std::mem::take(&mut self.unknown) {
            let origin = format!("main.cf:{line}");
            if self.x.is_referenced(&name) {
                continue;
            }
            self.leave_out(&origin, &name, "unused parameter: not one the importer knows, and no other value refers to it as $name");
        }
        for warning in self.x.warnings() {
            self.note("main.cf", "", &format!("warning: {warning}"));
        }
        for warning in self.cf.warnings.clone() {
            self.note("", "", &format!("warning: {warning}"));
        }
    }

    /// The parameter's value translated by the key's kind.
    pub(crate) fn by_kind(&mut self, key: &'static Key, name: &str, raw: &str, origin: &str) {
        match self.convert(key, name, raw, origin) {
            Ok(Some(value)) => self.set(&key.dotted(), value, name),
            Ok(None) => {}
            Err(why) => self.leave_out(origin, name, &format!("{}: {why}", key.dotted())),
        }
    }

    /// `Ok(None)`: nothing to write (an empty value of an optional key).
    fn convert(
        &mut self,
        key: &'static Key,
        name: &str,
        raw: &str,
        origin: &str,
    ) -> Result<Option<toml::Value>, String> {
        use toml::Value as V;
        let value = self.x.expand(raw).trim().to_string();
        Ok(Some(match key.kind {
            Kind::Bool => V::Boolean(boolean(&value)?),
            Kind::Integer { min } => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("not a number: {value:?}"))?;
                if n < min {
                    return Err(format!("{n} is below {min}"));
                }
                V::Integer(n)
            }
            Kind::Duration => V::String(duration(name, &value)?),
            Kind::String | Kind::Path | Kind::Choice(_) if value.is_empty() => return Ok(None),
            Kind::String | Kind::Path => V::String(value),
            Kind::Choice(words) => V::String(choice(words, &value)?),
            Kind::Expanded => {
                let kept = self.x.expand_keeping(raw, &server_name).trim().to_string();
                if kept.is_empty() {
                    return Ok(None);
                }
                V::String(kept)
            }
            Kind::ExpandedStrings => {
                let kept = self.x.expand_keeping(raw, &server_name);
                strings(split_list(&kept))
            }
            Kind::Strings | Kind::Paths => {
                let mut out = Vec::new();
                for item in split_list(&value) {
                    if let Some(spec) = self.table_or_item(&item, name, origin) {
                        out.push(spec);
                    }
                }
                strings(out)
            }
            Kind::Choices(words) => {
                let mut out = Vec::new();
                for item in split_list(&value) {
                    out.push(choice(words, &item)?);
                }
                strings(out)
            }
            Kind::Table => return Err("a table of its own (not translated)".into()),
        }))
    }

    /// A list item: a table spec is checked (`proxy:` dropped), anything
    /// else kept.
    fn table_or_item(&mut self, item: &str, name: &str, origin: &str) -> Option<String> {
        if is_table_spec(item) {
            restrictions::table(self, item, name, origin)
        } else {
            Some(item.to_string())
        }
    }
}

/// Why a value of a parameter postern lacks changes nothing: empty (what
/// postern does without the parameter), or 0 for a limit (none).
fn no_effect(name: &str, value: &str) -> Option<&'static str> {
    match value.trim() {
        "" => Some("empty: nothing to translate"),
        "0" if name.ends_with("_limit") => Some("0 (no limit): postern sets no such limit"),
        _ => None,
    }
}

/// `type:name` with a table type (not a milter's `inet:host:port`, which
/// the caller's key takes as it is).
pub(crate) fn is_table_spec(item: &str) -> bool {
    let Some((kind, _)) = item.split_once(':') else {
        return false;
    };
    !kind.is_empty()
        && kind != "inet"
        && kind != "local"
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

pub(crate) fn strings(items: Vec<String>) -> toml::Value {
    toml::Value::Array(items.into_iter().map(toml::Value::String).collect())
}

pub(crate) fn boolean(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("bad boolean {value:?} (yes or no)")),
    }
}

fn choice(words: &[&str], value: &str) -> Result<String, String> {
    let lower = value.to_ascii_lowercase();
    if words.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err(format!(
            "{value:?} is not supported (postern knows {})",
            words.join(", ")
        ))
    }
}

/// A Postfix time (`300`, `300s`, `4h`, `5d`) with its unit written out:
/// a bare number is in the parameter's default unit.
fn duration(name: &str, value: &str) -> Result<String, String> {
    let unit_default = match name {
        "maximal_queue_lifetime" | "bounce_queue_lifetime" => "d",
        "delay_warning_time" => "h",
        _ => "s",
    };
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad time value {value:?}"));
    }
    let unit = match unit.to_ascii_lowercase().as_str() {
        "" => unit_default.to_string(),
        u @ ("s" | "m" | "h" | "d" | "w") => u.to_string(),
        _ => return Err(format!("bad time unit in {value:?}")),
    };
    if unit == "w" {
        let weeks: u64 = digits
            .parse()
            .map_err(|_| format!("bad time value {value:?}"))?;
        return Ok(format!("{}d", weeks * 7));
    }
    Ok(format!("{digits}{unit}"))
}

/// The restriction list parameters and their stages.
pub(crate) fn restriction_stage(name: &str) -> Option<Stage> {
    Some(match name {
        "smtpd_client_restrictions" => Stage::Client,
        "smtpd_helo_restrictions" => Stage::Helo,
        "smtpd_sender_restrictions" => Stage::Sender,
        "smtpd_relay_restrictions" => Stage::Relay,
        "smtpd_recipient_restrictions" => Stage::Recipient,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_or_add_their_unit() {
        assert_eq!(duration("minimal_backoff_time", "300").unwrap(), "300s");
        assert_eq!(duration("maximal_queue_lifetime", "5").unwrap(), "5d");
        assert_eq!(duration("delay_warning_time", "4h").unwrap(), "4h");
        assert_eq!(duration("x", "2w").unwrap(), "14d");
        assert!(duration("x", "soon").is_err());
    }

    #[test]
    fn table_specs() {
        assert!(is_table_spec("hash:/etc/postfix/access"));
        assert!(is_table_spec("proxy:mysql:/etc/x.cf"));
        assert!(!is_table_spec("inet:127.0.0.1:8891"));
        assert!(!is_table_spec("/etc/aliases"));
    }
}
