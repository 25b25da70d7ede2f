//! Logical lines, as Postfix reads main.cf, master.cf, table sources and
//! aliases files (`util/readlline.c`): empty lines, white-space-only lines
//! and lines whose first non-blank character is `#` are skipped, also in
//! the middle of a continued line; a line that starts with white space
//! continues the logical line before it, its leading white space kept as
//! the separator (`a,\n    b` is `a,    b`). A line that starts with white
//! space before any logical line has nothing to continue: it is set aside
//! for the caller to warn about, as Postfix warns `logical line must not
//! start with whitespace`, and ignored.
//!
//! White space is C's `isspace` in the C locale, as Postfix's `ISSPACE`;
//! a CR before the newline is removed (files written on Windows).

/// A text's logical lines, and the continuation lines that had nothing to
/// continue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogicalLines {
    /// Each logical line with the number of its first physical line (from
    /// 1): its continuations joined, the newlines removed, white space at
    /// its end removed.
    pub lines: Vec<(usize, String)>,
    /// The numbers of the lines (from 1) that start with white space before
    /// any logical line: ignored.
    pub orphans: Vec<usize>,
}

/// C `isspace` in the C locale (Postfix's `ISSPACE`).
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Splits `text` into logical lines (see the module documentation).
pub(crate) fn logical_lines(text: &str) -> LogicalLines {
    let mut out = LogicalLines::default();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let content = line.trim_start_matches(is_space);
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if line.starts_with(is_space) {
            match out.lines.last_mut() {
                Some((_, logical)) => logical.push_str(line),
                None => out.orphans.push(index + 1),
            }
        } else {
            out.lines.push((index + 1, line.to_string()));
        }
    }
    for (_, logical) in &mut out.lines {
        logical.truncate(logical.trim_end_matches(is_space).len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The logical lines of `text`, which has no orphans.
    fn lines(text: &str) -> Vec<(usize, String)> {
        let parsed = logical_lines(text);
        assert!(parsed.orphans.is_empty(), "{parsed:?}");
        parsed.lines
    }

    fn owned(lines: &[(usize, &str)]) -> Vec<(usize, String)> {
        lines.iter().map(|&(n, l)| (n, l.to_string())).collect()
    }

    #[test]
    fn continuations_keep_their_leading_white_space() {
        assert_eq!(
            lines("a = x,\n    y\n\tz \nb = 1\n"),
            owned(&[(1, "a = x,    y\tz"), (4, "b = 1")])
        );
    }

    #[test]
    fn comment_and_blank_lines_do_not_end_a_continuation() {
        // Postfix's readlline(): an empty, white-space-only or comment
        // line between a line and its continuation is skipped.
        let text = "a 1\n  continued\n# comment\n\tstill\n\nb 2\r\n   \n c 3\n  # indented\n";
        assert_eq!(
            lines(text),
            owned(&[(1, "a 1  continued\tstill"), (6, "b 2 c 3")])
        );
    }

    #[test]
    fn a_hash_later_in_a_line_is_text_and_crlf_is_a_line_end() {
        assert_eq!(
            lines("c = 4 # not a comment\r\n\r\n\x0c\r\nd\x0b\r\n"),
            owned(&[(1, "c = 4 # not a comment"), (4, "d")])
        );
    }

    #[test]
    fn leading_continuations_are_set_aside() {
        let parsed = logical_lines("# c\n  orphan: x\n\tmore\n\nok: y\n  cont\n");
        assert_eq!(parsed.orphans, [2, 3]);
        assert_eq!(parsed.lines, owned(&[(5, "ok: y  cont")]));
    }

    #[test]
    fn nothing_but_comments() {
        assert_eq!(logical_lines("# a\n\n   \n"), LogicalLines::default());
        assert_eq!(logical_lines(""), LogicalLines::default());
    }
}
