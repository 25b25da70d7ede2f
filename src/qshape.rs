//! `postern queue shape`: Postfix's qshape(1) table — how many
//! recipients (or, by sender, messages) per domain have waited how long —
//! from the live queue as qmgr reports it.
//!
//! The columns are qshape's: `T` (the total), then age buckets whose
//! headings are their upper bounds in minutes. The first bucket holds
//! ages below `tick` minutes, each next one twice the previous bound
//! (`--linear`: the next multiple of `tick`), the last has no bound
//! (`1280+`). A message's age is counted from its arrival, as qshape
//! counts it from the queue file's arrival time record. Domains are the
//! part after the last `@`, lower-cased, with one leading and one
//! trailing dot removed and `..` folded; the null sender is
//! `MAILER-DAEMON`. Rows are sorted by their total, largest first, then
//! by length and name; `TOTAL` is always first. With `parents`, each
//! parent domain (never a top-level domain) that has at least
//! `min_subdomains` subdomains in the table gets a row of its own, named
//! with a leading dot (`.example.com`).

use std::collections::HashMap;
use std::fmt::Write;

use serde::Serialize;

use crate::ipc::QueueEntry;

/// What to count and how to cut ages.
#[derive(Clone, Debug)]
pub struct Options {
    /// Count senders' domains (one per message) instead of recipients'.
    pub by_sender: bool,
    /// The age buckets after the total (qshape `-b`, at least 1).
    pub buckets: usize,
    /// The first bucket's bound in minutes (qshape `-t`, at least 1).
    pub tick_minutes: u64,
    /// Bounds are multiples of `tick_minutes` (qshape `-l`).
    pub linear: bool,
    /// Rows for parent domains (qshape `-p`) with at least this many
    /// subdomains (qshape `-m`); `None`: no parent rows.
    pub parents: Option<usize>,
    /// Only messages in these queues (`active`, `deferred`, `hold`);
    /// empty: all but `hold`.
    pub queues: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            by_sender: false,
            buckets: 10,
            tick_minutes: 5,
            linear: false,
            parents: None,
            queues: Vec::new(),
        }
    }
}

/// The table: headings and rows, `TOTAL` first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Shape {
    /// `recipient-domain` or `sender-domain`.
    pub by: &'static str,
    /// The upper bound of each age bucket in minutes; `None` for the last,
    /// which has none.
    pub bucket_minutes: Vec<Option<u64>>,
    pub rows: Vec<Row>,
}

/// One line of the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub domain: String,
    pub total: u64,
    /// One count per bucket of [`Shape::bucket_minutes`].
    pub counts: Vec<u64>,
}

/// Count `entries` as of `now` (seconds since the epoch).
pub fn shape(entries: &[QueueEntry], now: u64, opts: &Options) -> Shape {
    let buckets = opts.buckets.max(1);
    let tick = opts.tick_minutes.max(1);
    let mut counts: HashMap<String, Vec<u64>> = HashMap::new();
    let mut subdomains: HashMap<String, usize> = HashMap::new();
    let total_key = "TOTAL".to_string();
    for e in entries
        .iter()
        .filter(|e| wanted(&e.queue_name, &opts.queues))
    {
        let b = bucket(
            now.saturating_sub(e.arrival_time),
            tick,
            buckets,
            opts.linear,
        );
        let addresses: Vec<&str> = match opts.by_sender {
            true => vec![e.sender.as_str()],
            false => e.recipients.iter().map(|r| r.address.as_str()).collect(),
        };
        for address in addresses {
            add(&mut counts, &total_key, b, buckets);
            let mut d = domain(address);
            let mut new_child = false;
            loop {
                let first = add(&mut counts, &d, b, buckets);
                if new_child {
                    *subdomains.entry(d.clone()).or_default() += 1;
                }
                new_child = first;
                match opts.parents.and_then(|_| parent(&d)) {
                    Some(p) => d = p,
                    None => break,
                }
            }
        }
    }
    let total = counts
        .remove(&total_key)
        .unwrap_or_else(|| vec![0; buckets]);
    let min = opts.parents.unwrap_or(0);
    let mut rows: Vec<Row> = counts
        .into_iter()
        .filter(|(d, _)| !d.starts_with('.') || subdomains.get(d).copied().unwrap_or(0) >= min)
        .map(|(domain, counts)| row(domain, counts))
        .collect();
    rows.sort_by(|a, b| {
        b.total
            .cmp(&a.total)
            .then(a.domain.len().cmp(&b.domain.len()))
            .then(a.domain.cmp(&b.domain))
    });
    rows.insert(0, row(total_key, total));
    Shape {
        by: if opts.by_sender {
            "sender-domain"
        } else {
            "recipient-domain"
        },
        bucket_minutes: bounds(tick, buckets, opts.linear),
        rows,
    }
}

