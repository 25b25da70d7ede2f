//! The milter client against a real libmilter milter (issue 20):
//! `tests/milter/testmilter.py` on Debian's python3-milter, which answers
//! and modifies as the envelope and the Subject: field tell it (see its
//! documentation), and reports what it received in an `X-Test-Report`
//! field. Then a milter that is not there and one that never answers.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use postern::milter::client::{Client, Error};
use postern::milter::protocol::ProtocolFlags;
use postern::milter::{Address, Answer, Modification, Timeouts};
use serde_json::Value;

/// A running testmilter.py; killed when dropped.
struct TestMilter {
    child: Child,
    address: Address,
    _dir: tempfile::TempDir,
}

impl Drop for TestMilter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> &'static str {
    for p in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(p)
            .args(["-c", "import Milter"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return p;
        }
    }
    panic!("pymilter is not installed (apt-get install python3-milter; .ci/run does)");
}

impl TestMilter {
    /// Start the milter on a Unix socket, or on TCP with `tcp`.
    fn start(tcp: bool, flags: &[&str]) -> TestMilter {
        let dir = tempfile::tempdir().unwrap();
        let (spec, address) = if tcp {
            let port = free_port();
            (
                format!("inet:{port}@127.0.0.1"),
                Address::Inet(SocketAddr::from(([127, 0, 0, 1], port))),
            )
        } else {
            let path = dir.path().join("milter.sock");
            (format!("unix:{}", path.display()), Address::Unix(path))
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/milter/testmilter.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(&spec)
            .args(flags)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "testmilter.py did not start");
        TestMilter {
            child,
            address,
            _dir: dir,
        }
    }

    async fn open(&self) -> Client {
        Client::open(&self.address, timeouts()).await.unwrap()
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        command: Duration::from_secs(5),
        content: Duration::from_secs(1),
    }
}

