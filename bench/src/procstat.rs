//! What the MTA costs, read from `/proc`: the process tree under a root
//! (the root and its live descendants, found through each process's ppid),
//! its CPU time, and the sum of its resident (VmRSS) and proportional
//! (Pss, from `smaps_rollup`) memory, with a sampler that keeps the peaks.
//!
//! CPU time is utime+stime+cutime+cstime summed over the tree: a child that
//! exits and is reaped by a process of the tree moves its time into its
//! parent's cutime/cstime, so the difference between two readings counts it.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The fields of `/proc/PID/stat` the benchmark uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    /// utime + stime + cutime + cstime, in clock ticks.
    pub cpu_ticks: u64,
    /// stime + cstime: the part spent in the kernel.
    pub sys_ticks: u64,
}

/// Parses the content of `/proc/PID/stat`. The command name (field 2) is
/// in parentheses and may itself hold spaces and parentheses, so the fields
/// are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // rest: " S ppid pgrp session tty tpgid flags minflt cminflt majflt
    //        cmajflt utime stime cutime cstime …" (fields 3, 4, … 17).
    let fields: Vec<&str> = rest.split_ascii_whitespace().take(15).collect();
    if fields.len() < 15 {
        return None;
    }
    let ppid = fields[1].parse().ok()?;
    // utime stime cutime cstime; cutime and cstime are signed in the
    // kernel's format.
    let mut t = [0u64; 4];
    for (i, f) in fields[11..15].iter().enumerate() {
        let ticks: i64 = f.parse().ok()?;
        t[i] = u64::try_from(ticks).unwrap_or(0);
    }
    Some(Stat {
        ppid,
        cpu_ticks: t.iter().sum(),
        sys_ticks: t[1] + t[3],
    })
}

/// `/proc/PID/stat`, or `None` when the process is gone.
pub fn stat(pid: u32) -> io::Result<Option<Stat>> {
    let Some(text) = read_if_alive(&format!("/proc/{pid}/stat"))? else {
        return Ok(None);
    };
    parse_stat(&text).map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat: unexpected format"),
        )
    })
}

/// The root and its live descendants, each with its stat. Fails with
/// `NotFound` when the root itself is gone.
pub fn tree(root: u32) -> io::Result<Vec<(u32, Stat)>> {
    let mut all: HashMap<u32, Stat> = HashMap::new();
    for entry in fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(s) = stat(pid)? {
            all.insert(pid, s);
        }
    }
    let Some(&root_stat) = all.get(&root) else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no process {root}"),
        ));
    };
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, s) in &all {
        if pid != root {
            children.entry(s.ppid).or_default().push(pid);
        }
    }
    let mut out = vec![(root, root_stat)];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i].0) {
            out.extend(kids.iter().map(|k| (*k, all[k])));
        }
        i += 1;
    }
    Ok(out)
}

/// The summed CPU time of a reading of [`tree_cpu_by_process`], in clock
/// ticks.
pub fn total_ticks(by_process: &HashMap<u32, (String, u64, u64)>) -> u64 {
    by_process.values().map(|(_, t, _)| t).sum()
}

/// The tree's CPU time by process, each process named by its command
/// line's program (basename) and first argument (`postern smtpd`), so the
/// roles of one binary stay apart: pid → (name, ticks, of which in the kernel).
pub fn tree_cpu_by_process(root: u32) -> io::Result<HashMap<u32, (String, u64, u64)>> {
    let mut out = HashMap::new();
    for (pid, s) in tree(root)? {
        let name = read_if_alive(&format!("/proc/{pid}/cmdline"))?
            .map(|c| process_name(&c))
            .unwrap_or_default();
        out.insert(pid, (name, s.cpu_ticks, s.sys_ticks));
    }
    Ok(out)
}

