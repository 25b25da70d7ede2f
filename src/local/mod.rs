//! `postern daemon local`: the local delivery agent (Postfix local(8)).
//!
//! # Security
//!
//! `local` runs as root because it must write as any user; it keeps only
//! what switching users needs (SETUID, SETGID), SETPCAP (its children empty
//! their bounding set), DAC_READ_SEARCH (the queue files are postern's)
//! and KILL (a hung child), with `no_new_privs` and its Landlock room (see
//! [`crate::sandbox`]), and never writes a mailbox itself. Each delivery
//! runs in a child, `postern daemon local-worker`,
//! that has become the recipient (its supplementary groups, gid, uid: one
//! step, its first act, before it reads a byte; then every capability set
//! is emptied, and a mailbox child confines itself with Landlock to the
//! home and the mailbox's directory) and is kept for further
//! deliveries to that user for `local.worker_idle`, so no process is started
//! per message. One child serves a user's concurrent deliveries
//! (`local.concurrency_per_user` of them) at once, each on a lane of its
//! own: a pair of pipes and a thread, started after the switch and the
//! confinement. The child cannot read the queue (postern's, 0700): the
//! parent streams each message to it through its lane's pipe. Each job names the uid
//! it is for and a child under any other uid refuses it, so root never
//! writes a non-root user's mailbox. The child's environment is cleared but
//! for `HOME`, `USER`, `LOGNAME`, `PATH`; its answers are checked for shape.
//!
//! The boundary is the directory. `src/local/` itself is the root-side
//! parent: the agent that answers qmgr (`agent`), the expansion of a
//! recipient through aliases and `.forward` (`route`), the mailbox a user
//! gets (`mailbox`), the delivery record (`journal`), the header scan
//! (`header`) and the pool of children (`pool`). Everything in
//! `src/local/worker/` runs in the child, as the recipient: the job
//! protocol and the change of identity (`worker/mod.rs`), Maildir and mbox
//! writing (`maildir`, `mbox`, with `lock` and `errno`), `|command` and
//! `/file` deliveries (`command`, `file`) and reading a `.forward`
//! (`forward`). The parent builds jobs from the worker's types and two of
//! its pure functions (a command's environment, the `.forward` paths to
//! try) but opens, writes and runs nothing there; the worker takes
//! nothing from the parent but the `mailbox::Mailbox` a job names.
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
//! dot-lock that others break after 500 s. A delivery past the timeout
//! is deferred and its worker takes no more jobs; its other lanes finish
//! the deliveries they have (each under its own timeout), then the
//! worker's pipes are closed and it is killed 5 s later if the stuck lane
//! has not ended; the next delivery to the user starts a fresh worker.
//!
//! Trusted: qmgr's requests (the socket admits only the postern user) and
//! the queue's content; passwd; the alias table. Not trusted: the message
//! (headers are only scanned, never interpreted beyond `Delivered-To:`;
//! envelope values reach a command only censored, in its environment), the
//! workers' replies (a `.forward` they return is the user's own text, and
//! what it names runs as that user), the mailbox directories and home
//! directories (a user may replace them with anything: the worker works
//! there only with the user's own rights).
//!
//! `|command` and `/file` deliveries never run as root, in a worker of
//! their own (the user's groups only, never an mbox spool's group). Whom
//! they run as (Postfix's delivery rights):
//! * from an alias file: the owner of that file, or `nobody` (Postfix
//!   `default_privs`) when root owns it;
//! * from the inline aliases or the built-in ones: `nobody`;
//! * from a `.forward`: its user, or `nobody` for root's;
//! * never the mail system's own user (`server.user`, who owns the queue):
//!   `nobody` instead;
//! * never from an `:include:` file (`5.7.1 mail to command is
//!   restricted`, as Postfix's default `allow_mail_to_commands` and
//!   `allow_mail_to_files`).
//!
//! A worker that runs as root refuses them too. A `.forward` is read by
//! the user's worker (as the user: a file the user cannot read is not
//! read), opened without following a symbolic link, and used only when it
//! is a regular file owned by the user or root and writable by neither
//! group nor others (someone else who could write it could choose where
//! the user's mail goes and what runs as the user); otherwise it is
//! ignored with a warning (`file PATH is group-writable; ignored`) and the
//! mail goes to the mailbox. Root only checks, with `lstat`, whether a
//! `.forward` exists at all. A command's process group is killed at its
//! time limit; a process that left the group (`setsid`) and keeps the
//! command's input open holds the worker until the pool's timeout (the
//! time limit and 30 s).
//!
//! Run as an ordinary user (`postern start` without root), `local` delivers
//! only to that user, still through a worker; mail for anyone else is
//! deferred (`4.3.0 cannot deliver to user "bob": postern runs as user
//! "alice" (not root)`) with a warning.
//!
//! # What it does
//!
//! Delivers mail for users of this machine: into their Maildir or mbox,
//! through aliases and `~/.forward` files, to `|command`s and `/file`s.
//! qmgr sends one [`DeliveryRequest`](crate::ipc::DeliveryRequest) per
//! recipient; `local` expands it (`route`) and answers one
//! [`DeliveryResult`](crate::ipc::DeliveryResult):
//!
//! 1. the recipient `user@domain` (or bare `user`; the domain is already
//!    known to be local) gives the lower-cased local part; an empty one
//!    bounces `5.1.3 null username in "<addr>"`;
//! 2. loop check: a `Delivered-To:` header naming the address in the
//!    message's header section bounces `5.4.6 mail forwarding loop for ADDR`
//!    (made again for every address the expansion reaches);
//! 3. aliases (`local.aliases`, `local.alias_files`; see
//!    [`crate::aliases`]): `user+ext`, then `user`; an alias expands to
//!    its final targets; remote addresses go back to qmgr in
//!    `DeliveryResult::forward` (queued as a new message), local users go
//!    on with step 4, `\user` straight to step 6;
//! 4. the user (the local part up to the first `local.recipient_delimiter`
//!    character) is looked up in passwd: unknown bounces
//!    `5.1.1 unknown user: "NAME"`;
//! 5. `~/.forward` (`~/.forward+ext` first for `user+ext`; see `worker::forward`),
//!    read by the user's worker, trusted only when it is a regular file of
//!    the user or root, writable by neither group nor others (else it is
//!    ignored with a warning): each line not starting with `#` is an alias
//!    right-hand side. `\user` and the user itself mean the mailbox (a
//!    copy kept); other local addresses start again at step 2 (aliases,
//!    then their own `.forward`); remote addresses are forwarded; `|command`
//!    and `/file` run as the user. A file without usable targets means the
//!    mailbox. `:include:` is not supported there (ignored with a warning);
//! 6. the mailbox: `local.mailbox` gives it ([`mailbox::Mailbox`]; `$user`,
//!    `$home` expanded, relative paths under the home directory): a
//!    Maildir when it ends in `/`, else an mbox file (`/var/mail/$user`,
//!    the Debian spool, or `mbox` in the home directory). A worker of that
//!    user writes the message with `Return-Path:` and `Delivered-To:` in
//!    front:
//!    * Maildir, as its specification asks: `2.0.0 delivered to maildir`;
//!    * mbox, as Postfix does: under a dot-lock `<mailbox>.lock` and then
//!      an `fcntl` lock (20 tries 1 s apart each; a dot-lock older than
//!      500 s is broken; still locked defers `4.2.0`), the line
//!      `From <sender>  <date>` first, body lines `From ` quoted as
//!      `>From `, an empty line last, fsync: `2.0.0 delivered to mailbox`.
//!      The mailbox is created (0600) when missing; one that is no regular
//!      file bounces `5.2.0`, one not owned by the recipient, a hard link
//!      or someone's symbolic link defers `4.2.0`. A failed write
//!      truncates the file back to its size before, so no half message
//!      stays behind.
//!
//!    With `local.mailbox_transport` (Postfix's `mailbox_transport`, an
//!    LMTP server such as Dovecot) the mailbox is not written here, nor
//!    claimed in the journal: the user's address (`user@domain`, the
//!    recipient's domain or `server.origin` for a user an alias or a
//!    `.forward` named, extension kept) goes back to qmgr in
//!    `DeliveryResult::mailbox_transport`, logged `to=<ADDR>,
//!    relay=local: mailbox delivery passed to lmtp:NEXTHOP` (no status:
//!    the LMTP delivery's line has it). local cannot connect there
//!    itself (the socket is postern's; local has no DAC_OVERRIDE):
//!    qmgr has the smtp agent deliver the addresses over LMTP and
//!    records the recipient's outcome with that answer. A request that
//!    is deferred passes nothing on (its retry does). Steps 1 to 5,
//!    `|command` and `/file` are unchanged.
//!
//!    Mailbox errors map as in Postfix (`EDQUOT`/`EFBIG` bounce 5.2.2,
//!    `ENOSPC`/`EIO` defer 4.3.0), except that permission and other
//!    unexpected errors defer (4.2.0) rather than bounce, so an
//!    administrator can repair a mailbox without losing mail. mbox reasons
//!    read `cannot update mailbox PATH for user NAME. DETAIL`.
//!
//! `|command` (see `worker::command`): `/bin/sh -c COMMAND` in a process group of
//! its own, in the home directory of the user it runs as (`/` when that
//! cannot be entered), with the message on its input after `From `,
//! `Return-Path:` and `Delivered-To:` lines (not quoted, no empty line at
//! the end), and only `HOME`, `SHELL`, `USER`, `LOGNAME`, `SENDER`,
//! `RECIPIENT`, `LOCAL`, `DOMAIN`, `EXTENSION` (values censored to a safe
//! set of characters) and `PATH=/usr/bin:/bin` in its environment. Exit 0:
//! `2.0.0 delivered to command: COMMAND`; an enhanced status code opening
//! its output wins; sysexits codes map as in Postfix (75 and 71 defer
//! 4.3.0, 67 bounces 5.1.1, 69 5.3.0, ...); other codes bounce
//! `5.3.0 Command died with status N: "COMMAND". Command output: ...` (the
//! first 1000 bytes of standard output and error, made printable); a
//! signal defers. After 1000 s (Postfix `command_time_limit`) the process
//! group is killed and the delivery deferred `4.3.0 Command time limit
//! exceeded`.
//!
//! `/file` (see `worker::file`): appended in mbox form with the mailbox's locking
//! and truncation (the dot-lock may be impossible, then only `fcntl`; any
//! owner, as long as the user may write it): `2.0.0 delivered to file:
//! PATH`; a file with an execute bit bounces `5.7.1`; `/dev/null` and other
//! devices are written without locks; a path ending in `/` is a Maildir.
//!
//! Each final target is delivered once per request; a `.forward` chain
//! that comes back to a user it passed through bounces `5.4.6 mail
//! forwarding loop for ADDR`, more than 100 steps `5.4.6 recipient nesting
//! limit exceeded`. The request's result: deferred when any target
//! deferred (all are tried again later, as in Postfix), else bounced when
//! any bounced, else sent.
//!
//! Every final delivery is logged in Postfix's shape:
//! `ID: to=<rcpt>, relay=local, delay=0.12, delays=0.06/0.01/0/0.05,
//! dsn=2.0.0, status=sent (delivered to maildir)`, with `orig_to=<...>`
//! after `to=` when an alias or a `.forward` led there. Commands and files
//! are logged under the address whose alias or `.forward` named them, and
//! get that address as `Delivered-To:`.
//!
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
//!   qmgr (with the mailboxes passed to `local.mailbox_transport`); log
//!   lines.
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
//! # Service manager and reload
//!
//! `READY=1` once the socket is served, `STATUS=local: N deliveries in
//! progress` (at most once a second), `STOPPING=1` on SIGTERM (see
//! [`crate::notify`]). SIGHUP reloads the configuration file in place:
//! each request is delivered with the configuration (and alias table) in
//! effect when it arrives, so a delivery in progress finishes with its
//! own; a change of `local.worker_idle` or `local.concurrency_per_user`
//! starts a new worker pool (the old workers finish and go). An invalid
//! file is refused and the running configuration kept.
//!
//! # Configuration
//!
//! * `local.mailbox` (Postfix `home_mailbox`, and `mail_spool_directory`
//!   when absolute)
//! * `local.mailbox_transport` (`mailbox_transport`): an LMTP server that
//!   gets the mailbox deliveries instead
//! * `local.aliases`, `local.alias_files` (`alias_maps`),
//!   `local.recipient_delimiter` (`recipient_delimiter`), `local.domains`
//!   (`mydestination`: which addresses in a `.forward` are local)
//! * `local.command_time_limit` (`command_time_limit`, 1000s),
//!   `local.default_privs` (`default_privs`, nobody),
//!   `local.allow_mail_to_commands` and `local.allow_mail_to_files`
//!   (`alias, forward`)
//! * fixed for now, Postfix's defaults: `forward_path` =
//!   `$home/.forward${recipient_delimiter}${extension}, $home/.forward`,
//!   `local_command_shell` empty (`/bin/sh -c`), `command_execution_directory`
//!   = the home directory (Postfix: the queue directory)
//! * fixed for now, Postfix's defaults: `deliver_lock_attempts` = 20,
//!   `deliver_lock_delay` = 1s, `stale_lock_time` = 500s
//!   (`worker::lock::LockPolicy`), `strict_mailbox_ownership` = yes
//! * `local.worker_idle`: how long a worker waits for more work
//! * `server.origin` (`myorigin`): the domain of a bare recipient
//! * `queue.directory` (`queue_directory`): where the content lies

