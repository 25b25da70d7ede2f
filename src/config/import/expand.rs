//! `$name` expansion as `postconf -x` does it: `$name`, `${name}`,
//! `$(name)`, `${name?value}`, `${name:value}`, `${name?{v1}:{v2}}`, `$$`,
//! recursively, with Postfix's defaults for the parameters main.cf does not
//! set ([`super::defaults`]). An undefined name expands to nothing, with a
//! warning (postconf's `undefined parameter`); a loop stops at a depth
//! limit, with a warning.
//!
//! A caller may keep some names: [`Expander::expand_keeping`] writes them
//! back (renamed) instead of expanding them, so that `$myhostname` stays
//! `$hostname` in a postern key that expands it itself.

use std::cell::RefCell;
use std::collections::BTreeSet;

use super::defaults::Defaults;
use super::parse::MainCf;

/// Postfix gives up at this depth (`mac_expand`'s recursion limit).
const MAX_DEPTH: usize = 100;

/// Expands values against main.cf and the defaults.
pub(crate) struct Expander<'a> {
    cf: &'a MainCf,
    defaults: &'a Defaults,
    /// Warnings, each once (sorted like postconf's).
    warnings: RefCell<BTreeSet<String>>,
    /// Names referenced as `$name` somewhere (user-defined macros are
    /// those with a main.cf entry and no meaning of their own).
    referenced: RefCell<BTreeSet<String>>,
}

impl<'a> Expander<'a> {
    pub(crate) fn new(cf: &'a MainCf, defaults: &'a Defaults) -> Expander<'a> {
        Expander {
            cf,
            defaults,
            warnings: RefCell::new(BTreeSet::new()),
            referenced: RefCell::new(BTreeSet::new()),
        }
    }

    /// The raw value of `name`: main.cf's, else the default (empty for a
    /// Postfix parameter the importer knows without one), else `None`.
    pub(crate) fn raw(&self, name: &str) -> Option<String> {
        match self.cf.params.get(name) {
            Some(p) => Some(p.value.clone()),
            None => self
                .defaults
                .get(name, self.cf)
                .or_else(|| super::params::is_known(name).then(String::new)),
        }
    }

    /// The value of `name`, expanded.
    pub(crate) fn value(&self, name: &str) -> String {
        let raw = self.raw(name).unwrap_or_default();
        self.expand(&raw)
    }

    /// `text` with every `$name` expanded.
    pub(crate) fn expand(&self, text: &str) -> String {
        self.expand_keeping(text, &|_| None)
    }

    /// `text` expanded, except names for which `keep` gives a new name:
    /// those are written `$new` (or `${new}` before a name character).
    pub(crate) fn expand_keeping(
        &self,
        text: &str,
        keep: &dyn Fn(&str) -> Option<&'static str>,
    ) -> String {
        let mut out = String::new();
        self.walk(text, keep, 0, &mut out);
        out
    }

    /// The warnings so far.
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.warnings.borrow().iter().cloned().collect()
    }

    /// Whether `$name` was referenced by an expanded value.
    pub(crate) fn is_referenced(&self, name: &str) -> bool {
        self.referenced.borrow().contains(name)
    }

    fn warn(&self, text: String) {
        self.warnings.borrow_mut().insert(text);
    }

    fn walk(
        &self,
        text: &str,
        keep: &dyn Fn(&str) -> Option<&'static str>,
        depth: usize,
        out: &mut String,
    ) {
        if depth > MAX_DEPTH {
            self.warn(format!(
                "unreasonable macro call nesting: \"{text}\" (left unexpanded)"
            ));
            out.push_str(text);
            return;
        }
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            if let Some(r) = rest.strip_prefix('$') {
                out.push('$');
                rest = r;
                continue;
            }
            match reference(rest) {
                Some((r, after)) => {
                    let braces = after.starts_with(is_name_char);
                    self.one(&r, keep, depth, braces, out);
                    rest = after;
                }
                None => {
                    if rest.starts_with("{{") {
                        self.warn(format!(
                            "unsupported expression (left as written): ${}",
                            rest.lines().next().unwrap_or(rest)
                        ));
                    }
                    out.push('$')
                }
            }
        }
        out.push_str(rest);
    }

    /// One reference.
    fn one(
        &self,
        r: &Reference,
        keep: &dyn Fn(&str) -> Option<&'static str>,
        depth: usize,
        braces: bool,
        out: &mut String,
    ) {
        self.referenced.borrow_mut().insert(r.name.clone());
        let value = self.raw(&r.name);
        match &r.test {
            None => {
                if let Some(new) = keep(&r.name) {
                    match braces {
                        true => out.push_str(&format!("${{{new}}}")),
                        false => out.push_str(&format!("${new}")),
                    }
                    return;
                }
                match value {
                    Some(v) => self.walk(&v, keep, depth + 1, out),
                    None => self.warn(format!("undefined parameter: {}", r.name)),
                }
            }
            Some((when_set, when_empty)) => {
                let mut full = String::new();
                if let Some(v) = &value {
                    self.walk(v, &|_| None, depth + 1, &mut full);
                }
                let chosen = if full.is_empty() {
                    when_empty
                } else {
                    when_set
                };
                self.walk(chosen, keep, depth + 1, out);
            }
        }
    }
}

