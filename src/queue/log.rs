//! The group-commit writer of a queue log (DESIGN.md, "The queue").
//!
//! One thread owns the log directory's current segment file. Appenders hand
//! it records through a channel and wait. The thread takes every record
//! waiting (up to a batch cap), writes them with one `writev`, calls
//! `fdatasync` once, and only then tells each appender where its record is.
//! While it waits for the disk, new records queue up for the next batch, so
//! under load one `fdatasync` serves many messages. An appender is told
//! "durable" only after the `fdatasync` of its batch succeeded.
//!
//! Segments: files `<prefix><name>.log` in the log directory (see
//! [`LogOptions`]), created with `O_CREAT|O_EXCL`, mode 0600, and made
//! durable by an `fsync` of the directory before the first record is
//! written. The writer never appends to a file it did not create in this
//! run: it starts a new segment at start, after an error, and after a seal.
//! A segment is sealed (a [`RecordType::Seal`] record, empty payload, synced
//! with the batch or on its own) when it reaches `max_segment_bytes`, when
//! it has been idle for `seal_after_idle`, on [`LogWriter::seal`], and when
//! the writer stops. The next segment is created at the next append.
//!
//! Room ahead: a segment is filled with zeros ahead of its records, a
//! step of [`ZERO_AHEAD`] (1 MiB) at a time, written and synced with the
//! batch that first needs the step; a sealed segment is truncated to its
//! records. A batch written over zeros leaves the file's size and blocks
//! as they were, so its `fdatasync` flushes data only: on a journaling
//! file system (ext4, XFS), an append that grows the file costs a journal
//! commit at every `fdatasync`, and that was a third of the time of a
//! message at one session (docs/performance.md). Readers see the zeros:
//! one that follows a segment still written stops at a record header of
//! zero bytes ([`super::record::LogReader::stop_at_zeros`]), and for
//! every reader zero bytes up to the end of the file are no record (the
//! end is clean where they start). A crash leaves the room in an
//! unsealed segment; it goes with the segment.
//!
//! Failure: if a write or `fdatasync` fails, every appender of that batch
//! gets the error, and the segment is abandoned unsealed (after a failed
//! `fdatasync` the state of the page cache is unknown, so it is never
//! retried); the next batch goes to a new segment. Records of a failed
//! batch may still turn up when the segment is read: their senders were
//! told to retry, so at worst a message is queued twice, never lost. A
//! segment whose first batch failed holds nothing anyone was told is
//! durable, and is removed: a full disk does not leave an empty file
//! behind for every attempt.
//!
//! Lazy records ([`LogWriter::append_all`] with `lazy`) are written with the next
//! batch but do not ask for an `fdatasync` of their own: they become
//! durable with the next synced batch, a seal, or [`LogWriter::sync`]. qmgr
//! uses them for outcomes whose loss would at worst repeat a delivery, and
//! syncs before it deletes anything those outcomes allow it to delete.
//!
//! For readers: a writer only ever appends to its newest segment, so a
//! segment that is sealed, or older than another segment of the same
//! writer, is finished (an unsealed one was abandoned after an error or a
//! crash). The writer also holds an exclusive `flock` on the segment it
//! appends to, taken right after creating it (before its first byte) and
//! released only when it lets the file go (seal, error, exit, crash): a
//! segment that is not empty and not locked ([`writer_gone`]) is finished
//! too, so a reader can tell a record still being written from one a
//! crash or a truncation cut short.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tokio::sync::{oneshot, watch};

use super::record::{self, HEADER_LEN, RecordTooLarge, RecordType};

