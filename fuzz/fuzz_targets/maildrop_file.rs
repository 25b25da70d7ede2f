//! Fuzzes the drop directory's file parser (any local user writes these
//! files): it must never panic, keep within its limits (line length,
//! envelope size), agree with itself on every prefix (a complete envelope
//! is found at the same place, or the prefix is incomplete or already
//! wrong), and a complete envelope must be written back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::maildrop::{FormatError, Head, MAX_HEAD, MAX_LINE, classify, encode_head, parse_head};

fuzz_target!(|data: &[u8]| {
    let whole = parse_head(data);
    if let Ok(Head::Complete { envelope, offset }) = &whole {
        assert!(*offset <= data.len() && *offset <= MAX_HEAD);
        assert!(!envelope.recipients.is_empty());
        for line in data[..*offset].split(|b| *b == b'\n') {
            assert!(line.len() <= MAX_LINE);
        }
        // What was read is what the writer writes (the keys in its order).
        let again = encode_head(envelope).expect("a parsed envelope encodes");
        assert_eq!(
            parse_head(&again),
            Ok(Head::Complete {
                envelope: envelope.clone(),
                offset: again.len()
            })
        );
    }
    // Sans-IO: a prefix is incomplete, or says the same.
    let cut = data.len() / 2;
    match (parse_head(&data[..cut]), &whole) {
        (Ok(Head::Incomplete), _) => {}
        (Ok(Head::Complete { offset, .. }), Ok(Head::Complete { offset: o, .. })) => {
            assert_eq!(offset, *o)
        }
        // Which limit a cut line hits first cannot be known from a
        // prefix; every other error is the same.
        (Err(FormatError::LineTooLong(_) | FormatError::HeadTooLong), Err(_)) => {}
        (Err(e), Err(w)) => assert_eq!(&e, w),
        (prefix, whole) => panic!("prefix {prefix:?} but whole {whole:?}"),
    }
    let _ = classify(data);
});
