//! Resynchronisation after damage (issue 14, item 4): one bad byte costs
//! one record, every skipped range is reported with its offsets, and the
//! reader never returns a record whose checksums do not hold.

use std::io::Cursor;

use proptest::prelude::*;

use super::*;

/// A segment-like log: `n` records of 200 to 700 bytes, then a seal.
/// Returns the bytes and each record's (start, end).
fn segment(n: usize) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut out = Vec::new();
    let mut spans = Vec::new();
    for i in 0..n {
        let len = 200 + (i * 37) % 500;
        let payload: Vec<u8> = (0..len).map(|k| (k * 7 + i) as u8 | 1).collect();
        let start = out.len();
        encode_into(&mut out, RecordType::Message, &payload).unwrap();
        spans.push((start, out.len()));
    }
    let start = out.len();
    encode_into(&mut out, RecordType::Seal, b"").unwrap();
    spans.push((start, out.len()));
    (out, spans)
}

/// Entries of `bytes`, split into record offsets and skipped ranges.
fn read(bytes: &[u8]) -> (Vec<u64>, Vec<Skipped>, EndState) {
    let (entries, end) = read_all(bytes);
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    for e in entries {
        match e {
            Entry::Record(r) => records.push(r.offset),
            Entry::Skipped(s) => skipped.push(s),
        }
    }
    (records, skipped, end)
}

/// Record starts of `spans` except the indices in `lost`.
fn starts_except(spans: &[(usize, usize)], lost: std::ops::Range<usize>) -> Vec<u64> {
    spans
        .iter()
        .enumerate()
        .filter(|(i, _)| !lost.contains(i))
        .map(|(_, (s, _))| *s as u64)
        .collect()
}

#[test]
fn bit_flip_in_a_payload_costs_that_record() {
    let (mut log, spans) = segment(200);
    log[spans[10].0 + HEADER_LEN + 50] ^= 0x10;
    let (records, skipped, end) = read(&log);
    assert_eq!(records, starts_except(&spans, 10..11));
    assert_eq!(
        skipped,
        vec![Skipped {
            start: spans[10].0 as u64,
            end: spans[10].1 as u64,
            reason: CorruptReason::BadChecksum,
            damaged_headers: 1,
        }]
    );
    assert_eq!(skipped[0].records_at_least(), 1);
    assert_eq!(end, EndState::Clean);
}

#[test]
fn bit_flip_in_a_header_costs_that_record() {
    // The type byte, a header CRC byte and a record CRC byte.
    for at in [2, 8, 12] {
        let (mut log, spans) = segment(200);
        log[spans[10].0 + at] ^= 0x01;
        let (records, skipped, _) = read(&log);
        assert_eq!(records, starts_except(&spans, 10..11), "byte {at}");
        assert_eq!(skipped.len(), 1, "byte {at}");
        assert_eq!(
            (skipped[0].start, skipped[0].end),
            (spans[10].0 as u64, spans[10].1 as u64),
            "byte {at}"
        );
    }
}

#[test]
fn a_bad_length_is_not_trusted() {
    let (mut log, spans) = segment(200);
    // A length far beyond the file: without the header checksum this
    // would look like a record cut short and hide everything after it.
    log[spans[10].0 + 5] = 0x7F;
    let (records, skipped, end) = read(&log);
    assert_eq!(records, starts_except(&spans, 10..11));
    assert_eq!(skipped[0].reason, CorruptReason::BadHeaderChecksum);
    assert_eq!(skipped[0].end, spans[10].1 as u64);
    assert_eq!(end, EndState::Clean);
}

#[test]
fn a_zeroed_block_costs_the_records_it_touches() {
    let (mut log, spans) = segment(200);
    let from = spans[10].0 + 100;
    let to = from + 4096;
    log[from..to].fill(0);
    let first = 10;
    let after = spans.iter().position(|(s, _)| *s >= to).unwrap();
    let (records, skipped, end) = read(&log);
    assert_eq!(records, starts_except(&spans, first..after));
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        (skipped[0].start, skipped[0].end),
        (spans[first].0 as u64, spans[after].0 as u64)
    );
    // The first record's header survived: its payload failed.
    assert_eq!(skipped[0].reason, CorruptReason::BadChecksum);
    assert!(skipped[0].records_at_least() >= 1);
    assert_eq!(end, EndState::Clean);
}

#[test]
fn the_first_magic_byte_costs_the_first_record() {
    let (mut log, spans) = segment(200);
    log[0] = 0;
    let (records, skipped, _) = read(&log);
    assert_eq!(records, starts_except(&spans, 0..1));
    assert_eq!(
        skipped,
        vec![Skipped {
            start: 0,
            end: spans[1].0 as u64,
            reason: CorruptReason::BadMagic,
            damaged_headers: 0,
        }]
    );
}

