//! The numbers: every metric's definition (name, type, help, buckets),
//! a [`Registry`] of counters and histograms keyed by metric and label
//! set, the per-process [`sink`] the daemons count into, and the
//! Prometheus text exposition (format 0.0.4) qmgr renders on a scrape.
//!
//! Hand-written rather than the `prometheus-client` crate: qmgr merges
//! increments that other processes send it (smtpd's, the supervisor's),
//! so the store must be a plain map keyed by metric and label set that
//! serializes to the IPC's JSON lines; `prometheus-client`'s typed
//! families would need a label struct per metric and a translation on
//! every merge, for an exposition that is forty lines here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

/// What a metric is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    /// With these upper bounds (`le`), `+Inf` added.
    Histogram(&'static [f64]),
}

/// One metric's definition.
#[derive(Debug)]
pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const SECONDS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
];
const FSYNC_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

macro_rules! defs {
    ($($id:ident = $name:literal, $kind:expr, $help:literal;)*) => {
        $(pub const $id: &Def = &Def { name: $name, kind: $kind, help: $help };)*
        /// Every metric, in the order of the exposition.
        pub const ALL: &[&Def] = &[$($id),*];
    };
}

defs! {
    BUILD_INFO = "postern_build_info", Kind::Gauge,
        "postern's version (always 1)";
    SMTPD_CONNECTIONS = "postern_smtpd_connections_total", Kind::Counter,
        "SMTP sessions by listener and how they ended";
    SMTPD_REPLIES = "postern_smtpd_replies_total", Kind::Counter,
        "smtpd's replies by class and enhanced status code";
    MESSAGES_ACCEPTED = "postern_messages_accepted_total", Kind::Counter,
        "messages queued by smtpd, by listener";
    RESTRICTION_HITS = "postern_restriction_hits_total", Kind::Counter,
        "restriction elements that decided, by element and action";
    DNSBL_ANSWERS = "postern_dnsbl_answers_total", Kind::Counter,
        "DNSBL lookups that listed the client, by zone";
    TLS_HANDSHAKES = "postern_tls_handshakes_total", Kind::Counter,
        "TLS handshakes by direction and outcome";
    DELIVERIES = "postern_deliveries_total", Kind::Counter,
        "recipient outcomes by transport and status";
    DELIVERY_DELAY = "postern_delivery_delay_seconds", Kind::Histogram(SECONDS),
        "time from arrival to delivery, by transport";
    COMMIT_BATCH = "postern_queue_commit_batch_size", Kind::Histogram(BATCH),
        "records per batch written to a queue log (a group commit), by log";
    FSYNC = "postern_queue_fsync_seconds", Kind::Histogram(FSYNC_SECONDS),
        "time of one fdatasync of a queue log, by log";
    QUEUE_MESSAGES = "postern_queue_messages", Kind::Gauge,
        "messages in the queue, by queue";
    QUEUE_OLDEST = "postern_queue_oldest_message_age_seconds", Kind::Gauge,
        "age of the oldest message, by queue";
    DEAD_DESTINATIONS = "postern_dead_destinations", Kind::Gauge,
        "next hops marked dead: no session at the last try, their mail deferred without a connection";
    PROCESS_RESTARTS = "postern_process_restarts_total", Kind::Counter,
        "restarts of a role: the supervisor's count, or under systemd the new processes qmgr heard of since it started";
    PROCESS_START = "postern_process_start_time_seconds", Kind::Gauge,
        "start of a role's running process, seconds since the epoch";
}

/// One histogram's state: per bucket (non-cumulative, `+Inf` last), sum
/// and count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hist {
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// Counters and histograms: metric name → label set (as the exposition
/// writes it, `listener="smtp",outcome="ok"`) → value. Gauges are not
/// kept: qmgr computes them on a scrape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<String, BTreeMap<String, Hist>>,
}

