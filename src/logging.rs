//! Logging in Postfix's line shapes: `Mon DD HH:MM:SS host postern/ROLE[PID]:
//! text`, one line per event. Severity prefixes as Postfix: info has none;
//! `warning: `, `error: ` (Postfix says `fatal: ` for the last word of a
//! dying daemon; `log::error!` is used for that), `debug: `.
//!
//! Where the lines go is chosen once per process by [`init_for`], in this
//! order:
//!
//! 1. **The log file** when `[server] log_file` (Postfix's `maillog_file`)
//!    is set: opened `O_APPEND|O_CREAT`, mode 0640, at init, before the
//!    daemon sandboxes itself, and kept open; every line is one `write(2)`,
//!    so the processes sharing the file never interleave within a line.
//!    The format is the syslog one above, which `pflogsumm
//!    --syslog-name=postern` reads. Every daemon and the supervisor open
//!    the file again on SIGHUP ([`reopen`]; `postern reload`, or
//!    logrotate's `postrotate` doing `kill -HUP`), so a file rotated away
//!    by rename is followed by a new one at the configured path.
//! 2. **The journal** (native protocol through `systemd-journal-logger`,
//!    SYSLOG_IDENTIFIER `postern/ROLE`, SYSLOG_FACILITY 2 (mail)) when
//!    * stderr is the stream `JOURNAL_STREAM` names (`dev:inode`, as
//!      systemd sets it for `StandardError=journal`), or
//!    * nobody reads stderr and journald answers on
//!      `/run/systemd/journal/socket`. Nobody reads stderr when
//!      `JOURNAL_STREAM` is absent and stderr is a socket, `/dev/null` or
//!      closed (not a terminal, file or pipe: a socket is what systemd
//!      connects, and `postern start` does not pass `JOURNAL_STREAM` on to
//!      the daemons it spawns), or when the process was started by
//!      `postern start` in the background ([`DETACHED_ENV`], set for the
//!      supervisor it detaches and passed on to the roles: their stderr is
//!      `<run_directory>/postern.log`, kept for what is said before the
//!      logger exists).
//!
//!    A `JOURNAL_STREAM` naming another stream means the user redirected
//!    stderr (a shell in a terminal started by a systemd unit inherits the
//!    variable): then stderr. The journal's MESSAGE is the text with its
//!    severity prefix; the record's key-values become fields (see below).
//! 3. **syslog** when nobody reads stderr (as above) and there is no
//!    journald: datagrams to `/dev/log`, facility mail, as Postfix and the
//!    C library's syslog(3) send them ([`syslog`]), so rsyslog's
//!    `mail.log`, pflogsumm and fail2ban see postern's lines where they
//!    see Postfix's. When `/dev/log` is missing or refuses, stderr, said
//!    once on stderr. (`POSTERN_SYSLOG_SOCKET` names another socket: for
//!    tests.)
//! 4. **stderr**, in the syslog format: `postern start --foreground` in a
//!    terminal or under a test harness, a daemon run by hand.
//!
//! **Journal fields.** The lines that trace a message carry key-values,
//! upper-cased by the journal logger: `QUEUE_ID`, `CLIENT` (`name[ip]`, or
//! `uid N` for a local submission, see [`client_field`]), `RECIPIENT`,
//! `STATUS` (`sent`, `deferred`, `bounced`, `expired`, `reject`, see
//! [`status_field`]), so `journalctl QUEUE_ID=…` shows a message's life. A
//! key whose value is absent (`None`) is left out. The file, syslog and
//! stderr ignore them: the text already carries the same facts.
//!
//! The level is Info unless `POSTERN_LOG` says `debug`, `trace` or `warn`.

mod syslog;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, RwLock};

use log::kv::{Error as KvError, Key, Source, Value, VisitSource, VisitValue};
use log::{Level, LevelFilter, Log, Metadata, Record};
use systemd_journal_logger::JournalLog;

use crate::ipc::DeliveryStatus;

/// journald's socket for the native protocol (fixed in the journal logger).
pub(crate) const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Set (to `1`) by `postern start` for the supervisor it detaches, and
/// passed on to the roles: nobody reads their stderr.
pub(crate) const DETACHED_ENV: &str = "POSTERN_DETACHED";

