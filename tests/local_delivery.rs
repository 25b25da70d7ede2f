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
        Agent::start_full(mail, mailbox, |_| {}).await
    }

    /// Maildirs as [`Agent::start`], the configuration changed by `tweak`
    /// (domain `example.org`, no alias files, unless it says otherwise).
    async fn start_tweaked(tweak: impl FnOnce(&mut Config)) -> Agent {
        let mail = tempfile::tempdir().unwrap();
        std::fs::set_permissions(mail.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let mailbox = format!("{}/$user/Maildir/", mail.path().display());
        Agent::start_full(mail, &mailbox, |c| {
            c.server.origin = "example.org".into();
            c.local.domains = vec!["example.org".into(), "localhost".into()];
            c.local.alias_files = Vec::new();
            tweak(c);
        })
        .await
    }

    async fn start_full(
        mail: tempfile::TempDir,
        mailbox: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> Agent {
        Agent::start_limited(mail, mailbox, tweak, PoolLimits::default()).await
    }

    async fn start_limited(
        mail: tempfile::TempDir,
        mailbox: &str,
        tweak: impl FnOnce(&mut Config),
        limits: PoolLimits,
    ) -> Agent {
        let queue = tempfile::tempdir().unwrap();
        std::fs::create_dir(queue.path().join("incoming")).unwrap();
        let mut config = Config::builtin();
        config.queue.directory = queue.path().to_path_buf();
        config.local.mailbox = mailbox.into();
        // The machine's /etc/aliases (Debian's MTAs map nobody to root)
        // must not change what the tests see.
        config.local.alias_files = Vec::new();
        config.server.run_directory = queue.path().join("run");
        tweak(&mut config);
        let socket = queue.path().join("local.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let command = WorkerCommand {
            program: env!("CARGO_BIN_EXE_postern").into(),
            args: vec!["daemon".into(), "local-worker".into()],
        };
        let config = Arc::new(config);
        tokio::spawn(async move {
            let r = postern::local::serve(config, listener, command, limits).await;
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
            original: None,
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

/// This agent's live workers (pid, uid): the test's children running
/// `local-worker` whose environment names the agent's mail directory
/// (their Landlock room).
fn workers(agent: &Agent) -> Vec<(i32, u32)> {
    let me = std::process::id().to_string();
    let mail = agent.mail.path().as_os_str().as_encoded_bytes().to_vec();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or_default()
                .to_string()
        };
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if field("PPid:") == me
            && String::from_utf8_lossy(&cmdline).contains("local-worker")
            && environ.windows(mail.len()).any(|w| w == mail)
        {
            found.push((pid, field("Uid:").parse().unwrap()));
        }
    }
    found.sort();
    found
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
    let first = workers(&agent);
    assert_eq!(first.len(), 1, "{first:?}");
    let (pid, uid) = first[0];
    assert_eq!(uid, NOBODY);

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
    assert_eq!(names(&md.join("new")).len(), 3);
    let second = workers(&agent);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second[0].0, pid);

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
    let both = workers(&agent);
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both.contains(&second[0]) && both.iter().any(|&(_, uid)| uid == 0));
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

/// `n` deliveries to nobody at once, message `i` being `body(i)`; each
/// must be sent. The test requests share one queue ID, so each gets its
/// own arrival time: distinct Maildir names (in the queue, IDs differ).
async fn deliver_at_once(agent: &Arc<Agent>, n: usize, tag: &str, body: impl Fn(usize) -> String) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let agent = agent.clone();
            let mut r = agent.request(&format!("{tag}{i}"), "nobody", body(i).as_bytes());
            r.arrival_us = 1_765_000_000_000_000 + i as u64;
            tokio::spawn(async move { agent.deliver(&r).await })
        })
        .collect();
    for t in tasks {
        sent(&t.await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_deliveries_get_distinct_names() {
    let agent = Arc::new(Agent::start().await);
    deliver_at_once(&agent, 20, "p", |i| format!("Subject: {i}\n\n{i}\n")).await;
    let md = agent.maildir("nobody");
    assert_eq!(names(&md.join("new")).len(), 20);
    assert!(names(&md.join("tmp")).is_empty());
    // One worker for one user, its two lanes taking turns.
    assert_eq!(workers(&agent).len(), 1);
}

/// Eight lanes of one worker deliver 64 messages at once into one Maildir:
/// each arrives exactly once, whole, and one process (with a thread per
/// lane) did it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lanes_of_one_worker_deliver_at_once_exactly_once() {
    let mail = tempfile::tempdir().unwrap();
    std::fs::set_permissions(mail.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let mailbox = format!("{}/$user/Maildir/", mail.path().display());
    let limits = PoolLimits {
        per_user: 8,
        ..PoolLimits::default()
    };
    let agent = Arc::new(Agent::start_limited(mail, &mailbox, |_| {}, limits).await);
    let body = |i: usize| {
        format!(
            "Subject: {i}\n\n{}\n",
            format!("{i} ").repeat(500 * (i % 5))
        )
    };
    deliver_at_once(&agent, 64, "l", body).await;
    let md = agent.maildir("nobody");
    assert!(names(&md.join("tmp")).is_empty());
    let new = names(&md.join("new"));
    let mut bodies: Vec<String> = new
        .iter()
        .map(|n| {
            let data = std::fs::read_to_string(md.join("new").join(n)).unwrap();
            // After Return-Path: and Delivered-To:.
            data.splitn(3, '\n').nth(2).unwrap_or_default().to_string()
        })
        .collect();
    bodies.sort();
    let mut want: Vec<String> = (0..64).map(body).collect();
    want.sort();
    assert!(bodies == want, "{} files, not each message once", new.len());
    let pids = workers(&agent);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let pid = pids[0].0;
    let mut threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| {
            let comm = t.unwrap().path().join("comm");
            std::fs::read_to_string(comm).unwrap().trim().to_string()
        })
        .filter(|comm| comm.starts_with("lane "))
        .collect();
    threads.sort();
    let lanes: Vec<String> = (0..8).map(|k| format!("lane {k}")).collect();
    assert_eq!(threads, lanes);
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

/// A user made for one test, removed at its end, with its home directory
/// (owned by it, 0755) at the given place.
struct TestUser {
    name: String,
    uid: u32,
    home: PathBuf,
}

impl TestUser {
    fn create(home: &Path) -> TestUser {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("ptl{}x{n}", std::process::id());
        // Tests run in parallel: useradd may find passwd locked.
        let mut tries = 0;
        loop {
            let st = std::process::Command::new("useradd")
                .args(["--home-dir", &home.display().to_string()])
                .args(["--no-create-home", "--shell", "/bin/sh", &name])
                .status()
                .unwrap();
            if st.success() {
                break;
            }
            tries += 1;
            assert!(tries < 50, "useradd {name} failed: {st}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        std::fs::create_dir_all(home).unwrap();
        nix::unistd::chown(home, Some(user.uid), Some(user.gid)).unwrap();
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o755)).unwrap();
        TestUser {
            name,
            uid: user.uid.as_raw(),
            home: home.to_path_buf(),
        }
    }

    /// Write a file in the home directory, owned by the user.
    fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.home.join(name);
        std::fs::write(&path, text).unwrap();
        std::os::unix::fs::chown(&path, Some(self.uid), None).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        for _ in 0..50 {
            // Forced: the agent's idle workers may still run as the user.
            let st = std::process::Command::new("userdel")
                .args(["--force", &self.name])
                .stderr(std::process::Stdio::null())
                .status();
            if st.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A directory anyone may write to and enter.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

fn outcome(r: &DeliveryResult) -> (DeliveryStatus, &str, &str) {
    (r.status, r.dsn.as_str(), r.reason.as_str())
}

#[tokio::test]
async fn commands_and_files_from_inline_aliases_run_as_nobody() {
    let work = open_dir();
    let w = work.path().display().to_string();
    let prog = format!("cat > {w}/out; id -u > {w}/uid; env > {w}/env; pwd > {w}/pwd");
    let agent = Agent::start_tweaked(|c| {
        for (name, value) in [
            ("prog", format!("\"|{prog}\"")),
            ("later", "\"|echo not now; exit 75\"".into()),
            ("broken", "\"|echo it broke >&2; exit 1\"".into()),
            ("archive", format!("{w}/archive")),
            ("exe", format!("{w}/exe")),
            ("md", format!("{w}/md/")),
        ] {
            c.local.aliases.insert(name.into(), value);
        }
    })
    .await;
    let message = b"Subject: c\n\nFrom me\nbody\n";

    let r = agent
        .deliver(&agent.request("c1", "prog@example.org", message))
        .await;
    let reason = format!("delivered to command: {prog}");
    assert_eq!(
        outcome(&r),
        (DeliveryStatus::Sent, "2.0.0", reason.as_str())
    );
    let out = String::from_utf8(std::fs::read(work.path().join("out")).unwrap()).unwrap();
    let (from, rest) = out.split_once('\n').unwrap();
    assert!(from.starts_with("From alice@example.org  "), "{from}");
    assert_eq!(from.len(), "From alice@example.org  ".len() + 24, "{from}");
    // No quoting, no empty line at the end.
    assert_eq!(
        rest,
        "Return-Path: <alice@example.org>\nDelivered-To: prog@example.org\n\
         Subject: c\n\nFrom me\nbody\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("uid")).unwrap(),
        "65534\n"
    );
    // nobody's home does not exist: the command runs in `/`.
    assert_eq!(
        std::fs::read_to_string(work.path().join("pwd")).unwrap(),
        "/\n"
    );
    let env = std::fs::read_to_string(work.path().join("env")).unwrap();
    let wanted = "USER=prog LOGNAME=prog SENDER=alice@example.org RECIPIENT=prog@example.org \
                  LOCAL=prog DOMAIN=example.org PATH=/usr/bin:/bin HOME=/nonexistent";
    for line in wanted.split(' ') {
        assert!(env.lines().any(|l| l == line), "{line} missing: {env}");
    }
    let allowed = "HOME SHELL USER LOGNAME SENDER RECIPIENT LOCAL DOMAIN PATH PWD OLDPWD SHLVL _";
    for line in env.lines() {
        let key = line.split('=').next().unwrap();
        assert!(allowed.split(' ').any(|k| k == key), "unexpected {line}");
    }

    let r = agent
        .deliver(&agent.request("c2", "later@example.org", message))
        .await;
    assert_eq!(
        outcome(&r),
        (
            DeliveryStatus::Deferred,
            "4.3.0",
            "temporary failure. Command output: not now"
        )
    );
    let r = agent
        .deliver(&agent.request("c3", "broken@example.org", message))
        .await;
    assert_eq!(
        outcome(&r),
        (
            DeliveryStatus::Bounced,
            "5.3.0",
            "Command died with status 1: \"echo it broke >&2; exit 1\". Command output: it broke"
        )
    );

    // A file: mbox format, created as nobody.
    for name in ["f1", "f2"] {
        let r = agent
            .deliver(&agent.request(name, "archive@example.org", message))
            .await;
        let reason = format!("delivered to file: {w}/archive");
        assert_eq!(
            outcome(&r),
            (DeliveryStatus::Sent, "2.0.0", reason.as_str())
        );
    }
    let archive = work.path().join("archive");
    let one = "From alice@example.org  DATE\nReturn-Path: <alice@example.org>\n\
               Delivered-To: archive@example.org\nSubject: c\n\n>From me\nbody\n\n";
    assert_eq!(
        normalize_from_lines(&std::fs::read(&archive).unwrap(), "alice@example.org"),
        format!("{one}{one}").into_bytes()
    );
    let meta = std::fs::metadata(&archive).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY, 0o600));

    // An executable file is refused.
    std::fs::write(work.path().join("exe"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        work.path().join("exe"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let r = agent
        .deliver(&agent.request("f3", "exe@example.org", message))
        .await;
    let reason = format!("cannot append message to destination file {w}/exe: file is executable");
    assert_eq!(
        outcome(&r),
        (DeliveryStatus::Bounced, "5.7.1", reason.as_str())
    );

    // A path ending in `/` is a Maildir.
    let r = agent
        .deliver(&agent.request("f4", "md@example.org", message))
        .await;
    assert_eq!(
        outcome(&r),
        (DeliveryStatus::Sent, "2.0.0", "delivered to maildir")
    );
    let new = names(&work.path().join("md/new"));
    assert_eq!(new.len(), 1);
    let file = work.path().join("md/new").join(&new[0]);
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), NOBODY);
}

#[tokio::test]
async fn an_alias_file_lends_its_owner() {
    let work = open_dir();
    let user = TestUser::create(&work.path().join("home"));
    let aliases = user.write(
        "aliases",
        &format!("owned: \"|id -u > {}/ran-as\"\n", work.path().display()),
        0o644,
    );
    let agent = Agent::start_tweaked(|c| c.local.alias_files = vec![aliases.clone()]).await;
    let r = agent
        .deliver(&agent.request("o1", "owned@example.org", b"x\n"))
        .await;
    assert_eq!(r.status, DeliveryStatus::Sent, "{r:?}");
    let ran_as = std::fs::read_to_string(work.path().join("ran-as")).unwrap();
    assert_eq!(ran_as, format!("{}\n", user.uid));
    // Owned by root: nobody (the owner is looked at for each delivery).
    std::fs::remove_file(work.path().join("ran-as")).unwrap();
    std::os::unix::fs::chown(&aliases, Some(0), None).unwrap();
    let r = agent
        .deliver(&agent.request("o2", "owned@example.org", b"x\n"))
        .await;
    assert_eq!(r.status, DeliveryStatus::Sent, "{r:?}");
    let ran_as = std::fs::read_to_string(work.path().join("ran-as")).unwrap();
    assert_eq!(ran_as, format!("{NOBODY}\n"));
}

#[tokio::test]
async fn dot_forward_targets() {
    let work = open_dir();
    let user = TestUser::create(&work.path().join("home"));
    let agent = Agent::start_tweaked(|c| c.local.recipient_delimiter = "+".into()).await;
    let (u, h) = (&user.name, user.home.display().to_string());
    user.write(
        ".forward",
        &format!(
            "# where my mail goes\n\\{u}, \"|cat > {h}/cmd.out; id -u >> {h}/cmd.out\"\n\
             {h}/saved\nsomeone@remote.example\n"
        ),
        0o644,
    );
    let message = b"Subject: f\n\nhello\n";
    let address = format!("{u}@example.org");
    let r = agent.deliver(&agent.request("d1", &address, message)).await;
    assert_eq!(
        outcome(&r),
        (DeliveryStatus::Sent, "2.0.0", "delivered to maildir")
    );
    assert_eq!(r.forward, ["someone@remote.example"]);
    let md = agent.maildir(u);
    assert_eq!(names(&md.join("new")).len(), 1);
    let cmd = std::fs::read_to_string(user.home.join("cmd.out")).unwrap();
    assert!(
        cmd.ends_with(&format!(
            "Delivered-To: {address}\nSubject: f\n\nhello\n{}\n",
            user.uid
        )),
        "{cmd}"
    );
    let saved = std::fs::read(user.home.join("saved")).unwrap();
    assert!(saved.ends_with(b"\nhello\n\n"));
    assert_eq!(
        std::fs::metadata(user.home.join("saved")).unwrap().uid(),
        user.uid
    );

    // `.forward+ext` first for `user+ext`.
    user.write(".forward+list", &format!("{h}/list\n"), 0o600);
    let r = agent
        .deliver(&agent.request("d2", &format!("{u}+list@example.org"), message))
        .await;
    let reason = format!("delivered to file: {h}/list");
    assert_eq!(
        outcome(&r),
        (DeliveryStatus::Sent, "2.0.0", reason.as_str())
    );
    assert_eq!(names(&md.join("new")).len(), 1);

    // A user that lists itself gets its mailbox, and a file with no
    // address means the mailbox too.
    user.write(".forward", &format!("{u}@Example.ORG\n"), 0o644);
    let r = agent.deliver(&agent.request("d3", &address, message)).await;
    assert_eq!(r.status, DeliveryStatus::Sent, "{r:?}");
    user.write(".forward", "# nothing\n\n", 0o644);
    let r = agent.deliver(&agent.request("d4", &address, message)).await;
    assert_eq!(r.status, DeliveryStatus::Sent, "{r:?}");
    assert_eq!(names(&md.join("new")).len(), 3);

    // A group-writable `.forward` is ignored: the mailbox.
    user.write(".forward", &format!("{h}/saved\n"), 0o664);
    let before = std::fs::read(user.home.join("saved")).unwrap();
    let r = agent.deliver(&agent.request("d5", &address, message)).await;
    assert_eq!(
        outcome(&r),
        (DeliveryStatus::Sent, "2.0.0", "delivered to maildir")
    );
    assert_eq!(std::fs::read(user.home.join("saved")).unwrap(), before);
    assert_eq!(names(&md.join("new")).len(), 4);
}
