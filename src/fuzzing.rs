//! Fuzz entry points: bytes in, the production code run on them, never a panic. One function
//! per cargo-fuzz target under `fuzz/` ([`TARGETS`]); the ordinary test build feeds every
//! committed corpus and crash file through the same functions (`fuzzing/tests.rs`), so CI
//! covers them without a fuzzer build. Each function only decodes its input into what the
//! production seam takes and calls it; see `fuzz/README.md` for how the corpora are kept.
//!
//! Two targets take a request, written as a head and a body split at the first NUL byte (no
//! NUL: an empty head, all body). The head's lines (`\n`, an optional `\r` dropped) are a first
//! line and then `name: value` headers; a header line `hyper` would refuse is skipped:
//! - [`format`]: the first byte picks the kind (its value modulo the number of kinds, in the
//!   registry's order); the head's first line is the format's part of the path and the query
//!   (`/<alias>/close?identifierType=alias`, `shopmon`, `?dedup_fields=host`). The routing key
//!   is an `X-Routing-Key` header's value when there is one (empty: a key in the body, as at
//!   PagerDuty's and Nagios' own paths), else [`ROUTING_KEY`] (a kind served only at its own
//!   path: empty).
//! - [`router`]: the head's first line is `METHOD URI`, as in HTTP/1.1.
//!
//! Both run with [`CONFIG`] (generic mappers, SNS confirmation logged rather than fetched: a
//! fuzz run makes no network request; `router` also with its secrets and admin tokens).
//!
//! [`signatures`] checks signed bodies (SNS envelopes and their `SigningCertURL`, signing
//! certificates, webhook HMAC signatures with [`SIGNATURES_CONFIG`]): the first byte picks
//! what the rest is, as `fuzzing/signing.rs` describes; its webhook mode takes a head of
//! header lines and a body split as above.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;

use crate::clock::Clock;
use crate::config::Config;
use crate::event::wire::{self, Record};
use crate::ingest::admin::Health;
use crate::ingest::auth::Auth;
use crate::ingest::body::BodyLimits;
use crate::ingest::integrations::fixture::NOW;
use crate::ingest::integrations::settings::{self, SettingsByKind};
use crate::ingest::integrations::{
    self as formats, endpoint, IngestRequest, IntegrationError, Parsed,
};
use crate::ingest::router::Router;
use crate::integration::Integration;
use crate::publish::MemorySink;

mod signing;
#[cfg(test)]
mod tests;

pub use signing::{signatures, SIGNATURES_CONFIG, SIGNED_KINDS, SNS_TOPICS};

/// A fuzz target: any bytes, never a panic.
pub type Target = fn(&[u8]);

/// Every target by its cargo-fuzz name (`fuzz/fuzz_targets/<name>.rs`, `fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("format", format),
    ("wire", wire),
    ("config", config),
    ("router", router),
    ("signatures", signatures),
];

/// The config both request targets run with: every format-owned setting that changes what a
/// parser does, one shard, and auth the way each kind of secret and token works (a few kinds
/// with a secret, the others open so that the router reaches their parsers).
pub const CONFIG: &str = r#"
[correlate]
shards = 1

[auth]
max_silence = "3d"

[auth.integrations.grafana]
secrets = ["fuzz-grafana-secret", "fuzz-grafana-old-secret"]
header = "X-Sluice-Secret"

[auth.integrations.pagerduty]
secrets = ["fuzz-pagerduty-token"]
query = "token"

[auth.integrations.alertmanager_webhook]
secrets = ["fuzz-path-secret"]
path = true

[[auth.tokens]]
name = "ops"
token = "fuzz-ops-token-0123456789"
scopes = ["read", "write", "broad_silence"]

[[auth.tokens]]
name = "team"
token = "fuzz-team-token-0123456789"
scopes = ["read", "write"]
routing_keys = ["rk-1"]

[integrations.alertmanager_api]
default_severity = "warning"
resolve_timeout = "10m"

[integrations.splunk]
resolve_timeout = "30m"

[integrations.cloudwatch_sns]
auto_confirm = false

[integrations.generic.shopmon]
dedup_key = "/check/id"
dedup_key_template = "{/host}/{/check/name}"
summary = "/check/output"
source = "/host"
component = "/service"
class = "/check/name"
severity = "/check/level"
severity_map = { P1 = "critical", P2 = "error", P3 = "warning" }
timestamp = "/check/changed_at"
details = "/check"
labels = { team = "/owner/team", env = "/env" }
action_pointer = "/check/state"
action_map = { failing = "trigger", acked = "acknowledge", passing = "resolve" }
resolve_when = { pointer = "/check/healthy", equals = ["true"] }

[integrations.generic.other]
dedup_key = "/id"
"#;

/// The routing key of a [`format`] input without an `X-Routing-Key` header.
pub const ROUTING_KEY: &str = "fuzz-routing-key";

/// [`CONFIG`] loaded, and what the server builds from it (as `app` does).
struct Loaded {
    config: Config,
    settings: SettingsByKind,
    auth: Arc<Auth>,
}

