//! The message content: read from the queue where qmgr says it lies, and
//! put into SMTP's wire form (RFC 5321 section 4.5.2): the queue keeps LF
//! line ends and no dot-stuffing, the wire wants CRLF, a `.` doubled at
//! the start of a line, and `.` alone on the last line.

use std::io::SeekFrom;
use std::path::{Component, Path};

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::queue::ContentRef;

/// Bytes read from the queue at a time.
pub const CHUNK: usize = 64 * 1024;

/// The content of one message, open for reading.
pub struct Content {
    file: tokio::fs::File,
    offset: u64,
    len: u64,
    /// Bytes still to read in this pass.
    left: u64,
}

impl Content {
    /// Open the content `at` in the queue `queue_dir`, read-only. The path
    /// must be relative and stay inside the queue.
    pub async fn open(queue_dir: &Path, at: &ContentRef) -> std::io::Result<Content> {
        let (path, offset, len) = at.span();
        let inside = Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !inside || path.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("content path {path:?} is not inside the queue"),
            ));
        }
        let file = tokio::fs::File::open(queue_dir.join(path)).await?;
        let size = file.metadata().await?.len();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{path}: {len} bytes at {offset} lie beyond its end ({size} bytes)"),
            ));
        }
        Ok(Content {
            file,
            offset,
            len,
            left: 0,
        })
    }

    /// Start reading from the beginning (once per transaction).
    pub async fn rewind(&mut self) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(self.offset)).await?;
        self.left = self.len;
        Ok(())
    }

    /// The next chunk into `buf` (cleared first); empty at the end.
    pub async fn next_chunk(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.clear();
        let want = usize::try_from(self.left).unwrap_or(CHUNK).min(CHUNK);
        buf.resize(want, 0);
        let mut filled = 0;
        while filled < want {
            let n = self.file.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the content ended early",
                ));
            }
            filled += n;
        }
        self.left -= want as u64;
        Ok(())
    }
}

/// Converts stored content to the wire form, chunk by chunk.
#[derive(Clone, Debug)]
pub struct WireEncoder {
    at_line_start: bool,
    after_cr: bool,
}

impl Default for WireEncoder {
    fn default() -> Self {
        WireEncoder {
            at_line_start: true,
            after_cr: false,
        }
    }
}

impl WireEncoder {
    /// Append the wire form of `input` to `out`: LF becomes CRLF (a CR
    /// already before it is kept, not doubled), a `.` opening a line is
    /// doubled.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 32 + 8);
        for &b in input {
            if self.at_line_start && b == b'.' {
                out.push(b'.');
            }
            if b == b'\n' && !self.after_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.at_line_start = b == b'\n';
            self.after_cr = b == b'\r';
        }
    }

    /// Append the end of the data: a line end when the content did not end
    /// with one, then `.` CRLF.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(if self.after_cr { b"\n" } else { b"\r\n" });
        }
        out.extend_from_slice(b".\r\n");
        *self = WireEncoder::default();
    }
}

/// The whole wire form of `content`.
#[cfg(test)]
pub fn wire_form(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = WireEncoder::default();
    e.encode(content, &mut out);
    e.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_and_dots() {
        assert_eq!(wire_form(b""), b".\r\n");
        assert_eq!(wire_form(b"a\nb\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(wire_form(b"no end"), b"no end\r\n.\r\n");
        assert_eq!(
            wire_form(b".\n..x\n.y\nmid.dle\n."),
            b"..\r\n...x\r\n..y\r\nmid.dle\r\n..\r\n.\r\n"
        );
        // CRLF already there is kept as it is.
        assert_eq!(wire_form(b"a\r\nb\r"), b"a\r\nb\r\n.\r\n");
    }

    proptest::proptest! {
        #[test]
        fn chunking_does_not_matter(content in proptest::collection::vec(
            proptest::sample::select(vec![b'a', b'.', b'\n', b'\r']), 0..200),
            cut in 0usize..200)
        {
            let cut = cut.min(content.len());
            let mut out = Vec::new();
            let mut e = WireEncoder::default();
            e.encode(&content[..cut], &mut out);
            e.encode(&content[cut..], &mut out);
            e.finish(&mut out);
            proptest::prop_assert_eq!(&out, &wire_form(&content));
            // The terminator appears only at the end.
            let body = &out[..out.len() - 3];
            proptest::prop_assert!(!body.windows(5).any(|w| w == b"\r\n.\r\n"));
            proptest::prop_assert!(!body.starts_with(b".\r\n"));
        }
    }

    #[tokio::test]
    async fn reads_the_span_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("incoming")).unwrap();
        let mut data = b"HEAD".to_vec();
        data.extend(std::iter::repeat_n(b'x', CHUNK + 10));
        data.extend_from_slice(b"TAIL");
        std::fs::write(dir.path().join("incoming/S"), &data).unwrap();
        let at = ContentRef::Segment {
            path: "incoming/S".into(),
            offset: 4,
            len: CHUNK as u64 + 10,
        };
        let mut c = Content::open(dir.path(), &at).await.unwrap();
        for _ in 0..2 {
            c.rewind().await.unwrap();
            let (mut all, mut buf) = (Vec::new(), Vec::new());
            loop {
                c.next_chunk(&mut buf).await.unwrap();
                if buf.is_empty() {
                    break;
                }
                all.extend_from_slice(&buf);
            }
            assert_eq!(all, &data[4..data.len() - 4]);
        }
        let beyond = ContentRef::Segment {
            path: "incoming/S".into(),
            offset: 10,
            len: data.len() as u64,
        };
        assert!(Content::open(dir.path(), &beyond).await.is_err());
        let outside = ContentRef::File {
            path: "../etc/passwd".into(),
            len: 1,
        };
        assert!(Content::open(dir.path(), &outside).await.is_err());
    }
}
