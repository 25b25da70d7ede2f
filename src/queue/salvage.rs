//! `postern queue salvage FILE`: what can still be recovered from a
//! damaged queue file, normally a segment qmgr kept in `corrupt/`.
//!
//! It reads the file with the resynchronising reader, prints every record
//! and every damaged range it finds, and re-queues each intact message
//! that was not handled yet, with its envelope and its queue ID unchanged,
//! as a new sealed segment `incoming/R<ID>.log` (written under a temporary
//! name and renamed, so qmgr sees it whole), then wakes qmgr. qmgr reads
//! it like any segment; with postern stopped, at its next start.
//!
//! Not delivering anything twice is the point. An intact message is
//! skipped when:
//!
//! - qmgr listed it in `<FILE>.done` (qmgr writes that list when it moves
//!   a damaged segment to `corrupt/`: the messages it read from it, all
//!   finished). When there is no such list, the file was moved by a
//!   postern before issue 14, which read a segment only up to its first
//!   damage: then the messages before the first damaged range are the
//!   handled ones;
//! - it is listed in `<FILE>.salvaged` (what earlier runs re-queued: a
//!   second run re-queues nothing twice);
//! - it is in the queue now (when qmgr answers);
//! - its content is in a file of its own (`incoming/<ID>.msg`) that is
//!   gone.
//!
//! A damaged record is never re-queued: its checksum failed, so its
//! recipients and content cannot be trusted (a flipped bit can change an
//! address). What it still seems to say (queue ID, sender) is printed,
//! marked as unverified, so that the administrator can tell the senders.
//!
//! SECURITY: run by root or the postern user (it writes the queue); the
//! new segment is given the owner of `incoming/` and mode 0600. It refuses
//! files in `incoming/` itself, which belong to qmgr.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::message::{decode_message, envelope_hint};
use super::record::{
    EndState, Entry, LogReader, RecordType, Skipped, damaged_records, encode_into,
};
use super::{ContentRef, INCOMING, IdGenerator, QueueId};

/// What to salvage, from where, into which queue.
pub struct Salvage<'a> {
    pub queue_dir: &'a Path,
    /// Tells qmgr to read `incoming/` now (the caller's: the queue does
    /// not speak to qmgr).
    pub wake_qmgr: &'a dyn Fn(),
    /// The IDs in the queue now; `None` when qmgr does not answer.
    pub live: Option<HashSet<String>>,
    /// Only list; change nothing.
    pub dry_run: bool,
}

/// Largest damaged range read again to print what its records say.
const FORENSIC_MAX: u64 = 16 << 20;

