//! Partition state on the state topic: the snapshots a partition's owner writes, and the one
//! its next owner restores from.
//!
//! The state topic has the events topic's partition count; events partition `p`'s snapshots
//! go to state partition `p`. A snapshot is `n` chunk records (key `p/<snapshot>/<i>`, at most
//! [`CHUNK_BYTES`] of the shard's snapshot each) followed by one header record (key `p`, a
//! [`Header`] in JSON). The header's offset is committed by the correlators' group as its
//! offset of state partition `p`, in the same offset commit as the events offset the snapshot
//! covers, so the two never disagree: a restore reads the header at the committed state
//! offset, its chunks, and then replays only the events from the header's `events_offset`
//! to the committed events offset. Without a committed state offset (a new deployment, or one
//! from before snapshots), the partition is replayed from its start, as before.
//!
//! Each owner of a partition writes under its own epoch (the restored header's epoch plus
//! one) and a snapshot id unique to it, and a restore takes only the chunks whose key names
//! the header's snapshot: records written late by a former owner are never read as part of
//! the current snapshot. After a snapshot is committed, the previous one's records are
//! tombstoned, so a compacted state topic keeps about one snapshot per partition.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::publish::kafka::confirmed;
use crate::publish::renew::Renewing;
use crate::time::UnixMillis;

/// The most snapshot bytes in one record (below the 1 MB default record limit of brokers).
pub(super) const CHUNK_BYTES: usize = 900 * 1024;

/// The header format's version.
pub(super) const VERSION: u32 = 1;

/// A snapshot's header record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(super) struct Header {
    pub v: u32,
    pub partition: i32,
    /// Unique to its writer: `<epoch>.<instance>.<n>`.
    pub snapshot: String,
    /// The writer's owner epoch of the partition.
    pub epoch: u64,
    /// The snapshot holds the effect of every events record before this offset.
    pub events_offset: i64,
    /// The partition time it was made at.
    pub time: UnixMillis,
    pub chunks: u32,
    /// The offset of its first chunk record in the state partition.
    pub first_chunk: i64,
    pub bytes: u64,
    /// The fingerprint of the writer's rules (hex).
    pub rules: String,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum StateError {
    #[error("state topic: {0}")]
    Kafka(#[from] KafkaError),
    #[error("state topic: the header at offset {0} is not a snapshot header: {1}")]
    Header(i64, String),
    #[error("state topic: snapshot {snapshot} has {found} of its {chunks} chunks")]
    Chunks {
        snapshot: String,
        chunks: u32,
        found: u32,
    },
    #[error("state topic: nothing at offset {0} within {1:?}")]
    Missing(i64, Duration),
}

/// Writes snapshots to the state topic.
pub(super) struct StateWriter {
    producer: Arc<Renewing<FutureProducer>>,
    topic: String,
}

impl StateWriter {
    pub(super) fn new(producer: Arc<Renewing<FutureProducer>>, topic: String) -> Self {
        StateWriter { producer, topic }
    }

    /// The state topic.
    pub(super) fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes `bytes` as snapshot `header.snapshot` of partition `p`, chunks first, then the
    /// header (with `first_chunk`, `chunks` and `bytes` filled in); returns the header and
    /// its offset once every record is acknowledged.
    pub(super) async fn write(
        &self,
        p: i32,
        header: Header,
        bytes: &[u8],
    ) -> Result<(Header, i64), KafkaError> {
        let (generation, producer) = self.producer.get();
        let written = self.write_with(&producer, p, header, bytes).await;
        if let Err(e) = &written {
            self.producer.renew_after(generation, &producer, e);
        }
        written
    }

    async fn write_with(
        &self,
        producer: &FutureProducer,
        p: i32,
        mut header: Header,
        bytes: &[u8],
    ) -> Result<(Header, i64), KafkaError> {
        let mut first_chunk = None;
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
        let mut deliveries = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.iter().enumerate() {
            let key = chunk_key(p, &header.snapshot, i as u32);
            let record = FutureRecord::to(&self.topic)
                .partition(p)
                .key(&key)
                .payload(*chunk);
            deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
        }
        for delivery in deliveries {
            let delivery = confirmed(delivery).await.map_err(KafkaError::from)?;
            first_chunk.get_or_insert(delivery.offset);
        }
        header.chunks = chunks.len() as u32;
        header.first_chunk = first_chunk.unwrap_or(-1);
        header.bytes = bytes.len() as u64;
        let body = serde_json::to_vec(&header).expect("a header serializes");
        let key = p.to_string();
        let record = FutureRecord::to(&self.topic)
            .partition(p)
            .key(&key)
            .payload(&body);
        let delivery = producer.send_result(record).map_err(|(e, _)| e)?;
        let delivery = tokio::time::timeout(Duration::from_secs(10), confirmed(delivery))
            .await
            .map_err(|_| KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut))?
            .map_err(KafkaError::from)?;
        Ok((header, delivery.offset))
    }

    /// Tombstones the chunk records of a snapshot no longer pointed to (compaction drops
    /// them); best effort.
    pub(super) fn forget(&self, p: i32, old: &Header) {
        for i in 0..old.chunks {
            let key = chunk_key(p, &old.snapshot, i);
            let record = FutureRecord::<_, ()>::to(&self.topic)
                .partition(p)
                .key(&key);
            if let Err((e, _)) = self.producer.get().1.send_result(record) {
                tracing::debug!(error = %e, partition = p, "snapshot tombstone not queued");
                return;
            }
        }
    }
}

