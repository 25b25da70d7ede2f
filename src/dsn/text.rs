//! The small text tools of the report builder: Postfix's `line_wrap`, its
//! `printable` masking and the header-section scans of the
//! returned message.

use crate::wire::header;

/// Postfix's `bounce_print_wrap`: lines at most this long where words allow.
pub(crate) const WRAP_LENGTH: usize = 79;
/// Indent of the second and later lines of a wrapped entry.
pub(crate) const WRAP_INDENT: usize = 4;
/// A word longer than this is cut, so that no output line can pass the RFC
/// 5322 limit of 998 octets (Postfix never cuts words; this only bites on
/// pathological input).
const MAX_WORD: usize = 900;

/// Wraps `text` like Postfix's `line_wrap(text, 79, 4, ...)`: breaks at
/// blanks (space or tab) so that lines stay within 79 columns, drops the
/// blanks at each break and trailing blanks, indents every line after the
/// first by four spaces. Each output line ends with LF.
pub(crate) fn wrap(text: &str, out: &mut Vec<u8>) {
    let s = text.as_bytes();
    let blank = |b: u8| b == b' ' || b == b'\t';
    let mut indent = 0;
    let mut limit = WRAP_LENGTH;
    let mut start = 0;
    let mut word = Some(0);
    while let Some(w) = word {
        let next_space = s[w..]
            .iter()
            .position(|&b| blank(b))
            .map_or(s.len(), |p| w + p);
        if w > start && next_space - start > limit {
            emit(&s[start..w], indent, out);
            let mut after = w;
            while after < s.len() && blank(s[after]) {
                after += 1;
            }
            if start == 0 {
                indent += WRAP_INDENT;
                limit -= WRAP_INDENT;
            }
            start = after;
        }
        word = (next_space < s.len()).then_some(next_space + 1);
    }
    // Blanks at the very end may have caused the last break: then nothing
    // is left, and Postfix's blank indented line is not worth keeping.
    if start == 0 || start < s.len() {
        emit(&s[start..], indent, out);
    }
}

/// Writes one wrapped line: trailing blanks stripped, overlong words cut.
fn emit(line: &[u8], indent: usize, out: &mut Vec<u8>) {
    let mut end = line.len();
    while end > 0 && (line[end - 1] == b' ' || line[end - 1] == b'\t') {
        end -= 1;
    }
    let mut rest = &line[..end];
    loop {
        out.extend(std::iter::repeat_n(b' ', indent));
        if rest.len() <= MAX_WORD {
            out.extend_from_slice(rest);
            out.push(b'\n');
            return;
        }
        // Cut at a character boundary (UTF-8 continuation bytes are
        // 0b10xxxxxx), never inside a character.
        let mut cut = MAX_WORD;
        while cut > 0 && rest[cut] & 0xC0 == 0x80 {
            cut -= 1;
        }
        if cut == 0 {
            cut = MAX_WORD; // not UTF-8 after all: cut anywhere
        }
        out.extend_from_slice(&rest[..cut]);
        out.push(b'\n');
        rest = &rest[cut..];
    }
}

pub(crate) use crate::wire::printable::printable;

/// The header section of a stored message (LF line ends): the leading lines
/// that are header fields (`name:` with a printable-ASCII name, optional
/// blanks before the colon) or continuation lines (starting with a space or
/// tab), as Postfix's `bounce_original` selects them for
/// `text/rfc822-headers`. It stops before the blank line that ends the
/// header, or before the first line that is not a header field; the slice
/// ends with that line's LF when there is one.
pub(crate) fn header_section(original: &[u8]) -> &[u8] {
    let mut pos = 0;
    while pos < original.len() {
        let line_end = original[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(original.len(), |p| pos + p);
        let line = &original[pos..line_end];
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation && !header::is_header(line) {
            break;
        }
        pos = (line_end + 1).min(original.len());
    }
    &original[..pos]
}

/// The original's Message-ID, unfolded and trimmed, when it has the
/// `<...>` shape Postfix requires for threading (`References:` and
/// `In-Reply-To:`); `None` when absent, malformed, or holding characters
/// that [`printable`] would mask.
pub(crate) fn original_message_id(headers: &[u8], utf8: bool) -> Option<String> {
    let text = std::str::from_utf8(headers).ok()?;
    let v = header::first_value(text, "message-id")?;
    let well_formed = v.len() > 2 && v.starts_with('<') && v.ends_with('>');
    (well_formed && printable(&v, utf8) == v.as_str()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(s: &str) -> String {
        let mut out = Vec::new();
        wrap(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn short_text_is_one_line() {
        assert_eq!(wrapped("<a@b>: hello  "), "<a@b>: hello\n");
        assert_eq!(wrapped(""), "\n");
    }

    #[test]
    fn wraps_at_79_with_four_space_indent() {
        let words: Vec<String> = (0..40).map(|i| format!("word{i}")).collect();
        let out = wrapped(&words.join(" "));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 2);
        assert!(lines.iter().all(|l| l.len() <= WRAP_LENGTH));
        assert!(!lines[0].starts_with(' '));
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.starts_with("    ") && !l.starts_with("     "))
        );
        // Nothing lost: the words come back in order.
        let back: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(back, words.iter().map(String::as_str).collect::<Vec<_>>());
        // Postfix fills a line as far as it goes: the first line plus the
        // next word would pass 79.
        let next = lines[1].split_whitespace().next().unwrap();
        assert!(lines[0].len() + 1 + next.len() > WRAP_LENGTH);
    }

    #[test]
    fn long_word_stays_whole_up_to_the_cap() {
        let long = "x".repeat(120);
        assert_eq!(
            wrapped(&format!("a {long} b")),
            format!("a\n    {long}\n    b\n")
        );
        let huge = "é".repeat(1000);
        let out = wrapped(&huge);
        assert!(out.lines().all(|l| l.len() <= 998));
        assert_eq!(out.replace(['\n', ' '], ""), huge);
    }

    #[test]
    fn header_section_stops_at_blank_or_non_header() {
        let m = b"Subject: x\nX-Long: a\n\tb\nFrom : c\n\nbody\nFoo: no\n";
        assert_eq!(header_section(m), b"Subject: x\nX-Long: a\n\tb\nFrom : c\n");
        assert_eq!(header_section(b"Subject: x"), b"Subject: x");
        assert_eq!(header_section(b"not a header\nSubject: x\n"), b"");
        assert_eq!(header_section(b""), b"");
        assert_eq!(header_section(b"A: 1\nFrom nobody\n"), b"A: 1\n");
    }

    #[test]
    fn message_id_needs_angle_brackets() {
        let h = b"Subject: x\nMessage-ID:\n <abc@def>\n";
        assert_eq!(original_message_id(h, false).as_deref(), Some("<abc@def>"));
        assert_eq!(original_message_id(b"Message-Id: abc@def\n", false), None);
        assert_eq!(original_message_id(b"Subject: y\n", false), None);
        assert_eq!(
            original_message_id("Message-Id: <é@x>\n".as_bytes(), false),
            None
        );
    }
}
