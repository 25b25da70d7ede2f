//! Reading the segments in `incoming/`: new messages, damage (each skipped
//! range logged with its offsets, the messages around it still read), the
//! end of a segment (sealed, or its writer gone: then an incomplete tail is
//! a loss worth a warning), and what becomes of a segment whose messages
//! are all finished (deleted, or kept in `corrupt/` when it was damaged).

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{Engine, Origin, Removal, SEGMENT_PREFIXES, sorted_files};
use crate::qmgr::state::Replayed;
use crate::queue::log::writer_gone;
use crate::queue::message::{decode_message, envelope_hint};
use crate::queue::record::{EndState, Entry, LogReader, RecordType, Skipped, damaged_records};
use crate::queue::{ContentRef, Envelope, INCOMING, QueueId};

/// What a scan of `incoming/` does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// List the directory, ask each segment whether its writer is gone.
    Full,
    /// A writer's wake-up: see [`Engine::scan_incoming_woken`].
    Woken,
}

/// The segment names of `incoming/` as last listed, with the directory's
/// modification time then. A wake-up lists the directory again only when
/// that time changed, or when the listing was taken less than
/// [`SETTLED`] after it (the time stamps come from a coarse clock: a
/// segment made just after a listing can carry the same time).
#[derive(Default)]
pub(crate) struct Listing {
    names: Vec<String>,
    /// The directory's mtime at the listing, and when the listing was
    /// taken; `None`: list again.
    taken: Option<(std::time::SystemTime, std::time::SystemTime)>,
}

/// How long after the directory's last change a listing must have been
/// taken to stand for it (well over the coarse clock's tick).
const SETTLED: std::time::Duration = std::time::Duration::from_millis(100);

impl Listing {
    /// The names, taken out until [`Listing::put_back`] (no copy per
    /// wake-up).
    fn take(&mut self, dir: &Path, how: Scan) -> std::io::Result<Vec<String>> {
        let mtime = fs::metadata(dir)?.modified()?;
        if how == Scan::Woken
            && let Some((at, taken)) = self.taken
            && at == mtime
            && taken.duration_since(mtime).is_ok_and(|d| d >= SETTLED)
        {
            return Ok(std::mem::take(&mut self.names));
        }
        let taken = std::time::SystemTime::now();
        let names = sorted_files(dir, |n| {
            n.starts_with(SEGMENT_PREFIXES) && n.ends_with(".log")
        })?;
        self.taken = Some((mtime, taken));
        Ok(names)
    }

    fn put_back(&mut self, names: Vec<String>) {
        self.names = names;
    }
}

/// Largest damaged range read again to name the messages in it.
const FORENSIC_MAX: u64 = 4 << 20;
/// At most this many damaged messages are named in a warning.
const NAMED_MAX: usize = 5;

impl Engine {
    /// Read new records from every segment in `incoming/`.
    ///
    /// Only while the active window has room (`queue.active_limit`): a
    /// segment is read up to the record that would not fit, and read on
    /// from there when room comes (`win.incoming_waiting`). At start,
    /// `replayed` is what the state log says; what it says about messages
    /// not read yet is kept for when they are.
    pub(crate) fn scan_incoming(&mut self, replayed: &mut HashMap<QueueId, Replayed>) {
        self.scan(replayed, Scan::Full);
    }

    /// [`Engine::scan_incoming`] for a writer's wake-up: the listing of
    /// `incoming/` is taken again only when the directory changed (see
    /// [`Listing`]), and whether a segment's writer is gone is left to the
    /// next full scan (at most `SCAN_EVERY` later). At one session a
    /// wake-up comes per message: this is most of what qmgr's scan cost
    /// then (issue 22).
    pub(crate) fn scan_incoming_woken(&mut self) {
        self.scan(&mut HashMap::new(), Scan::Woken);
    }

