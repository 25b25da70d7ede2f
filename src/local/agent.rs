//! Serving qmgr: each connection carries delivery requests, answered one
//! by one in order. `route` expands each request into final deliveries;
//! this file holds what those are made of: the checks (loop, passwd,
//! privilege), the rights a command or file gets, and the jobs that the
//! workers run (mailbox, `/file`, `|command`, reading a `.forward`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::fs::File;

use tokio::net::UnixStream;

use super::header;
use super::journal::{Claim, Journal, Ticket};
use super::mailbox::{self, Mailbox};
use super::pool::WorkerPool;
use super::route::{self, Backend, Rcpt};
use super::worker::command::{self, CommandSpec, Whom};
use super::worker::forward::{self, ForwardFile};
use super::worker::{Destination, Identity, Job};
use crate::agent::{DeliveryAgent, Live};
use crate::aliases::{ExpandOptions, LiveTable, LoadError, Source, Table};
use crate::config::Config;
use crate::ipc::{self, DeliveryRequest, DeliveryResult, DeliveryStatus};
use crate::queue::now_micros;
use crate::wire::delay::Delays;

/// Whom this agent may deliver to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Privilege {
    /// Running as root: any user, each in a child that becomes the user.
    Root,
    /// Running as an ordinary user (`postern start` on a laptop): only that
    /// user's own mail.
    User { uid: u32, name: String },
}

impl Privilege {
    pub(crate) fn current() -> Privilege {
        let euid = nix::unistd::geteuid();
        if euid.is_root() {
            return Privilege::Root;
        }
        let name = nix::unistd::User::from_uid(euid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| euid.to_string());
        Privilege::User {
            uid: euid.as_raw(),
            name,
        }
    }

    pub(crate) fn switches_user(&self) -> bool {
        *self == Privilege::Root
    }

    /// `Err(reason)` when this process cannot act for `user`.
    fn allows(&self, user: &nix::unistd::User) -> Result<(), String> {
        match self {
            Privilege::Root => Ok(()),
            Privilege::User { uid, .. } if *uid == user.uid.as_raw() => Ok(()),
            Privilege::User { name, .. } => Err(format!(
                "cannot deliver to user \"{}\": postern runs as user \"{name}\" (not root)",
                user.name
            )),
        }
    }
}

/// The result of one delivery, before it becomes a log line and a reply.
pub(crate) use crate::outcome::Outcome;
use crate::outcome::code;

pub(crate) struct Agent {
    config: Arc<Config>,
    privilege: Privilege,
    pool: Arc<WorkerPool>,
    aliases: LiveTable,
    /// The delivery record (`None`: it could not be opened; deliveries go
    /// on without protection from repeats).
    journal: Option<Arc<Journal>>,
}

impl Agent {
    pub(crate) fn new(config: Arc<Config>, privilege: Privilege, pool: WorkerPool) -> Agent {
        let journal = match Journal::open(&config.server.run_directory, &config.queue.directory) {
            Ok(j) => Some(j),
            Err(e) => {
                log::warn!(
                    "cannot open the delivery record in {}: {e}; a delivery whose result is lost in a crash may be made twice",
                    config
                        .server
                        .run_directory
                        .join(super::journal::DIR)
                        .display()
                );
                None
            }
        };
        Agent {
            aliases: LiveTable::from_config(&config),
            config,
            privilege,
            pool: Arc::new(pool),
            journal,
        }
    }

    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }
}

impl DeliveryAgent for Agent {
    const ROLE: &'static str = "local";
    const SOCKET: &'static str = "local";

    fn config(&self) -> &Arc<Config> {
        Agent::config(self)
    }

