//! `[integrations.<kind>]`: the settings every integration kind has, one table per kind of
//! the registry (`pagerduty`, `pagerduty_v1`, `alertmanager_webhook`, ...). Every key is
//! optional:
//!
//! ```toml
//! [integrations.alertmanager_webhook]
//! default_severity = "warning"  # when the payload has no severity, or one sluice does not know
//! resolve_timeout = "6h"        # resolve a trigger not refreshed or resolved within this; "0s" = never
//! routing_key = "payments"      # for requests that name none (path, X-Routing-Key, ?routing_key=)
//! ```
//!
//! A format may own more keys (the generic mapper's `[integrations.generic.<name>]`, SNS
//! confirmation settings): config names no kind, so it keeps every other key of a table as
//! [`IntegrationConfig::own`] and the format that owns the table validates them
//! (`ingest::integrations::settings`), reporting what it does not know as unknown keys.
//! [`super::Config::from_toml_with`] reports both layers' problems at once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::event::Severity;
use crate::integration::{ByKind, Integration, MAX_ROUTING_KEY_CHARS};

use super::{Problems, Unknown};

/// The defaults of every integration's settings.
pub mod defaults {
    /// What Alertmanager's own PagerDuty integration sends when it knows no better.
    pub const DEFAULT_SEVERITY: &str = "error";
    /// Off: alerts resolve when their sender says so.
    pub const RESOLVE_TIMEOUT: &str = "0s";
}

#[derive(Deserialize, Default)]
pub(super) struct RawIntegration {
    default_severity: Option<String>,
    resolve_timeout: Option<String>,
    routing_key: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

pub(super) type RawIntegrations = BTreeMap<String, RawIntegration>;

/// `SLUICE_INTEGRATIONS_DIR`: `[integrations.generic] definitions_dir`, a key the generic
/// format owns (the folder of the user's integration definitions).
pub(super) fn set_definitions_dir(raw: &mut Option<RawIntegrations>, dir: String) {
    raw.get_or_insert_with(Default::default)
        .entry("generic".into())
        .or_default()
        .unknown
        .insert("definitions_dir".into(), toml::Value::String(dir));
}

/// One integration's common settings, validated, and its format's own keys, not yet.
#[derive(Clone, Debug, PartialEq)]
pub struct IntegrationConfig {
    /// For payloads without a severity, or with one the format's mapping does not know.
    pub default_severity: Severity,
    /// Triggers without their own end time resolve this long after arrival unless refreshed;
    /// `None` (`"0s"`) leaves resolving to the sender.
    pub resolve_timeout: Option<Duration>,
    /// The routing key for requests that name none (`/integrations/<kind>`, or the format's
    /// own endpoint when it takes its key from the request: `/api/v2/alerts`).
    pub routing_key: Option<String>,
    /// The table's other keys: the format's own, validated by the format.
    pub own: Unknown,
}

impl Default for IntegrationConfig {
    fn default() -> Self {
        IntegrationConfig {
            default_severity: Severity::parse(defaults::DEFAULT_SEVERITY)
                .expect("the default severity is a severity"),
            resolve_timeout: None,
            routing_key: None,
            own: Unknown::new(),
        }
    }
}

/// Every integration's settings, by kind.
pub type IntegrationsConfig = ByKind<IntegrationConfig>;

pub(super) fn validate(raw: Option<RawIntegrations>, p: &mut Problems) -> IntegrationsConfig {
    let mut config = IntegrationsConfig::default();
    for (name, raw) in raw.unwrap_or_default() {
        let at = format!("integrations.{name}");
        let Some(kind) = Integration::parse(&name) else {
            let known: Vec<&str> = Integration::ALL.iter().map(|k| k.as_str()).collect();
            p.add(
                &at,
                format!("unknown integration (known: {})", known.join(", ")),
            );
            continue;
        };
        let mut settings = IntegrationConfig {
            own: raw.unknown,
            ..IntegrationConfig::default()
        };
        if let Some(s) = raw.default_severity {
            match Severity::parse(&s) {
                Some(sev) => settings.default_severity = sev,
                None => p.add(
                    &format!("{at}.default_severity"),
                    format!("{s:?} must be one of {}", Severity::NAMES),
                ),
            }
        }
        let timeout = p.duration(
            &format!("{at}.resolve_timeout"),
            raw.resolve_timeout.as_deref(),
            defaults::RESOLVE_TIMEOUT,
        );
        settings.resolve_timeout = (!timeout.is_zero()).then_some(timeout);
        if let Some(key) = raw.routing_key {
            let key_at = format!("{at}.routing_key");
            if !kind.key_from_request() {
                let path = kind.own_path().unwrap_or_default();
                p.add(
                    &key_at,
                    format!(
                        "{name} is served at {path} and takes its routing key from each event; \
                         this key applies to /integrations/<kind> ({})",
                        Integration::generic_kinds()
                    ),
                );
            } else if key.trim().is_empty() {
                p.add(&key_at, "must not be blank");
            } else if key.chars().nth(MAX_ROUTING_KEY_CHARS).is_some() {
                p.add(
                    &key_at,
                    format!("must be at most {MAX_ROUTING_KEY_CHARS} characters"),
                );
            } else {
                settings.routing_key = Some(key);
            }
        }
        config.set(kind, settings);
    }
    config
}
