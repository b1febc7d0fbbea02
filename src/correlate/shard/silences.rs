//! Silences in force and maintenance windows, and which open alerts they silence.
//!
//! Invariants: an open alert's `silenced` flag is what the silences in force and the open
//! maintenance windows say of it, as decided when it opened and re-decided for every open
//! alert whenever the silences change and at every start and end of a silence or window (a
//! `Timer::Silences` is set at each one still to come; for the windows, one at a time: the
//! next change of any of them, scheduled from the first `advance` on).

use std::sync::Arc;

use crate::publish::encode::OutboundMessage;
use crate::time::UnixMillis;

use super::super::incident::{Alert, AlertView};
use super::super::silence::Silence;
use super::super::timers::{Timer, Timers};
use super::Shard;
use crate::config::MaintenanceWindow;

pub(super) struct Silences {
    in_force: Arc<[Silence]>,
    windows: Arc<[MaintenanceWindow]>,
    /// When the windows' next change is scheduled (`None`: not yet).
    windows_next: Option<UnixMillis>,
    /// Which windows are open from `.0` until the next change (read instead of working the
    /// time zones out for every alert).
    windows_open: (UnixMillis, Vec<bool>),
}

impl Silences {
    pub(super) fn new() -> Self {
        Silences {
            in_force: Arc::from(Vec::new()),
            windows: Arc::from(Vec::new()),
            windows_next: None,
            windows_open: (UnixMillis::NEVER, Vec::new()),
        }
    }

    pub(super) fn set_windows(&mut self, windows: Arc<[MaintenanceWindow]>) {
        self.windows = windows;
        self.windows_next = None;
        self.windows_open = (UnixMillis::NEVER, Vec::new());
    }

    /// Whether there are windows whose first change is not scheduled yet.
    pub(super) fn windows_unstarted(&self) -> bool {
        !self.windows.is_empty() && self.windows_next.is_none()
    }

    /// Schedules the windows' first change after `now`, once.
    pub(super) fn start_windows(&mut self, now: UnixMillis, timers: &mut Timers) {
        if self.windows_next.is_none() {
            self.schedule_windows(now, timers);
        }
    }

    /// A `Timer::Silences` fired at `at`: when it was the windows' change, schedules the next.
    pub(super) fn windows_fired(&mut self, at: UnixMillis, timers: &mut Timers) {
        if self.windows_next.is_some_and(|next| next <= at) {
            self.schedule_windows(at, timers);
        }
    }

    fn schedule_windows(&mut self, after: UnixMillis, timers: &mut Timers) {
        let next = self
            .windows
            .iter()
            .filter_map(|w| w.next_change(after))
            .min();
        if let Some(at) = next {
            timers.schedule(at, Timer::Silences);
        }
        self.windows_next = Some(next.unwrap_or(UnixMillis::NEVER));
        self.windows_open = (
            after,
            self.windows.iter().map(|w| w.open_at(after)).collect(),
        );
    }

    /// Whether window `i` is open at `now`: as worked out at the last change when `now` is
    /// before the next one, else worked out now.
    fn window_open(&self, i: usize, now: UnixMillis) -> bool {
        let (from, open) = &self.windows_open;
        let until = self.windows_next.unwrap_or_default();
        match *from <= now && now < until {
            true => open[i],
            false => self.windows[i].open_at(now),
        }
    }

    /// Replaces the silences in force, with a timer at each start or end still to come.
    pub(super) fn replace(
        &mut self,
        silences: Arc<[Silence]>,
        now: UnixMillis,
        timers: &mut Timers,
    ) {
        for s in silences.iter() {
            for at in [s.starts_at, s.ends_at] {
                if at > now {
                    timers.schedule(at, Timer::Silences);
                }
            }
        }
        self.in_force = silences;
    }

    pub(super) fn silenced(&self, routing_key: &str, alert: &Alert, now: UnixMillis) -> bool {
        let view = AlertView { routing_key, alert };
        self.in_force.iter().any(|s| s.silences(&view, now))
            || self.windows.iter().enumerate().any(|(i, w)| {
                crate::matchers::all_match(&w.matchers, &view) && self.window_open(i, now)
            })
    }
}

impl Shard {
    /// Re-decides which open alerts are silenced; each incident with a change is reviewed.
    pub(super) fn reevaluate_silences(&mut self, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        for slot in 0..self.slots.end() {
            let Some(inc) = self.slots.try_get(slot) else {
                continue;
            };
            let changed: Vec<(u32, bool)> = inc
                .alerts
                .iter()
                .enumerate()
                .filter(|(_, a)| a.is_open())
                .filter_map(|(i, a)| {
                    let now_silenced = self.silences.silenced(&inc.routing_key, a, now);
                    (now_silenced != a.silenced).then_some((i as u32, now_silenced))
                })
                .collect();
            if changed.is_empty() {
                continue;
            }
            for (index, silenced) in changed {
                let inhibited = self.slots.get(slot).alerts[index as usize].inhibited;
                self.set_suppression(slot, index, silenced, inhibited);
            }
            self.mark_dirty(slot, now, out);
        }
    }
}