/// How a [`LogWriter`] names, sizes and batches its segments.
pub(crate) struct LogOptions {
    /// First part of every segment's file name (`S` for smtpd).
    pub prefix: String,
    /// Seal a segment once it holds this many bytes (the batch that crosses
    /// the limit still goes in whole).
    pub max_segment_bytes: u64,
    /// Seal a non-empty segment after this long without appends.
    pub seal_after_idle: Option<Duration>,
    /// Most records in one batch (at least one is always taken).
    pub max_batch_records: usize,
    /// Stop adding records to a batch once it holds this many bytes.
    pub max_batch_bytes: usize,
    /// The middle part of a new segment's file name, usually a fresh queue
    /// ID: the file is `<prefix><name()>.log`. Called again if that file
    /// already exists.
    pub name: Box<dyn FnMut() -> String + Send>,
    /// The `log` label of its group commits in the metrics
    /// (`postern_queue_commit_batch_size`, `postern_queue_fsync_seconds`);
    /// `None`: not counted.
    pub metrics: Option<&'static str>,
}

impl LogOptions {
    /// Options with the default sizes: segments of 16 MiB sealed after
    /// 60 s idle, batches of at most 256 records or 4 MiB.
    pub(crate) fn new(
        prefix: impl Into<String>,
        name: impl FnMut() -> String + Send + 'static,
    ) -> Self {
        LogOptions {
            prefix: prefix.into(),
            max_segment_bytes: 16 << 20,
            seal_after_idle: Some(Duration::from_secs(60)),
            max_batch_records: 256,
            max_batch_bytes: 4 << 20,
            name: Box::new(name),
            metrics: None,
        }
    }
}

/// Where an appended record landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    /// The segment's file name, relative to the log directory
    /// (e.g. `S0001234ABCDEA.log`).
    pub path: PathBuf,
    /// File offset of the record's payload in that segment.
    pub offset: u64,
}

#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum LogError {
    #[error(transparent)]
    TooLarge(#[from] RecordTooLarge),
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("the queue log writer has stopped")]
    Closed,
}

impl LogError {
    fn io(op: &'static str, path: &Path, source: io::Error) -> LogError {
        LogError::Io {
            op,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

/// Counters since start.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogStats {
    /// Batches committed (written and synced).
    pub batches: u64,
    /// Records committed.
    pub records: u64,
    /// `fdatasync` calls on segments (batches and seals).
    pub data_syncs: u64,
    /// Segments created.
    pub segments: u64,
    /// Batches or seals that failed.
    pub failures: u64,
}

/// A handle on the writer thread of one log directory. Clone it freely; the
/// writer seals its segment and stops when the last handle is dropped or on
/// [`LogWriter::shutdown`].
#[derive(Clone)]
pub(crate) struct LogWriter {
    tx: mpsc::Sender<Command>,
    // The counters and the commit signal of the writer thread: only the
    // tests read them through the handle (qmgr and smtpd learn of commits
    // from each record's answer).
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "read by the tests' stats, subscribe and inject_fault"
        )
    )]
    shared: Arc<Shared>,
}

