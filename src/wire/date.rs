//! Dates as mail shows them: RFC 5322 dates for headers and reports, the
//! asctime shape of `mailq` and `postern queue show`, the stamp of a
//! Message-ID.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeZone, Utc};

/// RFC 5322 `date-time` without its zone: `Tue, 05 Mar 2024 10:00:00`
/// (two-digit day, as Postfix writes it).
const RFC5322: &str = "%a, %d %b %Y %H:%M:%S";

/// Now, in local time with its offset, as Postfix's `mail_date` writes it
/// for the headers a message gets on its way in (`Date:` of `sendmail`,
/// `Received:`): `Tue, 05 Mar 2024 11:00:00 +0100`.
pub(crate) fn local_now() -> String {
    chrono::Local::now()
        .format(&format!("{RFC5322} %z"))
        .to_string()
}

/// `t` in UTC, the zone name in a comment, as Postfix's `mail_date` writes
/// it; for the reports postern builds, which stay pure functions of their
/// input: `Tue, 05 Mar 2024 10:00:00 +0000 (UTC)`.
pub(crate) fn mail_date(t: SystemTime) -> String {
    utc(t).format(&format!("{RFC5322} +0000 (UTC)")).to_string()
}

/// The time stamp of Postfix's cleanup Message-Id: `YYYYMMDDHHMMSS`, UTC.
pub(crate) fn message_id_stamp(t: SystemTime) -> String {
    utc(t).format("%Y%m%d%H%M%S").to_string()
}

/// Local time as C's `asctime` without the year: `Thu Nov 24 18:22:48`
/// (the day padded with a space); empty for a time chrono cannot show.
pub fn asctime(secs: u64) -> String {
    chrono::Local
        .timestamp_opt(secs as i64, 0)
        .single()
        .map(|t| t.format("%a %b %e %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Seconds since the epoch, 0 for times before it, saturating far ahead.
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn utc(t: SystemTime) -> DateTime<Utc> {
    // Out of chrono's range (hundreds of millennia ahead): the epoch, rather
    // than a panic; no real clock or queue lifetime gets there.
    DateTime::from_timestamp(unix_seconds(t), 0).unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc5322_utc() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_632_800);
        assert_eq!(mail_date(t), "Tue, 05 Mar 2024 10:00:00 +0000 (UTC)");
        assert_eq!(message_id_stamp(t), "20240305100000");
        assert_eq!(
            mail_date(UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 +0000 (UTC)"
        );
    }

    #[test]
    fn local_dates_have_their_offset() {
        let now = local_now();
        // `Tue, 05 Mar 2024 11:00:00 +0100`: 31 characters.
        assert_eq!(now.len(), 31, "{now}");
        assert!(
            now.as_bytes()[3] == b',' && now[26..].starts_with(['+', '-']),
            "{now}"
        );
        assert_eq!(asctime(0).len(), 19);
    }
}
