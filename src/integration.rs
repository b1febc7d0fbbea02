//! The one registry of integration kinds: their names, where each is served, and which format
//! parses it. Everything else imports the kinds from here; this module imports nothing of the
//! stages (event, config and ingest all stand on it).
//!
//! The kinds defined declaratively (`catalog/<kind>.toml`, `ingest::integrations::catalog`)
//! are appended to the list by build.rs ([`with_catalog!`]); nothing here names them.
//!
//! Adding a native integration is one file under `ingest/integrations/`, ONE line in [`registry!`]
//! and one fixture folder `tests/fixtures/integrations/<kind>/`. A line reads
//! `Variant => "snake_case_name", module::FormatType, serving;`:
//! - the variant and name generate [`Integration`] (the name is the `integration` metrics label,
//!   the string in incident messages, the `[integrations.<name>]` config table, the
//!   `/integrations/<name>/...` path and the fixture folder);
//! - `module::FormatType` names the format under `ingest/integrations/`; it is resolved only
//!   where the ingest stage expands the list into its dispatch `match`es, never here;
//! - `serving` is a [`Serving`]: whether the kind is served at
//!   `/integrations/<kind>/<routing_key>`, its own vendor path if it has one, and how its
//!   sender names its routing key. The router's path table is generated from it.

/// The longest routing key any sender may use (PagerDuty's `routing_key` limit).
pub const MAX_ROUTING_KEY_CHARS: usize = 255;

/// THE registry. Passes the list to the macro named by the caller: [`Integration`] below and
/// the ingest stage's dispatch are generated from this one place.
macro_rules! registry {
    ($then:ident) => {
        $crate::integration::with_catalog! { $then {
            /// PagerDuty Events API v2 (`POST /v2/enqueue`; change events have their own route).
            PagerDuty => "pagerduty", pagerduty::V2,
                Serving::own("/v2/enqueue");
            /// PagerDuty Events API v1 (`POST /generic/2010-04-15/create_event.json`).
            PagerDutyV1 => "pagerduty_v1", pagerduty::V1,
                Serving::own("/generic/2010-04-15/create_event.json");
            /// Prometheus Alertmanager webhook receiver, payload version 4 (batched).
            AlertmanagerWebhook => "alertmanager_webhook", alertmanager_webhook::Webhook,
                Serving::GENERIC;
            /// Prometheus Alertmanager API v2 `POST /api/v2/alerts` (batched; resolves by `endsAt`).
            AlertmanagerApi => "alertmanager_api", alertmanager_api::Api,
                Serving::GENERIC.also_at("/api/v2/alerts");
            /// Grafana unified alerting webhook contact point, payload version 1 (batched).
            Grafana => "grafana", grafana::Webhook,
                Serving::GENERIC;
            /// Opsgenie Alert API v2 (`POST /v2/alerts`, `/v2/alerts/<alias>/close`), emulated.
            Opsgenie => "opsgenie", opsgenie::AlertApi,
                Serving::GENERIC.also_at("/v2/alerts").with_tail().key_in_auth("GenieKey");
            /// Datadog webhook, sluice's documented payload template (and Datadog's default).
            Datadog => "datadog", datadog::Webhook,
                Serving::GENERIC;
            /// New Relic workflow webhook, default template.
            NewrelicWorkflow => "newrelic_workflow", newrelic_workflow::Webhook,
                Serving::GENERIC;
            /// New Relic legacy alert-policy webhook channel (deprecated by New Relic).
            NewrelicLegacy => "newrelic_legacy", newrelic_legacy::Webhook,
                Serving::GENERIC;
            /// AWS CloudWatch alarms via an SNS HTTP/S subscription (JSON posted as text/plain).
            CloudwatchSns => "cloudwatch_sns", cloudwatch_sns::Sns,
                Serving::GENERIC;
            /// Azure Monitor action group webhook, common alert schema.
            AzureMonitor => "azure_monitor", azure_monitor::CommonAlert,
                Serving::GENERIC;
            /// Google Cloud Monitoring webhook notification channel, version 1.2.
            GcpMonitoring => "gcp_monitoring", gcp_monitoring::Webhook,
                Serving::GENERIC;
            /// Zabbix webhook media type posting its macros as JSON.
            Zabbix => "zabbix", zabbix::MediaType,
                Serving::GENERIC;
            /// Nagios / Icinga: PagerDuty's Nagios plugin form fields (at PagerDuty's path, key
            /// in `CONTACTPAGER`), macros as JSON, Icinga 2 JSON.
            Nagios => "nagios", nagios::Notification,
                Serving::GENERIC.also_at_with_key_in_body("/nagios/2010-04-15/create_event");
            /// Sentry integration platform webhooks: issue alerts, metric alerts, issue resolves.
            Sentry => "sentry", sentry::Webhook,
                Serving::GENERIC;
            /// Elastic / Kibana alerting through the Webhook connector, with the body sluice documents.
            Elastic => "elastic", elastic::Webhook,
                Serving::GENERIC;
            /// Splunk Enterprise / Cloud webhook alert action (triggers only: `resolve_timeout`).
            Splunk => "splunk", splunk::Webhook,
                Serving::GENERIC;
            /// Dynatrace problem notifications (custom integration webhook, documented template).
            Dynatrace => "dynatrace", dynatrace::Webhook,
                Serving::GENERIC;
            /// Checkmk notifications posted by a notification script as JSON (`NOTIFY_*`).
            Checkmk => "checkmk", checkmk::Webhook,
                Serving::GENERIC;
            /// Uptime Kuma webhook notifications (JSON preset).
            UptimeKuma => "uptime_kuma", uptime_kuma::Webhook,
                Serving::GENERIC;
            /// Pingdom webhook state changes (uptime and transaction checks).
            Pingdom => "pingdom", pingdom::Webhook,
                Serving::GENERIC;
            /// Explicit beats of sluice's dead man's switches (`POST /heartbeat/<name>`).
            Heartbeat => "heartbeat", heartbeat::Beat,
                Serving::GENERIC.also_at("/heartbeat").with_tail();
            /// The generic mapper: any JSON webhook mapped in `[integrations.generic.<name>]`.
            Generic => "generic", generic::Mapped,
                Serving::GENERIC;
        } }
    };
}
pub(crate) use registry;

