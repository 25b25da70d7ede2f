//! `postern-bench`: the measuring half of the benchmark that compares
//! postern with Postfix on one machine (issue 3). `bench/run` installs and
//! starts each MTA and calls this program; every subcommand prints exactly
//! one JSON object on one line on stdout, notes on stderr.
//!
//! - **`load`** drives an MTA that is already running. It sends N messages
//!   of about S bytes (headers and 76-character body lines, built once as a
//!   dot-stuffed template in which only the ID changes) over C concurrent
//!   SMTP sessions, pipelining MAIL, RCPT and DATA when the server offers
//!   PIPELINING. With `--starttls` each connection says STARTTLS first
//!   and makes a full TLS handshake (rustls, any certificate accepted, no
//!   resumption); `--messages-per-connection M` reconnects after M
//!   messages, so that the run makes N / M connections (handshakes). It
//!   measures
//!   - *accept throughput*: N / (first connect → last `250` after the dot);
//!   - *accept latency*: end-of-data dot written → its `250`, p50 and p99;
//!   - *end-to-end throughput*: N / (first connect → the last message's file
//!     seen in the Maildir's `new/`), found by polling `new/` every few ms;
//!     afterwards every new file is read and each of the run's N IDs
//!     (`X-Bench-Id: <nonce>-<n>`, the nonce random per run) must be there
//!     exactly once (`missing`, `duplicates`), and with `--expect-header
//!     'Name: value'` each of the run's files must carry that field
//!     (`lacking_header`; what a milter adds, for example);
//!   - *the MTA's resources*: the root process given by `--root-pid` and all
//!     its live descendants (found through `/proc/*/stat`): CPU seconds as
//!     the difference of their summed utime+stime+cutime+cstime between the
//!     start and the end (children reaped during the run are counted through
//!     their parent's cutime/cstime), and the peaks of the summed VmRSS and
//!     Pss (`smaps_rollup`) sampled every 50 ms;
//!   - *the TLS handshakes*: how long the client waited for each, p50 and
//!     max, the connections made, the protocol version and cipher suite.
//!
//!   With `--accept-only` nothing is watched in a Maildir: only the
//!   acceptance and the resources are measured (`bench/run --queue-scale`
//!   queues N messages for a dead destination so).
//!
//!   A rejected command, a timeout, or a missing or duplicated message makes
//!   the run fail: the JSON is still printed, with `"ok":false`, and the
//!   exit status is 1.
//! - **`disk`** measures what the disk allows a durable queue: files per
//!   second when each message is its own file (create in `tmp/`, write,
//!   fsync, rename into `new/`, W writer threads) and records per second
//!   for an append-only log with one fdatasync per batch of 32 records.
//! - **`loopback`** measures the SMTP round trip on loopback against a
//!   trivial in-process server (canned replies, no disk) with the same
//!   client as `load`: messages per second with one message per session
//!   (connect, EHLO, MAIL, RCPT, DATA, QUIT) and with many messages per
//!   session. It is the ceiling no MTA can pass on this machine and the
//!   measure of this client's own overhead.
//!
//! Exit status: 0 on success, 1 when a run fails or cannot be done (the
//! reason on stderr), 2 for a usage error.

mod disk;
mod load;
mod loopback;
mod maildir;
mod message;
mod procstat;
mod smtp_client;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "postern-bench",
    about = "Load generator and disk/loopback ceilings for postern's benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send N messages over C SMTP sessions to a running MTA and measure
    /// accept and end-to-end throughput, latency, CPU and memory.
    Load(LoadArgs),
    /// Measure the disk's ceiling: fsync'd file-per-message and a
    /// group-committed append-only log.
    Disk(DiskArgs),
    /// Measure the loopback SMTP ceiling against a trivial in-process server.
    Loopback(LoopbackArgs),
    /// Serve the trivial SMTP server until killed (to test `load` and
    /// bench/run without an MTA, and to measure the client's own cost).
    #[command(hide = true)]
    TrivialServer(TrivialServerArgs),
}

