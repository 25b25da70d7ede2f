//! The DATA phase of a session: the DATA reader fed from the socket, the
//! header block ended where the client's lines stop being headers
//! ([`crate::smtpd::header_block`], as Postfix's cleanup does), the
//! content inspected by the header and body checks as it streams
//! ([`crate::content`]) and stored (memory, or a file of its own when
//! large), the size limit and the bare-LF policy applied, and the message
//! committed to the queue before the `250`. The transfer has a deadline
//! (`smtpd.timeout` plus a second per KiB) within the session's.
//!
//! Everything after the reader ([`Intake`], the refusal, discard and
//! commit at the end) serves BDAT too ([`super::bdat`]), with the BDAT
//! reader in the DATA reader's place.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::milter::{Said, Stage};
use super::transaction::Transaction;
use super::verify::Inspected;
use super::{End, Read, Session};
use crate::config::BareNewline;
use crate::content::{self, ContentChecks, Inspector, Verdict};
use crate::queue::message::{ContentKind, MessageContent, encode_message, encode_message_head};
use crate::queue::record::RecordType;
use crate::queue::{Client, Envelope, QueueId, now_micros};
use crate::reply::Reply;
use crate::smtpd::chunk::ChunkReader;
use crate::smtpd::data::{DataReader, Feed};
use crate::smtpd::header_block::HeaderBlock;
use crate::smtpd::received::{Origin, local_received_header, received_header};
use crate::smtpd::store::{Finished, Store, message_id};

/// What the input buffer is shrunk to after DATA or BDAT.
pub(super) const READ_CHUNK_KEPT: usize = 8 * 1024;

/// How the client's bytes become the stored content: the DATA reader
/// (dot-unstuffing, the end only at CRLF.CRLF) or the BDAT reader
/// (counted chunks, ended by LAST). Both give the same stored form, so
/// everything after them is shared.
pub(super) enum Reader {
    Data(DataReader),
    Chunks(ChunkReader),
}

impl Reader {
    /// Bytes of stored content so far.
    fn size(&self) -> u64 {
        match self {
            Reader::Data(r) => r.size(),
            Reader::Chunks(r) => r.size(),
        }
    }

    /// Postfix's count for `smtpd.message_size_limit`.
    fn wire_size(&self) -> u64 {
        match self {
            Reader::Data(r) => r.wire_size(),
            Reader::Chunks(r) => r.wire_size(),
        }
    }

    fn saw_bare_lf(&self) -> bool {
        match self {
            Reader::Data(r) => r.saw_bare_lf(),
            Reader::Chunks(r) => r.saw_bare_lf(),
        }
    }
}

/// A message on its way in: the reader, the header block, the checks
/// (when any are configured) and the store, and what went wrong so far.
/// Once the message is too big, a write failed or a check stopped it, the
/// rest is read but no longer stored.
pub(super) struct Intake {
    store: Store,
    reader: Reader,
    headers: HeaderBlock,
    inspector: Option<Inspector>,
    /// Past `smtpd.message_size_limit`.
    pub(super) too_big: bool,
    pub(super) io_error: Option<std::io::Error>,
}

/// The stored form's way to the store: the header block's end, the checks
/// (when any), and the store while the content is kept.
fn pass_on<'a>(
    headers: &'a mut HeaderBlock,
    inspector: &'a mut Option<Inspector>,
    mut store: Option<&'a mut Store>,
) -> impl FnMut(&[u8]) + 'a {
    move |b: &[u8]| {
        headers.feed(b, &mut |h: &[u8]| match inspector.as_mut() {
            Some(i) => i.feed(h, &mut |o| {
                if let Some(s) = store.as_mut() {
                    s.push(o);
                }
            }),
            None => {
                if let Some(s) = store.as_mut() {
                    s.push(h);
                }
            }
        })
    }
}

