//! The status page's overview at `/`, as HTML: open incidents by severity, a storm in
//! progress, compression by integration, the noisiest routing keys and sources, silences with
//! their expiry and the forms that change them, the maintenance windows, pipeline health. Every string from a sender or
//! an operator goes through `html::esc`.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

use serde_json::Value;

use crate::correlate::silence::{Silence, SilenceState};
use crate::ingest::admin::Health;
use crate::time::UnixMillis;
use crate::view::{Filter, View};

use super::html::{self, badge, csrf_input, esc, field, when};

/// A storm: at least this many incidents opened within [`STORM_WINDOW`] ...
pub const STORM_INCIDENTS: usize = 10;
pub const STORM_WINDOW: Duration = Duration::from_secs(5 * 60);
/// ... or one open incident holding at least this many alerts.
pub const STORM_ALERTS: u64 = 50;
/// The window of the compression and noisiest-sources tables.
pub const STATS_WINDOW: Duration = Duration::from_secs(3600);
/// Rows of each noisiest table.
const NOISIEST: usize = 10;
/// Open incidents listed (the view's largest page).
const LISTED: usize = crate::view::query::MAX_LIMIT;
/// Matcher rows of the create-silence form.
pub const MATCHER_ROWS: usize = 3;

/// What the overview shows and who looks at it.
pub struct Overview<'a> {
    pub view: Option<&'a View>,
    pub silences: Vec<Silence>,
    pub health: &'a Health,
    pub now: UnixMillis,
    pub csrf: &'a str,
    /// Whether the caller has the write scope (forms shown).
    pub can_write: bool,
    /// The caller's token name (`anonymous` without tokens).
    pub user: &'a str,
}

