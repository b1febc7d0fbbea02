//! Alertmanager's read API (v2) served from the incidents view, so that Grafana's Alertmanager
//! data source and `amtool` show what sluice holds open: `GET /api/v2/status`,
//! `/api/v2/receivers`, `/api/v2/alerts` and `/api/v2/alerts/groups`, in the shapes of
//! Alertmanager's `openapi.yaml`. (`POST /api/v2/alerts` stays the Alertmanager API
//! integration: Prometheus sends there.)
//!
//! How sluice's model reads in Alertmanager's:
//! - an alert is every alert not resolved of an open incident (of those its message shows);
//!   its receiver is its routing key; `state` is `suppressed` while it is silenced or
//!   inhibited, else `active` (acknowledged ones too); `silencedBy` lists the active silences
//!   whose matchers its labels meet, read live as Alertmanager does (a silence on `entity.*`
//!   shows only through the message's `suppressed`); `inhibitedBy` stays empty (sluice does
//!   not say which alert inhibits another);
//! - its labels are named as the silences API reads matcher names (`silences_v2`), so that a
//!   silence made from an alert's labels (Grafana's "Silence" button) matches it: `alertname`
//!   (its class), `severity` (as normalized), `routing_key`, `integration`, `dedup_key`,
//!   `source`, `component`, `group` when set, then the sender's own labels (a label named like
//!   a field and saying something else becomes `labels.<name>`; one repeating it is left out);
//! - its annotations are its details' string members (Alertmanager senders' annotations come
//!   back as sent), with `summary`;
//! - its fingerprint is its dedup key where that is Prometheus' fingerprint (the Alertmanager
//!   integrations), else a hash of routing key and dedup key;
//! - a group is an incident: the group key's values (and `incident_id`) are its labels.
//!
//! Alertmanager's parameters are read as it reads them: `active`, `silenced`, `inhibited`,
//! `unprocessed` (`true`/`false`), `filter` (repeated matchers `name="value"`, `=~`, `!=`,
//! `!~`), `receiver` (a regex over the whole routing key); other parameters are ignored. A bad
//! one is a `400` with a JSON string, as Alertmanager answers.

use std::collections::BTreeMap;

use http::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

use crate::correlate::silence::SilenceState;
use crate::event::Field;
use crate::ingest::response::{self, Body};
use crate::ingest::silences::SilenceStore;
use crate::ingest::silences_v2::{filters, name_of};
use crate::matchers::Matcher;
use crate::time::UnixMillis;
use crate::view::View;

pub const STATUS: &str = "/api/v2/status";
pub const RECEIVERS: &str = "/api/v2/receivers";
pub const ALERTS: &str = "/api/v2/alerts";
pub const GROUPS: &str = "/api/v2/alerts/groups";

/// Whether this API answers `path` for `method` (a POST to [`ALERTS`] is the integration's).
pub fn serves(path: &str, method: &http::Method) -> bool {
    match path {
        STATUS | RECEIVERS | GROUPS => true,
        ALERTS => method == http::Method::GET || method == http::Method::HEAD,
        _ => false,
    }
}

/// The methods a path this API shares with an integration takes (`None`: not shared).
pub fn allowed(path: &str) -> Option<&'static str> {
    (path == ALERTS).then_some("GET, HEAD, POST")
}

/// Where the answers come from.
pub struct Sources<'a> {
    pub view: &'a View,
    pub silences: &'a SilenceStore,
    /// When this process started (`uptime`).
    pub started: UnixMillis,
    pub now: UnixMillis,
}

type Answer = http::Response<Body>;

/// Answers a GET of this API.
pub fn get(path: &str, query: Option<&str>, src: &Sources<'_>) -> Answer {
    match path {
        STATUS => response::json(StatusCode::OK, &status(src)),
        RECEIVERS => {
            let names: Vec<Value> = receivers(src.view)
                .into_iter()
                .map(|name| json!({ "name": name }))
                .collect();
            response::json(StatusCode::OK, &names)
        }
        _ => match Params::parse(query, path == ALERTS) {
            Ok(params) => {
                let groups = groups(src, &params);
                if path == ALERTS {
                    let mut alerts: Vec<Alert> =
                        groups.into_iter().flat_map(|g| g.alerts).collect();
                    alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
                    response::json(StatusCode::OK, &alerts)
                } else {
                    response::json(StatusCode::OK, &groups)
                }
            }
            Err(message) => response::json(StatusCode::BAD_REQUEST, &message),
        },
    }
}

