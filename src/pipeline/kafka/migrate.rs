//! `sluice migrate --from OLD --to NEW`: moving Kafka mode to another partition count (or to
//! other topics, or another cluster), keeping every open alert and incident.
//!
//! With no correlator of the old configuration running, every partition of the old events
//! topic is restored as its next owner would restore it (its snapshot at the old group's
//! committed state offset, then the events after it up to the committed events offset), the
//! state is divided by routing key among the new partition count (`Shard::redistribute`: every
//! incident goes on as it would have, the same ids, seqs and bodies), and each new partition's
//! share is written as a snapshot to the new state topic. The new group's offsets are then
//! committed: events partition `q` at 0 and state partition `q` at its snapshot's header, so
//! a correlator of the new configuration restores the migrated state and processes the new
//! events topic from its start, whatever ingest instances of the new configuration wrote to it
//! meanwhile.
//!
//! The migration joins the old group as a member for as long as it runs, so no correlator of
//! the old configuration works meanwhile. Refused, changing nothing, when the group gives it
//! only some partitions (another member is alive), when an old partition holds
//! events after its committed offset (they were accepted but not processed: a correlator of the
//! old configuration must process them first), or when the new group already has offsets on
//! the new events topic (its correlators ran, or the migration is done).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::{Brokers, Config, PipelineMode};
use crate::correlate::{self, Shard, TimedShard};
use crate::event::wire::{self, Record};
use crate::pipeline::{partition, rules_hash};
use crate::publish::kafka::{client_config, ensure_topic, KafkaSetupError};
use crate::publish::renew::Renewing;
use crate::time::UnixMillis;

use super::produce::DELIVERY_TIMEOUT;
use super::restore::{committed, reader_config, Restorer};
use super::{state, SEEK_BACK};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Config(String),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    #[error(
        "the group {group} gave the migration {given} of its {partitions} partitions: another \
         member holds the rest. Stop every instance of the old configuration that runs the \
         correlate role first"
    )]
    GroupActive {
        group: String,
        given: usize,
        partitions: usize,
    },
    #[error(
        "partition {partition} of {topic} holds {records} event record(s) after the group's \
         committed offset {committed}: they were accepted but not correlated yet. Stop the \
         ingest instances of the old configuration, run one of its correlators until \
         sluice_consumer_lag is 0 everywhere, stop it, and migrate again"
    )]
    Unprocessed {
        topic: String,
        partition: i32,
        committed: i64,
        records: u64,
    },
    #[error(
        "the group {group} already has committed offsets on {topic}: correlators of the new \
         configuration ran, or this migration is done. Migrate to a group_id of its own"
    )]
    NewGroupUsed { group: String, topic: String },
}

impl From<KafkaError> for MigrateError {
    fn from(e: KafkaError) -> Self {
        MigrateError::Kafka(e.to_string())
    }
}

