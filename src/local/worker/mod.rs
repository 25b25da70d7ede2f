//! The delivery child, `postern daemon local-worker`, and its protocol.
//!
//! The parent (`local`, see [`super::pool`]) starts one child per recipient
//! user and keeps it for further deliveries to that user. The child serves
//! several deliveries at once, one per *lane* ([`LANES_ENV`]): a pair of
//! pipes (lane `k` on fds `3 + 2k` and `4 + 2k`) and a thread of the
//! child, started after the change of identity and the confinement below.
//! On each lane, one job at a time:
//!
//! * parent → child: a [`Job`] as one JSON line (naming its
//!   [`Destination`]: the mailbox, Maildir or mbox, a `/file`, a
//!   `|command`, or the `.forward` files to look for), followed by exactly
//!   `Job::len` raw content bytes (the child cannot read the queue, which
//!   is the postern user's, mode 0700; the parent streams the content);
//! * child → parent: one [`JobReply`] JSON line.
//!
//! End of input on a lane means "no more work" there; the child exits
//! when every lane has ended. A lane that breaks (a bad line, content
//! that ended early) ends alone.
//!
//! When the parent runs as root it passes the recipient's [`Identity`] in
//! the environment ([`IDENTITY_ENV`]), and the child's first act, before it
//! reads a byte, is to become that user: supplementary groups, gid, uid
//! (`setgroups`, `setgid`, `setuid`), checked afterwards. The groups are
//! the user's, plus the group of an mbox spool directory the parent found
//! group-writable (see the module manual, SECURITY). Every job names
//! the uid it is for, and a child running under any other uid refuses it,
//! so root is never used to write a non-root user's mailbox. A child that
//! runs as root refuses `/file` and `|command` jobs altogether.

pub(super) mod command;
mod errno;
mod file;
pub(super) mod forward;
mod lock;
mod maildir;
mod mbox;

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nix::unistd::{Gid, Uid};
use serde::{Deserialize, Serialize};

use super::mailbox::Mailbox;
use crate::ipc::DeliveryStatus;
use command::CommandSpec;
use forward::ForwardFile;
use lock::LockPolicy;
use maildir::{MaildirError, NameGen};
use mbox::MboxError;

/// Environment variable carrying the [`Identity`] (JSON) the child must take.
pub(crate) const IDENTITY_ENV: &str = "POSTERN_LOCAL_WORKER_IDENTITY";

/// A job line is small; anything longer is a broken parent.
const MAX_JOB_LINE: u64 = 64 * 1024;

/// Environment variable giving the number of lanes, `n`: the child then
/// serves `n` jobs at once, lane `k` reading jobs from fd `3 + 2k` and
/// answering on fd `4 + 2k` (stdin and stdout are not used). Without it
/// the child serves one lane on stdin and stdout.
pub(crate) const LANES_ENV: &str = "POSTERN_LOCAL_WORKER_LANES";

/// Most lanes one child serves (`local.concurrency_per_user` is capped
/// here).
pub(crate) const MAX_LANES: i32 = 64;

/// A lane thread's stack: deliveries keep their buffers on the heap.
const LANE_STACK: usize = 256 * 1024;

/// Whom a delivery child acts for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Identity {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (`getgrouplist`), the primary gid included,
    /// and the group of an mbox spool that needs it.
    pub groups: Vec<u32>,
    pub home: PathBuf,
    /// For a mailbox worker: the directories besides the home that hold
    /// the mailbox. The child then confines itself with Landlock to the
    /// home and these ([`crate::sandbox::Profile::mailbox_worker`]).
    /// `None` for `|command` and `/file` workers, which keep local's room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confine: Option<Vec<PathBuf>>,
}

/// Environment variable carrying a mailbox worker's room (JSON
/// [`WorkerRoom`]).
pub(crate) const ROOM_ENV: &str = "POSTERN_LOCAL_WORKER_ROOM";

/// Where a mailbox worker may write: its home and the mailbox's
/// directories.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WorkerRoom {
    pub home: PathBuf,
    pub write: Vec<PathBuf>,
}

/// One delivery, parent → child.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Job {
    /// Queue ID, for diagnostics.
    pub id: String,
    /// The uid this delivery is for; the child refuses it under another.
    pub uid: u32,
    /// The user's name, for diagnostics.
    pub user: String,
    pub destination: Destination,
    /// Envelope sender, empty for `<>`.
    pub sender: String,
    /// `user@domain`, written as `Delivered-To:`.
    pub recipient: String,
    /// Content bytes that follow the line.
    pub len: u64,
    /// For a Maildir: the name's part before `.<host>` in `new/`, chosen
    /// by local from the message and the target (see
    /// [`maildir::deliver`]): the same delivery made again finds its file
    /// there and adds no second copy. `None`: a name of this process's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stem: Option<String>,
}

