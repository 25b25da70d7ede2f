//! The administrator's operations on messages (`postern queue hold |
//! release | delete | requeue ID… | ALL`), Postfix's postsuper -h / -H / -d
//! and postqueue -i. Hold, release and delete are recorded durably in the
//! state log before they take effect; requeue only changes times.

use super::{Engine, RState};
use crate::ipc::{QueueAction, QueueEntry, QueueOpResult, QueueRecipient};
use crate::qmgr::state::{Admin, AdminOp, StateRecord};
use crate::queue::{QueueId, now_micros};

impl Engine {
    /// The queue as `mailq` shows it: every message with recipients still
    /// to deliver, in arrival order.
    pub(crate) fn listing(&self) -> Vec<QueueEntry> {
        let now = now_micros();
        self.messages
            .iter()
            .map(|(id, m)| {
                let queue_name = super::metrics::queue_of(m, now);
                let recipients = m
                    .rcpts
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| !r.is_final())
                    .map(|(i, _)| QueueRecipient {
                        address: m.env.recipients[i].address.clone(),
                        delay_reason: m.reasons.get(i).cloned().flatten(),
                    })
                    .collect();
                QueueEntry {
                    queue_name: queue_name.into(),
                    queue_id: id.to_string(),
                    arrival_time: m.env.arrival_us / 1_000_000,
                    message_size: m.env.size,
                    forced_expire: false,
                    sender: m.env.sender.clone(),
                    recipients,
                }
            })
            .collect()
    }

    /// One message for `postern queue show`.
    pub(crate) fn show(&self, id: &str) -> Option<crate::ipc::ShownMessage> {
        let id: QueueId = id.parse().ok()?;
        let m = self.messages.get(&id)?;
        let content = super::read_content(&self.qdir, &m.content)
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_else(|e| format!("(cannot read the content: {e})"));
        let states = m
            .rcpts
            .iter()
            .map(|r| match r {
                RState::Pending { .. } => "pending",
                RState::Active => "active",
                RState::Done => "delivered",
                RState::Bounced => "bounced",
            })
            .map(String::from)
            .collect();
        Some(crate::ipc::ShownMessage {
            envelope: m.env.clone(),
            states,
            content,
        })
    }

    pub(crate) async fn queue_op(&mut self, action: QueueAction, ids: &[String]) -> QueueOpResult {
        let mut result = QueueOpResult::default();
        if action == QueueAction::Requeue && ids.iter().any(|i| i == "ALL") {
            // `postern flush`: the dead next hops are tried again too.
            self.sched.out.revive_all();
        }
        let targets: Vec<QueueId> = if ids.iter().any(|i| i == "ALL") {
            self.messages.keys().cloned().collect()
        } else {
            let mut t = Vec::new();
            for raw in ids {
                match raw.parse::<QueueId>() {
                    Ok(id) if self.messages.contains_key(&id) => t.push(id),
                    _ => result.unknown.push(raw.clone()),
                }
            }
            t
        };
        for id in targets {
            if self.apply_op(action, &id).await {
                result.affected += 1;
            }
        }
        result
    }

    /// One message; true when it changed.
    async fn apply_op(&mut self, action: QueueAction, id: &QueueId) -> bool {
        let Some(m) = self.messages.get(id) else {
            return false;
        };
        let op = match action {
            QueueAction::Hold if !m.held => AdminOp::Hold,
            QueueAction::Release if m.held => AdminOp::Release,
            QueueAction::Delete => AdminOp::Delete,
            QueueAction::Requeue => {
                self.requeue(id);
                return true;
            }
            QueueAction::Hold | QueueAction::Release => return false,
        };
        let record = StateRecord::Admin(Admin { id: id.clone(), op });
        if !self
            .append_all(vec![record], false)
            .await
            .iter()
            .all(|ok| *ok)
        {
            log::warn!("{id}: state log write failed; {op:?} not done");
            return false;
        }
        let Some(m) = self.messages.get_mut(id) else {
            return false;
        };
        match op {
            AdminOp::Hold => {
                m.held = true;
                log::info!("{id}: placed on hold");
            }
            AdminOp::Release => {
                m.held = false;
                log::info!("{id}: released from hold");
                self.requeue(id);
            }
            AdminOp::Delete => {
                m.deleted = true;
                for r in m.rcpts.iter_mut() {
                    if matches!(r, RState::Pending { .. }) {
                        *r = RState::Bounced;
                    }
                }
                if m.rcpts.iter().all(|r| r.is_final()) {
                    self.finish(id);
                }
            }
        }
        true
    }

    /// Every waiting recipient of the message is due now.
    fn requeue(&mut self, id: &QueueId) {
        let now = now_micros();
        let Some(m) = self.messages.get_mut(id) else {
            return;
        };
        let mut due = Vec::new();
        for (i, r) in m.rcpts.iter_mut().enumerate() {
            if let RState::Pending { .. } = r {
                *r = RState::Pending { due: now };
                due.push(i);
            }
        }
        if !due.is_empty() && !m.held {
            log::info!("{id}: requeued");
        }
        for i in due {
            self.sched.schedule(id, i, now, now);
        }
    }
}
