//! Moving long-deferred messages out of their segments into
//! `deferred/<ID>`, files of their own, so the segments can be deleted.

use std::fs;

use super::{Engine, Origin, RState, load_file_message, read_content};
use crate::qmgr::state::{Moved, StateRecord};
use crate::queue::message::{MessageContent, encode_message};
use crate::queue::record::{RecordType, encode};
use crate::queue::{ContentRef, DEFERRED, QueueId, now_micros};

impl Engine {
    /// Move long-deferred messages out of their segments into files of
    /// their own, so the segments can go.
    pub(crate) async fn maybe_move_deferred(&mut self) {
        let now = now_micros();
        if now.saturating_sub(self.last_move_check) < 1_000_000 {
            return;
        }
        self.last_move_check = now;
        let after = self.cfg.queue.move_deferred_after.as_micros() as u64;
        let candidates: Vec<QueueId> = self
            .messages
            .iter()
            .filter(|(_, m)| {
                matches!(m.origin, Origin::Segment(_))
                    && !m.rcpts.contains(&RState::Active)
                    && m.first_deferred_us
                        .is_some_and(|t| now.saturating_sub(t) >= after)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in candidates {
            if let Err(e) = self.move_one(&id).await {
                log::warn!("{id}: cannot move to deferred/: {e}");
            }
        }
    }

    async fn move_one(&mut self, id: &QueueId) -> anyhow::Result<()> {
        let Some(m) = self.messages.get(id) else {
            return Ok(());
        };
        let keep: Vec<usize> = (0..m.rcpts.len())
            .filter(|i| !m.rcpts[*i].is_final())
            .collect();
        let mut env = m.env.clone();
        env.recipients = keep.iter().map(|i| m.env.recipients[*i].clone()).collect();
        let dues: Vec<u64> = keep
            .iter()
            .map(|i| match m.rcpts[*i] {
                RState::Pending { due } => due,
                _ => 0,
            })
            .collect();
        let inline;
        let payload = match &m.content {
            ContentRef::File { path, .. } => encode_message(&env, MessageContent::File(path))?,
            c @ ContentRef::Segment { .. } => {
                inline = read_content(&self.qdir, c)?;
                encode_message(&env, MessageContent::Inline(&inline))?
            }
        };
        let rel = format!("{DEFERRED}/{id}");
        let path = self.qdir.join(&rel);
        let tmp = self.qdir.join(DEFERRED).join(format!("{id}.tmp"));
        let bytes = encode(RecordType::Message, &payload)?;
        let dir = self.qdir.join(DEFERRED);
        tokio::task::spawn_blocking({
            let (tmp, path) = (tmp.clone(), path.clone());
            move || -> std::io::Result<()> {
                use std::io::Write;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
                fs::rename(&tmp, &path)?;
                fs::File::open(&dir)?.sync_all()
            }
        })
        .await??;
        let (new_env, content) = load_file_message(&self.qdir, &rel)?;
        if !self
            .append_all(vec![StateRecord::Moved(Moved { id: id.clone() })], false)
            .await
            .iter()
            .all(|o| *o)
        {
            anyhow::bail!("state log write failed");
        }
        let now = now_micros();
        let Some(m) = self.messages.get_mut(id) else {
            return Ok(());
        };
        let old_origin = std::mem::replace(&mut m.origin, Origin::Deferred);
        m.env = new_env;
        m.content = content;
        m.rcpts = dues.iter().map(|d| RState::Pending { due: *d }).collect();
        m.reasons = keep
            .iter()
            .map(|i| m.reasons.get(*i).cloned().flatten())
            .collect();
        // Old scheduling entries point at old indices: reschedule.
        self.sched.forget(id);
        for (i, due) in dues.into_iter().enumerate() {
            self.sched.schedule(id, i, due, now);
        }
        log::info!("{id}: moved to deferred/");
        if let Origin::Segment(seg) = old_origin {
            if let Some(s) = self.segments.get_mut(&seg) {
                s.live.remove(id);
                s.finished.insert(id.clone());
            }
            self.maybe_delete_segment(&seg);
        }
        Ok(())
    }
}