/// Where a job delivers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Destination {
    /// The user's own mailbox.
    Mailbox(Mailbox),
    /// A `/file` from an alias or a `.forward`: mbox, or Maildir when the
    /// path ends in `/` (see `file`).
    File(PathBuf),
    /// A `|command` (see `command`).
    Command(CommandSpec),
    /// Look for the user's `.forward` at these paths, in order; no content
    /// (`len` 0). The reply carries the file found in `forward_file`.
    ReadForward(Vec<PathBuf>),
}

impl Destination {
    /// The longest a job may take in the child, when it has its own limit
    /// (commands).
    pub(crate) fn time_limit(&self) -> Option<std::time::Duration> {
        match self {
            Destination::Command(spec) => Some(std::time::Duration::from_secs(spec.time_limit)),
            _ => None,
        }
    }
}

/// The outcome of one delivery, child → parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobReply {
    pub status: DeliveryStatus,
    pub dsn: String,
    pub reason: String,
    /// The child's process ID.
    pub pid: u32,
    /// Name of the file in `new/` when delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A line the parent logs as a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The `.forward` found, for [`Destination::ReadForward`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_file: Option<ForwardFile>,
}

/// `postern daemon local-worker`: become the user named in the environment
/// (if any), drop every capability, confine a mailbox worker to its room
/// (see [`crate::sandbox`]), then serve jobs from stdin until it closes
/// (or, with `probes`, try those accesses and report them).
pub fn worker_main(probes: &[String]) -> anyhow::Result<()> {
    let room: Option<WorkerRoom> = match std::env::var_os(ROOM_ENV) {
        Some(room) => Some(
            serde_json::from_str(&room.to_string_lossy())
                .with_context(|| format!("bad {ROOM_ENV}"))?,
        ),
        None => None,
    };
    if let Some(identity) = std::env::var_os(IDENTITY_ENV) {
        let identity: Identity = serde_json::from_str(&identity.to_string_lossy())
            .with_context(|| format!("bad {IDENTITY_ENV}"))?;
        // The bounding set first: emptying it needs CAP_SETPCAP, which
        // the switch takes away.
        crate::sandbox::privileges::empty_bounding_set()?;
        become_user(&identity)?;
    }
    crate::sandbox::privileges::drop_all()?;
    if let Some(room) = &room {
        let profile = crate::sandbox::Profile::mailbox_worker(&room.home, &room.write);
        crate::sandbox::landlock::confine(&profile, false)?;
    }
    if !probes.is_empty() {
        for p in probes {
            println!("{}", serde_json::to_string(&crate::sandbox::probe(p))?);
        }
        return Ok(());
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let names = NameGen::new();
    match std::env::var_os(LANES_ENV) {
        None => serve(io::stdin().lock(), io::stdout().lock(), &names),
        Some(lanes) => serve_lanes(&lanes.to_string_lossy(), &names),
    }
}

/// Serve `lanes` lanes (see [`LANES_ENV`]) at once, one thread each, all
/// started after the change of identity and the confinement (which
/// threads inherit). A lane that breaks (a bad line, content that ended
/// early: the parent gave up on that job) ends alone, closing its pipes;
/// the process exits when every lane has ended.
fn serve_lanes(lanes: &str, names: &NameGen) -> anyhow::Result<()> {
    let lanes: i32 = match lanes.parse() {
        Ok(n @ 1..=MAX_LANES) => n,
        _ => bail!("bad {LANES_ENV}: {lanes:?} (1 to {MAX_LANES})"),
    };
    let mut pipes = Vec::new();
    for lane in 0..lanes {
        let fd = 3 + 2 * lane;
        let input = crate::sys::inherited_fd(fd).context("lane input")?;
        let output = crate::sys::inherited_fd(fd + 1).context("lane output")?;
        pipes.push((std::fs::File::from(input), std::fs::File::from(output)));
    }
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let started: io::Result<()> = std::thread::scope(|scope| {
        for (lane, (input, output)) in pipes.into_iter().enumerate() {
            let failed = &failed;
            std::thread::Builder::new()
                .name(format!("lane {lane}"))
                .stack_size(LANE_STACK)
                .spawn_scoped(scope, move || {
                    if let Err(e) = serve(io::BufReader::new(input), output, names) {
                        eprintln!("local-worker: lane {lane}: {e:#}");
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })?;
        }
        Ok(())
    });
    started.context("cannot start a lane")?;
    match failed.into_inner() {
        0 => Ok(()),
        n => bail!("{n} of {lanes} lanes broke"),
    }
}

/// Drop to `identity` for good, and prove it.
fn become_user(identity: &Identity) -> anyhow::Result<()> {
    let uid = Uid::from_raw(identity.uid);
    let gid = Gid::from_raw(identity.gid);
    let groups: Vec<Gid> = identity.groups.iter().copied().map(Gid::from_raw).collect();
    nix::unistd::setgroups(&groups).context("setgroups")?;
    nix::unistd::setgid(gid).context("setgid")?;
    nix::unistd::setuid(uid).context("setuid")?;
    let ok = nix::unistd::getuid() == uid
        && nix::unistd::geteuid() == uid
        && nix::unistd::getgid() == gid
        && nix::unistd::getegid() == gid;
    if !ok {
        bail!(
            "could not become user {:?} (uid {})",
            identity.user,
            identity.uid
        );
    }
    if !uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        bail!(
            "user {:?} could regain root after the switch",
            identity.user
        );
    }
    Ok(())
}

/// Serve jobs until end of input. An error here means the stream is out of
/// step (a bad line, content that ended early): the child exits and the
/// parent starts a fresh one.
pub(crate) fn serve<R: BufRead, W: Write>(
    mut input: R,
    mut output: W,
    names: &NameGen,
) -> anyhow::Result<()> {
    let mut line = Vec::with_capacity(512);
    // The child's identity is settled before it serves (it never changes
    // user afterwards): asked once, not per job.
    let euid = nix::unistd::geteuid().as_raw();
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_JOB_LINE)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            bail!("job line truncated or longer than {MAX_JOB_LINE} bytes");
        }
        let job: Job = serde_json::from_slice(&line).context("bad job line")?;
        let reply = run_job(&job, euid, &mut input, names)?;
        let mut out = serde_json::to_vec(&reply)?;
        out.push(b'\n');
        output.write_all(&out)?;
        output.flush()?;
    }
}

