//! Serving qmgr: each connection carries delivery requests, answered one
//! by one in order; each request goes through the checks (recipient, loop,
//! passwd, privilege, mailbox) and then to a worker of the recipient user.

use std::ffi::CString;
use std::io;
use std::path::Path;
use std::sync::Arc;

use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, BufReader};
use tokio::net::UnixStream;

use super::delay::format_delay;
use super::header;
use super::mailbox::{self, LocalRecipient, Mailbox};
use super::pool::WorkerPool;
use super::worker::{Identity, Job};
use crate::aliases::{self, LiveTable, Target};
use crate::config::Config;
use crate::ipc::{self, DeliveryRequest, DeliveryResult, DeliveryStatus};
use crate::queue::now_micros;

/// Whom this agent may deliver to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// Running as root: any user, each in a child that becomes the user.
    Root,
    /// Running as an ordinary user (`postern start` on a laptop): only that
    /// user's own mail.
    User { uid: u32, name: String },
}

impl Privilege {
    pub fn current() -> Privilege {
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

    pub fn switches_user(&self) -> bool {
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: DeliveryStatus,
    pub dsn: String,
    pub reason: String,
}

impl Outcome {
    fn new(status: DeliveryStatus, dsn: &str, reason: impl Into<String>) -> Outcome {
        Outcome {
            status,
            dsn: dsn.into(),
            reason: reason.into(),
        }
    }

    fn deferred(dsn: &str, reason: impl Into<String>) -> Outcome {
        Outcome::new(DeliveryStatus::Deferred, dsn, reason)
    }

    fn bounced(dsn: &str, reason: impl Into<String>) -> Outcome {
        Outcome::new(DeliveryStatus::Bounced, dsn, reason)
    }
}

pub struct Agent {
    config: Arc<Config>,
    privilege: Privilege,
    pool: WorkerPool,
    aliases: LiveTable,
}

impl Agent {
    pub fn new(config: Arc<Config>, privilege: Privilege, pool: WorkerPool) -> Agent {
        Agent {
            aliases: LiveTable::from_config(&config),
            config,
            privilege,
            pool,
        }
    }

    /// Answer the requests on one connection, in order, until it closes. A
    /// malformed line closes the connection.
    pub async fn serve_connection(self: Arc<Self>, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let mut read = tokio::io::BufReader::new(read);
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
            let result = self.deliver(&request).await;
            if let Err(e) = ipc::write_line(&mut write, &result).await {
                log::warn!("{}: cannot send the delivery result: {e}", request.id);
                return;
            }
        }
    }

    /// Deliver one request and log it in Postfix's shape (one line per
    /// final delivery when an alias expanded the recipient).
    pub async fn deliver(&self, request: &DeliveryRequest) -> DeliveryResult {
        let start = now_micros();
        let (outcome, forward, logged) = self.attempt(request, start).await;
        if !logged {
            log::info!("{}", log_line(request, None, &outcome, start, now_micros()));
        }
        DeliveryResult {
            rcpt_index: request.rcpt_index,
            status: outcome.status,
            dsn: outcome.dsn,
            reason: outcome.reason,
            forward,
        }
    }

    /// The outcome, the addresses to forward to, and whether the outcome
    /// was logged already (per branch of an alias).
    async fn attempt(&self, request: &DeliveryRequest, start: u64) -> (Outcome, Vec<String>, bool) {
        let rcpt = match LocalRecipient::parse(&request.recipient, &self.config.server.origin) {
            Ok(rcpt) => rcpt,
            Err(e) => return (Outcome::bounced("5.1.3", e.to_string()), Vec::new(), false),
        };
        let table = match self.aliases.table() {
            Ok(t) => t,
            Err(e) => {
                log::warn!("{}: {e}", request.id);
                let o = Outcome::deferred("4.3.0", "alias database unavailable");
                return (o, Vec::new(), false);
            }
        };
        let expansion = aliases::expand(&table, &rcpt.user, self.aliases.options(), read_include);
        for w in &expansion.warnings {
            log::warn!("{}: {w}", request.id);
        }
        if expansion.matched.is_none() {
            let user = self.strip_extension(&rcpt.user);
            let o = self.deliver_user(request, &user, &rcpt.address).await;
            return (o, Vec::new(), false);
        }
        // An alias: each final target on its own, logged with orig_to.
        let origin = &self.config.server.origin;
        let mut outcomes = Vec::new();
        let mut forward = Vec::new();
        for d in &expansion.deliveries {
            let (to, outcome) = match &d.target {
                Target::Address(a) if a.contains('@') => {
                    forward.push(a.clone());
                    continue;
                }
                Target::Address(u) | Target::NoExpand(u) => {
                    let user = self.strip_extension(u);
                    let address = format!("{user}@{origin}");
                    let o = self.deliver_user(request, &user, &address).await;
                    (address, o)
                }
                other => (
                    other.to_string(),
                    Outcome::deferred(
                        "4.3.0",
                        "delivery to files and commands from aliases is not available yet",
                    ),
                ),
            };
            log::info!(
                "{}",
                log_line(request, Some(&to), &outcome, start, now_micros())
            );
            outcomes.push(outcome);
        }
        for f in &expansion.failures {
            log::warn!("{}: {}", request.id, f.error.log_message());
            let o = if f.error.is_transient() {
                Outcome::deferred(f.error.status(), f.error.to_string())
            } else {
                Outcome::bounced(f.error.status(), f.error.to_string())
            };
            log::info!("{}", log_line(request, None, &o, start, now_micros()));
            outcomes.push(o);
        }
        // One result for the recipient: any deferral retries it (as in
        // Postfix, delivered branches may then be delivered again); else
        // any failure bounces it; else it is done.
        let worst = outcomes
            .iter()
            .find(|o| o.status == DeliveryStatus::Deferred)
            .or_else(|| {
                outcomes
                    .iter()
                    .find(|o| o.status == DeliveryStatus::Bounced)
            })
            .cloned();
        let logged = !outcomes.is_empty();
        let outcome = match worst {
            Some(o) => o,
            None if outcomes.is_empty() && forward.is_empty() => {
                Outcome::deferred("4.3.0", "alias database unavailable")
            }
            None if outcomes.is_empty() => Outcome::new(DeliveryStatus::Sent, "2.0.0", "forwarded"),
            None => outcomes.swap_remove(0),
        };
        (outcome, forward, logged)
    }

    /// `user+ext` → `user` with `local.recipient_delimiter`.
    fn strip_extension(&self, user: &str) -> String {
        let d = &self.config.local.recipient_delimiter;
        if d.is_empty() {
            return user.to_string();
        }
        user.split(|c| d.contains(c))
            .next()
            .unwrap_or(user)
            .to_string()
    }

    /// Deliver to one local user's mailbox, `address` being the
    /// `Delivered-To:` value and the loop check key.
    async fn deliver_user(
        &self,
        request: &DeliveryRequest,
        user_name: &str,
        address: &str,
    ) -> Outcome {
        let id = &request.id;
        let rcpt = LocalRecipient {
            user: user_name.to_string(),
            address: address.to_string(),
        };

        let path = request.content.file_in(&self.config.queue.directory);
        let (_, offset, len) = request.content.span();
        let queue_error = |e: io::Error| {
            log::warn!("{id}: cannot read queue file {}: {e}", path.display());
            Outcome::deferred("4.3.0", format!("cannot read queue file: {e}"))
        };
        let mut file = match File::open(&path).await {
            Ok(file) => file,
            Err(e) => return queue_error(e),
        };
        match loop_check(&mut file, offset, len, &rcpt.address).await {
            Ok(false) => {}
            Ok(true) => {
                let reason = format!("mail forwarding loop for {}", rcpt.address);
                return Outcome::bounced("5.4.6", reason);
            }
            Err(e) => return queue_error(e),
        }

        let (user, groups) = match lookup_user(&rcpt.user).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Outcome::bounced("5.1.1", format!("unknown user: \"{}\"", rcpt.user));
            }
            Err(e) => {
                log::warn!("{id}: cannot look up user \"{}\": {e}", rcpt.user);
                return Outcome::deferred(
                    "4.3.0",
                    format!("cannot look up user \"{}\"", rcpt.user),
                );
            }
        };
        if let Err(reason) = self.privilege.allows(&user) {
            log::warn!("{id}: {reason}");
            return Outcome::deferred("4.3.0", reason);
        }

