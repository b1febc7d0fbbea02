//! Routes each request: the integrations' own vendor paths and `/integrations/<kind>/...`
//! (generated from the registry's `Serving`), PagerDuty change events, the silences APIs (v1
//! and Alertmanager's v2) and the admin routes (`admin.rs`). An ingest request's secret and
//! routing key are checked (`auth::senders`) before its body is read (a key in the body right
//! after it is parsed); its body is read within its limits (`body.rs`), parsed by its format,
//! handed to the pipeline in one all-or-nothing hand-over, and answered as its sender expects.
//! The silences APIs ask admin auth (`auth::admin`) who the caller is before anything else.
//! `/` and `/ui/...` are the status page's (`status`); the incidents API and Alertmanager's read
//! API (`/api/v2/alerts` GET, `/api/v2/status`, ...) are `incidents_api`'s.

use std::sync::Arc;
use std::time::Instant;

use bytes::Buf;
use http::header::{ALLOW, CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::clock::Clock;
use crate::ingest::integrations::settings::SettingsByKind;
use crate::integration::Integration;
use crate::metrics::{self as m, IntegrationCounters};
use crate::pipeline::Intake;

use super::admin::{self, Health};
use super::auth::senders::{self, PathSecret};
use super::auth::Auth;
use super::body::{self, BodyLimits};
use super::incidents_api;
use super::integrations::{self, endpoint, pagerduty, IngestRequest};
use super::response::{self, Body};
use super::status;
use crate::live::Live;

mod refusal;
use refusal::refusal;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    PagerDutyChange,
    Healthz,
    Readyz,
    Metrics,
    Reload,
}

impl Route {
    /// The fixed routes; every integration's own path comes from the registry ([`own_path`]).
    /// HEAD answers as GET without the body (load balancers probe with it).
    const TABLE: &'static [(&'static str, Method, Route)] = &[
        ("/v2/change/enqueue", Method::POST, Route::PagerDutyChange),
        ("/healthz", Method::GET, Route::Healthz),
        ("/healthz", Method::HEAD, Route::Healthz),
        ("/readyz", Method::GET, Route::Readyz),
        ("/readyz", Method::HEAD, Route::Readyz),
        ("/metrics", Method::GET, Route::Metrics),
        ("/-/reload", Method::POST, Route::Reload),
    ];
}

pub struct Router {
    intake: Intake,
    clock: Clock,
    health: Arc<Health>,
    metrics: PrometheusHandle,
    limits: BodyLimits,
    per_integration: m::PerKind<IntegrationCounters>,
    integrations: Live<SettingsByKind>,
    silences: Arc<super::silences::SilenceStore>,
    recorder: Option<super::record::Recorder>,
    confirmer: super::confirm::Confirmer,
    /// Checks CloudWatch-via-SNS messages before they are parsed (`sns_verify`).
    sns: Option<super::sns_verify::SnsVerifier>,
    auth: Live<Auth>,
    /// The incidents view the incidents API reads (`None`: not served here).
    view: Option<Arc<crate::view::View>>,
    /// The status page's sessions and CSRF key.
    sessions: status::Sessions,
}

/// Which silences API a request is for.
enum SilencesApi {
    /// `/api/v1/silences` and what follows it (empty, or `/<id>`).
    V1(String),
    /// `/api/v2/silences` (`None`) or `/api/v2/silence/<id>`.
    V2(Option<String>),
}

/// The kind whose own vendor path `path` is (PagerDuty's `/v2/enqueue`, the Alertmanager API,
/// the Opsgenie Alert API with `/v2/alerts/<alias>/<action>`, PagerDuty's Nagios path), as the
/// registry's `Serving` says: the kind, what follows its path, and whether its key is in the
/// body.
fn own_path(path: &str) -> Option<(Integration, &str, bool)> {
    Integration::ALL.iter().find_map(|&kind| {
        let own = kind.serving().own?;
        match path.strip_prefix(own.path) {
            Some("") => Some((kind, "", own.key_in_body)),
            Some(tail) if own.tail && tail.starts_with('/') => Some((kind, tail, own.key_in_body)),
            _ => None,
        }
    })
}

