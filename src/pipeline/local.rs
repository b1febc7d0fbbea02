//! The in-process pipeline: events go to the correlator's shards through their bounded queues
//! (`correlate::queue`), a request's events for one shard in one send, room reserved for the
//! whole request before any of it is sent, so a full queue refuses the request (503) and never
//! half of it. With fair admission (`super::fair`), a routing key over its share of a shard
//! queue past half full (seven eighths while it is the only key queued there, an equal part of
//! the half once others are) is refused the same way while other keys are still taken. The same
//! hand-over drives the inline shards of `sluice replay`, which apply each input the moment it
//! is submitted.

use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::config::CorrelateConfig;
use crate::correlate::queue::{self, QueueRx, QueueTx};
use crate::correlate::silence::Silence;
use crate::correlate::{Correlator, Inline, Input};
use crate::event::{ChangeEvent, Command, Event};
use crate::publish::Sink;

use super::fair::FairShare;
use super::{key_hash, partition, Intake, Refused, To};
use crate::correlate::state_dir::{StateDir, StateError};

/// Starts the correlator's shard tasks and returns the intake that feeds them, with fair
/// admission.
pub fn spawn(config: &CorrelateConfig, clock: Clock, sink: Arc<dyn Sink>) -> (Correlator, Intake) {
    spawn_with(config, true, clock, sink)
}

/// [`spawn`], with fair admission (`fair`, `limits.fair_admission`) or without.
pub fn spawn_with(
    config: &CorrelateConfig,
    fair: bool,
    clock: Clock,
    sink: Arc<dyn Sink>,
) -> (Correlator, Intake) {
    spawn_saved(config, fair, clock, sink, None).expect("no state directory, nothing to read")
}

/// [`spawn_with`], keeping the correlator's state in `state` across restarts when given.
pub fn spawn_saved(
    config: &CorrelateConfig,
    fair: bool,
    clock: Clock,
    sink: Arc<dyn Sink>,
    state: Option<Arc<StateDir>>,
) -> Result<(Correlator, Intake), StateError> {
    let fair = fair.then(|| Arc::new(FairShare::new(Correlator::shards(config))));
    let dequeued = fair
        .clone()
        .map(|f| f as Arc<dyn crate::correlate::Dequeued>);
    let (correlator, senders) = match state {
        Some(state) => Correlator::spawn_saved(config, clock, sink, partition, dequeued, state)?,
        None => Correlator::spawn(config, clock, sink, partition, dequeued),
    };
    let channels = Channels {
        senders: senders.into(),
        fair,
    };
    Ok((
        correlator,
        Intake::with(To::Local(Local::Channels(channels))),
    ))
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

/// Shard queues with no shard tasks behind them, for the benches: the intake, the receiving
/// ends in shard order, and the fair admission table (when `fair`) that a reader of those ends
/// tells what it took ([`crate::correlate::Dequeued`]).
#[doc(hidden)]
pub fn bare_channels(
    shards: usize,
    capacity: usize,
    fair: bool,
) -> (Intake, Vec<QueueRx>, Option<Arc<FairShare>>) {
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..shards).map(|_| queue::queue(capacity)).unzip();
    let fair = fair.then(|| Arc::new(FairShare::new(shards)));
    let channels = Channels {
        senders: senders.into(),
        fair: fair.clone(),
    };
    let intake = Intake::with(To::Local(Local::Channels(channels)));
    (intake, receivers, fair)
}

#[derive(Clone)]
pub(super) enum Local {
    Channels(Channels),
    Inline(Arc<Mutex<Inline>>),
}

/// The shards' queues, in shard order, and what each routing key holds in them.
#[derive(Clone)]
pub(super) struct Channels {
    senders: Arc<[QueueTx]>,
    fair: Option<Arc<FairShare>>,
}

impl Local {
    pub(super) fn events(&self, events: Vec<Event>) -> Result<(), Refused> {
        self.hand_over(events, |e| &e.routing_key, Input::Event)
    }

    pub(super) fn change(&self, change: ChangeEvent) -> Result<(), Refused> {
        self.hand_over(vec![change], |c| &c.routing_key, Input::Change)
    }

    pub(super) fn command(&self, command: Command) -> Result<(), Refused> {
        self.hand_over(vec![command], |c| &c.routing_key, Input::Command)
    }

