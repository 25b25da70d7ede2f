//! Where in the MIME structure a line of the message is, as Postfix's
//! mime_state tracks it (RFC 2045, 2046): the primary headers, the headers
//! after a multipart boundary, the headers of an attached message
//! (message/rfc822), or body text. Boundaries nest (a stack, at most
//! [`MAX_NESTING`] deep); a boundary line is recognised by its prefix
//! (`--boundary`, trailing text ignored), `--boundary--` closes its
//! multipart. Only `Content-Type` is interpreted.

/// Postfix's mime_nesting_limit.
pub(crate) const MAX_NESTING: usize = 100;
/// Postfix's mime_boundary_length_limit.
const MAX_BOUNDARY: usize = 2048;

/// Which header block a header is in (Postfix's MIME_HDR_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// The message's own headers.
    Primary,
    /// After a multipart boundary.
    Multipart,
    /// At the start of an attached message (message/rfc822).
    Nested,
}

/// The content type of the entity whose headers are being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctype {
    Text,
    Rfc822,
    Multipart,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header(Class),
    Body,
}

struct Boundary {
    text: Vec<u8>,
    /// Content type of parts without a Content-Type (message/rfc822 in
    /// multipart/digest, else text/plain).
    default: Ctype,
}

/// The MIME state machine.
pub(crate) struct Mime {
    state: State,
    ctype: Ctype,
    stack: Vec<Boundary>,
    /// Bytes of the current body block so far (lines count one for the
    /// newline), for body_checks_size_limit.
    body_offset: u64,
}

impl Default for Mime {
    fn default() -> Mime {
        Mime::new()
    }
}

impl Mime {
    pub(crate) fn new() -> Mime {
        Mime {
            state: State::Header(Class::Primary),
            ctype: Ctype::Text,
            stack: Vec::new(),
            body_offset: 0,
        }
    }

    /// In a header block: which one.
    pub(crate) fn header_class(&self) -> Option<Class> {
        match self.state {
            State::Header(c) => Some(c),
            State::Body => None,
        }
    }

    /// A complete header of the current block (lines joined with `\n`).
    pub(crate) fn header(&mut self, header: &[u8]) {
        let Some(colon) = header.iter().position(|&b| b == b':') else {
            return;
        };
        if header[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"content-type")
        {
            self.content_type(&header[colon + 1..]);
        }
    }

    /// The empty line that ends a header block.
    pub(crate) fn end_of_headers(&mut self) {
        self.state = match self.ctype {
            Ctype::Rfc822 => {
                self.ctype = Ctype::Text;
                State::Header(Class::Nested)
            }
            Ctype::Multipart => {
                self.ctype = Ctype::Other;
                State::Body
            }
            _ => State::Body,
        };
        self.body_offset = 0;
    }

    /// A line in a header block that is neither a header nor empty: the
    /// body starts with it.
    pub(crate) fn not_a_header(&mut self) {
        self.state = State::Body;
        self.body_offset = 0;
    }

    /// A body line (or a piece of one; `continued`: not the start of a
    /// line). Returns the body offset at which the line starts, for the
    /// size limit of body checks. A boundary line switches to the next
    /// part's headers (or, closing, back to body text).
    pub(crate) fn body_line(&mut self, line: &[u8], continued: bool) -> u64 {
        let at = self.body_offset;
        self.body_offset += line.len() as u64 + 1;
        if continued || self.stack.is_empty() {
            return at;
        }
        let Some(rest) = line.strip_prefix(b"--") else {
            return at;
        };
        let Some(depth) = self.stack.iter().rposition(|b| rest.starts_with(&b.text)) else {
            return at;
        };
        self.stack.truncate(depth + 1);
        let boundary = self.stack.pop().unwrap_or(Boundary {
            text: Vec::new(),
            default: Ctype::Text,
        });
        if rest[boundary.text.len()..].starts_with(b"--") {
            self.state = State::Body;
            self.ctype = Ctype::Other;
            self.body_offset = 0;
        } else {
            self.state = State::Header(Class::Multipart);
            self.ctype = boundary.default;
            self.stack.push(boundary);
        }
        at
    }

