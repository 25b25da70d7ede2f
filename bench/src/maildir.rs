//! Watching a Maildir's `new/` for the run's messages, and checking them.
//!
//! The watch is armed once the last message has been accepted (none can be
//! delivered before all are accepted, and the MTA then has the CPU to
//! itself). A thread then polls `new/` every few milliseconds and only
//! counts its entries (files are never removed during a run, and those
//! already there at the start are remembered by name and ignored). Once enough new files may be
//! there, it reads the ones it has not read yet and tallies the IDs of this
//! run found in their `X-Bench-Id:` header (and, when a field is expected,
//! counts those of the run's files that lack it); the run is complete when
//! every ID has been seen. After a short settling pause a last pass catches
//! late duplicates.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::message::{Field, RunNonce, bench_id, has_field};

/// The shortest pause between two polls of `new/`.
const POLL: Duration = Duration::from_millis(5);

/// The pause after the last message arrived before the last pass.
const SETTLE: Duration = Duration::from_millis(300);

/// How much of a delivered file is read to find the ID header.
const HEAD_BYTES: usize = 64 * 1024;

/// What the watch found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// When the last of the run's messages was seen; `None` if never.
    pub complete_at: Option<Instant>,
    pub missing: u64,
    pub duplicates: u64,
    /// The run's files without the expected field (0 when none is expected).
    pub lacking: u64,
}

/// A running watch of a Maildir.
pub struct Watch {
    flags: Arc<Flags>,
    thread: JoinHandle<io::Result<Outcome>>,
}

#[derive(Default)]
struct Flags {
    armed: AtomicBool,
    cancelled: AtomicBool,
}

impl Watch {
    /// Remembers what `maildir/new` holds now (it may not exist yet), then
    /// waits to be armed and watches until all `count` messages of `nonce`
    /// are there, the deadline passes or the watch is cancelled; each of
    /// them should carry `expect`.
    pub fn start(
        maildir: &Path,
        nonce: RunNonce,
        count: u64,
        expect: Option<Field>,
        deadline: Instant,
    ) -> io::Result<Watch> {
        let new = maildir.join("new");
        let before = list(&new)?.into_iter().collect();
        let flags = Arc::new(Flags::default());
        let shared = Arc::clone(&flags);
        let mut watcher = Watcher {
            new,
            nonce,
            expect,
            lacking: 0,
            before,
            read: HashSet::new(),
            tally: Tally::new(count),
            head: vec![0; HEAD_BYTES],
        };
        let thread = thread::Builder::new()
            .name("maildir watch".into())
            .spawn(move || watcher.run(&shared, deadline))?;
        Ok(Watch { flags, thread })
    }

    /// Starts polling: every message has been accepted.
    pub fn arm(&self) {
        self.flags.armed.store(true, Ordering::Release);
        self.thread.thread().unpark();
    }

    /// Stops waiting (the run failed elsewhere).
    pub fn cancel(&self) {
        self.flags.cancelled.store(true, Ordering::Release);
        self.thread.thread().unpark();
    }

    /// Waits for the watch to end and returns what it found.
    pub fn finish(self) -> io::Result<Outcome> {
        self.thread
            .join()
            .map_err(|_| io::Error::other("the Maildir watcher panicked"))?
    }
}

struct Watcher {
    new: PathBuf,
    nonce: RunNonce,
    expect: Option<Field>,
    /// The run's files read so far without `expect`.
    lacking: u64,
    /// Names in `new/` before the run.
    before: HashSet<OsString>,
    /// Names read during the run.
    read: HashSet<OsString>,
    tally: Tally,
    head: Vec<u8>,
}

