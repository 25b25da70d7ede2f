//! Tests of record framing and the reader.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;

use super::*;

const CHUNK: usize = 64 * 1024;

fn sample() -> Vec<(RecordType, Vec<u8>)> {
    vec![
        (RecordType::Message, b"hello".to_vec()),
        (RecordType::Delivered, Vec::new()),
        (RecordType::Other(200), vec![0u8; 40]),
        (RecordType::Seal, b"x".to_vec()),
    ]
}

fn log_of(records: &[(RecordType, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (t, p) in records {
        encode_into(&mut out, *t, p).unwrap();
    }
    out
}

/// Decodes records from the start of `buf` until it stops.
fn decode_all(mut buf: &[u8]) -> (Vec<(RecordType, Vec<u8>)>, Decoded<'_>) {
    let mut out = Vec::new();
    loop {
        match decode(buf) {
            Decoded::Record {
                rtype,
                payload,
                len,
            } => {
                out.push((rtype, payload.to_vec()));
                buf = &buf[len..];
            }
            stop => return (out, stop),
        }
    }
}

fn write_file(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join("t.log");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn read_file(path: &Path, offset: u64) -> (Vec<Record>, EndState) {
    let mut r = LogReader::open(path, offset).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec);
    }
    (out, r.end_state())
}

#[test]
fn layout_is_as_documented() {
    let rec = encode(RecordType::Message, b"abc").unwrap();
    assert_eq!(rec.len(), HEADER_LEN + 3);
    assert_eq!(&rec[0..2], &[0xD5, 0x51]);
    assert_eq!(rec[2], 1);
    assert_eq!(&rec[3..7], &3u32.to_le_bytes());
    assert_eq!(&rec[7..11], &crc32fast::hash(&rec[0..7]).to_le_bytes());
    let mut body = rec[2..7].to_vec();
    body.extend_from_slice(b"abc");
    assert_eq!(&rec[11..15], &crc32fast::hash(&body).to_le_bytes());
    assert_eq!(&rec[15..], b"abc");
}

#[test]
fn round_trip() {
    let records = sample();
    let log = log_of(&records);
    let (got, stop) = decode_all(&log);
    assert_eq!(got, records);
    assert_eq!(stop, Decoded::Incomplete);
}

#[test]
fn record_types_round_trip() {
    for b in 0..=255u8 {
        let t = RecordType::from(b);
        assert_eq!(u8::from(t), b);
        if let RecordType::Other(o) = t {
            assert!(![1, 2, 10, 11, 12, 13, 14, 15, 16].contains(&o));
        }
    }
    assert_eq!(RecordType::from(14), RecordType::Snapshot);
}

#[test]
fn too_large_payload_is_refused() {
    let big = vec![0u8; MAX_PAYLOAD as usize + 1];
    assert_eq!(
        encode(RecordType::Message, &big),
        Err(RecordTooLarge(big.len()))
    );
    let mut out = vec![7];
    assert!(encode_into(&mut out, RecordType::Message, &big).is_err());
    assert_eq!(out, vec![7]);
}

#[test]
fn every_prefix_is_records_then_incomplete() {
    let records = sample();
    let log = log_of(&records);
    let ends: Vec<usize> = records
        .iter()
        .scan(0, |end, (_, p)| {
            *end += HEADER_LEN + p.len();
            Some(*end)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for cut in 0..=log.len() {
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        let (got, stop) = decode_all(&log[..cut]);
        assert_eq!(got, records[..whole], "cut {cut}");
        assert_eq!(stop, Decoded::Incomplete, "cut {cut}");

        let path = write_file(dir.path(), &log[..cut]);
        let (read, end) = read_file(&path, 0);
        assert_eq!(read.len(), whole);
        let last = if whole == 0 { 0 } else { ends[whole - 1] };
        let want = if last == cut {
            EndState::Clean
        } else {
            EndState::Incomplete {
                offset: last as u64,
            }
        };
        assert_eq!(end, want, "cut {cut}");
    }
}

#[test]
fn a_flipped_bit_costs_exactly_its_record() {
    let records = sample();
    let log = log_of(&records);
    let starts: Vec<usize> = records
        .iter()
        .scan(0, |start, (_, p)| {
            let s = *start;
            *start += HEADER_LEN + p.len();
            Some(s)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for bit in 0..log.len() * 8 {
        let mut bad = log.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let hit = starts.iter().filter(|&&s| s <= bit / 8).count() - 1;
        let (got, stop) = decode_all(&bad);
        assert_eq!(got, records[..hit], "bit {bit}");
        assert!(matches!(stop, Decoded::Corrupt(_)), "bit {bit}");

        let path = write_file(dir.path(), &bad);
        let mut r = LogReader::open(&path, 0).unwrap();
        let mut read = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            read.push((rec.rtype, rec.payload));
        }
        let mut want = records.clone();
        want.remove(hit);
        assert_eq!(read, want, "bit {bit}");
        let end = starts.get(hit + 1).copied().unwrap_or(log.len()) as u64;
        let s = r.skipped();
        assert_eq!(s.len(), 1, "bit {bit}: {s:?}");
        assert_eq!(
            (s[0].start, s[0].end),
            (starts[hit] as u64, end),
            "bit {bit}"
        );
        assert_eq!(s[0].records_at_least(), 1, "bit {bit}");
        assert_eq!(r.end_state(), EndState::Clean, "bit {bit}");
    }
}

#[test]
fn corruption_reasons() {
    let rec = encode(RecordType::Message, b"abc").unwrap();

    let mut bad = rec.clone();
    bad[16] ^= 0xFF;
    assert_eq!(decode(&bad), Decoded::Corrupt(CorruptReason::BadChecksum));

    let mut bad = rec.clone();
    bad[8] ^= 1;
    assert_eq!(
        decode(&bad),
        Decoded::Corrupt(CorruptReason::BadHeaderChecksum)
    );

    let mut bad = rec.clone();
    bad[1] = 0;
    assert_eq!(decode(&bad), Decoded::Corrupt(CorruptReason::BadMagic));
    assert_eq!(
        decode(&[0xD5, 0]),
        Decoded::Corrupt(CorruptReason::BadMagic)
    );
    assert_eq!(decode(&[0xD5]), Decoded::Incomplete);
    assert_eq!(decode(&[]), Decoded::Incomplete);

    // A well-formed header with a length above the limit.
    let mut bad = rec.clone();
    bad[3..7].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
    let hcrc = crc32fast::hash(&bad[0..7]);
    bad[7..11].copy_from_slice(&hcrc.to_le_bytes());
    assert_eq!(
        decode(&bad[..HEADER_LEN]),
        Decoded::Corrupt(CorruptReason::TooLong(MAX_PAYLOAD + 1))
    );
}

#[test]
fn garbage_after_the_tail_is_skipped_to_the_end() {
    let records = sample();
    let mut log = log_of(&records);
    let good = log.len() as u64;
    log.extend_from_slice(b"garbage here");
    let (entries, end) = read_all(&log);
    assert_eq!(entries.len(), records.len() + 1);
    assert_eq!(
        entries.last(),
        Some(&Entry::Skipped(Skipped {
            start: good,
            end: log.len() as u64,
            reason: CorruptReason::BadMagic,
            damaged_headers: 0,
        }))
    );
    assert_eq!(end, EndState::Clean);
}

#[test]
fn a_zero_tail_is_nothing_written() {
    let records = sample();
    let mut log = log_of(&records);
    let good = log.len() as u64;
    log.extend_from_slice(&vec![0u8; 3 * CHUNK + 5]);
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), &log);
    for still_written in [false, true] {
        let mut r = LogReader::open(&path, 0).unwrap();
        r.still_written(still_written);
        let mut n = 0;
        while r.next_record().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, records.len());
        assert_eq!(r.end_state(), EndState::Clean);
        assert!(r.skipped().is_empty());
        assert_eq!(r.offset(), good);
    }

    // Zeros followed by anything else are damage, to the end.
    log.push(1);
    let path = write_file(dir.path(), &log);
    let mut r = LogReader::open(&path, 0).unwrap();
    while r.next_record().unwrap().is_some() {}
    assert_eq!(r.end_state(), EndState::Clean);
    assert_eq!(
        r.skipped(),
        &[Skipped {
            start: good,
            end: log.len() as u64,
            reason: CorruptReason::BadMagic,
            damaged_headers: 0,
        }]
    );
}

#[test]
fn reader_offsets_and_resume() {
    let records = sample();
    let log = log_of(&records);
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), &log);
    let (read, end) = read_file(&path, 0);
    assert_eq!(end, EndState::Clean);
    let mut at = 0;
    for (rec, (t, p)) in read.iter().zip(&records) {
        assert_eq!(rec.offset, at);
        assert_eq!(rec.rtype, *t);
        assert_eq!(&rec.payload, p);
        assert!(rec.is_whole());
        assert_eq!(
            &log[rec.payload_offset() as usize..rec.end_offset() as usize],
            &p[..]
        );
        at = rec.end_offset();
    }
    let (rest, _) = read_file(&path, read[2].offset);
    assert_eq!(rest, read[2..]);
}

