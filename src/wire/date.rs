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
    rfc5322_zoned(&chrono::Local::now())
}

/// `t` as [`RFC5322`] and its offset (`%z`), written field by field:
/// chrono's `format` parses its format string again at every call (a
/// Received header per message; issue 22).
fn rfc5322_zoned<Tz: TimeZone>(t: &DateTime<Tz>) -> String {
    use chrono::{Datelike, Offset, Timelike};
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let offset = t.offset().fix().local_minus_utc();
    let (sign, off) = if offset < 0 {
        ('-', -offset)
    } else {
        ('+', offset)
    };
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        DAYS[t.weekday().num_days_from_monday() as usize % 7],
        t.day(),
        MONTHS[t.month0() as usize % 12],
        t.year(),
        t.hour(),
        t.minute(),
        t.second(),
        off / 3600,
        off / 60 % 60,
    )
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

    /// The date written by hand is chrono's `%a, %d %b %Y %H:%M:%S %z`.
    #[test]
    fn zoned_dates_are_chronos() {
        let zoned = format!("{RFC5322} %z");
        for secs in [0, 951_782_400, 1_709_632_800, 1_765_000_000, 4_102_444_799] {
            for east in [0, 3600, -5 * 3600 - 30 * 60, 5 * 3600 + 45 * 60] {
                let zone = chrono::FixedOffset::east_opt(east).unwrap();
                let t = zone.timestamp_opt(secs, 0).unwrap();
                assert_eq!(rfc5322_zoned(&t), t.format(&zoned).to_string());
            }
            let t = chrono::Local.timestamp_opt(secs, 0).unwrap();
            assert_eq!(rfc5322_zoned(&t), t.format(&zoned).to_string());
        }
    }

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
