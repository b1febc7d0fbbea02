//! Every metric name and label key, in one place, and the Prometheus exporter.
//!
//! Names carry the `sluice_` prefix and base units; labels take values only from small fixed
//! sets (integration, reason, type, kind), never routing keys or dedup keys. The README's
//! "Metrics" table lists each one; a test checks that table against [`ALL`].

use std::sync::OnceLock;

use metrics::{describe_counter, describe_gauge, describe_histogram, Counter, Gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::integration::Integration;

pub const EVENTS_RECEIVED: &str = "sluice_events_received_total";
pub const EVENTS_REJECTED: &str = "sluice_events_rejected_total";
pub const EVENTS_DEDUPLICATED: &str = "sluice_events_deduplicated_total";
pub const EVENTS_DROPPED: &str = "sluice_events_dropped_total";
pub const SUMMARIES_TRUNCATED: &str = "sluice_summaries_truncated_total";
pub const CHANGE_EVENTS: &str = "sluice_change_events_total";
pub const ALERTS_OPEN: &str = "sluice_alerts_open";
pub const INCIDENTS_OPEN: &str = "sluice_incidents_open";
pub const INCIDENTS_OPENED: &str = "sluice_incidents_opened_total";
pub const INCIDENTS_RESOLVED: &str = "sluice_incidents_resolved_total";
pub const MESSAGES_PUBLISHED: &str = "sluice_messages_published_total";
pub const MESSAGES_FAILED: &str = "sluice_messages_failed_total";
pub const PUBLISH_RETRIES: &str = "sluice_publish_queue_full_total";
pub const REQUEST_DURATION: &str = "sluice_request_duration_seconds";
pub const KAFKA_CONNECTED: &str = "sluice_kafka_connected";
pub const INCIDENTS_HELD: &str = "sluice_incidents_suppressed_total";
pub const INCIDENTS_FLAPPING: &str = "sluice_incidents_flapping_total";
pub const ALERTS_AUTO_GROUPED: &str = "sluice_alerts_auto_grouped_total";
pub const INCIDENTS_LEARNED_PAUSE: &str = "sluice_incidents_learned_pause_total";
pub const CAPS_REACHED: &str = "sluice_caps_reached_total";
pub const SILENCES_ACTIVE: &str = "sluice_silences_active";
pub const HEARTBEATS_MISSED: &str = "sluice_heartbeats_missed_total";
pub const RECORD_DROPPED: &str = "sluice_record_dropped_total";
pub const SNS_SUBSCRIPTIONS: &str = "sluice_sns_subscriptions_total";
pub const EVENTS_PRODUCED: &str = "sluice_events_produced_total";
pub const EVENT_DELIVERY_FAILED: &str = "sluice_event_delivery_failures_total";
pub const EVENT_RECORDS_CONSUMED: &str = "sluice_event_records_consumed_total";
pub const EVENTS_UNDECODABLE: &str = "sluice_event_records_undecodable_total";
pub const REBALANCES: &str = "sluice_rebalances_total";
pub const PARTITIONS_OWNED: &str = "sluice_partitions_owned";
pub const RESTORE_RECORDS: &str = "sluice_restore_records_total";
pub const RESTORE_DURATION: &str = "sluice_restore_duration_seconds";
pub const RESTORES: &str = "sluice_restores_total";
pub const SNAPSHOTS_WRITTEN: &str = "sluice_snapshots_written_total";
pub const SNAPSHOT_FAILURES: &str = "sluice_snapshot_failures_total";
pub const SNAPSHOT_BYTES: &str = "sluice_snapshot_bytes_total";
pub const FENCED_WRITES: &str = "sluice_fenced_writes_total";
pub const CONSUMER_LAG: &str = "sluice_consumer_lag";
pub const RULES_INFO: &str = "sluice_rules_info";
pub const EVENT_DELIVERY_DURATION: &str = "sluice_event_delivery_duration_seconds";
pub const EVENTS_REROUTED: &str = "sluice_events_rerouted_total";
pub const ROUTED_REPEATS: &str = "sluice_routed_repeats_total";
pub const TRANSACTIONS_ABORTED: &str = "sluice_transactions_aborted_total";
pub const TRANSACTION_MESSAGES_ABORTED: &str = "sluice_transaction_messages_aborted_total";
pub const TIME_TO_PAGE: &str = "sluice_time_to_page_seconds";
pub const ADMIN_REFUSED: &str = "sluice_admin_requests_refused_total";
pub const ADMIN_CHANGES: &str = "sluice_admin_changes_total";
pub const COMMANDS: &str = "sluice_commands_total";
pub const CONFIG_RELOAD_SUCCESSFUL: &str = "sluice_config_last_reload_successful";
pub const CONFIG_RELOAD_SUCCESS_TIMESTAMP: &str =
    "sluice_config_last_reload_success_timestamp_seconds";
pub const COMMAND_RECORDS_SKIPPED: &str = "sluice_command_records_skipped_total";
pub const TLS_HANDSHAKES_FAILED: &str = "sluice_tls_handshakes_failed_total";
pub const TLS_RELOADS: &str = "sluice_tls_reloads_total";
pub const DELIVERIES: &str = "sluice_deliveries_total";
pub const DELIVERY_DURATION: &str = "sluice_delivery_duration_seconds";
pub const FORWARD_LAG: &str = "sluice_forward_lag";

/// Every metric, with its help text, for `describe` and the README check.
pub const ALL: &[(&str, &str)] = &[
    (EVENTS_RECEIVED, "Events accepted (answered 2xx), by integration."),
    (EVENTS_REJECTED, "Events or requests refused, by integration and reason (invalid, malformed, unsupported_encoding, too_large, overloaded; secret_missing, secret_wrong, routing_key_not_allowed, signature_missing, signature_wrong, signature_expired: ingest auth; sns_signature, sns_cert_url, sns_topic, sns_cert_unavailable: SNS signatures; rate_limited, global_rate_limited, over_burst: rate limits; over_share: fair admission)."),
    (EVENTS_DEDUPLICATED, "Triggers that matched an open alert and were folded into it, by integration."),
    (EVENTS_DROPPED, "Accepted events not correlated, by reason (alert_not_open: an acknowledge/resolve with no open alert to apply to; event_rule: dropped by an event rule; unknown_heartbeat: a beat for no heartbeat configured under its routing key)."),
    (SUMMARIES_TRUNCATED, "Summaries longer than 1024 characters that were cut (the event is still accepted), by integration."),
    (CHANGE_EVENTS, "Change events accepted, by integration."),
    (ALERTS_OPEN, "Alerts currently triggered or acknowledged."),
    (INCIDENTS_OPEN, "Incidents currently open (published or waiting in group_wait)."),
    (INCIDENTS_OPENED, "Incidents opened."),
    (INCIDENTS_RESOLVED, "Incidents resolved (all their alerts resolved)."),
    (MESSAGES_PUBLISHED, "Messages delivered to Kafka (acknowledged by the broker), by type."),
    (MESSAGES_FAILED, "Messages Kafka failed to deliver, by kind of error."),
    (PUBLISH_RETRIES, "Times a shard found the producer queue full and waited before retrying."),
    (REQUEST_DURATION, "Time from request to response for ingest endpoints, by integration."),
    (KAFKA_CONNECTED, "1 when the last metadata probe reached the Kafka cluster, else 0."),
    (INCIDENTS_HELD, "Incidents closed without ever being published, by reason (transient, threshold, suppressed)."),
    (INCIDENTS_FLAPPING, "Flapping spells announced (one flapping message each)."),
    (ALERTS_AUTO_GROUPED, "Alerts that joined an incident by automatic grouping, by the link kind they shared (host, pod, rack, service, class, cluster)."),
    (INCIDENTS_LEARNED_PAUSE, "Incidents held past their severity's pause because their class usually resolves within the learned pause."),
    (CAPS_REACHED, "Alerts past a cap, by cap: folded into their routing key's overflow incident (fail open), or for `routes`, re-routed without remembering the route."),
    (SILENCES_ACTIVE, "Silences in force (pending or active)."),
    (HEARTBEATS_MISSED, "Heartbeats ([[heartbeats]]) that went a whole interval without a beat, by heartbeat name; each opened a missed-heartbeat incident."),
    (RECORD_DROPPED, "Requests not written to the --record file because its queue was full."),
    (COMMANDS, "Operator commands on incidents (admin API, commands topic), by action (acknowledge, resolve, snooze) and outcome (applied; unknown_incident: no open incident of that id in its partition)."),
    (COMMAND_RECORDS_SKIPPED, "Records of the commands topic skipped, by reason (malformed; unknown_incident: no routing_key and the incident is not in the incidents view)."),
    (CONFIG_RELOAD_SUCCESSFUL, "Whether the last configuration load (start or SIGHUP) validated and was taken up: 1, or 0 (the running one stays)."),
    (CONFIG_RELOAD_SUCCESS_TIMESTAMP, "When the configuration was last loaded successfully (start or SIGHUP), in unix seconds."),
    (TLS_HANDSHAKES_FAILED, "HTTPS listener: connections closed before their TLS handshake finished, by reason (timeout, error)."),
    (TLS_RELOADS, "HTTPS listener: certificate files changed and loaded again, by outcome (loaded, failed: the previous pair stays)."),
    (SNS_SUBSCRIPTIONS, "SNS subscription confirmations, by outcome (confirmed, failed, logged: auto_confirm off)."),
    (EVENTS_PRODUCED, "Kafka mode: events delivered to the events topic (acknowledged by the broker)."),
    (EVENT_DELIVERY_FAILED, "Kafka mode: events-topic records not delivered (the sender got 503), by kind of error."),
    (EVENT_RECORDS_CONSUMED, "Kafka mode: events-topic records correlated live (not counting restores)."),
    (EVENTS_UNDECODABLE, "Kafka mode: events-topic records that are not the wire format, skipped."),
    (REBALANCES, "Kafka mode: consumer group rebalances seen by this correlator."),
    (PARTITIONS_OWNED, "Kafka mode: events-topic partitions this correlator owns and has restored."),
    (RESTORE_RECORDS, "Kafka mode: events-topic records replayed to restore partitions."),
    (RESTORE_DURATION, "Kafka mode: time to restore one partition."),
    (RESTORES, "Kafka mode: partitions restored, by source (snapshot: its last snapshot and the events after it; history: every retained event, when it has no snapshot or its snapshot could not be read)."),
    (SNAPSHOTS_WRITTEN, "Kafka mode: partition snapshots written to the state topic and committed."),
    (SNAPSHOT_FAILURES, "Kafka mode: partition snapshots not written or not committed (the previous one stays in use)."),
    (SNAPSHOT_BYTES, "Kafka mode: bytes of partition snapshots written to the state topic."),
    (FENCED_WRITES, "Kafka mode: messages withheld because this correlator was paused long enough to lose its partitions (they are published by the partitions' owner instead)."),
    (EVENT_DELIVERY_DURATION, "Kafka mode: from producing a request's events to their last delivery report (acks=all), for requests answered 2xx."),
    (RULES_INFO, "1, labelled with the fingerprint of this instance's rules (event rules, grouping and inhibition rules): instances that disagree run different rules."),
    (EVENTS_REROUTED, "Events the event rules (or a route they made earlier) gave another routing key than their sender's: correlated in that key's partition."),
    (ROUTED_REPEATS, "Kafka mode: re-routed events skipped because their partition had taken them already (their source partition was processed again after a crash or a move)."),
    (TRANSACTIONS_ABORTED, "Kafka mode with transactions: transactions aborted (a delivery failed, the group moved on, the correlator was paused); their partitions are processed again from the last commit."),
    (TRANSACTION_MESSAGES_ABORTED, "Kafka mode with transactions: incident and change messages written in transactions that aborted; made again after, and never seen by read_committed consumers."),
    (TIME_TO_PAGE, "From an incident's first event (received by ingest) to its opened message being handed to the producer: group_wait, any pause, queueing, and for an incident held by a threshold the wait for it."),
    (CONSUMER_LAG, "Kafka mode: records of an owned events-topic partition not yet processed, by partition (updated every session timeout)."),
    (ADMIN_REFUSED, "Admin requests refused by admin auth, by reason (token_missing, token_unknown, scope, routing_key, broad_silence)."),
    (ADMIN_CHANGES, "Changes made through the admin routes, by action (silence_created, silence_expired); each is logged with its token's name."),
    (DELIVERIES, "sluice forward: incident messages handled per receiver, by receiver (its configured name), kind (webhook, slack, pagerduty) and outcome (delivered; retried: an attempt failed and is tried again; dead_lettered; skipped_by_matchers; skipped_by_type: its types leave it out, or its kind has no action for it)."),
    (DELIVERY_DURATION, "sluice forward: one HTTP attempt to a receiver, request to answer or timeout, by receiver and kind."),
    (FORWARD_LAG, "sluice forward: records of an owned incidents-topic partition not yet handled by every receiver, by partition (updated every 10 s)."),
];

pub const LABEL_INTEGRATION: &str = "integration";
pub const LABEL_REASON: &str = "reason";
pub const LABEL_TYPE: &str = "type";
pub const LABEL_KIND: &str = "kind";
pub const LABEL_BY: &str = "by";

/// Request-duration buckets, in seconds: sub-millisecond resolution where sluice lives.
const DURATION_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Delivery buckets, in seconds: a receiver's answer, from a few milliseconds to a timeout.
const DELIVERY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Time-to-page buckets, in seconds: from well under a second to half an hour.
const PAGE_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0, 600.0, 1800.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle; later calls
/// (several servers in one test process) get the same handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), DURATION_BUCKETS)
                .expect("static buckets are valid")
                .set_buckets_for_metric(
                    Matcher::Full(EVENT_DELIVERY_DURATION.into()),
                    DURATION_BUCKETS,
                )
                .expect("static buckets are valid")
                .set_buckets_for_metric(Matcher::Full(TIME_TO_PAGE.into()), PAGE_BUCKETS)
                .expect("static buckets are valid")
                .set_buckets_for_metric(Matcher::Full(DELIVERY_DURATION.into()), DELIVERY_BUCKETS)
                .expect("static buckets are valid")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            for (name, help) in ALL {
                match *name {
                    ALERTS_OPEN | INCIDENTS_OPEN | KAFKA_CONNECTED | SILENCES_ACTIVE
                    | PARTITIONS_OWNED | CONSUMER_LAG | RULES_INFO | FORWARD_LAG => {
                        describe_gauge!(*name, *help)
                    }
                    REQUEST_DURATION
                    | RESTORE_DURATION
                    | EVENT_DELIVERY_DURATION
                    | TIME_TO_PAGE
                    | DELIVERY_DURATION => {
                        describe_histogram!(*name, Unit::Seconds, *help)
                    }
                    _ => describe_counter!(*name, *help),
                }
            }
            handle
        })
        .clone()
}

