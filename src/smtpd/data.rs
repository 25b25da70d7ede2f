//! The DATA reader, sans-IO: turns the bytes a client sends after `354`
//! into the message content as postern stores it, and finds the end of the
//! data. This is where SMTP smuggling is stopped, so the rules are exact
//! (Postfix 3.9, `smtpd_forbid_bare_newline = normalize`):
//!
//! - A line ends at CRLF or at a bare LF. A CR not followed by LF is data.
//! - The stored form ends every line with a single LF (CRLF → LF) and
//!   removes one leading `.` from every line (dot-unstuffing).
//! - The data ends ONLY at `CRLF . CRLF`: a line holding just `.`,
//!   terminated by CRLF, whose preceding line also ended with CRLF (or that
//!   is the first line).
//! - A `.` line terminated by a bare LF, or following a line terminated by a
//!   bare LF, does not end the data: it is dropped (not stored). So
//!   `\n.\n`, `\n.\r\n`, `\r\n.\n` never end the data and `\r.\r` is plain
//!   data; a smuggled "second message" stays inside the first.
//!
//! Memory is bounded whatever the input: the reader keeps a state of a few
//! flags, never a line, and gathers what one feed stores (at most that
//! feed's input) to pass it to the sink at once, so a line of 100 MiB
//! streams through. The output is never longer than the input.
//!
//! In `reject` mode the reader parses the same way; the caller asks
//! [`DataReader::saw_bare_lf`] at the end of data and then replies
//! `550 5.5.2 <myhostname> Error: bare <LF> received` instead of queueing.
//!
//! Size: [`DataReader::size`] counts the stored bytes; Postfix's count for
//! `message_size_limit` (each line its length + 2) is
//! [`DataReader::wire_size`]. Both grow as bytes arrive, so the caller can
//! stop storing as soon as the limit is passed (and keep reading to the end
//! of data, then reply `552 5.3.4 Error: message file too big`).

/// What [`DataReader::feed`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// All of the input was data; the end has not come yet.
    NeedMore,
    /// The end of data: the first `consumed` bytes of this input were data
    /// (up to and including the final `.` CRLF); the rest is the next
    /// pipelined command.
    Done { consumed: usize },
}

/// Where the reader is within the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line: nothing of it seen yet.
    LineStart,
    /// The line so far is a single `.` (consumed, never stored).
    Dot,
    /// The line so far is `.` CR; the CR is held back.
    DotCr,
    /// Inside a line; a CR is held back (it may start a CRLF).
    Cr,
    /// Inside a line, nothing held back.
    Mid,
    /// The end of data was found.
    Done,
}

/// Reads one message's DATA. Create one per DATA command.
#[derive(Clone, Debug)]
pub struct DataReader {
    state: State,
    /// The previous line ended with CRLF (true before the first line).
    prev_crlf: bool,
    counts: Counts,
    /// What one [`DataReader::feed`] stores, gathered to go to the sink
    /// in one piece (a line and its line end were two pieces, each taken
    /// through the header block and the store: a tenth of smtpd's work
    /// per message). Bounded by the input of one feed; kept for the next.
    out: Vec<u8>,
}

/// What the DATA and BDAT readers count of the content they store, and
/// how they store a piece and a line end.
#[derive(Clone, Debug, Default)]
pub(super) struct Counts {
    size: u64,
    lines: u64,
    saw_bare_lf: bool,
}

impl Counts {
    /// Store `bytes` (nothing when empty); true when something was stored.
    pub(super) fn emit(&mut self, sink: &mut impl FnMut(&[u8]), bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return false;
        }
        self.size += bytes.len() as u64;
        sink(bytes);
        true
    }

    /// Store a line end (LF); `crlf`: it came as CRLF.
    pub(super) fn end_line(&mut self, sink: &mut impl FnMut(&[u8]), crlf: bool) {
        self.emit(sink, b"\n");
        self.lines += 1;
        self.saw_bare_lf |= !crlf;
    }

    /// A bare LF was seen where no line end is stored (a dropped `.` line).
    pub(super) fn bare_lf(&mut self) {
        self.saw_bare_lf = true;
    }

    /// Bytes of stored content so far (LF line ends).
    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// Postfix's count for `message_size_limit`: each line its length + 2
    /// (as if CRLF terminated); a line still open counts its bytes so far.
    pub(super) fn wire_size(&self) -> u64 {
        self.size + self.lines
    }

    pub(super) fn saw_bare_lf(&self) -> bool {
        self.saw_bare_lf
    }
}

impl Default for DataReader {
    fn default() -> Self {
        DataReader::new()
    }
}

impl DataReader {
    /// A reader for one message. The same for every
    /// `smtpd.forbid_bare_newline` mode: the caller acts on
    /// [`DataReader::saw_bare_lf`].
    pub fn new() -> DataReader {
        DataReader {
            state: State::LineStart,
            prev_crlf: true,
            counts: Counts::default(),
            out: Vec::new(),
        }
    }