impl Router {
    pub fn new(
        intake: Intake,
        clock: Clock,
        health: Arc<Health>,
        metrics: PrometheusHandle,
        limits: BodyLimits,
    ) -> Self {
        let per_integration = m::PerKind::new(IntegrationCounters::new);
        Router {
            intake,
            clock,
            health,
            metrics,
            limits,
            per_integration,
            integrations: Live::new(Arc::new(SettingsByKind::default())),
            silences: Default::default(),
            recorder: None,
            confirmer: Default::default(),
            sns: None,
            auth: Default::default(),
            view: None,
            sessions: Default::default(),
        }
    }

    /// SNS signature and topic checks (`SnsVerifier::from_settings`); none until this is called.
    pub fn with_sns_verifier(mut self, sns: Option<super::sns_verify::SnsVerifier>) -> Self {
        self.sns = sns;
        self
    }

    /// Serves the incidents API from `view`.
    pub fn with_view(mut self, view: Arc<crate::view::View>) -> Self {
        self.view = Some(view);
        self
    }

    /// Ingest and admin auth (`[auth]`); open until this is called.
    pub fn with_auth(self, auth: Arc<Auth>) -> Self {
        self.auth.set(auth);
        self
    }

    /// Replaces auth and the per-integration settings for the requests that start from now on
    /// (a reload).
    pub fn reload(&self, auth: Arc<Auth>, integrations: SettingsByKind) {
        self.auth.set(auth);
        self.integrations.set(Arc::new(integrations));
    }

    /// The silences API serves `store` (Kafka mode: the store kept with the silences topic).
    pub fn with_silences(mut self, store: Arc<super::silences::SilenceStore>) -> Self {
        self.silences = store;
        self
    }

