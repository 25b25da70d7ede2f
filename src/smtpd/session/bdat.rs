//! BDAT (RFC 3030 CHUNKING): a message in counted chunks. A chunk's
//! octets are read to the last one whatever becomes of the command, so
//! they are never taken for commands, and go through the BDAT reader
//! ([`crate::smtpd::chunk`]) into the same [`Intake`] as DATA's content:
//! the same Received header, header block, header and body checks, size
//! limit, bare-LF policy and store. LAST ends the message as DATA's final
//! dot does; Postfix's replies: `250 2.0.0 Ok: N bytes` for a chunk
//! before the last, `250 2.0.0 Ok: N bytes queued as ID` (all the
//! chunks' octets) for LAST.
//!
//! As Postfix: a chunk with no transaction to go to gets DATA's refusal
//! (`503 5.5.1 Error: need RCPT command`); once a chunk has failed (no
//! valid recipients, the message too big, a write error) every chunk up
//! to LAST gets the same reply and is read and thrown away; DATA, MAIL
//! and RCPT are refused until LAST (`503 5.5.1 Error: DATA after BDAT`);
//! `BDAT 0` without LAST is refused (`551 5.7.1 Null BDAT request`). A
//! chunk must progress as DATA must (`smtpd.timeout`, plus a second per
//! KiB). A malformed BDAT command ends the session (the parser's `521`):
//! without its size the chunk cannot be told from the commands after it.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::data_phase::{Intake, Reader};
use super::milter::{Said, Stage};
use super::{End, Read, Session};
use crate::queue::QueueId;
use crate::reply::Reply;
use crate::smtpd::chunk::ChunkReader;

/// A transaction's message in chunks, from its first BDAT to LAST.
pub(super) struct Chunking {
    /// The message so far and its queue ID; none once a chunk failed.
    message: Option<(QueueId, Intake)>,
    /// Octets received in the chunks so far.
    received: u64,
    /// The reply every chunk gets from the one that failed up to LAST.
    failed: Option<Reply>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// `BDAT size [LAST]`, its chunk read, its reply given.
    pub(super) async fn bdat(&mut self, size: u64, last: bool) -> Option<End> {
        if size == 0 && !last {
            // Postfix's guard against a client sending empty chunks for
            // ever (nothing to read past).
            return self.refuse("bdat", &Reply::null_bdat()).await;
        }
        // A message's first chunk is DATA for the milters.
        let milter = match self.tx.as_ref() {
            Some(tx) if tx.chunking.is_none() && !tx.rcpts.is_empty() => {
                match self.milter_stage(Stage::Data).await {
                    Said::Refuse(r) => Some(r),
                    Said::Go => None,
                }
            }
            _ => None,
        };
        let mut chunking = match self.chunking(milter) {
            Ok(c) => c,
            Err(r) => {
                if let Err(end) = self.skip_chunk(size).await {
                    return Some(end);
                }
                self.count("bdat", false);
                return self.data_error(r).await;
            }
        };
        let into = chunking.message.as_mut().map(|(id, i)| (&*id, i));
        if let Err(end) = self.read_chunk(size, chunking.received, into).await {
            if let Some((_, intake)) = chunking.message.take() {
                intake.discard().await;
            }
            return Some(end);
        }
        chunking.received = chunking.received.saturating_add(size);
        if !last && chunking.failed.is_none() {
            chunking.failed = self.chunk_failed(&mut chunking).await;
        }
        if let Some(r) = chunking.failed.clone() {
            if last {
                self.tx = None;
                self.io.shrink_input(super::data_phase::READ_CHUNK_KEPT);
            } else {
                self.keep_chunking(chunking);
            }
            self.count("bdat", false);
            return self.data_error(r).await;
        }
        if !last {
            self.keep_chunking(chunking);
            self.reply(&Reply::chunk_ok(size));
            return self.counted("bdat", true).await;
        }
        self.last_chunk(chunking).await
    }

