//! The parent's side of the delivery children: a pool of per-user workers.
//!
//! A worker is a `postern daemon local-worker` child that has become one
//! user (see [`super::worker`]). One worker serves each user (each
//! [`Identity`]), with [`PoolLimits::per_user`] lanes: a pair of pipes and
//! a thread in the child each, one job at a time per lane, so that many
//! deliveries to the user run at once (and share the file system's journal
//! commits) in one process. It is kept for further deliveries until all
//! its lanes have been idle for `local.worker_idle`, so no process is
//! started per message. At most [`PoolLimits::total`] workers live at
//! once, and as many deliveries run (the least recently used idle worker
//! of another user makes room).
//!
//! A worker that dies or answers nonsense on a lane, or whose job on a
//! lane runs past the time limit, is broken: it gets no further jobs, and
//! a delivery that needs a lane gets one of a fresh worker. Its other
//! lanes finish the jobs they have (each under its own time limit); then
//! its pipes are closed and it is killed if it has not exited within
//! [`RETIRE_GRACE`] (a stuck job's thread does not end). A lane that
//! broke is retried once per delivery on a fresh worker; a second failure
//! defers the delivery; a timeout defers it at once.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::Child;
use tokio::sync::Semaphore;

use super::header::read_capped_line;
use super::worker::{
    IDENTITY_ENV, Identity, Job, JobReply, LANES_ENV, MAX_LANES, ROOM_ENV, WorkerRoom,
};
use crate::ipc::DeliveryStatus;
use crate::outcome::{Enhanced, code};

/// Content is streamed to a worker in chunks of at most this size (the
/// buffer is never larger than the message).
const CHUNK: usize = 128 * 1024;
/// A reply line is small (a `.forward` it carries is at most 64 KiB, which
/// JSON may make a few times longer); a longer one is a broken worker.
const MAX_REPLY: usize = 512 * 1024;
/// Reasons and warnings from a worker are cut to this many characters.
const MAX_REASON: usize = 4000;
/// Time a worker gets beyond a job's own limit (a command's) to report.
const JOB_LIMIT_GRACE: Duration = Duration::from_secs(30);
/// How long a retired worker gets to exit after its lanes are closed.
const RETIRE_GRACE: Duration = Duration::from_secs(5);