impl Registry {
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.histograms.is_empty()
    }

    pub fn inc(&mut self, def: &Def, labels: &[(&str, &str)], by: u64) {
        if !self.counters.contains_key(def.name) {
            self.counters.insert(def.name.to_string(), BTreeMap::new());
        }
        if let Some(series) = self.counters.get_mut(def.name) {
            *series.entry(label_set(labels)).or_default() += by;
        }
    }

    pub fn observe(&mut self, def: &Def, labels: &[(&str, &str)], value: f64) {
        let Kind::Histogram(bounds) = def.kind else {
            return;
        };
        let h = self
            .histograms
            .entry(def.name.to_string())
            .or_default()
            .entry(label_set(labels))
            .or_default();
        h.buckets.resize(bounds.len() + 1, 0);
        let i = bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(bounds.len());
        h.buckets[i] += 1;
        h.sum += value;
        h.count += 1;
    }

    /// Add `other`'s counts to these (another process's increments). A
    /// name this binary does not define is dropped: the exposition has no
    /// help or type for it.
    pub fn merge(&mut self, other: Registry) {
        for (name, series) in other.counters {
            if !matches!(def(&name), Some(d) if d.kind == Kind::Counter) {
                continue;
            }
            let mine = self.counters.entry(name).or_default();
            for (labels, n) in series {
                let v = mine.entry(labels).or_default();
                *v = v.saturating_add(n);
            }
        }
        for (name, series) in other.histograms {
            let Some(Kind::Histogram(bounds)) = def(&name).map(|d| d.kind) else {
                continue;
            };
            let mine = self.histograms.entry(name).or_default();
            for (labels, h) in series {
                if h.buckets.len() != bounds.len() + 1 {
                    continue;
                }
                let m = mine.entry(labels).or_default();
                m.buckets.resize(bounds.len() + 1, 0);
                for (a, b) in m.buckets.iter_mut().zip(&h.buckets) {
                    *a = a.saturating_add(*b);
                }
                m.sum += h.sum;
                m.count = m.count.saturating_add(h.count);
            }
        }
    }

    /// One counter's value (tests, `postern status`).
    pub fn counter(&self, def: &Def, labels: &[(&str, &str)]) -> u64 {
        self.counters
            .get(def.name)
            .and_then(|s| s.get(&label_set(labels)))
            .copied()
            .unwrap_or(0)
    }

    /// The sum of a counter over every label set.
    pub fn counter_sum(&self, def: &Def) -> u64 {
        self.counters
            .get(def.name)
            .map(|s| s.values().sum())
            .unwrap_or(0)
    }
}

fn def(name: &str) -> Option<&'static Def> {
    ALL.iter().copied().find(|d| d.name == name)
}

/// Labels as the exposition writes them, values escaped.
pub fn label_set(labels: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// A gauge's samples, computed at scrape time: label set → value.
pub type Gauges = BTreeMap<&'static str, Vec<(String, f64)>>;

/// The text exposition (format 0.0.4) of `reg` and `gauges`.
pub fn render(reg: &Registry, gauges: &Gauges) -> String {
    let mut out = String::new();
    for d in ALL {
        let _ = writeln!(out, "# HELP {} {}", d.name, d.help);
        let kind = match d.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        };
        let _ = writeln!(out, "# TYPE {} {kind}", d.name);
        match d.kind {
            Kind::Counter => {
                for (labels, v) in reg.counters.get(d.name).into_iter().flatten() {
                    let _ = writeln!(out, "{}{} {v}", d.name, braces(labels));
                }
            }
            Kind::Gauge => {
                for (labels, v) in gauges.get(d.name).into_iter().flatten() {
                    let _ = writeln!(out, "{}{} {}", d.name, braces(labels), number(*v));
                }
            }
            Kind::Histogram(bounds) => {
                for (labels, h) in reg.histograms.get(d.name).into_iter().flatten() {
                    let sep = if labels.is_empty() { "" } else { "," };
                    let mut cumulative = 0;
                    for (i, n) in h.buckets.iter().enumerate() {
                        cumulative += n;
                        let le = bounds.get(i).map_or("+Inf".to_string(), |b| number(*b));
                        let _ = writeln!(
                            out,
                            "{}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}",
                            d.name
                        );
                    }
                    let _ = writeln!(out, "{}_sum{} {}", d.name, braces(labels), number(h.sum));
                    let _ = writeln!(out, "{}_count{} {}", d.name, braces(labels), h.count);
                }
            }
        }
    }
    out
}

fn braces(labels: &str) -> String {
    match labels {
        "" => String::new(),
        l => format!("{{{l}}}"),
    }
}

/// A float as Prometheus writes it (`1`, `0.5`, `+Inf`).
fn number(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    format!("{v}")
}

/// The increments this process counted since they were last taken: smtpd
/// sends them to qmgr every second, qmgr merges its own on a scrape. A
/// process-wide sink, as the `log` facade is, so that the places that
/// count need no handle threaded through them; off (nothing kept, one
/// atomic load per call) unless [`enable`]d, which the roles do when
/// `metrics.listen` is set.
///
/// The places that count are on the mail path (smtpd counts some ten
/// things per message), so a count is made cheap: each series (metric and
/// label set) is made once, the first time it is counted, and is found
/// again by comparing its label values in place; a count is then an
/// addition under an uncontended lock, with nothing allocated or
/// formatted. The exposition's label sets (`a="x",b="y"`) are written
/// only when the counts are taken, once a second at most.
pub mod sink {
    use super::*;

