//! The walk from a recipient to its final targets, against a stand-in for
//! the world: users with `.forward` texts, an alias table, deliveries that
//! are only written down. Loops, duplicates, depth, rights.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Mutex;

use nix::unistd::{Gid, Uid, User};

use super::*;
use crate::queue::ContentRef;

/// A user of the stand-in: uid, `.forward` texts by `user` or `user+ext`.
struct World {
    table: Arc<Table>,
    options: ExpandOptions,
    uids: HashMap<String, u32>,
    forwards: HashMap<String, String>,
    /// Addresses in `Delivered-To:` headers.
    delivered_to: Vec<String>,
    /// What was delivered: `mailbox USER ADDRESS`, `command UID CMD
    /// ADDRESS`, `file UID PATH ADDRESS`.
    done: Mutex<Vec<String>>,
    /// `local.mailbox_transport`.
    lmtp: Option<Nexthop>,
}

impl World {
    fn new(aliases: &str, users: &[(&str, u32)], forwards: &[(&str, &str)]) -> World {
        let (table, problems) = aliases::parse(aliases, Path::new("aliases"));
        assert!(problems.is_empty(), "{problems:?}");
        World {
            table: Arc::new(Table::layered([table])),
            options: ExpandOptions {
                delimiter: Some("+".into()),
                local_domains: vec!["example.org".into(), "localhost".into()],
                ..ExpandOptions::default()
            },
            uids: users.iter().map(|(n, u)| (n.to_string(), *u)).collect(),
            forwards: forwards
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
            delivered_to: Vec::new(),
            done: Mutex::new(Vec::new()),
            lmtp: None,
        }
    }

    fn done(&self) -> Vec<String> {
        self.done.lock().unwrap().clone()
    }

    fn note(&self, what: String) -> Outcome {
        self.done.lock().unwrap().push(what);
        Outcome::new(DeliveryStatus::Sent, crate::outcome::code::OK, "done")
    }

    async fn run(&self, recipient: &str) -> (Outcome, Vec<String>) {
        let routed = self.routed(recipient).await;
        (routed.outcome, routed.forward)
    }

    async fn routed(&self, recipient: &str) -> Routed {
        let request = DeliveryRequest {
            id: "0000000000001A".parse().unwrap(),
            sender: "s@remote.example".into(),
            recipient: recipient.into(),
            original: None,
            rcpt_index: 0,
            content: ContentRef::File {
                path: "unused".into(),
                len: 0,
            },
            arrival_us: 0,
            active_us: 0,
        };
        route(self, &request, 0).await
    }
}

fn account(name: &str, uid: u32) -> Account {
    Account {
        user: User {
            name: name.into(),
            passwd: CString::new("x").unwrap(),
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(uid),
            gecos: CString::new("").unwrap(),
            dir: format!("/home/{name}").into(),
            shell: "/bin/sh".into(),
        },
        groups: vec![uid],
    }
}

impl Backend for World {
    fn origin(&self) -> &str {
        "example.org"
    }

    fn delimiters(&self) -> &str {
        "+"
    }

    fn mailbox_transport(&self) -> Option<&Nexthop> {
        self.lmtp.as_ref()
    }

    fn aliases(&self) -> Result<Arc<Table>, LoadError> {
        Ok(self.table.clone())
    }

    fn options(&self) -> &ExpandOptions {
        &self.options
    }

    async fn looped(&self, _: &DeliveryRequest, address: &str) -> Result<bool, Outcome> {
        Ok(self.delivered_to.iter().any(|a| a == address))
    }

    async fn account(&self, _: &DeliveryRequest, name: &str) -> Result<Account, Outcome> {
        match self.uids.get(name) {
            Some(uid) => Ok(account(name, *uid)),
            None => Err(Outcome::bounced(
                crate::outcome::code::BAD_MAILBOX,
                format!("unknown user: \"{name}\""),
            )),
        }
    }

    async fn rights(&self, _: &DeliveryRequest, owner: Rights<'_>) -> Result<Account, Outcome> {
        Ok(match owner {
            Rights::User(a) if a.user.uid.as_raw() != 0 => a.clone(),
            _ => account("nobody", 65534),
        })
    }

    async fn read_forward(
        &self,
        _: &DeliveryRequest,
        account: &Account,
        rcpt: &Rcpt,
    ) -> Result<Option<ForwardFile>, Outcome> {
        let home = &account.user.dir;
        let mut names = Vec::new();
        if let Some((d, ext)) = &rcpt.ext {
            names.push(format!("{}{d}{ext}", account.user.name));
        }
        names.push(account.user.name.clone());
        Ok(names.iter().find_map(|n| {
            self.forwards.get(n).map(|text| ForwardFile {
                path: home.join(".forward"),
                text: text.clone(),
            })
        }))
    }

