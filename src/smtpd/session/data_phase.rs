//! The DATA phase of a session: the DATA reader fed from the socket, the
//! header block ended where the client's lines stop being headers
//! ([`crate::smtpd::header_block`], as Postfix's cleanup does), the
//! content inspected by the header and body checks as it streams
//! ([`crate::content`]) and stored (memory, or a file of its own when
//! large), the size limit and the bare-LF policy applied, and the message
//! committed to the queue before the `250`. The transfer has a deadline
//! (`smtpd.timeout` plus a second per KiB) within the session's.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::transaction::Transaction;
use super::{End, Read, Session};
use crate::config::BareNewline;
use crate::content::{self, ContentChecks, Inspector, Verdict};
use crate::queue::message::{ContentKind, MessageContent, encode_message, encode_message_head};
use crate::queue::record::RecordType;
use crate::queue::{Client, Envelope, QueueId, now_micros};
use crate::reply::Reply;
use crate::smtpd::data::{DataReader, Feed};
use crate::smtpd::header_block::HeaderBlock;
use crate::smtpd::received::{Origin, local_received_header, received_header};
use crate::smtpd::store::{Finished, Store, message_id};

/// What the input buffer is shrunk to after DATA.
const READ_CHUNK_KEPT: usize = 8 * 1024;

/// A message on its way in: the DATA reader, the header block, the checks
/// (when any are configured) and the store, and what went wrong so far.
/// Once the message is too big, a write failed or a check stopped it, the
/// rest is read but no longer stored.
struct Intake {
    store: Store,
    reader: DataReader,
    headers: HeaderBlock,
    inspector: Option<Inspector>,
    /// Past `smtpd.message_size_limit`.
    too_big: bool,
    io_error: Option<std::io::Error>,
}

impl Intake {
    fn new(store: Store, inspector: Option<Inspector>) -> Intake {
        Intake {
            store,
            reader: DataReader::new(),
            headers: HeaderBlock::new(),
            inspector,
            too_big: false,
            io_error: None,
        }
    }

    fn stopped(&self) -> bool {
        self.inspector.as_ref().is_some_and(Inspector::stopped)
    }

    /// Whether the content still goes to the store.
    fn keep(&self) -> bool {
        !(self.too_big || self.io_error.is_some() || self.stopped())
    }

    /// Feed what the client sent: through the DATA reader, the header
    /// block and the checks into the store.
    fn feed(&mut self, input: &[u8]) -> Feed {
        let keep = self.keep();
        let Intake {
            store,
            reader,
            headers,
            inspector,
            ..
        } = self;
        let mut sink_store = keep.then_some(store);
        reader.feed(input, &mut |b: &[u8]| {
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
        })
    }

    /// After each piece: the size limit, and the store's spill file.
    async fn settle(&mut self, limit: u64, incoming: &Path, id: &QueueId) {
        if limit > 0 && self.reader.wire_size() > limit {
            self.too_big = true;
        }
        if !self.too_big
            && self.io_error.is_none()
            && let Err(e) = self.store.settle(incoming, id.as_str()).await
        {
            self.io_error = Some(e);
        }
    }