/// The syslog socket instead of `/dev/log`: for tests, which run a
/// syslog daemon of their own.
pub(crate) const SYSLOG_SOCKET_ENV: &str = "POSTERN_SYSLOG_SOCKET";

/// The log file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the log file {}: {source}", path.display())]
pub struct LogFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Install the logger for one process: the log file when given, else the
/// journal or stderr (see the module documentation). `program` is e.g.
/// `smtpd` and gives the tag `postern/smtpd`. Calling it again once a
/// logger is installed does nothing (and opens nothing).
pub fn init_for(program: &str, log_file: Option<&Path>) -> Result<(), LogFileError> {
    if LOGGER.get().is_some() {
        return Ok(());
    }
    let tag = format!("postern/{program}");
    let sink = match log_file {
        Some(path) => Sink::File(LogFile {
            path: path.to_path_buf(),
            file: RwLock::new(open_log_file(path)?),
        }),
        None => match choose(classify_stderr(), detached(), journald_present()) {
            Choice::Journal => match journal(&tag) {
                Ok(j) => Sink::Journal(Box::new(j)),
                Err(_) => Sink::Stderr,
            },
            Choice::Syslog => {
                let path = syslog_socket();
                match syslog::Syslog::connect(&path) {
                    Ok(s) => Sink::Syslog(s),
                    Err(e) => {
                        // Said once, where the lines will go instead.
                        let _ = writeln!(
                            std::io::stderr(),
                            "{tag}[{}]: warning: cannot log to syslog at {}: {e}; logging to stderr",
                            std::process::id(),
                            path.display()
                        );
                        Sink::Stderr
                    }
                }
            }
            Choice::Stderr => Sink::Stderr,
        },
    };
    let level = level_from_env(std::env::var("POSTERN_LOG").ok().as_deref());
    let logger = LOGGER.get_or_init(|| Logger {
        host: short_hostname(),
        pid: std::process::id(),
        tag,
        level,
        sink,
        fell_back: AtomicBool::new(false),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
    Ok(())
}

/// Open the log file again at its configured path (SIGHUP: a file that
/// logrotate renamed away is followed by a new one there). Nothing to do
/// without a log file. When the file cannot be opened the lines keep
/// going to the one opened before, with a warning there.
pub(crate) fn reopen() {
    let Some(Logger {
        sink: Sink::File(f),
        ..
    }) = LOGGER.get()
    else {
        return;
    };
    if let Err(e) = f.reopen() {
        log::warn!("{e}; still writing to the file opened before");
    }
}

/// Where a process started now in the background by `postern start`
/// would log (see the module documentation), for its message.
pub(crate) fn destination_when_detached(log_file: Option<&Path>) -> Destination {
    match log_file {
        Some(path) => Destination::File(path.to_path_buf()),
        None if journald_present() => Destination::Journal,
        None => {
            let path = syslog_socket();
            if syslog::Syslog::connect(&path).is_ok() {
                Destination::Syslog(path)
            } else {
                Destination::Stderr
            }
        }
    }
}

/// Where the lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Destination {
    File(PathBuf),
    Journal,
    /// The syslog socket (`/dev/log`).
    Syslog(PathBuf),
    Stderr,
}

/// The socket of the local syslog daemon: `/dev/log`, or
/// [`SYSLOG_SOCKET_ENV`] when set (tests).
pub(crate) fn syslog_socket() -> PathBuf {
    std::env::var_os(SYSLOG_SOCKET_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(syslog::DEV_LOG))
}

/// The CLIENT field of smtpd's lines: `name[ip]` (`client`), or `uid N`
/// for a local submission.
pub(crate) fn client_field(uid: Option<u32>, client: String) -> String {
    match uid {
        Some(u) => format!("uid {u}"),
        None => client,
    }
}

/// The system's text for an error (`Permission denied`, `Connection
/// refused`) without Rust's `(os error N)`, as Postfix's `%m` writes it in
/// log lines and delivery reasons.
pub(crate) fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// The STATUS field of a delivery line: the word after `status=`.
pub(crate) fn status_field(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Sent => "sent",
        DeliveryStatus::Deferred => "deferred",
        DeliveryStatus::Bounced => "bounced",
    }
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

struct Logger {
    tag: String,
    host: String,
    /// This process's id, asked once (getpid(2) for every line was two
    /// system calls per message in smtpd and in qmgr; a daemon that forks
    /// execs, so the id stays its own).
    pid: u32,
    level: LevelFilter,
    sink: Sink,
    /// syslog refused a line and stderr got it (said once).
    fell_back: AtomicBool,
}

enum Sink {
    Stderr,
    File(LogFile),
    Journal(Box<JournalLog>),
    Syslog(syslog::Syslog),
}

/// The log file and where it was opened, to open it again on SIGHUP.
struct LogFile {
    path: PathBuf,
    file: RwLock<File>,
}

impl LogFile {
    fn reopen(&self) -> Result<(), LogFileError> {
        let new = match open_log_file(&self.path) {
            Err(e) if e.source.kind() == std::io::ErrorKind::PermissionDenied => {
                open_as_owner(&self.path).ok_or(e)?
            }
            other => other?,
        };
        *self.file.write().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(())
    }
}

/// local runs as root without CAP_DAC_OVERRIDE: it opened the log file
/// with every capability at its start, but the file logrotate (or the
/// supervisor) puts in its place belongs to the postern user, mode 0640.
/// With CAP_SETUID this thread alone may take the file owner's identity
/// for the file system (setfsuid(2)) while it opens the file, and take
/// its own back at once. For anyone else this changes nothing.
fn open_as_owner(path: &Path) -> Option<File> {
    use nix::unistd::{Uid, setfsuid};
    use std::os::unix::fs::MetadataExt;
    let owner = Uid::from_raw(std::fs::metadata(path).ok()?.uid());
    let me = nix::unistd::geteuid();
    if !me.is_root() || owner == me {
        return None;
    }
    setfsuid(owner);
    // setfsuid reports nothing: asking again (with an invalid id) tells
    // whether it took.
    let took = setfsuid(Uid::from_raw(u32::MAX)) == owner;
    let file = took.then(|| open_log_file(path).ok()).flatten();
    setfsuid(me);
    file
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = prefix(record.level());
        match &self.sink {
            Sink::Journal(j) => {
                let present = PresentOnly(record.key_values());
                j.log(
                    &Record::builder()
                        .args(format_args!("{prefix}{}", record.args()))
                        .level(record.level())
                        .target(record.target())
                        .module_path(record.module_path())
                        .file(record.file())
                        .line(record.line())
                        .key_values(&present)
                        .build(),
                );
            }
            Sink::File(f) => {
                let line = self.line(record);
                let file = f.file.read().unwrap_or_else(|e| e.into_inner());
                // One write per line (O_APPEND): whole lines, never mixed.
                let _ = (&*file).write_all(line.as_bytes());
            }
            Sink::Syslog(s) => {
                let datagram = syslog::datagram(
                    record.level(),
                    &chrono::Local::now(),
                    &self.tag,
                    self.pid,
                    &format!("{prefix}{}", record.args()),
                );
                if let Err(e) = s.send(datagram.as_bytes()) {
                    let mut err = std::io::stderr().lock();
                    if !self.fell_back.swap(true, Ordering::Relaxed) {
                        let notice = format!(
                            "cannot log to syslog at {}: {e}; logging to stderr while it refuses",
                            s.path().display()
                        );
                        let _ = err.write_all(self.text_line(Level::Warn, &notice).as_bytes());
                    }
                    let _ = err.write_all(self.line(record).as_bytes());
                }
            }
            Sink::Stderr => {
                let line = self.line(record);
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

impl Logger {
    fn line(&self, record: &Record) -> String {
        self.text_line(record.level(), record.args())
    }

    fn text_line(&self, level: Level, text: impl std::fmt::Display) -> String {
        let now = syslog::stamp(&chrono::Local::now());
        format!(
            "{now} {} {}[{}]: {}{text}\n",
            self.host,
            self.tag,
            self.pid,
            prefix(level),
        )
    }
}

fn prefix(level: Level) -> &'static str {
    match level {
        Level::Error => "error: ",
        Level::Warn => "warning: ",
        Level::Info => "",
        Level::Debug | Level::Trace => "debug: ",
    }
}

fn level_from_env(value: Option<&str>) -> LevelFilter {
    match value {
        Some("debug") => LevelFilter::Debug,
        Some("trace") => LevelFilter::Trace,
        Some("warn") => LevelFilter::Warn,
        _ => LevelFilter::Info,
    }
}

/// syslog shows the first label of the host name only.
fn short_hostname() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    host.split('.').next().unwrap_or("localhost").to_string()
}

fn open_log_file(path: &Path) -> Result<File, LogFileError> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| LogFileError {
            path: path.to_path_buf(),
            source,
        })
}