    static ON: AtomicBool = AtomicBool::new(false);
    static STORE: Mutex<Store> = Mutex::new(Store {
        series: Vec::new(),
        returned: None,
    });

    /// One series counted in this process, and what was counted in it
    /// since the last [`take`]. Kept (at zero) after a take: the next
    /// count in it allocates nothing.
    struct Series {
        def: &'static Def,
        labels: Vec<(&'static str, Box<str>)>,
        /// Counter: the increments; histogram: the observations.
        count: u64,
        /// Histogram: per bucket (non-cumulative, `+Inf` last), and sum.
        buckets: Box<[u64]>,
        sum: f64,
    }

    impl Series {
        fn is(&self, def: &Def, labels: &[(&'static str, &str)]) -> bool {
            self.def.name == def.name
                && self.labels.len() == labels.len()
                && self
                    .labels
                    .iter()
                    .zip(labels)
                    .all(|((n, v), (name, value))| n == name && **v == **value)
        }
    }

    struct Store {
        series: Vec<Series>,
        /// Counts [`take`]n that could not be delivered.
        returned: Option<Registry>,
    }

    impl Store {
        fn series(&mut self, def: &'static Def, labels: &[(&'static str, &str)]) -> &mut Series {
            let i = match self.series.iter().position(|s| s.is(def, labels)) {
                Some(i) => i,
                None => {
                    let buckets = match def.kind {
                        Kind::Histogram(bounds) => vec![0; bounds.len() + 1].into(),
                        _ => Box::default(),
                    };
                    self.series.push(Series {
                        def,
                        labels: labels.iter().map(|(n, v)| (*n, Box::from(*v))).collect(),
                        count: 0,
                        buckets,
                        sum: 0.0,
                    });
                    self.series.len() - 1
                }
            };
            &mut self.series[i]
        }
    }

    pub fn enable(on: bool) {
        ON.store(on, Ordering::Relaxed);
    }

    pub fn enabled() -> bool {
        ON.load(Ordering::Relaxed)
    }

    fn with(f: impl FnOnce(&mut Store)) {
        if !enabled() {
            return;
        }
        // A poisoned lock (a panic while counting) keeps counting.
        let mut g = STORE.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g);
    }

