//! Every message the end-to-end tests consume from sluice is checked against the JSON Schema
//! its `schema` member names (`schemas/<schema>.json`). The checker covers the keywords those
//! schemas use (type, const, enum, required, properties, additionalProperties, items,
//! minItems, minimum, minLength, pattern, anyOf, local `$ref`); a schema using another keyword
//! fails the check, so the schemas cannot drift past what is checked.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

const KNOWN: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "title",
    "description",
    "type",
    "const",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minItems",
    "minimum",
    "minLength",
    "pattern",
    "anyOf",
];

fn schemas() -> &'static BTreeMap<String, Value> {
    static SCHEMAS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
        std::fs::read_dir(dir)
            .expect("schemas/")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&p).unwrap();
                (name, serde_json::from_str(&text).expect("a schema is JSON"))
            })
            .collect()
    })
}

/// Checks `body` against the schema its `schema` member names; bodies without a `sluice.`
/// schema name are not sluice's messages and pass.
pub fn check_message(body: &Value) {
    let Some(name) = body["schema"].as_str().filter(|s| s.starts_with("sluice.")) else {
        return;
    };
    let schema = schemas()
        .get(name)
        .unwrap_or_else(|| panic!("no schemas/{name}.json for a message that names it"));
    let mut problems = Vec::new();
    check(schema, schema, body, "$", &mut problems);
    assert!(
        problems.is_empty(),
        "message does not match schemas/{name}.json:\n  {}\n{body}",
        problems.join("\n  ")
    );
}

/// The problems of `v` against `schema`, whose `$ref`s point into `root` (a schema file, or an
/// OpenAPI document's components).
pub fn problems(root: &Value, schema: &Value, v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(root, schema, v, "$", &mut out);
    out
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other:?} in a schema"),
    }
}

fn check(root: &Value, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        return;
    };
    for key in s.keys() {
        assert!(
            KNOWN.contains(&key.as_str()),
            "schema keyword {key:?} is not checked"
        );
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let pointer = r.strip_prefix('#').expect("a local $ref");
        let target = root.pointer(pointer).unwrap_or_else(|| panic!("no {r}"));
        check(root, target, v, at, out);
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_matches(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), v)),
            _ => panic!("bad type in a schema"),
        };
        if !ok {
            out.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            out.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(v) {
            out.push(format!("{at}: {v} is not one of {options:?}"));
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf") {
        let fits = any.iter().any(|alt| {
            let mut inner = Vec::new();
            check(root, alt, v, at, &mut inner);
            inner.is_empty()
        });
        if !fits {
            out.push(format!("{at}: {v} matches none of anyOf"));
        }
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            out.push(format!("{at}: {n} < {min}"));
        }
    }
    if let Some(text) = v.as_str() {
        if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
            if (text.chars().count() as u64) < min {
                out.push(format!("{at}: shorter than {min}"));
            }
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            if !Regex::new(p).expect("a schema pattern").is_match(text) {
                out.push(format!("{at}: {text:?} does not match {p}"));
            }
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < min {
                out.push(format!("{at}: fewer than {min} items"));
            }
        }
        if let Some(item) = s.get("items") {
            for (i, x) in items.iter().enumerate() {
                check(root, item, x, &format!("{at}[{i}]"), out);
            }
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(Value::Array(required)) = s.get("required") {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    out.push(format!("{at}: '{r}' is required"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, x) in obj {
            let at = format!("{at}.{k}");
            match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                (Some(p), _) => check(root, p, x, &at, out),
                (None, Some(Value::Bool(false))) => out.push(format!("{at}: not in the schema")),
                (None, Some(extra)) => check(root, extra, x, &at, out),
                (None, None) => {}
            }
        }
    }
}

#[test]
fn the_checker_refuses_what_the_schema_does_not_allow() {
    let good = serde_json::json!({"schema":"sluice.change.v1","type":"change","change_id":"chg_0a",
        "routing_key":"rk","integration":"pagerduty","summary":"deploy","source":null,
        "timestamp":null,"received_at":"2026-12-06T14:00:00.000Z","custom_details":null,
        "links":[{"href":"https://ci/1"}],"images":[]});
    check_message(&good);
    for (member, bad) in [
        ("type", serde_json::json!("opened")),
        ("received_at", serde_json::json!("2026-12-06 14:00")),
        ("links", serde_json::json!([{"text": "no href"}])),
        ("change_id", serde_json::json!("inc_0a")),
        ("extra", serde_json::json!(1)),
    ] {
        let mut body = good.clone();
        body[member] = bad;
        let caught = std::panic::catch_unwind(|| check_message(&body));
        assert!(caught.is_err(), "{member} = {} passed", body[member]);
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("summary");
    assert!(std::panic::catch_unwind(|| check_message(&missing)).is_err());
}
