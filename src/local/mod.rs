//! `postern daemon local`: the local delivery agent (Postfix local(8)).
//!
//! # What it does
//!
//! Delivers mail for users of this machine into their Maildir or mbox.
//! qmgr sends one [`DeliveryRequest`](crate::ipc::DeliveryRequest) per
//! recipient; `local` checks it and answers one
//! [`DeliveryResult`](crate::ipc::DeliveryResult):
//!
//! 1. the recipient `user@domain` (or bare `user`; the domain is already
//!    known to be local) gives the lower-cased user name; an empty one
//!    bounces `5.1.3 null username in "<addr>"`;
//! 2. loop check: a `Delivered-To:` header naming the recipient in the
//!    message's header section bounces `5.4.6 mail forwarding loop for ADDR`;
//! 3. the user is looked up in passwd: unknown bounces
//!    `5.1.1 unknown user: "NAME"`;
//! 4. `local.mailbox` gives the mailbox ([`mailbox::Mailbox`]; `$user`,
//!    `$home` expanded, relative paths under the home directory): a
//!    Maildir when it ends in `/`, else an mbox file (`/var/mail/$user`,
//!    the Debian spool, or `mbox` in the home directory);
//! 5. a worker of that user writes the message with `Return-Path:` and
//!    `Delivered-To:` in front:
//!    * Maildir, as its specification asks: `2.0.0 delivered to maildir`;
//!    * mbox, as Postfix does: under a dot-lock `<mailbox>.lock` and then
//!      an `fcntl` lock (20 tries 1 s apart each; a dot-lock older than
//!      500 s is broken; still locked defers `4.2.0`), the line
//!      `From <sender>  <date>` first, body lines `From ` quoted as
//!      `>From `, an empty line last, fsync: `2.0.0 delivered to mailbox`. The mailbox is
//!      created (0600) when missing; one that is no regular file bounces
//!      `5.2.0`, one not owned by the recipient, a hard link or someone's
//!      symbolic link defers `4.2.0`. A failed write truncates the file
//!      back to its size before, so no half message stays behind.
//!
//!    Mailbox errors map as in Postfix (`EDQUOT`/`EFBIG` bounce 5.2.2,
//!    `ENOSPC`/`EIO` defer 4.3.0), except that permission and other
//!    unexpected errors defer (4.2.0) rather than bounce, so an
//!    administrator can repair a mailbox without losing mail. mbox reasons
//!    read `cannot update mailbox PATH for user NAME. DETAIL`.
//!
//! Every delivery is logged in Postfix's shape:
//! `ID: to=<rcpt>, relay=local, delay=0.12, delays=0.06/0.01/0/0.05,
//! dsn=2.0.0, status=sent (delivered to maildir)`.
//!
//! Aliases, `.forward`, `|command` and `/file` deliveries come later;
//! [`mailbox::Mailbox`] and the checks in `agent` are where they go.
//! Neither `mailbox_size_limit` nor biff notifications exist yet.
//!
//! # Inputs and outputs
//!
//! * In: connections on the `local` socket (0600, the postern user's: only
//!   qmgr), one JSON request a line, each answered in order; connections are
//!   served concurrently. The message content is read from the queue,
//!   read-only, at the place the request names, in chunks (a message of
//!   100 MiB is never held in memory).
//! * Out: files in users' Maildirs and mbox files (and the mbox's
//!   `.lock` file while it is written), written by the workers; results to
//!   qmgr; log lines.
//!
//! # Security
//!
//! `local` runs as root because it must write as any user; it keeps only
//! what switching users needs (SETUID, SETGID), and never writes a mailbox
//! itself. Each delivery runs in a child, `postern daemon local-worker`,
//! that has become the recipient (its supplementary groups, gid, uid: one
//! step, its first act, before it reads a byte) and is kept for further
//! deliveries to that user for `local.worker_idle`, so no process is started
//! per message. The child cannot read the queue (postern's, 0700): the
//! parent streams each message to it through a pipe. Each job names the uid
//! it is for and a child under any other uid refuses it, so root never
//! writes a non-root user's mailbox. The child's environment is cleared but
//! for `HOME`, `USER`, `LOGNAME`, `PATH`; its answers are checked for shape.
//!
//! mbox spool directories: a mailbox outside the user's home directory
//! lies in a spool that all users share. When that directory is
//! group-writable and not world-writable (Debian's `/var/mail`, `root:mail`
//! 2775), a user cannot create the dot-lock `/var/mail/USER.lock` there, so
//! `local` adds the directory's group to the supplementary groups of that
//! user's worker (Postfix delivers there with the spool's gid); the group
//! is then the user's for every delivery that worker makes. It is never
//! group 0. A world-writable sticky spool (1777) and mailboxes in the home
//! directory get nothing extra. The worker still opens the mailbox only
//! with the user's rights: an mbox of another owner, a hard link or a
//! symbolic link (other than root's, in a directory only root may change)
//! is refused, and a missing mailbox is created with `O_EXCL`, so a link
//! planted in a shared spool is never followed. A worker killed while
//! writing (the delivery timeout) leaves its partial message and a
//! dot-lock that others break after 500 s.
//!
//! Trusted: qmgr's requests (the socket admits only the postern user) and
//! the queue's content; passwd. Not trusted: the message (headers are only
//! scanned, never interpreted beyond `Delivered-To:`), the workers' replies,
//! the mailbox directories (a user may replace them with anything: the
//! worker writes there only with the user's own rights).
//!
//! Run as an ordinary user (`postern start` without root), `local` delivers
//! only to that user, still through a worker; mail for anyone else is
//! deferred (`4.3.0 cannot deliver to user "bob": postern runs as user
//! "alice" (not root)`) with a warning.
//!
//! # Specifications
//!
//! The Maildir specification (cr.yp.to/proto/maildir.html: `tmp/` →
//! `new/`, unique names with host name, pid, counter, time, device and
//! inode); the mbox format as Postfix writes it (`From ` lines with
//! asctime dates, `>From ` quoting, `fcntl` and dot-locks: Postfix
//! `mailbox_delivery_lock = fcntl, dotlock` on Linux); Postfix local(8)
//! behaviour for headers, loop check, errno mapping and log lines (RFC 3463
//! enhanced status codes).
//!
//! # Configuration
//!
//! * `local.mailbox` (Postfix `home_mailbox`, and `mail_spool_directory`
//!   when absolute)
//! * fixed for now, Postfix's defaults: `deliver_lock_attempts` = 20,
//!   `deliver_lock_delay` = 1s, `stale_lock_time` = 500s
//!   (`lock::LockPolicy`), `strict_mailbox_ownership` = yes
//! * `local.worker_idle`: how long a worker waits for more work
//! * `server.origin` (`myorigin`): the domain of a bare recipient
//! * `queue.directory` (`queue_directory`): where the content lies

