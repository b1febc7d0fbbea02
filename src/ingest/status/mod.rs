//! The status page: server-rendered HTML for operators, with no build step and no external
//! asset; it works without JavaScript, and with it reloads itself every 10 s.
//!
//! - `GET /`: open incidents by severity, a storm in progress, compression by integration,
//!   the noisiest sources, silences with their expiry (and the forms that create and expire
//!   them), pipeline health ([`overview`]).
//! - `GET /ui/incidents/<id>`: one incident's alerts, links, reasons and timeline ([`incident`]).
//! - `POST /ui/silences` (matchers, duration, comment) and `POST /ui/silences/<id>/expire`:
//!   through the silences store, so the rules of the silences APIs hold (write scope, a
//!   limited token's routing keys, `broad_silence`, `auth.max_silence`), and the change is
//!   logged with the token's name.
//! - `GET`/`POST /ui/login`, `POST /ui/logout`; `GET /ui/static/status.css` and `status.js`.
//!
//! Auth: with no admin token configured the page is open, as the APIs are. Otherwise a GET
//! without a session is sent to the login form, which takes a token, checks it with admin auth
//! and starts a session ([`session`]: a random id in an `HttpOnly; SameSite=Strict` cookie, the
//! token's name and scopes kept server-side for 12 h); pages need the `read` scope. Every form
//! carries a CSRF token bound to the session (or, open and on the login form, to a nonce
//! cookie); a POST without the right one is a 403. The session cookie is `Secure` when the
//! browser posted the login form from an `https:` page (its `Origin`) or a proxy says
//! `X-Forwarded-Proto: https`.
//!
//! Every answer carries a strict Content-Security-Policy ([`CSP`]: scripts and styles only
//! from these files, no images from elsewhere, forms only to this origin, no framing),
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and `Cache-Control:
//! no-store`. Every string a sender wrote is escaped, and only http(s) links are clickable
//! ([`html`]); senders' image URLs are never loaded.

mod html;
mod incident;
mod overview;
mod session;

