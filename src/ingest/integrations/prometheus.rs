//! The Prometheus alert model that the Alertmanager API, the Alertmanager webhook and Grafana
//! share: an alert is a label set and annotations; its key is Prometheus' fingerprint of the
//! labels; summary, severity, source, component and class come from well-known labels and
//! annotations; the labels that tell an HA pair's replicas apart are dropped.

use crate::config::{Problems, Unknown};
use crate::event::{Action, Event, Severity};
use crate::integration::Integration;

use super::fields::{severity_named, Pairs};
use super::{summary, IngestRequest, IntegrationSettings};

/// The value of `name` in `map` (sorted by name, names unique), when it is not empty.
pub(super) fn lookup<'a, K: AsRef<str>, V: AsRef<str>>(
    map: &'a [(K, V)],
    name: &str,
) -> Option<&'a str> {
    map.binary_search_by(|(k, _)| k.as_ref().cmp(name))
        .ok()
        .map(|i| map[i].1.as_ref())
        .filter(|v| !v.is_empty())
}

/// The non-empty values of `names` in `map` (names unique), in one pass over the map.
fn values<'a, K: AsRef<str>, V: AsRef<str>, const N: usize>(
    map: &'a [(K, V)],
    names: [&str; N],
) -> [Option<&'a str>; N] {
    let mut out = [None; N];
    for (k, v) in map {
        let (k, v) = (k.as_ref(), v.as_ref());
        if v.is_empty() {
            continue;
        }
        if let Some(i) = names.iter().position(|&n| n == k) {
            out[i] = Some(v);
        }
    }
    out
}

/// `labels.severity` as sluice knows it; `None` for a value it does not.
pub fn severity(value: &str) -> Option<Severity> {
    Severity::parse(value).or_else(|| {
        severity_named(
            value,
            &[
                ("page", Severity::Critical),
                ("warn", Severity::Warning),
                ("none", Severity::Info),
            ],
        )
    })
}

/// An alert's event named the Prometheus way: summary from the `summary` or `description`
/// annotation, else `alertname`, else the key; severity, source (`instance`, else `job`),
/// component (`service`, else `job`) and class (`alertname`) from the labels. Also says
/// whether the summary was cut.
pub(super) fn prometheus_event(
    kind: Integration,
    req: &IngestRequest<'_>,
    resolved: bool,
    dedup_key: String,
    labels: &Pairs<'_>,
    annotations: &Pairs<'_>,
) -> (Event, bool) {
    let action = if resolved {
        Action::Resolve
    } else {
        Action::Trigger
    };
    let mut event = Event::new(
        kind,
        action,
        req.routing_key.to_string(),
        dedup_key,
        req.now,
    );
    // Each map read once: the names it needs, by name (labels and annotations are unique).
    let [alertname, severity_label, instance, job, service] = values(
        labels,
        ["alertname", "severity", "instance", "job", "service"],
    );
    let [summary_text, description] = values(annotations, ["summary", "description"]);
    let (summary, truncated) = summary(
        summary_text
            .or(description)
            .or(alertname)
            .unwrap_or(&event.dedup_key),
    );
    event.summary = summary;
    event.severity = severity_label
        .and_then(severity)
        .unwrap_or(req.settings.default_severity);
    event.source = instance.or(job).unwrap_or_default().to_string();
    event.component = service.or(job).map(str::to_string);
    event.class = alertname.map(str::to_string);
    (event, truncated)
}

/// The labels that tell the replicas of an HA Prometheus pair apart, unless
/// `replica_labels` says otherwise: Prometheus' usual external label, the Prometheus
/// Operator's, and Cortex/Thanos' convention.
pub const REPLICA_LABELS: [&str; 3] = ["replica", "prometheus_replica", "__replica__"];

/// `replica_labels = [...]` of `[integrations.<kind>]` (a Prometheus-label kind).
pub(super) fn replica_labels_setting(
    own: &mut Unknown,
    at: &str,
    settings: &mut IntegrationSettings,
    p: &mut Problems,
) {
    let Some(value) = own.remove("replica_labels") else {
        return;
    };
    let names = match value {
        toml::Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                toml::Value::String(s) if !s.is_empty() => Ok(s),
                toml::Value::String(_) => Err("an empty name".to_string()),
                other => Err(format!("a {} in the list", other.type_str())),
            })
            .collect::<Result<Vec<_>, _>>(),
        other => Err(format!("a {}", other.type_str())),
    };
    match names {
        Ok(names) => settings.replica_labels = names,
        Err(bad) => p.add(
            &format!("{at}.replica_labels"),
            format!("must be a list of label names, not {bad}"),
        ),
    }
}

/// Drops the replica labels (see [`REPLICA_LABELS`]); whether there were any.
pub(super) fn drop_replica_labels(labels: &mut Pairs<'_>, req: &IngestRequest<'_>) -> bool {
    let before = labels.len();
    let replicas = &req.settings.replica_labels;
    labels.retain(|(name, _)| !replicas.iter().any(|r| r == name));
    labels.len() != before
}

/// Prometheus' fingerprint of a label set, as Alertmanager computes and sends it: FNV-1a-64
/// over the labels sorted by name (byte order), each name and each value followed by the
/// byte `0xFF` (which no UTF-8 text contains, so `("ab","c")` and `("a","bc")` differ), as
/// 16 lowercase hex digits (prometheus/common `model/signature.go`, `labelSetToFingerprint`).
pub fn labels_fingerprint<K: AsRef<str>, V: AsRef<str>>(sorted_labels: &[(K, V)]) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
        h ^= 0xFF;
        h = h.wrapping_mul(PRIME);
    };
    for (name, value) in sorted_labels {
        add(name.as_ref().as_bytes());
        add(value.as_ref().as_bytes());
    }
    // 16 lowercase hex digits, written without the formatting machinery (once per alert).
    (0..16)
        .rev()
        .map(|i| char::from(b"0123456789abcdef"[(h >> (i * 4)) as usize & 0xF]))
        .collect()
}
