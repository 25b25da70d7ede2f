//! Delivery status notifications as the sender receives them: read back
//! with a standard MIME parser (mail-parser).

use std::time::Duration;

use crate::common::*;

#[test]
fn failure_is_reported_to_the_sender_as_multipart_report() {
    let p = Postern::start("");
    let u = p.user.clone();
    let id = send(
        &p,
        &format!("{u}@localhost"),
        &[&format!("{u}@localhost")],
        &format!(
            "Delivered-To: {u}@localhost\r\nSubject: loops\r\nMessage-ID: <orig@example.org>\r\n\r\nbody"
        ),
    );
    p.wait_log(&format!("{id}: sender non-delivery notification: "), 1, 20);
    let files = p.wait_delivered(&u, 1, 20);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.starts_with("Return-Path: <>\n"), "{text}");
    assert!(
        text.contains("Subject: Undelivered Mail Returned to Sender"),
        "{text}"
    );
    assert!(
        text.contains("From: Mail Delivery System <MAILER-DAEMON@mail.test.example>"),
        "{text}"
    );
    assert!(text.contains("In-Reply-To: <orig@example.org>"), "{text}");
    let ds = delivery_status(&files[0]);
    assert!(
        ds.contains(&format!("Final-Recipient: rfc822; {u}@localhost")),
        "{ds}"
    );
    assert!(ds.contains("Action: failed"), "{ds}");
    assert!(ds.contains("Status: 5.4.6"), "{ds}");
    assert!(ds.contains(&format!("X-Postern-Queue-ID: {id}")), "{ds}");
    assert!(
        ds.contains("Diagnostic-Code: X-Postern; mail forwarding loop for"),
        "{ds}"
    );
    // Exactly one notice.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(p.delivered(&u).len(), 1);
}

#[test]
fn notify_never_and_success() {
    let p = Postern::start("");
    let u = p.user.clone();
    let loop_data = format!("Delivered-To: {u}@localhost\r\nSubject: x\r\n\r\nx");
    let never = Mail {
        from: &format!("{u}@localhost"),
        to: &[&format!("{u}@localhost")],
        rcpt_params: " NOTIFY=NEVER",
        ..MAIL
    }
    .queued(&p, &loop_data);
    p.wait_log(&format!("{never}: removed"), 1, 20);
    // A success report when asked for.
    let ok = Mail {
        from: &format!("{u}@localhost"),
        to: &[&format!("{u}@localhost")],
        rcpt_params: " NOTIFY=SUCCESS",
        ..MAIL
    }
    .queued(&p, "Subject: fine\r\n\r\nx");
    p.wait_log(
        &format!("{ok}: sender delivery status notification: "),
        1,
        20,
    );
    p.wait_delivered(&u, 2, 20);
    std::thread::sleep(Duration::from_millis(300));
    let files: Vec<_> = p.delivered(&u);
    assert_eq!(
        files.len(),
        2,
        "the message and its success report, no failure report"
    );
    let report = files
        .iter()
        .find(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("Successful Mail Delivery Report")
        })
        .expect("a success report");
    let ds = delivery_status(report);
    assert!(ds.contains("Action: delivered"), "{ds}");
    assert!(ds.contains("Status: 2.0.0"), "{ds}");
    assert!(
        !p.log()
            .contains(&format!("{never}: sender non-delivery notification"))
    );
}

/// Mail from the null sender is never bounced to it: its failure goes to
/// postmaster from double-bounce, and a failure of that is dropped. No
/// storm.
#[test]
fn null_sender_failure_goes_to_postmaster_and_never_loops() {
    let p = Postern::start("");
    let u = p.user.clone();
    let id = send(
        &p,
        "",
        &[&format!("{u}@localhost")],
        &format!("Delivered-To: {u}@localhost\r\nSubject: bounce of a bounce\r\n\r\nx"),
    );
    p.wait_log(
        &format!("{id}: postmaster non-delivery notification: "),
        1,
        20,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let log = p.log();
    assert!(
        !log.contains(&format!("{id}: sender non-delivery notification")),
        "{log}"
    );
    // However the postmaster notice fares, nothing is reported about it to
    // anyone but at most once more, and then it stops.
    let notices = log.matches("notification: ").count();
    assert!(notices <= 2, "{log}");
}

/// One delay warning, and only one, once a message has waited
/// `queue.delay_warning_time`.
#[test]
fn delay_warning_once() {
    let p = Postern::start(
        "[queue]\ndirectory = \"{dir}/queue\"\nminimal_backoff = \"1s\"\nmaximal_backoff = \"1s\"\nrun_delay = \"1s\"\ndelay_warning_time = \"1s\"\n",
    );
    let u = p.user.clone();
    let id = send(
        &p,
        &format!("{u}@localhost"),
        &["far@remote.example"],
        "Subject: slow\r\n\r\nx",
    );
    p.wait_log(&format!("{id}: sender delay notification: "), 1, 20);
    let files = p.wait_delivered(&u, 1, 20);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("Subject: Delayed Mail (still being retried)"),
        "{text}"
    );
    let ds = delivery_status(&files[0]);
    assert!(ds.contains("Action: delayed"), "{ds}");
    assert!(ds.contains("Will-Retry-Until: "), "{ds}");
    // More deferrals, no second warning.
    p.wait_log(&format!("{id}: to=<far@remote.example>"), 4, 20);
    assert_eq!(
        p.log()
            .matches(&format!("{id}: sender delay notification"))
            .count(),
        1
    );
}