/// Per-integration counter handles, looked up once.
#[derive(Clone)]
pub struct IntegrationCounters {
    pub received: Counter,
    pub deduplicated: Counter,
    pub summaries_truncated: Counter,
    pub change_events: Counter,
    /// `sluice_request_duration_seconds` of the kind's requests.
    pub duration: metrics::Histogram,
}

impl IntegrationCounters {
    pub fn new(integration: Integration) -> Self {
        let label = [(LABEL_INTEGRATION, integration.as_str())];
        IntegrationCounters {
            received: metrics::counter!(EVENTS_RECEIVED, &label),
            deduplicated: deduplicated(integration),
            summaries_truncated: metrics::counter!(SUMMARIES_TRUNCATED, &label),
            change_events: metrics::counter!(CHANGE_EVENTS, &label),
            duration: metrics::histogram!(REQUEST_DURATION, &label),
        }
    }

    pub fn for_each() -> Vec<(Integration, IntegrationCounters)> {
        Integration::ALL
            .iter()
            .map(|&i| (i, IntegrationCounters::new(i)))
            .collect()
    }
}

/// Metric handles by integration kind: a native kind's are registered at once, a catalog
/// kind's when first asked for (see [`Integration::is_catalog`]).
pub struct PerKind<T> {
    cells: Vec<std::sync::OnceLock<T>>,
    make: fn(Integration) -> T,
}

