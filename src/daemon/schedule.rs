//! The daemon's schedule (SPEC §5.4) in Europe/London time: pure functions from
//! "now" and what ran last to what is due, so that they can be tested across
//! daylight-saving changes without waiting for one.
//!
//! A daily job is due once per Europe/London date, at its local time: on the spring
//! change a time that does not exist (01:30 on the last Sunday of March) runs at the
//! same wall-clock offset after the gap; on the autumn change a time that exists
//! twice runs at its first occurrence; and the date it last ran for is kept, so it
//! is never skipped and never doubled.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use crate::clock::{london_date, london_instant};

/// The date a daily job at `at` is due for now, if it has not run for it yet.
pub(crate) fn daily_due(
    now: DateTime<Utc>,
    at: NaiveTime,
    last_day: Option<NaiveDate>,
) -> Option<NaiveDate> {
    let today = london_date(now);
    if last_day.is_some_and(|d| d >= today) {
        return None;
    }
    (now >= london_instant(today, at)).then_some(today)
}

/// When a daily job at `at` will next be due (now, if it is overdue).
pub(crate) fn daily_next(
    now: DateTime<Utc>,
    at: NaiveTime,
    last_day: Option<NaiveDate>,
) -> DateTime<Utc> {
    let today = london_date(now);
    if last_day.is_some_and(|d| d >= today) {
        london_instant(today.succ_opt().unwrap_or(today), at)
    } else {
        london_instant(today, at).max(now)
    }
}

/// Whether an interval job is due.
pub(crate) fn interval_due(
    now: DateTime<Utc>,
    every: Duration,
    last: Option<DateTime<Utc>>,
) -> bool {
    match last {
        None => true,
        Some(last) => (now - last)
            .to_std()
            .map(|since| since >= every)
            .unwrap_or(false),
    }
}

/// When an interval job will next be due.
pub(crate) fn interval_next(
    now: DateTime<Utc>,
    every: Duration,
    last: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    match last {
        None => now,
        Some(last) => {
            (last + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX)).max(now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::parse_rfc3339;

    fn t(s: &str) -> DateTime<Utc> {
        parse_rfc3339(s).unwrap()
    }

    fn hm(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    /// Ticks a daily job every `step` minutes from `start` to `end`; returns the
    /// instants it ran at.
    fn simulate(at: &str, start: &str, end: &str, step: i64) -> Vec<DateTime<Utc>> {
        let mut now = t(start);
        let end = t(end);
        let mut last = None;
        let mut runs = Vec::new();
        while now <= end {
            if let Some(day) = daily_due(now, hm(at), last) {
                last = Some(day);
                runs.push(now);
            }
            now += chrono::Duration::minutes(step);
        }
        runs
    }

    #[test]
    fn spring_forward_neither_skips_nor_doubles() {
        // 2026-03-29: 01:00 GMT becomes 02:00 BST; 01:30 does not exist that day.
        let runs = simulate("01:30", "2026-03-27T00:00:00Z", "2026-03-31T00:00:00Z", 1);
        let days: Vec<String> = runs.iter().map(|r| london_date(*r).to_string()).collect();
        assert_eq!(
            days,
            ["2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30"]
        );
        assert_eq!(
            runs[2],
            t("2026-03-29T01:30:00Z"),
            "02:30 BST, just after the gap"
        );
        assert_eq!(runs[3], t("2026-03-30T00:30:00Z"), "01:30 BST");
    }

    #[test]
    fn fall_back_neither_skips_nor_doubles() {
        // 2026-10-25: 02:00 BST becomes 01:00 GMT; 01:30 happens twice that day.
        let runs = simulate("01:30", "2026-10-23T00:00:00Z", "2026-10-27T00:00:00Z", 1);
        let days: Vec<String> = runs.iter().map(|r| london_date(*r).to_string()).collect();
        assert_eq!(
            days,
            ["2026-10-23", "2026-10-24", "2026-10-25", "2026-10-26"]
        );
        assert_eq!(runs[2], t("2026-10-25T00:30:00Z"), "the first 01:30 (BST)");
        assert_eq!(runs[3], t("2026-10-26T01:30:00Z"), "01:30 GMT");
    }

    #[test]
    fn a_daemon_down_at_the_time_catches_up_the_same_day_only() {
        let runs = simulate("03:00", "2026-11-20T10:00:00Z", "2026-11-22T04:00:00Z", 60);
        let got: Vec<String> = runs.iter().map(|r| r.to_rfc3339()).collect();
        assert_eq!(
            got,
            [
                "2026-11-20T10:00:00+00:00",
                "2026-11-21T03:00:00+00:00",
                "2026-11-22T03:00:00+00:00"
            ]
        );
    }

    #[test]
    fn next_daily_time_is_today_or_tomorrow() {
        let now = t("2026-11-21T02:00:00Z");
        assert_eq!(
            daily_next(now, hm("03:00"), None),
            t("2026-11-21T03:00:00Z")
        );
        let today = london_date(now);
        assert_eq!(
            daily_next(now, hm("03:00"), Some(today)),
            t("2026-11-22T03:00:00Z")
        );
        assert_eq!(
            daily_next(t("2026-11-21T05:00:00Z"), hm("03:00"), None),
            t("2026-11-21T05:00:00Z"),
            "overdue: now"
        );
    }

    #[test]
    fn intervals() {
        let now = t("2026-11-21T10:00:00Z");
        let every = Duration::from_secs(900);
        assert!(interval_due(now, every, None));
        assert!(!interval_due(now, every, Some(t("2026-11-21T09:50:00Z"))));
        assert!(interval_due(now, every, Some(t("2026-11-21T09:45:00Z"))));
        assert_eq!(
            interval_next(now, every, Some(t("2026-11-21T09:50:00Z"))),
            t("2026-11-21T10:05:00Z")
        );
    }
}