fn journal(tag: &str) -> std::io::Result<JournalLog> {
    Ok(JournalLog::empty()?
        .with_syslog_identifier(tag.to_string())
        .add_extra_field("SYSLOG_FACILITY", "2"))
}

/// What stderr is, as far as choosing the journal goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StderrKind {
    /// The stream `JOURNAL_STREAM` names: systemd connected it.
    JournalStream,
    /// `JOURNAL_STREAM` names another stream: the user redirected stderr.
    Redirected,
    /// No `JOURNAL_STREAM`; a socket, `/dev/null` or closed.
    Unwatched,
    /// No `JOURNAL_STREAM`; a terminal, a file or a pipe.
    Watched,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    Journal,
    Syslog,
    Stderr,
}

/// The rule of the module documentation, for a process without a log
/// file. `detached`: started by `postern start` in the background.
fn choose(stderr: StderrKind, detached: bool, journald_present: bool) -> Choice {
    match stderr {
        StderrKind::JournalStream => Choice::Journal,
        StderrKind::Redirected | StderrKind::Watched if !detached => Choice::Stderr,
        _ if journald_present => Choice::Journal,
        _ => Choice::Syslog,
    }
}

fn detached() -> bool {
    std::env::var_os(DETACHED_ENV).is_some_and(|v| v == "1")
}

