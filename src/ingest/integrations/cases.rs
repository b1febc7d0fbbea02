//! Golden fixture cases: run one and compare it with its expected file, or bless it. Shared by
//! the golden test (every kind's `tests/fixtures/integrations/<kind>/`, the catalog's
//! `catalog/<kind>/`) and `sluice check-integration DIR`.
//!
//! A case is `<case>.request.json` (or `.request.txt`: a form or query body), the body exactly
//! as the sender posts it; `<case>.expected.json`, the events and the answer as stable JSON;
//! and an optional `<case>.context.json` ([`super::fixture`]).

use std::path::{Path, PathBuf};

use http::Response;
use serde_json::{json, Value};

use crate::event::{Action, Event};
use crate::ingest::response::{body_bytes, Body};
use crate::integration::Integration;
use crate::time::UnixMillis;

use super::catalog::Definition;
use super::fixture::context;
use super::{IngestRequest, IntegrationError, Parsed};

/// The environment variable that makes the golden test rewrite expected files.
pub const BLESS: &str = "SLUICEDEV_BLESS";

/// What parses a case: a registered kind (through the registry's dispatch), or a definition
/// read from a directory (its mapper, as `generic` unless it is a bundled kind).
#[derive(Clone, Copy)]
pub enum Runner<'a> {
    Kind(Integration),
    Definition(&'a Definition),
}

impl Runner<'_> {
    pub fn name(&self) -> &str {
        match self {
            Runner::Kind(k) => k.as_str(),
            Runner::Definition(d) => &d.kind,
        }
    }

    fn kind(&self) -> Integration {
        match self {
            Runner::Kind(k) => *k,
            Runner::Definition(d) => d.integration,
        }
    }

    fn parse(&self, req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        match self {
            Runner::Kind(k) => super::parse(*k, req, body),
            Runner::Definition(d) => d.mapper.map(d.integration, req, body),
        }
    }

    fn accepted(&self, parsed: &Parsed) -> Response<Body> {
        match self {
            Runner::Kind(k) => super::accepted(*k, parsed),
            // The mapper's `answer` travels in `parsed`: the kind's own answer is the one.
            Runner::Definition(d) => super::accepted(d.integration, parsed),
        }
    }
}

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
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
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

/// Where `kind`'s golden fixtures are: a catalog kind's `catalog/<kind>/`, beside its
/// definition; a native kind's `tests/fixtures/integrations/<kind>/`.
pub fn fixture_folder(kind: Integration) -> PathBuf {
    match super::catalog::definition_of(kind) {
        Some(_) => Path::new(super::catalog::ROOT).join(kind.as_str()),
        None => Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/integrations"
        ))
        .join(kind.as_str()),
    }
}

/// The request file of a case: `.request.json`, else `.request.txt`.
pub fn request_file(dir: &Path, case: &str) -> PathBuf {
    let json = dir.join(format!("{case}.request.json"));
    if json.exists() {
        json
    } else {
        dir.join(format!("{case}.request.txt"))
    }
}

/// Runs one case and returns its outcome as the expected file spells it.
pub fn outcome(runner: Runner<'_>, dir: &Path, case: &str) -> Result<Value, String> {
    let request = request_file(dir, case);
    let mut body = std::fs::read(&request).map_err(|e| format!("{}: {e}", request.display()))?;
    let ctx = context(&dir.join(format!("{case}.context.json")))?;
    let kind = runner.kind();
    Ok(match runner.parse(&ctx.request(kind, ""), &mut body) {
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
                "answer": answer_json(runner.accepted(&parsed)),
            });
            if let Some(s) = &parsed.subscription {
                out["subscription"] =
                    json!({"topic_arn": s.topic_arn, "url": s.url, "confirm": s.confirm});
            }
            out
        }
        Err(e) => json!({
            "error": e.to_string(),
            "answer": answer_json(super::refused(&e)),
        }),
    })
}

/// The case names in a fixture folder; any file that is not part of a case is an error.
pub fn cases(dir: &Path) -> Result<Vec<String>, String> {
    let mut cases = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy();
        if let Some(case) = name
            .strip_suffix(".request.json")
            .or_else(|| name.strip_suffix(".request.txt"))
        {
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
                "{}: {other} belongs to no case (cases are <case>.request.json or .request.txt, \
                 <case>.expected.json, optional <case>.context.json, and README.md)",
                dir.display()
            ));
        }
    }
    cases.sort();
    cases.dedup();
    Ok(cases)
}

pub fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("values serialize");
    s.push('\n');
    s
}

/// Compares one case with its expected file, or rewrites that file when `bless`.
pub fn check(runner: Runner<'_>, dir: &Path, case: &str, bless: bool) -> Result<Value, String> {
    let actual = outcome(runner, dir, case)?;
    let path = dir.join(format!("{case}.expected.json"));
    if bless {
        std::fs::write(&path, pretty(&actual)).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(actual);
    }
    let text = std::fs::read_to_string(&path).map_err(|_| {
        format!(
            "{} is missing; write it with {BLESS}=1 cargo test --lib golden (or check-integration --bless)",
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
             (after a deliberate change: {BLESS}=1 cargo test --lib golden, or \
             sluice check-integration --bless, then review the diff)",
            path.display(),
            pretty(&expected),
            pretty(&actual),
            kind = runner.name()
        ))
    }
}
