//! The incidents API (`openapi.json` describes it): the incidents view (`crate::view`) as
//! JSON, commands on incidents ([`commands`]), and Alertmanager's read API over the same view
//! ([`alertmanager`]).
//!
//! - `GET /api/v1/incidents`: open incidents, newest opened first, filtered by `routing_key`,
//!   `severity`, `status` (`triggered`, `acknowledged`, `resolved`; default the first two),
//!   `integration` (each a comma-separated list, or repeated), `since` / `until` (opened at or
//!   after / before: RFC 3339, or a duration meaning that long ago, `since=1h`), paged by
//!   `limit` (default 50, at most 500) and the answer's `next_cursor`.
//! - `GET /api/v1/incidents/{id}`: its latest message (with its alerts) and its timeline.
//! - `GET /api/v1/stats?window=1h`: incidents, alerts and events per routing key and per
//!   integration among the incidents opened in the window (at most 24 h: the view keeps
//!   resolved incidents that long).
//!
//! A parameter that does not parse is a 400 naming it; an unknown one too (a typo would
//! otherwise widen the answer silently).

use http::header::ALLOW;
use http::{HeaderValue, Method, Request, StatusCode};
use serde_json::json;

use crate::ingest::auth::{Auth, Scope};
use crate::ingest::body::BodyLimits;
use crate::ingest::integrations::fields::percent_decode;
use crate::ingest::response::{self, Body};
use crate::pipeline::Intake;
use crate::time::{parse_duration, parse_timestamp, Timestamp, UnixMillis};
use crate::view::query::DEFAULT_LIMIT;
use crate::view::{Filter, View, KEEP_RESOLVED};

pub mod alertmanager;
pub mod commands;

pub const INCIDENTS: &str = "/api/v1/incidents";
pub const STATS: &str = "/api/v1/stats";

const STATUSES: [&str; 3] = ["triggered", "acknowledged", "resolved"];
const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

type Answer = http::Response<Body>;

/// Whether `path` is one of this API's (with Alertmanager's read routes).
pub fn serves(path: &str, method: &Method) -> bool {
    alertmanager::serves(path, method)
        || path == STATS
        || path
            .strip_prefix(INCIDENTS)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What the API needs of the router.
pub struct Context<'a> {
    pub auth: &'a Auth,
    /// `None` on an instance without the ingest role.
    pub view: Option<&'a View>,
    pub intake: &'a Intake,
    pub limits: &'a BodyLimits,
    pub silences: &'a crate::ingest::silences::SilenceStore,
    /// When this process started.
    pub started: UnixMillis,
    pub now: UnixMillis,
}

/// Answers a request to this API ([`serves`]): GET or HEAD with the read scope, or a command
/// (POST `<id>/<action>`, see [`commands`]) with the write scope.
pub async fn handle<B>(req: Request<B>, cx: Context<'_>) -> Answer
where
    B: http_body::Body + Unpin,
    B::Data: bytes::Buf,
{
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let command = path
        .strip_prefix(INCIDENTS)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split_once('/'))
        .filter(|(id, action)| !id.is_empty() && !action.contains('/'))
        .map(|(id, action)| (id.to_string(), action.to_string()));
    let allowed = match command {
        Some(_) => "POST",
        None => "GET, HEAD",
    };
    if !allowed.split(", ").any(|m| m == method.as_str()) {
        let msg = format!("{path} takes {allowed}");
        let mut resp = response::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            &msg,
            &[],
        );
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allowed));
        return resp;
    }
    let who = match cx.auth.admin.authenticate(req.headers()) {
        Ok(who) => who,
        Err(denied) => return denied.refuse(&method, &path),
    };
    let Some(view) = cx.view else {
        let msg = "this instance keeps no incidents view (it has no ingest role)";
        return response::error(StatusCode::NOT_FOUND, "not found", msg, &[]);
    };
    if let Some((id, action)) = command {
        let (parts, body) = req.into_parts();
        let body = match crate::ingest::body::read(cx.limits, &parts.headers, body).await {
            Ok(b) => b,
            Err(e) => return e.response(cx.limits),
        };
        let target = (id.as_str(), action.as_str());
        return commands::post(view, cx.intake, &who, target, &body, cx.now).await;
    }
    if let Err(denied) = who.require(Scope::Read) {
        return denied.refuse(&method, &path);
    }
    let resp = match alertmanager::serves(&path, &method) {
        true => {
            let sources = alertmanager::Sources {
                view,
                silences: cx.silences,
                started: cx.started,
                now: cx.now,
            };
            alertmanager::get(&path, req.uri().query(), &sources)
        }
        false => get(view, &path, req.uri().query(), cx.now),
    };
    match method == Method::HEAD {
        true => response::without_body(resp),
        false => resp,
    }
}

/// Answers a GET under [`INCIDENTS`] or at [`STATS`].
pub fn get(view: &View, path: &str, query: Option<&str>, now: UnixMillis) -> Answer {
    let params = match params(query) {
        Ok(p) => p,
        Err(bad) => return bad.response(),
    };
    if path == STATS {
        return stats(view, &params, now);
    }
    match path.strip_prefix(INCIDENTS) {
        Some("" | "/") => list(view, &params, now),
        Some(rest) => match rest.strip_prefix('/').filter(|id| !id.contains('/')) {
            Some(id) => one(view, id),
            None => not_found(path),
        },
        None => not_found(path),
    }
}

