//! The checks before a worker is involved, and the log line. Deliveries
//! through the real worker are in `tests/local_delivery.rs`.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::local::pool::{PoolLimits, WorkerCommand};
use crate::queue::ContentRef;

struct Setup {
    queue: tempfile::TempDir,
    agent: Agent,
}

/// An agent whose workers would fail loudly: these tests must not reach one.
fn setup(mailbox: &str, privilege: Privilege) -> Setup {
    let queue = tempfile::tempdir().unwrap();
    let mut config = Config::builtin();
    config.queue.directory = queue.path().to_path_buf();
    config.local.mailbox = mailbox.into();
    config.server.origin = "origin.test".into();
    // The machine's /etc/aliases must not change what the tests see.
    config.local.alias_files = Vec::new();
    config.server.run_directory = queue.path().join("run");
    let command = WorkerCommand {
        program: "/nonexistent/worker".into(),
        args: vec![],
    };
    let pool = WorkerPool::new(
        command,
        false,
        Duration::from_secs(60),
        PoolLimits::default(),
    );
    let agent = Agent::new(Arc::new(config), privilege, pool);
    Setup { queue, agent }
}

fn request(queue: &Path, recipient: &str, message: &[u8]) -> DeliveryRequest {
    std::fs::create_dir_all(queue.join("incoming")).unwrap();
    let mut segment = b"HEADER".to_vec();
    segment.extend_from_slice(message);
    std::fs::write(queue.join("incoming/S1.log"), segment).unwrap();
    DeliveryRequest {
        id: "0000000000001A".parse().unwrap(),
        sender: "alice@example.org".into(),
        recipient: recipient.into(),
        original: None,
        rcpt_index: 3,
        content: ContentRef::Segment {
            path: "incoming/S1.log".into(),
            offset: 6,
            len: message.len() as u64,
        },
        arrival_us: 1_000_000,
        active_us: 1_060_000,
    }
}

async fn outcome(s: &Setup, recipient: &str, message: &[u8]) -> DeliveryResult {
    let r = request(s.queue.path(), recipient, message);
    s.agent.deliver(&r).await
}

#[tokio::test]
async fn unknown_users_bounce() {
    let s = setup("Maildir/", Privilege::Root);
    let r = outcome(&s, "No-Such-User-Xq@example.org", b"Subject: x\n\nhi\n").await;
    assert_eq!(r.rcpt_index, 3);
    assert_eq!(
        (r.status, r.dsn.as_str()),
        (DeliveryStatus::Bounced, "5.1.1")
    );
    assert_eq!(r.reason, "unknown user: \"no-such-user-xq\"");
}

#[tokio::test]
async fn a_delivered_to_loop_bounces() {
    let s = setup("Maildir/", Privilege::Root);
    let m = b"Received: x\nDelivered-To: NOBODY@example.ORG\nSubject: x\n\nhi\n";
    let r = outcome(&s, "nobody@example.org", m).await;
    assert_eq!(
        (r.status, r.dsn.as_str()),
        (DeliveryStatus::Bounced, "5.4.6")
    );
    assert_eq!(r.reason, "mail forwarding loop for nobody@example.org");
    // A bare recipient is compared as user@origin.
    let m = b"Delivered-To: nobody@origin.test\n\n";
    let r = outcome(&s, "nobody", m).await;
    assert_eq!(r.dsn, "5.4.6");
}

#[tokio::test]
async fn null_usernames_bounce() {
    let s = setup("Maildir/", Privilege::Root);
    let r = outcome(&s, "@example.org", b"\n").await;
    assert_eq!(
        (r.status, r.dsn.as_str()),
        (DeliveryStatus::Bounced, "5.1.3")
    );
    assert_eq!(r.reason, "null username in \"@example.org\"");
}

#[tokio::test]
async fn mbox_goes_to_a_worker_too() {
    let s = setup("Mailbox", Privilege::Root);
    let r = outcome(&s, "nobody@example.org", b"Subject: x\n\nhi\n").await;
    assert_eq!(
        (r.status, r.dsn.as_str()),
        (DeliveryStatus::Deferred, "4.3.0")
    );
    assert!(
        r.reason.starts_with("cannot start delivery process: "),
        "{}",
        r.reason
    );
}