// `with_catalog!`: the catalog's lines, generated by build.rs from `catalog/*.toml`.
include!(concat!(env!("OUT_DIR"), "/catalog_registry.rs"));
pub(crate) use with_catalog;

/// Where a kind is served and where its sender puts the routing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Serving {
    /// Served at `POST /integrations/<kind>/<routing_key>`, the key taken from the request
    /// (the path, `X-Routing-Key`, `?routing_key=`, [`Self::auth_key_scheme`], the config).
    pub generic: bool,
    /// The vendor's own path, so a sender only changes its base URL.
    pub own: Option<OwnPath>,
    /// The `Authorization` scheme whose credentials are the routing key, for senders that can
    /// only send their vendor's key (`GenieKey <key>`).
    pub auth_key_scheme: Option<&'static str>,
}

/// A vendor path a kind is also (or only) served at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnPath {
    pub path: &'static str,
    /// The routing key is in the body (PagerDuty's `routing_key`, Nagios' `CONTACTPAGER`);
    /// otherwise it comes from the request as at `/integrations/<kind>/...`.
    pub key_in_body: bool,
    /// `/<more>` may follow the path and belongs to the format (`/v2/alerts/<alias>/close`).
    pub tail: bool,
}

impl Serving {
    /// Served at `/integrations/<kind>/<routing_key>` only.
    pub const GENERIC: Serving = Serving {
        generic: true,
        own: None,
        auth_key_scheme: None,
    };

    /// Served only at the vendor's path, the routing key in the body (PagerDuty's APIs).
    pub const fn own(path: &'static str) -> Serving {
        Serving {
            generic: false,
            own: Some(OwnPath {
                path,
                key_in_body: true,
                tail: false,
            }),
            auth_key_scheme: None,
        }
    }

    /// Also served at the vendor's `path`, the key from the request; and under
    /// `/integrations/<kind>/<routing_key>` followed or not by `path` (a sender's base URL).
    pub const fn also_at(self, path: &'static str) -> Serving {
        Serving {
            own: Some(OwnPath {
                path,
                key_in_body: false,
                tail: false,
            }),
            ..self
        }
    }

    /// Also served at the vendor's `path`, with the routing key in the body.
    pub const fn also_at_with_key_in_body(self, path: &'static str) -> Serving {
        Serving {
            own: Some(OwnPath {
                path,
                key_in_body: true,
                tail: false,
            }),
            ..self
        }
    }

    /// The own path may be followed by `/<more>`, which the format reads.
    pub const fn with_tail(self) -> Serving {
        let Some(own) = self.own else {
            panic!("with_tail needs an own path");
        };
        Serving {
            own: Some(OwnPath { tail: true, ..own }),
            ..self
        }
    }

    /// The `Authorization: <scheme> <key>` credentials are the routing key.
    pub const fn key_in_auth(self, scheme: &'static str) -> Serving {
        Serving {
            auth_key_scheme: Some(scheme),
            ..self
        }
    }

