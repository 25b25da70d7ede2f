//! Transport tables (Postfix `transport_maps`): the transport(5) file
//! format, and the lookup of a recipient in the inline table and the files.
//!
//! File format (transport(5)): one `pattern result` per logical line
//! ([`crate::wire::lines`]); empty lines, whitespace-only lines and lines
//! whose first non-whitespace character is `#` are ignored, also inside a
//! continuation; a line that starts with whitespace continues the logical
//! line before it, its leading whitespace kept. Patterns are lower-cased. The
//! first entry for a pattern wins; later duplicates are reported.
//!
//! Lookup order for `user+ext@domain` (Postfix's `transport_lookup`, with
//! `transport_maps` not in `parent_domain_matches_subdomains`):
//!
//! 1. `user+ext@domain`, then `user@domain` when `local.recipient_delimiter`
//!    splits off an extension;
//! 2. `domain`, then each parent as `.parent.domain`, going up
//!    (`a.b.example.com` is looked up as `a.b.example.com`,
//!    `.b.example.com`, `.example.com`, `.com`): `.example.com` matches the
//!    subdomains of example.com, not example.com itself;
//! 3. `*`.
//!
//! For each key the tables are asked in order (the inline `relay.transport`
//! first, then `relay.transport_files` in order), and the first answer
//! wins. A domain literal (`user@[192.0.2.1]`) is looked up as itself, with
//! no parents.
//!
//! An entry whose result does not parse stays in the table as broken: a
//! recipient it matches is deferred (rather than routed as if the entry
//! were not there), and `postern check` names its FILE:LINE.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use super::Transport;
use crate::wire::lines::{LogicalLines, logical_lines};

/// How bad a problem in a transport file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The line is ignored, nothing is routed differently than written
    /// (a duplicate, a pattern that can never match).
    Warning,
    /// The line says something postern cannot do; recipients it matches
    /// are deferred.
    Error,
}

/// A problem in a transport file, at FILE:LINE.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct Diagnostic {
    pub file: PathBuf,
    /// The first physical line of the logical line, from 1.
    pub line: usize,
    pub severity: Severity,
    pub message: String,
}

/// One table's answer: a transport, or the reason its entry is broken
/// (`FILE:LINE: …`).
pub type Answer = Result<Transport, String>;

/// The parsed entries of one file, in the order written (first of a
/// duplicated pattern only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportFile {
    entries: Vec<(String, Answer)>,
}

impl TransportFile {
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Answer)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Parse a transport(5) file; `file` names it in diagnostics and broken
/// entries.
pub fn parse_file(text: &str, file: &Path) -> (TransportFile, Vec<Diagnostic>) {
    let mut out = TransportFile::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let LogicalLines { lines, orphans } = logical_lines(text);
    let mut diagnostics: Vec<Diagnostic> = orphans
        .into_iter()
        .map(|line| Diagnostic {
            file: file.to_path_buf(),
            line,
            severity: Severity::Warning,
            message: "continuation line without a line before it; ignored".into(),
        })
        .collect();
    for (line, logical) in lines {
        let mut report = |severity, message: String| {
            diagnostics.push(Diagnostic {
                file: file.to_path_buf(),
                line,
                severity,
                message,
            })
        };
        let (pattern, result) = logical
            .split_once(char::is_whitespace)
            .map_or((logical.as_str(), ""), |(p, r)| (p, r.trim()));
        let pattern = pattern.to_lowercase();
        if let Some(first) = seen.get(&pattern) {
            report(
                Severity::Warning,
                format!("duplicate entry {pattern:?} (first at line {first}); this one is ignored"),
            );
            continue;
        }
        if pattern.starts_with('@') {
            report(
                Severity::Warning,
                format!(
                    "{pattern:?} never matches: transport tables look up user@domain, domain, .domain and *"
                ),
            );
            continue;
        }
        let answer = if result.is_empty() {
            Err(format!(
                "no result for {pattern:?} (expected: pattern transport:nexthop)"
            ))
        } else {
            Transport::parse(result).map_err(|e| format!("{pattern} {result}: {e}"))
        };
        if let Err(e) = &answer {
            report(Severity::Error, e.clone());
        }
        let answer = answer.map_err(|e| format!("{}:{line}: {e}", file.display()));
        seen.insert(pattern.clone(), line);
        out.entries.push((pattern, answer));
    }
    (out, diagnostics)
}