/// `postern smtpd` from `postern\0--config\0/etc/p.toml\0daemon\0smtpd\0`
/// (a role as the supervisor starts it), `postern start` from
/// `postern\0start\0--foreground\0`: the program's basename and the role
/// after `daemon`, or else the first argument that is neither an option nor
/// a path.
pub fn process_name(cmdline: &str) -> String {
    let args: Vec<&str> = cmdline.split('\0').filter(|a| !a.is_empty()).collect();
    let Some(program) = args.first() else {
        return "?".to_string();
    };
    let program = program.rsplit('/').next().unwrap_or(program);
    let rest = &args[1..];
    let word = match rest.iter().position(|a| *a == "daemon") {
        Some(i) => rest.get(i + 1).copied(),
        None => rest
            .iter()
            .copied()
            .find(|a| !a.starts_with('-') && !a.contains('/')),
    };
    match word {
        Some(w) => format!("{program} {w}"),
        None => program.to_string(),
    }
}

/// The CPU each process name spent between two readings of
/// [`tree_cpu_by_process`], in ticks: a process seen only at the end counts
/// from zero; one gone by the end is left out (its time moved to its
/// parent's cutime when it was reaped, and is counted there).
pub fn cpu_by_name(
    start: &HashMap<u32, (String, u64, u64)>,
    end: &HashMap<u32, (String, u64, u64)>,
) -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut by_name = std::collections::BTreeMap::new();
    for (pid, (name, ticks, sys)) in end {
        let (t0, s0) = start.get(pid).map_or((0, 0), |(_, t, s)| (*t, *s));
        let e = by_name.entry(name.clone()).or_insert((0, 0));
        e.0 += ticks.saturating_sub(t0);
        e.1 += sys.saturating_sub(s0);
    }
    by_name
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks_per_sec() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100, // Linux's USER_HZ everywhere
    }
}

/// The value in kB of a `Name:   123 kB` line of a `/proc` status file.
pub fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_ascii_whitespace().next()?.parse().ok())
}

/// The memory of one process in kB: VmRSS (from `status`) and Pss (from
/// `smaps_rollup`; `None` when that file cannot be read, e.g. for want of
/// permission). `Ok(None)` when the process is gone.
pub fn memory_kb(pid: u32) -> io::Result<Option<(u64, Option<u64>)>> {
    let Some(status) = read_if_alive(&format!("/proc/{pid}/status"))? else {
        return Ok(None);
    };
    // Zombies and kernel threads have no VmRSS.
    let rss = kb_field(&status, "VmRSS").unwrap_or(0);
    let pss = match read_if_alive(&format!("/proc/{pid}/smaps_rollup")) {
        Ok(Some(text)) => Some(kb_field(&text, "Pss").unwrap_or(0)),
        Ok(None) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => None,
        Err(e) => return Err(e),
    };
    Ok(Some((rss, pss)))
}

/// A file of `/proc/PID/`, or `None` when the process has gone away.
fn read_if_alive(path: &str) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        // ESRCH shows when the process exits while being read.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(3) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The peaks of the tree's summed memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peaks {
    pub rss_kb: u64,
    /// `None` when some process's Pss could not be read.
    pub pss_kb: Option<u64>,
}

/// A thread that sums the tree's memory every `interval` and keeps peaks.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<Peaks>>,
}

