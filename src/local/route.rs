//! From one recipient to its final deliveries (Postfix
//! `deliver_recipient`, `deliver_alias`, `deliver_dotforward`,
//! `deliver_token`):
//!
//! 1. an address (the recipient, or a local address a `.forward` lists):
//!    the loop check on `Delivered-To:`, then the aliases
//!    (`aliases::expand`, which follows aliases to their final targets);
//!    no alias: step 2 for its user;
//! 2. a local user (that is no alias, or that an alias expanded to): the
//!    user's `.forward` (`~/.forward+ext` first), else the mailbox;
//! 3. final targets: the mailbox (`\user`, a user that lists itself in its
//!    `.forward`, a `.forward` without addresses), `|command` and `/file`
//!    (as the alias file's owner or the `.forward`'s user, never root),
//!    remote addresses (handed to qmgr, which queues the message anew),
//!    and local addresses of a `.forward`, which start again at step 1.
//!
//! Loops and repetition: each final target is delivered once per request
//! (Postfix's duplicate filter), each user's `.forward` read once; a
//! `.forward` chain that comes back to a user it passed through (`a` →
//! `b` → `a`) bounces `5.4.6 mail forwarding loop for ADDR`, and more than
//! [`MAX_DEPTH`] steps bounce `5.4.6 recipient nesting limit exceeded`. The
//! work is bounded by the table and the `.forward` files.
//!
//! Lists with an owner (Postfix's `owner_request_special`): when the alias
//! `NAME` has an `owner-NAME` alias, the addresses `NAME` lists (local and
//! remote) are not delivered here but queued anew as one message from
//! `owner-NAME@$origin` (see [`ListForward`]), so that their delivery
//! problems go to the owner; the permanent failures of `NAME`'s commands
//! and files, and a forwarding loop through `NAME`, are reported to the
//! owner instead of the sender ([`OwnerFailure`]). The innermost list with
//! an owner is the one that answers for a target.
//!
//! One result for the request: any deferral defers it (as in Postfix,
//! delivered branches may then be delivered again), else any bounce
//! bounces it, else it was delivered. Every final delivery is logged on
//! its own line, `to=<final>, orig_to=<recipient>` when they differ.
//!
//! With `local.mailbox_transport` (Postfix's `mailbox_transport`) a
//! mailbox is not written here: its user's address (`user@domain` as
//! resolved: the recipient's domain, or `$origin` for a user an alias or
//! a `.forward` named) is passed back to qmgr ([`Routed::passed`]),
//! which has the smtp agent deliver it over LMTP and records the
//! recipient's outcome with that answer. The user must still be in
//! passwd, and the loop check still applies. A request that is deferred
//! passes nothing on: its mailboxes are passed on when it is tried again.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::agent::{Account, Outcome, Rights, log_line, read_include};
use super::journal::{Claim, Ticket};
use super::mailbox::LocalRecipient;
use super::worker::forward::ForwardFile;
use crate::aliases::{self, ExpandOptions, LoadError, Table, Target};
use crate::ipc::{DeliveryRequest, DeliveryStatus, ListForward, OwnerFailure};
use crate::outcome::code;
use crate::queue::now_micros;
use crate::transport::Nexthop;

/// Steps from the recipient to a final target (Postfix: 100 nesting
/// levels).
pub(crate) const MAX_DEPTH: usize = 100;

/// A local recipient at one step: `local@domain`, `local` being
/// `user` and an optional extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rcpt {
    /// The local part, lower-cased, extension included.
    pub local: String,
    pub domain: String,
    /// The local part without the extension: the user name.
    pub user: String,
    /// The extension, after the delimiter character that introduced it.
    pub ext: Option<(char, String)>,
}

impl Rcpt {
    /// `local@domain`, split at the first character of `delimiters`
    /// (`local.recipient_delimiter`). A local part that would leave no user
    /// is not split.
    pub(crate) fn new(local: &str, domain: &str, delimiters: &str) -> Rcpt {
        let local = local.to_ascii_lowercase();
        let (user, ext) = crate::address::split_extension(&local, delimiters);
        let (user, ext) = (user.to_string(), ext.map(|(c, e)| (c, e.to_string())));
        Rcpt {
            local,
            domain: domain.to_ascii_lowercase(),
            user,
            ext,
        }
    }

