//! The delivery record: which final targets of which message local has
//! delivered, kept in a file so that a delivery is not made twice.
//!
//! qmgr records an outcome only when local's answer reaches it. When qmgr
//! dies after asking (or local dies after delivering, before answering),
//! the answer is lost and qmgr asks again later: without this record the
//! mailbox would get a second copy (Postfix has the same window). So local
//! appends `{"id":…,"key":…,"content":…}` for every final delivery that
//! succeeded (`key` is the target: `mailbox USER`, `command UID CMD`,
//! `file UID PATH`, as the per-request duplicate filter of
//! [`super::route`] names them) and writes it before it answers (not
//! synced: it is for crashes of processes, which the page cache
//! survives; see [`Journal::append`]). A request
//! for a target already recorded for that message is answered "delivered"
//! without delivering: a restarted qmgr, or a new local, gets the answer
//! the lost one would have carried.
//!
//! The same record is the message-wide duplicate filter (Postfix's
//! cleanup and local filter duplicates within one delivery request): two
//! recipients of one message that expand to one mailbox (`a` and `b`
//! both aliases of `c`) deliver one copy. Requests for one message run at
//! once (one recipient each), so a target is *claimed* first: a second
//! claim waits for the first to finish and delivers only if it failed.
//!
//! The file is `<run_directory>/local/deliveries.log` (root's, 0600, in a
//! directory only local writes): it survives a crash of any role; not a
//! crash of the machine (under systemd `/run` is memory, and the file is
//! not synced), after which a delivery whose answer was lost in the same
//! moment may be made again, as before — except into a Maildir, where
//! every attempt of one delivery takes the same name and the repeat finds
//! the first copy (`worker::maildir::deliver`). Lines are
//! appended whole; a torn last line (a crash in the middle of a write) and
//! any line that does not parse are skipped with a warning. At start, and
//! when the file passes [`COMPACT_AT`] bytes, it is rewritten with the
//! records of messages still in the queue (their content file, `deferred/ID`
//! or `hold/ID` exists); those of finished messages go.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::ipc::DeliveryRequest;

/// The journal's directory under the run directory.
pub(crate) const DIR: &str = crate::ipc::names::JOURNAL_DIR;
const FILE: &str = "deliveries.log";
/// Rewrite the file without finished messages past this size.
pub(crate) const COMPACT_AT: u64 = 8 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    id: String,
    key: String,
    /// The message's content file, relative to the queue directory.
    content: String,
}

/// What a claim on a message's target found.
pub(crate) enum Claim {
    /// Delivered before: do not deliver again.
    Delivered,
    /// Ours to deliver; [`Ticket::settle`] says how it went.
    Mine(Ticket),
}

/// A claimed target. Dropped without [`Ticket::settle`], the claim is
/// released as failed (a waiting claim then delivers).
pub(crate) struct Ticket {
    held: Option<Held>,
}

struct Held {
    journal: Arc<Journal>,
    id: String,
    key: String,
    content: String,
    /// Dropped when the claim ends: waiting claims look again.
    _done: watch::Sender<()>,
}

impl Ticket {
    /// A ticket that records nothing (no journal: tests, a run directory
    /// that cannot be written).
    pub(crate) fn unrecorded() -> Ticket {
        Ticket { held: None }
    }

    /// Record the delivery when it succeeded, durably, then release the
    /// claim. A record that cannot be written is logged: the delivery
    /// stands, only a repeat of it is no longer prevented.
    pub(crate) async fn settle(mut self, delivered: bool) {
        let Some(held) = self.held.take() else {
            return;
        };
        if delivered {
            let line = Line {
                id: held.id.clone(),
                key: held.key.clone(),
                content: held.content.clone(),
            };
            if let Err(e) = held.journal.append(&line).await {
                log::warn!(
                    queue_id = held.id.as_str();
                    "{}: cannot record the delivery to {} in {}: {e}",
                    held.id,
                    held.key,
                    held.journal.path.display()
                );
            }
            held.journal
                .state()
                .done
                .entry(held.id.clone())
                .or_insert_with(|| (held.content.clone(), HashSet::new()))
                .1
                .insert(held.key.clone());
        }
        held.journal
            .state()
            .claimed
            .remove(&(held.id.clone(), held.key.clone()));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            held.journal.state().claimed.remove(&(held.id, held.key));
        }
    }
}