impl Sampler {
    pub fn start(root: u32, interval: Duration) -> io::Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let sample = move || {
            let mut peaks = Peaks {
                rss_kb: 0,
                pss_kb: Some(0),
            };
            loop {
                // One last sample after the stop.
                let last = flag.load(Ordering::Relaxed);
                let tree = match tree(root) {
                    Ok(t) => t,
                    Err(e) if e.kind() == io::ErrorKind::NotFound && last => break,
                    Err(e) => return Err(e),
                };
                let (mut rss, mut pss) = (0u64, Some(0u64));
                for (pid, _) in tree {
                    if let Some((r, p)) = memory_kb(pid)? {
                        rss += r;
                        pss = pss.zip(p).map(|(a, b)| a + b);
                    }
                }
                peaks.rss_kb = peaks.rss_kb.max(rss);
                peaks.pss_kb = peaks.pss_kb.zip(pss).map(|(a, b)| a.max(b));
                if last {
                    break;
                }
                thread::park_timeout(interval);
            }
            Ok(peaks)
        };
        let thread = thread::Builder::new()
            .name("memory sampler".into())
            .spawn(sample)?;
        Ok(Sampler { stop, thread })
    }

    /// Takes a last sample and returns the peaks.
    pub fn finish(self) -> io::Result<Peaks> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        self.thread
            .join()
            .map_err(|_| io::Error::other("the memory sampler panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn processes_are_named_by_program_and_role() {
        assert_eq!(
            process_name("/usr/sbin/postern\0--config\0/etc/p.toml\0daemon\0smtpd\0"),
            "postern smtpd"
        );
        assert_eq!(
            process_name("postern\0--config\0/x/y\0start\0--foreground\0"),
            "postern start"
        );
        assert_eq!(process_name("postern\0--foreground\0"), "postern");
        assert_eq!(process_name(""), "?");
        let start = HashMap::from([(1, ("a".to_string(), 10, 2)), (2, ("b".to_string(), 5, 1))]);
        let end = HashMap::from([
            (1, ("a".to_string(), 25, 7)),
            (3, ("b".to_string(), 4, 3)),
            (4, ("b".to_string(), 1, 0)),
        ]);
        let by = cpu_by_name(&start, &end);
        assert_eq!(by.get("a"), Some(&(15, 5)));
        assert_eq!(by.get("b"), Some(&(5, 3)));
    }

    #[test]
    fn stat_parses_awkward_command_names() {
        let line = "1234 (my (odd) proc) S 77 1234 1234 0 -1 4194560 100 0 0 0 \
                    11 22 33 44 20 0 1 0 5000 1000000 200";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 77,
                cpu_ticks: 11 + 22 + 33 + 44,
                sys_ticks: 22 + 44
            })
        );
        assert_eq!(parse_stat("1234 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn kb_fields_are_found() {
        let status = "Name:\tx\nVmHWM:\t   900 kB\nVmRSS:\t   812 kB\n";
        assert_eq!(kb_field(status, "VmRSS"), Some(812));
        assert_eq!(kb_field(status, "VmHWM"), Some(900));
        assert_eq!(kb_field(status, "Vm"), None);
        assert_eq!(
            kb_field("Rss: 10 kB\nPss: 7 kB\nPss_Anon: 5 kB\n", "Pss"),
            Some(7)
        );
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        let s = stat(me).unwrap().unwrap();
        assert_eq!(s.ppid, std::os::unix::process::parent_id());
        let (rss, pss) = memory_kb(me).unwrap().unwrap();
        assert!(rss > 0);
        assert!(pss.is_none_or(|p| p > 0));
        assert!(stat(u32::MAX).unwrap().is_none());
        assert!(tree(u32::MAX).is_err());
    }

    #[test]
    fn tree_finds_children_and_counts_reaped_time() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pids: Vec<u32> = tree(me).unwrap().iter().map(|(p, _)| *p).collect();
        assert_eq!(pids[0], me);
        assert!(pids.contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();

        // A child that burns CPU and is reaped shows in our cutime.
        let before = total_ticks(&tree_cpu_by_process(me).unwrap());
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        let after = total_ticks(&tree_cpu_by_process(me).unwrap());
        assert!(after > before, "{before} -> {after}");
    }

    #[test]
    fn sampler_sees_own_memory() {
        let started = Instant::now();
        let sampler = Sampler::start(std::process::id(), Duration::from_millis(10)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let peaks = sampler.finish().unwrap();
        assert!(peaks.rss_kb > 0);
        assert!(peaks.pss_kb.is_none_or(|p| p > 0));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(clock_ticks_per_sec() > 0);
    }
}
