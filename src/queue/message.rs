//! The payload of a `Message` record, also the whole of a `deferred/<ID>`
//! file: a message's envelope and its content, or where the content is.
//!
//! Layout (integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | `e`: length of the envelope JSON, u32 |
//! | 4 | e | the [`Envelope`] as JSON (serde_json) |
//! | 4+e | 1 | content marker: 0 inline, 1 in a file of its own |
//! | 5+e | rest | inline: the content bytes; file: the content file's path relative to the queue directory (UTF-8) |
//!
//! The content is `envelope.size` bytes either way; decoding checks that the
//! inline content has exactly that length. A content path must be relative
//! and plain (no `..`, `.`, root or empty components), so that joining it to
//! the queue directory stays inside it.

use std::path::{Component, Path};

use super::record::MAX_PAYLOAD;
use super::{ContentRef, Envelope, QueueId};

/// Marker byte for content that follows the envelope.
const INLINE: u8 = 0;
/// Marker byte for content in a file of its own.
const IN_FILE: u8 = 1;

/// Bytes of the length field before the envelope JSON.
const LEN_FIELD: usize = 4;

/// Where the content of a message to encode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MessageContent<'a> {
    /// The content bytes themselves.
    Inline(&'a [u8]),
    /// A path relative to the queue directory, e.g. `incoming/<ID>.msg`.
    File(&'a str),
}

/// Which kind of content follows a head built by [`encode_message_head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContentKind {
    Inline,
    File,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message record is truncated")]
    Truncated,
    /// From [`decode_message_prefix`] only: read at least `need` bytes of
    /// the payload and try again.
    #[error("need the first {need} bytes of the message record")]
    NeedMore { need: u64 },
    #[error("bad envelope in message record")]
    Envelope(#[source] serde_json::Error),
    #[error("unknown content marker {0}")]
    BadMarker(u8),
    #[error("content is {actual} bytes but the envelope says {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("bad content path {0:?}")]
    BadPath(String),
    #[error("message record above the record size limit")]
    TooLarge,
    #[error("content offset out of range")]
    BadOffset,
}

/// The whole payload of a message record.
pub(crate) fn encode_message(
    env: &Envelope,
    content: MessageContent<'_>,
) -> Result<Vec<u8>, MessageError> {
    let (kind, tail) = match content {
        MessageContent::Inline(bytes) => (ContentKind::Inline, bytes),
        MessageContent::File(path) => {
            check_path(path)?;
            (ContentKind::File, path.as_bytes())
        }
    };
    let mut out = encode_message_head(env, kind)?;
    if out.len() + tail.len() > MAX_PAYLOAD as usize {
        return Err(MessageError::TooLarge);
    }
    out.extend_from_slice(tail);
    Ok(out)
}

/// The payload up to and including the content marker. The caller sends the
/// content (or the path) as a second part, so that big inline content is not
/// copied once more (see `LogWriter::append_parts`). A path must pass the
/// same check as in [`encode_message`]; the size is checked when appending.
pub(crate) fn encode_message_head(
    env: &Envelope,
    kind: ContentKind,
) -> Result<Vec<u8>, MessageError> {
    let json = serde_json::to_vec(env).map_err(MessageError::Envelope)?;
    let json_len = u32::try_from(json.len())
        .ok()
        .filter(|&n| n < MAX_PAYLOAD)
        .ok_or(MessageError::TooLarge)?;
    let mut out = Vec::with_capacity(LEN_FIELD + json.len() + 1);
    out.extend_from_slice(&json_len.to_le_bytes());
    out.extend_from_slice(&json);
    out.push(match kind {
        ContentKind::Inline => INLINE,
        ContentKind::File => IN_FILE,
    });
    Ok(out)
}

/// Decodes a whole message payload found at `payload_offset` of the file
/// `file_rel_path` (relative to the queue directory, e.g.
/// `incoming/S….log` or `deferred/<ID>`).
pub fn decode_message(
    payload: &[u8],
    payload_offset: u64,
    file_rel_path: &str,
) -> Result<(Envelope, ContentRef), MessageError> {
    decode_message_prefix(payload, payload.len() as u64, payload_offset, file_rel_path)
}

/// Like [`decode_message`], given only the first bytes of a payload of
/// `payload_len` bytes (as `LogReader::next_record_prefix` returns them).
/// Fails with [`MessageError::NeedMore`] if the prefix is too short.
pub fn decode_message_prefix(
    prefix: &[u8],
    payload_len: u64,
    payload_offset: u64,
    file_rel_path: &str,
) -> Result<(Envelope, ContentRef), MessageError> {
    let short = |need: u64| {
        if need > payload_len {
            MessageError::Truncated
        } else {
            MessageError::NeedMore { need }
        }
    };
    if (prefix.len() as u64) > payload_len {
        return Err(MessageError::BadOffset);
    }
    let Some(len_field) = prefix.first_chunk::<LEN_FIELD>() else {
        return Err(short(LEN_FIELD as u64));
    };
    let json_len = u32::from_le_bytes(*len_field) as usize;
    let marker_at = LEN_FIELD + json_len;
    let content_at = marker_at + 1;
    let Some(&marker) = prefix.get(marker_at) else {
        return Err(short(content_at as u64));
    };
    let env: Envelope =
        serde_json::from_slice(&prefix[LEN_FIELD..marker_at]).map_err(MessageError::Envelope)?;
    let content_len = payload_len - content_at as u64;
    let content = match marker {
        INLINE => {
            if content_len != env.size {
                return Err(MessageError::SizeMismatch {
                    expected: env.size,
                    actual: content_len,
                });
            }
            let offset = payload_offset
                .checked_add(content_at as u64)
                .filter(|start| start.checked_add(content_len).is_some())
                .ok_or(MessageError::BadOffset)?;
            ContentRef::Segment {
                path: file_rel_path.to_string(),
                offset,
                len: content_len,
            }
        }
        IN_FILE => {
            if (prefix.len() as u64) < payload_len {
                return Err(short(payload_len));
            }
            let path = std::str::from_utf8(&prefix[content_at..]).map_err(|_| {
                MessageError::BadPath(String::from_utf8_lossy(&prefix[content_at..]).into_owned())
            })?;
            check_path(path)?;
            ContentRef::File {
                path: path.to_string(),
                len: env.size,
            }
        }
        other => return Err(MessageError::BadMarker(other)),
    };
    Ok((env, content))
}

/// What a damaged message payload (one whose record checksum failed) still
/// seems to say about itself: for the administrator, to tell the sender,
/// never to act on. Built from the envelope when it still parses, else
/// from whatever `"id"`, `"sender"` and `"address"` fields can be found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvelopeHint {
    pub id: Option<QueueId>,
    pub sender: Option<String>,
    pub recipients: Vec<String>,
}

