//! Delay numbers in log lines, formatted as Postfix's `format_tv` does with
//! `delay_logging_resolution_limit = 2`: at most 2 significant digits and
//! at most 2 decimals, trailing zeros dropped, `0` for nothing, large values
//! rounded to whole seconds (`0.12`, `0.06`, `1.2`, `37`, `4000`).

//!
//! [`Delays`] is the whole `delay=D, delays=a/b/c/d` pair of a delivery's
//! log line, the same for local, smtp and qmgr (Postfix `log_adhoc`).

use std::fmt;

const MILLION: u64 = 1_000_000;
/// Significant digits for small values.
const SIG_DIGITS: u32 = 2;
/// Digits after the decimal point, at most.
const MAX_DECIMALS: u32 = 2;

/// Format a duration in seconds for `delay=` and `delays=`. Negative and
/// non-finite values (a clock stepped back) print as `0`.
pub(crate) fn format_delay(secs: f64) -> String {
    let micros = if secs.is_finite() && secs > 0.0 {
        // `as` saturates: an absurd value prints as a large number, not a panic.
        (secs * 1e6).round() as u64
    } else {
        0
    };
    format_tv(micros / MILLION, micros % MILLION)
}

/// The instants of one delivery, microseconds since the epoch, shown as
/// Postfix's `delay=D, delays=a/b/c/d`: D from arrival to the end; a
/// before the queue manager took the message (arrival → active), b in the
/// queue manager (active → start of the delivery), c setting up the
/// delivery (start → ready: the connection and greeting for smtp; nothing
/// for local and qmgr, so 0), d the delivery itself (ready → end). Times
/// that run backwards (a clock stepped back) count as 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Delays {
    pub arrival: u64,
    pub active: u64,
    pub start: u64,
    pub ready: u64,
    pub end: u64,
}

impl fmt::Display for Delays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let span = |from: u64, to: u64| format_delay(to.saturating_sub(from) as f64 / 1e6);
        write!(
            f,
            "delay={}, delays={}/{}/{}/{}",
            span(self.arrival, self.end),
            span(self.arrival, self.active),
            span(self.active, self.start),
            span(self.start, self.ready),
            span(self.ready, self.end),
        )
    }
}

/// Postfix's algorithm: pick the resolution from the magnitude, round half
/// up at that resolution, then print the digits down to it.
fn format_tv(mut sec: u64, mut usec: u64) -> String {
    let wid = 10u64.pow(SIG_DIGITS);
    let mut ures = MILLION / 10u64.pow(MAX_DECIMALS);
    if ures < MILLION {
        if sec > 0 {
            let mut n = 1;
            while sec >= n && n <= wid / 10 {
                n *= 10;
            }
            ures = (MILLION / wid) * n;
        } else {
            while usec >= wid * ures {
                ures *= 10;
            }
        }
    }
    if ures > 1 {
        usec += ures / 2;
        if usec >= MILLION {
            sec += 1;
            usec -= MILLION;
        }
    }
    let mut out = sec.to_string();
    if usec >= ures {
        out.push('.');
        let mut rem = usec;
        let mut n = MILLION / 10;
        while rem >= ures && n > 0 {
            out.push(char::from(b'0' + (rem / n) as u8));
            rem %= n;
            n /= 10;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_examples() {
        for (secs, want) in [
            (0.0, "0"),
            (0.123, "0.12"),
            (0.055, "0.06"),
            (0.06, "0.06"),
            (1.23, "1.2"),
            (1.0, "1"),
            (37.4, "37"),
            (4000.2, "4000"),
            (0.1, "0.1"),
            (0.001, "0"),
            (0.005, "0.01"),
            (0.0999, "0.1"),
            (9.96, "10"),
            (99.6, "100"),
            (0.999_999, "1"),
            (-3.0, "0"),
            (f64::NAN, "0"),
        ] {
            assert_eq!(format_delay(secs), want, "{secs}");
        }
    }

    #[test]
    fn delays_in_postfix_shape() {
        let d = Delays {
            arrival: 1_000_000,
            active: 1_120_000,
            start: 1_180_000,
            ready: 1_180_000,
            end: 2_400_000,
        };
        assert_eq!(d.to_string(), "delay=1.4, delays=0.12/0.06/0/1.2");
        let backwards = Delays {
            arrival: 5,
            active: 4,
            start: 3,
            ready: 2,
            end: 1,
        };
        assert_eq!(backwards.to_string(), "delay=0, delays=0/0/0/0");
    }

    proptest::proptest! {
        #[test]
        fn any_value_formats_briefly(secs in 0.0f64..1e7) {
            let out = format_delay(secs);
            let (int, frac) = out.split_once('.').unwrap_or((&out, ""));
            proptest::prop_assert!(frac.len() <= 2 && !frac.ends_with('0'));
            proptest::prop_assert!(int.bytes().all(|b| b.is_ascii_digit()));
            let back: f64 = out.parse().unwrap();
            // Rounded at the chosen resolution: within half a second, and
            // within 10% for values of a second or more.
            proptest::prop_assert!((back - secs).abs() <= 0.5_f64.max(secs * 0.1));
        }
    }
}
