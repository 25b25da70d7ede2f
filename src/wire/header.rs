//! Header fields as Postfix's `is_header` sees them: a name of printable
//! ASCII other than `:`, optional blanks (space, tab), then the colon. A
//! line that starts with a blank continues the field before it.

/// A byte of a header field's name: printable ASCII but `:`.
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_graphic() && b != b':'
}

/// Where the colon that ends the field name is, when `line` starts a
/// header field (Postfix's `is_header`); `None` when it does not.
pub(crate) fn colon(line: &[u8]) -> Option<usize> {
    let name_len = line
        .iter()
        .position(|&b| !is_name_byte(b))
        .unwrap_or(line.len());
    if name_len == 0 {
        return None;
    }
    let blanks = line[name_len..]
        .iter()
        .position(|&b| b != b' ' && b != b'\t')?;
    let at = name_len + blanks;
    (line[at] == b':').then_some(at)
}

/// Postfix's `is_header`: `line` starts a header field.
pub(crate) fn is_header(line: &[u8]) -> bool {
    colon(line).is_some()
}

/// A header field with no blank before its colon (`Subject: x`, not
/// `Subject : x`): what `sendmail -t` and an access table's `PREPEND`
/// take for a header (Postfix's own programs accept the blanks).
pub(crate) fn is_tight_header(line: &[u8]) -> bool {
    colon(line).is_some_and(|at| is_name_byte(line[at - 1]))
}

/// The value of the first field called `field` (case-insensitive) in the
/// header section that starts `head` (LF line ends; it stops at the first
/// empty line), unfolded: each continuation line trimmed and joined with
/// one space, the whole trimmed. Used for the Message-ID that smtpd logs
/// and that a bounce threads on.
pub(crate) fn first_value(head: &str, field: &str) -> Option<String> {
    let mut lines = head.split('\n').peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return None;
        }
        let Some(at) = colon(line.as_bytes()) else {
            continue;
        };
        if !line[..at].trim_end().eq_ignore_ascii_case(field) {
            continue;
        }
        let mut v = line[at + 1..].trim().to_string();
        while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
            v.push(' ');
            v.push_str(next.trim());
        }
        return Some(v.trim().to_string());
    }
    None
}

/// Where the header field that starts at `at` ends (after its last
/// line's LF, continuation lines included); `at` itself when no field
/// starts there.
pub(crate) fn field_end(stored: &[u8], at: usize) -> usize {
    let line_end = |from: usize| {
        stored[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(stored.len(), |n| from + n + 1)
    };
    if !is_header(&stored[at..line_end(at)]) {
        return at;
    }
    let mut end = line_end(at);
    while matches!(stored.get(end), Some(b' ' | b'\t')) {
        end = line_end(end);
    }
    end
}

/// The length of the RFC 5322 comment `s` starts with (`(` … `)`,
/// nested comments and quoted pairs inside), both parentheses counted;
/// all of `s` when it is never closed.
pub(crate) fn comment_len(s: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_is_header() {
        assert!(is_header(b"Subject: x"));
        assert!(is_header(b"Subject : x"));
        assert!(is_header(b"Subject\t:x"));
        assert!(is_header(b"X-Y:"));
        assert!(!is_header(b" folded: x"));
        assert!(!is_header(b"no colon"));
        assert!(!is_header(b"Subject "));
        assert!(!is_header(b": empty name"));
        assert!(!is_header(b"two words: x"));
        assert!(!is_header(b""));
        assert_eq!(colon(b"A : b"), Some(2));
    }

    #[test]
    fn tight_headers_have_no_blank_before_the_colon() {
        assert!(is_tight_header(b"Subject: x"));
        assert!(is_tight_header(b"X:"));
        assert!(!is_tight_header(b"Subject : x"));
        assert!(!is_tight_header(b"no colon"));
        assert!(!is_tight_header(b":x"));
    }

    #[test]
    fn first_value_unfolds() {
        let h = "Subject: x\nMessage-ID:\n <abc@def>\n\nMessage-ID: <no>\n";
        assert_eq!(first_value(h, "message-id").as_deref(), Some("<abc@def>"));
        assert_eq!(
            first_value("Subject: x\n\nMessage-ID: <no>\n", "message-id"),
            None
        );
        let folded = "message-id : <a\n\tb>\n";
        assert_eq!(first_value(folded, "Message-ID").as_deref(), Some("<a b>"));
        assert_eq!(first_value("X: a\n \n b\n", "x").as_deref(), Some("a  b"));
    }
}
