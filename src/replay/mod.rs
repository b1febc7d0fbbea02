//! `sluice replay`: runs a recorded request stream through the same ingest router and
//! correlator, on a simulated clock and without Kafka, and prints every message exactly as it
//! would go to Kafka (one JSON body per line), with a summary of what correlation did.
//!
//! One input line is one recorded request, in arrival order, in the recording format
//! (`crate::recording`, versioned) that `sluice serve --record` writes; or one record of the
//! events topic in the event wire format (`event::wire`: a dump of Kafka mode's pipeline),
//! a watermark moving time (a `routed` record is skipped: the event it came from re-routes
//! again). The run ends by advancing the clock past every pending timer, so every incident
//! says what it would have said.
//!
//! Or, when the first line is one, messages of the events topic as `sluice tail --topic
//! sluice.events --format json` prints them: then each partition runs on its own shard and
//! clock, in offset order, exactly as Kafka mode's correlators run it, and nothing is flushed
//! at the end ([`events_dump`]): the output is what the correlators published, each message
//! once.

use std::fmt;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::clock::Clock;
use crate::config::Config;
use crate::correlate::{Inline, Input, Stats};
use crate::event::wire::{self, Record};
use crate::ingest::admin::Health;
use crate::ingest::body::BodyLimits;
use crate::ingest::integrations::settings::SettingsByKind;
use crate::ingest::router::Router;
use crate::pipeline::partition;
use crate::publish::encode::{MessageKind, OutboundMessage};
use crate::publish::MemorySink;
use crate::recording::Recorded;
use crate::time::{parse_timestamp, Timestamp, UnixMillis};

pub mod compare;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// How fast simulated time runs against the wall clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// As fast as possible.
    Max,
    /// `n` times real time (1 = as recorded).
    Times(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "max" => Ok(Speed::Max),
            n => match n.parse::<f64>() {
                Ok(f) if f > 0.0 && f.is_finite() => Ok(Speed::Times(f)),
                _ => Err(format!("{s:?}: expected max or a positive factor like 10")),
            },
        }
    }
}

/// What the run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub requests: u64,
    pub rejected_requests: u64,
    /// Events-topic records (wire format) replayed as they are.
    pub records: u64,
    pub stats: Stats,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        let incidents = s.messages[MessageKind::Opened.index()];
        writeln!(
            f,
            "requests: {} ({} rejected)",
            self.requests, self.rejected_requests
        )?;
        if self.records > 0 {
            writeln!(f, "events-topic records: {}", self.records)?;
        }
        writeln!(f, "events: {} (+{} change events)", s.events, s.changes)?;
        writeln!(f, "alerts: {}", s.alerts_opened)?;
        writeln!(
            f,
            "incidents opened: {} ({} published)",
            s.incidents_opened, incidents
        )?;
        // Liveness records are the running instances' own, never a replay's.
        let by_type: Vec<String> = MessageKind::ALL
            .iter()
            .filter(|k| **k != MessageKind::Liveness)
            .map(|k| format!("{} {}", k.as_str(), s.messages[k.index()]))
            .collect();
        writeln!(f, "messages: {}", by_type.join(", "))?;
        writeln!(
            f,
            "events suppressed: dedup {}, silence {}, inhibit {}, transient {}, threshold {}, flap {}",
            s.dedup, s.silence, s.inhibit, s.transient, s.threshold, s.flap
        )?;
        let joins: Vec<String> = crate::event::LinkKind::ALL
            .iter()
            .map(|k| format!("{} {}", k.as_str(), s.joined_by[*k as usize]))
            .collect();
        writeln!(f, "auto grouping joins: {}", joins.join(", "))?;
        writeln!(f, "incidents held by a learned pause: {}", s.learned)?;
        writeln!(
            f,
            "dropped (ack/resolve with no open alert): {}; past a cap: {}",
            s.dropped, s.caps_reached
        )?;
        let compression = if s.events == 0 {
            0.0
        } else {
            1.0 - incidents as f64 / s.events as f64
        };
        write!(f, "compression: {:.4} (1 - incidents/events)", compression)
    }
}

/// Replays `input`, writing each message body as a line to `out`.
pub async fn run(
    config: &Config,
    input: impl BufRead,
    speed: Speed,
    out: &mut impl Write,
) -> Result<Summary, ReplayError> {
    let mut lines = input.lines().enumerate().peekable();
    if let Some((_, Ok(first))) = lines.peek() {
        if is_tailed_message(first) {
            return run_tailed(config, lines, out);
        }
    }
    let mut write = |msg: &OutboundMessage| {
        out.write_all(&msg.body)?;
        out.write_all(b"\n")
    };
    run_each(config, lines, speed, &mut write).await
}

