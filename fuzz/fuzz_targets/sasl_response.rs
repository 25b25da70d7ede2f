//! Fuzz target: a client's AUTH responses (RFC 4954 base64 lines, PLAIN's
//! three fields, LOGIN's answers) never panic, and what PLAIN accepts
//! has a login and a password and fits RFC 4616's limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::sasl::{ResponseError, decode_response, login_step, plain};

fuzz_target!(|data: &[u8]| {
    // The raw bytes as a decoded response…
    if let Ok(c) = plain(data) {
        assert!(!c.login.is_empty() && !c.password.is_empty());
        assert!(c.login.len() <= 255 && c.password.len() <= 255 && c.authzid.len() <= 255);
    }
    let _ = login_step(data);
    // …and as the line a client sends.
    let line = String::from_utf8_lossy(data);
    match decode_response(&line) {
        Ok(bytes) => {
            let _ = plain(&bytes);
            let _ = login_step(&bytes);
        }
        Err(ResponseError::Cancelled) => assert_eq!(line.trim_end_matches(['\r', '\n']), "*"),
        Err(_) => {}
    }
});
