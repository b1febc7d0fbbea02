//! The correlation stage: events in, incident messages out.
//!
//! State is split into shards by the pipeline's partition function (an xxh3 hash of the
//! routing key), so every alert and incident of a routing key lives in one shard: grouping
//! never crosses shards, an acknowledge or resolve that carries only a dedup key finds its
//! alert, and no lock is shared. Each shard is owned by one task that reads its queue
//! ([`queue`]: bounded in events, a request's events for the shard in one send, from
//! `pipeline::local`); a full queue is the ingest tier's signal to answer 503.
//!
//! A shard's time is its partition time: the highest `received_at` of the events it has seen
//! (stamped at ingest), moved on by ticks while it is idle so timers fire. The same shards
//! also run inline, without tasks or channels, on a manual clock: that is how `sluice replay`
//! reproduces a recorded stream deterministically.

mod alert_record;
pub mod event_rules;
pub mod incident;
pub mod maintenance;
pub mod queue;
pub mod rules;
mod said;
pub mod shard;
pub mod silence;
pub mod state_dir;
pub mod text;
pub mod timers;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::CorrelateConfig;
use crate::event::{ChangeEvent, Command, Event};
use crate::metrics as m;
use crate::publish::encode::OutboundMessage;
use crate::publish::{SendError, Sink};
use crate::time::UnixMillis;
use state_dir::{StateDir, StateError};

pub use shard::{Origin, Shard, Stats};

/// Which of `n` shards (or partitions) owns a routing key: the pipeline's partition function.
pub type PartitionFn = fn(&str, usize) -> usize;

/// The partition (local shard, or events-topic partition) that owns `routing_key`: every alert
/// and incident of a routing key lives in one partition, so grouping never crosses partitions
/// and an acknowledge or resolve that carries only a dedup key finds its alert.
pub fn partition(routing_key: &str, partitions: usize) -> usize {
    (key_hash(routing_key) % partitions as u64) as usize
}

/// The hash of a routing key (xxh3) that [`partition`] divides and the admission tables are
/// keyed by, so that they hold no routing key.
pub fn key_hash(routing_key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(routing_key.as_bytes())
}

/// Hashes a value that is a hash already ([`key_hash`], an alert's hash) as itself: for the
/// tables keyed by one.
#[derive(Default)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Which shard (or partition) of how many: what a shard owns ([`partition`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub index: usize,
    pub of: usize,
}

impl Part {
    /// The one shard of one.
    pub const ONLY: Part = Part { index: 0, of: 1 };

    /// Whether this part owns `routing_key`.
    pub fn owns(self, routing_key: &str) -> bool {
        partition(routing_key, self.of) == self.index
    }
}
use silence::Silence;

/// What the pipeline hands to a shard.
#[derive(Debug)]
pub enum Input {
    /// An event as its sender sent it, in the partition of the sender's routing key: the
    /// event rules apply here. (An event they re-routed comes to its new key's partition
    /// through [`TimedShard::apply_routed`].)
    Event(Event),
    Change(ChangeEvent),
    /// An operator's command on an incident of this partition.
    Command(Command),
    /// The silences now in force (sent to every shard).
    Silences(Arc<[Silence]>),
}

/// Told what a shard takes off its queue, as it takes it: the pipeline's fair admission counts
/// the events each routing key has queued (`pipeline::fair`).
pub trait Dequeued: Send + Sync {
    /// `inputs` left the queue of shard `shard`, before any of them is applied.
    fn taken(&self, shard: usize, inputs: &[Input]);
}

impl Input {
    /// When ingest received it: the partition time it brings.
    pub fn received_at(&self) -> Option<UnixMillis> {
        match self {
            Input::Event(e) => Some(e.received_at),
            Input::Change(c) => Some(c.received_at),
            Input::Command(c) => Some(c.received_at),
            Input::Silences(_) => None,
        }
    }
}

/// Shard (or partition) `part` of those a config asks for, with its share of the caps.
pub fn build_shard(config: &CorrelateConfig, part: Part) -> Shard {
    let (rules, inhibit, caps) = shard_parts(config, part.of);
    Shard::new(rules, inhibit, caps).configured(config, part)
}