impl LogWriter {
    /// Starts the writer thread for the directory `dir` (which must exist).
    /// No file is created before the first append.
    pub(crate) fn start(dir: PathBuf, options: LogOptions) -> io::Result<LogWriter> {
        let dir_file = File::open(&dir)?;
        if !dir_file.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            committed: watch::Sender::new(0),
            stats: Counters::default(),
            #[cfg(test)]
            fault: std::sync::atomic::AtomicU8::new(0),
        });
        let writer = Writer {
            dir,
            dir_file,
            options,
            rx,
            shared: Arc::clone(&shared),
            segment: None,
        };
        std::thread::Builder::new()
            .name("queue-log".into())
            .spawn(move || writer.run())?;
        Ok(LogWriter { tx, shared })
    }

    /// Appends one record; resolves once it is written and synced.
    /// Dropping the future does not withdraw the record. (qmgr appends
    /// with [`LogWriter::append_all`], smtpd with
    /// [`LogWriter::append_parts`].)
    #[cfg(test)]
    pub(crate) async fn append(
        &self,
        rtype: RecordType,
        payload: Vec<u8>,
    ) -> Result<Appended, LogError> {
        self.append_parts(rtype, vec![payload]).await
    }

    /// Appends one record whose payload is the concatenation of `parts`
    /// (written with `writev`, not joined), e.g. a message head and its
    /// content.
    pub(crate) async fn append_parts(
        &self,
        rtype: RecordType,
        parts: Vec<Vec<u8>>,
    ) -> Result<Appended, LogError> {
        self.send(rtype, parts, false).await
    }

    /// Appends one record; resolves once it is written (in order with every
    /// other record), without waiting for an `fdatasync`: it is durable
    /// after the next synced batch, seal or [`LogWriter::sync`].
    #[cfg(test)]
    pub(crate) async fn append_lazy(
        &self,
        rtype: RecordType,
        payload: Vec<u8>,
    ) -> Result<Appended, LogError> {
        self.send(rtype, vec![payload], true).await
    }

    /// Appends several records (each one payload), all handed to the
    /// writer before waiting, so that they can share a batch; resolves
    /// once every one is written (and synced unless `lazy`), with each
    /// one's result in order. No task per record.
    pub(crate) async fn append_all(
        &self,
        records: Vec<(RecordType, Vec<u8>)>,
        lazy: bool,
    ) -> Vec<Result<Appended, LogError>> {
        let sent: Vec<_> = records
            .into_iter()
            .map(|(rtype, payload)| self.hand_over(rtype, vec![payload], lazy))
            .collect();
        let mut out = Vec::with_capacity(sent.len());
        for s in sent {
            out.push(match s {
                Ok(done) => done.await.map_err(|_| LogError::Closed).and_then(|r| r),
                Err(e) => Err(e),
            });
        }
        out
    }

    async fn send(
        &self,
        rtype: RecordType,
        parts: Vec<Vec<u8>>,
        lazy: bool,
    ) -> Result<Appended, LogError> {
        let done = self.hand_over(rtype, parts, lazy)?;
        done.await.map_err(|_| LogError::Closed)?
    }

    /// The record handed to the writer thread; its answer comes on the
    /// receiver.
    fn hand_over(
        &self,
        rtype: RecordType,
        parts: Vec<Vec<u8>>,
        lazy: bool,
    ) -> Result<oneshot::Receiver<Result<Appended, LogError>>, LogError> {
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let header = record::encode_header_parts(rtype, &slices)?;
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Append(Pending {
                header,
                parts,
                lazy,
                reply,
            }))
            .map_err(|_| LogError::Closed)?;
        Ok(done)
    }

    /// Makes every record written so far durable (one `fdatasync` when some
    /// lazy record is not yet synced, nothing otherwise).
    pub(crate) async fn sync(&self) -> Result<(), LogError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Sync(reply))
            .map_err(|_| LogError::Closed)?;
        done.await.map_err(|_| LogError::Closed)?
    }

    /// Seals the current segment now (if there is one); resolves once the
    /// seal record is synced. The next append starts a new segment.
    pub(crate) async fn seal(&self) -> Result<(), LogError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Seal(reply))
            .map_err(|_| LogError::Closed)?;
        done.await.map_err(|_| LogError::Closed)?
    }

    /// Seals the current segment and stops the writer, for every handle.
    /// Records queued before are committed first; later appends fail with
    /// [`LogError::Closed`]. Stopping a stopped writer is not an error.
    pub(crate) async fn shutdown(&self) -> Result<(), LogError> {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Command::Shutdown(reply)).is_err() {
            return Ok(());
        }
        done.await.unwrap_or(Ok(()))
    }

    /// A counter that goes up after every commit (a batch of records or a
    /// seal): wake readers once per batch, not once per record.
    #[cfg(test)]
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.committed.subscribe()
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> LogStats {
        let c = &self.shared.stats;
        LogStats {
            batches: c.batches.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            data_syncs: c.data_syncs.load(Ordering::Relaxed),
            segments: c.segments.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
        }
    }

    /// Makes the next batch fail: 1 = a write cut short, 2 = `fdatasync`.
    #[cfg(test)]
    fn inject_fault(&self, fault: u8) {
        self.shared.fault.store(fault, Ordering::SeqCst);
    }
}

/// State the writer thread shares with the handles.
struct Shared {
    committed: watch::Sender<u64>,
    stats: Counters,
    #[cfg(test)]
    fault: std::sync::atomic::AtomicU8,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    data_syncs: AtomicU64,
    segments: AtomicU64,
    failures: AtomicU64,
}

