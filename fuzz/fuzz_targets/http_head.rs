//! Fuzzes the metrics endpoint's request-head parser on arbitrary client
//! input: it must never panic, never wait past the size bound, and give a
//! route only for a request line of the shape it accepts.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::metrics::http::{Head, MAX_HEAD, parse, route};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Head::Incomplete => assert!(data.len() < MAX_HEAD),
        Head::TooLarge => assert!(data.len() >= MAX_HEAD),
        Head::Bad => {}
        Head::Request { method, path } => {
            assert!(!method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic()));
            assert!(path.starts_with('/') && !path.contains('?'));
            let _ = route(method, path);
        }
    }
    // Growing input byte by byte (a client trickling its head) never
    // turns a decided head back into an incomplete one.
    if let Some(cut) = data.len().checked_sub(1) {
        if !matches!(parse(&data[..cut]), Head::Incomplete) {
            assert!(!matches!(parse(data), Head::Incomplete));
        }
    }
});
