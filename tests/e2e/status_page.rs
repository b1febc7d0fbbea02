//! The status page through the real binary, read by headless Chromium (Debian's `chromium`,
//! `scripts/install-tools.sh` installs it): the rendered DOM after scripts ran
//! (`--dump-dom`), screenshots (`--screenshot`), and the silence forms driven with plain HTTP
//! requests carrying the cookie and CSRF token the served page holds.
//!
//! Without Chromium the browser parts are skipped with a message, unless
//! `SLUICEDEV_REQUIRE_CHROMIUM` is set (then they fail). `SLUICEDEV_CHROMIUM` names the binary;
//! `SLUICEDEV_SCREENSHOTS=<dir>` keeps the screenshots there (the README's come from
//! `SLUICEDEV_SCREENSHOTS=docs/screenshots`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice::send::{HttpClient, Reply};

use crate::harness::{post, Sluice, TempDir, WAIT};

const CONFIG: &str = r#"
[[correlate.rules]]
group_by = ["source"]
group_wait = "0s"
pause_transient = "0s"
"#;

const PWNED: &str = "<script>document.title='pwned'</script>";
const IMG: &str = "<img src=x onerror=\"document.title='img'\">";

/// Where Chromium is, or `None` (a skip) when it is not installed and not required.
fn chromium(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("SLUICEDEV_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
                .find(|p| p.is_file())
        });
    if found.is_none() {
        assert!(
            std::env::var_os("SLUICEDEV_REQUIRE_CHROMIUM").is_none(),
            "Chromium is not installed and SLUICEDEV_REQUIRE_CHROMIUM is set: run \
             scripts/install-tools.sh (Debian's chromium) or set SLUICEDEV_CHROMIUM"
        );
        eprintln!(
            "{test}: browser checks SKIPPED: Chromium is not installed (run \
             scripts/install-tools.sh; set SLUICEDEV_REQUIRE_CHROMIUM to make this a failure)"
        );
    }
    found
}

/// Headless Chromium with its own profile directory.
struct Browser {
    bin: PathBuf,
    dir: TempDir,
}

impl Browser {
    fn new(bin: PathBuf, tag: &str) -> Browser {
        Browser {
            bin,
            dir: TempDir::new(tag),
        }
    }

    /// Runs Chromium on `url` with `args`, bounded by [`WAIT`]; returns what it printed.
    fn run(&self, args: &[&str], url: &str) -> String {
        let out = self.dir.0.join("stdout");
        let mut child = Command::new(&self.bin)
            .args([
                "--headless=new",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--disable-extensions",
            ])
            .arg(format!(
                "--user-data-dir={}",
                self.dir.0.join("profile").display()
            ))
            .args(args)
            .arg(url)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium {args:?} {url} did not finish within {WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "chromium {args:?} {url}: {status}");
        std::fs::read_to_string(out).unwrap()
    }

    /// The DOM of `url` once it loaded and its scripts ran.
    fn dom(&self, url: &str) -> String {
        self.run(&["--dump-dom"], url)
    }

    /// A screenshot of `url`, 1280 pixels wide and `height` high, as `name`.png: in
    /// `$SLUICEDEV_SCREENSHOTS` when set, else in the browser's directory. Checked to be a PNG
    /// of some substance.
    fn screenshot(&self, url: &str, name: &str, height: u32) -> PathBuf {
        let dir = std::env::var_os("SLUICEDEV_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.dir.0.clone());
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&path);
        let arg = format!("--screenshot={}", path.display());
        let size = format!("--window-size=1280,{height}");
        self.run(&[&arg, &size, "--hide-scrollbars"], url);
        let png = std::fs::read(&path).unwrap_or_default();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            path.display()
        );
        assert!(png.len() > 10_000, "{} is nearly empty", path.display());
        path
    }
}

async fn request(
    url: &str,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut client = HttpClient::connect(url).await.unwrap();
    client
        .request_with(method, path, headers, body.to_string())
        .await
        .unwrap()
}

