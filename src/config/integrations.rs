//! `[integrations.<kind>]`: per-integration settings, one table per kind of the registry
//! (`pagerduty`, `pagerduty_v1`, `alertmanager_webhook`, ...). Every key is optional:
//!
//! ```toml
//! [integrations.alertmanager_webhook]
//! default_severity = "warning"  # when the payload has no severity, or one sluice does not know
//! resolve_timeout = "6h"        # resolve a trigger not refreshed or resolved within this; "0s" = never
//! routing_key = "payments"      # for requests that name none (path, X-Routing-Key, ?routing_key=)
//!
//! [integrations.cloudwatch_sns]  # besides the keys above:
//! auto_confirm = true            # confirm SNS subscriptions by fetching SubscribeURL (default)
//! confirm_url_pattern = '^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/'  # (the default)
//! ```
//!
//! Unknown kinds and unknown keys are rejected by name, with every other problem at once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::event::{Integration, Severity};
use regex::Regex;

use crate::ingest::integrations::cloudwatch_sns::SnsSettings;
use crate::ingest::integrations::generic::{self, Mappers};
use crate::ingest::integrations::pagerduty::MAX_ROUTING_KEY_CHARS;
use crate::ingest::integrations::{generic_kinds, key_from_request, own_endpoint};

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

/// One integration's validated settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrationSettings {
    /// For payloads without a severity, or with one the format's mapping does not know.
    pub default_severity: Severity,
    /// Triggers without their own end time resolve this long after arrival unless refreshed;
    /// `None` (`"0s"`) leaves resolving to the sender.
    pub resolve_timeout: Option<Duration>,
    /// The routing key for requests that name none (`/integrations/<kind>`, or the format's
    /// own endpoint when it takes its key from the request: `/api/v2/alerts`).
    pub routing_key: Option<String>,
    /// `generic` only: the mappers of `[integrations.generic.<name>]`.
    pub mappers: Mappers,
    /// `cloudwatch_sns` only: how subscriptions are confirmed.
    pub sns: SnsSettings,
}

impl Default for IntegrationSettings {
    fn default() -> Self {
        IntegrationSettings {
            default_severity: Severity::parse(defaults::DEFAULT_SEVERITY)
                .expect("the default severity is a severity"),
            resolve_timeout: None,
            routing_key: None,
            mappers: Mappers::default(),
            sns: SnsSettings::default(),
        }
    }
}

/// Every integration's settings, looked up by kind without hashing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrationsConfig {
    by_kind: Vec<IntegrationSettings>,
}

impl Default for IntegrationsConfig {
    fn default() -> Self {
        IntegrationsConfig {
            by_kind: vec![IntegrationSettings::default(); Integration::ALL.len()],
        }
    }
}

impl IntegrationsConfig {
    pub fn get(&self, kind: Integration) -> &IntegrationSettings {
        &self.by_kind[kind as usize]
    }