pub(crate) struct Journal {
    path: PathBuf,
    queue: PathBuf,
    state: Mutex<State>,
    /// The open file (appends are serialised through it).
    file: tokio::sync::Mutex<File>,
    /// Bytes in the file, for compaction.
    size: Mutex<u64>,
}

#[derive(Default)]
struct State {
    /// Per message: its content file, and the targets delivered.
    done: HashMap<String, (String, HashSet<String>)>,
    /// Targets being delivered now: a watch that closes when they end.
    claimed: HashMap<(String, String), watch::Receiver<()>>,
}

impl Journal {
    /// Open (create) the journal in `<run_dir>/local/`, keeping the
    /// records of messages still in `queue_dir`.
    pub(crate) fn open(run_dir: &Path, queue_dir: &Path) -> io::Result<Arc<Journal>> {
        let dir = run_dir.join(DIR);
        if !dir.is_dir() {
            std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        }
        let path = dir.join(FILE);
        let mut done: HashMap<String, (String, HashSet<String>)> = HashMap::new();
        match File::open(&path) {
            Ok(f) => {
                let mut skipped = 0;
                for line in BufReader::new(f).split(b'\n') {
                    match serde_json::from_slice::<Line>(&line?) {
                        Ok(l) => {
                            done.entry(l.id)
                                .or_insert_with(|| (l.content, HashSet::new()))
                                .1
                                .insert(l.key);
                        }
                        Err(_) => skipped += 1,
                    }
                }
                if skipped > 0 {
                    log::warn!(
                        "{}: {skipped} damaged or torn line{} skipped",
                        path.display(),
                        if skipped == 1 { "" } else { "s" }
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let journal = Journal {
            file: tokio::sync::Mutex::new(rewrite(&path, queue_dir, &mut done)?),
            size: Mutex::new(std::fs::metadata(&path)?.len()),
            path,
            queue: queue_dir.to_path_buf(),
            state: Mutex::new(State {
                done,
                claimed: HashMap::new(),
            }),
        };
        Ok(Arc::new(journal))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claim `key` of `request`'s message: waits while another request
    /// delivers it.
    pub(crate) async fn claim(self: &Arc<Self>, request: &DeliveryRequest, key: &str) -> Claim {
        let id = request.id.to_string();
        let slot = (id.clone(), key.to_string());
        loop {
            let mut busy = {
                let mut state = self.state();
                if state
                    .done
                    .get(&id)
                    .is_some_and(|(_, keys)| keys.contains(key))
                {
                    return Claim::Delivered;
                }
                match state.claimed.get(&slot) {
                    Some(rx) => rx.clone(),
                    None => {
                        let (tx, rx) = watch::channel(());
                        state.claimed.insert(slot.clone(), rx);
                        return Claim::Mine(Ticket {
                            held: Some(Held {
                                journal: self.clone(),
                                id,
                                key: key.to_string(),
                                content: request.content.span().0.to_string(),
                                _done: tx,
                            }),
                        });
                    }
                }
            };
            // Ends when the other claim's sender is dropped.
            while busy.changed().await.is_ok() {}
        }
    }

    /// Append `line`: written (one `write` of the whole line, to a file
    /// opened for appending) before the answer goes out. Not synced: the
    /// record is for crashes of processes, which the page cache survives;
    /// under systemd `/run` is memory anyway, and a sync per delivery
    /// cost 10–15 % of the end-to-end rate where it is a disk.
    async fn append(&self, line: &Line) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let mut file = self.file.lock().await;
        file.write_all(&bytes)?;
        let size = {
            let mut size = self.size.lock().unwrap_or_else(|e| e.into_inner());
            *size += bytes.len() as u64;
            *size
        };
        if size >= COMPACT_AT {
            // Claims wait meanwhile (rare: every COMPACT_AT bytes).
            let mut state = self.state();
            *file = rewrite(&self.path, &self.queue, &mut state.done)?;
            drop(state);
            *self.size.lock().unwrap_or_else(|e| e.into_inner()) = file.metadata()?.len();
        }
        Ok(())
    }
}

/// Write the records of messages still queued to a new file, sync it and
/// put it in place; `done` keeps only those. Returns the new file, open
/// for appending.
fn rewrite(
    path: &Path,
    queue: &Path,
    done: &mut HashMap<String, (String, HashSet<String>)>,
) -> io::Result<File> {
    done.retain(|id, (content, _)| {
        [
            queue.join(&*content),
            queue.join(crate::queue::DEFERRED).join(id),
            queue.join(crate::queue::HOLD).join(id),
        ]
        .iter()
        .any(|p| p.exists())
    });
    let fresh = path.with_extension("new");
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&fresh)?;
    let mut text = Vec::new();
    for (id, (content, keys)) in done.iter() {
        for key in keys {
            let line = Line {
                id: id.clone(),
                key: key.clone(),
                content: content.clone(),
            };
            serde_json::to_writer(&mut text, &line).map_err(io::Error::other)?;
            text.push(b'\n');
        }
    }
    out.write_all(&text)?;
    out.sync_data()?;
    std::fs::rename(&fresh, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ContentRef;

    fn request(id: &str, content: &str) -> DeliveryRequest {
        DeliveryRequest {
            id: id.parse().unwrap(),
            sender: String::new(),
            recipient: "a@localhost".into(),
            original: None,
            rcpt_index: 0,
            content: ContentRef::File {
                path: content.into(),
                len: 1,
            },
            arrival_us: 0,
            active_us: 0,
        }
    }

    #[tokio::test]
    async fn a_recorded_delivery_is_not_made_again_after_a_restart() {
        let run = tempfile::tempdir().unwrap();
        let queue = tempfile::tempdir().unwrap();
        std::fs::create_dir(queue.path().join("incoming")).unwrap();
        std::fs::write(queue.path().join("incoming/A.msg"), "x").unwrap();
        let r = request("0000000000001A", "incoming/A.msg");
        let gone = request("0000000000002A", "incoming/B.msg");
        let j = Journal::open(run.path(), queue.path()).unwrap();
        for req in [&r, &gone] {
            match j.claim(req, "mailbox alice").await {
                Claim::Mine(t) => t.settle(true).await,
                Claim::Delivered => panic!("fresh"),
            }
        }
        // A failed delivery is not recorded.
        match j.claim(&r, "mailbox bob").await {
            Claim::Mine(t) => t.settle(false).await,
            Claim::Delivered => panic!("fresh"),
        }
        assert!(matches!(
            j.claim(&r, "mailbox alice").await,
            Claim::Delivered
        ));
        drop(j);
        // A torn last line is skipped.
        let path = run.path().join("local/deliveries.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\":\"00000").unwrap();
        let j = Journal::open(run.path(), queue.path()).unwrap();
        assert!(matches!(
            j.claim(&r, "mailbox alice").await,
            Claim::Delivered
        ));
        assert!(matches!(j.claim(&r, "mailbox bob").await, Claim::Mine(_)));
        // The finished message (its content is gone) was dropped.
        assert!(matches!(
            j.claim(&gone, "mailbox alice").await,
            Claim::Mine(_)
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[tokio::test]
    async fn a_second_claim_waits_for_the_first() {
        let run = tempfile::tempdir().unwrap();
        let queue = tempfile::tempdir().unwrap();
        std::fs::write(queue.path().join("A.msg"), "x").unwrap();
        let r = request("0000000000001A", "A.msg");
        let j = Journal::open(run.path(), queue.path()).unwrap();
        let Claim::Mine(first) = j.claim(&r, "mailbox c").await else {
            panic!("fresh")
        };
        let j2 = j.clone();
        let r2 = r.clone();
        let second =
            tokio::spawn(
                async move { matches!(j2.claim(&r2, "mailbox c").await, Claim::Delivered) },
            );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!second.is_finished());
        first.settle(true).await;
        assert!(second.await.unwrap(), "the second claim saw the delivery");
        // A failed first claim lets the second one deliver.
        let Claim::Mine(first) = j.claim(&r, "mailbox d").await else {
            panic!("fresh")
        };
        let j2 = j.clone();
        let second =
            tokio::spawn(async move { matches!(j2.claim(&r, "mailbox d").await, Claim::Mine(_)) });
        drop(first);
        assert!(second.await.unwrap());
    }
}