/// Moves the state of `from`'s events topic to `to`'s partitions (see the module doc), writing
/// what it does to `report`.
pub async fn migrate(
    from: &Config,
    to: &Config,
    report: &mut dyn Write,
) -> Result<(), MigrateError> {
    let started = Instant::now();
    let (old, new) = (&from.pipeline, &to.pipeline);
    let (old_brokers, new_brokers) = (brokers(from, "--from")?, brokers(to, "--to")?);
    if old_brokers == new_brokers {
        for (key, a, b) in [
            ("events_topic", &old.events_topic, &new.events_topic),
            ("state_topic", &old.state_topic, &new.state_topic),
            ("group_id", &old.group_id, &new.group_id),
        ] {
            if a == b {
                return Err(MigrateError::Config(format!(
                    "pipeline.{key} is {a} in both configs: on one cluster the new \
                     configuration needs its own events topic, state topic and group"
                )));
            }
        }
    }
    if old.silences_topic != new.silences_topic {
        let _ = writeln!(
            report,
            "note: pipeline.silences_topic differs ({} -> {}): silences are not moved",
            old.silences_topic, new.silences_topic
        );
    }
    let (old_rules, new_rules) = (rules_hash(from), rules_hash(to));
    if old_rules != new_rules {
        let _ = writeln!(report, "note: the configs' rules differ ({old_rules} -> {new_rules}): the snapshots are written under the old ones and the new correlators adopt them by rule name (they log RULES DIFFER once)");
    }
    // Reads never change the old group's offsets.
    let reader = reader_config(
        &from.kafka,
        old_brokers,
        &format!("{}.migrate", old.group_id),
    );
    let old_group = tokio::task::block_in_place(|| {
        hold_group(
            &from.kafka,
            old_brokers,
            &old.group_id,
            &old.events_topic,
            old.partitions as usize,
            old.session_timeout,
        )
    })?;

    let rules: Arc<str> = old_rules.as_str().into();
    let restorer = Restorer {
        reader: &reader,
        events_topic: &old.events_topic,
        state_topic: &old.state_topic,
        correlate: &from.correlate,
        partitions: old.partitions as usize,
        rules: &rules,
    };
    let mut shards = Vec::with_capacity(old.partitions as usize);
    let mut time = UnixMillis(0);
    for p in 0..old.partitions {
        let (owned, restored) = tokio::task::block_in_place(|| {
            let (until, state_at) = committed(&old_group, &old.events_topic, &old.state_topic, p)
                .map_err(MigrateError::Kafka)?;
            let records = unprocessed(&reader, &old.events_topic, p, until)?;
            if records > 0 {
                return Err(MigrateError::Unprocessed {
                    topic: old.events_topic.clone(),
                    partition: p,
                    committed: until,
                    records,
                });
            }
            restorer
                .restore(p, until, state_at)
                .map_err(MigrateError::Kafka)
        })?;
        let shard = &owned.timed.shard;
        let _ = writeln!(
            report,
            "old partition {p}: restored from {} + {} record(s) up to offset {}: {} open alert(s) in {} incident(s)",
            restored.source,
            restored.records,
            owned.next,
            shard.open_alerts(),
            shard.open_incidents()
        );
        time = time.max(owned.timed.time());
        shards.push(owned.timed.shard);
    }

    let n = new.partitions as usize;
    let mut moved: Vec<Shard> = (0..n)
        .map(|index| correlate::build_shard(&from.correlate, correlate::Part { index, of: n }))
        .collect();
    Shard::redistribute(shards, &mut moved, partition);

    ensure_topic(
        &to.kafka,
        new_brokers,
        &new.events_topic,
        new.partitions,
        &[],
    )
    .await?;
    super::ensure_state_topic(&to.kafka, new_brokers, &new.state_topic, new.partitions).await?;
    let new_group: BaseConsumer = group_member(&to.kafka, new_brokers, &new.group_id).create()?;
    for q in 0..new.partitions {
        let (_, state_at) = tokio::task::block_in_place(|| {
            committed(&new_group, &new.events_topic, &new.state_topic, q)
        })
        .map_err(MigrateError::Kafka)?;
        if state_at.is_some() {
            return Err(MigrateError::NewGroupUsed {
                group: new.group_id.clone(),
                topic: new.state_topic.clone(),
            });
        }
    }

    let producer = Renewing::idempotent("migrate", &to.kafka, new_brokers, DELIVERY_TIMEOUT)?;
    let writer = state::StateWriter::new(Arc::new(producer), new.state_topic.clone());
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut offsets = TopicPartitionList::new();
    for (q, shard) in moved.into_iter().enumerate() {
        let q = q as i32;
        let (alerts, incidents) = (shard.open_alerts(), shard.open_incidents());
        let bytes = TimedShard::at(shard, time).snapshot();
        let header = state::Header {
            v: state::VERSION,
            partition: q,
            snapshot: format!("1.migrate.{id}"),
            epoch: 1,
            events_offset: 0,
            time,
            chunks: 0,
            first_chunk: 0,
            bytes: 0,
            rules: old_rules.clone(),
        };
        let (header, at) = writer.write(q, header, &bytes).await?;
        let _ = writeln!(
            report,
            "new partition {q}: {alerts} open alert(s) in {incidents} incident(s), snapshot of {} bytes at offset {at} of {}",
            header.bytes, new.state_topic
        );
        offsets.add_partition_offset(&new.events_topic, q, Offset::Offset(0))?;
        offsets.add_partition_offset(&new.state_topic, q, Offset::Offset(at))?;
    }
    tokio::task::block_in_place(|| new_group.commit(&offsets, CommitMode::Sync))?;
    let _ = writeln!(
        report,
        "committed for group {}: {} partition(s) of {} from offset 0, each from its snapshot; took {:.1} s. Start the correlators of the new configuration now.",
        new.group_id,
        new.partitions,
        new.events_topic,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The bootstrap list of a Kafka-mode config on a real cluster.
fn brokers<'a>(config: &'a Config, flag: &str) -> Result<&'a str, MigrateError> {
    if config.pipeline.mode != PipelineMode::Kafka {
        return Err(MigrateError::Config(format!(
            "{flag}: pipeline.mode is not \"kafka\" (nor is SLUICE_PIPELINE=kafka set): only \
             Kafka mode keeps state to migrate"
        )));
    }
    match &config.kafka.brokers {
        Brokers::List(list) => Ok(list),
        Brokers::Embedded => Err(MigrateError::Config(format!(
            "{flag}: kafka.brokers is \"embedded\", which keeps nothing across restarts: \
             nothing to migrate"
        ))),
    }
}

