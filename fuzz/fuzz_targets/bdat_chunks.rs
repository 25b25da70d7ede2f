//! Fuzzes the BDAT reader (RFC 3030 chunks): the input is cut into chunks
//! at points the fuzzer chooses (first two bytes); the stored content, its
//! size for the limit and the bare-LF verdict must be the same however it
//! is cut (byte by byte included), never more than the input plus the one
//! line end LAST may add, and the same as the DATA reader stores for the
//! same message sent with DATA (dot-stuffed, ended by CRLF `.` CRLF).
//! The BDAT command line itself goes through `smtp_command`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::smtpd::chunk::ChunkReader;
use postern::smtpd::data::{DataReader, Feed};

/// Feeds `chunks`, then LAST: the stored content, wire size, bare LF.
fn run(chunks: &[&[u8]]) -> (Vec<u8>, u64, bool) {
    let mut reader = ChunkReader::new();
    let mut out = Vec::new();
    for chunk in chunks {
        reader.feed(chunk, &mut |b: &[u8]| {
            assert!(!b.is_empty());
            out.extend_from_slice(b)
        });
    }
    reader.finish(&mut |b: &[u8]| {
        assert!(!b.is_empty());
        out.extend_from_slice(b)
    });
    assert_eq!(reader.size(), out.len() as u64);
    (out, reader.wire_size(), reader.saw_bare_lf())
}

/// The same message over DATA, as the DATA reader stores it.
fn over_data(content: &[u8]) -> (Vec<u8>, u64, bool) {
    let mut wire = Vec::new();
    for line in content.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b".") {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    if !wire.is_empty() && !wire.ends_with(b"\n") {
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b".\r\n");
    let mut reader = DataReader::new();
    let mut out = Vec::new();
    let fed = reader.feed(&wire, &mut |b: &[u8]| out.extend_from_slice(b));
    assert_eq!(fed, Feed::Done { consumed: wire.len() });
    (out, reader.wire_size(), reader.saw_bare_lf())
}

fuzz_target!(|data: &[u8]| {
    let [a, b, input @ ..] = data else {
        return;
    };
    let mut cuts = [
        usize::from(*a) % (input.len() + 1),
        usize::from(*b) % (input.len() + 1),
    ];
    cuts.sort_unstable();
    let whole = run(&[input]);
    let pieces = [&input[..cuts[0]], &input[cuts[0]..cuts[1]], &input[cuts[1]..]];
    assert_eq!(run(&pieces), whole);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(&bytes), whole);
    assert!(whole.0.len() <= input.len() + 1);
    assert!(whole.1 <= input.len() as u64 * 2 + 2);
    // A last line ended by a bare LF cannot be sent with DATA (its final
    // dot would not end the data).
    let bare_lf_last = input.ends_with(b"\n") && !input.ends_with(b"\r\n");
    if !bare_lf_last {
        assert_eq!(over_data(input), whole);
    }
});