    /// A new alias table, the same workers unless their limits changed:
    /// then a new pool (the old workers finish their deliveries and go).
    fn reconfigured(&self, config: Arc<Config>) -> Agent {
        let (old, new) = (&self.config.local, &config.local);
        let pool = if new.worker_idle != old.worker_idle
            || new.concurrency_per_user != old.concurrency_per_user
        {
            Arc::new(self.pool.resized(new.worker_idle, new.concurrency_per_user))
        } else {
            self.pool.clone()
        };
        Agent {
            aliases: LiveTable::from_config(&config),
            config,
            privilege: self.privilege.clone(),
            pool,
            journal: self.journal.clone(),
        }
    }

    /// Answer the requests on one connection, in order, until it closes. A
    /// malformed line closes the connection.
    async fn serve_connection(live: Arc<Live<Agent>>, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let mut read = tokio::io::BufReader::new(read);
        let mut first = true;
        loop {
            let request: DeliveryRequest = match ipc::read_line(&mut read).await {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    log::warn!("malformed delivery request, closing the connection: {e}");
                    return;
                }
                Err(e) => {
                    log::warn!("reading delivery requests: {e}");
                    return;
                }
            };
            let delivering = live.delivering();
            let mut result = live.agent().deliver(&request).await;
            drop(delivering);
            if std::mem::take(&mut first) && !live.agent().config().metrics.listen.is_empty() {
                result.started = crate::role::me();
            }
            if let Err(e) = ipc::write_line(&mut write, &result).await {
                log::warn!(
                    queue_id = request.id.as_str();
                    "{}: cannot send the delivery result: {e}",
                    request.id
                );
                return;
            }
        }
    }
}

impl Agent {
    /// Deliver one request and log it in Postfix's shape (one line per
    /// final delivery when aliases or a `.forward` expanded the
    /// recipient).
    pub(crate) async fn deliver(&self, request: &DeliveryRequest) -> DeliveryResult {
        let start = now_micros();
        let route::Routed {
            outcome,
            forward,
            lists,
            owner_failures,
            passed,
            logged,
        } = route::route(self, request, start).await;
        if !logged {
            log::info!(
                queue_id = request.id.as_str(),
                recipient = request.recipient.as_str(),
                status = crate::logging::status_field(outcome.status);
                "{}",
                log_line(request, None, &outcome, start, now_micros())
            );
        }
        DeliveryResult {
            rcpt_index: request.rcpt_index,
            status: outcome.status,
            dsn: outcome.dsn,
            reason: outcome.reason,
            forward,
            lists,
            owner_failures,
            remote_mta: None,
            diagnostic: None,
            mailbox_transport: match (passed.is_empty(), self.mailbox_transport()) {
                (false, Some(nexthop)) => Some(ipc::MailboxTransport {
                    nexthop: nexthop.clone(),
                    addresses: passed,
                }),
                _ => None,
            },
            started: None,
        }
    }

    fn allowed(
        &self,
        request: &DeliveryRequest,
        (user, groups): (nix::unistd::User, Vec<u32>),
    ) -> Result<Account, Outcome> {
        if let Err(reason) = self.privilege.allows(&user) {
            log::warn!(queue_id = request.id.as_str(); "{}: {reason}", request.id);
            return Err(Outcome::deferred(code::SYSTEM_TEMP, reason));
        }
        Ok(Account { user, groups })
    }

    /// The identity of `account`'s worker for its mailbox (and for reading
    /// its `.forward`, so that one worker does both): its groups, plus the
    /// group of an mbox spool that needs it.
    async fn mailbox_identity(&self, account: &Account) -> (Identity, Mailbox) {
        let user = &account.user;
        let mailbox = Mailbox::resolve(&self.config.local.mailbox, &user.name, &user.dir);
        let mut identity = identity(account);
        identity.confine = Some(mailbox_directories(&mailbox, &user.dir));
        if self.privilege.switches_user()
            && let Some(spool) = mailbox.spool_directory(&user.dir)
            && let Some(gid) = spool_group(spool).await
            && !identity.groups.contains(&gid)
        {
            identity.groups.push(gid);
        }
        (identity, mailbox)
    }