    async fn mailbox(&self, _: &DeliveryRequest, account: &Account, address: &str) -> Outcome {
        self.note(format!("mailbox {} {address}", account.user.name))
    }

    async fn command(
        &self,
        _: &DeliveryRequest,
        account: &Account,
        command: &str,
        rcpt: &Rcpt,
    ) -> Outcome {
        let (uid, address) = (account.user.uid, rcpt.address());
        if command.contains("exit 75") {
            return Outcome::deferred(crate::outcome::code::SYSTEM_TEMP, "try again");
        }
        if command.contains("exit 1") {
            return Outcome::bounced(
                crate::outcome::code::SYSTEM_PERM,
                "Command died with status 1",
            );
        }
        self.note(format!("command {uid} {command} {address}"))
    }

    async fn file(
        &self,
        _: &DeliveryRequest,
        account: &Account,
        path: &Path,
        address: &str,
    ) -> Outcome {
        let uid = account.user.uid;
        self.note(format!("file {uid} {} {address}", path.display()))
    }
}

fn sent() -> Outcome {
    Outcome::new(DeliveryStatus::Sent, crate::outcome::code::OK, "done")
}

const ALICE: &str = "# mine\n\\alice, \"|procmail -a x\"\n/home/alice/saved\n\
                     Bob@Example.ORG, far@remote.example, far@Remote.Example\n";

#[tokio::test]
async fn plain_users_and_forward_targets() {
    let w = World::new("", &[("alice", 1000), ("bob", 1001)], &[("alice", ALICE)]);
    assert_eq!(w.run("bob@example.org").await, (sent(), vec![]));
    let (outcome, forward) = w.run("alice@example.org").await;
    assert_eq!(outcome, sent());
    assert_eq!(forward, ["far@remote.example"]);
    assert_eq!(
        w.done(),
        [
            "mailbox bob bob@example.org",
            "mailbox alice alice@example.org",
            "command 1000 procmail -a x alice@example.org",
            "file 1000 /home/alice/saved alice@example.org",
            "mailbox bob bob@example.org",
        ]
    );
}

#[tokio::test]
async fn a_forward_loop_bounces_once() {
    let w = World::new(
        "",
        &[("a", 1), ("b", 2)],
        &[("a", "b\n"), ("b", "a@localhost\n")],
    );
    let (outcome, forward) = w.run("a@example.org").await;
    assert_eq!(
        outcome,
        Outcome::bounced(
            crate::outcome::code::LOOP,
            "mail forwarding loop for a@localhost"
        )
    );
    assert!(forward.is_empty());
    assert!(w.done().is_empty());
    // Through an alias too: a's .forward names an alias that names a.
    let w = World::new("team: a\n", &[("a", 1)], &[("a", "team\n")]);
    let (outcome, _) = w.run("team@example.org").await;
    assert_eq!(
        outcome,
        Outcome::bounced(
            crate::outcome::code::LOOP,
            "mail forwarding loop for a@example.org"
        )
    );
}

#[tokio::test]
async fn users_reached_twice_get_one_copy() {
    let w = World::new(
        "team: a, b\n",
        &[("a", 1), ("b", 2), ("c", 3)],
        &[("a", "b, c, \\a\n"), ("b", "c\n")],
    );
    let (outcome, _) = w.run("team@example.org").await;
    assert_eq!(outcome, sent());
    assert_eq!(
        w.done(),
        ["mailbox a a@example.org", "mailbox c c@example.org",]
    );
}

#[tokio::test]
async fn listing_oneself_and_empty_files_mean_the_mailbox() {
    let w = World::new(
        "",
        &[("a", 1), ("b", 2)],
        &[("a", "a@localhost, a+x\n"), ("b", "# nothing here\n\n")],
    );
    assert_eq!(w.run("a@example.org").await.0, sent());
    assert_eq!(w.run("b@example.org").await.0, sent());
    assert_eq!(
        w.done(),
        ["mailbox a a@example.org", "mailbox b b@example.org"]
    );
    // `:include:` is not supported in a .forward: nothing usable.
    let w = World::new("", &[("a", 1)], &[("a", ":include:/etc/list\n")]);
    assert_eq!(w.run("a@example.org").await.0, sent());
    assert_eq!(w.done(), ["mailbox a a@example.org"]);
}