impl Watcher {
    fn run(&mut self, flags: &Flags, deadline: Instant) -> io::Result<Outcome> {
        let cancelled = || flags.cancelled.load(Ordering::Acquire);
        while !flags.armed.load(Ordering::Acquire) && !cancelled() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::park_timeout(left);
        }
        let mut complete_at = None;
        while !cancelled() {
            let started = Instant::now();
            let entries = count(&self.new)?;
            let seen = Instant::now();
            let unread = entries.saturating_sub(self.before.len() + self.read.len()) as u64;
            if self.tally.found + unread >= self.tally.expected() {
                let listed = self.scan()?;
                if self.tally.found == self.tally.expected() {
                    // Normally the count already showed the last file; when
                    // other files got in the way, the scan's listing did.
                    complete_at = Some(if listed.0 as u64 <= unread {
                        seen
                    } else {
                        listed.1
                    });
                    break;
                }
            }
            if seen >= deadline {
                break;
            }
            // Poll often, but never spend more than a fifth of a core on it
            // (a big `new/` takes milliseconds to list).
            let pause = POLL.max(4 * seen.duration_since(started));
            thread::sleep(pause.min(deadline.saturating_duration_since(seen)));
        }
        if complete_at.is_some() {
            thread::sleep(SETTLE);
        }
        self.scan()?;
        Ok(Outcome {
            complete_at,
            missing: self.tally.missing(),
            duplicates: self.tally.duplicates(),
            lacking: self.lacking,
        })
    }

    /// Reads the new files not read yet. Returns how many there were and
    /// when the listing was done.
    fn scan(&mut self) -> io::Result<(usize, Instant)> {
        let names = list(&self.new)?;
        let listed = Instant::now();
        let mut fresh = 0;
        for name in names {
            if self.before.contains(&name) || self.read.contains(&name) {
                continue;
            }
            fresh += 1;
            let path = self.new.join(&name);
            let n = read_head(&path, &mut self.head)?;
            let head = &self.head[..n];
            if let Some(id) = bench_id(head)
                && id.nonce == self.nonce.as_str()
            {
                self.tally.record(id.number);
                if self.expect.as_ref().is_some_and(|f| !has_field(head, f)) {
                    self.lacking += 1;
                }
            }
            self.read.insert(name);
        }
        Ok((fresh, listed))
    }
}

/// How often each of the run's message numbers was seen.
#[derive(Debug)]
struct Tally {
    seen: Vec<u32>,
    /// Numbers seen at least once.
    found: u64,
}

impl Tally {
    fn new(count: u64) -> Tally {
        Tally {
            seen: vec![0; count as usize],
            found: 0,
        }
    }

    fn expected(&self) -> u64 {
        self.seen.len() as u64
    }

    /// Counts one file with message number `n`; numbers beyond the run's
    /// count cannot be ours and are ignored.
    fn record(&mut self, n: u64) {
        if let Some(c) = usize::try_from(n).ok().and_then(|n| self.seen.get_mut(n)) {
            if *c == 0 {
                self.found += 1;
            }
            *c = c.saturating_add(1);
        }
    }

    fn missing(&self) -> u64 {
        self.expected() - self.found
    }

    fn duplicates(&self) -> u64 {
        self.seen
            .iter()
            .map(|&c| u64::from(c.saturating_sub(1)))
            .sum()
    }
}

/// The names in a directory; none if it does not exist (yet).
fn list(dir: &Path) -> io::Result<Vec<OsString>> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.file_name())).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(with_path(e, dir)),
    }
}

/// The number of entries in a directory; 0 if it does not exist (yet).
fn count(dir: &Path) -> io::Result<usize> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            let mut n = 0;
            for e in entries {
                e.map_err(|e| with_path(e, dir))?;
                n += 1;
            }
            Ok(n)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(with_path(e, dir)),
    }
}