    fn scan(&mut self, replayed: &mut HashMap<QueueId, Replayed>, how: Scan) {
        if replayed.is_empty() && !self.win.replay_rest.is_empty() {
            let mut rest = std::mem::take(&mut self.win.replay_rest);
            self.scan(&mut rest, how);
            if self.win.incoming_waiting {
                self.win.replay_rest = rest;
            }
            return;
        }
        self.win.incoming_waiting = false;
        let dir = self.qdir.join(INCOMING);
        let names = match self.listing.take(&dir, how) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("cannot list {}: {e}", dir.display());
                return;
            }
        };
        for (i, name) in names.iter().enumerate() {
            // A writer only appends to its newest segment: one older than
            // another of the same writer (same prefix letter) is finished.
            let prefix = name.chars().next();
            let newer = names[i + 1..].iter().any(|n| n.chars().next() == prefix);
            self.read_segment(&dir, name, newer, replayed, how);
        }
        self.segments.retain(|n, _| names.contains(n));
        self.listing.put_back(names);
        let all: Vec<String> = self.segments.keys().cloned().collect();
        for name in all {
            self.maybe_delete_segment(&name);
        }
    }

    fn read_segment(
        &mut self,
        dir: &Path,
        name: &str,
        newer: bool,
        replayed: &mut HashMap<QueueId, Replayed>,
        how: Scan,
    ) {
        let path = dir.join(name);
        if self.removing(&path) {
            return;
        }
        let seg = self.segments.entry(name.to_string()).or_default();
        if seg.sealed || seg.abandoned {
            seg.reader = None;
            return;
        }
        let offset = seg.offset;
        let kept = seg.reader.take().filter(|r| r.offset() == offset);
        let rel = format!("{INCOMING}/{name}");
        // Asked before reading: if the writer is gone now, what is read
        // next is all there will ever be. A wake-up leaves it to the next
        // full scan (not gone: the segment is only read on).
        let gone = match how {
            Scan::Woken => false,
            Scan::Full => match writer_gone(&path) {
                Ok(gone) => gone,
                Err(e) => {
                    log::warn!("{rel}: cannot tell whether it is still written: {e}");
                    false
                }
            },
        };
        let mut reader = match kept {
            Some(r) => r,
            None => match LogReader::open(&path, offset) {
                Ok(r) => r,
                Err(e) => {
                    log::warn!("{rel}: {e}");
                    return;
                }
            },
        };
        // A segment its writer may still append to: what is not a whole
        // record yet (its room of zeros, a record being written) is read
        // again later, not taken for damage; a finished one is read to the
        // end, its damage passed over and reported.
        reader.still_written(!(gone || newer));
        let mut stopped = false;
        loop {
            if self.window_full(name, reader.offset()) {
                stopped = true;
                break;
            }
            match reader.next_entry() {
                Ok(Some(entry)) => self.read_entry(name, &path, entry, replayed),
                Ok(None) => break,
                Err(e) => {
                    log::warn!("{rel}: read error: {e}");
                    break;
                }
            }
        }
        let Some(seg) = self.segments.get_mut(name) else {
            return;
        };
        if stopped {
            return;
        }
        seg.unread = false;
        seg.offset = reader.offset();
        seg.abandoned |= gone;
        let finished = seg.sealed || gone || newer;
        // Kept for the next scan only at a clean record boundary of a
        // segment that may grow: after damage or a torn tail the next
        // scan opens it afresh, as it always did.
        if !finished && reader.end_state() == EndState::Clean {
            seg.reader = Some(reader);
            return;
        }
        if let EndState::Incomplete { offset } = reader.end_state()
            && finished
            && !seg.tail_logged
        {
            seg.tail_logged = true;
            seg.corrupt = true;
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(offset);
            log::warn!(
                "{rel}: incomplete record at offset {offset}, {} bytes to the end of the file: \
                 a write cut short by a crash (never acknowledged) or the file was truncated \
                 (any messages after it are lost)",
                len.saturating_sub(offset)
            );
        }
    }

    /// One entry read from segment `name` (at `path`).
    fn read_entry(
        &mut self,
        name: &str,
        path: &Path,
        entry: Entry,
        replayed: &mut HashMap<QueueId, Replayed>,
    ) {
        let rel = format!("{INCOMING}/{name}");
        match entry {
            Entry::Record(rec) if rec.rtype == RecordType::Message => {
                let off = rec.payload_offset();
                match decode_message(&rec.payload, off, &rel) {
                    Ok((env, content)) => {
                        let q = unread_class(replayed.get(&env.id));
                        self.counted_read(name, rec.offset, rec.end_offset(), q);
                        self.incoming_message(name, env, content, replayed)
                    }
                    Err(e) => {
                        self.counted_read(name, u64::MAX, 0, None);
                        log::warn!("{rel}: offset {off}: bad message record: {e}")
                    }
                }
            }
            Entry::Record(rec) if rec.rtype == RecordType::Seal => {
                self.counted_read(name, rec.offset, rec.end_offset(), None);
                if let Some(seg) = self.segments.get_mut(name) {
                    seg.sealed = true;
                }
            }
            Entry::Record(rec) => {
                self.counted_read(name, rec.offset, rec.end_offset(), None);
                log::warn!(
                    "{rel}: offset {}: unexpected record {:?}",
                    rec.offset,
                    rec.rtype
                )
            }
            Entry::Skipped(s) => {
                self.counted_read(name, u64::MAX, 0, None);
                log::warn!(
                    "{rel}: {s}; at least {} lost{}",
                    plural(s.records_at_least(), "message"),
                    name_damaged(path, &s)
                );
                if let Some(seg) = self.segments.get_mut(name) {
                    seg.corrupt = true;
                }
            }
        }
    }

    /// Whether the window is full: then segment `name` is read on from
    /// `offset` when room comes.
    fn window_full(&mut self, name: &str, offset: u64) -> bool {
        if self.messages.len() < self.cfg.queue.active_limit {
            return false;
        }
        self.win.incoming_waiting = true;
        if let Some(seg) = self.segments.get_mut(name) {
            seg.offset = offset;
            seg.unread = true;
        }
        true
    }

    fn incoming_message(
        &mut self,
        seg: &str,
        env: Envelope,
        content: ContentRef,
        replayed: &mut HashMap<QueueId, Replayed>,
    ) {
        let id = env.id.clone();
        let r = replayed.remove(&id);
        // A segment from before the start: the message may have a
        // `deferred/` file written just before a crash cut its `Moved`
        // record; then the file is in charge.
        let obsolete = self.messages.contains_key(&id)
            || r.as_ref().is_some_and(|r| r.moved || r.finished)
            || (self.win.start_segments.contains(seg)
                && super::deferred::deferred_path(&self.qdir, &id).exists());
        if obsolete {
            if let Some(s) = self.segments.get_mut(seg) {
                s.finished.insert(id);
            }
            return;
        }
        self.add_message(env, content, Origin::Segment(seg.to_string()), r);
    }

    /// A segment goes when no live message is in it and no writer appends
    /// to it any more (sealed, a newer segment of the same writer exists,
    /// or its writer is gone). A damaged one is kept in `corrupt/`.
    pub(super) fn maybe_delete_segment(&mut self, name: &str) {
        let Some(seg) = self.segments.get(name) else {
            return;
        };
        let prefix = name.chars().next();
        let newer = self
            .segments
            .range::<str, _>((std::ops::Bound::Excluded(name), std::ops::Bound::Unbounded))
            .any(|(n, _)| n.chars().next() == prefix);
        if !seg.live.is_empty() || seg.unread || !(seg.sealed || seg.abandoned || newer) {
            return;
        }
        let path = self.qdir.join(INCOMING).join(name);
        self.removals.push(if seg.corrupt {
            let mut done: Vec<QueueId> = seg.finished.iter().cloned().collect();
            done.sort();
            Removal::Corrupt { path, done }
        } else {
            Removal::Remove(path)
        });
        self.segments.remove(name);
    }
}

