//! The fuzz targets without a fuzzer: every committed corpus file and crash file
//! (`fuzz/corpus/<target>/`, `fuzz/artifacts/<target>/`) and every seed made from the golden
//! fixtures, the example config and the README goes through its target; a panic fails the
//! test and names the file. `SLUICEDEV_FUZZ_SEEDS=<dir>` also writes the seeds to
//! `<dir>/<target>/` (`load-tests/fuzz.sh` hands them to every run, so a new fixture joins the
//! corpus on the next run).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;
use crate::event::wire::Origin;
use crate::ingest::integrations::pagerduty;

mod signing;

use signing::signatures_seeds;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir`, sorted (none when it is absent).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Runs `input` through `target`; a panic comes back as its message.
fn run(target: Target, input: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| target(input))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn a_panicking_input_is_reported() {
    assert_eq!(run(|_| panic!("boom"), b""), Err("boom".to_string()));
    assert_eq!(run(|_| (), b""), Ok(()));
}

#[test]
fn committed_corpora_and_crash_files_never_panic() {
    let mut failures = Vec::new();
    for (name, target) in TARGETS {
        let corpus = files(&root().join("fuzz/corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty or missing");
        let crashes = files(&root().join("fuzz/artifacts").join(name));
        for path in corpus.iter().chain(&crashes) {
            let input = std::fs::read(path).unwrap();
            if let Err(panic) = run(*target, &input) {
                failures.push(format!("{}: {panic}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn seeds_never_panic() {
    let out = std::env::var_os("SLUICEDEV_FUZZ_SEEDS").map(PathBuf::from);
    let mut failures = Vec::new();
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        assert!(seeds.len() >= 3, "{name} has {} seeds", seeds.len());
        for (seed, input) in &seeds {
            if let Err(panic) = run(*target, input) {
                failures.push(format!("{name}/{seed}: {panic}"));
            }
            if let Some(out) = &out {
                let dir = out.join(name);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(seed), input).unwrap();
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One golden fixture request: its kind, case name, body and context file (`{}` when none).
struct Fixture {
    kind: Integration,
    case: String,
    body: Vec<u8>,
    context: Value,
}

impl Fixture {
    fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.context["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
    }

    fn query(&self) -> Option<&str> {
        self.context["query"].as_str()
    }

    fn routing_key(&self) -> Option<&str> {
        self.context["routing_key"].as_str()
    }
}

fn fixtures() -> Vec<Fixture> {
    use crate::ingest::integrations::cases;
    let mut out = Vec::new();
    for kind in Integration::ALL {
        // The golden test's own listing (a catalog kind's cases are in `catalog/<kind>/`).
        let dir = cases::fixture_folder(kind);
        for case in cases::cases(&dir).unwrap_or_else(|e| panic!("{e}")) {
            let context = std::fs::read_to_string(dir.join(format!("{case}.context.json")))
                .map_or(Value::Object(Default::default()), |t| {
                    serde_json::from_str(&t).unwrap()
                });
            out.push(Fixture {
                kind,
                body: std::fs::read(cases::request_file(&dir, &case)).unwrap(),
                case,
                context,
            });
        }
    }
    assert!(!out.is_empty(), "no golden fixtures");
    out
}

/// A request input: the head's lines, a NUL, the body.
fn request(first_line: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = first_line.as_bytes().to_vec();
    for (name, value) in headers {
        out.extend_from_slice(format!("\n{name}: {value}").as_bytes());
    }
    out.push(0);
    out.extend_from_slice(body);
    out
}

/// Every seed of `target`: a file name and its bytes.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "format" => format_seeds(),
        "wire" => wire_seeds(),
        "config" => config_seeds(),
        "router" => router_seeds(),
        "signatures" => signatures_seeds(),
        other => panic!("no seeds for {other}"),
    }
}

/// Each fixture request as its kind's input, with its context's query, headers and key.
fn format_seeds() -> Vec<(String, Vec<u8>)> {
    fixtures()
        .into_iter()
        .map(|f| {
            let index = Integration::ALL.iter().position(|&k| k == f.kind).unwrap();
            let first_line = f.query().map(|q| format!("?{q}")).unwrap_or_default();
            let mut headers: Vec<(&str, &str)> = f.headers().collect();
            if let Some(key) = f.routing_key() {
                headers.push((endpoint::ROUTING_KEY_HEADER, key));
            }
            let mut input = vec![u8::try_from(index).unwrap()];
            input.extend(request(&first_line, &headers, &f.body));
            (format!("fixture-{}-{}", f.kind.as_str(), f.case), input)
        })
        .collect()
}

/// Every event the fixtures parse to, encoded; a change, a routed event and watermarks.
fn wire_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut first_event = None;
    for (name, input) in format_seeds() {
        let Some((_, Ok(parsed))) = parse_format(&input) else {
            continue;
        };
        for (i, event) in parsed.events.into_iter().enumerate() {
            let mut bytes = Vec::new();
            wire::encode_event(&event, &mut bytes);
            out.push((format!("{name}-{i}"), bytes));
            first_event.get_or_insert(event);
        }
    }
    let mut change = br#"{"routing_key":"rk-1","payload":{"summary":"deploy 42","source":"ci","timestamp":"2024-05-02T09:00:00Z","custom_details":{"build":42}},"links":[{"href":"https://ci.example.com/42","text":"build"}]}"#.to_vec();
    let change = pagerduty::parse_change(&mut change, NOW).unwrap().event;
    let records = [
        ("change", Record::Change(change)),
        (
            "routed",
            Record::Routed {
                event: first_event.expect("a fixture parses to an event"),
                origin: Origin {
                    partition: 3,
                    offset: 1234,
                    index: 0,
                    floor: 1200,
                },
            },
        ),
        (
            "watermark",
            Record::Watermark {
                at: NOW,
                rules: Some("9f86d081884c7d65".into()),
            },
        ),
        (
            "watermark-bare",
            Record::Watermark {
                at: NOW,
                rules: None,
            },
        ),
    ];
    for (name, record) in records {
        let mut bytes = Vec::new();
        wire::encode(&record, &mut bytes);
        out.push((name.to_string(), bytes));
    }
    out
}

/// The example config, the README's TOML blocks, the fixtures' configs and [`CONFIG`].
fn config_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("fuzz-config".to_string(), CONFIG.as_bytes().to_vec())];
    for path in files(&root().join("config")) {
        let name = path.file_name().unwrap().to_string_lossy();
        out.push((format!("config-{name}"), std::fs::read(&path).unwrap()));
    }
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for (i, block) in readme.split("```toml\n").skip(1).enumerate() {
        let block = block.split("```").next().unwrap_or_default();
        out.push((format!("readme-{i}"), block.as_bytes().to_vec()));
    }
    for f in fixtures() {
        if let Some(toml) = f.context["config"].as_str() {
            out.push((
                format!("fixture-{}-{}", f.kind.as_str(), f.case),
                toml.as_bytes().to_vec(),
            ));
        }
    }
    out
}

