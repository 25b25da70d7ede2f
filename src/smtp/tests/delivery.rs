//! One server, one transaction: what goes on the wire and what each
//! recipient's outcome is.

use std::time::Duration;

use super::server::{Script, start};
use super::*;
use crate::ipc::DeliveryStatus::{Bounced, Deferred, Sent};
use crate::queue::Ret;
use crate::wire::data::{DataWriter, StoredCr};

#[tokio::test]
async fn plain_delivery_is_byte_exact_and_pipelined() {
    let server = start(Script::default()).await;
    let s = setup(|_| {});
    let mut r = request(
        s.queue.path(),
        server.addr.port(),
        &["bob@example.com"],
        MESSAGE,
    );
    r.body = Body::EightBitMime;
    r.ret = Some(Ret::Hdrs);
    r.envid = Some("id+1=x".into());
    r.recipients[0].notify = Some("SUCCESS,FAILURE".into());
    r.recipients[0].orcpt = Some("rfc822;bob@example.com".into());
    let results = deliver(&s, &r).await;
    let res = &results[0];
    assert_eq!((res.status, res.dsn.as_str()), (Sent, "2.0.0"));
    assert_eq!(res.reason, "250 2.0.0 Ok: queued as TEST");
    assert_eq!(res.remote_mta.as_deref(), Some("dns; 127.0.0.1"));
    assert_eq!(
        res.diagnostic.as_deref(),
        Some("smtp; 250 2.0.0 Ok: queued as TEST")
    );

    let mut wire = Vec::new();
    let mut writer = DataWriter::with(StoredCr::LineEnd);
    writer.write(MESSAGE, &mut wire);
    writer.finish(&mut wire);
    wire.truncate(wire.len() - 3);
    assert_eq!(server.messages(), [wire]);
    assert_eq!(
        String::from_utf8_lossy(&server.messages()[0]),
        "Subject: test\r\n\r\nhello\r\n..\r\n...two\r\n..dot first\r\nlast line\r\n"
    );
    assert_eq!(
        server.commands()[..4],
        [
            "EHLO client.test".to_string(),
            format!(
                "MAIL FROM:<alice@example.org> SIZE={} BODY=8BITMIME RET=HDRS ENVID=id+2B1+3Dx",
                MESSAGE.len()
            ),
            "RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com"
                .to_string(),
            "DATA".to_string(),
        ]
    );
    // MAIL, RCPT and DATA came in one go.
    assert!(server.pipelined() >= 2, "{}", server.pipelined());
}

#[tokio::test]
async fn one_command_at_a_time_without_pipelining() {
    let (server, results) = exchange(
        Script {
            ehlo: Some(vec!["8BITMIME".into()]),
            ..Script::default()
        },
        |_| {},
        &["a@x.example", "b@x.example"],
    )
    .await;
    assert!(results.iter().all(|r| r.status == Sent));
    assert_eq!(server.pipelined(), 0);
    // Neither SIZE nor DSN parameters where they are not offered.
    assert_eq!(
        server.commands()[1..5],
        [
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<a@x.example>",
            "RCPT TO:<b@x.example>",
            "DATA"
        ]
    );
}

#[tokio::test]
async fn helo_when_ehlo_is_unknown() {
    let (server, results) = exchange(
        Script {
            ehlo: None,
            ..Script::default()
        },
        |_| {},
        &["b@x.example"],
    )
    .await;
    assert_eq!(results[0].status, Sent);
    assert_eq!(
        server.commands()[..2],
        ["EHLO client.test", "HELO client.test"]
    );
}

#[tokio::test]
async fn one_of_two_recipients_refused() {
    for pipelining in [true, false] {
        let ehlo = if pipelining {
            vec!["PIPELINING".into()]
        } else {
            vec![]
        };
        let (server, results) = exchange(
            Script {
                ehlo: Some(ehlo),
                rcpt: vec![(
                    "nobody@".into(),
                    "550 5.1.1 <nobody@x.example>: Recipient address rejected".into(),
                )],
                ..Script::default()
            },
            |_| {},
            &["bob@x.example", "nobody@x.example"],
        )
        .await;
        assert_eq!(results[0].status, Sent);
        let bad = &results[1];
        assert_eq!((bad.status, bad.dsn.as_str()), (Bounced, "5.1.1"));
        assert_eq!(
            bad.reason,
            "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <nobody@x.example>: Recipient address rejected \
             (in reply to RCPT TO command)"
        );
        assert_eq!(
            bad.diagnostic.as_deref(),
            Some("smtp; 550 5.1.1 <nobody@x.example>: Recipient address rejected")
        );
        assert_eq!(server.messages().len(), 1);
    }
}

