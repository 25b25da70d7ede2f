//! qmgr's side of the metrics (issue 23): the counts it keeps for every
//! role, and the queue's gauges, rendered as the exposition on a scrape.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Engine, Message, RState};
use crate::ipc::Started;
use crate::metrics::registry::{self as reg, Gauges, Registry};
use crate::queue::now_micros;

/// The queue a message is in, as `mailq` names it.
pub(super) fn queue_of(m: &Message, now: u64) -> &'static str {
    let active = m.rcpts.iter().any(|r| match r {
        RState::Active => true,
        RState::Pending { due } => *due <= now,
        _ => false,
    });
    if m.held {
        "hold"
    } else if active {
        "active"
    } else {
        "deferred"
    }
}

/// Counts per second over the last minute: messages taken in, recipients
/// delivered.
#[derive(Default)]
pub(crate) struct Rates {
    /// By second modulo 60: (the second, in, out).
    seconds: Vec<(u64, u64, u64)>,
}

impl Rates {
    fn slot(&mut self, now_us: u64) -> &mut (u64, u64, u64) {
        let sec = now_us / 1_000_000;
        self.seconds.resize(60, (0, 0, 0));
        let s = &mut self.seconds[(sec % 60) as usize];
        if s.0 != sec {
            *s = (sec, 0, 0);
        }
        s
    }

    pub(crate) fn note_in(&mut self, now_us: u64, n: u64) {
        self.slot(now_us).1 += n;
    }

    pub(crate) fn note_out(&mut self, now_us: u64, n: u64) {
        if n > 0 {
            self.slot(now_us).2 += n;
        }
    }

    /// (in, out) over the last 60 seconds.
    pub(crate) fn last_minute(&self, now_us: u64) -> (u64, u64) {
        let sec = now_us / 1_000_000;
        self.seconds
            .iter()
            .filter(|(s, _, _)| sec.saturating_sub(*s) < 60)
            .fold((0, 0), |(a, b), (_, i, o)| (a + i, b + o))
    }
}

/// Per queue: messages, and the arrival of the oldest (µs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueueNumbers {
    pub messages: u64,
    pub oldest_us: Option<u64>,
}

/// The roles' processes qmgr heard of ([`Started`]): per role the
/// running one, and how often a new one came since qmgr started.
#[derive(Default)]
pub(crate) struct Processes {
    by_role: BTreeMap<String, Seen>,
}

struct Seen {
    pid: u32,
    at: u64,
    restarts: u64,
}

impl Processes {
    /// qmgr's own process first.
    pub(crate) fn with_me() -> Processes {
        let mut p = Processes::default();
        if let Some(me) = crate::role::me() {
            p.heard(me);
        }
        p
    }

    /// A role's process said who it is. Another process than the one
    /// known is a restart, unless it started before that one (an answer
    /// of the old process read late).
    pub(crate) fn heard(&mut self, s: Started) {
        match self.by_role.get_mut(&s.role) {
            None => {
                let seen = Seen {
                    pid: s.pid,
                    at: s.at,
                    restarts: 0,
                };
                self.by_role.insert(s.role, seen);
            }
            Some(x) if (x.pid, x.at) != (s.pid, s.at) && s.at >= x.at => {
                x.restarts += 1;
                (x.pid, x.at) = (s.pid, s.at);
            }
            Some(_) => {}
        }
    }
}

impl Engine {
    /// Another role's counts, and who sent them.
    pub(crate) fn add_counts(&mut self, counts: Registry, started: Option<Started>) {
        self.counts.merge(counts);
        if let Some(s) = started {
            self.processes.heard(s);
        }
    }