#[test]
fn truncation_inside_a_record_is_an_incomplete_tail() {
    let (log, spans) = segment(200);
    let cut = spans[150].0 + 100;
    let (records, skipped, end) = read(&log[..cut]);
    assert_eq!(records, starts_except(&spans, 150..spans.len()));
    assert!(skipped.is_empty());
    assert_eq!(
        end,
        EndState::Incomplete {
            offset: spans[150].0 as u64
        }
    );
    // Cut inside a header too.
    let (records, skipped, end) = read(&log[..spans[150].0 + 5]);
    assert_eq!(records.len(), 150);
    assert!(skipped.is_empty());
    assert_eq!(
        end,
        EndState::Incomplete {
            offset: spans[150].0 as u64
        }
    );
}

#[test]
fn damage_then_a_torn_tail() {
    let (mut log, spans) = segment(20);
    log[spans[5].0] ^= 0xFF;
    let cut = spans[12].0 + 40;
    let (records, skipped, end) = read(&log[..cut]);
    assert_eq!(records.len(), 11);
    assert_eq!(skipped.len(), 1);
    assert_eq!(
        end,
        EndState::Incomplete {
            offset: spans[12].0 as u64
        }
    );

    // Damage, then zeros to the end: the damage ends where the zeros
    // start, and nothing was written after it.
    let (mut log, spans) = segment(20);
    log[spans[5].0 + 1] ^= 0xFF;
    log.truncate(spans[8].0);
    log.extend_from_slice(&[1, 2, 3]);
    let zeros_at = log.len() as u64;
    log.extend_from_slice(&[0; 500]);
    let (records, skipped, end) = read(&log);
    assert_eq!(records.len(), 7);
    assert_eq!(
        (skipped[1].start, skipped[1].end),
        (spans[8].0 as u64, zeros_at)
    );
    assert_eq!(end, EndState::Clean);
}

#[test]
fn consecutive_damaged_records_are_one_range() {
    let (mut log, spans) = segment(30);
    for i in 10..14 {
        log[spans[i].0 + HEADER_LEN + 3] ^= 0x40;
    }
    let (records, skipped, _) = read(&log);
    assert_eq!(records, starts_except(&spans, 10..14));
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].damaged_headers, 4);
    assert_eq!(skipped[0].records_at_least(), 4);
    assert_eq!(
        (skipped[0].start, skipped[0].end),
        (spans[10].0 as u64, spans[13].1 as u64)
    );
}

#[test]
fn resync_across_reads_of_big_records() {
    // Records larger than the reader's chunk, read with a prefix, and a
    // damaged header before them: the scan verifies candidates a chunk at
    // a time.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut log = Vec::new();
    encode_into(&mut log, RecordType::Message, b"small").unwrap();
    let second = log.len();
    encode_into(&mut log, RecordType::Message, &big).unwrap();
    let third = log.len();
    encode_into(&mut log, RecordType::Message, &big).unwrap();
    encode_into(&mut log, RecordType::Seal, b"").unwrap();
    log[second + 3] ^= 1;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.log");
    std::fs::write(&path, &log).unwrap();
    let mut r = LogReader::open(&path, 0).unwrap();
    let mut got = Vec::new();
    while let Some(e) = r.next_entry_prefix(16).unwrap() {
        got.push(e);
    }
    assert!(matches!(&got[0], Entry::Record(r) if r.payload == b"small"));
    assert!(
        matches!(&got[1], Entry::Skipped(s) if s.start == second as u64 && s.end == third as u64)
    );
    assert!(
        matches!(&got[2], Entry::Record(r) if r.offset == third as u64 && r.payload == big[..16])
    );
    assert!(matches!(&got[3], Entry::Record(r) if r.rtype == RecordType::Seal));
    assert_eq!(got.len(), 4);
}

#[test]
fn a_follower_resumes_after_damage() {
    let (mut log, spans) = segment(10);
    log[spans[3].0 + 20] ^= 2;
    let part = spans[7].0 + 10;
    let mut r = LogReader::new(Cursor::new(log[..part].to_vec()), 0).unwrap();
    let mut n = 0;
    let mut skipped = 0;
    while let Some(e) = r.next_entry().unwrap() {
        match e {
            Entry::Record(_) => n += 1,
            Entry::Skipped(_) => skipped += 1,
        }
    }
    assert_eq!((n, skipped), (6, 1));
    assert_eq!(r.offset(), spans[7].0 as u64);
    // The rest arrives; a new reader resumes where the last one stopped.
    let mut r = LogReader::new(Cursor::new(log.clone()), r.offset()).unwrap();
    let mut rest = 0;
    while let Some(e) = r.next_entry().unwrap() {
        assert!(matches!(e, Entry::Record(_)));
        rest += 1;
    }
    assert_eq!(rest, 4);
}