/// The fingerprint of the grouping and inhibition rules `config` compiles to, in hex (see
/// [`rules::fingerprint`]).
pub fn rules_fingerprint(config: &CorrelateConfig) -> String {
    let (rules, inhibit, _) = shard_parts(config, 1);
    format!("{:016x}", rules::fingerprint(&rules, &inhibit))
}

/// The shards a config asks for: rules compiled once, caps split evenly between shards.
pub fn build_shards(config: &CorrelateConfig, n: usize) -> Vec<Shard> {
    let (rules, inhibit, caps) = shard_parts(config, n);
    (0..n)
        .map(|index| {
            Shard::new(Arc::clone(&rules), Arc::clone(&inhibit), caps)
                .configured(config, Part { index, of: n })
        })
        .collect()
}

/// The compiled rules and one shard's share of the caps, when there are `n` shards.
fn shard_parts(
    config: &CorrelateConfig,
    n: usize,
) -> (Arc<[rules::Rule]>, Arc<[rules::Inhibit]>, shard::Caps) {
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
    (rules, inhibit, caps)
}

/// The running shards.
pub struct Correlator {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    /// The rules every shard applies; a new value is taken up by each (see [`Correlator::rules`]).
    rules: watch::Sender<Arc<CorrelateConfig>>,
}

