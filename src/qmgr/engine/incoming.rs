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
        if replayed.is_empty() && !self.win.replay_rest.is_empty() {
            let mut rest = std::mem::take(&mut self.win.replay_rest);
            self.scan_incoming(&mut rest);
            if self.win.incoming_waiting {
                self.win.replay_rest = rest;
            }
            return;
        }
        self.win.incoming_waiting = false;
        let dir = self.qdir.join(INCOMING);
        let names = match sorted_files(&dir, |n| {
            n.starts_with(SEGMENT_PREFIXES) && n.ends_with(".log")
        }) {
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
            self.read_segment(&dir, name, newer, replayed);
        }
        self.segments.retain(|n, _| names.contains(n));
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
    ) {
        let path = dir.join(name);
        if self.removing(&path) {
            return;
        }
        let seg = self.segments.entry(name.to_string()).or_default();
        if seg.sealed || seg.abandoned {
            return;
        }
        let offset = seg.offset;
        let rel = format!("{INCOMING}/{name}");
        // Asked before reading: if the writer is gone now, what is read
        // next is all there will ever be.
        let gone = match writer_gone(&path) {
            Ok(gone) => gone,
            Err(e) => {
                log::warn!("{rel}: cannot tell whether it is still written: {e}");
                false
            }
        };
        let mut reader = match LogReader::open(&path, offset) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("{rel}: {e}");
                return;
            }
        };
        let mut stopped = false;
        loop {
            if self.window_full(name, reader.offset()) {
                stopped = true;
                break;
            }
            match reader.next_entry() {
                Ok(Some(Entry::Record(rec))) if rec.rtype == RecordType::Message => {
                    let off = rec.payload_offset();
                    match decode_message(&rec.payload, off, &rel) {
                        Ok((env, content)) => self.incoming_message(name, env, content, replayed),
                        Err(e) => log::warn!("{rel}: offset {off}: bad message record: {e}"),
                    }
                }
                Ok(Some(Entry::Record(rec))) if rec.rtype == RecordType::Seal => {
                    if let Some(seg) = self.segments.get_mut(name) {
                        seg.sealed = true;
                    }
                }
                Ok(Some(Entry::Record(rec))) => log::warn!(
                    "{rel}: offset {}: unexpected record {:?}",
                    rec.offset,
                    rec.rtype
                ),
                Ok(Some(Entry::Skipped(s))) => {
                    log::warn!(
                        "{rel}: {s}; at least {} lost{}",
                        plural(s.records_at_least(), "message"),
                        name_damaged(&path, &s)
                    );
                    if let Some(seg) = self.segments.get_mut(name) {
                        seg.corrupt = true;
                    }
                }
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
