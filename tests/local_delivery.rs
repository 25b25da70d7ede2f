//! The local agent end to end: requests on its socket, deliveries through
//! real `postern daemon local-worker` children that become the recipient.
//! Needs root (to become `nobody`), as the project's machines and CI run.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use postern::config::Config;
use postern::ipc::{self, DeliveryRequest, DeliveryResult, DeliveryStatus};
use postern::local::{PoolLimits, WorkerCommand};
use postern::queue::ContentRef;
use tokio::io::BufReader;
use tokio::net::UnixStream;

const NOBODY: u32 = 65534;

struct Agent {
    queue: tempfile::TempDir,
    mail: tempfile::TempDir,
    socket: PathBuf,
}

impl Agent {
    /// Start `local` on a socket in a temporary directory, with Maildirs at
    /// `<mail>/$user/Maildir/`.
    async fn start() -> Agent {
        let mail = tempfile::tempdir().unwrap();
        // Any user may create their directory here, as under /tmp.
        std::fs::set_permissions(mail.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let mailbox = format!("{}/$user/Maildir/", mail.path().display());
        Agent::start_with(mail, &mailbox).await
    }

    /// Start `local` with mbox files `<mail>/$user` in a spool directory
    /// made like Debian's `/var/mail`: `root:mail`, mode 2775.
    async fn start_mbox() -> Agent {
        let mail = tempfile::tempdir().unwrap();
        debian_spool(mail.path());
        let mailbox = format!("{}/$user", mail.path().display());
        Agent::start_with(mail, &mailbox).await
    }

    async fn start_with(mail: tempfile::TempDir, mailbox: &str) -> Agent {
        let queue = tempfile::tempdir().unwrap();
        std::fs::create_dir(queue.path().join("incoming")).unwrap();
        let mut config = Config::builtin();
        config.queue.directory = queue.path().to_path_buf();
        config.local.mailbox = mailbox.into();
        let socket = queue.path().join("local.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let command = WorkerCommand {
            program: env!("CARGO_BIN_EXE_postern").into(),
            args: vec!["daemon".into(), "local-worker".into()],
        };
        let config = Arc::new(config);
        tokio::spawn(async move {
            let r = postern::local::serve(config, listener, command, PoolLimits::default()).await;
            panic!("local stopped: {r:?}");
        });
        Agent {
            queue,
            mail,
            socket,
        }
    }

    /// Store `message` as a queue file and build a request for it.
    fn request(&self, name: &str, recipient: &str, message: &[u8]) -> DeliveryRequest {
        let path = format!("incoming/{name}.msg");
        std::fs::write(self.queue.path().join(&path), message).unwrap();
        DeliveryRequest {
            id: "0000000000001A".parse().unwrap(),
            sender: "alice@example.org".into(),
            recipient: recipient.into(),
            rcpt_index: 0,
            content: ContentRef::File {
                path,
                len: message.len() as u64,
            },
            arrival_us: postern::queue::now_micros(),
            active_us: postern::queue::now_micros(),
        }
    }

    async fn deliver(&self, request: &DeliveryRequest) -> DeliveryResult {
        let stream = UnixStream::connect(&self.socket).await.unwrap();
        let (read, mut write) = stream.into_split();
        ipc::write_line(&mut write, request).await.unwrap();
        let mut read = BufReader::new(read);
        ipc::read_line(&mut read).await.unwrap().unwrap()
    }

    fn maildir(&self, user: &str) -> PathBuf {
        self.mail.path().join(user).join("Maildir")
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// The worker's pid, from the `P<pid>` part of a Maildir name.
fn worker_pid(name: &str) -> i32 {
    let after = &name[name.find('P').unwrap() + 1..];
    after[..after.find('Q').unwrap()].parse().unwrap()
}

fn sent(r: &DeliveryResult) {
    assert_eq!(
        (r.status, r.dsn.as_str(), r.reason.as_str()),
        (DeliveryStatus::Sent, "2.0.0", "delivered to maildir"),
        "{r:?}"
    );
}

const MAIL_GROUP: u32 = 8;

/// `root:mail` 2775, as Debian's `/var/mail`: only root and group `mail`
/// may create files there (`nobody` is not in the group).
fn debian_spool(dir: &Path) {
    nix::unistd::chown(dir, None, Some(nix::unistd::Gid::from_raw(MAIL_GROUP))).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o2775)).unwrap();
}

#[tokio::test]
async fn delivers_as_the_user_and_reuses_the_worker() {
    let agent = Agent::start().await;
    let message = b"Received: from x\nSubject: hi\n\nbody\n";
    let r = agent
        .deliver(&agent.request("m1", "Nobody@Example.org", message))
        .await;
    sent(&r);

    let md = agent.maildir("nobody");
    let new = names(&md.join("new"));
    assert_eq!(new.len(), 1);
    assert!(names(&md.join("tmp")).is_empty());
    let file = md.join("new").join(&new[0]);
    let mut want = b"Return-Path: <alice@example.org>\nDelivered-To: nobody@example.org\n".to_vec();
    want.extend_from_slice(message);
    assert_eq!(std::fs::read(&file).unwrap(), want);
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
    for dir in [agent.mail.path().join("nobody"), md.clone(), md.join("new")] {
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(
            (meta.uid(), meta.mode() & 0o777),
            (NOBODY, 0o700),
            "{}",
            dir.display()
        );
    }

    // The same worker serves the next delivery to the same user.
    sent(
        &agent
            .deliver(&agent.request("m2", "nobody", b"Subject: 2\n\n"))
            .await,
    );
    let new = names(&md.join("new"));
    assert_eq!(new.len(), 2);
    let pid = worker_pid(&new[0]);
    assert_eq!(pid, worker_pid(&new[1]));

    // A worker that died is replaced.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    sent(
        &agent
            .deliver(&agent.request("m3", "nobody", b"Subject: 3\n\n"))
            .await,
    );
    let pids: std::collections::HashSet<i32> = names(&md.join("new"))
        .iter()
        .map(|n| worker_pid(n))
        .collect();
    assert_eq!(pids.len(), 2);

