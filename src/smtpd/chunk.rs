//! The BDAT reader, sans-IO (RFC 3030 CHUNKING): turns the octets of a
//! message's chunks into the content as postern stores it, the same
//! stored form the DATA reader ([`super::data`]) gives for the same
//! message sent with DATA, so that everything after it (the header
//! block's end, the header and body checks, the size limit, the store) is
//! shared.
//!
//! - A chunk is counted octets, read by the caller to its last one:
//!   nothing inside ends the message (a line holding `.` is a line
//!   holding `.`, `CRLF . CRLF` is content), and there is no
//!   dot-stuffing to undo.
//! - Line ends as in DATA's stored form: CRLF becomes LF; a bare LF ends
//!   a line too, and is noted ([`ChunkReader::saw_bare_lf`], for
//!   `smtpd.forbid_bare_newline = reject`); a CR not followed by LF is
//!   data. A CR that ends one chunk and the LF that starts the next are
//!   one CRLF.
//! - The message ends with its LAST chunk ([`ChunkReader::finish`]): a
//!   last line without its line end gets one, as it would have had over
//!   DATA (where `CRLF . CRLF` ends the data, so the last line always
//!   ends).
//!
//! Memory is bounded whatever the input: the reader keeps two flags and
//! its counts, never a line. The output of a feed is never longer than its
//! input plus one CR held back from the chunk before.
//!
//! Size: as the DATA reader's. [`ChunkReader::size`] counts the stored
//! bytes, [`ChunkReader::wire_size`] Postfix's count for
//! `message_size_limit` (each line its length + 2), so a message is too
//! big over BDAT exactly when it is over DATA.

use super::data::Counts;

/// Reads one message's BDAT chunks. Create one per message (at its first
/// chunk).
#[derive(Clone, Debug, Default)]
pub struct ChunkReader {
    /// The last byte fed was a CR (not yet known to start a CRLF).
    cr: bool,
    /// Bytes were stored since the last line end.
    open_line: bool,
    counts: Counts,
}

impl ChunkReader {
    /// A reader for one message, the same for every
    /// `smtpd.forbid_bare_newline` mode: the caller acts on
    /// [`ChunkReader::saw_bare_lf`].
    pub fn new() -> ChunkReader {
        ChunkReader::default()
    }

    /// Consumes `input` (chunk octets, in pieces of any size), passing the
    /// stored form to `sink` (in pieces, never empty).
    pub fn feed(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) {
        let mut rest = input;
        if self.cr {
            let Some((&first, after)) = rest.split_first() else {
                return;
            };
            self.cr = false;
            if first == b'\n' {
                rest = after;
                self.end_line(sink, true);
            } else {
                self.emit(sink, b"\r");
            }
        }
        while let Some(k) = memchr::memchr2(b'\r', b'\n', rest) {
            self.emit(sink, &rest[..k]);
            if rest[k] == b'\n' {
                self.end_line(sink, false);
                rest = &rest[k + 1..];
                continue;
            }
            match rest.get(k + 1) {
                None => {
                    self.cr = true;
                    return;
                }
                Some(b'\n') => {
                    self.end_line(sink, true);
                    rest = &rest[k + 2..];
                }
                Some(_) => {
                    self.emit(sink, b"\r");
                    rest = &rest[k + 1..];
                }
            }
        }
        self.emit(sink, rest);
    }

    /// The end of the LAST chunk: a CR held back is data, and an open last
    /// line gets its line end.
    pub fn finish(&mut self, sink: &mut impl FnMut(&[u8])) {
        if std::mem::take(&mut self.cr) {
            self.emit(sink, b"\r");
        }
        if self.open_line {
            self.end_line(sink, true);
        }
    }

    fn emit(&mut self, sink: &mut impl FnMut(&[u8]), bytes: &[u8]) {
        self.open_line |= self.counts.emit(sink, bytes);
    }

    fn end_line(&mut self, sink: &mut impl FnMut(&[u8]), crlf: bool) {
        self.counts.end_line(sink, crlf);
        self.open_line = false;
    }

    /// Bytes of stored content so far (LF line ends).
    pub fn size(&self) -> u64 {
        self.counts.size()
    }

    /// Postfix's count for `message_size_limit`, as
    /// [`super::data::DataReader::wire_size`]: each line its length + 2; a
    /// line still open counts its bytes so far.
    pub fn wire_size(&self) -> u64 {
        self.counts.wire_size()
    }

