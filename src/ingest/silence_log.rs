//! Kafka mode: silences on a compacted topic (`pipeline.silences_topic`, one partition), so
//! that a silence made through any instance applies on every partition and survives a restart
//! of every instance.
//!
//! A record is one silence, keyed by its id, its value what the API shows of it plus the
//! format version: `{"v":1,"id":"sil_...","matchers":[{"name":"source","op":"=","value":"db-1"}],
//! "starts_at":"...","ends_at":"...","created_by":"...","comment":"...","created_at":"..."}`.
//! Expiring a silence writes it again with its new `ends_at`; the last record of an id wins.
//! The API answers only once the broker has the record (503 otherwise). Every instance reads
//! the whole topic before its correlator starts, then follows it: a silence made elsewhere
//! applies here within a poll (well under a second).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::KafkaConfig;
use crate::correlate::silence::Silence;
use crate::matchers::{Matcher, RawMatcher};
use crate::pipeline::Intake;
use crate::publish::kafka::{client_config, KafkaSetupError};
use crate::publish::renew::Renewing;
use crate::time::UnixMillis;

use super::silences::SilenceStore;

/// The record format's version.
const VERSION: u32 = 1;

/// How long a write may wait for the broker before the API answers 503.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The silences topic: written by the API, read by every instance.
pub struct SilenceLog {
    producer: Renewing<FutureProducer>,
    topic: String,
    reader: ClientConfig,
}

#[derive(Serialize)]
struct Written<'a> {
    v: u32,
    #[serde(flatten)]
    silence: crate::correlate::silence::SilenceView<'a>,
}

#[derive(Deserialize)]
struct Read {
    v: u32,
    id: String,
    matchers: Vec<RawMatcher>,
    starts_at: UnixMillis,
    ends_at: UnixMillis,
    created_by: String,
    #[serde(default)]
    comment: String,
    created_at: UnixMillis,
}

/// One silence as a record of the silences topic (and a line of memory mode's silences file).
pub fn encode(silence: &Silence, now: UnixMillis) -> Vec<u8> {
    serde_json::to_vec(&Written {
        v: VERSION,
        silence: silence.view(now),
    })
    .expect("a silence serializes")
}

/// A silence from what [`encode`] wrote.
pub fn decode_silence(value: &[u8]) -> Result<Silence, String> {
    match decode(None, Some(value))? {
        Ok(silence) => Ok(silence),
        Err(_) => Err("not a silence".into()),
    }
}

/// One silence as its record says, or the id of a removed one (a tombstone).
fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Result<Silence, String>, String> {
    let Some(value) = value else {
        let id = key.map(|k| String::from_utf8_lossy(k).into_owned());
        return id
            .map(Err)
            .ok_or_else(|| "a tombstone without a key".to_string());
    };
    let read: Read = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    if read.v > VERSION {
        return Err(format!(
            "record version {} is newer than this sluice reads",
            read.v
        ));
    }
    let matchers = read
        .matchers
        .iter()
        .map(|m| Matcher::new(&m.name, &m.op, &m.value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("matchers: {e}"))?;
    Ok(Ok(Silence {
        id: read.id,
        matchers,
        starts_at: read.starts_at,
        ends_at: read.ends_at,
        created_by: read.created_by,
        comment: read.comment,
        created_at: read.created_at,
    }))
}

impl SilenceLog {
    pub fn connect(
        kafka: &KafkaConfig,
        bootstrap: &str,
        topic: &str,
        group_id: &str,
    ) -> Result<Self, KafkaSetupError> {
        let producer = Renewing::idempotent("silences", kafka, bootstrap, WRITE_TIMEOUT)?;
        let mut reader = client_config(kafka, bootstrap);
        reader
            .set("group.id", format!("{group_id}.silences"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true");
        Ok(SilenceLog {
            producer,
            topic: topic.to_string(),
            reader,
        })
    }

    /// Writes `silence` (as of `now`) and waits for the broker to have it.
    pub async fn write(&self, silence: &Silence, now: UnixMillis) -> Result<(), KafkaError> {
        let body = encode(silence, now);
        let (generation, producer) = self.producer.get();
        let record = FutureRecord::to(&self.topic)
            .partition(0)
            .key(&silence.id)
            .payload(&body);
        match producer.send(record, WRITE_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err((e, _)) => {
                self.producer.renew_after(generation, &producer, &e);
                Err(e)
            }
        }
    }

    /// Every silence the topic holds (the last record of each id, removed ids left out), and
    /// the offset to follow it from. Blocking.
    pub fn load(&self) -> Result<(Vec<Silence>, i64), KafkaError> {
        let reader: BaseConsumer = self.reader.create()?;
        let (_, end) = reader.fetch_watermarks(&self.topic, 0, Duration::from_secs(10))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, Offset::Beginning)?;
        reader.assign(&tpl)?;
        let mut all: Vec<Silence> = Vec::new();
        let mut next = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while next < end && std::time::Instant::now() < deadline {
            match reader.poll(Duration::from_millis(500)) {
                Some(Ok(msg)) => {
                    next = msg.offset() + 1;
                    apply(&mut all, msg.key(), msg.payload());
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        if next < end {
            // Starting with part of the silences would publish what they silence.
            return Err(KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        Ok((all, next))
    }

    /// Follows the topic from `from`, merging each silence into `store` (which sends the
    /// silences in force on through `intake`), until `stop`.
    pub fn follow(
        self: Arc<Self>,
        store: Arc<SilenceStore>,
        intake: Intake,
        clock: Clock,
        from: i64,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let reader: BaseConsumer = match self.reader.create() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot follow the silences topic");
                    return;
                }
            };
            let mut tpl = TopicPartitionList::new();
            let _ = tpl.add_partition_offset(&self.topic, 0, Offset::Offset(from));
            if let Err(e) = reader.assign(&tpl) {
                tracing::error!(error = %e, "cannot follow the silences topic");
                return;
            }
            let reader = Arc::new(reader);
            while !*stop.borrow() {
                let poll = Arc::clone(&reader);
                let batch = tokio::task::spawn_blocking(move || {
                    let mut batch = Vec::new();
                    if let Some(first) = poll.poll(Duration::from_millis(200)) {
                        batch.push(first.map(|m| {
                            (m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec))
                        }));
                        while let Some(more) = poll.poll(Duration::ZERO) {
                            batch.push(more.map(|m| {
                                (m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec))
                            }));
                        }
                    }
                    batch
                })
                .await
                .unwrap_or_default();
                let mut changed = false;
                for item in batch {
                    match item {
                        Ok((key, value)) => {
                            changed |=
                                store.merge(|all| apply(all, key.as_deref(), value.as_deref()));
                        }
                        Err(KafkaError::PartitionEOF(_)) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "silences topic");
                        }
                    }
                }
                if changed {
                    store.publish(clock.now(), &intake).await;
                }
            }
        })
    }
}

