//! Tests of the report builder: the exact Postfix shape for one case, and
//! every other case read back with an independent MIME parser
//! (mail-parser).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders};
use proptest::prelude::*;

use super::*;

const ORIGINAL: &[u8] = b"From: Alice <alice@example.org>\n\
Subject: hello\n\
Message-ID: <1234@example.org>\n\
\n\
Hi Bob,\n\
how are you?\n";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn failed(rcpt: &str, reason: &str) -> RecipientReport {
    RecipientReport {
        final_recipient: rcpt.into(),
        orcpt: None,
        original_address: None,
        action: Action::Failed,
        status: crate::outcome::code::BAD_MAILBOX,
        remote_mta: None,
        diagnostic: None,
        reason: reason.into(),
    }
}

fn input<'a>(
    kind: ReportKind,
    recipients: &'a [RecipientReport],
    original: &'a [u8],
) -> ReportInput<'a> {
    ReportInput {
        kind,
        reporting_mta: "mx.example.net",
        queue_id: "4B3F2A1C9D",
        new_queue_id: "5C4E3B2D0E",
        sender: "alice@example.org",
        envid: None,
        arrival: at(1_709_632_800),
        now: at(1_709_640_000),
        recipients,
        original,
        ret: None,
        size_limit: DEFAULT_SIZE_LIMIT,
        smtputf8: false,
        delay_warning_time: Duration::from_secs(4 * 3600),
        maximal_queue_lifetime: Duration::from_secs(5 * 86400),
    }
}

/// The top-level message and its three parts, each checked to be present.
fn parse(dsn: &[u8]) -> Message<'_> {
    let msg = MessageParser::default().parse(dsn).expect("parses");
    let ct = msg.content_type().expect("content type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    assert_eq!(
        msg.root_part().sub_parts().map(<[_]>::len),
        Some(3),
        "three parts"
    );
    msg
}

fn part<'m>(msg: &'m Message<'_>, n: usize) -> &'m MessagePart<'m> {
    let id = msg.root_part().sub_parts().expect("multipart")[n];
    &msg.parts[id as usize]
}

fn content_type(p: &MessagePart) -> String {
    let ct = p.content_type().expect("content type");
    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
}

/// The delivery-status body as field blocks: per-message fields first, then
/// one block per recipient; folded lines unfolded.
fn status_blocks(p: &MessagePart) -> Vec<Vec<(String, String)>> {
    let body = String::from_utf8_lossy(p.contents()).into_owned();
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut fields: Vec<(String, String)> = Vec::new();
            for line in block.lines() {
                if line.starts_with([' ', '\t']) {
                    let last = fields.last_mut().expect("continuation after a field");
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                } else {
                    let (name, value) = line.split_once(':').expect("field");
                    fields.push((name.to_string(), value.trim().to_string()));
                }
            }
            fields
        })
        .collect()
}

fn field<'b>(block: &'b [(String, String)], name: &str) -> Option<&'b str> {
    block
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn string(dsn: &[u8]) -> &str {
    std::str::from_utf8(dsn).expect("utf-8")
}

#[test]
fn failure_report_is_postfix_shaped_byte_for_byte() {
    let rcpts = [RecipientReport {
        remote_mta: Some("dns; mx.example.com".into()),
        diagnostic: Some("smtp; 550 5.1.1 <bob@example.com>: user unknown".into()),
        ..failed(
            "bob@example.com",
            "host mx.example.com[192.0.2.1] said: 550 5.1.1 <bob@example.com>: user unknown (in reply to RCPT TO command)",
        )
    }];
    let dsn = build_report(&input(ReportKind::Failure, &rcpts, ORIGINAL));
    let expected = "\
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
Subject: Undelivered Mail Returned to Sender
To: alice@example.org
References: <1234@example.org>
In-Reply-To: <1234@example.org>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary=\"5C4E3B2D0E.1709640000/mx.example.net\"
Content-Transfer-Encoding: 7bit
Date: Tue, 05 Mar 2024 12:00:00 +0000 (UTC)
Message-Id: <20240305120000.5C4E3B2D0E@mx.example.net>

This is a MIME-encapsulated message.

--5C4E3B2D0E.1709640000/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to <postmaster>

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<bob@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1
    <bob@example.com>: user unknown (in reply to RCPT TO command)

--5C4E3B2D0E.1709640000/mx.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postern-Queue-ID: 4B3F2A1C9D
X-Postern-Sender: rfc822; alice@example.org
Arrival-Date: Tue, 05 Mar 2024 10:00:00 +0000 (UTC)

Final-Recipient: rfc822; bob@example.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: user unknown

--5C4E3B2D0E.1709640000/mx.example.net
Content-Description: Undelivered Message
Content-Type: message/rfc822

Return-Path: <alice@example.org>
From: Alice <alice@example.org>
Subject: hello
Message-ID: <1234@example.org>

Hi Bob,
how are you?

--5C4E3B2D0E.1709640000/mx.example.net--
";
    assert_eq!(string(&dsn), expected);
}