fn not_found(path: &str) -> Answer {
    let msg = format!("no route for GET {path}");
    response::error(StatusCode::NOT_FOUND, "not found", &msg, &[])
}

/// A query parameter that does not parse, or is unknown: a 400 naming it.
struct BadParam(String);

impl BadParam {
    fn response(self) -> Answer {
        response::error(StatusCode::BAD_REQUEST, "invalid", &self.0, &[])
    }
}

fn bad(param: &str, problem: impl std::fmt::Display) -> BadParam {
    BadParam(format!("query parameter '{param}': {problem}"))
}

/// The query's parameters, percent-decoded, in order.
fn params(query: Option<&str>) -> Result<Vec<(String, String)>, BadParam> {
    let mut out = Vec::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (percent_decode(k, true), percent_decode(v, true)) {
            (Some(k), Some(v)) => out.push((k, v)),
            _ => return Err(bad(k, "is not percent-encoded UTF-8")),
        }
    }
    Ok(out)
}

/// Every value of `name`, comma lists split; each checked against `allowed` when given.
fn values(
    params: &[(String, String)],
    name: &str,
    allowed: Option<&[&str]>,
) -> Result<Vec<String>, BadParam> {
    let mut out = Vec::new();
    for (_, v) in params.iter().filter(|(k, _)| k == name) {
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some(allowed) = allowed {
                if !allowed.contains(&item) {
                    return Err(bad(
                        name,
                        format!("{item:?} is not one of {}", allowed.join(", ")),
                    ));
                }
            }
            out.push(item.to_string());
        }
    }
    Ok(out)
}

fn one_value<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A time: RFC 3339, or a duration before `now`.
fn time(
    params: &[(String, String)],
    name: &str,
    now: UnixMillis,
) -> Result<Option<UnixMillis>, BadParam> {
    let Some(raw) = one_value(params, name) else {
        return Ok(None);
    };
    if let Ok(ago) = parse_duration(raw) {
        return Ok(Some(UnixMillis(
            now.0.saturating_sub(ago.as_millis() as u64),
        )));
    }
    match parse_timestamp(raw) {
        Some(Timestamp::At(t)) => Ok(Some(t)),
        _ => Err(bad(
            name,
            format!("{raw:?} is neither an RFC 3339 time nor a duration"),
        )),
    }
}

fn known(params: &[(String, String)], names: &[&str]) -> Result<(), BadParam> {
    match params.iter().find(|(k, _)| !names.contains(&k.as_str())) {
        Some((k, _)) => Err(bad(k, format!("unknown (known: {})", names.join(", ")))),
        None => Ok(()),
    }
}

fn list(view: &View, params: &[(String, String)], now: UnixMillis) -> Answer {
    let names = [
        "routing_key",
        "severity",
        "status",
        "integration",
        "since",
        "until",
        "limit",
        "cursor",
    ];
    let filter = (|| {
        known(params, &names)?;
        let limit = match one_value(params, "limit") {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=crate::view::query::MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(bad(
                        "limit",
                        format!("{raw:?} is not a number from 1 to 500"),
                    ))
                }
            },
        };
        let cursor = match one_value(params, "cursor") {
            None => None,
            Some(raw) => match raw
                .split_once('.')
                .and_then(|(ms, id)| Some((ms.parse().ok()?, id)))
            {
                Some((ms, id)) => Some((UnixMillis(ms), id.to_string())),
                None => return Err(bad("cursor", "is not a next_cursor this API gave")),
            },
        };
        Ok(Filter {
            routing_keys: values(params, "routing_key", None)?,
            severities: values(params, "severity", Some(&SEVERITIES))?,
            statuses: values(params, "status", Some(&STATUSES))?,
            integrations: values(params, "integration", None)?,
            since: time(params, "since", now)?,
            until: time(params, "until", now)?,
            limit,
            cursor,
        })
    })();
    match filter {
        Ok(f) => response::json(StatusCode::OK, &view.list(&f)),
        Err(bad) => bad.response(),
    }
}

fn one(view: &View, id: &str) -> Answer {
    match view.get(id) {
        Some(e) => response::json(
            StatusCode::OK,
            &json!({"incident": e.message(), "timeline": e.timeline}),
        ),
        None => {
            let msg = format!(
                "no incident {id:?}: unknown, or resolved more than {} h ago",
                KEEP_RESOLVED.as_secs() / 3600
            );
            response::error(StatusCode::NOT_FOUND, "not found", &msg, &[])
        }
    }
}

fn stats(view: &View, params: &[(String, String)], now: UnixMillis) -> Answer {
    if let Err(bad) = known(params, &["window"]) {
        return bad.response();
    }
    let raw = one_value(params, "window").unwrap_or("1h");
    let window = match parse_duration(raw) {
        Ok(w) if !w.is_zero() && w <= KEEP_RESOLVED => w,
        _ => {
            let max = KEEP_RESOLVED.as_secs() / 3600;
            let problem = format!("{raw:?} is not a duration from 1s to {max}h");
            return bad("window", problem).response();
        }
    };
    response::json(StatusCode::OK, &view.stats(window, now))
}