impl<T> PerKind<T> {
    pub fn new(make: fn(Integration) -> T) -> Self {
        let cells = Integration::ALL
            .iter()
            .map(|&kind| {
                let cell = std::sync::OnceLock::new();
                if !kind.is_catalog() {
                    let _ = cell.set(make(kind));
                }
                cell
            })
            .collect();
        PerKind { cells, make }
    }

    pub fn get(&self, kind: Integration) -> &T {
        self.cells[kind as usize].get_or_init(|| (self.make)(kind))
    }
}

/// `sluice_events_deduplicated_total` of one kind.
pub fn deduplicated(integration: Integration) -> Counter {
    metrics::counter!(EVENTS_DEDUPLICATED, LABEL_INTEGRATION => integration.as_str())
}

pub fn rejected(integration: &'static str, reason: &'static str) -> Counter {
    metrics::counter!(EVENTS_REJECTED, LABEL_INTEGRATION => integration, LABEL_REASON => reason)
}

pub fn dropped(reason: &'static str) -> Counter {
    metrics::counter!(EVENTS_DROPPED, LABEL_REASON => reason)
}

/// Heartbeat `name` missed (names come from the config: bounded).
pub fn heartbeat_missed(name: &str) -> Counter {
    metrics::counter!(HEARTBEATS_MISSED, "heartbeat" => name.to_string())
}

