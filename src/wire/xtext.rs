//! RFC 3461 xtext (`ENVID=`, the address of `ORCPT=`) and RFC 6533
//! utf-8-addr-xtext (`ORCPT=utf-8;…`).

/// Encodes as RFC 3461 xtext: `+`, `=`, and bytes outside `!`..`~` become
/// `+XX`.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// Decodes RFC 3461 xtext (`+XX` hex escapes). Like Postfix, other
/// characters are taken as they are; the result must be UTF-8.
pub(crate) fn decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'+' {
            let hi = hex_digit(bytes.next()?)?;
            let lo = hex_digit(bytes.next()?)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `v` is xtext by RFC 3461's grammar, strictly: printable ASCII
/// but `+` and `=`, and `+XX` escapes with upper-case hex digits (what
/// postern itself writes; [`decode`] is lenient with what peers send).
pub(crate) fn is_strict(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
                if !(b.get(i + 1).copied().is_some_and(hex)
                    && b.get(i + 2).copied().is_some_and(hex))
                {
                    return false;
                }
                i += 3;
            }
            b'=' => return false,
            c if (b'!'..=b'~').contains(&c) => i += 1,
            _ => return false,
        }
    }
    true
}

/// Encodes as RFC 6533 utf-8-addr-xtext: printable ASCII but `+`, `=` and
/// `\` as it is, every other character as `\x{HEX}`.
pub(crate) fn utf8_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if ('!'..='~').contains(&c) && !matches!(c, '+' | '=' | '\\') {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
        }
    }
    out
}

/// Decodes RFC 6533 utf-8-addr-xtext: `\x{HEX}` escapes, raw UTF-8, and
/// (leniently) xtext `+XX` for ASCII.
pub(crate) fn utf8_decode(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("\\x{") {
            let close = after.find('}')?;
            let hex = &after[..close];
            if hex.is_empty() || hex.len() > 6 {
                return None;
            }
            let mut code = 0u32;
            for b in hex.bytes() {
                code = code << 4 | u32::from(hex_digit(b)?);
            }
            out.push(char::from_u32(code)?);
            rest = &after[close + 1..];
        } else if let Some(after) = rest.strip_prefix('+') {
            let mut hex = after.bytes();
            let hi = hex_digit(hex.next()?)?;
            let lo = hex_digit(hex.next()?)?;
            let b = hi << 4 | lo;
            if !b.is_ascii() {
                return None;
            }
            out.push(char::from(b));
            rest = &after[2..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    Some(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn xtext() {
        assert_eq!(decode("a+2Bb+3d"), Some("a+b=".into()));
        assert_eq!(decode("a+2"), None);
        assert_eq!(decode("+C3+BC"), Some("ü".into()));
        assert_eq!(decode("+FF"), None);
        assert_eq!(encode("a+b= ü"), "a+2Bb+3D+20+C3+BC");
        assert_eq!(encode("a+b=c d"), "a+2Bb+3Dc+20d");
        assert!(is_strict("QQ+2B1") && is_strict(""));
        assert!(!is_strict("a=b") && !is_strict("+2b") && !is_strict("a b"));
    }

    #[test]
    fn utf8_addr_xtext() {
        assert_eq!(utf8_encode("é+x@b"), "\\x{E9}\\x{2B}x@b");
        assert_eq!(utf8_decode("\\x{E9}+2Bx@b"), Some("é+x@b".into()));
        assert_eq!(utf8_decode("+C3"), None);
        assert_eq!(utf8_decode("\\x{}"), None);
    }

    proptest! {
        #[test]
        fn xtext_round_trip(s in "\\PC{0,40}") {
            prop_assert!(is_strict(&encode(&s)));
            prop_assert_eq!(decode(&encode(&s)), Some(s.clone()));
            prop_assert_eq!(utf8_decode(&utf8_encode(&s)), Some(s));
        }
    }
}