/// Merges one record into `all`; whether it changed anything. Undecodable records are logged
/// and skipped.
fn apply(all: &mut Vec<Silence>, key: Option<&[u8]>, value: Option<&[u8]>) -> bool {
    match decode(key, value) {
        Ok(Ok(silence)) => match all.iter_mut().find(|s| s.id == silence.id) {
            Some(same) if *same == silence => false,
            Some(old) => {
                *old = silence;
                true
            }
            None => {
                all.push(silence);
                true
            }
        },
        Ok(Err(id)) => {
            let before = all.len();
            all.retain(|s| s.id != id);
            all.len() != before
        }
        Err(error) => {
            tracing::error!(%error, "silences topic record skipped");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silence_round_trips_through_its_record_and_the_last_record_of_an_id_wins() {
        let s = Silence {
            id: "sil_1".into(),
            matchers: vec![Matcher::new("labels.team", "=~", "db|ops").unwrap()],
            starts_at: UnixMillis(1_700_000_000_000),
            ends_at: UnixMillis(1_700_000_360_000),
            created_by: "ana".into(),
            comment: "upgrade".into(),
            created_at: UnixMillis(1_699_999_999_000),
        };
        let body = serde_json::to_vec(&Written {
            v: VERSION,
            silence: s.view(UnixMillis(0)),
        })
        .unwrap();
        let mut all = Vec::new();
        assert!(apply(&mut all, Some(b"sil_1"), Some(&body)));
        assert_eq!(all, vec![s.clone()]);
        assert!(
            !apply(&mut all, Some(b"sil_1"), Some(&body)),
            "the same again"
        );
        let mut expired = s.clone();
        expired.ends_at = UnixMillis(1_700_000_100_000);
        let body = serde_json::to_vec(&Written {
            v: VERSION,
            silence: expired.view(UnixMillis(0)),
        })
        .unwrap();
        assert!(apply(&mut all, Some(b"sil_1"), Some(&body)));
        assert_eq!(all, vec![expired]);
        assert!(
            apply(&mut all, Some(b"sil_1"), None),
            "a tombstone removes it"
        );
        assert!(all.is_empty());
        assert!(
            !apply(&mut all, None, Some(b"{\"v\":1}")),
            "bad records are skipped"
        );
        assert!(!apply(&mut all, None, Some(b"{\"v\":2,\"id\":\"x\",\"matchers\":[],\"starts_at\":0,\"ends_at\":0,\"created_by\":\"a\",\"created_at\":0}")));
    }
}
