//! Fuzzes the DATA reader: the input is split at a point the fuzzer
//! chooses (first byte); feeding the two pieces must give the same content
//! and the same end of data as feeding it whole, and the content is never
//! longer than the data consumed. The content then goes through the
//! header block's end (as smtpd stores it): the same whatever the pieces,
//! and the content with at most one LF inserted at a line start.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::smtpd::data::{DataReader, Feed};
use postern::smtpd::header_block::HeaderBlock;

/// The content as stored: through the header block's end, in `pieces`.
fn stored(pieces: &[&[u8]]) -> Vec<u8> {
    let mut h = HeaderBlock::new();
    let mut out = Vec::new();
    for p in pieces {
        h.feed(p, &mut |b: &[u8]| {
            assert!(!b.is_empty());
            out.extend_from_slice(b)
        });
    }
    h.finish(&mut |b: &[u8]| out.extend_from_slice(b));
    out
}

/// Feeds `chunks`; returns the stored content and the end position.
fn run(chunks: &[&[u8]]) -> (Vec<u8>, Option<usize>, u64, u64) {
    let mut reader = DataReader::new();
    let mut out = Vec::new();
    let mut offset = 0;
    let mut end = None;
    for chunk in chunks {
        match reader.feed(chunk, &mut |b: &[u8]| {
            assert!(!b.is_empty());
            out.extend_from_slice(b)
        }) {
            Feed::NeedMore => offset += chunk.len(),
            Feed::Done { consumed } => {
                assert!(consumed <= chunk.len());
                end = Some(offset + consumed);
                break;
            }
        }
    }
    assert_eq!(reader.size(), out.len() as u64);
    (out, end, reader.size(), reader.wire_size())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split) % (input.len() + 1);
    let whole = run(&[input]);
    let (a, b) = input.split_at(cut);
    assert_eq!(run(&[a, b]), whole);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(&bytes), whole);
    let (out, end, _, wire) = &whole;
    assert!(out.len() <= end.unwrap_or(input.len()));
    assert!(*wire <= input.len() as u64 * 2);
    if let Some(end) = end {
        assert!(input[..*end].ends_with(b".\r\n"));
        assert!(*end == 3 || input[..*end].ends_with(b"\r\n.\r\n"));
    }
    let content = &whole.0;
    let at = cut.min(content.len());
    let once = stored(&[content]);
    assert_eq!(stored(&[&content[..at], &content[at..]]), once);
    let bytes: Vec<&[u8]> = content.chunks(1).collect();
    assert_eq!(stored(&bytes), once);
    if once.len() != content.len() {
        assert_eq!(once.len(), content.len() + 1);
        let k = (0..content.len())
            .find(|&k| once[k] != content[k])
            .unwrap_or(content.len());
        assert_eq!(once[k], b'\n');
        assert!(k == 0 || once[k - 1] == b'\n');
        let mut back = once.clone();
        back.remove(k);
        assert_eq!(&back, content);
    } else {
        assert_eq!(&once, content);
    }
});