/// Reads `file`, prints what it finds on `out`, re-queues what it can;
/// returns how many messages were (or, dry, would be) re-queued.
pub fn salvage(file: &Path, opts: &Salvage<'_>, out: &mut dyn Write) -> anyhow::Result<usize> {
    refuse_incoming(file, opts.queue_dir)?;
    let shown = file.display().to_string();
    let done = read_list(&side_file(file, "done"))?;
    let salvaged = read_list(&side_file(file, "salvaged"))?;
    let mut reader =
        LogReader::open(file, 0).with_context(|| format!("cannot read {}", file.display()))?;
    let mut first_damage: Option<u64> = None;
    let mut take: Vec<(QueueId, Vec<u8>)> = Vec::new();
    let (mut intact, mut damaged_bytes, mut ranges, mut skipped_msgs) = (0, 0, 0, 0);
    while let Some(entry) = reader
        .next_entry()
        .with_context(|| format!("cannot read {}", file.display()))?
    {
        let rec = match entry {
            Entry::Skipped(s) => {
                first_damage.get_or_insert(s.start);
                ranges += 1;
                damaged_bytes += s.len();
                writeln!(
                    out,
                    "{shown}: {s}: not recoverable{}",
                    what_damage_says(file, &s)
                )?;
                continue;
            }
            Entry::Record(rec) => rec,
        };
        match rec.rtype {
            RecordType::Message => {}
            RecordType::Seal => {
                writeln!(out, "{shown}: offset {}: seal", rec.offset)?;
                continue;
            }
            other => {
                writeln!(out, "{shown}: offset {}: record {other:?}", rec.offset)?;
                continue;
            }
        }
        let (env, content) = match decode_message(&rec.payload, rec.payload_offset(), &shown) {
            Ok(m) => m,
            Err(e) => {
                writeln!(
                    out,
                    "{shown}: offset {}: unreadable message record: {e}",
                    rec.offset
                )?;
                continue;
            }
        };
        intact += 1;
        let id = env.id.to_string();
        let verdict = not_to_requeue(&id, &content, &done, &salvaged, first_damage, opts);
        let what = format!(
            "{shown}: offset {}: {id}: from=<{}>, size={}, nrcpt={}",
            rec.offset,
            env.sender,
            env.size,
            env.recipients.len()
        );
        match verdict {
            Some(why) => {
                skipped_msgs += 1;
                writeln!(out, "{what}: {why}")?;
            }
            None => {
                let verb = if opts.dry_run {
                    "would be re-queued"
                } else {
                    "re-queue"
                };
                writeln!(out, "{what}: {verb}")?;
                take.push((env.id, rec.payload));
            }
        }
    }
    if let EndState::Incomplete { offset } = reader.end_state() {
        let len = fs::metadata(file).map_or(offset, |m| m.len());
        writeln!(
            out,
            "{shown}: offset {offset}: incomplete record, {} bytes to the end of the file: not recoverable",
            len.saturating_sub(offset)
        )?;
    }
    let summary = format!(
        "{intact} intact message{}, {ranges} damaged range{} ({damaged_bytes} bytes), \
         {skipped_msgs} not to re-queue",
        if intact == 1 { "" } else { "s" },
        if ranges == 1 { "" } else { "s" },
    );
    finish(file, opts, &take, &summary, out)
}

/// Why the message `id` must not be re-queued, if it must not:
/// `before_damage` is the offset of the first damage seen before it.
fn not_to_requeue(
    id: &str,
    content: &ContentRef,
    done: &Option<HashSet<String>>,
    salvaged: &Option<HashSet<String>>,
    before_damage: Option<u64>,
    opts: &Salvage<'_>,
) -> Option<String> {
    let verdict = if let Some(done) = done {
        done.contains(id)
            .then(|| "done (qmgr read it: listed in the .done file)".to_string())
    } else if before_damage.is_none() {
        Some("done (read before the first damage by the postern that kept the file)".into())
    } else {
        None
    };
    verdict
        .or_else(|| {
            salvaged
                .as_ref()
                .filter(|s| s.contains(id))
                .map(|_| "re-queued before (listed in the .salvaged file)".into())
        })
        .or_else(|| {
            opts.live
                .as_ref()
                .filter(|l| l.contains(id))
                .map(|_| "in the queue".into())
        })
        .or_else(|| match content {
            ContentRef::File { path, .. } if !opts.queue_dir.join(path).is_file() => {
                Some(format!("its content file {path} is gone: not recoverable"))
            }
            _ => None,
        })
}

/// Re-queue `take` (unless dry), and say what was done.
fn finish(
    file: &Path,
    opts: &Salvage<'_>,
    take: &[(QueueId, Vec<u8>)],
    summary: &str,
    out: &mut dyn Write,
) -> anyhow::Result<usize> {
    if opts.live.is_none() {
        writeln!(
            out,
            "postern: qmgr does not answer: the queue was not checked for these messages"
        )?;
    }
    let n = take.len();
    if n == 0 {
        writeln!(out, "postern: salvage: {summary}; nothing to re-queue")?;
        return Ok(0);
    }
    if opts.dry_run {
        writeln!(out, "postern: salvage: {summary}; {n} would be re-queued")?;
        return Ok(n);
    }
    let segment = requeue(file, opts.queue_dir, take)?;
    writeln!(
        out,
        "postern: salvage: {summary}; {n} re-queued as {INCOMING}/{segment}"
    )?;
    (opts.wake_qmgr)();
    Ok(n)
}