#[test]
fn follows_a_growing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow.log");
    let mut w = File::create(&path).unwrap();
    let mut r = LogReader::open(&path, 0).unwrap();
    assert_eq!(r.next_record().unwrap(), None);
    assert_eq!(r.end_state(), EndState::Clean);

    let one = encode(RecordType::Message, b"one").unwrap();
    let two = encode(RecordType::Message, &vec![9u8; 200_000]).unwrap();
    w.write_all(&one).unwrap();
    w.write_all(&two[..100]).unwrap();
    assert_eq!(r.next_record().unwrap().unwrap().payload, b"one");
    assert_eq!(r.next_record().unwrap(), None);
    assert_eq!(
        r.end_state(),
        EndState::Incomplete {
            offset: one.len() as u64
        }
    );
    w.write_all(&two[100..150_000]).unwrap();
    assert_eq!(r.next_record().unwrap(), None);
    w.write_all(&two[150_000..]).unwrap();
    let rec = r.next_record().unwrap().unwrap();
    assert_eq!(rec.payload.len(), 200_000);
    assert_eq!(r.offset(), (one.len() + two.len()) as u64);
    assert_eq!(r.next_record().unwrap(), None);
    assert_eq!(r.end_state(), EndState::Clean);
}

#[test]
fn prefix_reading_checks_the_whole_record() {
    let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    let mut log = encode(RecordType::Message, &big).unwrap();
    encode_into(&mut log, RecordType::Seal, b"").unwrap();
    let dir = tempfile::tempdir().unwrap();

    let path = write_file(dir.path(), &log);
    let mut r = LogReader::open(&path, 0).unwrap();
    let rec = r.next_record_prefix(10).unwrap().unwrap();
    assert_eq!(rec.payload, &big[..10]);
    assert_eq!(rec.payload_len, 300_000);
    assert!(!rec.is_whole());
    let seal = r.next_record_prefix(10).unwrap().unwrap();
    assert_eq!(seal.rtype, RecordType::Seal);
    assert_eq!(seal.offset, rec.end_offset());
    assert_eq!(r.next_record_prefix(10).unwrap(), None);
    assert_eq!(r.end_state(), EndState::Clean);

    // A damaged byte deep in the content costs that record only.
    let mut bad = log.clone();
    bad[250_000] ^= 4;
    let path = write_file(dir.path(), &bad);
    let mut r = LogReader::open(&path, 0).unwrap();
    let seal = r.next_record_prefix(10).unwrap().unwrap();
    assert_eq!(seal.rtype, RecordType::Seal);
    assert_eq!(
        r.skipped(),
        &[Skipped {
            start: 0,
            end: seal.offset,
            reason: CorruptReason::BadChecksum,
            damaged_headers: 1,
        }]
    );
    assert_eq!(r.next_record_prefix(10).unwrap(), None);
    assert_eq!(r.end_state(), EndState::Clean);

    // Cut short, then completed: read again from the record's start.
    let path = dir.path().join("cut.log");
    let mut w = File::create(&path).unwrap();
    w.write_all(&log[..200_000]).unwrap();
    let mut r = LogReader::open(&path, 0).unwrap();
    assert_eq!(r.next_record_prefix(10).unwrap(), None);
    assert_eq!(r.end_state(), EndState::Incomplete { offset: 0 });
    w.write_all(&log[200_000..]).unwrap();
    let rec = r.next_record_prefix(10).unwrap().unwrap();
    assert_eq!(rec.payload_len, 300_000);
    assert_eq!(r.next_record().unwrap().unwrap().rtype, RecordType::Seal);
}