impl std::fmt::Display for EnvelopeHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{id}")?,
            None => f.write_str("(no queue ID)")?,
        }
        if let Some(s) = &self.sender {
            write!(f, " from=<{s}>")?;
        }
        if !self.recipients.is_empty() {
            write!(f, " to=<{}>", self.recipients.join(">,<"))?;
        }
        Ok(())
    }
}

/// See [`EnvelopeHint`]: `payload` is the start of a payload of
/// `payload_len` bytes. Total on any bytes.
pub fn envelope_hint(payload: &[u8], payload_len: u64) -> Option<EnvelopeHint> {
    if let Ok((env, _)) = decode_message_prefix(payload, payload_len, 0, "damaged") {
        return Some(EnvelopeHint {
            id: Some(env.id),
            sender: Some(env.sender),
            recipients: env.recipients.into_iter().map(|r| r.address).collect(),
        });
    }
    let hint = EnvelopeHint {
        id: json_strings(payload, "id")
            .into_iter()
            .find_map(|s| s.parse().ok()),
        sender: json_strings(payload, "sender").into_iter().next(),
        recipients: json_strings(payload, "address"),
    };
    (hint.id.is_some() || hint.sender.is_some()).then_some(hint)
}

/// The values of every `"name":"value"` in `bytes` (values up to 320
/// bytes, escapes left as they are).
fn json_strings(bytes: &[u8], name: &str) -> Vec<String> {
    let key = format!("\"{name}\":\"");
    let key = key.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = bytes
        .get(at..)
        .and_then(|rest| rest.windows(key.len()).position(|w| w == key))
    {
        let start = at + i + key.len();
        let rest = &bytes[start..];
        let mut end = None;
        let mut k = 0;
        while k < rest.len().min(320) {
            match rest[k] {
                b'\\' => k += 2,
                b'"' => {
                    end = Some(k);
                    break;
                }
                _ => k += 1,
            }
        }
        if let Some(end) = end {
            out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
        at = start;
    }
    out
}

/// A content path must stay inside the queue directory.
fn check_path(path: &str) -> Result<(), MessageError> {
    let plain = !path.is_empty()
        && !path.contains('\0')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(MessageError::BadPath(path.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::queue::record::{self, Decoded, RecordType};
    use crate::queue::{Client, IdGenerator, Recipient};

    fn envelope(size: u64) -> Envelope {
        Envelope {
            id: IdGenerator::new('A').next(),
            arrival_us: 1_700_000_000_000_000,
            sender: "alice@example.org".into(),
            recipients: vec![Recipient {
                address: "bob@example.net".into(),
                orcpt: Some("rfc822;bob@example.net".into()),
                notify: None,
                original: None,
            }],
            ret: None,
            envid: None,
            body: Default::default(),
            smtputf8: false,
            client: Client {
                name: "mx.example.org".into(),
                addr: "192.0.2.1".into(),
                helo: Some("mx.example.org".into()),
                protocol: "ESMTP".into(),
                sasl_username: None,
                uid: None,
            },
            message_id: None,
            size,
            hold: false,
        }
    }

    #[test]
    fn inline_content_points_into_the_segment() {
        let content = b"Subject: hi\n\nhello\n";
        let env = envelope(content.len() as u64);
        let payload = encode_message(&env, MessageContent::Inline(content)).unwrap();
        let mut file = b"previous bytes".to_vec();
        let record_at = file.len() as u64;
        record::encode_into(&mut file, RecordType::Message, &payload).unwrap();
        let Decoded::Record { payload: got, .. } = record::decode(&file[record_at as usize..])
        else {
            panic!("not a record");
        };
        let payload_offset = record_at + record::HEADER_LEN as u64;
        let (env2, content_ref) = decode_message(got, payload_offset, "incoming/S1.log").unwrap();
        assert_eq!(env2, env);
        let (path, offset, len) = content_ref.span();
        assert_eq!(path, "incoming/S1.log");
        assert_eq!(&file[offset as usize..(offset + len) as usize], content);
        assert!(matches!(content_ref, ContentRef::Segment { .. }));
    }

    #[test]
    fn file_content_is_a_path() {
        let env = envelope(123_456_789);
        let payload =
            encode_message(&env, MessageContent::File("incoming/0001234ABCDEFA.msg")).unwrap();
        let (env2, content_ref) = decode_message(&payload, 99, "incoming/S1.log").unwrap();
        assert_eq!(env2, env);
        assert_eq!(
            content_ref,
            ContentRef::File {
                path: "incoming/0001234ABCDEFA.msg".into(),
                len: 123_456_789
            }
        );
    }

    #[test]
    fn head_and_content_make_the_whole_payload() {
        let content = vec![b'x'; 1000];
        let env = envelope(1000);
        let whole = encode_message(&env, MessageContent::Inline(&content)).unwrap();
        let mut parts = encode_message_head(&env, ContentKind::Inline).unwrap();
        parts.extend_from_slice(&content);
        assert_eq!(parts, whole);
        let head = encode_message_head(&env, ContentKind::File).unwrap();
        assert_eq!(head.last(), Some(&IN_FILE));
    }

    #[test]
    fn bad_paths_are_refused() {
        let env = envelope(1);
        for bad in ["", "/etc/passwd", "../x", "a/../b", "./a", "a\0b", "/"] {
            assert!(
                matches!(
                    encode_message(&env, MessageContent::File(bad)),
                    Err(MessageError::BadPath(_))
                ),
                "{bad:?}"
            );
            let mut payload = encode_message_head(&env, ContentKind::File).unwrap();
            payload.extend_from_slice(bad.as_bytes());
            assert!(
                matches!(
                    decode_message(&payload, 0, "x"),
                    Err(MessageError::BadPath(_))
                ),
                "{bad:?}"
            );
        }
        let mut payload = encode_message_head(&env, ContentKind::File).unwrap();
        payload.extend_from_slice(b"incoming/\xFF");
        assert!(matches!(
            decode_message(&payload, 0, "x"),
            Err(MessageError::BadPath(_))
        ));
    }

    #[test]
    fn inconsistent_payloads_are_errors() {
        let env = envelope(5);
        let payload = encode_message(&env, MessageContent::Inline(b"12345")).unwrap();
        for cut in 0..payload.len() {
            assert!(
                decode_message(&payload[..cut], 0, "x").is_err(),
                "cut {cut}"
            );
        }
        let mut longer = payload.clone();
        longer.push(b'6');
        assert!(matches!(
            decode_message(&longer, 0, "x"),
            Err(MessageError::SizeMismatch {
                expected: 5,
                actual: 6
            })
        ));
        let mut marked = payload.clone();
        let at = payload.len() - 6;
        marked[at] = 7;
        assert!(matches!(
            decode_message(&marked, 0, "x"),
            Err(MessageError::BadMarker(7))
        ));
        let mut json = payload.clone();
        json[4] = b'[';
        assert!(matches!(
            decode_message(&json, 0, "x"),
            Err(MessageError::Envelope(_))
        ));
        assert!(matches!(
            decode_message(&payload, u64::MAX - 3, "x"),
            Err(MessageError::BadOffset)
        ));
    }

    #[test]
    fn a_prefix_is_enough_for_inline_content() {
        let content = vec![b'y'; 50_000];
        let env = envelope(50_000);
        let payload = encode_message(&env, MessageContent::Inline(&content)).unwrap();
        let total = payload.len() as u64;
        assert!(matches!(
            decode_message_prefix(&payload[..2], total, 0, "x"),
            Err(MessageError::NeedMore { need: 4 })
        ));
        let need = match decode_message_prefix(&payload[..4], total, 0, "x") {
            Err(MessageError::NeedMore { need }) => need,
            other => panic!("{other:?}"),
        };
        let (env2, content_ref) =
            decode_message_prefix(&payload[..need as usize], total, 10, "x").unwrap();
        assert_eq!(env2, env);
        assert_eq!(content_ref.span(), ("x", 10 + need, 50_000));

        let file = encode_message(&env, MessageContent::File("incoming/A.msg")).unwrap();
        let total = file.len() as u64;
        assert!(matches!(
            decode_message_prefix(&file[..need as usize], total, 0, "x"),
            Err(MessageError::NeedMore { need: n }) if n == total
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            offset in any::<u64>(),
        ) {
            let _ = decode_message(&bytes, offset, "incoming/S.log");
            let _ = decode_message_prefix(&bytes, bytes.len() as u64 + 10, offset, "x");
            let _ = envelope_hint(&bytes, bytes.len() as u64 + 10);
        }
    }

    #[test]
    fn a_damaged_envelope_still_hints_at_its_message() {
        let env = envelope(5);
        let payload = encode_message(&env, MessageContent::Inline(b"hello")).unwrap();
        let whole = envelope_hint(&payload, payload.len() as u64).unwrap();
        assert_eq!(whole.id.as_ref(), Some(&env.id));
        // Break the JSON: the fields that survive are still found.
        let mut bad = payload.clone();
        let brace = bad.iter().position(|&b| b == b'{').unwrap();
        bad[brace] = b'x';
        let hint = envelope_hint(&bad, bad.len() as u64).unwrap();
        assert_eq!(hint, whole);
        assert!(hint.to_string().starts_with(&format!("{} from=<", env.id)));
        assert_eq!(envelope_hint(b"", 0), None);
        assert_eq!(envelope_hint(b"\"id\":\"x", 9), None);
    }
}
