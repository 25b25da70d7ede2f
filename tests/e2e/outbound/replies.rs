//! What postern does with the receiving server's answers: 4xx defers and
//! the retry delivers once; a 5xx for one of two recipients bounces that
//! one only, with the remote reply in the DSN; silence times out and
//! defers, losing nothing.

use std::time::Duration;

use super::dns::{DnsServer, Zone};
use super::sink::{Script, Sink, same_port};
use super::*;

/// A postern whose transport table sends example.test to `sink`.
fn postern_to(sink: &Sink, extra: &str) -> Postern {
    Postern::start(&format!(
        "[relay]\ntransport = {{ \"example.test\" = \"smtp:[127.0.0.1]:{}\" }}\n\n{extra}",
        sink.port()
    ))
}

#[test]
fn temporary_failure_is_deferred_then_the_retry_delivers_once() {
    let sink = Sink::start("127.0.0.1", Script::temp_fail_until_released());
    let p = postern_to(&sink, "");
    let u = p.user.clone();
    let sender = format!("{u}@localhost");
    let id = submit(&p, &sender, &["rcpt@example.test"], MESSAGE);
    let relay = format!("127.0.0.1[127.0.0.1]:{}", sink.port());
    let reason = "host 127.0.0.1[127.0.0.1] said: 451 4.3.0 <rcpt@example.test>: Temporary failure, try again later (in reply to RCPT TO command)";

    // The first attempt: deferred, the remote reply recorded.
    p.wait_log(&format!("{id}: to=<rcpt@example.test>, "), 1, 20);
    let st = status(&p, &id, "rcpt@example.test");
    assert_eq!(st.relay, relay);
    assert_eq!(st.dsn, "4.3.0");
    assert_eq!(st.status, "deferred");
    assert_eq!(st.text, reason);
    assert!(sink.seen().temp_failures >= 1);
    // mailq shows the reason in parentheses above the recipient.
    let q = mailq(&p);
    let entry = mailq_entry(&q, &id);
    let lines: Vec<&str> = entry.lines().collect();
    assert_eq!(lines.len(), 3, "{q}");
    assert!(lines[0].ends_with(&format!(" {sender}")), "{q}");
    assert_eq!(lines[1].trim_start(), format!("({reason})"), "{q}");
    assert_eq!(lines[2], format!("{:47}rcpt@example.test", ""), "{q}");
    assert_eq!(
        delay_reason(&p, &id, "rcpt@example.test").as_deref(),
        Some(reason)
    );
    assert!(sink.seen().messages.is_empty());

    // The server recovers; the retry (1-2 s back-off) delivers.
    sink.release();
    let msgs = sink.wait_messages(1, 20, || p.log());
    p.wait_log(&format!("{id}: removed"), 1, 20);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sink.seen().messages.len(), 1, "delivered exactly once");
    let m = &msgs[0];
    assert_eq!(m.sender, sender);
    assert_eq!(m.recipients, vec!["rcpt@example.test"]);
    assert_eq!(
        String::from_utf8_lossy(after_received(&m.data)),
        String::from_utf8_lossy(MESSAGE)
    );
    let st = status(&p, &id, "rcpt@example.test");
    assert_eq!(st.relay, relay);
    assert_eq!(st.dsn, "2.0.0");
    assert_eq!(st.status, "sent");
    assert_eq!(st.text, "250 2.0.0 Ok: queued as S1");
    assert_eq!(mailq(&p), "Mail queue is empty\n");
    // A deferral is not a failure: the sender got no notice.
    assert!(p.delivered(&u).is_empty(), "{:?}", p.delivered(&u));
}

