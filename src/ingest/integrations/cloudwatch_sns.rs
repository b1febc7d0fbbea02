//! AWS CloudWatch alarms delivered by Amazon SNS to an HTTP/S subscription, served at
//! `POST /integrations/cloudwatch_sns/<routing_key>` (the subscription's endpoint URL). One
//! alarm state change per request.
//!
//! - **Transport**: SNS posts JSON as `Content-Type: text/plain; charset=UTF-8`; the content
//!   type is never checked. The envelope's `Type` (or, without one, the
//!   `x-amz-sns-message-type` header) says what the body is:
//!   - `Notification`: `Message` is a **string** holding the CloudWatch alarm JSON
//!     (`AlarmName`, `AlarmDescription`, `AWSAccountId`, `NewStateValue`, `NewStateReason`,
//!     `StateChangeTime` with a `+0000` offset, `Region` as a display name, `AlarmArn`,
//!     `OldStateValue`, `Trigger {MetricName, Namespace, Dimensions[{name, value}], ...}`).
//!     With raw message delivery on, the body is that alarm JSON itself, which is read too.
//!   - `SubscriptionConfirmation`: the `SubscribeURL` must match
//!     `[integrations.cloudwatch_sns] confirm_url_pattern` (default
//!     [`DEFAULT_CONFIRM_URL_PATTERN`]: `https://sns.<region>.amazonaws.com/...`, or
//!     `.amazonaws.com.cn` in China) and, when it is on an SNS host, be in the region of
//!     `TopicArn`. A URL that passes is confirmed by one GET (see `crate::ingest::confirm`)
//!     when `auto_confirm` is on (the default) **and** the topic is in `topic_arns`; otherwise
//!     (no `topic_arns`, or `auto_confirm = false`) it is logged at warn level for an operator
//!     to open. A URL that does not pass is never fetched nor logged as a link to follow: it is
//!     refused by name (listed in the answer's `rejected`). Either way the answer is `200` and
//!     no event is produced.
//!   - `UnsubscribeConfirmation`: logged at info, `200`, no event.
//!
//!   SNS message signatures are verified **before** this parser runs, by
//!   `crate::ingest::sns_verify` (`verify_signatures = true`, the default; it also refuses
//!   topics not in `topic_arns`): every envelope field this parser reads (`Type`, `Message`,
//!   `MessageId`, `Subject`, `Timestamp`, `TopicArn`, `SubscribeURL`) is covered by the
//!   signature. Raw message delivery carries no signature, so it is only read with
//!   `verify_signatures = false` and no `topic_arns`. Settings: [`settings`].
//! - **Resolve**: `NewStateValue` `OK` resolves, `ALARM` triggers. `INSUFFICIENT_DATA` is
//!   accepted and **ignored** (no event): it means "not enough data points to evaluate", which
//!   new alarms and sparse metrics report all the time; an alarm that was in `ALARM` stays open
//!   until its `OK` (or `resolve_timeout`).
//! - **Dedup key**: `AlarmArn`; for messages without one, the same ARN built from
//!   the partition and region of `TopicArn` (CloudWatch only notifies topics in its own
//!   region), `AWSAccountId` and `AlarmName`: `arn:aws:cloudwatch:eu-west-1:111122223333:alarm:orders-5xx`,
//!   so old and new messages of one alarm meet; without a `TopicArn`,
//!   `<AWSAccountId>:<AlarmName>`.
//! - **Severity**: CloudWatch has none: the integration's `default_severity` (`error`).
//! - **Fields**: summary = `AlarmName: NewStateReason`; source = the first dimension's value,
//!   else `AWSAccountId`; component = `Trigger.Namespace`; class = `Trigger.MetricName`;
//!   labels = the dimensions, `aws_account`, `region` (the code, from the ARN) and
//!   `region_name` (CloudWatch's display name); custom_details = `AlarmDescription`,
//!   `NewStateReason`, `OldStateValue`, `Trigger` and the SNS `Subject` and `MessageId`;
//!   timestamp = `StateChangeTime`, else the envelope's `Timestamp`.
//! - **Answer**: `200` with the generic body; SNS treats any 2xx as delivered and retries
//!   5xx (a `400` here names the field and is not retried).

use http::{Response, StatusCode};
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::config::{Problems, Unknown};
use crate::event::{Action, Event, MAX_DEDUP_KEY_CHARS};
use crate::ingest::response::Body;
use crate::integration::Integration;

use super::fields::{details_of, to_json, Reader};
use super::{
    json_object, reply, summary, Format, IngestRequest, IntegrationError, IntegrationSettings,
    Parsed, Rejected,
};

