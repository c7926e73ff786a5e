//! Time as an argument.
//!
//! Expiry checks, cache refresh and identifiers take "now" from a [`Clock`], so tests can
//! move time by hand with [`ManualClock`]. Nothing else in the crate reads the system clock
//! (enforced by `disallowed-methods` in `clippy.toml`).

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; for tests and benchmarks.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock frozen at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: SystemTime) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Formats a time as RFC 3339 in UTC with second precision, e.g. `2026-03-09T14:26:29Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut out = String::with_capacity(24);
    push_date_time(&mut out, secs);
    out.push('Z');
    out
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` since the epoch, without `format!`:
/// every issuance formats two or three times.
pub(crate) fn push_date_time(out: &mut String, secs: u64) {
    let (y, mo, d, h, mi, s) = civil_from_unix(secs);
    push_digits(out, u64::try_from(y).unwrap_or(0), 4);
    for (sep, n) in [('-', mo), ('-', d), ('T', h), (':', mi), (':', s)] {
        out.push(sep);
        push_digits(out, u64::from(n), 2);
    }
}

/// `n` in decimal, zero-padded to at least `width` digits.
pub(crate) fn push_digits(out: &mut String, n: u64, width: u32) {
    let mut digits = width;
    while digits < 20 && n >= 10u64.pow(digits) {
        digits += 1;
    }
    for i in (0..digits).rev() {
        let digit = (n / 10u64.pow(i)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Formats `t` as fixed-width RFC 3339 UTC with milliseconds (`2026-03-09T14:11:29.000Z`):
/// the form audit times are stored in, so that text order is time order.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut out = String::with_capacity(24);
    push_date_time(&mut out, d.as_secs());
    out.push('.');
    push_digits(&mut out, u64::from(d.subsec_millis()), 3);
    out.push('Z');
    out
}

/// Parses RFC 3339 (`2026-03-09T14:11:29Z`, fractions and `±HH:MM` offsets accepted) into
/// a time; `None` if it is not one.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't'))
    {
        return None;
    }
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Nanosecond precision; further digits are accepted and dropped.
        for (i, c) in frac.bytes().take(9).take(digits).enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = frac.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes().get(3) != Some(&b':') {
                return None;
            }
            let (oh, om) = (
                rest.get(1..3)?.parse::<i64>().ok()?,
                rest.get(4..6)?.parse::<i64>().ok()?,
            );
            sign * (oh * 3600 + om * 60)
        }
    };
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + (153 * mm + 2) / 5 + d - 1;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::new(s, nanos))
}

/// Splits seconds since the Unix epoch into a proleptic Gregorian UTC date and time
/// (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_unix(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, mi, s) = (
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    );
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, h, mi, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_format_padding_across_the_range() {
        // Every 1,234,567,891 ms up to past the year 10000, against `format!`'s padding.
        let mut ms: u64 = 0;
        while ms < 260_000_000_000_000 {
            let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
            let (y, mo, d, h, mi, s) = civil_from_unix(ms / 1000);
            let frac = ms % 1000;
            assert_eq!(
                rfc3339(t),
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
            );
            assert_eq!(
                rfc3339_millis(t),
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}Z")
            );
            ms += 1_234_567_891;
        }
    }

    #[test]
    fn formats_known_instants() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_773_065_489);
        assert_eq!(rfc3339(t), "2026-03-09T14:11:29Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_208_000);
        assert_eq!(rfc3339(leap), "2024-02-29T12:00:00Z");
    }

    #[test]
    fn parses_rfc3339_and_round_trips() {
        for text in [
            "2026-03-09T14:11:29Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(text).map(rfc3339).as_deref(), Some(text));
        }
        assert_eq!(
            parse_rfc3339("2026-03-09T16:11:29.123+02:00")
                .map(rfc3339)
                .as_deref(),
            Some("2026-03-09T14:11:29Z")
        );
        for bad in [
            "",
            "yesterday",
            "2026-03-09",
            "2026-13-09T00:00:00Z",
            "2026-03-09T14:11:29",
            "2026-03-09T14:11:29+2",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(SystemTime::UNIX_EPOCH);
        assert_eq!(c.now(), SystemTime::UNIX_EPOCH);
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(5));
    }
}
