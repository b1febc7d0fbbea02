//! Golden fixtures for every registered integration.
//!
//! `tests/fixtures/integrations/<kind>/` holds, per case, `<case>.request.json` (the body as
//! the sender posts it, byte for byte: it may be broken on purpose) and `<case>.expected.json`
//! (the normalized events and the answer, or the refusal and the answer, as stable JSON),
//! plus a `README.md` saying where the samples' shape comes from. An optional
//! `<case>.context.json` sets what the request carries besides its body:
//! `{"routing_key": "...", "headers": {"name": "value"}, "query": "a=b", "now": "<RFC 3339>",
//! "settings": {"default_severity": "warning", "resolve_timeout": "10m"}}`, or instead of
//! `settings` a whole config file as `"config": "<TOML>"` (the generic mapper's mappers).
//!
//! After a deliberate change, `SLUICEDEV_BLESS=1 cargo test --lib golden` rewrites every
//! expected file; review the diff before committing it.

use std::path::{Path, PathBuf};

use http::Response;
use serde_json::{json, Value};

use crate::event::{Action, Event};
use crate::ingest::response::Body;
use crate::integration::Integration;
use crate::time::UnixMillis;

use super::fixture::context;
use super::{accepted, parse, refused};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/integrations");
const BLESS: &str = "SLUICEDEV_BLESS";
const MIN_CASES: usize = 3;

pub(super) use crate::ingest::response::body_bytes;

fn answer_json(resp: Response<Body>) -> Value {
    let status = resp.status().as_u16();
    let bytes = body_bytes(resp);
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    json!({"status": status, "body": body})
}

fn time(t: Option<UnixMillis>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_string()))
}

fn event_json(e: &Event) -> Value {
    let action = match e.action {
        Action::Trigger => "trigger",
        Action::Acknowledge => "acknowledge",
        Action::Resolve => "resolve",
    };
    let labels: serde_json::Map<String, Value> = e
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "routing_key": e.routing_key,
        "integration": e.integration.as_str(),
        "action": action,
        "dedup_key": e.dedup_key,
        "severity": e.severity.as_str(),
        "summary": e.summary,
        "source": e.source,
        "component": e.component,
        "group": e.group,
        "class": e.class,
        "labels": labels,
        "custom_details": e.custom_details.as_ref().map(|d| {
            serde_json::from_str::<Value>(d.0.get()).expect("details are JSON")
        }),
        "timestamp": time(e.timestamp),
        "received_at": e.received_at.to_string(),
        "ends_at": time(e.ends_at),
        "links": e.links,
        "images": e.images,
    })
}

/// Runs one case and returns its outcome as the expected file spells it.
fn outcome(kind: Integration, dir: &Path, case: &str) -> Result<Value, String> {
    let request = dir.join(format!("{case}.request.json"));
    let mut body = std::fs::read(&request).map_err(|e| format!("{}: {e}", request.display()))?;
    let ctx = context(&dir.join(format!("{case}.context.json")))?;
    Ok(match parse(kind, &ctx.request(kind, ""), &mut body) {
        Ok(parsed) => {
            let rejected: Vec<Value> = parsed
                .rejected
                .iter()
                .map(|r| json!({"item": r.item, "errors": r.errors}))
                .collect();
            let mut out = json!({
                "events": parsed.events.iter().map(event_json).collect::<Vec<_>>(),
                "rejected": rejected,
                "summaries_truncated": parsed.summaries_truncated,
                "answer": answer_json(accepted(kind, &parsed)),
            });
            if let Some(s) = &parsed.subscription {
                out["subscription"] =
                    json!({"topic_arn": s.topic_arn, "url": s.url, "confirm": s.confirm});
            }
            out
        }
        Err(e) => json!({
            "error": e.to_string(),
            "answer": answer_json(refused(&e)),
        }),
    })
}

/// The case names in a fixture folder; any file that is not part of a case is an error.
pub(super) fn cases(dir: &Path) -> Result<Vec<String>, String> {
    let mut cases = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy();
        if let Some(case) = name.strip_suffix(".request.json") {
            cases.push(case.to_string());
        } else if name != "README.md" {
            others.push(name.to_string());
        }
    }
    for other in others {
        let case = other
            .strip_suffix(".expected.json")
            .or_else(|| other.strip_suffix(".context.json"));
        if !case.is_some_and(|c| cases.iter().any(|k| k == c)) {
            return Err(format!(
                "{}: {other} belongs to no case (cases are <case>.request.json, \
                 <case>.expected.json, optional <case>.context.json, and README.md)",
                dir.display()
            ));
        }
    }
    cases.sort();
    Ok(cases)
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("values serialize");
    s.push('\n');
    s
}

