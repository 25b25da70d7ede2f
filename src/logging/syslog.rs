//! Lines to the local syslog daemon, as Postfix's msg_syslog and the C
//! library's syslog(3) send them: one datagram per line on the Unix socket
//! `/dev/log`, in the BSD syslog format of RFC 3164 as the local socket
//! carries it (no host name: the daemon adds its own):
//!
//! ```text
//! <22>Nov 28 07:43:01 postern/smtpd[1234]: connect from client.example[192.0.2.1]
//! ```
//!
//! The priority is facility mail (2) × 8 + the severity: `error` 3,
//! `warning` 4, info 6, debug 7; `<22>` is mail.info. The text keeps its
//! severity prefix (`warning: …`), as Postfix's does.
//!
//! A few lines over `std::os::unix::net::UnixDatagram` rather than a
//! crate: the format is one `format!`, and what matters (connect before
//! the sandbox, connect again after the daemon restarted, never block the
//! mail system for long) is easier to see here.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Timelike};
use log::Level;

/// The time stamp of a syslog line (RFC 3164, and the lines of
/// `server.log_file`, which pflogsumm reads the same way):
/// `Mar  5 10:00:00`, local time.
#[cfg(test)]
const STAMP: &str = "%b %e %H:%M:%S";

/// [`STAMP`] of `now`, written field by field: chrono's `format` parses
/// the format string again for every line (some 4,000 instructions a line,
/// a tenth of what smtpd did per message besides reading it; issue 22).
pub(super) fn stamp<Tz: TimeZone>(now: &DateTime<Tz>) -> Stamp {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let two = |n: u32| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let mut out = *b"Jan  1 00:00:00";
    out[..3].copy_from_slice(MONTHS[now.month0() as usize % 12]);
    let day = two(now.day());
    out[4] = if day[0] == b'0' { b' ' } else { day[0] };
    out[5] = day[1];
    out[7..9].copy_from_slice(&two(now.hour()));
    out[10..12].copy_from_slice(&two(now.minute()));
    out[13..15].copy_from_slice(&two(now.second()));
    Stamp(out)
}

/// A time stamp as [`stamp`] writes it (ASCII).
pub(super) struct Stamp([u8; 15]);

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&self.0).map_err(|_| std::fmt::Error)?)
    }
}

/// The local syslog daemon's socket.
pub(crate) const DEV_LOG: &str = "/dev/log";

/// syslog(3)'s LOG_MAIL.
const FACILITY_MAIL: u8 = 2;

/// The longest a line may wait for a syslog daemon that does not read:
/// then it goes to stderr instead, and mail goes on.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// A socket connected to the syslog daemon, connected again when the
/// daemon was restarted (its socket is new: the old connection refuses).
pub(crate) struct Syslog {
    path: PathBuf,
    socket: Mutex<Option<UnixDatagram>>,
}

impl Syslog {
    /// Connect now (before the daemon's sandbox; connecting again later
    /// needs the socket's directory in its Landlock room, see
    /// `crate::sandbox`).
    pub(crate) fn connect(path: &Path) -> io::Result<Syslog> {
        Ok(Syslog {
            path: path.to_path_buf(),
            socket: Mutex::new(Some(connect(path)?)),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// One datagram; on failure the socket is connected again and the
    /// datagram sent once more.
    pub(crate) fn send(&self, datagram: &[u8]) -> io::Result<()> {
        let mut socket = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = None;
        for _ in 0..2 {
            if socket.is_none() {
                match connect(&self.path) {
                    Ok(s) => *socket = Some(s),
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            if let Some(s) = socket.as_ref() {
                match s.send(datagram) {
                    Ok(_) => return Ok(()),
                    Err(e) => {
                        *socket = None;
                        last = Some(e);
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("not connected")))
    }
}

fn connect(path: &Path) -> io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect(path)?;
    s.set_write_timeout(Some(SEND_TIMEOUT))?;
    Ok(s)
}

/// The severity of a level (syslog(3)'s LOG_ERR, LOG_WARNING, LOG_INFO,
/// LOG_DEBUG).
fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// The datagram of one line: `<PRI>Mmm dd HH:MM:SS TAG[PID]: TEXT`, the
/// day padded with a space as syslog's.
pub(crate) fn datagram<Tz: TimeZone>(
    level: Level,
    now: &DateTime<Tz>,
    tag: &str,
    pid: u32,
    text: &str,
) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let pri = FACILITY_MAIL * 8 + severity(level);
    let stamp = stamp(now);
    format!("<{pri}>{stamp} {tag}[{pid}]: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_are_rfc_3164_with_facility_mail() {
        let t = chrono::Utc.with_ymd_and_hms(2024, 11, 8, 7, 43, 1).unwrap();
        let d = |level, text| datagram(level, &t, "postern/smtpd", 1234, text);
        assert_eq!(
            d(Level::Info, "connect from unknown[192.0.2.1]"),
            "<22>Nov  8 07:43:01 postern/smtpd[1234]: connect from unknown[192.0.2.1]"
        );
        assert!(d(Level::Warn, "warning: x").starts_with("<20>Nov  8 "));
        assert!(d(Level::Error, "error: x").starts_with("<19>"));
        assert!(d(Level::Debug, "debug: x").starts_with("<23>"));
    }

    /// The stamp written by hand is chrono's `%b %e %H:%M:%S`.
    #[test]
    fn stamps_are_chronos() {
        for (mo, d, h, mi, se) in [(1, 1, 0, 0, 0), (2, 9, 9, 5, 7), (11, 10, 23, 59, 59)] {
            for month in [mo, 12 - mo + 1] {
                let t = chrono::Utc
                    .with_ymd_and_hms(2026, month, d, h, mi, se)
                    .unwrap();
                assert_eq!(stamp(&t).to_string(), t.format(STAMP).to_string());
            }
        }
        for day in 1..=31 {
            let t = chrono::Local
                .with_ymd_and_hms(2026, 12, day, 20, 1, 32)
                .unwrap();
            assert_eq!(stamp(&t).to_string(), t.format(STAMP).to_string());
        }
    }

    #[test]
    fn a_restarted_syslog_daemon_is_connected_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let first = UnixDatagram::bind(&path).unwrap();
        let s = Syslog::connect(&path).unwrap();
        s.send(b"one").unwrap();
        let mut buf = [0u8; 64];
        let n = first.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"one");
        // The daemon restarts: a new socket at the same path.
        drop(first);
        std::fs::remove_file(&path).unwrap();
        let second = UnixDatagram::bind(&path).unwrap();
        s.send(b"two").unwrap();
        let n = second.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"two");
        // No daemon at all: an error, for the caller to use stderr.
        drop(second);
        std::fs::remove_file(&path).unwrap();
        assert!(s.send(b"three").is_err());
        assert!(Syslog::connect(&dir.path().join("none")).is_err());
    }
}
