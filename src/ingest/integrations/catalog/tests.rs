use std::path::Path;

use super::*;
use crate::ingest::integrations::cases::BLESS;
use crate::ingest::integrations::check::check_dir;

#[test]
fn every_bundled_definition_loads_and_is_a_kind() {
    assert!(
        bundled_problems().is_empty(),
        "{}",
        bundled_problems().join("\n")
    );
    assert_eq!(bundled().len(), SOURCES.len());
    for d in bundled() {
        assert_eq!(Integration::parse(&d.kind), Some(d.integration));
        assert_eq!(definition_of(d.integration).map(|x| &x.kind), Some(&d.kind));
        assert!(!d.docs.is_empty() && !d.signature.is_empty(), "{}", d.kind);
    }
    // The issue's floor: at least 120 kinds, each a distinct payload shape (aliases apart).
    assert!(
        Integration::ALL.len() >= 120,
        "{} kinds",
        Integration::ALL.len()
    );
}

#[test]
fn every_catalog_folder_belongs_to_a_definition() {
    for entry in std::fs::read_dir(ROOT).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let kind = name.strip_suffix(".toml").unwrap_or(&name);
        assert!(
            SOURCES.iter().any(|(k, _)| *k == kind),
            "catalog/{name} belongs to no definition"
        );
        if path.is_dir() {
            assert!(Path::new(ROOT).join(format!("{kind}.toml")).is_file());
        }
    }
}

/// `sluice check-integration catalog` passes, as users run it on their own folders.
#[test]
fn check_integration_passes_on_the_bundled_catalog() {
    let (lines, ok) = check_dir(Path::new(ROOT), false);
    assert!(ok, "{}", lines.join("\n"));
    assert!(lines.iter().filter(|l| l.contains(": ok: ")).count() >= 2 * SOURCES.len());
}