/// Alertmanager's `alertmanagerStatus`. Clustering is `disabled`: every sluice instance
/// answers for all incidents. `config.original` is an Alertmanager configuration naming the
/// receivers (routing keys) open incidents have, so clients that read it find them.
fn status(src: &Sources<'_>) -> Value {
    let mut config = String::from(
        "# sluice serves Alertmanager's read API; its own configuration is sluice.toml.\n\
         route:\n  receiver: sluice\nreceivers:\n- name: sluice\n",
    );
    for name in receivers(src.view) {
        config.push_str(&format!("- name: {}\n", json!(name)));
    }
    json!({
        "cluster": {"status": "disabled", "peers": []},
        "config": {"original": config},
        "uptime": src.started,
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "unknown",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "none (sluice is written in Rust)",
        },
    })
}

/// The routing keys of open incidents, in name order.
fn receivers(view: &View) -> Vec<String> {
    let mut names: Vec<String> = view.with_entries(|all| {
        all.values()
            .filter(|e| e.resolved.is_none())
            .map(|e| e.str("routing_key").to_string())
            .collect()
    });
    names.sort();
    names.dedup();
    names
}

struct Params {
    active: bool,
    silenced: bool,
    inhibited: bool,
    filter: Vec<(String, Matcher)>,
    receiver: Option<regex::Regex>,
}

impl Params {
    /// `unprocessed` only for the alerts list (the groups route has no such parameter); it is
    /// checked and has no effect: every alert sluice shows was processed.
    fn parse(query: Option<&str>, alerts: bool) -> Result<Params, String> {
        let mut unprocessed = true;
        let mut p = Params {
            active: true,
            silenced: true,
            inhibited: true,
            filter: filters(query)?,
            receiver: None,
        };
        for pair in query.unwrap_or_default().split('&') {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = crate::ingest::integrations::fields::percent_decode(raw, true)
                .ok_or_else(|| format!("{name}: not valid percent-encoded UTF-8"))?;
            let flag = match name {
                "active" => &mut p.active,
                "silenced" => &mut p.silenced,
                "inhibited" => &mut p.inhibited,
                "unprocessed" if alerts => &mut unprocessed,
                "receiver" => {
                    let anchored = format!("^(?:{value})$");
                    let re = regex::Regex::new(&anchored)
                        .map_err(|e| format!("receiver: not a regex: {e}"))?;
                    p.receiver = Some(re);
                    continue;
                }
                _ => continue,
            };
            *flag = match value.as_str() {
                "true" => true,
                "false" => false,
                other => return Err(format!("{name}: {other:?} is not true or false")),
            };
        }
        Ok(p)
    }
}

/// Alertmanager's `gettableAlert`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    receivers: [Receiver; 1],
    fingerprint: String,
    starts_at: Value,
    updated_at: Value,
    /// Not known while it is open (sluice does not guess a resolve time).
    ends_at: &'static str,
    status: AlertStatus,
}