async fn get(url: &str, path: &str, cookie: &str) -> Reply {
    let headers: &[(&str, &str)] = match cookie {
        "" => &[],
        c => &[("cookie", c)],
    };
    request(url, http::Method::GET, path, headers, "").await
}

/// POSTs a form with `cookie`.
async fn form(url: &str, path: &str, cookie: &str, fields: &str) -> Reply {
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("cookie", cookie),
    ];
    request(url, http::Method::POST, path, &headers, fields).await
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

fn header<'r>(reply: &'r Reply, name: &str) -> &'r str {
    reply
        .headers
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or(""))
}

/// `name=value` of the reply's `Set-Cookie` for `name`, and the whole header.
fn set_cookie(reply: &Reply, name: &str) -> Option<(String, String)> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v.split(';').next().unwrap().to_string(), v.to_string()))
}

/// The value of the first `name="csrf" value="..."` in a page.
fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[start..].split('"').next().unwrap().to_string()
}

/// The text between `open` and the next `close` in `html`.
fn between<'h>(html: &'h str, open: &str, close: &str) -> Option<&'h str> {
    let start = html.find(open)? + open.len();
    html[start..].split(close).next()
}

async fn trigger(url: &str, event: Value) {
    let (status, answer) = post(url, "/v2/enqueue", &[], event.to_string()).await;
    assert_eq!(status, 202, "{answer}");
}

fn pd(key: &str, dedup: &str, source: &str, severity: &str, summary: &str) -> Value {
    json!({"routing_key": key, "event_action": "trigger", "dedup_key": dedup,
           "payload": {"summary": summary, "source": source, "severity": severity}})
}

