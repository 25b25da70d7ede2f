//! A stored message (LF line ends) as a milter gets it: header fields as
//! Postfix's `mime_state` and `milter8_header` make them, and the body
//! with CRLF line ends.
//!
//! - A field starts with a line that `is_header` (a name, optional blanks,
//!   the colon); the blanks before the colon are dropped (`Subject : x`
//!   goes as `Subject`). Its continuation lines (starting with a space or
//!   tab) are kept, joined to the first by LF: Sendmail's form for folded
//!   headers, which Postfix sends too.
//! - The value is what follows the colon, less one space (not a tab)
//!   unless the milter negotiated `SMFIP_HDR_LEADSPC`.
//! - The header section ends at an empty line, which is not sent, or at
//!   the first line that is neither a field nor a continuation, which is
//!   the body's first line.
//! - Body lines end in CRLF, the last one too; a CR before an LF is taken
//!   as part of the line end (as the DKIM signer and the smtp client take
//!   it).

use crate::wire::data::{DataWriter, StoredCr};
use crate::wire::header::colon;

/// One header field of the stored message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    pub(crate) name: &'a [u8],
    /// What follows the colon on the first line.
    first: &'a [u8],
    /// The continuation lines, as they are.
    more: Vec<&'a [u8]>,
}

impl Field<'_> {
    /// The value as SMFIC_HEADER carries it.
    pub(crate) fn value(&self, leading_space: bool) -> Vec<u8> {
        let first = match self.first.strip_prefix(b" ") {
            Some(rest) if !leading_space => rest,
            _ => self.first,
        };
        let mut value = first.to_vec();
        for line in &self.more {
            value.push(b'\n');
            value.extend_from_slice(line);
        }
        value
    }
}

/// The header fields and the body of `stored`.
pub(crate) fn split(stored: &[u8]) -> (Vec<Field<'_>>, &[u8]) {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut at = 0;
    while at < stored.len() {
        let end = stored[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(stored.len(), |n| at + n + 1);
        let raw = &stored[at..end];
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return (fields, &stored[end..]);
        }
        if matches!(line[0], b' ' | b'\t') {
            match fields.last_mut() {
                Some(field) => field.more.push(line),
                None => return (fields, &stored[at..]),
            }
        } else {
            let Some(c) = colon(line) else {
                return (fields, &stored[at..]);
            };
            let name = &line[..c];
            let name_len = name.len()
                - name
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
            fields.push(Field {
                name: &line[..name_len],
                first: &line[c + 1..],
                more: Vec::new(),
            });
        }
        at = end;
    }
    (fields, &stored[stored.len()..])
}

/// The body with CRLF line ends (empty for an empty body).
pub(crate) fn body_chunks(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 32 + 2);
    let mut writer = DataWriter::message(StoredCr::LineEnd);
    writer.write(body, &mut out);
    if !body.is_empty() {
        writer.finish(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(stored: &[u8], leading_space: bool) -> (Vec<(String, String)>, String) {
        let (fields, body) = split(stored);
        let fields = fields
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(f.name).into_owned(),
                    String::from_utf8_lossy(&f.value(leading_space)).into_owned(),
                )
            })
            .collect();
        (fields, String::from_utf8_lossy(body).into_owned())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fields_as_postfix_sends_them() {
        let stored = b"Subject: one\n two\n\tthree\nX-Tab:\tvalue\nTo : a@b\nX-Empty:\nX-Two:  two\n\nbody\n";
        let (got, body) = fields(stored, false);
        assert_eq!(
            got,
            pairs(&[
                ("Subject", "one\n two\n\tthree"),
                ("X-Tab", "\tvalue"),
                ("To", "a@b"),
                ("X-Empty", ""),
                ("X-Two", " two"),
            ])
        );
        assert_eq!(body, "body\n");
        let (got, _) = fields(stored, true);
        assert_eq!(got[0], ("Subject".into(), " one\n two\n\tthree".into()));
        assert_eq!(got[2], ("To".into(), " a@b".into()));
    }

    #[test]
    fn where_the_header_section_ends() {
        // No empty line: a line that is not a field starts the body.
        let (got, body) = fields(b"A: 1\nnot a header\nB: 2\n", false);
        assert_eq!(got, pairs(&[("A", "1")]));
        assert_eq!(body, "not a header\nB: 2\n");
        // A continuation with nothing to continue is body.
        let (got, body) = fields(b" x\nA: 1\n", false);
        assert!(got.is_empty());
        assert_eq!(body, " x\nA: 1\n");
        // Only headers, no body; no final LF.
        let (got, body) = fields(b"A: 1\nB: 2", false);
        assert_eq!(got, pairs(&[("A", "1"), ("B", "2")]));
        assert_eq!(body, "");
        // An empty message, an empty header section.
        assert_eq!(fields(b"", false), (vec![], String::new()));
        assert_eq!(fields(b"\nbody", false), (vec![], "body".to_string()));
        // A CR before the LF is a line end.
        let (got, body) = fields(b"A: 1\r\n 2\r\n\r\nbody\r\n", false);
        assert_eq!(got, pairs(&[("A", "1\n 2")]));
        assert_eq!(body, "body\r\n");
    }

    #[test]
    fn body_line_ends() {
        assert_eq!(body_chunks(b""), b"");
        assert_eq!(body_chunks(b"\n"), b"\r\n");
        assert_eq!(body_chunks(b"a\nb\n"), b"a\r\nb\r\n");
        assert_eq!(body_chunks(b"a\nno end"), b"a\r\nno end\r\n");
        assert_eq!(body_chunks(b"a\r\n.\n"), b"a\r\n.\r\n");
    }
}
