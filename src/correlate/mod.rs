//! The correlation stage: events in, incident messages out.
//!
//! State is split into shards by an xxh3 hash of the routing key, so every alert and incident
//! of a routing key lives in one shard: grouping never crosses shards, an acknowledge or
//! resolve that carries only a dedup key finds its alert, and no lock is shared. Each shard is
//! owned by one task that reads a bounded channel; a full channel is the ingest tier's signal
//! to answer 503. Event rules apply at the door, before sharding.
//!
//! The same shards also run inline, without tasks or channels, on a manual clock: that is how
//! `sluice replay` reproduces a recorded stream deterministically.

pub mod event_rules;
pub mod incident;
pub mod rules;
pub mod shard;
pub mod silence;
pub mod timers;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::Counter;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{CorrelateConfig, EventRule};
use crate::event::{ChangeEvent, Event};
use crate::metrics as m;
use crate::publish::encode::OutboundMessage;
use crate::publish::{SendError, Sink};
use crate::time::UnixMillis;

pub use shard::{Shard, Stats};
use silence::Silence;

/// Why an event rule ended an event (the `reason` of `sluice_events_dropped_total`).
pub const DROP_EVENT_RULE: &str = "event_rule";

/// What the ingest stage hands to a shard.
#[derive(Debug)]
pub enum Input {
    Event(Event),
    Change(ChangeEvent),
    /// The silences now in force (sent to every shard).
    Silences(Arc<[Silence]>),
}

/// Every shard queue that a request needs was full: nothing of it was taken.
#[derive(Debug, thiserror::Error)]
#[error("correlator queues are full")]
pub struct Overloaded;

fn shard_index(routing_key: &str, shards: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(routing_key.as_bytes()) % shards as u64) as usize
}

/// The shards a config asks for: rules compiled once, caps split evenly between shards.
pub fn build_shards(config: &CorrelateConfig, n: usize) -> Vec<Shard> {
    let rules: Arc<[rules::Rule]> = rules::with_fallback(&config.rules).into();
    let inhibit: Arc<[rules::Inhibit]> = config.inhibit.iter().map(rules::Inhibit::from).collect();
    let share = |total: usize| total.div_ceil(n).max(1);
    let caps = shard::Caps {
        max_alerts: share(config.max_alerts),
        max_alerts_per_routing_key: config.max_alerts_per_routing_key,
        max_incidents: share(config.max_incidents),
        max_incidents_per_routing_key: config.max_incidents_per_routing_key,
        max_alerts_per_message: config.max_alerts_per_message,
    };
    (0..n)
        .map(|_| Shard::new(Arc::clone(&rules), Arc::clone(&inhibit), caps))
        .collect()
}

#[derive(Clone)]
enum Route {
    Channels(Arc<[mpsc::Sender<Input>]>),
    Inline(Arc<Mutex<Inline>>),
}

/// The ingest side's handle: cheap to clone.
#[derive(Clone)]
pub struct CorrelatorHandle {
    route: Route,
    event_rules: Arc<[EventRule]>,
    dropped_by_rule: Counter,
}

impl CorrelatorHandle {
    fn new(route: Route, event_rules: &[EventRule]) -> Self {
        CorrelatorHandle {
            route,
            event_rules: event_rules.into(),
            dropped_by_rule: m::dropped(DROP_EVENT_RULE),
        }
    }

    /// Applies the event rules, then hands over every remaining event of one request, or none
    /// of them: room is reserved in each shard queue first, so a 503 never leaves half a batch
    /// accepted. The events go to their shards as they are, with no copy of the batch.
    pub fn submit_events(&self, mut events: Vec<Event>) -> Result<(), Overloaded> {
        if !self.event_rules.is_empty() {
            let before = events.len();
            events.retain_mut(|e| event_rules::apply(&self.event_rules, e));
            self.dropped_by_rule
                .increment((before - events.len()) as u64);
        }
        self.hand_over(events, |e| &e.routing_key, Input::Event)
    }

    /// Hands over a change event (published as is, never grouped).
    pub fn submit_change(&self, change: ChangeEvent) -> Result<(), Overloaded> {
        self.hand_over(vec![change], |c| &c.routing_key, Input::Change)
    }

