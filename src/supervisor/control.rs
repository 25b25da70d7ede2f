//! The client side of the supervisor: `postern reload`, `stop`, `status`
//! and the queue commands find the running system through the
//! supervisor's pid file in the run directory and ask qmgr through
//! [`crate::ipc::qmgr_client`]; when no supervisor runs but systemd runs
//! this postern, they go through systemd ([`crate::systemd::systemctl`]).

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{PID_FILE, STATUS_FILE};
use crate::config::Config;
use crate::ipc::QueueAction;
use crate::ipc::qmgr_client;

/// `postern reload`: the configuration is checked here first; a bad one
/// is reported and nothing is signalled. `path` is the file it was read
/// from (for the check under systemd).
pub fn reload(config: &Config, path: Option<&Path>) -> anyhow::Result<()> {
    let run_dir = &config.server.run_directory;
    let Some(pid) = running_pid(run_dir) else {
        if let Some(systemd) = crate::systemd::systemctl::managed(config) {
            return systemd.reload(config, path);
        }
        bail!("postern is not running");
    };
    kill(Pid::from_raw(pid), Signal::SIGHUP)?;
    println!("postern: reloading (pid {pid})");
    Ok(())
}

/// `postern stop`: SIGTERM to the supervisor, then wait for it to go.
pub fn stop(config: &Config) -> anyhow::Result<()> {
    let run_dir = &config.server.run_directory;
    let Some(pid) = running_pid(run_dir) else {
        if let Some(systemd) = crate::systemd::systemctl::managed(config) {
            return systemd.stop();
        }
        bail!("postern is not running");
    };
    kill(Pid::from_raw(pid), Signal::SIGTERM)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if !alive(pid) {
            println!("postern: stopped");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("postern (pid {pid}) did not stop within 30 s")
}

/// `postern status`: true when running.
pub fn status(config: &Config) -> anyhow::Result<bool> {
    let run_dir = &config.server.run_directory;
    let Some(pid) = running_pid(run_dir) else {
        let Some(systemd) = crate::systemd::systemctl::managed(config) else {
            println!("postern is not running");
            return Ok(false);
        };
        let running = systemd.status()?;
        if running {
            print_queue(run_dir);
        }
        return Ok(running);
    };
    println!("postern is running (pid {pid})");
    if let Ok(text) = fs::read_to_string(run_dir.join(STATUS_FILE)) {
        let roles: HashMap<String, i32> = serde_json::from_str(&text).unwrap_or_default();
        let states = crate::role::states(run_dir);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for row in &crate::role::TABLE {
            let role = row.name;
            if !(row.wanted)(config) && !roles.contains_key(role) {
                continue;
            }
            let state = states.get(role);
            let restarts = state.map_or(0, |s| s.restarts);
            match roles.get(role) {
                Some(p) if kill(Pid::from_raw(*p), None).is_ok() => {
                    let up = state
                        .filter(|s| s.pid == *p && s.started > 0)
                        .map(|s| {
                            format!(
                                ", up {}",
                                crate::ipc::short_age(now.saturating_sub(s.started))
                            )
                        })
                        .unwrap_or_default();
                    println!("  {role:<6} running (pid {p}){up}, {restarts} restarts")
                }
                _ => println!("  {role:<6} not running, {restarts} restarts"),
            }
        }
    }
    print_queue(run_dir);
    Ok(true)
}

/// `status`'s last lines: the queue counts, from qmgr, and the queue at
/// a glance (qmgr's `STATUS=` line).
fn print_queue(run_dir: &Path) {
    match qmgr_client::status(run_dir) {
        Ok(s) => {
            println!(
                "queue: {} messages, {} recipients being delivered, {} deferred, {} messages on hold",
                s.messages, s.active, s.deferred, s.held
            );
            println!("queue: {}", s.summary());
        }
        Err(e) => println!("queue: qmgr does not answer: {e}"),
    }
}

/// `postern queue show ID`: the envelope and the content, as postcat
/// prints a queue file; false when there is no such message.
pub fn queue_show(config: &Config, id: &str) -> anyhow::Result<bool> {
    let Some(m) = qmgr_client::show(&config.server.run_directory, id)? else {
        eprintln!("postern: {id}: no such message in the queue");
        return Ok(false);
    };
    let e = &m.envelope;
    println!("*** ENVELOPE RECORDS {id} ***");
    println!("message_size: {}", e.size);
    println!(
        "message_arrival_time: {}",
        crate::wire::date::asctime(e.arrival_us / 1_000_000)
    );
    println!("sender: {}", e.sender);
    if let Some(envid) = &e.envid {
        println!("envid: {envid}");
    }
    for (r, state) in e.recipients.iter().zip(&m.states) {
        println!("recipient: {} ({state})", r.address);
    }
    println!("client: {}[{}]", e.client.name, e.client.addr);
    println!("*** MESSAGE CONTENTS {id} ***");
    print!("{}", m.content);
    println!("*** MESSAGE FILE END {id} ***");
    Ok(true)
}

/// `postern queue hold|release|delete|requeue ID…|ALL`: prints what
/// happened as postsuper does (`postern: Placed on hold: 2 messages`);
/// false when some ID named no message.
pub fn queue_op(config: &Config, action: QueueAction, ids: Vec<String>) -> anyhow::Result<bool> {
    let result = qmgr_client::queue_op(&config.server.run_directory, action, ids)?;
    for id in &result.unknown {
        eprintln!("postern: {id}: no such message in the queue");
    }
    let what = match action {
        QueueAction::Hold => "Placed on hold",
        QueueAction::Release => "Released from hold",
        QueueAction::Delete => "Deleted",
        QueueAction::Requeue => "Requeued",
    };
    let n = result.affected;
    println!(
        "postern: {what}: {n} message{}",
        if n == 1 { "" } else { "s" }
    );
    Ok(result.unknown.is_empty())
}

pub(super) fn running_pid(run_dir: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(run_dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

/// Whether `pid` runs: it exists and is no zombie (one that ended and
/// that its parent, a shell or a test, has not waited for yet).
fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}