    fn job(
        &self,
        request: &DeliveryRequest,
        identity: &Identity,
        destination: Destination,
        address: &str,
    ) -> Job {
        Job {
            id: request.id.to_string(),
            uid: identity.uid,
            user: identity.user.clone(),
            stem: maildir_stem(request, identity.uid, &destination),
            destination,
            sender: request.sender.clone(),
            recipient: address.to_string(),
            len: request.content.span().2,
        }
    }

    /// Run `job` in a worker of `identity`, streaming the message to it.
    async fn run(&self, request: &DeliveryRequest, identity: &Identity, job: &Job) -> Outcome {
        let id = &request.id;
        let (file, offset, _) = match self.open_content(request) {
            Ok(opened) => opened,
            Err(outcome) => return outcome,
        };
        match self.pool.deliver(identity, job, &file, offset).await {
            Ok(reply) => {
                if let Some(warning) = &reply.warning {
                    log::warn!(queue_id = id.as_str(); "{id}: {warning}");
                }
                Outcome::new(reply.status, reply.code(), reply.reason)
            }
            Err(e) => {
                log::warn!(queue_id = id.as_str(); "{id}: {e}");
                Outcome::deferred(code::SYSTEM_TEMP, e.to_string())
            }
        }
    }

    /// The queue file, the message's offset and length in it. Opened and
    /// read in place, not on a blocking thread: the queue is local's own
    /// disk and the message was just written (the page cache has it);
    /// a hand-off per call cost more than the read (issue 22).
    fn open_content(&self, request: &DeliveryRequest) -> Result<(File, u64, u64), Outcome> {
        let path = request.content.file_in(&self.config.queue.directory);
        let (_, offset, len) = request.content.span();
        match File::open(&path) {
            Ok(file) => Ok((file, offset, len)),
            Err(e) => Err(self.queue_error(request, e)),
        }
    }

    fn queue_error(&self, request: &DeliveryRequest, e: io::Error) -> Outcome {
        let path = request.content.file_in(&self.config.queue.directory);
        log::warn!(
            queue_id = request.id.as_str();
            "{}: cannot read queue file {}: {e}",
            request.id,
            path.display()
        );
        Outcome::deferred(code::SYSTEM_TEMP, format!("cannot read queue file: {e}"))
    }
}

impl Backend for Agent {
    fn origin(&self) -> &str {
        &self.config.server.origin
    }

    fn mailbox_transport(&self) -> Option<&crate::transport::Nexthop> {
        match &self.config.local.mailbox_transport {
            Some(crate::transport::Transport::Lmtp(nexthop)) => Some(nexthop),
            _ => None,
        }
    }

    fn delimiters(&self) -> &str {
        &self.config.local.recipient_delimiter
    }

    fn aliases(&self) -> Result<Arc<Table>, LoadError> {
        self.aliases.table()
    }

    fn options(&self) -> &ExpandOptions {
        self.aliases.options()
    }

    async fn claim(&self, request: &DeliveryRequest, key: &str) -> Claim {
        match &self.journal {
            Some(journal) => journal.claim(request, key).await,
            None => Claim::Mine(Ticket::unrecorded()),
        }
    }

    /// Is there a `Delivered-To:` for `address` in the message's headers?
    async fn looped(&self, request: &DeliveryRequest, address: &str) -> Result<bool, Outcome> {
        let (file, offset, len) = self.open_content(request)?;
        header::delivered_to(&file, offset, len, address).map_err(|e| self.queue_error(request, e))
    }

