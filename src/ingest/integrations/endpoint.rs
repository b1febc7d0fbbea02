//! `POST /integrations/<kind>/<routing_key>`: which integration a request is for, and whose
//! routing key it carries. The key is taken from the first of: the path segment
//! (percent-decoded), the `X-Routing-Key` header, the `routing_key` query parameter, the
//! `Authorization` credentials of formats whose senders authenticate with their key
//! (`GenieKey <key>`), and `[integrations.<kind>] routing_key` in the config.
//!
//! A format with its own endpoint (`/api/v2/alerts`) that takes its key from the request is
//! served there too ([`own_target`]), and under this prefix followed or not by that path, so
//! a sender configured with a base URL (Prometheus' `path_prefix`) can name its key in it:
//! `/integrations/alertmanager_api/<routing_key>/api/v2/alerts`.

use http::header::{ALLOW, AUTHORIZATION};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::ingest::integrations::settings::SettingsByKind;
use crate::ingest::response::{self, Body};

use crate::integration::{Integration, MAX_ROUTING_KEY_CHARS};

use super::fields::percent_decode;

pub const PREFIX: &str = "/integrations/";
pub const ROUTING_KEY_HEADER: &str = "x-routing-key";
pub const ROUTING_KEY_PARAM: &str = "routing_key";

/// `; did you mean a or b?` for the kinds served under the prefix that `name` is a part of or
/// within two edits of (`uptime_robot` -> `uptimerobot`), else nothing.
fn did_you_mean(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    let close: Vec<&str> = Integration::ALL
        .iter()
        .filter(|k| k.key_from_request())
        .map(|k| k.as_str())
        .filter(|k| (name.len() >= 4 && k.contains(name.as_str())) || edits(&name, k) <= 2)
        .take(5)
        .collect();
    match close.as_slice() {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        [init @ .., last] => format!("; did you mean {} or {last}?", init.join(", ")),
    }
}

/// Levenshtein distance (names are short).
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// A request's integration, routing key, and the part of the path that belongs to the format
/// (see [`super::IngestRequest::path`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Integration,
    pub routing_key: String,
    pub path: String,
}

/// Why a request never reached its parser; [`Refusal::response`] answers it.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    fn not_found(message: String) -> Self {
        Refusal {
            status: StatusCode::NOT_FOUND,
            message,
        }
    }

    fn bad_request(message: String) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }

    /// The generic error body. `errors` lists the problems found in a body, and a refusal
    /// comes before the body is read: its one problem is the message, and `errors` is empty.
    pub fn response(&self) -> Response<Body> {
        match self.status {
            StatusCode::BAD_REQUEST => {
                response::error(self.status, "invalid event", &self.message, &[])
            }
            StatusCode::METHOD_NOT_ALLOWED => {
                let mut resp =
                    response::error(self.status, "method not allowed", &self.message, &[]);
                resp.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("POST"));
                resp
            }
            _ => response::error(self.status, "not found", &self.message, &[]),
        }
    }
}

/// Resolves `rest` (the path after [`PREFIX`]) and the routing key, or refuses the request:
/// `404` naming the kinds, `405` for a method other than POST, `400` naming where a missing
/// or invalid routing key can go.
pub fn target(
    rest: &str,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    config: &SettingsByKind,
) -> Result<Target, Refusal> {
    let (name, key) = match rest.split_once('/') {
        Some((name, key)) => (name, Some(key)),
        None => (rest, None),
    };
    let Some(kind) = Integration::parse(name) else {
        return Err(Refusal::not_found(format!(
            "no integration {name:?} at {PREFIX}<kind>/<routing_key> (kinds: {}){}",
            Integration::generic_kinds(),
            did_you_mean(name)
        )));
    };
    if !kind.key_from_request() {
        let path = kind.own_path().unwrap_or_default();
        return Err(Refusal::not_found(format!(
            "{name} is served at POST {path}, not under {PREFIX}"
        )));
    }
    // `<key><own path><tail>` (a sender's base URL), and `generic/<mapper>/<key>`.
    let (key, path) = match (key, kind.serving().own_path_keyed_by_request()) {
        (Some(k), Some(own)) => split_own_path(k, own),
        (Some(k), None) if kind == Integration::Generic => match k.split_once('/') {
            Some((mapper, key)) => (Some(key), mapper),
            None => (Some(k), ""),
        },
        _ => (key, ""),
    };
    if key.is_some_and(|k| k.contains('/')) {
        return Err(Refusal::not_found(format!(
            "no route for {PREFIX}{rest}: the routing key is one path segment (write a '/' in it as %2F)"
        )));
    }
    if method != Method::POST {
        return Err(Refusal {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("{PREFIX}{name}/<routing_key> takes POST"),
        });
    }
    let routing_key = routing_key(kind, key, headers, query, config)?;
    let path = percent_decode(path, false).ok_or_else(|| {
        Refusal::bad_request("the path is not valid percent-encoded UTF-8".into())
    })?;
    Ok(Target {
        kind,
        routing_key,
        path,
    })
}

