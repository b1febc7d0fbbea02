//! Wires ingest -> correlate -> publish, and owns shutdown:
//! signal -> readiness false -> stop accepting -> drain connections -> apply queued events and
//! publish every incident still waiting -> flush the producer within the grace period -> report.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::Clock;

mod reload;
mod running;

use crate::config::{Brokers, Config, ConfigError, PipelineMode};
use crate::correlate::silence::{Silence, SilenceState};
use crate::correlate::state_dir::{StateDir, StateError};
use crate::correlate::Correlator;
use crate::ingest::admin::Health;
use crate::ingest::auth::Auth;
use crate::ingest::body::BodyLimits;
use crate::ingest::integrations::settings::SettingsByKind;
use crate::ingest::router::Router;
use crate::ingest::server::{self, ServerLimits};
use crate::ingest::silence_log::SilenceLog;
use crate::ingest::silences::SilenceStore;
use crate::ingest::sns_verify::SnsVerifier;
use crate::ingest::tls::{Tls, TlsError};
use crate::integration::Integration;
use crate::pipeline::kafka::{spawn_correlator, EventsProducer, KafkaCorrelator};
use crate::pipeline::limits::RateLimits;
use crate::pipeline::Intake;
use crate::publish::embedded::EmbeddedBroker;
use crate::publish::kafka::{ensure_topic, topic_config, KafkaSetupError, KafkaSink};
use crate::publish::Sink;
use crate::view::{View, ViewSink};
pub use reload::{Reloaded, Reloader};
pub use running::{Running, ShutdownReport};