    /// Content-Type: type/subtype; params. Multipart pushes each boundary
    /// parameter (several are illegal, but Postfix tracks them all so that
    /// nothing hides behind the second).
    fn content_type(&mut self, value: &[u8]) {
        let mut tokens = Tokens { s: value };
        let Some(Token::Word(ty)) = tokens.next() else {
            return;
        };
        let sub = match (tokens.next(), tokens.next()) {
            (Some(Token::Special(b'/')), Some(Token::Word(s))) => s,
            _ => Vec::new(),
        };
        let is = |a: &[u8], b: &str| a.eq_ignore_ascii_case(b.as_bytes());
        self.ctype = if is(&ty, "text") {
            Ctype::Text
        } else if is(&ty, "message") {
            if is(&sub, "rfc822") {
                Ctype::Rfc822
            } else {
                Ctype::Other
            }
        } else if is(&ty, "multipart") {
            Ctype::Multipart
        } else {
            Ctype::Other
        };
        if self.ctype != Ctype::Multipart {
            return;
        }
        let default = if is(&sub, "digest") {
            Ctype::Rfc822
        } else {
            Ctype::Text
        };
        // `; name = value` parameters.
        let mut prev: Vec<Token> = Vec::new();
        for t in tokens {
            if let [.., Token::Word(name), Token::Special(b'=')] = prev.as_slice()
                && let Token::Word(v) | Token::Quoted(v) = &t
                && is(name, "boundary")
                && self.stack.len() < MAX_NESTING
            {
                let mut text = v.clone();
                text.truncate(MAX_BOUNDARY);
                self.stack.push(Boundary { text, default });
            }
            prev.push(t);
            if prev.len() > 2 {
                prev.remove(0);
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(Vec<u8>),
    Quoted(Vec<u8>),
    Special(u8),
}

/// RFC 2045 tokens: words, quoted strings, tspecials; whitespace, newlines
/// and (comments) skipped.
struct Tokens<'a> {
    s: &'a [u8],
}

const TSPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        loop {
            let (&c, rest) = self.s.split_first()?;
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.s = rest,
                b'(' => {
                    // A comment, possibly nested.
                    let n = crate::wire::header::comment_len(self.s);
                    self.s = self.s.get(n..).unwrap_or_default();
                }
                b'"' => {
                    let mut v = Vec::new();
                    let mut i = 0;
                    while i < rest.len() && rest[i] != b'"' {
                        if rest[i] == b'\\' && i + 1 < rest.len() {
                            i += 1;
                        }
                        if rest[i] != b'\n' {
                            v.push(rest[i]);
                        }
                        i += 1;
                    }
                    self.s = rest.get(i + 1..).unwrap_or_default();
                    return Some(Token::Quoted(v));
                }
                c if TSPECIALS.contains(&c) => {
                    self.s = rest;
                    return Some(Token::Special(c));
                }
                _ => {
                    let end = self
                        .s
                        .iter()
                        .position(|b| b.is_ascii_whitespace() || TSPECIALS.contains(b))
                        .unwrap_or(self.s.len());
                    let word = self.s[..end].to_vec();
                    self.s = &self.s[end..];
                    return Some(Token::Word(word));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds lines (as the inspector would) and records each line's
    /// state: H(class) for a header, E for an end of headers, B for body.
    fn walk(lines: &[&str]) -> Vec<String> {
        let mut m = Mime::new();
        let mut out = Vec::new();
        let mut pending: Option<String> = None;
        for l in lines {
            if let Some(class) = m.header_class() {
                if l.starts_with([' ', '\t']) && pending.is_some() {
                    if let Some(p) = pending.as_mut() {
                        p.push('\n');
                        p.push_str(l);
                    }
                    out.push(format!("{class:?}+"));
                    continue;
                }
                if let Some(p) = pending.take() {
                    m.header(p.as_bytes());
                }
                if l.contains(':') {
                    pending = Some(l.to_string());
                    out.push(format!("{class:?}"));
                    continue;
                }
                if l.is_empty() {
                    m.end_of_headers();
                    out.push("E".into());
                    continue;
                }
                m.not_a_header();
            }
            m.body_line(l.as_bytes(), false);
            out.push("B".into());
        }
        out
    }

    #[test]
    fn nested_multiparts_and_attached_messages() {
        let msg = [
            "Subject: x",                                          // Primary
            "Content-Type: multipart/mixed;",                      // Primary
            "\tboundary=\"outer\"",                                // Primary+
            "",                                                    // E
            "preamble",                                            // B
            "--outer",                                             // B
            "Content-Type: multipart/alternative; boundary=inner", // Multipart
            "",                                                    // E
            "--inner",                                             // B
            "Content-Type: text/plain",                            // Multipart
            "",                                                    // E
            "hello",                                               // B
            "--inner--",                                           // B
            "--outer",                                             // B
            "Content-Type: message/rfc822",                        // Multipart
            "",                                                    // E
            "Subject: attached",                                   // Nested
            "",                                                    // E
            "attached body",                                       // B
            "--outer--",                                           // B
            "epilogue --outer",                                    // B
        ];
        assert_eq!(
            walk(&msg),
            [
                "Primary",
                "Primary",
                "Primary+",
                "E",
                "B",
                "B",
                "Multipart",
                "E",
                "B",
                "Multipart",
                "E",
                "B",
                "B",
                "B",
                "Multipart",
                "E",
                "Nested",
                "E",
                "B",
                "B",
                "B"
            ]
        );
    }

    #[test]
    fn a_boundary_of_an_outer_part_closes_the_inner_one() {
        let msg = [
            "Content-Type: multipart/mixed; boundary=a",
            "",
            "--a",
            "Content-Type: multipart/mixed; boundary=b",
            "",
            "--b",
            "",
            "text",
            "--a",
            "X-Part: two",
            "",
        ];
        assert_eq!(
            walk(&msg),
            [
                "Primary",
                "E",
                "B",
                "Multipart",
                "E",
                "B",
                "E",
                "B",
                "B",
                "Multipart",
                "E"
            ]
        );
    }

    #[test]
    fn digest_parts_default_to_messages_and_plain_text_has_no_parts() {
        let msg = [
            "Content-Type: multipart/digest; boundary=\"d\"",
            "",
            "--d",
            "",
            "Subject: digested",
        ];
        assert_eq!(walk(&msg), ["Primary", "E", "B", "E", "Nested"]);
        let msg = ["Subject: x", "not a header line", "--d", "X: y"];
        assert_eq!(walk(&msg), ["Primary", "B", "B", "B"]);
    }

    #[test]
    fn content_type_tokens() {
        let t: Vec<Token> = Tokens {
            s: b" multipart/mixed (comment (nested)); boundary = \"a \\\"b\" ",
        }
        .collect();
        assert_eq!(
            t,
            [
                Token::Word(b"multipart".to_vec()),
                Token::Special(b'/'),
                Token::Word(b"mixed".to_vec()),
                Token::Special(b';'),
                Token::Word(b"boundary".to_vec()),
                Token::Special(b'='),
                Token::Quoted(b"a \"b".to_vec()),
            ]
        );
    }

    #[test]
    fn body_offsets_restart_per_part() {
        let mut m = Mime::new();
        m.header(b"Content-Type: multipart/mixed; boundary=x");
        m.end_of_headers();
        assert_eq!(m.body_line(b"12345", false), 0);
        assert_eq!(m.body_line(b"--x", false), 6);
        m.end_of_headers();
        assert_eq!(m.body_line(b"abc", false), 0);
        assert_eq!(m.body_line(b"def", false), 4);
    }
}
