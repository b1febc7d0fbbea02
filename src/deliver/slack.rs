//! A Slack incoming webhook's message for an incident: `text` (the notification and fallback
//! line) and `blocks`: a header (severity emoji, or a check mark once resolved, and the title),
//! a section with severity, routing key, alert count, status and when it opened (Slack's
//! `<!date>` shows it in the reader's time zone), the message's http(s) links as buttons (at
//! most five), and a context line with the incident id and seq.
//!
//! Slack parses `&`, `<` and `>` in `text` and `mrkdwn` as control characters, so sender
//! strings there are escaped (`&amp;`, `&lt;`, `&gt;`) and cannot make links or mentions;
//! `plain_text` (the header, button labels) is shown as it is. Lengths are cut to Slack's
//! limits (header 150 characters, button label 75, field 2000).

use serde_json::{json, Value};

use super::message::Incident;
use crate::event::Severity;

const MAX_HEADER: usize = 150;
const MAX_BUTTON: usize = 75;
const MAX_FIELD: usize = 2000;
const MAX_URL: usize = 3000;
const MAX_BUTTONS: usize = 5;

/// `&`, `<` and `>` as Slack wants them in `text` and `mrkdwn`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn emoji(incident: &Incident) -> &'static str {
    if incident.kind == "resolved" {
        return ":white_check_mark:";
    }
    match incident.severity {
        Severity::Critical => ":red_circle:",
        Severity::Error => ":large_orange_circle:",
        Severity::Warning => ":large_yellow_circle:",
        Severity::Info => ":large_blue_circle:",
    }
}

/// `opened_at` as Slack's date token (with the timestamp itself as its fallback text).
fn opened(incident: &Incident) -> String {
    match crate::time::parse_timestamp(&incident.opened_at) {
        Some(crate::time::Timestamp::At(at)) => format!(
            "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
            at.0 / 1000,
            escape(&incident.opened_at)
        ),
        _ => escape(&incident.opened_at),
    }
}

/// The webhook body for `incident`.
pub fn render(incident: &Incident) -> Vec<u8> {
    let emoji = emoji(incident);
    let severity = incident.severity.as_str();
    let field = |name: &str, value: String| json!({"type": "mrkdwn", "text": cut(&format!("*{name}*\n{value}"), MAX_FIELD)});
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "emoji": true,
            "text": cut(&format!("{emoji} {}", incident.title), MAX_HEADER)}}),
        json!({"type": "section", "fields": [
            field("Severity", severity.to_string()),
            field("Routing key", escape(&incident.routing_key)),
            field("Alerts", format!("{} ({} open)", incident.alert_count, incident.open_alert_count)),
            field("Status", escape(&incident.kind)),
            field("Opened", opened(incident)),
        ]}),
    ];
    let buttons: Vec<Value> = incident
        .links
        .iter()
        .filter(|l| {
            (l.href.starts_with("https://") || l.href.starts_with("http://"))
                && l.href.len() <= MAX_URL
        })
        .take(MAX_BUTTONS)
        .map(|l| {
            let label = l
                .text
                .as_deref()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or(&l.href);
            json!({"type": "button", "url": l.href,
                "text": {"type": "plain_text", "text": cut(label, MAX_BUTTON)}})
        })
        .collect();
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": format!("sluice · {} · seq {}", escape(&incident.incident_id), incident.seq)}]}));
    let text = format!(
        "{emoji} [{}] {} ({}, {} alert(s))",
        severity.to_ascii_uppercase(),
        escape(&incident.title),
        escape(&incident.kind),
        incident.alert_count
    );
    serde_json::to_vec(&json!({"text": text, "blocks": blocks})).expect("json values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::message::tests::OPENED;

    #[test]
    fn blocks_carry_the_incident_with_sender_strings_escaped() {
        let i = Incident::parse(OPENED.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&render(&i)).unwrap();
        assert_eq!(
            v["text"],
            ":large_orange_circle: [ERROR] disk &lt;full&gt; &amp; slow (opened, 3 alert(s))"
        );
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(
            blocks[0],
            json!({"type": "header", "text": {"type": "plain_text", "emoji": true,
                "text": ":large_orange_circle: disk <full> & slow"}})
        );
        let fields: Vec<&str> = blocks[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "*Severity*\nerror",
                "*Routing key*\npayments",
                "*Alerts*\n3 (2 open)",
                "*Status*\nopened",
                // 2026-11-21T19:00:07Z
                "*Opened*\n<!date^1795287607^{date_short_pretty} {time}|2026-11-21T19:00:07.719Z>",
            ]
        );
        // The javascript: link is left out; the runbook is a button.
        assert_eq!(
            blocks[2],
            json!({"type": "actions", "elements": [{"type": "button",
                "url": "https://runbooks.example.com/disk?a=1&b=2",
                "text": {"type": "plain_text", "text": "Runbook"}}]})
        );
        assert_eq!(blocks[3]["elements"][0]["text"], "sluice · inc_1 · seq 1");
    }

    #[test]
    fn a_resolved_incident_gets_a_check_mark_and_long_titles_are_cut() {
        let text = OPENED
            .replace(r#""type":"opened""#, r#""type":"resolved""#)
            .replace("disk <full> & slow", &"x".repeat(300))
            .replace(r#""links":[{"href":"https://runbooks.example.com/disk?a=1&b=2","text":"Runbook"},{"href":"javascript:alert(1)"}]"#, r#""links":[]"#);
        let i = Incident::parse(text.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&render(&i)).unwrap();
        let header = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(header.starts_with(":white_check_mark: xxx"), "{header}");
        assert_eq!(header.chars().count(), 150);
        assert!(header.ends_with('…'));
        assert_eq!(
            v["blocks"].as_array().unwrap().len(),
            3,
            "no actions block without links"
        );
    }

    #[test]
    fn escape_handles_each_control_character() {
        assert_eq!(escape("a<@U1>&b"), "a&lt;@U1&gt;&amp;b");
    }
}
