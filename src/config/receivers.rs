//! `[deliver]` and `[[receivers]]`: where `sluice forward` delivers incident messages, for teams
//! without a Kafka consumer of their own. `sluice serve` reads and checks them but does not use
//! them. Every key of `[deliver]` is optional; the values shown are the defaults:
//!
//! ```toml
//! [deliver]
//! group_id = "sluice-forward"             # the forwarder's consumer group on kafka.topic
//! dead_letter_topic = "sluice.dead-letters"
//! listen = "127.0.0.1:9466"               # GET /metrics and /healthz of the forwarder
//! start_from = "end"                      # or "beginning": where a group without commits starts
//! max_pending = 1000                      # a receiver this far behind on a partition pauses it
//!
//! [[receivers]]
//! name = "payments-hook"                  # required, unique: [A-Za-z0-9_.-], 1-64 characters
//! kind = "webhook"                        # webhook, slack or pagerduty
//! url = "https://hooks.example.com/sluice" # required for webhook and slack
//! headers = { Authorization = "Bearer ..." }   # webhook only
//! matchers = [{ name = "routing_key", op = "=", value = "payments" }]
//! min_severity = "error"                  # absent: every severity
//! types = ["opened", "acknowledged", "resolved", "flapping"]
//! timeout = "10s"                         # one attempt: connect, send, answer
//! max_retries = 5                         # absent: retries bounded by give_up_after only
//! retry_initial = "1s"                    # doubled after each failed attempt ...
//! retry_max = "60s"                       # ... up to this
//! give_up_after = "10m"                   # then the message goes to the dead-letter topic
//!
//! [[receivers]]
//! name = "pagerduty"
//! kind = "pagerduty"
//! routing_key_file = "/run/secrets/pd-routing-key"   # or routing_key = "..."
//! # url = "https://events.pagerduty.com/v2/enqueue"  # the default
//! ```
//!
//! Validates every key, naming it as `receivers[i].<key>`: names unique and usable as metric
//! label values, URLs absolute http(s) with a host, a PagerDuty routing key (exactly one of
//! `routing_key` and `routing_key_file`) for pagerduty receivers and for them only, headers for
//! webhooks only and never one sluice sets itself, known message types, durations greater than
//! zero with `retry_initial <= retry_max`; unknown keys are rejected.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::auth::Secret;
use super::{defaults, read_small_file, Problems, Unknown};
use crate::event::Severity;
use crate::matchers::{Matcher, RawMatcher};

/// The message types a receiver may ask for (`type` of an incident message).
pub const MESSAGE_TYPES: [&str; 6] = [
    "opened",
    "updated",
    "flapping",
    "acknowledged",
    "snoozed",
    "resolved",
];

/// Headers sluice sets on every delivery; a receiver's `headers` may not name them.
const OWN_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "host",
    "idempotency-key",
    "x-sluice-receiver",
    "x-sluice-incident-id",
    "transfer-encoding",
];

#[derive(Deserialize, Default)]
pub(super) struct RawDeliver {
    group_id: Option<String>,
    dead_letter_topic: Option<String>,
    listen: Option<String>,
    start_from: Option<String>,
    max_pending: Option<usize>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Deserialize)]
pub(super) struct RawReceiver {
    name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
    routing_key: Option<String>,
    routing_key_file: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    matchers: Option<Vec<RawMatcher>>,
    min_severity: Option<String>,
    types: Option<Vec<String>>,
    timeout: Option<String>,
    max_retries: Option<u32>,
    retry_initial: Option<String>,
    retry_max: Option<String>,
    give_up_after: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// Where a consumer group without committed offsets starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFrom {
    Beginning,
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiverKind {
    Webhook,
    Slack,
    PagerDuty,
}

impl ReceiverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Webhook => "webhook",
            ReceiverKind::Slack => "slack",
            ReceiverKind::PagerDuty => "pagerduty",
        }
    }
}

/// `[deliver]` with the `[[receivers]]`.
#[derive(Clone, Debug)]
pub struct DeliverConfig {
    pub group_id: String,
    pub dead_letter_topic: String,
    /// The forwarder's `/metrics` and `/healthz`.
    pub listen: SocketAddr,
    pub start_from: StartFrom,
    /// How far (in messages) a partition's slowest receiver may fall behind before reading
    /// that partition pauses (it resumes at half).
    pub max_pending: usize,
    pub receivers: Vec<ReceiverConfig>,
}

