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
        let queue = tempfile::tempdir().unwrap();
        std::fs::create_dir(queue.path().join("incoming")).unwrap();
        let mail = tempfile::tempdir().unwrap();
        // Any user may create their directory here, as under /tmp.
        std::fs::set_permissions(mail.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let mut config = Config::builtin();
        config.queue.directory = queue.path().to_path_buf();
        config.local.mailbox = format!("{}/$user/Maildir/", mail.path().display());
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