impl Correlator {
    /// The shards `config` asks for: `config.shards`, or one per core when 0.
    pub fn shards(config: &CorrelateConfig) -> usize {
        match config.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Starts one task per shard ([`Correlator::shards`]); returns the shards' queues, in
    /// shard order. `partition` says which shard owns a routing key: a shard hands each event
    /// its event rules re-route to that key's shard. `dequeued`, if any, is told what each
    /// shard takes off its queue.
    pub fn spawn(
        config: &CorrelateConfig,
        clock: Clock,
        sink: Arc<dyn Sink>,
        partition: PartitionFn,
        dequeued: Option<Arc<dyn Dequeued>>,
    ) -> (Correlator, Vec<queue::QueueTx>) {
        let n = Correlator::shards(config);
        let shards = build_shards(config, n).into_iter().map(TimedShard::new);
        let parts = worker::Parts {
            clock,
            sink,
            partition,
            dequeued,
            state: None,
        };
        Correlator::spawn_shards(config, shards.collect(), parts)
    }

    /// [`Correlator::spawn`] with the state saved in `state` (see `state_dir`): restored at
    /// start, saved every `state.every` and at stop, when the incidents still waiting are not
    /// published but kept for the next start.
    pub fn spawn_saved(
        config: &CorrelateConfig,
        clock: Clock,
        sink: Arc<dyn Sink>,
        partition: PartitionFn,
        dequeued: Option<Arc<dyn Dequeued>>,
        state: Arc<StateDir>,
    ) -> Result<(Correlator, Vec<queue::QueueTx>), StateError> {
        let n = Correlator::shards(config);
        let shards = match state.load(config, n, partition)? {
            Some(restored) => {
                tracing::info!(dir = %state.path().display(), shards = n, "state restored");
                for (i, timed) in restored.iter().enumerate() {
                    state
                        .save(i, n, &timed.snapshot())
                        .map_err(|source| StateError::Dir {
                            dir: state.path().to_path_buf(),
                            source,
                        })?;
                }
                restored
            }
            None => build_shards(config, n)
                .into_iter()
                .map(TimedShard::new)
                .collect(),
        };
        state
            .forget_other_counts(n)
            .map_err(|source| StateError::Dir {
                dir: state.path().to_path_buf(),
                source,
            })?;
        let parts = worker::Parts {
            clock,
            sink,
            partition,
            dequeued,
            state: Some(state),
        };
        Ok(Correlator::spawn_shards(config, shards, parts))
    }

    fn spawn_shards(
        config: &CorrelateConfig,
        shards: Vec<TimedShard>,
        parts: worker::Parts,
    ) -> (Correlator, Vec<queue::QueueTx>) {
        let n = shards.len();
        let (stop, stop_rx) = watch::channel(false);
        let (rules, rules_rx) = watch::channel(Arc::new(config.clone()));
        let mut senders = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        // Re-routed events go between shards unbounded: each one took room in a bounded queue
        // first, and is handed on at most once, so these hold no more than those did.
        let (routed_tx, routed_rx): (Vec<_>, Vec<_>) =
            (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        let peers: Arc<[mpsc::UnboundedSender<Event>]> = routed_tx.into();
        let drained = Arc::new(tokio::sync::Barrier::new(n));
        for (index, (timed, routed)) in shards.into_iter().zip(routed_rx).enumerate() {
            let (tx, rx) = queue::queue(config.queue_capacity);
            senders.push(tx);
            let worker = worker::Worker::new(
                timed,
                rx,
                routed,
                Arc::clone(&peers),
                index,
                Arc::clone(&drained),
                &parts,
                stop_rx.clone(),
                rules_rx.clone(),
            );
            tasks.push(tokio::spawn(worker.run()));
        }
        (Correlator { tasks, stop, rules }, senders)
    }

    /// Where new rules go (a hot reload): each shard takes them up between two batches, keeping
    /// its state (see `worker`).
    pub fn rules(&self) -> watch::Sender<Arc<CorrelateConfig>> {
        self.rules.clone()
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

/// A shard on partition time: the highest time its inputs brought (an event's `received_at`,
/// a watermark, an idle tick), never moving back; every timer due by then fires before an
/// input applies. The one clock of every correlator (memory mode's tasks, Kafka mode's
/// partitions), so a shard's output is a function of its inputs.
pub struct TimedShard {
    pub shard: Shard,
    time: UnixMillis,
}

impl TimedShard {
    pub fn new(shard: Shard) -> Self {
        TimedShard {
            shard,
            time: UnixMillis(0),
        }
    }

    /// A shard whose partition time is already `time` (a shard moved from other partitions).
    pub fn at(shard: Shard, time: UnixMillis) -> Self {
        TimedShard { shard, time }
    }

    pub fn time(&self) -> UnixMillis {
        self.time
    }

    /// The shard's snapshot at its partition time (see `shard::snapshot`).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(4096);
        self.shard.snapshot(self.time, &mut bytes);
        bytes
    }

    /// The timed shard a snapshot holds, as shard `part` under `config` (its rules, its share
    /// of the caps, the heartbeats it owns).
    pub fn restore(
        config: &CorrelateConfig,
        part: Part,
        bytes: &[u8],
    ) -> Result<Self, shard::SnapshotError> {
        let (rules, inhibit, caps) = shard_parts(config, part.of);
        let (shard, time) = Shard::restore(rules, inhibit, caps, bytes)?;
        let shard = shard.configured(config, part);
        Ok(TimedShard { shard, time })
    }

    /// Moves time to `at` (never back) and fires every timer due by then; returns the time.
    pub fn advance_to(&mut self, at: UnixMillis, out: &mut Vec<OutboundMessage>) -> UnixMillis {
        self.time = self.time.max(at);
        self.shard.advance(self.time, out);
        self.time
    }

    /// Applies `input` at its `received_at`, or at `otherwise()` for an input without one;
    /// an event the event rules re-route comes back (see [`Shard::apply_input`]).
    #[must_use = "a re-routed event must be handed on"]
    pub fn apply(
        &mut self,
        input: Input,
        otherwise: impl FnOnce() -> UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) -> Option<Event> {
        let now = self.advance_to(input.received_at().unwrap_or_else(otherwise), out);
        self.shard.apply_input(input, now, out)
    }

    /// [`TimedShard::apply`] for an input that is never re-routed (a change, a command).
    pub fn apply_unrouted(
        &mut self,
        input: Input,
        otherwise: impl FnOnce() -> UnixMillis,
        out: &mut Vec<OutboundMessage>,
    ) {
        let again = self.apply(input, otherwise, out);
        debug_assert!(again.is_none(), "only events are re-routed");
    }

    /// Applies an event the event rules re-routed to this partition, at its `received_at`
    /// (see [`Shard::apply_routed`]).
    pub fn apply_routed(
        &mut self,
        event: Event,
        origin: Option<Origin>,
        out: &mut Vec<OutboundMessage>,
    ) {
        let now = self.advance_to(event.received_at, out);
        self.shard.apply_routed(event, origin, now, out);
    }
}

/// Hands every message to the sink in order, stamped with the send time `now` (and, for an
/// `opened` message, its time to page recorded). A full producer queue holds the caller (a
/// shard's channel fills, and ingest answers 503) until there is room; nothing is dropped.
pub async fn hand_to_sink(sink: &dyn Sink, out: &mut Vec<OutboundMessage>, now: UnixMillis) {
    if out.is_empty() {
        return;
    }
    let time_to_page = m::histogram(m::TIME_TO_PAGE);
    for mut msg in out.drain(..) {
        msg.stamp(now);
        if let Some(first) = msg.first_event_at {
            time_to_page.record(now.saturating_sub(first).as_secs_f64());
        }
        let mut waited = false;
        loop {
            match sink.send(&msg) {
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

/// The shards run synchronously on a manual clock, for `sluice replay` and tests: every input
/// is applied the moment it is submitted, and time moves only through [`Inline::advance_to`].
pub struct Inline {
    shards: Vec<Shard>,
    partition: PartitionFn,
    clock: Clock,
    sink: Arc<dyn Sink>,
    out: Vec<OutboundMessage>,
}

impl Inline {
    /// The shards a config asks for (at least one), run on `clock`; `partition` says which
    /// one owns a routing key.
    pub fn new(
        config: &CorrelateConfig,
        clock: Clock,
        sink: Arc<dyn Sink>,
        partition: PartitionFn,
    ) -> Inline {
        Inline {
            shards: build_shards(config, config.shards.max(1)),
            partition,
            clock,
            sink,
            out: Vec::new(),
        }
    }

    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Applies each `(shard, input)` at the clock's time, after the timers due by then.
    pub fn apply(&mut self, inputs: impl Iterator<Item = (usize, Input)>) {
        let now = self.clock.now();
        for shard in &mut self.shards {
            shard.advance(now, &mut self.out);
        }
        let n = self.shards.len();
        for (s, input) in inputs {
            if let Some(event) = self.shards[s].apply_input(input, now, &mut self.out) {
                let to = (self.partition)(&event.routing_key, n);
                self.shards[to].apply_routed(event, None, now, &mut self.out);
            }
        }
        self.drain();
    }

    /// Sets the silences in force on every shard.
    pub fn broadcast_silences(&mut self, silences: Arc<[Silence]>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::event::{Action, Event};
    use crate::integration::Integration;

    fn trigger(key: &str, at: u64) -> Input {
        let mut e = Event::new(
            Integration::PagerDuty,
            Action::Trigger,
            "rk".into(),
            key.into(),
            UnixMillis(at),
        );
        e.source = "db-1".into();
        Input::Event(e)
    }

    #[test]
    fn partition_time_moves_with_inputs_and_never_back() {
        let config = Config::from_toml(
            "[[correlate.rules]]\ngroup_by = [\"source\"]\ngroup_wait = \"10s\"\npause_transient = \"0s\"",
            Vec::new(),
        )
        .unwrap();
        let mut timed = TimedShard::new(build_shard(&config.correlate, Part::ONLY));
        let mut out = Vec::new();
        assert!(timed
            .apply(trigger("a", 1_000), || UnixMillis(0), &mut out)
            .is_none());
        assert_eq!(timed.time(), UnixMillis(1_000));
        // An earlier time (another ingest's clock, a late tick) does not move it back.
        assert_eq!(
            timed.advance_to(UnixMillis(500), &mut out),
            UnixMillis(1_000)
        );
        assert!(timed
            .apply(trigger("b", 900), || UnixMillis(0), &mut out)
            .is_none());
        assert_eq!(timed.time(), UnixMillis(1_000));
        assert!(out.is_empty(), "still inside group_wait");
        // group_wait ends at 11 000: the timer fires when time reaches it, not before.
        timed.advance_to(UnixMillis(10_999), &mut out);
        assert!(out.is_empty());
        timed.advance_to(UnixMillis(11_000), &mut out);
        assert_eq!(out.len(), 1, "the opened message");
        // An input without a time of its own takes the fallback.
        let none = timed.apply(
            Input::Silences(Arc::from(Vec::new())),
            || UnixMillis(20_000),
            &mut out,
        );
        assert!(none.is_none());
        assert_eq!(timed.time(), UnixMillis(20_000));
    }
}
