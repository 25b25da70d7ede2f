//! The text formats of table files, as Postfix's postmap reads them:
//! logical lines ([`crate::wire::lines`]: a line starting with whitespace
//! continues the previous one; a line whose first non-blank character is
//! `#` is a comment, even inside a continuation; empty and blank lines are
//! skipped, also inside a continuation) and the `key value` entries of
//! hash/texthash files (access(5), postmap(1) source format).
//!
//! Diagnostics carry the file and the line (the first physical line of the
//! logical line) for `postern map build` and for the daemons' logs.

use std::collections::HashMap;
use std::fmt;

use crate::wire::lines::{LogicalLines, logical_lines};

/// One problem found in a table's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, or the inline table's spec.
    pub file: String,
    /// 1-based line (for inline tables: the element's number).
    pub line: usize,
    pub error: bool,
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn error(file: &str, line: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            line,
            error: true,
            message: message.into(),
        }
    }

    pub(crate) fn warning(file: &str, line: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            error: false,
            ..Diagnostic::error(file, line, message)
        }
    }
}

/// `FILE:LINE: error: message` (or `warning:`), as compilers and
/// `postern aliases build` print them.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = if self.error { "error" } else { "warning" };
        write!(f, "{}:{}: {level}: {}", self.file, self.line, self.message)
    }
}

/// The logical lines of a table file with the number of their first
/// physical line; a line that starts with white space before any logical
/// line is ignored with a warning, as postmap does.
pub(crate) fn table_lines(
    file: &str,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(usize, String)> {
    let LogicalLines { lines, orphans } = logical_lines(text);
    diags.extend(orphans.into_iter().map(|n| {
        Diagnostic::warning(
            file,
            n,
            "logical line must not start with whitespace (ignored)",
        )
    }));
    lines
}

/// Entries of a hash/texthash file: keys lower-cased (Postfix's fixed-case
/// tables), the first value of a duplicate key kept with a warning, as
/// postmap does. A line without a value is an error.
pub(crate) fn parse_hash(file: &str, text: &str) -> (HashMap<String, String>, Vec<Diagnostic>) {
    let mut map = HashMap::new();
    let mut diags = Vec::new();
    for (n, line) in table_lines(file, text, &mut diags) {
        match split_entry(&line) {
            Ok((key, value)) => {
                let key = key.to_lowercase();
                match map.entry(key) {
                    std::collections::hash_map::Entry::Occupied(e) => {
                        diags.push(Diagnostic::warning(
                            file,
                            n,
                            format!("duplicate entry: \"{}\" (the first value is kept)", e.key()),
                        ))
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(value);
                    }
                }
            }
            Err(e) => diags.push(Diagnostic::error(file, n, e)),
        }
    }
    (map, diags)
}

/// `key whitespace value`; the key may be `"quoted"` (with `\"` and `\\`
/// escapes) to hold whitespace, as postmap 3.2 and later accept.
/// Entries of a `cidr:` file, in order: `network/prefix value` or a
/// lone address (a /32 or /128), IPv6 with or without brackets. A
/// network with host bits set is an error naming the network it
/// likely means, as Postfix's cidr_table says.
pub(crate) fn parse_cidr(file: &str, text: &str) -> (Vec<(ipnet::IpNet, String)>, Vec<Diagnostic>) {
    let mut entries = Vec::new();
    let mut diags = Vec::new();
    for (n, line) in table_lines(file, text, &mut diags) {
        let (key, value) = match split_entry(&line) {
            Ok(entry) => entry,
            Err(e) => {
                diags.push(Diagnostic::error(file, n, e));
                continue;
            }
        };
        match parse_network(&key) {
            Ok(net) => entries.push((net, value)),
            Err(e) => diags.push(Diagnostic::error(file, n, e)),
        }
    }
    (entries, diags)
}

fn parse_network(key: &str) -> Result<ipnet::IpNet, String> {
    if key.starts_with('!') {
        return Err(format!("\"{key}\": negated patterns are not supported"));
    }
    let (addr, len) = match key.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (key, None),
    };
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = addr.parse().map_err(|_| {
        format!("\"{key}\": not an address or network (192.0.2.0/24, 2001:db8::/32)")
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("\"{key}\": bad prefix length (0 to {max})"))?,
    };
    let net = ipnet::IpNet::new(ip, len).map_err(|e| format!("\"{key}\": {e}"))?;
    if net.network() != ip {
        return Err(format!(
            "\"{key}\": non-null host address bits, perhaps you should use \"{}\" instead",
            net.trunc()
        ));
    }
    Ok(net)
}