mod agent;
mod command;
mod delay;
mod errno;
mod file;
mod forward;
mod header;
mod lock;
pub mod mailbox;
mod maildir;
mod mbox;
mod pool;
mod route;
mod worker;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

pub use agent::Privilege;
pub use delay::format_delay;
pub use pool::{PoolError, PoolLimits, WorkerCommand, WorkerPool};
pub use worker::{IDENTITY_ENV, Identity, Job, JobReply, worker_main};

use crate::config::Config;

/// The daemon: serve qmgr on `listener` (the `local` socket from socket
/// activation), delivering through workers that run this binary as
/// `postern daemon local-worker`.
pub async fn run(
    config: Arc<Config>,
    listener: std::os::unix::net::UnixListener,
) -> anyhow::Result<()> {
    let command = WorkerCommand::current_exe().context("cannot find postern's own binary")?;
    let limits = PoolLimits {
        per_user: config.local.concurrency_per_user,
        ..PoolLimits::default()
    };
    // SIGTERM ends the daemon; the supervisor sends it after qmgr has
    // stopped, so no delivery is in flight then.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = serve(config, listener, command, limits) => r,
        _ = term.recv() => {
            log::info!("terminating on signal");
            Ok(())
        }
    }
}

/// [`run`] with the worker program and limits given (tests run the built
/// binary rather than the test harness).
pub async fn serve(
    config: Arc<Config>,
    listener: std::os::unix::net::UnixListener,
    command: WorkerCommand,
    limits: PoolLimits,
) -> anyhow::Result<()> {
    // Socket activation hands the listener over without close-on-exec; the
    // workers, running as users, must not inherit it.
    nix::fcntl::fcntl(
        listener.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .context("set close-on-exec on the local socket")?;
    listener.set_nonblocking(true).context("local socket")?;
    let listener = tokio::net::UnixListener::from_std(listener).context("local socket")?;

    let privilege = Privilege::current();
    if let Privilege::User { name, .. } = &privilege {
        log::warn!("not running as root: delivering only to user \"{name}\"");
    }
    let pool = WorkerPool::new(
        command,
        privilege.switches_user(),
        config.local.worker_idle,
        limits,
    );
    let agent = Arc::new(agent::Agent::new(config, privilege, pool));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(agent.clone().serve_connection(stream));
            }
            Err(e) => {
                // EMFILE and friends: wait for connections to close.
                log::warn!("accept on the local socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