/// How often the Kafka connection is probed for readiness.
const KAFKA_PROBE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    EmbeddedBroker(String),
    #[error(transparent)]
    Kafka(#[from] KafkaSetupError),
    #[error("cannot open the recording {path}: {source}")]
    Record {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the silences topic {topic}: {source}")]
    Silences {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "topic {topic} keeps events for retention.ms={retention_ms}, less than the \
         {needed_ms} ms a restore may need (twice the interval between snapshots of a \
         partition, plus a failover): raise its retention.ms, or lower \
         pipeline.snapshot_interval"
    )]
    Retention {
        topic: String,
        retention_ms: i64,
        needed_ms: u64,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot read the saved silences: {0} (move the file away to start without them)")]
    SavedSilences(String),
    #[error("cannot read the incidents topic for the incidents view: {0}")]
    View(rdkafka::error::KafkaError),
    #[error("cannot read kafka.commands_topic: {0}")]
    Commands(rdkafka::error::KafkaError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Starts sluice: the broker connection (or the embedded broker), topics, shards and the HTTP
/// listener, in that order, so that a bound port means everything behind it is ready.
pub async fn start(config: Config, clock: Clock) -> Result<Running, StartError> {
    start_recording(config, clock, None).await
}

/// [`start`], also writing every ingest request to `record` (`sluice serve --record`).
pub async fn start_recording(
    config: Config,
    clock: Clock,
    record: Option<&std::path::Path>,
) -> Result<Running, StartError> {
    let recorder = match record {
        Some(path) => Some(
            crate::ingest::record::Recorder::open(path, clock.clone()).map_err(|source| {
                StartError::Record {
                    path: path.to_path_buf(),
                    source,
                }
            })?,
        ),
        None => None,
    };
    let metrics = crate::metrics::install();
    let embedded = match &config.kafka.brokers {
        Brokers::Embedded => {
            let pipeline = &config.pipeline;
            let events = [
                (pipeline.events_topic.as_str(), pipeline.partitions),
                (pipeline.state_topic.as_str(), pipeline.partitions),
                (pipeline.silences_topic.as_str(), 1),
            ];
            let more: &[(&str, i32)] = match config.pipeline.mode {
                PipelineMode::Kafka => &events,
                PipelineMode::Memory => &[],
            };
            let broker =
                EmbeddedBroker::start(&config.kafka, more).map_err(StartError::EmbeddedBroker)?;
            tracing::warn!(
                bootstrap = broker.bootstrap_servers(),
                "EMBEDDED BROKER: incidents go to an in-memory, in-process Kafka mock cluster that is \
                 NOT DURABLE and vanishes at exit; for trying sluice out only. Set kafka.brokers \
                 (or SLUICE_KAFKA_BROKERS) to a real cluster."
            );
            Some(broker)
        }
        Brokers::List(_) => None,
    };
    let bootstrap = match (&embedded, &config.kafka.brokers) {
        (Some(b), _) => b.bootstrap_servers().to_string(),
        (None, Brokers::List(list)) => list.clone(),
        (None, Brokers::Embedded) => unreachable!("embedded brokers are started above"),
    };
    let sink = Arc::new(KafkaSink::connect(&config.kafka, &bootstrap, &config.instance).await?);
    tracing::info!(
        brokers = %bootstrap,
        topic = %config.kafka.topic,
        changes_topic = %config.kafka.changes_topic,
        "kafka producer ready"
    );
    let (stop, stop_rx) = watch::channel(false);
    let restoring = Arc::new(AtomicUsize::new(0));
    let view = View::new();
    let (correlator, intake, silences) = match config.pipeline.mode {
        PipelineMode::Memory => {
            let every = config.pipeline.snapshot_interval;
            let state = match &config.pipeline.state_dir {
                Some(dir) => Some(Arc::new(StateDir::open(dir, every)?)),
                None => None,
            };
            let silences = match &state {
                Some(dir) => {
                    let file = dir.path().join("silences.jsonl");
                    let store = SilenceStore::saved(file).map_err(StartError::SavedSilences)?;
                    Some(Arc::new(store))
                }
                None => None,
            };
            let (correlator, intake) = crate::pipeline::local::spawn_saved(
                &config.correlate,
                config.limits.fair_admission,
                clock.clone(),
                Arc::new(ViewSink::new(sink.clone(), Arc::clone(&view))),
                state,
            )?;
            if let Some(store) = &silences {
                store.publish(clock.now(), &intake).await;
            }
            (Correlators::Local(correlator), intake, silences)
        }
        PipelineMode::Kafka => {
            let parts = KafkaParts {
                clock: &clock,
                sink: sink.clone(),
                stop: &stop_rx,
                restoring: Arc::clone(&restoring),
            };
            start_kafka_pipeline(&config, &bootstrap, parts).await?
        }
    };
    // Kafka mode: the view is the topic's. Memory mode on a real broker reads it too, so the
    // incidents a state directory restored are in the view before their next message (what
    // the sink hands it again is skipped by seq).
    let real_broker = !matches!(config.kafka.brokers, Brokers::Embedded);
    let follow = config.pipeline.mode == PipelineMode::Kafka || real_broker;
    if follow && config.pipeline.roles.ingest {
        let (kafka, instance) = (&config.kafka, &config.instance);
        crate::view::follow::follow(
            Arc::clone(&view),
            kafka,
            &bootstrap,
            instance,
            stop_rx.clone(),
        )
        .map_err(StartError::View)?;
    }
    let intake = intake.with_rate_limits(RateLimits::start(&config.limits));
    if config.pipeline.roles.ingest {
        let (kafka, view) = (&config.kafka, Arc::clone(&view));
        crate::ingest::commands_topic::follow(
            kafka,
            &bootstrap,
            intake.clone(),
            view,
            clock.clone(),
            stop_rx.clone(),
        )
        .map_err(StartError::Commands)?;
    }
    let rules = crate::pipeline::rules_hash(&config);
    crate::metrics::rules_info(&rules).set(1.0);
    tracing::info!(rules = %rules, "rules fingerprint");
    let health = Arc::new(Health::new(sink.clone(), restoring).with_rules(rules));
    health
        .maintenance
        .set(Arc::new(config.correlate.maintenance.clone()));
    health
        .heartbeats
        .set(Arc::new(config.correlate.heartbeats.clone()));
    let integrations = SettingsByKind::checked(&config.integrations)?;
    let sns = SnsVerifier::from_settings(&integrations.get(Integration::CloudwatchSns).sns);
    let reload_clock = clock.clone();
    let limits_intake = intake.clone();
    let router = Router::new(
        intake,
        clock,
        Arc::clone(&health),
        metrics,
        BodyLimits {
            max_body_bytes: config.server.max_body_bytes,
            body_read_timeout: config.server.body_read_timeout,
        },
    )
    .with_integrations(integrations)
    .with_sns_verifier(sns)
    .with_auth(Arc::new(Auth::from_config(&config.auth)))
    .with_view(view);
    let router = match silences {
        Some(store) => router.with_silences(store),
        None => router,
    };
    let router = Arc::new(match recorder {
        Some(r) => router.with_recorder(r),
        None => router,
    });
    let tls = match &config.server.tls {
        Some(t) => {
            let tls = Tls::new(t).map_err(StartError::Tls)?;
            tls.follow(t);
            Some(Arc::new(tls))
        }
        None => None,
    };
    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.server.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.server.listen,
        source,
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, "listening");
    if admin_open_beyond_loopback(addr, &config.auth) {
        tracing::warn!(
            %addr,
            "ADMIN ROUTES OPEN: no admin token is configured and sluice listens beyond \
             loopback, so anyone who reaches it can create and expire silences; set \
             [[auth.tokens]] or SLUICE_ADMIN_TOKEN"
        );
    }

    tokio::spawn(Arc::clone(&sink).watch_connection(KAFKA_PROBE_EVERY, stop_rx.clone()));
    let roles = [
        ("ingest", config.pipeline.roles.ingest),
        ("correlate", config.pipeline.roles.correlate),
    ];
    let liveness = crate::publish::liveness::Liveness {
        instance: config.instance.clone(),
        started_at: health.started,
        interval: config.kafka.liveness_interval,
        mode: match config.pipeline.mode {
            PipelineMode::Memory => "memory",
            PipelineMode::Kafka => "kafka",
        },
        roles: roles
            .iter()
            .filter(|(_, on)| *on)
            .map(|(r, _)| *r)
            .collect(),
    };
    tokio::spawn(liveness.run(sink.clone(), Clock::system(), stop_rx.clone()));
    let grace = config.server.shutdown_grace;
    let limits = ServerLimits {
        max_connections: config.server.max_connections,
        header_read_timeout: config.server.header_read_timeout,
        drain: grace,
    };
    let rules = match &correlator {
        Correlators::Local(c) => Some(c.rules()),
        Correlators::Kafka(Some(c)) => Some(c.rules()),
        Correlators::Kafka(None) => None,
    };
    let reloader = Reloader::new(&config, rules, Arc::clone(&router), limits_intake);
    let (reload_tx, reloads) = tokio::sync::mpsc::channel(4);
    let _ = health.reloads.set(reload_tx);
    reloader.started();
    let task = tokio::spawn(async move {
        let connections_cut = server::serve(listener, router, limits, tls, stop_rx).await;
        let started = Instant::now();
        // Shards wait for room in the producer queue; with Kafka down that wait is bounded
        // by the grace period too, and what never reached the queue is reported.
        let shards_unfinished = match tokio::time::timeout(grace, correlator.shutdown()).await {
            Ok(()) => false,
            Err(_) => {
                tracing::error!(
                    "correlator shards did not finish within server.shutdown_grace: still \
                     applying queued events (a large backlog or many open alerts) or waiting \
                     for room in the producer queue (Kafka unreachable or slow); messages not \
                     yet handed to the producer are lost. Raise server.shutdown_grace if \
                     Kafka is healthy"
                );
                true
            }
        };
        let left = grace
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        let flush_sink = Arc::clone(&sink);
        let messages_undelivered = tokio::task::spawn_blocking(move || flush_sink.flush(left))
            .await
            .unwrap_or(-1);
        drop(sink);
        drop(embedded);
        ShutdownReport {
            connections_cut,
            messages_undelivered,
            shards_unfinished,
        }
    });
    Ok(Running {
        addr,
        bootstrap,
        health,
        stop,
        task,
        reloader,
        clock: reload_clock,
        reloads: std::sync::Mutex::new(Some(reloads)),
    })
}

/// Whether sluice serves its admin routes without a token to more than this machine.
fn admin_open_beyond_loopback(addr: SocketAddr, auth: &crate::config::AuthConfig) -> bool {
    auth.tokens.is_empty() && !addr.ip().is_loopback()
}

/// The correlator of either pipeline, for shutdown.
enum Correlators {
    Local(Correlator),
    Kafka(Option<KafkaCorrelator>),
}

impl Correlators {
    async fn shutdown(self) {
        match self {
            Correlators::Local(c) => c.shutdown().await,
            Correlators::Kafka(Some(c)) => c.shutdown().await,
            Correlators::Kafka(None) => {}
        }
    }
}

/// Kafka mode: the events topic (created or checked), this instance's roles' parts of the
/// pipeline (the events producer and its watermarks for ingest, the consumer group member for
/// correlate), and the intake ingest hands events to.
struct KafkaParts<'a> {
    clock: &'a Clock,
    sink: Arc<KafkaSink>,
    stop: &'a watch::Receiver<bool>,
    /// Partitions assigned and not yet restored (readiness).
    restoring: Arc<AtomicUsize>,
}

async fn start_kafka_pipeline(
    config: &Config,
    bootstrap: &str,
    parts: KafkaParts<'_>,
) -> Result<(Correlators, Intake, Option<Arc<SilenceStore>>), StartError> {
    let KafkaParts {
        clock,
        sink,
        stop,
        restoring,
    } = parts;
    let pipeline = &config.pipeline;
    ensure_topic(
        &config.kafka,
        bootstrap,
        &pipeline.events_topic,
        pipeline.partitions,
        &[],
    )
    .await?;
    check_retention(config, bootstrap).await?;
    if pipeline.roles.correlate {
        crate::pipeline::kafka::ensure_state_topic(
            &config.kafka,
            bootstrap,
            &pipeline.state_topic,
            pipeline.partitions,
        )
        .await?;
    }
    // Every silence applies before any partition is restored.
    ensure_topic(
        &config.kafka,
        bootstrap,
        &pipeline.silences_topic,
        1,
        &[("cleanup.policy", "compact")],
    )
    .await?;
    let log = Arc::new(SilenceLog::connect(
        &config.kafka,
        bootstrap,
        &pipeline.silences_topic,
        &pipeline.group_id,
    )?);
    let (loaded, from) = {
        let log = Arc::clone(&log);
        tokio::task::spawn_blocking(move || log.load())
            .await
            .expect("the silences load does not panic")
            .map_err(|source| StartError::Silences {
                topic: pipeline.silences_topic.clone(),
                source,
            })?
    };
    let now = clock.now();
    let in_force: Arc<[Silence]> = loaded
        .iter()
        .filter(|s| s.state(now) != SilenceState::Expired)
        .cloned()
        .collect();
    tracing::info!(
        silences = loaded.len(),
        in_force = in_force.len(),
        "silences loaded"
    );
    let (silences, silences_rx) = watch::channel(in_force);
    let producer = if pipeline.roles.ingest {
        let producer = Arc::new(EventsProducer::connect(
            &config.kafka,
            bootstrap,
            pipeline,
            crate::pipeline::rules_hash(config),
        )?);
        producer.announce(clock).await;
        tokio::spawn(Arc::clone(&producer).watermarks(
            clock.clone(),
            pipeline.watermark_interval,
            stop.clone(),
        ));
        Some(producer)
    } else {
        None
    };
    let correlator = if pipeline.roles.correlate {
        Some(spawn_correlator(
            config,
            bootstrap,
            sink,
            silences_rx,
            restoring,
            clock.clone(),
        )?)
    } else {
        None
    };
    tracing::info!(
        events_topic = %pipeline.events_topic,
        partitions = pipeline.partitions,
        ingest = pipeline.roles.ingest,
        correlate = pipeline.roles.correlate,
        "kafka pipeline ready"
    );
    let intake = Intake::kafka(producer, silences);
    let store = Arc::new(SilenceStore::shared(Arc::clone(&log), loaded));
    log.follow(
        Arc::clone(&store),
        intake.clone(),
        clock.clone(),
        from,
        stop.clone(),
    );
    Ok((Correlators::Kafka(correlator), intake, Some(store)))
}

/// The events topic must keep every event since a partition's last snapshot, or a restore
/// misses some: its `retention.ms` must cover twice the longest interval between two
/// snapshots of one partition (one partition is snapshotted per commit) plus a failover.
/// Refuses to start when it does not; warns when the broker cannot say.
async fn check_retention(config: &Config, bootstrap: &str) -> Result<(), StartError> {
    let pipeline = &config.pipeline;
    let between = pipeline
        .snapshot_interval
        .max(pipeline.commit_interval * pipeline.partitions as u32);
    let needed = between * 2 + pipeline.session_timeout;
    let topic = &pipeline.events_topic;
    match topic_config(&config.kafka, bootstrap, topic, "retention.ms").await {
        Ok(Some(ms)) => match ms.parse::<i64>() {
            Ok(ms) if ms >= 0 && (ms as u128) < needed.as_millis() => Err(StartError::Retention {
                topic: topic.clone(),
                retention_ms: ms,
                needed_ms: needed.as_millis() as u64,
            }),
            _ => Ok(()),
        },
        Ok(None) => Ok(()),
        Err(error) => {
            tracing::warn!(topic = %topic, %error, needed_ms = needed.as_millis() as u64, "cannot read the events topic's retention.ms; it must cover the interval between snapshots");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_admin_routes_are_flagged_beyond_loopback_only() {
        let open = crate::config::AuthConfig::default();
        let mut guarded = open.clone();
        guarded.tokens.push(crate::config::auth::AdminToken {
            name: "ops".into(),
            token: crate::config::auth::Secret::new("ops-token-0123456789"),
            scopes: crate::config::auth::Scopes::ALL,
            routing_keys: None,
        });
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert!(!admin_open_beyond_loopback(at("127.0.0.1:8080"), &open));
        assert!(!admin_open_beyond_loopback(at("[::1]:8080"), &open));
        assert!(admin_open_beyond_loopback(at("0.0.0.0:8080"), &open));
        assert!(admin_open_beyond_loopback(at("10.1.2.3:8080"), &open));
        assert!(!admin_open_beyond_loopback(at("0.0.0.0:8080"), &guarded));
    }
}
