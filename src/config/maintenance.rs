//! `[[maintenance]]`: recurring maintenance windows, silences that come back every week at the
//! same local time (`correlate::maintenance` applies them). None by default; in a window
//! `name`, `start` and `end` are required, the other values shown are the defaults:
//!
//! ```toml
//! [[maintenance]]
//! name = "db-patching"
//! matchers = []                  # every alert; e.g. [{ name = "entity.host", op = "=~", value = "db-.*" }]
//! time_zone = "UTC"              # an IANA name: "Europe/Berlin", "America/New_York"
//! days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
//! start = "02:00"                # local time, HH:MM
//! end = "04:00"                  # at or before start: the window ends the next day
//! comment = ""
//! ```
//!
//! Validates that the name is given and not used twice, the matchers parse, the time zone is
//! one the tz database knows, the days are weekday names (at least one, none twice), and
//! `start` and `end` are `HH:MM` times that differ; unknown keys are rejected.

use std::collections::HashSet;

use serde::Deserialize;

use super::{Problems, Unknown};
use crate::matchers::{Matcher, RawMatcher};

#[derive(Deserialize, Default)]
pub(super) struct RawMaintenance {
    name: Option<String>,
    matchers: Option<Vec<RawMatcher>>,
    time_zone: Option<String>,
    days: Option<Vec<String>>,
    start: Option<String>,
    end: Option<String>,
    comment: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// Weekday names as `days` takes them, Monday first.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A weekly maintenance window: while it is open (local time, in its time zone) the alerts its
/// matchers meet are silenced.
#[derive(Clone, Debug)]
pub struct MaintenanceWindow {
    pub name: String,
    pub matchers: Vec<Matcher>,
    pub time_zone: jiff::tz::TimeZone,
    /// The time zone's name, as configured.
    pub zone_name: String,
    /// Which weekdays it opens on, Monday first.
    pub days: [bool; 7],
    /// Minutes after local midnight it opens and closes (`end <= start`: the next day).
    pub start: u16,
    pub end: u16,
    pub comment: String,
}

/// Every `[[maintenance]]` entry, each reported as `maintenance[i]`.
pub(super) fn validate(
    raw: Option<Vec<RawMaintenance>>,
    p: &mut Problems,
) -> Vec<MaintenanceWindow> {
    let windows: Vec<MaintenanceWindow> = raw
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.validate(&format!("maintenance[{i}]"), p))
        .collect();
    let mut names = HashSet::new();
    for (i, w) in windows.iter().enumerate() {
        if !w.name.is_empty() && !names.insert(w.name.as_str()) {
            p.add(
                &format!("maintenance[{i}].name"),
                format!("{:?} is used twice", w.name),
            );
        }
    }
    windows
}

/// `HH:MM` as minutes after midnight.
fn clock_time(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl RawMaintenance {
    fn validate(self, at: &str, p: &mut Problems) -> MaintenanceWindow {
        p.unknown(at, &self.unknown);
        let name = self.name.unwrap_or_default();
        if name.trim().is_empty() {
            p.add(&format!("{at}.name"), "is required");
        }
        let zone_name = self.time_zone.unwrap_or_else(|| "UTC".into());
        let time_zone = jiff::tz::TimeZone::get(&zone_name).unwrap_or_else(|_| {
            p.add(
                &format!("{at}.time_zone"),
                format!("{zone_name:?} is not a time zone of the tz database (such as \"Europe/Berlin\")"),
            );
            jiff::tz::TimeZone::UTC
        });
        let mut days = [self.days.is_none(); 7];
        for day in self.days.iter().flatten() {
            match DAYS.iter().position(|d| d.eq_ignore_ascii_case(day)) {
                Some(i) if days[i] => {
                    p.add(&format!("{at}.days"), format!("{day:?} is listed twice"))
                }
                Some(i) => days[i] = true,
                None => p.add(
                    &format!("{at}.days"),
                    format!("{day:?} must be one of {}", DAYS.join(", ")),
                ),
            }
        }
        if !days.contains(&true) {
            p.add(&format!("{at}.days"), "must name at least one day");
        }
        let mut time = |key: &str, raw: Option<String>| match raw.as_deref().map(clock_time) {
            Some(Some(t)) => t,
            Some(None) => {
                let raw = raw.unwrap_or_default();
                p.add(
                    &format!("{at}.{key}"),
                    format!("{raw:?} is not a time HH:MM"),
                );
                0
            }
            None => {
                p.add(&format!("{at}.{key}"), "is required (HH:MM)");
                0
            }
        };
        let (start, end) = (time("start", self.start), time("end", self.end));
        if start == end {
            p.add(&format!("{at}.end"), "must differ from start");
        }
        MaintenanceWindow {
            name,
            matchers: p.matchers(&format!("{at}.matchers"), self.matchers.as_deref()),
            time_zone,
            zone_name,
            days,
            start,
            end,
            comment: self.comment.unwrap_or_default(),
        }
    }
}
