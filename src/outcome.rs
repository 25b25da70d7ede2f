//! Delivery outcomes, typed: the status (sent, deferred, bounced), the
//! RFC 3463 enhanced status code and the text, as the delivery agents
//! report them to qmgr and qmgr records them. Shared by local, smtp and
//! qmgr (Postfix's `global/dsn.c`, `dsn_util.c`).
//!
//! An enhanced status code is parsed and checked once ([`Enhanced::parse`],
//! or at compile time for the constants in [`code`]); after that it is a
//! value that cannot be malformed. On the wire (ipc lines, DSNs, logs) it
//! is the same text as before, `4.3.0`: the text is kept as parsed, so a
//! remote server's `5.01.1` stays `5.01.1`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ipc::DeliveryStatus;

/// An RFC 3463 enhanced status code, `class.subject.detail`: class 2, 4
/// or 5, subject and detail of one to three digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Enhanced {
    text: [u8; 9],
    len: u8,
}

impl Enhanced {
    /// Check `code` at compile time (a constant) or panic; only for
    /// literals: use [`Enhanced::parse`] for anything read.
    pub const fn from_static(code: &'static str) -> Enhanced {
        match Enhanced::check(code.as_bytes()) {
            Some(e) => e,
            None => panic!("not an enhanced status code"),
        }
    }

    /// `class.subject.detail`, all of `s`, or `None`.
    pub fn parse(s: &str) -> Option<Enhanced> {
        Enhanced::check(s.as_bytes())
    }

    const fn check(b: &[u8]) -> Option<Enhanced> {
        if b.len() < 5 || b.len() > 9 || !matches!(b[0], b'2' | b'4' | b'5') || b[1] != b'.' {
            return None;
        }
        // Subject and detail: 1 to 3 digits each, one dot between.
        let mut i = 2;
        let mut part = 0;
        let mut digits = 0;
        while i < b.len() {
            if b[i] == b'.' {
                if part == 1 || digits == 0 {
                    return None;
                }
                part = 1;
                digits = 0;
            } else if b[i].is_ascii_digit() && digits < 3 {
                digits += 1;
            } else {
                return None;
            }
            i += 1;
        }
        if part != 1 || digits == 0 {
            return None;
        }
        let mut text = [0u8; 9];
        let mut i = 0;
        while i < b.len() {
            text[i] = b[i];
            i += 1;
        }
        Some(Enhanced {
            text,
            len: b.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // The bytes were checked to be ASCII digits and dots.
        std::str::from_utf8(&self.text[..self.len as usize]).unwrap_or("4.0.0")
    }

    /// The same subject and detail as a temporary failure (class 4), for a
    /// permanent reply that is deferred instead (`5.1.1` → `4.1.1`).
    pub fn as_transient(self) -> Enhanced {
        let mut e = self;
        e.text[0] = b'4';
        e
    }

    /// The class digit: `b'2'`, `b'4'` or `b'5'`.
    pub fn class(&self) -> u8 {
        self.text[0]
    }
}

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.as_str())
    }
}

impl PartialEq<&str> for Enhanced {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Enhanced {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Enhanced {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Enhanced, D::Error> {
        let s = String::deserialize(d)?;
        Enhanced::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an enhanced status code: {s}")))
    }
}

/// The codes postern itself decides, named by RFC 3463's meaning.
pub mod code {
    use super::Enhanced;

    /// 2.0.0: delivered.
    pub const OK: Enhanced = Enhanced::from_static("2.0.0");
    /// 2.6.0: delivered by discarding it (`discard:`).
    pub const DISCARDED: Enhanced = Enhanced::from_static("2.6.0");

    /// 4.0.0: temporary, otherwise undefined.
    pub const TEMP: Enhanced = Enhanced::from_static("4.0.0");
    /// 4.2.0: the mailbox, temporarily.
    pub const MAILBOX_TEMP: Enhanced = Enhanced::from_static("4.2.0");
    /// 4.3.0: the mail system, temporarily.
    pub const SYSTEM_TEMP: Enhanced = Enhanced::from_static("4.3.0");
    /// 4.3.5: the system is configured wrongly, temporarily.
    pub const CONFIG_TEMP: Enhanced = Enhanced::from_static("4.3.5");
    /// 4.4.1: no answer from the host.
    pub const NO_ANSWER: Enhanced = Enhanced::from_static("4.4.1");
    /// 4.4.2: bad connection.
    pub const BAD_CONNECTION: Enhanced = Enhanced::from_static("4.4.2");
    /// 4.4.3: directory server (DNS) failure.
    pub const DNS_TEMP: Enhanced = Enhanced::from_static("4.4.3");
    /// 4.5.0: the protocol, temporarily.
    pub const PROTOCOL_TEMP: Enhanced = Enhanced::from_static("4.5.0");
    /// 4.7.0: security, temporarily (SASL authentication to a next hop
    /// that cannot be done now).
    pub const SECURITY_TEMP: Enhanced = Enhanced::from_static("4.7.0");
    /// 4.7.4: security features not supported (TLS required).
    pub const SECURITY_UNSUPPORTED: Enhanced = Enhanced::from_static("4.7.4");
    /// 4.7.5: cryptographic failure (TLS).
    pub const CRYPTO_FAILURE: Enhanced = Enhanced::from_static("4.7.5");