    /// `local@domain`.
    pub(crate) fn address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
}

/// What the walk asks of the world: the agent, which looks at passwd and
/// the queue and runs workers (a stand-in in the tests). The results are
/// final: a failure is the [`Outcome`] to record.
pub(super) trait Backend {
    /// `server.origin` (`myorigin`): the domain of bare local names.
    fn origin(&self) -> &str;
    /// `local.recipient_delimiter`.
    fn delimiters(&self) -> &str;
    /// The alias table as it is now.
    fn aliases(&self) -> Result<Arc<Table>, LoadError>;
    fn options(&self) -> &ExpandOptions;
    /// Did the message pass through `address` already (`Delivered-To:`)?
    async fn looped(&self, request: &DeliveryRequest, address: &str) -> Result<bool, Outcome>;
    /// The passwd entry of a user who may get mail here.
    async fn account(&self, request: &DeliveryRequest, name: &str) -> Result<Account, Outcome>;
    /// Whom a command or a file runs as.
    async fn rights(
        &self,
        request: &DeliveryRequest,
        owner: Rights<'_>,
    ) -> Result<Account, Outcome>;
    /// The user's `.forward` for `rcpt`, if one is to be used.
    async fn read_forward(
        &self,
        request: &DeliveryRequest,
        account: &Account,
        rcpt: &Rcpt,
    ) -> Result<Option<ForwardFile>, Outcome>;
    async fn mailbox(&self, request: &DeliveryRequest, account: &Account, address: &str)
    -> Outcome;
    async fn command(
        &self,
        request: &DeliveryRequest,
        account: &Account,
        command: &str,
        rcpt: &Rcpt,
    ) -> Outcome;
    async fn file(
        &self,
        request: &DeliveryRequest,
        account: &Account,
        path: &Path,
        address: &str,
    ) -> Outcome;
    /// Where mailboxes go instead of being written here
    /// (`local.mailbox_transport`): an LMTP server.
    fn mailbox_transport(&self) -> Option<&Nexthop> {
        None
    }
    /// Claim the final target `key` of the request's message (see
    /// [`super::journal`]): delivered before, or ours to deliver.
    async fn claim(&self, _request: &DeliveryRequest, _key: &str) -> Claim {
        Claim::Mine(Ticket::unrecorded())
    }
}

/// What routing one request gave.
pub(super) struct Routed {
    pub outcome: Outcome,
    /// Addresses for qmgr to queue the message anew for, same sender.
    pub forward: Vec<String>,
    /// Addresses of lists with an owner, to queue anew from the owner.
    pub lists: Vec<ListForward>,
    /// Failures to report to a list's owner instead of the sender.
    pub owner_failures: Vec<OwnerFailure>,
    /// Mailboxes for `local.mailbox_transport` to deliver: their users'
    /// addresses (empty when the outcome is deferred).
    pub passed: Vec<String>,
    /// Whether the outcome was logged already (one line per final
    /// delivery).
    pub logged: bool,
}

impl Routed {
    fn only(outcome: Outcome) -> Routed {
        Routed {
            outcome,
            forward: Vec::new(),
            lists: Vec::new(),
            owner_failures: Vec::new(),
            passed: Vec::new(),
            logged: false,
        }
    }
}

/// Expand and deliver `request`.
pub(super) async fn route<B: Backend>(agent: &B, request: &DeliveryRequest, start: u64) -> Routed {
    let origin = agent.origin();
    let rcpt = match LocalRecipient::parse(&request.recipient, origin) {
        Ok(rcpt) => rcpt,
        Err(e) => return Routed::only(Outcome::bounced(code::BAD_SYNTAX, e.to_string())),
    };
    let table = match agent.aliases() {
        Ok(t) => t,
        Err(e) => {
            log::warn!("{}: {e}", request.id);
            let o = Outcome::deferred(code::SYSTEM_TEMP, "alias database unavailable");
            return Routed::only(o);
        }
    };
    let domain = rcpt.address.rsplit_once('@').map_or("", |(_, d)| d);
    let top = Rcpt::new(&rcpt.user, domain, agent.delimiters());
    let mut route = Route {
        agent,
        request,
        table,
        start,
        top: top.address(),
        done: HashSet::new(),
        loop_checked: HashMap::new(),
        outcomes: Vec::new(),
        forward: Vec::new(),
        lists: Vec::new(),
        owner_failures: Vec::new(),
        passed: Vec::new(),
        owner: None,
    };
    let mut stack = vec![Step::Address {
        rcpt: top,
        depth: 1,
        via: Vec::new(),
    }];
    while let Some(step) = stack.pop() {
        let mut next = match step {
            Step::Address { rcpt, depth, via } => route.address(rcpt, depth, via).await,
            Step::User { rcpt, depth, via } => route.user(rcpt, depth, via).await,
        };
        // Depth first, in the order written.
        next.reverse();
        stack.extend(next);
    }
    route.finish()
}

