//! Publication: what each incident says and when. [`Shard::review`] makes every decision,
//! [`Shard::emit`] renders what it decides, [`Shard::wake_at`] sets the incident's timer and
//! [`Shard::close`] ends an incident, published or held.
//!
//! Invariants: an incident's `seq` is the number of messages it has published; `published`
//! says whether its `opened` went out, and `published_severity`, `published_status` and
//! `last_published_at` are those of its last message other than `flapping`; `dirty` says a
//! change is not yet published. A nonzero `timer` is the token of the one incident timer that
//! counts, due at `timer_at`; any other fires stale and is ignored. An incident closes (its
//! slot freed) exactly when reviewed with no open alert and not flapping, after its `resolved`
//! if it published anything.

use std::sync::Arc;

use crate::publish::encode::{MessageKind, OutboundMessage, Status};
use crate::time::UnixMillis;

use super::super::timers::Timer;
use super::{Held, Shard, Stats};

/// Every message of the shard goes out here, counted.
pub(super) fn publish(stats: &mut Stats, out: &mut Vec<OutboundMessage>, message: OutboundMessage) {
    stats.messages[message.kind.index()] += 1;
    out.push(message);
}

impl Shard {
    /// Something a responder cares about changed.
    pub(super) fn changed(&mut self, slot: u32, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        self.slots.get_mut(slot).updated_at = now;
        self.mark_dirty(slot, now, out);
    }

    /// The incident has something to publish.
    pub(super) fn mark_dirty(
        &mut self,
        slot: u32,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        self.slots.get_mut(slot).dirty = true;
        self.review(slot, now, out);
    }

    /// Decides what, if anything, the incident publishes now, and when to look again:
    /// - all alerts resolved: `resolved` (after `opened` if it never went out), or nothing when
    ///   it resolved within `pause_transient`, never reached `min_alerts`, or was suppressed
    ///   throughout; held while flapping;
    /// - not yet published: `opened` once `group_wait` (and `pause_transient`) passed, at least
    ///   `min_alerts` alerts gathered and one open alert is neither silenced nor inhibited;
    /// - published: a pending change goes out at once if the severity rose or the status moved
    ///   between triggered and acknowledged, else at most once per `group_interval`; held while
    ///   flapping (one `flapping` message) or while every open alert is suppressed.
    pub(super) fn review(&mut self, slot: u32, now: UnixMillis, out: &mut Vec<OutboundMessage>) {
        let rules = Arc::clone(&self.rules);
        let inc = self.slots.get_mut(slot);
        let config = &rules[inc.rule as usize].config;
        if inc.flapping_until.is_some_and(|until| now >= until) {
            inc.flapping_until = None;
            inc.flap_announced = false;
        }
        let flapping = inc.flapping_until;
        if flapping.is_some() && inc.published && !inc.flap_announced {
            inc.flap_announced = true;
            self.emit(slot, MessageKind::Flapping, now, out);
        }
        self.end_snooze(slot, now);
        if let Some(until) = self.slots.get(slot).snoozed_until {
            self.wake_at(slot, until);
        }
        let inc = self.slots.get_mut(slot);
        if inc.open_alerts == 0 {
            if let Some(until) = flapping {
                self.wake_at(slot, until);
                return;
            }
            if inc.published {
                inc.resolved_at = Some(now);
                self.emit(slot, MessageKind::Resolved, now, out);
                self.close(slot, None);
                return;
            }
            let transient = now < inc.pause_end;
            let held = if transient {
                Some(Held::Transient)
            } else if inc.gathered == 0 {
                Some(Held::Suppressed)
            } else if inc.gathered < config.min_alerts {
                Some(Held::Threshold)
            } else {
                None
            };
            if held.is_none() {
                inc.resolved_at = Some(now);
                self.emit(slot, MessageKind::Opened, now, out);
                self.emit(slot, MessageKind::Resolved, now, out);
            }
            self.close(slot, held);
            return;
        }
        if !inc.published {
            if now < inc.publish_at {
                let at = inc.publish_at;
                if at != UnixMillis::NEVER {
                    self.wake_at(slot, at);
                }
                return;
            }
            if inc.gathered < config.min_alerts || inc.visible() == 0 {
                return;
            }
            self.emit(slot, MessageKind::Opened, now, out);
            if let Some(until) = flapping {
                self.emit(slot, MessageKind::Flapping, now, out);
                self.slots.get_mut(slot).flap_announced = true;
                self.wake_at(slot, until);
            }
            return;
        }
        if let Some(until) = flapping {
            self.wake_at(slot, until);
            return;
        }
        if !inc.dirty || inc.visible() == 0 {
            return;
        }
        let urgent =
            inc.severity() > inc.published_severity || inc.status() != inc.published_status;
        let due = inc.last_published_at.saturating_add(config.group_interval);
        if urgent || due <= now {
            let acked = inc.status() == Status::Acknowledged;
            let kind = match acked && inc.published_status != Status::Acknowledged {
                true => MessageKind::Acknowledged,
                false => MessageKind::Updated,
            };
            self.emit(slot, kind, now, out);
        } else {
            self.wake_at(slot, due);
        }
    }

