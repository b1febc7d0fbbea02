//! `sluice tail`: follows a topic from a given offset and prints one message per line (key,
//! headers, JSON body), like `kcat -C`. It assigns every partition directly, so it needs no
//! consumer group and commits nothing.

use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Beginning,
    End,
    At(i64),
}

impl std::str::FromStr for Start {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "beginning" => Ok(Start::Beginning),
            "end" => Ok(Start::End),
            n => n
                .parse()
                .map(Start::At)
                .map_err(|_| format!("{s:?}: expected beginning, end or an offset")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `key=<key> <header>=<value> ... <body>`
    Text,
    /// `{"topic","partition","offset","key","headers":{...},"value":<body>}`
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            _ => Err(format!("{s:?}: expected text or json")),
        }
    }
}

/// One line of `--format json`; the body is embedded as it was sent, field order and all.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: &'a str,
    headers: std::collections::BTreeMap<&'a str, &'a str>,
    value: &'a serde_json::value::RawValue,
}

pub struct TailOptions {
    pub brokers: String,
    pub topic: String,
    pub start: Start,
    /// Stop after this long with no message (None: follow forever).
    pub idle_exit: Option<Duration>,
    /// Stop after this many messages.
    pub max_messages: Option<u64>,
    pub format: Format,
}

/// Prints messages to `out` until idle or the count is reached; returns how many it printed.
pub fn tail(opts: &TailOptions, out: &mut impl Write) -> Result<u64, KafkaError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &opts.brokers)
        .set("group.id", "sluice-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(&opts.topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == opts.topic)
        .map_or(0, |t| t.partitions().len());
    let offset = match opts.start {
        Start::Beginning => Offset::Beginning,
        Start::End => Offset::End,
        Start::At(n) => Offset::Offset(n),
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(&opts.topic, p, offset)?;
    }
    consumer.assign(&tpl)?;

    let mut printed = 0u64;
    let mut last = Instant::now();
    loop {
        if opts.max_messages.is_some_and(|max| printed >= max) {
            break;
        }
        if opts.idle_exit.is_some_and(|idle| last.elapsed() >= idle) {
            break;
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg?;
        last = Instant::now();
        let key = msg.key().map(String::from_utf8_lossy).unwrap_or_default();
        let body = msg
            .payload()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let headers: Vec<(String, String)> = msg
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            h.value
                                .map(String::from_utf8_lossy)
                                .unwrap_or_default()
                                .into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let line = match opts.format {
            Format::Text => {
                let mut line = format!("key={key}");
                for (k, v) in &headers {
                    line.push_str(&format!(" {k}={v}"));
                }
                format!("{line} {body}")
            }
            Format::Json => {
                let value = serde_json::value::RawValue::from_string(body.into_owned())
                    .unwrap_or_else(|e| {
                        serde_json::value::to_raw_value(&e.to_string())
                            .expect("a string serializes")
                    });
                let line = JsonLine {
                    topic: msg.topic(),
                    partition: msg.partition(),
                    offset: msg.offset(),
                    key: &key,
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                    value: &value,
                };
                serde_json::to_string(&line).expect("a tail line serializes")
            }
        };
        if writeln!(out, "{line}").is_err() {
            break;
        }
        printed += 1;
    }
    Ok(printed)
}