    fn hand_over<T>(
        &self,
        items: Vec<T>,
        routing_key: fn(&T) -> &str,
        wrap: fn(T) -> Input,
    ) -> Result<(), Overloaded> {
        match &self.route {
            Route::Channels(senders) => submit_to_channels(senders, items, routing_key, wrap),
            Route::Inline(inline) => {
                inline
                    .lock()
                    .expect("inline correlator lock")
                    .submit(items, routing_key, wrap);
                Ok(())
            }
        }
    }

    /// Sends the silences in force to every shard (waits for room: an admin action, not ingest).
    pub async fn set_silences(&self, silences: Arc<[Silence]>) {
        match &self.route {
            Route::Channels(senders) => {
                for s in senders.iter() {
                    let _ = s.send(Input::Silences(Arc::clone(&silences))).await;
                }
            }
            Route::Inline(inline) => inline
                .lock()
                .expect("inline correlator lock")
                .broadcast_silences(silences),
        }
    }
}

fn submit_to_channels<T>(
    senders: &[mpsc::Sender<Input>],
    items: Vec<T>,
    routing_key: fn(&T) -> &str,
    wrap: fn(T) -> Input,
) -> Result<(), Overloaded> {
    let n = senders.len();
    if let [single] = items.as_slice() {
        let permit = senders[shard_index(routing_key(single), n)]
            .try_reserve()
            .map_err(|_| Overloaded)?;
        permit.send(wrap(items.into_iter().next().expect("one item")));
        return Ok(());
    }
    let shards: Vec<usize> = items
        .iter()
        .map(|i| shard_index(routing_key(i), n))
        .collect();
    let mut counts = vec![0usize; n];
    for &s in &shards {
        counts[s] += 1;
    }
    let mut permits = Vec::with_capacity(n);
    for (s, &count) in counts.iter().enumerate() {
        permits.push(if count == 0 {
            None
        } else {
            Some(senders[s].try_reserve_many(count).map_err(|_| Overloaded)?)
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

/// The running shards.
pub struct Correlator {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Correlator {
    /// Starts one task per shard (`config.shards`, or one per core when 0).
    pub fn spawn(
        config: &CorrelateConfig,
        event_rules: &[EventRule],
        clock: Clock,
        sink: Arc<dyn Sink>,
    ) -> (Correlator, CorrelatorHandle) {
        let n = match config.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (stop, stop_rx) = watch::channel(false);
        let mut senders = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        for shard in build_shards(config, n) {
            let (tx, rx) = mpsc::channel(config.queue_capacity);
            senders.push(tx);
            let worker = Worker {
                shard,
                rx,
                clock: clock.clone(),
                sink: Arc::clone(&sink),
                stop: stop_rx.clone(),
            };
            tasks.push(tokio::spawn(worker.run()));
        }
        let handle = CorrelatorHandle::new(Route::Channels(senders.into()), event_rules);
        (Correlator { tasks, stop }, handle)
    }

    /// Stops taking input, applies what is queued, publishes every incident still waiting
    /// (see [`Shard::flush`]) and returns when every shard has handed its last message to the sink.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "correlator shard task failed");
            }
        }
    }
}

struct Worker {
    shard: Shard,
    rx: mpsc::Receiver<Input>,
    clock: Clock,
    sink: Arc<dyn Sink>,
    stop: watch::Receiver<bool>,
}

/// Inputs applied between two hand-overs to the sink.
const BATCH: usize = 256;

impl Worker {
    async fn run(mut self) {
        let mut out = Vec::with_capacity(BATCH);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let sleep = self
                .shard
                .next_deadline()
                .map(|at| tokio::time::sleep(at.saturating_sub(self.clock.now())));
            tokio::select! {
                biased;
                n = self.rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        // Every sender is gone (the server has shut down): finish as on stop.
                        self.finish(&mut out).await;
                        break;
                    }
                    let now = self.clock.now();
                    self.shard.advance(now, &mut out);
                    for input in batch.drain(..) {
                        self.shard.apply_input(input, now, &mut out);
                    }
                }
                _ = async { sleep.expect("guarded").await }, if sleep.is_some() => {
                    self.shard.advance(self.clock.now(), &mut out);
                }
                _ = self.stop.changed() => {
                    self.finish(&mut out).await;
                    break;
                }
            }
            self.publish(&mut out).await;
        }
    }

    /// Refuses new input, applies what is queued, publishes what is waiting.
    async fn finish(&mut self, out: &mut Vec<OutboundMessage>) {
        self.rx.close();
        while let Some(input) = self.rx.recv().await {
            self.shard.apply_input(input, self.clock.now(), out);
        }
        self.shard.flush(self.clock.now(), out);
        self.publish(out).await;
    }

    /// Hands every message to the sink in order. A full producer queue holds this shard (its
    /// channel fills, and ingest answers 503) until there is room; nothing is dropped.
    async fn publish(&self, out: &mut Vec<OutboundMessage>) {
        for msg in out.drain(..) {
            let mut waited = false;
            loop {
                match self.sink.send(&msg) {
                    Ok(()) => break,
                    Err(SendError::QueueFull) => {
                        if !waited {
                            m::counter(m::PUBLISH_RETRIES).increment(1);
                            waited = true;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(SendError::Rejected(kind)) => {
                        m::failed(kind).increment(1);
                        tracing::error!(key = %msg.key, kind, "message refused by the producer");
                        break;
                    }
                }
            }
        }
    }
}

/// The shards run synchronously on a manual clock, for `sluice replay` and tests: every input
/// is applied the moment it is submitted, and time moves only through [`Inline::advance_to`].
pub struct Inline {
    shards: Vec<Shard>,
    clock: Clock,
    sink: Arc<dyn Sink>,
    out: Vec<OutboundMessage>,
}

impl Inline {
    /// A handle for the ingest router, and the inline correlator behind it.
    pub fn new(
        config: &CorrelateConfig,
        event_rules: &[EventRule],
        clock: Clock,
        sink: Arc<dyn Sink>,
    ) -> (Arc<Mutex<Inline>>, CorrelatorHandle) {
        let n = config.shards.max(1);
        let inline = Arc::new(Mutex::new(Inline {
            shards: build_shards(config, n),
            clock,
            sink,
            out: Vec::new(),
        }));
        let handle = CorrelatorHandle::new(Route::Inline(Arc::clone(&inline)), event_rules);
        (inline, handle)
    }

    fn submit<T>(&mut self, items: Vec<T>, routing_key: fn(&T) -> &str, wrap: fn(T) -> Input) {
        let now = self.clock.now();
        let n = self.shards.len();
        for shard in &mut self.shards {
            shard.advance(now, &mut self.out);
        }
        for item in items {
            let s = shard_index(routing_key(&item), n);
            self.shards[s].apply_input(wrap(item), now, &mut self.out);
        }
        self.drain();
    }

    fn broadcast_silences(&mut self, silences: Arc<[Silence]>) {
        let now = self.clock.now();
        for shard in &mut self.shards {
            shard.set_silences(Arc::clone(&silences), now, &mut self.out);
        }
        self.drain();
    }

    fn drain(&mut self) {
        for msg in self.out.drain(..) {
            if let Err(e) = self.sink.send(&msg) {
                tracing::error!(error = %e, key = %msg.key, "replay sink refused a message");
            }
        }
    }

    /// Fires every timer due up to `to`, in time order across shards, moving the clock to each
    /// deadline as it goes, and leaves the clock at `to`.
    pub fn advance_to(&mut self, to: UnixMillis) {
        loop {
            let next = self.shards.iter().filter_map(Shard::next_deadline).min();
            match next {
                Some(at) if at <= to => {
                    self.clock.set(at);
                    let now = self.clock.now();
                    for shard in &mut self.shards {
                        shard.advance(now, &mut self.out);
                    }
                    self.drain();
                }
                _ => break,
            }
        }
        self.clock.set(to);
    }

    /// Runs every pending timer to the end, however far in the future.
    pub fn finish(&mut self) {
        while let Some(at) = self.shards.iter().filter_map(Shard::next_deadline).min() {
            self.advance_to(at);
        }
    }

    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for s in &self.shards {
            total.add(&s.stats);
        }
        total
    }
}
