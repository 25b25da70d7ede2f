use proptest::prelude::*;

use super::*;

fn command_packet(command: &Command) -> Vec<u8> {
    let mut out = Vec::new();
    command.encode(&mut out);
    out
}

/// A packet from its code and data, as a peer would write it.
fn raw(code: u8, data: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(data.len() + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    out.push(code);
    out.extend_from_slice(data);
    out
}

fn decode_all(bytes: &[u8]) -> Result<Vec<Reply>, DecodeError> {
    let mut decoder = Decoder::default();
    decoder.push(bytes);
    let mut replies = Vec::new();
    while let Some(reply) = decoder.pop()? {
        replies.push(reply);
    }
    assert_eq!(decoder.buffered(), 0, "a partial packet left");
    Ok(replies)
}

#[test]
fn commands_as_libmilter_reads_them() {
    assert_eq!(
        command_packet(&Command::OptNeg {
            version: 6,
            actions: Actions::ALL,
            protocol: ProtocolFlags::ALL,
        }),
        b"\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff"
    );
    assert_eq!(
        command_packet(&Command::Macro {
            stage: b'C',
            pairs: vec![
                (b"j".to_vec(), b"mx.example".to_vec()),
                (b"{daemon_name}".to_vec(), b"postern".to_vec()),
            ],
        }),
        raw(b'D', b"Cj\0mx.example\0{daemon_name}\0postern\0")
    );
    assert_eq!(
        command_packet(&Command::Connect {
            hostname: b"client.example".to_vec(),
            address: ConnectAddress::Inet("192.0.2.1".parse().unwrap(), 2525),
        }),
        raw(b'C', b"client.example\x004\x09\xdd192.0.2.1\0")
    );
    assert_eq!(
        command_packet(&Command::Connect {
            hostname: b"[2001:db8::1]".to_vec(),
            address: ConnectAddress::Inet6("2001:db8::1".parse().unwrap(), 25),
        }),
        raw(b'C', b"[2001:db8::1]\x006\x00\x192001:db8::1\0")
    );
    assert_eq!(
        command_packet(&Command::Connect {
            hostname: b"localhost".to_vec(),
            address: ConnectAddress::Unknown,
        }),
        raw(b'C', b"localhost\0U")
    );
    assert_eq!(
        command_packet(&Command::Mail(vec![
            b"<a@example.org>".to_vec(),
            b"SIZE=10".to_vec()
        ])),
        raw(b'M', b"<a@example.org>\0SIZE=10\0")
    );
    assert_eq!(
        command_packet(&Command::Header {
            name: b"Subject".to_vec(),
            value: b"one\n two".to_vec(),
        }),
        raw(b'L', b"Subject\0one\n two\0")
    );
    assert_eq!(
        command_packet(&Command::Body(b"a\r\n".to_vec())),
        raw(b'B', b"a\r\n")
    );
    for (command, code) in [
        (Command::Data, b'T'),
        (Command::EndOfHeaders, b'N'),
        (Command::EndOfBody, b'E'),
        (Command::Abort, b'A'),
        (Command::Quit, b'Q'),
        (Command::QuitNewConnection, b'K'),
    ] {
        assert_eq!(command_packet(&command), raw(code, b""));
    }
}

#[test]
fn replies_as_libmilter_writes_them() {
    let mut bytes = Vec::new();
    // The negotiation's answer with two macro lists.
    bytes.extend(raw(
        b'O',
        b"\0\0\0\x06\0\0\0\x01\0\0\0\x20\0\0\0\x02{auth_authen} i\0\0\0\0\x05i\0",
    ));
    bytes.extend(raw(b'c', b""));
    bytes.extend(raw(b'y', b"550 5.7.1 no%% thanks\0"));
    bytes.extend(raw(b'y', b"451 4.7.1 no NUL"));
    bytes.extend(raw(b'h', b"X-Spam\0 yes\0"));
    bytes.extend(raw(b'i', b"\0\0\0\0X-First\0 1\0"));
    bytes.extend(raw(b'm', b"\0\0\0\x02Subject\0\0"));
    bytes.extend(raw(b'2', b"<b@example.org>\0NOTIFY=NEVER\0"));
    bytes.extend(raw(b'e', b"<c@example.org>\0"));
    bytes.extend(raw(b'q', b"held\0"));
    bytes.extend(raw(b'b', b"new body\r\n"));
    assert_eq!(
        decode_all(&bytes).unwrap(),
        vec![
            Reply::OptNeg {
                version: 6,
                actions: Actions::ADD_HEADERS,
                protocol: ProtocolFlags::NO_HEADERS,
                macros: vec![(2, b"{auth_authen} i".to_vec()), (5, b"i".to_vec())],
            },
            Reply::Continue,
            Reply::ReplyCode(b"550 5.7.1 no%% thanks".to_vec()),
            Reply::ReplyCode(b"451 4.7.1 no NUL".to_vec()),
            Reply::AddHeader {
                name: b"X-Spam".to_vec(),
                value: b" yes".to_vec()
            },
            Reply::InsertHeader {
                index: 0,
                name: b"X-First".to_vec(),
                value: b" 1".to_vec()
            },
            Reply::ChangeHeader {
                index: 2,
                name: b"Subject".to_vec(),
                value: Vec::new()
            },
            Reply::AddRcptPar {
                rcpt: b"<b@example.org>".to_vec(),
                args: Some(b"NOTIFY=NEVER".to_vec())
            },
            Reply::ChangeFrom {
                sender: b"<c@example.org>".to_vec(),
                args: None
            },
            Reply::Quarantine(b"held".to_vec()),
            Reply::ReplaceBody(b"new body\r\n".to_vec()),
        ]
    );
}

#[test]
fn bad_packets_are_named() {
    let malformed = |name, problem| DecodeError::Malformed { name, problem };
    assert_eq!(
        decode_all(&raw(b'a', b"xyz")),
        Err(malformed("SMFIR_ACCEPT", Problem::Unexpected(3)))
    );
    assert_eq!(
        decode_all(&raw(b'h', b"X-Spam\0yes")),
        Err(malformed(
            "SMFIR_ADDHEADER",
            Problem::Unterminated("the header value")
        ))
    );
    assert_eq!(
        decode_all(&raw(b'-', b"<a@b>\0extra")),
        Err(malformed("SMFIR_DELRCPT", Problem::LeftOver(5)))
    );
    assert_eq!(
        decode_all(&raw(b'm', b"\0\0\0")),
        Err(malformed("SMFIR_CHGHEADER", Problem::Short("the index")))
    );
    assert_eq!(
        decode_all(&raw(b'y', b"550 a\0b\0")),
        Err(malformed("SMFIR_REPLYCODE", Problem::InnerNul("the reply")))
    );
    assert_eq!(
        decode_all(&raw(b'Z', b"")),
        Err(DecodeError::UnknownReply(b'Z'))
    );
    assert_eq!(decode_all(b"\0\0\0\0"), Err(DecodeError::Empty));
    assert_eq!(
        DecodeError::UnknownReply(7).to_string(),
        "unknown reply code 0x07"
    );
    assert_eq!(
        malformed("SMFIR_ADDHEADER", Problem::Unterminated("the header value")).to_string(),
        "malformed SMFIR_ADDHEADER: missing NUL after the header value"
    );
}

#[test]
fn an_oversized_packet_is_refused_from_its_length() {
    // An SMTP greeting where a milter should be: "220 " is 842 MB.
    let mut decoder = Decoder::default();
    decoder.push(b"220 mx.example ESMTP\r\n");
    let error = decoder.pop().unwrap_err();
    assert_eq!(
        error,
        DecodeError::Oversized {
            length: 0x3232_3020,
            limit: MAX_PACKET
        }
    );
    assert_eq!(
        error.to_string(),
        "unreasonable packet length: 842149920 > 1048576"
    );
    // The stream is out of step: the same error again.
    assert_eq!(decoder.pop().unwrap_err(), error);

    // At the limit it waits for the rest; over, it refuses.
    let mut decoder = Decoder::new(10);
    decoder.push(&10u32.to_be_bytes());
    assert_eq!(decoder.pop(), Ok(None));
    let mut decoder = Decoder::new(10);
    decoder.push(&11u32.to_be_bytes());
    assert!(matches!(
        decoder.pop(),
        Err(DecodeError::Oversized { length: 11, .. })
    ));
}

#[test]
fn commands_decode_for_a_milter() {
    let mut decoder = Decoder::default();
    let mut bytes = command_packet(&Command::Rcpt(vec![b"<a@b>".to_vec()]));
    bytes.extend(command_packet(&Command::EndOfBody));
    decoder.push(&bytes);
    assert_eq!(
        decoder.pop_command(),
        Ok(Some(Command::Rcpt(vec![b"<a@b>".to_vec()])))
    );
    assert_eq!(decoder.pop_command(), Ok(Some(Command::EndOfBody)));
    assert_eq!(decoder.pop_command(), Ok(None));
    decoder.push(&raw(b'C', b"h\x004\0\x19not an address\0"));
    assert_eq!(
        decoder.pop_command(),
        Err(DecodeError::Malformed {
            name: "SMFIC_CONNECT",
            problem: Problem::BadAddress("IPv4")
        })
    );
}

/// Bytes without NUL: a protocol string.
fn text() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 0..24)
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec((any::<u32>(), text()), 0..3)
        )
            .prop_map(|(version, a, p, macros)| Reply::OptNeg {
                version,
                actions: Actions(a),
                protocol: ProtocolFlags(p),
                macros,
            }),
        Just(Reply::Accept),
        Just(Reply::Continue),
        Just(Reply::Discard),
        Just(Reply::Reject),
        Just(Reply::TempFail),
        Just(Reply::Progress),
        Just(Reply::Skip),
        Just(Reply::Shutdown),
        Just(Reply::ConnFail),
        text().prop_map(Reply::ReplyCode),
        (text(), text()).prop_map(|(name, value)| Reply::AddHeader { name, value }),
        (any::<u32>(), text(), text()).prop_map(|(index, name, value)| Reply::InsertHeader {
            index,
            name,
            value
        }),
        (any::<u32>(), text(), text()).prop_map(|(index, name, value)| Reply::ChangeHeader {
            index,
            name,
            value
        }),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Reply::ReplaceBody),
        text().prop_map(Reply::AddRcpt),
        (text(), proptest::option::of(text()))
            .prop_map(|(rcpt, args)| Reply::AddRcptPar { rcpt, args }),
        text().prop_map(Reply::DelRcpt),
        (text(), proptest::option::of(text()))
            .prop_map(|(sender, args)| Reply::ChangeFrom { sender, args }),
        text().prop_map(Reply::Quarantine),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let address = prop_oneof![
        (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| ConnectAddress::Inet(ip.into(), port)),
        (any::<u128>(), any::<u16>()).prop_map(|(ip, port)| ConnectAddress::Inet6(ip.into(), port)),
        text().prop_map(ConnectAddress::Unix),
        Just(ConnectAddress::Unknown),
    ];
    let args = || proptest::collection::vec(text(), 1..4);
    prop_oneof![
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(version, a, p)| {
            Command::OptNeg {
                version,
                actions: Actions(a),
                protocol: ProtocolFlags(p),
            }
        }),
        (
            any::<u8>(),
            proptest::collection::vec((text(), text()), 0..4)
        )
            .prop_map(|(stage, pairs)| Command::Macro { stage, pairs }),
        (text(), address).prop_map(|(hostname, address)| Command::Connect { hostname, address }),
        text().prop_map(Command::Helo),
        args().prop_map(Command::Mail),
        args().prop_map(Command::Rcpt),
        Just(Command::Data),
        (text(), text()).prop_map(|(name, value)| Command::Header { name, value }),
        Just(Command::EndOfHeaders),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Command::Body),
        Just(Command::EndOfBody),
        Just(Command::Abort),
        Just(Command::Quit),
        Just(Command::QuitNewConnection),
        text().prop_map(Command::Unknown),
    ]
}

