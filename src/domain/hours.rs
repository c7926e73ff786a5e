//! Weekly time windows in a time zone: `"Mon-Fri 08:00-18:00 Europe/Berlin"`.
//!
//! Grammar: `DAYS START-END ZONE`, separated by spaces.
//!
//! * `DAYS`: comma-separated days or ranges of days, `Mon Tue Wed Thu Fri Sat Sun`
//!   (any case); a range may wrap around the week (`Fri-Mon`).
//! * `START-END`: `HH:MM-HH:MM`, 24-hour wall clock time in `ZONE`, `END` may be `24:00`.
//!   The window includes `START` and excludes `END`. When `END` is before `START` the
//!   window runs overnight: it opens on each listed day at `START` and closes the next day
//!   at `END` (`Fri 22:00-06:00` covers Friday night until Saturday 06:00).
//! * `ZONE`: a tz database name (`Europe/Berlin`, `America/New_York`, `UTC`). The
//!   database is built into the broker, so it does not depend on the host's
//!   `/usr/share/zoneinfo`. Wall clock time follows daylight saving time.

use std::fmt;
use std::time::SystemTime;

use jiff::tz::TimeZone;

use super::ParseError;

/// Minutes in a day.
const DAY: u16 = 24 * 60;

/// A weekly time window in a time zone.
#[derive(Debug, Clone)]
pub struct Hours {
    /// As written.
    text: String,
    /// Monday first.
    days: [bool; 7],
    /// Minutes after midnight, inclusive.
    start: u16,
    /// Minutes after midnight, exclusive; `DAY` for `24:00`.
    end: u16,
    zone: TimeZone,
}