fn wanted(queue: &str, queues: &[String]) -> bool {
    match queues.is_empty() {
        true => queue != "hold",
        false => queues.iter().any(|q| q == queue),
    }
}

fn row(domain: String, counts: Vec<u64>) -> Row {
    Row {
        domain,
        total: counts.iter().sum(),
        counts,
    }
}

/// Count one address of `domain` in bucket `b`; true when it is the
/// domain's first.
fn add(counts: &mut HashMap<String, Vec<u64>>, domain: &str, b: usize, buckets: usize) -> bool {
    let c = counts
        .entry(domain.to_string())
        .or_insert_with(|| vec![0; buckets]);
    let first = c.iter().all(|n| *n == 0);
    c[b] += 1;
    first
}

/// The bucket (0-based) of an age in seconds, as qshape's `bucket`.
fn bucket(age_secs: u64, tick: u64, buckets: usize, linear: bool) -> usize {
    let m = age_secs as f64 / (60 * tick) as f64;
    let b = if m < 1.0 {
        0
    } else if linear {
        m as usize
    } else {
        1 + m.log2().floor() as usize
    };
    b.min(buckets - 1)
}

/// Each bucket's upper bound in minutes, the last without one.
fn bounds(tick: u64, buckets: usize, linear: bool) -> Vec<Option<u64>> {
    let mut out = Vec::with_capacity(buckets);
    let mut t = tick;
    for i in 0..buckets {
        out.push((i + 1 < buckets).then_some(t));
        t = if linear { t + tick } else { t * 2 };
    }
    out
}

/// The domain an address is counted under.
fn domain(address: &str) -> String {
    if address.is_empty() {
        return "MAILER-DAEMON".to_string();
    }
    let lower = address.to_ascii_lowercase();
    let mut d = lower
        .rsplit_once('@')
        .map_or(lower.as_str(), |(_, d)| d)
        .to_string();
    while d.contains("..") {
        d = d.replace("..", ".");
    }
    let d = d.strip_prefix('.').unwrap_or(&d);
    let d = d.strip_suffix('.').filter(|s| !s.is_empty()).unwrap_or(d);
    d.to_string()
}

/// `a.b.example.com` → `.b.example.com` → `.example.com` → none (no
/// top-level domain rows).
fn parent(domain: &str) -> Option<String> {
    let d = domain.strip_prefix('.').unwrap_or(domain);
    let (_, rest) = d.split_once('.')?;
    rest.contains('.').then(|| format!(".{rest}"))
}

/// The table as qshape prints it, right-aligned to `width` columns (at
/// least 80); a domain too long for its column keeps its end behind `+`
/// (`.+` for a parent domain).
pub fn format(shape: &Shape, width: usize) -> String {
    let mut heads = vec!["T".to_string()];
    heads.extend(
        shape
            .bucket_minutes
            .iter()
            .enumerate()
            .map(|(i, b)| match b {
                Some(m) => m.to_string(),
                None => format!(
                    "{}+",
                    i.checked_sub(1)
                        .map_or(0, |p| shape.bucket_minutes[p].unwrap_or(0))
                ),
            }),
    );
    let total = &shape.rows[0];
    let widths: Vec<usize> = heads
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let n = if i == 0 {
                total.total
            } else {
                total.counts[i - 1]
            };
            let l = h.len().max(n.to_string().len());
            if l > 2 { l + 1 } else { 3 }
        })
        .collect();
    let domain_width = width
        .max(80)
        .saturating_sub(widths.iter().sum::<usize>())
        .max(18);
    let mut out = String::new();
    let mut line = |domain: &str, cells: Vec<String>| {
        let _ = write!(out, "{}", fit(domain, domain_width));
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(out, "{cell:>w$}");
        }
        out.push('\n');
    };
    line("", heads);
    for r in &shape.rows {
        let mut cells = vec![r.total.to_string()];
        cells.extend(r.counts.iter().map(u64::to_string));
        line(&r.domain, cells);
    }
    out
}