    /// Replaces one kind's settings (tests and embedders).
    pub fn set(&mut self, kind: Integration, settings: IntegrationSettings) {
        self.by_kind[kind as usize] = settings;
    }
}

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
        let mut settings = IntegrationSettings::default();
        let mut unknown = raw.unknown;
        if kind == Integration::Generic {
            settings.mappers = generic_mappers(&at, &mut unknown, p);
        }
        if kind == Integration::CloudwatchSns {
            settings.sns = sns_settings(&at, &mut unknown, p);
        }
        p.unknown(&at, &unknown);
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
            if !key_from_request(kind) {
                let path = own_endpoint(kind).unwrap_or_default();
                p.add(
                    &key_at,
                    format!(
                        "{name} is served at {path} and takes its routing key from each event; \
                         this key applies to /integrations/<kind> ({})",
                        generic_kinds()
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

/// `auto_confirm` and `confirm_url_pattern` of `[integrations.cloudwatch_sns]` (taken out of
/// `unknown`).
fn sns_settings(at: &str, unknown: &mut Unknown, p: &mut Problems) -> SnsSettings {
    let mut sns = SnsSettings::default();
    match unknown.remove("auto_confirm") {
        None => {}
        Some(toml::Value::Boolean(b)) => sns.auto_confirm = b,
        Some(other) => p.add(
            &format!("{at}.auto_confirm"),
            format!("must be true or false, not a {}", other.type_str()),
        ),
    }
    match unknown.remove("confirm_url_pattern") {
        None => {}
        Some(toml::Value::String(pattern)) => match Regex::new(&pattern) {
            Ok(re) => sns.confirm_url_pattern = re,
            Err(e) => p.add(
                &format!("{at}.confirm_url_pattern"),
                format!("{pattern:?} is not a regular expression: {e}"),
            ),
        },
        Some(other) => p.add(
            &format!("{at}.confirm_url_pattern"),
            format!(
                "must be a string (a regular expression), not a {}",
                other.type_str()
            ),
        ),
    }
    sns
}

/// `[integrations.generic.<name>]`: every table under `generic` is a mapper (taken out of
/// `unknown`); its problems are reported under `integrations.generic.<name>.<key>`.
fn generic_mappers(at: &str, unknown: &mut Unknown, p: &mut Problems) -> Mappers {
    let names: Vec<String> = unknown
        .iter()
        .filter(|(_, v)| v.is_table())
        .map(|(k, _)| k.clone())
        .collect();
    let mut mappers = Vec::new();
    for name in names {
        let table = unknown.remove(&name).expect("listed above");
        match generic::build(&name, table) {
            Ok(m) => mappers.push(m),
            Err(problems) => {
                for (key, msg) in problems {
                    let key = if key.is_empty() {
                        format!("{at}.{name}")
                    } else {
                        format!("{at}.{name}.{key}")
                    };
                    p.add(&key, msg);
                }
            }
        }
    }
    Mappers(mappers)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use super::*;

    fn load(text: &str) -> Result<Config, Vec<String>> {
        Config::from_toml(text, Vec::new()).map_err(|e| e.problems)
    }

    #[test]
    fn absent_tables_take_the_defaults() {
        let config = load("").unwrap();
        for kind in Integration::ALL {
            assert_eq!(
                config.integrations.get(kind),
                &IntegrationSettings::default()
            );
        }
        assert_eq!(
            IntegrationSettings::default().default_severity,
            Severity::Error
        );
    }

    #[test]
    fn settings_apply_to_their_kind_only() {
        let config = load(
            r#"
            [integrations.alertmanager_webhook]
            default_severity = "Warning"
            resolve_timeout = "6h"
            routing_key = "payments"
            [integrations.pagerduty_v1]
            default_severity = "critical"
            "#,
        )
        .unwrap();
        let am = config.integrations.get(Integration::AlertmanagerWebhook);
        assert_eq!(am.default_severity, Severity::Warning);
        assert_eq!(am.resolve_timeout, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(am.routing_key.as_deref(), Some("payments"));
        let v1 = config.integrations.get(Integration::PagerDutyV1);
        assert_eq!(v1.default_severity, Severity::Critical);
        assert_eq!(v1.resolve_timeout, None);
        assert_eq!(
            config.integrations.get(Integration::PagerDuty),
            &IntegrationSettings::default()
        );
    }

    #[test]
    fn zero_resolve_timeout_means_off() {
        let config = load("[integrations.alertmanager_webhook]\nresolve_timeout = \"0s\"").unwrap();
        assert_eq!(
            config
                .integrations
                .get(Integration::AlertmanagerWebhook)
                .resolve_timeout,
            None
        );
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let problems = load(
            r#"
            [integrations.alertmanager]
            default_severity = "warning"
            [integrations.alertmanager_webhook]
            default_severity = "page"
            resolve_timeout = "soon"
            routing_key = "  "
            sevrity = "x"
            [integrations.pagerduty]
            routing_key = "abc"
            "#,
        )
        .unwrap_err();
        let all = problems.join("\n");
        for needle in [
            "integrations.alertmanager: unknown integration (known: pagerduty, pagerduty_v1, alertmanager_webhook",
            "integrations.alertmanager_webhook.default_severity: \"page\" must be one of critical, error, warning, info",
            "integrations.alertmanager_webhook.resolve_timeout: invalid duration \"soon\"",
            "integrations.alertmanager_webhook.routing_key: must not be blank",
            "integrations.alertmanager_webhook.sevrity: unknown key",
            "integrations.pagerduty.routing_key: pagerduty is served at /v2/enqueue",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(problems.len(), 6, "{all}");
    }

    #[test]
    fn sns_confirmation_settings_belong_to_cloudwatch_sns_only() {
        let config = load(
            r#"
            [integrations.cloudwatch_sns]
            auto_confirm = false
            confirm_url_pattern = '^http://localhost:4566/'
            "#,
        )
        .unwrap();
        let sns = &config.integrations.get(Integration::CloudwatchSns).sns;
        assert!(!sns.auto_confirm);
        assert!(sns
            .confirm_url_pattern
            .is_match("http://localhost:4566/?Action=x"));
        assert!(SnsSettings::default().auto_confirm);

        let problems = load(
            r#"
            [integrations.cloudwatch_sns]
            auto_confirm = "yes"
            confirm_url_pattern = "(unclosed"
            [integrations.datadog]
            auto_confirm = true
            "#,
        )
        .unwrap_err();
        let all = problems.join("\n");
        assert_eq!(problems.len(), 3, "{all}");
        assert!(all.contains("integrations.cloudwatch_sns.auto_confirm: must be true or false"));
        assert!(all.contains(
            "integrations.cloudwatch_sns.confirm_url_pattern: \"(unclosed\" is not a regular expression"
        ));
        assert!(all.contains("integrations.datadog.auto_confirm: unknown key"));
    }

    #[test]
    fn an_overlong_routing_key_is_refused() {
        let text = format!(
            "[integrations.alertmanager_webhook]\nrouting_key = \"{}\"",
            "k".repeat(256)
        );
        let problems = load(&text).unwrap_err();
        assert_eq!(
            problems,
            ["integrations.alertmanager_webhook.routing_key: must be at most 255 characters"]
        );
    }
}
