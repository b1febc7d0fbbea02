use http::{HeaderMap, HeaderValue};
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use super::*;
use crate::event::{Action, Severity};
use crate::ingest::integrations::settings::{IntegrationSettings, SettingsByKind};
use crate::ingest::integrations::testing::Request;
use crate::time::UnixMillis;

fn load(toml: &str) -> Result<IntegrationSettings, Vec<String>> {
    SettingsByKind::from_toml(toml)
        .map(|c| c.get(KIND).clone())
        .map_err(|e| e.problems)
}

fn run(
    settings: &IntegrationSettings,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &str,
) -> Result<Parsed, IntegrationError> {
    Request::default()
        .settings(settings)
        .query(query)
        .headers(headers)
        .parse(KIND, body)
}

#[test]
fn pointers_follow_rfc_6901() {
    // The examples of RFC 6901 section 5.
    let mut doc = br#"{"foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4, "i\\j": 5, "k\"l": 6, " ": 7, "m~n": 8}"#.to_vec();
    let root: BorrowedValue<'_> = simd_json::to_borrowed_value(&mut doc).unwrap();
    let at = |p: &str| Pointer::parse(p).unwrap().get(&root).map(|v| v.encode());
    assert!(
        at("").unwrap().starts_with("{\"foo\":"),
        "\"\" is the whole document"
    );
    assert_eq!(at("/foo").as_deref(), Some(r#"["bar","baz"]"#));
    assert_eq!(at("/foo/0").as_deref(), Some(r#""bar""#));
    for (p, want) in [
        ("/", "0"),
        ("/a~1b", "1"),
        ("/c%d", "2"),
        ("/e^f", "3"),
        ("/g|h", "4"),
        ("/i\\j", "5"),
        ("/k\"l", "6"),
        ("/ ", "7"),
        ("/m~0n", "8"),
    ] {
        assert_eq!(at(p).as_deref(), Some(want), "{p}");
    }
    assert_eq!(at("/foo/01"), None, "no leading zeros");
    assert_eq!(at("/foo/2"), None);
    assert_eq!(at("/foo/-"), None);
    assert_eq!(at("/nope/x"), None);
    for bad in ["foo", "/a~2", "/a~"] {
        assert!(Pointer::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn templates_need_pointer_placeholders() {
    assert!(Template::parse("{/host}/{/check/name}").is_ok());
    for (bad, want) in [
        ("{/host", "without its '}'"),
        ("host}", "without its '{'"),
        ("{host}", "each placeholder is a JSON pointer"),
        ("plain", "has no {/pointer} placeholder"),
        ("{/a~9}", "'~' must be followed by 0 or 1"),
    ] {
        let err = Template::parse(bad).unwrap_err();
        assert!(err.contains(want), "{bad}: {err}");
    }
}

#[test]
fn config_problems_are_named_at_once() {
    let problems = load(
        r#"
        [integrations.generic]
        default_severity = "warning"
        colour = "blue"
        [integrations.generic.shop]
        summary = "{/title"
        severity_map = { P1 = "urgent" }
        action_map = { down = "fire", up = "resolve" }
        labels = { team = "/owner~" }
        resolve_when = { pointer = "/ok", equals = [], also = 1 }
        dedup_key_template = "{host}"
        sumary = "/x"
        [integrations.generic.ok]
        dedup_key = "/id"
        "#,
    )
    .unwrap_err();
    let all = problems.join("\n");
    for needle in [
        "integrations.generic.colour: unknown key",
        "integrations.generic.shop.summary: \"{/title\": a '{' without its '}'",
        "integrations.generic.shop.severity_map.P1: \"urgent\" must be one of critical, error, warning, info",
        "integrations.generic.shop.action_map.down: \"fire\" must be one of trigger, acknowledge, resolve",
        "integrations.generic.shop.labels.team: \"/owner~\" is not a JSON pointer",
        "integrations.generic.shop.resolve_when.also: unknown key",
        "integrations.generic.shop.resolve_when.equals: must name at least one value",
        "integrations.generic.shop.dedup_key_template: \"{host}\": each placeholder is a JSON pointer",
        "integrations.generic.shop.sumary: unknown key",
        "integrations.generic.shop.action_map: needs action",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert_eq!(problems.len(), 10, "{all}");
    let problems = load("[integrations.generic.x]\nsummary = \"/s\"").unwrap_err();
    assert_eq!(
        problems,
        ["integrations.generic.x.dedup_key: a mapper needs dedup_key (a pointer) or dedup_key_template"]
    );
    let problems = load("[integrations.datadog.x]\ndedup_key = \"/id\"").unwrap_err();
    assert_eq!(problems, ["integrations.datadog.x: unknown key"]);
}

#[test]
fn the_request_names_its_mapper_unless_there_is_one() {
    let one = load("[integrations.generic.a]\ndedup_key = \"/id\"").unwrap();
    let none = HeaderMap::new();
    let p = run(&one, None, &none, r#"{"id": 7}"#).unwrap();
    assert_eq!(p.events[0].dedup_key, "7");
    let two = load("[integrations.generic.a]\ndedup_key = \"/id\"\n[integrations.generic.b]\ndedup_key = \"/key\"").unwrap();
    let err = run(&two, None, &none, r#"{"id": 7}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "generic: name the mapper with ?mapper=<name> or an X-Sluice-Mapper header (mappers: a, b)"
    );
    let p = run(
        &two,
        Some("routing_key=rk&mapper=b"),
        &none,
        r#"{"key": "k1"}"#,
    )
    .unwrap();
    assert_eq!(p.events[0].dedup_key, "k1");
    let mut headers = HeaderMap::new();
    headers.insert(MAPPER_HEADER, HeaderValue::from_static("a"));
    assert_eq!(
        run(&two, None, &headers, r#"{"id": 8}"#).unwrap().events[0].dedup_key,
        "8"
    );
    let err = run(&two, Some("mapper=c"), &none, "{}").unwrap_err();
    assert_eq!(err.to_string(), "generic: no mapper \"c\" (mappers: a, b)");
    let err = run(&IntegrationSettings::default(), None, &none, "{}").unwrap_err();
    assert!(err.to_string().contains("no mapper is configured"), "{err}");
}

#[test]
fn actions_resolve_conditions_and_refusals() {
    let s = load(
        r#"[integrations.generic.m]
        dedup_key = "/id"
        action_pointer = "/state"
        action_map = { down = "trigger", ACK = "acknowledge", up = "resolve" }
        resolve_when = { pointer = "/healthy", equals = ["true", "1"] }
        severity = "/sev"
        timestamp = "/at"
        "#,
    )
    .unwrap();
    let h = HeaderMap::new();
    let action = |body: &str| run(&s, None, &h, body).unwrap().events[0].action;
    assert_eq!(action(r#"{"id":1,"state":"down"}"#), Action::Trigger);
    assert_eq!(
        action(r#"{"id":1,"state":"ack"}"#),
        Action::Acknowledge,
        "case is ignored"
    );
    assert_eq!(action(r#"{"id":1,"state":"up"}"#), Action::Resolve);
    assert_eq!(action(r#"{"id":1}"#), Action::Trigger);
    assert_eq!(
        action(r#"{"id":1,"state":"down","healthy":true}"#),
        Action::Resolve
    );
    assert_eq!(
        action(r#"{"id":1,"state":"down","healthy":1}"#),
        Action::Resolve
    );
    assert_eq!(
        action(r#"{"id":1,"state":"down","healthy":false}"#),
        Action::Trigger
    );
    let e = run(
        &s,
        None,
        &h,
        r#"{"id":1,"sev":"WARNING","at":"2024-05-02T09:00:00Z"}"#,
    )
    .unwrap()
    .events
    .remove(0);
    assert_eq!(
        (e.severity, e.timestamp),
        (Severity::Warning, Some(UnixMillis(1_714_640_400_000)))
    );
    let err = run(
        &s,
        None,
        &h,
        r#"{"id":{"x":1},"state":"flapping","at":"soon"}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "generic: mapper m: '/id' (dedup_key) must be a string, number or boolean; \
         mapper m: '/state' (action_pointer) is \"flapping\", which action_map does not have (ACK, down, up); \
         mapper m: '/at' (timestamp) is not a valid date-time (RFC 3339 / ISO 8601 or epoch seconds)"
    );
    let err = run(&s, None, &h, "[1,").unwrap_err();
    assert_eq!(err.to_string(), "generic: body is not valid JSON");
}

/// The README's worked example, run as written there.
#[test]
fn the_readme_worked_example_runs() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("**Generic mapper, worked example**")
        .expect("the README has the worked example");
    let block = |from: usize, fence: &str| -> (String, usize) {
        let open = readme[from..].find(fence).expect("a fenced block") + from + fence.len();
        let close = readme[open..].find("```").unwrap() + open;
        (readme[open..close].to_string(), close + 3)
    };
    let (payload, next) = block(start, "```json\n");
    let (toml, next) = block(next, "```toml\n");
    let (event, _) = block(next, "```json\n");
    let settings = load(&toml).unwrap();
    let p = run(
        &settings,
        Some("mapper=shopmon"),
        &HeaderMap::new(),
        &payload,
    )
    .unwrap();
    let e = &p.events[0];
    let got = serde_json::json!({
        "action": format!("{:?}", e.action).to_lowercase(),
        "dedup_key": e.dedup_key, "summary": e.summary, "severity": e.severity.as_str(),
        "source": e.source, "component": e.component, "group": e.group, "class": e.class,
        "labels": e.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
        "timestamp": e.timestamp.map(|t| t.to_string()),
        "custom_details": serde_json::from_str::<serde_json::Value>(e.custom_details.as_ref().unwrap().0.get()).unwrap(),
    });
    let want: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(got, want);
}

/// Templates: alternatives take the first present value, a constant is a value, missing
/// placeholders read as empty, and a template with none of its placeholders filled is no value.
#[test]
fn templates_fill_alternatives_constants_and_leave_out_empty_ones() {
    let settings = load(
        r#"
        [integrations.generic.t]
        dedup_key = "{/check}@{/host|/ip}"
        summary = "{/check} on {/host|/ip}: {/output}"
        class = "shop check"
        component = "{/app} / {/module}"
        labels = { region = "{/region}-{/zone}" }
        "#,
    )
    .unwrap();
    let none = HeaderMap::new();
    let parsed = run(
        &settings,
        None,
        &none,
        r#"{"check":"disk","ip":"203.0.113.9","zone":"b"}"#,
    )
    .unwrap();
    let e = &parsed.events[0];
    assert_eq!(e.dedup_key, "disk@203.0.113.9");
    assert_eq!(e.summary, "disk on 203.0.113.9: ");
    assert_eq!(e.class.as_deref(), Some("shop check"));
    assert_eq!(
        e.component, None,
        "no placeholder filled: no value, not \" / \""
    );
    assert_eq!(e.labels, [("region".to_string(), "-b".to_string())]);
    let err = run(&settings, None, &none, r#"{"check":"disk"}"#).unwrap_err();
    assert!(
        err.to_string()
            .contains("'/host|/ip' (dedup_key) is missing"),
        "{err}"
    );
}

/// Form bodies: a field given twice or more is an array of its values, in order; a broken
/// escape is refused as malformed.
#[test]
fn form_fields_given_twice_are_arrays() {
    let settings = load(
        r#"
        [integrations.generic.f]
        body = "form"
        dedup_key = "/id"
        labels = { first = "/tag/0", third = "/tag/2", host = "/host" }
        "#,
    )
    .unwrap();
    let none = HeaderMap::new();
    let parsed = run(
        &settings,
        None,
        &none,
        "tag=a&id=1&tag=b+c&host=web%2D1&tag=d",
    )
    .unwrap();
    let e = &parsed.events[0];
    assert_eq!(e.dedup_key, "1");
    let labels: Vec<(&str, &str)> = e.labels.iter().collect();
    assert_eq!(labels, [("first", "a"), ("host", "web-1"), ("third", "d")]);
    let err = run(&settings, None, &none, "id=%zz").unwrap_err();
    assert!(err.to_string().contains("broken %-escape"), "{err}");
}