    /// The passwd entry of a user who may receive mail here: unknown users
    /// bounce, and users this process cannot act for defer.
    async fn account(&self, request: &DeliveryRequest, name: &str) -> Result<Account, Outcome> {
        let found = match lookup_user(name).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Err(Outcome::bounced(
                    code::BAD_MAILBOX,
                    format!("unknown user: \"{name}\""),
                ));
            }
            Err(e) => {
                log::warn!(
                    queue_id = request.id.as_str();
                    "{}: cannot look up user \"{name}\": {e}",
                    request.id
                );
                let reason = format!("cannot look up user \"{name}\"");
                return Err(Outcome::deferred(code::SYSTEM_TEMP, reason));
            }
        };
        self.allowed(request, found)
    }

    /// Whom `|command` and `/file` targets run as (Postfix's delivery
    /// rights): an alias file's owner, the user of a `.forward` (`owner`),
    /// and `local.default_privs` for inline and built-in aliases and instead of
    /// root or of the mail system's own user (`server.user`, which owns the
    /// queue).
    async fn rights(
        &self,
        request: &DeliveryRequest,
        owner: Rights<'_>,
    ) -> Result<Account, Outcome> {
        let found = match owner {
            Rights::User(account) => Some(account.clone()),
            Rights::Alias(Source::Default | Source::Inline) => None,
            Rights::Alias(Source::File { path, .. }) => {
                use std::os::unix::fs::MetadataExt;
                let uid = match tokio::fs::metadata(path).await {
                    Ok(meta) => meta.uid(),
                    Err(e) => {
                        let path = path.display();
                        log::warn!(
                            queue_id = request.id.as_str();
                            "{}: cannot stat alias file {path}: {e}",
                            request.id
                        );
                        return Err(Outcome::deferred(
                            code::SYSTEM_TEMP,
                            "alias database unavailable",
                        ));
                    }
                };
                match lookup_uid(uid).await {
                    Ok(Some((user, groups))) => Some(Account { user, groups }),
                    Ok(None) => {
                        log::warn!(
                            queue_id = request.id.as_str();
                            "{}: no passwd entry for alias file owner uid {uid}",
                            request.id
                        );
                        let reason = "cannot find alias database owner";
                        return Err(Outcome::deferred(code::SYSTEM_TEMP, reason));
                    }
                    Err(e) => {
                        log::warn!(
                            queue_id = request.id.as_str();
                            "{}: cannot look up uid {uid}: {e}",
                            request.id
                        );
                        let reason = "cannot find alias database owner";
                        return Err(Outcome::deferred(code::SYSTEM_TEMP, reason));
                    }
                }
            }
        };
        let found =
            found.filter(|a| a.user.uid.as_raw() != 0 && a.user.name != self.config.server.user);
        if let Some(account) = found {
            return self.allowed(request, (account.user, account.groups));
        }
        let privs = &self.config.local.default_privs;
        match lookup_user(privs).await {
            Ok(Some(found)) if found.0.uid.as_raw() != 0 => self.allowed(request, found),
            Ok(_) => {
                let id = &request.id;
                log::warn!(
                    queue_id = id.as_str();
                    "{id}: default_privs user \"{privs}\" is unknown or root"
                );
                Err(Outcome::deferred(
                    code::CONFIG_TEMP,
                    "mail system configuration error",
                ))
            }
            Err(e) => {
                log::warn!(
                    queue_id = request.id.as_str();
                    "{}: cannot look up user \"{privs}\": {e}",
                    request.id
                );
                Err(Outcome::deferred(
                    code::SYSTEM_TEMP,
                    "cannot look up the delivery user",
                ))
            }
        }
    }

    /// Deliver to `account`'s mailbox, `address` being the `Delivered-To:`
    /// value.
    async fn mailbox(
        &self,
        request: &DeliveryRequest,
        account: &Account,
        address: &str,
    ) -> Outcome {
        let (identity, mailbox) = self.mailbox_identity(account).await;
        let job = self.job(request, &identity, Destination::Mailbox(mailbox), address);
        self.run(request, &identity, &job).await
    }

    /// Append to `path` (a Maildir when it ends in `/`) as `account`.
    async fn file(
        &self,
        request: &DeliveryRequest,
        account: &Account,
        path: &Path,
        address: &str,
    ) -> Outcome {
        let identity = identity(account);
        let job = self.job(request, &identity, Destination::File(path.into()), address);
        self.run(request, &identity, &job).await
    }

    /// Run `command` as `account` for the recipient `rcpt`.
    async fn command(
        &self,
        request: &DeliveryRequest,
        account: &Account,
        command: &str,
        rcpt: &Rcpt,
    ) -> Outcome {
        let identity = identity(account);
        let home = account.user.dir.to_string_lossy();
        let shell = account.user.shell.to_string_lossy();
        let address = rcpt.address();
        let env = command::environment(&Whom {
            home: &home,
            shell: &shell,
            user: &rcpt.user,
            sender: &request.sender,
            recipient: &address,
            local: &rcpt.local,
            domain: &rcpt.domain,
            extension: rcpt.ext.as_ref().map(|(_, e)| e.as_str()),
        });
        let spec = CommandSpec {
            command: command.to_string(),
            env,
            cwd: account.user.dir.clone(),
            time_limit: self.config.local.command_time_limit.as_secs(),
        };
        let job = self.job(request, &identity, Destination::Command(spec), &address);
        self.run(request, &identity, &job).await
    }

    /// `account`'s `.forward` for the recipient `rcpt` (see `forward`),
    /// read by its worker; `None` when there is none, or it is ignored
    /// (the warning is logged).
    async fn read_forward(
        &self,
        request: &DeliveryRequest,
        account: &Account,
        rcpt: &Rcpt,
    ) -> Result<Option<ForwardFile>, Outcome> {
        let ext = rcpt.ext.as_ref().map(|(d, e)| (*d, e.as_str()));
        let paths = forward::forward_path(&account.user.dir, ext);
        // Most users have none: root sees that without asking a worker.
        let mut absent = true;
        for path in &paths {
            match tokio::fs::symlink_metadata(path).await {
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {}
                _ => absent = false,
            }
        }
        if absent {
            return Ok(None);
        }
        let (identity, _) = self.mailbox_identity(account).await;
        let mut job = self.job(
            request,
            &identity,
            Destination::ReadForward(paths.clone()),
            "",
        );
        job.len = 0;
        match self.pool.query(&identity, &job).await {
            Ok(reply) => {
                if let Some(warning) = &reply.warning {
                    log::warn!(queue_id = request.id.as_str(); "{}: {warning}", request.id);
                }
                if reply.status != DeliveryStatus::Sent {
                    return Err(Outcome::new(reply.status, reply.code(), reply.reason));
                }
                Ok(reply.forward_file.filter(|f| paths.contains(&f.path)))
            }
            Err(e) => {
                log::warn!(queue_id = request.id.as_str(); "{}: {e}", request.id);
                Err(Outcome::deferred(code::SYSTEM_TEMP, e.to_string()))
            }
        }
    }
}

