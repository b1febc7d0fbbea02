//! `sluice tail`: follows a topic from a given offset and prints one message per line (key,
//! headers, JSON body), like `kcat -C`. It assigns every partition directly, so it needs no
//! consumer group and commits nothing. The cluster and topic come from the options, else from a
//! config's `[kafka]` ([`Source::resolve`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{defaults, Brokers, KafkaConfig, KafkaSecurity};

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

/// The cluster and topic to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub brokers: String,
    pub topic: String,
    /// librdkafka settings from the config's `kafka.properties` (client.id, ...).
    pub properties: BTreeMap<String, String>,
    /// The config's `[kafka.tls]` and `[kafka.sasl]`.
    pub security: KafkaSecurity,
}

impl Source {
    /// The options given win; what they leave out comes from `config` (the `[kafka]` of the
    /// file `--config` names, overrides applied), else the topic is `sluice.incidents` and the
    /// brokers are required. An embedded broker cannot be reached from the file: its address
    /// is in `sluice serve`'s log.
    pub fn resolve(
        brokers: Option<String>,
        topic: Option<String>,
        config: Option<(&std::path::Path, &KafkaConfig)>,
    ) -> Result<Source, String> {
        let brokers = match (brokers, config) {
            (Some(b), _) => b,
            (None, Some((_, KafkaConfig { brokers: Brokers::List(list), .. }))) => list.clone(),
            (None, Some((path, _))) => {
                return Err(format!(
                    "kafka.brokers is \"embedded\" in {}: that broker lives inside `sluice serve` on a \
                     port it picks; pass the bootstrap address of serve's EMBEDDED BROKER log line with \
                     --brokers",
                    path.display()
                ))
            }
            (None, None) => {
                return Err("no Kafka brokers: pass --brokers host:port (or SLUICE_KAFKA_BROKERS), \
                     or --config FILE to read kafka.brokers"
                    .into())
            }
        };
        Ok(Source {
            brokers,
            topic: topic
                .or_else(|| config.map(|(_, k)| k.topic.clone()))
                .unwrap_or_else(|| defaults::TOPIC.into()),
            properties: config
                .map(|(_, k)| k.properties.clone())
                .unwrap_or_default(),
            security: config.map(|(_, k)| k.security.clone()).unwrap_or_default(),
        })
    }
}

pub struct TailOptions {
    pub source: Source,
    pub start: Start,
    /// Stop after this long with no message (None: follow forever).
    pub idle_exit: Option<Duration>,
    /// Stop after this many messages.
    pub max_messages: Option<u64>,
    pub format: Format,
    /// Print repeats too ([`Repeats`]).
    pub repeats: bool,
}

/// The `(incident_id, seq)` pairs printed lately: Kafka mode delivers at least once, and a
/// repeat is the same message again (same pair, same body but its send time), so a consumer
/// that skips pairs it has seen sees each message once. Remembers the last [`Repeats::KEEP`].
#[derive(Default)]
pub struct Repeats {
    seen: std::collections::HashSet<(String, u64)>,
    order: std::collections::VecDeque<(String, u64)>,
}

impl Repeats {
    pub const KEEP: usize = 100_000;

    /// Whether the message `body` (keyed `key`) repeats one seen; messages without a `seq`
    /// (change events) never do.
    pub fn repeated(&mut self, key: &str, body: &[u8]) -> bool {
        #[derive(serde::Deserialize)]
        struct Seq {
            seq: Option<u64>,
        }
        let Some(seq) = serde_json::from_slice::<Seq>(body).ok().and_then(|s| s.seq) else {
            return false;
        };
        let pair = (key.to_string(), seq);
        if self.seen.contains(&pair) {
            return true;
        }
        if self.order.len() == Self::KEEP {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(pair.clone());
        self.order.push_back(pair);
        false
    }
}

/// Prints messages to `out` until idle or the count is reached; returns how many it printed.
pub fn tail(opts: &TailOptions, out: &mut impl Write) -> Result<u64, KafkaError> {
    let Source {
        brokers,
        topic,
        properties,
        security,
    } = &opts.source;
    let mut client = ClientConfig::new();
    for (key, value) in properties {
        client.set(key, value);
    }
    for (key, value) in security.settings() {
        client.set(key, value);
    }
    let consumer: BaseConsumer = client
        .set("bootstrap.servers", brokers)
        .set("group.id", "sluice-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    let offset = match opts.start {
        Start::Beginning => Offset::Beginning,
        Start::End => Offset::End,
        Start::At(n) => Offset::Offset(n),
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, offset)?;
    }
    consumer.assign(&tpl)?;

