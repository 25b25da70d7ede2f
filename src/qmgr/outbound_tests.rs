//! The engine with a scripted smtp agent on a Unix socket: routing,
//! grouping per next hop, the per-destination limit, outcomes (Remote-MTA
//! and Diagnostic-Code in the bounce, the remote reply as the deferral
//! reason), the transport table's `error:` and `discard:`, a lost agent
//! connection, the mailboxes a scripted local agent passes on
//! (`local.mailbox_transport`), and a next hop marked dead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use super::agents::{SlotReport, start_slots};
use super::engine::Engine;
use crate::config::Config;
use crate::ipc::{
    self, DeliveryRequest, DeliveryResult, DeliveryStatus, HopStatus, MailboxTransport,
    QueueAction, SmtpRequest, SmtpResult,
};
use crate::queue::log::{LogOptions, LogWriter};
use crate::queue::message::{MessageContent, encode_message};
use crate::queue::record::RecordType;
use crate::queue::{Client, Envelope, IdGenerator, Recipient, SUBDIRS};
use crate::transport::Transport;

const CONTENT: &[u8] = b"Subject: routed\n\nbody\n";

/// What the scripted agent answers for one recipient; `None`: hang up
/// without an answer.
type Script = fn(&str) -> Option<DeliveryResult>;

struct Agent {
    requests: Arc<Mutex<Vec<SmtpRequest>>>,
    most_in_flight: Arc<AtomicUsize>,
}

