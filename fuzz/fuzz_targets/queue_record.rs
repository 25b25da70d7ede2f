//! Fuzz the queue's record framing and message payload decoding: any bytes
//! must decode to records, `Incomplete` or `Corrupt`, and message payloads
//! to an envelope or an error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::queue::message::{decode_message, decode_message_prefix};
use postern::queue::record::{Decoded, HEADER_LEN, decode, encode};

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
