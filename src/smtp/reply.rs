//! SMTP server replies as the client reads them (RFC 5321 section 4.2),
//! parsed sans-IO: bytes in, a [`Reply`] or `Incomplete` out.
//!
//! Nothing the remote server sends is trusted: a reply line keeps at most
//! [`MAX_LINE`] bytes (the rest of a longer line is skipped, as Postfix's
//! smtp client does), a line that has not ended after [`MAX_LINE_WAIT`]
//! bytes and a reply of more than [`MAX_LINES`] lines are errors (so a
//! reply never needs more than about 400 KiB of buffer), and
//! control characters and invalid UTF-8 become `?` (Postfix's
//! `printable()`), so the text can go into log lines and DSNs as it is.
//! The code is taken from the last line and must be 200 to 599; the
//! enhanced status code (RFC 3463 / RFC 2034) from the last line when it
//! is valid and of the reply's class, else derived (`2.0.0`, `4.0.0`,
//! `5.0.0`), as Postfix does.

use crate::outcome::{Enhanced, code};

/// Bytes of a reply line kept (RFC 5321's 512, with the code).
pub const MAX_LINE: usize = 512;
/// Bytes read without a line end before the reply is refused.
pub const MAX_LINE_WAIT: usize = 4096;
/// Lines of one reply, at most.
pub const MAX_LINES: usize = 100;

/// One complete reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    /// Each line as received (`250-PIPELINING`), censored and cut, without
    /// its line end.
    lines: Vec<String>,
}

/// What [`parse_reply`] found at the start of the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A reply and the number of bytes it took.
    Complete(Reply, usize),
    /// More bytes are needed.
    Incomplete,
}

/// A reply the client cannot use: the server is not speaking SMTP.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_LINE_WAIT} bytes")]
    LineTooLong,
    #[error("reply longer than {MAX_LINES} lines")]
    TooManyLines,
    #[error("malformed reply line: {0}")]
    Malformed(String),
}

/// Parse one reply from the start of `buf`. Lines end in CRLF (a bare LF
/// is accepted too).
pub fn parse_reply(buf: &[u8]) -> Result<Parsed, ReplyError> {
    let mut lines = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        let end = rest
            .iter()
            .take(MAX_LINE_WAIT + 1)
            .position(|&b| b == b'\n');
        let Some(end) = end else {
            if rest.len() > MAX_LINE_WAIT {
                return Err(ReplyError::LineTooLong);
            }
            return Ok(Parsed::Incomplete);
        };
        let raw = &rest[..end];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos += end + 1;
        let (code, last) = line_code(raw)?;
        if lines.len() == MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
        lines.push(censor(raw));
        if last {
            return Ok(Parsed::Complete(Reply { code, lines }, pos));
        }
    }
}

/// The code of a reply line and whether it is the last line.
fn line_code(raw: &[u8]) -> Result<(u16, bool), ReplyError> {
    let malformed = || ReplyError::Malformed(censor(raw));
    let digits = raw.get(..3).ok_or_else(malformed)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(malformed());
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(200..=599).contains(&code) {
        return Err(malformed());
    }
    match raw.get(3) {
        None | Some(b' ') => Ok((code, true)),
        Some(b'-') => Ok((code, false)),
        Some(_) => Err(malformed()),
    }
}

/// Printable text of at most [`MAX_LINE`] bytes: control characters and
/// invalid UTF-8 become `?`.
fn censor(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_LINE));
    for c in String::from_utf8_lossy(raw).chars() {
        let c = if c.is_control() || c == char::REPLACEMENT_CHARACTER {
            '?'
        } else {
            c
        };
        if out.len() + c.len_utf8() > MAX_LINE {
            break;
        }
        out.push(c);
    }
    out
}

impl Reply {
    pub fn code(&self) -> u16 {
        self.code
    }

    pub(crate) fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    pub(crate) fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub(crate) fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The lines as received, each with its code.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The text of each line, after the code and its separator.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|l| l.get(4..).unwrap_or(""))
    }

    /// The whole reply on one line, as Postfix reports it: the lines (with
    /// their codes) joined by spaces, `550-5.7.1 first 550 5.7.1 second`.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// The enhanced status code: the last line's when it is valid and of
    /// the reply's class, else `X.0.0` (`2.0.0` for a 3xx reply too).
    pub fn dsn(&self) -> Enhanced {
        let (class, derived) = match self.code / 100 {
            4 => (b'4', code::TEMP),
            5 => (b'5', code::PERM),
            _ => (b'2', code::OK),
        };
        let last = self.texts().last().unwrap_or("");
        match enhanced_code(last.trim_start()).and_then(Enhanced::parse) {
            Some(code) if code.class() == class && self.code / 100 != 3 => code,
            _ => derived,
        }
    }
}