/// The keys a recipient is looked up with, in order (see the module
/// documentation). A bare name (no `@`) has none: it is local.
pub fn lookup_keys(address: &str, delimiter: &str) -> Vec<String> {
    let address = address.to_lowercase();
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Vec::new();
    };
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let mut keys = vec![format!("{local}@{domain}")];
    if let Some(p) = local.find(|c| delimiter.contains(c))
        && p > 0
    {
        keys.push(format!("{}@{domain}", &local[..p]));
    }
    if !domain.is_empty() {
        keys.push(domain.to_string());
        if !domain.starts_with('[') {
            let mut rest = domain;
            while let Some(dot) = rest.get(1..).and_then(|r| r.find('.')) {
                rest = &rest[dot + 1..];
                keys.push(rest.to_string());
            }
        }
    }
    keys.push("*".into());
    keys
}

/// The inline table and the files, ready for lookups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportTable {
    /// The inline table first, then the files in order.
    maps: Vec<HashMap<String, Answer>>,
}

impl TransportTable {
    /// From the inline `relay.transport` and the parsed files, in order.
    pub fn new(inline: &BTreeMap<String, Transport>, files: Vec<TransportFile>) -> TransportTable {
        let mut maps = vec![
            inline
                .iter()
                .map(|(k, v)| (k.to_lowercase(), Ok(v.clone())))
                .collect(),
        ];
        maps.extend(files.into_iter().map(|f| f.entries.into_iter().collect()));
        TransportTable { maps }
    }

    /// No entries at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.maps.iter().all(HashMap::is_empty)
    }

    /// The answer for a recipient, `None` when no entry matches.
    /// `delimiter` is `local.recipient_delimiter`.
    pub fn lookup(&self, address: &str, delimiter: &str) -> Option<&Answer> {
        if self.is_empty() {
            return None;
        }
        lookup_keys(address, delimiter)
            .iter()
            .find_map(|key| self.maps.iter().find_map(|m| m.get(key)))
    }
}

