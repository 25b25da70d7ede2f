//! Issue 20: smtpd as a milter client, against milters that are real
//! programs: the test milter on Debian's libmilter (python3-milter,
//! `tests/milter/testmilter.py`) exercises every reply and modification.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use crate::common::*;

/// The test milter, listening on 127.0.0.1:PORT until dropped.
pub struct TestMilter {
    child: Child,
    pub port: u16,
}

impl TestMilter {
    pub fn start() -> TestMilter {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/milter/testmilter.py");
        let mut child = Command::new(crate::dkim::python())
            .arg(script)
            .arg(format!("inet:{port}@127.0.0.1"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3-milter (apt-get install python3-milter; .ci/run does)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the test milter did not start");
        TestMilter { child, port }
    }

    pub fn address(&self) -> String {
        format!("inet:127.0.0.1:{}", self.port)
    }
}

impl Drop for TestMilter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn postern_with(milters: &str, extra: &str) -> Postern {
    Postern::start(&format!("[milters]\n{milters}\n\n{extra}"))
}

fn rcpt(c: &mut Client, to: &str) -> String {
    c.cmd(&format!("RCPT TO:<{to}>"))
}

fn session(p: &Postern) -> Client {
    let mut c = p.client();
    assert!(c.cmd("EHLO client.example").starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    c
}

fn message(subject: &str) -> String {
    format!(
        "From: a@example.org\r\nTo: {}@mail.test.example\r\nSubject: {subject}\r\n\
         X-Remove: goes away\r\n\r\nThe body.\r\n",
        me()
    )
}

/// One message with `subject` to us: the reply to its end.
fn send(p: &Postern, subject: &str) -> String {
    let mut c = session(p);
    assert_eq!(
        rcpt(&mut c, &format!("{}@mail.test.example", me())),
        "250 2.1.5 Ok"
    );
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd(&format!("{}.", message(subject)));
    c.cmd("QUIT");
    r
}

#[test]
fn issue_20_milter_answers_at_rcpt_become_replies_and_log_lines() {
    let m = TestMilter::start();
    let p = postern_with(&format!("smtpd = [\"{}\"]", m.address()), "");
    let mut c = session(&p);
    assert_eq!(
        rcpt(&mut c, "reject@example.net"),
        "550 5.7.1 Command rejected"
    );
    assert_eq!(
        rcpt(&mut c, "tempfail@example.net"),
        "451 4.7.1 Service unavailable - try again later"
    );
    assert_eq!(
        rcpt(&mut c, "replycode@example.net"),
        "550 5.7.1 no such user here"
    );
    assert_eq!(
        rcpt(&mut c, "replycode-multi@example.net"),
        "550-5.7.1 first line\n550-5.7.1 second line\n550 5.7.1 third line"
    );
    let me_rcpt = format!("{}@mail.test.example", me());
    assert_eq!(rcpt(&mut c, &me_rcpt), "250 2.1.5 Ok");
    c.cmd("QUIT");
    let log = p.log();
    assert!(
        log.contains(
            "NOQUEUE: milter-reject: RCPT from localhost[127.0.0.1]: 550 5.7.1 Command rejected; \
             from=<a@example.org> to=<reject@example.net> proto=ESMTP helo=<client.example>"
        ),
        "{log}"
    );
}

#[test]
fn issue_20_milter_modifications_land_in_the_delivered_message() {
    let m = TestMilter::start();
    let p = postern_with(&format!("smtpd = [\"{}\"]", m.address()), "");
    let r = send(
        &p,
        "addheader addheader-folded insheader chgheader delheader replacebody report",
    );
    let id = queue_id(&r);
    let file = &p.wait_delivered(&me(), 1, 20)[0];
    let text = String::from_utf8(std::fs::read(file).unwrap()).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap();
    assert_eq!(body, "replaced body\nin two chunks\n", "{text}");
    let lines: Vec<&str> = head.lines().collect();
    // Our Received stays on top of what the milter sees and inserts at 0.
    let at = lines
        .iter()
        .position(|l| l.starts_with("X-Inserted:"))
        .unwrap();
    assert!(
        lines[..at].iter().any(|l| l.starts_with("Received: from")),
        "{head}"
    );
    assert_eq!(lines[at], "X-Inserted: at the top");
    assert!(lines[at + 1].starts_with("From: a@example.org"), "{head}");
    assert!(head.contains("\nSubject: changed subject\n"), "{head}");
    assert!(!head.contains("\nX-Remove:"), "{head}");
    assert!(head.contains("\nX-Added: added value\n"), "{head}");
    assert!(
        head.contains("\nX-Folded: line one\n\tline two\n"),
        "{head}"
    );
    // What the milter got: the client's fields, the body, the macros.
    let report = head
        .lines()
        .find_map(|l| l.strip_prefix("X-Test-Report: "))
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(report).unwrap();
    let names: Vec<&str> = report["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["From", "To", "Subject", "X-Remove"], "{report}");
    assert_eq!(report["body"], "The body.\r\n");
    assert_eq!(report["mail"][0], "<a@example.org>");
    assert_eq!(report["macros"]["connect:j"], "mail.test.example");
    assert_eq!(
        report["macros"]["connect:{daemon_name}"],
        "mail.test.example"
    );
    assert_eq!(report["macros"]["mail:{mail_addr}"], "a@example.org");
    assert_eq!(report["macros"]["data:i"], id);
    assert_eq!(report["macros"]["eoh:i"], id);
    assert_eq!(report["macros"]["eom:i"], id);
    let log = p.log();
    assert!(
        log.contains(&format!(
            "{id}: milter {}: header X-Added: added value added",
            m.address()
        )),
        "{log}"
    );
}

#[test]
fn issue_20_milter_envelope_changes_and_final_answers() {
    let m = TestMilter::start();
    let p = postern_with(
        &format!("smtpd = [\"{}\"]", m.address()),
        "[relay]\ntransport = { \"example.net\" = \"smtp:[127.0.0.1]:1\" }\n",
    );
    // added@example.net goes to the queue (deferred: nothing listens).
    let r = send(&p, "addrcpt chgfrom");
    let id = queue_id(&r);
    p.wait_delivered(&me(), 1, 20);
    let log = p.log();
    assert!(
        log.contains(&format!(
            "{id}: milter {}: recipient <added@example.net> added",
            m.address()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("{id}: from=<new-sender@example.org>")),
        "{log}"
    );
    p.wait_log("to=<added@example.net>", 1, 20);
    // The end of the message: reject, tempfail, reply codes, discard, hold.
    assert_eq!(send(&p, "reject"), "550 5.7.1 Command rejected");
    assert_eq!(
        send(&p, "tempfail"),
        "451 4.7.1 Service unavailable - try again later"
    );
    assert_eq!(send(&p, "replycode"), "550 5.7.1 message refused");
    assert_eq!(
        send(&p, "replycode-multi"),
        "451-4.7.1 try again\n451 4.7.1 later 100% sure"
    );
    let log = p.log();
    assert!(
        log.contains(": milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 5.7.1 Command rejected; from=<a@example.org>"),
        "{log}"
    );
    let discarded = queue_id(&send(&p, "discard"));
    p.wait_log(
        &format!("{discarded}: milter-discard: END-OF-MESSAGE"),
        1,
        10,
    );
    let held = queue_id(&send(&p, "quarantine"));
    p.wait_log(&format!("{held}: on hold"), 1, 10);
    assert!(p.log().contains(&format!(
        "{held}: milter-hold: END-OF-MESSAGE from localhost[127.0.0.1]: milter triggers HOLD action: held for review"
    )));
    // Only the first message and nothing refused, discarded or held.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(p.delivered(&me()).len(), 1);
}

#[test]
fn issue_20_a_milter_that_is_down_does_what_default_action_says() {
    let refused = refused_port();
    let down = format!("smtpd = [\"inet:127.0.0.1:{}\"]", refused.port);
    // tempfail (the default): the session ends with 421 at once.
    let p = postern_with(&down, "");
    let (_, greeting) = Client::greeted(std::net::TcpStream::connect(p.addr).unwrap());
    assert_eq!(
        greeting,
        "421 mail.test.example Service unavailable - try again later"
    );
    assert!(
        p.log()
            .contains("warning: connect to milter service inet:127.0.0.1:"),
        "{}",
        p.log()
    );
    drop(p);
    // reject: 554 instead of the greeting, then every command refused.
    let p = postern_with(&format!("{down}\ndefault_action = \"reject\""), "");
    let (mut c, greeting) = Client::greeted(std::net::TcpStream::connect(p.addr).unwrap());
    assert_eq!(
        greeting,
        "554 mail.test.example ESMTP not accepting connections"
    );
    assert!(c.cmd("EHLO x").starts_with("503 5.7.0"));
    drop(p);
    // accept: as if there were none.
    let p = postern_with(&format!("{down}\ndefault_action = \"accept\""), "");
    queue_id(&send(&p, "plain"));
    p.wait_delivered(&me(), 1, 20);
    drop(p);
    // quarantine: accepted and held.
    let p = postern_with(&format!("{down}\ndefault_action = \"quarantine\""), "");
    let id = queue_id(&send(&p, "plain"));
    p.wait_log(&format!("{id}: on hold"), 1, 10);
}

#[test]
fn issue_20_policy_test_message_asks_the_milters_too() {
    let m = TestMilter::start();
    // The tracer verifies the message too: a DNS server that answers.
    let dns = crate::outbound::dns::DnsServer::start(crate::outbound::dns::Zone::new());
    let p = postern_with(
        &format!("smtpd = [\"{}\"]", m.address()),
        &dns.config_table(),
    );
    let file = p.dir.path().join("m.eml");
    std::fs::write(&file, message("addheader insheader reject")).unwrap();
    let to = format!("{}@mail.test.example", me());
    let out = p.postern(&[
        "policy",
        "test",
        "--client",
        "127.0.0.1",
        "--helo",
        "client.example",
        "--from",
        "a@example.org",
        "--to",
        &to,
        "--message",
        file.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        format!("milter {}:", m.address()),
        "  CONNECT: continue".to_string(),
        "  RCPT: continue".to_string(),
        "  change: add header X-Added: added value".to_string(),
        "  change: insert header at 0: X-Inserted: at the top".to_string(),
        "  END-OF-MESSAGE: reject (550 5.7.1 Command rejected)".to_string(),
        "  DATA: 550 5.7.1 Command rejected".to_string(),
    ] {
        assert!(text.contains(&line), "{line:?} not in:\n{text}");
    }
    assert_eq!(out.status.code(), Some(1), "{text}");
}

/// Two milters in a row, as Postfix applies them: the second sees what
/// the first changed, and both changes arrive.
#[test]
fn issue_20_several_milters_in_a_row() {
    let (first, second) = (TestMilter::start(), TestMilter::start());
    let p = postern_with(
        &format!(
            "smtpd = [\"{}\", \"{}\"]",
            first.address(),
            second.address()
        ),
        "",
    );
    queue_id(&send(&p, "addheader report"));
    let file = &p.wait_delivered(&me(), 1, 20)[0];
    let text = String::from_utf8(std::fs::read(file).unwrap()).unwrap();
    let (head, _) = text.split_once("\n\n").unwrap();
    let reports: Vec<serde_json::Value> = head
        .lines()
        .filter_map(|l| l.strip_prefix("X-Test-Report: "))
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
    assert_eq!(reports.len(), 2, "{head}");
    assert_eq!(
        head.matches("\nX-Added: added value\n").count(),
        2,
        "{head}"
    );
    // The second milter got the first one's field and report.
    let seen: Vec<(String, String)> = reports[1]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
        .collect();
    assert!(
        seen.contains(&("X-Added".into(), "added value".into())),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(n, _)| n == "X-Test-Report"), "{seen:?}");
    let first_seen = reports[0]["headers"].as_array().unwrap();
    assert!(!first_seen.iter().any(|h| h[0] == "X-Test-Report"));
}