const KIND: Integration = Integration::CloudwatchSns;

pub mod settings;

pub use settings::{SnsSettings, DEFAULT_CONFIRM_URL_PATTERN};

/// A subscription whose `SubscribeURL` passed the checks: the router confirms it (one GET) or
/// logs it, as `confirm` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub topic_arn: String,
    pub url: String,
    /// `auto_confirm` is on and the topic is in `topic_arns`.
    pub confirm: bool,
    /// `[integrations.cloudwatch_sns] resolve`, for the confirmation's connection.
    pub resolve: crate::ingest::confirm::Resolve,
}

/// The header SNS names the message type in.
pub const MESSAGE_TYPE_HEADER: &str = "x-amz-sns-message-type";

/// The CloudWatch-via-SNS format in the integrations registry.
pub struct Sns;

impl Format for Sns {
    /// `auto_confirm`, `confirm_url_pattern` and the verification keys ([`settings`]).
    fn own_settings(
        own: &mut Unknown,
        at: &str,
        settings: &mut IntegrationSettings,
        p: &mut Problems,
    ) {
        settings::read(own, at, &mut settings.sns, p);
    }

    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        let root = json_object(KIND, body)?;
        let mut errors = Vec::new();
        let mut r = Reader::new(Some(&root), "", &mut errors);
        let body_type = r.opt_str("Type");
        let header_type = req
            .headers
            .get(MESSAGE_TYPE_HEADER)
            .and_then(|v| v.to_str().ok());
        // Raw message delivery: the body is the alarm itself (the header still says
        // Notification).
        let raw = body_type.is_none() && root.get("AlarmName").is_some();
        let kind = body_type.or(header_type);
        let outcome = match kind {
            _ if raw => alarm(&root, "", None, req, r.errors),
            Some("Notification") => notification(&mut r, req),
            Some("SubscriptionConfirmation") => Ok(confirmation(&mut r, &req.settings.sns)),
            Some("UnsubscribeConfirmation") => {
                let topic = r.opt_str("TopicArn").unwrap_or_default();
                tracing::info!(
                    integration = KIND.as_str(),
                    topic_arn = topic,
                    "SNS unsubscribe confirmation received; nothing to do"
                );
                Ok(Parsed::default())
            }
            Some(other) => {
                r.errors.push(format!(
                    "'Type' {other:?} is not Notification, SubscriptionConfirmation or UnsubscribeConfirmation"
                ));
                Err(())
            }
            None => {
                r.errors.push(
                    "'Type' is missing (and no x-amz-sns-message-type header): not an SNS message"
                        .into(),
                );
                Err(())
            }
        };
        match outcome {
            Ok(parsed) if errors.is_empty() => Ok(parsed),
            _ => Err(IntegrationError::Invalid {
                kind: KIND,
                problems: errors,
            }),
        }
    }

    /// SNS needs a 2xx; 200 is what its own examples answer.
    fn accepted(parsed: &Parsed, kind: Integration) -> Response<Body> {
        reply::accepted(StatusCode::OK, kind, parsed)
    }
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>` -> (partition, region).
pub fn arn_partition_region(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.split(':');
    if parts.next() != Some("arn") {
        return None;
    }
    let partition = parts.next().filter(|p| !p.is_empty())?;
    let _service = parts.next()?;
    let region = parts.next().filter(|r| !r.is_empty())?;
    Some((partition, region))
}

/// The region of a `SubscribeURL` on the SNS host pattern; `None` for any other URL.
pub fn sns_url_region(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    let region = host.strip_prefix("sns.")?;
    let region = region
        .strip_suffix(".amazonaws.com")
        .or_else(|| region.strip_suffix(".amazonaws.com.cn"))?;
    let ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(region)
}

fn confirmation(r: &mut Reader<'_, '_>, settings: &SnsSettings) -> Parsed {
    let topic = r.opt_str("TopicArn").unwrap_or_default();
    let url = r.opt_str("SubscribeURL").unwrap_or_default();
    let topic_region = arn_partition_region(topic).map(|(_, region)| region);
    let in_region = match (sns_url_region(url), topic_region) {
        (Some(url_region), Some(topic_region)) => url_region == topic_region,
        _ => true,
    };
    let pattern = settings.confirm_url_pattern.as_str();
    let mut parsed = Parsed::default();
    if settings.confirm_url_pattern.is_match(url) && in_region {
        parsed.subscription = Some(Subscription {
            topic_arn: topic.to_string(),
            url: url.to_string(),
            confirm: settings.auto_confirm && settings.lists(topic),
            resolve: settings.resolve.clone(),
        });
    } else {
        tracing::warn!(
            integration = KIND.as_str(),
            topic_arn = topic,
            "SNS subscription confirmation refused: its SubscribeURL does not match \
             confirm_url_pattern {pattern:?} or is not in the topic's region; do not open it"
        );
        parsed.rejected.push(Rejected {
            item: "SubscribeURL".into(),
            errors: vec![format!(
                "'SubscribeURL' does not match confirm_url_pattern {pattern:?} in the region of 'TopicArn': refused, not fetched"
            )],
        });
    }
    parsed
}

fn notification(r: &mut Reader<'_, '_>, req: &IngestRequest<'_>) -> Result<Parsed, ()> {
    let message = r.req_str("Message");
    let topic = r.opt_str("TopicArn");
    let subject = r.opt_str("Subject").filter(|s| !s.is_empty());
    let message_id = r.opt_str("MessageId").filter(|s| !s.is_empty());
    let sent_at = r.timestamp("Timestamp");
    let message = message.ok_or(())?;
    let mut buf = message.as_bytes().to_vec();
    let inner = match super::json::parse_json(&mut buf) {
        Ok(v) if v.is_object() => v,
        _ => {
            r.errors
                .push("'Message' is not a CloudWatch alarm (a JSON object in a string)".into());
            return Err(());
        }
    };
    let envelope = Envelope {
        topic,
        subject,
        message_id,
        sent_at,
    };
    alarm(&inner, "Message", Some(&envelope), req, r.errors)
}

/// What the SNS envelope adds to an alarm.
struct Envelope<'a> {
    topic: Option<&'a str>,
    subject: Option<&'a str>,
    message_id: Option<&'a str>,
    sent_at: Option<crate::time::UnixMillis>,
}

fn alarm(
    value: &BorrowedValue<'_>,
    at: &str,
    envelope: Option<&Envelope<'_>>,
    req: &IngestRequest<'_>,
    errors: &mut Vec<String>,
) -> Result<Parsed, ()> {
    let mut r = Reader::new(Some(value), at, errors);
    let name = r.req_str("AlarmName");
    let state = r.req_str("NewStateValue");
    let arn = r.opt_str("AlarmArn").filter(|s| !s.is_empty());
    let account = r.opt_str("AWSAccountId").filter(|s| !s.is_empty());
    let reason = r.opt_str("NewStateReason").filter(|s| !s.is_empty());
    let old_state = r.opt_str("OldStateValue");
    let description = r.opt_str("AlarmDescription").filter(|s| !s.is_empty());
    let region_name = r.opt_str("Region").filter(|s| !s.is_empty());
    let changed_at = r.timestamp("StateChangeTime");
    let trigger = r.object("Trigger");
    let (namespace, metric, dimensions) = match trigger {
        Some(t) => {
            let path = super::fields::path(at, "Trigger");
            let mut t = r.child(Some(t), &path);
            let namespace = t.opt_str("Namespace").filter(|s| !s.is_empty());
            let metric = t.opt_str("MetricName").filter(|s| !s.is_empty());
            let mut dims = Vec::new();
            t.for_each_object("Dimensions", |d| {
                if let (Some(n), Some(v)) = (d.req_str("name"), d.opt_str("value")) {
                    dims.push((n.to_string(), v.to_string()));
                }
            });
            (namespace, metric, dims)
        }
        None => (None, None, Vec::new()),
    };
    if !r.errors.is_empty() {
        return Err(());
    }
    let (name, state) = (name.ok_or(())?, state.ok_or(())?);
    let action = match state {
        "ALARM" => Action::Trigger,
        "OK" => Action::Resolve,
        "INSUFFICIENT_DATA" => return Ok(Parsed::default()),
        _ => {
            r.errors.push(format!(
                "'{}' must be ALARM, OK or INSUFFICIENT_DATA",
                super::fields::path(at, "NewStateValue")
            ));
            return Err(());
        }
    };
    let topic = envelope.and_then(|e| e.topic);
    let located = arn
        .and_then(arn_partition_region)
        .or_else(|| topic.and_then(arn_partition_region));
    let dedup_key = match (arn, located, account) {
        (Some(arn), _, _) => arn.to_string(),
        (None, Some((partition, region)), Some(account)) => {
            format!("arn:{partition}:cloudwatch:{region}:{account}:alarm:{name}")
        }
        (None, _, Some(account)) => format!("{account}:{name}"),
        (None, _, None) => {
            r.errors.push(format!(
                "'{}' or '{}' is needed to identify the alarm",
                super::fields::path(at, "AlarmArn"),
                super::fields::path(at, "AWSAccountId")
            ));
            return Err(());
        }
    };
    if dedup_key.chars().nth(MAX_DEDUP_KEY_CHARS).is_some() {
        r.errors.push(format!(
            "the alarm's ARN must be at most {MAX_DEDUP_KEY_CHARS} characters"
        ));
        return Err(());
    }

    let mut event = Event::new(
        KIND,
        action,
        req.routing_key.to_string(),
        dedup_key,
        req.now,
    );
    let (text, truncated) = summary(&match reason {
        Some(reason) => format!("{name}: {reason}"),
        None => name.to_string(),
    });
    event.summary = text;
    event.severity = req.settings.default_severity;
    event.source = dimensions
        .first()
        .map(|(_, v)| v.as_str())
        .or(account)
        .unwrap_or_default()
        .to_string();
    event.component = namespace.map(str::to_string);
    event.class = metric.map(str::to_string);
    event.timestamp = changed_at.or(envelope.and_then(|e| e.sent_at));
    let mut labels = dimensions;
    for (k, v) in [
        ("aws_account", account),
        ("region", located.map(|(_, region)| region)),
        ("region_name", region_name),
    ] {
        if let Some(v) = v {
            labels.retain(|(name, _)| name != k);
            labels.push((k.to_string(), v.to_string()));
        }
    }
    labels.sort_unstable();
    labels.dedup_by(|a, b| a.0 == b.0);
    event.labels = labels.into();
    let mut details = serde_json::Map::new();
    for (k, v) in [
        ("AlarmDescription", description),
        ("NewStateReason", reason),
        ("OldStateValue", old_state),
        ("Subject", envelope.and_then(|e| e.subject)),
        ("MessageId", envelope.and_then(|e| e.message_id)),
    ] {
        if let Some(v) = v {
            details.insert(k.into(), serde_json::Value::String(v.to_string()));
        }
    }
    if let Some(t) = trigger {
        if let Some(v) = to_json(t) {
            details.insert("Trigger".into(), v);
        }
    }
    event.custom_details = details_of(&details);
    Ok(Parsed::one(event, truncated))
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::ingest::integrations::testing::{parse, Request};

    fn notification(alarm: &str) -> String {
        serde_json::json!({"Type": "Notification", "MessageId": "m-1",
            "TopicArn": "arn:aws:sns:eu-west-1:111122223333:ops", "Message": alarm,
            "Timestamp": "2024-05-02T09:31:10.530Z"})
        .to_string()
    }

    #[test]
    fn states_map_and_insufficient_data_is_ignored() {
        for (state, want) in [
            ("ALARM", Some(Action::Trigger)),
            ("OK", Some(Action::Resolve)),
            ("INSUFFICIENT_DATA", None),
        ] {
            let body = notification(&format!(
                r#"{{"AlarmName":"a","AWSAccountId":"111122223333","NewStateValue":"{state}"}}"#
            ));
            let p = parse(KIND, body.as_bytes()).unwrap();
            assert_eq!(p.events.first().map(|e| e.action), want, "{state}");
            assert!(p.rejected.is_empty());
        }
        let body = notification(r#"{"AlarmName":"a","AWSAccountId":"1","NewStateValue":"BROKEN"}"#);
        assert_eq!(
            parse(KIND, body.as_bytes()).unwrap_err().to_string(),
            "cloudwatch_sns: 'Message.NewStateValue' must be ALARM, OK or INSUFFICIENT_DATA"
        );
    }

    #[test]
    fn the_key_is_the_alarm_arn_built_the_same_way_without_one() {
        let with = notification(
            r#"{"AlarmName":"orders-5xx","AWSAccountId":"111122223333","NewStateValue":"ALARM",
                "AlarmArn":"arn:aws:cloudwatch:eu-west-1:111122223333:alarm:orders-5xx"}"#,
        );
        let without = notification(
            r#"{"AlarmName":"orders-5xx","AWSAccountId":"111122223333","NewStateValue":"OK"}"#,
        );
        let a = parse(KIND, with.as_bytes()).unwrap().events.remove(0);
        let b = parse(KIND, without.as_bytes()).unwrap().events.remove(0);
        assert_eq!(a.dedup_key, b.dedup_key);
        assert_eq!(
            a.dedup_key,
            "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:orders-5xx"
        );
        // Raw message delivery: no envelope, no topic.
        let raw =
            br#"{"AlarmName":"orders-5xx","AWSAccountId":"111122223333","NewStateValue":"ALARM"}"#;
        let e = parse(KIND, raw).unwrap().events.remove(0);
        assert_eq!(e.dedup_key, "111122223333:orders-5xx");
    }

    #[test]
    fn subscribe_urls_must_be_on_the_sns_host_of_the_topic_region() {
        for (url, want) in [
            (
                "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
                Some("eu-west-1"),
            ),
            (
                "https://sns.cn-north-1.amazonaws.com.cn/?Action=x",
                Some("cn-north-1"),
            ),
            ("http://sns.eu-west-1.amazonaws.com/?Action=x", None),
            ("https://sns.eu-west-1.amazonaws.com.evil.example/", None),
            ("https://evil.example/sns.eu-west-1.amazonaws.com/", None),
            ("https://sns.eu-west-1.amazonaws.com:8443/", None),
            ("https://user@sns.eu-west-1.amazonaws.com/", None),
            ("https://sns..amazonaws.com/", None),
        ] {
            assert_eq!(sns_url_region(url), want, "{url}");
        }
        // The default pattern admits exactly the URLs whose region could be read.
        let default = SnsSettings::default();
        for (url, want) in [
            ("https://sns.eu-west-1.amazonaws.com/?Action=x", true),
            ("https://sns.cn-north-1.amazonaws.com.cn/?Action=x", true),
            ("http://sns.eu-west-1.amazonaws.com/?Action=x", false),
            ("https://sns.eu-west-1.amazonaws.com.evil.example/", false),
            ("https://evil.example/sns.eu-west-1.amazonaws.com/", false),
            ("https://sns.eu-west-1.amazonaws.com:8443/", false),
            ("https://user@sns.eu-west-1.amazonaws.com/", false),
            ("https://sns..amazonaws.com/", false),
        ] {
            assert_eq!(default.confirm_url_pattern.is_match(url), want, "{url}");
        }
        let confirm = |url: &str| {
            let body = serde_json::json!({"Type": "SubscriptionConfirmation",
                "TopicArn": "arn:aws:sns:eu-west-1:111122223333:ops", "Token": "t",
                "SubscribeURL": url, "Message": "You have chosen to subscribe"})
            .to_string();
            parse(KIND, body.as_bytes()).unwrap()
        };
        let url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription";
        let ok = confirm(url);
        assert!(ok.events.is_empty() && ok.rejected.is_empty());
        // No topic_arns: the URL is logged for an operator, not fetched.
        let mut want = Subscription {
            topic_arn: "arn:aws:sns:eu-west-1:111122223333:ops".into(),
            url: url.into(),
            confirm: false,
            resolve: Default::default(),
        };
        assert_eq!(ok.subscription.as_ref(), Some(&want));
        // Listed, it is confirmed; with auto_confirm off, logged again.
        let mut settings = IntegrationSettings::default();
        settings.sns.topic_arns = Some([want.topic_arn.clone()].into());
        let body = serde_json::json!({"Type": "SubscriptionConfirmation",
            "TopicArn": want.topic_arn, "SubscribeURL": url, "Message": "m"})
        .to_string();
        let listed = Request::default().settings(&settings);
        want.confirm = true;
        assert_eq!(
            listed.parse(KIND, body.as_bytes()).unwrap().subscription,
            Some(want.clone())
        );
        settings.sns.auto_confirm = false;
        let off = Request::default().settings(&settings);
        want.confirm = false;
        assert_eq!(
            off.parse(KIND, body.as_bytes()).unwrap().subscription,
            Some(want)
        );
        for refused in [
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
            "https://169.254.169.254/latest/meta-data/",
            "",
        ] {
            let parsed = confirm(refused);
            assert_eq!(parsed.rejected.len(), 1, "{refused}");
            assert!(parsed.events.is_empty() && parsed.subscription.is_none());
        }
    }

    #[test]
    fn the_header_stands_in_for_a_missing_type() {
        let body = br#"{"Message":"{\"AlarmName\":\"a\",\"AWSAccountId\":\"1\",\"NewStateValue\":\"ALARM\"}"}"#;
        let req = Request::default().header(MESSAGE_TYPE_HEADER, "Notification");
        assert_eq!(req.parse(KIND, body).unwrap().events.len(), 1);
        assert_eq!(
            parse(KIND, br#"{"Message":"x"}"#).unwrap_err().to_string(),
            "cloudwatch_sns: 'Type' is missing (and no x-amz-sns-message-type header): not an SNS message"
        );
        assert_eq!(
            parse(KIND, br#"{"Type":"Notification","Message":"not json"}"#)
                .unwrap_err()
                .to_string(),
            "cloudwatch_sns: 'Message' is not a CloudWatch alarm (a JSON object in a string)"
        );
    }
}