fn fit(domain: &str, width: usize) -> String {
    let len = domain.len();
    if len <= width {
        return format!("{domain:>width$}");
    }
    let (mark, keep) = match domain.starts_with('.') {
        true => (".+", width - 2),
        false => ("+", width - 1),
    };
    let mut start = len - keep;
    while !domain.is_char_boundary(start) {
        start += 1;
    }
    format!("{mark}{}", &domain[start..])
}

/// The table as one JSON object (`--json`).
pub fn format_json(shape: &Shape) -> String {
    serde_json::to_string_pretty(shape).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::QueueRecipient;

    const NOW: u64 = 1_800_000_000;

    fn entry(queue: &str, age_minutes: u64, sender: &str, rcpts: &[&str]) -> QueueEntry {
        QueueEntry {
            queue_name: queue.into(),
            queue_id: "X".into(),
            arrival_time: NOW - age_minutes * 60,
            message_size: 100,
            forced_expire: false,
            sender: sender.into(),
            recipients: rcpts
                .iter()
                .map(|a| QueueRecipient {
                    address: a.to_string(),
                    delay_reason: None,
                })
                .collect(),
        }
    }

    #[test]
    fn buckets_as_qshape() {
        let b = |m: u64| bucket(m * 60, 5, 10, false);
        assert_eq!(
            [b(0), b(4), b(5), b(9), b(10), b(19), b(20)],
            [0, 0, 1, 1, 2, 2, 3]
        );
        assert_eq!([b(1279), b(1280), b(100_000)], [8, 9, 9]);
        let l = |m: u64| bucket(m * 60, 5, 10, true);
        assert_eq!([l(4), l(5), l(14), l(15), l(1000)], [0, 1, 2, 3, 9]);
        assert_eq!(
            bounds(5, 10, false),
            [5, 10, 20, 40, 80, 160, 320, 640, 1280]
                .map(Some)
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
        assert_eq!(bounds(5, 3, true), vec![Some(5), Some(10), None]);
    }

    #[test]
    fn the_table_qshape_prints() {
        let entries = vec![
            entry(
                "deferred",
                2,
                "a@Sender.example",
                &["x@Example.COM", "y@example.com"],
            ),
            entry("deferred", 30, "", &["z@example.com", "w@other.example"]),
            entry("active", 2000, "b@sender.example", &["v@other.example"]),
            entry("hold", 30, "c@sender.example", &["u@held.example"]),
        ];
        let s = shape(&entries, NOW, &Options::default());
        assert_eq!(
            format(&s, 80),
            format!(
                "{:>80}\n{:>80}\n{:>80}\n{:>80}\n",
                "T  5 10 20 40 80 160 320 640 1280 1280+",
                "TOTAL  5  2  0  0  2  0   0   0   0    0     1",
                "example.com  3  2  0  0  1  0   0   0   0    0     0",
                "other.example  2  0  0  0  1  0   0   0   0    0     1",
            )
        );
        let by_sender = Options {
            by_sender: true,
            queues: vec!["deferred".into(), "hold".into()],
            ..Options::default()
        };
        let s = shape(&entries, NOW, &by_sender);
        let domains: Vec<(&str, u64)> = s
            .rows
            .iter()
            .map(|r| (r.domain.as_str(), r.total))
            .collect();
        assert_eq!(
            domains,
            [("TOTAL", 3), ("sender.example", 2), ("MAILER-DAEMON", 1)]
        );
    }

    #[test]
    fn parent_domains_and_long_names() {
        let rcpts: Vec<String> = (0..5).map(|i| format!("u@h{i}.dept.example.org")).collect();
        let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        let entries = vec![entry("active", 1, "s@x.example", &refs)];
        let opts = Options {
            parents: Some(5),
            ..Options::default()
        };
        let s = shape(&entries, NOW, &opts);
        let names: Vec<&str> = s.rows.iter().map(|r| r.domain.as_str()).collect();
        // .example.org has one subdomain (dept.example.org): no row.
        assert_eq!(names[..2], ["TOTAL", ".dept.example.org"]);
        assert_eq!(s.rows[1].total, 5);
        assert_eq!(names.len(), 2 + 5);
        assert_eq!(
            fit("a-very-long-domain-name.example.org", 18),
            "+-name.example.org"
        );
        assert_eq!(
            fit(".a-very-long-domain-name.example.org", 18),
            ".+name.example.org"
        );
        assert_eq!(domain("x@.Weird..Example.org."), "weird.example.org");
    }
}