mod agent;
mod header;
pub(crate) mod journal;
pub(crate) mod mailbox;
mod pool;
mod route;
mod worker;

use std::os::fd::AsRawFd;
use std::sync::Arc;

use anyhow::Context;

use agent::Privilege;
use pool::WorkerPool;
pub use pool::{PoolLimits, WorkerCommand};
pub use worker::worker_main;

use crate::agent::Live;
use crate::config::Config;
use crate::notify::{self, reload::Reload};

/// The daemon: serve qmgr on `listener` (the `local` socket from socket
/// activation), delivering through workers that run this binary as
/// `postern daemon local-worker`. SIGHUP reloads the configuration for the
/// next delivery (see [`Reload`]).
pub(crate) async fn run(
    config: Arc<Config>,
    listener: std::os::unix::net::UnixListener,
    reload: Reload,
) -> anyhow::Result<()> {
    let command = WorkerCommand::current_exe().context("cannot find postern's own binary")?;
    let limits = PoolLimits {
        per_user: config.local.concurrency_per_user,
        ..PoolLimits::default()
    };
    // SIGTERM ends the daemon; the supervisor sends it after qmgr has
    // stopped, so no delivery is in flight then.
    notify::until_terminated(serve_reloading(
        config,
        listener,
        command,
        limits,
        Some(reload),
    ))
    .await
}

/// [`run`] with the worker program and limits given (tests run the built
/// binary rather than the test harness), without reloading.
pub async fn serve(
    config: Arc<Config>,
    listener: std::os::unix::net::UnixListener,
    command: WorkerCommand,
    limits: PoolLimits,
) -> anyhow::Result<()> {
    serve_reloading(config, listener, command, limits, None).await
}

async fn serve_reloading(
    config: Arc<Config>,
    listener: std::os::unix::net::UnixListener,
    command: WorkerCommand,
    limits: PoolLimits,
    reload: Option<Reload>,
) -> anyhow::Result<()> {
    // Socket activation hands the listener over without close-on-exec; the
    // workers, running as users, must not inherit it.
    nix::fcntl::fcntl(
        listener.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .context("set close-on-exec on the local socket")?;
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
    let live = Arc::new(Live::new(agent::Agent::new(config, privilege, pool)));
    crate::agent::serve(listener, live, reload).await
}