#[derive(Clone, Serialize)]
struct Receiver {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertStatus {
    state: &'static str,
    silenced_by: Vec<String>,
    inhibited_by: Vec<String>,
    /// Why it is `suppressed` (the lists may be empty: a silence that ended since, an
    /// inhibition).
    #[serde(skip)]
    suppressed: Option<Suppressed>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Suppressed {
    Silenced,
    Inhibited,
}

/// Alertmanager's `alertGroup`.
#[derive(Serialize)]
struct Group {
    labels: BTreeMap<String, String>,
    receiver: Receiver,
    alerts: Vec<Alert>,
    #[serde(skip)]
    opened: UnixMillis,
}

/// Every open incident with an alert that passes `params`, oldest opened first.
fn groups(src: &Sources<'_>, params: &Params) -> Vec<Group> {
    let silences: Vec<_> = src
        .silences
        .all()
        .into_iter()
        .filter(|s| s.state(src.now) == SilenceState::Active)
        .collect();
    let mut out: Vec<Group> = src.view.with_entries(|all| {
        all.values()
            .filter(|e| e.resolved.is_none())
            .filter_map(|e| {
                let inc = &e.latest;
                let routing_key = e.str("routing_key");
                if params
                    .receiver
                    .as_ref()
                    .is_some_and(|re| !re.is_match(routing_key))
                {
                    return None;
                }
                let receiver = Receiver {
                    name: routing_key.to_string(),
                };
                let alerts: Vec<Alert> = e
                    .alerts()
                    .iter()
                    .filter(|a| a["status"] != "resolved")
                    .map(|a| alert(inc, a, receiver.clone(), &silences))
                    .filter(|a| params.admits(a))
                    .collect();
                if alerts.is_empty() {
                    return None;
                }
                let mut labels = strings_of(&inc["group_key"]);
                labels.insert("incident_id".into(), e.str("incident_id").to_string());
                Some(Group {
                    labels,
                    receiver,
                    alerts,
                    opened: e.opened,
                })
            })
            .collect()
    });
    out.sort_by(|a, b| {
        (a.opened, &a.labels["incident_id"]).cmp(&(b.opened, &b.labels["incident_id"]))
    });
    out
}

impl Params {
    fn admits(&self, a: &Alert) -> bool {
        let state_ok = match a.status.suppressed {
            None => self.active,
            Some(Suppressed::Silenced) => self.silenced,
            Some(Suppressed::Inhibited) => self.inhibited,
        };
        state_ok
            && self
                .filter
                .iter()
                .all(|(name, m)| m.matches_value(a.labels.get(name).map_or("", String::as_str)))
    }
}

/// The string members of `v` (none when it is not an object).
fn strings_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// One alert of incident message `inc` as Alertmanager shows it.
fn alert(
    inc: &Value,
    a: &Value,
    receiver: Receiver,
    silences: &[crate::correlate::silence::Silence],
) -> Alert {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mut labels = BTreeMap::new();
    let own = [
        ("alertname", &a["class"]),
        ("severity", &a["severity"]),
        ("routing_key", &inc["routing_key"]),
        ("integration", &a["integration"]),
        ("dedup_key", &a["dedup_key"]),
        ("source", &a["source"]),
        ("component", &a["component"]),
        ("group", &a["group"]),
    ];
    for (name, value) in own {
        if let Some(v) = text(value).filter(|v| !v.is_empty()) {
            labels.insert(name.to_string(), v);
        }
    }
    for (name, value) in a["labels"].as_object().into_iter().flatten() {
        let Some(value) = value.as_str() else {
            continue;
        };
        let shown = name_of(&Field::Label(name.clone()));
        // A label that names a field (or `alertname`, the class) and says the same.
        let named = name == "alertname" || Field::parse(name).is_some();
        let repeats = named && labels.get(name).is_some_and(|v| v == value);
        if !repeats {
            labels.insert(shown, value.to_string());
        }
    }
    let mut annotations = strings_of(&a["details"]);
    if let Some(summary) = text(&a["summary"]) {
        annotations.entry("summary".into()).or_insert(summary);
    }
    // Silences are read live, as Alertmanager does: a message may not say yet that a silence
    // made since covers the alert (updates of an incident whose alerts are all silenced are
    // held).
    let silenced_by: Vec<String> = silences
        .iter()
        .filter(|s| {
            s.matchers.iter().all(|m| {
                let name = name_of(&m.field);
                m.matches_value(labels.get(&name).map_or("", String::as_str))
            })
        })
        .map(|s| s.id.clone())
        .collect();
    let suppressed = match a["suppressed"].as_str() {
        _ if !silenced_by.is_empty() => Some(Suppressed::Silenced),
        Some("silenced") => Some(Suppressed::Silenced),
        Some(_) => Some(Suppressed::Inhibited),
        None => None,
    };
    // The Alertmanager integrations' dedup key is Prometheus' fingerprint of the labels: the
    // one Alertmanager shows.
    let dedup_key = a["dedup_key"].as_str().unwrap_or_default();
    let fingerprint =
        match dedup_key.len() == 16 && dedup_key.bytes().all(|b| b.is_ascii_hexdigit()) {
            true => dedup_key.to_string(),
            false => {
                let key = format!("{}\0{dedup_key}", receiver.name);
                format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
            }
        };
    Alert {
        fingerprint,
        starts_at: a["first_seen"].clone(),
        updated_at: a["last_seen"].clone(),
        ends_at: "0001-01-01T00:00:00.000Z",
        status: AlertStatus {
            state: if suppressed.is_some() {
                "suppressed"
            } else {
                "active"
            },
            silenced_by,
            // sluice does not say which alert inhibits another.
            inhibited_by: Vec::new(),
            suppressed,
        },
        labels,
        annotations,
        receivers: [receiver],
    }
}

#[cfg(test)]
mod tests;