    /// 5.0.0: permanent, otherwise undefined.
    pub const PERM: Enhanced = Enhanced::from_static("5.0.0");
    /// 5.1.1: bad destination mailbox address (user unknown).
    pub const BAD_MAILBOX: Enhanced = Enhanced::from_static("5.1.1");
    /// 5.1.2: bad destination system address.
    pub const BAD_SYSTEM: Enhanced = Enhanced::from_static("5.1.2");
    /// 5.1.3: bad destination address syntax.
    pub const BAD_SYNTAX: Enhanced = Enhanced::from_static("5.1.3");
    /// 5.1.7: bad sender address syntax.
    pub const BAD_SENDER_SYNTAX: Enhanced = Enhanced::from_static("5.1.7");
    /// 5.1.10: null MX (RFC 7505).
    pub const NULL_MX: Enhanced = Enhanced::from_static("5.1.10");
    /// 5.2.0: the mailbox, permanently.
    pub const MAILBOX_PERM: Enhanced = Enhanced::from_static("5.2.0");
    /// 5.2.2: mailbox full.
    pub const MAILBOX_FULL: Enhanced = Enhanced::from_static("5.2.2");
    /// 5.3.0: the mail system, permanently.
    pub const SYSTEM_PERM: Enhanced = Enhanced::from_static("5.3.0");
    /// 5.3.4: message too big for the system.
    pub const TOO_BIG: Enhanced = Enhanced::from_static("5.3.4");
    /// 5.3.5: the system is configured wrongly.
    pub const CONFIG_PERM: Enhanced = Enhanced::from_static("5.3.5");
    /// 5.4.4: unable to route.
    pub const NO_ROUTE: Enhanced = Enhanced::from_static("5.4.4");
    /// 5.4.6: routing loop detected.
    pub const LOOP: Enhanced = Enhanced::from_static("5.4.6");
    /// 5.5.0: the protocol, permanently.
    pub const PROTOCOL_PERM: Enhanced = Enhanced::from_static("5.5.0");
    /// 5.6.0: the content, permanently.
    pub const CONTENT_PERM: Enhanced = Enhanced::from_static("5.6.0");
    /// 5.6.7: non-ASCII addresses not permitted (no SMTPUTF8).
    pub const NO_SMTPUTF8: Enhanced = Enhanced::from_static("5.6.7");
    /// 5.7.0: security or policy, otherwise undefined.
    pub const POLICY: Enhanced = Enhanced::from_static("5.7.0");
    /// 5.7.1: delivery not authorized.
    pub const NOT_AUTHORIZED: Enhanced = Enhanced::from_static("5.7.1");
}

/// One delivery's outcome: its status, code and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: DeliveryStatus,
    pub dsn: Enhanced,
    pub reason: String,
}

impl Outcome {
    pub fn new(status: DeliveryStatus, dsn: Enhanced, reason: impl Into<String>) -> Outcome {
        Outcome {
            status,
            dsn,
            reason: reason.into(),
        }
    }

    pub fn sent(dsn: Enhanced, reason: impl Into<String>) -> Outcome {
        Outcome::new(DeliveryStatus::Sent, dsn, reason)
    }

    pub fn deferred(dsn: Enhanced, reason: impl Into<String>) -> Outcome {
        Outcome::new(DeliveryStatus::Deferred, dsn, reason)
    }

    pub fn bounced(dsn: Enhanced, reason: impl Into<String>) -> Outcome {
        Outcome::new(DeliveryStatus::Bounced, dsn, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_as_rfc_3463_says() {
        for ok in ["2.0.0", "4.3.0", "5.1.10", "5.01.1", "4.999.999"] {
            assert_eq!(Enhanced::parse(ok).map(|e| e.to_string()), Some(ok.into()));
        }
        for bad in [
            "", "3.0.0", "5.0", "5..0", "5.0.", "5.1234.1", "5.1.1 ", "5.1.1.1", "x.1.1", "5.a.1",
            "55.1.1",
        ] {
            assert_eq!(Enhanced::parse(bad), None, "{bad}");
        }
        assert_eq!(code::NULL_MX.class(), b'5');
    }

    #[test]
    fn the_wire_form_is_the_text() {
        let json = serde_json::to_string(&code::SYSTEM_TEMP).unwrap();
        assert_eq!(json, "\"4.3.0\"");
        assert_eq!(
            serde_json::from_str::<Enhanced>(&json).unwrap(),
            code::SYSTEM_TEMP
        );
        assert!(serde_json::from_str::<Enhanced>("\"4.3\"").is_err());
    }

    #[test]
    fn a_delivery_result_line_is_as_before() {
        let line =
            r#"{"rcpt_index":2,"status":"bounced","dsn":"5.1.1","reason":"unknown user: \"x\""}"#;
        let result: crate::ipc::DeliveryResult = serde_json::from_str(line).unwrap();
        assert_eq!(result.dsn, code::BAD_MAILBOX);
        assert_eq!(serde_json::to_string(&result).unwrap(), line);
        // A code that is no code does not get past the line's parser.
        let bad = line.replace("5.1.1", "5.1");
        assert!(serde_json::from_str::<crate::ipc::DeliveryResult>(&bad).is_err());
    }
}
