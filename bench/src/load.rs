//! `load`: N messages over C concurrent SMTP sessions to a running MTA,
//! measured from the client (accept throughput and latency), from the
//! Maildir (end-to-end throughput, every message exactly once) and from
//! `/proc` (the MTA's CPU time and memory). See the crate docs in main.rs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;

use crate::maildir::Watch;
use crate::message::{Message, RunNonce};
use crate::procstat::{self, Sampler};
use crate::round;
use crate::smtp_client::{Envelope, Session, SmtpError};

/// How often the MTA's memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

pub struct Config {
    pub server: String,
    pub from: String,
    pub to: String,
    pub messages: u64,
    pub size: usize,
    pub sessions: u64,
    pub maildir: PathBuf,
    pub root_pid: u32,
    pub timeout: Duration,
    pub helo: String,
}

/// The JSON line of `load`. Measures that could not be taken are null.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub messages: u64,
    pub size: usize,
    pub sessions: u64,
    pub accept_secs: Option<f64>,
    pub e2e_secs: Option<f64>,
    pub accept_rate: Option<f64>,
    pub e2e_rate: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub missing: Option<u64>,
    pub duplicates: Option<u64>,
    pub cpu_secs: Option<f64>,
    pub cpu_ms_per_message: Option<f64>,
    pub peak_rss_kb: Option<u64>,
    pub peak_pss_kb: Option<u64>,
    pub ok: bool,
    pub error: Option<String>,
}

/// Runs the load and measures it; failures end up in the report.
pub async fn run(config: &Config) -> Report {
    let sessions = config.sessions.min(config.messages);
    let mut report = Report {
        mode: "load",
        messages: config.messages,
        sessions,
        ..Report::default()
    };
    if let Err(error) = measure(config, sessions, &mut report).await {
        report.ok = false;
        report.error = Some(error);
    }
    report
}

/// Fills in `report`; `Err` with the reason when the run failed.
async fn measure(config: &Config, sessions: u64, report: &mut Report) -> Result<(), String> {
    let n = config.messages;
    let nonce = RunNonce::random();
    let template = Message::template(&nonce, &config.from, &config.to, config.size);
    report.size = template.size();
    let server = resolve(&config.server).await?;
    let envelope = Arc::new(Envelope::new(&config.from, &config.to));
    eprintln!(
        "load: run {nonce}, {n} messages of {} bytes over {sessions} sessions to {server}",
        template.size()
    );

    let cpu_start = procstat::tree_cpu_ticks(config.root_pid)
        .map_err(|e| format!("root process {}: {e}", config.root_pid))?;
    let start = Instant::now();
    let deadline = start + config.timeout;
    let watch =
        Watch::start(&config.maildir, nonce, n, deadline).map_err(|e| format!("maildir: {e}"))?;
    // No early return from here on: the sampler and the watch are finished.
    let sampler = Sampler::start(config.root_pid, SAMPLE_EVERY);

    // The sessions: session s sends messages s, s + C, s + 2C, …
    let first_connect = Instant::now();
    let mut tasks = JoinSet::new();
    for s in 0..sessions {
        let mut message = template.clone();
        let envelope = Arc::clone(&envelope);
        let helo = config.helo.clone();
        tasks.spawn(async move {
            let numbers = (s..n).step_by(sessions as usize);
            send_all(server, &helo, &envelope, &mut message, numbers, s == 0).await
        });
    }
    let sent = tokio::time::timeout_at(deadline.into(), collect(&mut tasks)).await;
    let smtp = match sent {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "timeout: not all messages accepted within {} s",
            config.timeout.as_secs()
        )),
    };
    tasks.abort_all();
    match smtp {
        Ok(_) => watch.arm(),
        Err(_) => watch.cancel(),
    }

    let mut failure = None;
    match &smtp {
        Ok((last_accept, latencies)) => {
            let secs = last_accept.duration_since(first_connect).as_secs_f64();
            report.accept_secs = Some(round(secs, 6));
            report.accept_rate = Some(round(n as f64 / secs, 1));
            report.latency_p50_ms = percentile(latencies, 50.0).map(|us| round(us / 1e3, 3));
            report.latency_p99_ms = percentile(latencies, 99.0).map(|us| round(us / 1e3, 3));
        }
        Err(e) => failure = Some(e.clone()),
    }

    match watch.finish() {
        Ok(outcome) => {
            report.missing = Some(outcome.missing);
            report.duplicates = Some(outcome.duplicates);
            if let Some(at) = outcome.complete_at.filter(|_| smtp.is_ok()) {
                let secs = at.duration_since(first_connect).as_secs_f64();
                report.e2e_secs = Some(round(secs, 6));
                report.e2e_rate = Some(round(n as f64 / secs, 1));
            }
            if failure.is_none() && (outcome.missing > 0 || outcome.duplicates > 0) {
                failure = Some(format!(
                    "{} missing and {} duplicated in {}/new{}",
                    outcome.missing,
                    outcome.duplicates,
                    config.maildir.display(),
                    if outcome.complete_at.is_none() {
                        format!(" after the {} s timeout", config.timeout.as_secs())
                    } else {
                        String::new()
                    }
                ));
            }
        }
        Err(e) => failure = failure.or(Some(format!("maildir: {e}"))),
    }

    // The MTA's resources, the trailing work after delivery included.
    match sampler.finish() {
        Ok(peaks) => {
            report.peak_rss_kb = Some(peaks.rss_kb);
            report.peak_pss_kb = peaks.pss_kb;
            if peaks.pss_kb.is_none() {
                eprintln!("load: Pss unreadable (smaps_rollup permission), peak_pss_kb is null");
            }
        }
        Err(e) => failure = failure.or(Some(format!("memory sampler: {e}"))),
    }
    match procstat::tree_cpu_ticks(config.root_pid) {
        Ok(cpu_end) => {
            let secs =
                cpu_end.saturating_sub(cpu_start) as f64 / procstat::clock_ticks_per_sec() as f64;
            report.cpu_secs = Some(round(secs, 3));
            report.cpu_ms_per_message = Some(round(secs * 1e3 / n as f64, 4));
        }
        Err(e) => failure = failure.or(Some(format!("root process {}: {e}", config.root_pid))),
    }

    match failure {
        None => {
            report.ok = true;
            Ok(())
        }
        Some(e) => Err(e),
    }
}