enum Command {
    Append(Pending),
    Sync(oneshot::Sender<Result<(), LogError>>),
    Seal(oneshot::Sender<Result<(), LogError>>),
    Shutdown(oneshot::Sender<Result<(), LogError>>),
}

/// A record waiting for its batch.
struct Pending {
    header: [u8; HEADER_LEN],
    parts: Vec<Vec<u8>>,
    /// Written without asking for an `fdatasync`.
    lazy: bool,
    reply: oneshot::Sender<Result<Appended, LogError>>,
}

impl Pending {
    fn len(&self) -> usize {
        HEADER_LEN + self.parts.iter().map(Vec::len).sum::<usize>()
    }
}

/// The segment being appended to; never empty.
struct Segment {
    /// Locked for as long as this writer may append to it.
    file: Flock<File>,
    /// File name, as reported in [`Appended::path`].
    name: PathBuf,
    /// Full path, for error messages.
    path: PathBuf,
    /// Bytes written (and synced, unless `unsynced`).
    len: u64,
    /// Lazy records were written since the last `fdatasync`.
    unsynced: bool,
    last_append: Instant,
    /// The file holds zeros (written, synced with a batch) up to here:
    /// records written over them change no metadata.
    zeroed: u64,
}

/// The room of zeros a segment keeps ahead of its records, in steps of
/// this size (see the module doc, "Room ahead").
const ZERO_AHEAD: u64 = 1 << 20;

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    dir_file: File,
    options: LogOptions,
    rx: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    segment: Option<Segment>,
}