/// One `[[receivers]]` entry.
#[derive(Clone)]
pub struct ReceiverConfig {
    pub name: String,
    pub kind: ReceiverKind,
    /// Absolute http(s) URL (a Slack webhook URL holds its secret: never logged).
    pub url: String,
    /// PagerDuty's integration key.
    pub routing_key: Option<Secret>,
    /// Webhook: extra request headers (values may be credentials: never logged).
    pub headers: Vec<(String, Secret)>,
    pub matchers: Vec<Matcher>,
    pub min_severity: Option<Severity>,
    /// Which message types it gets (names from [`MESSAGE_TYPES`]).
    pub types: Vec<&'static str>,
    pub timeout: Duration,
    pub max_retries: Option<u32>,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub give_up_after: Duration,
}

impl fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL's origin only: a Slack webhook's path is its credential.
        let origin = self
            .url
            .splitn(4, '/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/");
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ReceiverConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &format!("{origin}/<redacted>"))
            .field("routing_key", &self.routing_key)
            .field("headers", &headers)
            .field("matchers", &self.matchers)
            .field("min_severity", &self.min_severity)
            .field("types", &self.types)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("give_up_after", &self.give_up_after)
            .finish()
    }
}

impl ReceiverConfig {
    /// Whether it asks for messages of type `kind`.
    pub fn wants_type(&self, kind: &str) -> bool {
        self.types.contains(&kind)
    }
}

/// Validates `[deliver]` and `[[receivers]]`.
pub(super) fn validate(
    raw: Option<RawDeliver>,
    receivers: Option<Vec<RawReceiver>>,
    p: &mut Problems,
) -> DeliverConfig {
    let raw = raw.unwrap_or_default();
    p.unknown("deliver", &raw.unknown);
    let non_empty = |p: &mut Problems, key: &str, v: Option<String>, default: &str| {
        let v = v.unwrap_or_else(|| default.to_string());
        if v.trim().is_empty() {
            p.add(key, "must not be empty");
        }
        v
    };
    let group_id = non_empty(p, "deliver.group_id", raw.group_id, defaults::DELIVER_GROUP);
    let dead_letter_topic = non_empty(
        p,
        "deliver.dead_letter_topic",
        raw.dead_letter_topic,
        defaults::DEAD_LETTER_TOPIC,
    );
    let listen = raw.listen.as_deref().unwrap_or(defaults::DELIVER_LISTEN);
    let listen = listen.parse().unwrap_or_else(|_| {
        p.add(
            "deliver.listen",
            format!("{listen:?} is not a socket address (host:port)"),
        );
        defaults::DELIVER_LISTEN
            .parse()
            .expect("the default parses")
    });
    let start_from = p.one_of(
        "deliver.start_from",
        raw.start_from.as_deref(),
        defaults::DELIVER_START_FROM,
        &[("end", StartFrom::End), ("beginning", StartFrom::Beginning)],
    );
    let max_pending = p.positive(
        "deliver.max_pending",
        raw.max_pending.unwrap_or(defaults::DELIVER_MAX_PENDING),
    );
    let receivers: Vec<ReceiverConfig> = receivers
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.validate(&format!("receivers[{i}]"), p))
        .collect();
    for (i, r) in receivers.iter().enumerate() {
        if receivers[..i].iter().any(|o| o.name == r.name) {
            p.add(
                "receivers",
                format!("the name {:?} is used twice: names must be unique", r.name),
            );
        }
    }
    DeliverConfig {
        group_id,
        dead_letter_topic,
        listen,
        start_from,
        max_pending,
        receivers,
    }
}

impl DeliverConfig {
    /// The dead-letter topic must hold dead letters only.
    pub(super) fn check_topics(&self, taken: &[(&str, &String)], p: &mut Problems) {
        if let Some((key, _)) = taken.iter().find(|(_, t)| **t == self.dead_letter_topic) {
            p.add(
                "deliver.dead_letter_topic",
                format!(
                    "{:?} is already {key}: each topic holds one kind of record",
                    self.dead_letter_topic
                ),
            );
        }
    }
}

