//! Fuzzes the smtp agent's reply parser on arbitrary server output: it
//! must never panic, always make progress on a complete reply, and keep
//! within its limits (line length, line count, printable text, a valid
//! enhanced status code).

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::smtp::reply::{MAX_LINE, MAX_LINE_WAIT, MAX_LINES, Parsed, enhanced_code, parse_reply};

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    loop {
        match parse_reply(buf) {
            Ok(Parsed::Complete(reply, used)) => {
                assert!(used > 0 && used <= buf.len());
                assert!(used <= MAX_LINES * (MAX_LINE_WAIT + 1));
                assert!((200..=599).contains(&reply.code()));
                assert!(!reply.lines().is_empty() && reply.lines().len() <= MAX_LINES);
                for line in reply.lines() {
                    assert!(line.len() <= MAX_LINE);
                    assert!(!line.chars().any(char::is_control));
                }
                let dsn = reply.dsn();
                assert_eq!(enhanced_code(dsn.as_str()), Some(dsn.as_str()));
                let _ = (reply.text(), reply.texts().count());
                buf = &buf[used..];
            }
            Ok(Parsed::Incomplete) => {
                // Waiting only while a line may still end in time.
                let tail = buf.rsplit(|&b| b == b'\n').next().unwrap_or(buf);
                assert!(tail.len() <= MAX_LINE_WAIT);
                break;
            }
            Err(_) => break,
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(code) = enhanced_code(s) {
            assert!(s.starts_with(code));
        }
    }
});