use bytes::Buf;
use http::header::{
    ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, ORIGIN,
    REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::correlate::silence::Silence;
use crate::ingest::admin::Health;
use crate::ingest::auth::{Auth, Principal, Scope};
use crate::ingest::body::{self, BodyLimits};
use crate::ingest::integrations::fields::percent_decode;
use crate::ingest::response::{self, Body};
use crate::ingest::silences::{self, SilenceStore};
use crate::matchers::Matcher;
use crate::pipeline::Intake;
use crate::time::{parse_duration, UnixMillis};
use crate::view::View;

pub use session::Sessions;
use session::{cookie, set_cookie, Binding, CSRF_COOKIE, SESSION_COOKIE, SESSION_LIFETIME};

/// The policy every answer of the page carries.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub const LOGIN: &str = "/ui/login";
const LOGOUT: &str = "/ui/logout";
const SILENCES: &str = "/ui/silences";
const INCIDENT: &str = "/ui/incidents/";
/// Where a change made through a form sends the browser back to.
const BACK: &str = "/#silences";

type Answer = http::Response<Body>;

/// Whether `path` is the status page's: `/` and everything under `/ui/`.
pub fn serves(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// What the page needs of the router.
pub struct Context<'a> {
    pub sessions: &'a Sessions,
    pub auth: &'a Auth,
    /// `None` on an instance without the ingest role.
    pub view: Option<&'a View>,
    pub silences: &'a SilenceStore,
    pub health: &'a Health,
    pub intake: &'a Intake,
    pub limits: &'a BodyLimits,
    pub now: UnixMillis,
}

enum Route {
    Overview,
    Incident(String),
    Create,
    Expire(String),
    /// An incident command: (id, action).
    Command(String, String),
    Login,
    Logout,
    Static(&'static str, &'static str),
}

/// The route of `path` and the methods it takes.
fn route(path: &str) -> Option<(Route, &'static str)> {
    let id = |rest: &str| (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string());
    Some(match path {
        "/" => (Route::Overview, "GET, HEAD"),
        LOGIN => (Route::Login, "GET, HEAD, POST"),
        LOGOUT => (Route::Logout, "POST"),
        SILENCES => (Route::Create, "POST"),
        html::CSS_PATH => (
            Route::Static(html::CSS, "text/css; charset=utf-8"),
            "GET, HEAD",
        ),
        html::JS_PATH => (
            Route::Static(html::JS, "text/javascript; charset=utf-8"),
            "GET, HEAD",
        ),
        _ => match path.strip_prefix(INCIDENT).and_then(id) {
            Some(i) => (Route::Incident(i), "GET, HEAD"),
            None if incident::command_path(path).is_some() => {
                let (i, action) = incident::command_path(path)?;
                (Route::Command(i, action), "POST")
            }
            None => {
                let rest = path.strip_prefix("/ui/silences/")?;
                let i = rest.strip_suffix("/expire").and_then(id)?;
                (Route::Expire(i), "POST")
            }
        },
    })
}

/// Answers a request to the page ([`serves`]).
pub async fn handle<B>(req: Request<B>, cx: Context<'_>) -> Answer
where
    B: http_body::Body + Unpin,
    B::Data: Buf,
{
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let Some((route, allowed)) = route(&path) else {
        let msg = format!("no page at {path}");
        return guard(page(
            StatusCode::NOT_FOUND,
            html::problem("Not found", &msg, &[], "/"),
        ));
    };
    if !allowed.split(", ").any(|m| m == method.as_str()) {
        let msg = format!("{path} takes {allowed}");
        let mut resp = page(
            StatusCode::METHOD_NOT_ALLOWED,
            html::problem("Method not allowed", &msg, &[], "/"),
        );
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allowed));
        return guard(resp);
    }
    let resp = match route {
        Route::Static(text, content_type) => response::text(StatusCode::OK, text, content_type),
        Route::Login if method == Method::POST => login(req, &cx).await,
        Route::Login => login_form(req.headers(), req.uri().query(), &cx),
        route => guarded(route, req, &cx).await,
    };
    match method == Method::HEAD {
        true => guard(response::without_body(resp)),
        false => guard(resp),
    }
}

/// Who is asking, and what their forms are bound to.
struct Caller {
    principal: Principal,
    binding: Binding,
    /// A nonce drawn for this answer, to be set as the `sluice_csrf` cookie.
    new_nonce: Option<String>,
    /// Logged in (tokens configured), so the top bar shows the name and a logout button.
    session: bool,
}

/// The browser's nonce cookie, or a new one.
fn nonce(headers: &HeaderMap, sessions: &Sessions) -> (String, bool) {
    match cookie(headers, CSRF_COOKIE) {
        Some(n) => (n.to_string(), false),
        None => (sessions.random_id(), true),
    }
}

/// The caller: anonymous when no token is configured, else the session's, if any.
fn caller(headers: &HeaderMap, cx: &Context<'_>) -> Option<Caller> {
    if cx.auth.admin.is_open() {
        let (nonce, new) = nonce(headers, cx.sessions);
        return Some(Caller {
            principal: Principal::anonymous(),
            new_nonce: new.then(|| nonce.clone()),
            binding: Binding::Nonce(nonce),
            session: false,
        });
    }
    let id = cookie(headers, SESSION_COOKIE)?;
    let principal = cx.sessions.principal(id, cx.now)?;
    Some(Caller {
        principal,
        binding: Binding::Session(id.to_string()),
        new_nonce: None,
        session: true,
    })
}

