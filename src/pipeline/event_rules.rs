//! Event rules: matchers and actions applied once to every event at the pipeline's door, before
//! the partition is chosen (a rule may change the routing key) and before dedup. All matching
//! rules apply, in order; `drop` ends the event (accepted, counted, never correlated).

use crate::config::EventRule;
use crate::event::Event;
use crate::matchers::all_match;

/// Applies `rules` to `event`; false when a rule dropped it.
pub fn apply(rules: &[EventRule], event: &mut Event) -> bool {
    for rule in rules {
        if !all_match(&rule.matchers, event) {
            continue;
        }
        if rule.drop {
            return false;
        }
        if let Some(sev) = rule.set_severity {
            event.severity = sev;
        }
        if let Some(rk) = &rule.set_routing_key {
            event.routing_key.clone_from(rk);
        }
        for (k, v) in &rule.set_label {
            match event.labels.iter_mut().find(|(have, _)| have == k) {
                Some((_, value)) => value.clone_from(v),
                None => event.labels.push((k.clone(), v.clone())),
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::event::{Action, Severity};
    use crate::integration::Integration;
    use crate::time::UnixMillis;

    fn rules(toml: &str) -> Vec<EventRule> {
        Config::from_toml(toml, Vec::new())
            .unwrap_or_else(|e| panic!("{e}"))
            .event_rules
    }

    fn event(source: &str) -> Event {
        let mut e = Event::new(
            Integration::PagerDuty,
            Action::Trigger,
            "rk".into(),
            "k".into(),
            UnixMillis(0),
        );
        e.source = source.into();
        e
    }

    #[test]
    fn actions_apply_in_order_and_drop_ends_it() {
        let rules = rules(
            r#"
            [[event_rules]]
            matchers = [{ name = "source", op = "=~", value = "db-.*" }]
            set_severity = "critical"
            set_routing_key = "dba"
            set_label = { team = "dba" }
            [[event_rules]]
            matchers = [{ name = "routing_key", op = "=", value = "dba" }]
            set_label = { team = "database", paged = "yes" }
            [[event_rules]]
            matchers = [{ name = "source", op = "=~", value = "test-.*" }]
            drop = true
            "#,
        );
        let mut e = event("db-1");
        assert!(apply(&rules, &mut e));
        assert_eq!(
            (e.severity, e.routing_key.as_str()),
            (Severity::Critical, "dba")
        );
        assert_eq!(
            e.labels,
            vec![
                ("team".to_string(), "database".to_string()),
                ("paged".into(), "yes".into())
            ]
        );
        let mut t = event("test-7");
        assert!(!apply(&rules, &mut t));
        let mut other = event("web-1");
        assert!(apply(&rules, &mut other));
        assert_eq!(other.routing_key, "rk");
    }

    #[test]
    fn a_rule_needs_an_action() {
        let err = Config::from_toml("[[event_rules]]\nname = \"noop\"", Vec::new()).unwrap_err();
        assert_eq!(
            err.problems,
            vec!["event_rules[0]: has no action (drop, set_severity, set_routing_key, set_label)"]
        );
    }
}