    /// A bare LF ended some line of the content.
    pub fn saw_bare_lf(&self) -> bool {
        self.counts.saw_bare_lf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtpd::data::tests::{cut_at, small_bytes};
    use crate::smtpd::data::{DataReader, Feed};
    use proptest::prelude::*;

    /// Feeds `chunks` in turn and finishes; the output, the wire size and
    /// whether a bare LF was seen.
    fn run(chunks: &[&[u8]]) -> (Vec<u8>, u64, bool) {
        let mut r = ChunkReader::new();
        let mut out = Vec::new();
        for chunk in chunks {
            r.feed(chunk, &mut |b: &[u8]| {
                assert!(!b.is_empty());
                out.extend_from_slice(b)
            });
        }
        r.finish(&mut |b: &[u8]| out.extend_from_slice(b));
        assert_eq!(r.size(), out.len() as u64);
        (out, r.wire_size(), r.saw_bare_lf())
    }

    /// Every way of cutting `input` in two, and byte by byte, gives the
    /// same as feeding it whole.
    fn check_all_splits(input: &[u8]) -> (Vec<u8>, u64, bool) {
        let expected = run(&[input]);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(run(&[a, b]), expected, "cut at {cut} of {input:?}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes), expected, "byte by byte: {input:?}");
        expected
    }

    /// The same message sent with DATA: every line that starts with `.`
    /// dot-stuffed, an open last line ended, then `.` CRLF; what the DATA
    /// reader stores of it.
    fn over_data(content: &[u8]) -> (Vec<u8>, u64, bool) {
        let mut wire = Vec::new();
        for line in content.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(b".") {
                wire.push(b'.');
            }
            wire.extend_from_slice(line);
        }
        if !wire.is_empty() && !wire.ends_with(b"\n") {
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n");
        let mut r = DataReader::new();
        let mut out = Vec::new();
        let fed = r.feed(&wire, &mut |b: &[u8]| out.extend_from_slice(b));
        assert_eq!(
            fed,
            Feed::Done {
                consumed: wire.len()
            },
            "{wire:?}"
        );
        (out, r.wire_size(), r.saw_bare_lf())
    }

    #[test]
    fn the_end_of_data_is_content() {
        let (out, wire, bare) = check_all_splits(b"Subject: x\r\n\r\na\r\n.\r\nb\r\n");
        assert_eq!(out, b"Subject: x\n\na\n.\nb\n");
        assert_eq!(wire, 23);
        assert!(!bare);
    }

    #[test]
    fn leading_dots_are_kept() {
        let (out, ..) = check_all_splits(b"..\r\n.x\r\n.\r\n");
        assert_eq!(out, b"..\n.x\n.\n");
    }

    #[test]
    fn line_ends_are_stored_as_data_stores_them() {
        for (input, stored, bare) in [
            (&b"a\r\nb\r\n"[..], &b"a\nb\n"[..], false),
            (b"a\nb\r\n", b"a\nb\n", true),
            (b"a\rb\r\n", b"a\rb\n", false),
            (b"a\r\r\n", b"a\r\n", false),
            (b"a\r", b"a\r\n", false),
            (b"open", b"open\n", false),
            (b"", b"", false),
            (b"\r\n", b"\n", false),
        ] {
            let (out, _, saw) = check_all_splits(input);
            assert_eq!(out, stored, "{input:?}");
            assert_eq!(saw, bare, "{input:?}");
            assert_eq!(check_all_splits(input), over_data(input), "{input:?}");
        }
    }

    #[test]
    fn a_crlf_across_chunks_is_one_line_end() {
        assert_eq!(run(&[b"a\r", b"\nb\r\n"]).0, b"a\nb\n");
        assert_eq!(run(&[b"a\r", b"", b"\nb"]).0, b"a\nb\n");
        assert_eq!(run(&[b"a\r", b"b"]).0, b"a\rb\n");
    }

    #[test]
    fn a_huge_line_streams_through() {
        let mut r = ChunkReader::new();
        let chunk = vec![b'x'; 1 << 20];
        let mut biggest = 0;
        for _ in 0..50 {
            r.feed(&chunk, &mut |b: &[u8]| biggest = biggest.max(b.len()));
        }
        r.finish(&mut |_: &[u8]| {});
        assert_eq!(r.size(), (50 << 20) + 1);
        assert!(biggest <= 1 << 20);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Where the chunks are cut never changes what is stored.
        #[test]
        fn chunking_invariance(input in small_bytes(64), cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..6)) {
            let expected = run(&[&input]);
            prop_assert_eq!(run(&cut_at(&input, &cuts)), expected.clone());
            prop_assert!(expected.0.len() <= input.len() + 1);
        }

        /// A message stored from BDAT is the one stored from DATA: the
        /// same bytes, the same size for the limit, the same bare LF
        /// verdict (a message whose last line ends in a bare LF cannot be
        /// sent with DATA: its final dot would not end it).
        #[test]
        fn same_as_data(input in small_bytes(80)) {
            let bare_lf_last = input.ends_with(b"\n") && !input.ends_with(b"\r\n");
            prop_assume!(!bare_lf_last);
            prop_assert_eq!(run(&[&input]), over_data(&input));
        }
    }
}