#[test]
fn find_header_and_damaged_records() {
    let (log, spans) = segment(5);
    assert_eq!(find_header(&log, 1), Candidate::Header(spans[1].0));
    assert_eq!(
        find_header(&log[..spans[1].0 + 4], 1),
        Candidate::Partial(spans[1].0)
    );
    assert_eq!(find_header(&[0u8; 40], 0), Candidate::None);
    assert_eq!(find_header(&[0xD5], 0), Candidate::Partial(0));
    assert_eq!(find_header(&[0xD5, 0], 0), Candidate::None);

    // Two records, the first one's payload damaged, the second's header.
    let mut range = log[spans[1].0..spans[3].0].to_vec();
    range[HEADER_LEN + 9] ^= 1;
    let found = damaged_records(&range);
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|d| d.chained));
    assert_eq!(found[1].at, spans[2].0 - spans[1].0);
    let second = found[1].at;
    range[second] = 0;
    let found = damaged_records(&range);
    assert_eq!(found.len(), 1);
    // A header found by scanning is not chained.
    let mut range = vec![7u8; 10];
    range.extend_from_slice(&log[spans[1].0..spans[2].0]);
    let found = damaged_records(&range);
    assert_eq!(found.len(), 1);
    assert!(!found[0].chained);
    assert_eq!(found[0].at, 10);
}

/// How to damage a log, as fractions of its length.
#[derive(Clone, Debug)]
enum Damage {
    Flip(f64, u8),
    Fill(f64, usize, u8),
    Random(f64, Vec<u8>),
    Truncate(f64),
}

fn arb_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0f64..1.0, 0u8..8).prop_map(|(at, bit)| Damage::Flip(at, bit)),
        (0.0f64..1.0, 1usize..5000, any::<u8>()).prop_map(|(a, n, b)| Damage::Fill(a, n, b)),
        (0.0f64..1.0, proptest::collection::vec(any::<u8>(), 1..300))
            .prop_map(|(a, v)| Damage::Random(a, v)),
        (0.0f64..=1.0).prop_map(Damage::Truncate),
    ]
}

/// Entries must tile the bytes read, in order, and every record must be
/// one whose checksums hold where it lies.
fn check_tiling(bytes: &[u8], entries: &[Entry], end: EndState) -> Result<(), TestCaseError> {
    let mut at = 0u64;
    for e in entries {
        match e {
            Entry::Record(r) => {
                prop_assert_eq!(r.offset, at);
                let rest = &bytes[r.offset as usize..];
                let ok =
                    matches!(decode(rest), Decoded::Record { payload, .. } if payload == r.payload);
                prop_assert!(ok, "record at {} does not check", r.offset);
                at = r.end_offset();
            }
            Entry::Skipped(s) => {
                prop_assert_eq!(s.start, at);
                prop_assert!(s.end > s.start);
                at = s.end;
            }
        }
    }
    match end {
        // Up to the end, or to zeros that run to it (nothing written).
        EndState::Clean => prop_assert!(
            at == bytes.len() as u64
                || (at < bytes.len() as u64 && bytes[at as usize..].iter().all(|&b| b == 0)),
            "clean at {} of {}",
            at,
            bytes.len()
        ),
        EndState::Incomplete { offset } => {
            prop_assert_eq!(at, offset);
            prop_assert!(offset < bytes.len() as u64);
        }
    }
    Ok(())
}

proptest! {
    /// Any bytes at all: no panic, the entries tile the input, and every
    /// record returned checks.
    #[test]
    fn the_reader_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let (entries, end) = read_all(&bytes);
        check_tiling(&bytes, &entries, end)?;
    }

    /// Damage of every kind to a log: every record it did not touch is
    /// read back (up to a truncation), nothing is invented, and the
    /// damaged bytes are all reported as skipped or as a torn tail.
    #[test]
    fn untouched_records_survive_damage(
        n in 1usize..40,
        damage in proptest::collection::vec(arb_damage(), 1..4),
    ) {
        let (mut log, spans) = segment(n);
        let mut touched = vec![false; spans.len()];
        let mut keep = log.len();
        for d in &damage {
            let pos = |f: f64, len: usize| ((len as f64 * f) as usize).min(len.saturating_sub(1));
            let (from, to) = match d {
                Damage::Flip(f, bit) => {
                    let at = pos(*f, log.len());
                    log[at] ^= 1 << bit;
                    (at, at + 1)
                }
                Damage::Fill(f, len, b) => {
                    let at = pos(*f, log.len());
                    let to = (at + len).min(log.len());
                    log[at..to].fill(*b);
                    (at, to)
                }
                Damage::Random(f, bytes) => {
                    let at = pos(*f, log.len());
                    let to = (at + bytes.len()).min(log.len());
                    log[at..to].copy_from_slice(&bytes[..to - at]);
                    (at, to)
                }
                Damage::Truncate(f) => {
                    keep = keep.min((log.len() as f64 * f) as usize);
                    continue;
                }
            };
            for (i, (s, e)) in spans.iter().enumerate() {
                if from < *e && *s < to {
                    touched[i] = true;
                }
            }
        }
        log.truncate(keep);
        let (entries, end) = read_all(&log);
        check_tiling(&log, &entries, end)?;
        let read: Vec<u64> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Record(r) => Some(r.offset),
                Entry::Skipped(_) => None,
            })
            .collect();
        for (i, (s, e)) in spans.iter().enumerate() {
            if !touched[i] && *e <= keep {
                prop_assert!(read.contains(&(*s as u64)), "record {} at {} lost", i, s);
            }
        }
        for r in &read {
            let i = spans.iter().position(|(s, _)| *s as u64 == *r);
            prop_assert!(i.is_some_and(|i| !touched[i]), "record at {} invented", r);
        }
    }
}