fn user_dir(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-catalog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const SHOP: &str = r#"
vendor = "Shop"
title = "the shop's own monitor"
category = "other"
docs = ["https://shop.example.com/monitor"]
samples = "constructed"
signature = "none"
body = "form"
answer = 200
[map]
dedup_key = "{/check}@{/host|/ip}"
action = "/state"
action_map = { ok = "resolve", ping = "ignore", "*" = "trigger" }
severity = "/level"
severity_map = { P1 = "critical" }
default_severity = "warning"
summary = "{/check} on {/host|/ip} is {/state}"
class = "shop check"
"#;

/// A user's folder: definitions as the generic kind, checked and run like the bundled ones,
/// with form bodies, templates with alternatives, wildcard maps and the expected answer.
#[test]
fn user_definitions_are_checked_and_run_like_the_bundled_ones() {
    let dir = user_dir(
        "ok",
        &[
            ("shop.toml", SHOP),
            (
                "shop/down.request.txt",
                "check=disk&ip=203.0.113.9&state=failing+hard&level=P1",
            ),
            ("shop/up.request.txt", "check=disk&ip=203.0.113.9&state=ok"),
        ],
    );
    let (lines, ok) = check_dir(&dir, true);
    assert!(ok, "{}", lines.join("\n"));
    let (lines, ok) = check_dir(&dir, false);
    assert!(ok, "{}", lines.join("\n"));
    let all = lines.join("\n");
    assert!(
        all.contains("shop/down: ok: trigger key=disk@203.0.113.9 critical \"disk on 203.0.113.9 is failing hard\""),
        "{all}"
    );
    assert!(
        all.contains("shop/up: ok: resolve key=disk@203.0.113.9 warning"),
        "{all}"
    );
    let expected = std::fs::read_to_string(dir.join("shop/down.expected.json")).unwrap();
    assert!(
        expected.contains("\"integration\": \"generic\""),
        "{expected}"
    );
    assert!(expected.contains("\"status\": 200"), "{expected}");
    let defs = load_dir(&dir).unwrap();
    assert_eq!(defs[0].integration, Integration::Generic);
    assert_eq!(defs[0].mapper.name, "shop");

    // A changed outcome fails, naming the case.
    std::fs::write(
        dir.join("shop/up.request.txt"),
        "check=disk&ip=203.0.113.9&state=bad",
    )
    .unwrap();
    let (lines, ok) = check_dir(&dir, false);
    assert!(
        !ok && lines
            .join("\n")
            .contains("FAIL shop/up: the outcome differs"),
        "{lines:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_definitions_are_refused_naming_the_file_and_key() {
    let broken = SHOP
        .replace("category = \"other\"", "category = \"misc\"")
        .replace("summary =", "sumary =")
        .replace("answer = 200", "answer = 204")
        .replace("signature = \"none\"\n", "");
    let dir = user_dir(
        "bad",
        &[
            ("shop.toml", &broken),
            ("datadog.toml", SHOP),
            ("Bad-Name.toml", SHOP),
        ],
    );
    let problems = load_dir(&dir).unwrap_err().join("\n");
    for needle in [
        "shop.toml: category: \"misc\" must be one of uptime,",
        "shop.toml: map.sumary: unknown key",
        "shop.toml: answer: must be a success status with a body",
        "shop.toml: signature: missing (a required key)",
        "datadog.toml: datadog is a built-in integration kind",
        "Bad-Name.toml: the file's name is the kind",
    ] {
        assert!(
            problems.contains(needle),
            "missing {needle:?} in:\n{problems}"
        );
    }
    // check-integration says the same of a user's folder (a catalog kind's name too).
    std::fs::write(dir.join("uptimerobot.toml"), SHOP).unwrap();
    let (lines, ok) = check_dir(&dir, false);
    let all = lines.join("\n");
    assert!(!ok, "{all}");
    for needle in [
        "FAIL ",
        "datadog is a built-in",
        "uptimerobot is a built-in",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The README's catalog section is generated from the definitions.
#[test]
fn the_readme_catalog_table_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (begin, end) = ("<!-- catalog:begin -->\n", "<!-- catalog:end -->");
    let start = readme.find(begin).expect("README has the catalog markers") + begin.len();
    let stop = readme.find(end).expect("README has the catalog end marker");
    let table = readme_table();
    if std::env::var(BLESS).is_ok_and(|v| v == "1") {
        let text = format!("{}{table}{}", &readme[..start], &readme[stop..]);
        std::fs::write(&path, text).unwrap();
        return;
    }
    assert!(
        readme[start..stop] == table,
        "the README's catalog table differs from the definitions: {BLESS}=1 cargo test --lib catalog"
    );
}

/// `[integrations.generic] definitions_dir` (or `SLUICE_INTEGRATIONS_DIR`) serves each
/// definition as a generic mapper named by its file; a broken one is a config problem.
#[test]
fn a_definitions_dir_serves_each_definition_as_a_mapper() {
    use crate::config::Config;
    use crate::ingest::integrations::settings::{check, SettingsByKind};
    use crate::ingest::integrations::testing::Request;

    let dir = user_dir("served", &[("shop.toml", SHOP)]);
    let env = vec![(
        "SLUICE_INTEGRATIONS_DIR".to_string(),
        dir.display().to_string(),
    )];
    let config = Config::from_toml_with(
        "[integrations.generic.own]\ndedup_key = \"/id\"\n",
        env,
        check,
    )
    .unwrap();
    let settings = SettingsByKind::checked(&config.integrations).unwrap();
    let generic = settings.get(Integration::Generic);
    assert!(generic.mappers.get("shop").is_some() && generic.mappers.get("own").is_some());
    let parsed = Request::default()
        .settings(generic)
        .path("shop")
        .parse(Integration::Generic, "check=disk&host=db-1&state=ok")
        .unwrap();
    assert_eq!(parsed.events[0].dedup_key, "disk@db-1");
    assert_eq!(parsed.events[0].action, crate::event::Action::Resolve);
    assert_eq!(parsed.events[0].integration, Integration::Generic);
    // A value mapped to ignore makes no event, and is no refusal.
    let parsed = Request::default()
        .settings(generic)
        .path("shop")
        .parse(Integration::Generic, "state=PING")
        .unwrap();
    assert!(parsed.events.is_empty() && parsed.rejected.is_empty());

    std::fs::write(dir.join("shop.toml"), SHOP.replace("[map]", "[mapp]")).unwrap();
    let text = format!(
        "[integrations.generic]\ndefinitions_dir = {:?}\n",
        dir.display().to_string()
    );
    let problems = Config::from_toml_with(&text, Vec::new(), check)
        .unwrap_err()
        .problems
        .join("\n");
    assert!(
        problems.contains("integrations.generic.definitions_dir:")
            && problems.contains("shop.toml: map: missing"),
        "{problems}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