#[test]
fn failure_report_parses_with_fields_for_each_recipient() {
    let rcpts = [
        RecipientReport {
            orcpt: Some("rfc822;Bob@Example.com".into()),
            remote_mta: Some("dns; mx.example.com".into()),
            diagnostic: Some("smtp; 550 5.1.1 no such user".into()),
            ..failed(
                "bob@example.com",
                "host mx.example.com said: 550 5.1.1 no such user",
            )
        },
        RecipientReport {
            status: crate::outcome::code::PERM,
            original_address: Some("team@example.net".into()),
            action: Action::Delayed, // overridden: a failure report says failed
            ..failed("carol@example.net", "unknown user: \"carol\"")
        },
    ];
    let mut inp = input(ReportKind::Failure, &rcpts, ORIGINAL);
    inp.envid = Some("QQ314159");
    let dsn = build_report(&inp);
    let msg = parse(&dsn);
    assert_eq!(msg.subject(), Some("Undelivered Mail Returned to Sender"));
    assert_eq!(
        msg.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );

    let text = part(&msg, 0);
    assert_eq!(content_type(text), "text/plain");
    assert_eq!(text.content_description(), Some("Notification"));
    let body = text.text_contents().unwrap();
    assert!(body.starts_with("This is the mail system at host mx.example.net.\n"));
    assert!(
        body.contains("\n<bob@example.com>: host mx.example.com said: 550 5.1.1 no such user\n")
    );
    assert!(body.contains(
        "\n<carol@example.net> (expanded from <team@example.net>): unknown user: \"carol\"\n"
    ));

    let report = part(&msg, 1);
    assert_eq!(content_type(report), "message/delivery-status");
    assert_eq!(report.content_description(), Some("Delivery report"));
    let blocks = status_blocks(report);
    assert_eq!(blocks.len(), 3);
    assert_eq!(
        field(&blocks[0], "Reporting-MTA"),
        Some("dns; mx.example.net")
    );
    assert_eq!(field(&blocks[0], "Original-Envelope-Id"), Some("QQ314159"));
    assert_eq!(field(&blocks[0], "X-Postern-Queue-ID"), Some("4B3F2A1C9D"));
    assert_eq!(
        field(&blocks[0], "Arrival-Date"),
        Some("Tue, 05 Mar 2024 10:00:00 +0000 (UTC)")
    );
    let bob = &blocks[1];
    assert_eq!(
        field(bob, "Final-Recipient"),
        Some("rfc822; bob@example.com")
    );
    assert_eq!(
        field(bob, "Original-Recipient"),
        Some("rfc822;Bob@Example.com")
    );
    assert_eq!(field(bob, "Action"), Some("failed"));
    assert_eq!(field(bob, "Status"), Some("5.1.1"));
    assert_eq!(field(bob, "Remote-MTA"), Some("dns; mx.example.com"));
    assert_eq!(
        field(bob, "Diagnostic-Code"),
        Some("smtp; 550 5.1.1 no such user")
    );
    assert_eq!(field(bob, "Will-Retry-Until"), None);
    let carol = &blocks[2];
    assert_eq!(
        field(carol, "Final-Recipient"),
        Some("rfc822; carol@example.net")
    );
    assert_eq!(
        field(carol, "Original-Recipient"),
        Some("rfc822; team@example.net")
    );
    assert_eq!(field(carol, "Action"), Some("failed"));
    assert_eq!(field(carol, "Status"), Some("5.0.0"));
    assert_eq!(field(carol, "Remote-MTA"), None);
    assert_eq!(
        field(carol, "Diagnostic-Code"),
        Some("X-Postern; unknown user: \"carol\"")
    );

    let returned = part(&msg, 2);
    assert_eq!(content_type(returned), "message/rfc822");
    assert_eq!(returned.content_description(), Some("Undelivered Message"));
    let inner = returned.message().expect("nested message");
    assert_eq!(inner.subject(), Some("hello"));
    assert_eq!(inner.return_address(), Some("alice@example.org"));
    assert!(inner.body_text(0).unwrap().contains("how are you?"));
}