/// A fake smtp agent on `path`: answers each request after a short
/// pause, per `script`, and notes the requests and how many were in
/// flight at most.
fn agent(path: &std::path::Path, script: Script) -> Agent {
    let listener = UnixListener::bind(path).unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let most = Arc::new(AtomicUsize::new(0));
    let now = Arc::new(AtomicUsize::new(0));
    let (seen, most_c) = (requests.clone(), most.clone());
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let (seen, most, now) = (seen.clone(), most_c.clone(), now.clone());
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                while let Ok(Some(req)) = ipc::read_line::<_, SmtpRequest>(&mut r).await {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    seen.lock().unwrap().push(req.clone());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    let results: Option<Vec<_>> = req
                        .recipients
                        .iter()
                        .map(|rc| {
                            script(&rc.address).map(|mut d| {
                                d.rcpt_index = rc.rcpt_index;
                                d
                            })
                        })
                        .collect();
                    let Some(results) = results else { return };
                    let hop = hop_of(&results);
                    if ipc::write_line(
                        &mut w,
                        &SmtpResult {
                            results,
                            hop,
                            counts: None,
                            started: None,
                        },
                    )
                    .await
                    .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Agent {
        requests,
        most_in_flight: most,
    }
}

/// What the scripted agent says of the next hop: unreachable when every
/// recipient failed to connect (its reason starts `connect to`), reached
/// otherwise.
fn hop_of(results: &[DeliveryResult]) -> Option<HopStatus> {
    Some(match results.first() {
        Some(r) if results.iter().all(|r| r.reason.starts_with("connect to ")) => {
            HopStatus::Unreachable {
                dsn: r.dsn,
                reason: r.reason.clone(),
            }
        }
        _ => HopStatus::Reached,
    })
}

fn result(status: DeliveryStatus, dsn: &str, reason: &str) -> DeliveryResult {
    DeliveryResult {
        rcpt_index: 0,
        status,
        dsn: crate::outcome::Enhanced::parse(dsn).unwrap(),
        reason: reason.into(),
        forward: vec![],
        lists: Vec::new(),
        owner_failures: Vec::new(),
        remote_mta: None,
        diagnostic: None,
        mailbox_transport: None,
        started: None,
    }
}

struct Queue {
    dir: tempfile::TempDir,
    engine: Engine,
    reports: mpsc::UnboundedReceiver<SlotReport>,
    agent: Agent,
}

/// A queue holding one message from `s@example.org` to `rcpts`, an
/// engine over it with 4 smtp slots, and the scripted agent.
async fn queue(rcpts: &[&str], cfg: impl FnOnce(&mut Config), script: Script) -> Queue {
    queue_with_local(rcpts, cfg, script, None).await
}

/// What a scripted local agent answers for a request.
type LocalScript = fn(&DeliveryRequest) -> DeliveryResult;

/// A fake local agent on `path`, answering each request per `script`.
fn local_agent(path: &std::path::Path, script: LocalScript) {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                while let Ok(Some(req)) = ipc::read_line::<_, DeliveryRequest>(&mut r).await {
                    let mut answer = script(&req);
                    answer.rcpt_index = req.rcpt_index;
                    if ipc::write_line(&mut w, &answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// As [`queue`], with a scripted local agent when `local` is given.
async fn queue_with_local(
    rcpts: &[&str],
    cfg: impl FnOnce(&mut Config),
    script: Script,
    local: Option<LocalScript>,
) -> Queue {
    let dir = tempfile::tempdir().unwrap();
    for d in SUBDIRS {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    let mut config = Config::builtin();
    config.queue.directory = dir.path().to_path_buf();
    config.server.hostname = "mail.test.example".into();
    config.local.domains = vec!["mail.test.example".into()];
    cfg(&mut config);
    let config = Arc::new(config);
    let ids = Arc::new(IdGenerator::new('A'));
    let writer = |sub: &str, prefix: &str, ids: Arc<IdGenerator>| {
        LogWriter::start(
            dir.path().join(sub),
            LogOptions {
                seal_after_idle: None,
                ..LogOptions::new(prefix, move || ids.next().to_string())
            },
        )
        .unwrap()
    };
    let smtpd = writer("incoming", "S", ids.clone());
    let env = Envelope {
        id: ids.next(),
        arrival_us: crate::queue::now_micros(),
        sender: "s@example.org".into(),
        recipients: rcpts
            .iter()
            .map(|a| Recipient {
                address: a.to_string(),
                orcpt: Some(format!("rfc822;{a}")),
                notify: None,
                original: None,
            })
            .collect(),
        ret: None,
        envid: Some("env-1".into()),
        body: crate::queue::Body::EightBitMime,
        smtputf8: false,
        client: Client::default(),
        message_id: None,
        size: CONTENT.len() as u64,
        hold: false,
    };
    let payload = encode_message(&env, MessageContent::Inline(CONTENT)).unwrap();
    smtpd.append(RecordType::Message, payload).await.unwrap();
    smtpd.shutdown().await.unwrap();

    let socket = dir.path().join("smtp.sock");
    let agent = agent(&socket, script);
    let (tx, reports) = mpsc::unbounded_channel();
    let local_slots = match local {
        Some(script) => {
            let path = dir.path().join("local.sock");
            local_agent(&path, script);
            start_slots::<DeliveryRequest>(2, path, tx.clone())
        }
        None => Vec::new(),
    };
    let slots = start_slots::<SmtpRequest>(4, socket, tx);
    let mut engine = Engine::new(
        config,
        writer("state", "", Arc::new(IdGenerator::new('Q'))),
        writer("incoming", "B", Arc::new(IdGenerator::new('B'))),
        local_slots,
        slots,
    );
    engine.recover().await.unwrap();
    Queue {
        dir,
        engine,
        reports,
        agent,
    }
}

impl Queue {
    /// Run the engine until nothing is in flight or ready.
    async fn settle(&mut self) {
        for _ in 0..500 {
            self.engine.dispatch();
            let decided = self.engine.take_decided();
            if !decided.is_empty() {
                self.engine.complete(Vec::new(), decided).await;
                continue;
            }
            if !self.engine.busy() {
                return;
            }
            if let Ok(Some(r)) =
                tokio::time::timeout(Duration::from_secs(5), self.reports.recv()).await
            {
                self.engine.complete(vec![r], Vec::new()).await;
            }
        }
        panic!("the engine did not settle");
    }

    /// Everything qmgr queued itself (notifications), as text.
    fn notices(&self) -> String {
        let mut all = String::new();
        for e in std::fs::read_dir(self.dir.path().join("incoming")).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with('B') {
                all += &String::from_utf8_lossy(&std::fs::read(p).unwrap());
            }
        }
        all
    }
}

fn by_address(a: &str) -> Option<DeliveryResult> {
    Some(match a {
        "b@remote.example" => DeliveryResult {
            remote_mta: Some("dns; mx.remote.example".into()),
            diagnostic: Some("smtp; 550 5.1.1 <b@remote.example>: unknown user".into()),
            ..result(
                DeliveryStatus::Bounced,
                "5.1.1",
                "host mx.remote.example[192.0.2.1] said: 550 5.1.1 <b@remote.example>: unknown user (in reply to RCPT TO command)",
            )
        },
        "c@other.example" => result(
            DeliveryStatus::Deferred,
            "4.3.0",
            "host mx.other.example[192.0.2.2] said: 451 4.3.0 try later (in reply to end of DATA command)",
        ),
        _ => result(DeliveryStatus::Sent, "2.0.0", "250 2.0.0 Ok"),
    })
}

#[tokio::test]
async fn recipients_are_grouped_per_next_hop_and_their_outcomes_recorded() {
    let mut q = queue(
        &[
            "a@remote.example",
            "b@remote.example",
            "c@other.example",
            "d@err.example",
            "e@quiet.example",
        ],
        |c| {
            c.relay.transport.insert(
                "err.example".into(),
                Transport::parse("error:5.7.1 no mail for you").unwrap(),
            );
            c.relay
                .transport
                .insert("quiet.example".into(), Transport::Discard(String::new()));
        },
        by_address,
    )
    .await;
    q.settle().await;
    let requests = q.agent.requests.lock().unwrap().clone();
    let first: Vec<_> = requests
        .iter()
        .filter(|r| r.sender == "s@example.org")
        .collect();
    assert_eq!(first.len(), 2, "{requests:#?}");
    let remote = first
        .iter()
        .find(|r| r.nexthop.host == "remote.example")
        .unwrap();
    assert!(remote.nexthop.mx && remote.nexthop.port.is_none());
    let idx: Vec<usize> = remote.recipients.iter().map(|r| r.rcpt_index).collect();
    assert_eq!(idx, [0, 1]);
    assert_eq!(
        remote.recipients[1].orcpt.as_deref(),
        Some("rfc822;b@remote.example")
    );
    assert_eq!(
        (remote.size, remote.body, remote.envid.as_deref()),
        (22, crate::queue::Body::EightBitMime, Some("env-1"))
    );
    let other = first
        .iter()
        .find(|r| r.nexthop.host == "other.example")
        .unwrap();
    assert_eq!(other.recipients[0].address, "c@other.example");

    // The deferred recipient waits with the remote reply as its reason.
    let listing = q.engine.listing();
    let m = listing
        .iter()
        .find(|e| e.sender == "s@example.org")
        .unwrap();
    assert_eq!(m.recipients.len(), 1, "{m:?}");
    assert_eq!(m.recipients[0].address, "c@other.example");
    assert_eq!(
        m.recipients[0].delay_reason.as_deref(),
        Some(
            "host mx.other.example[192.0.2.2] said: 451 4.3.0 try later (in reply to end of DATA command)"
        )
    );

    // The bounces: the remote reply, and the transport table's text.
    let notices = q.notices();
    assert!(
        notices.contains("Remote-MTA: dns; mx.remote.example"),
        "{notices}"
    );
    assert!(
        notices.contains("Diagnostic-Code: smtp; 550 5.1.1 <b@remote.example>: unknown user"),
        "{notices}"
    );
    assert!(notices.contains("Status: 5.7.1"), "{notices}");
    assert!(
        notices.contains("Diagnostic-Code: X-Postern; no mail for you"),
        "{notices}"
    );
    // Neither a (a sent) nor e (discarded) is reported.
    assert!(!notices.contains("Final-Recipient: rfc822; a@remote.example"));
    assert!(!notices.contains("Final-Recipient: rfc822; e@quiet.example"));
}

#[tokio::test]
async fn at_most_the_destination_limits_per_request_and_in_flight() {
    let rcpts: Vec<String> = (0..6).map(|i| format!("u{i}@remote.example")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let mut q = queue(
        &rcpts,
        |c| {
            c.smtp.destination_recipient_limit = 2;
            c.smtp.destination_concurrency_limit = 1;
        },
        |_| Some(result(DeliveryStatus::Sent, "2.0.0", "250 2.0.0 Ok")),
    )
    .await;
    q.settle().await;
    let requests = q.agent.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert!(requests.iter().all(|r| r.recipients.len() == 2));
    assert_eq!(q.agent.most_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(q.engine.status().messages, 0);
}

#[tokio::test]
async fn a_lost_agent_connection_defers_and_keeps_the_recipients() {
    let mut q = queue(&["a@remote.example", "b@remote.example"], |_| {}, |_| None).await;
    q.settle().await;
    let listing = q.engine.listing();
    assert_eq!(listing.len(), 1);
    let reasons: Vec<_> = listing[0]
        .recipients
        .iter()
        .map(|r| r.delay_reason.clone().unwrap_or_default())
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons
            .iter()
            .all(|r| r.starts_with("smtp delivery agent unavailable: lost connection with smtp")),
        "{reasons:?}"
    );
    assert_eq!(q.engine.status().deferred, 2);
}

/// local passes `u@mail.test.example`'s mailbox to Dovecot (and, for
/// `team`, also ran a command), per recipient: `u` and `team` pass,
/// `later` is deferred by local (passing nothing), `gone` is bounced by
/// local with a mailbox passed beside it.
fn local_passes(req: &DeliveryRequest) -> DeliveryResult {
    let local = req.recipient.split('@').next().unwrap_or("");
    let pass = |addresses: &[&str]| {
        Some(MailboxTransport {
            nexthop: crate::transport::Nexthop::parse_lmtp("unix:/run/dovecot/lmtp").unwrap(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
        })
    };
    let mut r = match local {
        "later" => result(
            DeliveryStatus::Deferred,
            "4.3.0",
            "alias database unavailable",
        ),
        "gone" => result(DeliveryStatus::Bounced, "5.1.1", "unknown user: \"ghost\""),
        "team" => result(DeliveryStatus::Sent, "2.0.0", "delivered to command: cat"),
        _ => result(
            DeliveryStatus::Sent,
            "2.0.0",
            "mailbox delivery passed to lmtp:unix:/run/dovecot/lmtp",
        ),
    };
    r.mailbox_transport = match local {
        "u" => pass(&["u@mail.test.example"]),
        "team" => pass(&["u@mail.test.example", "v@mail.test.example"]),
        "later" | "gone" => pass(&["w@mail.test.example"]),
        _ => pass(&["x@mail.test.example"]),
    };
    r
}

/// Dovecot's answers: `v` is over quota (4xx after the data), `x`
/// unknown (550 at RCPT), the others saved.
fn dovecot(a: &str) -> Option<DeliveryResult> {
    Some(match a {
        "v@mail.test.example" => result(
            DeliveryStatus::Deferred,
            "4.2.2",
            "host mail.test.example[/run/dovecot/lmtp] said: 452 4.2.2 Mailbox is full (in reply to end of DATA command)",
        ),
        "x@mail.test.example" => DeliveryResult {
            remote_mta: Some("dns; mail.test.example".into()),
            diagnostic: Some("smtp; 550 5.1.1 <x@mail.test.example> User doesn't exist".into()),
            ..result(
                DeliveryStatus::Bounced,
                "5.1.1",
                "host mail.test.example[/run/dovecot/lmtp] said: 550 5.1.1 <x@mail.test.example> User doesn't exist (in reply to RCPT TO command)",
            )
        },
        _ => result(
            DeliveryStatus::Sent,
            "2.0.0",
            "250 2.0.0 <u@mail.test.example> Saved",
        ),
    })
}

#[tokio::test]
async fn issue_21_passed_mailboxes_go_over_lmtp_and_their_answer_is_the_outcome() {
    let mut q = queue_with_local(
        &[
            "u@mail.test.example",
            "team@mail.test.example",
            "later@mail.test.example",
            "gone@mail.test.example",
            "x@mail.test.example",
        ],
        |_| {},
        dovecot,
        Some(local_passes),
    )
    .await;
    q.settle().await;
    let requests: Vec<SmtpRequest> = (q.agent.requests.lock().unwrap().iter())
        .filter(|r| r.sender == "s@example.org")
        .cloned()
        .collect();
    // One LMTP request per passing local result; none for `later`.
    let mut seen: Vec<(usize, Vec<String>)> = requests
        .iter()
        .map(|r| {
            assert!(r.nexthop.lmtp, "{r:?}");
            assert_eq!(
                r.nexthop.unix.as_deref(),
                Some(std::path::Path::new("/run/dovecot/lmtp"))
            );
            let first = r.recipients[0].rcpt_index;
            assert!(r.recipients.iter().all(|x| x.rcpt_index == first));
            let addresses = r.recipients.iter().map(|x| x.address.clone()).collect();
            (first, addresses)
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (0, vec!["u@mail.test.example".to_string()]),
            (
                1,
                vec![
                    "u@mail.test.example".to_string(),
                    "v@mail.test.example".to_string()
                ]
            ),
            (3, vec!["w@mail.test.example".to_string()]),
            (4, vec!["x@mail.test.example".to_string()]),
        ]
    );
    // The queued address rides along as orig_to and ORCPT.
    let team = requests
        .iter()
        .find(|r| r.recipients[0].rcpt_index == 1)
        .unwrap();
    assert_eq!(
        team.recipients[0].original.as_deref(),
        Some("team@mail.test.example")
    );
    assert_eq!(
        team.recipients[0].orcpt.as_deref(),
        Some("rfc822;team@mail.test.example")
    );
    let u = requests
        .iter()
        .find(|r| r.recipients[0].rcpt_index == 0)
        .unwrap();
    assert_eq!(u.recipients[0].original, None);

    // Waiting: team (Dovecot's 4xx for v) and later (local's own).
    let listing = q.engine.listing();
    assert_eq!(listing.len(), 1, "{listing:?}");
    let waiting: Vec<(String, String)> = listing[0]
        .recipients
        .iter()
        .map(|r| {
            (
                r.address.clone(),
                r.delay_reason.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        waiting,
        [
            (
                "team@mail.test.example".to_string(),
                "host mail.test.example[/run/dovecot/lmtp] said: 452 4.2.2 Mailbox is full (in reply to end of DATA command)".to_string()
            ),
            (
                "later@mail.test.example".to_string(),
                "alias database unavailable".to_string()
            ),
        ]
    );
    // Bounced: gone (local's own bounce, though its mailbox was saved)
    // and x (Dovecot's 550, with its Remote-MTA and Diagnostic-Code); u
    // is delivered.
    let notices = q.notices();
    assert!(
        notices.contains("Final-Recipient: rfc822; gone@mail.test.example"),
        "{notices}"
    );
    assert!(notices.contains("unknown user: \"ghost\""), "{notices}");
    assert!(
        notices.contains("Final-Recipient: rfc822; x@mail.test.example"),
        "{notices}"
    );
    assert!(
        notices.contains("Remote-MTA: dns; mail.test.example"),
        "{notices}"
    );
    assert!(
        notices
            .contains("Diagnostic-Code: smtp; 550 5.1.1 <x@mail.test.example> User doesn't exist"),
        "{notices}"
    );
    assert!(!notices.contains("Final-Recipient: rfc822; u@mail.test.example"));
    assert!(!notices.contains("Final-Recipient: rfc822; team@mail.test.example"));
    let status = q.engine.status();
    assert_eq!((status.active, status.deferred), (0, 2), "{status:?}");
}

#[tokio::test]
async fn issue_21_a_lost_lmtp_delivery_defers_the_passing_recipient() {
    let mut q = queue_with_local(
        &["u@mail.test.example"],
        |_| {},
        |_| None,
        Some(local_passes),
    )
    .await;
    q.settle().await;
    let listing = q.engine.listing();
    assert_eq!(listing.len(), 1);
    let reason = listing[0].recipients[0].delay_reason.clone();
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.starts_with("smtp delivery agent unavailable: ")),
        "{reason:?}"
    );
    assert_eq!(q.engine.status().deferred, 1);
}

/// A crash after local passed the mailbox on and before the LMTP answer
/// is recorded: nothing was recorded, so the recovered queue has the
/// recipient waiting again (it is passed on anew: at least once).
#[tokio::test]
async fn issue_21_a_crash_before_the_lmtp_answer_keeps_the_recipient() {
    let mut q = queue_with_local(
        &["u@mail.test.example"],
        |_| {},
        dovecot,
        Some(local_passes),
    )
    .await;
    q.engine.dispatch();
    let report = tokio::time::timeout(Duration::from_secs(5), q.reports.recv())
        .await
        .unwrap()
        .unwrap();
    // local's answer: the mailbox waits for the smtp agent, the
    // recipient active, nothing recorded.
    q.engine.complete(vec![report], Vec::new()).await;
    assert_eq!(q.engine.status().active, 1);

    // The crash: a new engine over the same queue.
    let mut config = Config::builtin();
    config.queue.directory = q.dir.path().to_path_buf();
    config.server.hostname = "mail.test.example".into();
    let writer = |sub: &str, prefix: &str, tag: char| {
        let ids = IdGenerator::new(tag);
        LogWriter::start(
            q.dir.path().join(sub),
            LogOptions {
                seal_after_idle: None,
                ..LogOptions::new(prefix, move || ids.next().to_string())
            },
        )
        .unwrap()
    };
    let mut again = Engine::new(
        Arc::new(config),
        writer("state", "", 'R'),
        writer("incoming", "B", 'C'),
        Vec::new(),
        Vec::new(),
    );
    again.recover().await.unwrap();
    let listing = again.listing();
    assert_eq!(listing.len(), 1, "{listing:?}");
    assert_eq!(listing[0].recipients.len(), 1);
    assert_eq!(listing[0].recipients[0].address, "u@mail.test.example");
}

/// Whether the scripted destination of the dead-hop test refuses.
static REFUSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
const REFUSED: &str = "connect to mx.remote.example[192.0.2.1]:25: Connection refused";

fn refusing_or_not(_: &str) -> Option<DeliveryResult> {
    Some(if REFUSING.load(Ordering::SeqCst) {
        result(DeliveryStatus::Deferred, "4.4.1", REFUSED)
    } else {
        result(DeliveryStatus::Sent, "2.0.0", "250 2.0.0 Ok")
    })
}

/// The delay reasons of the message's waiting recipients, sorted.
fn reasons(q: &Queue) -> Vec<String> {
    let mut r: Vec<String> = q.engine.listing()[0]
        .recipients
        .iter()
        .map(|r| r.delay_reason.clone().unwrap_or_default())
        .collect();
    r.sort();
    r
}

/// Issue 22: one delivery that gets no session marks the next hop dead;
/// what waits for it and what comes due meanwhile is deferred without a
/// request; flush clears the mark (a few requests, not one per
/// recipient); the retry time does too; a session marks it alive.
#[tokio::test]
async fn a_dead_next_hop_defers_without_requests_until_flush_or_retry() {
    let suspended = format!("delivery temporarily suspended: {REFUSED}");
    let rcpts: Vec<String> = (0..12).map(|i| format!("u{i}@remote.example")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let mut q = queue(
        &rcpts,
        |c| {
            c.smtp.destination_recipient_limit = 1;
            c.smtp.destination_concurrency_limit = 2;
            c.queue.minimal_backoff = Duration::from_secs(1);
            c.queue.maximal_backoff = Duration::from_secs(1);
        },
        refusing_or_not,
    )
    .await;
    let requests = |q: &Queue| q.agent.requests.lock().unwrap().len();
    q.settle().await;
    // The two in flight failed; the ten parked behind them never went.
    assert_eq!(requests(&q), 2);
    let mut want = vec![REFUSED.to_string(); 2];
    want.extend(vec![suspended.clone(); 10]);
    want.sort();
    assert_eq!(reasons(&q), want);
    assert_eq!(q.engine.status().deferred, 12);
    assert!(
        q.engine
            .exposition()
            .contains("\npostern_dead_destinations 1\n")
    );

    // Due again while dead (postern queue requeue ID): deferred at once.
    let id = q.engine.live_ids()[0].to_string();
    q.engine.queue_op(QueueAction::Requeue, &[id]).await;
    q.settle().await;
    assert_eq!(requests(&q), 2);
    assert_eq!(reasons(&q), vec![suspended.clone(); 12]);

    // postern flush: the hop is tried again, by two requests, and is dead
    // again after them.
    q.engine
        .queue_op(QueueAction::Requeue, &["ALL".to_string()])
        .await;
    q.settle().await;
    assert_eq!(requests(&q), 4);
    assert_eq!(q.engine.status().deferred, 12);

    // The retry time: the mark goes with the back-off; the destination
    // answers now, and everything is delivered.
    REFUSING.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    q.settle().await;
    assert_eq!(q.engine.status().messages, 0);
    assert_eq!(requests(&q), 16);
    assert!(
        q.engine
            .exposition()
            .contains("\npostern_dead_destinations 0\n")
    );
}
