//! The DNS side of a key (RFC 6376 section 3.6.1): the TXT record to
//! publish at `SELECTOR._domainkey.DOMAIN`, as zone-file text split into
//! strings of at most 255 bytes (RFC 1035 section 3.3; a verifier joins
//! them, RFC 6376 section 3.6.2.2), and a published record compared with
//! the key (`postern dkim check`).

use base64::Engine;

use super::key::{Algorithm, PrivateKey, spki_of_rsa};

/// The longest character-string of a TXT record.
pub const MAX_STRING: usize = 255;

/// The record's text: `v=DKIM1; k=rsa; p=BASE64`.
pub fn text(key: &PrivateKey) -> String {
    format!(
        "v=DKIM1; k={}; p={}",
        key.algorithm.key_type(),
        base64::engine::general_purpose::STANDARD.encode(&key.public)
    )
}

/// `text` cut into strings of at most [`MAX_STRING`] bytes (the record
/// is ASCII; a cut never splits a character anyway).
pub fn split(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut at = rest.len().min(MAX_STRING);
        while !rest.is_char_boundary(at) {
            at -= 1;
        }
        let (piece, tail) = rest.split_at(at);
        out.push(piece);
        rest = tail;
    }
    out
}

/// The zone-file line for `name` (`sel._domainkey.example.org`):
/// `sel._domainkey.example.org. IN TXT ( "v=DKIM1; k=rsa; " "p=…" )`,
/// one string when it fits.
pub fn zone_line(name: &str, text: &str) -> String {
    let strings: Vec<String> = split(text).iter().map(|s| format!("\"{s}\"")).collect();
    match strings.as_slice() {
        [one] => format!("{name}. IN TXT {one}"),
        _ => format!("{name}. IN TXT ( {} )", strings.join(" ")),
    }
}

/// How a published record differs from the key; `Ok` when it publishes
/// it (a `t=y` testing flag is no difference).
pub fn compare(published: &str, key: &PrivateKey) -> Result<(), String> {
    let tags = tags(published)?;
    let get = |name: &str| {
        tags.iter()
            .find(|(t, _)| *t == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(v) = get("v")
        && v != "DKIM1"
    {
        return Err(format!("v={v}, not DKIM1"));
    }
    let k = get("k").unwrap_or("rsa");
    if !k.eq_ignore_ascii_case(key.algorithm.key_type()) {
        return Err(format!(
            "k={k}, but the key is {} ({})",
            key.algorithm.key_type(),
            key.algorithm.name()
        ));
    }
    if let Some(h) = get("h")
        && !h
            .split(':')
            .any(|a| a.trim().eq_ignore_ascii_case("sha256"))
    {
        return Err(format!("h={h} does not allow sha256"));
    }
    if let Some(s) = get("s")
        && !s.split(':').any(|t| matches!(t.trim(), "*" | "email"))
    {
        return Err(format!("s={s}: not for email"));
    }
    let p = match get("p") {
        None => return Err("no p= tag".to_string()),
        Some("") => return Err("p= is empty: the key is revoked".to_string()),
        Some(p) => base64::engine::general_purpose::STANDARD
            .decode(p)
            .map_err(|_| "p= is not base64".to_string())?,
    };
    // An RSA key may be published as SubjectPublicKeyInfo (as postern and
    // OpenDKIM do) or as a bare RSAPublicKey.
    let same =
        p == key.public || (key.algorithm == Algorithm::Rsa && spki_of_rsa(&p) == key.public);
    if !same {
        return Err("p= is another key than the key file's".to_string());
    }
    Ok(())
}

/// A tag list (RFC 6376 section 3.2): `tag=value` separated by `;`,
/// blanks around them ignored and, in base64 values, inside them too.
fn tags(record: &str) -> Result<Vec<(&str, String)>, String> {
    let mut out = Vec::new();
    for spec in record.split(';') {
        if spec.trim().is_empty() {
            continue;
        }
        let (tag, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("{:?} is not tag=value", spec.trim()))?;
        let tag = tag.trim();
        let value: String = if tag == "p" {
            value.chars().filter(|c| !c.is_whitespace()).collect()
        } else {
            value.trim().to_string()
        };
        out.push((tag, value));
    }
    Ok(out)
}