pub fn published(kind: &'static str) -> Counter {
    metrics::counter!(MESSAGES_PUBLISHED, LABEL_TYPE => kind)
}

pub fn failed(kind: &'static str) -> Counter {
    metrics::counter!(MESSAGES_FAILED, LABEL_KIND => kind)
}

pub fn event_delivery_failed(kind: &'static str) -> Counter {
    metrics::counter!(EVENT_DELIVERY_FAILED, LABEL_KIND => kind)
}

pub fn histogram(name: &'static str) -> metrics::Histogram {
    metrics::histogram!(name)
}

pub fn rules_info(hash: &str) -> Gauge {
    metrics::gauge!(RULES_INFO, "hash" => hash.to_string())
}

pub fn consumer_lag(partition: i32) -> Gauge {
    metrics::gauge!(CONSUMER_LAG, "partition" => partition.to_string())
}

pub fn restores(source: &'static str) -> Counter {
    metrics::counter!(RESTORES, "source" => source)
}

pub fn auto_grouped(by: &'static str) -> Counter {
    metrics::counter!(ALERTS_AUTO_GROUPED, LABEL_BY => by)
}

pub fn incidents_held(reason: &'static str) -> Counter {
    metrics::counter!(INCIDENTS_HELD, LABEL_REASON => reason)
}