fn loaded() -> &'static Loaded {
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| {
        let config = Config::from_toml_with(CONFIG, Vec::new(), settings::check)
            .expect("the fuzz config is valid");
        Loaded {
            settings: SettingsByKind::checked(&config.integrations)
                .expect("the fuzz config is valid"),
            auth: Arc::new(Auth::from_config(&config.auth)),
            config,
        }
    })
}

/// One integration's parse, through the registry's dispatch as the router calls it, and the
/// answer its sender would get. A refusal names the format and is a 4xx; every event crosses
/// the events topic's wire format unchanged (Kafka mode correlates what it decodes).
pub fn format(data: &[u8]) {
    let Some((kind, result)) = parse_format(data) else {
        return;
    };
    match result {
        Ok(parsed) => {
            let _ = formats::accepted(kind, &parsed);
            let mut out = Vec::new();
            for event in &parsed.events {
                out.clear();
                wire::encode_event(event, &mut out);
                match wire::decode(&out) {
                    Ok(Record::Event(back)) => assert_eq!(&back, event, "an event's wire trip"),
                    other => panic!("an encoded event decodes as {other:?}"),
                }
            }
        }
        Err(e) => {
            assert!(e.status().is_client_error(), "{e}");
            assert!(e.to_string().starts_with(kind.as_str()), "{e}");
            let _ = formats::refused(&e);
        }
    }
}

/// A [`format`] input's kind and what its parser made of it; `None` for a request the router
/// refuses before any parser.
fn parse_format(data: &[u8]) -> Option<(Integration, Result<Parsed, IntegrationError>)> {
    let (&first, rest) = data.split_first()?;
    let kind = Integration::ALL[usize::from(first) % Integration::ALL.len()];
    let (head, body) = split(rest);
    let mut lines = lines(head);
    // The router percent-decodes the path to UTF-8 or refuses it.
    let first_line = std::str::from_utf8(lines.next().unwrap_or_default()).ok()?;
    let (path, query) = match first_line.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (first_line, None),
    };
    let headers = headers(lines);
    let routing_key = match headers.get(endpoint::ROUTING_KEY_HEADER) {
        // The router refuses a key that is not visible ASCII.
        Some(key) => key.to_str().ok()?,
        None if kind.key_from_request() => ROUTING_KEY,
        None => "",
    };
    let settings = &loaded().settings;
    let req = IngestRequest {
        routing_key,
        headers: &headers,
        query,
        path,
        now: NOW,
        settings: settings.get(kind),
    };
    Some((kind, formats::parse(kind, &req, &mut body.to_vec())))
}

/// The events topic's record decoder; a record it reads is written and read back the same.
pub fn wire(data: &[u8]) {
    let Ok(record) = wire::decode(data) else {
        return;
    };
    let mut out = Vec::new();
    wire::encode(&record, &mut out);
    match wire::decode(&out) {
        Ok(back) => assert_eq!(back, record, "a record's wire trip"),
        Err(e) => panic!("a re-encoded record does not decode: {e}"),
    }
}

/// The config loader on a file's text, as `sluice serve --config` reads it (the formats' own
/// settings checked too), then the integration settings the server is built with.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the loader reads the file as UTF-8 and refuses anything else
    };
    if let Ok(config) = Config::from_toml_with(text, Vec::new(), settings::check) {
        // `check` took every format-owned key, so building the settings again cannot fail.
        SettingsByKind::checked(&config.integrations).expect("checked settings build");
    }
}

/// One HTTP request through the real [`Router`] (routes, secrets and admin tokens, routing
/// keys, body limits, parsers, both silences APIs, admin routes) on a fresh in-process
/// pipeline whose correlator runs inline: a request that reaches it is correlated too. The
/// answer is never a 500.
pub fn router(data: &[u8]) {
    let (head, body) = split(data);
    let mut lines = lines(head);
    let Some((method, uri)) = lines
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.split_once(' '))
    else {
        return;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let Ok(mut req) = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::copy_from_slice(body)))
    else {
        return; // hyper answers a request line it cannot read itself
    };
    *req.headers_mut() = headers(lines);
    let Loaded {
        config,
        settings,
        auth,
    } = loaded();
    let clock = Clock::manual(NOW);
    let sink = Arc::new(MemorySink::default());
    let (_inline, intake) = crate::pipeline::local::inline(&config.correlate, clock.clone(), sink);
    let router = Router::new(
        intake,
        clock,
        Arc::new(Health::default()),
        crate::metrics::install(),
        BodyLimits {
            max_body_bytes: config.server.max_body_bytes,
            body_read_timeout: config.server.body_read_timeout,
        },
    )
    .with_integrations(settings.clone())
    .with_auth(Arc::clone(auth));
    let resp = block_on(router.handle(req));
    assert_ne!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

/// Runs `f` on this thread's current-thread runtime (body reads have timeouts).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
    }
    RUNTIME.with(|rt| rt.block_on(f))
}

/// A request's head and body: split at the first NUL; without one, all body.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[], data),
    }
}

/// A head's lines, each without its `\r\n` or `\n`.
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// `name: value` lines as headers; a line hyper would refuse is skipped.
fn headers<'a>(lines: impl Iterator<Item = &'a [u8]>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(&line[..colon]);
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (name, value) {
            headers.append(name, value);
        }
    }
    headers
}