#[tokio::test]
async fn a_451_on_rcpt_defers_without_data() {
    for pipelining in [true, false] {
        let ehlo = if pipelining {
            vec!["PIPELINING".into()]
        } else {
            vec![]
        };
        let (server, results) = exchange(
            Script {
                ehlo: Some(ehlo),
                rcpt: vec![("bob@".into(), "451 4.7.1 Greylisted, try again".into())],
                ..Script::default()
            },
            |_| {},
            &["bob@x.example"],
        )
        .await;
        let res = &results[0];
        assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.7.1"));
        assert_eq!(
            res.reason,
            "host 127.0.0.1[127.0.0.1] said: 451 4.7.1 Greylisted, try again (in reply to RCPT TO command)"
        );
        assert!(server.messages().is_empty());
        // Pipelined, DATA went out with the rest and was refused.
        assert_eq!(server.commands().contains(&"DATA".to_string()), pipelining);
    }
}

#[tokio::test]
async fn refused_mail_from_decides_for_all() {
    let (_server, results) = exchange(
        Script {
            mail: "553 5.7.1 <alice@example.org>: Sender address rejected".into(),
            ..Script::default()
        },
        |_| {},
        &["a@x.example", "b@x.example"],
    )
    .await;
    for res in results {
        assert_eq!((res.status, res.dsn.as_str()), (Bounced, "5.7.1"));
        assert!(
            res.reason.ends_with("(in reply to MAIL FROM command)"),
            "{}",
            res.reason
        );
    }
}

#[tokio::test]
async fn a_552_at_the_end_of_data_bounces() {
    let (_server, results) = exchange(
        Script {
            dot: "552 5.3.4 Message size exceeds fixed limit".into(),
            ..Script::default()
        },
        |_| {},
        &["a@x.example", "b@x.example"],
    )
    .await;
    for res in results {
        assert_eq!((res.status, res.dsn.as_str()), (Bounced, "5.3.4"));
        assert_eq!(
            res.reason,
            "host 127.0.0.1[127.0.0.1] said: 552 5.3.4 Message size exceeds fixed limit \
             (in reply to end of DATA command)"
        );
    }
}

#[tokio::test]
async fn too_large_for_the_server_is_not_sent() {
    let (server, results) = exchange(
        Script {
            ehlo: Some(vec!["PIPELINING".into(), "SIZE 20".into()]),
            ..Script::default()
        },
        |_| {},
        &["b@x.example"],
    )
    .await;
    let res = &results[0];
    assert_eq!((res.status, res.dsn.as_str()), (Bounced, "5.3.4"));
    assert_eq!(
        res.reason,
        format!(
            "message size {} exceeds size limit 20 of server 127.0.0.1[127.0.0.1]",
            MESSAGE.len()
        )
    );
    assert!(!server.commands().iter().any(|c| c.starts_with("MAIL")));
}