impl Intake {
    fn new(store: Store, inspector: Option<Inspector>, reader: Reader) -> Intake {
        Intake {
            store,
            reader,
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

    /// Feed what the client sent: through the reader, the header block
    /// and the checks into the store. Chunk octets are all content
    /// ([`Feed::NeedMore`]).
    pub(super) fn feed(&mut self, input: &[u8]) -> Feed {
        let (reader, mut sink) = self.reader_and_sink();
        match reader {
            Reader::Data(r) => r.feed(input, &mut sink),
            Reader::Chunks(r) => {
                r.feed(input, &mut sink);
                Feed::NeedMore
            }
        }
    }

    /// The LAST chunk was read: what the BDAT reader held back (a CR, the
    /// line end of an open last line) goes on. Nothing for DATA, whose
    /// end is its own.
    pub(super) fn end_of_chunks(&mut self) {
        let (reader, mut sink) = self.reader_and_sink();
        if let Reader::Chunks(r) = reader {
            r.finish(&mut sink);
        }
    }

    /// The reader, and the way on for what it stores ([`pass_on`]).
    fn reader_and_sink(&mut self) -> (&mut Reader, impl FnMut(&[u8]) + '_) {
        let keep = self.keep();
        let Intake {
            store,
            reader,
            headers,
            inspector,
            ..
        } = self;
        (reader, pass_on(headers, inspector, keep.then_some(store)))
    }

    /// Octets of content stored so far.
    pub(super) fn size(&self) -> u64 {
        self.reader.size()
    }

    /// The checks' log lines so far.
    pub(super) fn log_checks(&mut self, id: &QueueId) {
        log_content(self.inspector.as_mut(), id);
    }

    /// After each piece: the size limit, and the store's spill file.
    pub(super) async fn settle(&mut self, limit: u64, incoming: &Path, id: &QueueId) {
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
    pub(super) fn finish(&mut self, id: &QueueId) {
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
    pub(super) async fn discard(self) {
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
        if let Said::Refuse(r) = self.milter_stage(Stage::Data).await {
            self.count("data", false);
            return self.data_error(r).await;
        }
        self.reply(&Reply::start_data());
        if !self.flush().await {
            return Some(End::Lost);
        }
        let intake = self.intake(&id, checks, Reader::Data(DataReader::new()));
        let intake = match self.receive(&id, intake).await {
            Ok(intake) => intake,
            Err(end) => return Some(end),
        };
        let result = self.finish_message(&id, intake).await;
        self.message_done("data", result, Reply::queued(id.as_str()))
            .await
    }

    /// The end of a message (DATA's final dot, BDAT LAST), `result` what
    /// became of it: `ok` said when it was queued (or discarded), the
    /// refusal otherwise. The transaction is over either way.
    pub(super) async fn message_done(
        &mut self,
        verb: &'static str,
        result: Result<(), Reply>,
        ok: Reply,
    ) -> Option<End> {
        self.tx = None;
        // A large message's read buffer is not kept for the commands.
        self.io.shrink_input(READ_CHUNK_KEPT);
        match result {
            Ok(()) => {
                self.reply(&ok);
                self.count(verb, true);
                // Postfix forgives earlier errors and junk once a message
                // is through.
                self.counters.errors = 0;
                self.counters.junk = 0;
                None
            }
            Err(r) => {
                self.count(verb, false);
                self.data_error(r).await
            }
        }
    }

    /// DATA (and a message's first BDAT chunk) needs a transaction with
    /// recipients, not begun with BDAT, and the header and body checks'
    /// tables.
    pub(super) fn data_allowed(&self) -> Result<ContentChecks, Reply> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(Reply::need_rcpt());
        };
        if tx.chunking.is_some() {
            return Err(Reply::after_bdat("DATA"));
        }
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
    pub(super) fn start_data(&mut self) -> QueueId {
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
    pub(super) fn intake(&self, id: &QueueId, checks: ContentChecks, reader: Reader) -> Intake {
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
        Intake::new(store, inspector, reader)
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
                    return Err(self.data_timeout("DATA").await);
                }
                _ => {
                    let size = intake.size();
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

    /// The client stopped sending in the middle of the message (or of a
    /// BDAT chunk: `cmd`).
    pub(super) async fn data_timeout(&mut self, cmd: &'static str) -> End {
        self.counters.last_cmd = cmd;
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

    /// A refusal of DATA, BDAT or a message, counted as an error (the
    /// session ends at `smtpd.hard_error_limit`).
    pub(super) async fn data_error(&mut self, r: Reply) -> Option<End> {
        if self.error(&r) {
            return Some(self.too_many_errors().await);
        }
        None
    }

    /// The message read: refused, discarded, or queued (`Ok` only once its
    /// record is durable, and then the caller says `250 … queued as ID`).
    /// The transaction ends here.
    pub(super) async fn finish_message(
        &mut self,
        id: &QueueId,
        intake: Intake,
    ) -> Result<(), Reply> {
        let Intake {
            mut store,
            reader,
            inspector,
            too_big,
            io_error,
            ..
        } = intake;
        let mut verdict = inspector.map(|i| i.verdict().clone()).unwrap_or_default();
        let mut tx = self.tx.take().ok_or_else(Reply::need_rcpt)?;
        let reject = verdict.reject.take();
        let bare_lf = reader.saw_bare_lf();
        if let Some(r) = self.refusal(id, &tx, bare_lf, too_big, io_error, reject) {
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
            return Ok(());
        }
        match self.inspect(id, &mut tx, &mut store, &mut verdict).await {
            Err(r) => {
                store.discard().await;
                return Err(r);
            }
            Ok(Inspected::Discard) => {
                store.discard().await;
                log::info!(queue_id = id.as_str(); "{id}: removed (discarded)");
                return Ok(());
            }
            Ok(Inspected::Keep) => {}
        }
        if let Err(r) = self.rewrite(id, &mut tx) {
            store.discard().await;
            return Err(r);
        }
        if let Err(r) = self.rewrite_headers(id, &tx.sender, &mut store).await {
            store.discard().await;
            return Err(r);
        }
        let envelope = self.envelope(id, tx, &store, verdict);
        self.commit(id, store, &envelope).await?;
        crate::metrics::registry::sink::inc(
            crate::metrics::registry::MESSAGES_ACCEPTED,
            &[("listener", self.service.name())],
        );
        Ok(())
    }

    /// The envelope rewritten as it enters the queue
    /// ([`crate::rewrite`]: canonical mapping, masquerading, virtual
    /// aliases). A limit passed or a table that fails: the message is not
    /// taken, try again later, as Postfix's cleanup answers.
    fn rewrite(&self, id: &QueueId, tx: &mut Transaction) -> Result<(), Reply> {
        let rewriter = self.policy.rewriter();
        match rewriter.envelope(&mut tx.sender, &mut tx.rcpts) {
            Ok(()) => Ok(()),
            Err(e) => {
                log::warn!(
                    queue_id = id.as_str();
                    "{id}: {e} -- message not accepted, try again later"
                );
                let r = Reply::alias_expansion_error();
                self.log_reject_at("END-OF-MESSAGE", id, &tx.sender, &r);
                Err(r)
            }
        }
    }

    /// The addresses of the message's headers rewritten (canonical,
    /// masquerading) for mail from this host: a local submission or a
    /// loopback client (Postfix's `local_header_rewrite_clients =
    /// permit_inet_interfaces`); others' headers are left as they came.
    async fn rewrite_headers(
        &mut self,
        id: &QueueId,
        sender: &str,
        store: &mut Store,
    ) -> Result<(), Reply> {
        let rewriter = self.policy.rewriter();
        let ours = self.client.uid.is_some() || self.client.ip.to_canonical().is_loopback();
        if !ours || !rewriter.rewrites_headers() {
            return Ok(());
        }
        let write_error = |e: std::io::Error| {
            log::warn!(queue_id = id.as_str(); "{id}: queue file write error: {e}");
            Reply::queue_write_error()
        };
        let content = store.content().await.map_err(write_error)?;
        match rewriter.headers(&content) {
            Ok(None) => Ok(()),
            Ok(Some(new)) => store.replace_content(new).await.map_err(write_error),
            Err(e) => {
                log::warn!(
                    queue_id = id.as_str();
                    "{id}: {e} -- message not accepted, try again later"
                );
                let r = Reply::alias_expansion_error();
                self.log_reject_at("END-OF-MESSAGE", id, sender, &r);
                Err(r)
            }
        }
    }

    /// Why the message is refused at its end, if it is: too big, a bare
    /// LF refused, a write error, or a header or body check's REJECT
    /// (which the checks logged).
    fn refusal(
        &self,
        id: &QueueId,
        tx: &Transaction,
        bare_lf: bool,
        too_big: bool,
        io_error: Option<std::io::Error>,
        reject: Option<Reply>,
    ) -> Option<Reply> {
        if too_big {
            let r = Reply::message_too_big();
            self.log_reject_at("END-OF-MESSAGE", id, &tx.sender, &r);
            return Some(r);
        }
        if bare_lf && self.cfg().smtpd.forbid_bare_newline == BareNewline::Reject {
            let r = Reply::bare_lf(&self.hostname());
            self.log_reject_at("END-OF-MESSAGE", id, &tx.sender, &r);
            return Some(r);
        }
        if let Some(e) = io_error {
            log::warn!(queue_id = id.as_str(); "{id}: queue file write error: {e}");
            return Some(Reply::queue_write_error());
        }
        reject
    }

    /// Postfix's line for a message refused at its end (`END-OF-MESSAGE`)
    /// or at a BDAT chunk before the last (`BDAT`).
    pub(super) fn log_reject_at(&self, what: &str, id: &QueueId, sender: &str, r: &Reply) {
        log::info!(
            queue_id = id.as_str(),
            client:% = self.client.field(),
            status = "reject";
            "{id}: reject: {what} from {}: {r}; from=<{}> proto={} helo=<{}>",
            self.client(),
            sender,
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
                sasl_username: self.sasl_user().map(str::to_string),
                uid: self.client.uid,
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
                original: None,
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
