//! Logging in Postfix's line shapes: `Mon DD HH:MM:SS host postern/ROLE[PID]:
//! text`, one line per event on stderr (the journal comes with the systemd
//! work). Severity prefixes as Postfix: info has none; `warning: `,
//! `error: ` (Postfix says `fatal: ` for the last word of a dying daemon;
//! `log::error!` is used for that), `debug: `.

use std::io::Write;
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    tag: String,
    host: String,
    level: LevelFilter,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Install the logger for one process; `program` is e.g. `smtpd` and gives
/// the tag `postern/smtpd`. Calling it twice keeps the first.
pub fn init(program: &str) {
    let level = match std::env::var("POSTERN_LOG").as_deref() {
        Ok("debug") => LevelFilter::Debug,
        Ok("trace") => LevelFilter::Trace,
        Ok("warn") => LevelFilter::Warn,
        _ => LevelFilter::Info,
    };
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    // syslog shows the first label only.
    let host = host.split('.').next().unwrap_or("localhost").to_string();
    let logger = LOGGER.get_or_init(|| Logger {
        tag: format!("postern/{program}"),
        host,
        level,
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = match record.level() {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info => "",
            Level::Debug | Level::Trace => "debug: ",
        };
        let now = chrono::Local::now().format("%b %e %H:%M:%S");
        let line = format!(
            "{now} {} {}[{}]: {prefix}{}\n",
            self.host,
            self.tag,
            std::process::id(),
            record.args()
        );
        // One write per line so lines of concurrent processes do not mix.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}