impl fmt::Display for TransportFile {
    /// The entries as a transport(5) file (broken ones as comments).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.entries {
            match v {
                Ok(t) => writeln!(f, "{k}\t{t}")?,
                Err(e) => writeln!(f, "# {k}: {e}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Nexthop;

    fn nexthop(t: &str) -> Transport {
        Transport::Smtp(Some(Nexthop::parse(t).unwrap()))
    }

    #[test]
    fn keys_in_postfix_order() {
        assert_eq!(
            lookup_keys("User+Ext@A.B.Example.COM", "+"),
            [
                "user+ext@a.b.example.com",
                "user@a.b.example.com",
                "a.b.example.com",
                ".b.example.com",
                ".example.com",
                ".com",
                "*"
            ]
        );
        assert_eq!(
            lookup_keys("u@example.com", "+"),
            ["u@example.com", "example.com", ".com", "*"]
        );
        // No delimiter configured, or the extension would be everything.
        assert_eq!(lookup_keys("u+x@h", ""), ["u+x@h", "h", "*"]);
        assert_eq!(lookup_keys("+x@h", "+"), ["+x@h", "h", "*"]);
        // The first character of the set splits.
        assert_eq!(lookup_keys("a-b+c@h", "+-")[1], "a@h");
        // Literals have no parents; a trailing dot is dropped.
        assert_eq!(
            lookup_keys("u@[192.0.2.1]", "+"),
            ["u@[192.0.2.1]", "[192.0.2.1]", "*"]
        );
        assert_eq!(
            lookup_keys("u@example.com.", ""),
            ["u@example.com", "example.com", ".com", "*"]
        );
        assert!(lookup_keys("root", "+").is_empty());
    }

    #[test]
    fn parses_comments_continuations_and_errors() {
        let text = "\
# a comment
Example.COM   smtp:[mail.example.com]:587

  # an indented comment
.example.com  error:5.7.1 no mail
   for subdomains
broken.example uucp:x
nothing.example
example.com   discard:
@at.example   local:
";
        let (file, diags) = parse_file(text, Path::new("/etc/postern/transport"));
        let entries: Vec<_> = file.entries().collect();
        assert_eq!(
            entries[0],
            ("example.com", &Ok(nexthop("[mail.example.com]:587")))
        );
        assert_eq!(
            entries[1],
            (
                ".example.com",
                &Ok(Transport::Error("5.7.1 no mail   for subdomains".into()))
            )
        );
        assert!(
            matches!(entries[2], ("broken.example", Err(e)) if e.starts_with("/etc/postern/transport:7: "))
        );
        assert!(matches!(entries[3], ("nothing.example", Err(_))));
        assert_eq!(entries.len(), 4);
        let shown: Vec<String> = diags
            .iter()
            .map(|d| format!("{:?} {d}", d.severity))
            .collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        assert!(
            shown[0].starts_with(
                "Error /etc/postern/transport:7: broken.example uucp:x: unknown transport"
            ),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with("Error /etc/postern/transport:8: no result"),
            "{shown:?}"
        );
        assert!(shown[2].starts_with("Warning /etc/postern/transport:9: duplicate entry \"example.com\" (first at line 2)"), "{shown:?}");
        assert!(
            shown[3]
                .starts_with("Warning /etc/postern/transport:10: \"@at.example\" never matches"),
            "{shown:?}"
        );
        let (_, d) = parse_file("  leading\n", Path::new("f"));
        assert_eq!(
            d[0].to_string(),
            "f:1: continuation line without a line before it; ignored"
        );
    }

    #[test]
    fn lookup_order_inline_first_then_files_key_by_key() {
        let mut inline = BTreeMap::new();
        inline.insert("example.com".to_string(), Transport::Local);
        let (f1, _) = parse_file(
            "user@example.com error:5.1.1 gone\n.example.com smtp:[relay.example]\n* smtp:[star.example]\nexample.com discard:\n",
            Path::new("f1"),
        );
        let (f2, _) = parse_file(
            "a.example.com smtp:[a.example]\nbad.example nope:x\n",
            Path::new("f2"),
        );
        let t = TransportTable::new(&inline, vec![f1, f2]);
        let get = |a: &str| t.lookup(a, "+").cloned();
        // The full address, then the address without its extension.
        assert_eq!(
            get("user@example.com"),
            Some(Ok(Transport::Error("5.1.1 gone".into())))
        );
        assert_eq!(
            get("User+x@Example.com"),
            Some(Ok(Transport::Error("5.1.1 gone".into())))
        );
        // The domain: the inline table wins over f1's duplicate.
        assert_eq!(get("other@example.com"), Some(Ok(Transport::Local)));
        // An exact domain key in a later file beats a parent in an earlier one.
        assert_eq!(get("x@a.example.com"), Some(Ok(nexthop("[a.example]"))));
        // Parents, going up.
        assert_eq!(
            get("x@b.c.example.com"),
            Some(Ok(nexthop("[relay.example]")))
        );
        // `*` last.
        assert_eq!(
            get("x@elsewhere.example"),
            Some(Ok(nexthop("[star.example]")))
        );
        assert!(matches!(get("x@bad.example"), Some(Err(e)) if e.starts_with("f2:2: ")));
        assert_eq!(get("bare"), None);
        assert_eq!(
            TransportTable::new(&BTreeMap::new(), vec![]).lookup("x@y", ""),
            None
        );
    }

    #[test]
    fn a_file_renders_back_to_the_same_entries() {
        let text = "a.example smtp:[h]:2525\nb.example error:5.7.1 no\nc.example local:\nd.example discard:x\ne.example :\n";
        let (file, diags) = parse_file(text, Path::new("f"));
        assert!(diags.is_empty());
        let (again, _) = parse_file(&file.to_string(), Path::new("f"));
        assert_eq!(file, again);
    }
}