    let mut printed = 0u64;
    let mut repeats = Repeats::default();
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
        if !opts.repeats && repeats.repeated(&key, msg.payload().unwrap_or_default()) {
            continue;
        }
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
                // A body that is not one JSON value (an events-topic message holds several
                // records, one a line) is shown as a JSON string of its text.
                let value = serde_json::value::RawValue::from_string(body.to_string())
                    .unwrap_or_else(|_| {
                        serde_json::value::to_raw_value(&body).expect("a string serializes")
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    #[test]
    fn a_repeated_incident_id_and_seq_is_skipped_and_the_memory_is_bounded() {
        let mut r = Repeats::default();
        assert!(!r.repeated("inc_1", br#"{"seq":1,"type":"opened"}"#));
        assert!(r.repeated("inc_1", br#"{"seq":1,"type":"opened","published_at":"x"}"#));
        assert!(!r.repeated("inc_1", br#"{"seq":2}"#));
        assert!(!r.repeated("inc_2", br#"{"seq":1}"#));
        assert!(!r.repeated("chg_1", br#"{"type":"change"}"#));
        assert!(
            !r.repeated("chg_1", br#"{"type":"change"}"#),
            "no seq: never a repeat"
        );
        for n in 0..Repeats::KEEP as u64 {
            r.repeated("other", format!("{{\"seq\":{n}}}").as_bytes());
        }
        assert!(
            !r.repeated("inc_1", br#"{"seq":1}"#),
            "forgotten after KEEP others"
        );
        assert_eq!(r.seen.len(), Repeats::KEEP);
    }

    fn kafka(toml: &str) -> KafkaConfig {
        Config::from_toml(toml, Vec::new()).unwrap().kafka
    }

    #[test]
    fn options_win_over_the_config_which_wins_over_the_defaults() {
        let file = Path::new("c.toml");
        let k = kafka(
            "[kafka]\nbrokers = \"k1:9092\"\ntopic = \"t.cfg\"\n\
             [kafka.properties]\n\"security.protocol\" = \"ssl\"\n",
        );
        let from_file = Source::resolve(None, None, Some((file, &k))).unwrap();
        assert_eq!(
            (from_file.brokers.as_str(), from_file.topic.as_str()),
            ("k1:9092", "t.cfg")
        );
        assert_eq!(from_file.properties["security.protocol"], "ssl");
        let given = Source::resolve(
            Some("k2:9092".into()),
            Some("t.opt".into()),
            Some((file, &k)),
        );
        let given = given.unwrap();
        assert_eq!(
            (given.brokers.as_str(), given.topic.as_str()),
            ("k2:9092", "t.opt")
        );
        assert_eq!(given.properties, from_file.properties, "no option for them");
        let bare = Source::resolve(Some("k3:9092".into()), None, None).unwrap();
        assert_eq!(
            bare,
            Source {
                brokers: "k3:9092".into(),
                topic: "sluice.incidents".into(),
                properties: BTreeMap::new(),
                security: KafkaSecurity::default(),
            }
        );
    }

    #[test]
    fn no_brokers_or_an_embedded_one_says_what_to_pass() {
        let err = Source::resolve(None, None, None).unwrap_err();
        assert!(
            err.contains("--brokers") && err.contains("--config"),
            "{err}"
        );
        let embedded = kafka("");
        let err = Source::resolve(None, None, Some((Path::new("c.toml"), &embedded))).unwrap_err();
        assert!(
            err.starts_with("kafka.brokers is \"embedded\" in c.toml: ")
                && err.contains("--brokers"),
            "{err}"
        );
        let given = Source::resolve(Some("k:1".into()), None, Some((Path::new("c"), &embedded)));
        assert_eq!(given.unwrap().topic, "sluice.incidents");
    }
}