const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// The body of the overview page.
pub fn overview(o: &Overview<'_>) -> String {
    let mut out = String::new();
    let Some(view) = o.view else {
        out.push_str(
            "<section><h2>Incidents</h2><p class=\"empty\">This instance keeps no incidents \
             view (it has no ingest role).</p></section>",
        );
        out.push_str(&silences(o));
        out.push_str(&health(o.health, None));
        return out;
    };
    let open = view.list(&Filter {
        limit: LISTED,
        ..Filter::default()
    });
    out.push_str(&storm(view, &open.incidents, o.now));
    out.push_str(&format!(
        "<section id=\"incidents\"><h2>Open incidents ({})</h2>",
        open.total
    ));
    if open.total == 0 {
        out.push_str("<p class=\"empty\">No open incident.</p>");
    }
    if open.total > open.incidents.len() {
        let _ = write!(
            out,
            "<p class=\"muted\">The {} newest are listed; <code>GET /api/v1/incidents</code> \
             pages through all.</p>",
            open.incidents.len()
        );
    }
    for severity in SEVERITIES {
        let rows: Vec<_> = open
            .incidents
            .iter()
            .filter(|i| i.severity == severity)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "<h3>{} {}</h3><table class=\"incidents\"><tr><th>title</th><th>routing key</th>\
             <th>status</th><th class=\"num\">alerts open / all</th><th>opened</th></tr>",
            badge(severity),
            rows.len()
        );
        for i in rows {
            let opened = html::at(&i.opened_at);
            let _ = write!(
                out,
                "<tr><td><a href=\"/ui/incidents/{}\">{}</a></td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{} / {}</td><td>{}</td></tr>",
                esc(&i.incident_id),
                esc(or_untitled(&i.title)),
                esc(&i.routing_key),
                badge(&i.status),
                i.open_alert_count,
                i.alert_count,
                opened.map_or_else(String::new, |t| when(t, o.now)),
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section><div class=\"grid\">");
    out.push_str(&compression(view, o.now));
    out.push_str(&noisiest(view, o.now));
    out.push_str("</div>");
    out.push_str(&silences(o));
    out.push_str(&health(o.health, Some(view)));
    out
}

/// A title, or `(no title)` for a blank one.
pub(super) fn or_untitled(title: &str) -> &str {
    match title.trim() {
        "" => "(no title)",
        _ => title,
    }
}

/// "Storm in progress": [`STORM_INCIDENTS`] or more incidents opened in the last
/// [`STORM_WINDOW`], or an open incident with [`STORM_ALERTS`] or more alerts.
fn storm(view: &View, open: &[crate::view::query::Summary], now: UnixMillis) -> String {
    let since = UnixMillis(now.0.saturating_sub(STORM_WINDOW.as_millis() as u64));
    let recent = view
        .list(&Filter {
            statuses: vec!["triggered".into(), "acknowledged".into(), "resolved".into()],
            since: Some(since),
            limit: 1,
            ..Filter::default()
        })
        .total;
    let mut big: Vec<_> = open
        .iter()
        .filter(|i| i.alert_count.as_u64().unwrap_or(0) >= STORM_ALERTS)
        .collect();
    big.sort_by_key(|i| std::cmp::Reverse(i.alert_count.as_u64().unwrap_or(0)));
    let minutes = STORM_WINDOW.as_secs() / 60;
    let stormy = recent >= STORM_INCIDENTS || !big.is_empty();
    let mut out = match stormy {
        true => "<section id=\"storm\" class=\"storm\"><h2>Storm in progress</h2>".to_string(),
        false => "<section id=\"storm\" class=\"calm\"><h2>No storm</h2>".to_string(),
    };
    let _ = write!(
        out,
        "<p>{recent} incident{} opened in the last {minutes} minutes (a storm: \
         {STORM_INCIDENTS} or more, or one incident with {STORM_ALERTS} or more alerts).</p>",
        if recent == 1 { "" } else { "s" }
    );
    if !big.is_empty() {
        out.push_str("<ul>");
        for i in big.iter().take(NOISIEST) {
            let _ = write!(
                out,
                "<li><a href=\"/ui/incidents/{}\">{}</a> ({}) holds {} alerts</li>",
                esc(&i.incident_id),
                esc(or_untitled(&i.title)),
                esc(&i.routing_key),
                i.alert_count
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    out
}

fn number(row: &Value, key: &str) -> String {
    match &row[key] {
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// Events, alerts and incidents per integration over [`STATS_WINDOW`].
fn compression(view: &View, now: UnixMillis) -> String {
    let stats = view.stats(STATS_WINDOW, now);
    let mut rows = stats.integrations;
    rows.sort_by_key(|r| std::cmp::Reverse(r["events"].as_u64().unwrap_or(0)));
    let mut out =
        String::from("<section id=\"compression\"><h2>Compression by integration (last hour)</h2>");
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">No incident opened in the last hour.</p></section>");
        return out;
    }
    out.push_str(
        "<table><tr><th>integration</th><th class=\"num\">events</th><th class=\"num\">alerts\
         </th><th class=\"num\">incidents</th><th class=\"num\">events per incident</th></tr>",
    );
    for r in &rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            field(r, "integration"),
            number(r, "events"),
            number(r, "alerts"),
            number(r, "incidents"),
            number(r, "events_per_incident"),
        );
    }
    out.push_str("</table></section>");
    out
}

/// Events and alerts per alert `source` among the incidents opened since `from`, most events
/// first (counted from the alerts each incident's latest message lists).
fn sources(view: &View, from: UnixMillis) -> Vec<(String, u64, u64)> {
    let mut tally: HashMap<String, (u64, u64)> = HashMap::new();
    view.with_entries(|all| {
        for e in all.values().filter(|e| e.opened >= from) {
            for a in e.alerts() {
                let source = a["source"].as_str().unwrap_or_default().to_string();
                let t = tally.entry(source).or_default();
                t.0 += a["event_count"].as_u64().unwrap_or(0);
                t.1 += 1;
            }
        }
    });
    let mut rows: Vec<_> = tally.into_iter().map(|(s, (e, a))| (s, e, a)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(NOISIEST);
    rows
}

/// The routing keys and alert sources with the most events over [`STATS_WINDOW`].
fn noisiest(view: &View, now: UnixMillis) -> String {
    let mut keys = view.stats(STATS_WINDOW, now).routing_keys;
    keys.sort_by_key(|r| std::cmp::Reverse(r["events"].as_u64().unwrap_or(0)));
    keys.truncate(NOISIEST);
    let mut out = String::from("<section id=\"noisiest\"><h2>Noisiest sources (last hour)</h2>");
    if keys.is_empty() {
        out.push_str("<p class=\"empty\">No incident opened in the last hour.</p></section>");
        return out;
    }
    out.push_str(
        "<table><tr><th>routing key</th><th class=\"num\">events</th><th class=\"num\">alerts\
         </th><th class=\"num\">incidents (open)</th></tr>",
    );
    for r in &keys {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{} ({})</td></tr>",
            field(r, "routing_key"),
            number(r, "events"),
            number(r, "alerts"),
            number(r, "incidents"),
            number(r, "open"),
        );
    }
    out.push_str(
        "</table><h3>Alert sources</h3><table><tr><th>source</th><th class=\"num\">events</th>\
         <th class=\"num\">alerts</th></tr>",
    );
    let from = UnixMillis(now.0.saturating_sub(STATS_WINDOW.as_millis() as u64));
    for (source, events, alerts) in sources(view, from) {
        let source = match source.as_str() {
            "" => "<span class=\"muted\">(none)</span>".to_string(),
            s => esc(s).into_owned(),
        };
        let _ = write!(
            out,
            "<tr><td>{source}</td><td class=\"num\">{events}</td><td class=\"num\">{alerts}</td></tr>"
        );
    }
    out.push_str("</table></section>");
    out
}

/// Pending and active silences, with their expire buttons and the create form.
/// The `[[maintenance]]` windows: when each opens, and whether it is open now.
fn maintenance(o: &Overview<'_>) -> String {
    let windows = o.health.maintenance.get();
    if windows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h3>Maintenance windows (configuration)</h3><table class=\"silences\"><tr>\
         <th>name</th><th>matchers</th><th>when</th><th>state</th><th>comment</th></tr>",
    );
    let hhmm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    for w in windows.iter() {
        let days: Vec<&str> = crate::config::MAINTENANCE_DAYS
            .iter()
            .zip(w.days)
            .filter(|(_, on)| *on)
            .map(|(d, _)| *d)
            .collect();
        let matchers: Vec<String> = w
            .matchers
            .iter()
            .map(|m| format!("<code>{}</code>", esc(&m.to_string())))
            .collect();
        let next = w.next_change(o.now);
        let state = match (w.open_at(o.now), next) {
            (true, Some(at)) => format!("{} until {}", badge("active"), when(at, o.now)),
            (true, None) => badge("active"),
            (false, Some(at)) => format!("opens {}", when(at, o.now)),
            (false, None) => "never opens".into(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{} {}-{} {}</td><td>{state}</td><td>{}</td></tr>",
            esc(&w.name),
            match matchers.is_empty() {
                true => "every alert".to_string(),
                false => matchers.join(" "),
            },
            days.join(", "),
            hhmm(w.start),
            hhmm(w.end),
            esc(&w.zone_name),
            esc(&w.comment),
        );
    }
    out.push_str("</table>");
    out
}

fn silences(o: &Overview<'_>) -> String {
    let mut live: Vec<&Silence> = o
        .silences
        .iter()
        .filter(|s| s.state(o.now) != SilenceState::Expired)
        .collect();
    live.sort_by_key(|s| (s.ends_at, s.id.clone()));
    let expired = o.silences.len() - live.len();
    let mut out = format!(
        "<section id=\"silences\"><h2>Silences ({} in force or pending)</h2>",
        live.len()
    );
    if live.is_empty() {
        out.push_str("<p class=\"empty\">No silence in force.</p>");
    } else {
        out.push_str(
            "<table class=\"silences\"><tr><th>matchers</th><th>state</th><th>starts</th>\
             <th>expires</th><th>created by</th><th>comment</th><th></th></tr>",
        );
        for s in live {
            let matchers: Vec<String> = s
                .matchers
                .iter()
                .map(|m| format!("<code>{}</code>", esc(&m.to_string())))
                .collect();
            let state = match s.state(o.now) {
                SilenceState::Pending => "pending",
                _ => "active",
            };
            let expire = match o.can_write {
                true => format!(
                    "<form class=\"inline\" method=\"post\" action=\"/ui/silences/{}/expire\">{}\
                     <button type=\"submit\">Expire</button></form>",
                    esc(&s.id),
                    csrf_input(o.csrf)
                ),
                false => String::new(),
            };
            let _ = write!(
                out,
                "<tr id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{expire}</td></tr>",
                esc(&s.id),
                matchers.join(" "),
                badge(state),
                when(s.starts_at, o.now),
                when(s.ends_at, o.now),
                esc(&s.created_by),
                esc(&s.comment),
            );
        }
        out.push_str("</table>");
    }
    if expired > 0 {
        let _ = write!(
            out,
            "<p class=\"muted\">{expired} expired in the last 24 hours \
             (<code>GET /api/v1/silences</code> lists them).</p>"
        );
    }
    out.push_str(&maintenance(o));
    if o.can_write {
        out.push_str(&create_form(o.csrf, o.user));
    } else {
        out.push_str("<p class=\"muted\">Changing silences needs the write scope.</p>");
    }
    out.push_str("</section>");
    out
}

fn create_form(csrf: &str, user: &str) -> String {
    let mut rows = String::new();
    for i in 0..MATCHER_ROWS {
        let required = if i == 0 { " required" } else { "" };
        let _ = write!(
            rows,
            "<div class=\"matcher\"><input type=\"text\" name=\"name{i}\" placeholder=\"name \
             (source, routing_key, labels.team, ...)\" list=\"matcher-names\"{required}>\
             <select name=\"op{i}\"><option>=</option><option>!=</option><option>=~</option>\
             <option>!~</option></select><input type=\"text\" name=\"value{i}\" \
             placeholder=\"value\"></div>"
        );
    }
    let names: String = [
        "routing_key",
        "source",
        "severity",
        "class",
        "component",
        "group",
        "integration",
        "summary",
        "dedup_key",
        "labels.",
        "entity.host",
    ]
    .iter()
    .map(|n| format!("<option value=\"{n}\">"))
    .collect();
    format!(
        "<h3>New silence</h3><form class=\"edit\" method=\"post\" action=\"/ui/silences\">{}\
         <datalist id=\"matcher-names\">{names}</datalist>{rows}\
         <label>Duration <input type=\"text\" name=\"duration\" value=\"2h\" size=\"6\" \
         required> (<code>30m</code>, <code>2h</code>, <code>1d</code>; at most \
         <code>auth.max_silence</code>)</label>\
         <label>Comment <input type=\"text\" name=\"comment\" size=\"60\"></label>\
         <label>Created by <input type=\"text\" name=\"created_by\" placeholder=\"{}\"> \
         (default: the token's name)</label>\
         <div><button type=\"submit\">Create silence</button></div></form>",
        csrf_input(csrf),
        esc(user)
    )
}

/// Readiness and why not, Kafka, the incidents view's size, the rules fingerprint.
/// The `[[heartbeats]]`, each with its missed-heartbeat incident when one is open (as the
/// incidents view has it).
fn heartbeats(health: &Health, view: Option<&View>) -> String {
    let all = health.heartbeats.get();
    if all.is_empty() {
        return String::new();
    }
    let mut out = String::from("<dt>heartbeats</dt><dd><ul class=\"plain\">");
    for h in all.iter() {
        let key = format!("missed:{}", h.name);
        let missed = view.and_then(|v| {
            v.with_entries(|entries| {
                entries.iter().find_map(|(id, e)| {
                    let open = e.resolved.is_none() && e.str("routing_key") == h.routing_key;
                    if !open {
                        return None;
                    }
                    let listed = e
                        .alerts()
                        .iter()
                        .any(|a| a["dedup_key"] == key.as_str() && a["status"] != "resolved");
                    listed.then(|| id.clone())
                })
            })
        });
        let state = match missed {
            Some(id) => format!(
                "{} <a href=\"/ui/incidents/{}\">missed</a>",
                badge("critical"),
                esc(&id)
            ),
            None => "no missed-heartbeat incident open".into(),
        };
        let _ = write!(
            out,
            "<li><code>{}</code> on <code>{}</code>, every {}: {state}</li>",
            esc(&h.name),
            esc(&h.routing_key),
            esc(&h.interval_text)
        );
    }
    out.push_str("</ul></dd>");
    out
}

fn health(health: &Health, view: Option<&View>) -> String {
    let readiness = match health.not_ready() {
        None => "<span class=\"ready\">ready</span>".to_string(),
        Some(why) => format!("<span class=\"not-ready\">not ready: {}</span>", esc(why)),
    };
    let kafka = match health.sink.as_ref() {
        Some(s) if s.ready() => "<span class=\"ready\">connected</span>".to_string(),
        Some(_) => "<span class=\"not-ready\">unreachable</span>".to_string(),
        None => "<span class=\"muted\">no sink</span>".to_string(),
    };
    let failures = health.sink.as_ref().map_or(0, |s| s.failures());
    let mut out = format!(
        "<section id=\"health\"><h2>Pipeline health</h2><dl class=\"facts\">\
         <dt>readiness</dt><dd>{readiness}</dd><dt>kafka</dt><dd>{kafka}</dd>\
         <dt>delivery failures</dt><dd>{failures}</dd>"
    );
    if let Some(view) = view {
        let (open, resolved) = view.counts();
        let _ = write!(
            out,
            "<dt>incidents view</dt><dd>{open} open, {resolved} resolved kept</dd>"
        );
    }
    out.push_str(&heartbeats(health, view));
    let rules = health.rules.get();
    if !rules.is_empty() {
        let _ = write!(out, "<dt>rules</dt><dd><code>{}</code></dd>", esc(&rules));
    }
    out.push_str(
        "</dl><p class=\"muted\">Details: <a href=\"/readyz\">/readyz</a>, \
         <a href=\"/metrics\">/metrics</a>.</p></section>",
    );
    out
}
