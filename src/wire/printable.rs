//! Postfix's `printable(text, '?')`: text from outside made fit for a log
//! line, a reply or a header, every character that is not printable
//! ASCII replaced by `?`. With `utf8` (an SMTPUTF8 message, a HELO name
//! kept as given) non-ASCII characters that are not control characters
//! are kept. CR, LF and TAB are always masked, so a value can never break
//! out of its line.

use std::borrow::Cow;

/// `text` with what is not printable replaced by `?`.
pub(crate) fn printable(text: &str, utf8: bool) -> Cow<'_, str> {
    let ok = |c: char| {
        (' '..='~').contains(&c)
            || (utf8 && !c.is_ascii() && !c.is_control() && c != char::REPLACEMENT_CHARACTER)
    };
    if text.chars().all(ok) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().map(|c| if ok(c) { c } else { '?' }).collect())
    }
}

/// Bytes that may not be UTF-8, for the log: what does not decode is `?`
/// too.
pub(crate) fn printable_bytes(bytes: &[u8]) -> String {
    printable(&String::from_utf8_lossy(bytes), true).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_masks_controls_and_8bit() {
        assert_eq!(printable("a\r\nb\tc", true), "a??b?c");
        assert_eq!(printable("jörg", false), "j?rg");
        assert_eq!(printable("jörg", true), "jörg");
        assert_eq!(printable("x\u{85}y", true), "x?y");
        assert_eq!(printable("mx\u{7}.example\u{7f}", true), "mx?.example?");
        assert_eq!(printable_bytes(b"ok \xff\n"), "ok ??");
        assert!(matches!(printable("plain", false), Cow::Borrowed(_)));
    }
}
