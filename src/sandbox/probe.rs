//! Sandbox probes: `postern daemon ROLE --probe KIND:TARGET …` applies the
//! role's sandbox exactly as the daemon does, then tries each access and
//! prints one JSON object per probe on standard output, instead of
//! serving. The tests use it to prove that the walls hold (and that the
//! doors the role needs are open).
//!
//! Kinds: `read:FILE` (open and read), `write:FILE` (create it, write,
//! remove it again), `list:DIR`, `connect:HOST:PORT` (TCP, 2 s),
//! `unix:PATH` (connect to a Unix stream socket).

use std::io::Read;
use std::time::Duration;

use serde::Serialize;

/// The outcome of one probe.
#[derive(Debug, Serialize)]
pub struct ProbeResult {
    pub probe: String,
    /// The access succeeded.
    pub ok: bool,
    /// The error when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Try `spec` (see the module documentation).
pub fn probe(spec: &str) -> ProbeResult {
    let result = match spec.split_once(':') {
        Some(("read", path)) => std::fs::File::open(path).and_then(|mut f| {
            let mut buf = [0u8; 64];
            f.read(&mut buf).map(drop)
        }),
        Some(("write", path)) => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"probe\n"))
            .and_then(|()| std::fs::remove_file(path)),
        Some(("list", path)) => std::fs::read_dir(path).map(|d| {
            d.count();
        }),
        Some(("connect", addr)) => addr
            .parse::<std::net::SocketAddr>()
            .map_err(std::io::Error::other)
            .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)))
            .map(drop),
        Some(("unix", path)) => std::os::unix::net::UnixStream::connect(path).map(drop),
        _ => Err(std::io::Error::other(
            "unknown probe (read:, write:, list:, connect:, unix:)",
        )),
    };
    ProbeResult {
        probe: spec.to_string(),
        ok: result.is_ok(),
        error: result.err().map(|e| e.to_string()),
    }
}
