//! The mail forwarding loop check (Postfix `delivered_hdr`): does a
//! `Delivered-To:` header in the message's primary header section name the
//! recipient? The scanner is sans-IO (lines in, verdict out);
//! [`delivered_to`] feeds it from the queue file without holding more than
//! one capped line in memory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Bytes of one header line (or folded value) kept for matching; the rest
/// of a longer line is read and ignored.
const LINE_CAP: usize = 4096;

/// Scans header lines for `Delivered-To: <address>` (case-insensitive name
/// and value, optional angle brackets, folding allowed).
pub(crate) struct LoopScan {
    address: String,
    /// The value of the `Delivered-To:` header being read, while its
    /// continuation lines may follow.
    current: Option<Vec<u8>>,
    found: bool,
}

impl LoopScan {
    pub(crate) fn new(address: &str) -> LoopScan {
        LoopScan {
            address: address.to_ascii_lowercase(),
            current: None,
            found: false,
        }
    }

    /// Feed one line, with or without its line end. Returns `false` once the
    /// verdict is known (end of the header section, or a match).
    pub(crate) fn line(&mut self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(first) = line.first()
            && (*first == b' ' || *first == b'\t')
        {
            if let Some(value) = &mut self.current {
                let room = LINE_CAP.saturating_sub(value.len());
                value.extend_from_slice(&line[..line.len().min(room)]);
            }
            return true;
        }
        self.finish_header();
        if self.found {
            return false;
        }
        match crate::wire::header::colon(line) {
            None => false, // empty line or body text: the header section ended
            Some(name_end) => {
                if line[..name_end]
                    .trim_ascii_end()
                    .eq_ignore_ascii_case(b"delivered-to")
                {
                    self.current = Some(line[name_end + 1..].to_vec());
                }
                true
            }
        }
    }

    /// The verdict: `true` when the recipient was already delivered to.
    pub(crate) fn finish(mut self) -> bool {
        self.finish_header();
        self.found
    }

    fn finish_header(&mut self) {
        if let Some(value) = self.current.take() {
            let value = value.trim_ascii();
            let value = value
                .strip_prefix(b"<")
                .and_then(|v| v.strip_suffix(b">"))
                .unwrap_or(value);
            if value.eq_ignore_ascii_case(self.address.as_bytes()) {
                self.found = true;
            }
        }
    }
}

/// Bytes read from the queue file at once for the scan: most header
/// sections fit (a small message is read in one call).
const SCAN_CHUNK: u64 = 16 * 1024;

/// Read the header section of the message at `offset` (`len` bytes) in
/// `file` and report whether it holds a `Delivered-To:` for `address`.
/// Positioned reads (`pread`): the file's offset is not used, and no
/// buffer is larger than the message.
pub(crate) fn delivered_to(
    file: &File,
    offset: u64,
    len: u64,
    address: &str,
) -> std::io::Result<bool> {
    let at = ReadAt {
        file,
        pos: offset,
        end: offset + len,
    };
    let mut reader = BufReader::with_capacity(len.clamp(1, SCAN_CHUNK) as usize, at);
    let mut scan = LoopScan::new(address);
    let mut line = Vec::with_capacity(256);
    while read_capped_line_sync(&mut reader, &mut line, LINE_CAP)? {
        if !scan.line(&line) {
            break;
        }
    }
    Ok(scan.finish())
}

/// `file` from `pos` to `end`, read with `pread`.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// [`read_capped_line`] for a blocking reader.
fn read_capped_line_sync<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<bool> {
    buf.clear();
    let mut any = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(any);
        }
        any = true;
        let (used, done) = take_line_part(chunk, buf, cap);
        reader.consume(used);
        if done {
            return Ok(true);
        }
    }
}

/// What of `chunk` belongs to the line being read into `buf` (through
/// its LF, kept up to `cap` bytes): the bytes used and whether the line
/// ended.
fn take_line_part(chunk: &[u8], buf: &mut Vec<u8>, cap: usize) -> (usize, bool) {
    let (used, done) = match memchr::memchr(b'\n', chunk) {
        Some(i) => (i + 1, true),
        None => (chunk.len(), false),
    };
    let room = cap.saturating_sub(buf.len());
    buf.extend_from_slice(&chunk[..used.min(room)]);
    (used, done)
}

/// Read one line (through its LF) keeping at most `cap` bytes of it.
/// Returns `false` at end of input.
pub(super) async fn read_capped_line<R>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<bool>
where
    R: AsyncBufRead + Unpin,
{
    buf.clear();
    let mut any = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(any);
        }
        any = true;
        let (used, done) = take_line_part(chunk, buf, cap);
        reader.consume(used);
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(message: &str, address: &str) -> bool {
        let mut s = LoopScan::new(address);
        for line in message.split_inclusive('\n') {
            if !s.line(line.as_bytes()) {
                break;
            }
        }
        s.finish()
    }

    #[test]
    fn finds_delivered_to() {
        let m = "Received: x\nDELIVERED-TO:  Bob@Example.org \nSubject: hi\n\nbody\n";
        assert!(scan(m, "bob@example.org"));
        assert!(!scan(m, "alice@example.org"));
        assert!(scan("Delivered-To: <bob@x>\n\n", "bob@x"));
        assert!(scan("Delivered-To:bob@x", "bob@x"));
        assert!(scan("Delivered-To :\n bob@x\n\n", "bob@x"));
    }

    #[test]
    fn only_the_header_section() {
        assert!(!scan("Subject: a\n\nDelivered-To: bob@x\n", "bob@x"));
        assert!(!scan(
            "Subject: a\nnot a header\nDelivered-To: bob@x\n",
            "bob@x"
        ));
        assert!(!scan("X-Delivered-To: bob@x\n\n", "bob@x"));
        assert!(!scan("Delivered-To: bob@x.org\n\n", "bob@x"));
    }

    #[test]
    fn reads_the_message_in_the_file_with_long_lines() {
        let mut m = String::from("before the message");
        let offset = m.len() as u64;
        m.push_str("X-Long: ");
        m.push_str(&"a".repeat(100_000));
        m.push_str("\nDelivered-To: bob@x\n\nbody\n");
        let len = m.len() as u64 - offset;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        std::fs::write(&path, &m).unwrap();
        let file = File::open(&path).unwrap();
        assert!(delivered_to(&file, offset, len, "bob@x").unwrap());
        // Only the message's own bytes count.
        std::fs::write(&path, "Subject: x\nDelivered-To: carol@x\n").unwrap();
        let file = File::open(&path).unwrap();
        assert!(delivered_to(&file, 0, 33, "carol@x").unwrap());
        assert!(!delivered_to(&file, 0, 11, "carol@x").unwrap());
        assert!(!delivered_to(&file, 0, 0, "carol@x").unwrap());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_scan_without_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            let mut s = LoopScan::new("bob@x");
            for line in data.split_inclusive(|&c| c == b'\n') {
                if !s.line(line) {
                    break;
                }
            }
            s.finish();
        }

        #[test]
        fn a_planted_header_is_found(before in "[A-Za-z-]{1,20}: [ -~]{0,40}", case in proptest::bool::ANY) {
            let name = if case { "delivered-to" } else { "DELIVERED-TO" };
            let m = format!("{before}\n{name}: Bob@X\nSubject: s\n\nbody\n");
            proptest::prop_assert!(scan(&m, "bob@x"));
        }
    }
}