/// Work left to do.
enum Step {
    /// A local address: loop check, aliases, then its user.
    Address {
        rcpt: Rcpt,
        depth: usize,
        /// Users whose `.forward` led here.
        via: Vec<String>,
    },
    /// A local user that is no alias: `.forward`, else the mailbox.
    User {
        rcpt: Rcpt,
        depth: usize,
        via: Vec<String>,
    },
}

struct Route<'a, B> {
    agent: &'a B,
    request: &'a DeliveryRequest,
    table: Arc<Table>,
    start: u64,
    /// The recipient's own address: its deliveries are logged without
    /// `orig_to`.
    top: String,
    /// Final targets and users handled so far (the duplicate filter).
    done: HashSet<String>,
    /// `Delivered-To:` checks made so far.
    loop_checked: HashMap<String, bool>,
    outcomes: Vec<Outcome>,
    forward: Vec<String>,
    lists: Vec<ListForward>,
    owner_failures: Vec<OwnerFailure>,
    /// Mailbox deliveries passed on to `local.mailbox_transport`: the
    /// users' addresses.
    passed: Vec<String>,
    /// The owner (`owner-NAME@$origin`) that answers for the deliveries
    /// being made now, if any.
    owner: Option<String>,
}

impl<B: Backend> Route<'_, B> {
    async fn address(&mut self, rcpt: Rcpt, depth: usize, via: Vec<String>) -> Vec<Step> {
        let address = rcpt.address();
        if depth > MAX_DEPTH {
            let o = Outcome::bounced(code::LOOP, "recipient nesting limit exceeded");
            self.record(&address, o);
            return Vec::new();
        }
        if let Err(o) = self.loop_check(&address).await {
            // A list's loop goes to its owner.
            let name = self
                .table
                .lookup(&rcpt.local, Some(self.agent.delimiters()));
            self.owner = name.and_then(|(name, _)| self.owner_of(&[name.to_string()]));
            self.record(&address, o);
            self.owner = None;
            return Vec::new();
        }
        let options = self.agent.options();
        let table = self.table.clone();
        let expansion = aliases::expand(&table, &rcpt.local, options, read_include);
        for w in &expansion.warnings {
            log::warn!("{}: {w}", self.request.id);
        }
        if expansion.matched.is_none() {
            return vec![Step::User { rcpt, depth, via }];
        }
        let origin = self.agent.origin().to_string();
        let delimiters = self.agent.delimiters().to_string();
        let mut next = Vec::new();
        for d in &expansion.deliveries {
            // The alias whose entry listed the target.
            let owner = match d.chain.as_slice() {
                [_, .., last] => Rcpt::new(last, &origin, &delimiters),
                _ => rcpt.clone(),
            };
            self.owner = self.owner_of(&d.chain);
            if let (Target::Address(a), Some(list_owner)) = (&d.target, self.owner.clone()) {
                let a = match a.contains('@') {
                    true => a.clone(),
                    false => format!("{a}@{origin}"),
                };
                self.list_forward(list_owner, &a);
                continue;
            }
            match &d.target {
                Target::Address(a) if a.contains('@') => self.forward_to(a),
                Target::Address(user) => next.push(Step::User {
                    rcpt: Rcpt::new(user, &origin, &delimiters),
                    depth: depth + 1,
                    via: via.clone(),
                }),
                Target::NoExpand(user) => {
                    let r = Rcpt::new(user, &origin, "");
                    self.mailbox(&r.user, &r.address(), None).await;
                }
                Target::Command(command) => {
                    self.command(command, Rights::Alias(&d.source), &owner)
                        .await;
                }
                Target::File(path) => self.file(path, Rights::Alias(&d.source), &owner).await,
                // Expansion reads `:include:` files itself.
                Target::Include(_) => {}
            }
        }
        for f in &expansion.failures {
            log::warn!("{}: {}", self.request.id, f.error.log_message());
            let o = if f.error.is_transient() {
                Outcome::deferred(f.error.status(), f.error.to_string())
            } else {
                Outcome::bounced(f.error.status(), f.error.to_string())
            };
            self.owner = self.owner_of(&f.chain);
            self.record(&address, o);
        }
        self.owner = None;
        next
    }

    /// The owner that answers for a target reached through the aliases
    /// `chain`: `owner-NAME@$origin` of the innermost `NAME` that has one.
    fn owner_of(&self, chain: &[String]) -> Option<String> {
        let name = chain.iter().rev().find(|n| self.table.owner(n).is_some())?;
        Some(format!("owner-{name}@{}", self.agent.origin()))
    }

    /// Queue the message anew for `address` from the list's `owner`.
    fn list_forward(&mut self, owner: String, address: &str) {
        let key = format!("list {owner} {}", address.to_ascii_lowercase());
        if !self.done.insert(key) {
            return;
        }
        match self.lists.iter_mut().find(|l| l.sender == owner) {
            Some(list) => list.addresses.push(address.to_string()),
            None => self.lists.push(ListForward {
                sender: owner,
                addresses: vec![address.to_string()],
            }),
        }
    }

    async fn user(&mut self, rcpt: Rcpt, depth: usize, via: Vec<String>) -> Vec<Step> {
        let address = rcpt.address();
        if via.contains(&rcpt.user) {
            let o = Outcome::bounced(code::LOOP, format!("mail forwarding loop for {address}"));
            self.record(&address, o);
            return Vec::new();
        }
        if !self.done.insert(format!("user {}", rcpt.user)) {
            return Vec::new();
        }
        if let Err(o) = self.loop_check(&address).await {
            self.record(&address, o);
            return Vec::new();
        }
        let account = match self.agent.account(self.request, &rcpt.user).await {
            Ok(account) => account,
            Err(o) => {
                self.record(&address, o);
                return Vec::new();
            }
        };
        let found = self.agent.read_forward(self.request, &account, &rcpt).await;
        match found {
            Ok(Some(file)) => self.forwarded(&rcpt, &account, &file, depth, via).await,
            Ok(None) => {
                self.mailbox(&rcpt.user, &address, Some(&account)).await;
                Vec::new()
            }
            Err(o) => {
                self.record(&address, o);
                Vec::new()
            }
        }
    }

    /// The targets of `rcpt`'s `.forward` `file` (`account` is the user's).
    async fn forwarded(
        &mut self,
        rcpt: &Rcpt,
        account: &Account,
        file: &ForwardFile,
        depth: usize,
        mut via: Vec<String>,
    ) -> Vec<Step> {
        let address = rcpt.address();
        let (targets, problems) = aliases::parse_include(&file.text, &file.path);
        for p in problems {
            log::warn!("{}: {p}", self.request.id);
        }
        let origin = self.agent.origin().to_string();
        let delimiters = self.agent.delimiters().to_string();
        let options = self.agent.options();
        let (commands, files) = (options.allow_commands.forward, options.allow_files.forward);
        via.push(rcpt.user.clone());
        let mut next = Vec::new();
        let mut used = 0;
        for (line, target) in targets {
            used += 1;
            match target {
                Target::Address(a) => match self.local_part(&a) {
                    None => self.forward_to(&a),
                    Some((local, domain)) => {
                        let r = Rcpt::new(local, domain.unwrap_or(&origin), &delimiters);
                        if r.user == rcpt.user {
                            // Listing oneself means one's mailbox.
                            self.mailbox(&rcpt.user, &address, Some(account)).await;
                        } else {
                            next.push(Step::Address {
                                rcpt: r,
                                depth: depth + 1,
                                via: via.clone(),
                            });
                        }
                    }
                },
                Target::NoExpand(user) if user.eq_ignore_ascii_case(&rcpt.user) => {
                    self.mailbox(&rcpt.user, &address, Some(account)).await;
                }
                Target::NoExpand(user) => {
                    let r = Rcpt::new(&user, &origin, "");
                    self.mailbox(&r.user, &r.address(), None).await;
                }
                Target::Command(_) if !commands => {
                    let o = Outcome::bounced(code::NOT_AUTHORIZED, "mail to command is restricted");
                    self.record(&address, o);
                }
                Target::File(_) if !files => {
                    let o = Outcome::bounced(code::NOT_AUTHORIZED, "mail to file is restricted");
                    self.record(&address, o);
                }
                Target::Command(command) => {
                    self.command(&command, Rights::User(account), rcpt).await;
                }
                Target::File(path) => self.file(&path, Rights::User(account), rcpt).await,
                Target::Include(path) => {
                    used -= 1;
                    log::warn!(
                        "{}: {}:{line}: :include:{} is not supported in a .forward file; ignored",
                        self.request.id,
                        file.path.display(),
                        path.display()
                    );
                }
            }
        }
        if used == 0 {
            // Nothing usable in it: as if there were none.
            self.mailbox(&rcpt.user, &address, Some(account)).await;
        }
        next
    }

    /// The local part and the domain (when written) of an address in a
    /// local domain; `None` for a remote address.
    fn local_part<'x>(&self, address: &'x str) -> Option<(&'x str, Option<&'x str>)> {
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Some((address, None));
        };
        let bare = domain.strip_suffix('.').unwrap_or(domain);
        let local_domains = &self.agent.options().local_domains;
        let is_local = local_domains
            .iter()
            .any(|d| d.strip_suffix('.').unwrap_or(d).eq_ignore_ascii_case(bare));
        is_local.then_some((local, Some(domain)))
    }

    fn forward_to(&mut self, address: &str) {
        if self
            .done
            .insert(format!("forward {}", address.to_ascii_lowercase()))
        {
            self.forward.push(address.to_string());
        }
    }

    /// `Err(bounce)` when the message already went through `address`.
    async fn loop_check(&mut self, address: &str) -> Result<(), Outcome> {
        let looped = match self.loop_checked.get(address) {
            Some(looped) => *looped,
            None => {
                let looped = self.agent.looped(self.request, address).await?;
                self.loop_checked.insert(address.to_string(), looped);
                looped
            }
        };
        if looped {
            let reason = format!("mail forwarding loop for {address}");
            return Err(Outcome::bounced(code::LOOP, reason));
        }
        Ok(())
    }

    /// The mailbox of `user`, once per request.
    async fn mailbox(&mut self, user: &str, address: &str, account: Option<&Account>) {
        let key = format!("mailbox {user}");
        if !self.done.insert(key.clone()) {
            return;
        }
        if let Err(o) = self.loop_check(address).await {
            self.record(address, o);
            return;
        }
        let looked_up;
        let account = match account {
            Some(account) => account,
            None => match self.agent.account(self.request, user).await {
                Ok(found) => {
                    looked_up = found;
                    &looked_up
                }
                Err(o) => {
                    self.record(address, o);
                    return;
                }
            },
        };
        if self.agent.mailbox_transport().is_some() {
            // Not claimed in the journal: the LMTP server makes this
            // delivery, and qmgr records it.
            let _ = account;
            self.passed.push(address.to_string());
            return;
        }
        let Some(ticket) = self.claim(&key, address).await else {
            return;
        };
        let o = self.agent.mailbox(self.request, account, address).await;
        ticket.settle(o.status == DeliveryStatus::Sent).await;
        self.record(address, o);
    }

    /// Claim `key` for this message; `None` (logged, counted as
    /// delivered) when it was delivered before.
    async fn claim(&mut self, key: &str, address: &str) -> Option<Ticket> {
        match self.agent.claim(self.request, key).await {
            Claim::Mine(ticket) => Some(ticket),
            Claim::Delivered => {
                let orig = if address == self.top {
                    String::new()
                } else {
                    format!(", orig_to=<{}>", self.request.recipient)
                };
                log::info!(
                    queue_id = self.request.id.as_str();
                    "{}: to=<{address}>{orig}: {key}: delivered before for this message; not again",
                    self.request.id
                );
                self.outcomes.push(Outcome::new(
                    DeliveryStatus::Sent,
                    code::OK,
                    "delivered before",
                ));
                None
            }
        }
    }

    async fn command(&mut self, command: &str, rights: Rights<'_>, rcpt: &Rcpt) {
        let address = rcpt.address();
        let account = match self.agent.rights(self.request, rights).await {
            Ok(account) => account,
            Err(o) => return self.record(&address, o),
        };
        let key = format!("command {} {command}", account.user.uid);
        if self.done.insert(key.clone())
            && let Some(ticket) = self.claim(&key, &address).await
        {
            let o = self
                .agent
                .command(self.request, &account, command, rcpt)
                .await;
            ticket.settle(o.status == DeliveryStatus::Sent).await;
            self.record(&address, o);
        }
    }

    async fn file(&mut self, path: &Path, rights: Rights<'_>, rcpt: &Rcpt) {
        let address = rcpt.address();
        let account = match self.agent.rights(self.request, rights).await {
            Ok(account) => account,
            Err(o) => return self.record(&address, o),
        };
        let key = format!("file {} {}", account.user.uid, path.display());
        if self.done.insert(key.clone())
            && let Some(ticket) = self.claim(&key, &address).await
        {
            let o = self
                .agent
                .file(self.request, &account, path, &address)
                .await;
            ticket.settle(o.status == DeliveryStatus::Sent).await;
            self.record(&address, o);
        }
    }

    /// Log one final delivery and keep its outcome. A permanent failure
    /// an owner answers for goes to the owner, and counts as done here.
    fn record(&mut self, to: &str, outcome: Outcome) {
        let address = to;
        let to = (to != self.top).then_some(to);
        let line = log_line(self.request, to, &outcome, self.start, now_micros());
        log::info!(
            queue_id = self.request.id.as_str(),
            recipient = to.unwrap_or(&self.request.recipient),
            status = crate::logging::status_field(outcome.status);
            "{line}"
        );
        match &self.owner {
            Some(owner) if outcome.status == DeliveryStatus::Bounced => {
                let reason = format!("delivery problem reported to {owner}");
                self.owner_failures.push(OwnerFailure {
                    owner: owner.clone(),
                    recipient: address.to_string(),
                    dsn: outcome.dsn,
                    reason: outcome.reason,
                });
                self.outcomes
                    .push(Outcome::new(DeliveryStatus::Sent, code::OK, reason));
            }
            _ => self.outcomes.push(outcome),
        }
    }

    /// One result for the request (see the module documentation).
    fn finish(mut self) -> Routed {
        let worst = self
            .outcomes
            .iter()
            .find(|o| o.status == DeliveryStatus::Deferred)
            .or_else(|| {
                self.outcomes
                    .iter()
                    .find(|o| o.status == DeliveryStatus::Bounced)
            })
            .cloned();
        let deferred = worst
            .as_ref()
            .is_some_and(|o| o.status == DeliveryStatus::Deferred);
        if deferred {
            // Passed on at the next attempt, with everything else.
            self.passed.clear();
        }
        self.log_passed();
        let logged = !self.outcomes.is_empty() || !self.passed.is_empty();
        let outcome = match worst {
            Some(o) => o,
            None if self.outcomes.is_empty() && !self.passed.is_empty() => {
                let via = self.agent.mailbox_transport().map(|n| format!("lmtp:{n}"));
                let reason = format!("mailbox delivery passed to {}", via.unwrap_or_default());
                Outcome::new(DeliveryStatus::Sent, code::OK, reason)
            }
            None if self.outcomes.is_empty()
                && self.forward.is_empty()
                && self.lists.is_empty() =>
            {
                Outcome::deferred(code::SYSTEM_TEMP, "alias database unavailable")
            }
            None if self.outcomes.is_empty() => {
                Outcome::new(DeliveryStatus::Sent, code::OK, "forwarded")
            }
            None => self.outcomes.swap_remove(0),
        };
        Routed {
            outcome,
            forward: self.forward,
            lists: self.lists,
            owner_failures: self.owner_failures,
            passed: self.passed,
            logged,
        }
    }

    /// One line per mailbox passed on, without a status: the delivery
    /// agent that makes it logs that (Postfix's local logs nothing then).
    fn log_passed(&self) {
        let Some(nexthop) = self.agent.mailbox_transport() else {
            return;
        };
        for address in &self.passed {
            let orig = match address == &self.top {
                true => String::new(),
                false => format!(", orig_to=<{}>", self.request.recipient),
            };
            log::info!(
                queue_id = self.request.id.as_str(),
                recipient = address.as_str();
                "{}: to=<{address}>{orig}, relay=local: mailbox delivery passed to lmtp:{nexthop}",
                self.request.id
            );
        }
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
