//! The stored form of a message (LF line ends, as the queue keeps it) as
//! SMTP DATA: CRLF line ends, every line that starts with `.` dot-stuffed,
//! then `.` CRLF; streamed in pieces of any size. smtpd's DATA reader
//! (`crate::smtpd`) is the inverse.
//!
//! The one choice is what a CR just before an LF is, since the stored form
//! may hold one (a peer's bare CR, a file given to `sendmail`):
//! [`StoredCr::Data`] keeps it as data (`a\r\n` goes as `a\r\r\n`, and
//! smtpd stores `a\r` again), as postern's own local clients (`sendmail`
//! on submit.sock, smtpd's pickup of the drop directory) always sent it;
//! [`StoredCr::LineEnd`] takes it as part of the line end (`a\r\n` goes as
//! `a\r\n`, not doubled), as the smtp client sends mail to other hosts.
//!
//! [`DataWriter::message`] makes the same line ends without the dots: the
//! message as the receiver stores it, which is what a DKIM signature
//! covers (`crate::dkim`).

/// The stored form of text given with CRLF line ends (a milter's new
/// body, a message file a user gives `policy test`): CR LF as LF, a lone
/// CR kept.
pub(crate) fn lf_form(crlf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(crlf.len());
    for (i, &b) in crlf.iter().enumerate() {
        if b == b'\r' && crlf.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

/// What a CR just before an LF of the stored form is; see the module
/// documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoredCr {
    Data,
    LineEnd,
}

/// Stored form in, DATA form out; see the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct DataWriter {
    cr: StoredCr,
    /// Dot-stuffing and the end-of-data line: SMTP's DATA form.
    dots: bool,
    line_start: bool,
    /// The last byte written was a CR (it may be followed by the LF in the
    /// next piece).
    after_cr: bool,
}

impl Default for DataWriter {
    fn default() -> Self {
        DataWriter::new()
    }
}

impl DataWriter {
    /// A writer for postern's local clients ([`StoredCr::Data`]).
    pub(crate) fn new() -> DataWriter {
        DataWriter::with(StoredCr::Data)
    }

    pub(crate) fn with(cr: StoredCr) -> DataWriter {
        DataWriter {
            cr,
            dots: true,
            line_start: true,
            after_cr: false,
        }
    }

    /// The line ends of [`DataWriter::with`] alone: no dot-stuffing, and
    /// [`DataWriter::finish`] ends the last line without the `.` line.
    pub(crate) fn message(cr: StoredCr) -> DataWriter {
        DataWriter {
            dots: false,
            ..DataWriter::with(cr)
        }
    }

    /// Append the DATA form of `content` to `out`.
    pub(crate) fn write(&mut self, content: &[u8], out: &mut Vec<u8>) {
        out.reserve(content.len() + content.len() / 32 + 8);
        for line in content.split_inclusive(|b| *b == b'\n') {
            if self.dots && self.line_start && line.first() == Some(&b'.') {
                out.push(b'.');
            }
            match line.strip_suffix(b"\n") {
                Some(text) => {
                    let cr_before = match text.last() {
                        Some(&b) => b == b'\r',
                        None => self.after_cr,
                    };
                    out.extend_from_slice(text);
                    if cr_before && self.cr == StoredCr::LineEnd {
                        out.push(b'\n');
                    } else {
                        out.extend_from_slice(b"\r\n");
                    }
                    self.line_start = true;
                    self.after_cr = false;
                }
                None => {
                    out.extend_from_slice(line);
                    self.line_start = false;
                    self.after_cr = line.last() == Some(&b'\r');
                }
            }
        }
    }

    /// End the data: an unfinished last line gets its line end, then `.`
    /// CRLF (not in the [`DataWriter::message`] form). The writer is ready
    /// for another message.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.line_start {
            let cr_ends = self.after_cr && self.cr == StoredCr::LineEnd;
            out.extend_from_slice(if cr_ends { b"\n" } else { b"\r\n" });
        }
        if self.dots {
            out.extend_from_slice(b".\r\n");
        }
        *self = DataWriter {
            line_start: true,
            after_cr: false,
            ..self.clone()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn whole(cr: StoredCr, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = DataWriter::with(cr);
        w.write(content, &mut out);
        w.finish(&mut out);
        out
    }

    #[test]
    fn line_ends_and_dots() {
        for cr in [StoredCr::Data, StoredCr::LineEnd] {
            assert_eq!(whole(cr, b""), b".\r\n");
            assert_eq!(whole(cr, b"a\nb\n"), b"a\r\nb\r\n.\r\n");
            assert_eq!(whole(cr, b"no end"), b"no end\r\n.\r\n");
            assert_eq!(
                whole(cr, b".\n..x\n.y\nmid.dle\n."),
                b"..\r\n...x\r\n..y\r\nmid.dle\r\n..\r\n.\r\n"
            );
        }
        // A CR before an LF: data, or kept as the line end's.
        assert_eq!(whole(StoredCr::Data, b"a\r\nb\r"), b"a\r\r\nb\r\r\n.\r\n");
        assert_eq!(whole(StoredCr::LineEnd, b"a\r\nb\r"), b"a\r\nb\r\n.\r\n");
    }

    /// The byte-at-a-time definition of the smtp client's form, which the
    /// line-at-a-time writer must match.
    fn line_end_model(content: &[u8]) -> Vec<u8> {
        let (mut out, mut line_start, mut after_cr) = (Vec::new(), true, false);
        for &b in content {
            if line_start && b == b'.' {
                out.push(b'.');
            }
            if b == b'\n' && !after_cr {
                out.push(b'\r');
            }
            out.push(b);
            line_start = b == b'\n';
            after_cr = b == b'\r';
        }
        if !line_start {
            out.extend_from_slice(if after_cr { b"\n" } else { b"\r\n" });
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    /// smtpd's reading of DATA: a dot at the start of a line removed.
    fn unstuff(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        let mut start = true;
        for &b in data {
            if !(start && b == b'.') {
                out.push(b);
            }
            start = b == b'\n';
        }
        out
    }

    proptest! {
        #[test]
        fn chunking_does_not_matter(content in proptest::collection::vec(
            proptest::sample::select(vec![b'a', b'.', b'\n', b'\r']), 0..200),
            cut in 0usize..200)
        {
            let cut = cut.min(content.len());
            for cr in [StoredCr::Data, StoredCr::LineEnd] {
                let mut out = Vec::new();
                let mut w = DataWriter::with(cr);
                w.write(&content[..cut], &mut out);
                w.write(&content[cut..], &mut out);
                w.finish(&mut out);
                prop_assert_eq!(&out, &whole(cr, &content));
                // The terminator appears only at the end.
                let body = &out[..out.len() - 3];
                prop_assert!(!body.windows(5).any(|w| w == b"\r\n.\r\n"));
                prop_assert!(!body.starts_with(b".\r\n"));
                // The message form is the DATA form with the dots undone,
                // as the receiver stores it.
                let mut message = Vec::new();
                let mut w = DataWriter::message(cr);
                w.write(&content[..cut], &mut message);
                w.write(&content[cut..], &mut message);
                w.finish(&mut message);
                prop_assert_eq!(&message, &unstuff(body));
            }
            prop_assert_eq!(whole(StoredCr::LineEnd, &content), line_end_model(&content));
        }
    }
}