/// `class.subject.detail` at the start of `text` (RFC 3463: class 2, 4 or
/// 5, subject and detail of 1 to 3 digits), followed by a space or the end.
pub fn enhanced_code(text: &str) -> Option<&str> {
    let end = text.find(' ').unwrap_or(text.len());
    let code = &text[..end];
    Enhanced::parse(code).map(|_| code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(input: &[u8]) -> (Reply, usize) {
        match parse_reply(input) {
            Ok(Parsed::Complete(r, n)) => (r, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn single_and_multi_line_replies() {
        let (r, n) = complete(b"250 2.0.0 Ok: queued as ABC\r\nnext");
        assert_eq!((r.code(), n), (250, 29));
        assert_eq!(r.text(), "250 2.0.0 Ok: queued as ABC");
        assert_eq!(r.dsn(), "2.0.0");

        let input = b"250-mx.example ESMTP\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";
        let (r, n) = complete(input);
        assert_eq!(n, input.len());
        assert_eq!(
            r.texts().collect::<Vec<_>>(),
            ["mx.example ESMTP", "PIPELINING", "SIZE 1000"]
        );
        assert_eq!(
            r.text(),
            "250-mx.example ESMTP 250-PIPELINING 250 SIZE 1000"
        );
        // A bare code, and a bare LF.
        assert_eq!(complete(b"354\n").0.code(), 354);
    }

    #[test]
    fn partial_input_is_incomplete() {
        for input in [&b""[..], b"25", b"250-a\r\n", b"250-a\r\n250 b"] {
            assert_eq!(parse_reply(input), Ok(Parsed::Incomplete), "{input:?}");
        }
    }

    #[test]
    fn enhanced_codes_from_the_reply_or_derived() {
        let dsn = |s: &str| complete(format!("{s}\r\n").as_bytes()).0.dsn();
        assert_eq!(dsn("550 5.1.1 <b@x>: unknown user"), "5.1.1");
        assert_eq!(dsn("550 unknown user"), "5.0.0");
        assert_eq!(dsn("451 4.7.1 greylisted"), "4.7.1");
        // Of the wrong class, or malformed: derived.
        assert_eq!(dsn("451 5.7.1 confused"), "4.0.0");
        assert_eq!(dsn("550 5.1 short"), "5.0.0");
        assert_eq!(dsn("550 5.1.1000 long"), "5.0.0");
        assert_eq!(dsn("250 ok"), "2.0.0");
        // The last line's counts.
        assert_eq!(dsn("550-5.7.1 a\r\n550 5.7.2 b"), "5.7.2");
    }

    #[test]
    fn garbage_is_an_error() {
        for input in [
            &b"hello\r\n"[..],
            b"2500 x\r\n",
            b"25x\r\n",
            b"199 x\r\n",
            b"600 x\r\n",
        ] {
            assert!(
                matches!(parse_reply(input), Err(ReplyError::Malformed(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn limits_hold() {
        // A long line is cut to MAX_LINE bytes.
        let mut long = b"250 ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 2000));
        long.extend_from_slice(b"\r\n");
        let (r, n) = complete(&long);
        assert_eq!((r.lines()[0].len(), n), (MAX_LINE, long.len()));
        // One that does not end is refused once it passes MAX_LINE_WAIT,
        // and so is one that ends too late.
        let endless = vec![b'2'; MAX_LINE_WAIT + 1];
        assert_eq!(parse_reply(&endless), Err(ReplyError::LineTooLong));
        let mut late = b"250 ".to_vec();
        late.extend(std::iter::repeat_n(b'x', MAX_LINE_WAIT));
        late.extend_from_slice(b"\r\n");
        assert_eq!(parse_reply(&late), Err(ReplyError::LineTooLong));
        // Too many lines.
        let many = "250-x\r\n".repeat(MAX_LINES) + "250 x\r\n";
        assert_eq!(parse_reply(many.as_bytes()), Err(ReplyError::TooManyLines));
        let just = "250-x\r\n".repeat(MAX_LINES - 1) + "250 x\r\n";
        assert_eq!(complete(just.as_bytes()).0.lines().len(), MAX_LINES);
    }

    #[test]
    fn control_characters_and_bad_utf8_are_censored() {
        let (r, _) = complete(b"550 a\x1b[31mb\xff\xfec \xc3\xa9\r\n");
        assert_eq!(r.text(), "550 a?[31mb??c \u{e9}");
    }
}
