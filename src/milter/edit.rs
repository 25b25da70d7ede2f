//! What a milter's modifications do to the message and the envelope, as
//! Postfix's cleanup applies them (`cleanup_milter.c`), on the part of
//! the stored message (LF line ends) that milters see: the client's
//! header fields and body, below what smtpd wrote above them (its
//! `Received:`, PREPENDed fields, `Authentication-Results:`), which a
//! milter neither sees nor can change (as Sendmail hides its own).

use super::Modification;
use crate::wire::header::field_end;

/// The client's message, split: each header field whole (continuation
/// lines and its LF included), then the body (after the empty line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub fields: Vec<Vec<u8>>,
    /// Whether an empty line ended the header section.
    separator: bool,
    pub body: Vec<u8>,
}

impl Message {
    pub fn parse(stored: &[u8]) -> Message {
        let mut fields = Vec::new();
        let mut at = 0;
        while at < stored.len() {
            let end = field_end(stored, at);
            if end == at {
                break;
            }
            fields.push(stored[at..end].to_vec());
            at = end;
        }
        let separator = stored[at..].starts_with(b"\n");
        let body = stored[at + usize::from(separator)..].to_vec();
        Message {
            fields,
            separator,
            body,
        }
    }

    /// The stored form again.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64 * self.fields.len() + 1);
        self.fields.iter().for_each(|f| out.extend_from_slice(f));
        if self.separator {
            out.push(b'\n');
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// Apply a header or body modification; the envelope's and
    /// quarantine are the caller's. What it did, for the log.
    pub fn apply(&mut self, m: &Modification) -> Option<String> {
        match m {
            Modification::AddHeader { name, value } => {
                self.fields.push(field(name, value));
                Some(format!("header {name}: {} added", shown(value)))
            }
            Modification::InsertHeader { index, name, value } => {
                let at = (*index as usize).min(self.fields.len());
                self.fields.insert(at, field(name, value));
                Some(format!(
                    "header {name}: {} inserted at {index}",
                    shown(value)
                ))
            }
            Modification::ChangeHeader { index, name, value } => {
                let found = self
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| field_name(f).eq_ignore_ascii_case(name.as_bytes()))
                    .nth((*index as usize).saturating_sub(1))
                    .map(|(i, _)| i);
                match (found, value.trim().is_empty()) {
                    (Some(i), true) => {
                        self.fields.remove(i);
                        Some(format!("header {name} #{index} deleted"))
                    }
                    (Some(i), false) => {
                        self.fields[i] = field(name, value);
                        Some(format!(
                            "header {name} #{index} changed to {}",
                            shown(value)
                        ))
                    }
                    // libmilter: an index past the last such field adds one.
                    (None, false) => {
                        self.fields.push(field(name, value));
                        Some(format!("header {name}: {} added", shown(value)))
                    }
                    (None, true) => None,
                }
            }
            Modification::ReplaceBody(crlf) => {
                self.body = crate::wire::data::lf_form(crlf);
                self.separator = true;
                Some(format!("body replaced ({} bytes)", self.body.len()))
            }
            _ => None,
        }
    }
}

/// A field in the stored form from a milter's name and value: a space
/// after the colon unless the value starts with white space; line ends
/// (CRLF or LF, each followed by white space) as LF; one LF at the end.
fn field(name: &str, value: &str) -> Vec<u8> {
    let value = value.replace("\r\n", "\n");
    let value = value.trim_end_matches('\n');
    let space = if value.starts_with([' ', '\t']) {
        ""
    } else {
        " "
    };
    format!("{name}:{space}{value}\n").into_bytes()
}

fn field_name(field: &[u8]) -> &[u8] {
    let colon = crate::wire::header::colon(field).unwrap_or(0);
    field[..colon].trim_ascii_end()
}

/// A value for the log: one line, printable, at most 200 characters.
fn shown(value: &str) -> String {
    let one = value.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::wire::printable::printable(&one, true)
        .chars()
        .take(200)
        .collect()
}

/// An address as a milter writes it, without `<>` and ESMTP arguments.
pub fn bare(address: &str) -> &str {
    let a = address.trim();
    a.strip_prefix('<')
        .and_then(|a| a.split_once('>'))
        .map_or(a, |(inner, _)| inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[u8] = b"From: a@example.org\nTo: b@example.org,\n c@example.org\nSubject: hi\nX-Tag: one\nX-Tag: two\n\nBody.\n";

    fn apply(m: Modification) -> String {
        let mut msg = Message::parse(M);
        assert_eq!(msg.to_stored(), M);
        msg.apply(&m).expect("applied");
        String::from_utf8(msg.to_stored()).unwrap()
    }

    #[test]
    fn header_modifications_as_libmilter_defines_them() {
        let add = |name: &str, value: &str| Modification::AddHeader {
            name: name.into(),
            value: value.into(),
        };
        assert!(apply(add("X-Spam", "yes")).ends_with("X-Tag: two\nX-Spam: yes\n\nBody.\n"));
        // A value that starts with a space keeps it; CRLF folds become LF.
        let folded = apply(add("X-Long", " a\r\n\tb"));
        assert!(
            folded.contains("X-Tag: two\nX-Long: a\n\tb\n\nBody."),
            "{folded}"
        );
        let insert = |index| Modification::InsertHeader {
            index,
            name: "X-First".into(),
            value: "1".into(),
        };
        assert!(apply(insert(0)).starts_with("X-First: 1\nFrom: a@example.org\n"));
        assert!(apply(insert(2)).contains(" c@example.org\nX-First: 1\nSubject: hi\n"));
        assert!(apply(insert(99)).contains("X-Tag: two\nX-First: 1\n\n"));
        let change = |index, value: &str| Modification::ChangeHeader {
            index,
            name: "x-tag".into(),
            value: value.into(),
        };
        assert!(apply(change(2, "2")).contains("X-Tag: one\nx-tag: 2\n\n"));
        assert!(apply(change(1, "")).contains("Subject: hi\nX-Tag: two\n\n"));
        assert!(apply(change(3, "3")).contains("X-Tag: two\nx-tag: 3\n\n"));
        let mut msg = Message::parse(M);
        assert_eq!(msg.apply(&change(3, "")), None);
        assert_eq!(msg.to_stored(), M);
    }

    #[test]
    fn the_body_is_replaced_in_the_stored_form() {
        let out = apply(Modification::ReplaceBody(b"New\r\nbody\r\n".to_vec()));
        assert!(out.ends_with("X-Tag: two\n\nNew\nbody\n"), "{out}");
    }

    #[test]
    fn a_message_without_body_or_separator_stays_so() {
        for m in [&b"Subject: x\n"[..], b"Subject: x\n\n", b"no header\n"] {
            assert_eq!(Message::parse(m).to_stored(), m);
        }
    }

    #[test]
    fn bare_addresses() {
        assert_eq!(bare("<a@b> NOTIFY=NEVER"), "a@b");
        assert_eq!(bare(" a@b "), "a@b");
        assert_eq!(bare("<>"), "");
    }
}
