//! The correlation stage: events in, incident messages out.
//!
//! State is split into shards by an xxh3 hash of the routing key, so every alert and incident
//! of a routing key lives in one shard: grouping never crosses shards, an acknowledge or
//! resolve that carries only a dedup key finds its alert, and no lock is shared. Each shard is
//! owned by one task that reads a bounded channel; a full channel is the ingest tier's signal
//! to answer 503.

pub mod incident;
pub mod rules;
pub mod shard;
pub mod timers;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::CorrelateConfig;
use crate::event::{ChangeEvent, Event};
use crate::metrics as m;
use crate::publish::encode::OutboundMessage;
use crate::publish::{SendError, Sink};

pub use shard::Shard;

/// What the ingest stage hands to a shard.
#[derive(Debug)]
pub enum Input {
    Event(Event),
    Change(ChangeEvent),
}

impl Input {
    fn routing_key(&self) -> &str {
        match self {
            Input::Event(e) => &e.routing_key,
            Input::Change(c) => &c.routing_key,
        }
    }
}

/// Every shard queue that a request needs was full: nothing of it was taken.
#[derive(Debug, thiserror::Error)]
#[error("correlator queues are full")]
pub struct Overloaded;

/// The ingest side's handle: cheap to clone, one bounded sender per shard.
#[derive(Clone)]
pub struct CorrelatorHandle {
    senders: Arc<[mpsc::Sender<Input>]>,
}

impl CorrelatorHandle {
    pub fn shard_of(&self, routing_key: &str) -> usize {
        (xxhash_rust::xxh3::xxh3_64(routing_key.as_bytes()) % self.senders.len() as u64) as usize
    }

    /// Hands over every input of one request, or none of them: room is reserved in each
    /// shard queue first, so a 503 never leaves half a batch accepted.
    pub fn submit(&self, inputs: Vec<Input>) -> Result<(), Overloaded> {
        if let [single] = inputs.as_slice() {
            let shard = self.shard_of(single.routing_key());
            let permit = self.senders[shard].try_reserve().map_err(|_| Overloaded)?;
            permit.send(inputs.into_iter().next().expect("one input"));
            return Ok(());
        }
        let mut counts = vec![0usize; self.senders.len()];
        let shards: Vec<usize> = inputs
            .iter()
            .map(|i| self.shard_of(i.routing_key()))
            .collect();
        for &s in &shards {
            counts[s] += 1;
        }
        let mut permits: Vec<_> = Vec::with_capacity(self.senders.len());
        for (s, &n) in counts.iter().enumerate() {
            permits.push(if n == 0 {
                None
            } else {
                Some(
                    self.senders[s]
                        .try_reserve_many(n)
                        .map_err(|_| Overloaded)?,
                )
            });
        }
        for (input, s) in inputs.into_iter().zip(shards) {
            let permit = permits[s]
                .as_mut()
                .and_then(Iterator::next)
                .expect("reserved");
            permit.send(input);
        }
        Ok(())
    }
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
        clock: Clock,
        sink: Arc<dyn Sink>,
    ) -> (Correlator, CorrelatorHandle) {
        let n = match config.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let rules: Arc<[rules::Rule]> =
            config.rules.iter().cloned().map(rules::Rule::new).collect();
        let (stop, stop_rx) = watch::channel(false);
        let mut senders = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(config.queue_capacity);
            senders.push(tx);
            let shard = Shard::new(Arc::clone(&rules), config.max_alerts_per_message);
            let worker = Worker {
                shard,
                rx,
                clock: clock.clone(),
                sink: Arc::clone(&sink),
                stop: stop_rx.clone(),
            };
            tasks.push(tokio::spawn(worker.run()));
        }
        let handle = CorrelatorHandle {
            senders: senders.into(),
        };
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
            let sleep = self.shard.next_deadline().map(|at| {
                let wait = at.saturating_sub(self.clock.now());
                tokio::time::sleep(wait)
            });
            tokio::select! {
                biased;
                n = self.rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    let now = self.clock.now();
                    for input in batch.drain(..) {
                        self.shard.apply_input(input, now, &mut out);
                    }
                    self.shard.advance(now, &mut out);
                }
                _ = async { sleep.expect("guarded").await }, if sleep.is_some() => {
                    self.shard.advance(self.clock.now(), &mut out);
                }
                _ = self.stop.changed() => {
                    self.rx.close();
                    while let Some(input) = self.rx.recv().await {
                        self.shard.apply_input(input, self.clock.now(), &mut out);
                    }
                    self.shard.flush(self.clock.now(), &mut out);
                    self.publish(&mut out).await;
                    break;
                }
            }
            self.publish(&mut out).await;
        }
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