/// A user mail is delivered to or as: the passwd entry and the
/// supplementary groups.
#[derive(Clone, Debug)]
pub(super) struct Account {
    pub user: nix::unistd::User,
    pub groups: Vec<u32>,
}

/// Whose rights a `|command` or `/file` gets (see [`Agent::rights`]).
pub(super) enum Rights<'a> {
    /// Listed in this alias entry.
    Alias(&'a Source),
    /// Listed in this user's `.forward`.
    User(&'a Account),
}

/// The directories a mailbox worker writes besides the home: the one that
/// holds the mailbox (the spool for `/var/mail/USER`, the parent of an
/// absolute Maildir).
/// The name a Maildir delivery of `request` to `destination` as `uid`
/// takes in `new/` (before `.<host>`): the message's arrival time, its
/// queue ID and a CRC-32 of the target, so that every attempt of the same
/// delivery has the same name. When local is killed after a worker
/// delivered but before the journal recorded it, the repeat finds the
/// file and adds no copy (see `worker::maildir::deliver`).
fn maildir_stem(request: &DeliveryRequest, uid: u32, destination: &Destination) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let dir = match destination {
        Destination::Mailbox(Mailbox::Maildir(dir)) | Destination::File(dir) => dir,
        _ => return None,
    };
    let mut target = crc32fast::Hasher::new();
    target.update(&uid.to_le_bytes());
    target.update(dir.as_os_str().as_bytes());
    let (sec, usec) = (
        request.arrival_us / 1_000_000,
        request.arrival_us % 1_000_000,
    );
    Some(format!(
        "{sec}.M{usec}Q{}T{:08x}",
        request.id,
        target.finalize()
    ))
}