/// A page or form that needs a caller: the overview, an incident, the silence forms, logout.
async fn guarded<B>(route: Route, req: Request<B>, cx: &Context<'_>) -> Answer
where
    B: http_body::Body + Unpin,
    B::Data: Buf,
{
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let Some(who) = caller(req.headers(), cx) else {
        if method == Method::POST {
            let msg = "log in first: this form needs a session";
            return page(
                StatusCode::FORBIDDEN,
                html::problem("Refused", msg, &[], LOGIN),
            );
        }
        return see_other(&format!("{LOGIN}?next={}", safe_next(&path)));
    };
    if method != Method::POST {
        if let Err(denied) = who.principal.require(Scope::Read) {
            return html_refusal(denied.refuse(&method, &path), LOGIN).await;
        }
        return view_page(route, &who, cx);
    }
    let (parts, body) = req.into_parts();
    let form = match body::read(cx.limits, &parts.headers, body).await {
        Ok(b) => match parse_form(&b) {
            Ok(form) => form,
            Err(problem) => {
                let page_ = html::problem("Invalid form", &problem, &[], BACK);
                return page(StatusCode::BAD_REQUEST, page_);
            }
        },
        Err(e) => return html_refusal(e.response(cx.limits), BACK).await,
    };
    if !cx.sessions.csrf_ok(&who.binding, value(&form, "csrf")) {
        tracing::info!(
            token = who.principal.name(),
            path,
            "status page form refused: csrf"
        );
        let msg = "the form's CSRF token does not belong to this browser's session: reload \
                   the page and submit the form again";
        return page(
            StatusCode::FORBIDDEN,
            html::problem("Refused", msg, &[], "/"),
        );
    }
    match route {
        Route::Create => create(&form, &who.principal, cx).await,
        Route::Command(id, action) => {
            incident::command(&form, (&id, &action), &who.principal, cx).await
        }
        Route::Expire(id) => {
            let expired = cx.silences.expire(&id, &who.principal, cx.now, cx.intake);
            match expired.await {
                Ok(_) => see_other(BACK),
                Err(failed) => html_refusal(failed.response(&method, &path, &id), BACK).await,
            }
        }
        // Logout: the one other route that takes POST.
        _ => {
            if let Binding::Session(id) = &who.binding {
                cx.sessions.logout(id);
                tracing::info!(token = who.principal.name(), "status page logout");
            }
            let mut resp = see_other(LOGIN);
            let cleared = set_cookie(SESSION_COOKIE, "", Some(0), false);
            resp.headers_mut().append(SET_COOKIE, cleared);
            resp
        }
    }
}

/// The overview or an incident's page, for `who` (read scope checked).
fn view_page(route: Route, who: &Caller, cx: &Context<'_>) -> Answer {
    let csrf = cx.sessions.csrf(&who.binding);
    let name = who.principal.name();
    let top = html::Top {
        user: who.session.then_some(name),
        csrf: &csrf,
    };
    let (status, title, body) = match route {
        Route::Incident(id) => match cx.view.and_then(|v| v.get(&id)) {
            Some(e) => {
                let title = format!("Incident {}", overview::or_untitled(e.str("title")));
                let actions = incident::Actions {
                    csrf: &csrf,
                    can_write: who.principal.require(Scope::Write).is_ok(),
                };
                (StatusCode::OK, title, incident::page(&e, cx.now, &actions))
            }
            None => {
                let msg = format!(
                    "no incident {id:?} in the incidents view: unknown, or resolved more than \
                     24 h ago"
                );
                let body = format!("<p class=\"problem\">{}</p>", html::esc(&msg));
                (StatusCode::NOT_FOUND, "Not found".into(), body)
            }
        },
        // The overview: the one other route that takes GET.
        _ => {
            let o = overview::Overview {
                view: cx.view,
                silences: cx.silences.all(),
                health: cx.health,
                now: cx.now,
                csrf: &csrf,
                can_write: who.principal.require(Scope::Write).is_ok(),
                user: name,
            };
            (StatusCode::OK, "Status".into(), overview::overview(&o))
        }
    };
    let mut resp = page(status, html::document(&title, true, Some(&top), &body));
    if let Some(nonce) = &who.new_nonce {
        resp.headers_mut()
            .append(SET_COOKIE, set_cookie(CSRF_COOKIE, nonce, None, false));
    }
    resp
}

/// `POST /ui/silences`: matchers (rows `name<i>`, `op<i>`, `value<i>`), `duration`, `comment`,
/// `created_by` (default the token's name), made into a silence from now and created through
/// the store (which checks what `who` may silence and logs the change).
async fn create(form: &[(String, String)], who: &Principal, cx: &Context<'_>) -> Answer {
    let mut errors = Vec::new();
    let mut matchers = Vec::new();
    for i in 0..overview::MATCHER_ROWS {
        let name = value(form, &format!("name{i}")).trim();
        let op = match value(form, &format!("op{i}")) {
            "" => "=",
            op => op,
        };
        let v = value(form, &format!("value{i}"));
        if name.is_empty() {
            if !v.is_empty() {
                errors.push(format!("matcher {}: a value without a name", i + 1));
            }
            continue;
        }
        match Matcher::new(name, op, v) {
            Ok(m) => matchers.push(m),
            Err(e) => errors.push(format!("matcher {}: {e}", i + 1)),
        }
    }
    if matchers.is_empty() && errors.is_empty() {
        errors.push("a silence needs at least one matcher".into());
    }
    let ends_at = match parse_duration(value(form, "duration")) {
        Ok(d) if !d.is_zero() => Some(cx.now.saturating_add(d)),
        Ok(_) => {
            errors.push("'duration' must be more than 0".into());
            None
        }
        Err(e) => {
            errors.push(format!("'duration': {e}"));
            None
        }
    };
    let (now, max) = (cx.now, cx.auth.max_silence);
    let names = ("now", "now + duration");
    silences::check(
        &matchers,
        (Some(now), ends_at),
        names,
        now,
        max,
        &mut errors,
    );
    let Some(ends_at) = ends_at.filter(|_| errors.is_empty()) else {
        let body = html::problem(
            "Silence not created",
            "The silence is invalid",
            &errors,
            BACK,
        );
        return page(StatusCode::BAD_REQUEST, body);
    };
    let created_by = match value(form, "created_by").trim() {
        "" => who.name().to_string(),
        by => by.to_string(),
    };
    let silence = Silence {
        id: String::new(),
        matchers,
        starts_at: now,
        ends_at,
        created_by,
        comment: value(form, "comment").trim().to_string(),
        created_at: now,
    };
    match cx.silences.create(silence, who, now, cx.intake).await {
        Ok(_) => see_other(BACK),
        Err(failed) => html_refusal(failed.response(&Method::POST, SILENCES, ""), BACK).await,
    }
}

/// `GET /ui/login`: the form (open: straight to the overview; logged in: to `next`).
fn login_form(headers: &HeaderMap, query: Option<&str>, cx: &Context<'_>) -> Answer {
    let next = query
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("next="))
        .and_then(|n| percent_decode(n, true))
        .unwrap_or_default();
    let next = safe_next(&next);
    if cx.auth.admin.is_open() || caller(headers, cx).is_some() {
        return see_other(next);
    }
    let (nonce, new) = nonce(headers, cx.sessions);
    let csrf = cx.sessions.csrf(&Binding::Nonce(nonce.clone()));
    let mut resp = page(StatusCode::OK, html::login(&csrf, next, None));
    if new {
        let cookie = set_cookie(CSRF_COOKIE, &nonce, None, forwarded_https(headers));
        resp.headers_mut().append(SET_COOKIE, cookie);
    }
    resp
}

