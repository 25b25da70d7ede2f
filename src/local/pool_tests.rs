//! The pool with stand-in workers written in sh: they read a job line and
//! its content and answer with their pid, which shows reuse and restarts.
//! The real worker is exercised in `tests/local_delivery.rs`.

use super::*;
use crate::local::mailbox::Mailbox;
use crate::local::worker::Destination;

/// Serves each lane (`$POSTERN_LOCAL_WORKER_LANES` of them, lane `k` on
/// fds `3+2k` and `4+2k`, lane 0 in the foreground): reads the job line,
/// skips `len` content bytes (`head -c` reads exactly that many; `read`
/// reads a pipe byte by byte), answers `sent` with its pid and the lane in
/// the reason. A job for `slow@x` takes `$SLOW` seconds, one for
/// `medium@x` `$MEDIUM`. dash takes only one-digit descriptors: tests use
/// at most 3 lanes.
const FAKE_WORKER: &str = r#"
serve() {
  while IFS= read -r line; do
    len=${line##*\"len\":}; len=${len%%[!0-9]*}
    head -c "$len" > /dev/null
    [ -n "$DELAY" ] && sleep "$DELAY"
    case $line in
      *'"slow@x"'*) sleep "$SLOW" ;;
      *'"medium@x"'*) sleep "$MEDIUM" ;;
    esac
    printf '{"status":"sent","dsn":"2.0.0","reason":"lane %d","pid":%d}\n' "$1" $$
  done
}
k=1
while [ "$k" -lt "$POSTERN_LOCAL_WORKER_LANES" ]; do
  eval "serve $k <&$((3 + 2 * k)) >&$((4 + 2 * k)) &"
  k=$((k + 1))
done
serve 0 <&3 >&4
wait
"#;

fn sh(script: &str) -> WorkerCommand {
    WorkerCommand {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
    }
}

fn pool(command: WorkerCommand, idle: Duration, limits: PoolLimits) -> WorkerPool {
    WorkerPool::new(command, false, idle, limits)
}

fn identity(user: &str, uid: u32) -> Identity {
    Identity {
        user: user.into(),
        uid,
        gid: uid,
        groups: vec![uid],
        home: "/nonexistent".into(),
        confine: None,
    }
}

fn job(len: u64) -> Job {
    Job {
        id: "0000000000001A".into(),
        uid: 0,
        user: "nobody".into(),
        destination: Destination::Mailbox(Mailbox::Maildir("/nonexistent/Maildir/".into())),
        sender: String::new(),
        recipient: "u@x".into(),
        len,
        stem: None,
    }
}

struct Content {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Content {
    /// `pad` bytes of junk, then the message: the offset is honoured.
    fn new(message: &[u8], pad: usize) -> Content {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let mut data = vec![b'#'; pad];
        data.extend_from_slice(message);
        std::fs::write(&path, data).unwrap();
        Content { _dir: dir, path }
    }

