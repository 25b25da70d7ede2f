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

use crate::maildir::{Outcome, Watch};
use crate::message::{Field, Message, RunNonce};
use crate::procstat::{self, Sampler};
use crate::round;
use crate::smtp_client::{Envelope, Session, SmtpError};
use crate::tls;

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
    /// STARTTLS in every session.
    pub starttls: bool,
    /// Reconnect after this many messages (None: one connection per
    /// session for the whole run).
    pub per_connection: Option<u64>,
    /// A header field every delivered message must carry (what a milter
    /// adds, for example).
    pub expect: Option<Field>,
    /// Measure the acceptance only: the messages are not expected in the
    /// Maildir (queued for a destination that does not answer, say).
    pub accept_only: bool,
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
    /// The expected field (`--expect-header`), and how many delivered
    /// messages lacked it.
    pub expected_header: Option<String>,
    pub lacking_header: Option<u64>,
    pub cpu_secs: Option<f64>,
    pub cpu_ms_per_message: Option<f64>,
    /// The same by process (`postern smtpd`, `postern qmgr`, …; the local
    /// workers, started and ended during the run, under their parent's
    /// name once reaped): where the CPU went.
    pub cpu_ms_per_message_by_process: Option<std::collections::BTreeMap<String, f64>>,
    /// Of that, the part spent in the kernel (system calls, page faults,
    /// interrupts taken in the process's time).
    pub sys_cpu_ms_per_message_by_process: Option<std::collections::BTreeMap<String, f64>>,
    pub peak_rss_kb: Option<u64>,
    pub peak_pss_kb: Option<u64>,
    pub starttls: bool,
    pub messages_per_connection: Option<u64>,
    /// SMTP connections made (and so TLS handshakes, with STARTTLS).
    pub connections: Option<u64>,
    /// The TLS handshake after STARTTLS, as the client waited for it.
    pub handshake_p50_ms: Option<f64>,
    pub handshake_max_ms: Option<f64>,
    /// What the first session agreed on, e.g. "TLSv1_3" and
    /// "TLS13_AES_256_GCM_SHA384".
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
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
        starttls: config.starttls,
        messages_per_connection: config.per_connection,
        expected_header: config.expect.as_ref().map(Field::to_string),
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
    eprintln!(
        "load: run {nonce}, {n} messages of {} bytes over {sessions} sessions to {server}",
        template.size()
    );

    // One reading of the tree gives the total and each process's part.
    let cpu_start = procstat::tree_cpu_by_process(config.root_pid)
        .map_err(|e| format!("root process {}: {e}", config.root_pid))?;
    let deadline = Instant::now() + config.timeout;
    let sampler =
        Sampler::start(config.root_pid, SAMPLE_EVERY).map_err(|e| format!("sampler: {e}"))?;
    let watch = if config.accept_only {
        None
    } else {
        match Watch::start(&config.maildir, nonce, n, config.expect.clone(), deadline) {
            Ok(watch) => Some(watch),
            Err(e) => {
                let _ = sampler.finish();
                return Err(format!("maildir: {e}"));
            }
        }
    };
    // No early return from here on: the sampler and the watch are finished.

    let first_connect = Instant::now();
    let sent = tokio::time::timeout_at(deadline.into(), send(config, server, sessions, &template))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "timeout: not all messages accepted within {} s",
                config.timeout.as_secs()
            ))
        });
    let mut failure = match &sent {
        Ok(accepted) => {
            if let Some(w) = &watch {
                w.arm();
            }
            report.record_accept(n, first_connect, accepted);
            None
        }
        Err(e) => {
            if let Some(w) = &watch {
                w.cancel();
            }
            Some(e.clone())
        }
    };

    match watch.map_or(Ok(None), |w| w.finish().map(Some)) {
        Ok(None) => {}
        Ok(Some(found)) => {
            let delivered = report.record_delivery(n, first_connect, &found, sent.is_ok());
            if !delivered && failure.is_none() {
                failure = Some(format!(
                    "{} missing and {} duplicated in {}/new{}",
                    found.missing,
                    found.duplicates,
                    config.maildir.display(),
                    if found.complete_at.is_none() {
                        format!(" after the {} s timeout", config.timeout.as_secs())
                    } else {
                        String::new()
                    }
                ));
            }
            if found.lacking > 0 && failure.is_none() {
                failure = Some(format!(
                    "{} of the messages in {}/new lack the field {}",
                    found.lacking,
                    config.maildir.display(),
                    config
                        .expect
                        .as_ref()
                        .map_or(String::new(), Field::to_string),
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
    match procstat::tree_cpu_by_process(config.root_pid) {
        Ok(cpu_end) => {
            let ticks =
                procstat::total_ticks(&cpu_end).saturating_sub(procstat::total_ticks(&cpu_start));
            report.record_cpu(n, ticks);
            report.record_cpu_by_process(n, &procstat::cpu_by_name(&cpu_start, &cpu_end));
        }
        Err(e) => failure = failure.or(Some(format!("root process {}: {e}", config.root_pid))),
    }

    report.ok = failure.is_none();
    failure.map_or(Ok(()), Err)
}

impl Report {
    fn record_accept(&mut self, n: u64, first_connect: Instant, accepted: &Accepted) {
        let last = accepted.last.unwrap_or(first_connect);
        let secs = last.duration_since(first_connect).as_secs_f64();
        self.accept_secs = Some(round(secs, 6));
        self.accept_rate = Some(round(n as f64 / secs, 1));
        let ms = |p| percentile(&accepted.latencies_us, p).map(|us| round(us / 1e3, 3));
        self.latency_p50_ms = ms(50.0);
        self.latency_p99_ms = ms(99.0);
        self.connections = Some(accepted.connections);
        let ms = |p| percentile(&accepted.handshakes_us, p).map(|us| round(us / 1e3, 3));
        self.handshake_p50_ms = ms(50.0);
        self.handshake_max_ms = ms(100.0);
        if let Some((version, cipher)) = accepted.tls.clone() {
            self.tls_version = Some(version);
            self.tls_cipher = Some(cipher);
        }
    }

    /// Whether every message was found exactly once.
    fn record_delivery(
        &mut self,
        n: u64,
        first_connect: Instant,
        found: &Outcome,
        all_accepted: bool,
    ) -> bool {
        self.missing = Some(found.missing);
        self.duplicates = Some(found.duplicates);
        if self.expected_header.is_some() {
            self.lacking_header = Some(found.lacking);
        }
        if let Some(at) = found.complete_at.filter(|_| all_accepted) {
            let secs = at.duration_since(first_connect).as_secs_f64();
            self.e2e_secs = Some(round(secs, 6));
            self.e2e_rate = Some(round(n as f64 / secs, 1));
        }
        found.missing == 0 && found.duplicates == 0
    }

    fn record_cpu_by_process(
        &mut self,
        n: u64,
        ticks: &std::collections::BTreeMap<String, (u64, u64)>,
    ) {
        let hz = procstat::clock_ticks_per_sec() as f64;
        let ms = |t: u64| round(t as f64 / hz * 1e3 / n as f64, 4);
        self.cpu_ms_per_message_by_process = Some(
            ticks
                .iter()
                .map(|(name, t)| (name.clone(), ms(t.0)))
                .collect(),
        );
        self.sys_cpu_ms_per_message_by_process = Some(
            ticks
                .iter()
                .map(|(name, t)| (name.clone(), ms(t.1)))
                .collect(),
        );
    }

    fn record_cpu(&mut self, n: u64, ticks: u64) {
        let secs = ticks as f64 / procstat::clock_ticks_per_sec() as f64;
        self.cpu_secs = Some(round(secs, 3));
        self.cpu_ms_per_message = Some(round(secs * 1e3 / n as f64, 4));
    }
}

/// What the sessions brought back: when the last message was accepted,
/// every message's accept latency and every TLS handshake's time in µs,
/// sorted, how many connections were made, and the TLS version and suite.
#[derive(Default)]
struct Accepted {
    last: Option<Instant>,
    latencies_us: Vec<u64>,
    handshakes_us: Vec<u64>,
    connections: u64,
    tls: Option<(String, String)>,
}

impl Accepted {
    fn add(&mut self, mut other: Accepted) {
        self.last = self.last.max(other.last);
        self.latencies_us.append(&mut other.latencies_us);
        self.handshakes_us.append(&mut other.handshakes_us);
        self.connections += other.connections;
        self.tls = self.tls.take().or(other.tls);
    }
}

/// Runs the sessions (session s sends messages s, s + C, s + 2C, …) and
/// waits for them; the first failure ends the wait and the other sessions.
async fn send(
    config: &Config,
    server: SocketAddr,
    sessions: u64,
    template: &Message,
) -> Result<Accepted, String> {
    let n = config.messages;
    let envelope = Arc::new(Envelope::new(&config.from, &config.to));
    let connector = match config.starttls {
        true => Some(tls::connector()?),
        false => None,
    };
    let mut tasks = JoinSet::new();
    for s in 0..sessions {
        let mut message = template.clone();
        let envelope = Arc::clone(&envelope);
        let helo = config.helo.clone();
        let connector = connector.clone();
        let per_connection = config.per_connection.unwrap_or(u64::MAX).max(1) as usize;
        tasks.spawn(async move {
            let numbers: Vec<u64> = (s..n).step_by(sessions as usize).collect();
            let mut accepted = Accepted::default();
            for (i, chunk) in numbers.chunks(per_connection).enumerate() {
                let one = Connection {
                    server,
                    helo: &helo,
                    tls: connector.as_ref(),
                    envelope: &envelope,
                    first: s == 0 && i == 0,
                };
                accepted.add(one.send_all(&mut message, chunk).await?);
            }
            Ok::<_, String>(accepted)
        });
    }
    // Dropping the set (on failure or timeout) aborts the sessions left.
    let mut all = Accepted {
        latencies_us: Vec::with_capacity(n as usize),
        ..Accepted::default()
    };
    while let Some(joined) = tasks.join_next().await {
        all.add(joined.map_err(|e| format!("session task: {e}"))??);
    }
    all.latencies_us.sort_unstable();
    all.handshakes_us.sort_unstable();
    if all.last.is_none() {
        return Err("no session ran".to_string());
    }
    Ok(all)
}

/// One SMTP connection of a session and what it needs.
struct Connection<'a> {
    server: SocketAddr,
    helo: &'a str,
    tls: Option<&'a tokio_rustls::TlsConnector>,
    envelope: &'a Envelope,
    /// The run's first: it says how MAIL, RCPT and DATA are sent.
    first: bool,
}

impl Connection<'_> {
    /// Open, send the numbered messages, quit: when the last message was
    /// accepted, each message's accept latency and the handshake's time.
    async fn send_all(&self, message: &mut Message, numbers: &[u64]) -> Result<Accepted, String> {
        let context = |e: SmtpError| format!("SMTP: {e}");
        let mut session = Session::open(self.server, self.helo, self.tls)
            .await
            .map_err(context)?;
        if self.first {
            let word = if session.pipelining() {
                "pipelined"
            } else {
                "one by one (no PIPELINING)"
            };
            eprintln!("load: MAIL, RCPT and DATA sent {word}");
        }
        let mut accepted = Accepted {
            connections: 1,
            handshakes_us: session
                .handshake()
                .map(|d| d.as_micros() as u64)
                .into_iter()
                .collect(),
            tls: session.tls_info(),
            latencies_us: Vec::with_capacity(numbers.len()),
            last: None,
        };
        for &number in numbers {
            message.set_number(number);
            let waited = session
                .send(self.envelope, message.wire())
                .await
                .map_err(|e| format!("SMTP: message {number}: {e}"))?;
            accepted.last = Some(Instant::now());
            accepted.latencies_us.push(waited.as_micros() as u64);
        }
        session.quit().await.map_err(context)?;
        Ok(accepted)
    }
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
            starttls: false,
            per_connection: None,
            expect: None,
            accept_only: false,
        }
    }

    /// `--accept-only`: nothing is looked for in a Maildir (there is none
    /// here); the acceptance is measured all the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn accept_only_waits_for_no_maildir() {
        let server = loopback::spawn(ServerOptions::default()).await.unwrap();
        let r = run(&Config {
            accept_only: true,
            ..config(server.addr(), PathBuf::new(), 100, 5)
        })
        .await;
        assert!(r.ok, "{r:?}");
        assert_eq!((r.missing, r.duplicates, r.e2e_secs), (None, None, None));
        assert!(r.accept_rate.is_some() && r.peak_rss_kb.unwrap() > 0);
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

    /// A server configuration with a fresh self-signed ECDSA certificate.
    fn tls_config() -> Arc<rustls::ServerConfig> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["loopback".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
        Arc::new(config)
    }

    /// STARTTLS in every connection, a new connection every 3 messages:
    /// 4 sessions of 5 messages make 8 connections, each with a
    /// handshake, and every message arrives.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn starttls_load_reconnects_and_counts_handshakes() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        let server = loopback::spawn(ServerOptions {
            maildir: Some(maildir.clone()),
            tls: Some(tls_config()),
            ..ServerOptions::default()
        })
        .await
        .unwrap();
        let mut c = config(server.addr(), maildir, 20, 4);
        c.starttls = true;
        c.per_connection = Some(3);
        let r = run(&c).await;
        assert!(r.ok, "{r:?}");
        assert_eq!(r.connections, Some(8));
        assert!(r.handshake_p50_ms.unwrap() > 0.0);
        assert!(r.handshake_p50_ms <= r.handshake_max_ms);
        assert_eq!(r.tls_version.as_deref(), Some("TLSv1_3"));
        assert!(r.tls_cipher.unwrap().starts_with("TLS13_"));
        // Without STARTTLS on offer the run fails at once, saying why.
        let plain = loopback::spawn(ServerOptions::default()).await.unwrap();
        let mut c = config(plain.addr(), dir.path().into(), 2, 1);
        c.starttls = true;
        let r = run(&c).await;
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("STARTTLS: not offered"));
    }

    /// `--expect-header`: the trivial server adds no field, so every
    /// message arrives and the run still fails, saying how many lack it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_without_the_expected_field_fail_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        let server = loopback::spawn(ServerOptions {
            maildir: Some(maildir.clone()),
            ..ServerOptions::default()
        })
        .await
        .unwrap();
        let mut c = config(server.addr(), maildir, 6, 2);
        c.expect = Some(Field::parse("X-Milter: seen").unwrap());
        let r = run(&c).await;
        assert!(!r.ok);
        assert_eq!(
            (r.missing, r.duplicates, r.lacking_header),
            (Some(0), Some(0), Some(6))
        );
        assert_eq!(r.expected_header.as_deref(), Some("X-Milter: seen"));
        assert!(r.error.unwrap().contains("6 of the messages"));
        // The field the messages do carry passes.
        c.expect = Some(Field::parse("To: <user@localhost>").unwrap());
        let r = run(&c).await;
        assert!(r.ok, "{r:?}");
        assert_eq!(r.lacking_header, Some(0));
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
    async fn a_silent_server_times_out_and_sessions_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream); // never a greeting
            }
        });
        let mut c = config(addr, dir.path().into(), 3, 10);
        c.timeout = Duration::from_millis(300);
        let r = run(&c).await;
        assert!(!r.ok);
        assert_eq!(r.sessions, 3);
        assert!(r.error.unwrap().starts_with("timeout"));
        assert!(r.accept_rate.is_none());
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