    /// The end of the data: the header block and the checks finished.
    fn finish(&mut self, id: &QueueId) {
        let keep = self.keep();
        let Intake {
            store,
            headers,
            inspector,
            too_big,
            io_error,
            ..
        } = self;
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
            let keep = !(*too_big || io_error.is_some() || i.stopped());
            i.finish(&mut |o| {
                if keep {
                    store.push(o);
                }
            });
            log_content(Some(i), id);
        }
    }

    /// The transfer did not end: nothing is kept.
    async fn discard(self) {
        self.store.discard().await;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn data(&mut self) -> Option<End> {
        let checks = match self.data_allowed() {
            Ok(checks) => checks,
            Err(r) => {
                self.count("data", false);
                return self.data_error(r).await;
            }
        };
        let id = self.start_data();
        self.reply(&Reply::start_data());
        if !self.flush().await {
            return Some(End::Lost);
        }
        let intake = self.intake(&id, checks);
        let intake = match self.receive(&id, intake).await {
            Ok(intake) => intake,
            Err(end) => return Some(end),
        };
        // A large message's read buffer is not kept for the commands.
        self.io.shrink_input(READ_CHUNK_KEPT);
        let result = self.finish_message(&id, intake).await;
        self.tx = None;
        match result {
            Ok(()) => {
                self.count("data", true);
                // Postfix forgives earlier errors and junk once a message
                // is through.
                self.counters.errors = 0;
                self.counters.junk = 0;
                None
            }
            Err(r) => {
                self.count("data", false);
                self.data_error(r).await
            }
        }
    }

    /// DATA needs a transaction with recipients, and the header and body
    /// checks' tables.
    fn data_allowed(&self) -> Result<ContentChecks, Reply> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(Reply::need_rcpt());
        };
        if tx.rcpts.is_empty() {
            return Err(Reply::no_valid_recipients());
        }
        ContentChecks::open(&self.config).map_err(|e| {
            log::warn!("header or body checks: {e}");
            Reply::new(451, "4.3.5", "Server configuration error")
        })
    }

    /// The message gets its queue ID, and the log its first line
    /// (`ID: client=…`, or pickup's `ID: uid=N from=<…>`).
    fn start_data(&mut self) -> QueueId {
        let id = self.shared.ids.next();
        if let Some(tx) = self.tx.as_mut() {
            tx.id = Some(id.clone());
        }
        let sender = self.tx.as_ref().map_or("", |t| t.sender.as_str());
        match self.client.uid {
            // Postfix's pickup: "uid=1000 from=<user>".
            Some(uid) => log::info!(
                queue_id = id.as_str(),
                client:% = format!("uid {uid}");
                "{id}: uid={uid} from=<{}>",
                sender
            ),
            None => log::info!(
                queue_id = id.as_str(),
                client:% = self.client(),
                sasl_username = self.sasl_user();
                "{id}: client={}{}",
                self.client(),
                self.sasl_log_items()
            ),
        }
        id
    }

    /// The store for the message, with what smtpd writes above the
    /// client's content: PREPENDed headers, then the Received header
    /// (which the header checks see, as Postfix's do).
    fn intake(&self, id: &QueueId, checks: ContentChecks) -> Intake {
        let cfg = &self.config;
        let mut store = Store::new(cfg.queue.large_message_threshold);
        let rcpt_addrs: Vec<String> = self
            .tx
            .iter()
            .flat_map(|t| t.rcpts.iter().map(|r| r.address.clone()))
            .collect();
        let received = match self.client.uid {
            Some(uid) => local_received_header(&cfg.server.hostname, uid, id.as_str()),
            None => received_header(
                &Origin {
                    helo: self.helo(),
                    client_name: &self.client.name,
                    client_addr: self.client.ip,
                    tls: self.io.tls(),
                },
                &cfg.server.hostname,
                self.received_proto(),
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
        Intake::new(store, inspector)
    }

    /// Read the message to its final dot. DATA must progress:
    /// `smtpd.timeout`, plus one second per KiB, within the session's
    /// time.
    async fn receive(&mut self, id: &QueueId, mut intake: Intake) -> Result<Intake, End> {
        let limit = self.cfg().smtpd.message_size_limit;
        let started = Instant::now();
        loop {
            let fed = intake.feed(&self.io.inbuf);
            log_content(intake.inspector.as_mut(), id);
            let done = match fed {
                Feed::Done { consumed } => {
                    self.io.inbuf.drain(..consumed);
                    true
                }
                Feed::NeedMore => {
                    self.io.inbuf.clear();
                    false
                }
            };
            intake.settle(limit, &self.shared.incoming, id).await;
            if done {
                intake.finish(id);
                return Ok(intake);
            }
            let allowance =
                self.limits().timeout + Duration::from_secs(intake.reader.wire_size() / 1024);
            let deadline = self.capped(started + allowance);
            match self.read_more(deadline, false).await {
                Read::Data | Read::Again => {}
                Read::Timeout => {
                    intake.discard().await;
                    return Err(self.data_timeout().await);
                }
                _ => {
                    let size = intake.reader.size();
                    intake.discard().await;
                    log::info!(
                        queue_id = id.as_str(),
                        client:% = self.client.field();
                        "{id}: lost connection after DATA ({size} bytes) from {}",
                        self.client()
                    );
                    self.count("data", false);
                    return Err(End::Closed);
                }
            }
        }
    }

    /// The client stopped sending in the middle of the message.
    async fn data_timeout(&mut self) -> End {
        self.counters.last_cmd = "DATA";
        if self.session_over() {
            return self.end_session().await;
        }
        let r = Reply::timeout(&self.hostname());
        self.close(&r, End::Timeout).await
    }

    /// Who sent the message, for the checks' log lines.
    fn content_context(&self, id: &str) -> content::Context {
        let tx = self.tx.as_ref();
        content::Context {
            queue_id: id.to_string(),
            origin: match self.client.uid {
                Some(_) => "local".into(),
                None => self.client(),
            },
            sender: tx.map(|t| t.sender.clone()).unwrap_or_default(),
            recipient: tx.and_then(|t| t.rcpts.last()).map(|r| r.address.clone()),
            proto: self.client.uid.is_none().then(|| self.proto().to_string()),
            helo: self.helo().map(str::to_string),
        }
    }

    async fn data_error(&mut self, r: Reply) -> Option<End> {
        if self.error(&r) {
            return Some(self.too_many_errors().await);
        }
        None
    }

    /// The message read: refused, discarded, or queued (and `250 … queued
    /// as ID` only once its record is durable). The transaction ends here.
    async fn finish_message(&mut self, id: &QueueId, intake: Intake) -> Result<(), Reply> {
        let Intake {
            store,
            reader,
            inspector,
            too_big,
            io_error,
            ..
        } = intake;
        let mut verdict = inspector.map(|i| i.verdict().clone()).unwrap_or_default();
        let tx = self.tx.take().ok_or_else(Reply::need_rcpt)?;
        let reject = verdict.reject.take();
        if let Some(r) = self.refusal(id, &tx, &reader, too_big, io_error, reject) {
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
        let envelope = self.envelope(id, tx, &store, verdict);
        self.commit(id, store, &envelope).await
    }

    /// Why the message is refused at its end, if it is: too big, a bare
    /// LF refused, a write error, or a header or body check's REJECT
    /// (which the checks logged).
    fn refusal(
        &self,
        id: &QueueId,
        tx: &Transaction,
        reader: &DataReader,
        too_big: bool,
        io_error: Option<std::io::Error>,
        reject: Option<Reply>,
    ) -> Option<Reply> {
        if too_big {
            let r = Reply::message_too_big();
            self.log_eom_reject(id, tx, &r);
            return Some(r);
        }
        if reader.saw_bare_lf() && self.cfg().smtpd.forbid_bare_newline == BareNewline::Reject {
            let r = Reply::bare_lf(&self.hostname());
            self.log_eom_reject(id, tx, &r);
            return Some(r);
        }
        if let Some(e) = io_error {
            log::warn!(queue_id = id.as_str(); "{id}: queue file write error: {e}");
            return Some(Reply::queue_write_error());
        }
        reject
    }

    /// Postfix's line for a message refused at its end.
    fn log_eom_reject(&self, id: &QueueId, tx: &Transaction, r: &Reply) {
        log::info!(
            queue_id = id.as_str(),
            client:% = self.client.field(),
            status = "reject";
            "{id}: reject: END-OF-MESSAGE from {}: {r}; from=<{}> proto={} helo=<{}>",
            self.client(),
            tx.sender,
            self.proto(),
            self.helo().unwrap_or("")
        );
    }

    /// The queue's envelope for the message: the transaction's, with what
    /// the checks said (HOLD, REDIRECT).
    fn envelope(&self, id: &QueueId, tx: Transaction, store: &Store, verdict: Verdict) -> Envelope {
        let mut envelope = Envelope {
            id: id.clone(),
            arrival_us: now_micros(),
            sender: tx.sender,
            recipients: tx.rcpts,
            ret: tx.params.ret,
            envid: tx.params.envid,
            body: tx.params.body.unwrap_or_default(),
            smtputf8: tx.params.smtputf8,
            client: Client {
                name: self.client.name.clone(),
                addr: self.client.ip.to_string(),
                helo: self.helo().map(str::to_string),
                protocol: self.proto().into(),
            },
            message_id: message_id(store.head()),
            size: store.size(),
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
        envelope
    }

    /// Write the message to the queue (its content inline, or the spill
    /// file named) through the group-commit log writer, wake qmgr, and
    /// say `250 … queued as ID`. A failure removes the spill file.
    async fn commit(
        &mut self,
        id: &QueueId,
        store: Store,
        envelope: &Envelope,
    ) -> Result<(), Reply> {
        let incoming = self.shared.incoming.clone();
        let parts = match store.finish(&incoming).await {
            Ok(Finished::Inline(content)) => {
                encode_message_head(envelope, ContentKind::Inline).map(|head| vec![head, content])
            }
            Ok(Finished::File(path)) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let rel = format!("{}/{name}", crate::queue::INCOMING);
                encode_message(envelope, MessageContent::File(&rel)).map(|p| vec![p])
            }
            Err(e) => {
                log::warn!(queue_id = id.as_str(); "{id}: queue file write error: {e}");
                return Err(remove_spill(&incoming, id).await);
            }
        };
        let parts = match parts {
            Ok(p) => p,
            Err(e) => {
                log::warn!(queue_id = id.as_str(); "{id}: cannot encode the queue record: {e}");
                return Err(remove_spill(&incoming, id).await);
            }
        };
        log::info!(
            queue_id = id.as_str();
            "{id}: message-id={}",
            envelope.message_id.as_deref().unwrap_or("<>")
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
                Err(remove_spill(&incoming, id).await)
            }
        }
    }
}

/// After a failed write: the message's spill file removed (if it has
/// one), and the reply.
async fn remove_spill(incoming: &Path, id: &QueueId) -> Reply {
    let _ = tokio::fs::remove_file(incoming.join(format!("{id}.msg"))).await;
    Reply::queue_write_error()
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