#[tokio::test]
async fn a_group_writable_spool_lends_its_group() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |m| std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(m));
    // Group 8 is `mail` on Debian; any group but 0 will do.
    let gid = 8;
    if nix::unistd::chown(dir.path(), None, Some(nix::unistd::Gid::from_raw(gid))).is_err() {
        return; // not root: cannot give the directory a group
    }
    mode(0o2775).unwrap();
    assert_eq!(spool_group(dir.path()).await, Some(gid));
    mode(0o1777).unwrap();
    assert_eq!(spool_group(dir.path()).await, None);
    mode(0o755).unwrap();
    assert_eq!(spool_group(dir.path()).await, None);
    assert_eq!(spool_group(&dir.path().join("missing")).await, None);
}

#[tokio::test]
async fn an_ordinary_user_delivers_only_to_itself() {
    let me = Privilege::User {
        uid: 4242,
        name: "alice".into(),
    };
    let s = setup("Maildir/", me);
    let r = outcome(&s, "nobody@example.org", b"Subject: x\n\nhi\n").await;
    assert_eq!(
        (r.status, r.dsn.as_str()),
        (DeliveryStatus::Deferred, "4.3.0")
    );
    assert_eq!(
        r.reason,
        "cannot deliver to user \"nobody\": postern runs as user \"alice\" (not root)"
    );
    assert!(
        !Privilege::User {
            uid: 1,
            name: "a".into()
        }
        .switches_user()
    );
    assert!(Privilege::Root.switches_user());
}

#[tokio::test]
async fn queue_and_worker_trouble_defers() {
    let s = setup("Maildir/", Privilege::Root);
    let mut r = request(s.queue.path(), "nobody@example.org", b"Subject: x\n\nhi\n");
    r.content = ContentRef::File {
        path: "incoming/missing.msg".into(),
        len: 10,
    };
    let got = s.agent.deliver(&r).await;
    assert_eq!(
        (got.status, got.dsn.as_str()),
        (DeliveryStatus::Deferred, "4.3.0")
    );
    assert!(
        got.reason.starts_with("cannot read queue file: "),
        "{}",
        got.reason
    );
    // The worker program does not exist.
    let got = outcome(&s, "nobody@example.org", b"Subject: x\n\nhi\n").await;
    assert_eq!(
        (got.status, got.dsn.as_str()),
        (DeliveryStatus::Deferred, "4.3.0")
    );
    assert!(
        got.reason.starts_with("cannot start delivery process: "),
        "{}",
        got.reason
    );
}

#[test]
fn log_lines_have_postfix_shape() {
    let mut r = request(tempfile::tempdir().unwrap().path(), "Bob@example.org", b"x");
    r.arrival_us = 10_000_000;
    r.active_us = 10_060_000;
    let o = Outcome::new(
        DeliveryStatus::Sent,
        crate::outcome::code::OK,
        "delivered to maildir",
    );
    assert_eq!(
        log_line(&r, None, &o, 10_070_000, 10_120_000),
        "0000000000001A: to=<Bob@example.org>, relay=local, delay=0.12, \
         delays=0.06/0.01/0/0.05, dsn=2.0.0, status=sent (delivered to maildir)"
    );
    let o = Outcome::deferred(crate::outcome::code::SYSTEM_TEMP, "x");
    assert!(
        log_line(&r, None, &o, 0, 0)
            .ends_with("delay=0, delays=0.06/0/0/0, dsn=4.3.0, status=deferred (x)")
    );
}

#[tokio::test]
async fn connections_answer_in_order_and_close_on_garbage() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let s = setup("Mailbox", Privilege::Root);
    let live = Arc::new(Live::new(s.agent));
    let (client, server) = tokio::net::UnixStream::pair().unwrap();
    let task = tokio::spawn(Agent::serve_connection(live.clone(), server));
    let (read, mut write) = client.into_split();
    let mut read = tokio::io::BufReader::new(read);
    let mut a = request(s.queue.path(), "nobody", b"Subject: x\n\n");
    a.rcpt_index = 0;
    let mut b = a.clone();
    b.recipient = "no-such-user-xq".into();
    b.rcpt_index = 1;
    ipc::write_line(&mut write, &a).await.unwrap();
    ipc::write_line(&mut write, &b).await.unwrap();
    let ra: DeliveryResult = ipc::read_line(&mut read).await.unwrap().unwrap();
    let rb: DeliveryResult = ipc::read_line(&mut read).await.unwrap().unwrap();
    assert_eq!((ra.rcpt_index, ra.status), (0, DeliveryStatus::Deferred));
    assert_eq!((rb.rcpt_index, rb.status), (1, DeliveryStatus::Bounced));
    write.write_all(b"{not json\n").await.unwrap();
    let mut rest = String::new();
    assert_eq!(read.read_line(&mut rest).await.unwrap(), 0);
    task.await.unwrap();
}
