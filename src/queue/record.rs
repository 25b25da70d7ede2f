//! Record framing for the queue's log files, and a resynchronising reader.
//!
//! Every log file (`incoming/S<ID>.log`, `state/<ID>.log`) is a plain
//! sequence of records, each laid out as follows (integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | magic `0xD5 0x51` ([`MAGIC`]) |
//! | 2 | 1 | record type ([`RecordType`]) |
//! | 3 | 4 | payload length `n`, u32, at most [`MAX_PAYLOAD`] |
//! | 7 | 4 | header CRC32 over bytes 0..7 (magic, type, length) |
//! | 11 | 4 | record CRC32 over bytes 2..7 (type, length) then the payload |
//! | 15 | n | payload |
//!
//! The header is [`HEADER_LEN`] = 15 bytes, so a record's payload starts 15
//! bytes after the record. The CRCs are CRC-32 (IEEE, as `crc32fast` and
//! zlib compute it). There is no padding and no file header: a record starts
//! where the previous one ended, the first at offset 0.
//!
//! The header has a checksum of its own so that a damaged length field is
//! reported as corruption rather than mistaken for a record that a crash
//! cut short (which would silently hide every later record).
//!
//! # Damage and resynchronisation
//!
//! One bad byte costs one record, not the rest of the file. Where the bytes
//! at a record boundary are not a valid record, the reader
//! ([`LogReader`]) looks for the next one:
//!
//! - if the header checks (magic, header CRC, length) but the payload does
//!   not, the length is trusted (the header CRC covers it) and reading goes
//!   on right after that record;
//! - otherwise it scans forward byte by byte ([`find_header`]) for the next
//!   offset where the magic, the header CRC *and* the record CRC all hold,
//!   and goes on from there.
//!
//! Every range of bytes passed over that way is reported to the caller as a
//! [`Skipped`] entry (start and end offset, why, how many records at least
//! were in it), in file order between the records around it. The format is
//! unchanged: there is no sync marker, the magic and the two checksums are
//! enough to find a record again.
//!
//! # How a file ends ([`EndState`])
//!
//! - *clean*: the file ends at a record boundary (or at the end of a skipped
//!   range);
//! - *clean* too where nothing but zero bytes follow (a writer's room
//!   ahead of its records, see [`super::log`], or what some file systems
//!   leave after a crash): nothing was written there; the reader's offset
//!   is where the zeros start, and a reader following the file reads on
//!   from there. A reader told that the file is still written
//!   ([`LogReader::stop_at_zeros`]) stops at a record header of zero bytes
//!   without reading the rest;
//! - *incomplete*: the file ends inside a record whose bytes so far are
//!   valid: a write cut short by a crash, or one still in progress in
//!   another process. Nothing in it was acknowledged; it is not reported
//!   as skipped, and a reader following the file reads on from there later.
//!   Whether the writer is gone (so that the tail is final: a torn write or
//!   a truncation, worth a warning) is for the caller to tell: see
//!   [`super::log`] (the writer holds a lock on the segment it appends to).
//!
//! [`decode`] and [`find_header`] are the sans-IO core (bytes in, record /
//! `Incomplete` / `Corrupt` / candidate out, total on any input);
//! [`LogReader`] drives them over a file (or any `Read + Seek`) with bounded
//! memory; [`read_all`] reads a byte slice; [`damaged_records`] lists what
//! can still be told about the records in a skipped range (for forensics:
//! their checksums failed, so nothing in them may be trusted).
//!
//! A record found by scanning could, in principle, be bytes inside another
//! record's payload that happen to form a valid record (a queue file mailed
//! as an attachment): the scan starts only where damage destroyed a header,
//! so this needs damage and such content in the same place.

mod reader;

pub use reader::{EndState, Entry, LogReader, Record, Skipped, read_all};

/// The two bytes every record starts with.
pub(crate) const MAGIC: [u8; 2] = [0xD5, 0x51];

/// Bytes before the payload.
pub const HEADER_LEN: usize = 15;

/// Largest payload a record may carry (64 MiB). Larger contents go to files
/// of their own; an encoded length above this is corruption.
pub(crate) const MAX_PAYLOAD: u32 = 64 << 20;

