//! `disk`: what the disk under DIR allows a durable queue, in two shapes.
//!
//! - *file per message* (a Maildir, Postfix's queue): for each message,
//!   create a file in `tmp/`, write S bytes, fsync it, rename it into
//!   `new/`; W writer threads share the messages. Reported as files/s.
//! - *append-only log with group commit* (postern's queue): one writer
//!   appends batches of [`LOG_BATCH`] records of S bytes, each batch in one
//!   write followed by one fdatasync. Reported as records/s.
//!
//! Everything happens in a scratch directory made inside DIR (DIR itself is
//! made if missing) and removed afterwards, with DIR if it was made here.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::message::RunNonce;
use crate::round;

/// Records per fdatasync in the log mode.
pub const LOG_BATCH: u64 = 32;

pub struct Config {
    pub dir: PathBuf,
    pub messages: u64,
    pub writers: u64,
    pub size: usize,
}

/// The JSON line of `disk`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub size: usize,
    pub messages: u64,
    pub writers: u64,
    pub file_rate: f64,
    pub log_rate: f64,
    pub log_batch: u64,
}

pub fn run(config: &Config) -> anyhow::Result<Report> {
    let scratch = Scratch::create(&config.dir)?;
    let result = measure(config, &scratch.path);
    scratch.remove();
    result
}

fn measure(config: &Config, scratch: &Path) -> anyhow::Result<Report> {
    let record = payload(config.size);
    let file_rate = file_per_message(scratch, config.messages, config.writers, &record)
        .context("file per message")?;
    eprintln!(
        "disk: {file_rate:.0} files/s ({} writers, {} bytes, fsync each)",
        config.writers, config.size
    );
    let log_rate = append_log(scratch, config.messages, &record).context("append-only log")?;
    eprintln!("disk: {log_rate:.0} records/s (1 fdatasync per {LOG_BATCH})");
    Ok(Report {
        mode: "disk",
        size: config.size,
        messages: config.messages,
        writers: config.writers,
        file_rate: round(file_rate, 1),
        log_rate: round(log_rate, 1),
        log_batch: LOG_BATCH,
    })
}

/// create in tmp/, write, fsync, rename into new/; `writers` threads take
/// every `writers`-th message. Returns files per second.
fn file_per_message(dir: &Path, messages: u64, writers: u64, record: &[u8]) -> io::Result<f64> {
    let (tmp, new) = (dir.join("tmp"), dir.join("new"));
    fs::create_dir(&tmp)?;
    fs::create_dir(&new)?;
    let start = Instant::now();
    thread::scope(|scope| {
        let mut threads = Vec::new();
        for w in 0..writers {
            let (tmp, new) = (&tmp, &new);
            let writer = move || -> io::Result<()> {
                for i in (w..messages).step_by(writers as usize) {
                    let name = format!("{i}.postern-bench");
                    let (from, to) = (tmp.join(&name), new.join(&name));
                    let mut file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&from)?;
                    file.write_all(record)?;
                    file.sync_all()?;
                    fs::rename(&from, &to)?;
                }
                Ok(())
            };
            threads.push(thread::Builder::new().spawn_scoped(scope, writer)?);
        }
        threads.into_iter().try_for_each(|t| {
            t.join()
                .unwrap_or_else(|_| Err(io::Error::other("writer panicked")))
        })
    })?;
    let rate = messages as f64 / start.elapsed().as_secs_f64();
    fs::remove_dir_all(&tmp)?;
    fs::remove_dir_all(&new)?;
    Ok(rate)
}

/// Appends `messages` records in batches of [`LOG_BATCH`], one write and
/// one fdatasync per batch. Returns records per second.
fn append_log(dir: &Path, messages: u64, record: &[u8]) -> io::Result<f64> {
    let path = dir.join("queue.log");
    let mut log = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)?;
    let mut batch = Vec::with_capacity(record.len() * LOG_BATCH as usize);
    let start = Instant::now();
    let mut left = messages;
    while left > 0 {
        let records = left.min(LOG_BATCH);
        batch.clear();
        for _ in 0..records {
            batch.extend_from_slice(record);
        }
        log.write_all(&batch)?;
        log.sync_data()?;
        left -= records;
    }
    let rate = messages as f64 / start.elapsed().as_secs_f64();
    drop(log);
    fs::remove_file(&path)?;
    Ok(rate)
}

/// `size` bytes of text lines, as a message would be.
fn payload(size: usize) -> Vec<u8> {
    let line = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmn\r\n";
    line.iter().copied().cycle().take(size).collect()
}

/// The scratch directory `DIR/postern-bench-disk.<nonce>`.
struct Scratch {
    path: PathBuf,
    /// DIR, when it did not exist before.
    made_dir: Option<PathBuf>,
}

impl Scratch {
    fn create(dir: &Path) -> anyhow::Result<Scratch> {
        let made_dir = (!dir.exists()).then(|| dir.to_path_buf());
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("postern-bench-disk.{}", RunNonce::random()));
        fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        // Make the directory entries themselves durable before timing.
        File::open(dir).and_then(|d| d.sync_all()).ok();
        Ok(Scratch { path, made_dir })
    }

    /// Removes the scratch directory (and DIR if it was made here); a
    /// failure is only reported.
    fn remove(self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("disk: cannot remove {}: {e}", self.path.display());
        }
        if let Some(dir) = &self.made_dir
            && let Err(e) = fs::remove_dir(dir)
        {
            eprintln!("disk: cannot remove {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_run_and_clean_up() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("made-here");
        let report = run(&Config {
            dir: dir.clone(),
            messages: 40,
            writers: 3,
            size: 1000,
        })
        .unwrap();
        assert!(report.file_rate > 0.0 && report.log_rate > 0.0);
        assert!(!dir.exists());

        // An existing DIR stays, with nothing of ours left in it.
        fs::write(parent.path().join("keep"), b"x").unwrap();
        run(&Config {
            dir: parent.path().into(),
            messages: 5,
            writers: 1,
            size: 10,
        })
        .unwrap();
        let left: Vec<_> = fs::read_dir(parent.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn payload_has_the_size() {
        assert_eq!(payload(0).len(), 0);
        assert_eq!(payload(2048).len(), 2048);
        assert_eq!(&payload(78)[76..], b"\r\n");
    }
}