/// `POST /ui/login`: the form's CSRF token (bound to the nonce cookie), then the token checked
/// by admin auth; a token with the read scope starts a session.
async fn login<B>(req: Request<B>, cx: &Context<'_>) -> Answer
where
    B: http_body::Body + Unpin,
    B::Data: Buf,
{
    if cx.auth.admin.is_open() {
        return see_other("/");
    }
    let (parts, body) = req.into_parts();
    let form = match body::read(cx.limits, &parts.headers, body).await {
        Ok(b) => parse_form(&b).unwrap_or_default(),
        Err(e) => return html_refusal(e.response(cx.limits), LOGIN).await,
    };
    let (csrf, next) = (value(&form, "csrf"), safe_next(value(&form, "next")));
    let bound = cookie(&parts.headers, CSRF_COOKIE)
        .is_some_and(|n| cx.sessions.csrf_ok(&Binding::Nonce(n.to_string()), csrf));
    if !bound {
        tracing::info!("status page login refused: csrf");
        let msg = "the login form's CSRF token does not belong to this browser: open the login \
                   page again";
        return page(
            StatusCode::FORBIDDEN,
            html::problem("Refused", msg, &[], LOGIN),
        );
    }
    let mut headers = HeaderMap::new();
    let bearer = format!("Bearer {}", value(&form, "token"));
    if let Ok(v) = HeaderValue::from_bytes(bearer.as_bytes()) {
        headers.insert(AUTHORIZATION, v);
    }
    let principal = cx.auth.admin.authenticate(&headers).and_then(|p| {
        p.require(Scope::Read)?;
        Ok(p)
    });
    match principal {
        Ok(p) => {
            let id = cx.sessions.login(p.clone(), cx.now);
            tracing::info!(token = p.name(), "status page login");
            let secure = forwarded_https(&parts.headers)
                || parts
                    .headers
                    .get(ORIGIN)
                    .is_some_and(|o| o.as_bytes().starts_with(b"https://"));
            let age = Some(SESSION_LIFETIME.as_secs());
            let mut resp = see_other(next);
            let cookie = set_cookie(SESSION_COOKIE, &id, age, secure);
            resp.headers_mut().append(SET_COOKIE, cookie);
            resp
        }
        Err(denied) => {
            crate::metrics::admin_refused(denied.reason()).increment(1);
            tracing::info!(reason = denied.reason(), "status page login refused");
            let (status, problem) = match denied {
                crate::ingest::auth::admin::Denied::Scope { token, .. } => (
                    StatusCode::FORBIDDEN,
                    format!("token {token:?} does not have the read scope the page needs"),
                ),
                _ => (
                    StatusCode::UNAUTHORIZED,
                    "that token is not one of auth.tokens".to_string(),
                ),
            };
            page(status, html::login(csrf, next, Some(&problem)))
        }
    }
}

/// A proxy in front says the browser came over https.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// Where the login form may send the browser: the overview or an incident's page.
fn safe_next(next: &str) -> &str {
    let tail = next.strip_prefix(INCIDENT).unwrap_or_default();
    let safe = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.';
    match !tail.is_empty() && tail.bytes().all(safe) {
        true => next,
        false => "/",
    }
}

/// An `application/x-www-form-urlencoded` body's fields, decoded, in order.
fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the form is not UTF-8".to_string())?;
    let fields = text.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (percent_decode(k, true), percent_decode(v, true)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(format!("form field {k:?} is not percent-encoded UTF-8")),
        }
    });
    fields.collect()
}