    pub(super) async fn silences(&self, silences: Arc<[Silence]>) {
        match self {
            Local::Channels(channels) => {
                for s in channels.senders.iter() {
                    s.send(Input::Silences(Arc::clone(&silences))).await;
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
            Local::Channels(channels) => channels.send(items, routing_key, wrap),
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

impl Channels {
    /// Reserves room in every shard queue the items need, admits each routing key's part (fair
    /// admission), then sends each shard its part in one batch, the events moved as they are.
    /// Refused, nothing is sent and nothing stays counted.
    fn send<T>(
        &self,
        items: Vec<T>,
        routing_key: fn(&T) -> &str,
        wrap: fn(T) -> Input,
    ) -> Result<(), Refused> {
        let senders = &self.senders;
        let n = senders.len();
        let shard_of = |hash: u64| (hash % n as u64) as usize;
        if let [single] = items.as_slice() {
            let hash = key_hash(routing_key(single));
            let s = shard_of(hash);
            let fill = senders[s].queued();
            let room = senders[s].try_reserve(1).ok_or(Refused::Overloaded)?;
            if let Some(fair) = &self.fair {
                if !fair.admit(s, hash, 1, fill, senders[s].capacity()) {
                    return Err(Refused::OverShare);
                }
            }
            room.send(items.into_iter().map(wrap).collect());
            return Ok(());
        }
        let hashes: Vec<u64> = items.iter().map(|i| key_hash(routing_key(i))).collect();
        let mut counts = vec![0usize; n];
        for &h in &hashes {
            counts[shard_of(h)] += 1;
        }
        let fills: Vec<usize> = senders.iter().map(QueueTx::queued).collect();
        let mut reserved = Vec::with_capacity(n);
        for (s, &count) in counts.iter().enumerate() {
            reserved.push(match count {
                0 => None,
                _ => Some(senders[s].try_reserve(count).ok_or(Refused::Overloaded)?),
            });
        }
        if let Some(fair) = &self.fair {
            admit_all(fair, &hashes, n, |s| (fills[s], senders[s].capacity()))?;
        }
        let mut batches: Vec<Vec<Input>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
        for (item, h) in items.into_iter().zip(hashes) {
            batches[shard_of(h)].push(wrap(item));
        }
        for (room, batch) in reserved.into_iter().zip(batches) {
            if let Some(room) = room {
                room.send(batch);
            }
        }
        Ok(())
    }
}

/// Admits each routing key's events of a request into its shard, or none of them: a refusal
/// gives back what was admitted before it.
fn admit_all(
    fair: &FairShare,
    hashes: &[u64],
    shards: usize,
    queue: impl Fn(usize) -> (usize, usize),
) -> Result<(), Refused> {
    let mut keys: Vec<(u64, u32)> = Vec::new();
    for &h in hashes {
        match keys.iter_mut().find(|(k, _)| *k == h) {
            Some((_, n)) => *n += 1,
            None => keys.push((h, 1)),
        }
    }
    let shard_of = |hash: u64| (hash % shards as u64) as usize;
    for (i, &(hash, n)) in keys.iter().enumerate() {
        let s = shard_of(hash);
        let (fill, capacity) = queue(s);
        if !fair.admit(s, hash, n, fill, capacity) {
            for &(hash, n) in &keys[..i] {
                fair.release(shard_of(hash), hash, n);
            }
            return Err(Refused::OverShare);
        }
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
                (
                    "dba".into(),
                    "acknowledged".into(),
                    "acknowledged".into(),
                    1
                ),
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

    /// One shard of 32 whose task has not run yet (a current-thread runtime runs it only when
    /// the test yields), so what is submitted stays queued.
    fn one_small_shard(fair: bool) -> (Correlator, Intake) {
        let mut config = config();
        config.correlate.shards = 1;
        config.correlate.queue_capacity = 32;
        let sink = Arc::new(MemorySink::default());
        spawn_with(&config.correlate, fair, Clock::manual(UnixMillis(0)), sink)
    }

    fn triggers(rk: &str, n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut e = event(rk, Action::Trigger, "web-1", 0);
                e.dedup_key = format!("{rk}-{i}");
                e
            })
            .collect()
    }

    #[tokio::test]
    async fn a_flooding_key_alone_holds_seven_eighths_of_a_queue_and_a_quiet_key_still_gets_in() {
        let (correlator, intake) = one_small_shard(true);
        let submit = |rk: &str, n| intake.submit_events(triggers(rk, n));
        let mut noisy = 0;
        while submit("noisy", 1).await.is_ok() {
            noisy += 1;
        }
        assert_eq!(
            noisy, 28,
            "all of the 32 but the eighth kept for the next key"
        );
        assert_eq!(submit("noisy", 1).await, Err(Refused::OverShare));
        // The quiet key gets in with nothing queued; the noisy key, no longer alone, is held
        // to its share of the half (8), and a request of both keys is refused whole, counting
        // nothing: a fresh key still finds the three places left.
        assert_eq!(submit("quiet", 1).await, Ok(()));
        let mut both = triggers("fresh", 1);
        both.extend(triggers("noisy", 1));
        assert_eq!(intake.submit_events(both).await, Err(Refused::OverShare));
        assert_eq!(submit("fresh", 3).await, Ok(()));
        assert_eq!(submit("other", 1).await, Err(Refused::Overloaded), "full");
        // The shard takes what is queued: the noisy key is taken again.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(submit("noisy", 28).await, Ok(()));
        correlator.shutdown().await;
    }

    #[tokio::test]
    async fn a_request_reaches_each_shard_in_one_send() {
        let (intake, mut queues, _) = bare_channels(SHARDS, 64, true);
        let other = sender_key();
        let mut events = triggers("dba", 30);
        events.extend(triggers(&other, 20));
        intake.submit_events(events).await.unwrap();
        for (shard, queue) in queues.iter_mut().enumerate() {
            let expected = [("dba", 30), (other.as_str(), 20)]
                .iter()
                .filter(|(k, _)| partition(k, SHARDS) == shard)
                .map(|(_, n)| n)
                .sum::<usize>();
            let batches: Vec<usize> = std::iter::from_fn(|| queue.try_recv())
                .map(|b| b.len())
                .collect();
            match expected {
                0 => assert!(batches.is_empty(), "shard {shard}: {batches:?}"),
                n => assert_eq!(batches, [n], "shard {shard}: one batch of its events"),
            }
        }
        // A request larger than a queue is refused whole.
        let refused = intake.submit_events(triggers("dba", 65)).await;
        assert_eq!(refused, Err(Refused::Overloaded));
        assert!(queues.iter_mut().all(|q| q.try_recv().is_none()));
    }

    #[tokio::test]
    async fn without_fair_admission_a_flooding_key_fills_the_queue() {
        let (correlator, intake) = one_small_shard(false);
        for _ in 0..32 {
            intake.submit_events(triggers("noisy", 1)).await.unwrap();
        }
        let refused = intake.submit_events(triggers("quiet", 1)).await;
        assert_eq!(refused, Err(Refused::Overloaded));
        correlator.shutdown().await;
    }
}
