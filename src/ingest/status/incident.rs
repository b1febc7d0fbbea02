//! One incident's page at `/ui/incidents/<id>`, as HTML: what the incidents view keeps of it
//! (its latest message and its timeline): severity, status, times, group key, the last
//! operator command, its links, why it was grouped or held (`reasons`), its alerts with their
//! details, the changes that preceded it and its timeline. Every string from a sender goes
//! through `html::esc`, and links through `html::link` (only http(s) URLs are clickable).

use std::fmt::Write;

use serde_json::Value;

use http::StatusCode;

use crate::ingest::auth::Principal;
use crate::ingest::incidents_api::commands;
use crate::time::UnixMillis;
use crate::view::{Entry, Step};

use super::html::{self, badge, esc, field, when};
use super::overview::or_untitled;

/// The body of one incident's page.
/// What the page's action forms need: the CSRF token, and whether the caller may act.
pub struct Actions<'a> {
    pub csrf: &'a str,
    pub can_write: bool,
}

pub fn page(e: &Entry, now: UnixMillis, actions: &Actions<'_>) -> String {
    let m = &e.message();
    let mut out = format!(
        "<h1>{} {}</h1><section id=\"facts\"><dl class=\"facts\">\
         <dt>incident</dt><dd><code>{}</code></dd><dt>routing key</dt><dd>{}</dd>\
         <dt>status</dt><dd>{} (latest message: {}, seq {})</dd>",
        badge(m["severity"].as_str().unwrap_or_default()),
        esc(or_untitled(e.str("title"))),
        field(m, "incident_id"),
        field(m, "routing_key"),
        badge(e.str("status")),
        field(m, "type"),
        e.seq
    );
    for (label, key) in [
        ("opened", "opened_at"),
        ("updated", "updated_at"),
        ("resolved", "resolved_at"),
        ("snoozed until", "snoozed_until"),
    ] {
        if let Some(t) = html::time(m, key) {
            let _ = write!(out, "<dt>{label}</dt><dd>{}</dd>", when(t, now));
        }
    }
    let _ = write!(
        out,
        "<dt>alerts</dt><dd>{} open of {} ({} events)</dd>",
        m["open_alert_count"], m["alert_count"], m["event_count"]
    );
    if let Some(group) = m["group_key"].as_object().filter(|g| !g.is_empty()) {
        let parts: Vec<String> = group
            .iter()
            .map(|(k, v)| format!("<code>{}={}</code>", esc(k), esc(v.as_str().unwrap_or(""))))
            .collect();
        let _ = write!(out, "<dt>grouped by</dt><dd>{}</dd>", parts.join(" "));
    }
    if let Some(c) = m["command"].as_object() {
        let text = |k: &str| esc(c.get(k).and_then(Value::as_str).unwrap_or("")).into_owned();
        let _ = write!(
            out,
            "<dt>last command</dt><dd>{} by {} {}</dd>",
            text("action"),
            text("by"),
            text("reason")
        );
    }
    let links: Vec<String> = m["links"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| html::link(l["href"].as_str().unwrap_or(""), l["text"].as_str()))
        .collect();
    if !links.is_empty() {
        let _ = write!(out, "<dt>links</dt><dd>{}</dd>", links.join("<br>"));
    }
    out.push_str("</dl></section>");
    if actions.can_write && e.str("status") != "resolved" {
        out.push_str(&action_forms(e, actions.csrf));
    }
    out.push_str(&reasons(&m["reasons"], now));
    out.push_str(&alerts(m, now));
    out.push_str(&changes(m, now));
    out.push_str(&timeline(&e.timeline));
    out
}

/// Why the incident was grouped, held, inhibited or silenced.
fn reasons(r: &Value, now: UnixMillis) -> String {
    let Some(obj) = r.as_object() else {
        return String::new();
    };
    let mut out = String::from("<section id=\"reasons\"><h2>Reasons</h2><dl class=\"facts\">");
    for (k, v) in obj {
        let shown = match v {
            Value::String(s) => esc(s).into_owned(),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| format!("{}: {}", esc(k), esc(&v.to_string())))
                .collect::<Vec<_>>()
                .join(", "),
            other => esc(&other.to_string()).into_owned(),
        };
        let shown = match html::at(v) {
            Some(t) if k.ends_with("_until") => format!("{shown} ({})", when(t, now)),
            _ => shown,
        };
        let _ = write!(out, "<dt>{}</dt><dd>{shown}</dd>", esc(k));
    }
    out.push_str("</dl></section>");
    out
}