    /// Count one.
    pub fn inc(def: &'static Def, labels: &[(&'static str, &str)]) {
        with(|s| s.series(def, labels).count += 1);
    }

    pub fn observe(def: &'static Def, labels: &[(&'static str, &str)], value: f64) {
        let Kind::Histogram(bounds) = def.kind else {
            return;
        };
        with(|s| {
            let series = s.series(def, labels);
            let i = bounds
                .iter()
                .position(|b| value <= *b)
                .unwrap_or(bounds.len());
            if let Some(b) = series.buckets.get_mut(i) {
                *b += 1;
            }
            series.count += 1;
            series.sum += value;
        });
    }

    /// Counts [`take`]n that could not be delivered, kept for the next
    /// time.
    pub fn give_back(counts: Registry) {
        let mut g = STORE.lock().unwrap_or_else(|e| e.into_inner());
        g.returned
            .get_or_insert_with(Registry::default)
            .merge(counts);
    }

    /// Everything counted since the last call.
    pub fn take() -> Registry {
        let mut g = STORE.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = g.returned.take().unwrap_or_default();
        for s in g.series.iter_mut().filter(|s| s.count > 0) {
            let labels: Vec<(&str, &str)> = s.labels.iter().map(|(n, v)| (*n, &**v)).collect();
            let labels = label_set(&labels);
            match s.def.kind {
                Kind::Histogram(_) => {
                    let h = out
                        .histograms
                        .entry(s.def.name.to_string())
                        .or_default()
                        .entry(labels)
                        .or_default();
                    h.buckets.resize(s.buckets.len(), 0);
                    for (a, b) in h.buckets.iter_mut().zip(s.buckets.iter_mut()) {
                        *a = a.saturating_add(std::mem::take(b));
                    }
                    h.sum += s.sum;
                    h.count = h.count.saturating_add(s.count);
                }
                _ => {
                    let v = out
                        .counters
                        .entry(s.def.name.to_string())
                        .or_default()
                        .entry(labels)
                        .or_default();
                    *v = v.saturating_add(s.count);
                }
            }
            s.count = 0;
            s.sum = 0.0;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_merge_and_render() {
        let mut a = Registry::default();
        a.inc(SMTPD_REPLIES, &[("class", "5xx"), ("code", "5.7.1")], 1);
        let mut b = Registry::default();
        b.inc(SMTPD_REPLIES, &[("class", "5xx"), ("code", "5.7.1")], 2);
        b.inc(SMTPD_REPLIES, &[("class", "2xx"), ("code", "2.0.0")], 1);
        // A name this binary does not know is dropped.
        b.counters
            .entry("postern_bogus_total".into())
            .or_default()
            .insert(String::new(), 7);
        a.merge(b);
        assert_eq!(
            a.counter(SMTPD_REPLIES, &[("class", "5xx"), ("code", "5.7.1")]),
            3
        );
        assert_eq!(a.counter_sum(SMTPD_REPLIES), 4);
        let text = render(&a, &Gauges::new());
        assert!(text.contains(
            "# TYPE postern_smtpd_replies_total counter\n\
             postern_smtpd_replies_total{class=\"2xx\",code=\"2.0.0\"} 1\n\
             postern_smtpd_replies_total{class=\"5xx\",code=\"5.7.1\"} 3\n"
        ));
        assert!(!text.contains("bogus"));
    }

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let mut r = Registry::default();
        r.observe(COMMIT_BATCH, &[("log", "incoming")], 1.0);
        r.observe(COMMIT_BATCH, &[("log", "incoming")], 3.0);
        r.observe(COMMIT_BATCH, &[("log", "incoming")], 1000.0);
        let text = render(&r, &Gauges::new());
        assert!(
            text.contains("postern_queue_commit_batch_size_bucket{log=\"incoming\",le=\"1\"} 1\n")
        );
        assert!(
            text.contains("postern_queue_commit_batch_size_bucket{log=\"incoming\",le=\"4\"} 2\n")
        );
        assert!(
            text.contains(
                "postern_queue_commit_batch_size_bucket{log=\"incoming\",le=\"+Inf\"} 3\n"
            )
        );
        assert!(text.contains("postern_queue_commit_batch_size_sum{log=\"incoming\"} 1004\n"));
        assert!(text.contains("postern_queue_commit_batch_size_count{log=\"incoming\"} 3\n"));
        // Another process's histogram merges bucket by bucket.
        let mut s = Registry::default();
        s.merge(r.clone());
        s.merge(r);
        assert_eq!(s.histograms[COMMIT_BATCH.name]["log=\"incoming\""].count, 6);
    }

    #[test]
    fn the_sink_counts_in_place_and_takes_the_increments() {
        // The sink is the process's: other tests may count into it too,
        // so only this test's own label values are looked at.
        sink::enable(true);
        let mine = [("listener", "sink-test")];
        sink::inc(MESSAGES_ACCEPTED, &mine);
        sink::inc(MESSAGES_ACCEPTED, &mine);
        sink::observe(FSYNC, &[("log", "sink-test")], 0.002);
        sink::observe(FSYNC, &[("log", "sink-test")], 5.0);
        let taken = sink::take();
        assert_eq!(taken.counter(MESSAGES_ACCEPTED, &mine), 2);
        let h = &taken.histograms[FSYNC.name]["log=\"sink-test\""];
        assert_eq!((h.count, h.sum), (2, 5.002));
        assert_eq!(h.buckets.len(), FSYNC_SECONDS.len() + 1);
        assert_eq!((h.buckets[2], h.buckets[FSYNC_SECONDS.len()]), (1, 1));
        // Taken once: the next take has only what was counted since, and
        // what could not be sent comes back.
        sink::inc(MESSAGES_ACCEPTED, &mine);
        sink::give_back(taken);
        let again = sink::take();
        assert_eq!(again.counter(MESSAGES_ACCEPTED, &mine), 3);
        assert_eq!(again.histograms[FSYNC.name]["log=\"sink-test\""].count, 2);
        let empty = sink::take();
        assert_eq!(empty.counter(MESSAGES_ACCEPTED, &mine), 0);
        assert!(
            !empty
                .histograms
                .get(FSYNC.name)
                .is_some_and(|s| s.contains_key("log=\"sink-test\""))
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            label_set(&[("a", "x\"y\\z\nw"), ("b", "")]),
            "a=\"x\\\"y\\\\z\\nw\",b=\"\""
        );
    }

    #[test]
    fn the_wire_form_is_json() {
        let mut r = Registry::default();
        r.inc(DELIVERIES, &[("transport", "smtp"), ("status", "sent")], 2);
        r.observe(FSYNC, &[("log", "state")], 0.002);
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Registry>(&line).unwrap(), r);
    }
}