#[test]
fn ret_hdrs_returns_headers_only() {
    let rcpts = [failed("bob@example.com", "no")];
    let mut inp = input(ReportKind::Failure, &rcpts, ORIGINAL);
    inp.ret = Some(Ret::Hdrs);
    let dsn = build_report(&inp);
    let msg = parse(&dsn);
    let returned = part(&msg, 2);
    assert_eq!(content_type(returned), "text/rfc822-headers");
    assert_eq!(
        returned.content_description(),
        Some("Undelivered Message Headers")
    );
    let headers = returned.text_contents().unwrap();
    assert!(headers.contains("Subject: hello"));
    assert!(!headers.contains("how are you"));
    assert!(!string(&dsn).contains("how are you"));
}

#[test]
fn size_limit_returns_headers_only() {
    let mut big = ORIGINAL.to_vec();
    big.extend(std::iter::repeat_n(b'x', 200));
    let rcpts = [failed("bob@example.com", "no")];
    let mut inp = input(ReportKind::Failure, &rcpts, &big);
    inp.size_limit = 100;
    let msg_bytes = build_report(&inp);
    assert_eq!(
        content_type(part(&parse(&msg_bytes), 2)),
        "text/rfc822-headers"
    );

    inp.size_limit = big.len(); // at the limit: still the full message
    let msg_bytes = build_report(&inp);
    assert_eq!(content_type(part(&parse(&msg_bytes), 2)), "message/rfc822");

    inp.size_limit = 0; // no limit
    inp.original = &big;
    let msg_bytes = build_report(&inp);
    assert_eq!(content_type(part(&parse(&msg_bytes), 2)), "message/rfc822");
}

#[test]
fn delay_warning_has_retry_until_and_headers_only() {
    let rcpts = [RecipientReport {
        action: Action::Delayed,
        status: crate::outcome::code::NO_ANSWER,
        ..failed(
            "bob@example.com",
            "connect to mx.example.com[192.0.2.1]:25: Connection refused",
        )
    }];
    let dsn = build_report(&input(ReportKind::Delay, &rcpts, ORIGINAL));
    let msg = parse(&dsn);
    assert_eq!(msg.subject(), Some("Delayed Mail (still being retried)"));
    let body = part(&msg, 0).text_contents().unwrap();
    assert!(
        body.contains("# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n")
    );
    assert!(body.contains("\nYour message could not be delivered for more than 4 hour(s).\n"));
    assert!(body.contains("\nIt will be retried until it is 5 day(s) old.\n"));
    let blocks = status_blocks(part(&msg, 1));
    assert_eq!(field(&blocks[1], "Action"), Some("delayed"));
    assert_eq!(field(&blocks[1], "Status"), Some("4.4.1"));
    // Arrival (10:00 on the 5th) plus five days.
    assert_eq!(
        field(&blocks[1], "Will-Retry-Until"),
        Some("Sun, 10 Mar 2024 10:00:00 +0000 (UTC)")
    );
    let returned = part(&msg, 2);
    assert_eq!(content_type(returned), "text/rfc822-headers");
    assert_eq!(
        returned.content_description(),
        Some("Undelivered Message Headers")
    );
}

#[test]
fn success_report_returns_the_full_message() {
    let rcpts = [RecipientReport {
        action: Action::Delivered,
        status: crate::outcome::code::OK,
        ..failed("bob@example.com", "delivered to maildir")
    }];
    let dsn = build_report(&input(ReportKind::Success, &rcpts, ORIGINAL));
    let msg = parse(&dsn);
    assert_eq!(msg.subject(), Some("Successful Mail Delivery Report"));
    let body = part(&msg, 0).text_contents().unwrap();
    assert!(body.contains("Your message was successfully delivered to the destination(s)\n"));
    assert!(body.contains("\n<bob@example.com>: delivered to maildir\n"));
    let blocks = status_blocks(part(&msg, 1));
    assert_eq!(field(&blocks[1], "Action"), Some("delivered"));
    assert_eq!(
        field(&blocks[1], "Diagnostic-Code"),
        Some("X-Postern; delivered to maildir")
    );
    let returned = part(&msg, 2);
    assert_eq!(content_type(returned), "message/rfc822");
    // Postfix: "Undelivered " only for failures and delays.
    assert_eq!(returned.content_description(), Some("Message"));
}

