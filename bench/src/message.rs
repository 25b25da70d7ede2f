//! The benchmark's message: one template per run, built and dot-stuffed
//! once, in which sending a message only overwrites the fixed-width message
//! number in place; and reading the ID back from a delivered file.
//!
//! Every message carries its ID `<nonce>-<n>` (the nonce random per run,
//! `n` zero-padded to [`NUMBER_DIGITS`]) in `Subject:`, `Message-ID:` and
//! `X-Bench-Id:`. The body is lines of 76 printable characters plus CRLF; a
//! few of them start with a dot, so the template really is dot-stuffed.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Width of the zero-padded message number in an ID.
pub const NUMBER_DIGITS: usize = 10;

/// Characters per body line, CRLF not counted.
const LINE_CHARS: usize = 76;

/// Every this many body lines, one starts with a dot.
const DOT_LINE_EVERY: usize = 25;

/// A random token naming one run, so that files left in the Maildir by
/// earlier runs are told apart: 16 lowercase hex digits, no `-`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunNonce(String);

impl RunNonce {
    /// A fresh nonce from the clock and the process ID.
    pub fn random() -> RunNonce {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 32);
        RunNonce(format!("{:016x}", splitmix64(seed)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One message ready for the wire: the dot-stuffed DATA payload, ending in
/// `CRLF.CRLF`, with slots for the message number. Clone it once per
/// session, then [`Message::set_number`] before each send.
#[derive(Clone, Debug)]
pub struct Message {
    wire: Vec<u8>,
    /// Offsets of the [`NUMBER_DIGITS`]-byte number in each header.
    slots: Vec<usize>,
    /// Size of the message itself (before stuffing, without the final dot).
    size: usize,
}

impl Message {
    /// The template for one run: about `size` bytes of headers and body.
    pub fn template(nonce: &RunNonce, from: &str, to: &str, size: usize) -> Message {
        let id = format!("{nonce}-{}", "0".repeat(NUMBER_DIGITS));
        let date = chrono::Local::now().to_rfc2822();
        let headers = format!(
            "From: <{from}>\r\n\
             To: <{to}>\r\n\
             Subject: postern-bench {id}\r\n\
             Date: {date}\r\n\
             Message-ID: <{id}@postern-bench>\r\n\
             X-Bench-Id: {id}\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\
             \r\n"
        );
        let mut text = headers.into_bytes();
        let body = size.saturating_sub(text.len());
        append_body(&mut text, body);
        let size = text.len();
        let wire = dot_stuff(&text);
        // The headers come first and none starts with a dot, so the offsets
        // of the IDs are the same in the stuffed text.
        let slots = find_all(&wire[..size.min(wire.len())], id.as_bytes())
            .into_iter()
            .map(|at| at + nonce.as_str().len() + 1)
            .collect();
        Message { wire, slots, size }
    }

    /// Writes `n` (modulo 10^[`NUMBER_DIGITS`]) into every ID slot.
    pub fn set_number(&mut self, n: u64) {
        let mut digits = [b'0'; NUMBER_DIGITS];
        let mut rest = n;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        for &at in &self.slots {
            self.wire[at..at + NUMBER_DIGITS].copy_from_slice(&digits);
        }
    }

    /// The DATA payload, dot-stuffed, ending in `CRLF.CRLF`.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The message's size before stuffing.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// Appends `bytes` bytes of body (at least one line of one character):
/// lines of [`LINE_CHARS`] printable characters and CRLF, the last one or
/// two shorter so that the size is exact.
fn append_body(out: &mut Vec<u8>, bytes: usize) {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const FULL: usize = LINE_CHARS + 2;
    const SHORTEST: usize = 3; // one character and CRLF
    let bytes = bytes.max(SHORTEST);
    let lines = bytes.div_ceil(FULL);
    let mut last = bytes - FULL * (lines - 1);
    // A last line too short for a character borrows from the one before.
    let mut before_last = FULL;
    if last < SHORTEST {
        before_last -= SHORTEST - last;
        last = SHORTEST;
    }
    for line in 0..lines {
        let len = match lines - line {
            1 => last,
            2 => before_last,
            _ => FULL,
        };
        for i in 0..len - 2 {
            let c = if i == 0 && line % DOT_LINE_EVERY == DOT_LINE_EVERY - 1 {
                b'.'
            } else {
                ALPHABET[(line * 7 + i) % ALPHABET.len()]
            };
            out.push(c);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// SMTP transparency (RFC 5321 4.5.2): a dot is added before every line
/// that starts with one, and the end-of-data line `.` CRLF is appended.
/// `text` must end in CRLF (or be empty).
pub fn dot_stuff(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 64 + 3);
    let mut line_start = true;
    for &b in text {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// The ID a delivered message carries in its `X-Bench-Id:` header.
#[derive(Debug, PartialEq, Eq)]
pub struct BenchId<'a> {
    pub nonce: &'a str,
    pub number: u64,
}

/// Finds `X-Bench-Id:` in the header section of `message` (LF or CRLF line
/// ends; the header name in any case). `None` when the header is absent or
/// its value is not `<nonce>-<number>`.
pub fn bench_id(message: &[u8]) -> Option<BenchId<'_>> {
    const NAME: &[u8] = b"x-bench-id:";
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None; // end of the header section
        }
        if line.len() >= NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME) {
            let value = std::str::from_utf8(&line[NAME.len()..]).ok()?.trim();
            let (nonce, number) = value.rsplit_once('-')?;
            if nonce.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return Some(BenchId {
                nonce,
                number: number.parse().ok()?,
            });
        }
    }
    None
}

/// A header field every delivered message of a run must carry, e.g.
/// `X-Milter: seen` (what the benchmark's milter adds): `--expect-header`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Without the colon (compared in any case).
    name: String,
    value: String,
}

impl Field {
    /// `Name: value`; the name without blanks, the value trimmed.
    pub fn parse(text: &str) -> Result<Field, String> {
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?}: not \"Name: value\""))?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{text:?}: not a header field name before the colon"
            ));
        }
        Ok(Field {
            name: name.to_string(),
            value: value.trim().to_string(),
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.value)
    }
}