impl PartialEq for Hours {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Hours {
    /// Parses `DAYS HH:MM-HH:MM ZONE`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [days, times, zone] = parts.as_slice() else {
            return Err(ParseError::new(
                "must be DAYS HH:MM-HH:MM ZONE, such as \"Mon-Fri 08:00-18:00 Europe/Berlin\"",
            ));
        };
        let days = parse_days(days)?;
        let (start, end) = times
            .split_once('-')
            .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)))
            .filter(|(a, _)| *a < DAY)
            .ok_or_else(|| {
                ParseError::new(
                    "times must be HH:MM-HH:MM, from 00:00 to 24:00 (24:00 only as end)",
                )
            })?;
        if start == end {
            return Err(ParseError::new(
                "start and end are the same: for the whole day write 00:00-24:00",
            ));
        }
        let zone = TimeZone::get(zone).map_err(|_| {
            ParseError::new(
                "unknown time zone: use a tz database name such as Europe/Berlin or UTC",
            )
        })?;
        Ok(Self {
            text: s.to_owned(),
            days,
            start,
            end,
            zone,
        })
    }

    /// The window as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `now` is inside the window.
    pub fn contains(&self, now: SystemTime) -> bool {
        let Ok(ts) = jiff::Timestamp::try_from(now) else {
            return false;
        };
        let local = ts.to_zoned(self.zone.clone());
        let day = usize::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0);
        let previous = (day + 6) % 7;
        let minute = u16::try_from(local.hour()).unwrap_or(0) * 60
            + u16::try_from(local.minute()).unwrap_or(0);
        let listed = |d: usize| self.days.get(d).copied().unwrap_or(false);
        if self.start < self.end {
            listed(day) && (self.start..self.end).contains(&minute)
        } else {
            (listed(day) && minute >= self.start) || (listed(previous) && minute < self.end)
        }
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_days(s: &str) -> Result<[bool; 7], ParseError> {
    let err = || ParseError::new("days must be like Mon-Fri, Sat,Sun or Mon,Wed-Fri");
    let mut days = [false; 7];
    for part in s.split(',') {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (day(a).ok_or_else(err)?, day(b).ok_or_else(err)?),
            None => {
                let d = day(part).ok_or_else(err)?;
                (d, d)
            }
        };
        let mut d = from;
        loop {
            if let Some(slot) = days.get_mut(d) {
                *slot = true;
            }
            if d == to {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    Ok(days)
}

fn day(s: &str) -> Option<usize> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    NAMES.iter().position(|n| n.eq_ignore_ascii_case(s))
}

/// `HH:MM` as minutes after midnight, `24:00` included.
fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    let total = h.checked_mul(60)?.checked_add(m)?;
    (m < 60 && total <= DAY).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The instant of an RFC 3339 time.
    fn at(s: &str) -> SystemTime {
        SystemTime::from(s.parse::<jiff::Timestamp>().unwrap())
    }

    #[test]
    fn office_hours_in_berlin_follow_daylight_saving() {
        let h = Hours::parse("Mon-Fri 08:00-18:00 Europe/Berlin").unwrap();
        // Winter, UTC+1: Monday 2026-01-05.
        assert!(!h.contains(at("2026-01-05T06:59:59Z")));
        assert!(h.contains(at("2026-01-05T07:00:00Z")));
        assert!(h.contains(at("2026-01-05T16:59:59Z")));
        assert!(!h.contains(at("2026-01-05T17:00:00Z")));
        // Summer, UTC+2: Monday 2026-07-06.
        assert!(!h.contains(at("2026-07-06T05:59:00Z")));
        assert!(h.contains(at("2026-07-06T06:00:00Z")));
        assert!(!h.contains(at("2026-07-06T16:00:00Z")));
        // Saturday and Sunday.
        assert!(!h.contains(at("2026-07-04T10:00:00Z")));
        assert!(!h.contains(at("2026-07-05T10:00:00Z")));
        // Monday 2026-03-30, the first working day after the change (2026-03-29).
        assert!(h.contains(at("2026-03-30T06:00:00Z")));
        assert!(!h.contains(at("2026-03-30T05:59:00Z")));
    }

    #[test]
    fn overnight_windows_belong_to_the_day_they_open() {
        let h = Hours::parse("Fri 22:00-06:00 UTC").unwrap();
        // 2026-07-03 is a Friday.
        assert!(!h.contains(at("2026-07-03T21:59:00Z")));
        assert!(h.contains(at("2026-07-03T22:00:00Z")));
        assert!(h.contains(at("2026-07-04T05:59:00Z")));
        assert!(!h.contains(at("2026-07-04T06:00:00Z")));
        // Friday early morning belongs to Thursday's window, which is not listed.
        assert!(!h.contains(at("2026-07-03T03:00:00Z")));
    }

    #[test]
    fn ranges_lists_and_whole_days() {
        let h = Hours::parse("sat,SUN,Wed-Wed 00:00-24:00 UTC").unwrap();
        assert!(h.contains(at("2026-07-04T00:00:00Z")));
        assert!(h.contains(at("2026-07-05T23:59:59Z")));
        assert!(h.contains(at("2026-07-01T12:00:00Z")));
        assert!(!h.contains(at("2026-07-02T12:00:00Z")));
        let wrap = Hours::parse("Fri-Mon 09:00-10:00 America/New_York").unwrap();
        // Monday 2026-07-06 09:30 EDT = 13:30 UTC; Tuesday not.
        assert!(wrap.contains(at("2026-07-06T13:30:00Z")));
        assert!(!wrap.contains(at("2026-07-07T13:30:00Z")));
    }

    #[test]
    fn parse_errors_are_clear() {
        for (bad, says) in [
            ("", "DAYS HH:MM-HH:MM ZONE"),
            ("Mon-Fri 08:00-18:00", "DAYS HH:MM-HH:MM ZONE"),
            ("Mon-Fry 08:00-18:00 UTC", "days must be"),
            ("Mon-Fri 8:00-18:00 UTC", "times must be"),
            ("Mon-Fri 08:00-24:01 UTC", "times must be"),
            ("Mon-Fri 24:00-08:00 UTC", "times must be"),
            ("Mon-Fri 08:60-09:00 UTC", "times must be"),
            ("Mon-Fri 08:00 UTC", "times must be"),
            ("Mon-Fri 08:00-08:00 UTC", "the same"),
            ("Mon-Fri 08:00-18:00 Europe/Berlln", "unknown time zone"),
        ] {
            let e = Hours::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(s in "\\PC{0,40}") {
            let _ = Hours::parse(&s);
        }

        #[test]
        fn a_window_and_its_complement_cover_each_instant_once(
            start in 0u16..1440, end in 1u16..=1440, secs in 0u64..4_000_000_000,
        ) {
            prop_assume!(start != end);
            let fmt = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
            let inside = Hours::parse(&format!("Mon-Sun {}-{} Europe/Berlin", fmt(start), fmt(end))).unwrap();
            // The rest of the day: END-START, or 00:00-START when END is 24:00; none for
            // the whole day.
            let rest = match (start, end) {
                (0, 1440) => None,
                (_, 1440) => Some(format!("00:00-{}", fmt(start))),
                _ => Some(format!("{}-{}", fmt(end), fmt(start))),
            }
            .map(|t| Hours::parse(&format!("Mon-Sun {t} Europe/Berlin")).unwrap());
            let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            if let Some(rest) = rest {
                prop_assert!(inside.contains(now) != rest.contains(now));
            } else {
                prop_assert!(inside.contains(now));
            }
        }
    }
}
