//! Record framing for the queue's log files, and a sequential reader.
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
//! Reading a log tells three endings apart ([`EndState`]):
//!
//! - *clean*: the file ends at a record boundary;
//! - *incomplete*: the file ends inside a record whose bytes so far are
//!   valid, or with nothing but zero bytes (what some file systems leave
//!   after a crash): a write cut short by a crash, or one still in progress
//!   in another process. Nothing in it was acknowledged; it is ignored, and a
//!   reader following the file reads on from there later;
//! - *corrupt*: a wrong magic, a header checksum mismatch, an impossible
//!   length or a record checksum mismatch at some offset.
//!
//! [`decode`] is the sans-IO core (bytes in, record / `Incomplete` /
//! `Corrupt` out, total on any input); [`LogReader`] drives it over a file
//! with bounded memory.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The two bytes every record starts with.
pub const MAGIC: [u8; 2] = [0xD5, 0x51];

/// Bytes before the payload.
pub const HEADER_LEN: usize = 15;

/// Largest payload a record may carry (64 MiB). Larger contents go to files
/// of their own; an encoded length above this is corruption.
pub const MAX_PAYLOAD: u32 = 64 << 20;

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
pub fn encode_header(t: RecordType, payload: &[u8]) -> Result<[u8; HEADER_LEN], RecordTooLarge> {
    encode_header_parts(t, &[payload])
}

/// The header of a record whose payload is the concatenation of `parts`.
pub fn encode_header_parts(
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
pub fn encode_into(out: &mut Vec<u8>, t: RecordType, payload: &[u8]) -> Result<(), RecordTooLarge> {
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

/// One record read by [`LogReader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// File offset of the record (its header).
    pub offset: u64,
    pub rtype: RecordType,
    /// Length of the whole payload.
    pub payload_len: u32,
    /// The payload; from [`LogReader::next_record_prefix`] only its first
    /// bytes.
    pub payload: Vec<u8>,
}

impl Record {
    /// File offset of the payload.
    pub fn payload_offset(&self) -> u64 {
        self.offset + HEADER_LEN as u64
    }

    /// File offset just after the record.
    pub fn end_offset(&self) -> u64 {
        self.payload_offset() + u64::from(self.payload_len)
    }

    /// Whether `payload` holds the whole payload.
    pub fn is_whole(&self) -> bool {
        self.payload.len() == self.payload_len as usize
    }
}

/// How the records read so far end (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndState {
    /// Every byte read belongs to a whole record.
    Clean,
    /// The bytes from `offset` to the end of the file are the start of a
    /// record or zero bytes: a torn or unfinished write, to be ignored.
    Incomplete { offset: u64 },
    /// The bytes at `offset` are not a record; nothing after is read.
    Corrupt { offset: u64, reason: CorruptReason },
}

/// How much the reader asks of the file at a time.
const CHUNK: usize = 64 * 1024;

/// Reads the records of a log file in order, from a given offset, holding
/// at most one record (plus [`CHUNK`]) in memory.
///
/// It can follow a file that another process is still appending to: after
/// [`LogReader::next_record`] returned `None` with a clean or incomplete
/// end, calling it again later picks up records appended since. After
/// corruption it stays stopped.
pub struct LogReader {
    file: File,
    /// Bytes read from the file and not yet consumed start at `buf[pos]`.
    buf: Vec<u8>,
    pos: usize,
    /// File offset of `buf[pos]`: the end of the last record returned.
    offset: u64,
    end: EndState,
}

