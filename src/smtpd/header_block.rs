//! The end of the primary header block, sans-IO: what Postfix's cleanup
//! does with a message whose headers do not end in an empty line.
//!
//! The content (after smtpd's own Received header, LF line ends, as the
//! DATA reader stores it) streams through [`HeaderBlock::feed`]. While in
//! the primary headers, each line is looked at:
//!
//! - a header line (Postfix's `is_header`: a name of printable ASCII
//!   without `:`, optional blanks, then `:`), or a continuation line (it
//!   starts with a blank and follows a header line) passes;
//! - the empty line ends the headers;
//! - anything else (`This first line has no colon`, a blank-led first
//!   line, a stray line between headers) ends the headers too: an empty
//!   line is inserted before it, so it becomes the first body line and is
//!   never read as a header or as a continuation of the Received header
//!   (Postfix's mime_state: "garbage in primary header").
//!
//! After the headers every byte passes as it came. Only the start of a
//! line is held back, and at most [`NAME_LIMIT`] bytes of it (a longer
//! name is no header: Postfix looks at the first 2048-byte record of a
//! line), so memory is bounded whatever the input. The output is the input
//! with at most one `\n` added.

use crate::wire::header::is_name_byte;

/// Longest header name (with its blanks) looked for before a line is
/// judged not to be a header.
pub(crate) const NAME_LIMIT: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a header-block line; `after_header`: a header line
    /// came before (so a blank-led line continues it).
    LineStart { after_header: bool },
    /// Reading what may be a header name (held in `pending`).
    Name,
    /// A name followed by blanks (held in `pending`): only `:` may come.
    NameBlanks,
    /// Inside a header line: passes to its LF.
    Header,
    /// After the header block: everything passes.
    Body,
}

/// The primary header block's end; see the module documentation.
#[derive(Clone, Debug)]
pub struct HeaderBlock {
    state: State,
    pending: Vec<u8>,
    inserted: bool,
}

impl Default for HeaderBlock {
    fn default() -> Self {
        HeaderBlock::new()
    }
}

impl HeaderBlock {
    /// A filter at the start of the client's content (after the Received
    /// header, so a blank-led first line is not a continuation).
    pub fn new() -> HeaderBlock {
        HeaderBlock {
            state: State::LineStart {
                after_header: false,
            },
            pending: Vec::new(),
            inserted: false,
        }
    }

