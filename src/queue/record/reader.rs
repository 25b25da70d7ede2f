//! [`LogReader`]: reads the records of a log in order, resynchronising
//! after damage (see the module doc of [`super`]).

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use super::{
    Candidate, CorruptReason, Decoded, HEADER_LEN, Header, RecordType, decode, find_header,
    parse_header,
};

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
    #[cfg(test)]
    pub(crate) fn is_whole(&self) -> bool {
        self.payload.len() == self.payload_len as usize
    }
}

/// A range of bytes that are not records, passed over to reach the next
/// valid record (or the end of the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// File offset of the first byte: a record boundary (where the previous
    /// record ended, or 0).
    pub start: u64,
    /// File offset just after the last byte: where the next record starts,
    /// or the end of the file.
    pub end: u64,
    /// Why the bytes at `start` are not a record.
    pub reason: CorruptReason,
    /// Records in the range whose header checked but whose payload did not
    /// (the one at `start` included when `reason` is a record checksum
    /// mismatch).
    pub damaged_headers: u32,
}

impl Skipped {
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start
    }

    /// How many records the range held at least: those whose header was
    /// found, and the one at `start` if its header is what failed. (A
    /// record whose header is destroyed past the start is not seen.)
    pub(crate) fn records_at_least(&self) -> u32 {
        let first = u32::from(self.reason != CorruptReason::BadChecksum);
        self.damaged_headers.saturating_add(first).max(1)
    }
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "skipped {} bytes at offset {}..{} ({})",
            self.len(),
            self.start,
            self.end,
            self.reason
        )
    }
}

/// What [`LogReader::next_entry`] returns, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Record(Record),
    /// Damage passed over; the entry after it (if any) is the record the
    /// reader found again.
    Skipped(Skipped),
}

/// How the entries read so far end (see the module doc of [`super`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndState {
    /// Every byte read belongs to a record or to a skipped range.
    Clean,
    /// The bytes from `offset` to the end of the file are the start of a
    /// record: a torn or unfinished write, not reported as skipped; a
    /// reader following the file resumes here. (Zero bytes to the end are
    /// no write at all: the end is clean, at their start.)
    Incomplete { offset: u64 },
}

/// How much the reader asks of the file at a time.
const CHUNK: usize = 64 * 1024;
/// The smallest read the reader asks for (its first buffer's size).
const MIN_READ: usize = 4 * 1024;

/// An open damaged range.
#[derive(Clone, Copy, Debug)]
struct Damage {
    start: u64,
    reason: CorruptReason,
    headers: u32,
}

/// The result of reading one record whose header is at the reader's
/// position.
enum Got {
    /// Read and checked; the reader is past it.
    Record(Record),
    /// The payload's checksum failed; the record is `total` bytes long. The
    /// reader's position is the record's start or unchanged.
    BadChecksum { total: u64 },
    /// The file ends inside the record. Position as for `BadChecksum`.
    Eof,
}

/// Reads the records of a log file in order, from a given offset, holding
/// at most one record (plus a 64 KiB chunk) in memory, and passing over damage
/// (reported as [`Entry::Skipped`]).
///
/// It can follow a file that another process is still appending to: after
/// [`LogReader::next_entry`] returned `None`, calling it again later picks
/// up what was appended since.
pub struct LogReader<R = File> {
    file: R,
    /// Bytes read from the file and not yet consumed are
    /// `buf[pos..filled]`; `buf[filled..]` is room for the next read,
    /// zeroed once when the buffer grew, not again before every read (a
    /// reader made for each scan of a segment's new tail zeroed a 64 KiB
    /// chunk for a 2 KiB record: a third of qmgr's instructions).
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    /// The last read filled the buffer: the file has more, read bigger.
    read_all_room: bool,
    /// File offset of `buf[pos]`.
    offset: u64,
    end: EndState,
    damage: Option<Damage>,
    /// Looking byte by byte for the next record: `offset` is not known to
    /// be a record boundary.
    scanning: bool,
    /// While scanning: where the run of zero bytes that ends the bytes
    /// passed over began.
    zeros_from: Option<u64>,
    /// While scanning: the first header found whose record runs past the
    /// end of the file (a torn tail, unless a record turns up after it).
    torn_at: Option<u64>,
    /// The record found after damage, returned after its [`Skipped`].
    ready: Option<Record>,
    /// Ranges [`LogReader::next_record`] passed over.
    skipped: Vec<Skipped>,
    /// The file's writer may still be writing it
    /// ([`LogReader::still_written`]).
    still_written: bool,
}