fn chunk_key(p: i32, snapshot: &str, i: u32) -> String {
    format!("{p}/{snapshot}/{i}")
}

/// Reads the snapshot whose header is at `at` in state partition `p`: the header and the
/// snapshot's bytes. Blocking.
pub(super) fn read(
    config: &ClientConfig,
    topic: &str,
    p: i32,
    at: i64,
) -> Result<(Header, Vec<u8>), StateError> {
    let reader: BaseConsumer = config.create()?;
    let header: Header = {
        let payload = read_one(&reader, topic, p, at)?;
        serde_json::from_slice(&payload).map_err(|e| StateError::Header(at, e.to_string()))?
    };
    if header.v > VERSION || header.partition != p {
        return Err(StateError::Header(
            at,
            format!("version {} of partition {}", header.v, header.partition),
        ));
    }
    let mut parts: Vec<Option<Vec<u8>>> = vec![None; header.chunks as usize];
    let prefix = format!("{p}/{}/", header.snapshot);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Offset(header.first_chunk.max(0)))?;
    reader.assign(&tpl)?;
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    let mut found = 0;
    while found < header.chunks && std::time::Instant::now() < deadline {
        match reader.poll(Duration::from_millis(500)) {
            Some(Ok(msg)) if msg.offset() >= at => break,
            Some(Ok(msg)) => {
                let index = msg
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .and_then(|k| k.strip_prefix(&prefix))
                    .and_then(|i| i.parse::<usize>().ok());
                if let Some(slot) = index.and_then(|i| parts.get_mut(i)) {
                    if slot.is_none() {
                        found += 1;
                    }
                    *slot = Some(msg.payload().unwrap_or_default().to_vec());
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    if found < header.chunks {
        return Err(StateError::Chunks {
            snapshot: header.snapshot,
            chunks: header.chunks,
            found,
        });
    }
    let mut bytes = Vec::with_capacity(header.bytes as usize);
    for part in parts.into_iter().flatten() {
        bytes.extend_from_slice(&part);
    }
    Ok((header, bytes))
}

/// How long a restore waits for the state topic's records.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

fn read_one(reader: &BaseConsumer, topic: &str, p: i32, at: i64) -> Result<Vec<u8>, StateError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Offset(at))?;
    reader.assign(&tpl)?;
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while std::time::Instant::now() < deadline {
        match reader.poll(Duration::from_millis(500)) {
            Some(Ok(msg)) if msg.offset() == at => {
                return Ok(msg.payload().unwrap_or_default().to_vec())
            }
            Some(Ok(_)) => {}
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Err(StateError::Missing(at, READ_TIMEOUT))
}