/// Deliver one job as `euid` (this process's), consuming exactly its
/// content bytes from `input`.
fn run_job<R: Read>(
    job: &Job,
    euid: u32,
    input: &mut R,
    names: &NameGen,
) -> anyhow::Result<JobReply> {
    let mut content = input.take(job.len);
    let reply = if euid != job.uid {
        reply(
            DeliveryStatus::Deferred,
            "4.3.0",
            format!(
                "delivery process runs as uid {euid}, not as uid {}",
                job.uid
            ),
        )
    } else {
        match &job.destination {
            Destination::Mailbox(Mailbox::Maildir(dir)) => {
                to_maildir(job, dir, &mut content, names)?
            }
            Destination::Mailbox(Mailbox::Mbox(path)) => to_mbox(job, path, &mut content)?,
            Destination::File(_) | Destination::Command(_) if euid == 0 => reply(
                DeliveryStatus::Deferred,
                "4.3.0",
                "delivery to files and commands never runs as root".into(),
            ),
            Destination::File(path) if path.as_os_str().as_encoded_bytes().ends_with(b"/") => {
                to_maildir(job, path, &mut content, names)?
            }
            Destination::File(path) => to_file(job, path, &mut content)?,
            Destination::Command(spec) => to_command(job, spec, &mut content)?,
            Destination::ReadForward(paths) => read_forward(paths, euid),
        }
    };
    // Whatever happened, the stream must stay in step: read what is left.
    io::copy(&mut content, &mut io::sink())?;
    if content.limit() != 0 {
        bail!("{}: content ended {} bytes early", job.id, content.limit());
    }
    Ok(reply)
}

/// This process's ID (asked once: `getpid` is a system call each time).
fn pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

fn reply(status: DeliveryStatus, dsn: &str, reason: String) -> JobReply {
    JobReply {
        status,
        dsn: dsn.into(),
        reason,
        pid: pid(),
        file: None,
        warning: None,
        forward_file: None,
    }
}

