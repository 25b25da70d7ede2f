//! The client against a fake milter in the same process (an in-memory
//! pipe, time paused): what goes on the wire, and what each reply does.
//! `tests/milter_client.rs` runs it against a real libmilter milter.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::milter::protocol::{ConnectAddress, smfim};

/// The commands the fake milter got, in order.
type Seen = Arc<Mutex<Vec<Command>>>;

/// A milter that answers the negotiation with `options` and every other
/// command with what `respond` says.
fn fake_milter<F>(options: Reply, mut respond: F) -> (Box<dyn Stream>, Seen)
where
    F: FnMut(&Command) -> Vec<Reply> + Send + 'static,
{
    let (client_end, mut milter_end) = tokio::io::duplex(1 << 20);
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        let mut decoder = Decoder::new(1 << 20);
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = match milter_end.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            decoder.push(&buf[..n]);
            while let Some(command) = decoder.pop_command().unwrap() {
                let replies = match command {
                    Command::OptNeg { .. } => vec![options.clone()],
                    _ => respond(&command),
                };
                log.lock().unwrap().push(command);
                let mut out = Vec::new();
                for reply in replies {
                    reply.encode(&mut out);
                }
                if milter_end.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
    });
    (Box::new(client_end), seen)
}

/// Continue for every stage, nothing for what has no reply.
fn continues(command: &Command) -> Vec<Reply> {
    match command {
        Command::Macro { .. } | Command::Abort | Command::Quit | Command::QuitNewConnection => {
            vec![]
        }
        _ => vec![Reply::Continue],
    }
}

fn options(actions: Actions, protocol: ProtocolFlags) -> Reply {
    Reply::OptNeg {
        version: 6,
        actions,
        protocol,
        macros: Vec::new(),
    }
}

fn address() -> Address {
    Address::Inet("127.0.0.1:11332".parse().unwrap())
}

async fn open<F>(options: Reply, respond: F) -> (Client, Seen)
where
    F: FnMut(&Command) -> Vec<Reply> + Send + 'static,
{
    let (stream, seen) = fake_milter(options, respond);
    let client = Client::negotiate(stream, address(), Timeouts::default())
        .await
        .unwrap();
    (client, seen)
}

/// The commands seen since the last call.
fn take(seen: &Seen) -> Vec<Command> {
    std::mem::take(&mut *seen.lock().unwrap())
}