#[test]
fn long_reasons_wrap_at_79_columns() {
    let reason = "host mx.example.com[192.0.2.1] said: 550-5.7.1 This message was rejected \
                  because it looked like spam to the receiving system; please consult the \
                  documentation at https://example.com/postmaster/rejections for details \
                  (in reply to end of DATA command)";
    let rcpts = [RecipientReport {
        diagnostic: Some(format!("smtp; {}", &reason[37..])),
        ..failed("bob@example.com", reason)
    }];
    let dsn = build_report(&input(ReportKind::Failure, &rcpts, ORIGINAL));
    let s = string(&dsn);
    let entry_start = s.find("<bob@example.com>: host").unwrap();
    let entry: Vec<&str> = s[entry_start..]
        .lines()
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(entry.len() >= 3, "{entry:?}");
    assert!(entry.iter().all(|l| l.len() <= 79));
    assert!(entry[1..].iter().all(|l| l.starts_with("    ")));
    let diag_start = s.find("Diagnostic-Code: smtp;").unwrap();
    let diag: Vec<&str> = s[diag_start..]
        .lines()
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(diag.len() >= 2 && diag.iter().all(|l| l.len() <= 79));
    assert!(diag[1..].iter().all(|l| l.starts_with("    ")));
    // And the parser unfolds it back to the whole diagnostic.
    let msg = parse(&dsn);
    let blocks = status_blocks(part(&msg, 1));
    assert_eq!(
        field(&blocks[1], "Diagnostic-Code").unwrap(),
        format!("smtp; {}", &reason[37..])
    );
}

#[test]
fn eight_bit_original_is_declared_8bit_and_texts_are_masked() {
    let original = "From: Jörg <joerg@example.org>\nSubject: Grüße\n\nSchöne Grüße!\n".as_bytes();
    let rcpts = [failed("bob@example.com", "550 nein: Empfänger unbekannt")];
    let dsn = build_report(&input(ReportKind::Failure, &rcpts, original));
    let s = string(&dsn);
    assert!(
        s.contains("\nContent-Transfer-Encoding: 8bit\nDate:"),
        "top level is 8bit"
    );
    assert!(s.contains("Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n"));
    // Not SMTPUTF8: the report texts stay ASCII.
    assert!(s.contains("Content-Type: text/plain; charset=us-ascii\n\n"));
    assert!(s.contains("<bob@example.com>: 550 nein: Empf?nger unbekannt\n"));
    let msg = parse(&dsn);
    let inner = part(&msg, 2).message().expect("nested message");
    assert!(inner.body_text(0).unwrap().contains("Schöne Grüße!"));
}

#[test]
fn smtputf8_report_uses_global_types_and_utf8_addresses() {
    let original = "From: Jörg <jörg@exämple.org>\nSubject: Grüße\n\nHallo\n".as_bytes();
    let rcpts = [failed("björn@exämple.com", "unknown user: \"björn\"")];
    let mut inp = input(ReportKind::Failure, &rcpts, original);
    inp.smtputf8 = true;
    inp.sender = "jörg@exämple.org";
    let dsn = build_report(&inp);
    let msg = parse(&dsn);
    let text = part(&msg, 0);
    assert_eq!(
        text.content_type().unwrap().attribute("charset"),
        Some("utf-8")
    );
    assert!(
        text.text_contents()
            .unwrap()
            .contains("<björn@exämple.com>: unknown user: \"björn\"")
    );
    let report = part(&msg, 1);
    assert_eq!(content_type(report), "message/global-delivery-status");
    let blocks = status_blocks(report);
    assert_eq!(
        field(&blocks[0], "X-Postern-Sender"),
        Some("utf-8; jörg@exämple.org")
    );
    assert_eq!(
        field(&blocks[1], "Final-Recipient"),
        Some("utf-8; björn@exämple.com")
    );
    let returned = part(&msg, 2);
    assert_eq!(content_type(returned), "message/global");
    assert!(
        string(&dsn).contains("Content-Type: message/global\nContent-Transfer-Encoding: 8bit\n")
    );

    inp.ret = Some(Ret::Hdrs);
    let dsn = build_report(&inp);
    assert!(string(&dsn).contains("Content-Type: message/global-headers\n"));
}