/// The alerts the latest message lists, with their details as escaped JSON.
fn alerts(m: &Value, now: UnixMillis) -> String {
    let list = m["alerts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = format!("<section id=\"alerts\"><h2>Alerts ({})</h2>", list.len());
    if let Some(n) = m["alerts_truncated"].as_u64().filter(|n| *n > 0) {
        let _ = write!(
            out,
            "<p class=\"muted\">{n} more not listed in the message.</p>"
        );
    }
    out.push_str(
        "<table class=\"alerts\"><tr><th>summary</th><th>severity</th><th>status</th>\
         <th>source</th><th>integration</th><th class=\"num\">events</th><th>first seen</th>\
         <th>last seen</th></tr>",
    );
    for a in list {
        let mut notes = Vec::new();
        if let Some(g) = a["grouped_by"].as_str() {
            notes.push(format!("joined by <code>{}</code>", esc(g)));
        }
        if let Some(s) = a["suppressed"].as_str() {
            notes.push(esc(s).into_owned());
        }
        let notes = match notes.is_empty() {
            true => String::new(),
            false => format!("<div class=\"muted\">{}</div>", notes.join(", ")),
        };
        let seen = |key: &str| html::time(a, key).map_or_else(String::new, |t| when(t, now));
        let _ = write!(
            out,
            "<tr><td>{}{notes}<div class=\"muted\">dedup key <code>{}</code></div></td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            field(a, "summary"),
            field(a, "dedup_key"),
            badge(a["severity"].as_str().unwrap_or_default()),
            badge(a["status"].as_str().unwrap_or_default()),
            field(a, "source"),
            field(a, "integration"),
            a["event_count"],
            seen("first_seen"),
            seen("last_seen"),
        );
        if !a["details"].is_null() {
            let pretty = serde_json::to_string_pretty(&a["details"]).unwrap_or_default();
            let _ = write!(
                out,
                "<tr class=\"details\"><td colspan=\"8\"><pre>{}</pre></td></tr>",
                esc(&pretty)
            );
        }
    }
    out.push_str("</table></section>");
    out
}

/// Change events that preceded the incident on what its alerts name.
fn changes(m: &Value, now: UnixMillis) -> String {
    let Some(list) = m["changes"].as_array().filter(|l| !l.is_empty()) else {
        return String::new();
    };
    let mut out = String::from(
        "<section id=\"changes\"><h2>Changes before it</h2><table><tr><th>summary</th>\
         <th>source</th><th>matched</th><th>at</th></tr>",
    );
    for c in list {
        let at = html::time(c, "at").map_or_else(String::new, |t| when(t, now));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{at}</td></tr>",
            field(c, "summary"),
            field(c, "source"),
            field(c, "matched"),
        );
    }
    out.push_str("</table></section>");
    out
}

/// Each message of the incident: type, seq, time, status, severity, counts.
fn timeline(steps: &[Step]) -> String {
    let mut out = String::from(
        "<section id=\"timeline\"><h2>Timeline</h2><table><tr><th>seq</th><th>message</th>\
         <th>at</th><th>status</th><th>severity</th><th class=\"num\">alerts open / all</th>\
         </tr>",
    );
    for s in steps {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><time>{}</time></td><td>{}</td><td>{}</td>\
             <td class=\"num\">{} / {}</td></tr>",
            s.seq,
            esc(&s.kind),
            esc(&s.at),
            badge(&s.status),
            badge(&s.severity),
            s.open_alert_count,
            s.alert_count
        );
    }
    out.push_str("</table></section>");
    out
}

/// Acknowledge, snooze and resolve: each a form posting to `/ui/incidents/<id>/<action>`
/// (see `incidents_api::commands`), with a reason.
fn action_forms(e: &Entry, csrf: &str) -> String {
    let id = esc(e.str("incident_id")).into_owned();
    let form = |action: &str, label: &str, extra: &str| {
        format!(
            "<form class=\"inline\" method=\"post\" action=\"/ui/incidents/{id}/{action}\">{}\
             <input name=\"reason\" placeholder=\"reason (optional)\" maxlength=\"1024\">{extra}\
             <button type=\"submit\">{label}</button></form>",
            html::csrf_input(csrf)
        )
    };
    let durations = "<select name=\"duration\"><option>30m</option><option>1h</option>\
                     <option>4h</option><option>1d</option></select>";
    format!(
        "<section id=\"actions\"><h2>Act</h2>{}{}{}</section>",
        form("acknowledge", "Acknowledge", ""),
        form("snooze", "Snooze", durations),
        form("resolve", "Resolve", "")
    )
}

/// `/ui/incidents/<id>/<action>` for one of the three actions: the id and the action.
pub(super) fn command_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(super::INCIDENT)?;
    let (id, action) = rest.split_once('/')?;
    let known = matches!(action, "acknowledge" | "snooze" | "resolve");
    (known && !id.is_empty() && !id.contains('/')).then(|| (id.to_string(), action.to_string()))
}

/// `POST /ui/incidents/<id>/<action>` (CSRF already checked): the form's `reason` (and
/// `duration` to snooze) handed to the incidents API's command, which checks what `who` may
/// do; back to the incident's page once accepted.
pub(super) async fn command(
    form: &[(String, String)],
    (id, action): (&str, &str),
    who: &Principal,
    cx: &super::Context<'_>,
) -> super::Answer {
    let back = format!("{}{id}", super::INCIDENT);
    let Some(view) = cx.view else {
        let msg = "this instance keeps no incidents view";
        return super::page(
            StatusCode::NOT_FOUND,
            html::problem("Not found", msg, &[], "/"),
        );
    };
    let mut body = serde_json::Map::new();
    let reason = super::value(form, "reason").trim();
    if !reason.is_empty() {
        body.insert("reason".into(), reason.into());
    }
    if action == "snooze" {
        body.insert("duration".into(), super::value(form, "duration").into());
    }
    let body = serde_json::to_vec(&body).expect("a map of strings serializes");
    let resp = commands::post(view, cx.intake, who, (id, action), &body, cx.now).await;
    match resp.status() {
        StatusCode::ACCEPTED => super::see_other(&back),
        _ => super::html_refusal(resp, &back).await,
    }
}