/// Maildir delivery; `Err` only when the content stream broke.
fn to_maildir(
    job: &Job,
    dir: &Path,
    content: &mut impl Read,
    names: &NameGen,
) -> anyhow::Result<JobReply> {
    let prefix = delivery_headers(&job.sender, &job.recipient);
    let name = maildir::Name {
        generated: names,
        stem: job.stem.as_deref(),
    };
    match maildir::deliver(dir, &prefix, content, job.len, name) {
        Ok(delivered) => Ok(JobReply {
            reason: if delivered.before {
                "delivered to maildir (there already: an earlier attempt's answer was lost)".into()
            } else {
                "delivered to maildir".into()
            },
            file: Some(delivered.name),
            ..reply(DeliveryStatus::Sent, "2.0.0", String::new())
        }),
        Err(e @ (MaildirError::ShortContent { .. } | MaildirError::Content(_))) => {
            bail!("{}: {e}", job.id)
        }
        Err(e) => {
            let (status, dsn) = e.status();
            let reason = format!("maildir delivery failed: {e}");
            let warning = if e.is_access_problem() {
                format!(
                    "maildir access problem for UID/GID={}: {e}; perhaps you need to create the maildirs in advance",
                    ids()
                )
            } else {
                reason.clone()
            };
            Ok(JobReply {
                warning: Some(warning),
                ..reply(status, dsn, reason)
            })
        }
    }
}

/// mbox delivery (the `From ` line, the delivery headers, the message
/// quoted); `Err` only when the content stream broke, after the mailbox
/// was truncated back.
fn to_mbox(job: &Job, path: &Path, content: &mut impl Read) -> anyhow::Result<JobReply> {
    let envelope = envelope(job);
    let mut notes = Vec::new();
    let owner = nix::unistd::geteuid().as_raw();
    let policy = LockPolicy::default();
    let result = mbox::deliver(
        path, owner, &envelope, content, job.len, &policy, &mut notes,
    );
    let mut reply = match result {
        Ok(_) => reply(DeliveryStatus::Sent, "2.0.0", "delivered to mailbox".into()),
        Err(e @ (MboxError::ShortContent { .. } | MboxError::Content(_))) => {
            bail!("{}: {e}", job.id)
        }
        Err(e) => {
            let (status, dsn) = e.status();
            let reason = format!(
                "cannot update mailbox {} for user {}. {e}",
                path.display(),
                job.user
            );
            if e.is_access_problem() {
                notes.push(format!("mailbox access problem for UID/GID={}: {e}", ids()));
            } else if matches!(e, MboxError::NotOwned(_)) {
                notes.push(reason.clone());
            }
            reply(status, dsn, reason)
        }
    };
    if !notes.is_empty() {
        reply.warning = Some(notes.join("; "));
    }
    Ok(reply)
}

/// The `From ` line and the delivery headers, in front of the message in
/// mbox files and on a command's input.
fn envelope(job: &Job) -> Vec<u8> {
    let mut envelope = mbox::from_line(&job.sender, chrono::Local::now().naive_local());
    envelope.extend(delivery_headers(&job.sender, &job.recipient));
    envelope
}

/// `/file` delivery; `Err` only when the content stream broke.
fn to_file(job: &Job, path: &Path, content: &mut impl Read) -> anyhow::Result<JobReply> {
    let mut notes = Vec::new();
    let result = file::deliver(
        path,
        &envelope(job),
        content,
        job.len,
        &LockPolicy::default(),
        &mut notes,
    );
    let mut reply = match result {
        Ok(()) => reply(
            DeliveryStatus::Sent,
            "2.0.0",
            format!("delivered to file: {}", path.display()),
        ),
        Err(e @ (MboxError::ShortContent { .. } | MboxError::Content(_))) => {
            bail!("{}: {e}", job.id)
        }
        Err(e) => {
            let (status, dsn) = e.status();
            let reason = format!(
                "cannot append message to destination file {}: {e}",
                path.display()
            );
            if e.is_access_problem() {
                notes.push(format!("file access problem for UID/GID={}: {e}", ids()));
            }
            reply(status, dsn, reason)
        }
    };
    if !notes.is_empty() {
        reply.warning = Some(notes.join("; "));
    }
    Ok(reply)
}

/// `|command` delivery; `Err` only when the content stream broke.
fn to_command(job: &Job, spec: &CommandSpec, content: &mut impl Read) -> anyhow::Result<JobReply> {
    match command::run(spec, &envelope(job), content, job.len) {
        Ok((status, dsn, reason)) => Ok(reply(status, &dsn, reason)),
        Err(e) => bail!("{}: {e}", job.id),
    }
}

