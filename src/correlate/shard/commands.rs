//! Operator commands on incidents (`crate::event::Command`, from the admin API or the commands
//! topic), applied in the incident's partition in order with its events:
//! - `acknowledge`: every triggered alert is acknowledged; the incident's next message is
//!   `acknowledged` (at once, as any status change);
//! - `resolve`: every open alert resolves, as if each had its resolve event; `resolved` follows;
//! - `snooze` until a time: every triggered alert is acknowledged and a `snoozed` message goes
//!   out; at that time the alerts still acknowledged and open trigger again, and the incident
//!   pages again (`updated`, status `triggered`). A later acknowledge or resolve ends the snooze.
//!
//! A command for an incident this shard does not hold open (unknown, already resolved, or of
//! another routing key) changes nothing and is counted `unknown_incident`. Each applied command
//! is remembered on the incident (`command`: action, by, reason, at) and logged.

use super::Shard;
use crate::event::{Command, CommandAction};
use crate::metrics as m;
use crate::publish::encode::Status;
use crate::publish::encode::{CommandNote, MessageKind, OutboundMessage};
use crate::time::UnixMillis;

use super::store::ResolvedBy;

impl Shard {
    /// Applies an operator command received at `now`.
    pub(super) fn apply_command(
        &mut self,
        c: Command,
        now: UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let action = c.action.as_str();
        let found = self.slots.iter().find_map(|(slot, inc)| {
            (inc.id == c.incident_id && *inc.routing_key == *c.routing_key && inc.open_alerts > 0)
                .then_some(slot)
        });
        let Some(slot) = found else {
            m::commands(action, "unknown_incident").increment(1);
            tracing::info!(incident = %c.incident_id, action, by = %c.by, "command for no open incident");
            return;
        };
        m::commands(action, "applied").increment(1);
        tracing::info!(incident = %c.incident_id, action, by = %c.by, reason = c.reason.as_deref().unwrap_or(""), "command applied");
        let inc = self.slots.get_mut(slot);
        inc.last_command = Some(CommandNote {
            action: action.into(),
            by: c.by.into(),
            reason: c.reason.map(Into::into),
            at: now,
        });
        match c.action {
            CommandAction::Acknowledge => {
                inc.snoozed_until = None;
                self.acknowledge_all(slot);
                self.changed(slot, now, out);
            }
            CommandAction::Snooze { until } => {
                self.slots.get_mut(slot).snoozed_until = Some(until);
                self.acknowledge_all(slot);
                let inc = self.slots.get_mut(slot);
                inc.updated_at = now;
                if inc.published {
                    self.emit(slot, MessageKind::Snoozed, now, out);
                }
                self.review(slot, now, out);
            }
            CommandAction::Resolve => {
                self.slots.get_mut(slot).snoozed_until = None;
                let open: Vec<u32> = (0..self.slots.get(slot).alerts.len() as u32)
                    .filter(|&i| self.slots.get(slot).alerts[i as usize].status != Status::Resolved)
                    .collect();
                for index in open {
                    if self.slots.try_get(slot).is_some() {
                        self.resolve(slot, index, ResolvedBy::Command, now, out);
                    }
                }
            }
        }
    }

    /// Acknowledges every triggered alert of the incident (no event counted).
    fn acknowledge_all(&mut self, slot: u32) {
        let inc = self.slots.get_mut(slot);
        for alert in inc
            .alerts
            .iter_mut()
            .filter(|a| a.status == Status::Triggered)
        {
            alert.status = Status::Acknowledged;
            inc.acked_alerts += 1;
        }
    }

    /// Ends the incident's snooze once `now` reaches it: its acknowledged open alerts trigger
    /// again. Returns whether it ended.
    pub(super) fn end_snooze(&mut self, slot: u32, now: UnixMillis) -> bool {
        let inc = self.slots.get_mut(slot);
        if inc.snoozed_until.is_none_or(|until| now < until) {
            return false;
        }
        inc.snoozed_until = None;
        for alert in inc
            .alerts
            .iter_mut()
            .filter(|a| a.status == Status::Acknowledged)
        {
            alert.status = Status::Triggered;
            inc.acked_alerts -= 1;
        }
        inc.updated_at = now;
        inc.dirty = true;
        true
    }
}