/// Files in `incoming/` are qmgr's: salvaging one would queue its
/// messages twice.
fn refuse_incoming(file: &Path, queue_dir: &Path) -> anyhow::Result<()> {
    let dir = file
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .and_then(|p| p.canonicalize().ok());
    let incoming = queue_dir.join(INCOMING).canonicalize().ok();
    if dir.is_some() && dir == incoming {
        bail!(
            "{} is in the queue's {INCOMING}/ directory, which qmgr reads itself; \
             salvage reads damaged files (those qmgr keeps in corrupt/)",
            file.display()
        );
    }
    Ok(())
}

/// `FILE.ext`.
fn side_file(file: &Path, ext: &str) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// The queue IDs a side file lists (the first word of each line); `None`
/// when there is no such file.
fn read_list(path: &Path) -> anyhow::Result<Option<HashSet<String>>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            text.lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(String::from)
                .collect(),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// What the message records in a damaged range still seem to say.
fn what_damage_says(file: &Path, s: &Skipped) -> String {
    if s.len() > FORENSIC_MAX {
        return String::new();
    }
    let bytes = (|| -> io::Result<Vec<u8>> {
        let mut f = fs::File::open(file)?;
        f.seek(SeekFrom::Start(s.start))?;
        let mut b = Vec::new();
        f.take(s.len()).read_to_end(&mut b)?;
        Ok(b)
    })();
    let Ok(bytes) = bytes else {
        return String::new();
    };
    let said: Vec<String> = damaged_records(&bytes)
        .iter()
        .filter(|d| d.rtype == RecordType::Message)
        .filter_map(|d| envelope_hint(d.payload, u64::from(d.payload_len)))
        .map(|h| h.to_string())
        .collect();
    if said.is_empty() {
        String::new()
    } else {
        format!(
            "; the damaged records say (unverified): {}",
            said.join("; ")
        )
    }
}

/// Writes the messages as a new sealed segment in `incoming/`, recording
/// their IDs in `FILE.salvaged` first; the segment's file name.
fn requeue(file: &Path, queue_dir: &Path, msgs: &[(QueueId, Vec<u8>)]) -> anyhow::Result<String> {
    let incoming = queue_dir.join(INCOMING);
    let owner =
        fs::metadata(&incoming).with_context(|| format!("cannot use {}", incoming.display()))?;
    let mut bytes = Vec::new();
    for (_, payload) in msgs {
        encode_into(&mut bytes, RecordType::Message, payload)?;
    }
    encode_into(&mut bytes, RecordType::Seal, b"")?;
    let ids = IdGenerator::new('R');
    let (name, tmp, mut f) = loop {
        let name = format!("R{}.log", ids.next());
        let tmp = incoming.join(format!(".{name}.tmp"));
        if incoming.join(&name).exists() {
            continue;
        }
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => break (name, tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", tmp.display())),
        }
    };
    let written = (|| -> io::Result<()> {
        f.write_all(&bytes)?;
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::fchown(&f, Some(owner.uid()), Some(owner.gid()))?;
        }
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
    }
    // What is re-queued is recorded before it can be delivered: a second
    // run never queues it again.
    let list_path = side_file(file, "salvaged");
    let before = fs::metadata(&list_path).map_or(0, |m| m.len());
    let recorded = (|| -> io::Result<()> {
        let mut list = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&list_path)?;
        for (id, _) in msgs {
            writeln!(list, "{id} {INCOMING}/{name}")?;
        }
        list.sync_all()
    })();
    if let Err(e) = recorded {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", list_path.display()));
    }
    let moved =
        fs::rename(&tmp, incoming.join(&name)).and_then(|()| fs::File::open(&incoming)?.sync_all());
    if let Err(e) = moved {
        let _ = fs::remove_file(&tmp);
        if let Ok(list) = fs::OpenOptions::new().write(true).open(&list_path) {
            let _ = list.set_len(before);
        }
        return Err(e).with_context(|| format!("cannot move {} into place", tmp.display()));
    }
    Ok(name)
}

#[cfg(test)]
mod tests;
