//! Where the content of a message goes while DATA is read: memory up to
//! `queue.large_message_threshold`, then a file of its own in
//! `queue/incoming/<ID>.msg`, written in chunks so memory stays bounded
//! whatever the message size. The first bytes are kept for the header scan
//! (Message-ID for the log).

use std::path::{Path, PathBuf};

use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// Bytes kept for the header scan.
const HEAD_KEEP: usize = 64 * 1024;
/// Room for the content made at the start (grown as needed).
const INITIAL: usize = 8 * 1024;
/// Spill-file writes happen in chunks of at least this size.
const SPILL_CHUNK: usize = 256 * 1024;

pub(crate) struct Store {
    threshold: usize,
    /// Content not yet written to the spill file (all of it when inline).
    pending: Vec<u8>,
    /// The first bytes, once spilled (inline, they are `pending`'s: not
    /// copied a second time).
    head: Vec<u8>,
    spill: Option<(PathBuf, tokio::fs::File)>,
    size: u64,
}

impl Store {
    pub(crate) fn new(threshold: u64) -> Store {
        Store {
            threshold: usize::try_from(threshold).unwrap_or(usize::MAX),
            // Most messages fit: no reallocation while they come in.
            pending: Vec::with_capacity(INITIAL.min(usize::try_from(threshold).unwrap_or(0))),
            head: Vec::new(),
            spill: None,
            size: 0,
        }
    }

    /// The whole content so far. A spilled message is read back from its
    /// file (the bytes still pending written first): the caller holds all
    /// of it, as large as `smtpd.message_size_limit` allows.
    pub(crate) async fn content(&mut self) -> std::io::Result<Vec<u8>> {
        let Some((path, file)) = self.spill.as_mut() else {
            return Ok(self.pending.clone());
        };
        file.write_all(&self.pending).await?;
        file.flush().await?;
        self.pending.clear();
        tokio::fs::read(&path).await
    }

    /// Put `content` in place of the whole content so far (a spilled
    /// message's file written again from its start; [`Store::finish`]
    /// makes it durable as before).
    pub(crate) async fn replace_content(&mut self, content: Vec<u8>) -> std::io::Result<()> {
        if let Some((_, file)) = self.spill.as_mut() {
            file.set_len(0).await?;
            file.seek(std::io::SeekFrom::Start(0)).await?;
            file.write_all(&content).await?;
            self.pending.clear();
        }
        self.size = content.len() as u64;
        self.head.clear();
        if self.spill.is_none() {
            self.pending = content;
        } else {
            let n = HEAD_KEEP.min(content.len());
            self.head.extend_from_slice(&content[..n]);
        }
        Ok(())
    }

    /// Take bytes (called from the DATA reader's sink: must not block).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.spill.is_some() && self.head.len() < HEAD_KEEP {
            let n = (HEAD_KEEP - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
        }
        self.pending.extend_from_slice(bytes);
        self.size += bytes.len() as u64;
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn head(&self) -> &[u8] {
        match self.spill {
            None => &self.pending[..HEAD_KEEP.min(self.pending.len())],
            Some(_) => &self.head,
        }
    }

