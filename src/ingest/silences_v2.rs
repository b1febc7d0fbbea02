//! Alertmanager's silences API (v2), so that `amtool` and Alertmanager clients manage sluice's
//! silences: `POST /api/v2/silences` (`200 {"silenceID": "..."}`), `GET /api/v2/silences`
//! (with Alertmanager's `filter` parameters), `GET /api/v2/silence/<id>` and
//! `DELETE /api/v2/silence/<id>` (expires it). The silences are the ones `/api/v1/silences`
//! shows, kept by the same store, under the same admin auth and `auth.max_silence` cap.
//!
//! Matcher names are Alertmanager's label names, read as an Alertmanager user means them:
//!
//! | name in the silence | matches the event's |
//! |---|---|
//! | `alertname` | `class`: Prometheus', Grafana's and the Alertmanager webhook's `alertname` label; for other senders the alert's rule, check or metric (PagerDuty's `class`) |
//! | `routing_key`, `severity`, `source`, `component`, `group`, `class`, `summary`, `integration`, `dedup_key` | that field (`severity` as sluice normalized it: `critical`, `error`, `warning`, `info`) |
//! | `entity.<kind>` | the entity sluice reads (`host`, `pod`, `rack`, `service`, `cluster`, `class`) |
//! | `labels.<name>` | the label `<name>` (for a label named like a field: `labels.severity` is the sender's own severity label) |
//! | any other name (`instance`, `job`, `team`, ...) | the label of that name |
//!
//! Listed silences show the names the same way (`class` comes back as `alertname`). Matchers
//! with `isEqual: false` are `!=` and `!~`. Not served: updating a silence by posting its
//! `id` (expire it and create another), and the rest of Alertmanager's API.

use std::time::Duration;

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use crate::correlate::silence::{Silence, SilenceState};
use crate::event::Field;
use crate::matchers::{Matcher, Op};
use crate::time::UnixMillis;

use super::response::{self, Body};
use super::silences::{check, time_field, Call, Failed, SilenceStore};

/// `GET` and `POST` here.
pub const LIST: &str = "/api/v2/silences";
/// `GET` and `DELETE` `<ONE><id>`.
pub const ONE: &str = "/api/v2/silence/";

/// The event field an Alertmanager matcher name stands for.
pub fn field_of(name: &str) -> Option<Field> {
    match name {
        "" => None,
        "alertname" => Some(Field::Class),
        _ => Field::parse(name).or_else(|| Some(Field::Label(name.into()))),
    }
}

/// The Alertmanager name of `field` (what [`field_of`] reads back as `field`).
pub fn name_of(field: &Field) -> String {
    match field {
        Field::Class => "alertname".into(),
        Field::Label(l) if l == "alertname" || Field::parse(l).is_some() => format!("labels.{l}"),
        Field::Label(l) => l.clone(),
        other => other.name().into_owned(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AmMatcher {
    name: String,
    value: String,
    is_regex: bool,
    is_equal: bool,
}

#[derive(Serialize)]
struct Status {
    state: SilenceState,
}

/// Alertmanager's `gettableSilence`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Gettable<'a> {
    id: &'a str,
    status: Status,
    updated_at: UnixMillis,
    matchers: Vec<AmMatcher>,
    starts_at: UnixMillis,
    ends_at: UnixMillis,
    created_by: &'a str,
    comment: &'a str,
}

fn gettable(s: &Silence, now: UnixMillis) -> Gettable<'_> {
    let state = s.state(now);
    Gettable {
        id: &s.id,
        status: Status { state },
        updated_at: match state {
            SilenceState::Expired => s.ends_at.max(s.created_at),
            _ => s.created_at,
        },
        matchers: s
            .matchers
            .iter()
            .map(|m| AmMatcher {
                name: name_of(&m.field),
                value: m.value.clone(),
                is_regex: matches!(m.op, Op::Re | Op::NotRe),
                is_equal: matches!(m.op, Op::Eq | Op::Re),
            })
            .collect(),
        starts_at: s.starts_at,
        ends_at: s.ends_at,
        created_by: &s.created_by,
        comment: &s.comment,
    }
}

/// Alertmanager answers a bad request with a JSON string.
fn bad_request(message: &str) -> http::Response<Body> {
    response::json(StatusCode::BAD_REQUEST, &message)
}

fn not_found(id: &str) -> http::Response<Body> {
    response::json(StatusCode::NOT_FOUND, &format!("no silence with id {id:?}"))
}

/// A request under the v2 paths: `id` for `/api/v2/silence/<id>`, `None` for the list.
pub async fn handle(
    store: &SilenceStore,
    id: Option<&str>,
    call: Call<'_>,
) -> http::Response<Body> {
    let path = match id {
        Some(id) => format!("{ONE}{id}"),
        None => LIST.to_string(),
    };
    if let Some(refused) = call.refused(&path) {
        return refused;
    }
    let Call {
        method,
        query,
        body,
        now,
        intake,
        who,
        max,
    } = call;
    match (method, id) {
        (&Method::GET, None) => {
            let filter = match filters(query) {
                Ok(f) => f,
                Err(e) => return bad_request(&e),
            };
            let all = store.all();
            let shown: Vec<Gettable<'_>> = all
                .iter()
                .map(|s| gettable(s, now))
                .filter(|g| passes(&filter, g))
                .collect();
            response::json(StatusCode::OK, &shown)
        }
        (&Method::GET, Some(id)) => match store.find(id) {
            Some(s) => response::json(StatusCode::OK, &gettable(&s, now)),
            None => not_found(id),
        },
        (&Method::POST, None) => match parse(&body.unwrap_or_default(), now, max) {
            Ok(silence) => match store.create(silence, who, now, intake).await {
                Ok(s) => response::json(StatusCode::OK, &serde_json::json!({"silenceID": s.id})),
                Err(failed) => failed.response(method, &path, ""),
            },
            Err(errors) => bad_request(&format!("silence is invalid: {}", errors.join("; "))),
        },
        (&Method::DELETE, Some(id)) => match store.expire(id, who, now, intake).await {
            Ok(_) => response::text(StatusCode::OK, "", "application/json"),
            Err(Failed::NotFound) => not_found(id),
            Err(failed) => failed.response(method, &path, id),
        },
        _ => response::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            &format!("{method} {path} is not part of the silences API"),
            &[],
        ),
    }
}