#[tokio::test]
async fn the_extension_picks_its_forward_file() {
    let w = World::new(
        "",
        &[("a", 1)],
        &[("a+list", "/srv/list\n"), ("a", "far@remote.example\n")],
    );
    assert_eq!(w.run("A+List@example.org").await.0, sent());
    assert_eq!(w.done(), ["file 1 /srv/list a+list@example.org"]);
    let (_, forward) = w.run("a+other@example.org").await;
    assert_eq!(forward, ["far@remote.example"]);
}

#[tokio::test]
async fn rights_for_commands() {
    let w = World::new(
        "prog: \"|run me\"\nstore: /var/spool/store\n",
        &[("root", 0), ("a", 1)],
        &[("root", "|rootcmd\n"), ("a", "prog\n")],
    );
    w.run("prog@example.org").await;
    w.run("store@example.org").await;
    w.run("root@example.org").await;
    w.run("a@example.org").await;
    assert_eq!(
        w.done(),
        [
            "command 65534 run me prog@example.org",
            "file 65534 /var/spool/store store@example.org",
            "command 65534 rootcmd root@example.org",
            // Through a's .forward to the alias: the alias's rights.
            "command 65534 run me prog@example.org",
        ]
    );
}

#[tokio::test]
async fn restricted_and_failing_branches() {
    let mut w = World::new("", &[("a", 1)], &[("a", "|cmd, /f, \\a\n")]);
    w.options.allow_commands.forward = false;
    w.options.allow_files.forward = false;
    let (outcome, _) = w.run("a@example.org").await;
    assert_eq!(outcome.dsn, "5.7.1");
    assert_eq!(w.done(), ["mailbox a a@example.org"]);
    // An unknown local address in a .forward bounces that branch.
    let w = World::new("", &[("a", 1)], &[("a", "nosuch, \\a\n")]);
    let (outcome, _) = w.run("a@example.org").await;
    assert_eq!(
        outcome,
        Outcome::bounced(
            crate::outcome::code::BAD_MAILBOX,
            "unknown user: \"nosuch\""
        )
    );
    // A Delivered-To: for an address on the way stops that branch.
    let mut w = World::new("", &[("a", 1), ("b", 2)], &[("a", "b, \\a\n")]);
    w.delivered_to.push("b@example.org".into());
    let (outcome, _) = w.run("a@example.org").await;
    assert_eq!(
        outcome,
        Outcome::bounced(
            crate::outcome::code::LOOP,
            "mail forwarding loop for b@example.org"
        )
    );
    assert_eq!(w.done(), ["mailbox a a@example.org"]);
}

#[tokio::test]
async fn long_chains_stop_at_the_nesting_limit() {
    let names: Vec<String> = (0..=MAX_DEPTH + 1).map(|i| format!("u{i}")).collect();
    let users: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    let texts: Vec<String> = (1..names.len()).map(|i| format!("u{i}\n")).collect();
    let forwards: Vec<(&str, &str)> = names
        .iter()
        .zip(&texts)
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let w = World::new("", &users, &forwards);
    let (outcome, _) = w.run("u0@example.org").await;
    assert_eq!(
        outcome,
        Outcome::bounced(
            crate::outcome::code::LOOP,
            "recipient nesting limit exceeded"
        )
    );
    assert!(w.done().is_empty());
}

#[test]
fn recipients_split_at_the_first_delimiter() {
    let r = Rcpt::new("Bob+List-x", "Example.ORG", "+-");
    assert_eq!(r.user, "bob");
    assert_eq!(r.ext, Some(('+', "list-x".into())));
    assert_eq!(r.address(), "bob+list-x@example.org");
    let r = Rcpt::new("bob-x", "d", "+-");
    assert_eq!((r.user.as_str(), r.ext), ("bob", Some(('-', "x".into()))));
    let r = Rcpt::new("bob+x", "d", "");
    assert_eq!((r.user.as_str(), r.ext), ("bob+x", None));
    // No user before the delimiter: not split.
    let r = Rcpt::new("+x", "d", "+");
    assert_eq!((r.user.as_str(), r.ext), ("+x", None));
    let r = Rcpt::new("bob+", "d", "+");
    assert_eq!(
        (r.user.as_str(), r.ext),
        ("bob", Some(('+', String::new())))
    );
}

