//! Which silences are broad: a silence is broad when none of its matchers narrows it to some
//! of a routing key's alerts, so that it mutes every alert of the keys it names (or of every
//! key). Creating one needs the `broad_silence` scope.
//!
//! A matcher narrows when it can fail for a real alert:
//! - `routing_key` matchers never count (broad is "every alert of a routing key");
//! - `!=` and `!~` never count (they exclude some values and take all others);
//! - `severity` and `integration` `=`/`=~` count when some severity (or integration) fails
//!   them: `severity=~"critical|error|warning|info"` does not narrow;
//! - any other `=` counts when its value is not empty (`=""` matches every alert without the
//!   label);
//! - any other `=~` counts when its regex matches neither the empty value nor any of a few
//!   arbitrary values no alert is named after: `.+`, `.*`, `\S+` or `[^/]+` do not narrow,
//!   `db-.*` does. A regex that happens to match one of those values (`[a-z]`, `.{1,3}`) is
//!   counted as broad too: the check errs towards asking for the scope.

use crate::event::{Field, Severity};
use crate::integration::Integration;
use crate::matchers::{Matcher, Op};

/// Values no real alert's field is expected to be: a regex matching any of them is taken to
/// match anything.
const PROBES: &[&str] = &["x", "0", "Zz-9_.:@ ~", "sluice\u{7f}probe\u{1}", "/a/b?c=d"];

/// Whether `m` can fail for an alert of the routing keys a silence names.
pub fn narrows(m: &Matcher) -> bool {
    if !matches!(m.op, Op::Eq | Op::Re) {
        return false;
    }
    match &m.field {
        Field::RoutingKey => false,
        Field::Severity => [
            Severity::Info,
            Severity::Warning,
            Severity::Error,
            Severity::Critical,
        ]
        .iter()
        .any(|s| !m.matches_value(s.as_str())),
        Field::Integration => Integration::ALL
            .iter()
            .any(|k| !m.matches_value(k.as_str())),
        _ => !m.matches_value("") && !PROBES.iter().any(|p| m.matches_value(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn narrows_(name: &str, op: &str, value: &str) -> bool {
        narrows(&Matcher::new(name, op, value).unwrap())
    }

    #[test]
    fn matchers_that_take_every_value_do_not_narrow() {
        for (name, op, value) in [
            ("source", "=~", ".+"),
            ("source", "=~", ".*"),
            ("class", "=~", ".*"),
            ("labels.alertname", "=~", "\\S+"),
            ("labels.team", "=~", "[^/]+"),
            ("labels.team", "=~", "(?s).+"),
            ("summary", "=~", ".{1,}"),
            ("source", "=", ""),
            ("source", "!=", "db-1"),
            ("source", "!~", "db-.*"),
            ("routing_key", "=", "payments"),
            ("severity", "=~", "critical|error|warning|info"),
            ("severity", "!=", "info"),
            ("integration", "=~", ".+"),
        ] {
            assert!(!narrows_(name, op, value), "{name}{op}{value:?}");
        }
    }

    #[test]
    fn matchers_that_pick_some_alerts_narrow() {
        for (name, op, value) in [
            ("source", "=", "db-1"),
            ("source", "=~", "db-.*"),
            ("class", "=", "HighLatency"),
            ("labels.team", "=~", "payments|checkout"),
            ("entity.host", "=", "web-3"),
            ("severity", "=", "info"),
            ("severity", "=~", "warning|info"),
            ("integration", "=", "grafana"),
            ("dedup_key", "=~", "disk-[0-9]+"),
        ] {
            assert!(narrows_(name, op, value), "{name}{op}{value:?}");
        }
    }
}
