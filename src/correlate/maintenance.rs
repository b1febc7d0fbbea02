//! When a weekly maintenance window (`[[maintenance]]`) is open. Its local times are read in
//! its time zone on each date, so it follows daylight saving time: a 02:00-04:00 window is
//! 02:00-04:00 on the wall clock in summer and in winter. A local time that a clock change
//! skips is read as the time after the gap, one it repeats as its first occurrence (RFC 5545's
//! and jiff's "compatible" reading).

use crate::config::MaintenanceWindow;
use crate::time::UnixMillis;

/// Days looked at around an instant: the day before (a window past midnight) to a week ahead.
const DAYS_AROUND: std::ops::RangeInclusive<i64> = -1..=8;

impl MaintenanceWindow {
    /// Its openings near `at`: `[opens, closes)` on every listed day from the day before `at`
    /// to a week after it.
    fn spans(&self, at: UnixMillis) -> Vec<(UnixMillis, UnixMillis)> {
        let Ok(ts) = jiff::Timestamp::from_millisecond(at.0.min(i64::MAX as u64) as i64) else {
            return Vec::new();
        };
        let today = ts.to_zoned(self.time_zone.clone()).date();
        let instant = |date: jiff::civil::Date, minutes: u16| {
            let local = date.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0);
            let zoned = local.to_zoned(self.time_zone.clone()).ok()?;
            Some(UnixMillis(zoned.timestamp().as_millisecond().max(0) as u64))
        };
        DAYS_AROUND
            .filter_map(|offset| {
                let date = today.checked_add(jiff::Span::new().days(offset)).ok()?;
                let weekday = date.weekday().to_monday_zero_offset() as usize;
                if !self.days[weekday] {
                    return None;
                }
                let end_date = match self.end <= self.start {
                    true => date.tomorrow().ok()?,
                    false => date,
                };
                Some((instant(date, self.start)?, instant(end_date, self.end)?))
            })
            .collect()
    }

    /// Whether it is open at `at`.
    pub fn open_at(&self, at: UnixMillis) -> bool {
        self.spans(at)
            .iter()
            .any(|&(opens, closes)| opens <= at && at < closes)
    }

    /// When it next opens or closes after `at` (within a week and a day, if it opens at all).
    pub fn next_change(&self, at: UnixMillis) -> Option<UnixMillis> {
        self.spans(at)
            .into_iter()
            .flat_map(|(opens, closes)| [opens, closes])
            .filter(|&t| t > at)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_timestamp;

    fn window(zone: &str, days: &[usize], start: u16, end: u16) -> MaintenanceWindow {
        let mut on = [false; 7];
        for &d in days {
            on[d] = true;
        }
        MaintenanceWindow {
            name: "w".into(),
            matchers: Vec::new(),
            time_zone: jiff::tz::TimeZone::get(zone).unwrap(),
            zone_name: zone.into(),
            days: on,
            start,
            end,
            comment: String::new(),
        }
    }

    fn t(s: &str) -> UnixMillis {
        match parse_timestamp(s) {
            Some(crate::time::Timestamp::At(t)) => t,
            _ => panic!("{s}"),
        }
    }

    #[test]
    fn a_weekly_window_opens_on_its_days_at_local_time_across_daylight_saving() {
        // Saturdays 02:00-04:00 in Berlin: UTC+1 in winter, UTC+2 in summer.
        let w = window("Europe/Berlin", &[5], 120, 240);
        // Saturday 2026-01-10 (winter): 01:00Z-03:00Z.
        assert!(!w.open_at(t("2026-01-10T00:59:59Z")));
        assert!(w.open_at(t("2026-01-10T01:00:00Z")));
        assert!(w.open_at(t("2026-01-10T02:59:59Z")));
        assert!(!w.open_at(t("2026-01-10T03:00:00Z")));
        assert!(!w.open_at(t("2026-01-11T01:30:00Z")), "a Sunday");
        // Saturday 2026-07-11 (summer): 00:00Z-02:00Z.
        assert!(w.open_at(t("2026-07-11T00:00:00Z")));
        assert!(!w.open_at(t("2026-07-11T02:00:00Z")));
        assert_eq!(
            w.next_change(t("2026-01-07T12:00:00Z")),
            Some(t("2026-01-10T01:00:00Z"))
        );
        assert_eq!(
            w.next_change(t("2026-01-10T01:00:00Z")),
            Some(t("2026-01-10T03:00:00Z"))
        );
        assert_eq!(
            w.next_change(t("2026-01-10T03:00:00Z")),
            Some(t("2026-01-17T01:00:00Z")),
            "a week later"
        );
    }

    #[test]
    fn a_window_past_midnight_ends_the_next_day_and_a_skipped_hour_reads_as_after_the_gap() {
        // Fridays 22:00 to 06:00 UTC: open Saturday morning, not Saturday night.
        let w = window("UTC", &[4], 22 * 60, 6 * 60);
        assert!(w.open_at(t("2026-03-06T23:00:00Z")));
        assert!(w.open_at(t("2026-03-07T05:59:00Z")));
        assert!(!w.open_at(t("2026-03-07T06:00:00Z")));
        assert!(!w.open_at(t("2026-03-07T23:00:00Z")));
        // New York skips 02:00-03:00 on Sunday 2026-03-08: a 02:30 start opens at 03:30 EDT.
        let ny = window("America/New_York", &[6], 150, 300);
        assert_eq!(
            ny.next_change(t("2026-03-08T00:00:00Z")),
            Some(t("2026-03-08T07:30:00Z"))
        );
        let never = window("UTC", &[], 0, 60);
        assert_eq!(never.next_change(t("2026-03-08T00:00:00Z")), None);
    }
}