proptest! {
    /// Replies come back as they went, whatever the pieces the bytes
    /// arrive in.
    #[test]
    fn replies_round_trip(replies in proptest::collection::vec(reply(), 1..6), cut in any::<prop::sample::Index>()) {
        let mut bytes = Vec::new();
        for r in &replies {
            r.encode(&mut bytes);
        }
        let cut = cut.index(bytes.len() + 1);
        let mut decoder = Decoder::default();
        let mut got = Vec::new();
        for piece in [&bytes[..cut], &bytes[cut..]] {
            decoder.push(piece);
            while let Some(r) = decoder.pop().unwrap() {
                got.push(r);
            }
        }
        prop_assert_eq!(got, replies);
        prop_assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn commands_round_trip(commands in proptest::collection::vec(command(), 1..6)) {
        let mut bytes = Vec::new();
        for c in &commands {
            c.encode(&mut bytes);
        }
        let mut decoder = Decoder::default();
        let mut got = Vec::new();
        for b in bytes.chunks(3) {
            decoder.push(b);
            while let Some(c) = decoder.pop_command().unwrap() {
                got.push(c);
            }
        }
        prop_assert_eq!(got, commands);
    }

    /// Any bytes: no panic, each packet within the limit, an error stays.
    #[test]
    fn any_input(bytes in proptest::collection::vec(any::<u8>(), 0..256), limit in 1usize..64) {
        let mut decoder = Decoder::new(limit);
        decoder.push(&bytes);
        loop {
            let before = decoder.buffered();
            match decoder.pop() {
                Ok(Some(_)) => {
                    prop_assert!(before - decoder.buffered() <= 4 + limit);
                    prop_assert!(decoder.buffered() < before);
                }
                Ok(None) => break,
                Err(error) => {
                    prop_assert_eq!(decoder.buffered(), before);
                    prop_assert_eq!(decoder.pop(), Err(error));
                    break;
                }
            }
        }
    }
}