#[test]
fn message_id_threading_only_when_well_formed() {
    let rcpts = [failed("bob@example.com", "no")];
    let dsn = build_report(&input(ReportKind::Failure, &rcpts, ORIGINAL));
    let msg = parse(&dsn);
    assert_eq!(msg.in_reply_to().as_text(), Some("1234@example.org"));
    assert_eq!(msg.references().as_text(), Some("1234@example.org"));
    assert_eq!(
        msg.message_id(),
        Some("20240305120000.5C4E3B2D0E@mx.example.net")
    );

    for original in [
        &b"Subject: x\n\nbody\n"[..],
        b"Message-ID: 1234@example.org\n\nb\n",
    ] {
        let dsn = build_report(&input(ReportKind::Failure, &rcpts, original));
        let s = string(&dsn);
        assert!(!s.contains("References:") && !s.contains("In-Reply-To:"));
    }
    // A Message-ID in the body does not count.
    let dsn = build_report(&input(
        ReportKind::Failure,
        &rcpts,
        b"Subject: x\n\nMessage-ID: <a@b>\n",
    ));
    assert!(!string(&dsn).contains("In-Reply-To:"));
}

#[test]
fn outside_text_cannot_inject_lines() {
    let rcpts = [RecipientReport {
        diagnostic: Some("smtp; 550 no\r\nBcc: victim@example.com".into()),
        remote_mta: Some("dns; evil\nX-Injected: 1".into()),
        ..failed("bob@example.com\nX-Evil: 1", "no\n\nX-Evil: 2")
    }];
    let mut inp = input(ReportKind::Failure, &rcpts, ORIGINAL);
    inp.envid = Some("id\nX-Evil: 3");
    inp.sender = "alice@example.org\nBcc: x@example.com";
    let dsn = build_report(&inp);
    let s = string(&dsn);
    for bad in ["\nBcc:", "\nX-Evil:", "\nX-Injected:"] {
        assert!(!s.contains(bad), "{bad:?} injected");
    }
    assert!(s.contains("Diagnostic-Code: smtp; 550 no??Bcc: victim@example.com\n"));
    parse(&dsn);
}

#[test]
fn boundary_avoids_content_that_contains_it() {
    let rcpts = [failed("bob@example.com", "no")];
    let original = b"Subject: x\n\n--5C4E3B2D0E.1709640000/mx.example.net--\ntrailer\n";
    let dsn = build_report(&input(ReportKind::Failure, &rcpts, original));
    let s = string(&dsn);
    assert!(s.contains("boundary=\"5C4E3B2D0E.1709640000/mx.example.net.1\""));
    let msg = parse(&dsn);
    let inner = part(&msg, 2).message().expect("nested");
    assert!(inner.body_text(0).unwrap().contains("trailer"));
}

#[test]
fn original_without_final_newline_or_empty() {
    let rcpts = [failed("bob@example.com", "no")];
    let dsn = build_report(&input(
        ReportKind::Failure,
        &rcpts,
        b"Subject: x\n\nno newline",
    ));
    assert!(string(&dsn).ends_with("\nno newline\n\n--5C4E3B2D0E.1709640000/mx.example.net--\n"));
    parse(&dsn);
    let dsn = build_report(&input(ReportKind::Failure, &rcpts, b""));
    parse(&dsn);
}

#[test]
fn should_report_follows_rfc_3461() {
    use ReportKind::*;
    let table: &[(Option<&str>, [bool; 3])] = &[
        // NOTIFY            Failure Delay Success
        (None, [true, true, false]),
        (Some(""), [true, true, false]),
        (Some("NEVER"), [false, false, false]),
        (Some("never"), [false, false, false]),
        (Some("FAILURE"), [true, false, false]),
        (Some("DELAY"), [false, true, false]),
        (Some("SUCCESS"), [false, false, true]),
        (Some("SUCCESS,FAILURE"), [true, false, true]),
        (Some("success, delay"), [false, true, true]),
        (Some("FAILURE,DELAY,SUCCESS"), [true, true, true]),
        (Some("NEVER,SUCCESS"), [false, false, false]),
        (Some("BOGUS"), [false, false, false]),
    ];
    for (notify, want) in table {
        for (kind, want) in [Failure, Delay, Success].into_iter().zip(want) {
            assert_eq!(should_report(kind, *notify), *want, "{kind:?} {notify:?}");
        }
    }
}