/// Whether the header section of `message` (LF or CRLF line ends) holds
/// `field`: its name in any case, its value (unfolded, trimmed) exactly.
pub fn has_field(message: &[u8], field: &Field) -> bool {
    let mut lines = message
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(field.name.as_bytes()) {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        while let Some(next) = lines.next_if(|l| l.starts_with(b" ") || l.starts_with(b"\t")) {
            value.extend_from_slice(next);
        }
        if value.trim_ascii() == field.value.as_bytes() {
            return true;
        }
    }
    false
}

/// SplitMix64's output function: spreads the bits of a seed.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The receiver's side of transparency: drops the end-of-data line and
    /// one leading dot of every line.
    fn unstuff(wire: &[u8]) -> Vec<u8> {
        let body = wire.strip_suffix(b".\r\n").expect("end-of-data line");
        let mut out = Vec::new();
        for line in body.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        out
    }

    fn nonce() -> RunNonce {
        RunNonce("0123456789abcdef".into())
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_appends_the_end_line() {
        assert_eq!(
            dot_stuff(b"a\r\n.b\r\n..\r\nc.d\r\n"),
            b"a\r\n..b\r\n...\r\nc.d\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    #[test]
    fn template_is_stuffed_and_ends_only_once() {
        let sizes = (400..=560).chain([0, 1, 100, 2048, 10_000, 100_000]);
        for size in sizes {
            let m = Message::template(&nonce(), "a@example.org", "b@example.org", size);
            let wire = m.wire();
            assert!(wire.ends_with(b"\r\n.\r\n"), "size {size}");
            // The end-of-data sequence appears only at the very end.
            let end = find_all(wire, b"\r\n.\r\n");
            assert_eq!(end, vec![wire.len() - 5], "size {size}");
            let text = unstuff(wire);
            assert_eq!(text.len(), m.size());
            // No bare CR or LF: every line ends in CRLF.
            for (i, &b) in text.iter().enumerate() {
                if b == b'\n' {
                    assert_eq!(text[i - 1], b'\r');
                }
            }
            if size >= 400 {
                // Exactly the size asked for once the headers fit.
                assert_eq!(m.size(), size);
            }
            if size >= 10_000 {
                assert!(find_all(wire, b"\r\n..").len() > 1);
            }
        }
    }

    #[test]
    fn body_lines_are_76_characters() {
        let m = Message::template(&nonce(), "a@x", "b@x", 4096);
        let text = unstuff(m.wire());
        let body_at = find_all(&text, b"\r\n\r\n")[0] + 4;
        let lines: Vec<&[u8]> = text[body_at..].split(|&b| b == b'\n').collect();
        let full = &lines[..lines.len() - 2]; // the last is shorter, then ""
        assert!(full.iter().all(|l| l.len() == LINE_CHARS + 1));
    }

    #[test]
    fn set_number_changes_every_id_and_nothing_else() {
        let mut m = Message::template(&nonce(), "a@x", "b@x", 2048);
        let before = m.wire().to_vec();
        m.set_number(42);
        let after = m.wire();
        assert_eq!(before.len(), after.len());
        let id = b"0123456789abcdef-0000000042";
        assert_eq!(find_all(after, id).len(), 3); // Subject, Message-ID, X-Bench-Id
        let changed = before.iter().zip(after).filter(|(a, b)| a != b).count();
        assert_eq!(changed, 6); // "42" in three places
        assert_eq!(
            bench_id(&unstuff(after)),
            Some(BenchId {
                nonce: "0123456789abcdef",
                number: 42
            })
        );
    }

    #[test]
    fn bench_id_reads_delivered_headers() {
        let delivered = b"Return-Path: <a@x>\nDelivered-To: b@x\nReceived: from x\n\tby y\n\
            x-bench-ID:  abc-0000000007 \nSubject: s\n\nX-Bench-Id: abc-9\n";
        assert_eq!(
            bench_id(delivered),
            Some(BenchId {
                nonce: "abc",
                number: 7
            })
        );
        // Only the header section counts.
        assert_eq!(bench_id(b"Subject: s\r\n\r\nX-Bench-Id: abc-1\r\n"), None);
        // Malformed values.
        assert_eq!(bench_id(b"X-Bench-Id: abc\n\n"), None);
        assert_eq!(bench_id(b"X-Bench-Id: -1\n\n"), None);
        assert_eq!(bench_id(b"X-Bench-Id: abc-1x\n\n"), None);
        assert_eq!(bench_id(b"X-Bench-Id: abc-\n\n"), None);
        assert_eq!(bench_id(b""), None);
    }

    #[test]
    fn has_field_finds_the_field_in_the_header_section_only() {
        let field = Field::parse("X-Milter: seen").unwrap();
        assert_eq!(field.to_string(), "X-Milter: seen");
        let with = b"Return-Path: <a@x>\r\nx-milter:  seen \r\nX-Bench-Id: n-1\r\n\r\nbody\r\n";
        assert!(has_field(with, &field));
        let folded = b"X-Milter:\n seen\nSubject: s\n\nbody\n";
        assert!(has_field(folded, &field));
        let other = b"X-Milter: not seen\r\nX-Milter-Other: seen\r\n\r\nX-Milter: seen\r\n";
        assert!(!has_field(other, &field));
        assert!(Field::parse("no colon").is_err());
        assert!(Field::parse("two words: x").is_err());
        assert!(Field::parse(": x").is_err());
    }

    #[test]
    fn nonces_differ_and_have_no_dash() {
        let a = RunNonce::random();
        let b = RunNonce::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 16);
        assert!(!a.as_str().contains('-'));
    }
}
