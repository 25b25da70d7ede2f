//! LMTP mode (RFC 2033): LHLO, one reply per accepted recipient after the
//! data, over TCP and a Unix-domain socket.

use super::server::{Script, start, start_unix};
use super::*;
use crate::ipc::DeliveryStatus::{Bounced, Deferred, Sent};

fn lmtp_script() -> Script {
    Script {
        greeting: Some("220 dovecot.test Dovecot ready.".into()),
        ehlo: Some(vec![
            "PIPELINING".into(),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
        ]),
        lmtp: true,
        ..Script::default()
    }
}

/// Mixed outcomes: RCPT 550 and 452, then per recipient after the data
/// 250, 452 and 552.
fn mixed() -> Script {
    Script {
        rcpt: vec![
            (
                "nobody@".into(),
                "550 5.1.1 <nobody@v.test> User doesn't exist: nobody@v.test".into(),
            ),
            (
                "later@".into(),
                "451 4.3.0 <later@v.test> Temporary internal error".into(),
            ),
        ],
        lmtp_dot: vec![
            (
                "full@".into(),
                "552 5.2.2 <full@v.test> Quota exceeded (mailbox for user is full)".into(),
            ),
            (
                "busy@".into(),
                "452 4.2.2 <busy@v.test> Mailbox is locked, try later".into(),
            ),
            ("bob@".into(), "250 2.0.0 <bob@v.test> Xy1 Saved".into()),
        ],
        dot: "250 2.0.0 <x> Saved".into(),
        ..lmtp_script()
    }
}

const RCPTS: &[&str] = &[
    "bob@v.test",
    "nobody@v.test",
    "full@v.test",
    "later@v.test",
    "busy@v.test",
    "carol@v.test",
];

fn check_mixed(results: &[DeliveryResult]) {
    let got: Vec<_> = results
        .iter()
        .map(|r| (r.status, r.dsn.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(got[0], (Sent, "2.0.0", "250 2.0.0 <bob@v.test> Xy1 Saved"));
    assert_eq!(got[1].0, Bounced);
    assert_eq!(got[1].1, "5.1.1");
    assert!(
        got[1].2.contains("(in reply to RCPT TO command)"),
        "{}",
        got[1].2
    );
    assert_eq!(got[2].0, Bounced);
    assert_eq!(got[2].1, "5.2.2");
    assert!(
        got[2].2.contains(
            "Quota exceeded (mailbox for user is full) (in reply to end of DATA command)"
        ),
        "{}",
        got[2].2
    );
    assert_eq!((got[3].0, got[3].1), (Deferred, "4.3.0"));
    assert_eq!((got[4].0, got[4].1), (Deferred, "4.2.2"));
    assert!(
        got[4].2.contains("(in reply to end of DATA command)"),
        "{}",
        got[4].2
    );
    assert_eq!(got[5], (Sent, "2.0.0", "250 2.0.0 <x> Saved"));
}

#[tokio::test]
async fn each_accepted_recipient_gets_its_own_reply_after_the_data() {
    let server = start(mixed()).await;
    let s = setup(|_| {});
    let mut r = request(s.queue.path(), server.addr.port(), RCPTS, MESSAGE);
    r.nexthop = Nexthop::parse_lmtp(&format!("inet:127.0.0.1:{}", server.addr.port())).unwrap();
    let results = deliver(&s, &r).await;
    check_mixed(&results);
    let commands = server.commands();
    assert_eq!(commands[0], "LHLO client.test");
    assert!(
        !commands
            .iter()
            .any(|c| c.starts_with("EHLO") || c.starts_with("HELO"))
    );
    // One transaction: the data went once, for the four accepted.
    assert_eq!(server.messages().len(), 1);
    assert_eq!(commands.iter().filter(|c| c.starts_with("RCPT")).count(), 6);
}

#[tokio::test]
async fn lmtp_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lmtp");
    let record = start_unix(mixed(), &path).await;
    let s = setup(|_| {});
    let mut r = request(s.queue.path(), 9, RCPTS, MESSAGE);
    r.nexthop = Nexthop::parse_lmtp(&format!("unix:{}", path.display())).unwrap();
    let results = deliver(&s, &r).await;
    check_mixed(&results);
    assert_eq!(record.commands.lock().unwrap()[0], "LHLO client.test");
    // Postfix's shape: relay=myhostname[/path], remote MTA this host.
    assert_eq!(results[0].remote_mta.as_deref(), Some("dns; client.test"));
    assert!(
        results[2]
            .reason
            .starts_with(&format!("host client.test[{}] said: 552", path.display())),
        "{}",
        results[2].reason
    );
}

#[tokio::test]
async fn a_missing_socket_defers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone");
    let s = setup(|_| {});
    let mut r = request(s.queue.path(), 9, &["bob@v.test"], MESSAGE);
    r.nexthop = Nexthop::parse_lmtp(&format!("unix:{}", path.display())).unwrap();
    let results = deliver(&s, &r).await;
    assert_eq!(
        (results[0].status, results[0].dsn.as_str()),
        (Deferred, "4.4.1")
    );
    assert_eq!(
        results[0].reason,
        format!(
            "connect to client.test[{}]: No such file or directory",
            path.display()
        )
    );
}

