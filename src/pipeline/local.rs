//! The in-process pipeline: events go to the correlator's shards through bounded channels, one
//! per shard, room reserved for a whole request before any of it is sent, so a full queue
//! refuses the request (503) and never half of it. The same hand-over drives the inline
//! shards of `sluice replay`, which apply each input the moment it is submitted.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::config::{CorrelateConfig, EventRule};
use crate::correlate::silence::Silence;
use crate::correlate::{Correlator, Inline, Input};
use crate::event::{ChangeEvent, Event};
use crate::publish::Sink;

use super::{partition, Intake, Refused, To};

/// Starts the correlator's shard tasks and returns the intake that feeds them.
pub fn spawn(
    config: &CorrelateConfig,
    event_rules: &[EventRule],
    clock: Clock,
    sink: Arc<dyn Sink>,
) -> (Correlator, Intake) {
    let (correlator, senders) = Correlator::spawn(config, clock, sink);
    let intake = Intake::with(To::Local(Local::Channels(senders.into())), event_rules);
    (correlator, intake)
}

/// Shards applied synchronously on a manual clock (`sluice replay`, tests), and the intake
/// that feeds them.
pub fn inline(
    config: &CorrelateConfig,
    event_rules: &[EventRule],
    clock: Clock,
    sink: Arc<dyn Sink>,
) -> (Arc<Mutex<Inline>>, Intake) {
    let inline = Arc::new(Mutex::new(Inline::new(config, clock, sink)));
    let intake = Intake::with(To::Local(Local::Inline(Arc::clone(&inline))), event_rules);
    (inline, intake)
}

#[derive(Clone)]
pub(super) enum Local {
    Channels(Arc<[mpsc::Sender<Input>]>),
    Inline(Arc<Mutex<Inline>>),
}

impl Local {
    pub(super) fn events(&self, events: Vec<Event>) -> Result<(), Refused> {
        self.hand_over(events, |e| &e.routing_key, Input::Event)
    }

    pub(super) fn change(&self, change: ChangeEvent) -> Result<(), Refused> {
        self.hand_over(vec![change], |c| &c.routing_key, Input::Change)
    }

    pub(super) async fn silences(&self, silences: Arc<[Silence]>) {
        match self {
            Local::Channels(senders) => {
                for s in senders.iter() {
                    let _ = s.send(Input::Silences(Arc::clone(&silences))).await;
                }
            }
            Local::Inline(inline) => inline
                .lock()
                .expect("inline correlator lock")
                .broadcast_silences(silences),
        }
    }

    fn hand_over<T>(
        &self,
        items: Vec<T>,
        routing_key: fn(&T) -> &str,
        wrap: fn(T) -> Input,
    ) -> Result<(), Refused> {
        match self {
            Local::Channels(senders) => to_channels(senders, items, routing_key, wrap),
            Local::Inline(inline) => {
                let mut inline = inline.lock().expect("inline correlator lock");
                let n = inline.shards();
                inline.apply(
                    items
                        .into_iter()
                        .map(|item| (partition(routing_key(&item), n), wrap(item))),
                );
                Ok(())
            }
        }
    }
}

/// Reserves room in every shard queue the items need, then sends them; the events go to their
/// shards as they are, with no copy of the batch.
fn to_channels<T>(
    senders: &[mpsc::Sender<Input>],
    items: Vec<T>,
    routing_key: fn(&T) -> &str,
    wrap: fn(T) -> Input,
) -> Result<(), Refused> {
    let n = senders.len();
    if let [single] = items.as_slice() {
        let permit = senders[partition(routing_key(single), n)]
            .try_reserve()
            .map_err(|_| Refused::Overloaded)?;
        permit.send(wrap(items.into_iter().next().expect("one item")));
        return Ok(());
    }
    let shards: Vec<usize> = items.iter().map(|i| partition(routing_key(i), n)).collect();
    let mut counts = vec![0usize; n];
    for &s in &shards {
        counts[s] += 1;
    }
    let mut permits = Vec::with_capacity(n);
    for (s, &count) in counts.iter().enumerate() {
        permits.push(if count == 0 {
            None
        } else {
            Some(
                senders[s]
                    .try_reserve_many(count)
                    .map_err(|_| Refused::Overloaded)?,
            )
        });
    }
    for (item, s) in items.into_iter().zip(shards) {
        permits[s]
            .as_mut()
            .and_then(Iterator::next)
            .expect("reserved")
            .send(wrap(item));
    }
    Ok(())
}