/// A parsed `$…` reference: the name, and for `${name?x}` / `${name:x}` /
/// `${name?{x}:{y}}` the texts for a non-empty and an empty value.
struct Reference {
    name: String,
    test: Option<(String, String)>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The reference at the start of `text` (after the `$`), and the rest.
fn reference(text: &str) -> Option<(Reference, &str)> {
    let close = match text.chars().next()? {
        '{' => '}',
        '(' => ')',
        c if is_name_char(c) => {
            let end = text.find(|c| !is_name_char(c)).unwrap_or(text.len());
            let name = text[..end].to_string();
            return Some((Reference { name, test: None }, &text[end..]));
        }
        _ => return None,
    };
    let inner_end = matching(text, close)?;
    let inner = &text[1..inner_end];
    let after = &text[inner_end + 1..];
    let end = inner.find(|c| !is_name_char(c)).unwrap_or(inner.len());
    let name = inner[..end].to_string();
    if name.is_empty() {
        return None;
    }
    let rest = &inner[end..];
    let test = match rest.chars().next() {
        None => None,
        Some('?') => Some(if_else(&rest[1..])),
        Some(':') => Some((String::new(), braced(&rest[1..]))),
        Some(_) => return None,
    };
    Some((Reference { name, test }, after))
}

/// `{v1}:{v2}` (3.0+) or a plain `value` after `?`.
fn if_else(text: &str) -> (String, String) {
    let t = text.trim();
    if t.starts_with('{')
        && let Some(end) = matching(t, '}')
    {
        let first = t[1..end].trim().to_string();
        let second = t[end + 1..].trim();
        if let Some(second) = second.strip_prefix(':') {
            return (first, braced(second));
        }
        if second.is_empty() {
            return (first, String::new());
        }
    }
    (text.to_string(), String::new())
}

/// `{value}` without its braces (white space around ignored), or `value`.
fn braced(text: &str) -> String {
    let t = text.trim();
    match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        Some(inner) => inner.trim().to_string(),
        None => text.to_string(),
    }
}

/// The index of the bracket closing the one at `text[0]`.
fn matching(text: &str, close: char) -> Option<usize> {
    let open = text.chars().next()?;
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::parse::main_cf;
    use super::*;

    fn expander_for(text: &str, f: impl FnOnce(&Expander)) {
        let cf = main_cf(text, "main.cf").unwrap();
        let defaults = Defaults::new(Some("mx.example.com"));
        let x = Expander::new(&cf, &defaults);
        f(&x);
    }

    #[test]
    fn names_braces_and_parentheses() {
        expander_for("a = x\nb = $a-${a}-$(a)-$$a\n", |x| {
            assert_eq!(x.value("b"), "x-x-x-$a");
        });
    }

    #[test]
    fn defaults_apply_as_postconf_does() {
        expander_for("", |x| {
            assert_eq!(x.value("myhostname"), "mx.example.com");
            assert_eq!(x.value("mydomain"), "example.com");
            assert_eq!(
                x.value("mydestination"),
                "mx.example.com, localhost.example.com, localhost"
            );
            assert_eq!(x.value("smtpd_banner"), "mx.example.com ESMTP Postfix");
        });
    }

    #[test]
    fn conditionals() {
        let text = "set = yes\nempty =\na = ${set?on}|${empty?on}|${set:off}|${empty:off}\nb = ${set?{1}:{2}}|${empty?{1}:{2}}|${stress?1}${stress:5}\n";
        expander_for(text, |x| {
            assert_eq!(
                x.value("a"),
                "on||off|off".replace("on||off|off", "on|||off")
            );
            assert_eq!(x.value("b"), "1|2|5");
        });
    }

    #[test]
    fn undefined_names_become_empty_with_a_warning() {
        expander_for("a = [$nothing]\n", |x| {
            assert_eq!(x.value("a"), "[]");
            assert_eq!(x.warnings(), ["undefined parameter: nothing"]);
        });
    }

    #[test]
    fn a_loop_stops_at_the_depth_limit() {
        expander_for("a = $b\nb = $a\n", |x| {
            let v = x.value("a");
            assert!(v.contains('$'), "{v}");
            assert!(x.warnings()[0].starts_with("unreasonable macro call nesting"));
        });
    }

    #[test]
    fn kept_names_are_renamed_not_expanded() {
        expander_for("banner = $myhostname ESMTP $mail_name\n", |x| {
            let keep = |n: &str| (n == "myhostname").then_some("hostname");
            assert_eq!(
                x.expand_keeping("$myhostname ESMTP $mail_name", &keep),
                "$hostname ESMTP Postfix"
            );
        });
    }
}