/// A client of `group` that only reads and commits its offsets (it never joins the group).
fn group_member(kafka: &crate::config::KafkaConfig, bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = client_config(kafka, bootstrap);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    config
}

/// Joins `group` on `topic` as its only member, so no correlator of it runs meanwhile: the
/// consumer holding every one of its `partitions` (keep it until done). Refused when the
/// group shares them with another member (a live correlator, or one whose session has not
/// ended: the group waits for it first). Blocking.
fn hold_group(
    kafka: &crate::config::KafkaConfig,
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: usize,
    session: Duration,
) -> Result<BaseConsumer, MigrateError> {
    let mut config = group_member(kafka, bootstrap, group);
    config
        .set("session.timeout.ms", session.as_millis().to_string())
        // It polls only while joining: stay a member however long the migration takes.
        .set("max.poll.interval.ms", "86400000");
    let consumer: BaseConsumer = config.create()?;
    consumer.subscribe(&[topic])?;
    let wait = session * 3 + Duration::from_secs(10);
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        // Drives the join; records it fetches are not read.
        let _ = consumer.poll(Duration::from_millis(200));
        match consumer.assignment()?.count() {
            0 => {}
            n if n == partitions => return Ok(consumer),
            n => {
                return Err(MigrateError::GroupActive {
                    group: group.to_string(),
                    given: n,
                    partitions,
                })
            }
        }
    }
    Err(MigrateError::Kafka(format!(
        "the group {group} assigned nothing to the migration within {wait:?}"
    )))
}

/// Event, routed and change records of partition `p` from offset `from` on (watermarks do not
/// count: they only move time, and the new topic's records move it again; nor do records a
/// correlator would skip as not the wire format). Blocking.
fn unprocessed(reader: &ClientConfig, topic: &str, p: i32, from: i64) -> Result<u64, MigrateError> {
    let consumer: BaseConsumer = reader.create()?;
    let (_, end) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
    if end <= from {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    // From before `from`, skipping what is before it (see `SEEK_BACK`).
    tpl.add_partition_offset(topic, p, Offset::Offset((from - SEEK_BACK).max(0)))?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut records = 0;
    let mut next = from;
    while next < end {
        if Instant::now() > deadline {
            return Err(MigrateError::Kafka(format!(
                "partition {p} of {topic}: read up to offset {next} of {end} within 60 s"
            )));
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(msg)) if msg.offset() < from => {}
            Some(Ok(msg)) => {
                let payload = msg.payload().unwrap_or_default();
                records += payload
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .filter(|l| {
                        matches!(
                            wire::decode(l),
                            Ok(Record::Event(_) | Record::Routed { .. } | Record::Change(_))
                        )
                    })
                    .count() as u64;
                next = msg.offset() + 1;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(records)
}