fn mailbox_directories(mailbox: &Mailbox, home: &Path) -> Vec<PathBuf> {
    let path = match mailbox {
        Mailbox::Maildir(p) | Mailbox::Mbox(p) => p,
    };
    path.parent()
        .filter(|dir| !dir.starts_with(home) && *dir != Path::new("/"))
        .map(|dir| vec![dir.to_path_buf()])
        .unwrap_or_default()
}

/// The worker identity of an account, with its own groups only.
fn identity(account: &Account) -> Identity {
    Identity {
        uid: account.user.uid.as_raw(),
        gid: account.user.gid.as_raw(),
        groups: account.groups.clone(),
        home: account.user.dir.clone(),
        user: account.user.name.clone(),
        confine: None,
    }
}

/// An `:include:` file: a regular file that is not world-writable (Postfix
/// refuses others), read as text.
pub(super) fn read_include(path: &Path) -> io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.permissions().mode() & 0o002 != 0 {
        return Err(io::Error::other("file is world-writable"));
    }
    let bytes = std::fs::read(path)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The group a worker needs for a spool directory
/// ([`mailbox::spool_group`]); none when the directory cannot be examined
/// (the worker then meets the problem itself and reports it).
async fn spool_group(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = tokio::fs::metadata(dir).await.ok()?;
    mailbox::spool_group(meta.mode(), meta.gid())
}

/// passwd entry and supplementary groups by name (answers are cached, see
/// [`crate::users`]; NSS may block: a lookup the cache cannot answer runs
/// off the runtime).
async fn lookup_user(name: &str) -> io::Result<Option<(nix::unistd::User, Vec<u32>)>> {
    if let Some(found) = crate::users::cached_user_and_groups(name) {
        return Ok(found);
    }
    let name = name.to_string();
    tokio::task::spawn_blocking(move || crate::users::user_and_groups(&name))
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::from)
}

/// The same by uid (not cached: alias file owners only).
async fn lookup_uid(uid: u32) -> io::Result<Option<(nix::unistd::User, Vec<u32>)>> {
    let found = tokio::task::spawn_blocking(move || -> nix::Result<_> {
        let Some(user) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))? else {
            return Ok(None);
        };
        let groups = crate::users::groups_of(&user)?;
        Ok(Some((user, groups)))
    })
    .await
    .map_err(io::Error::other)?;
    found.map_err(io::Error::from)
}

/// `ID: to=<rcpt>, relay=local, delay=D, delays=a/b/c/d, dsn=X.Y.Z,
/// status=WORD (reason)` (Postfix `log_adhoc`).
pub(crate) fn log_line(
    request: &DeliveryRequest,
    expanded_to: Option<&str>,
    outcome: &Outcome,
    start_us: u64,
    end_us: u64,
) -> String {
    let status = crate::logging::status_field(outcome.status);
    let delays = Delays {
        arrival: request.arrival_us,
        active: request.active_us,
        start: start_us,
        ready: start_us,
        end: end_us,
    };
    // After alias expansion: the final address, and the original one as
    // Postfix's orig_to.
    // The original is the address as given when rewriting at queue
    // entry (virtual aliases) changed it.
    let to = match (expanded_to, &request.original) {
        (Some(to), Some(orig)) => format!("{to}>, orig_to=<{orig}"),
        (Some(to), None) => format!("{to}>, orig_to=<{}", request.recipient),
        (None, Some(orig)) => format!("{}>, orig_to=<{orig}", request.recipient),
        (None, None) => request.recipient.clone(),
    };
    format!(
        "{}: to=<{to}>, relay=local, {delays}, dsn={}, status={status} ({})",
        request.id, outcome.dsn, outcome.reason,
    )
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