    fn open(&self) -> File {
        File::open(&self.path).unwrap()
    }
}

async fn deliver(
    pool: &WorkerPool,
    who: &Identity,
    content: &Content,
    len: u64,
) -> Result<JobReply, PoolError> {
    let file = content.open();
    pool.deliver(who, &job(len), &file, 7).await
}

fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

#[tokio::test]
async fn a_worker_is_reused_for_the_same_user() {
    let pool = pool(
        sh(FAKE_WORKER),
        Duration::from_secs(60),
        PoolLimits::default(),
    );
    let content = Content::new(b"Subject: x\n\nbody\n", 7);
    let alice = identity("alice", 1000);
    let a = deliver(&pool, &alice, &content, 17).await.unwrap();
    let b = deliver(&pool, &alice, &content, 17).await.unwrap();
    assert_eq!(a.status, DeliveryStatus::Sent);
    assert_eq!(a.pid, b.pid);
    assert_eq!(pool.spawns(), 1);
    let c = deliver(&pool, &identity("bob", 1001), &content, 17)
        .await
        .unwrap();
    assert_ne!(c.pid, a.pid);
    assert_eq!(pool.spawns(), 2);
}

#[tokio::test]
async fn a_dead_worker_is_replaced() {
    // One lane: the stand-in's lanes are processes of their own, which a
    // kill of the first would not end (the real worker's are threads).
    let limits = PoolLimits {
        per_user: 1,
        ..PoolLimits::default()
    };
    let pool = pool(sh(FAKE_WORKER), Duration::from_secs(60), limits);
    let content = Content::new(b"m\n", 7);
    let alice = identity("alice", 1000);
    let a = deliver(&pool, &alice, &content, 2).await.unwrap();
    let pid = nix::unistd::Pid::from_raw(a.pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    // Let it die (it is our child: a zombie until reaped, then gone).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = deliver(&pool, &alice, &content, 2).await.unwrap();
    assert_eq!(b.status, DeliveryStatus::Sent);
    assert_ne!(a.pid, b.pid);
    assert_eq!(pool.spawns(), 2);
}

#[tokio::test]
async fn a_worker_that_keeps_failing_defers() {
    let content = Content::new(b"m\n", 7);
    let alice = identity("alice", 1000);
    for script in [
        "exit 0",
        "read l <&3; echo garbage >&4",
        r#"read l <&3; head -c 2 <&3 >/dev/null; echo '{"status":"sent","dsn":"5.1.1","reason":"x","pid":1}' >&4"#,
    ] {
        let pool = pool(sh(script), Duration::from_secs(60), PoolLimits::default());
        let err = deliver(&pool, &alice, &content, 2).await.unwrap_err();
        assert!(matches!(err, PoolError::Broken(_)), "{script}: {err}");
        assert_eq!(pool.spawns(), 2, "{script}");
    }
    let missing = WorkerCommand {
        program: "/nonexistent/postern".into(),
        args: vec![],
    };
    let pool = pool(missing, Duration::from_secs(60), PoolLimits::default());
    let err = deliver(&pool, &alice, &content, 2).await.unwrap_err();
    assert!(matches!(err, PoolError::Spawn(_)), "{err}");
}

#[tokio::test]
async fn a_short_queue_file_defers_without_retry() {
    let pool = pool(
        sh(FAKE_WORKER),
        Duration::from_secs(60),
        PoolLimits::default(),
    );
    let content = Content::new(b"0123", 7);
    let err = deliver(&pool, &identity("alice", 1000), &content, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::Content(_)), "{err}");
    assert_eq!(pool.spawns(), 1);
}

#[tokio::test]
async fn idle_workers_exit() {
    let pool = pool(
        sh(FAKE_WORKER),
        Duration::from_millis(100),
        PoolLimits::default(),
    );
    let content = Content::new(b"m\n", 7);
    let a = deliver(&pool, &identity("alice", 1000), &content, 2)
        .await
        .unwrap();
    assert!(alive(a.pid));
    assert_eq!(pool.live(), 1);
    for _ in 0..100 {
        if pool.live() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pool.live(), 0);
    assert!(!alive(a.pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_per_user_serves_per_user_jobs_at_once() {
    let slow = format!("DELAY=0.2\n{FAKE_WORKER}");
    let pool = Arc::new(pool(
        sh(&slow),
        Duration::from_secs(60),
        PoolLimits::default(),
    ));
    let content = Arc::new(Content::new(b"m\n", 7));
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (pool, content) = (pool.clone(), content.clone());
            tokio::spawn(async move { deliver(&pool, &identity("alice", 1000), &content, 2).await })
        })
        .collect();
    let mut pids = std::collections::HashSet::new();
    let mut lanes = std::collections::BTreeSet::new();
    for t in tasks {
        let reply = t.await.unwrap().unwrap();
        pids.insert(reply.pid);
        lanes.insert(reply.reason);
    }
    assert_eq!(pool.spawns(), 1);
    assert_eq!(pids.len(), 1);
    assert_eq!(
        lanes.into_iter().collect::<Vec<_>>(),
        ["lane 0", "lane 1"],
        "both lanes served"
    );
}

async fn deliver_to(pool: &WorkerPool, recipient: &str) -> Result<JobReply, PoolError> {
    let content = Content::new(b"m\n", 7);
    let mut job = job(2);
    job.recipient = recipient.into();
    pool.deliver(&identity("alice", 1000), &job, &content.open(), 7)
        .await
}

/// A job past the time limit defers; its worker takes no more jobs, but
/// the job on its other lane finishes and is answered; the next delivery
/// gets a fresh worker, and the old one goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_past_its_time_limit_breaks_its_worker_not_the_other_lanes_jobs() {
    let limits = PoolLimits {
        timeout: Duration::from_secs(2),
        ..PoolLimits::default()
    };
    // slow: from 0 s, out of time at 2 s; medium: from 1.2 s to 2.7 s.
    let script = format!("SLOW=6 MEDIUM=1.5\n{FAKE_WORKER}");
    let pool = Arc::new(pool(sh(&script), Duration::from_secs(60), limits));
    let slow = tokio::spawn({
        let pool = pool.clone();
        async move { deliver_to(&pool, "slow@x").await }
    });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let medium = tokio::spawn({
        let pool = pool.clone();
        async move { deliver_to(&pool, "medium@x").await }
    });
    let err = slow.await.unwrap().unwrap_err();
    assert!(matches!(err, PoolError::Timeout(2)), "{err}");
    let after = deliver_to(&pool, "u@x").await.unwrap();
    let medium = medium.await.unwrap().unwrap();
    assert_eq!(
        (medium.status, medium.reason.as_str()),
        (DeliveryStatus::Sent, "lane 1")
    );
    assert_ne!(after.pid, medium.pid, "a fresh worker after the timeout");
    assert_eq!(pool.spawns(), 2);
    for _ in 0..500 {
        if !alive(medium.pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(medium.pid), "the broken worker is gone");
    assert_eq!(pool.live(), 1);
}

#[tokio::test]
async fn the_global_cap_retires_the_least_recently_used() {
    let limits = PoolLimits {
        total: 1,
        ..PoolLimits::default()
    };
    let pool = pool(sh(FAKE_WORKER), Duration::from_secs(60), limits);
    let content = Content::new(b"m\n", 7);
    let a = deliver(&pool, &identity("alice", 1000), &content, 2)
        .await
        .unwrap();
    let b = deliver(&pool, &identity("bob", 1001), &content, 2)
        .await
        .unwrap();
    assert_ne!(a.pid, b.pid);
    for _ in 0..100 {
        if !alive(a.pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(a.pid));
    assert_eq!(pool.live(), 1);
}

#[test]
fn replies_are_checked() {
    let reply = |status, dsn: &str| JobReply {
        status,
        dsn: dsn.into(),
        reason: "a\nb".into(),
        pid: 1,
        file: None,
        warning: None,
        forward_file: None,
    };
    use DeliveryStatus::*;
    assert_eq!(checked(reply(Sent, "2.0.0")).unwrap().reason, "a?b");
    assert!(checked(reply(Bounced, "5.1.1")).is_some());
    assert!(checked(reply(Deferred, "4.300.100")).is_some());
    for (status, dsn) in [
        (Sent, "5.0.0"),
        (Deferred, "4.0"),
        (Bounced, "5.1.1.1"),
        (Sent, "2.x.0"),
        (Sent, ""),
    ] {
        assert!(checked(reply(status, dsn)).is_none(), "{dsn}");
    }
}