/// Look for the `.forward` as this user (`uid`).
fn read_forward(paths: &[PathBuf], uid: u32) -> JobReply {
    match forward::read_first(paths, uid) {
        Ok(forward::Found::File(found)) => JobReply {
            forward_file: Some(found),
            ..reply(DeliveryStatus::Sent, "2.0.0", "forward file found".into())
        },
        Ok(forward::Found::Nothing) => {
            reply(DeliveryStatus::Sent, "2.0.0", "no forward file".into())
        }
        Ok(forward::Found::Ignored(warning)) => JobReply {
            warning: Some(warning),
            ..reply(DeliveryStatus::Sent, "2.0.0", "forward file ignored".into())
        },
        Err(e) => reply(
            DeliveryStatus::Deferred,
            "4.3.0",
            format!("cannot read forward file: {}", crate::logging::strerror(&e)),
        ),
    }
}

/// `uid/gid` of this process, for warnings.
fn ids() -> String {
    format!("{}/{}", nix::unistd::geteuid(), nix::unistd::getegid())
}

/// `Return-Path:` and `Delivered-To:`, LF line ends (Postfix `mail_copy`
/// with RETURN_PATH and DELIVERED). Control characters cannot come from a
/// valid envelope; they are replaced so no header can be injected.
pub(crate) fn delivery_headers(sender: &str, recipient: &str) -> Vec<u8> {
    format!(
        "Return-Path: <{}>\nDelivered-To: {}\n",
        no_controls(sender),
        no_controls(recipient)
    )
    .into_bytes()
}