/// Replays recorded requests (or events-topic records), handing each message to `each` as
/// it is decided.
pub async fn run_each(
    config: &Config,
    lines: impl Iterator<Item = (usize, std::io::Result<String>)>,
    speed: Speed,
    each: &mut dyn FnMut(&OutboundMessage) -> std::io::Result<()>,
) -> Result<Summary, ReplayError> {
    let mut lines = lines.peekable();
    let start = match lines.peek() {
        Some((_, Ok(first))) => Recorded::from_line(first)
            .ok()
            .and_then(|r| at(&r.at))
            .unwrap_or(UnixMillis(0)),
        _ => UnixMillis(0),
    };
    let clock = Clock::manual(start);
    let sink = Arc::new(MemorySink::default());
    let (inline, intake) =
        crate::pipeline::local::inline(&config.correlate, clock.clone(), sink.clone());
    let health = Arc::new(Health::new(sink.clone(), Arc::default()));
    let router = Router::new(
        intake,
        clock.clone(),
        health,
        crate::metrics::install(),
        BodyLimits {
            max_body_bytes: config.server.max_body_bytes,
            body_read_timeout: config.server.body_read_timeout,
        },
    )
    .with_integrations(SettingsByKind::checked(&config.integrations)?);

    let mut summary = Summary::default();
    let mut last = start;
    let write = |each: &mut dyn FnMut(&OutboundMessage) -> std::io::Result<()>| {
        sink.take().iter().try_for_each(each)
    };
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| ReplayError::Line {
            line: line_no,
            message,
        };
        // A recorded request (the usual line), else a record of the events topic; a line that
        // is neither is refused with the recording format's reason.
        let rec = match Recorded::from_line(&line) {
            Ok(rec) => rec,
            Err(not_recorded) => {
                let record = wire::decode(line.as_bytes()).map_err(|_| bad(not_recorded))?;
                let now = record_time(&record).max(last);
                pace(speed, last, now).await;
                last = now;
                apply_record(&inline, record, now);
                summary.records += 1;
                write(each)?;
                continue;
            }
        };
        let now = at(&rec.at)
            .ok_or_else(|| bad(format!("'at' {:?} is not an RFC 3339 date-time", rec.at)))?;
        if now < last {
            return Err(bad(format!(
                "'at' {} is before the previous line's {last}: lines must be in arrival order",
                rec.at
            )));
        }
        pace(speed, last, now).await;
        last = now;
        let body = Bytes::from(rec.body_bytes().map_err(bad)?);
        inline
            .lock()
            .expect("inline correlator lock")
            .advance_to(now);
        let mut req = Request::post(rec.path.as_str());
        for (k, v) in rec.headers.iter().flatten() {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| bad(format!("not a request: {e}")))?;
        let resp = router.handle(req).await;
        summary.requests += 1;
        if !resp.status().is_success() {
            summary.rejected_requests += 1;
            tracing::warn!(line = line_no, status = resp.status().as_u16(), path = %rec.path, "request refused");
        }
        write(each)?;
    }
    let mut inline = inline.lock().expect("inline correlator lock");
    inline.finish();
    summary.stats = inline.stats();
    drop(inline);
    write(each)?;
    Ok(summary)
}

/// The time an events-topic record brings.
fn record_time(record: &Record) -> UnixMillis {
    match record {
        Record::Event(e) | Record::Routed { event: e, .. } => e.received_at,
        Record::Change(c) => c.received_at,
        Record::Command(c) => c.received_at,
        Record::Watermark { at, .. } => *at,
    }
}

/// Applies one events-topic record at `now`. A routed record is skipped: the event it came from
/// is in the stream too, and its event rules re-route it again here.
fn apply_record(inline: &Mutex<Inline>, record: Record, now: UnixMillis) {
    let mut inline = inline.lock().expect("inline correlator lock");
    inline.advance_to(now);
    let n = inline.shards();
    let input = match record {
        Record::Event(e) => Some((partition(&e.routing_key, n), Input::Event(e))),
        Record::Routed { .. } => None,
        Record::Change(c) => Some((partition(&c.routing_key, n), Input::Change(c))),
        Record::Command(c) => Some((partition(&c.routing_key, n), Input::Command(c))),
        Record::Watermark { .. } => None,
    };
    inline.apply(input.into_iter());
}

/// Waits out the simulated time from `last` to `now` at `speed`.
async fn pace(speed: Speed, last: UnixMillis, now: UnixMillis) {
    if let Speed::Times(factor) = speed {
        tokio::time::sleep(Duration::from_secs_f64(
            now.saturating_sub(last).as_secs_f64() / factor,
        ))
        .await;
    }
}

fn at(s: &str) -> Option<UnixMillis> {
    match parse_timestamp(s)? {
        Timestamp::At(t) => Some(t),
        Timestamp::Unset => None,
    }
}

/// One message of the events topic as `sluice tail --format json` prints it: its partition,
/// offset and payload (a JSON string when the payload holds several records).
#[derive(serde::Deserialize)]
struct TailedMessage<'a> {
    partition: i32,
    offset: i64,
    #[serde(borrow)]
    value: &'a serde_json::value::RawValue,
}

impl TailedMessage<'_> {
    fn payload(&self) -> Vec<u8> {
        match serde_json::from_str::<String>(self.value.get()) {
            Ok(text) => text.into_bytes(),
            Err(_) => self.value.get().as_bytes().to_vec(),
        }
    }
}

