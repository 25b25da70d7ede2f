//! Command-line framing, sans-IO: finds the next SMTP command line in a
//! buffer of received bytes.
//!
//! A line ends at CRLF or, as Postfix accepts, at a bare LF; the caller
//! learns which ([`LineEnd`]) so that `smtpd_forbid_bare_newline = reject`
//! can refuse the bare form. A CR not followed by LF is part of the line.
//!
//! How the caller uses [`next_line`] (`buf` is its receive buffer):
//!
//! ```text
//! loop {
//!     if skipping {                       // inside an over-long line
//!         match skip_long_line(&buf) {
//!             // One reply, once the line has ended (a client that never
//!             // ends it gets only the timeout).
//!             Some(n) => { buf.drain(..n); skipping = false; reply "command too long" }
//!             None => { buf.clear(); read more; continue }
//!         }
//!     }
//!     match next_line(&buf, max_len) {
//!         Framed::Line { line, end, consumed } => { handle(line, end); buf.drain(..consumed) }
//!         Framed::Incomplete => read more (append to buf),
//!         Framed::TooLong { consumed: Some(n) } => { buf.drain(..n); reply "command too long" }
//!         Framed::TooLong { consumed: None } => { buf.clear(); skipping = true }
//!     }
//! }
//! ```
//!
//! `TooLong { consumed: None }` comes as soon as `buf` holds more than
//! `max_len` bytes of one line without its end, so the buffer never has to
//! grow past `max_len + 2` bytes plus one read.

/// How a line was terminated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnd {
    CrLf,
    /// A LF without a CR before it.
    BareLf,
}

/// The result of looking for a line in a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// A complete line, without its terminator; drop `consumed` bytes from
    /// the front of the buffer afterwards.
    Line {
        line: &'a [u8],
        end: LineEnd,
        consumed: usize,
    },
    /// No line end yet and not too long: read more.
    Incomplete,
    /// The line is longer than `max_len`. `Some(n)`: its end is in the
    /// buffer, drop `n` bytes and go on. `None`: its end is not there yet;
    /// drop the whole buffer and skip input up to the next LF with
    /// [`skip_long_line`].
    TooLong { consumed: Option<usize> },
}

/// Finds the first line in `buf`. `max_len` is the longest line accepted,
/// not counting its CRLF or LF.
pub fn next_line(buf: &[u8], max_len: usize) -> Framed<'_> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let consumed = lf + 1;
            let (line, end) = match buf[..lf].strip_suffix(b"\r") {
                Some(line) => (line, LineEnd::CrLf),
                None => (&buf[..lf], LineEnd::BareLf),
            };
            if line.len() > max_len {
                Framed::TooLong {
                    consumed: Some(consumed),
                }
            } else {
                Framed::Line {
                    line,
                    end,
                    consumed,
                }
            }
        }
        None => {
            // A trailing CR may still become the CR of a CRLF.
            let content = buf.strip_suffix(b"\r").unwrap_or(buf);
            if content.len() > max_len {
                Framed::TooLong { consumed: None }
            } else {
                Framed::Incomplete
            }
        }
    }
}

/// While skipping the rest of an over-long line: how many bytes of `buf`
/// to drop to be past its end (the next LF), or `None` if the end is not in
/// `buf` (drop all of it and keep skipping).
pub fn skip_long_line(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n').map(|lf| lf + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crlf_line() {
        assert_eq!(
            next_line(b"QUIT\r\nNOOP\r\n", 10),
            Framed::Line {
                line: b"QUIT",
                end: LineEnd::CrLf,
                consumed: 6
            }
        );
    }

    #[test]
    fn bare_lf_line() {
        assert_eq!(
            next_line(b"QUIT\nNOOP", 10),
            Framed::Line {
                line: b"QUIT",
                end: LineEnd::BareLf,
                consumed: 5
            }
        );
    }

    #[test]
    fn bare_cr_is_data() {
        assert_eq!(
            next_line(b"a\rb\r\r\n", 10),
            Framed::Line {
                line: b"a\rb\r",
                end: LineEnd::CrLf,
                consumed: 6
            }
        );
        assert_eq!(next_line(b"a\rb", 10), Framed::Incomplete);
    }

    #[test]
    fn empty_lines() {
        assert_eq!(
            next_line(b"\r\n", 0),
            Framed::Line {
                line: b"",
                end: LineEnd::CrLf,
                consumed: 2
            }
        );
        assert_eq!(next_line(b"", 0), Framed::Incomplete);
        assert_eq!(next_line(b"\r", 0), Framed::Incomplete);
    }

    #[test]
    fn length_limit_is_exclusive_of_the_terminator() {
        assert!(matches!(next_line(b"abcd\r\n", 4), Framed::Line { .. }));
        assert_eq!(next_line(b"abcd\r", 4), Framed::Incomplete);
        assert_eq!(next_line(b"abcd", 4), Framed::Incomplete);
        assert_eq!(next_line(b"abcde", 4), Framed::TooLong { consumed: None });
        assert_eq!(next_line(b"abcdx\r", 4), Framed::TooLong { consumed: None });
        assert_eq!(
            next_line(b"abcde\r\nQUIT\r\n", 4),
            Framed::TooLong { consumed: Some(7) }
        );
    }

    #[test]
    fn skipping() {
        assert_eq!(skip_long_line(b"xxxx"), None);
        assert_eq!(skip_long_line(b"xx\r\nQUIT\r\n"), Some(4));
    }

    proptest! {
        /// Whatever the buffer, the answer is consistent with it.
        #[test]
        fn framing_is_consistent(buf in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a')], 0..40), max in 0usize..20) {
            match next_line(&buf, max) {
                Framed::Line { line, end, consumed } => {
                    prop_assert!(line.len() <= max);
                    prop_assert!(!line.contains(&b'\n'));
                    let term: &[u8] = if end == LineEnd::CrLf { b"\r\n" } else { b"\n" };
                    let expected = [line, term].concat();
                    prop_assert_eq!(&buf[..consumed], expected.as_slice());
                }
                Framed::Incomplete => {
                    prop_assert!(!buf.contains(&b'\n'));
                    prop_assert!(buf.len() <= max + 1);
                }
                Framed::TooLong { consumed: Some(n) } => {
                    prop_assert_eq!(buf[n - 1], b'\n');
                    prop_assert!(!buf[..n - 1].contains(&b'\n'));
                }
                Framed::TooLong { consumed: None } => prop_assert!(!buf.contains(&b'\n')),
            }
        }
    }
}
