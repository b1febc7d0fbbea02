//! Golden fixtures for every registered integration.
//!
//! A native kind's `tests/fixtures/integrations/<kind>/` (a catalog kind's `catalog/<kind>/`,
//! next to its definition, which says where its samples come from) holds, per case, `<case>.request.json` (the body as
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

use crate::integration::Integration;

use super::cases::{cases, check, outcome, Runner, BLESS};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/integrations");
const MIN_CASES: usize = 3;
/// A catalog kind: a trigger and a resolve (or its only action) from the vendor's samples; the
/// mapper's refusals are covered once, by the generic kind's cases.
const MIN_CATALOG_CASES: usize = 2;

fn bless() -> bool {
    std::env::var(BLESS).is_ok_and(|v| v == "1")
}

pub(super) use super::cases::fixture_folder as folder;

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
        } else if super::catalog::definition_of(kind).is_none() && !dir.join("README.md").is_file()
        {
            problems.push(format!(
                "{} has no README.md saying where its samples come from",
                dir.display()
            ));
        }
    }
    for entry in std::fs::read_dir(ROOT).expect("the fixture root exists") {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if Integration::parse(&name).is_none_or(|k| super::catalog::definition_of(k).is_some()) {
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
            if let Err(e) = check(Runner::Kind(kind), &dir, &case, bless) {
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
            let Ok(out) = outcome(Runner::Kind(kind), &dir, case) else {
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
        let definition = super::catalog::definition_of(kind);
        let min = if definition.is_some() {
            MIN_CATALOG_CASES
        } else {
            MIN_CASES
        };
        if cases.len() < min {
            problems.push(format!(
                "{name}: {} case(s), at least {min} needed",
                cases.len()
            ));
        }
        // A heartbeat's events are beats, never alerts: there is nothing to resolve; a sender
        // whose definition cannot resolve sends triggers only.
        let no_resolve =
            kind == Integration::Heartbeat || definition.is_some_and(|d| !d.mapper.can_resolve());
        for (covered, what) in [
            (trigger, "a trigger"),
            (resolve || no_resolve, "a resolve (or an end time)"),
            (
                refused || definition.is_some(),
                "a malformed or invalid request",
            ),
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

    let err = check(
        Runner::Kind(Integration::AlertmanagerWebhook),
        &dir,
        case,
        false,
    )
    .unwrap_err();
    assert!(err.contains("alertmanager_webhook/firing_batch"), "{err}");
    check(
        Runner::Kind(Integration::AlertmanagerWebhook),
        &dir,
        case,
        true,
    )
    .unwrap();
    let rewritten = std::fs::read_to_string(&expected).unwrap();
    assert!(rewritten.contains("\"events\""), "{rewritten}");
    check(
        Runner::Kind(Integration::AlertmanagerWebhook),
        &dir,
        case,
        false,
    )
    .unwrap();

    std::fs::write(dir.join("stray.json"), "{}").unwrap();
    assert!(cases(&dir)
        .unwrap_err()
        .contains("stray.json belongs to no case"));
    std::fs::remove_dir_all(&dir).unwrap();
}