/// Waits until the incidents view lists `total` open incidents.
async fn until_open(url: &str, total: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = get(url, "/api/v1/incidents?limit=1", "").await.json();
        if page["total"] == total {
            return;
        }
        assert!(Instant::now() < deadline, "{total} open incidents: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The page's security headers.
fn assert_guarded(reply: &Reply, what: &str) {
    assert_eq!(
        header(reply, "content-security-policy"),
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        "{what}"
    );
    assert_eq!(header(reply, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(reply, "referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header(reply, "cache-control"), "no-store", "{what}");
}

/// Posts the hostile event and a realistic mix: 16 open incidents, 10 of them on `edge` (a
/// storm). Returns the hostile incident's id.
async fn seed(url: &str) -> String {
    let mut hostile = pd("payments", "pg-1", "db-1", "critical", PWNED);
    hostile["links"] = json!([
        {"href": "javascript:alert(1)", "text": "<b>runbook</b>"},
        {"href": "https://grafana.example/d/pg?var=db-1&from=now-1h", "text": "dashboard"}
    ]);
    hostile["images"] = json!([{"src": "https://evil.example/track.png", "alt": IMG}]);
    hostile["payload"]["custom_details"] = json!({"note": IMG, "runbook": "javascript:alert(2)"});
    trigger(url, hostile).await;
    let lag = "Postgres replication lag 45s on db-2";
    trigger(url, pd("payments", "pg-2", "db-2", "critical", lag)).await;
    for i in 1..=3 {
        let summary = format!("p99 latency above 2s on web-{i}");
        trigger(
            url,
            pd(
                "checkout",
                &format!("lat-{i}"),
                &format!("web-{i}"),
                "error",
                &summary,
            ),
        )
        .await;
    }
    let heap = "Elasticsearch heap above 85% on es-1";
    trigger(url, pd("search", "heap", "es-1", "warning", heap)).await;
    for i in 1..=10 {
        let summary = format!("HTTP 5xx rate above 1% on edge-{i}");
        trigger(
            url,
            pd(
                "edge",
                &format!("5xx-{i}"),
                &format!("edge-{i}"),
                "warning",
                &summary,
            ),
        )
        .await;
    }
    until_open(url, 16).await;
    let page = get(url, "/api/v1/incidents?routing_key=payments&limit=10", "")
        .await
        .json();
    let hostile = page["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"] == PWNED)
        .unwrap_or_else(|| panic!("the hostile incident: {page}"));
    hostile["incident_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_page_shows_incidents_escaped_and_creates_and_expires_silences() {
    let sluice = Sluice::start("status-page", "embedded", CONFIG);
    let url = sluice.url.clone();
    let id = seed(&url).await;

    // Served HTML: the policy on every answer, the sender's markup as text.
    let overview = get(&url, "/", "").await;
    assert_eq!(overview.status, 200);
    assert_guarded(&overview, "/");
    let html = text(&overview);
    assert!(html.contains("Storm in progress"), "{html}");
    assert!(html.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
    assert!(!html.contains(PWNED));
    let incident_path = format!("/ui/incidents/{id}");
    let incident = get(&url, &incident_path, "").await;
    assert_eq!(incident.status, 200);
    assert_guarded(&incident, "incident page");
    for path in [
        "/ui/static/status.css",
        "/ui/static/status.js",
        "/ui/nothing",
    ] {
        assert_guarded(&get(&url, path, "").await, path);
    }

    // Silences: the form needs the nonce cookie and its CSRF token.
    let (cookie, _) = set_cookie(&overview, "sluice_csrf").expect("a nonce cookie");
    let csrf = csrf_of(&html);
    let fields = format!(
        "csrf={csrf}&name0=source&op0=%3D&value0=db-1&name1=&value1=&duration=2h\
         &comment=disk+swap+%3Cb%3Enow%3C%2Fb%3E"
    );
    let refused = form(
        &url,
        "/ui/silences",
        &cookie,
        "name0=source&value0=db-1&duration=2h",
    )
    .await;
    assert_eq!(refused.status, 403, "no CSRF token: {}", text(&refused));
    let created = form(&url, "/ui/silences", &cookie, &fields).await;
    assert_eq!(created.status, 303, "{}", text(&created));
    assert_eq!(header(&created, "location"), "/#silences");
    let html = text(&get(&url, "/", &cookie).await);
    let sil = between(&html, "action=\"/ui/silences/", "/expire\"")
        .expect("an expire button")
        .to_string();
    assert!(html.contains(&format!(
        "<tr id=\"{sil}\"><td><code>source=&quot;db-1&quot;</code>"
    )));
    assert!(html.contains("disk swap &lt;b&gt;now&lt;/b&gt;"), "{html}");
    assert!(html.contains("Silences (1 in force or pending)"));
    let listed = get(&url, &format!("/api/v1/silences/{sil}"), "")
        .await
        .json();
    assert_eq!(listed["status"], "active", "{listed}");
    assert_eq!(listed["created_by"], "anonymous");

    let browser = chromium("status_page").map(|bin| Browser::new(bin, "status-page-browser"));
    if let Some(b) = &browser {
        rendered(b, &url, &incident_path);
        b.screenshot(&format!("{url}/"), "status-overview", 900);
        b.screenshot(&format!("{url}{incident_path}"), "status-incident", 900);
        // The whole overview: the tables, the silence and its form, health.
        b.screenshot(&format!("{url}/"), "status-overview-full", 2200);
    }

    let expire = format!("/ui/silences/{sil}/expire");
    let refused = form(&url, &expire, &cookie, "csrf=AAAA").await;
    assert_eq!(refused.status, 403);
    let expired = form(&url, &expire, &cookie, &format!("csrf={csrf}")).await;
    assert_eq!(expired.status, 303, "{}", text(&expired));
    let html = text(&get(&url, "/", &cookie).await);
    assert!(!html.contains(&format!("<tr id=\"{sil}\"")), "{html}");
    assert!(html.contains("Silences (0 in force or pending)"));
    assert!(html.contains("1 expired in the last 24 hours"));
    let listed = get(&url, &format!("/api/v1/silences/{sil}"), "")
        .await
        .json();
    assert_eq!(listed["status"], "expired", "{listed}");
    let log = sluice.log_text();
    assert!(
        log.contains("silence created") && log.contains("silence expired"),
        "{log}"
    );
    if let Some(b) = &browser {
        let dom = b.dom(&format!("{url}/"));
        assert!(dom.contains("No silence in force."), "{dom}");
    }
}

/// What Chromium made of the pages: the refresh script ran (so scripts do run here), nothing
/// the sender wrote did.
fn rendered(b: &Browser, url: &str, incident_path: &str) {
    let dom = b.dom(&format!("{url}/"));
    assert!(
        dom.contains("data-refresh=\"on\""),
        "the page's own script ran: {dom}"
    );
    assert_eq!(
        between(&dom, "<title>", "</title>"),
        Some("Status · sluice"),
        "{dom}"
    );
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "only the page's own script: {dom}"
    );
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{dom}"
    );
    assert!(dom.contains("Storm in progress"));
    assert!(dom.contains("HTTP 5xx rate above 1% on edge-10"));

    let dom = b.dom(&format!("{url}{incident_path}"));
    assert!(dom.contains("data-refresh=\"on\""), "{dom}");
    assert_eq!(
        between(&dom, "<title>", "</title>"),
        Some("Incident &lt;script&gt;document.title='pwned'&lt;/script&gt; · sluice"),
        "the title is the page's, not the sender's script's: {dom}"
    );
    assert_eq!(dom.matches("<script").count(), 1, "{dom}");
    assert!(
        !dom.contains("<img"),
        "no element from the sender's markup: {dom}"
    );
    assert!(!dom.contains("<b>"), "{dom}");
    assert!(!dom.contains("href=\"javascript"), "{dom}");
    assert!(
        dom.contains("<span class=\"nolink\">&lt;b&gt;runbook&lt;/b&gt; <code>javascript:alert(1)</code></span>"),
        "the javascript: link is text: {dom}"
    );
    assert!(
        dom.contains("<a href=\"https://grafana.example/d/pg?var=db-1&amp;from=now-1h\" rel=\"noopener noreferrer nofollow\">dashboard</a>"),
        "{dom}"
    );
    assert!(
        dom.contains("&lt;img src=x onerror=\\\"document.title='img'\\\"&gt;"),
        "{dom}"
    );
    assert!(
        !dom.contains("evil.example"),
        "senders' image URLs are not used: {dom}"
    );
}

const OPS: &str = "ops-token-5f0c2a9e81d4c3b7";
const READER: &str = "reader-token-77aa01c9e3d2";

#[tokio::test]
async fn with_tokens_the_page_needs_a_login_and_its_forms_a_csrf_token() {
    let config = format!(
        "{CONFIG}\n[[auth.tokens]]\nname = \"ops\"\ntoken = \"{OPS}\"\nscopes = [\"read\", \
         \"write\"]\n[[auth.tokens]]\nname = \"reader\"\ntoken = \"{READER}\"\nscopes = \
         [\"read\"]\n"
    );
    let sluice = Sluice::start("status-page-auth", "embedded", &config);
    let url = sluice.url.clone();

    let anonymous = get(&url, "/", "").await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(header(&anonymous, "location"), "/ui/login?next=/");
    assert_guarded(&anonymous, "redirect");
    let refused = form(
        &url,
        "/ui/silences",
        "",
        "name0=source&value0=x&duration=1h",
    )
    .await;
    assert_eq!(refused.status, 403, "a form without a session");

    let login_page = get(&url, "/ui/login?next=/", "").await;
    assert_eq!(login_page.status, 200);
    assert_guarded(&login_page, "login");
    let (nonce, _) = set_cookie(&login_page, "sluice_csrf").expect("a nonce cookie");
    let csrf = csrf_of(&text(&login_page));
    let login = |token: &str, csrf: &str| format!("csrf={csrf}&next=%2F&token={token}");

    let wrong = form(
        &url,
        "/ui/login",
        &nonce,
        &login("not-a-token-0123456789", &csrf),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(set_cookie(&wrong, "sluice_session").is_none());
    assert!(text(&wrong).contains("that token is not one of auth.tokens"));
    let forged = form(&url, "/ui/login", &nonce, &login(OPS, "")).await;
    assert_eq!(forged.status, 403, "a login without the CSRF token");
    assert!(set_cookie(&forged, "sluice_session").is_none());

    let ok = form(&url, "/ui/login", &nonce, &login(OPS, &csrf)).await;
    assert_eq!(ok.status, 303, "{}", text(&ok));
    assert_eq!(header(&ok, "location"), "/");
    let (session, whole) = set_cookie(&ok, "sluice_session").expect("a session cookie");
    assert_eq!(
        whole,
        format!("{session}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200")
    );
    assert!(!whole.contains(OPS), "the cookie is not the token");
    assert_eq!(
        session.len(),
        "sluice_session=".len() + 43,
        "32 random bytes, base64url"
    );

    let page = get(&url, "/", &session).await;
    assert_eq!(page.status, 200);
    let html = text(&page);
    assert!(html.contains("token ops"));
    let csrf = csrf_of(&html);
    let fields = format!(
        "csrf={csrf}&name0=routing_key&value0=payments&name1=source&value1=db-1&duration=30m"
    );
    let no_csrf = form(
        &url,
        "/ui/silences",
        &session,
        "name0=source&value0=db-1&duration=30m",
    )
    .await;
    assert_eq!(no_csrf.status, 403);
    let with_nonce = form(&url, "/ui/silences", &nonce, &fields).await;
    assert_eq!(with_nonce.status, 403, "the login nonce is no session");
    let created = form(&url, "/ui/silences", &session, &fields).await;
    assert_eq!(created.status, 303, "{}", text(&created));
    let silences = get(&url, "/api/v1/silences", "").await;
    assert_eq!(silences.status, 401, "the API still needs its bearer token");
    let log = sluice.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("silence created") && l.contains("token=\"ops\"")),
        "the change is logged with the token's name: {log}"
    );

    // A read-only token reads the page and is refused changes.
    let login_page = get(&url, "/ui/login", "").await;
    let (nonce, _) = set_cookie(&login_page, "sluice_csrf").unwrap();
    let csrf = csrf_of(&text(&login_page));
    let reader = form(&url, "/ui/login", &nonce, &login(READER, &csrf)).await;
    let (reader, _) = set_cookie(&reader, "sluice_session").expect("a reader session");
    let html = text(&get(&url, "/", &reader).await);
    assert!(html.contains("Changing silences needs the write scope"));
    let fields = format!(
        "csrf={}&name0=source&value0=db-2&duration=30m",
        csrf_of(&html)
    );
    let refused = form(&url, "/ui/silences", &reader, &fields).await;
    assert_eq!(refused.status, 403);
    assert!(text(&refused).contains("does not have the write scope"));

    // Logging out ends the session.
    let html = text(&get(&url, "/", &session).await);
    let out = form(
        &url,
        "/ui/logout",
        &session,
        &format!("csrf={}", csrf_of(&html)),
    )
    .await;
    assert_eq!(out.status, 303);
    assert_eq!(get(&url, "/", &session).await.status, 303);
    let log = sluice.log_text();
    assert!(
        !log.contains(OPS) && !log.contains(READER),
        "no token in the log"
    );

    if let Some(bin) = chromium("status_page_auth") {
        let b = Browser::new(bin, "status-page-auth-browser");
        let dom = b.dom(&format!("{url}/"));
        assert!(
            dom.contains("name=\"token\""),
            "Chromium follows the redirect to the login form: {dom}"
        );
        b.screenshot(&format!("{url}/ui/login"), "status-login", 900);
    }
}
