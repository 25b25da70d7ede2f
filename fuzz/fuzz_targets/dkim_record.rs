//! Fuzzes what `postern dkim check` reads from the DNS (issue 19): a
//! published DKIM record compared with a key must never panic, and only
//! the key's own record (in any of its forms) matches; and `dkim.keys`
//! entries: a parsed entry prints back to itself.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use postern::dkim::KeyEntry;
use postern::dkim::key::{Algorithm, PrivateKey};
use postern::dkim::record;

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(Algorithm::Ed25519, 0).unwrap().1)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if record::compare(text, key()).is_ok() {
        assert!(text.contains("p="));
    }
    let own = record::text(key());
    assert_eq!(record::compare(&own, key()), Ok(()));
    assert_eq!(record::split(text).concat(), text);
    assert!(record::split(text).iter().all(|s| s.len() <= record::MAX_STRING));
    if let Ok(entry) = KeyEntry::parse(text) {
        assert_eq!(KeyEntry::parse(&entry.to_string()), Ok(entry));
    }
});
