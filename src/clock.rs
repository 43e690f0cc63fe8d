//! Time as the business rules see it: the hub's "now" (the real clock, or `--now`),
//! dates in Europe/London, and the textual forms used in files.
//!
//! Owns no state beyond the instant it was given. Must never be used for the
//! readiness check of inbound files (SPEC §1.2), which uses the real clock.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Europe::London;

/// The hub's current time for one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clock {
    now: DateTime<Utc>,
    /// Given (`--now`), not read from the real clock.
    pretended: bool,
}

impl Clock {
    /// A clock fixed at `now` (whole seconds: every written time has second precision).
    pub(crate) fn at(now: DateTime<Utc>) -> Clock {
        let now = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        Clock {
            now,
            pretended: true,
        }
    }

    /// The real clock.
    pub(crate) fn real() -> Clock {
        Clock {
            pretended: false,
            ..Clock::at(Utc::now())
        }
    }

    /// The time `--now` pretends, when it does (the audit log keeps it beside the
    /// real time, never instead of it).
    pub(crate) fn pretended(&self) -> Option<String> {
        self.pretended.then(|| self.rfc3339())
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Today's date in Europe/London.
    pub(crate) fn today(&self) -> NaiveDate {
        london_date(self.now)
    }

    /// `2026-11-21T10:00:00Z`
    pub(crate) fn rfc3339(&self) -> String {
        rfc3339(self.now)
    }

    /// `20261121T100000Z`, the time part of outbound file names.
    pub(crate) fn file_stamp(&self) -> String {
        self.now.format("%Y%m%dT%H%M%SZ").to_string()
    }
}

/// The instant a local Europe/London time happens on a date.
pub(crate) fn london_instant(day: NaiveDate, at: NaiveTime) -> DateTime<Utc> {
    let local = day.and_time(at);
    match London.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        chrono::LocalResult::None => {
            // In the spring gap: the same time one hour on (the clocks went forward).
            let later = local + Duration::hours(1);
            London
                .from_local_datetime(&later)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&local))
        }
    }
}

/// The calendar date in Europe/London at an instant.
pub(crate) fn london_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&London).date_naive()
}

/// RFC 3339 in UTC with a `Z` and whole seconds.
pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 timestamp that carries an offset or `Z`.
pub fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Parses a strict `YYYY-MM-DD` date.
pub(crate) fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.trim().as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

/// The day a person born on `dob` turns `years` old. Someone born on 29 February
/// reaches that age on 1 March in a year that has no 29 February (the rule in
/// England and Wales).
pub(crate) fn birthday(dob: NaiveDate, years: i32) -> NaiveDate {
    let year = dob.year() + years;
    NaiveDate::from_ymd_opt(year, dob.month(), dob.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, 3, 1))
        .unwrap_or(dob)
}

/// `date + days`, saturating at the calendar's end.
pub(crate) fn add_days(date: NaiveDate, days: i64) -> NaiveDate {
    date.checked_add_signed(Duration::days(days))
        .unwrap_or(NaiveDate::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn london_date_follows_daylight_saving() {
        // 23:30Z on 2026-07-01 is 00:30 BST on 2 July; in winter UTC = London.
        let summer = parse_rfc3339("2026-07-01T23:30:00Z").unwrap();
        assert_eq!(london_date(summer).to_string(), "2026-07-02");
        let winter = parse_rfc3339("2026-12-01T23:30:00Z").unwrap();
        assert_eq!(london_date(winter).to_string(), "2026-12-01");
    }

    #[test]
    fn leap_day_birthday_falls_on_first_of_march() {
        let dob = NaiveDate::from_ymd_opt(2008, 2, 29).unwrap();
        assert_eq!(birthday(dob, 18).to_string(), "2026-03-01");
        assert_eq!(birthday(dob, 16).to_string(), "2024-02-29");
    }

    #[test]
    fn strict_dates_only() {
        assert!(parse_date("2026-11-21").is_some());
        for bad in [
            "2026-1-21",
            "21/11/2026",
            "2026-02-30",
            "20261121",
            "2026-11-21T00:00",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn clock_drops_subseconds() {
        let c = Clock::at(parse_rfc3339("2026-11-21T10:00:00.750+01:00").unwrap());
        assert_eq!(c.rfc3339(), "2026-11-21T09:00:00Z");
        assert_eq!(c.file_stamp(), "20261121T090000Z");
    }
}