fn split_entry(line: &str) -> Result<(String, String), String> {
    let line = line.trim();
    let (key, rest) = if let Some(quoted) = line.strip_prefix('"') {
        let mut key = String::new();
        let mut chars = quoted.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => key.push(e),
                    None => break,
                },
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                c => key.push(c),
            }
        }
        let end = end.ok_or("missing closing '\"' in the key")?;
        let rest = &quoted[end..];
        if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
            return Err("expected whitespace after the quoted key".into());
        }
        (key, rest)
    } else {
        let end = line.find([' ', '\t']).unwrap_or(line.len());
        (line[..end].to_string(), &line[end..])
    };
    let value = rest.trim();
    if key.is_empty() || value.is_empty() {
        return Err("expected format: key whitespace value".into());
    }
    Ok((key, value.to_string()))
}

/// Postfix's `{ … }` lists (inline:, regexp:{…}, pcre:{…}): the text
/// inside the outer braces split at commas and whitespace, a `{ … }`
/// element kept whole (braces removed, text trimmed). `None` when the
/// braces do not balance.
pub fn brace_elements(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    let mut chars = inner.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c == ',' || c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '{' {
            let mut depth = 0usize;
            let mut end = None;
            for (i, c) in chars.by_ref() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end?;
            out.push(inner[start + 1..end].trim().to_string());
        } else {
            let mut end = inner.len();
            while let Some(&(i, c)) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    end = i;
                    break;
                }
                if c == '{' || c == '}' {
                    return None;
                }
                chars.next();
            }
            out.push(inner[start..end].to_string());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_continuation_lines_are_warned_about_and_ignored() {
        let (map, diags) = parse_hash("f", "  lost 1\n\tmore\na 1\n\n  # c\n   continued\n");
        assert_eq!(map.len(), 1);
        assert_eq!(map["a"], "1   continued");
        let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "f:1: warning: logical line must not start with whitespace (ignored)",
                "f:2: warning: logical line must not start with whitespace (ignored)",
            ]
        );
    }

    #[test]
    fn hash_entries_lower_cased_first_duplicate_kept() {
        let (map, diags) = parse_hash(
            "f",
            "Example.COM   REJECT go away\n\"a b@x\" OK\nexample.com OK\nlonely\n",
        );
        assert_eq!(map["example.com"], "REJECT go away");
        assert_eq!(map["a b@x"], "OK");
        assert_eq!(diags.len(), 2);
        assert_eq!(
            diags[0].to_string(),
            "f:3: warning: duplicate entry: \"example.com\" (the first value is kept)"
        );
        assert_eq!(
            diags[1].to_string(),
            "f:4: error: expected format: key whitespace value"
        );
    }

    #[test]
    fn brace_lists() {
        assert_eq!(
            brace_elements("{ a=b, { c = d, e }, f=g }").unwrap(),
            vec!["a=b", "c = d, e", "f=g"]
        );
        assert_eq!(
            brace_elements("{ {/x/ REJECT no}, {/y{2}/ OK} }").unwrap(),
            vec!["/x/ REJECT no", "/y{2}/ OK"]
        );
        assert_eq!(brace_elements("{ {a }"), None);
        assert_eq!(brace_elements("a=b"), None);
    }
}