#[test]
fn one_of_two_recipients_refused_one_delivered_one_bounced() {
    let mut ls = same_port(&["127.0.0.10"]);
    let sink = Sink::on(
        ls.pop().unwrap(),
        Script::reject_rcpt("bad@example.test").named("mx1.example.test"),
    );
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.test", 10, "mx1.example.test")
            .a("mx1.example.test", "127.0.0.10"),
    );
    let p = Postern::start(&format!(
        "[smtp]\nport = {}\n\n{}\n",
        sink.port(),
        dns.config_table()
    ));
    let u = p.user.clone();
    let sender = format!("{u}@localhost");
    let id = submit(
        &p,
        &sender,
        &["good@example.test", "bad@example.test"],
        MESSAGE,
    );
    let relay = format!("mx1.example.test[127.0.0.10]:{}", sink.port());
    let reply = "550 5.1.1 <bad@example.test>: Recipient address rejected: User unknown";

    // The good one arrives once, with only itself in the envelope.
    let msgs = sink.wait_messages(1, 20, || p.log());
    assert_eq!(msgs[0].recipients, vec!["good@example.test"]);
    assert_eq!(msgs[0].sender, sender);
    assert_eq!(after_received(&msgs[0].data), MESSAGE);
    p.wait_log(&format!("{id}: sender non-delivery notification: "), 1, 20);
    p.wait_log(&format!("{id}: removed"), 1, 20);
    let good = status(&p, &id, "good@example.test");
    assert_eq!(
        (good.relay.as_str(), good.dsn.as_str(), good.status.as_str()),
        (relay.as_str(), "2.0.0", "sent")
    );
    assert_eq!(good.text, "250 2.0.0 Ok: queued as S1");
    let bad = status(&p, &id, "bad@example.test");
    assert_eq!(
        (bad.relay.as_str(), bad.dsn.as_str(), bad.status.as_str()),
        (relay.as_str(), "5.1.1", "bounced")
    );
    assert_eq!(
        bad.text,
        format!("host mx1.example.test[127.0.0.10] said: {reply} (in reply to RCPT TO command)")
    );

    // The sender's DSN names the refused recipient only, with the reply.
    let files = p.wait_delivered(&u, 1, 20);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(p.delivered(&u).len(), 1, "one notice");
    assert_eq!(sink.seen().messages.len(), 1, "delivered exactly once");
    let dsn = read_dsn(&files[0]);
    assert!(
        dsn.raw
            .contains("Subject: Undelivered Mail Returned to Sender"),
        "{}",
        dsn.raw
    );
    for field in [
        "Final-Recipient: rfc822; bad@example.test\n",
        "Action: failed\n",
        "Status: 5.1.1\n",
        "Remote-MTA: dns; mx1.example.test\n",
        &format!("Diagnostic-Code: smtp; {reply}\n"),
        &format!("X-Postern-Queue-ID: {id}\n"),
    ] {
        assert!(
            dsn.status.contains(field),
            "no {field:?} in:\n{}",
            dsn.status
        );
    }
    assert!(
        !dsn.status.contains("good@example.test"),
        "the delivered recipient is not reported:\n{}",
        dsn.status
    );
    assert!(
        dsn.text.contains(&format!(
            "<bad@example.test>: host mx1.example.test[127.0.0.10] said: {reply} (in reply to RCPT TO command)"
        )),
        "{}",
        dsn.text
    );
}

#[test]
fn a_server_that_never_answers_times_out_and_the_mail_stays_queued() {
    let sink = Sink::start("127.0.0.1", Script::silent());
    let p = postern_to(
        &sink,
        "[smtp]\nconnect_timeout = \"2s\"\nhelo_timeout = \"2s\"\nmail_timeout = \"2s\"\nrcpt_timeout = \"2s\"\ndata_init_timeout = \"2s\"\ndata_xfer_timeout = \"2s\"\ndata_done_timeout = \"2s\"\n",
    );
    let u = p.user.clone();
    let id = submit(
        &p,
        &format!("{u}@localhost"),
        &["rcpt@example.test"],
        MESSAGE,
    );
    // Two attempts, both time out waiting for the greeting.
    p.wait_log(&format!("{id}: to=<rcpt@example.test>, "), 2, 30);
    let st = status(&p, &id, "rcpt@example.test");
    assert_eq!(st.relay, format!("127.0.0.1[127.0.0.1]:{}", sink.port()));
    assert_eq!(st.dsn, "4.4.2");
    assert_eq!(st.status, "deferred");
    assert!(st.text.contains("timed out"), "{}", st.text);
    assert!(st.text.contains("127.0.0.1[127.0.0.1]"), "{}", st.text);
    let seen = sink.seen();
    assert!(seen.connections >= 2, "{seen:?}");
    assert!(seen.commands.is_empty(), "postern waits for the greeting");
    // Nothing lost: still queued, the reason shown; no bounce.
    let reason = delay_reason(&p, &id, "rcpt@example.test").expect("still queued");
    assert!(reason.contains("timed out"), "{reason}");
    let q = mailq(&p);
    let entry = mailq_entry(&q, &id);
    assert!(entry.contains(&format!("({reason})")), "{q}");
    assert!(
        entry.ends_with(&format!("{:47}rcpt@example.test\n", "")),
        "{q}"
    );
    assert!(!p.log().contains(&format!("{id}: removed")), "{}", p.log());
    assert!(!p.log().contains("status=bounced"), "{}", p.log());
    assert!(p.delivered(&u).is_empty());
}