#[test]
fn without_success_keeps_the_rest() {
    assert_eq!(
        without_success("SUCCESS,FAILURE").as_deref(),
        Some("FAILURE")
    );
    assert_eq!(
        without_success(" success , delay").as_deref(),
        Some("delay")
    );
    assert_eq!(without_success("NEVER").as_deref(), Some("NEVER"));
    assert_eq!(without_success("SUCCESS"), None);
}

#[test]
fn header_section_is_reexported() {
    let blank = ORIGINAL.windows(2).position(|w| w == b"\n\n").unwrap();
    assert_eq!(header_section(ORIGINAL), &ORIGINAL[..=blank]);
}

fn any_address() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.+-]{1,20}@[a-z0-9.-]{1,20}",
        any::<String>(),
        "\\PC{0,40}",
    ]
}

fn any_recipient() -> impl Strategy<Value = RecipientReport> {
    (
        any_address(),
        proptest::option::of(any::<String>()),
        proptest::option::of(any_address()),
        prop_oneof![
            Just(Action::Failed),
            Just(Action::Delayed),
            Just(Action::Delivered)
        ],
        "[245]\\.[0-9]\\.[0-9]",
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
        any::<String>(),
    )
        .prop_map(
            |(
                final_recipient,
                orcpt,
                original_address,
                action,
                status,
                remote_mta,
                diagnostic,
                reason,
            )| {
                RecipientReport {
                    final_recipient,
                    orcpt,
                    original_address,
                    action,
                    // The pattern gives only well-formed codes.
                    status: crate::outcome::Enhanced::parse(&status).unwrap(),
                    remote_mta,
                    diagnostic,
                    reason,
                }
            },
        )
}

fn any_original() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2000),
        // Header-like text, nested MIME included, to stress the parser.
        "((Content-Type: multipart/mixed; boundary=\"?[a-z]{1,3}\"?|Subject: [ -~]{0,30}|[A-Za-z-]{1,10}: [^\n]{0,30}|\n|--[a-z]{1,3}(--)?|[ \t][^\n]{0,20})\n){0,30}"
            .prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn build_report_never_panics_and_always_has_three_parts(
        original in any_original(),
        rcpts in proptest::collection::vec(any_recipient(), 1..4),
        sender in any_address(),
        host in "[a-z0-9.-]{1,80}",
        new_id in "[0-9A-F]{10}",
        kind in prop_oneof![Just(ReportKind::Failure), Just(ReportKind::Delay), Just(ReportKind::Success)],
        smtputf8 in any::<bool>(),
        hdrs in any::<bool>(),
        envid in proptest::option::of(any::<String>()),
        now in 0u64..10_000_000_000,
        size_limit in 0usize..3000,
    ) {
        let inp = ReportInput {
            kind,
            reporting_mta: &host,
            queue_id: "4B3F2A1C9D",
            new_queue_id: &new_id,
            sender: &sender,
            envid: envid.as_deref(),
            arrival: at(now / 2),
            now: at(now),
            recipients: &rcpts,
            original: &original,
            ret: hdrs.then_some(Ret::Hdrs),
            size_limit,
            smtputf8,
            delay_warning_time: Duration::from_secs(now % 100_000),
            maximal_queue_lifetime: Duration::from_secs(u64::MAX / 2),
        };
        let dsn = build_report(&inp);
        let msg = MessageParser::default().parse(&dsn).expect("parses");
        let ct = msg.content_type().expect("content type");
        prop_assert_eq!(ct.subtype(), Some("report"));
        prop_assert_eq!(msg.root_part().sub_parts().map(<[_]>::len), Some(3));
        let status = part(&msg, 1);
        let blocks = status_blocks(status);
        prop_assert_eq!(blocks.len(), rcpts.len() + 1);
        // Every line of the report parts is within RFC 5322's limit, and
        // none is blank or white space only inside the status blocks.
        for p in [part(&msg, 0), status] {
            prop_assert!(p.contents().split(|&b| b == b'\n').all(|l| l.len() <= 998));
        }
        let status_text = String::from_utf8_lossy(status.contents()).into_owned();
        prop_assert!(status_text.lines().all(|l| l.is_empty() || !l.trim().is_empty()));
    }
}
