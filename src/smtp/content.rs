//! The message content: read from the queue where qmgr says it lies, and
//! put into SMTP's wire form (RFC 5321 section 4.5.2): the queue keeps LF
//! line ends and no dot-stuffing, the wire wants CRLF, a `.` doubled at
//! the start of a line, and `.` alone on the last line.

use std::io::SeekFrom;
use std::path::{Component, Path};

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::queue::ContentRef;

/// Bytes read from the queue at a time.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The content of one message, open for reading.
pub(crate) struct Content {
    file: tokio::fs::File,
    offset: u64,
    len: u64,
    /// Bytes still to read in this pass.
    left: u64,
}

impl Content {
    /// Open the content `at` in the queue `queue_dir`, read-only. The path
    /// must be relative and stay inside the queue.
    pub(crate) async fn open(queue_dir: &Path, at: &ContentRef) -> std::io::Result<Content> {
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
    pub(crate) async fn rewind(&mut self) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(self.offset)).await?;
        self.left = self.len;
        Ok(())
    }

    /// The next chunk into `buf` (cleared first); empty at the end.
    pub(crate) async fn next_chunk(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