impl LogReader {
    /// Opens `path` for reading records from `offset` (a record boundary,
    /// such as 0 or an earlier reader's [`LogReader::offset`]).
    pub fn open(path: &Path, offset: u64) -> io::Result<LogReader> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(LogReader {
            file,
            buf: Vec::new(),
            pos: 0,
            offset,
            end: EndState::Clean,
        })
    }

    /// The end of the last record returned: where to resume.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How the file ended, once `next_record` returned `None`.
    pub fn end_state(&self) -> EndState {
        self.end
    }

    /// The next whole, valid record, or `None` at the end (see
    /// [`LogReader::end_state`]).
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        self.next_inner(None)
    }

    /// Like [`LogReader::next_record`], but keeps only the first `keep`
    /// bytes of the payload: the rest is read only to verify the checksum,
    /// a chunk at a time. For big message records whose envelope is all the
    /// caller needs.
    pub fn next_record_prefix(&mut self, keep: usize) -> io::Result<Option<Record>> {
        self.next_inner(Some(keep))
    }

    fn next_inner(&mut self, keep: Option<usize>) -> io::Result<Option<Record>> {
        if let EndState::Corrupt { .. } = self.end {
            return Ok(None);
        }
        if !self.fill(HEADER_LEN)? {
            return self.stop_at_eof();
        }
        let header = match parse_header(&self.buf[self.pos..self.pos + HEADER_LEN]) {
            Ok(h) => h,
            Err(reason) => return self.stop_corrupt(reason),
        };
        if let Some(keep) = keep.filter(|&k| k < header.payload_len as usize) {
            return self.stream(header, keep);
        }
        let total = HEADER_LEN + header.payload_len as usize;
        if !self.fill(total)? {
            return self.stop_at_eof();
        }
        match decode(&self.buf[self.pos..self.pos + total]) {
            Decoded::Record {
                rtype,
                payload,
                len,
            } => {
                let record = Record {
                    offset: self.offset,
                    rtype,
                    payload_len: header.payload_len,
                    payload: payload.to_vec(),
                };
                self.pos += len;
                self.offset += len as u64;
                self.end = EndState::Clean;
                Ok(Some(record))
            }
            Decoded::Corrupt(reason) => self.stop_corrupt(reason),
            // Not reached: the header was checked and `total` bytes are here.
            Decoded::Incomplete => self.stop_at_eof(),
        }
    }

    /// Reads a record whose payload is longer than `keep` a chunk at a
    /// time, checking its CRC and keeping the first `keep` bytes. The header
    /// is at `buf[pos..]`.
    fn stream(&mut self, header: Header, keep: usize) -> io::Result<Option<Record>> {
        let start = self.offset;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.buf[self.pos + 2..self.pos + 7]);
        let mut prefix = Vec::with_capacity(keep);
        let mut left = header.payload_len as usize;
        let mut cur = self.pos + HEADER_LEN;
        loop {
            let avail = &self.buf[cur..];
            let take = avail.len().min(left);
            crc.update(&avail[..take]);
            let want = (keep - prefix.len()).min(take);
            prefix.extend_from_slice(&avail[..want]);
            left -= take;
            cur += take;
            if left == 0 {
                break;
            }
            self.buf.clear();
            self.pos = 0;
            cur = 0;
            let more = match self.fill(left.min(CHUNK)) {
                Ok(more) => more,
                Err(e) => {
                    self.rewind(start)?;
                    return Err(e);
                }
            };
            if !more && self.buf.is_empty() {
                // The file ends inside this record: start it again next time.
                self.rewind(start)?;
                self.end = EndState::Incomplete { offset: start };
                return Ok(None);
            }
        }
        if crc.finalize() != header.crc {
            self.rewind(start)?;
            self.end = EndState::Corrupt {
                offset: start,
                reason: CorruptReason::BadChecksum,
            };
            return Ok(None);
        }
        self.pos = cur;
        self.offset = start + (HEADER_LEN + header.payload_len as usize) as u64;
        self.end = EndState::Clean;
        Ok(Some(Record {
            offset: start,
            rtype: header.rtype,
            payload_len: header.payload_len,
            payload: prefix,
        }))
    }

    /// Ensures `want` unconsumed bytes in the buffer; false if the file
    /// ended first (whatever it had is then in the buffer).
    fn fill(&mut self, want: usize) -> io::Result<bool> {
        if self.buf.len() - self.pos >= want {
            return Ok(true);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > 4 * CHUNK {
            self.buf = Vec::new();
        }
        while self.buf.len() < want {
            let have = self.buf.len();
            self.buf.resize(have + (want - have).max(CHUNK), 0);
            let read = loop {
                match self.file.read(&mut self.buf[have..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.buf.truncate(have);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(have + read);
            if read == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The file ended before a whole record: clean, torn, or garbage.
    fn stop_at_eof(&mut self) -> io::Result<Option<Record>> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            self.end = EndState::Clean;
            return Ok(None);
        }
        match decode(rest) {
            Decoded::Corrupt(reason) => self.stop_corrupt(reason),
            Decoded::Incomplete | Decoded::Record { .. } => {
                self.end = EndState::Incomplete {
                    offset: self.offset,
                };
                Ok(None)
            }
        }
    }

    /// Bytes at `offset` are not a record. If they and everything after them
    /// are zero, that is a torn tail; otherwise corruption.
    fn stop_corrupt(&mut self, reason: CorruptReason) -> io::Result<Option<Record>> {
        let offset = self.offset;
        let zeros = self.buf[self.pos..].iter().all(|&b| b == 0) && self.rest_is_zero()?;
        self.rewind(offset)?;
        self.end = if zeros {
            EndState::Incomplete { offset }
        } else {
            EndState::Corrupt { offset, reason }
        };
        Ok(None)
    }

    /// Whether the file from its current position to its end is all zeros.
    fn rest_is_zero(&mut self) -> io::Result<bool> {
        let mut chunk = vec![0u8; CHUNK];
        loop {
            match self.file.read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) if chunk[..n].iter().any(|&b| b != 0) => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Forgets buffered bytes and positions the file at `offset`.
    fn rewind(&mut self, offset: u64) -> io::Result<()> {
        self.buf.clear();
        self.pos = 0;
        self.offset = offset;
        self.file.seek(SeekFrom::Start(offset))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
