//! What each kind of receiver is sent for an incident message: the request body and the
//! headers sluice sets. The generic webhook gets the message exactly as it is on the topic;
//! Slack and PagerDuty get their own formats ([`super::slack`], [`super::pagerduty`]).

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::message::Incident;
use super::pagerduty::Triggered;
use crate::config::{ReceiverConfig, ReceiverKind};

/// One request ready to send.
#[derive(Debug)]
pub struct Rendered {
    pub body: Bytes,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The request for `incident` (whose bytes on the topic are `raw`), or `None` when the
/// receiver's kind has nothing to send for it (PagerDuty and a `flapping` message, say).
pub fn render(
    receiver: &ReceiverConfig,
    incident: &Incident,
    raw: &Bytes,
    triggered: &Triggered,
) -> Option<Rendered> {
    match receiver.kind {
        ReceiverKind::Webhook => Some(Rendered {
            body: raw.clone(),
            headers: webhook_headers(receiver, incident),
        }),
        ReceiverKind::Slack => Some(Rendered {
            body: super::slack::render(incident).into(),
            headers: Vec::new(),
        }),
        ReceiverKind::PagerDuty => {
            let key = receiver.routing_key.as_ref()?;
            let key = std::str::from_utf8(key.expose()).ok()?;
            super::pagerduty::render(key, incident, triggered).map(|body| Rendered {
                body: body.into(),
                headers: Vec::new(),
            })
        }
    }
}

/// `X-Sluice-Receiver`, `X-Sluice-Incident-Id`, `Idempotency-Key: <incident_id>:<seq>` (the
/// same for a message delivered again, so the receiver can drop repeats), then the receiver's
/// own `headers`.
fn webhook_headers(
    receiver: &ReceiverConfig,
    incident: &Incident,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::with_capacity(3 + receiver.headers.len());
    let mut add = |name: &str, value: &[u8]| {
        // Names were checked by the config; ids and names are header-safe, and anything that
        // is not is left out rather than sent broken.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.push((n, v));
        }
    };
    add("x-sluice-receiver", receiver.name.as_bytes());
    add("x-sluice-incident-id", incident.incident_id.as_bytes());
    add(
        "idempotency-key",
        format!("{}:{}", incident.incident_id, incident.seq).as_bytes(),
    );
    for (name, value) in &receiver.headers {
        add(name, value.expose());
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::message::tests::{receivers, OPENED};

    #[test]
    fn a_webhook_gets_the_message_as_it_is_with_its_idempotency_key() {
        let rs = receivers(
            r#"
[[receivers]]
name = "hook"
kind = "webhook"
url = "http://h/"
headers = { Authorization = "Bearer t" }
"#,
        );
        let raw = Bytes::from_static(OPENED.as_bytes());
        let incident = Incident::parse(&raw).unwrap();
        let r = render(&rs[0], &incident, &raw, &Triggered::default()).unwrap();
        assert_eq!(r.body, raw);
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            headers,
            [
                ("x-sluice-receiver".to_string(), "hook".to_string()),
                ("x-sluice-incident-id".into(), "inc_1".into()),
                ("idempotency-key".into(), "inc_1:1".into()),
                ("authorization".into(), "Bearer t".into()),
            ]
        );
    }
}