#[tokio::test]
async fn a_server_that_stops_between_replies_defers_only_the_rest() {
    // Dovecot answers bob, then the connection is lost: carol is
    // undecided, so deferred; bob stays delivered.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lmtp");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (stream, _) = listener.accept().await.unwrap();
        let mut io = BufReader::new(stream);
        io.get_mut().write_all(b"220 lmtp.test\r\n").await.unwrap();
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if io.read_line(&mut line).await.unwrap() == 0 {
                return;
            }
            let answer = if in_data {
                if line != ".\r\n" {
                    continue;
                }
                // One reply of two, then close.
                io.get_mut()
                    .write_all(b"250 2.0.0 <bob@v.test> Saved\r\n")
                    .await
                    .unwrap();
                return;
            } else if line.starts_with("LHLO") {
                "250-lmtp.test\r\n250 8BITMIME\r\n"
            } else if line.starts_with("DATA") {
                in_data = true;
                "354 OK\r\n"
            } else {
                "250 2.1.0 OK\r\n"
            };
            io.get_mut().write_all(answer.as_bytes()).await.unwrap();
        }
    });
    let s = setup(|_| {});
    let mut r = request(s.queue.path(), 9, &["bob@v.test", "carol@v.test"], MESSAGE);
    r.nexthop = Nexthop::parse_lmtp(&format!("unix:{}", path.display())).unwrap();
    let results = deliver(&s, &r).await;
    assert_eq!(results[0].status, Sent);
    assert_eq!(
        (results[1].status, results[1].dsn.as_str()),
        (Deferred, "4.4.2")
    );
    assert!(
        results[1]
            .reason
            .starts_with("lost connection with client.test["),
        "{}",
        results[1].reason
    );
}

#[tokio::test]
async fn a_refused_lhlo_is_not_retried_as_helo() {
    let script = Script {
        ehlo: None,
        ..lmtp_script()
    };
    let server = start(script).await;
    let s = setup(|_| {});
    let mut r = request(s.queue.path(), server.addr.port(), &["bob@v.test"], MESSAGE);
    r.nexthop = Nexthop::parse_lmtp(&format!("[127.0.0.1]:{}", server.addr.port())).unwrap();
    let results = deliver(&s, &r).await;
    assert_eq!(results[0].status, Bounced);
    assert!(
        results[0].reason.contains("refused to talk to me"),
        "{}",
        results[0].reason
    );
    assert_eq!(
        server.commands(),
        ["LHLO client.test", "QUIT"][..server.commands().len()]
    );
}
