//! `|command` delivery (Postfix `local/command.c` and `pipe_command`): run
//! the command with `/bin/sh -c`, the message on its standard input, and
//! turn the way it ended into a delivery status.
//!
//! The agent decides who runs it and builds its environment
//! ([`environment`]); the delivery child, already that user, runs it
//! ([`run`]):
//!
//! * a process group of its own, so that a time limit can end the command
//!   and everything it started;
//! * standard input: the `From ` line, `Return-Path:`, `Delivered-To:`,
//!   then the message as queued (no `>From ` quoting, no empty line at the
//!   end: Postfix's `MAIL_COPY_FROM | RETURN_PATH | DELIVERED`);
//! * standard output and standard error: one pipe, of which the first
//!   [`OUTPUT_CAP`] bytes are kept for the bounce ([`printable_output`]);
//! * the working directory: the user's home, or `/` when the user cannot
//!   enter it;
//! * the time limit (Postfix `command_time_limit`): when it passes, the
//!   process group is killed and the delivery deferred.
//!
//! [`verdict`] maps the end as Postfix does: exit 0 is delivered; an exit
//! status with an enhanced status code at the start of the output takes
//! that code; a sysexits status takes its code and text (`EX_TEMPFAIL` 75
//! and `EX_OSERR` 71 defer, the others bounce); any other status bounces
//! `5.3.0 Command died with status N: "cmd"`; a signal defers.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{AccessFlags, Pid};
use serde::{Deserialize, Serialize};

use super::maildir::{CopyError, copy_exact};
use crate::ipc::DeliveryStatus;

/// The shell commands run with (Postfix `local_command_shell` empty:
/// `/bin/sh -c`).
const SHELL: &str = "/bin/sh";
/// The command search path (Postfix `_PATH_DEFPATH`).
pub(crate) const COMMAND_PATH: &str = "/usr/bin:/bin";
/// Bytes of the command's output kept for the bounce.
pub(crate) const OUTPUT_CAP: usize = 1000;
/// How long output may stay open after the time limit killed the group (a
/// process that left it keeps its copy of the pipe).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
/// Characters allowed in exported values; others become `_` (Postfix
/// `command_expansion_filter`).
const ENV_FILTER: &str =
    "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A command to run, parent → child.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CommandSpec {
    /// The command line, without the `|`.
    pub command: String,
    /// The whole environment (see `environment`).
    pub env: Vec<(String, String)>,
    /// Working directory: `/` when the user cannot enter it.
    pub cwd: PathBuf,
    /// Seconds before the process group is killed.
    pub time_limit: u64,
}

/// What the agent knows about the delivery, for [`environment`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Whom<'a> {
    /// Home directory and shell of the user the command runs as.
    pub home: &'a str,
    pub shell: &'a str,
    /// The recipient's user name (the local part without its extension).
    pub user: &'a str,
    /// The envelope sender, empty for `<>`.
    pub sender: &'a str,
    /// The recipient `local@domain`.
    pub recipient: &'a str,
    /// The local part, extension included.
    pub local: &'a str,
    pub domain: &'a str,
    /// The extension, when the local part has one.
    pub extension: Option<&'a str>,
}

/// The command's environment, as Postfix local(8) exports it: `HOME`,
/// `SHELL` (the user it runs as), `USER` and `LOGNAME` (the recipient's
/// user name), `SENDER`, `RECIPIENT`, `LOCAL`, `DOMAIN`, `EXTENSION` (when
/// there is one), each value censored (characters outside a safe set
/// become `_`), and `PATH=/usr/bin:/bin`. Nothing else is passed.
pub(crate) fn environment(whom: &Whom<'_>) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOME", whom.home),
        ("SHELL", whom.shell),
        ("USER", whom.user),
        ("LOGNAME", whom.user),
        ("SENDER", whom.sender),
        ("RECIPIENT", whom.recipient),
        ("LOCAL", whom.local),
        ("DOMAIN", whom.domain),
    ];
    if let Some(ext) = whom.extension {
        env.push(("EXTENSION", ext));
    }
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .map(|(k, v)| (k.to_string(), censor(v)))
        .collect();
    env.push(("PATH".into(), COMMAND_PATH.into()));
    env
}

fn censor(value: &str) -> String {
    value
        .chars()
        .map(|c| if ENV_FILTER.contains(c) { c } else { '_' })
        .collect()
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Exited(i32),
    Signaled(i32),
    TimedOut,
}

/// A delivery status, enhanced code and reason.
pub(crate) type Verdict = (DeliveryStatus, String, String);

