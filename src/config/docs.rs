//! What [`super::keys`] says about each key, for people and editors: the
//! KEYS section of postern.toml(5) and a JSON Schema of the file.

use serde_json::{Map, Value, json};

use super::keys::{KEYS, Key, Kind, SECTIONS};

/// `[maps]` has no fixed keys: its own words.
const MAPS_DOC: &str = "Named inline lookup tables, one TOML table each: `[maps.badclient]` \
with `\"key\" = \"value\"` entries (keys lower-cased), used in restriction lists as \
`inline:badclient` (Postfix: a `hash:` file made with postmap). Default: none.";

/// Documentation text without rustdoc's link brackets: "[`x`]" → "`x`".
fn plain(doc: &str) -> String {
    doc.replace("[`", "`").replace("`]", "`")
}

/// One paragraph of documentation as roff: backticks become bold, and
/// what roff would take for its own is escaped.
fn roff(text: &str) -> String {
    let text = plain(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('\\', "\\e")
        .replace('-', "\\-");
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("\\fB{part}\\fR"));
        } else {
            out.push_str(part);
        }
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    // Plain ASCII for every troff: others as \[uXXXX].
    out.chars()
        .map(|c| match c.is_ascii() {
            true => c.to_string(),
            false => format!("\\[u{:04X}]", c as u32),
        })
        .collect()
}

/// The KEYS section of postern.toml(5): every table and key, with its
/// Postfix name and documentation.
pub fn man_keys() -> String {
    let mut out = String::from(".SH KEYS\n");
    for table in super::keys::tables() {
        out.push_str(&format!(".SS \"[{table}]\"\n"));
        if table == "maps" {
            out.push_str(&roff(MAPS_DOC));
            out.push('\n');
            continue;
        }
        if let Some((_, doc)) = SECTIONS.iter().find(|(t, _)| *t == table) {
            // The first sentence names the table; the rest says what it is.
            let doc = plain(doc).split_whitespace().collect::<Vec<_>>().join(" ");
            let doc = doc.split_once(": ").map_or(doc.as_str(), |(_, rest)| rest);
            out.push_str(&roff(&upper_first(doc)));
            out.push('\n');
        }
        for key in KEYS.iter().filter(|k| k.table == table) {
            out.push_str(&format!(".TP\n.B {}\n", key.dotted()));
            if !key.postfix.is_empty() {
                out.push_str(&format!(
                    "Postfix \\fB{}\\fR. ",
                    key.postfix.replace('-', "\\-")
                ));
            }
            out.push_str(&roff(key.doc));
            out.push('\n');
        }
    }
    out
}

fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A JSON Schema (draft 2020-12) of postern.toml, for editors (taplo,
/// Even Better TOML, …): every table and key with its type, its
/// documentation and its default on this system; unknown keys are
/// errors, as they are to postern.
pub fn json_schema() -> String {
    let builtin = super::Config::builtin();
    let mut tables = Map::new();
    for table in super::keys::tables() {
        if table == "maps" {
            tables.insert(
                "maps".into(),
                json!({
                    "type": "object",
                    "description": plain(MAPS_DOC),
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": { "type": "string" }
                    }
                }),
            );
            continue;
        }
        let mut properties = Map::new();
        for key in KEYS.iter().filter(|k| k.table == table) {
            properties.insert(key.name.into(), property(key, &builtin));
        }
        let description = SECTIONS
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, d)| flat(d))
            .unwrap_or_default();
        tables.insert(
            table.into(),
            json!({
                "type": "object",
                "description": description,
                "properties": properties,
                "additionalProperties": false
            }),
        );
    }
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://postern.invalid/postern.toml.schema.json",
        "title": "postern.toml",
        "description": "Configuration of the postern mail transfer agent (postern.toml(5)).",
        "type": "object",
        "properties": tables,
        "additionalProperties": false
    });
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

fn flat(doc: &str) -> String {
    plain(doc).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One key's schema.
fn property(key: &Key, builtin: &super::Config) -> Value {
    let duration = json!({
        "anyOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": "^[0-9]+[smhdw]?$" }
        ]
    });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let mut p = match key.kind {
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::Integer { min } => json!({ "type": "integer", "minimum": min }),
        Kind::Duration => duration,
        Kind::String | Kind::Expanded | Kind::Path => json!({ "type": "string" }),
        Kind::Strings | Kind::ExpandedStrings | Kind::Paths => strings,
        Kind::Choice(words) => json!({ "enum": words }),
        Kind::Choices(words) => json!({ "type": "array", "items": { "enum": words } }),
        Kind::Table => json!({ "type": "object", "additionalProperties": { "type": "string" } }),
    };
    let mut description = flat(key.doc);
    if !key.postfix.is_empty() {
        description = format!("Postfix: {}. {description}", key.postfix);
    }
    p["description"] = Value::String(description);
    if let Some(default) = toml_value(&(key.show)(builtin)) {
        p["default"] = default;
    }
    p
}

/// A value as `config show` prints it, as JSON.
fn toml_value(text: &str) -> Option<Value> {
    let table: toml::Table = toml::from_str(&format!("v = {text}")).ok()?;
    serde_json::to_value(table.get("v")?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_in_the_manual_and_the_schema() {
        let page = man_keys();
        let schema: Value = serde_json::from_str(&json_schema()).unwrap();
        for key in KEYS {
            assert!(
                page.contains(&format!(".B {}\n", key.dotted())),
                "{}",
                key.dotted()
            );
            let p = &schema["properties"][key.table]["properties"][key.name];
            assert!(p["description"].is_string(), "{}: {p}", key.dotted());
            assert!(!key.summary().is_empty(), "{} has no summary", key.dotted());
        }
        assert!(page.contains(".SS \"[maps]\""));
        assert_eq!(schema["properties"]["smtpd"]["additionalProperties"], false);
        assert_eq!(
            schema["properties"]["smtpd"]["properties"]["line_length_limit"]["minimum"],
            512
        );
        assert_eq!(
            schema["properties"]["tls"]["properties"]["outbound"]["enum"],
            json!(["none", "may", "encrypt", "verify"])
        );
        assert_eq!(
            schema["properties"]["queue"]["properties"]["run_delay"]["default"],
            "5m"
        );
    }

    #[test]
    fn roff_escapes_what_roff_would_take() {
        assert_eq!(roff("`a-b` c\\d"), "\\fBa\\-b\\fR c\\ed");
        assert_eq!(roff(".x"), "\\&.x");
        assert_eq!(roff("see [`crate::x`]"), "see \\fBcrate::x\\fR");
        assert_eq!(roff("a … b"), "a \\[u2026] b");
    }
}