#[derive(clap::Args)]
struct LoadArgs {
    /// The MTA's SMTP address, HOST:PORT.
    #[arg(long)]
    server: String,
    /// Envelope sender (also the From: header).
    #[arg(long)]
    from: String,
    /// Envelope recipient (also the To: header).
    #[arg(long)]
    to: String,
    /// Number of messages.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Approximate size of each message in bytes, headers included.
    #[arg(long)]
    size: usize,
    /// Number of concurrent SMTP sessions.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    sessions: u64,
    /// The recipient's Maildir (its `new/` is watched); not with
    /// `--accept-only`.
    #[arg(long, required_unless_present = "accept_only")]
    maildir: Option<PathBuf>,
    /// The MTA's top process (postern's supervisor, Postfix's master).
    #[arg(long)]
    root_pid: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// The name sent in EHLO.
    #[arg(long, default_value = "postern-bench.localhost")]
    helo: String,
    /// STARTTLS in every connection (any certificate accepted, no session
    /// resumption: a full handshake each time).
    #[arg(long)]
    starttls: bool,
    /// Reconnect after this many messages (default: each session keeps
    /// one connection for the whole run).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    messages_per_connection: Option<u64>,
    /// A header field, "Name: value", that every delivered message must
    /// carry (in its header section; the value compared exactly).
    #[arg(long, value_parser = message::Field::parse)]
    expect_header: Option<message::Field>,
    /// Measure the acceptance only: nothing is expected in a Maildir (the
    /// messages wait in the queue, for a destination that does not
    /// answer, say); no end-to-end throughput, no exactly-once check.
    #[arg(long, conflicts_with_all = ["maildir", "expect_header"])]
    accept_only: bool,
}

#[derive(clap::Args)]
struct DiskArgs {
    /// Directory to write in (a scratch subdirectory is made and removed).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Parallel writer threads for the file-per-message mode.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    writers: u64,
    #[arg(long, default_value_t = 2048)]
    size: usize,
}

#[derive(clap::Args)]
struct LoopbackArgs {
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    sessions: u64,
    /// Duration of each of the two phases.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Approximate size of each message in bytes.
    #[arg(long, default_value_t = 2048)]
    size: usize,
}

#[derive(clap::Args)]
struct TrivialServerArgs {
    /// Write each message into this Maildir (tmp/ then new/, no fsync).
    #[arg(long)]
    maildir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Load(args) => run_load(args),
        Command::Disk(args) => run_disk(args),
        Command::Loopback(args) => run_loopback(args),
        Command::TrivialServer(args) => run_trivial_server(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("postern-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let config = load::Config {
        server: args.server,
        from: args.from,
        to: args.to,
        messages: args.messages,
        size: args.size,
        sessions: args.sessions,
        maildir: args.maildir.unwrap_or_default(),
        root_pid: args.root_pid,
        timeout: Duration::from_secs(args.timeout),
        helo: args.helo,
        starttls: args.starttls,
        per_connection: args.messages_per_connection,
        expect: args.expect_header,
        accept_only: args.accept_only,
    };
    let report = runtime()?.block_on(load::run(&config));
    print_json(&report)?;
    if let Some(error) = &report.error {
        eprintln!("postern-bench: load: {error}");
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_disk(args: DiskArgs) -> anyhow::Result<ExitCode> {
    let report = disk::run(&disk::Config {
        dir: args.dir,
        messages: args.messages,
        writers: args.writers,
        size: args.size,
    })
    .context("disk")?;
    print_json(&report)?;
    Ok(ExitCode::SUCCESS)
}

fn run_loopback(args: LoopbackArgs) -> anyhow::Result<ExitCode> {
    let phase = Duration::try_from_secs_f64(args.seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--seconds must be a positive number")?;
    let config = loopback::Config {
        sessions: args.sessions,
        phase,
        size: args.size,
    };
    let report = runtime()?
        .block_on(loopback::run(&config))
        .context("loopback")?;
    print_json(&report)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints `{"mode":"trivial-server","addr":"127.0.0.1:PORT","pid":PID}`,
/// then serves until killed.
fn run_trivial_server(args: TrivialServerArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let server = loopback::spawn(loopback::ServerOptions {
            maildir: args.maildir,
            ..loopback::ServerOptions::default()
        })
        .await
        .context("cannot start the trivial server")?;
        print_json(&serde_json::json!({
            "mode": "trivial-server",
            "addr": server.addr().to_string(),
            "pid": std::process::id(),
        }))?;
        std::future::pending::<()>().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The multi-threaded runtime the SMTP client runs on: one worker per core,
/// so that the client is not the bottleneck.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn print_json(report: &impl Serialize) -> anyhow::Result<()> {
    let line = serde_json::to_string(report).context("cannot encode the report")?;
    println!("{line}");
    Ok(())
}

/// `x` rounded to `digits` decimal places, for a readable JSON line.
fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}