#[tokio::test]
async fn smtputf8_needed_but_not_offered_bounces() {
    let server = start(Script::default()).await;
    let s = setup(|_| {});
    let mut r = request(
        s.queue.path(),
        server.addr.port(),
        &["j\u{f6}rg@x.example"],
        MESSAGE,
    );
    r.smtputf8 = true;
    let res = &deliver(&s, &r).await[0];
    assert_eq!((res.status, res.dsn.as_str()), (Bounced, "5.6.7"));
    assert_eq!(
        res.reason,
        "SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    );
    // Offered: passed on.
    let server = start(Script {
        ehlo: Some(vec!["SMTPUTF8".into()]),
        ..Script::default()
    })
    .await;
    let r = request(
        s.queue.path(),
        server.addr.port(),
        &["j\u{f6}rg@x.example"],
        MESSAGE,
    );
    let r = SmtpRequest {
        smtputf8: true,
        ..r
    };
    assert_eq!(deliver(&s, &r).await[0].status, Sent);
    assert_eq!(
        server.commands()[1],
        "MAIL FROM:<alice@example.org> SMTPUTF8"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let (_server, results) = exchange(
        Script {
            greeting: None,
            ..Script::default()
        },
        |c| c.smtp.helo_timeout = Duration::from_millis(300),
        &["b@x.example"],
    )
    .await;
    let res = &results[0];
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.4.2"));
    assert_eq!(
        res.reason,
        "conversation with 127.0.0.1[127.0.0.1] timed out while receiving the initial server greeting"
    );
}

#[tokio::test]
async fn a_timeout_after_the_data_defers() {
    let (server, results) = exchange(
        Script {
            hang_at: Some("."),
            ..Script::default()
        },
        |c| c.smtp.data_done_timeout = Duration::from_millis(300),
        &["a@x.example", "b@x.example"],
    )
    .await;
    for res in results {
        assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.4.2"));
        assert_eq!(
            res.reason,
            "conversation with 127.0.0.1[127.0.0.1] timed out while sending end of data -- \
             message may be sent more than once"
        );
    }
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_5xx_greeting_defers() {
    let (_server, results) = exchange(
        Script {
            greeting: Some("554 5.7.1 go away".into()),
            ..Script::default()
        },
        |_| {},
        &["b@x.example"],
    )
    .await;
    let res = &results[0];
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.7.1"));
    assert_eq!(
        res.reason,
        "host 127.0.0.1[127.0.0.1] refused to talk to me: 554 5.7.1 go away"
    );
}

#[tokio::test]
async fn missing_content_defers() {
    let server = start(Script::default()).await;
    let s = setup(|_| {});
    let mut r = request(
        s.queue.path(),
        server.addr.port(),
        &["b@x.example"],
        MESSAGE,
    );
    r.content = ContentRef::File {
        path: "incoming/gone".into(),
        len: 10,
    };
    let res = &deliver(&s, &r).await[0];
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.3.0"));
    assert_eq!(server.accepts(), 0);
}

#[tokio::test]
async fn a_recipient_with_a_line_break_is_never_sent() {
    let (server, results) = exchange(
        Script::default(),
        |_| {},
        &[
            "evil@x.example>\r\nRCPT TO:<other@y.example",
            "good@x.example",
        ],
    )
    .await;
    assert_eq!(
        (results[0].status, results[0].dsn.as_str()),
        (Bounced, "5.1.3")
    );
    assert_eq!(results[1].status, Sent);
    assert!(!server.commands().iter().any(|c| c.contains("other@")));
}

#[tokio::test]
async fn a_multi_line_refusal_is_quoted_on_one_line() {
    let (_server, results) = exchange(
        Script {
            rcpt: vec![(
                "bob@".into(),
                "550-5.7.1 Our policy\r\n550-5.7.1 says no\r\n550 5.7.1 see https://x.example"
                    .into(),
            )],
            ..Script::default()
        },
        |_| {},
        &["bob@x.example"],
    )
    .await;
    let res = &results[0];
    assert_eq!((res.status, res.dsn.as_str()), (Bounced, "5.7.1"));
    assert_eq!(
        res.reason,
        "host 127.0.0.1[127.0.0.1] said: 550-5.7.1 Our policy 550-5.7.1 says no \
         550 5.7.1 see https://x.example (in reply to RCPT TO command)"
    );
}

/// Issue 19: mail from relay.networks whose From: domain has a key goes
/// out with its DKIM-Signature first; the content after it unchanged.
#[tokio::test]
async fn issue_19_signed_mail_carries_its_signature_first() {
    let server = start(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let (pem, _) =
        crate::dkim::key::PrivateKey::generate(crate::dkim::key::Algorithm::Ed25519, 0).unwrap();
    std::fs::write(&key, pem).unwrap();
    let s = setup(|c| {
        c.dkim.keys = vec![
            crate::dkim::KeyEntry::parse(&format!("example.org:ed:{}", key.display())).unwrap(),
        ];
    });
    let message = b"From: alice@example.org\nSubject: signed\n\nhello\n.dot\n";
    let mut r = request(
        s.queue.path(),
        server.addr.port(),
        &["bob@example.com"],
        message,
    );
    r.client.addr = "127.0.0.1".into();
    let results = deliver(&s, &r).await;
    assert_eq!(results[0].status, Sent, "{results:?}");
    let got = String::from_utf8(server.messages()[0].clone()).unwrap();
    let (signature, rest) = got.split_at(got.find("From: ").unwrap());
    assert!(
        signature.starts_with("DKIM-Signature: v=1; a=ed25519-sha256; s=ed; d=example.org;"),
        "{got}"
    );
    assert_eq!(
        rest,
        "From: alice@example.org\r\nSubject: signed\r\n\r\nhello\r\n..dot\r\n"
    );
    // SIZE= counts the signature too.
    let size = format!("SIZE={}", message.len() + signature.len());
    assert!(
        server.commands()[1].contains(&size),
        "{:?}",
        server.commands()
    );

    // An outsider's mail is sent as it is.
    r.client.addr = "192.0.2.9".into();
    deliver(&s, &r).await;
    assert!(server.messages()[1].starts_with(b"From: "));
}

/// Issue 19: a key that cannot be used defers its domain's mail (4.7.5),
/// rather than send it unsigned.
#[tokio::test]
async fn issue_19_an_unusable_key_defers() {
    let server = start(Script::default()).await;
    let s = setup(|c| {
        c.dkim.keys =
            vec![crate::dkim::KeyEntry::parse("example.org:sel:/nonexistent/k.pem").unwrap()];
    });
    let mut r = request(
        s.queue.path(),
        server.addr.port(),
        &["bob@example.com"],
        b"From: alice@example.org\n\nhello\n",
    );
    r.client.uid = Some(1000);
    let results = deliver(&s, &r).await;
    let res = &results[0];
    assert_eq!((res.status, res.dsn.as_str()), (Deferred, "4.7.5"));
    assert_eq!(
        res.reason,
        "DKIM key sel of example.org unusable: /nonexistent/k.pem: No such file or directory"
    );
    assert!(server.messages().is_empty());
    // Another domain's mail goes, unsigned.
    let r = request(
        s.queue.path(),
        server.addr.port(),
        &["bob@example.com"],
        b"From: alice@example.net\n\nhello\n",
    );
    assert_eq!(deliver(&s, &r).await[0].status, Sent);
}