impl RawReceiver {
    fn validate(self, at: &str, p: &mut Problems) -> Option<ReceiverConfig> {
        p.unknown(at, &self.unknown);
        let key = |k: &str| format!("{at}.{k}");
        let kind = match self.kind.as_deref() {
            Some("webhook") => Some(ReceiverKind::Webhook),
            Some("slack") => Some(ReceiverKind::Slack),
            Some("pagerduty") => Some(ReceiverKind::PagerDuty),
            Some(other) => {
                p.add(
                    &key("kind"),
                    format!("{other:?} must be \"webhook\", \"slack\" or \"pagerduty\""),
                );
                None
            }
            None => {
                p.add(&key("kind"), "is required (webhook, slack or pagerduty)");
                None
            }
        };
        let routing_key = self.routing_key(kind, &key, p);
        let name = match self.name {
            Some(n) if is_name(&n) => n,
            Some(n) => {
                p.add(
                    &key("name"),
                    format!("{n:?} must be 1-64 characters of A-Z, a-z, 0-9, _, . and -"),
                );
                n
            }
            None => {
                p.add(&key("name"), "is required");
                String::new()
            }
        };
        let url = match (self.url, kind) {
            (Some(url), _) => {
                if let Err(why) = check_url(&url) {
                    p.add(&key("url"), why);
                }
                url
            }
            (None, Some(ReceiverKind::PagerDuty)) => defaults::PAGERDUTY_URL.to_string(),
            (None, Some(_)) => {
                p.add(&key("url"), "is required for webhook and slack receivers");
                String::new()
            }
            (None, None) => String::new(),
        };
        let mut headers = Vec::new();
        for (n, v) in self.headers.unwrap_or_default() {
            let hkey = key(&format!("headers.{n}"));
            if kind.is_some_and(|k| k != ReceiverKind::Webhook) {
                p.add(&hkey, "headers are for webhook receivers only");
            } else if http::HeaderName::from_bytes(n.as_bytes()).is_err() {
                p.add(&hkey, "is not a valid header name");
            } else if OWN_HEADERS.contains(&n.to_ascii_lowercase().as_str()) {
                p.add(&hkey, "is set by sluice itself");
            } else if http::HeaderValue::from_str(&v).is_err() {
                p.add(&hkey, "the value is not a valid header value");
            } else {
                headers.push((n, Secret::new(v)));
            }
        }
        let matchers = p.matchers(&key("matchers"), self.matchers.as_deref());
        let min_severity = self.min_severity.and_then(|s| {
            Severity::parse(&s).or_else(|| {
                p.add(
                    &key("min_severity"),
                    format!("{s:?} must be one of {}", Severity::NAMES),
                );
                None
            })
        });
        let types = match self.types {
            None => defaults::RECEIVER_TYPES.to_vec(),
            Some(list) => {
                if list.is_empty() {
                    p.add(&key("types"), "must name at least one message type");
                }
                list.iter()
                    .filter_map(|t| {
                        let found = MESSAGE_TYPES.iter().find(|m| **m == t.as_str()).copied();
                        if found.is_none() {
                            p.add(
                                &key("types"),
                                format!("{t:?} must be one of {}", MESSAGE_TYPES.join(", ")),
                            );
                        }
                        found
                    })
                    .collect()
            }
        };
        let mut duration = |k: &str, raw: Option<String>, default: &str| {
            let d = p.duration(&key(k), raw.as_deref(), default);
            p.positive(&key(k), d)
        };
        let timeout = duration("timeout", self.timeout, defaults::RECEIVER_TIMEOUT);
        let retry_initial = duration("retry_initial", self.retry_initial, defaults::RETRY_INITIAL);
        let retry_max = duration("retry_max", self.retry_max, defaults::RETRY_MAX);
        let give_up_after = duration("give_up_after", self.give_up_after, defaults::GIVE_UP_AFTER);
        if retry_initial > retry_max {
            p.add(&key("retry_max"), "must not be less than retry_initial");
        }
        Some(ReceiverConfig {
            name,
            kind: kind?,
            url,
            routing_key,
            headers,
            matchers,
            min_severity,
            types,
            timeout,
            max_retries: self.max_retries,
            retry_initial,
            retry_max,
            give_up_after,
        })
    }

    /// PagerDuty's routing key: exactly one of `routing_key` and `routing_key_file` for a
    /// pagerduty receiver, neither for the others.
    fn routing_key(
        &self,
        kind: Option<ReceiverKind>,
        key: &dyn Fn(&str) -> String,
        p: &mut Problems,
    ) -> Option<Secret> {
        let pagerduty = kind == Some(ReceiverKind::PagerDuty);
        match (&self.routing_key, &self.routing_key_file) {
            (Some(_), Some(_)) => {
                p.add(
                    &key("routing_key"),
                    "give exactly one of routing_key and routing_key_file",
                );
                None
            }
            (Some(_), None) | (None, Some(_)) if !pagerduty => {
                if kind.is_some() {
                    p.add(&key("routing_key"), "is for pagerduty receivers only");
                }
                None
            }
            (Some(k), None) => routing_key_value(k, &key("routing_key"), p),
            (None, Some(file)) => match read_small_file(std::path::Path::new(file), 4096) {
                Ok(text) => routing_key_value(
                    text.trim_end_matches(['\n', '\r']),
                    &key("routing_key_file"),
                    p,
                ),
                Err(e) => {
                    p.add(&key("routing_key_file"), e);
                    None
                }
            },
            (None, None) if pagerduty => {
                p.add(
                    &key("routing_key"),
                    "a pagerduty receiver needs routing_key or routing_key_file",
                );
                None
            }
            (None, None) => None,
        }
    }
}

fn routing_key_value(k: &str, key: &str, p: &mut Problems) -> Option<Secret> {
    if k.is_empty() || k.chars().any(|c| c.is_control() || c.is_whitespace()) {
        p.add(key, "must be a non-empty key without spaces");
        return None;
    }
    Some(Secret::new(k))
}