/// What a record holds. The payload of each type is defined by its user
/// (`Message`: [`super::message`]; the state-log types: qmgr).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// An accepted message: envelope and content (or a pointer to it).
    Message,
    /// The last record of a segment: its writer will never append again.
    Seal,
    Delivered,
    Deferred,
    Bounced,
    Moved,
    Snapshot,
    /// An administrator's operation on a message (hold, release, delete).
    Admin,
    /// The sender of a message was sent its delay warning.
    Warned,
    /// A type this version does not know (written by a newer one). Never
    /// holds the byte of a known type when built by `From<u8>`.
    Other(u8),
}

impl From<u8> for RecordType {
    fn from(b: u8) -> RecordType {
        match b {
            1 => RecordType::Message,
            2 => RecordType::Seal,
            10 => RecordType::Delivered,
            11 => RecordType::Deferred,
            12 => RecordType::Bounced,
            13 => RecordType::Moved,
            14 => RecordType::Snapshot,
            15 => RecordType::Admin,
            16 => RecordType::Warned,
            other => RecordType::Other(other),
        }
    }
}

impl From<RecordType> for u8 {
    fn from(t: RecordType) -> u8 {
        match t {
            RecordType::Message => 1,
            RecordType::Seal => 2,
            RecordType::Delivered => 10,
            RecordType::Deferred => 11,
            RecordType::Bounced => 12,
            RecordType::Moved => 13,
            RecordType::Snapshot => 14,
            RecordType::Admin => 15,
            RecordType::Warned => 16,
            RecordType::Other(b) => b,
        }
    }
}

/// A payload above [`MAX_PAYLOAD`] cannot be framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("record payload of {0} bytes is above the limit of {MAX_PAYLOAD}")]
pub struct RecordTooLarge(pub usize);

/// Why bytes are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CorruptReason {
    #[error("bad magic")]
    BadMagic,
    #[error("header checksum mismatch")]
    BadHeaderChecksum,
    #[error("payload length {0} above the limit")]
    TooLong(u32),
    #[error("record checksum mismatch")]
    BadChecksum,
}

/// The result of [`decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, valid record at the start of the buffer; `len` bytes
    /// (header and payload) were consumed.
    Record {
        rtype: RecordType,
        payload: &'a [u8],
        len: usize,
    },
    /// The buffer is a valid beginning of a record (or empty): more bytes
    /// are needed.
    Incomplete,
    /// The buffer does not start with a valid record.
    Corrupt(CorruptReason),
}

/// The header of a record, as [`encode_header`] builds it.
pub(crate) fn encode_header(
    t: RecordType,
    payload: &[u8],
) -> Result<[u8; HEADER_LEN], RecordTooLarge> {
    encode_header_parts(t, &[payload])
}

/// The header of a record whose payload is the concatenation of `parts`.
pub(crate) fn encode_header_parts(
    t: RecordType,
    parts: &[&[u8]],
) -> Result<[u8; HEADER_LEN], RecordTooLarge> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(total)
        .ok()
        .filter(|&n| n <= MAX_PAYLOAD)
        .ok_or(RecordTooLarge(total))?;
    let mut h = [0u8; HEADER_LEN];
    h[0..2].copy_from_slice(&MAGIC);
    h[2] = t.into();
    h[3..7].copy_from_slice(&len.to_le_bytes());
    let header_crc = crc32fast::hash(&h[0..7]);
    h[7..11].copy_from_slice(&header_crc.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[2..7]);
    for p in parts {
        crc.update(p);
    }
    h[11..15].copy_from_slice(&crc.finalize().to_le_bytes());
    Ok(h)
}

/// One whole record.
pub fn encode(t: RecordType, payload: &[u8]) -> Result<Vec<u8>, RecordTooLarge> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    encode_into(&mut out, t, payload)?;
    Ok(out)
}

/// Appends one whole record to `out` (left unchanged on error).
pub(crate) fn encode_into(
    out: &mut Vec<u8>,
    t: RecordType,
    payload: &[u8],
) -> Result<(), RecordTooLarge> {
    let header = encode_header(t, payload)?;
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(())
}

