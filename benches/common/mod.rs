//! Shared by `pipeline.rs` and `alloc.rs`: the golden fixtures of
//! `tests/fixtures/integrations/<kind>/` read from disk (layout:
//! `src/ingest/integrations/golden.rs`), one representative accepted trigger case per kind,
//! and the events, incidents and rules that the correlate and encode stages are measured with.

use std::time::Duration;

use serde_json::Value;
use sluice::config::{RuleConfig, WindowKind};
use sluice::correlate::incident::{Alert, Incident};
use sluice::correlate::rules::Rule;
use sluice::event::deterministic_id;
use sluice::event::{Action, Event, Field, Severity};
use sluice::ingest::integrations::cases::{cases, fixture_folder, request_file};
use sluice::ingest::integrations::catalog::definition_of;
use sluice::ingest::integrations::fixture::{context, CaseContext};
use sluice::ingest::integrations::{self, IngestRequest, Parsed};
use sluice::integration::Integration;
use sluice::publish::encode::Status;
use sluice::time::UnixMillis;

/// Whether criterion measures (`cargo bench`) rather than runs each bench once as a test
/// (`cargo test --benches`, or `cargo bench -- --test`): the same rule criterion applies.
pub fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// One fixture case: its body as the sender posts it and what the request carries besides.
pub struct Case {
    pub kind: Integration,
    pub name: String,
    pub body: Vec<u8>,
    /// Events the case yields, from its expected file (checked against a parse at load).
    pub events: usize,
    ctx: CaseContext,
}

impl Case {
    /// The request the server would build for this case (the format's path part is empty, as
    /// in golden.rs).
    pub fn request(&self) -> IngestRequest<'_> {
        self.ctx.request(self.kind, "")
    }

    /// Parses the body through the server's entry (`integrations::parse`); `buf` is the
    /// request buffer the parser works in, refilled from the fixture each time.
    pub fn parse(&self, buf: &mut Vec<u8>) -> Parsed {
        buf.clear();
        buf.extend_from_slice(&self.body);
        integrations::parse(self.kind, &self.request(), buf).expect("an accepted case parses")
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

/// Events of an expected file when the case is accepted cleanly (2xx, nothing rejected) and
/// yields at least one trigger; `None` for malformed, refused, partly rejected or
/// trigger-less cases.
fn accepted_trigger_events(expected: &Value) -> Option<usize> {
    let status = expected["answer"]["status"].as_u64()?;
    let events = expected["events"].as_array()?;
    let rejected = expected["rejected"].as_array().map_or(0, Vec::len);
    let trigger = events.iter().any(|e| e["action"] == "trigger");
    ((200..300).contains(&status) && rejected == 0 && trigger).then_some(events.len())
}

/// Per registered kind, its representative case: of the cases accepted with at least one
/// trigger and nothing rejected, the one with the largest body (ties: first by name).
/// Each is parsed once here, and must yield the events its expected file lists.
/// Catalog kinds benched by default, each beside a native format of similar payloads (uptime
/// checks, error trackers, incident tools, CI, a batch, a form body); `SLUICEBENCH_CATALOG=all`
/// benches every catalog kind.
const CATALOG_SAMPLE: [&str; 7] = [
    "uptimerobot",
    "hyperping",
    "rollbar",
    "opsgenie_webhook",
    "github_actions",
    "servicenow_events",
    "statuscake",
];

pub fn representative_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let all_catalog = std::env::var("SLUICEBENCH_CATALOG").is_ok_and(|v| v == "all");
    for kind in Integration::ALL {
        if definition_of(kind).is_some() && !all_catalog && !CATALOG_SAMPLE.contains(&kind.as_str())
        {
            continue;
        }
        let dir = fixture_folder(kind);
        let mut names = cases(&dir).unwrap_or_else(|e| panic!("{e}"));
        names.sort();
        let mut best: Option<(Vec<u8>, String, usize)> = None;
        for name in names {
            let expected = dir.join(format!("{name}.expected.json"));
            let text = std::fs::read_to_string(&expected)
                .unwrap_or_else(|e| panic!("{}: {e}", expected.display()));
            let value: Value = serde_json::from_str(&text).expect("expected files are JSON");
            let Some(events) = accepted_trigger_events(&value) else {
                continue;
            };
            let body = std::fs::read(request_file(&dir, &name)).expect("readable");
            if best.as_ref().is_none_or(|(b, _, _)| body.len() > b.len()) {
                best = Some((body, name, events));
            }
        }
        let (body, name, events) =
            best.unwrap_or_else(|| panic!("{}: no accepted trigger case to bench", kind.as_str()));
        let path = dir.join(format!("{name}.context.json"));
        let ctx = context(&path).unwrap_or_else(|e| panic!("{e}"));
        let case = Case {
            kind,
            name,
            body,
            events,
            ctx,
        };
        let parsed = case.parse(&mut Vec::new());
        assert_eq!(
            parsed.events.len(),
            case.events,
            "{}: the parse disagrees with the expected file",
            case.label()
        );
        out.push(case);
    }
    out
}

/// The grouping rule of the correlate benches: by source, a rolling one-hour window, held for
/// `group_wait` (30 s) so that no message is rendered while the clock stays before it.
pub fn rule() -> Rule {
    Rule::new(RuleConfig {
        name: "bench".into(),
        group_by: vec![Field::Source],
        window: WindowKind::Rolling,
        window_duration: Duration::from_secs(3600),
        max_duration: Duration::from_secs(86_400),
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(60),
        ..RuleConfig::plain()
    })
}