    /// The transaction's message in chunks: the one begun, or a new one
    /// when the transaction may take a message (else one failed from the
    /// start, so that every chunk up to LAST gets the same refusal).
    /// `Err`: there is no transaction at all.
    fn chunking(&mut self, milter: Option<Reply>) -> Result<Chunking, Reply> {
        if let Some(c) = self.tx.as_mut().and_then(|t| t.chunking.take()) {
            return Ok(c);
        }
        let allowed = match milter {
            Some(r) => Err(r),
            None => self.data_allowed(),
        };
        let (message, failed) = match allowed {
            Ok(checks) => {
                let id = self.start_data();
                let intake = self.intake(&id, checks, Reader::Chunks(ChunkReader::new()));
                (Some((id, intake)), None)
            }
            Err(r) if self.tx.is_none() => return Err(r),
            Err(r) => (None, Some(r)),
        };
        Ok(Chunking {
            message,
            received: 0,
            failed,
        })
    }

    /// The message in chunks goes back to its transaction until the next
    /// chunk.
    fn keep_chunking(&mut self, chunking: Chunking) {
        if let Some(tx) = self.tx.as_mut() {
            tx.chunking = Some(chunking);
        }
    }

    /// Read past a chunk that has nowhere to go (its command refused):
    /// its octets are no commands.
    pub(super) async fn skip_chunk(&mut self, size: u64) -> Result<(), End> {
        self.read_chunk(size, 0, None).await
    }

    /// Read a chunk's `size` octets (some may be in the input buffer
    /// already) into the message, or past them when there is none. A
    /// chunk must progress as DATA must: `smtpd.timeout`, plus a second
    /// per KiB read, within the session's time. `before`: the octets of
    /// the message's earlier chunks, for the log.
    async fn read_chunk(
        &mut self,
        size: u64,
        before: u64,
        mut into: Option<(&QueueId, &mut Intake)>,
    ) -> Result<(), End> {
        let limit = self.cfg().smtpd.message_size_limit;
        let started = Instant::now();
        let mut left = size;
        loop {
            let n = self
                .io
                .inbuf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            if n > 0 {
                if let Some((id, intake)) = into.as_mut() {
                    intake.feed(&self.io.inbuf[..n]);
                    intake.log_checks(id);
                    intake.settle(limit, &self.shared.incoming, id).await;
                }
                self.io.inbuf.drain(..n);
                left -= n as u64;
            }
            if left == 0 {
                return Ok(());
            }
            let allowance = self.limits().timeout + Duration::from_secs((size - left) / 1024);
            let deadline = self.capped(started + allowance);
            match self.read_more(deadline, false).await {
                Read::Data | Read::Again => {}
                Read::Timeout => return Err(self.data_timeout("BDAT").await),
                _ => {
                    let got = before + (size - left);
                    log::info!(
                        queue_id = self.queue_id(),
                        client:% = self.client.field();
                        "{}lost connection after BDAT ({got} bytes) from {}",
                        self.qid_prefix(),
                        self.client()
                    );
                    self.count("bdat", false);
                    return Err(End::Closed);
                }
            }
        }
    }

    /// After a chunk before the last: a message too big or a write error
    /// fails it at once, as Postfix does (what came is thrown away); a
    /// bare LF and the checks' REJECT are answered at LAST, as at DATA's
    /// end.
    async fn chunk_failed(&mut self, chunking: &mut Chunking) -> Option<Reply> {
        let (id, intake) = chunking.message.as_ref()?;
        let r = if intake.too_big {
            let r = Reply::message_too_big();
            let sender = self.tx.as_ref().map_or("", |t| t.sender.as_str());
            self.log_reject_at("BDAT", id, sender, &r);
            r
        } else if let Some(e) = &intake.io_error {
            log::warn!(queue_id = id.as_str(); "{id}: queue file write error: {e}");
            Reply::queue_write_error()
        } else {
            return None;
        };
        if let Some((_, intake)) = chunking.message.take() {
            intake.discard().await;
        }
        Some(r)
    }

    /// LAST: the message ends as at DATA's final dot, and is refused,
    /// discarded or queued the same way.
    async fn last_chunk(&mut self, chunking: Chunking) -> Option<End> {
        let Some((id, mut intake)) = chunking.message else {
            // A message in chunks without content has failed (above).
            let result = Err(Reply::need_rcpt());
            return self.message_done("bdat", result, Reply::ok()).await;
        };
        let limit = self.cfg().smtpd.message_size_limit;
        intake.end_of_chunks();
        intake.settle(limit, &self.shared.incoming, &id).await;
        intake.finish(&id);
        let result = self.finish_message(&id, intake).await;
        let ok = Reply::chunks_queued(chunking.received, id.as_str());
        self.message_done("bdat", result, ok).await
    }
}