        let mailbox = Mailbox::resolve(&self.config.local.mailbox, &user.name, &user.dir);
        let mut groups = groups;
        if self.privilege.switches_user()
            && let Some(spool) = mailbox.spool_directory(&user.dir)
            && let Some(gid) = spool_group(spool).await
            && !groups.contains(&gid)
        {
            groups.push(gid);
        }
        let identity = Identity {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups,
            home: user.dir,
            user: user.name,
        };
        let job = Job {
            id: id.to_string(),
            uid: identity.uid,
            user: identity.user.clone(),
            mailbox,
            sender: request.sender.clone(),
            recipient: rcpt.address,
            len,
        };
        match self.pool.deliver(&identity, &job, &mut file, offset).await {
            Ok(reply) => {
                if let Some(warning) = &reply.warning {
                    log::warn!("{id}: {warning}");
                }
                Outcome::new(reply.status, &reply.dsn, reply.reason)
            }
            Err(e) => {
                log::warn!("{id}: {e}");
                Outcome::deferred("4.3.0", e.to_string())
            }
        }
    }
}

/// An `:include:` file: a regular file that is not world-writable (Postfix
/// refuses others), read as text.
fn read_include(path: &Path) -> io::Result<String> {
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

/// Is there a `Delivered-To:` for `address` in the message's headers?
async fn loop_check(file: &mut File, offset: u64, len: u64, address: &str) -> io::Result<bool> {
    file.seek(io::SeekFrom::Start(offset)).await?;
    let mut reader = BufReader::with_capacity(64 * 1024, file.take(len));
    header::delivered_to(&mut reader, address).await
}

/// The group a worker needs for a spool directory
/// ([`mailbox::spool_group`]); none when the directory cannot be examined
/// (the worker then meets the problem itself and reports it).
async fn spool_group(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = tokio::fs::metadata(dir).await.ok()?;
    mailbox::spool_group(meta.mode(), meta.gid())
}

/// passwd entry and supplementary groups (NSS may block: off the runtime).
async fn lookup_user(name: &str) -> io::Result<Option<(nix::unistd::User, Vec<u32>)>> {
    let name = name.to_string();
    let found = tokio::task::spawn_blocking(move || -> nix::Result<_> {
        let Some(user) = nix::unistd::User::from_name(&name)? else {
            return Ok(None);
        };
        let cname = CString::new(user.name.clone()).map_err(|_| nix::errno::Errno::EINVAL)?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)?;
        Ok(Some((
            user,
            groups.into_iter().map(|g| g.as_raw()).collect(),
        )))
    })
    .await
    .map_err(io::Error::other)?;
    found.map_err(io::Error::from)
}

/// `ID: to=<rcpt>, relay=local, delay=D, delays=a/b/c/d, dsn=X.Y.Z,
/// status=WORD (reason)` (Postfix `log_adhoc`).
pub fn log_line(
    request: &DeliveryRequest,
    expanded_to: Option<&str>,
    outcome: &Outcome,
    start_us: u64,
    end_us: u64,
) -> String {
    let span = |from: u64, to: u64| format_delay(to.saturating_sub(from) as f64 / 1e6);
    let status = match outcome.status {
        DeliveryStatus::Sent => "sent",
        DeliveryStatus::Deferred => "deferred",
        DeliveryStatus::Bounced => "bounced",
    };
    // After alias expansion: the final address, and the original one as
    // Postfix's orig_to.
    let to = match expanded_to {
        Some(to) => format!("{to}>, orig_to=<{}", request.recipient),
        None => request.recipient.clone(),
    };
    format!(
        "{}: to=<{to}>, relay=local, delay={}, delays={}/{}/0/{}, dsn={}, status={status} ({})",
        request.id,
        span(request.arrival_us, end_us),
        span(request.arrival_us, request.active_us),
        span(request.active_us, start_us),
        span(start_us, end_us),
        outcome.dsn,
        outcome.reason,
    )
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