/// Strings at their exact length, as a parser leaves them (`to_string` of a borrowed field),
/// so that the correlator's `into_boxed_str` does not shrink them in the measured time.
fn exact(mut e: Event) -> Event {
    for s in [&mut e.dedup_key, &mut e.summary, &mut e.source] {
        s.shrink_to_fit();
    }
    e
}

/// A trigger of alert `key` on one of 1000 hosts (so 1000 groups under [`rule`]).
pub fn trigger(key: u64) -> Event {
    let mut e = Event::new(
        Integration::PagerDuty,
        Action::Trigger,
        "svc".into(),
        format!("alert-{key}"),
        UnixMillis(1),
    );
    e.source = format!("host-{}", key % 1000);
    e.summary = format!("disk full on host-{}", key % 1000);
    e.severity = Severity::Warning;
    exact(e)
}

/// A trigger of a new alert `key` into the one group of source `storm-host`.
pub fn storm_trigger(key: u64) -> Event {
    let mut e = Event::new(
        Integration::PagerDuty,
        Action::Trigger,
        "svc".into(),
        format!("storm-{key}"),
        UnixMillis(1),
    );
    e.source = "storm-host".into();
    e.summary = format!("check {key} failing on storm-host");
    e.severity = Severity::Error;
    exact(e)
}

/// An incident of `alerts` alerts as the shard holds it: each alert is the PagerDuty golden
/// trigger (summary, source, details, links) under its own dedup key, grouped by source.
pub fn incident(template: &Event, rule: &Rule, alerts: usize) -> Incident {
    let now = UnixMillis(1_714_641_300_000);
    let id = deterministic_id(
        "inc_",
        &[
            template.routing_key.as_bytes(),
            rule.name.as_bytes(),
            template.source.as_bytes(),
            &now.0.to_le_bytes(),
            template.dedup_key.as_bytes(),
        ],
    );
    let mut inc = Incident {
        id,
        seq: 1,
        routing_key: template.routing_key.as_str().into(),
        rule: 0,
        group_values: Box::new([template.source.as_str().into()]),
        group_hash: 0,
        related: Vec::new(),
        pause_end: now,
        pause_learned: false,
        pause_by: 0,
        title: template.summary.as_str().into(),
        opened_at: now,
        updated_at: now,
        window_end: now.saturating_add(Duration::from_secs(3600)),
        resolved_at: None,
        alerts: Vec::with_capacity(alerts),
        open_alerts: 0,
        acked_alerts: 0,
        suppressed_open: 0,
        gathered: 0,
        publish_at: now.saturating_add(Duration::from_secs(30)),
        flapping_until: None,
        flap_announced: false,
        severity_counts: [0; 4],
        last_severity: template.severity,
        event_count: 0,
        integrations: Default::default(),
        links: Vec::new(),
        published: false,
        published_severity: template.severity,
        published_status: Status::Triggered,
        last_published_at: now,
        dirty: true,
        timer: 0,
        timer_at: UnixMillis(0),
        overflow: None,
        in_group_index: true,
        snoozed_until: None,
        last_command: None,
    };
    for i in 0..alerts {
        let mut e = template.clone();
        e.dedup_key = format!("{}#{i}", e.dedup_key);
        let alert = Alert::triggered(i as u64, &mut e, now);
        inc.open_alerts += 1;
        inc.event_count += 1;
        inc.gathered += 1;
        inc.severity_counts[alert.severity as usize] += 1;
        inc.integrations.insert(alert.integration);
        inc.add_links(e.links);
        inc.alerts.push(alert);
    }
    inc
}

/// The Alertmanager API's golden case: the integration the load test's alerts come through.
pub fn alertmanager_api(cases: &[Case]) -> &Case {
    cases
        .iter()
        .find(|c| c.kind == Integration::AlertmanagerApi)
        .expect("an alertmanager_api case")
}

/// The alerts of the load test's RSS shape (`rss_alerts.json`: 64 alerts of 8-16 labels and
/// 2-4 annotations) for batch `batch`, as the Alertmanager API integration makes them.
pub fn rss_events(cases: &[Case], batch: &str) -> Vec<Event> {
    let case = alertmanager_api(cases);
    let mut body = rss_body(batch);
    sluice::ingest::integrations::parse(case.kind, &case.request(), &mut body)
        .expect("the RSS alerts parse")
        .events
}

/// The body of batch `batch` of the load test's RSS shape (`rss_alerts.json`), as posted to
/// `/api/v2/alerts`.
pub fn rss_body(batch: &str) -> Vec<u8> {
    include_str!("rss_alerts.json")
        .replace("@@N@@", batch)
        .into_bytes()
}

/// `load-tests/sluice.toml`, the load tests' config (one rule grouping by source, the other
/// settings their defaults: symptom inhibition on).
pub fn load_test_config() -> sluice::config::Config {
    sluice::config::Config::from_toml(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/load-tests/sluice.toml"
        ))
        .expect("load-tests/sluice.toml"),
        Vec::new(),
    )
    .expect("the load test's config")
}

/// The first alert of the RSS shape ([`rss_events`]): the template of a storm's incident for
/// [`incident`].
pub fn prometheus_event(cases: &[Case]) -> Event {
    rss_events(cases, "0").remove(0)
}

/// The PagerDuty v2 golden trigger's event: the template of [`incident`]'s alerts.
pub fn pagerduty_event(cases: &[Case]) -> Event {
    let case = cases
        .iter()
        .find(|c| c.kind == Integration::PagerDuty)
        .expect("pagerduty has a case");
    case.parse(&mut Vec::new()).events.remove(0)
}

/// The process' resident set in bytes, from `/proc/self/status` (0 where there is none).
#[allow(dead_code)] // alloc.rs reads no RSS
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}