/// The routing key of a request to `kind`'s own endpoint (`POST /api/v2/alerts`): from
/// `X-Routing-Key`, `?routing_key=`, the format's `Authorization` scheme or the config.
pub fn own_target(
    kind: Integration,
    tail: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    config: &SettingsByKind,
) -> Result<Target, Refusal> {
    let routing_key = routing_key(kind, None, headers, query, config)?;
    let path = percent_decode(tail, false).ok_or_else(|| {
        Refusal::bad_request("the path is not valid percent-encoded UTF-8".into())
    })?;
    Ok(Target {
        kind,
        routing_key,
        path,
    })
}

/// Splits `<key><own path><tail>` (a sender's base URL with its own path appended): the
/// routing key segment (empty for the own path alone) and what follows the own path.
fn split_own_path<'a>(rest: &'a str, own: &str) -> (Option<&'a str>, &'a str) {
    let own_rel = own.trim_start_matches('/');
    if let Some(tail) = rest.strip_prefix(own_rel) {
        return (Some(""), tail);
    }
    match rest.find(own) {
        Some(i) => (Some(&rest[..i]), &rest[i + own.len()..]),
        None => (Some(rest), ""),
    }
}

fn routing_key(
    kind: Integration,
    path: Option<&str>,
    headers: &HeaderMap,
    query: Option<&str>,
    config: &SettingsByKind,
) -> Result<String, Refusal> {
    if let Some(raw) = path.filter(|k| !k.is_empty()) {
        let key = percent_decode(raw, false).ok_or_else(|| {
            Refusal::bad_request(
                "the routing key in the path is not valid percent-encoded UTF-8".into(),
            )
        })?;
        return checked(key, "the routing key in the path");
    }
    if let Some(value) = headers.get(ROUTING_KEY_HEADER) {
        let key = value
            .to_str()
            .map_err(|_| Refusal::bad_request("'X-Routing-Key' must be visible ASCII".into()))?;
        return checked(key.to_string(), "'X-Routing-Key'");
    }
    let param = query.and_then(|q| {
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == ROUTING_KEY_PARAM).then_some(v)
        })
    });
    if let Some(raw) = param {
        let key = percent_decode(raw, true).ok_or_else(|| {
            Refusal::bad_request(
                "the 'routing_key' query parameter is not valid percent-encoded UTF-8".into(),
            )
        })?;
        return checked(key, "the 'routing_key' query parameter");
    }
    if let Some(scheme) = kind.serving().auth_key_scheme {
        let credentials = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(s, _)| s.eq_ignore_ascii_case(scheme));
        if let Some((_, key)) = credentials {
            return checked(key.trim().to_string(), "the 'Authorization' key");
        }
    }
    if let Some(key) = &config.get(kind).routing_key {
        return Ok(key.clone());
    }
    let name = kind.as_str();
    let auth = kind
        .serving()
        .auth_key_scheme
        .map(|s| format!(", the Authorization header ({s} <routing_key>)"))
        .unwrap_or_default();
    Err(Refusal::bad_request(format!(
        "routing key missing: put it in the path ({PREFIX}{name}/<routing_key>), the \
         X-Routing-Key header, the routing_key query parameter{auth}, or \
         [integrations.{name}] routing_key in the config"
    )))
}

fn checked(key: String, source: &str) -> Result<String, Refusal> {
    if key.trim().is_empty() {
        Err(Refusal::bad_request(format!("{source} is blank")))
    } else if key.chars().nth(MAX_ROUTING_KEY_CHARS).is_some() {
        Err(Refusal::bad_request(format!(
            "{source} must be at most {MAX_ROUTING_KEY_CHARS} characters"
        )))
    } else {
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb", false).as_deref(), Some("a/b"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("a+b%20c", true).as_deref(), Some("a b c"));
        assert_eq!(percent_decode("caf%C3%A9", false).as_deref(), Some("café"));
        for bad in ["%", "%4", "%zz", "%+1", "%ff"] {
            assert_eq!(percent_decode(bad, false), None, "{bad}");
        }
    }
}