impl LogReader<File> {
    /// Opens `path` for reading records from `offset` (a record boundary,
    /// such as 0 or an earlier reader's [`LogReader::offset`]).
    pub(crate) fn open(path: &Path, offset: u64) -> io::Result<LogReader<File>> {
        LogReader::new(File::open(path)?, offset)
    }
}

/// Reads a whole log held in memory: its entries and how it ends.
pub fn read_all(bytes: &[u8]) -> (Vec<Entry>, EndState) {
    let mut out = Vec::new();
    let Ok(mut r) = LogReader::new(Cursor::new(bytes), 0) else {
        return (out, EndState::Clean);
    };
    // Reading from memory does not fail.
    while let Ok(Some(e)) = r.next_entry() {
        out.push(e);
    }
    (out, r.end_state())
}

impl<R: Read + Seek> LogReader<R> {
    /// Reads `file` from `offset` (a record boundary).
    pub(crate) fn new(mut file: R, offset: u64) -> io::Result<LogReader<R>> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(LogReader {
            file,
            buf: Vec::new(),
            pos: 0,
            filled: 0,
            read_all_room: false,
            offset,
            end: EndState::Clean,
            damage: None,
            scanning: false,
            zeros_from: None,
            torn_at: None,
            ready: None,
            skipped: Vec::new(),
            still_written: false,
        })
    }

    /// Whether the file's writer may still be writing it (a segment whose
    /// writer holds it: [`crate::queue::log`]). Then the reader stops,
    /// to read on from there later, where the next record is not there
    /// yet: at a record header of zero bytes (the writer's room ahead of
    /// its records), without reading the rest of the file; and at bytes
    /// that are not a whole valid record (`Incomplete`), since over that
    /// room a record being written shows as a record cut short by zeros,
    /// which is no damage. Off (the default, for finished files), zeros
    /// and damage are passed over and reported, and the records after
    /// them found.
    pub(crate) fn still_written(&mut self, on: bool) {
        self.still_written = on;
    }

    /// Where to resume, once `next_entry` returned `None`: the end of the
    /// last record or skipped range, or the start of an incomplete tail.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// How the file ended, once `next_entry` returned `None`.
    pub(crate) fn end_state(&self) -> EndState {
        self.end
    }

    /// The next record or skipped range, or `None` at the end (see
    /// [`LogReader::end_state`]).
    pub(crate) fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        self.next_inner(None)
    }

    /// Like [`LogReader::next_entry`], but keeps only the first `keep`
    /// bytes of each payload: the rest is read only to verify the checksum,
    /// a chunk at a time. For big message records whose envelope is all the
    /// caller needs.
    #[cfg(test)]
    pub(crate) fn next_entry_prefix(&mut self, keep: usize) -> io::Result<Option<Entry>> {
        self.next_inner(Some(keep))
    }

    /// The next whole, valid record, or `None` at the end; skipped ranges
    /// on the way are kept in [`LogReader::skipped`].
    pub(crate) fn next_record(&mut self) -> io::Result<Option<Record>> {
        self.next_record_inner(None)
    }

    /// [`LogReader::next_record`] keeping the first `keep` bytes of the
    /// payload (see [`LogReader::next_entry_prefix`]).
    #[cfg(test)]
    pub(crate) fn next_record_prefix(&mut self, keep: usize) -> io::Result<Option<Record>> {
        self.next_record_inner(Some(keep))
    }

    /// The ranges [`LogReader::next_record`] passed over so far.
    #[cfg(test)]
    pub(crate) fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    fn next_record_inner(&mut self, keep: Option<usize>) -> io::Result<Option<Record>> {
        loop {
            match self.next_inner(keep)? {
                Some(Entry::Record(r)) => return Ok(Some(r)),
                Some(Entry::Skipped(s)) => self.skipped.push(s),
                None => return Ok(None),
            }
        }
    }

    fn next_inner(&mut self, keep: Option<usize>) -> io::Result<Option<Entry>> {
        if let Some(r) = self.ready.take() {
            return Ok(Some(Entry::Record(r)));
        }
        loop {
            if self.scanning {
                return self.scan(keep);
            }
            if !self.fill(HEADER_LEN)? {
                let rest = &self.buf[self.pos..self.filled];
                if rest.is_empty() {
                    self.end = EndState::Clean;
                    return Ok(self.close_damage().map(Entry::Skipped));
                }
                if let Decoded::Corrupt(reason) = decode(rest) {
                    if self.still_written {
                        return self.not_yet();
                    }
                    self.start_scanning(reason);
                    continue;
                }
                self.end = EndState::Incomplete {
                    offset: self.offset,
                };
                return Ok(self.close_damage().map(Entry::Skipped));
            }
            if self.still_written
                && self.damage.is_none()
                && self.buf[self.pos..self.pos + HEADER_LEN]
                    .iter()
                    .all(|&b| b == 0)
            {
                // The writer's room: read again from here next time.
                self.rewind(self.offset)?;
                self.end = EndState::Clean;
                return Ok(None);
            }
            let header = match parse_header(&self.buf[self.pos..self.pos + HEADER_LEN]) {
                Ok(h) => h,
                Err(_) if self.still_written => return self.not_yet(),
                Err(reason) => {
                    self.start_scanning(reason);
                    continue;
                }
            };
            let at = self.offset;
            match self.read_record(header, keep)? {
                Got::Record(rec) => return Ok(Some(self.found(rec))),
                Got::BadChecksum { .. } if self.still_written => {
                    self.skip_to(at)?;
                    return self.not_yet();
                }
                Got::BadChecksum { total } => {
                    // The header checks, so its length holds: the next
                    // record starts right after this one.
                    match &mut self.damage {
                        Some(d) => d.headers += 1,
                        None => {
                            self.damage = Some(Damage {
                                start: at,
                                reason: CorruptReason::BadChecksum,
                                headers: 1,
                            })
                        }
                    }
                    self.skip_to(at + total)?;
                }
                Got::Eof => {
                    self.skip_to(at)?;
                    self.end = EndState::Incomplete { offset: at };
                    return Ok(self.close_damage().map(Entry::Skipped));
                }
            }
        }
    }

    /// A valid record at the end of damage comes after its [`Skipped`].
    fn found(&mut self, rec: Record) -> Entry {
        self.end = EndState::Clean;
        match self.close_damage_at(rec.offset) {
            Some(s) => {
                self.ready = Some(rec);
                Entry::Skipped(s)
            }
            None => Entry::Record(rec),
        }
    }

    /// The open damaged range, ended at the current offset.
    fn close_damage(&mut self) -> Option<Skipped> {
        self.close_damage_at(self.offset)
    }

    /// The open damaged range, ended at `end`.
    fn close_damage_at(&mut self, end: u64) -> Option<Skipped> {
        let d = self.damage.take()?;
        (end > d.start).then_some(Skipped {
            start: d.start,
            end,
            reason: d.reason,
            damaged_headers: d.headers,
        })
    }

    /// The bytes at the current offset are not a record: look for the next
    /// one from here.
    fn start_scanning(&mut self, reason: CorruptReason) {
        if self.damage.is_none() {
            self.damage = Some(Damage {
                start: self.offset,
                reason,
                headers: 0,
            });
        }
        self.scanning = true;
        self.zeros_from = None;
        self.torn_at = None;
    }

    /// Scans for the next record whose magic, header CRC and record CRC
    /// hold; returns the damage passed over, or decides how the file ends.
    fn scan(&mut self, keep: Option<usize>) -> io::Result<Option<Entry>> {
        loop {
            if self.pos >= self.filled && !self.fill(1)? {
                return Ok(self.scanned_to_eof());
            }
            match find_header(&self.buf[self.pos..self.filled], 0) {
                Candidate::None => self.pass(self.filled - self.pos),
                Candidate::Partial(i) => {
                    self.pass(i);
                    if !self.fill(HEADER_LEN)? {
                        // Fewer bytes than a header, at the end: perhaps a
                        // record cut short.
                        self.torn_at.get_or_insert(self.offset);
                        self.pass(self.filled - self.pos);
                    }
                }
                Candidate::Header(i) => {
                    self.pass(i);
                    let at = self.offset;
                    let Ok(header) = parse_header(&self.buf[self.pos..self.pos + HEADER_LEN])
                    else {
                        self.pass(1);
                        continue;
                    };
                    match self.read_record(header, keep)? {
                        Got::Record(rec) => {
                            self.scanning = false;
                            self.torn_at = None;
                            self.zeros_from = None;
                            return Ok(Some(self.found(rec)));
                        }
                        Got::BadChecksum { .. } => {
                            if let Some(d) = &mut self.damage {
                                d.headers += 1;
                            }
                        }
                        Got::Eof => {
                            self.torn_at.get_or_insert(at);
                        }
                    }
                    // Not a record here: go on from the next byte.
                    self.skip_to(at)?;
                    if self.fill(1)? {
                        self.pass(1);
                    }
                }
            }
        }
    }

    /// The file is still written and the bytes here are not a whole
    /// record yet: stop, to read them again from here later.
    fn not_yet(&mut self) -> io::Result<Option<Entry>> {
        let at = self.offset;
        self.rewind(at)?;
        self.end = EndState::Incomplete { offset: at };
        Ok(self.close_damage().map(Entry::Skipped))
    }

    /// Scanning reached the end of the file without finding a record: the
    /// damage runs to the end, except for a torn tail (a header whose record
    /// runs past the end, or zero bytes) which is left incomplete.
    fn scanned_to_eof(&mut self) -> Option<Entry> {
        self.scanning = false;
        let zeros = self.zeros_from.take();
        if let Some(t) = self.torn_at.take() {
            // Resume at the tail; the bytes from there are read again.
            if self.skip_to(t).is_err() {
                self.end = EndState::Clean;
                return self.close_damage().map(Entry::Skipped);
            }
            self.end = EndState::Incomplete { offset: t };
        } else if let Some(t) = zeros {
            // Nothing but zeros to the end: nothing was written there (a
            // writer's zeroed room, or what a file system leaves after a
            // crash). Read again from there next time.
            let damage = self.close_damage_at(t);
            self.end = EndState::Clean;
            if self.rewind(t).is_err() {
                self.offset = t;
            }
            return damage.map(Entry::Skipped);
        } else {
            self.end = EndState::Clean;
        }
        self.close_damage().map(Entry::Skipped)
    }

    /// Passes over `n` buffered bytes while scanning, noting whether they
    /// end in zeros.
    fn pass(&mut self, n: usize) {
        let bytes = &self.buf[self.pos..self.pos + n];
        match bytes.iter().rposition(|&b| b != 0) {
            Some(k) if k + 1 < n => self.zeros_from = Some(self.offset + k as u64 + 1),
            Some(_) => self.zeros_from = None,
            None if n > 0 => {
                self.zeros_from.get_or_insert(self.offset);
            }
            None => {}
        }
        self.pos += n;
        self.offset += n as u64;
    }

    /// Reads the record whose checked header is at `buf[pos..]`.
    fn read_record(&mut self, header: Header, keep: Option<usize>) -> io::Result<Got> {
        if let Some(keep) = keep.filter(|&k| k < header.payload_len as usize) {
            return self.stream(header, keep);
        }
        let total = HEADER_LEN + header.payload_len as usize;
        if !self.fill(total)? {
            return Ok(Got::Eof);
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
                Ok(Got::Record(record))
            }
            // Only the payload is left to fail: the header was checked and
            // `total` bytes are here.
            Decoded::Corrupt(_) | Decoded::Incomplete => Ok(Got::BadChecksum {
                total: total as u64,
            }),
        }
    }

    /// Reads a record whose payload is longer than `keep` a chunk at a
    /// time, checking its CRC and keeping the first `keep` bytes. The header
    /// is at `buf[pos..]`. On failure the reader is back at the record.
    fn stream(&mut self, header: Header, keep: usize) -> io::Result<Got> {
        let start = self.offset;
        let total = (HEADER_LEN + header.payload_len as usize) as u64;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.buf[self.pos + 2..self.pos + 7]);
        let mut prefix = Vec::with_capacity(keep);
        let mut left = header.payload_len as usize;
        let mut cur = self.pos + HEADER_LEN;
        loop {
            let avail = &self.buf[cur..self.filled];
            let take = avail.len().min(left);
            crc.update(&avail[..take]);
            let want = (keep - prefix.len()).min(take);
            prefix.extend_from_slice(&avail[..want]);
            left -= take;
            cur += take;
            if left == 0 {
                break;
            }
            self.filled = 0;
            self.pos = 0;
            cur = 0;
            let more = match self.fill(left.min(CHUNK)) {
                Ok(more) => more,
                Err(e) => {
                    self.rewind(start)?;
                    return Err(e);
                }
            };
            if !more && self.filled == 0 {
                self.rewind(start)?;
                return Ok(Got::Eof);
            }
        }
        if crc.finalize() != header.crc {
            self.rewind(start)?;
            return Ok(Got::BadChecksum { total });
        }
        self.pos = cur;
        self.offset = start + total;
        Ok(Got::Record(Record {
            offset: start,
            rtype: header.rtype,
            payload_len: header.payload_len,
            payload: prefix,
        }))
    }

    /// Ensures `want` unconsumed bytes in the buffer; false if the file
    /// ended first (whatever it had is then in the buffer).
    fn fill(&mut self, want: usize) -> io::Result<bool> {
        if self.filled - self.pos >= want {
            return Ok(true);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
        }
        if self.filled == 0 && self.buf.len() > 4 * CHUNK {
            self.buf = Vec::new();
        }
        while self.filled < want {
            // Room for what is wanted, and at least MIN_READ; the buffer
            // doubles up to CHUNK while reads fill it.
            let need = (want - self.filled).max(MIN_READ);
            let room = self.buf.len() - self.filled;
            if room < need || (self.read_all_room && self.buf.len() < CHUNK) {
                let grown = (self.filled + need).max((self.buf.len() * 2).min(CHUNK));
                self.buf.resize(grown, 0);
            }
            let read = loop {
                match self.file.read(&mut self.buf[self.filled..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            self.read_all_room = read == self.buf.len() - self.filled;
            if read == 0 {
                return Ok(false);
            }
            self.filled += read;
        }
        Ok(true)
    }

    /// Moves to file offset `target`: within the buffer if it is there,
    /// else by seeking.
    fn skip_to(&mut self, target: u64) -> io::Result<()> {
        let avail = (self.filled - self.pos) as u64;
        match target.checked_sub(self.offset) {
            Some(d) if d <= avail => {
                self.pos += d as usize;
                self.offset = target;
                Ok(())
            }
            _ => self.rewind(target),
        }
    }

    /// Forgets buffered bytes and positions the file at `offset`.
    fn rewind(&mut self, offset: u64) -> io::Result<()> {
        self.filled = 0;
        self.pos = 0;
        self.offset = offset;
        self.file.seek(SeekFrom::Start(offset))?;
        Ok(())
    }
}