/// Decodes the record at the start of `buf`. Total on any input.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    let magic_len = buf.len().min(MAGIC.len());
    if buf[..magic_len] != MAGIC[..magic_len] {
        return Decoded::Corrupt(CorruptReason::BadMagic);
    }
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Decoded::Incomplete;
    };
    let header = match parse_header(head) {
        Ok(h) => h,
        Err(reason) => return Decoded::Corrupt(reason),
    };
    let len = HEADER_LEN + header.payload_len as usize;
    let Some(record) = buf.get(..len) else {
        return Decoded::Incomplete;
    };
    let payload = &record[HEADER_LEN..];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&record[2..7]);
    crc.update(payload);
    if crc.finalize() != header.crc {
        return Decoded::Corrupt(CorruptReason::BadChecksum);
    }
    Decoded::Record {
        rtype: header.rtype,
        payload,
        len,
    }
}

/// Where a record may start, as [`find_header`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Candidate {
    /// A whole header that checks (magic, header checksum, length) starts
    /// at this index; its payload is still to be checked.
    Header(usize),
    /// The buffer ends, at this index, with fewer than [`HEADER_LEN`] bytes
    /// that begin like a record: more bytes are needed to tell.
    Partial(usize),
    /// No record starts at or after the index given.
    None,
}

/// The first index at or after `from` where a header that checks starts,
/// or where the end of `buf` could be the beginning of one. Total on any
/// input.
pub(crate) fn find_header(buf: &[u8], from: usize) -> Candidate {
    let mut i = from;
    while let Some(rest) = buf.get(i..) {
        let Some(k) = rest.iter().position(|&b| b == MAGIC[0]) else {
            break;
        };
        let at = i + k;
        let head = &buf[at..];
        if head.len() < HEADER_LEN {
            if head.len() < MAGIC.len() || head[1] == MAGIC[1] {
                return Candidate::Partial(at);
            }
        } else if parse_header(&head[..HEADER_LEN]).is_ok() {
            return Candidate::Header(at);
        }
        i = at + 1;
    }
    Candidate::None
}

/// What can be told about one record in a damaged range (see
/// [`damaged_records`]). Its checksum failed: the payload is evidence, not
/// data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DamagedRecord<'a> {
    /// Index of the header in the range.
    pub at: usize,
    pub rtype: RecordType,
    /// The length its header gives.
    pub payload_len: u32,
    /// The payload bytes that lie in the range (all of them unless the
    /// range ends first).
    pub payload: &'a [u8],
    /// The header is where the previous one ended (or at the start of the
    /// range): the range is accounted for up to this record's end.
    pub chained: bool,
}

/// The records whose header still checks in `range`, a damaged range of a
/// log (a [`Skipped`] one): first the chain of headers from the start of
/// the range, then any further header found by scanning. Total on any
/// input.
pub fn damaged_records(range: &[u8]) -> Vec<DamagedRecord<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut chained = true;
    while at < range.len() {
        let head = range.get(at..at + HEADER_LEN).map(parse_header);
        let Some(Ok(h)) = head else {
            chained = false;
            match find_header(range, at + 1) {
                Candidate::Header(next) => {
                    at = next;
                    continue;
                }
                Candidate::Partial(_) | Candidate::None => break,
            }
        };
        let start = at + HEADER_LEN;
        let end = start.saturating_add(h.payload_len as usize);
        out.push(DamagedRecord {
            at,
            rtype: h.rtype,
            payload_len: h.payload_len,
            payload: &range[start..end.min(range.len())],
            chained,
        });
        at = end;
    }
    out
}

/// A checked header.
struct Header {
    rtype: RecordType,
    payload_len: u32,
    /// The record CRC, still to be checked against the payload.
    crc: u32,
}

/// Checks magic, header checksum and length of a whole header.
fn parse_header(h: &[u8]) -> Result<Header, CorruptReason> {
    let field = |at: usize| {
        let mut b = [0u8; 4];
        if let Some(src) = h.get(at..at + 4) {
            b.copy_from_slice(src);
        }
        u32::from_le_bytes(b)
    };
    if h.len() < HEADER_LEN || h[0..2] != MAGIC {
        return Err(CorruptReason::BadMagic);
    }
    if crc32fast::hash(&h[0..7]) != field(7) {
        return Err(CorruptReason::BadHeaderChecksum);
    }
    let payload_len = field(3);
    if payload_len > MAX_PAYLOAD {
        return Err(CorruptReason::TooLong(payload_len));
    }
    Ok(Header {
        rtype: RecordType::from(h[2]),
        payload_len,
        crc: field(11),
    })
}

#[cfg(test)]
mod resync_tests;
#[cfg(test)]
mod tests;