fn arb_records() -> impl Strategy<Value = Vec<(RecordType, Vec<u8>)>> {
    proptest::collection::vec(
        (
            any::<u8>().prop_map(RecordType::from),
            proptest::collection::vec(any::<u8>(), 0..300),
        ),
        0..12,
    )
}

proptest! {
    #[test]
    fn decode_is_total(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Decoded::Record { len, payload, .. } = decode(&buf) {
            prop_assert!(len <= buf.len());
            prop_assert_eq!(len, HEADER_LEN + payload.len());
        }
    }

    /// A crash at any byte, perhaps followed by junk: every record that
    /// ended before the cut is read back exactly, nothing else.
    #[test]
    fn cut_and_junk_recover_exactly_the_whole_records(
        records in arb_records(),
        cut_frac in 0.0f64..=1.0,
        junk in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let log = log_of(&records);
        let cut = ((log.len() as f64) * cut_frac) as usize;
        let mut bytes = log[..cut].to_vec();
        bytes.extend_from_slice(&junk);
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), &bytes);
        let (read, end) = read_file(&path, 0);
        let mut at = 0;
        let mut want = Vec::new();
        for (t, p) in &records {
            at += HEADER_LEN + p.len();
            if at <= cut {
                want.push((*t, p.clone()));
            }
        }
        let got: Vec<_> = read.iter().map(|r| (r.rtype, r.payload.clone())).collect();
        prop_assert_eq!(got, want);
        if junk.is_empty() {
            let (entries, _) = super::read_all(&bytes);
            let skipped = entries.iter().any(|e| matches!(e, Entry::Skipped(_)));
            prop_assert!(!skipped, "{:?}", end);
        }
    }
}

