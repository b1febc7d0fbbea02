//! The floor under Kafka mode's answer latency, for `load-tests/kafka-mode.sh`: a bare
//! librdkafka produce-and-ack round trip, with sluice's own producer settings (idempotent,
//! `acks=all`, lz4, `[kafka] linger`), of the record Kafka mode's ingest produces for one
//! 50-alert Alertmanager batch (its events in the wire format, one record, as all 50 share a
//! routing key), open loop at a fixed rate, latency from each request's scheduled start (so a
//! stall delays the requests behind it, as oha's `--latency-correction` counts them).
//!
//!   cargo run --release --example produce_round_trip -- BROKERS TOPIC PARTITIONS CORPUS RATE SECONDS [consume]
//!
//! With `consume`, a plain consumer reads the topic from its start meanwhile and drops what it
//! reads, as Kafka mode's correlator reads what its ingest writes: the floor with the broker
//! also serving fetches.
//!
//! CORPUS is a file of Alertmanager API bodies, one JSON array per line (`load-tests/gen.py`'s
//! `s2_api50_new.jsonl`). Prints one line: `LT_PRODUCE requests=.. errors=.. p50_us=..
//! p99_us=.. record_bytes=..`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice::config::Config;
use sluice::event::{wire, Action, Event};
use sluice::integration::Integration;
use sluice::time::UnixMillis;

const ROUTING_KEY: &str = "load-test";

/// One request's record: every alert of the batch as a wire-format event, newline-separated.
fn record(batch: &serde_json::Value, n: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, alert) in batch.as_array().into_iter().flatten().enumerate() {
        let labels: Vec<(String, String)> = alert["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .unwrap_or_default()
                        .replace("@@N@@", &n.to_string()),
                )
            })
            .collect();
        let mut e = Event::new(
            Integration::AlertmanagerApi,
            Action::Trigger,
            ROUTING_KEY.into(),
            format!("{n:08x}{i:08x}"),
            UnixMillis(1_700_000_000_000),
        );
        e.summary = alert["annotations"]["summary"]
            .as_str()
            .unwrap_or_default()
            .into();
        e.class = labels
            .iter()
            .find(|(k, _)| k == "alertname")
            .map(|(_, v)| v.clone());
        e.labels = labels.into();
        if !body.is_empty() {
            body.push(b'\n');
        }
        wire::encode_event(&e, &mut body);
    }
    body
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (args, consume) = match &args[..] {
        [rest @ .., last] if last == "consume" => (rest, true),
        all => (all, false),
    };
    let [brokers, topic, partitions, corpus, rate, seconds] = args else {
        eprintln!(
            "usage: produce_round_trip BROKERS TOPIC PARTITIONS CORPUS RATE SECONDS [consume]"
        );
        std::process::exit(2);
    };
    let partitions: usize = partitions.parse().expect("PARTITIONS: a number");
    let rate: f64 = rate.parse().expect("RATE: requests per second");
    let seconds: f64 = seconds.parse().expect("SECONDS: a number");
    let config = Config::from_toml(&format!("[kafka]\nbrokers = {brokers:?}"), Vec::new())
        .unwrap_or_else(|e| panic!("{e}"));
    sluice::publish::kafka::ensure_topic(&config.kafka, brokers, topic, partitions as i32, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let producer: FutureProducer = sluice::publish::kafka::idempotent_producer_config(
        &config.kafka,
        brokers,
        Duration::from_secs(10),
    )
    .create()
    .expect("a producer");
    let batches: Vec<serde_json::Value> = std::fs::read_to_string(corpus)
        .expect("CORPUS readable")
        .lines()
        .map(|l| serde_json::from_str(l).expect("CORPUS: one JSON array per line"))
        .collect();
    let records: Vec<Arc<Vec<u8>>> = batches
        .iter()
        .enumerate()
        .map(|(n, b)| Arc::new(record(b, n)))
        .collect();
    let record_bytes = records.iter().map(|r| r.len()).sum::<usize>() / records.len().max(1);
    let partition = sluice::pipeline::partition(ROUTING_KEY, partitions) as i32;
    // The producer connects and gets its producer id first, unmeasured (sluice's ingest does
    // before it answers ready).
    producer
        .send(
            FutureRecord::to(topic)
                .partition(partition)
                .key(ROUTING_KEY)
                .payload(&records[0][..]),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("warm-up produce: {e}"));
    let reading = consume.then(|| read_all(&config, brokers, topic, partitions));
    let total = (rate * seconds).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let errors = Arc::new(Mutex::new(0usize));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due).await;
        let (producer, topic) = (producer.clone(), topic.clone());
        let body = Arc::clone(&records[i % records.len()]);
        let (latencies, errors) = (Arc::clone(&latencies), Arc::clone(&errors));
        let scheduled: Instant = due.into_std();
        tasks.push(tokio::spawn(async move {
            let record = FutureRecord::to(&topic)
                .partition(partition)
                .key(ROUTING_KEY)
                .payload(&body[..]);
            match producer.send(record, Duration::from_secs(10)).await {
                Ok(_) => latencies
                    .lock()
                    .unwrap()
                    .push(scheduled.elapsed().as_micros() as u64),
                Err(_) => *errors.lock().unwrap() += 1,
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    if let Some((stop, reader)) = reading {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let read = reader.join().expect("the reader does not panic");
        eprintln!("consumer read {read} records");
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |p: f64| {
        if l.is_empty() {
            0
        } else {
            l[((p * l.len() as f64).ceil() as usize).clamp(1, l.len()) - 1]
        }
    };
    println!(
        "LT_PRODUCE requests={total} errors={} p50_us={} p99_us={} record_bytes={record_bytes}",
        *errors.lock().unwrap(),
        pct(0.5),
        pct(0.99)
    );
}

/// A plain consumer reading every partition of `topic` from its start until told to stop, on
/// its own thread; returns the stop flag and the thread (which returns the records read).
fn read_all(
    config: &Config,
    brokers: &str,
    topic: &str,
    partitions: usize,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<u64>,
) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut cc = sluice::publish::kafka::client_config(&config.kafka, brokers);
    cc.set("group.id", "produce-round-trip-reader")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cc.create().expect("a consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("a partition");
    }
    consumer.assign(&tpl).expect("assigned");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let reader = std::thread::spawn(move || {
        let mut read = 0;
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
                read += 1;
            }
        }
        read
    });
    (stop, reader)
}
