//! Fuzzes the milter reply decoder on arbitrary milter output, fed in two
//! pieces cut at a chosen point: it must never panic, never take a packet
//! over its limit, give the same replies however the bytes are cut, and
//! keep refusing once it has refused (the stream is out of step). Every
//! reply it gives encodes back to bytes that decode to it again. The
//! command decoder (a milter's side) gets the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::milter::protocol::{Decoder, Reply};

fn replies(pieces: &[&[u8]], limit: usize) -> (Vec<Reply>, bool) {
    let mut decoder = Decoder::new(limit);
    let mut got = Vec::new();
    for piece in pieces {
        decoder.push(piece);
        loop {
            let before = decoder.buffered();
            match decoder.pop() {
                Ok(Some(reply)) => {
                    let used = before - decoder.buffered();
                    assert!(used >= 5 && used <= 4 + limit);
                    got.push(reply);
                }
                Ok(None) => break,
                Err(error) => {
                    assert_eq!(decoder.buffered(), before);
                    assert_eq!(decoder.pop(), Err(error));
                    return (got, true);
                }
            }
        }
    }
    (got, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let limit = 1 + usize::from(first) * 4;
    let cut = usize::from(data.first().copied().unwrap_or(0)) % (data.len() + 1);
    let (whole, whole_failed) = replies(&[data], limit);
    let (cut_up, cut_failed) = replies(&[&data[..cut], &data[cut..]], limit);
    assert_eq!(whole, cut_up);
    assert_eq!(whole_failed, cut_failed);
    for reply in &whole {
        let mut bytes = Vec::new();
        reply.encode(&mut bytes);
        let mut decoder = Decoder::new(bytes.len());
        decoder.push(&bytes);
        assert_eq!(decoder.pop().as_ref(), Ok(&Some(reply.clone())));
        assert_eq!(decoder.buffered(), 0);
    }

    let mut commands = Decoder::new(limit);
    commands.push(data);
    while let Ok(Some(_)) = commands.pop_command() {}
});