    /// After each batch of pushes: move pending bytes to the spill file
    /// once the threshold is passed.
    pub(crate) async fn settle(&mut self, dir: &Path, id: &str) -> std::io::Result<()> {
        if self.spill.is_none() && self.pending.len() > self.threshold {
            let path = dir.join(format!("{id}.msg"));
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .await?;
            let n = HEAD_KEEP.min(self.pending.len());
            self.head.extend_from_slice(&self.pending[..n]);
            self.spill = Some((path, file));
        }
        if let Some((_, file)) = self.spill.as_mut()
            && self.pending.len() >= SPILL_CHUNK
        {
            file.write_all(&self.pending).await?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Finish: either the inline content, or the spill file made durable
    /// (file and directory entry) and its name relative to the queue
    /// directory.
    pub(crate) async fn finish(mut self, dir: &Path) -> std::io::Result<Finished> {
        match self.spill.take() {
            None => Ok(Finished::Inline(std::mem::take(&mut self.pending))),
            Some((path, mut file)) => {
                file.write_all(&self.pending).await?;
                file.sync_all().await?;
                drop(file);
                let d = dir.to_path_buf();
                tokio::task::spawn_blocking(move || std::fs::File::open(d)?.sync_all())
                    .await
                    .map_err(std::io::Error::other)??;
                Ok(Finished::File(path))
            }
        }
    }

    /// Throw the content away (message rejected or session lost).
    pub(crate) async fn discard(mut self) {
        self.pending = Vec::new();
        if let Some((path, file)) = self.spill.take() {
            drop(file);
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}

impl Drop for Store {
    /// A store dropped unfinished (a BDAT transaction given up by RSET, a
    /// new EHLO or the end of the session between chunks) leaves no spill
    /// file behind. A plain unlink: it does not wait on the disk.
    fn drop(&mut self) {
        if let Some((path, _)) = self.spill.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub(crate) enum Finished {
    Inline(Vec<u8>),
    /// Absolute path of the spill file.
    File(PathBuf),
}

/// The value of the first Message-ID header in a header block (LF line
/// ends), unfolded, as found (invalid UTF-8 replaced), for the log.
pub(crate) fn message_id(head: &[u8]) -> Option<String> {
    // Only the header block is looked at (to its empty line): the head
    // holds up to 64 KiB of the message, body included, and converting all
    // of it was a fifth of smtpd's work per message.
    let end = memchr::memmem::find(head, b"\n\n").map_or(head.len(), |at| at + 1);
    crate::wire::header::first_value(&String::from_utf8_lossy(&head[..end]), "message-id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_message_id() {
        let h = b"Subject: x\nMessage-ID:\n <abc@def>\n\nMessage-ID: <no>\n";
        assert_eq!(message_id(h).as_deref(), Some("<abc@def>"));
        assert_eq!(message_id(b"Subject: x\n\nMessage-ID: <no>\n"), None);
        assert_eq!(message_id(b"\nMessage-ID: <no>\n"), None);
        assert_eq!(message_id(b"Message-ID: <cut>").as_deref(), Some("<cut>"));
        assert_eq!(message_id(b"Message-ID: <a>\n\n").as_deref(), Some("<a>"));
    }

    #[tokio::test]
    async fn a_store_dropped_unfinished_leaves_no_spill_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::new(10);
        s.push(&[b'x'; 1000]);
        s.settle(dir.path(), "ID").await.unwrap();
        assert!(dir.path().join("ID.msg").exists());
        drop(s);
        assert!(!dir.path().join("ID.msg").exists());
    }

    #[tokio::test]
    async fn spills_above_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::new(10);
        for _ in 0..100 {
            s.push(&[b'x'; 10_000]);
            s.settle(dir.path(), "ID").await.unwrap();
        }
        match s.finish(dir.path()).await.unwrap() {
            Finished::File(p) => assert_eq!(std::fs::metadata(p).unwrap().len(), 1_000_000),
            Finished::Inline(_) => panic!("not spilled"),
        }
    }

    /// The content is read back and replaced, inline and spilled
    /// alike; size and head follow.
    #[tokio::test]
    async fn the_content_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        for threshold in [1 << 20, 10] {
            let mut s = Store::new(threshold);
            let body = format!("Subject: y\n\n{}\n", "z".repeat(300_000));
            s.push(body.as_bytes());
            s.settle(dir.path(), "ID").await.unwrap();
            assert_eq!(s.content().await.unwrap(), body.as_bytes());
            let new = format!("Authentication-Results: h; none\n{body}");
            s.replace_content(new.clone().into_bytes()).await.unwrap();
            assert_eq!(s.size(), new.len() as u64);
            assert_eq!(s.head(), &new.as_bytes()[..HEAD_KEEP]);
            let stored = match s.finish(dir.path()).await.unwrap() {
                Finished::Inline(c) => c,
                Finished::File(p) => std::fs::read(p).unwrap(),
            };
            assert_eq!(stored, new.as_bytes(), "threshold {threshold}");
        }
    }
}