    /// After a reload of the rules: an incident not yet published is held by its rule's
    /// `group_wait` as it is now, when that ends sooner than the hold it had (a longer one does
    /// not hold back what was due).
    pub fn rules_reloaded(&mut self) {
        let rules = Arc::clone(&self.rules);
        let due: Vec<(u32, UnixMillis)> = self
            .slots
            .iter()
            .filter(|(_, inc)| !inc.published && inc.publish_at != UnixMillis::NEVER)
            .map(|(slot, inc)| {
                let wait = rules[inc.rule as usize].config.group_wait;
                let hold = inc.pause_end.max(inc.opened_at.saturating_add(wait));
                (slot, inc.publish_at.min(hold))
            })
            .collect();
        for (slot, at) in due {
            self.slots.get_mut(slot).publish_at = at;
            self.wake_at(slot, at);
        }
    }

    /// Makes sure the incident is reviewed again at `at` (keeps an earlier or equal timer).
    fn wake_at(&mut self, slot: u32, at: UnixMillis) {
        let inc = self.slots.get_mut(slot);
        if inc.timer != 0 && inc.timer_at <= at {
            return;
        }
        let token = self.timers.token();
        inc.timer = token;
        inc.timer_at = at;
        self.timers.schedule(at, Timer::Incident { slot, token });
    }

    /// Publishes the incident's next message, of `kind`.
    pub(super) fn emit(
        &mut self,
        slot: u32,
        kind: MessageKind,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let changes = if self.change_window.is_zero() {
            Vec::new()
        } else {
            self.changes
                .matching(self.slots.get(slot), self.change_window, now)
        };
        let inc = self.slots.get_mut(slot);
        inc.seq += 1;
        let message = inc.to_message(
            kind,
            &self.rules[inc.rule as usize],
            self.caps.max_alerts_per_message,
            &changes,
            now,
        );
        publish(&mut self.stats, out, message);
        if kind == MessageKind::Flapping {
            self.metrics.flapping.increment(1);
            return;
        }
        inc.published = true;
        inc.published_severity = inc.severity();
        inc.published_status = inc.status();
        inc.last_published_at = now;
        inc.dirty = false;
        inc.timer = 0;
    }

    /// Frees the incident's slot, counted as resolved or as held for `held`.
    fn close(&mut self, slot: u32, held: Option<Held>) {
        self.unindex_group(slot);
        let inc = self.slots.take(slot);
        self.usage.incident_closed(&inc.routing_key);
        match held {
            None => self.metrics.resolved.increment(1),
            Some(h) => {
                self.metrics.held[h as usize].increment(1);
                match h {
                    Held::Transient => self.stats.transient += inc.event_count,
                    Held::Threshold => self.stats.threshold += inc.event_count,
                    Held::Suppressed => {}
                }
            }
        }
        self.metrics.incidents_open.decrement(1.0);
    }
}