    // Root gets its own worker, running as root.
    sent(
        &agent
            .deliver(&agent.request("m4", "root", b"Subject: 4\n\n"))
            .await,
    );
    let root_md = agent.maildir("root");
    let new = names(&root_md.join("new"));
    assert_eq!(
        std::fs::metadata(root_md.join("new").join(&new[0]))
            .unwrap()
            .uid(),
        0
    );
    assert!(!pids.contains(&worker_pid(&new[0])));
}

#[tokio::test]
async fn streams_a_large_message() {
    let agent = Agent::start().await;
    let mut message = b"Subject: big\n\n".to_vec();
    message.resize(20 << 20, b'x');
    message.push(b'\n');
    let r = agent
        .deliver(&agent.request("big", "nobody@example.org", &message))
        .await;
    sent(&r);
    let md = agent.maildir("nobody");
    let new = names(&md.join("new"));
    let prefix = b"Return-Path: <alice@example.org>\nDelivered-To: nobody@example.org\n";
    let data = std::fs::read(md.join("new").join(&new[0])).unwrap();
    assert_eq!(data.len(), prefix.len() + message.len());
    assert!(data[..prefix.len()] == prefix[..] && data[prefix.len()..] == message[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_deliveries_get_distinct_names() {
    let agent = Arc::new(Agent::start().await);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let agent = agent.clone();
            tokio::spawn(async move {
                let body = format!("Subject: {i}\n\n{i}\n");
                let r = agent.request(&format!("p{i}"), "nobody", body.as_bytes());
                agent.deliver(&r).await
            })
        })
        .collect();
    for t in tasks {
        sent(&t.await.unwrap());
    }
    let md = agent.maildir("nobody");
    assert_eq!(names(&md.join("new")).len(), 20);
    assert!(names(&md.join("tmp")).is_empty());
    // At most two workers for one user.
    let pids: std::collections::HashSet<i32> = names(&md.join("new"))
        .iter()
        .map(|n| worker_pid(n))
        .collect();
    assert!(pids.len() <= 2, "{pids:?}");
}

#[tokio::test]
async fn refusals() {
    let agent = Agent::start().await;
    let r = agent
        .deliver(&agent.request("u", "no-such-user-xq", b"\n"))
        .await;
    assert_eq!(
        (r.status, r.dsn.as_str()),
        (DeliveryStatus::Bounced, "5.1.1")
    );
    let looped = b"Delivered-To: nobody@example.org\nSubject: x\n\n";
    let r = agent
        .deliver(&agent.request("l", "nobody@example.org", looped))
        .await;
    assert_eq!(
        (r.status, r.dsn.as_str()),
        (DeliveryStatus::Bounced, "5.4.6")
    );
    // A mailbox the user cannot create defers (Postfix would bounce 5.2.0).
    std::fs::create_dir(agent.mail.path().join("nobody")).unwrap();
    std::fs::set_permissions(
        agent.mail.path().join("nobody"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let r = agent
        .deliver(&agent.request("d", "nobody", b"Subject: x\n\n"))
        .await;
    assert_eq!(
        (r.status, r.dsn.as_str()),
        (DeliveryStatus::Deferred, "4.2.0"),
        "{r:?}"
    );
    assert!(
        r.reason
            .starts_with("maildir delivery failed: create maildir file ")
            && r.reason.ends_with(": Permission denied"),
        "{}",
        r.reason
    );
}

/// The mbox `data` with each `From ` separator line checked (sender, two
/// spaces, a 24-character asctime) and replaced by `From SENDER  DATE`.
/// Body lines never begin with `From `: they are quoted.
fn normalize_from_lines(data: &[u8], sender: &str) -> Vec<u8> {
    let text = String::from_utf8(data.to_vec()).unwrap();
    let head = format!("From {sender}  ");
    let mut out = String::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if i == 0 || line.starts_with("From ") {
            assert!(line.starts_with(&head), "{line:?}");
            let date = &line[head.len()..line.len() - 1];
            assert_eq!(date.len(), 24, "{date:?}");
            out.push_str(&format!("{head}DATE\n"));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

#[tokio::test]
async fn mbox_in_a_debian_spool() {
    let agent = Agent::start_mbox().await;
    let one = b"Received: from x\nSubject: one\n\nFrom the start\n>From quoted\nFrom\n";
    let two = b"Received: from y\nSubject: two\n\nbody\n";
    for (name, message) in [("one", &one[..]), ("two", &two[..])] {
        let r = agent
            .deliver(&agent.request(name, "Nobody@Example.org", message))
            .await;
        assert_eq!(
            (r.status, r.dsn.as_str(), r.reason.as_str()),
            (DeliveryStatus::Sent, "2.0.0", "delivered to mailbox"),
            "{r:?}"
        );
    }
    let mbox = agent.mail.path().join("nobody");
    let want = "From alice@example.org  DATE\n\
        Return-Path: <alice@example.org>\n\
        Delivered-To: nobody@example.org\n\
        Received: from x\nSubject: one\n\n>From the start\n>From quoted\nFrom\n\n\
        From alice@example.org  DATE\n\
        Return-Path: <alice@example.org>\n\
        Delivered-To: nobody@example.org\n\
        Received: from y\nSubject: two\n\nbody\n\n";
    let data = std::fs::read(&mbox).unwrap();
    assert_eq!(
        String::from_utf8(normalize_from_lines(&data, "alice@example.org")).unwrap(),
        want
    );
    let meta = std::fs::metadata(&mbox).unwrap();
    // The spool's set-group-ID bit gives the file the group `mail`.
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (NOBODY, MAIL_GROUP, 0o600)
    );
    assert_eq!(names(agent.mail.path()), vec!["nobody".to_string()]);
}

/// An mbox of `nobody` holding one message; its content.
fn old_mbox(path: &Path) -> Vec<u8> {
    let before = b"From bob  Thu Jan  1 00:00:00 1970\nSubject: old\n\nold\n\n".to_vec();
    std::fs::write(path, &before).unwrap();
    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(NOBODY)), None).unwrap();
    before
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(options: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test]
async fn a_failed_mbox_delivery_leaves_the_mailbox_as_it_was() {
    let agent = Agent::start_mbox().await;
    let mbox = agent.mail.path().join("nobody");
    let before = old_mbox(&mbox);

    // Read-only: the user cannot open it for writing.
    std::fs::set_permissions(&mbox, std::fs::Permissions::from_mode(0o400)).unwrap();
    let r = agent
        .deliver(&agent.request("ro", "nobody", b"Subject: x\n\n"))
        .await;
    assert_eq!(
        (r.status, r.dsn.as_str()),
        (DeliveryStatus::Deferred, "4.2.0"),
        "{r:?}"
    );
    assert_eq!(
        r.reason,
        format!(
            "cannot update mailbox {} for user nobody. cannot open file: Permission denied",
            mbox.display()
        )
    );
    assert_eq!(std::fs::read(&mbox).unwrap(), before);
    assert_eq!(names(agent.mail.path()), vec!["nobody".to_string()]);
}

#[tokio::test]
async fn a_full_disk_truncates_the_mbox_back() {
    // A 1 MiB file system made like Debian's spool, then a 2 MiB message.
    let Some(spool) = Tmpfs::mount(&format!("size=1m,mode=2775,gid={MAIL_GROUP}")) else {
        eprintln!("cannot mount a tmpfs: skipped");
        return;
    };
    let mailbox = format!("{}/$user", spool.0.path().display());
    let mail = tempfile::tempdir().unwrap();
    let agent = Agent::start_with(mail, &mailbox).await;
    let mbox = spool.0.path().join("nobody");
    let before = old_mbox(&mbox);

    let mut message = b"Subject: big\n\n".to_vec();
    message.resize(2 << 20, b'x');
    message.push(b'\n');
    let r = agent
        .deliver(&agent.request("big", "nobody", &message))
        .await;
    assert_eq!(
        (r.status, r.dsn.as_str()),
        (DeliveryStatus::Deferred, "4.3.0"),
        "{r:?}"
    );
    assert_eq!(
        r.reason,
        format!(
            "cannot update mailbox {} for user nobody. error writing message: No space left on device",
            mbox.display()
        )
    );
    assert_eq!(std::fs::read(&mbox).unwrap(), before);
    assert_eq!(names(spool.0.path()), vec!["nobody".to_string()]);

    // The space is back: the next message goes in after the old one.
    let r = agent
        .deliver(&agent.request("small", "nobody", b"Subject: s\n\n"))
        .await;
    assert_eq!(r.status, DeliveryStatus::Sent, "{r:?}");
    let data = std::fs::read(&mbox).unwrap();
    assert!(data.starts_with(&before) && data.ends_with(b"Subject: s\n\n\n"));
}