    /// Passes `input` on to `sink` (in pieces, never empty), with an empty
    /// line inserted where the headers end without one.
    pub fn feed(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Body => {
                    sink(&input[i..]);
                    return;
                }
                State::Header => match memchr::memchr(b'\n', &input[i..]) {
                    Some(lf) => {
                        sink(&input[i..=i + lf]);
                        i += lf + 1;
                        self.state = State::LineStart { after_header: true };
                    }
                    None => {
                        sink(&input[i..]);
                        return;
                    }
                },
                State::LineStart { after_header } => match input[i] {
                    b'\n' => self.state = State::Body,
                    b' ' | b'\t' if after_header => self.state = State::Header,
                    b if is_name_byte(b) => self.state = State::Name,
                    _ => self.garbage(sink),
                },
                State::Name | State::NameBlanks => {
                    let b = input[i];
                    if b == b':' {
                        self.pending.push(b);
                        i += 1;
                        sink(&std::mem::take(&mut self.pending));
                        self.state = State::Header;
                    } else if b == b' ' || b == b'\t' {
                        self.pending.push(b);
                        i += 1;
                        self.state = State::NameBlanks;
                    } else if is_name_byte(b) && self.state == State::Name {
                        self.pending.push(b);
                        i += 1;
                    } else {
                        self.garbage(sink);
                    }
                    if self.pending.len() > NAME_LIMIT {
                        self.garbage(sink);
                    }
                }
            }
        }
    }

    /// The data ended: whatever is held back goes out as it came.
    pub fn finish(&mut self, sink: &mut impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            sink(&std::mem::take(&mut self.pending));
        }
        self.state = State::Body;
    }

    /// An empty line was inserted.
    #[cfg(test)]
    pub(crate) fn inserted(&self) -> bool {
        self.inserted
    }

    /// The line being read is no header: end the headers before it.
    fn garbage(&mut self, sink: &mut impl FnMut(&[u8])) {
        sink(b"\n");
        self.inserted = true;
        if !self.pending.is_empty() {
            sink(&std::mem::take(&mut self.pending));
        }
        self.state = State::Body;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut h = HeaderBlock::new();
        let mut out = Vec::new();
        for c in chunks {
            h.feed(c, &mut |b: &[u8]| {
                assert!(!b.is_empty());
                out.extend_from_slice(b);
            });
        }
        h.finish(&mut |b: &[u8]| out.extend_from_slice(b));
        out
    }

    fn whole(input: &[u8]) -> Vec<u8> {
        let expected = run(&[input]);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(run(&[a, b]), expected, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes), expected);
        expected
    }

    #[test]
    fn proper_messages_pass_unchanged() {
        for m in [
            &b"Subject: x\nFrom: a@b\n\nbody\nNo colon: here\n"[..],
            b"Subject: folded\n  continued\n\tagain\n\n",
            b"X-Odd-Name!#$%: v\n\nb\n",
            b"Subject : obsolete blanks before the colon\n\nb\n",
            b"Subject:\n\n",
            b"\nbody only\n",
            b"",
            b"Subject: no body at all\n",
        ] {
            assert_eq!(whole(m), m, "{:?}", String::from_utf8_lossy(m));
        }
    }

    #[test]
    fn a_first_line_without_colon_becomes_the_first_body_line() {
        assert_eq!(
            whole(b"This first line has no colon\nSecond line\n"),
            b"\nThis first line has no colon\nSecond line\n"
        );
        let mut h = HeaderBlock::new();
        h.feed(b"no colon\n", &mut |_: &[u8]| {});
        assert!(h.inserted());
    }

    #[test]
    fn garbage_anywhere_in_the_headers_ends_them() {
        assert_eq!(
            whole(b"Subject: x\nstray line\nTo: y\n\nbody\n"),
            b"Subject: x\n\nstray line\nTo: y\n\nbody\n"
        );
        // A blank-led first line is not a continuation of Received.
        assert_eq!(whole(b" indented\nx\n"), b"\n indented\nx\n");
        // A name with blanks inside, 8-bit or control bytes, a colon first.
        for (m, out) in [
            (&b"Two words: x\n"[..], &b"\nTwo words: x\n"[..]),
            (b"N\xc3\xa4me: x\n", b"\nN\xc3\xa4me: x\n"),
            (b": x\n", b"\n: x\n"),
            (b"From someone Mon Jan 1\n", b"\nFrom someone Mon Jan 1\n"),
            (b"Subject\n\nb\n", b"\nSubject\n\nb\n"),
        ] {
            assert_eq!(whole(m), out, "{:?}", String::from_utf8_lossy(m));
        }
    }

    #[test]
    fn a_long_name_is_no_header_and_memory_stays_bounded() {
        let mut h = HeaderBlock::new();
        let mut out = 0usize;
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..3 {
            h.feed(&chunk, &mut |b: &[u8]| out += b.len());
            assert!(h.pending.len() <= NAME_LIMIT);
        }
        h.feed(b"\n", &mut |b: &[u8]| out += b.len());
        assert_eq!(out, 3 << 20 | 2);
        assert!(h.inserted());
        // A long header line streams through.
        let mut long = b"X-Long: ".to_vec();
        long.extend(std::iter::repeat_n(b'y', 100_000));
        long.extend_from_slice(b"\n\nbody\n");
        assert_eq!(whole(&long[..]), long);
    }

    proptest! {
        #[test]
        fn adds_at_most_one_newline_and_keeps_the_input(input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b':'), Just(b' '), Just(b'a'), any::<u8>()], 0..60), cut in any::<proptest::sample::Index>()) {
            let out = run(&[&input]);
            let (a, b) = input.split_at(cut.index(input.len() + 1));
            prop_assert_eq!(run(&[a, b]), out.clone());
            if out.len() == input.len() {
                prop_assert_eq!(&out, &input);
            } else {
                prop_assert_eq!(out.len(), input.len() + 1);
                // The inserted LF is at a line start; the rest is the input.
                let at = (0..out.len()).find(|&k| out[k] != *input.get(k).unwrap_or(&0)).unwrap_or(input.len());
                let mut back = out.clone();
                let removed = back.remove(at.min(out.len() - 1));
                prop_assert_eq!(removed, b'\n');
                prop_assert_eq!(back, input);
            }
        }
    }
}