/// The content stream broke while it was being passed on: not the
/// command's fault; the caller ends the job stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContentError {
    #[error("message content ended after {got} of {len} bytes")]
    Short { got: u64, len: u64 },
    #[error("read message content: {0}")]
    Read(io::Error),
}

/// Run `spec` with `prefix` and `len` bytes of `content` on its input, and
/// judge how it ended. On a content error the command has been killed.
pub(crate) fn run(
    spec: &CommandSpec,
    prefix: &[u8],
    content: &mut impl Read,
    len: u64,
) -> Result<Verdict, ContentError> {
    let started = match start(spec) {
        Ok(s) => s,
        Err(e) => {
            let reason = format!("Delivery failed: cannot run {SHELL}: {e}");
            return Ok((DeliveryStatus::Deferred, "4.3.0".into(), reason));
        }
    };
    let Started {
        mut child,
        output,
        output_done,
    } = started;
    let group = Pid::from_raw(child.id() as i32);
    let limit = Duration::from_secs(spec.time_limit);
    let deadline = Instant::now() + limit;
    let timed_out = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = mpsc::channel::<()>();
    let watchdog = {
        let timed_out = timed_out.clone();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(limit) {
                timed_out.store(true, Ordering::SeqCst);
                let _ = killpg(group, Signal::SIGKILL);
            }
        })
    };

    let mut write_error = None;
    if let Some(mut stdin) = child.stdin.take() {
        let written = stdin
            .write_all(prefix)
            .map_err(CopyError::Write)
            .and_then(|()| copy_exact(content, len, |chunk| stdin.write_all(chunk)));
        match written {
            Ok(()) => {}
            Err(CopyError::Write(e)) => write_error = Some(e),
            Err(CopyError::Read(e)) => {
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait();
                return Err(ContentError::Read(e));
            }
            Err(CopyError::Short(got)) => {
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait();
                return Err(ContentError::Short { got, len });
            }
        }
    }
    let status = child.wait();
    // The output ends when every process holding the pipe has gone: give
    // them what is left of the time limit, then end the group.
    let left = deadline.saturating_duration_since(Instant::now());
    if output_done.recv_timeout(left).is_err() {
        timed_out.store(true, Ordering::SeqCst);
        let _ = killpg(group, Signal::SIGKILL);
        let _ = output_done.recv_timeout(OUTPUT_GRACE);
    }
    drop(stop);
    let _ = watchdog.join();

    let ending = match status {
        _ if timed_out.load(Ordering::SeqCst) => Ending::TimedOut,
        Ok(status) => ending(status),
        Err(e) => {
            let reason = format!("Command failed: wait: {e}: \"{}\"", spec.command);
            return Ok((DeliveryStatus::Deferred, "4.3.0".into(), reason));
        }
    };
    let output = output.lock().map(|o| o.clone()).unwrap_or_default();
    // A command may stop reading its input early; only other write errors
    // count (Postfix ignores EPIPE).
    let write_error = write_error.filter(|e| e.kind() != io::ErrorKind::BrokenPipe);
    Ok(verdict(
        &spec.command,
        ending,
        &output,
        write_error.as_ref(),
    ))
}

struct Started {
    child: std::process::Child,
    /// The first [`OUTPUT_CAP`] bytes of output, filled by a thread.
    output: Arc<Mutex<Vec<u8>>>,
    /// Signalled when the output reached its end.
    output_done: mpsc::Receiver<()>,
}

fn start(spec: &CommandSpec) -> io::Result<Started> {
    let (reader, writer) = io::pipe()?;
    let cwd = if can_enter(&spec.cwd) {
        spec.cwd.as_path()
    } else {
        Path::new("/")
    };
    let mut cmd = Command::new(SHELL);
    cmd.arg("-c")
        .arg(&spec.command)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn()?;
    // `cmd` holds our copies of the output pipe: without dropping them the
    // output would never end.
    drop(cmd);
    let output = Arc::new(Mutex::new(Vec::new()));
    let (done, output_done) = mpsc::channel();
    let kept = output.clone();
    // Detached: a process that left the group may keep the pipe open for
    // ever; the delivery does not wait for it past the time limit.
    std::thread::spawn(move || {
        capture(reader, &kept);
        let _ = done.send(());
    });
    Ok(Started {
        child,
        output,
        output_done,
    })
}

/// Is `dir` a directory this process may enter?
fn can_enter(dir: &Path) -> bool {
    dir.is_absolute() && dir.is_dir() && nix::unistd::access(dir, AccessFlags::X_OK).is_ok()
}