    /// The own path whose routing key comes from the request, if any: the one a sender's base
    /// URL may end in under `/integrations/<kind>/<routing_key>`.
    pub fn own_path_keyed_by_request(&self) -> Option<&'static str> {
        self.own.filter(|o| !o.key_in_body).map(|o| o.path)
    }
}

/// Generates [`Integration`] from the registry list.
macro_rules! integration_enum {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $format:path, $serving:expr; )*) => {
        /// Which parser produced an event. One variant per line of [`registry!`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Integration {
            $( $(#[$doc])* $variant, )*
        }

        impl Integration {
            pub const ALL: [Integration; [$($name),*].len()] = [$(Integration::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( Integration::$variant => $name, )*
                }
            }

            /// The integration named `name` (exactly, as [`Integration::as_str`] spells it).
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $( $name => Some(Integration::$variant), )*
                    _ => None,
                }
            }

            /// Where this kind is served.
            pub const fn serving(self) -> Serving {
                match self {
                    $( Integration::$variant => $serving, )*
                }
            }
        }
    };
}
registry!(integration_enum);

/// Words of a [`KindSet`]: room for 256 kinds.
const KIND_WORDS: usize = 4;
const _: () = assert!(Integration::ALL.len() <= 64 * KIND_WORDS);
// Key spaces are a byte, one past the kinds taken by `KeySpace::SENTRY_METRIC_ALERTS`.
const _: () = assert!(Integration::ALL.len() < u8::MAX as usize);

impl Integration {
    /// Whether the kind is a catalog definition (`catalog/<kind>.toml`) rather than native Rust.
    /// Their metrics series appear when first used, so that the 100-odd kinds a deployment
    /// never sees do not fill `/metrics` with zeros; native kinds' are there from the start.
    pub fn is_catalog(self) -> bool {
        self as usize >= Integration::ALL.len() - CATALOG_KINDS
    }

    /// Where this integration's dedup keys live (see [`KeySpace`]).
    pub fn key_space(self) -> KeySpace {
        let canonical = match self {
            // One PagerDuty key space, as in PagerDuty: v1 and v2 events of a key meet.
            Integration::PagerDutyV1 => Integration::PagerDuty,
            // Both carry Prometheus' label fingerprint: an alert sent straight and relayed by
            // an Alertmanager is one alert.
            Integration::AlertmanagerApi => Integration::AlertmanagerWebhook,
            other => other,
        };
        KeySpace(canonical as u8)
    }

    /// Whether the routing key comes from the request (`/integrations/<kind>/<routing_key>`,
    /// `X-Routing-Key`, ...) rather than from the body (PagerDuty's).
    pub fn key_from_request(self) -> bool {
        self.serving().generic
    }

    /// The vendor path of a kind that has one.
    pub fn own_path(self) -> Option<&'static str> {
        self.serving().own.map(|o| o.path)
    }

    /// The kinds served at `/integrations/<kind>/...`, comma-separated, for error messages.
    pub fn generic_kinds() -> String {
        Integration::ALL
            .iter()
            .filter(|k| k.key_from_request())
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One value per kind, looked up without hashing (per-kind settings, counters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByKind<T>(Vec<T>);

impl<T: Clone + Default> Default for ByKind<T> {
    fn default() -> Self {
        ByKind(vec![T::default(); Integration::ALL.len()])
    }
}

impl<T> ByKind<T> {
    /// Each kind's value, made in registry order.
    pub fn from_fn(f: impl FnMut(&Integration) -> T) -> Self {
        ByKind(Integration::ALL.iter().map(f).collect())
    }

    pub fn get(&self, kind: Integration) -> &T {
        &self.0[kind as usize]
    }

    /// Replaces one kind's value (tests and embedders).
    pub fn set(&mut self, kind: Integration, value: T) {
        self.0[kind as usize] = value;
    }
}

/// Which dedup keys can meet: alerts are matched on `(routing_key, key space, dedup_key)`, so
/// two formats posting to one routing key never fold each other's alerts together because
/// their ids happen to agree (a Zabbix event id and a Datadog alert id). Formats whose senders
/// share keys share a space ([`Integration::key_space`]); a format with two separate id
/// sequences gives the second its own ([`KeySpace::SENTRY_METRIC_ALERTS`]). Internal only:
/// messages and answers carry the key as the sender sent it (or as it was derived).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeySpace(pub u8);

impl KeySpace {
    /// Sentry metric alert ids: a sequence apart from issue ids.
    pub const SENTRY_METRIC_ALERTS: KeySpace = KeySpace(Integration::ALL.len() as u8);
}

impl KeySpace {
    /// Its name: the integration whose space it is, or `sentry_metric_alerts`. Names, not
    /// numbers, leave the process (snapshots), since numbers follow the registry's order.
    pub fn name(self) -> &'static str {
        if self == KeySpace::SENTRY_METRIC_ALERTS {
            return "sentry_metric_alerts";
        }
        Integration::ALL
            .get(self.0 as usize)
            .map_or("unknown", |kind| kind.as_str())
    }

    /// The key space named `name` (see [`KeySpace::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        if name == "sentry_metric_alerts" {
            return Some(KeySpace::SENTRY_METRIC_ALERTS);
        }
        Integration::parse(name).map(|kind| KeySpace(kind as u8))
    }
}