/// A segment still written, its room ahead zeros: the reader stops where
/// the zeros start and, called again, reads the records written over
/// them since; a record being written (its bytes cut short by zeros, or
/// not checking yet) is not taken for damage, but read again later.
#[test]
fn a_reader_follows_records_written_over_zeros() {
    let records = sample();
    let whole = log_of(&records);
    let bounds: Vec<usize> = {
        let mut at = 0;
        records
            .iter()
            .map(|(t, p)| {
                at += encode(*t, p).unwrap().len();
                at
            })
            .collect()
    };
    let room = whole.len() + 4 * CHUNK;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("S1.log");
    let mut file = vec![0u8; room];
    file[..bounds[0]].copy_from_slice(&whole[..bounds[0]]);
    std::fs::write(&path, &file).unwrap();
    let mut r = LogReader::open(&path, 0).unwrap();
    r.still_written(true);
    assert!(r.next_record().unwrap().is_some());
    assert!(r.next_record().unwrap().is_none());
    assert_eq!(r.end_state(), EndState::Clean);
    assert_eq!(r.offset(), bounds[0] as u64);

    // The next record half written: not yet, not damage.
    let half = bounds[0] + (bounds[1] - bounds[0]) / 2;
    file[bounds[0]..half].copy_from_slice(&whole[bounds[0]..half]);
    std::fs::write(&path, &file).unwrap();
    assert!(r.next_entry().unwrap().is_none());
    assert_eq!(
        r.end_state(),
        EndState::Incomplete {
            offset: bounds[0] as u64
        }
    );
    // Now all of them.
    file[..whole.len()].copy_from_slice(&whole);
    std::fs::write(&path, &file).unwrap();
    let mut n = 1;
    while let Some(e) = r.next_entry().unwrap() {
        assert!(matches!(e, Entry::Record(_)), "{e:?}");
        n += 1;
    }
    assert_eq!(n, records.len());
    assert_eq!(r.end_state(), EndState::Clean);
    assert_eq!(r.offset(), whole.len() as u64);

    // Finished, a zeroed block in the middle: read to the end, the
    // records after it found.
    let mut damaged = file.clone();
    damaged[bounds[1]..bounds[2]].fill(0);
    std::fs::write(&path, &damaged).unwrap();
    let mut r = LogReader::open(&path, 0).unwrap();
    let mut n = 0;
    while r.next_record().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, records.len() - 1);
    assert_eq!(r.skipped().len(), 1);
    assert_eq!(r.end_state(), EndState::Clean);
}