/// Compares one case with its expected file, or rewrites that file when `bless`.
fn check(kind: Integration, dir: &Path, case: &str, bless: bool) -> Result<Value, String> {
    let actual = outcome(kind, dir, case)?;
    let path = dir.join(format!("{case}.expected.json"));
    if bless {
        std::fs::write(&path, pretty(&actual)).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(actual);
    }
    let text = std::fs::read_to_string(&path).map_err(|_| {
        format!(
            "{} is missing; write it with {BLESS}=1 cargo test --lib golden",
            path.display()
        )
    })?;
    let expected: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if expected == actual {
        Ok(actual)
    } else {
        Err(format!(
            "{kind}/{case}: the outcome differs from {}\n--- expected\n{}--- actual\n{}\
             (after a deliberate change: {BLESS}=1 cargo test --lib golden, then review the diff)",
            path.display(),
            pretty(&expected),
            pretty(&actual),
            kind = kind.as_str()
        ))
    }
}

fn bless() -> bool {
    std::env::var(BLESS).is_ok_and(|v| v == "1")
}

pub(super) fn folder(kind: Integration) -> PathBuf {
    Path::new(ROOT).join(kind.as_str())
}

#[test]
fn every_kind_has_a_fixture_folder_and_every_folder_names_a_kind() {
    let mut problems = Vec::new();
    for kind in Integration::ALL {
        let dir = folder(kind);
        if !dir.is_dir() {
            problems.push(format!(
                "{} has no fixture folder {}",
                kind.as_str(),
                dir.display()
            ));
        } else if !dir.join("README.md").is_file() {
            problems.push(format!(
                "{} has no README.md saying where its samples come from",
                dir.display()
            ));
        }
    }
    for entry in std::fs::read_dir(ROOT).expect("the fixture root exists") {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if Integration::parse(&name).is_none() {
            problems.push(format!(
                "{ROOT}/{name} names no registered integration (registry: ingest/integrations/mod.rs)"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_fixture_matches_its_expected_outcome() {
    let bless = bless();
    let mut failures = Vec::new();
    let mut ran = 0;
    for kind in Integration::ALL {
        let dir = folder(kind);
        let Ok(cases) = cases(&dir) else {
            continue; // reported by the folder test
        };
        for case in cases {
            ran += 1;
            if let Err(e) = check(kind, &dir, &case, bless) {
                failures.push(e);
            }
        }
    }
    assert!(ran > 0, "no fixtures found under {ROOT}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// At least a trigger, a resolve (or an end time, for formats that resolve by time) and a
/// refusal (or a rejected batch item) per kind, in at least three cases.
#[test]
fn every_kind_covers_trigger_resolve_and_malformed() {
    let mut problems = Vec::new();
    for kind in Integration::ALL {
        let dir = folder(kind);
        let cases = match cases(&dir) {
            Ok(c) => c,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let (mut trigger, mut resolve, mut refused) = (false, false, false);
        for case in &cases {
            let Ok(out) = outcome(kind, &dir, case) else {
                continue; // reported by the fixtures test
            };
            refused |= out.get("error").is_some()
                || out["rejected"].as_array().is_some_and(|r| !r.is_empty());
            for e in out["events"].as_array().into_iter().flatten() {
                trigger |= e["action"] == "trigger";
                resolve |= e["action"] == "resolve" || !e["ends_at"].is_null();
                if e["integration"] != kind.as_str() {
                    problems.push(format!(
                        "{}/{case}: an event says integration {} (registry line and parser disagree)",
                        kind.as_str(),
                        e["integration"]
                    ));
                }
            }
        }
        let name = kind.as_str();
        if cases.len() < MIN_CASES {
            problems.push(format!(
                "{name}: {} case(s), at least {MIN_CASES} needed",
                cases.len()
            ));
        }
        // A heartbeat's events are beats, never alerts: there is nothing to resolve.
        let beats_only = kind == Integration::Heartbeat;
        for (covered, what) in [
            (trigger, "a trigger"),
            (resolve || beats_only, "a resolve (or an end time)"),
            (refused, "a malformed or invalid request"),
        ] {
            if !covered {
                problems.push(format!("{name}: no case with {what}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Blessing rewrites a stale expected file, after which the case passes; without blessing,
/// the stale file fails naming the case.
#[test]
fn bless_rewrites_stale_expected_files() {
    let dir = std::env::temp_dir().join(format!("sluice-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = folder(Integration::AlertmanagerWebhook);
    let case = "firing_batch";
    std::fs::copy(
        src.join(format!("{case}.request.json")),
        dir.join(format!("{case}.request.json")),
    )
    .unwrap();
    let expected = dir.join(format!("{case}.expected.json"));
    std::fs::write(&expected, "{\"stale\": true}\n").unwrap();

    let err = check(Integration::AlertmanagerWebhook, &dir, case, false).unwrap_err();
    assert!(err.contains("alertmanager_webhook/firing_batch"), "{err}");
    check(Integration::AlertmanagerWebhook, &dir, case, true).unwrap();
    let rewritten = std::fs::read_to_string(&expected).unwrap();
    assert!(rewritten.contains("\"events\""), "{rewritten}");
    check(Integration::AlertmanagerWebhook, &dir, case, false).unwrap();

    std::fs::write(dir.join("stray.json"), "{}").unwrap();
    assert!(cases(&dir)
        .unwrap_err()
        .contains("stray.json belongs to no case"));
    std::fs::remove_dir_all(&dir).unwrap();
}
