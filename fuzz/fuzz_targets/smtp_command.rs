//! Fuzzes the SMTP command layer: line framing, command parsing and path
//! parsing on arbitrary bytes. None may panic; a parsed address must print
//! back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::address::{Path, parse_path};
use postern::smtpd::command::parse_command;
use postern::smtpd::line::{Framed, next_line, skip_long_line};

fuzz_target!(|data: &[u8]| {
    let max = data.first().map_or(0, |&b| usize::from(b));
    let mut buf = data;
    // Frame every line of the input as smtpd would.
    loop {
        match next_line(buf, max) {
            Framed::Line { line, consumed, .. } => {
                assert!(consumed <= buf.len() && line.len() <= max);
                for utf8 in [false, true] {
                    if let Err(e) = parse_command(line, utf8) {
                        let _ = (e.reply().to_string(), e.disconnects(), e.verb_name());
                    }
                }
                buf = &buf[consumed..];
            }
            Framed::TooLong { consumed: Some(n) } => buf = &buf[n..],
            Framed::TooLong { consumed: None } => {
                assert_eq!(skip_long_line(buf), None);
                break;
            }
            Framed::Incomplete => break,
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        for utf8 in [false, true] {
            if let Ok(Path::Mailbox(a)) = parse_path(s, utf8) {
                let back = parse_path(&format!("<{a}>"), utf8);
                assert_eq!(back, Ok(Path::Mailbox(a)));
            }
        }
    }
});
