use std::time::Duration;

use bytes::Bytes;
use http::header::{COOKIE, LOCATION};
use http_body_util::Full;
use serde_json::json;

use super::*;
use crate::config::auth::{AdminToken, Scopes, Secret};
use crate::ingest::auth::AdminAuth;

const NOW: UnixMillis = UnixMillis(1_765_000_600_000);
const OPS: &str = "ops-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789ab";

/// An incident whose sender wrote markup and a `javascript:` link everywhere it could.
fn hostile() -> Vec<u8> {
    let at = UnixMillis(NOW.0 - 120_000).to_string();
    serde_json::to_vec(&json!({
        "schema": "sluice.incident.v1", "type": "opened", "incident_id": "inc_1", "seq": 1,
        "routing_key": "pay<b>ments", "rule": "default", "group_key": {"source": "db\"1"},
        "title": "<script>document.title='pwned'</script>", "severity": "critical",
        "status": "triggered", "opened_at": at, "updated_at": at, "resolved_at": null,
        "alert_count": 1, "open_alert_count": 1, "event_count": 3,
        "alerts": [{"dedup_key": "k'1", "summary": "<script>document.title='pwned'</script>",
                    "severity": "critical", "status": "triggered", "event_count": 3,
                    "first_seen": at, "last_seen": at, "source": "<img src=x onerror=alert(1)>",
                    "integration": "pagerduty",
                    "details": {"note": "<img src=x onerror=document.title='img'>"}}],
        "alerts_truncated": 0, "integrations": ["pagerduty"],
        "links": [{"href": "javascript:alert(1)", "text": "<i>runbook</i>"},
                  {"href": "https://grafana.example/d/1?a=1&b=2", "text": "dashboard"}],
        "reasons": {"grouping": "auto", "inhibited": 0, "silenced": 0}
    }))
    .unwrap()
}

struct Rig {
    sessions: Sessions,
    auth: Auth,
    view: Arc<View>,
    silences: SilenceStore,
    health: Health,
    intake: Intake,
    limits: BodyLimits,
}

use std::sync::Arc;

impl Rig {
    fn new(tokens: bool) -> Rig {
        let mut auth = Auth::default();
        if tokens {
            let token = |name: &str, value: &str, scopes| AdminToken {
                name: name.into(),
                token: Secret::new(value),
                scopes,
                routing_keys: None,
            };
            let read = Scopes {
                read: true,
                ..Scopes::default()
            };
            auth.admin = AdminAuth::new(&[
                token("ops", OPS, Scopes::ALL),
                token("reader", READER, read),
            ]);
        }
        let view = View::new();
        view.apply(&hostile()).unwrap();
        let (tx, _) = tokio::sync::watch::channel(Arc::from(Vec::new()));
        Rig {
            sessions: Sessions::default(),
            auth,
            view,
            silences: SilenceStore::default(),
            health: Health::default(),
            intake: Intake::kafka(None, tx),
            limits: BodyLimits {
                max_body_bytes: 65_536,
                body_read_timeout: Duration::from_secs(5),
            },
        }
    }

    /// Sends one request; returns the status, the headers and the body as text.
    async fn send(
        &self,
        method: Method,
        uri: &str,
        cookies: &str,
        form: &str,
    ) -> (StatusCode, HeaderMap, String) {
        self.send_with(method, uri, cookies, &[], form).await
    }

    /// [`Rig::send`] with more headers.
    async fn send_with(
        &self,
        method: Method,
        uri: &str,
        cookies: &str,
        headers: &[(&str, &str)],
        form: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if !cookies.is_empty() {
            req = req.header(COOKIE, cookies);
        }
        let req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form.to_string())))
            .unwrap();
        let cx = Context {
            sessions: &self.sessions,
            auth: &self.auth,
            view: Some(&self.view),
            silences: &self.silences,
            health: &self.health,
            intake: &self.intake,
            limits: &self.limits,
            now: NOW,
        };
        let resp = handle(req, cx).await;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }
}

/// The value of the first `name="csrf" value="..."` in `html`.
fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[start..].split('"').next().unwrap().to_string()
}

/// `name=value` of the `Set-Cookie` for `name`.
fn set_cookie_of(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
}

