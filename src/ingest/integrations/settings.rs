//! Each integration's settings as its parser reads them: the common keys that config validated
//! (`default_severity`, `resolve_timeout`, `routing_key`) plus the keys the format owns, which
//! the format itself validates ([`super::Format::own_settings`]): the generic mapper's
//! `[integrations.generic.<name>]` tables, the SNS confirmation settings of `cloudwatch_sns`.
//! Config names no kind; the registry's dispatch hands each table to its format.

use std::time::Duration;

use crate::config::integrations::{IntegrationConfig, IntegrationsConfig};
use crate::config::{Config, ConfigError, Problems};
use crate::event::Severity;
use crate::integration::{ByKind, Integration};

use super::cloudwatch_sns::SnsSettings;
use super::generic::{Mappers, DEFINITIONS_DIR};

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
    /// `alertmanager_api` and `alertmanager_webhook` only: the labels in which two replicas of
    /// one Prometheus (an HA pair) differ; they are dropped, so the pair's alerts are one.
    pub replica_labels: Vec<String>,
}

impl Default for IntegrationSettings {
    fn default() -> Self {
        IntegrationSettings::common(&IntegrationConfig::default())
    }
}

impl IntegrationSettings {
    /// The common settings, with every format-owned setting at its default.
    fn common(config: &IntegrationConfig) -> Self {
        IntegrationSettings {
            default_severity: config.default_severity,
            resolve_timeout: config.resolve_timeout,
            routing_key: config.routing_key.clone(),
            mappers: Mappers::default(),
            sns: SnsSettings::default(),
            replica_labels: super::prometheus::REPLICA_LABELS
                .iter()
                .map(|l| l.to_string())
                .collect(),
        }
    }
}

/// Every integration's settings, by kind.
pub type SettingsByKind = ByKind<IntegrationSettings>;

impl SettingsByKind {
    /// Builds every kind's settings, each format reading its own keys; a key no one took is
    /// reported as unknown under `integrations.<kind>`.
    pub fn build(config: &IntegrationsConfig, p: &mut Problems) -> Self {
        // A bundled definition that does not load (never in a tested build) stops the start
        // here, by name, rather than at its first request.
        for problem in super::catalog::bundled_problems() {
            p.add("catalog", problem.clone());
        }
        ByKind::from_fn(|&kind| {
            let kind_config = config.get(kind);
            let mut settings = IntegrationSettings::common(kind_config);
            if !kind_config.own.is_empty() {
                let at = format!("integrations.{}", kind.as_str());
                let mut own = kind_config.own.clone();
                let dir = own
                    .remove(DEFINITIONS_DIR)
                    .filter(|_| kind == Integration::Generic);
                super::own_settings(kind, &at, &mut own, &mut settings, p);
                p.unknown(&at, &own);
                if let Some(dir) = dir {
                    add_definitions(&dir, &format!("{at}.{DEFINITIONS_DIR}"), &mut settings, p);
                }
            }
            settings
        })
    }

    /// [`Self::build`], refused with every problem if any.
    pub fn checked(config: &IntegrationsConfig) -> Result<Self, ConfigError> {
        let mut p = Problems::default();
        let settings = SettingsByKind::build(config, &mut p);
        p.finish(settings)
    }

    /// The settings of a whole config file (tests and fixtures), every problem at once.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config = Config::from_toml_with(text, Vec::new(), check)?;
        SettingsByKind::checked(&config.integrations)
    }
}

/// `[integrations.generic] definitions_dir`: the user's definitions (docs/integration-catalog.md),
/// each a mapper named by its file, beside the configured ones.
fn add_definitions(
    dir: &toml::Value,
    at: &str,
    settings: &mut IntegrationSettings,
    p: &mut Problems,
) {
    let Some(dir) = dir.as_str() else {
        p.add(at, "must be a folder's path");
        return;
    };
    match super::catalog::load_dir(std::path::Path::new(dir)) {
        Ok(definitions) => {
            for d in definitions {
                if settings.mappers.get(&d.kind).is_some() {
                    p.add(
                        &format!("integrations.generic.{}", d.kind),
                        format!("the definition {dir}/{}.toml has this name already", d.kind),
                    );
                } else {
                    settings.mappers.0.push(d.mapper);
                }
            }
        }
        Err(problems) => {
            for problem in problems {
                p.add(at, problem);
            }
        }
    }
}

/// Checks the format-owned keys of a validated config: pass it to
/// [`Config::from_toml_with`] / [`Config::load_with`].
pub fn check(config: &Config, p: &mut Problems) {
    SettingsByKind::build(&config.integrations, p);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integration::Integration;

    fn load(text: &str) -> Result<SettingsByKind, Vec<String>> {
        SettingsByKind::from_toml(text).map_err(|e| e.problems)
    }

    #[test]
    fn absent_tables_take_the_defaults() {
        let settings = load("").unwrap();
        for kind in Integration::ALL {
            assert_eq!(settings.get(kind), &IntegrationSettings::default());
        }
        assert_eq!(
            IntegrationSettings::default().default_severity,
            Severity::Error
        );
    }

    #[test]
    fn settings_apply_to_their_kind_only() {
        let settings = load(
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
        let am = settings.get(Integration::AlertmanagerWebhook);
        assert_eq!(am.default_severity, Severity::Warning);
        assert_eq!(am.resolve_timeout, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(am.routing_key.as_deref(), Some("payments"));
        let v1 = settings.get(Integration::PagerDutyV1);
        assert_eq!(v1.default_severity, Severity::Critical);
        assert_eq!(v1.resolve_timeout, None);
        assert_eq!(
            settings.get(Integration::PagerDuty),
            &IntegrationSettings::default()
        );
    }

    #[test]
    fn zero_resolve_timeout_means_off() {
        let settings =
            load("[integrations.alertmanager_webhook]\nresolve_timeout = \"0s\"").unwrap();
        assert_eq!(
            settings
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
        let settings = load(
            r#"
            [integrations.cloudwatch_sns]
            auto_confirm = false
            confirm_url_pattern = '^http://localhost:4566/'
            "#,
        )
        .unwrap();
        let sns = &settings.get(Integration::CloudwatchSns).sns;
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