/// Reads up to `buf.len()` bytes from the start of a file.
fn read_head(path: &Path, buf: &mut [u8]) -> io::Result<usize> {
    let mut file = File::open(path).map_err(|e| with_path(e, path))?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(with_path(e, path)),
        }
    }
    Ok(n)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a file beside `new/`, then renames it in, as Maildir does.
    fn deliver(new: &Path, name: &str, id: &str) {
        deliver_with(new, name, id, "");
    }

    /// The same with more header lines (`extra`, each ending in LF).
    fn deliver_with(new: &Path, name: &str, id: &str, extra: &str) {
        let tmp = new.with_file_name(format!("tmp-{name}"));
        fs::write(
            &tmp,
            format!("Return-Path: <a@x>\n{extra}X-Bench-Id: {id}\n\nbody\n"),
        )
        .unwrap();
        fs::rename(&tmp, new.join(name)).unwrap();
    }

    #[test]
    fn tally_counts_missing_and_duplicates() {
        let mut t = Tally::new(4);
        for n in [0, 1, 1, 1, 3, 9] {
            t.record(n);
        }
        assert_eq!(t.found, 3);
        assert_eq!(t.missing(), 1);
        assert_eq!(t.duplicates(), 2);
    }

    #[test]
    fn watch_ignores_earlier_runs_and_waits_for_all() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        fs::create_dir(&new).unwrap();
        deliver(&new, "old1", "0000000000000000-0000000000");
        let nonce = RunNonce::random();
        let deadline = Instant::now() + Duration::from_secs(10);
        let watch = Watch::start(dir.path(), nonce.clone(), 3, None, deadline).unwrap();
        watch.arm();
        deliver(&new, "a", &format!("{nonce}-0000000000"));
        deliver(&new, "other", "ffffffffffffffff-0000000001");
        thread::sleep(Duration::from_millis(50));
        deliver(&new, "b", &format!("{nonce}-0000000001"));
        deliver(&new, "c", &format!("{nonce}-0000000002"));
        let out = watch.finish().unwrap();
        assert!(out.complete_at.is_some());
        assert_eq!((out.missing, out.duplicates, out.lacking), (0, 0, 0));
    }

    #[test]
    fn watch_counts_the_runs_files_without_the_expected_field() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        fs::create_dir(&new).unwrap();
        let nonce = RunNonce::random();
        let field = Field::parse("X-Milter: seen").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let watch = Watch::start(dir.path(), nonce.clone(), 3, Some(field), deadline).unwrap();
        watch.arm();
        deliver_with(&new, "a", &format!("{nonce}-0"), "X-Milter: seen\n");
        deliver(&new, "b", &format!("{nonce}-1"));
        deliver_with(&new, "c", &format!("{nonce}-2"), "X-Milter: not seen\n");
        deliver(&new, "other", "ffffffffffffffff-0000000001");
        let out = watch.finish().unwrap();
        assert!(out.complete_at.is_some());
        assert_eq!((out.missing, out.duplicates, out.lacking), (0, 0, 2));
    }

    #[test]
    fn watch_times_out_with_missing_and_sees_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let nonce = RunNonce::random();
        // new/ does not exist at the start.
        let deadline = Instant::now() + Duration::from_millis(200);
        let watch = Watch::start(dir.path(), nonce.clone(), 3, None, deadline).unwrap();
        watch.arm();
        let new = dir.path().join("new");
        fs::create_dir(&new).unwrap();
        deliver(&new, "a", &format!("{nonce}-0"));
        deliver(&new, "b", &format!("{nonce}-0"));
        deliver(&new, "c", &format!("{nonce}-1"));
        let out = watch.finish().unwrap();
        assert_eq!(out.complete_at, None);
        assert_eq!((out.missing, out.duplicates), (1, 1));
    }

    #[test]
    fn an_unarmed_watch_ends_at_the_deadline_or_when_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let nonce = RunNonce::random();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(100);
        let watch = Watch::start(dir.path(), nonce.clone(), 1, None, deadline).unwrap();
        let out = watch.finish().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!((out.complete_at, out.missing), (None, 1));

        let deadline = Instant::now() + Duration::from_secs(60);
        let watch = Watch::start(dir.path(), nonce, 1, None, deadline).unwrap();
        watch.cancel();
        assert_eq!(watch.finish().unwrap().missing, 1);
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