/// Each fixture request at its kind's path; the fixed routes, silences, the vendor paths and
/// the replay storm's first requests.
fn router_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for f in fixtures() {
        let kind = f.kind.as_str();
        // A kind served only at its own path, or a fixture whose key is in the body (empty
        // routing key): the vendor path; else `/integrations/<kind>/<routing_key>`.
        let mut uri = match (f.kind.serving().own, f.routing_key()) {
            (Some(own), _) if !f.kind.key_from_request() => own.path.to_string(),
            (Some(own), Some("")) if own.key_in_body => own.path.to_string(),
            (_, key) => format!("/integrations/{kind}/{}", key.unwrap_or(ROUTING_KEY)),
        };
        if let Some(q) = f.query() {
            uri = format!("{uri}?{q}");
        }
        let mut headers: Vec<(&str, &str)> = f.headers().collect();
        let (uri, secret) = with_secret(f.kind, uri);
        headers.extend(secret);
        let input = request(&format!("POST {uri}"), &headers, &f.body);
        out.push((format!("fixture-{kind}-{}", f.case), input));
    }
    let silence = br#"{"matchers":[{"name":"source","op":"=","value":"web-1"}],"starts_at":"2024-05-02T09:00:00Z","ends_at":"2024-05-02T11:00:00Z","created_by":"ana","comment":"kernel upgrade"}"#;
    let change = br#"{"routing_key":"rk-1","payload":{"summary":"deploy 42","source":"ci"}}"#;
    let alert = br#"[{"labels":{"alertname":"Down","instance":"a:9100"},"startsAt":"2024-05-02T09:00:00Z"}]"#;
    let opsgenie = br#"{"message":"disk full","alias":"disk-a","priority":"P2"}"#;
    let silence_v2 = br#"{"matchers":[{"name":"routing_key","value":"rk-1","isRegex":false},{"name":"alertname","value":"Disk.*","isRegex":true}],"startsAt":"2024-05-02T09:00:00Z","endsAt":"2024-05-02T11:00:00Z","createdBy":"ana","comment":"disk swap"}"#;
    let broad = br#"{"matchers":[{"name":"routing_key","value":"rk-1","isRegex":false},{"name":"source","value":".+","isRegex":true}],"startsAt":"2024-05-02T09:00:00Z","endsAt":"2024-05-02T11:00:00Z","createdBy":"ana","comment":"all"}"#;
    let ops = ("authorization", "Bearer fuzz-ops-token-0123456789");
    let team = ("authorization", "Bearer fuzz-team-token-0123456789");
    let grafana =
        std::fs::read(root().join("tests/fixtures/integrations/grafana/firing_batch.request.json"))
            .unwrap();
    type Fixed<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [u8]);
    let fixed: &[Fixed<'_>] = &[
        ("healthz", "GET /healthz", &[], b""),
        ("readyz-head", "HEAD /readyz", &[], b""),
        ("metrics", "GET /metrics", &[], b""),
        (
            "change",
            "POST /v2/change/enqueue?token=fuzz-pagerduty-token",
            &[],
            change,
        ),
        ("change-no-token", "POST /v2/change/enqueue", &[], change),
        ("silence-create", "POST /api/v1/silences", &[ops], silence),
        ("silence-no-token", "POST /api/v1/silences", &[], silence),
        ("silence-list", "GET /api/v1/silences", &[team], b""),
        ("silence-delete", "DELETE /api/v1/silences/1", &[ops], b""),
        (
            "silence-v2-create",
            "POST /api/v2/silences",
            &[team],
            silence_v2,
        ),
        ("silence-v2-broad", "POST /api/v2/silences", &[team], broad),
        ("silence-v2-list", "GET /api/v2/silences", &[ops], b""),
        (
            "grafana-old-secret",
            "POST /integrations/grafana/rk-1",
            &[("x-sluice-secret", "fuzz-grafana-old-secret")],
            &grafana,
        ),
        (
            "grafana-wrong-secret",
            "POST /integrations/grafana/rk-1",
            &[("x-sluice-secret", "nope")],
            &grafana,
        ),
        (
            "alertmanager-api-own",
            "POST /api/v2/alerts",
            &[("x-routing-key", "rk-1")],
            alert,
        ),
        (
            "alertmanager-api-prefix",
            "POST /integrations/alertmanager_api/rk-1/api/v2/alerts",
            &[],
            alert,
        ),
        (
            "opsgenie-create",
            "POST /v2/alerts",
            &[("authorization", "GenieKey g-1")],
            opsgenie,
        ),
        (
            "opsgenie-close",
            "POST /v2/alerts/disk-a/close?identifierType=alias",
            &[("authorization", "GenieKey g-1")],
            b"{}",
        ),
    ];
    for &(name, line, headers, body) in fixed {
        out.push((name.to_string(), request(line, headers, body)));
    }
    let storm = std::fs::read_to_string(root().join("tests/fixtures/replay/storm.jsonl")).unwrap();
    for (i, line) in storm.lines().take(8).enumerate() {
        let rec: Value = serde_json::from_str(line).unwrap();
        let path = rec["path"].as_str().unwrap();
        let kind = Integration::ALL
            .into_iter()
            .find(|k| k.own_path() == Some(path))
            .unwrap_or(Integration::PagerDuty);
        let (uri, secret) = with_secret(kind, path.to_string());
        let body = serde_json::to_vec(&rec["body"]).unwrap();
        let input = request(&format!("POST {uri}"), &Vec::from_iter(secret), &body);
        out.push((format!("storm-{i}"), input));
    }
    out
}

/// `uri` with the secret [`CONFIG`] asks of `kind` (a query parameter or a path prefix), and
/// the header that carries it, if any.
fn with_secret(kind: Integration, uri: String) -> (String, Option<(&'static str, &'static str)>) {
    match kind {
        Integration::Grafana => (uri, Some(("x-sluice-secret", "fuzz-grafana-secret"))),
        Integration::PagerDuty => {
            let sep = if uri.contains('?') { '&' } else { '?' };
            (format!("{uri}{sep}token=fuzz-pagerduty-token"), None)
        }
        Integration::AlertmanagerWebhook => (format!("/secret/fuzz-path-secret{uri}"), None),
        _ => (uri, None),
    }
}