/// A list with an `owner-` alias: its addresses go out anew from the owner
/// (local ones too), the innermost owner answers, its commands' failures
/// go to the owner and leave the recipient delivered.
#[tokio::test]
async fn lists_with_an_owner_are_passed_on_from_the_owner() {
    let aliases = "list: a, far@remote.example, inner, \\c, \"|exit 1\"\n\
                   owner-list: a\n\
                   inner: b, \"|ok\"\n\
                   owner-inner: b\n\
                   plain: a, far@remote.example, \"|exit 1\"\n";
    let w = World::new(aliases, &[("a", 1), ("b", 2), ("c", 3)], &[]);
    let r = w.routed("list@example.org").await;
    assert_eq!(r.outcome.status, DeliveryStatus::Sent, "{:?}", r.outcome);
    assert!(r.forward.is_empty());
    assert_eq!(
        r.lists,
        [
            ListForward {
                sender: "owner-list@example.org".into(),
                addresses: vec!["a@example.org".into(), "far@remote.example".into()],
            },
            ListForward {
                sender: "owner-inner@example.org".into(),
                addresses: vec!["b@example.org".into()],
            },
        ]
    );
    assert_eq!(
        r.owner_failures,
        [OwnerFailure {
            owner: "owner-list@example.org".into(),
            recipient: "list@example.org".into(),
            dsn: crate::outcome::code::SYSTEM_PERM,
            reason: "Command died with status 1".into(),
        }]
    );
    // `\\c` and inner's command are delivered here, as the owner.
    assert_eq!(
        w.done(),
        [
            "command 65534 ok inner@example.org",
            "mailbox c c@example.org",
        ]
    );

    // Without an owner: delivered here, forwarded from the sender, and the
    // command's failure bounces the recipient.
    let w = World::new(aliases, &[("a", 1), ("b", 2), ("c", 3)], &[]);
    let r = w.routed("plain@example.org").await;
    assert_eq!(
        r.outcome,
        Outcome::bounced(
            crate::outcome::code::SYSTEM_PERM,
            "Command died with status 1"
        )
    );
    assert_eq!(r.forward, ["far@remote.example"]);
    assert!(r.lists.is_empty() && r.owner_failures.is_empty());
    assert_eq!(w.done(), ["mailbox a a@example.org"]);
}

#[tokio::test]
async fn a_loop_through_a_list_goes_to_its_owner() {
    let mut w = World::new("list: a\nowner-list: a\n", &[("a", 1)], &[]);
    w.delivered_to.push("list@example.org".into());
    let r = w.routed("list@example.org").await;
    assert_eq!(r.outcome.status, DeliveryStatus::Sent);
    assert_eq!(r.owner_failures.len(), 1);
    assert_eq!(r.owner_failures[0].owner, "owner-list@example.org");
    assert_eq!(
        r.owner_failures[0].reason,
        "mail forwarding loop for list@example.org"
    );
    assert!(r.lists.is_empty());
}

/// `local.mailbox_transport`: mailboxes are passed on as `user@domain`
/// (the recipient's domain and extension, `$origin` for alias targets),
/// never written nor claimed; commands still run; a deferred or bounced
/// request is as before, and a deferred one passes nothing on.
#[tokio::test]
async fn issue_21_mailboxes_are_passed_to_the_mailbox_transport() {
    let mut w = World::new(
        "team: alice, bob, \"|cat x\"\nlater: alice, \"|exit 75\"\nlost: alice, ghost\n",
        &[("alice", 1000), ("bob", 1001)],
        &[("bob", "\\bob, far@remote.example\n")],
    );
    w.lmtp = Some(Nexthop::parse_lmtp("unix:/run/dovecot/lmtp").unwrap());
    let passed = "mailbox delivery passed to lmtp:unix:/run/dovecot/lmtp";

    let r = w.routed("Alice+box@localhost").await;
    assert_eq!(r.passed, ["alice+box@localhost"]);
    assert_eq!(
        r.outcome,
        Outcome::new(DeliveryStatus::Sent, crate::outcome::code::OK, passed)
    );
    assert!(r.logged);
    assert!(w.done().is_empty(), "{:?}", w.done());

    let r = w.routed("team@example.org").await;
    assert_eq!(r.passed, ["alice@example.org", "bob@example.org"]);
    assert_eq!(r.forward, ["far@remote.example"]);
    assert_eq!(r.outcome, sent());
    assert_eq!(w.done(), ["command 65534 cat x team@example.org"]);

    let r = w.routed("later@example.org").await;
    assert_eq!(r.outcome.status, DeliveryStatus::Deferred);
    assert!(r.passed.is_empty());

    let r = w.routed("lost@example.org").await;
    assert_eq!(r.outcome.status, DeliveryStatus::Bounced);
    assert_eq!(r.outcome.reason, "unknown user: \"ghost\"");
    assert_eq!(r.passed, ["alice@example.org"]);

    let r = w.routed("ghost@example.org").await;
    assert_eq!(r.outcome.status, DeliveryStatus::Bounced);
    assert!(r.passed.is_empty());
}
