//! Fuzz the queue's record framing and message payload decoding: any bytes
//! must decode to records, `Incomplete` or `Corrupt`, the resynchronising
//! reader must return records that check and skipped ranges that tile the
//! input, and message payloads must decode to an envelope or an error,
//! never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::queue::message::{decode_message, decode_message_prefix, envelope_hint};
use postern::queue::record::{
    Decoded, EndState, Entry, HEADER_LEN, damaged_records, decode, encode, read_all,
};

fuzz_target!(|data: &[u8]| {
    // Records back to back, as in a log file.
    let mut rest = data;
    loop {
        match decode(rest) {
            Decoded::Record {
                rtype,
                payload,
                len,
            } => {
                assert_eq!(len, HEADER_LEN + payload.len());
                assert_eq!(encode(rtype, payload).ok().as_deref(), Some(&rest[..len]));
                let _ = decode_message(payload, 0, "incoming/S.log");
                rest = &rest[len..];
            }
            Decoded::Incomplete | Decoded::Corrupt(_) => break,
        }
    }

    // The whole input as a log, with resynchronisation.
    let (entries, end) = read_all(data);
    let mut at = 0u64;
    for e in &entries {
        match e {
            Entry::Record(r) => {
                assert_eq!(r.offset, at);
                let ok = matches!(decode(&data[at as usize..]), Decoded::Record { payload, .. } if payload == r.payload);
                assert!(ok);
                at = r.end_offset();
            }
            Entry::Skipped(s) => {
                assert_eq!(s.start, at);
                for d in damaged_records(&data[s.start as usize..s.end as usize]) {
                    let _ = envelope_hint(d.payload, u64::from(d.payload_len));
                }
                at = s.end;
            }
        }
    }
    match end {
        EndState::Clean => assert_eq!(at, data.len() as u64),
        EndState::Incomplete { offset } => assert_eq!(at, offset),
    }

    // The bytes as a message payload, at an arbitrary offset, whole and as
    // a prefix of a longer payload.
    let (offset, payload) = match data.split_first_chunk::<8>() {
        Some((head, tail)) => (u64::from_le_bytes(*head), tail),
        None => (0, data),
    };
    let _ = decode_message(payload, offset, "incoming/S.log");
    let _ = decode_message_prefix(payload, payload.len() as u64 + 7, offset, "x");

    // Every record framed by encode decodes back.
    if let Ok(framed) = encode(data.first().copied().unwrap_or(0).into(), payload) {
        assert!(matches!(decode(&framed), Decoded::Record { len, .. } if len == framed.len()));
    }
});