fn macros(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

const CLIENT: &str = "192.0.2.1";

fn ip() -> IpAddr {
    CLIENT.parse().unwrap()
}

/// A connected client with a transaction open for `rcpts`.
async fn transaction(milter: &TestMilter, rcpts: &[&str]) -> Client {
    let mut client = milter.open().await;
    let connect = macros(&[
        ("j", "mx.example"),
        ("{daemon_name}", "postern"),
        ("{client_addr}", CLIENT),
    ]);
    let answer = client
        .connect(&connect, Some("client.example"), ip(), 40000)
        .await;
    assert_eq!(answer.unwrap(), Answer::Continue);
    let helo = client.helo(&[], "client.example").await.unwrap();
    assert_eq!(helo, Answer::Continue);
    let mail_macros = macros(&[
        ("i", "4ABCDE"),
        ("{mail_addr}", "a@example.org"),
        ("{auth_authen}", "alice"),
    ]);
    let mail = client
        .mail(&mail_macros, &["<a@example.org>", "BODY=8BITMIME"])
        .await;
    assert_eq!(mail.unwrap(), Answer::Continue);
    for rcpt in rcpts {
        let rcpt_macros = macros(&[("i", "4ABCDE"), ("{rcpt_addr}", rcpt)]);
        let answer = client.rcpt(&rcpt_macros, &[format!("<{rcpt}>")]).await;
        assert_eq!(answer.unwrap(), Answer::Continue);
    }
    client
}

/// Send `stored` after DATA; the end of the message.
async fn message(client: &mut Client, stored: &str) -> postern::milter::EndOfMessage {
    assert_eq!(
        client.data(&macros(&[("i", "4ABCDE")])).await.unwrap(),
        Answer::Continue
    );
    let i = macros(&[("i", "4ABCDE")]);
    client.message(&i, &i, stored.as_bytes()).await.unwrap()
}

/// The X-Test-Report field among the modifications, parsed.
fn report(modifications: &[Modification]) -> Value {
    let value = modifications.iter().find_map(|m| match m {
        Modification::AddHeader { name, value } if name == "X-Test-Report" => Some(value),
        _ => None,
    });
    serde_json::from_str(value.expect("no X-Test-Report field")).unwrap()
}

const STORED: &str = "Subject: SUBJECT\n\
X-Folded: one\n two\n\tthree\n\
X-Remove: this one goes\n\
X-Tab:\tvalue\n\
\n\
body line 1\n\
.dot line\n\
\n\
last line\n";

#[tokio::test]
async fn a_whole_session_with_every_modification() {
    let milter = TestMilter::start(false, &[]);
    let mut client = transaction(&milter, &["b@example.net", "c@example.net"]).await;
    let negotiated = client.negotiated().clone();
    assert_eq!(negotiated.version, 6);
    assert!(negotiated.protocol.contains(ProtocolFlags::SKIP));
    assert!(!negotiated.leading_space());

    let words = "report addheader addheader-folded insheader chgheader delheader \
                 replacebody addrcpt addrcpt_par delrcpt chgfrom quarantine";
    let eom = message(&mut client, &STORED.replace("SUBJECT", words)).await;
    assert_eq!(eom.answer, Answer::Continue);
    let got = report(&eom.modifications);
    let others: Vec<_> = eom
        .modifications
        .iter()
        .filter(|m| !matches!(m, Modification::AddHeader { name, .. } if name == "X-Test-Report"))
        .cloned()
        .collect();
    let s = |t: &str| t.to_string();
    assert_eq!(
        others,
        vec![
            Modification::AddHeader {
                name: s("X-Added"),
                value: s(" added value")
            },
            Modification::AddHeader {
                name: s("X-Folded"),
                value: s(" line one\n\tline two")
            },
            Modification::InsertHeader {
                index: 0,
                name: s("X-Inserted"),
                value: s(" at the top")
            },
            Modification::ChangeHeader {
                index: 1,
                name: s("Subject"),
                value: s(" changed subject")
            },
            Modification::ChangeHeader {
                index: 1,
                name: s("X-Remove"),
                value: s("")
            },
            Modification::ReplaceBody(b"replaced body\r\nin two chunks\r\n".to_vec()),
            Modification::AddRcpt {
                rcpt: s("<added@example.net>"),
                args: None
            },
            Modification::AddRcpt {
                rcpt: s("<added-par@example.net>"),
                args: Some(s("NOTIFY=NEVER"))
            },
            Modification::DelRcpt(s("<b@example.net>")),
            Modification::ChangeFrom {
                sender: s("<new-sender@example.org>"),
                args: Some(s("SIZE=1000"))
            },
            Modification::Quarantine(s("held for review")),
        ]
    );

    // What the milter got: folded values joined by LF, the one space
    // after the colon gone (a tab stays), the body with CRLF.
    assert_eq!(
        got["headers"],
        serde_json::json!([
            ["Subject", words],
            ["X-Folded", "one\n two\n\tthree"],
            ["X-Remove", "this one goes"],
            ["X-Tab", "\tvalue"],
        ])
    );
    assert_eq!(got["body"], "body line 1\r\n.dot line\r\n\r\nlast line\r\n");
    assert_eq!(
        got["connection"],
        serde_json::json!({
            "hostname": "client.example",
            "hostaddr": [CLIENT, 40000],
            "helo": "client.example",
        })
    );
    assert_eq!(
        got["mail"],
        serde_json::json!(["<a@example.org>", "BODY=8BITMIME"])
    );
    assert_eq!(
        got["rcpts"],
        serde_json::json!([["<b@example.net>"], ["<c@example.net>"]])
    );
    assert_eq!(
        got["macros"],
        serde_json::json!({
            "connect:j": "mx.example",
            "connect:{daemon_name}": "postern",
            "connect:{client_addr}": CLIENT,
            "mail:i": "4ABCDE",
            "mail:{mail_addr}": "a@example.org",
            "mail:{auth_authen}": "alice",
            "rcpt:i": "4ABCDE",
            "rcpt:{rcpt_addr}": "c@example.net",
            "data:i": "4ABCDE",
            "eoh:i": "4ABCDE",
            "eom:i": "4ABCDE",
        })
    );
    client.abort().await.unwrap();

    // The same connection, another transaction: recipients' answers.
    let rcpt = |local: &str| vec![format!("<{local}@example.net>")];
    client.mail(&[], &["<a@example.org>"]).await.unwrap();
    for (local, answer) in [
        ("reject", Answer::Reject),
        ("tempfail", Answer::TempFail),
        (
            "replycode",
            Answer::ReplyCode(s("550 5.7.1 no such user here")),
        ),
        (
            "replycode-multi",
            Answer::ReplyCode(s(
                "550-5.7.1 first line\r\n550-5.7.1 second line\r\n550 5.7.1 third line",
            )),
        ),
        ("ok", Answer::Continue),
        ("accept", Answer::Accept),
        // The milter is done with this message: not sent.
        ("reject", Answer::Continue),
    ] {
        assert_eq!(
            client.rcpt(&[], &rcpt(local)).await.unwrap(),
            answer,
            "{local}"
        );
    }
    let eom = message(&mut client, "Subject: reject\n\nx\n").await;
    assert_eq!(eom.answer, Answer::Continue);
    client.abort().await.unwrap();

    client.mail(&[], &["<a@example.org>"]).await.unwrap();
    assert_eq!(
        client.rcpt(&[], &rcpt("discard")).await.unwrap(),
        Answer::Discard
    );
    client.abort().await.unwrap();

    // Unknown commands.
    assert_eq!(
        client.unknown(&[], "REJECTME please").await.unwrap(),
        Answer::Reject
    );
    assert_eq!(
        client.unknown(&[], "XYZZY").await.unwrap(),
        Answer::Continue
    );

    // Each final answer at the end of the message.
    for (subject, answer) in [
        ("reject", Answer::Reject),
        ("tempfail", Answer::TempFail),
        ("discard", Answer::Discard),
        ("accept", Answer::Accept),
        ("continue", Answer::Continue),
        (
            "replycode",
            Answer::ReplyCode(s("550 5.7.1 message refused")),
        ),
        (
            "replycode-multi",
            Answer::ReplyCode(s("451-4.7.1 try again\r\n451 4.7.1 later 100% sure")),
        ),
        // Four progress replies 0.4 s apart, the content timeout 1 s.
        ("progress accept", Answer::Accept),
    ] {
        client.mail(&[], &["<a@example.org>"]).await.unwrap();
        client.rcpt(&[], &rcpt("b")).await.unwrap();
        let eom = message(&mut client, &format!("Subject: {subject}\n\nbody\n")).await;
        assert_eq!(eom.answer, answer, "{subject}");
        client.abort().await.unwrap();
    }

    // SKIP: one body chunk of three is enough for the milter.
    client.mail(&[], &["<a@example.org>"]).await.unwrap();
    client.rcpt(&[], &rcpt("b")).await.unwrap();
    let body = "z".repeat(98) + "\n";
    let stored = format!("Subject: skip report\n\n{}", body.repeat(1500));
    let eom = message(&mut client, &stored).await;
    let got = report(&eom.modifications);
    assert_eq!(got["chunks"], 1);
    assert_eq!(got["body_length"], 65535);
    client.abort().await.unwrap();
    client.quit().await.unwrap();
}

#[tokio::test]
async fn connection_level_answers() {
    let milter = TestMilter::start(false, &[]);
    for (host, answer) in [
        ("reject.example", Answer::Reject),
        ("tempfail.example", Answer::TempFail),
    ] {
        let mut client = milter.open().await;
        let got = client.connect(&[], Some(host), ip(), 1).await.unwrap();
        assert_eq!(got, answer);
        // Sticky, without the milter.
        assert_eq!(client.helo(&[], "h").await.unwrap(), answer);
        assert_eq!(client.mail(&[], &["<a@b>"]).await.unwrap(), answer);
        client.quit().await.unwrap();
    }

    let mut client = milter.open().await;
    let got = client.connect(&[], Some("accept.example"), ip(), 1).await;
    assert_eq!(got.unwrap(), Answer::Accept);
    assert_eq!(
        client.mail(&[], &["<a@b>"]).await.unwrap(),
        Answer::Continue
    );
    let eom = client
        .message(&[], &[], b"Subject: reject\n")
        .await
        .unwrap();
    assert_eq!(eom.answer, Answer::Continue);
    client.quit().await.unwrap();

    let mut client = milter.open().await;
    client.connect(&[], None, ip(), 1).await.unwrap();
    let reply = Answer::ReplyCode("554 5.7.1 no HELO like that".into());
    assert_eq!(client.helo(&[], "reject-helo").await.unwrap(), reply);
    assert_eq!(client.helo(&[], "fine").await.unwrap(), reply);
    client.quit().await.unwrap();

    // A name-less client is [address] to the milter.
    let mut client = milter.open().await;
    client.connect(&[], None, ip(), 1).await.unwrap();
    client.mail(&[], &["<a@b>"]).await.unwrap();
    client.rcpt(&[], &["<b@c>"]).await.unwrap();
    let eom = message(&mut client, "Subject: report\n\nx\n").await;
    assert_eq!(
        report(&eom.modifications)["connection"]["hostname"],
        "[192.0.2.1]"
    );
    client.quit().await.unwrap();
}

#[tokio::test]
async fn tcp_and_leading_space() {
    let milter = TestMilter::start(true, &["--leadspc"]);
    let mut client = transaction(&milter, &["b@example.net"]).await;
    assert!(client.negotiated().leading_space());
    let eom = message(&mut client, &STORED.replace("SUBJECT", "report addheader")).await;
    assert_eq!(
        report(&eom.modifications)["headers"],
        serde_json::json!([
            ["Subject", " report addheader"],
            ["X-Folded", " one\n two\n\tthree"],
            ["X-Remove", " this one goes"],
            ["X-Tab", "\tvalue"],
        ])
    );
    // The value as the milter gave it: no space added.
    assert!(eom.modifications.contains(&Modification::AddHeader {
        name: "X-Added".into(),
        value: "added value".into(),
    }));
    client.quit().await.unwrap();
}

#[tokio::test]
async fn skipped_stages_and_macro_lists() {
    let milter = TestMilter::start(false, &["--quiet"]);
    let mut client = transaction(&milter, &["b@example.net"]).await;
    let negotiated = client.negotiated().clone();
    for flag in [
        ProtocolFlags::NO_CONNECT,
        ProtocolFlags::NR_HELO,
        ProtocolFlags::NR_HEADER,
        ProtocolFlags::NR_EOH,
    ] {
        assert!(
            negotiated.protocol.contains(flag),
            "{flag:?} in {:?}",
            negotiated.protocol
        );
    }
    assert_eq!(
        negotiated.macros[2],
        Some(vec!["i".to_string(), "{mail_addr}".to_string()])
    );
    let eom = message(&mut client, &STORED.replace("SUBJECT", "report accept")).await;
    assert_eq!(eom.answer, Answer::Accept);
    let report = report(&eom.modifications);
    // No CONNECT: the milter saw no connection, but its macros went.
    assert_eq!(report["connection"]["helo"], "client.example");
    assert!(report["connection"].get("hostname").is_none());
    let mail_macros: Vec<_> = report["macros"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("mail:"))
        .cloned()
        .collect();
    assert_eq!(mail_macros, vec!["mail:i", "mail:{mail_addr}"]);
    assert_eq!(
        report["headers"][1],
        serde_json::json!(["X-Folded", "one\n two\n\tthree"])
    );
    client.quit().await.unwrap();
}

#[tokio::test]
async fn a_milter_slower_than_the_content_timeout() {
    let milter = TestMilter::start(false, &[]);
    let mut client = Client::open(
        &milter.address,
        Timeouts {
            content: Duration::from_millis(200),
            ..timeouts()
        },
    )
    .await
    .unwrap();
    client.connect(&[], None, ip(), 1).await.unwrap();
    client.mail(&[], &["<a@b>"]).await.unwrap();
    client.rcpt(&[], &["<b@c>"]).await.unwrap();
    client.data(&[]).await.unwrap();
    let error = client
        .message(&[], &[], b"Subject: progress\n\nx\n")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "milter {}: can't read SMFIC_EOB reply packet header: timed out after 0.2s",
            milter.address
        )
    );
    assert!(matches!(
        client.rcpt(&[], &["<b@c>"]).await,
        Err(Error::AfterError { .. })
    ));
}

#[tokio::test]
async fn a_milter_that_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.sock");
    let error = Client::open(&Address::Unix(path.clone()), timeouts())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }));
    assert_eq!(
        error.to_string(),
        format!(
            "connect to milter service unix:{}: No such file or directory",
            path.display()
        )
    );

    let port = free_port();
    let address = Address::Inet(SocketAddr::from(([127, 0, 0, 1], port)));
    let error = Client::open(&address, timeouts()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("connect to milter service inet:127.0.0.1:{port}: Connection refused")
    );
}

#[tokio::test]
async fn a_milter_that_never_answers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = Address::Inet(listener.local_addr().unwrap());
    // Accepts, reads, never writes.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    // The negotiation waits the connect timeout (Postfix's manual).
    let quick = Timeouts {
        connect: Duration::from_millis(200),
        command: Duration::from_secs(10),
        content: Duration::from_secs(10),
    };
    let started = std::time::Instant::now();
    let error = Client::open(&address, quick).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        error.to_string(),
        format!(
            "milter {address}: can't read SMFIC_OPTNEG reply packet header: timed out after 0.2s"
        )
    );
}