/// Integrations and key spaces are stored by name (snapshots), never by registry number.
impl serde::Serialize for Integration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Integration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Integration::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown integration {name:?}")))
    }
}

impl serde::Serialize for KeySpace {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for KeySpace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        KeySpace::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown key space {name:?}")))
    }
}

/// A set of integrations, a bit per kind; stored (snapshots) as their names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindSet([u64; KIND_WORDS]);

impl KindSet {
    pub fn insert(&mut self, kind: Integration) {
        let i = kind as usize;
        self.0[i / 64] |= 1 << (i % 64);
    }

    pub fn contains(&self, kind: Integration) -> bool {
        let i = kind as usize;
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Its kinds, in registry order.
    pub fn iter(&self) -> impl Iterator<Item = Integration> + '_ {
        Integration::ALL
            .iter()
            .copied()
            .filter(|k| self.contains(*k))
    }
}

impl serde::Serialize for KindSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Integration::as_str))
    }
}

impl<'de> serde::Deserialize<'de> for KindSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut set = KindSet::default();
        for kind in Vec::<Integration>::deserialize(d)? {
            set.insert(kind);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_snake_case_name_that_parses_back() {
        for kind in Integration::ALL {
            let name = kind.as_str();
            assert!(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert_eq!(Integration::parse(name), Some(kind));
        }
        assert_eq!(Integration::parse("PagerDuty"), None);
    }

    #[test]
    fn a_kind_set_holds_each_kind_once_and_reads_back_by_name() {
        let mut set = KindSet::default();
        for kind in Integration::ALL.iter().rev() {
            set.insert(*kind);
            set.insert(*kind);
        }
        assert_eq!(set.iter().collect::<Vec<_>>(), Integration::ALL);
        let mut two = KindSet::default();
        two.insert(Integration::Generic);
        two.insert(Integration::PagerDuty);
        let json = serde_json::to_string(&two).unwrap();
        assert_eq!(json, r#"["pagerduty","generic"]"#);
        assert_eq!(serde_json::from_str::<KindSet>(&json).unwrap(), two);
        assert!(!two.contains(Integration::Grafana));
    }

    #[test]
    fn pagerduty_keeps_its_own_endpoints() {
        assert_eq!(Integration::PagerDuty.own_path(), Some("/v2/enqueue"));
        assert_eq!(
            Integration::PagerDutyV1.own_path(),
            Some("/generic/2010-04-15/create_event.json")
        );
        assert_eq!(Integration::AlertmanagerWebhook.own_path(), None);
        let generic = Integration::generic_kinds();
        assert!(generic.starts_with("alertmanager_webhook"), "{generic}");
        assert!(
            !generic
                .split(", ")
                .any(|k| k == "pagerduty" || k == "pagerduty_v1"),
            "{generic}"
        );
        assert!(!Integration::PagerDuty.key_from_request());
        assert!(Integration::AlertmanagerWebhook.key_from_request());
    }

    #[test]
    fn own_paths_are_distinct_and_rooted() {
        let mut paths: Vec<&str> = Integration::ALL
            .iter()
            .filter_map(|k| k.own_path())
            .collect();
        assert!(paths.iter().all(|p| p.starts_with('/')), "{paths:?}");
        let n = paths.len();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), n, "two kinds share a path");
        let opsgenie = Integration::Opsgenie.serving();
        assert_eq!(opsgenie.auth_key_scheme, Some("GenieKey"));
        assert!(opsgenie.own.is_some_and(|o| o.tail && !o.key_in_body));
        assert_eq!(
            Integration::Nagios.serving().own_path_keyed_by_request(),
            None
        );
        assert_eq!(
            Integration::AlertmanagerApi
                .serving()
                .own_path_keyed_by_request(),
            Some("/api/v2/alerts")
        );
    }
}