fn classify_stderr() -> StderrKind {
    let stat = nix::sys::stat::fstat(2).ok().map(|st| StderrStat {
        dev: st.st_dev,
        ino: st.st_ino,
        mode: st.st_mode,
        rdev: st.st_rdev,
    });
    classify(std::env::var("JOURNAL_STREAM").ok().as_deref(), stat)
}

struct StderrStat {
    dev: u64,
    ino: u64,
    mode: u32,
    rdev: u64,
}

fn classify(journal_stream: Option<&str>, stderr: Option<StderrStat>) -> StderrKind {
    let Some(st) = stderr else {
        return match journal_stream {
            Some(_) => StderrKind::Redirected,
            None => StderrKind::Unwatched,
        };
    };
    if let Some(named) = journal_stream {
        // systemd's format, as systemd-journal-logger compares it.
        return if named == format!("{}:{}", st.dev, st.ino) {
            StderrKind::JournalStream
        } else {
            StderrKind::Redirected
        };
    }
    let kind = st.mode & libc::S_IFMT;
    // /dev/null is the character device 1:3 on Linux.
    let dev_null = kind == libc::S_IFCHR
        && nix::sys::stat::major(st.rdev) == 1
        && nix::sys::stat::minor(st.rdev) == 3;
    if kind == libc::S_IFSOCK || dev_null {
        StderrKind::Unwatched
    } else {
        StderrKind::Watched
    }
}

fn journald_present() -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(JOURNAL_SOCKET).is_ok_and(|m| m.file_type().is_socket())
}

/// A record's key-values without the absent (`None`) ones.
struct PresentOnly<'a>(&'a dyn Source);

impl Source for PresentOnly<'_> {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), KvError> {
        self.0.visit(&mut SkipNull(visitor))
    }
}

struct SkipNull<'a, 'kvs>(&'a mut dyn VisitSource<'kvs>);