#[tokio::test]
async fn open_pages_escape_what_senders_wrote_and_carry_the_policy() {
    let rig = Rig::new(false);
    let (status, headers, html) = rig.send(Method::GET, "/", "", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_SECURITY_POLICY], CSP);
    assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[REFERRER_POLICY], "no-referrer");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    assert!(set_cookie_of(&headers, CSRF_COOKIE).is_some());
    assert!(html.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
    assert!(html.contains("pay&lt;b&gt;ments"));
    assert!(!html.contains("<script>document"), "{html}");
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the refresh script"
    );
    assert!(html.contains("<span class=\"badge critical\">critical</span> 1</h3>"));
    assert!(html.contains("href=\"/ui/incidents/inc_1\""));
    assert!(html.contains("not ready: kafka unreachable"));

    let (status, headers, html) = rig.send(Method::GET, "/ui/incidents/inc_1", "", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_SECURITY_POLICY], CSP);
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("&lt;img src=x onerror=document.title=&#39;img&#39;&gt;"));
    assert!(!html.contains("href=\"javascript"), "{html}");
    assert!(html.contains(
        "<span class=\"nolink\">&lt;i&gt;runbook&lt;/i&gt; <code>javascript:alert(1)</code></span>"
    ));
    assert!(html.contains("<a href=\"https://grafana.example/d/1?a=1&amp;b=2\""));
    assert!(html.contains("source=db&quot;1"));
    assert!(html.contains("<code>k&#39;1</code>"));

    let (status, _, _) = rig.send(Method::GET, "/ui/incidents/inc_2", "", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, _) = rig.send(Method::GET, "/ui/nothing", "", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[CONTENT_SECURITY_POLICY], CSP);
    let (status, headers, _) = rig.send(Method::POST, "/", "", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[ALLOW], "GET, HEAD");
    let (status, headers, css) = rig.send(Method::GET, html::CSS_PATH, "", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/css; charset=utf-8");
    assert_eq!(css, html::CSS);
    let (status, _, body) = rig.send(Method::HEAD, "/", "", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
}

#[tokio::test]
async fn open_forms_need_the_nonce_cookies_csrf_token() {
    let rig = Rig::new(false);
    let (_, headers, html) = rig.send(Method::GET, "/", "", "").await;
    let cookie = set_cookie_of(&headers, CSRF_COOKIE).unwrap();
    let csrf = csrf_of(&html);
    let form = format!(
        "csrf={csrf}&name0=source&op0=%3D&value0=db-1&name1=&op1=%3D&value1=&duration=2h&comment=disk+swap"
    );
    let (status, _, _) = rig.send(Method::POST, "/ui/silences", "", &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no cookie");
    let other = "sluice_csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (status, _, _) = rig.send(Method::POST, "/ui/silences", other, &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another browser's cookie");
    let (status, headers, _) = rig.send(Method::POST, "/ui/silences", &cookie, &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/#silences");
    let all = rig.silences.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].created_by, "anonymous");
    assert_eq!(all[0].comment, "disk swap");
    assert_eq!(
        all[0].ends_at,
        NOW.saturating_add(Duration::from_secs(7200))
    );

    // Refusals name the problem.
    let bad = format!("csrf={csrf}&name0=hostname&op0=%3D&value0=x&duration=30d");
    let (status, _, html) = rig.send(Method::POST, "/ui/silences", &cookie, &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("matcher 1: name &quot;hostname&quot; is not a field"),
        "{html}"
    );
    assert!(html.contains("is more than 7d after"), "{html}");
    let (status, _, html) = rig
        .send(
            Method::POST,
            "/ui/silences",
            &cookie,
            &format!("csrf={csrf}&duration=1h"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("a silence needs at least one matcher"));

    let id = all[0].id.clone();
    let expire = format!("/ui/silences/{id}/expire");
    let (status, _, _) = rig.send(Method::POST, &expire, &cookie, "csrf=x").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = rig
        .send(Method::POST, &expire, &cookie, &format!("csrf={csrf}"))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(rig.silences.find(&id).unwrap().ends_at, NOW);
    let (status, _, _) = rig
        .send(
            Method::POST,
            "/ui/silences/sil_none/expire",
            &cookie,
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_tokens_a_login_starts_a_session_that_forms_are_bound_to() {
    let rig = Rig::new(true);
    let (status, headers, _) = rig.send(Method::GET, "/ui/incidents/inc_1", "", "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/ui/login?next=/ui/incidents/inc_1");
    let (status, _, _) = rig.send(Method::POST, "/ui/silences", "", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, headers, html) = rig
        .send(
            Method::GET,
            "/ui/login?next=%2Fui%2Fincidents%2Finc_1",
            "",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<script"), "the login page runs no script");
    let nonce = set_cookie_of(&headers, CSRF_COOKIE).unwrap();
    let csrf = csrf_of(&html);
    let login = |token: &str, csrf: &str| {
        format!("csrf={csrf}&next=%2Fui%2Fincidents%2Finc_1&token={token}")
    };
    let (status, _, _) = rig
        .send(Method::POST, "/ui/login", &nonce, &login(OPS, ""))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    let (status, headers, html) = rig
        .send(
            Method::POST,
            "/ui/login",
            &nonce,
            &login("wrong-token-0123456789", &csrf),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(set_cookie_of(&headers, SESSION_COOKIE).is_none());
    assert!(html.contains("that token is not one of auth.tokens"));
    assert!(!html.contains("wrong-token"), "the token is not echoed");

    let (status, headers, _) = rig
        .send(Method::POST, "/ui/login", &nonce, &login(OPS, &csrf))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/ui/incidents/inc_1");
    let set = headers[SET_COOKIE].to_str().unwrap();
    assert!(
        set.ends_with("; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"),
        "{set}"
    );
    assert!(!set.contains(OPS));
    let session = set_cookie_of(&headers, SESSION_COOKIE).unwrap();

    let (status, _, html) = rig.send(Method::GET, "/", &session, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("token ops"));
    let csrf = csrf_of(&html);
    let form = format!("csrf={csrf}&name0=source&value0=db-1&duration=1h");
    let (status, _, _) = rig
        .send(
            Method::POST,
            "/ui/silences",
            &session,
            "name0=source&value0=db-1&duration=1h",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    let (status, _, _) = rig.send(Method::POST, "/ui/silences", &nonce, &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the nonce is no session");
    let (status, _, _) = rig
        .send(Method::POST, "/ui/silences", &session, &form)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(rig.silences.all()[0].created_by, "ops");
    let broad = format!("csrf={csrf}&name0=source&op0=%3D~&value0=.%2B&duration=1h");
    let (status, _, html) = rig
        .send(Method::POST, "/ui/silences", &session, &broad)
        .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "ops has broad_silence: {html}"
    );

    // A read-only token reads, and is refused changes.
    let (_, headers, html) = rig.send(Method::GET, "/ui/login", "", "").await;
    let (nonce, csrf) = (
        set_cookie_of(&headers, CSRF_COOKIE).unwrap(),
        csrf_of(&html),
    );
    let (_, headers, _) = rig
        .send(Method::POST, "/ui/login", &nonce, &login(READER, &csrf))
        .await;
    let reader = set_cookie_of(&headers, SESSION_COOKIE).unwrap();
    let (status, _, html) = rig.send(Method::GET, "/", &reader, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Changing silences needs the write scope"));
    assert!(!html.contains("action=\"/ui/silences\""));
    let form = format!(
        "csrf={}&name0=source&value0=db-2&duration=1h",
        csrf_of(&html)
    );
    let (status, _, html) = rig.send(Method::POST, "/ui/silences", &reader, &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("does not have the write scope"), "{html}");
    assert_eq!(rig.silences.all().len(), 2);

    // Logout ends the session.
    let (status, headers, _) = rig
        .send(
            Method::POST,
            "/ui/logout",
            &session,
            &format!(
                "csrf={}",
                csrf_of(&rig.send(Method::GET, "/", &session, "").await.2)
            ),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        set_cookie_of(&headers, SESSION_COOKIE).unwrap(),
        "sluice_session="
    );
    let (status, _, _) = rig.send(Method::GET, "/", &session, "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_login_came_over_https() {
    let rig = Rig::new(true);
    for (headers, secure) in [
        (&[("origin", "https://sluice.example")][..], true),
        (&[("x-forwarded-proto", "https")][..], true),
        (&[("origin", "http://sluice.example")][..], false),
        (&[][..], false),
    ] {
        let (_, set, html) = rig.send(Method::GET, "/ui/login", "", "").await;
        let nonce = set_cookie_of(&set, CSRF_COOKIE).unwrap();
        let form = format!("csrf={}&token={OPS}", csrf_of(&html));
        let (status, set, _) = rig
            .send_with(Method::POST, "/ui/login", &nonce, headers, &form)
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let cookie = set[SET_COOKIE].to_str().unwrap();
        assert_eq!(
            cookie.ends_with("; Secure"),
            secure,
            "{headers:?}: {cookie}"
        );
    }
}

#[test]
fn the_login_form_sends_only_to_the_pages_own_paths() {
    assert_eq!(
        safe_next("/ui/incidents/inc_3f0c-1.a"),
        "/ui/incidents/inc_3f0c-1.a"
    );
    for other in [
        "",
        "/",
        "//evil.example",
        "https://evil.example/",
        "/ui/incidents/",
        "/ui/incidents/a/../../x",
        "/ui/incidents/a\r\nSet-Cookie: x",
        "/ui/logout",
    ] {
        assert_eq!(safe_next(other), "/", "{other:?}");
    }
}

#[test]
fn forms_decode_or_say_which_field_is_bad() {
    assert_eq!(
        parse_form(b"a=1+2&b=%3C%26%3E&c&=x").unwrap(),
        [("a", "1 2"), ("b", "<&>"), ("c", ""), ("", "x")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(
        parse_form(b"ok=1&bad=%ZZ").unwrap_err(),
        "form field \"bad\" is not percent-encoded UTF-8"
    );
    assert_eq!(parse_form(b"\xff=1").unwrap_err(), "the form is not UTF-8");
    assert!(route("/ui/silences/a/b/expire").is_none());
    assert!(route("/ui/incidents/").is_none());
    assert!(serves("/") && serves("/ui/x") && !serves("/uix") && !serves("/api/v1/incidents"));
}

#[tokio::test]
async fn an_incident_page_acts_through_the_command_api_with_its_csrf_token() {
    let mut rig = Rig::new(false);
    let config = crate::config::Config::from_toml("", Vec::new()).unwrap();
    let sink = Arc::new(crate::publish::MemorySink::default());
    let (_shards, intake) =
        crate::pipeline::local::inline(&config.correlate, crate::clock::Clock::manual(NOW), sink);
    rig.intake = intake;
    let (_, headers, html) = rig.send(Method::GET, "/ui/incidents/inc_1", "", "").await;
    assert!(
        html.contains("action=\"/ui/incidents/inc_1/acknowledge\""),
        "{html}"
    );
    assert!(html.contains("action=\"/ui/incidents/inc_1/snooze\""));
    let cookie = set_cookie_of(&headers, CSRF_COOKIE).unwrap();
    let csrf = csrf_of(&html);
    let ack = "/ui/incidents/inc_1/acknowledge";
    let (status, _, _) = rig.send(Method::POST, ack, &cookie, "csrf=x").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a wrong CSRF token");
    let form = format!("csrf={csrf}&reason=on+it");
    let (status, headers, _) = rig.send(Method::POST, ack, &cookie, &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/ui/incidents/inc_1");
    // A snooze needs a duration the API takes; a bad one is a page naming it.
    let snooze = "/ui/incidents/inc_1/snooze";
    let bad = format!("csrf={csrf}&duration=forever");
    let (status, _, html) = rig.send(Method::POST, snooze, &cookie, &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("duration"), "{html}");
    let (status, _, _) = rig
        .send(
            Method::POST,
            "/ui/incidents/inc_9/resolve",
            &cookie,
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no such incident");
}

#[tokio::test]
async fn the_overview_lists_maintenance_windows_with_when_they_open() {
    let rig = Rig::new(false);
    let window =
        |name: &str, days: [bool; 7], start: u16, end: u16| crate::config::MaintenanceWindow {
            name: name.into(),
            matchers: vec![crate::matchers::Matcher::new("source", "=~", "db-.*").unwrap()],
            time_zone: jiff::tz::TimeZone::UTC,
            zone_name: "UTC".into(),
            days,
            start,
            end,
            comment: "<patching>".into(),
        };
    rig.health.maintenance.set(Arc::new(vec![
        // Every day, all day but a minute: open now (almost surely).
        window("always", [true; 7], 0, 23 * 60 + 59),
        window(
            "never-today",
            [false, false, false, false, false, false, true],
            60,
            61,
        ),
    ]));
    let (status, _, html) = rig.send(Method::GET, "/", "", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<h3>Maintenance windows (configuration)</h3>"),
        "{html}"
    );
    assert!(html.contains("<td>always</td>"));
    assert!(html.contains("mon, tue, wed, thu, fri, sat, sun 00:00-23:59 UTC"));
    assert!(html.contains("<td>sun 01:00-01:01 UTC</td>"));
    assert!(html.contains("&lt;patching&gt;"), "the comment is escaped");
    assert!(html.contains("opens <time"), "{html}");
}

#[tokio::test]
async fn the_overview_names_each_heartbeat_and_links_its_missed_incident() {
    let rig = Rig::new(false);
    let heartbeat = |name: &str| crate::config::HeartbeatConfig {
        name: name.into(),
        routing_key: "pay<b>ments".into(),
        interval: Duration::from_secs(600),
        interval_text: "10m".into(),
        events: None,
        consume: false,
        severity: crate::event::Severity::Critical,
    };
    rig.health.heartbeats.set(Arc::new(vec![
        heartbeat("k'1-not-missed"),
        heartbeat("cron"),
    ]));
    let mut missed: serde_json::Value = serde_json::from_slice(&hostile()).unwrap();
    missed["incident_id"] = json!("inc_2");
    missed["alerts"][0]["dedup_key"] = json!("missed:cron");
    rig.view
        .apply(&serde_json::to_vec(&missed).unwrap())
        .unwrap();
    let (status, _, html) = rig.send(Method::GET, "/", "", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<code>cron</code> on <code>pay&lt;b&gt;ments</code>, every 10m: <span class=\"badge critical\">critical</span> <a href=\"/ui/incidents/inc_2\">missed</a>"),
        "{html}"
    );
    assert!(html.contains("<code>k&#39;1-not-missed</code> on <code>pay&lt;b&gt;ments</code>, every 10m: no missed-heartbeat incident open"), "{html}");
}