    /// Consumes `input`, passing the stored form of the content to `sink`
    /// (in pieces of any size, never empty). Returns
    /// [`Feed::NeedMore`] when all of `input` was data, or
    /// [`Feed::Done`] with how much of it was. Feeding after `Done` returns
    /// `Done { consumed: 0 }`.
    pub fn feed(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) -> Feed {
        let mut out = std::mem::take(&mut self.out);
        let fed = self.feed_pieces(input, &mut |b: &[u8]| out.extend_from_slice(b));
        if !out.is_empty() {
            sink(&out);
            out.clear();
        }
        self.out = out;
        fed
    }

    /// [`DataReader::feed`], passing every piece on as it is found.
    fn feed_pieces(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) -> Feed {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Done => return Feed::Done { consumed: 0 },
                State::LineStart if b == b'.' => {
                    self.state = State::Dot;
                    i += 1;
                }
                State::LineStart => self.state = State::Mid,
                State::Dot => match b {
                    b'\r' => {
                        self.state = State::DotCr;
                        i += 1;
                    }
                    b'\n' => {
                        // `.` LF: never the end; dropped.
                        self.counts.bare_lf();
                        self.prev_crlf = false;
                        self.state = State::LineStart;
                        i += 1;
                    }
                    // Dot-stuffed line: the dot is gone, the rest is data.
                    _ => self.state = State::Mid,
                },
                State::DotCr => {
                    if b == b'\n' {
                        i += 1;
                        if self.prev_crlf {
                            self.state = State::Done;
                            return Feed::Done { consumed: i };
                        }
                        // `.` CRLF after a bare LF: dropped, not the end.
                        self.prev_crlf = true;
                        self.state = State::LineStart;
                    } else {
                        // `.` CR x: the line is CR x.
                        self.emit(sink, b"\r");
                        self.state = State::Mid;
                    }
                }
                State::Cr => {
                    if b == b'\n' {
                        i += 1;
                        self.end_line(sink, true);
                    } else {
                        self.emit(sink, b"\r");
                        self.state = State::Mid;
                    }
                }
                State::Mid => {
                    let rest = &input[i..];
                    match memchr::memchr2(b'\r', b'\n', rest) {
                        None => {
                            self.emit(sink, rest);
                            i = input.len();
                        }
                        Some(k) if rest[k] == b'\n' => {
                            self.emit(sink, &rest[..k]);
                            i += k + 1;
                            self.end_line(sink, false);
                        }
                        Some(k) => {
                            self.emit(sink, &rest[..k]);
                            i += k + 1;
                            self.state = State::Cr;
                        }
                    }
                }
            }
        }
        match self.state {
            State::Done => Feed::Done { consumed: 0 },
            _ => Feed::NeedMore,
        }
    }

    fn emit(&mut self, sink: &mut impl FnMut(&[u8]), bytes: &[u8]) {
        self.counts.emit(sink, bytes);
    }

    fn end_line(&mut self, sink: &mut impl FnMut(&[u8]), crlf: bool) {
        self.counts.end_line(sink, crlf);
        self.prev_crlf = crlf;
        self.state = State::LineStart;
    }

    /// Bytes of stored content so far (LF line ends, dots removed).
    pub fn size(&self) -> u64 {
        self.counts.size()
    }

    /// Postfix's count for `message_size_limit`: each line its length + 2
    /// (as if CRLF terminated, after dot-unstuffing); a line still open
    /// counts its bytes so far.
    pub fn wire_size(&self) -> u64 {
        self.counts.wire_size()
    }

    /// A bare LF ended some line of the data (dropped `.` lines included).
    pub fn saw_bare_lf(&self) -> bool {
        self.counts.saw_bare_lf()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::data::DataWriter;
    use proptest::prelude::*;

    /// Feeds `chunks` in turn; returns the output and the end position in
    /// the concatenated input, if the end was found.
    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Option<usize>) {
        let mut r = DataReader::new();
        let mut out = Vec::new();
        let mut offset = 0;
        for chunk in chunks {
            match r.feed(chunk, &mut |b: &[u8]| out.extend_from_slice(b)) {
                Feed::NeedMore => offset += chunk.len(),
                Feed::Done { consumed } => {
                    assert!(consumed <= chunk.len());
                    assert!(is_done(&mut r));
                    return (out, Some(offset + consumed));
                }
            }
        }
        assert!(!is_done(&mut r));
        (out, None)
    }

    /// Whether the reader found the end, as its caller sees it: after the
    /// end, nothing more is data.
    fn is_done(r: &mut DataReader) -> bool {
        r.feed(b"", &mut |_: &[u8]| panic!("no input, no output")) == (Feed::Done { consumed: 0 })
    }

    fn whole(input: &[u8]) -> (Vec<u8>, Option<usize>) {
        run(&[input])
    }

    /// Every way of cutting `input` in one or two pieces, and byte by byte,
    /// gives the same result as feeding it whole.
    fn check_all_splits(input: &[u8]) -> (Vec<u8>, Option<usize>) {
        let expected = whole(input);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(run(&[a, b]), expected, "cut at {cut} of {input:?}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes), expected, "byte by byte: {input:?}");
        expected
    }

    /// A straightforward line-at-a-time model of the rules, for comparison.
    fn model(input: &[u8]) -> (Vec<u8>, Option<usize>) {
        let mut out = Vec::new();
        let mut prev_crlf = true;
        let mut pos = 0;
        while let Some(lf) = input[pos..].iter().position(|&b| b == b'\n') {
            let raw = &input[pos..pos + lf];
            pos += lf + 1;
            let (line, crlf) = match raw.strip_suffix(b"\r") {
                Some(l) => (l, true),
                None => (raw, false),
            };
            if line == b"." {
                if crlf && prev_crlf {
                    return (out, Some(pos));
                }
            } else {
                out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
                out.push(b'\n');
            }
            prev_crlf = crlf;
        }
        // An unterminated last line: everything but a leading dot, and a
        // trailing CR that may still become a CRLF.
        let rest = &input[pos..];
        let rest = rest.strip_prefix(b".").unwrap_or(rest);
        out.extend_from_slice(rest.strip_suffix(b"\r").unwrap_or(rest));
        (out, None)
    }

    #[test]
    fn simple_message() {
        let input = b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
        let (out, end) = check_all_splits(input);
        assert_eq!(out, b"Subject: x\n\nbody\n");
        assert_eq!(&input[end.unwrap()..], b"QUIT\r\n");
    }

    #[test]
    fn empty_message() {
        assert_eq!(check_all_splits(b".\r\nQUIT"), (vec![], Some(3)));
    }

    #[test]
    fn dot_unstuffing() {
        let input = b"..\r\n..x\r\n.y\r\nz.\r\n...\r\n.\r\n";
        let (out, end) = check_all_splits(input);
        assert_eq!(out, b".\n.x\ny\nz.\n..\n");
        assert_eq!(end, Some(input.len()));
    }

    #[test]
    fn smuggling_variants_never_end_the_data() {
        for (input, stored) in [
            (&b"a\n.\nMAIL FROM:<x>\r\n"[..], &b"a\nMAIL FROM:<x>\n"[..]),
            (b"a\r.\rMAIL FROM:<x>\r\n", b"a\r.\rMAIL FROM:<x>\n"),
            (b"a\n.\r\nMAIL FROM:<x>\r\n", b"a\nMAIL FROM:<x>\n"),
            (b"a\r\n.\nMAIL FROM:<x>\r\n", b"a\nMAIL FROM:<x>\n"),
            (b"a\r\r\n.\r\r\n", b"a\r\n\r\n"),
            (b"a\r\n.\r.\r\n", b"a\n\r.\n"),
            (b"a\r\n \r\n.\r\n", b"a\n \n"),
        ] {
            let (out, end) = check_all_splits(input);
            if input.ends_with(b" \r\n.\r\n") {
                assert_eq!(end, Some(input.len()));
            } else {
                assert_eq!(end, None, "{input:?}");
            }
            assert_eq!(out, stored, "{input:?}");
        }
    }

    #[test]
    fn real_end_after_smuggling_attempt() {
        let input = b"a\n.\r\nb\r\n.\r\nRSET\r\n";
        let (out, end) = check_all_splits(input);
        assert_eq!(out, b"a\nb\n");
        assert_eq!(&input[end.unwrap()..], b"RSET\r\n");
    }

    #[test]
    fn dot_line_after_dropped_dot_line_ends() {
        // The dropped `.` line ended with CRLF, so the next one is a real end.
        let (out, end) = check_all_splits(b"a\n.\r\n.\r\nX");
        assert_eq!(out, b"a\n");
        assert_eq!(end, Some(8));
    }

    #[test]
    fn first_line_dot_lf_is_dropped() {
        let (out, end) = check_all_splits(b".\nx\r\n.\r\n");
        assert_eq!(out, b"x\n");
        assert_eq!(end, Some(8));
    }

    #[test]
    fn counters() {
        let mut r = DataReader::new();
        let mut out = Vec::new();
        let f = r.feed(b"ab\r\n..c\nd", &mut |b: &[u8]| out.extend_from_slice(b));
        assert_eq!(f, Feed::NeedMore);
        assert_eq!(out, b"ab\n.c\nd");
        assert_eq!(r.size(), 7);
        assert_eq!(r.wire_size(), 4 + 4 + 1);
        assert!(r.saw_bare_lf());
        let f = r.feed(b"\r\n.\r\nQUIT", &mut |b: &[u8]| out.extend_from_slice(b));
        assert_eq!(f, Feed::Done { consumed: 5 });
        assert_eq!(
            r.feed(b"more", &mut |_: &[u8]| panic!("after the end")),
            Feed::Done { consumed: 0 }
        );
    }

    #[test]
    fn no_bare_lf_when_all_crlf() {
        let mut r = DataReader::new();
        r.feed(b"a\r\n\r\nb\r\n.\r\n", &mut |_: &[u8]| {});
        assert!(is_done(&mut r));
        assert!(!r.saw_bare_lf());
    }

    #[test]
    fn dropped_dot_lf_counts_as_bare_lf() {
        let mut r = DataReader::new();
        r.feed(b"a\r\n.\n", &mut |_: &[u8]| {});
        assert!(r.saw_bare_lf());
    }

    #[test]
    fn long_line_streams_through() {
        let mut r = DataReader::new();
        let chunk = vec![b'x'; 1 << 20];
        let mut total = 0u64;
        let mut biggest = 0;
        for _ in 0..100 {
            let f = r.feed(&chunk, &mut |b: &[u8]| {
                total += b.len() as u64;
                biggest = biggest.max(b.len());
            });
            assert_eq!(f, Feed::NeedMore);
        }
        assert_eq!(
            r.feed(b"\r\n.\r\n", &mut |b: &[u8]| total += b.len() as u64),
            Feed::Done { consumed: 5 }
        );
        assert_eq!(total, 100 << 20 | 1);
        assert_eq!(r.size(), total);
        assert!(biggest <= 1 << 20);
    }

    /// `input` cut at `cuts` (indexes into its length + 1), in order.
    pub(crate) fn cut_at<'a>(input: &'a [u8], cuts: &[proptest::sample::Index]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&input[last..p]);
            last = p;
        }
        chunks.push(&input[last..]);
        chunks
    }

    /// Bytes rich in what line ends and dots are made of.
    pub(crate) fn small_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b'.'),
                Just(b'\r'),
                Just(b'\n'),
                Just(b'a'),
                any::<u8>()
            ],
            0..max,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// (a) Chunking never changes the output or the end position.
        #[test]
        fn chunking_invariance(input in small_bytes(64), cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..6)) {
            let expected = whole(&input);
            prop_assert_eq!(run(&cut_at(&input, &cuts)), expected.clone());
            prop_assert!(expected.0.len() <= expected.1.unwrap_or(input.len()));
        }

        /// The reader agrees with the line-at-a-time model.
        #[test]
        fn matches_model(input in small_bytes(64)) {
            prop_assert_eq!(whole(&input), model(&input));
        }

        /// (b) Any lines, dot-stuffed and CRLF-terminated, round-trip.
        #[test]
        fn round_trip(lines in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'a'), any::<u8>().prop_filter("no LF", |b| *b != b'\n')], 0..12), 0..8), trailer in small_bytes(8)) {
            let mut wire = Vec::new();
            let mut stored = Vec::new();
            for line in &lines {
                if line.starts_with(b".") {
                    wire.push(b'.');
                }
                wire.extend_from_slice(line);
                wire.extend_from_slice(b"\r\n");
                stored.extend_from_slice(line);
                stored.push(b'\n');
            }
            wire.extend_from_slice(b".\r\n");
            let end = wire.len();
            wire.extend_from_slice(&trailer);
            prop_assert_eq!(whole(&wire), (stored, Some(end)));
        }

        /// (d) The writer's output, in any pieces, reads back as the
        /// content (an unfinished last line gets its LF), and ends there.
        #[test]
        fn writer_round_trip(content in small_bytes(80), cut in any::<proptest::sample::Index>()) {
            let mut w = DataWriter::new();
            let mut wire = Vec::new();
            let at = cut.index(content.len() + 1);
            w.write(&content[..at], &mut wire);
            w.write(&content[at..], &mut wire);
            w.finish(&mut wire);
            // The reader's form: CR LF pairs become LF, as they were sent.
            let mut expected = Vec::new();
            for line in content.split_inclusive(|b| *b == b'\n') {
                let text = line.strip_suffix(b"\n").unwrap_or(line);
                expected.extend_from_slice(text);
                expected.push(b'\n');
            }
            prop_assert_eq!(whole(&wire), (expected, Some(wire.len())));
        }

        /// (c) Without CRLF . CRLF (or a leading . CRLF) the data never ends.
        #[test]
        fn never_ends_without_crlf_dot_crlf(input in small_bytes(200)) {
            let has_end = input.starts_with(b".\r\n") || input.windows(5).any(|w| w == b"\r\n.\r\n");
            prop_assume!(!has_end);
            prop_assert_eq!(whole(&input).1, None);
        }
    }
}
