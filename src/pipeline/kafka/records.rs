//! Applying the events topic's records: to one owned partition ([`Owned`], with its offsets
//! and snapshots), or to any shard ([`apply_message`], which `sluice replay` uses too).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use metrics::Counter;

use crate::correlate::{Input, TimedShard};
use crate::event::wire::{self, Origin, Record};
use crate::event::Event;
use crate::metrics as m;
use crate::pipeline::partition;
use crate::publish::encode::OutboundMessage;
use crate::time::UnixMillis;

use super::state;

/// One owned partition: its shard on partition time, the next offset to commit, and its
/// snapshots.
pub(super) struct Owned {
    pub(super) timed: TimedShard,
    pub(super) next: i64,
    /// Every event this partition re-routed from records below this offset was delivered
    /// (committed, with transactions): the last offset committed, or restored to.
    pub(super) floor: i64,
    /// The owner epoch this instance writes the partition's snapshots under.
    pub(super) epoch: u64,
    /// The partition's last committed snapshot: its header and the header's offset.
    pub(super) snapshot: Option<(state::Header, i64)>,
    /// Records applied since that snapshot, and when this instance last tried one.
    pub(super) since_snapshot: u64,
    pub(super) snapshot_tried: Instant,
    /// This instance's rules fingerprint, to compare with the ones watermarks bring.
    pub(super) rules: Arc<str>,
}

/// Logs, once per fingerprint, that an instance writing to the events topic runs other rules.
fn peer_rules_differ(ours: &str, theirs: &str) {
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().expect("rules lock");
    if !seen.iter().any(|s| s == theirs) {
        seen.push(theirs.to_string());
        tracing::error!(
            ours,
            theirs,
            "RULES DIFFER: an ingest instance writing to the events topic runs other rules than this correlator (compare sluice_rules_info across instances; a rollout in progress looks like this until it ends)"
        );
    }
}

impl Owned {
    pub(super) fn new(timed: TimedShard, next: i64, epoch: u64, rules: Arc<str>) -> Self {
        Owned {
            timed,
            next,
            floor: 0,
            epoch,
            rules,
            snapshot: None,
            since_snapshot: 0,
            snapshot_tried: Instant::now(),
        }
    }

    /// Applies one Kafka message's records; their output goes to `out`, the events their rules
    /// re-route to other partitions to `routed`. Records that are not the wire format are
    /// skipped, counted, and logged once per message.
    pub(super) fn apply(
        &mut self,
        at: MessageAt,
        payload: &[u8],
        out: &mut Vec<OutboundMessage>,
        routed: &mut Vec<Routed>,
    ) {
        self.since_snapshot += 1;
        let Owned { timed, rules, .. } = self;
        apply_message(timed, at, payload, out, routed, |theirs| {
            if theirs != &**rules {
                peer_rules_differ(rules, theirs);
            }
        });
    }
}

/// Where a message of the events topic is: its partition and offset, of `partitions`; and the
/// partition's floor (see [`Origin`]) for the events it re-routes.
#[derive(Clone, Copy, Debug)]
pub struct MessageAt {
    pub partition: i32,
    pub offset: i64,
    pub partitions: usize,
    pub floor: i64,
}

/// An event the event rules re-routed to another partition of the events topic.
#[derive(Debug)]
pub struct Routed {
    pub to: i32,
    pub event: Event,
    pub origin: Origin,
}

/// Applies one events-topic message (its wire records, newline-separated) to its partition's
/// shard, output to `out`; `rules` sees the fingerprint each watermark carries. An event the
/// event rules give a routing key of this partition is applied here at once; one they give
/// another partition's key goes to `routed`, with its place here. Records that are not the
/// wire format are skipped, counted, and logged once per message. Kafka mode's correlators and
/// `sluice replay` of the events topic both apply messages through here.
pub fn apply_message(
    timed: &mut TimedShard,
    at: MessageAt,
    payload: &[u8],
    out: &mut Vec<OutboundMessage>,
    routed: &mut Vec<Routed>,
    mut rules: impl FnMut(&str),
) {
    let mut skipped = 0u64;
    let mut first_error = None;
    let lines = payload.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    for (index, line) in lines.enumerate() {
        match wire::decode(line) {
            Ok(Record::Event(e)) => {
                let Some(event) = timed.apply(Input::Event(e), no_time, out) else {
                    continue;
                };
                let to = partition(&event.routing_key, at.partitions) as i32;
                if to == at.partition {
                    timed.apply_routed(event, None, out);
                } else {
                    let origin = Origin {
                        partition: at.partition as u32,
                        offset: at.offset as u64,
                        index: index as u32,
                        floor: at.floor as u64,
                    };
                    routed.push(Routed { to, event, origin });
                }
            }
            Ok(Record::Routed { event, origin }) => timed.apply_routed(event, Some(origin), out),
            Ok(Record::Change(c)) => timed.apply_unrouted(Input::Change(c), no_time, out),
            Ok(Record::Command(c)) => timed.apply_unrouted(Input::Command(c), no_time, out),
            Ok(Record::Watermark { at, rules: theirs }) => {
                timed.advance_to(at, out);
                if let Some(theirs) = theirs {
                    rules(&theirs);
                }
            }
            Err(e) => {
                skipped += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(error) = first_error {
        m::counter(m::EVENTS_UNDECODABLE).increment(skipped);
        tracing::error!(%error, skipped, "events topic records skipped");
    }
}

/// Every record of the events topic brings its own time; none falls back to a clock.
fn no_time() -> UnixMillis {
    UnixMillis(0)
}

/// Applies the message `at` if this correlator owns its partition and has not applied it yet
/// (a message fetched before its partition moved belongs to the next owner).
pub(super) fn consume(
    owned: &mut HashMap<i32, Owned>,
    consumed: &Counter,
    at: MessageAt,
    payload: &[u8],
    out: &mut Vec<OutboundMessage>,
    routed: &mut Vec<Routed>,
) {
    if let Some(owned) = owned.get_mut(&at.partition).filter(|o| at.offset >= o.next) {
        owned.apply(at, payload, out, routed);
        owned.next = at.offset + 1;
        consumed.increment(1);
    }
}