    /// Writes every ingest request to a `--record` file.
    pub fn with_recorder(mut self, recorder: super::record::Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Records the request as decoded: a body that came compressed is written without its
    /// `Content-Encoding` and `Content-Length`, so `sluice replay` reads it as it is; secrets
    /// and tokens are left out ([`Auth::recordable`]).
    fn record(&self, parts: &http::request::Parts, body: &[u8]) {
        if let Some(r) = &self.recorder {
            let path = parts
                .uri
                .path_and_query()
                .map_or(parts.uri.path(), |p| p.as_str());
            let (path, mut headers) = self.auth.get().recordable(path, &parts.headers);
            if headers.remove(CONTENT_ENCODING).is_some() {
                headers.remove(CONTENT_LENGTH);
            }
            r.record(&path, &headers, body);
        }
    }

    /// Per-integration settings (`[integrations.<kind>]`); every default until this is called.
    pub fn with_integrations(self, integrations: SettingsByKind) -> Self {
        self.integrations.set(Arc::new(integrations));
        self
    }

    pub async fn handle<B>(&self, mut req: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Unpin,
        B::Data: Buf,
    {
        senders::take_path_secret(&mut req);
        let path = req.uri().path();
        let silences = match (silences_rest(path), silences_v2(path)) {
            (Some(rest), _) => Some(SilencesApi::V1(rest.to_string())),
            (None, Some(id)) => Some(SilencesApi::V2(id.map(str::to_string))),
            (None, None) => None,
        };
        if let Some(api) = silences {
            let allow = match &api {
                SilencesApi::V1(rest) if rest.len() > 1 => "GET, DELETE",
                SilencesApi::V2(Some(_)) => "GET, DELETE",
                _ => "GET, POST",
            };
            if !allow.split(", ").any(|m| m == req.method().as_str()) {
                return method_not_allowed(&format!("{path} takes {allow}"), allow);
            }
            return self.silences_api(api, req).await;
        }
        if let Some(rest) = path.strip_prefix(endpoint::PREFIX) {
            let target = endpoint::target(
                rest,
                req.method(),
                req.headers(),
                req.uri().query(),
                &self.integrations.get(),
            );
            return self.ingest_target(target, req).await;
        }
        let auth = self.auth.get();
        // Before the vendor paths: Alertmanager's read API shares `/api/v2/alerts`.
        if incidents_api::serves(path, req.method()) {
            let cx = incidents_api::Context {
                auth: &auth,
                view: self.view.as_deref(),
                intake: &self.intake,
                limits: &self.limits,
                silences: &self.silences,
                started: self.health.started,
                now: self.clock.now(),
            };
            return incidents_api::handle(req, cx).await;
        }
        // Vendor APIs emulated at their own paths, so senders only change a base URL.
        if let Some((kind, tail, key_in_body)) = own_path(path) {
            if req.method() != Method::POST {
                let allow = incidents_api::alertmanager::allowed(path).unwrap_or("POST");
                return method_not_allowed(&format!("{path} takes {allow}"), allow);
            }
            let tail = tail.to_string();
            let target = if key_in_body {
                Ok(endpoint::Target {
                    kind,
                    routing_key: String::new(),
                    path: tail,
                })
            } else {
                endpoint::own_target(
                    kind,
                    &tail,
                    req.headers(),
                    req.uri().query(),
                    &self.integrations.get(),
                )
            };
            return self.ingest_target(target, req).await;
        }
        if status::serves(path) {
            let cx = status::Context {
                sessions: &self.sessions,
                auth: &auth,
                view: self.view.as_deref(),
                silences: &self.silences,
                health: &self.health,
                intake: &self.intake,
                limits: &self.limits,
                now: self.clock.now(),
            };
            return status::handle(req, cx).await;
        }
        let matches: Vec<_> = Route::TABLE.iter().filter(|(p, _, _)| *p == path).collect();
        let Some((_, _, route)) = matches.iter().find(|(_, m, _)| m == req.method()) else {
            if matches.is_empty() {
                let msg = format!("no route for {} {path}", req.method());
                return response::error(StatusCode::NOT_FOUND, "not found", &msg, &[]);
            }
            let allow: Vec<&str> = matches.iter().map(|(_, m, _)| m.as_str()).collect();
            let allow = allow.join(", ");
            return method_not_allowed(&format!("{path} takes {allow}"), &allow);
        };
        let head = req.method() == Method::HEAD;
        let resp = match *route {
            Route::PagerDutyChange => {
                let started = Instant::now();
                let resp = self.ingest_change(req).await;
                self.per_integration
                    .get(Integration::PagerDuty)
                    .duration
                    .record(started.elapsed().as_secs_f64());
                resp
            }
            Route::Healthz => admin::healthz(),
            Route::Readyz => admin::readyz(&self.health),
            Route::Metrics => admin::metrics(&self.metrics),
            Route::Reload => {
                let who = auth.admin.authenticate(req.headers());
                admin::reload(&self.health, who, path).await
            }
        };
        if head {
            response::without_body(resp)
        } else {
            resp
        }
    }

    async fn ingest_target<B>(
        &self,
        target: Result<endpoint::Target, endpoint::Refusal>,
        req: Request<B>,
    ) -> Response<Body>
    where
        B: http_body::Body + Unpin,
        B::Data: Buf,
    {
        match target {
            Ok(t) => {
                let started = Instant::now();
                let resp = self
                    .ingest_format(t.kind, &t.routing_key, &t.path, req)
                    .await;
                self.per_integration
                    .get(t.kind)
                    .duration
                    .record(started.elapsed().as_secs_f64());
                resp
            }
            Err(refusal) => refusal.response(),
        }
    }

    async fn silences_api<B>(&self, api: SilencesApi, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Unpin,
        B::Data: Buf,
    {
        let method = req.method().clone();
        let auth = self.auth.get();
        let who = match auth.admin.authenticate(req.headers()) {
            Ok(who) => who,
            Err(denied) => return denied.refuse(&method, req.uri().path()),
        };
        let query = req.uri().query().map(str::to_string);
        let body = if method == Method::POST {
            let (parts, body) = req.into_parts();
            match body::read(&self.limits, &parts.headers, body).await {
                Ok(b) => {
                    self.record(&parts, &b);
                    Some(b)
                }
                Err(e) => return e.response(&self.limits),
            }
        } else {
            None
        };
        let call = super::silences::Call {
            method: &method,
            query: query.as_deref(),
            body,
            now: self.clock.now(),
            intake: &self.intake,
            who: &who,
            max: auth.max_silence,
        };
        match api {
            SilencesApi::V1(rest) => self.silences.handle(&rest, call).await,
            SilencesApi::V2(id) => {
                super::silences_v2::handle(&self.silences, id.as_deref(), call).await
            }
        }
    }

    /// Reads a `kind` body and checks its signature (when `kind`'s are signed, and an SNS
    /// message's), or answers the request (413, 408, 400, 401; SNS 403, 503) and counts the
    /// refusal.
    async fn body_or_refusal<B>(
        &self,
        kind: Integration,
        req: Request<B>,
    ) -> Result<(http::request::Parts, Vec<u8>), Response<Body>>
    where
        B: http_body::Body + Unpin,
        B::Data: Buf,
    {
        let (parts, body) = req.into_parts();
        let body = match body::read(&self.limits, &parts.headers, body).await {
            Ok(b) => b,
            Err(e) => {
                m::rejected(kind.as_str(), e.reason()).increment(1);
                return Err(e.response(&self.limits));
            }
        };
        let auth = self.auth.get();
        let signatures = &auth.signatures;
        if let Err(denied) = signatures.check(kind, &parts.headers, &body, self.clock.now()) {
            return Err(self.deny(kind, denied));
        }
        if let (Integration::CloudwatchSns, Some(sns)) = (kind, &self.sns) {
            if let Err(refused) = sns.verify(&body).await {
                m::rejected(kind.as_str(), refused.reason()).increment(1);
                return Err(refused.response());
            }
        }
        self.record(&parts, &body);
        Ok((parts, body))
    }

    /// One request of a registered format: parse, queue every event in one all-or-nothing
    /// hand-over, answer as the format's sender expects.
    async fn ingest_format<B>(
        &self,
        kind: Integration,
        routing_key: &str,
        format_path: &str,
        req: Request<B>,
    ) -> Response<Body>
    where
        B: http_body::Body + Unpin,
        B::Data: Buf,
    {
        let name = kind.as_str();
        if let Err(denied) = self.admit(kind, routing_key, &req) {
            return self.deny(kind, denied);
        }
        let (parts, mut body) = match self.body_or_refusal(kind, req).await {
            Ok(read) => read,
            Err(refusal) => return refusal,
        };
        let integrations = self.integrations.get();
        let request = IngestRequest {
            routing_key,
            headers: &parts.headers,
            query: parts.uri.query(),
            path: format_path,
            now: self.clock.now(),
            settings: integrations.get(kind),
        };
        let mut parsed = match integrations::parse(kind, &request, &mut body) {
            Ok(p) => p,
            Err(e) => {
                m::rejected(name, e.reason()).increment(e.events_refused());
                return integrations::refused(&e);
            }
        };
        // Keys in the body (PagerDuty's) are checked once read.
        if routing_key.is_empty() {
            let keys = parsed.events.iter().map(|e| e.routing_key.as_str());
            if let Some(denied) = keys
                .filter_map(|k| self.auth.get().senders.check_key(k).err())
                .next()
            {
                return self.deny(kind, denied);
            }
        }
        let reply = integrations::accepted(kind, &parsed);
        let events = std::mem::take(&mut parsed.events);
        let accepted = events.len() as u64;
        if !events.is_empty() {
            if let Err(refused) = self.intake.submit_events(events).await {
                m::rejected(name, refused.reason()).increment(accepted);
                return refusal(kind, refused);
            }
        }
        let counters = self.per_integration.get(kind);
        counters.received.increment(accepted);
        if parsed.summaries_truncated > 0 {
            counters
                .summaries_truncated
                .increment(parsed.summaries_truncated);
        }
        if let Some(subscription) = parsed.subscription.take() {
            self.confirmer.handle(subscription);
        }
        if !parsed.rejected.is_empty() {
            tracing::debug!(
                integration = name,
                accepted,
                rejected = parsed.rejected.len(),
                "batch items rejected"
            );
            m::rejected(name, "invalid").increment(parsed.rejected.len() as u64);
        }
        reply
    }

    /// PagerDuty change events: published as `change` messages, never grouped.
    async fn ingest_change<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Unpin,
        B::Data: Buf,
    {
        let kind = Integration::PagerDuty;
        let name = kind.as_str();
        if let Err(denied) = self.admit(kind, "", &req) {
            return self.deny(kind, denied);
        }
        let (_, mut body) = match self.body_or_refusal(kind, req).await {
            Ok(read) => read,
            Err(refusal) => return refusal,
        };
        let parsed = match pagerduty::parse_change(&mut body, self.clock.now()) {
            Ok(p) => p,
            Err(e) => {
                let e = e.into_integration_error(kind);
                m::rejected(name, e.reason()).increment(e.events_refused());
                return integrations::refused(&e);
            }
        };
        if let Err(denied) = self.auth.get().senders.check_key(&parsed.event.routing_key) {
            return self.deny(kind, denied);
        }
        if let Err(refused) = self.intake.submit_change(parsed.event).await {
            m::rejected(name, refused.reason()).increment(1);
            return refusal(kind, refused);
        }
        let counters = self.per_integration.get(kind);
        counters.received.increment(1);
        counters.change_events.increment(1);
        if parsed.summary_truncated {
            counters.summaries_truncated.increment(1);
        }
        response::pd_change_accepted()
    }

    /// Checks a `kind` request's secret, and its routing key when it comes from the request
    /// (`routing_key` is empty when the key is in the body), before its body is read.
    fn admit<B>(
        &self,
        kind: Integration,
        routing_key: &str,
        req: &Request<B>,
    ) -> Result<(), senders::Denied> {
        let path = req.extensions().get::<PathSecret>();
        let auth = self.auth.get();
        let senders = &auth.senders;
        senders.check_secret(kind, req.headers(), req.uri().query(), path)?;
        match routing_key {
            "" => Ok(()),
            key => senders.check_key(key),
        }
    }

    /// Counts and answers a sender auth refusal.
    fn deny(&self, kind: Integration, denied: senders::Denied) -> Response<Body> {
        let reason = denied.reason();
        m::rejected(kind.as_str(), reason).increment(1);
        tracing::debug!(integration = kind.as_str(), reason, "sender refused");
        denied.response(kind)
    }
}

/// Whether `path` is in Alertmanager's silences API: `Some(None)` for the list, `Some(id)` for
/// one silence.
fn silences_v2(path: &str) -> Option<Option<&str>> {
    use super::silences_v2::{LIST, ONE};
    match path.strip_prefix(ONE) {
        Some(id) if !id.is_empty() && !id.contains('/') => Some(Some(id)),
        _ => (path == LIST).then_some(None),
    }
}

/// What follows the silences API's prefix in `path` (empty, or `/<id>`), if `path` is in it
/// (`/api/v1/silencesX` is not).
fn silences_rest(path: &str) -> Option<&str> {
    path.strip_prefix(super::silences::PREFIX)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// 405 naming the methods `path` takes, also in `Allow`.
fn method_not_allowed(message: &str, allow: &str) -> Response<Body> {
    let mut resp = response::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        message,
        &[],
    );
    resp.headers_mut().insert(
        ALLOW,
        HeaderValue::from_str(allow).expect("method names are valid"),
    );
    resp
}