/// The program a worker runs: postern's own binary with
/// `daemon local-worker`, or another program in tests.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl WorkerCommand {
    /// This binary, `daemon local-worker`.
    pub(crate) fn current_exe() -> io::Result<WorkerCommand> {
        Ok(WorkerCommand {
            program: std::env::current_exe()?,
            args: vec!["daemon".into(), "local-worker".into()],
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct PoolLimits {
    /// Deliveries to one user at once: the lanes of the user's worker
    /// (Postfix `local_destination_concurrency_limit` = 2).
    pub per_user: usize,
    /// Workers alive at once, all users together, and deliveries in
    /// progress at once.
    pub total: usize,
    /// Longest time one delivery may take before its worker is killed and
    /// the delivery deferred.
    pub timeout: Duration,
}

impl Default for PoolLimits {
    fn default() -> PoolLimits {
        PoolLimits {
            per_user: 2,
            total: 64,
            timeout: Duration::from_secs(1000),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot start delivery process: {0}")]
    Spawn(io::Error),
    #[error("delivery process failed twice: {0}")]
    Broken(String),
    #[error("cannot read message content: {0}")]
    Content(io::Error),
    #[error("delivery timed out after {0}s")]
    Timeout(u64),
    #[error("cannot encode delivery job: {0}")]
    Job(serde_json::Error),
}

/// Per-user delivery children. Cheap to share behind an `Arc`.
pub struct WorkerPool {
    inner: Arc<Inner>,
}

struct Inner {
    command: WorkerCommand,
    /// Pass the identity to the child so it becomes the user (when root).
    switch_user: bool,
    idle: Duration,
    limits: PoolLimits,
    /// Deliveries in progress, all users.
    busy: Arc<Semaphore>,
    users: Mutex<HashMap<Identity, Arc<UserWorkers>>>,
    /// Worker processes not yet reaped.
    live: Arc<AtomicUsize>,
    /// Workers serving a user (not retired nor broken): what the cap counts.
    kept: Arc<AtomicUsize>,
    spawns: AtomicU64,
}

struct UserWorkers {
    /// One per lane: a holder is sure to find a lane free.
    permits: Arc<Semaphore>,
    current: Mutex<Option<Current>>,
}

/// The worker serving a user, with its lanes not in use.
struct Current {
    process: Arc<Process>,
    idle: Vec<Lane>,
    last_used: Instant,
    _kept: Counted,
}

/// A worker process; reaped (and killed if it does not go) once nothing
/// refers to it: it has been retired or broken, and every lane is closed.
struct Process {
    child: Option<Child>,
    lanes: usize,
    broken: AtomicBool,
    live: Option<Counted>,
}

/// One lane of a worker: jobs go out on `input`, replies come back on
/// `output`.
struct Lane {
    input: pipe::Sender,
    output: BufReader<pipe::Receiver>,
    /// Last, so that the pipes are closed before the process is reaped.
    process: Arc<Process>,
}

/// One unit of a counter, given back on drop.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(counter: &Arc<AtomicUsize>) -> Counted {
        counter.fetch_add(1, Ordering::SeqCst);
        Counted(counter.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WorkerPool {
    /// A pool starting `command` as workers. `switch_user`: the children
    /// start as root and become the recipient. Must be called inside a tokio
    /// runtime (it starts the task that retires idle workers).
    pub(crate) fn new(
        command: WorkerCommand,
        switch_user: bool,
        idle: Duration,
        limits: PoolLimits,
    ) -> WorkerPool {
        let limits = PoolLimits {
            per_user: limits.per_user.clamp(1, MAX_LANES as usize),
            total: limits.total.max(1),
            ..limits
        };
        let inner = Arc::new(Inner {
            command,
            switch_user,
            idle,
            limits,
            busy: Arc::new(Semaphore::new(limits.total)),
            users: Mutex::new(HashMap::new()),
            live: Arc::new(AtomicUsize::new(0)),
            kept: Arc::new(AtomicUsize::new(0)),
            spawns: AtomicU64::new(0),
        });
        tokio::spawn(reap_idle(Arc::downgrade(&inner)));
        WorkerPool { inner }
    }

    /// A new pool like this one (the same program, user switching, total
    /// and timeout) with another idle time and per-user limit: a reload
    /// that changes `local.worker_idle` or `local.concurrency_per_user`.
    /// This pool's workers finish their deliveries and go.
    pub(crate) fn resized(&self, idle: Duration, per_user: usize) -> WorkerPool {
        let inner = &self.inner;
        WorkerPool::new(
            inner.command.clone(),
            inner.switch_user,
            idle,
            PoolLimits {
                per_user,
                ..inner.limits
            },
        )
    }

    /// Workers started so far.
    #[cfg(test)]
    pub(crate) fn spawns(&self) -> u64 {
        self.inner.spawns.load(Ordering::SeqCst)
    }

    /// Worker processes alive now (retired ones count until reaped).
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Run `job` in a worker for `identity`, streaming its content from
    /// `content` at `offset` (read with `pread`: the file's own offset is
    /// not used).
    pub(crate) async fn deliver(
        &self,
        identity: &Identity,
        job: &Job,
        content: &File,
        offset: u64,
    ) -> Result<JobReply, PoolError> {
        self.run(identity, job, Some((content, offset))).await
    }

    /// Run a job without content (`len` 0) in a worker for `identity`.
    pub(crate) async fn query(
        &self,
        identity: &Identity,
        job: &Job,
    ) -> Result<JobReply, PoolError> {
        debug_assert_eq!(job.len, 0);
        self.run(identity, job, None).await
    }

    async fn run(
        &self,
        identity: &Identity,
        job: &Job,
        content: Option<(&File, u64)>,
    ) -> Result<JobReply, PoolError> {
        // A job with a limit of its own (a command) gets it, and the time to
        // report after it.
        let timeout = match job.destination.time_limit() {
            Some(limit) => self.inner.limits.timeout.max(limit + JOB_LIMIT_GRACE),
            None => self.inner.limits.timeout,
        };
        let mut header = serde_json::to_vec(job).map_err(PoolError::Job)?;
        header.push(b'\n');
        let user = self.inner.user(identity);
        // Neither semaphore is ever closed; a failure cannot happen, but it
        // must not panic either.
        let _user_permit = user.permits.clone().acquire_owned().await.ok();
        let _busy = self.inner.busy.clone().acquire_owned().await.ok();
        let mut failure = String::new();
        for _attempt in 0..2 {
            let mut lane = self.inner.lane(identity, &user).map_err(PoolError::Spawn)?;
            let run = exchange(&mut lane, &header, job.len, content);
            match tokio::time::timeout(timeout, run).await {
                Ok(Ok(reply)) => {
                    user.give_back(lane);
                    return Ok(reply);
                }
                Ok(Err(Exchange::Content(e))) => {
                    user.discard(lane);
                    return Err(PoolError::Content(e));
                }
                Ok(Err(Exchange::Worker(e))) => {
                    user.discard(lane);
                    failure = e;
                }
                Err(_) => {
                    user.discard(lane);
                    return Err(PoolError::Timeout(timeout.as_secs()));
                }
            }
        }
        Err(PoolError::Broken(failure))
    }
}

impl Inner {
    fn user(&self, identity: &Identity) -> Arc<UserWorkers> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users
            .entry(identity.clone())
            .or_insert_with(|| {
                Arc::new(UserWorkers {
                    permits: Arc::new(Semaphore::new(self.limits.per_user)),
                    current: Mutex::new(None),
                })
            })
            .clone()
    }

    /// A free lane of the user's worker, started now if there is none (or
    /// it is broken). The caller holds one of the user's permits, so a
    /// worker that is not broken has a lane free.
    fn lane(&self, identity: &Identity, user: &UserWorkers) -> io::Result<Lane> {
        let mut current = user.lock();
        if let Some(c) = current.as_mut()
            && !c.process.broken.load(Ordering::SeqCst)
            && let Some(lane) = c.idle.pop()
        {
            return Ok(lane);
        }
        let (process, mut lanes) = self.spawn(identity)?;
        let lane = lanes
            .pop()
            .ok_or_else(|| io::Error::other("worker without lanes"))?;
        let old = current.replace(Current {
            process,
            idle: lanes,
            last_used: Instant::now(),
            _kept: Counted::new(&self.kept),
        });
        drop(current);
        drop(old);
        self.make_room();
        Ok(lane)
    }

    fn spawn(&self, identity: &Identity) -> io::Result<(Arc<Process>, Vec<Lane>)> {
        let lanes = self.limits.per_user;
        let mut cmd = std::process::Command::new(&self.command.program);
        cmd.args(&self.command.args)
            .env_clear()
            .env("HOME", &identity.home)
            .env("USER", &identity.user)
            .env("LOGNAME", &identity.user)
            .env("PATH", "/usr/bin:/bin")
            .env(LANES_ENV, lanes.to_string())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if self.switch_user {
            cmd.env(IDENTITY_ENV, serde_json::to_string(identity)?);
        }
        if let Some(write) = &identity.confine {
            let room = WorkerRoom {
                home: identity.home.clone(),
                write: write.clone(),
            };
            cmd.env(ROOM_ENV, serde_json::to_string(&room)?);
        }
        // Lane k: the child reads jobs on fd 3 + 2k, answers on 4 + 2k.
        let mut theirs: Vec<OwnedFd> = Vec::with_capacity(2 * lanes);
        let mut ours = Vec::with_capacity(lanes);
        for _ in 0..lanes {
            let (job_read, job_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            let (reply_read, reply_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            theirs.extend([job_read, reply_write]);
            ours.push((job_write, reply_read));
        }
        crate::sys::pass_fds(&mut cmd, &theirs)?;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let child = cmd.spawn();
        // The child's ends (and their copies the command holds) close here:
        // a lane then reads end of file when the child is gone.
        drop((cmd, theirs));
        let child = child?;
        self.spawns.fetch_add(1, Ordering::SeqCst);
        let process = Arc::new(Process {
            child: Some(child),
            lanes,
            broken: AtomicBool::new(false),
            live: Some(Counted::new(&self.live)),
        });
        let mut lanes = ours
            .into_iter()
            .map(|(input, output)| {
                Ok(Lane {
                    input: pipe::Sender::from_owned_fd(input)?,
                    output: BufReader::new(pipe::Receiver::from_owned_fd(output)?),
                    process: process.clone(),
                })
            })
            .collect::<io::Result<Vec<Lane>>>()?;
        // Taken from the end: lane 0 first.
        lanes.reverse();
        Ok((process, lanes))
    }

    /// Above the global cap, retire the least recently used idle worker.
    fn make_room(&self) {
        while self.kept.load(Ordering::SeqCst) > self.limits.total {
            let mut oldest: Option<(Instant, Arc<UserWorkers>)> = None;
            for user in self.all_users() {
                let Ok(current) = user.current.try_lock() else {
                    continue;
                };
                let Some(c) = current.as_ref().filter(|c| c.is_idle()) else {
                    continue;
                };
                if oldest.as_ref().is_none_or(|(t, _)| c.last_used < *t) {
                    let last_used = c.last_used;
                    drop(current);
                    oldest = Some((last_used, user));
                }
            }
            let Some((last_used, user)) = oldest else {
                return;
            };
            let mut current = user.lock();
            if current
                .as_ref()
                .is_some_and(|c| c.is_idle() && c.last_used == last_used)
            {
                let retired = current.take();
                drop(current);
                drop(retired);
            }
        }
    }

    fn all_users(&self) -> Vec<Arc<UserWorkers>> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.values().cloned().collect()
    }

    /// Retire workers idle for `idle`, and forget users without workers.
    fn reap(&self) {
        for user in self.all_users() {
            let mut current = user.lock();
            if current
                .as_ref()
                .is_some_and(|c| c.is_idle() && c.last_used.elapsed() >= self.idle)
            {
                let retired = current.take();
                drop(current);
                drop(retired);
            }
        }
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.retain(|_, u| Arc::strong_count(u) > 1 || u.lock().is_some());
    }
}

impl UserWorkers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Current>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A lane whose job is done: back to the user's worker, unless that
    /// has been replaced meanwhile (then the lane closes).
    fn give_back(&self, lane: Lane) {
        let mut current = self.lock();
        match current.as_mut() {
            Some(c) if Arc::ptr_eq(&c.process, &lane.process) => {
                c.last_used = Instant::now();
                c.idle.push(lane);
            }
            _ => {
                drop(current);
                drop(lane);
            }
        }
    }

    /// A lane that broke or ran out of time: its worker is broken. It
    /// takes no more jobs (the next delivery starts a fresh one) and goes
    /// when its other lanes are done.
    fn discard(&self, lane: Lane) {
        lane.process.broken.store(true, Ordering::SeqCst);
        let mut current = self.lock();
        let old = match current.as_ref() {
            Some(c) if Arc::ptr_eq(&c.process, &lane.process) => current.take(),
            _ => None,
        };
        drop(current);
        drop((old, lane));
    }
}

impl Current {
    /// No lane in use.
    fn is_idle(&self) -> bool {
        self.idle.len() == self.process.lanes
    }
}

async fn reap_idle(pool: Weak<Inner>) {
    let period = match pool.upgrade() {
        Some(p) => (p.idle / 4).clamp(Duration::from_millis(20), Duration::from_secs(5)),
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        match pool.upgrade() {
            Some(p) => p.reap(),
            None => return,
        }
    }
}

/// Every lane is closed by now (the child's threads read end of input and
/// end, removing any file they had begun): reap the child, killing it if it
/// does not go.
impl Drop for Process {
    fn drop(&mut self) {
        let (Some(mut child), live) = (self.child.take(), self.live.take()) else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if tokio::time::timeout(RETIRE_GRACE, child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
                drop(live);
            });
        }
    }
}

enum Exchange {
    /// The queue file could not be read: not the worker's fault.
    Content(io::Error),
    /// The worker died or broke the protocol.
    Worker(String),
}

/// One job: header line, `len` content bytes from `content` (at its
/// offset), one reply line.
async fn exchange(
    worker: &mut Lane,
    header: &[u8],
    len: u64,
    content: Option<(&File, u64)>,
) -> Result<JobReply, Exchange> {
    let broken = |what: &str, e: io::Error| Exchange::Worker(format!("{what}: {e}"));
    match content {
        Some((content, offset)) => stream_content(worker, header, len, content, offset).await?,
        None => worker
            .input
            .write_all(header)
            .await
            .map_err(|e| broken("write", e))?,
    }
    worker.input.flush().await.map_err(|e| broken("write", e))?;
    let mut line = Vec::with_capacity(256);
    let got = read_capped_line(&mut worker.output, &mut line, MAX_REPLY).await;
    match got {
        Ok(true) if line.ends_with(b"\n") => {}
        Ok(_) => {
            return Err(Exchange::Worker(
                "delivery process exited without a reply".into(),
            ));
        }
        Err(e) => return Err(broken("read", e)),
    }
    let reply: JobReply =
        serde_json::from_slice(&line).map_err(|e| Exchange::Worker(format!("bad reply: {e}")))?;
    checked(reply).ok_or_else(|| Exchange::Worker("bad reply: inconsistent status".into()))
}

/// Pass the job's `header` line and `len` bytes of `content` from
/// `offset` to the worker: the line and the first chunk in one write (a
/// small message: one write in all). The queue file is read in place (a
/// page-cache read; see `Agent::open_content`).
async fn stream_content(
    worker: &mut Lane,
    header: &[u8],
    len: u64,
    content: &File,
    offset: u64,
) -> Result<(), Exchange> {
    let broken = |what: &str, e: io::Error| Exchange::Worker(format!("{what}: {e}"));
    let chunk = len.min(CHUNK as u64) as usize;
    let mut buf = Vec::with_capacity(header.len() + chunk);
    buf.extend_from_slice(header);
    let mut start = buf.len();
    buf.resize(start + chunk, 0);
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min((buf.len() - start) as u64) as usize;
        let mut got = 0;
        while got < want {
            let n = match content.read_at(
                &mut buf[start + got..start + want],
                offset + done + got as u64,
            ) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => other.map_err(Exchange::Content)?,
            };
            if n == 0 {
                let left = len - done - got as u64;
                let msg = format!("queue file ends {left} bytes before the message does");
                return Err(Exchange::Content(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    msg,
                )));
            }
            got += n;
        }
        worker
            .input
            .write_all(&buf[..start + want])
            .await
            .map_err(|e| broken("write", e))?;
        done += want as u64;
        start = 0;
    }
    if len == 0 {
        worker
            .input
            .write_all(header)
            .await
            .map_err(|e| broken("write", e))?;
    }
    Ok(())
}

/// The child runs as the user: believe its reply only in the shape it must
/// have, and keep its text printable for the log and the DSN.
fn checked(mut reply: JobReply) -> Option<JobReply> {
    let class = match reply.status {
        DeliveryStatus::Sent => b'2',
        DeliveryStatus::Deferred => b'4',
        DeliveryStatus::Bounced => b'5',
    };
    if Enhanced::parse(&reply.dsn).is_none_or(|code| code.class() != class) {
        return None;
    }
    reply.reason = printable(&reply.reason);
    reply.warning = reply.warning.as_deref().map(printable);
    Some(reply)
}

impl JobReply {
    /// The enhanced status code, parsed: [`checked`] let only well-formed
    /// ones through (anything else would be a mail system problem).
    pub(crate) fn code(&self) -> Enhanced {
        Enhanced::parse(&self.dsn).unwrap_or(code::SYSTEM_TEMP)
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .take(MAX_REASON)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