fn no_controls(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(maildir: PathBuf, content: &[u8]) -> Job {
        Job {
            id: "0000000000001A".into(),
            uid: nix::unistd::geteuid().as_raw(),
            user: "bob".into(),
            destination: Destination::Mailbox(Mailbox::Maildir(maildir)),
            sender: "alice@example.org".into(),
            recipient: "bob@example.org".into(),
            len: content.len() as u64,
            stem: None,
        }
    }

    fn stream(jobs: &[(Job, &[u8])]) -> Vec<u8> {
        let mut input = Vec::new();
        for (job, content) in jobs {
            input.extend(serde_json::to_vec(job).unwrap());
            input.push(b'\n');
            input.extend_from_slice(content);
        }
        input
    }

    fn replies(output: &[u8]) -> Vec<JobReply> {
        output
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn serves_jobs_in_order_and_keeps_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("bob/Maildir/");
        std::fs::write(dir.path().join("blocked"), b"").unwrap();
        let bad = dir.path().join("blocked/Maildir/");
        let mut wrong_uid = job(good.clone(), b"x\n");
        wrong_uid.uid += 1;
        let input = stream(&[
            (job(good.clone(), b"one\n"), b"one\n"),
            (job(bad, b"two\n"), b"two\n"),
            (wrong_uid, b"x\n"),
            (job(good.clone(), b"three\n"), b"three\n"),
        ]);
        let mut out = Vec::new();
        serve(&input[..], &mut out, &NameGen::new()).unwrap();
        let r = replies(&out);
        assert_eq!(r.len(), 4);
        assert_eq!(
            (r[0].status, r[0].dsn.as_str()),
            (DeliveryStatus::Sent, "2.0.0")
        );
        assert_eq!(r[0].reason, "delivered to maildir");
        assert_eq!(r[1].status, DeliveryStatus::Deferred);
        assert!(
            r[1].reason
                .starts_with("maildir delivery failed: create maildir file ")
        );
        assert!(r[1].warning.is_some());
        assert_eq!(
            (r[2].status, r[2].dsn.as_str()),
            (DeliveryStatus::Deferred, "4.3.0")
        );
        assert_eq!(r[3].status, DeliveryStatus::Sent);
        let file = good.join("new").join(r[3].file.as_ref().unwrap());
        assert_eq!(
            std::fs::read(file).unwrap(),
            b"Return-Path: <alice@example.org>\nDelivered-To: bob@example.org\nthree\n"
        );
    }

    #[test]
    fn mbox_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("bob");
        let mut to_mbox = job(PathBuf::new(), b"From me\n");
        to_mbox.destination = Destination::Mailbox(Mailbox::Mbox(mbox.clone()));
        let mut to_dir = to_mbox.clone();
        to_dir.destination = Destination::Mailbox(Mailbox::Mbox(dir.path().into()));
        let mut null_sender = to_mbox.clone();
        null_sender.sender = String::new();
        let input = stream(&[
            (to_mbox, b"From me\n"),
            (to_dir, b"From me\n"),
            (null_sender, b"From me\n"),
        ]);
        let mut out = Vec::new();
        serve(&input[..], &mut out, &NameGen::new()).unwrap();
        let r = replies(&out);
        assert_eq!(
            (r[0].status, r[0].dsn.as_str(), r[0].reason.as_str()),
            (DeliveryStatus::Sent, "2.0.0", "delivered to mailbox")
        );
        assert_eq!((r[0].file.as_ref(), r[0].warning.as_ref()), (None, None));
        assert_eq!(
            (r[1].status, r[1].dsn.as_str()),
            (DeliveryStatus::Bounced, "5.2.0")
        );
        let d = dir.path().display();
        assert_eq!(
            r[1].reason,
            format!(
                "cannot update mailbox {d} for user bob. destination {d} is not a regular file"
            )
        );
        assert_eq!(r[2].status, DeliveryStatus::Sent);
        let data = String::from_utf8(std::fs::read(&mbox).unwrap()).unwrap();
        let messages: Vec<&str> = data.split_inclusive("\n\n").collect();
        assert_eq!(messages.len(), 2, "{data}");
        for (m, sender) in messages.iter().zip(["alice@example.org", ""]) {
            let (from, rest) = m.split_once('\n').unwrap();
            let shown = if sender.is_empty() {
                "MAILER-DAEMON"
            } else {
                sender
            };
            assert!(from.starts_with(&format!("From {shown}  ")), "{from}");
            // `Www Mmm dd hh:mm:ss yyyy`
            assert_eq!(from.len(), format!("From {shown}  ").len() + 24, "{from}");
            assert_eq!(
                rest,
                format!("Return-Path: <{sender}>\nDelivered-To: bob@example.org\n>From me\n\n")
            );
        }
    }

    #[test]
    fn early_end_of_content_is_a_protocol_error() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir/");
        let mut input = stream(&[(job(md.clone(), b"0123456789"), b"")]);
        input.extend_from_slice(b"01234");
        let mut out = Vec::new();
        assert!(serve(&input[..], &mut out, &NameGen::new()).is_err());
        assert!(out.is_empty());
        assert_eq!(std::fs::read_dir(md.join("tmp")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(md.join("new")).unwrap().count(), 0);
    }

    #[test]
    fn forward_files_are_read_and_commands_refused_to_root() {
        let dir = tempfile::tempdir().unwrap();
        let forward = dir.path().join(".forward");
        std::fs::write(&forward, "bob@example.org\n").unwrap();
        let mut read = job(PathBuf::new(), b"");
        read.destination = Destination::ReadForward(vec![forward.clone()]);
        let mut command = job(PathBuf::new(), b"x\n");
        command.destination = Destination::Command(CommandSpec {
            command: format!("cat > {}/ran", dir.path().display()),
            env: Vec::new(),
            cwd: "/".into(),
            time_limit: 10,
        });
        let input = stream(&[(read, b""), (command, b"x\n")]);
        let mut out = Vec::new();
        serve(&input[..], &mut out, &NameGen::new()).unwrap();
        let r = replies(&out);
        assert_eq!(r[0].status, DeliveryStatus::Sent);
        let found = r[0].forward_file.as_ref().unwrap();
        assert_eq!(
            (&found.path, found.text.as_str()),
            (&forward, "bob@example.org\n")
        );
        if nix::unistd::geteuid().is_root() {
            assert_eq!(
                (r[1].status, r[1].reason.as_str()),
                (
                    DeliveryStatus::Deferred,
                    "delivery to files and commands never runs as root"
                )
            );
            assert!(!dir.path().join("ran").exists());
        } else {
            assert_eq!(r[1].status, DeliveryStatus::Sent, "{:?}", r[1]);
            assert!(
                std::fs::read(dir.path().join("ran"))
                    .unwrap()
                    .ends_with(b"\nx\n")
            );
        }
    }

    #[test]
    fn headers_cannot_be_injected() {
        assert_eq!(
            delivery_headers("", "bob@x"),
            b"Return-Path: <>\nDelivered-To: bob@x\n".to_vec()
        );
        assert_eq!(
            delivery_headers("a\nX-Evil: 1", "b\r\n"),
            b"Return-Path: <a?X-Evil: 1>\nDelivered-To: b??\n".to_vec()
        );
    }
}