    /// The queue's numbers: active, deferred, hold.
    pub(crate) fn queue_numbers(&self) -> [(&'static str, QueueNumbers); 3] {
        let now = now_micros();
        let mut out = [
            ("active", QueueNumbers::default()),
            ("deferred", QueueNumbers::default()),
            ("hold", QueueNumbers::default()),
        ];
        let e = self.win.evicted;
        let u = self.unread();
        let evicted = [
            ("deferred", e.deferred, e.oldest_deferred_us),
            ("hold", e.held, e.oldest_held_us),
            // Not read yet from their segments (the window was full).
            ("active", u.active, u.oldest_us[0]),
            // Flushed, waiting in `deferred/` for room in the window.
            ("active", self.win.flushing, None),
            ("deferred", u.deferred, u.oldest_us[1]),
            ("hold", u.held, u.oldest_us[2]),
        ];
        let ages = self
            .messages
            .values()
            .map(|m| (queue_of(m, now), 1, Some(m.env.arrival_us)));
        for (q, count, oldest) in ages.chain(evicted) {
            if let Some((_, n)) = out.iter_mut().find(|(name, _)| *name == q) {
                n.messages += count as u64;
                if count > 0
                    && let Some(a) = oldest
                {
                    n.oldest_us = Some(n.oldest_us.map_or(a, |o| o.min(a)));
                }
            }
        }
        out
    }

    /// Restarts and start times: the supervisor's (`run/roles.json`,
    /// which outlives qmgr) where it runs the roles, else what qmgr heard.
    fn processes_into(&self, counts: &mut Registry, gauges: &mut Gauges) {
        let supervised = crate::role::states(&self.cfg.server.run_directory);
        let mut starts = Vec::new();
        for (role, st) in &supervised {
            counts.inc(reg::PROCESS_RESTARTS, &[("role", role)], st.restarts);
            if st.pid != 0 {
                starts.push((reg::label_set(&[("role", role)]), st.started as f64));
            }
        }
        for (role, seen) in &self.processes.by_role {
            if !supervised.contains_key(role) {
                counts.inc(reg::PROCESS_RESTARTS, &[("role", role)], seen.restarts);
                starts.push((reg::label_set(&[("role", role)]), seen.at as f64));
            }
        }
        gauges.insert(reg::PROCESS_START.name, starts);
    }

    /// The whole exposition: qmgr's own counts since the last scrape
    /// added to what it keeps, the queue's gauges, the supervisor's
    /// restarts.
    pub(crate) fn exposition(&mut self) -> String {
        self.counts.merge(reg::sink::take());
        let mut counts = self.counts.clone();
        let now = now_micros();
        let mut gauges = Gauges::new();
        self.processes_into(&mut counts, &mut gauges);
        gauges.insert(
            reg::BUILD_INFO.name,
            vec![(
                reg::label_set(&[("version", env!("CARGO_PKG_VERSION"))]),
                1.0,
            )],
        );
        let numbers = self.queue_numbers();
        let mut sizes = Vec::new();
        let mut ages = Vec::new();
        for (q, n) in numbers {
            let labels = reg::label_set(&[("queue", q)]);
            sizes.push((labels.clone(), n.messages as f64));
            let age = n.oldest_us.map_or(0, |a| now.saturating_sub(a));
            ages.push((labels, age as f64 / 1e6));
        }
        // corrupt/: damaged files kept for inspection (one directory read).
        if let Some(n) = count_files(&self.qdir.join(crate::queue::CORRUPT)) {
            sizes.push((reg::label_set(&[("queue", "corrupt")]), n as f64));
        }
        gauges.insert(reg::QUEUE_MESSAGES.name, sizes);
        gauges.insert(reg::QUEUE_OLDEST.name, ages);
        gauges.insert(
            reg::DEAD_DESTINATIONS.name,
            vec![(String::new(), self.sched.out.dead_count() as f64)],
        );
        reg::render(&counts, &gauges)
    }
}

fn count_files(dir: &Path) -> Option<usize> {
    Some(
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".done"))
            .count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_keep_the_last_minute() {
        let mut r = Rates::default();
        let t = 1_000_000_000 * 1_000_000;
        r.note_in(t, 2);
        r.note_out(t + 500_000, 1);
        r.note_in(t + 30_000_000, 1);
        assert_eq!(r.last_minute(t + 30_000_000), (3, 1));
        // 60 s after the first second it is out; its slot is reused.
        assert_eq!(r.last_minute(t + 60_000_000), (1, 0));
        r.note_out(t + 60_000_000, 4);
        assert_eq!(r.last_minute(t + 60_000_000), (1, 4));
        assert_eq!(r.last_minute(t + 200_000_000), (0, 0));
    }

    #[test]
    fn a_new_process_of_a_role_is_a_restart() {
        let started = |role: &str, pid, at| Started {
            role: role.into(),
            pid,
            at,
        };
        let mut p = Processes::default();
        p.heard(started("smtp", 10, 100));
        // The same process again (its answer on another connection).
        p.heard(started("smtp", 10, 100));
        p.heard(started("local", 11, 100));
        assert_eq!(p.by_role["smtp"].restarts, 0);
        // A new one.
        p.heard(started("smtp", 20, 160));
        // The old one's answer read late: not a restart.
        p.heard(started("smtp", 10, 100));
        assert_eq!(p.by_role["smtp"].restarts, 1);
        assert_eq!((p.by_role["smtp"].pid, p.by_role["smtp"].at), (20, 160));
        // A pid used again by a later process.
        p.heard(started("smtp", 10, 200));
        assert_eq!(p.by_role["smtp"].restarts, 2);
        assert_eq!(p.by_role["local"].restarts, 0);
    }

    #[test]
    fn ages_in_one_unit() {
        use crate::ipc::short_age;
        assert_eq!(short_age(45), "45s");
        assert_eq!(short_age(125), "2m");
        assert_eq!(short_age(7300), "2h");
        assert_eq!(short_age(3 * 86400 + 5), "3d");
    }
}
