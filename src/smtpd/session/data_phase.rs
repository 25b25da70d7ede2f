//! The DATA phase of a session: the DATA reader fed from the socket, the
//! header block ended where the client's lines stop being headers
//! ([`crate::smtpd::header_block`], as Postfix's cleanup does), the
//! content inspected by the header and body checks as it streams
//! ([`crate::content`]) and stored (memory, or a file of its own when
//! large), the size limit and the bare-LF policy applied, and the message
//! committed to the queue before the `250`. The transfer has a deadline
//! (`smtpd.timeout` plus a second per KiB) within the session's.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::{End, Read, Session};
use crate::config::BareNewline;
use crate::content::{self, ContentChecks, Inspector, Verdict};
use crate::queue::message::{ContentKind, MessageContent, encode_message, encode_message_head};
use crate::queue::record::RecordType;
use crate::queue::{Client, Envelope, QueueId, now_micros};
use crate::reply::Reply;
use crate::smtpd::data::{DataReader, Feed};
use crate::smtpd::header_block::HeaderBlock;
use crate::smtpd::received::{local_received_header, received_header};
use crate::smtpd::store::{Finished, Store, message_id};

/// What the input buffer is shrunk to after DATA.
const READ_CHUNK_KEPT: usize = 8 * 1024;

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Session<R, W> {
    pub(super) async fn data(&mut self) -> Option<End> {
        let Some(tx) = self.tx.as_mut() else {
            self.count("data", false);
            return self.data_error(Reply::need_rcpt()).await;
        };
        if tx.rcpts.is_empty() {
            self.count("data", false);
            return self.data_error(Reply::no_valid_recipients()).await;
        }
        let checks = match ContentChecks::open(&self.config) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("header or body checks: {e}");
                self.count("data", false);
                let r = Reply::new(451, "4.3.5", "Server configuration error");
                return self.data_error(r).await;
            }
        };
        let id = self.shared.ids.next();
        tx.id = Some(id.clone());
        let rcpt_addrs: Vec<String> = tx.rcpts.iter().map(|r| r.address.clone()).collect();
        match self.uid {
            // Postfix's pickup: "uid=1000 from=<user>".
            Some(uid) => log::info!(
                queue_id = id.as_str(),
                client:% = format!("uid {uid}");
                "{id}: uid={uid} from=<{}>",
                tx.sender
            ),
            None => log::info!(
                queue_id = id.as_str(),
                client:% = self.client();
                "{id}: client={}",
                self.client()
            ),
        }
        self.reply(&Reply::start_data());
        if !self.flush().await {
            return Some(End::Lost);
        }
        let cfg = self.config.clone();
        let mut store = Store::new(cfg.queue.large_message_threshold);
        let received = match self.uid {
            Some(uid) => local_received_header(&cfg.server.hostname, uid, id.as_str()),
            None => received_header(
                self.helo.as_deref(),
                &self.name,
                self.ip,
                &cfg.server.hostname,
                self.proto(),
                id.as_str(),
                &rcpt_addrs,
            ),
        };
        // Headers an access table said to PREPEND go above the Received
        // header, as Postfix's smtpd writes them.
        if let Some(tx) = self.tx.as_ref() {
            for header in &tx.prepend {
                store.push(format!("{header}\n").as_bytes());
            }
        }
        let mut inspector =
            (!checks.is_empty()).then(|| Inspector::new(checks, self.content_context(id.as_str())));
        match inspector.as_mut() {
            // Postfix's header_checks see smtpd's Received header too.
            Some(i) => i.feed(received.as_bytes(), &mut |b| store.push(b)),
            None => store.push(received.as_bytes()),
        }
        let mut reader = DataReader::new();
        let mut headers = HeaderBlock::new();
        let limit = cfg.smtpd.message_size_limit;
        let mut too_big = false;
        let mut io_error: Option<std::io::Error> = None;
        // DATA must progress: smtpd.timeout, plus one second per KiB.
        let started = Instant::now();
        loop {
            let stopped = inspector.as_ref().is_some_and(Inspector::stopped);
            let mut sink_store = if too_big || io_error.is_some() || stopped {
                None
            } else {
                Some(&mut store)
            };
            let fed = reader.feed(&self.inbuf, &mut |b: &[u8]| {
                headers.feed(b, &mut |h: &[u8]| match inspector.as_mut() {
                    Some(i) => i.feed(h, &mut |o| {
                        if let Some(s) = sink_store.as_mut() {
                            s.push(o);
                        }
                    }),
                    None => {
                        if let Some(s) = sink_store.as_mut() {
                            s.push(h);
                        }
                    }
                })
            });
            log_content(inspector.as_mut(), &id);
            let done = match fed {
                Feed::Done { consumed } => {
                    self.inbuf.drain(..consumed);
                    true
                }
                Feed::NeedMore => {
                    self.inbuf.clear();
                    false
                }
            };
            if limit > 0 && reader.wire_size() > limit {
                too_big = true;
            }
            if !too_big
                && io_error.is_none()
                && let Err(e) = store.settle(&self.shared.incoming, id.as_str()).await
            {
                io_error = Some(e);
            }
            if done {
                let stopped = inspector.as_ref().is_some_and(Inspector::stopped);
                let keep = !(too_big || io_error.is_some() || stopped);
                headers.finish(&mut |h: &[u8]| match inspector.as_mut() {
                    Some(i) => i.feed(h, &mut |o| {
                        if keep {
                            store.push(o);
                        }
                    }),
                    None => {
                        if keep {
                            store.push(h);
                        }
                    }
                });
                if let Some(i) = inspector.as_mut() {
                    let keep = !(too_big || io_error.is_some() || i.stopped());
                    i.finish(&mut |o| {
                        if keep {
                            store.push(o);
                        }
                    });
                    log_content(Some(i), &id);
                }
                break;
            }
            let allowance = self.limits().timeout + Duration::from_secs(reader.wire_size() / 1024);
            let deadline = self.capped(started + allowance);
            match self.read_more(deadline, false).await {
                Read::Data | Read::Again => {}
                Read::Timeout => {
                    store.discard().await;
                    self.last_cmd = "DATA";
                    if self.session_over() {
                        return Some(self.end_session().await);
                    }
                    let r = Reply::timeout(&self.hostname());
                    self.reply(&r);
                    self.flush().await;
                    return Some(End::Timeout);
                }
                _ => {
                    store.discard().await;
                    log::info!(
                        queue_id = id.as_str(),
                        client:% = crate::logging::client_field(self.uid, self.client());
                        "{id}: lost connection after DATA ({} bytes) from {}",
                        reader.size(),
                        self.client()
                    );
                    self.count("data", false);
                    return Some(End::Closed);
                }
            }
        }
        // A large message's read buffer is not kept for the commands.
        if self.inbuf.capacity() > 4 * READ_CHUNK_KEPT && self.inbuf.len() < READ_CHUNK_KEPT {
            self.inbuf.shrink_to(READ_CHUNK_KEPT);
        }
        let verdict = inspector.map(|i| i.verdict().clone()).unwrap_or_default();
        let result = self
            .finish_message(&id, store, &reader, too_big, io_error, verdict)
            .await;
        self.tx = None;
        match result {
            Ok(()) => {
                self.count("data", true);
                // Postfix forgives earlier errors and junk once a message
                // is through.
                self.errors = 0;
                self.junk = 0;
                None
            }
            Err(r) => {
                self.count("data", false);
                if self.error(&r) {
                    return Some(self.too_many_errors().await);
                }
                None
            }
        }
    }

    /// Who sent the message, for the checks' log lines.
    fn content_context(&self, id: &str) -> content::Context {
        let tx = self.tx.as_ref();
        content::Context {
            queue_id: id.to_string(),
            origin: match self.uid {
                Some(_) => "local".into(),
                None => self.client(),
            },
            sender: tx.map(|t| t.sender.clone()).unwrap_or_default(),
            recipient: tx.and_then(|t| t.rcpts.last()).map(|r| r.address.clone()),
            proto: self.uid.is_none().then(|| self.proto().to_string()),
            helo: self.helo.clone(),
        }
    }

    async fn data_error(&mut self, r: Reply) -> Option<End> {
        if self.error(&r) {
            return Some(self.too_many_errors().await);
        }
        None
    }

    async fn finish_message(
        &mut self,
        id: &QueueId,
        store: Store,
        reader: &DataReader,
        too_big: bool,
        io_error: Option<std::io::Error>,
        verdict: Verdict,
    ) -> Result<(), Reply> {
        let tx = self.tx.as_ref().ok_or_else(Reply::need_rcpt)?;
        let log_reject = |r: &Reply, s: &Self| {
            log::info!(
                queue_id = id.as_str(),
                client:% = crate::logging::client_field(s.uid, s.client()),
                status = "reject";
                "{id}: reject: END-OF-MESSAGE from {}: {r}; from=<{}> proto={} helo=<{}>",
                s.client(),
                tx.sender,
                s.proto(),
                s.helo.as_deref().unwrap_or("")
            );
        };
        if too_big {
            store.discard().await;
            let r = Reply::message_too_big();
            log_reject(&r, self);
            return Err(r);
        }
        if reader.saw_bare_lf() && self.cfg().smtpd.forbid_bare_newline == BareNewline::Reject {
            store.discard().await;
            let r = Reply::bare_lf(&self.hostname());
            log_reject(&r, self);
            return Err(r);
        }
        if let Some(e) = io_error {
            store.discard().await;
            log::warn!(queue_id = id.as_str(); "{id}: queue file write error: {e}");
            return Err(Reply::queue_write_error());
        }
        if let Some(r) = verdict.reject {
            // Logged by the checks (`ID: reject: header …`).
            store.discard().await;
            return Err(r);
        }
        if verdict.discard || tx.discard.is_some() {
            // DISCARD (a header/body check or an access table): the
            // client is told the message was queued; nothing is.
            store.discard().await;
            if tx.discard.is_some() {
                log::info!(queue_id = id.as_str(); "{id}: removed (discarded)");
            }
            self.reply(&Reply::queued(id.as_str()));
            return Ok(());
        }
        let mid = message_id(store.head());
        let size = store.size();
        let mut envelope = Envelope {
            id: id.clone(),
            arrival_us: now_micros(),
            sender: tx.sender.clone(),
            recipients: tx.rcpts.clone(),
            ret: tx.params.ret,
            envid: tx.params.envid.clone(),
            body: tx.params.body.unwrap_or_default(),
            smtputf8: tx.params.smtputf8,
            client: Client {
                name: self.name.clone(),
                addr: self.ip.to_string(),
                helo: self.helo.clone(),
                protocol: self.proto().into(),
            },
            message_id: mid.clone(),
            size,
            // HOLD from a check, or from an access table at RCPT.
            hold: verdict.hold || tx.hold.is_some(),
        };
        if let Some(to) = verdict.redirect {
            envelope.recipients = vec![crate::queue::Recipient {
                address: to,
                orcpt: None,
                notify: None,
            }];
        }
        let incoming = self.shared.incoming.clone();
        let parts = match store.finish(&incoming).await {
            Ok(Finished::Inline(content)) => {
                encode_message_head(&envelope, ContentKind::Inline).map(|head| vec![head, content])
            }
            Ok(Finished::File(path)) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let rel = format!("{}/{name}", crate::queue::INCOMING);
                encode_message(&envelope, MessageContent::File(&rel)).map(|p| vec![p])
            }
            Err(e) => {
                log::warn!(queue_id = id.as_str(); "{id}: queue file write error: {e}");
                let _ = tokio::fs::remove_file(incoming.join(format!("{id}.msg"))).await;
                return Err(Reply::queue_write_error());
            }
        };
        let parts = match parts {
            Ok(p) => p,
            Err(e) => {
                log::warn!(queue_id = id.as_str(); "{id}: cannot encode the queue record: {e}");
                let _ = tokio::fs::remove_file(incoming.join(format!("{id}.msg"))).await;
                return Err(Reply::queue_write_error());
            }
        };
        log::info!(
            queue_id = id.as_str();
            "{id}: message-id={}",
            mid.as_deref().unwrap_or("<>")
        );
        match self
            .shared
            .log
            .append_parts(RecordType::Message, parts)
            .await
        {
            Ok(_) => {
                self.shared.wake_qmgr.notify_one();
                self.reply(&Reply::queued(id.as_str()));
                Ok(())
            }
            Err(e) => {
                log::warn!(queue_id = id.as_str(); "{id}: queue file write error: {e}");
                let _ = tokio::fs::remove_file(incoming.join(format!("{id}.msg"))).await;
                Err(Reply::queue_write_error())
            }
        }
    }
}

/// The checks' log lines so far, with the queue ID as a journal field.
fn log_content(inspector: Option<&mut Inspector>, id: &QueueId) {
    for line in inspector.map(Inspector::take_log).unwrap_or_default() {
        if line.warn {
            log::warn!(queue_id = id.as_str(); "{}", line.text);
        } else {
            log::info!(queue_id = id.as_str(), status = "content"; "{}", line.text);
        }
    }
}