/// One session: open, send the numbered messages, quit. Returns when the
/// last message was accepted and each message's accept latency in µs.
async fn send_all(
    server: SocketAddr,
    helo: &str,
    envelope: &Envelope,
    message: &mut Message,
    numbers: impl Iterator<Item = u64>,
    first: bool,
) -> Result<(Instant, Vec<u64>), String> {
    let context = |e: SmtpError| format!("SMTP: {e}");
    let mut latencies = Vec::with_capacity(numbers.size_hint().0);
    let mut session = Session::open(server, helo).await.map_err(context)?;
    if first {
        let word = if session.pipelining() {
            "pipelined"
        } else {
            "one by one (no PIPELINING)"
        };
        eprintln!("load: MAIL, RCPT and DATA sent {word}");
    }
    let mut last = Instant::now();
    for number in numbers {
        message.set_number(number);
        let waited = session
            .send(envelope, message.wire())
            .await
            .map_err(|e| format!("SMTP: message {number}: {e}"))?;
        last = Instant::now();
        latencies.push(waited.as_micros() as u64);
    }
    session.quit().await.map_err(context)?;
    Ok((last, latencies))
}

/// Waits for every session; the first failure ends the wait.
async fn collect(
    tasks: &mut JoinSet<Result<(Instant, Vec<u64>), String>>,
) -> Result<(Instant, Vec<u64>), String> {
    let mut last: Option<Instant> = None;
    let mut latencies = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (at, mut lat) = joined.map_err(|e| format!("session task: {e}"))??;
        last = Some(last.map_or(at, |l| l.max(at)));
        latencies.append(&mut lat);
    }
    latencies.sort_unstable();
    last.map(|l| (l, latencies))
        .ok_or_else(|| "no session ran".to_string())
}

/// The nearest-rank percentile `p` (0 < p ≤ 100) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1] as f64)
}

pub async fn resolve(server: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(server)
        .await
        .map_err(|e| format!("--server {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("--server {server}: no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback::{self, ServerOptions};

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7], 99.0), Some(7.0));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2.0));
        assert_eq!(
            percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 1000], 99.0),
            Some(1000.0)
        );
        assert_eq!(percentile(&[], 50.0), None);
    }

    fn config(server: SocketAddr, maildir: PathBuf, messages: u64, sessions: u64) -> Config {
        Config {
            server: server.to_string(),
            from: "bench@example.org".into(),
            to: "user@localhost".into(),
            messages,
            size: 2048,
            sessions,
            maildir,
            root_pid: std::process::id(),
            timeout: Duration::from_secs(30),
            helo: "test.localhost".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn load_against_the_trivial_server_finds_every_message() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        for pipelining in [true, false] {
            let server = loopback::spawn(ServerOptions {
                maildir: Some(maildir.clone()),
                pipelining,
                ..ServerOptions::default()
            })
            .await
            .unwrap();
            // Twice into the same Maildir: the first run's files are ignored.
            for _ in 0..2 {
                let r = run(&config(server.addr(), maildir.clone(), 200, 7)).await;
                assert!(r.ok, "{r:?}");
                assert_eq!((r.missing, r.duplicates), (Some(0), Some(0)));
                assert!(r.e2e_secs >= r.accept_secs);
                assert!(r.latency_p50_ms <= r.latency_p99_ms);
                assert!(r.cpu_secs.is_some() && r.peak_rss_kb.unwrap() > 0);
                assert_eq!(r.size, 2048);
            }
        }
        let files = std::fs::read_dir(maildir.join("new")).unwrap().count();
        assert_eq!(files, 800);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rejected_recipient_fails_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let server = loopback::spawn(ServerOptions {
            reject_rcpt: Some("user@localhost".into()),
            ..ServerOptions::default()
        })
        .await
        .unwrap();
        let r = run(&config(server.addr(), dir.path().into(), 10, 2)).await;
        assert!(!r.ok);
        let error = r.error.unwrap();
        assert!(
            error.contains("RCPT TO") && error.contains("550"),
            "{error}"
        );
        let json = serde_json::to_string(&Report::default()).unwrap();
        assert!(json.contains("\"e2e_rate\":null"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn undelivered_messages_time_out() {
        let dir = tempfile::tempdir().unwrap();
        let server = loopback::spawn(ServerOptions::default()).await.unwrap();
        let mut c = config(server.addr(), dir.path().into(), 5, 1);
        c.timeout = Duration::from_millis(300);
        let r = run(&c).await;
        assert!(!r.ok);
        assert_eq!(r.missing, Some(5));
        assert!(r.accept_rate.is_some() && r.e2e_rate.is_none());
    }
}