/// `n thing` or `n things`.
fn plural(n: u32, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// What the damaged message records in the range `s` of a segment still
/// say about themselves (their checksums failed: a hint for the
/// administrator, never acted on), as the end of a log line.
fn name_damaged(path: &Path, s: &Skipped) -> String {
    if s.len() > FORENSIC_MAX {
        return String::new();
    }
    let Ok(bytes) = read_range(path, s.start, s.len()) else {
        return String::new();
    };
    let mut named = Vec::new();
    for d in damaged_records(&bytes) {
        if d.rtype != RecordType::Message {
            continue;
        }
        if let Some(hint) = envelope_hint(d.payload, u64::from(d.payload_len)) {
            named.push(hint.to_string());
        }
    }
    if named.is_empty() {
        return String::new();
    }
    let more = named.len().saturating_sub(NAMED_MAX);
    named.truncate(NAMED_MAX);
    let mut text = format!("; damaged records say: {}", named.join(", "));
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// `len` bytes of the file at `path` from `start` (fewer at its end).
pub(super) fn read_range(path: &Path, start: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut f = fs::File::open(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut out = Vec::new();
    f.take(len).read_to_end(&mut out)?;
    Ok(out)
}

/// The messages in the parts of segments not read yet (the active window
/// was full), per queue: counted from the record headers and each
/// message's envelope ID, without taking them into memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Unread {
    /// Never tried (or nothing recorded about them).
    pub active: usize,
    /// Tried and deferred before a restart (the state log says so).
    pub deferred: usize,
    pub held: usize,
    /// The oldest arrival in each: active, deferred, held.
    pub oldest_us: [Option<u64>; 3],
}

impl Unread {
    pub(crate) fn total(&self) -> usize {
        self.active + self.deferred + self.held
    }

    fn add(&mut self, o: Unread) {
        self.active += o.active;
        self.deferred += o.deferred;
        self.held += o.held;
        for (mine, theirs) in self.oldest_us.iter_mut().zip(o.oldest_us) {
            if let Some(a) = theirs {
                *mine = Some(mine.map_or(a, |b| b.min(a)));
            }
        }
    }
}

impl Engine {
    /// [`Unread`] over every segment with records not read yet. Each
    /// segment's count is kept until its read offset or its length
    /// changes (or an operation on a message in it, see
    /// [`Engine::forget_unread_counts`]).
    pub(crate) fn unread(&self) -> Unread {
        let mut total = Unread::default();
        for (name, seg) in self.segments.iter().filter(|(_, s)| s.unread) {
            let path = self.qdir.join(INCOMING).join(name);
            let len = fs::metadata(&path).map_or(0, |m| m.len());
            let c = match seg.unread_count.get() {
                Some((o, counted, c)) if o == seg.offset && counted >= len => c,
                Some((o, counted, mut c)) if o == seg.offset => {
                    // Written since (appended, or over the writer's
                    // zeroed room): count the new part only.
                    let (more, end) = count_unread(&path, counted, len, &self.win.replay_rest);
                    c.add(more);
                    seg.unread_count.set(Some((o, end, c)));
                    c
                }
                _ => {
                    let (c, end) = count_unread(&path, seg.offset, len, &self.win.replay_rest);
                    seg.unread_count.set(Some((seg.offset, end, c)));
                    c
                }
            };
            total.add(c);
        }
        total
    }

    /// The messages not read yet from their segments (the window was
    /// full), but for those the state log says are finished or moved.
    pub(crate) fn unread_ids(&self) -> Vec<QueueId> {
        let mut out = Vec::new();
        for (name, seg) in self.segments.iter().filter(|(_, s)| s.unread) {
            let path = self.qdir.join(INCOMING).join(name);
            let len = fs::metadata(&path).map_or(0, |m| m.len());
            let _ = walk_unread(&path, seg.offset, len, |id, _| {
                if !self
                    .win
                    .replay_rest
                    .get(&id)
                    .is_some_and(|r| r.finished || r.moved)
                {
                    out.push(id);
                }
            });
        }
        out
    }

    /// The record from `start` to `end` of segment `name` was read (a
    /// message of queue `q` of [`Unread`], or another record): its
    /// unread count, if it starts there, goes on from `end` without it.
    /// Anything else (damage) makes it count again.
    fn counted_read(&self, name: &str, start: u64, end: u64, q: Option<usize>) {
        let Some(seg) = self.segments.get(name) else {
            return;
        };
        let Some((off, counted, mut c)) = seg.unread_count.get() else {
            return;
        };
        if off != start || end > counted {
            seg.unread_count.set(None);
            return;
        }
        if let Some(q) = q {
            let n = [&mut c.active, &mut c.deferred, &mut c.held];
            *n[q] = n[q].saturating_sub(1);
            if *n[q] == 0 {
                c.oldest_us[q] = None;
            }
        }
        seg.unread_count.set(Some((end, counted, c)));
    }

    /// The unread counts are out of date (a message in them was held,
    /// released or deleted).
    pub(crate) fn forget_unread_counts(&self) {
        for seg in self.segments.values() {
            seg.unread_count.set(None);
        }
    }
}

/// The envelope's fields [`count_unread`] needs.
#[derive(serde::Deserialize)]
struct IdAndArrival {
    id: QueueId,
    arrival_us: u64,
}

/// Which count of [`Unread`] a message not read yet is in, by what the
/// state log says about it: none (finished or moved), active, deferred,
/// held.
fn unread_class(r: Option<&Replayed>) -> Option<usize> {
    match r {
        Some(r) if r.finished || r.moved => None,
        Some(r) if r.held => Some(2),
        Some(r) if !r.records.is_empty() => Some(1),
        _ => Some(0),
    }
}

/// Count the Message records of `path` from `pos` to `len` by queue
/// (see [`walk_unread`]); `rest` is what the state log says about them.
/// The messages from `pos` to `len`, and where the records counted end.
fn count_unread(
    path: &Path,
    pos: u64,
    len: u64,
    rest: &HashMap<QueueId, Replayed>,
) -> (Unread, u64) {
    let mut c = Unread::default();
    let end = walk_unread(path, pos, len, |id, arrival_us| {
        let Some(q) = unread_class(rest.get(&id)) else {
            return;
        };
        let n = [&mut c.active, &mut c.deferred, &mut c.held];
        *n[q] += 1;
        c.oldest_us[q] = Some(c.oldest_us[q].map_or(arrival_us, |b| b.min(arrival_us)));
    });
    (c, end)
}

/// Each Message record's envelope ID and arrival in `path` from `pos` to
/// `len`: the record headers and the envelopes are read, the contents
/// skipped. Stops at the first bytes that are not a record header (damage
/// is left to the reading proper; zeros are the writer's room): returns
/// where.
pub(super) fn walk_unread(
    path: &Path,
    mut pos: u64,
    len: u64,
    mut each: impl FnMut(QueueId, u64),
) -> u64 {
    use crate::queue::record::{HEADER_LEN, MAGIC};
    use std::os::unix::fs::FileExt;
    let Ok(f) = fs::File::open(path) else {
        return pos;
    };
    let hl = HEADER_LEN as u64;
    let mut h = [0u8; HEADER_LEN + 4];
    let mut json = Vec::new();
    while pos + hl <= len {
        if f.read_exact_at(&mut h[..HEADER_LEN], pos).is_err() || h[0..2] != MAGIC {
            break;
        }
        let plen = u64::from(u32::from_le_bytes([h[3], h[4], h[5], h[6]]));
        let end = pos + hl + plen;
        if end > len {
            break;
        }
        if RecordType::from(h[2]) == RecordType::Message
            && plen >= 4
            && f.read_exact_at(&mut h[HEADER_LEN..], pos + hl).is_ok()
        {
            let j = &h[HEADER_LEN..];
            let jlen = u64::from(u32::from_le_bytes([j[0], j[1], j[2], j[3]]));
            if jlen + 4 <= plen {
                json.resize(jlen as usize, 0);
                if f.read_exact_at(&mut json, pos + hl + 4).is_ok()
                    && let Ok(e) = serde_json::from_slice::<IdAndArrival>(&json)
                {
                    each(e.id, e.arrival_us);
                }
            }
        }
        pos = end;
    }
    pos
}