/// The first value of field `name` (empty when absent).
fn value<'f>(form: &'f [(String, String)], name: &str) -> &'f str {
    let found = form.iter().find(|(k, _)| k == name);
    found.map_or("", |(_, v)| v.as_str())
}

fn page(status: StatusCode, html: String) -> Answer {
    response::text(status, html, "text/html; charset=utf-8")
}

fn see_other(location: &str) -> Answer {
    let mut resp = response::text(StatusCode::SEE_OTHER, "", "text/plain; charset=utf-8");
    let location = HeaderValue::from_str(location).expect("locations here are plain paths");
    resp.headers_mut().insert(LOCATION, location);
    resp
}

/// A JSON refusal (admin auth's, the silences store's, a body's) as a page, keeping its status.
async fn html_refusal(resp: Answer, back: &str) -> Answer {
    let status = resp.status();
    let bytes = match resp.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let message = v["message"].as_str().or(v.as_str()).unwrap_or("refused");
    let details: Vec<String> = v["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect();
    let title = match status {
        StatusCode::UNAUTHORIZED => "Not logged in",
        StatusCode::FORBIDDEN => "Refused",
        StatusCode::NOT_FOUND => "Not found",
        s if s.is_server_error() => "Unavailable",
        _ => "Invalid",
    };
    page(status, html::problem(title, message, &details, back))
}

/// The headers every answer of the page carries.
fn guard(mut resp: Answer) -> Answer {
    let h = resp.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests;