/// Read `from` to its end, keeping the first [`OUTPUT_CAP`] bytes.
fn capture(mut from: impl Read, kept: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Ok(mut kept) = kept.lock() {
                    let room = OUTPUT_CAP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

fn ending(status: ExitStatus) -> Ending {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Ending::Exited(code),
        (None, Some(signal)) => Ending::Signaled(signal),
        (None, None) => Ending::Exited(-1),
    }
}

/// The status of a command that ended as `ending` with `output` (as
/// captured: at most [`OUTPUT_CAP`] bytes), as Postfix `pipe_command`
/// judges it. `write_error`: writing its input failed other than by the
/// command closing it.
pub(crate) fn verdict(
    command: &str,
    ending: Ending,
    output: &[u8],
    write_error: Option<&io::Error>,
) -> Verdict {
    let text = printable_output(output);
    let with_output = |what: String| {
        if text.is_empty() {
            what
        } else {
            format!("{what}. Command output: {text}")
        }
    };
    let code = match ending {
        Ending::TimedOut => {
            let what = format!("Command time limit exceeded: \"{command}\"");
            return (DeliveryStatus::Deferred, "4.3.0".into(), with_output(what));
        }
        Ending::Signaled(signal) => {
            let what = format!("Command died with signal {signal}: \"{command}\"");
            return (DeliveryStatus::Deferred, "4.3.0".into(), with_output(what));
        }
        Ending::Exited(0) => {
            return match write_error {
                None => (
                    DeliveryStatus::Sent,
                    "2.0.0".into(),
                    format!("delivered to command: {command}"),
                ),
                Some(e) => (
                    DeliveryStatus::Deferred,
                    "4.3.0".into(),
                    format!("Command failed: {e}: \"{command}\""),
                ),
            };
        }
        Ending::Exited(code) => code,
    };
    if let Some((dsn, rest)) = leading_dsn(&text) {
        let status = if dsn.starts_with('4') {
            DeliveryStatus::Deferred
        } else {
            DeliveryStatus::Bounced
        };
        let reason = if rest.is_empty() {
            format!("Command died with status {code}: \"{command}\"")
        } else {
            rest.to_string()
        };
        return (status, dsn.to_string(), reason);
    }
    match sysexits(code) {
        Some((dsn, what)) => {
            let status = if dsn.starts_with('4') {
                DeliveryStatus::Deferred
            } else {
                DeliveryStatus::Bounced
            };
            (status, dsn.into(), with_output(what.to_string()))
        }
        None => {
            let what = format!("Command died with status {code}: \"{command}\"");
            (DeliveryStatus::Bounced, "5.3.0".into(), with_output(what))
        }
    }
}

/// The sysexits codes (64..=78) as Postfix `sys_exits.c` reads them.
pub(crate) fn sysexits(code: i32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        64 => ("5.3.0", "command line usage error"),
        65 => ("5.6.0", "data format error"),
        66 => ("5.3.0", "cannot open input"),
        67 => ("5.1.1", "user unknown"),
        68 => ("5.1.2", "host name unknown"),
        69 => ("5.3.0", "service unavailable"),
        70 => ("5.3.0", "internal software error"),
        71 => ("4.3.0", "system resource problem"),
        72 => ("5.3.0", "critical OS file missing"),
        73 => ("5.2.0", "can't create user output file"),
        74 => ("5.3.0", "input/output error"),
        75 => ("4.3.0", "temporary failure"),
        76 => ("5.5.0", "remote error in protocol"),
        77 => ("5.7.0", "permission denied"),
        78 => ("5.3.5", "local configuration error"),
        _ => return None,
    })
}

/// An enhanced status code of class 4 or 5 opening `text` (Postfix
/// `dsn_valid`: `X.Y.Z` with one to three digits in `Y` and `Z`, no
/// leading zero, then the end or white space), and the text after it.
fn leading_dsn(text: &str) -> Option<(&str, &str)> {
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    let dsn = &text[..end];
    let mut parts = dsn.split('.');
    let class = parts.next()?;
    let valid_part = |p: &str| {
        (1..=3).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && !(p.len() > 1 && p.starts_with('0'))
    };
    let ok = matches!(class, "4" | "5")
        && parts.next().is_some_and(valid_part)
        && parts.next().is_some_and(valid_part)
        && parts.next().is_none();
    ok.then(|| (dsn, text[end..].trim_start()))
}

/// The command's output as it goes into a reason: tabs and line ends
/// become spaces, other control characters `_` (Postfix `translit` and
/// `printable`), white space at the end is dropped.
pub(crate) fn printable_output(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(&output[..output.len().min(OUTPUT_CAP)]);
    let text: String = text
        .chars()
        .map(|c| match c {
            '\t' | '\n' => ' ',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    text.trim_end().to_string()
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