impl Writer {
    fn run(mut self) {
        let mut next = None;
        loop {
            let Some(command) = next.take().or_else(|| self.wait()) else {
                break;
            };
            match command {
                Command::Append(first) => {
                    let mut bytes = first.len();
                    let mut batch = vec![first];
                    while batch.len() < self.options.max_batch_records
                        && bytes < self.options.max_batch_bytes
                    {
                        match self.rx.try_recv() {
                            Ok(Command::Append(p)) => {
                                bytes += p.len();
                                batch.push(p);
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(batch);
                }
                Command::Sync(reply) => {
                    let _ = reply.send(self.sync_now());
                }
                Command::Seal(reply) => {
                    let _ = reply.send(self.seal());
                }
                Command::Shutdown(reply) => {
                    let _ = reply.send(self.seal());
                    return;
                }
            }
        }
        // Every handle is gone.
        if let Err(e) = self.seal() {
            log::warn!("{}", chain(&e));
        }
    }

    /// The next command, sealing an idle segment meanwhile; `None` once
    /// every handle is gone.
    fn wait(&mut self) -> Option<Command> {
        loop {
            let deadline = match (&self.segment, self.options.seal_after_idle) {
                (Some(seg), Some(idle)) => seg.last_append + idle,
                _ => return self.rx.recv().ok(),
            };
            let timeout = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(timeout) {
                Ok(command) => return Some(command),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.seal() {
                        log::warn!("{}", chain(&e));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Writes and syncs a batch, then answers its appenders.
    fn commit(&mut self, batch: Vec<Pending>) {
        match self.write_batch(&batch) {
            Ok(places) => {
                let stats = &self.shared.stats;
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .records
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                // Bump first, so that whoever learns of the commit sees it.
                self.shared.committed.send_modify(|n| *n += 1);
                for (pending, place) in batch.into_iter().zip(places) {
                    let _ = pending.reply.send(Ok(place));
                }
            }
            Err(e) => {
                self.shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                log::warn!("{}", chain(&e));
                for pending in batch {
                    let _ = pending.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// One `writev` loop and one `fdatasync`. On error the segment is
    /// dropped (abandoned).
    fn write_batch(&mut self, batch: &[Pending]) -> Result<Vec<Appended>, LogError> {
        let mut seg = match self.segment.take() {
            Some(seg) => seg,
            None => self.create_segment()?,
        };
        let fresh = seg.len == 0;
        let written = self.write_batch_to(&mut seg, batch);
        match written {
            Ok((places, full)) => {
                if !full {
                    self.segment = Some(seg);
                }
                Ok(places)
            }
            Err(e) => {
                if fresh {
                    drop(seg.file);
                    let _ = std::fs::remove_file(&seg.path);
                }
                Err(e)
            }
        }
    }

    /// The batch written (and synced unless every record is lazy) to
    /// `seg`; whether that filled the segment (then sealed).
    fn write_batch_to(
        &self,
        seg: &mut Segment,
        batch: &[Pending],
    ) -> Result<(Vec<Appended>, bool), LogError> {
        let seal = record::encode_header(RecordType::Seal, &[])?;
        let mut places = Vec::with_capacity(batch.len());
        let mut slices = Vec::with_capacity(batch.len() * 2 + 1);
        let mut end = seg.len;
        for pending in batch {
            places.push(Appended {
                path: seg.name.clone(),
                offset: end + HEADER_LEN as u64,
            });
            slices.push(IoSlice::new(&pending.header));
            slices.extend(pending.parts.iter().map(|p| IoSlice::new(p)));
            end += pending.len() as u64;
        }
        let full = end >= self.options.max_segment_bytes;
        if full {
            slices.push(IoSlice::new(&seal));
            end += HEADER_LEN as u64;
        }
        if !full && end > seg.zeroed {
            self.zero_room(seg, end)?;
        }
        self.write_all(&mut seg.file, &mut slices)
            .map_err(|e| LogError::io("write", &seg.path, e))?;
        if full && seg.zeroed > end {
            seg.file
                .set_len(end)
                .map_err(|e| LogError::io("truncate", &seg.path, e))?;
        }
        if let Some(log) = self.options.metrics {
            use crate::metrics::registry::{self as reg, sink};
            sink::observe(reg::COMMIT_BATCH, &[("log", log)], batch.len() as f64);
        }
        if full || batch.iter().any(|p| !p.lazy) {
            self.sync(&seg.file)
                .map_err(|e| LogError::io("fdatasync", &seg.path, e))?;
            seg.unsynced = false;
        } else {
            seg.unsynced = true;
        }
        seg.len = end;
        seg.last_append = Instant::now();
        Ok((places, full))
    }

    /// Zeros from the end of the batch (`end`, past the room) to the next
    /// step boundary, written with the batch and synced with it: the
    /// batches that follow, written over zeros of a size already durable,
    /// need no journal commit for their `fdatasync`. Where the batch
    /// itself goes no zeros are written (a large record is not written
    /// twice).
    fn zero_room(&self, seg: &mut Segment, end: u64) -> Result<(), LogError> {
        use std::os::unix::fs::FileExt;
        let to = (end / ZERO_AHEAD + 1) * ZERO_AHEAD;
        let from = seg.zeroed.max(end);
        let zeros = vec![0u8; (to - from) as usize];
        seg.file
            .write_all_at(&zeros, from)
            .map_err(|e| LogError::io("write", &seg.path, e))?;
        seg.zeroed = to;
        Ok(())
    }

    /// Syncs lazy records of the current segment; on failure the segment is
    /// abandoned, as after a failed batch.
    fn sync_now(&mut self) -> Result<(), LogError> {
        let Some(mut seg) = self.segment.take() else {
            return Ok(());
        };
        if !seg.unsynced {
            self.segment = Some(seg);
            return Ok(());
        }
        match self.sync(&seg.file) {
            Ok(()) => {
                seg.unsynced = false;
                self.segment = Some(seg);
                Ok(())
            }
            Err(e) => {
                self.shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                Err(LogError::io("fdatasync", &seg.path, e))
            }
        }
    }

    /// Appends a seal record to the current segment, if any, and closes it.
    fn seal(&mut self) -> Result<(), LogError> {
        let Some(mut seg) = self.segment.take() else {
            return Ok(());
        };
        let result = self.seal_segment(&mut seg);
        match &result {
            Ok(()) => self.shared.committed.send_modify(|n| *n += 1),
            Err(_) => {
                self.shared.stats.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    fn seal_segment(&self, seg: &mut Segment) -> Result<(), LogError> {
        let seal = record::encode_header(RecordType::Seal, &[])?;
        self.write_all(&mut seg.file, &mut [IoSlice::new(&seal)])
            .map_err(|e| LogError::io("write", &seg.path, e))?;
        if seg.zeroed > seg.len + HEADER_LEN as u64 {
            seg.file
                .set_len(seg.len + HEADER_LEN as u64)
                .map_err(|e| LogError::io("truncate", &seg.path, e))?;
        }
        self.sync(&seg.file)
            .map_err(|e| LogError::io("fdatasync", &seg.path, e))
    }

    /// A new, empty segment whose existence is durable.
    fn create_segment(&mut self) -> Result<Segment, LogError> {
        let mut tries = 0;
        loop {
            let name = format!("{}{}.log", self.options.prefix, (self.options.name)());
            let path = self.dir.join(&name);
            if name.contains('/') || name.starts_with('.') {
                let e = io::Error::new(io::ErrorKind::InvalidInput, "not a plain file name");
                return Err(LogError::io("create", &path, e));
            }
            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            let file = match opened {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 8 => {
                    tries += 1;
                    continue;
                }
                Err(e) => return Err(LogError::io("create", &path, e)),
            };
            // Blocking: a reader probing with `writer_gone` holds its shared
            // lock only for an fstat.
            let file = match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(f) => f,
                Err((_, errno)) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(LogError::io("lock", &path, errno.into()));
                }
            };
            if let Err(e) = self.dir_file.sync_all() {
                let _ = std::fs::remove_file(&path);
                return Err(LogError::io("fsync", &self.dir, e));
            }
            self.shared.stats.segments.fetch_add(1, Ordering::Relaxed);
            return Ok(Segment {
                file,
                name: PathBuf::from(name),
                path,
                len: 0,
                unsynced: false,
                last_append: Instant::now(),
                zeroed: 0,
            });
        }
    }

    fn write_all(&self, file: &mut File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
        #[cfg(test)]
        if self
            .shared
            .fault
            .compare_exchange(1, 0, Ordering::SeqCst, Ordering::SeqCst)
            == Ok(1)
        {
            if let Some(first) = slices.first() {
                file.write_all(&first[..first.len() / 2])?;
            }
            return Err(io::Error::other("injected write fault"));
        }
        IoSlice::advance_slices(&mut slices, 0);
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn sync(&self, file: &File) -> io::Result<()> {
        self.shared.stats.data_syncs.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let synced = self.sync_file(file);
        if let Some(log) = self.options.metrics {
            use crate::metrics::registry::{self as reg, sink};
            let took = started.elapsed().as_secs_f64();
            sink::observe(reg::FSYNC, &[("log", log)], took);
        }
        synced
    }

    /// One `fdatasync` (a fault injected instead in tests).
    fn sync_file(&self, file: &File) -> io::Result<()> {
        #[cfg(test)]
        if self
            .shared
            .fault
            .compare_exchange(2, 0, Ordering::SeqCst, Ordering::SeqCst)
            == Ok(2)
        {
            return Err(io::Error::other("injected fdatasync fault"));
        }
        file.sync_data()
    }
}

/// Whether the writer of the segment at `path` is gone for good: no writer
/// holds its lock and it is not empty (a writer locks a segment before its
/// first byte and never reopens one). False while a writer holds it, and
/// for an empty unlocked file (a writer may be between creating and
/// locking it).
pub(crate) fn writer_gone(path: &Path) -> io::Result<bool> {
    let file = File::open(path)?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        // While we hold the shared lock no writer can hold its lock, so no
        // byte is being written.
        Ok(locked) => Ok(locked.metadata()?.len() > 0),
        Err((_, Errno::EWOULDBLOCK)) => Ok(false),
        Err((_, errno)) => Err(errno.into()),
    }
}

/// An error with its causes, for the log.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests;