fn macros(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn macro_command(stage: u8, pairs: &[(&str, &str)]) -> Command {
    Command::Macro {
        stage,
        pairs: pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
    }
}

fn header(name: &str, value: &str) -> Command {
    Command::Header {
        name: name.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

fn args(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|a| a.as_bytes().to_vec()).collect()
}

#[tokio::test(start_paused = true)]
async fn negotiation_offers_everything_and_keeps_what_the_milter_wants() {
    let reply = Reply::OptNeg {
        version: 6,
        actions: Actions::ADD_HEADERS | Actions::QUARANTINE,
        // Bit 28 (SMFIP_MDS_256K) is libmilter's, not offered: dropped.
        protocol: ProtocolFlags::NO_HELO | ProtocolFlags::NR_RCPT | ProtocolFlags(1 << 28),
        macros: vec![
            (smfim::ENVFROM, b"{auth_authen} i".to_vec()),
            (9, b"x".to_vec()),
        ],
    };
    let (client, seen) = open(reply, continues).await;
    assert_eq!(
        take(&seen),
        vec![Command::OptNeg {
            version: 6,
            actions: Actions(0x1ff),
            protocol: ProtocolFlags(0x1f_ffff),
        }]
    );
    let negotiated = client.negotiated();
    assert_eq!(negotiated.version, 6);
    assert_eq!(
        negotiated.actions,
        Actions::ADD_HEADERS | Actions::QUARANTINE
    );
    assert_eq!(
        negotiated.protocol,
        ProtocolFlags::NO_HELO | ProtocolFlags::NR_RCPT
    );
    let mut lists: [Option<Vec<String>>; 7] = Default::default();
    lists[2] = Some(vec!["{auth_authen}".to_string(), "i".to_string()]);
    assert_eq!(negotiated.macros, lists);
    assert!(!negotiated.wants_rejected_recipients());
}

#[tokio::test(start_paused = true)]
async fn a_whole_session_on_the_wire() {
    let (mut client, seen) = open(
        options(Actions::ALL, ProtocolFlags(0)),
        |command| match command {
            Command::EndOfBody => vec![
                Reply::Progress,
                Reply::AddHeader {
                    name: b"X-Spam".to_vec(),
                    value: b"no".to_vec(),
                },
                Reply::ReplaceBody(b"new\r\n".to_vec()),
                Reply::ReplaceBody(b"body\r\n".to_vec()),
                Reply::ChangeHeader {
                    index: 0,
                    name: b"Subject".to_vec(),
                    value: Vec::new(),
                },
                Reply::Quarantine(b"held".to_vec()),
                Reply::Accept,
            ],
            other => continues(other),
        },
    )
    .await;
    take(&seen);
    let ip = "::ffff:192.0.2.1".parse().unwrap();
    let connect = client
        .connect(&macros(&[("j", "mx.example")]), None, ip, 2525)
        .await;
    assert_eq!(connect.unwrap(), Answer::Continue);
    let helo = client.helo(&[], "client.example").await.unwrap();
    assert_eq!(helo, Answer::Continue);
    let mail = client
        .mail(&macros(&[("i", "QID")]), &["<a@example.org>", "SIZE=100"])
        .await;
    assert_eq!(mail.unwrap(), Answer::Continue);
    let rcpt = client.rcpt(&[], &["<b@example.net>"]).await.unwrap();
    assert_eq!(rcpt, Answer::Continue);
    assert_eq!(client.data(&[]).await.unwrap(), Answer::Continue);
    // A body of two full chunks and a bit: 3 packets.
    let line = "x".repeat(99) + "\n";
    let body = line.repeat(1400);
    let stored = format!("Subject: one\n two\nTo: b@example.net\n\n{body}");
    let eom = client
        .message(
            &macros(&[("i", "QID")]),
            &macros(&[("i", "QID")]),
            stored.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(eom.answer, Answer::Accept);
    assert_eq!(
        eom.modifications,
        vec![
            Modification::AddHeader {
                name: "X-Spam".into(),
                value: " no".into()
            },
            Modification::ReplaceBody(b"new\r\nbody\r\n".to_vec()),
            Modification::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: String::new()
            },
            Modification::Quarantine("held".into()),
        ]
    );
    client.abort().await.unwrap();
    client.quit().await.unwrap();
    tokio::task::yield_now().await;

    let crlf_body = body.replace('\n', "\r\n").into_bytes();
    assert_eq!(crlf_body.len(), 141_400);
    let qid = || macro_command(b'L', &[("i", "QID")]);
    let eom_qid = |stage| macro_command(stage, &[("i", "QID")]);
    assert_eq!(
        take(&seen),
        vec![
            macro_command(b'C', &[("j", "mx.example")]),
            Command::Connect {
                hostname: b"[192.0.2.1]".to_vec(),
                address: ConnectAddress::Inet("192.0.2.1".parse().unwrap(), 2525),
            },
            Command::Helo(b"client.example".to_vec()),
            macro_command(b'M', &[("i", "QID")]),
            Command::Mail(args(&["<a@example.org>", "SIZE=100"])),
            Command::Rcpt(args(&["<b@example.net>"])),
            Command::Data,
            qid(),
            header("Subject", "one\n two"),
            qid(),
            header("To", "b@example.net"),
            macro_command(b'N', &[("i", "QID")]),
            Command::EndOfHeaders,
            eom_qid(b'B'),
            Command::Body(crlf_body[..65535].to_vec()),
            eom_qid(b'B'),
            Command::Body(crlf_body[65535..131070].to_vec()),
            eom_qid(b'B'),
            Command::Body(crlf_body[131070..].to_vec()),
            eom_qid(b'E'),
            Command::EndOfBody,
            Command::Abort,
            Command::Quit,
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn skipped_stages_get_their_macros_and_no_wait() {
    // NO_* stages are not sent (their macros are); NR_* stages are sent
    // and not waited for. The milter would hang on any reply it owes.
    let protocol = ProtocolFlags::NO_CONNECT
        | ProtocolFlags::NR_HELO
        | ProtocolFlags::NO_HEADERS
        | ProtocolFlags::NR_EOH
        | ProtocolFlags::NO_BODY
        | ProtocolFlags::HDR_LEADSPC;
    let (mut client, seen) = open(options(Actions(0), protocol), |command| match command {
        Command::Mail(_) | Command::EndOfBody => vec![Reply::Continue],
        _ => vec![],
    })
    .await;
    take(&seen);
    let ip = "192.0.2.1".parse().unwrap();
    let j = macros(&[("j", "mx.example")]);
    assert_eq!(
        client.connect(&j, Some("c.example"), ip, 1).await.unwrap(),
        Answer::Continue
    );
    assert_eq!(client.helo(&[], "c").await.unwrap(), Answer::Continue);
    assert_eq!(client.mail(&[], &["<>"]).await.unwrap(), Answer::Continue);
    let eom = client.message(&[], &[], b"A: 1\n\nbody\n").await.unwrap();
    assert_eq!(eom.answer, Answer::Continue);
    assert_eq!(
        take(&seen),
        vec![
            macro_command(b'C', &[("j", "mx.example")]),
            Command::Helo(b"c".to_vec()),
            Command::Mail(args(&["<>"])),
            Command::EndOfHeaders,
            Command::EndOfBody,
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn leading_space_and_macro_lists() {
    let reply = Reply::OptNeg {
        version: 6,
        actions: Actions::ALL,
        protocol: ProtocolFlags::HDR_LEADSPC,
        macros: vec![(smfim::EOH, b"{i}".to_vec())],
    };
    let (mut client, seen) = open(reply, |command| match command {
        Command::EndOfBody => vec![
            Reply::AddHeader {
                name: b"X-A".to_vec(),
                value: b"kept as is".to_vec(),
            },
            Reply::Continue,
        ],
        other => continues(other),
    })
    .await;
    client
        .connect(&[], Some("c"), "192.0.2.1".parse().unwrap(), 1)
        .await
        .unwrap();
    take(&seen);
    let eoh = macros(&[("i", "QID"), ("{mail_addr}", "a@b")]);
    let eom = client.message(&eoh, &[], b"A:  1\n").await.unwrap();
    assert_eq!(
        eom.modifications,
        vec![Modification::AddHeader {
            name: "X-A".into(),
            value: "kept as is".into()
        }]
    );
    assert_eq!(
        take(&seen),
        vec![
            macro_command(b'L', &[("i", "QID")]),
            header("A", "  1"),
            macro_command(b'N', &[("i", "QID")]),
            Command::EndOfHeaders,
            Command::EndOfBody,
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn skip_stops_the_body() {
    let (mut client, seen) = open(
        options(Actions(0), ProtocolFlags(0)),
        |command| match command {
            Command::Body(_) => vec![Reply::Skip],
            other => continues(other),
        },
    )
    .await;
    client
        .connect(&[], Some("c"), "192.0.2.1".parse().unwrap(), 1)
        .await
        .unwrap();
    take(&seen);
    let body = "y".repeat(200_000);
    let stored = format!("\n{body}");
    let eom = client.message(&[], &[], stored.as_bytes()).await.unwrap();
    assert_eq!(eom.answer, Answer::Continue);
    let seen = take(&seen);
    assert_eq!(seen.len(), 3, "EOH, one chunk, EOB: {:?}", seen.len());
    assert_eq!(seen[2], Command::EndOfBody);
}

#[tokio::test(start_paused = true)]
async fn accept_at_connect_ends_the_milter_for_the_connection() {
    let (mut client, seen) = open(
        options(Actions(0), ProtocolFlags(0)),
        |command| match command {
            Command::Connect { .. } => vec![Reply::Accept],
            other => continues(other),
        },
    )
    .await;
    let ip = "192.0.2.1".parse().unwrap();
    assert_eq!(
        client.connect(&[], None, ip, 1).await.unwrap(),
        Answer::Accept
    );
    take(&seen);
    assert_eq!(client.helo(&[], "c").await.unwrap(), Answer::Continue);
    assert_eq!(client.mail(&[], &["<>"]).await.unwrap(), Answer::Continue);
    let eom = client.message(&[], &[], b"A: 1\n").await.unwrap();
    assert_eq!(eom.answer, Answer::Continue);
    client.abort().await.unwrap();
    client.quit().await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(take(&seen), vec![]);
}

#[tokio::test(start_paused = true)]
async fn a_reject_at_helo_stays_for_the_connection() {
    let (mut client, seen) = open(
        options(Actions(0), ProtocolFlags(0)),
        |command| match command {
            Command::Helo(_) => vec![Reply::ReplyCode(
                b"421-4.7.0 go away\r\n421 4.7.0 100%% sure".to_vec(),
            )],
            other => continues(other),
        },
    )
    .await;
    let ip = "192.0.2.1".parse().unwrap();
    client.connect(&[], None, ip, 1).await.unwrap();
    let reply = Answer::ReplyCode("421-4.7.0 go away\r\n421 4.7.0 100% sure".into());
    assert_eq!(client.helo(&[], "c").await.unwrap(), reply);
    take(&seen);
    assert_eq!(client.helo(&[], "c").await.unwrap(), reply);
    assert_eq!(client.mail(&[], &["<>"]).await.unwrap(), reply);
    assert_eq!(client.message(&[], &[], b"").await.unwrap().answer, reply);
    client.abort().await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(take(&seen), vec![]);
}

#[tokio::test(start_paused = true)]
async fn accept_at_rcpt_ends_the_milter_for_the_message() {
    let (mut client, seen) = open(
        options(Actions(0), ProtocolFlags(0)),
        |command| match command {
            Command::Rcpt(a) if a[0] == b"<accept@x>" => vec![Reply::Accept],
            Command::Rcpt(a) if a[0] == b"<reject@x>" => vec![Reply::Reject],
            Command::Mail(a) if a[0] == b"<discard@x>" => vec![Reply::Discard],
            other => continues(other),
        },
    )
    .await;
    let ip = "192.0.2.1".parse().unwrap();
    client.connect(&[], None, ip, 1).await.unwrap();
    client.mail(&[], &["<a@x>"]).await.unwrap();
    // A reject is for one recipient.
    assert_eq!(
        client.rcpt(&[], &["<reject@x>"]).await.unwrap(),
        Answer::Reject
    );
    assert_eq!(
        client.rcpt(&[], &["<accept@x>"]).await.unwrap(),
        Answer::Accept
    );
    take(&seen);
    assert_eq!(
        client.rcpt(&[], &["<more@x>"]).await.unwrap(),
        Answer::Continue
    );
    assert_eq!(client.data(&[]).await.unwrap(), Answer::Continue);
    let eom = client.message(&[], &[], b"A: 1\n").await.unwrap();
    assert_eq!(eom.answer, Answer::Continue);
    assert_eq!(take(&seen), vec![]);
    // The next transaction goes to the milter again.
    client.abort().await.unwrap();
    assert_eq!(
        client.mail(&[], &["<discard@x>"]).await.unwrap(),
        Answer::Discard
    );
    // A MAIL after an accepted transaction without abort: aborted first.
    assert_eq!(
        client.mail(&[], &["<a@x>"]).await.unwrap(),
        Answer::Continue
    );
    assert_eq!(
        take(&seen),
        vec![
            Command::Abort,
            Command::Mail(args(&["<discard@x>"])),
            Command::Abort,
            Command::Mail(args(&["<a@x>"])),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_for_good() {
    let (mut client, _seen) = open(
        options(Actions(0), ProtocolFlags(0)),
        |command| match command {
            Command::Rcpt(_) => vec![Reply::Shutdown],
            other => continues(other),
        },
    )
    .await;
    client
        .connect(&[], None, "192.0.2.1".parse().unwrap(), 1)
        .await
        .unwrap();
    client.mail(&[], &["<a@x>"]).await.unwrap();
    assert_eq!(
        client.rcpt(&[], &["<b@x>"]).await.unwrap(),
        Answer::Shutdown
    );
    assert_eq!(
        client.rcpt(&[], &["<c@x>"]).await.unwrap(),
        Answer::Shutdown
    );
    assert_eq!(client.helo(&[], "h").await.unwrap(), Answer::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn protocol_violations_are_named_and_stay() {
    let (mut client, _seen) =
        open(
            options(Actions::ADD_HEADERS, ProtocolFlags(0)),
            |command| match command {
                Command::Rcpt(a) if a[0] == b"<early@x>" => vec![Reply::AddHeader {
                    name: b"X".to_vec(),
                    value: b"y".to_vec(),
                }],
                other => continues(other),
            },
        )
        .await;
    client
        .connect(&[], None, "192.0.2.1".parse().unwrap(), 1)
        .await
        .unwrap();
    client.mail(&[], &["<a@x>"]).await.unwrap();
    let error = client.rcpt(&[], &["<early@x>"]).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "milter inet:127.0.0.1:11332: unexpected filter response SMFIR_ADDHEADER after event SMFIC_RCPT"
    );
    let again = client.rcpt(&[], &["<b@x>"]).await.unwrap_err();
    assert_eq!(
        again.to_string(),
        "milter inet:127.0.0.1:11332: not used after an earlier error"
    );
    assert!(matches!(
        client.abort().await,
        Err(Error::AfterError { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn modifications_need_their_action() {
    let (mut client, _seen) =
        open(
            options(Actions::ADD_HEADERS, ProtocolFlags(0)),
            |command| match command {
                Command::EndOfBody => vec![Reply::DelRcpt(b"<a@x>".to_vec()), Reply::Continue],
                other => continues(other),
            },
        )
        .await;
    client
        .connect(&[], None, "192.0.2.1".parse().unwrap(), 1)
        .await
        .unwrap();
    let error = client.message(&[], &[], b"A: 1\n").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "milter inet:127.0.0.1:11332: SMFIR_DELRCPT without SMFIF_DELRCPT in the negotiation"
    );
}

#[tokio::test(start_paused = true)]
async fn negotiation_conflicts() {
    for (reply, text) in [
        (
            options(Actions(1 << 9), ProtocolFlags(0)),
            "milter inet:127.0.0.1:11332: request mask 0x200 conflict with MTA request mask 0x1ff",
        ),
        (
            Reply::OptNeg {
                version: 7,
                actions: Actions(0),
                protocol: ProtocolFlags(0),
                macros: vec![],
            },
            "milter inet:127.0.0.1:11332: protocol version 7 conflict with MTA protocol version 6",
        ),
        (
            Reply::Accept,
            "milter inet:127.0.0.1:11332: unexpected filter response SMFIR_ACCEPT after event SMFIC_OPTNEG",
        ),
    ] {
        let (stream, _) = fake_milter(reply, continues);
        let error = Client::negotiate(stream, address(), Timeouts::default())
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), text);
    }
}

#[tokio::test(start_paused = true)]
async fn an_older_milter_gets_only_its_stages() {
    let reply = Reply::OptNeg {
        version: 2,
        actions: Actions(0),
        protocol: ProtocolFlags(0),
        macros: vec![],
    };
    let (mut client, seen) = open(reply, continues).await;
    client
        .connect(&[], None, "192.0.2.1".parse().unwrap(), 1)
        .await
        .unwrap();
    take(&seen);
    assert_eq!(
        client.data(&macros(&[("i", "Q")])).await.unwrap(),
        Answer::Continue
    );
    assert_eq!(
        client.unknown(&[], "XYZZY").await.unwrap(),
        Answer::Continue
    );
    tokio::task::yield_now().await;
    assert_eq!(take(&seen), vec![]);
}

#[tokio::test(start_paused = true)]
async fn silence_times_out_and_progress_waits_longer() {
    let timeouts = Timeouts {
        connect: Duration::from_secs(1),
        command: Duration::from_secs(2),
        content: Duration::from_secs(5),
    };
    // At the end of the message: a progress reply every 4 s, five times,
    // then the answer: 20 s in all, each wait under 5 s.
    let (client_end, mut milter_end) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut decoder = Decoder::default();
        let mut buf = vec![0; 1 << 16];
        loop {
            let Ok(n) = milter_end.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            decoder.push(&buf[..n]);
            while let Some(command) = decoder.pop_command().unwrap() {
                let mut out = Vec::new();
                match command {
                    Command::OptNeg { .. } => {
                        options(Actions(0), ProtocolFlags(0)).encode(&mut out)
                    }
                    Command::Macro { .. } | Command::Abort => {}
                    Command::Rcpt(_) => {} // never answered
                    Command::EndOfBody => {
                        for _ in 0..5 {
                            tokio::time::sleep(Duration::from_secs(4)).await;
                            let mut p = Vec::new();
                            Reply::Progress.encode(&mut p);
                            milter_end.write_all(&p).await.unwrap();
                        }
                        Reply::Accept.encode(&mut out);
                    }
                    _ => Reply::Continue.encode(&mut out),
                }
                milter_end.write_all(&out).await.unwrap();
            }
        }
    });
    let mut client = Client::negotiate(Box::new(client_end), address(), timeouts)
        .await
        .unwrap();
    client
        .connect(&[], None, "192.0.2.1".parse().unwrap(), 1)
        .await
        .unwrap();
    let started = Instant::now();
    let eom = client.message(&[], &[], b"A: 1\n").await.unwrap();
    assert_eq!(eom.answer, Answer::Accept);
    assert_eq!(started.elapsed(), Duration::from_secs(20));
    client.abort().await.unwrap();

    client.mail(&[], &["<a@x>"]).await.unwrap();
    let started = Instant::now();
    let error = client.rcpt(&[], &["<b@x>"]).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(
        error.to_string(),
        "milter inet:127.0.0.1:11332: can't read SMFIC_RCPT reply packet header: timed out after 2s"
    );
}

#[tokio::test(start_paused = true)]
async fn an_oversized_reply() {
    // A reply longer than the limit.
    let (client_end, mut milter_end) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut buf = vec![0; 1 << 16];
        let mut decoder = Decoder::default();
        loop {
            let Ok(n) = milter_end.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            decoder.push(&buf[..n]);
            while let Some(command) = decoder.pop_command().unwrap() {
                let out: Vec<u8> = match command {
                    Command::OptNeg { .. } => {
                        let mut out = Vec::new();
                        options(Actions(0), ProtocolFlags(0)).encode(&mut out);
                        out
                    }
                    Command::Connect { .. } => b"\x7f\0\0\0c".to_vec(),
                    _ => Vec::new(),
                };
                milter_end.write_all(&out).await.unwrap();
            }
        }
    });
    let mut client = Client::negotiate(Box::new(client_end), address(), Timeouts::default())
        .await
        .unwrap();
    let error = client
        .connect(&[], None, "192.0.2.1".parse().unwrap(), 1)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "milter inet:127.0.0.1:11332: unreasonable packet length: 2130706432 > 1048576 (reply to SMFIC_CONNECT)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_milter_that_closes_mid_packet() {
    let (client_end, mut milter_end) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut buf = vec![0; 1 << 16];
        let mut decoder = Decoder::default();
        loop {
            let Ok(n) = milter_end.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            decoder.push(&buf[..n]);
            while let Some(command) = decoder.pop_command().unwrap() {
                let mut out = Vec::new();
                match command {
                    Command::OptNeg { .. } => {
                        options(Actions(0), ProtocolFlags(0)).encode(&mut out)
                    }
                    Command::Connect { .. } => out.extend_from_slice(b"\0\0"),
                    _ => {}
                }
                milter_end.write_all(&out).await.unwrap();
                if matches!(command, Command::Connect { .. }) {
                    return;
                }
            }
        }
    });
    let mut client = Client::negotiate(Box::new(client_end), address(), Timeouts::default())
        .await
        .unwrap();
    let error = client
        .connect(&[], None, "192.0.2.1".parse().unwrap(), 1)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "milter inet:127.0.0.1:11332: can't read SMFIC_CONNECT reply packet: connection closed by the milter"
    );
}

#[test]
fn reply_codes_as_postfix_takes_them() {
    assert_eq!(
        reply::reply_code(b"550 5.7.1 100%% spam%"),
        Ok("550 5.7.1 100% spam".to_string())
    );
    assert_eq!(
        reply::reply_code(b"450-4.7.1 a\r\n450 4.7.1 b"),
        Ok("450-4.7.1 a\r\n450 4.7.1 b".to_string())
    );
    assert_eq!(
        reply::reply_code(b"550 no code"),
        Ok("550 no code".to_string())
    );
    for bad in [
        &b"250 2.0.0 ok"[..],
        b"550",
        b"55x 5.7.1",
        b"550 4.7.1 class differs",
        b"550-5.7.1 a\r\nnot a reply",
        b"",
    ] {
        assert!(reply::reply_code(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        reply::reply_code(b"250\nok").unwrap_err().to_string(),
        "malformed reply: 250?ok"
    );
}