/// Alertmanager's `filter` parameters: matchers such as `alertname="Down"` or `team=~"db.*"`.
pub(crate) fn filters(query: Option<&str>) -> Result<Vec<(String, Matcher)>, String> {
    let mut out = Vec::new();
    for pair in query.unwrap_or_default().split('&') {
        let Some(raw) = pair.strip_prefix("filter=") else {
            continue;
        };
        let text = crate::ingest::integrations::fields::percent_decode(raw, true)
            .ok_or_else(|| "a filter is not valid percent-encoded UTF-8".to_string())?;
        out.push(filter(&text).ok_or_else(|| format!("bad matcher format: {text}"))?);
    }
    Ok(out)
}

/// One `name<op>"value"` matcher, checked against silence matcher values by name.
fn filter(text: &str) -> Option<(String, Matcher)> {
    let at = text.find(['=', '!'])?;
    let (name, rest) = (text[..at].trim(), &text[at..]);
    let op = ["=~", "!~", "!=", "="]
        .into_iter()
        .find(|op| rest.starts_with(op))?;
    let value = rest[op.len()..].trim();
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_string(),
    };
    let name = name.trim_matches('{').trim().to_string();
    // Matched against plain values, so any field will do to build it.
    let matcher = Matcher::new("source", op, &value).ok()?;
    (!name.is_empty()).then_some((name, matcher))
}

fn passes(filter: &[(String, Matcher)], s: &Gettable<'_>) -> bool {
    filter.iter().all(|(name, m)| {
        let value = s.matchers.iter().find(|x| &x.name == name);
        m.matches_value(value.map_or("", |x| x.value.as_str()))
    })
}

/// Validates Alertmanager's `postableSilence`, reporting every problem with its field.
fn parse(body: &[u8], now: UnixMillis, max: Duration) -> Result<Silence, Vec<String>> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| vec![format!("'body' is not JSON: {e}")])?;
    let Some(obj) = value.as_object() else {
        return Err(vec!["'body' must be a JSON object".into()]);
    };
    let mut errors = Vec::new();
    if obj
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|id| !id.is_empty())
    {
        errors
            .push("'id': updating a silence is not supported; expire it and create another".into());
    }
    let mut matchers = Vec::new();
    match obj.get("matchers").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => {
            for (i, item) in list.iter().enumerate() {
                match matcher(item) {
                    Ok(m) => matchers.push(m),
                    Err(e) => errors.push(format!("'matchers[{i}]' {e}")),
                }
            }
        }
        _ => errors.push("'matchers' must be a non-empty array".into()),
    }
    let starts_at = time_field(obj, "startsAt", Some(now), &mut errors);
    let ends_at = time_field(obj, "endsAt", None, &mut errors);
    // Alertmanager moves a start in the past to now.
    let starts_at = starts_at.map(|s| s.max(now));
    check(
        &matchers,
        (starts_at, ends_at),
        ("startsAt", "endsAt"),
        now,
        max,
        &mut errors,
    );
    let created_by = match obj.get("createdBy") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => {
            errors.push("'createdBy' is missing or blank".into());
            String::new()
        }
    };
    let comment = match obj.get("comment") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            errors.push("'comment' must be a string".into());
            String::new()
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Silence {
        id: String::new(),
        matchers,
        starts_at: starts_at.expect("validated"),
        ends_at: ends_at.expect("validated"),
        created_by,
        comment,
        created_at: now,
    })
}

/// `{"name": ..., "value": ..., "isRegex": ..., "isEqual": ...}` (`isEqual` true when absent).
fn matcher(item: &Value) -> Result<Matcher, String> {
    let name = item.get("name").and_then(Value::as_str);
    let value = item.get("value").and_then(Value::as_str);
    let is_regex = item.get("isRegex").and_then(Value::as_bool);
    let is_equal = match item.get("isEqual") {
        None | Some(Value::Null) => Some(true),
        Some(v) => v.as_bool(),
    };
    let (Some(name), Some(value), Some(is_regex), Some(is_equal)) =
        (name, value, is_regex, is_equal)
    else {
        return Err("needs string name and value and boolean isRegex (and isEqual)".into());
    };
    let field = field_of(name).ok_or("name must not be empty")?;
    let op = match (is_equal, is_regex) {
        (true, false) => "=",
        (false, false) => "!=",
        (true, true) => "=~",
        (false, true) => "!~",
    };
    Matcher::new(&field.name(), op, value)
}

#[cfg(test)]
mod tests;