fn is_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// An absolute http or https URL with a host and no credentials.
fn check_url(url: &str) -> Result<(), String> {
    let bad = || format!("{url:?} is not an absolute http or https URL with a host");
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad());
    }
    match uri.authority() {
        Some(a) if !a.host().is_empty() && !a.as_str().contains('@') => Ok(()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(text: &str) -> Result<Config, Vec<String>> {
        Config::from_toml(text, Vec::new()).map_err(|e| e.problems)
    }

    #[test]
    fn defaults_and_a_full_receiver() {
        let c = load(
            r#"
[[receivers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/x"
headers = { Authorization = "Bearer t0k3n" }
matchers = [{ name = "routing_key", op = "=", value = "payments" }]
min_severity = "error"
types = ["opened", "updated"]
max_retries = 3

[[receivers]]
name = "pd"
kind = "pagerduty"
routing_key = "R0UT1NG"
"#,
        )
        .unwrap();
        let d = &c.deliver;
        assert_eq!(
            (d.group_id.as_str(), d.dead_letter_topic.as_str()),
            ("sluice-forward", "sluice.dead-letters")
        );
        assert_eq!(d.start_from, super::StartFrom::End);
        let hook = &d.receivers[0];
        assert_eq!(hook.types, ["opened", "updated"]);
        assert_eq!(hook.min_severity, Some(crate::event::Severity::Error));
        assert_eq!(hook.retry_initial, std::time::Duration::from_secs(1));
        assert_eq!(hook.max_retries, Some(3));
        let debug = format!("{hook:?}");
        assert!(!debug.contains("t0k3n") && !debug.contains("/x"), "{debug}");
        let pd = &d.receivers[1];
        assert_eq!(pd.url, "https://events.pagerduty.com/v2/enqueue");
        assert_eq!(pd.routing_key.as_ref().unwrap().expose(), b"R0UT1NG");
        assert_eq!(pd.types, ["opened", "acknowledged", "resolved", "flapping"]);
        assert!(!format!("{pd:?}").contains("R0UT1NG"));
    }

    #[test]
    fn every_problem_names_its_key() {
        let problems = load(
            r#"
[deliver]
listen = "nowhere"
start_from = "middle"
dead_letter_topic = "sluice.incidents"
color = "red"

[[receivers]]
name = "a b"
kind = "email"
url = "ftp://x/y"

[[receivers]]
name = "s"
kind = "slack"
routing_key = "k"
headers = { X-Team = "a" }
types = ["opened", "paged"]
retry_initial = "2m"

[[receivers]]
name = "p"
kind = "pagerduty"
timeout = "0s"

[[receivers]]
name = "s"
kind = "webhook"
url = "http://h/"
headers = { Idempotency-Key = "x" }
min_severity = "loud"
"#,
        )
        .unwrap_err();
        for want in [
            "deliver.listen:",
            "deliver.start_from:",
            "deliver.dead_letter_topic: \"sluice.incidents\" is already kafka.topic",
            "deliver.color: unknown key",
            "receivers[0].name:",
            "receivers[0].kind: \"email\" must be",
            "receivers[0].url:",
            "receivers[1].routing_key: is for pagerduty receivers only",
            "receivers[1].headers.X-Team: headers are for webhook receivers only",
            "receivers[1].types: \"paged\" must be one of",
            "receivers[1].retry_max: must not be less than retry_initial",
            "receivers[2].routing_key: a pagerduty receiver needs",
            "receivers[2].timeout: must be greater than zero",
            "receivers[3].headers.Idempotency-Key: is set by sluice itself",
            "receivers[3].min_severity:",
            "receivers: the name \"s\" is used twice",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "{want}: {problems:#?}"
            );
        }
    }

    #[test]
    fn a_routing_key_file_is_read_and_trimmed() {
        let path = std::env::temp_dir().join(format!("sluice-pd-key-{}", std::process::id()));
        std::fs::write(&path, "FR0MF1LE\n").unwrap();
        let c = load(&format!(
            "[[receivers]]\nname = \"pd\"\nkind = \"pagerduty\"\nrouting_key_file = {:?}\n",
            path.display().to_string()
        ))
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        let key = c.deliver.receivers[0].routing_key.as_ref().unwrap();
        assert_eq!(key.expose(), b"FR0MF1LE");
        let missing = load(
            "[[receivers]]\nname = \"pd\"\nkind = \"pagerduty\"\nrouting_key_file = \"/nonexistent/k\"\n",
        )
        .unwrap_err();
        assert!(
            missing[0].starts_with("receivers[0].routing_key_file: cannot read /nonexistent/k:"),
            "{missing:?}"
        );
    }
}