pub fn sns_subscription(outcome: &'static str) -> Counter {
    metrics::counter!(SNS_SUBSCRIPTIONS, "outcome" => outcome)
}

pub fn commands(action: &'static str, outcome: &'static str) -> Counter {
    metrics::counter!(COMMANDS, "action" => action, "outcome" => outcome)
}

pub fn command_records_skipped(reason: &'static str) -> Counter {
    metrics::counter!(COMMAND_RECORDS_SKIPPED, LABEL_REASON => reason)
}

pub fn tls_handshakes_failed(reason: &'static str) -> Counter {
    metrics::counter!(TLS_HANDSHAKES_FAILED, LABEL_REASON => reason)
}

pub fn tls_reloads(outcome: &'static str) -> Counter {
    metrics::counter!(TLS_RELOADS, "outcome" => outcome)
}

pub fn admin_refused(reason: &'static str) -> Counter {
    metrics::counter!(ADMIN_REFUSED, LABEL_REASON => reason)
}

pub fn admin_change(action: &'static str) -> Counter {
    metrics::counter!(ADMIN_CHANGES, "action" => action)
}

pub fn cap_reached(cap: &'static str) -> Counter {
    metrics::counter!(CAPS_REACHED, "cap" => cap)
}

pub fn gauge(name: &'static str) -> Gauge {
    metrics::gauge!(name)
}

pub fn counter(name: &'static str) -> Counter {
    metrics::counter!(name)
}

#[cfg(test)]
mod tests {
    use super::ALL;

    /// The README's metrics table lists exactly the metrics defined here.
    #[test]
    fn readme_documents_every_metric() {
        let readme = include_str!("../README.md");
        let documented: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `sluice_"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let mut defined: Vec<String> = ALL
            .iter()
            .map(|(n, _)| n.trim_start_matches("sluice_").to_string())
            .collect();
        let mut documented: Vec<String> = documented.into_iter().map(str::to_string).collect();
        defined.sort();
        documented.sort();
        assert_eq!(documented, defined);
    }
}