/// Whether `line` is a message of a topic as `sluice tail --format json` prints it.
pub fn is_tailed_message(line: &str) -> bool {
    serde_json::from_str::<TailedMessage>(line).is_ok()
}

/// Runs a dump of the events topic (`(partition, offset, payload)` of each message, in any
/// order, repeats allowed) as Kafka mode's correlators do: each partition on its own shard and
/// its own time, its messages in offset order, nothing flushed at the end. Events re-routed to
/// another partition are not handed on: the correlators wrote them there, and the dump holds
/// them as that partition's `routed` records. Returns every
/// message the correlators would have published, partition after partition, and the stats.
pub fn events_dump(
    config: &Config,
    messages: impl IntoIterator<Item = (i32, i64, Vec<u8>)>,
) -> (Vec<crate::publish::encode::OutboundMessage>, Stats) {
    let mut partitions: std::collections::BTreeMap<i32, std::collections::BTreeMap<i64, Vec<u8>>> =
        Default::default();
    for (p, offset, payload) in messages {
        partitions.entry(p).or_default().insert(offset, payload);
    }
    let of = config.pipeline.partitions as usize;
    let mut out = Vec::new();
    let mut stats = Stats::default();
    let mut routed = Vec::new();
    for (&partition, messages) in &partitions {
        let part = crate::correlate::Part {
            index: partition as usize,
            of,
        };
        let shard = crate::correlate::build_shard(&config.correlate, part);
        let mut timed = crate::correlate::TimedShard::new(shard);
        for (&offset, payload) in messages {
            let at = crate::pipeline::kafka::MessageAt {
                partition,
                offset,
                partitions: of,
                floor: 0,
            };
            crate::pipeline::kafka::apply_message(
                &mut timed,
                at,
                payload,
                &mut out,
                &mut routed,
                |_| {},
            );
            routed.clear();
        }
        stats.add(&timed.shard.stats);
    }
    (out, stats)
}

/// [`events_dump`] of `sluice tail --format json` lines, each message body written as a line.
fn run_tailed(
    config: &Config,
    lines: impl Iterator<Item = (usize, std::io::Result<String>)>,
    out: &mut impl Write,
) -> Result<Summary, ReplayError> {
    let mut messages = Vec::new();
    for (i, line) in lines {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let m: TailedMessage = serde_json::from_str(&line).map_err(|e| ReplayError::Line {
            line: i + 1,
            message: format!("not a message as `sluice tail --format json` prints it: {e}"),
        })?;
        messages.push((m.partition, m.offset, m.payload()));
    }
    let mut summary = Summary {
        records: messages.len() as u64,
        ..Summary::default()
    };
    let (published, stats) = events_dump(config, messages);
    for msg in published {
        out.write_all(&msg.body)?;
        out.write_all(b"\n")?;
    }
    summary.stats = stats;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tailed_messages_give_their_partition_offset_and_payload() {
        let several = r#"{"topic":"sluice.events","partition":2,"offset":7,"key":"rk","headers":{},"value":"{\"v\":1}\n{\"v\":1}"}"#;
        let one = r#"{"topic":"sluice.events","partition":0,"offset":1,"key":"","headers":{},"value":{"v":1,"type":"watermark","at":5}}"#;
        assert!(is_tailed_message(several) && is_tailed_message(one));
        assert!(!is_tailed_message(r#"{"v":1,"type":"watermark","at":5}"#));
        let m: TailedMessage = serde_json::from_str(several).unwrap();
        assert_eq!((m.partition, m.offset), (2, 7));
        assert_eq!(m.payload(), b"{\"v\":1}\n{\"v\":1}");
        let m: TailedMessage = serde_json::from_str(one).unwrap();
        assert_eq!(m.payload(), br#"{"v":1,"type":"watermark","at":5}"#);
    }

    #[test]
    fn an_events_dump_runs_each_partition_on_its_own_time_once_per_offset() {
        let config = Config::from_toml(
            "[pipeline]\npartitions = 2\n[[correlate.rules]]\ngroup_wait = \"10s\"\npause_transient = \"0s\"",
            Vec::new(),
        )
        .unwrap();
        let mut e = crate::event::Event::new(
            crate::integration::Integration::PagerDuty,
            crate::event::Action::Trigger,
            "rk".into(),
            "k".into(),
            UnixMillis(1_000),
        );
        e.summary = "s".into();
        let mut trigger = Vec::new();
        wire::encode_event(&e, &mut trigger);
        let p = partition("rk", 2) as i32;
        let mut late = Vec::new();
        wire::encode_watermark(UnixMillis(20_000), None, &mut late);
        // A watermark on the other partition moves only that partition's time: no `opened`.
        let (out, _) = events_dump(&config, [(p, 0, trigger.clone()), (1 - p, 0, late.clone())]);
        assert!(out.is_empty());
        // On its own partition it does; the same message twice (a dump read twice) is applied once.
        let (out, stats) = events_dump(
            &config,
            [(p, 0, trigger.clone()), (p, 0, trigger), (p, 1, late)],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(stats.events, 1);
    }
}