impl<'kvs> VisitSource<'kvs> for SkipNull<'_, 'kvs> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), KvError> {
        if is_null(&value) {
            Ok(())
        } else {
            self.0.visit_pair(key, value)
        }
    }
}

fn is_null(value: &Value) -> bool {
    struct Null(bool);
    impl VisitValue<'_> for Null {
        fn visit_any(&mut self, _: Value) -> Result<(), KvError> {
            Ok(())
        }
        fn visit_null(&mut self) -> Result<(), KvError> {
            self.0 = true;
            Ok(())
        }
    }
    let mut n = Null(false);
    let _ = value.visit(&mut n);
    n.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mode: u32, rdev: u64) -> Option<StderrStat> {
        Some(StderrStat {
            dev: 27,
            ino: 4242,
            mode,
            rdev,
        })
    }

    #[test]
    fn journal_stream_naming_stderr_means_the_journal() {
        let k = classify(Some("27:4242"), stat(libc::S_IFSOCK | 0o777, 0));
        assert_eq!(k, StderrKind::JournalStream);
        assert_eq!(choose(k, false, false), Choice::Journal);
    }

    #[test]
    fn journal_stream_naming_another_stream_means_stderr() {
        // A shell in a terminal started by a unit inherits the variable.
        let k = classify(Some("27:1"), stat(libc::S_IFCHR | 0o620, 0x8800));
        assert_eq!(k, StderrKind::Redirected);
        assert_eq!(choose(k, false, true), Choice::Stderr);
        assert_eq!(classify(Some("27:4242"), None), StderrKind::Redirected);
    }

    #[test]
    fn without_journal_stream_only_unwatched_stderr_goes_to_the_journal() {
        let null = nix::sys::stat::makedev(1, 3);
        let tty = nix::sys::stat::makedev(136, 0);
        for (st, kind) in [
            (stat(libc::S_IFSOCK | 0o777, 0), StderrKind::Unwatched),
            (stat(libc::S_IFCHR | 0o666, null), StderrKind::Unwatched),
            (None, StderrKind::Unwatched),
            (stat(libc::S_IFCHR | 0o620, tty), StderrKind::Watched),
            (stat(libc::S_IFREG | 0o644, 0), StderrKind::Watched),
            (stat(libc::S_IFIFO | 0o600, 0), StderrKind::Watched),
        ] {
            assert_eq!(classify(None, st), kind);
        }
        assert_eq!(choose(StderrKind::Unwatched, false, true), Choice::Journal);
        assert_eq!(choose(StderrKind::Watched, false, true), Choice::Stderr);
    }

    #[test]
    fn nobody_reading_stderr_and_no_journald_means_syslog() {
        assert_eq!(choose(StderrKind::Unwatched, false, false), Choice::Syslog);
        // `postern start` in the background: its stderr is the run
        // directory's postern.log, kept for what is said before the logger.
        let file = StderrKind::Watched;
        assert_eq!(choose(file, true, false), Choice::Syslog);
        assert_eq!(choose(file, true, true), Choice::Journal);
        assert_eq!(choose(StderrKind::Redirected, true, false), Choice::Syslog);
        // In the foreground: whoever started it reads stderr.
        assert_eq!(choose(file, false, false), Choice::Stderr);
        assert_eq!(
            choose(StderrKind::JournalStream, true, false),
            Choice::Journal
        );
    }

    #[test]
    fn absent_values_are_left_out() {
        let none: Option<&str> = None;
        let kvs: [(&str, Value); 3] = [
            ("queue_id", Value::from_any(&none)),
            ("client", Value::from("x[192.0.2.1]")),
            ("recipient", Value::from_any(&Some("a@b.example"))),
        ];
        let kvs: &[(&str, Value)] = &kvs;
        struct Collect(Vec<String>);
        impl<'kvs> VisitSource<'kvs> for Collect {
            fn visit_pair(&mut self, k: Key<'kvs>, v: Value<'kvs>) -> Result<(), KvError> {
                self.0.push(format!("{k}={v}"));
                Ok(())
            }
        }
        let mut c = Collect(Vec::new());
        PresentOnly(&kvs).visit(&mut c).unwrap();
        assert_eq!(c.0, ["client=x[192.0.2.1]", "recipient=a@b.example"]);
    }

    /// A logger to the file `path` on the host `mail`, at Info.
    fn file_logger(tag: &str, path: &Path) -> Logger {
        Logger {
            tag: tag.into(),
            host: "mail".into(),
            pid: std::process::id(),
            level: LevelFilter::Info,
            sink: Sink::File(LogFile {
                path: path.to_path_buf(),
                file: RwLock::new(open_log_file(path).unwrap()),
            }),
            fell_back: AtomicBool::new(false),
        }
    }

    #[test]
    fn file_lines_are_syslog_shaped_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maillog");
        std::fs::write(&path, "earlier line\n").unwrap();
        let logger = file_logger("postern/local", &path);
        logger.log(
            &Record::builder()
                .args(format_args!("1234567890ABCA: removed"))
                .level(Level::Info)
                .build(),
        );
        logger.log(
            &Record::builder()
                .args(format_args!("disk full"))
                .level(Level::Warn)
                .build(),
        );
        logger.log(
            &Record::builder()
                .args(format_args!("not shown"))
                .level(Level::Debug)
                .build(),
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "earlier line");
        let pid = std::process::id();
        // "Nov 28 07:43:01 mail postern/local[PID]: …", day padded as syslog.
        for (line, text) in lines[1..]
            .iter()
            .zip(["1234567890ABCA: removed", "warning: disk full"])
        {
            let (stamp, rest) = line.split_at(15);
            assert_eq!(rest, format!(" mail postern/local[{pid}]: {text}"));
            assert!(
                chrono::NaiveTime::parse_from_str(&stamp[7..], "%H:%M:%S").is_ok(),
                "{line}"
            );
            assert_eq!(&stamp[3..4], " ", "{line}");
        }
    }

    #[test]
    fn a_log_file_renamed_away_is_followed_by_a_new_one_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maillog");
        let logger = file_logger("postern/smtpd", &path);
        let say = |text: &str| {
            logger.log(
                &Record::builder()
                    .args(format_args!("{text}"))
                    .level(Level::Info)
                    .build(),
            )
        };
        say("before");
        let rotated = dir.path().join("maillog.1");
        std::fs::rename(&path, &rotated).unwrap();
        say("after the rename");
        let Sink::File(f) = &logger.sink else {
            unreachable!()
        };
        f.reopen().unwrap();
        say("after the reopen");
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(
            old.contains(": before\n") && old.contains(": after the rename\n"),
            "{old}"
        );
        assert!(!old.contains("after the reopen"), "{old}");
        assert_eq!(new.lines().count(), 1, "{new}");
        assert!(new.ends_with(": after the reopen\n"), "{new}");
        // A file that cannot be opened again: the old one stays.
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_dir_all(dir.path()).unwrap();
        assert!(f.reopen().is_err());
    }

    #[test]
    fn log_file_is_created_0640() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maillog");
        open_log_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        // The umask may only take bits away.
        assert_eq!(mode & 0o137, 0, "{mode:o}");
        let e = open_log_file(&dir.path().join("no/such/dir/maillog")).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot open the log file "),
            "{e}"
        );
    }

    #[test]
    fn fields_for_status_and_client() {
        assert_eq!(status_field(DeliveryStatus::Sent), "sent");
        assert_eq!(status_field(DeliveryStatus::Deferred), "deferred");
        assert_eq!(status_field(DeliveryStatus::Bounced), "bounced");
        assert_eq!(
            client_field(Some(1000), "localhost[127.0.0.1]".into()),
            "uid 1000"
        );
        assert_eq!(client_field(None, "h[192.0.2.1]".into()), "h[192.0.2.1]");
    }

    #[test]
    fn level_comes_from_postern_log() {
        assert_eq!(level_from_env(None), LevelFilter::Info);
        assert_eq!(level_from_env(Some("debug")), LevelFilter::Debug);
        assert_eq!(level_from_env(Some("warn")), LevelFilter::Warn);
        assert_eq!(level_from_env(Some("nonsense")), LevelFilter::Info);
    }
}
