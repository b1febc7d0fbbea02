//! The in-process pipeline: events go to the correlator's shards through bounded channels, one
//! per shard, room reserved for a whole request before any of it is sent, so a full queue
//! refuses the request (503) and never half of it. The same hand-over drives the inline
//! shards of `sluice replay`, which apply each input the moment it is submitted.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::config::CorrelateConfig;
use crate::correlate::silence::Silence;
use crate::correlate::{Correlator, Inline, Input};
use crate::event::{ChangeEvent, Event};
use crate::publish::Sink;

use super::{partition, Intake, Refused, To};

/// Starts the correlator's shard tasks and returns the intake that feeds them.
pub fn spawn(config: &CorrelateConfig, clock: Clock, sink: Arc<dyn Sink>) -> (Correlator, Intake) {
    let (correlator, senders) = Correlator::spawn(config, clock, sink, partition);
    let intake = Intake::with(To::Local(Local::Channels(senders.into())));
    (correlator, intake)
}

/// Shards applied synchronously on a manual clock (`sluice replay`, tests), and the intake
/// that feeds them.
pub fn inline(
    config: &CorrelateConfig,
    clock: Clock,
    sink: Arc<dyn Sink>,
) -> (Arc<Mutex<Inline>>, Intake) {
    let inline = Arc::new(Mutex::new(Inline::new(config, clock, sink, partition)));
    let intake = Intake::with(To::Local(Local::Inline(Arc::clone(&inline))));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::event::Action;
    use crate::integration::Integration;
    use crate::publish::encode::OutboundMessage;
    use crate::publish::MemorySink;
    use crate::time::UnixMillis;
    use serde_json::Value;

    const SHARDS: usize = 4;

    /// Sends `db-*` sources of any routing key to `dba`, and drops `noise`.
    fn config() -> Config {
        let mut config = Config::from_toml(
            r#"
            [[correlate.rules]]
            group_wait = "10s"
            group_interval = "10s"
            pause_transient = "0s"
            [[event_rules]]
            matchers = [{ name = "source", op = "=~", value = "db-.*" }]
            set_routing_key = "dba"
            [[event_rules]]
            matchers = [{ name = "source", op = "=", value = "noise" }]
            drop = true
            "#,
            Vec::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        config.correlate.shards = SHARDS;
        config
    }

    /// A sender's routing key whose shard is not `dba`'s, so the event must travel.
    fn sender_key() -> String {
        (0..)
            .map(|i| format!("web-{i}"))
            .find(|k| partition(k, SHARDS) != partition("dba", SHARDS))
            .expect("some key lands elsewhere")
    }

    /// A PagerDuty-style event: a trigger with its source, or a bare acknowledge / resolve.
    fn event(rk: &str, action: Action, source: &str, at: u64) -> Event {
        let mut e = Event::new(
            Integration::PagerDuty,
            action,
            rk.into(),
            "disk-full".into(),
            UnixMillis(at),
        );
        e.source = source.into();
        e
    }

    /// Each message's `(routing_key, type, status, open_alert_count)`.
    /// Shard tasks stamp each message with its send time; inline shards (`sluice replay`) do
    /// not.
    fn messages(sink: &MemorySink) -> Vec<(String, String, String, u64)> {
        summary(&sink.take())
    }

    fn summary(taken: &[OutboundMessage]) -> Vec<(String, String, String, u64)> {
        taken
            .iter()
            .map(|m| {
                let b: Value = serde_json::from_slice(&m.body).expect("json");
                assert_eq!(b["published_at"].is_string(), m.published_at.is_some());
                let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
                (
                    s("routing_key"),
                    s("type"),
                    s("status"),
                    b["open_alert_count"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_bare_resolve_follows_its_trigger_to_the_key_the_rules_gave_it() {
        let config = config();
        let rk = sender_key();
        let sink = Arc::new(MemorySink::default());
        let clock = Clock::manual(UnixMillis(0));
        let (inline, intake) = inline(&config.correlate, clock.clone(), sink.clone());
        let submit = |e: Event| intake.submit_events(vec![e]);
        submit(event(&rk, Action::Trigger, "db-1", 0))
            .await
            .unwrap();
        // Dropped by a rule before it reaches any alert: changes nothing.
        submit(event(&rk, Action::Trigger, "noise", 0))
            .await
            .unwrap();
        inline.lock().unwrap().advance_to(UnixMillis(10_000));
        assert_eq!(
            messages(&sink),
            vec![("dba".into(), "opened".into(), "triggered".into(), 1)]
        );
        // PagerDuty acknowledges and resolves carry no source: no rule matches them.
        clock.set(UnixMillis(11_000));
        submit(event(&rk, Action::Acknowledge, "", 11_000))
            .await
            .unwrap();
        clock.set(UnixMillis(12_000));
        submit(event(&rk, Action::Resolve, "", 12_000))
            .await
            .unwrap();
        let mut inline = inline.lock().unwrap();
        inline.finish();
        assert_eq!(
            messages(&sink),
            vec![
                ("dba".into(), "updated".into(), "acknowledged".into(), 1),
                ("dba".into(), "resolved".into(), "resolved".into(), 0)
            ]
        );
        assert_eq!(inline.stats().dropped, 0, "nothing missed its alert");
    }

    #[tokio::test]
    async fn shard_tasks_hand_re_routed_events_to_each_other_and_lose_none_on_stop() {
        let config = config();
        let rk = sender_key();
        let sink = Arc::new(MemorySink::default());
        let (correlator, intake) = spawn(
            &config.correlate,
            Clock::manual(UnixMillis(0)),
            sink.clone(),
        );
        // Many alerts, each triggered and resolved at once: every resolve must find its
        // trigger on the other shard, even as the correlator stops right after.
        let mut events = Vec::new();
        for i in 0..200u64 {
            let mut t = event(&rk, Action::Trigger, "db-1", i);
            t.dedup_key = format!("k{i}");
            let mut r = event(&rk, Action::Resolve, "", i);
            r.dedup_key = format!("k{i}");
            events.extend([t, r]);
        }
        intake.submit_events(events).await.unwrap();
        correlator.shutdown().await;
        let taken = sink.take();
        assert!(taken.iter().all(|m| m.published_at.is_some()));
        let out = summary(&taken);
        assert!(!out.is_empty());
        assert!(out.iter().all(|(k, _, _, _)| k == "dba"), "{out:?}");
        let last = out.last().expect("a message");
        assert_eq!((last.2.as_str(), last.3), ("resolved", 0), "{out:?}");
    }
}
