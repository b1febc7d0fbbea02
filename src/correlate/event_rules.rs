//! Event rules: matchers and actions applied once to every event, in the partition of the
//! routing key its sender gave it, before dedup (`shard::door`). All matching rules apply, in
//! order; `drop` ends the event (accepted, counted, never correlated); a rule that changes the
//! routing key sends the event on to that key's partition.

use crate::config::EventRule;
use crate::event::Event;
use crate::matchers::all_match;

/// Why an event rule ended an event (the `reason` of `sluice_events_dropped_total`).
pub const DROP_EVENT_RULE: &str = "event_rule";

/// What the event rules made of an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Correlated under the routing key it came with (whatever else the rules set).
    Kept,
    /// A rule gave it another routing key; this is the one it came with.
    Rerouted(String),
    /// A rule dropped it.
    Dropped,
}

/// Applies `rules` to `event`, in order.
pub fn apply(rules: &[EventRule], event: &mut Event) -> Applied {
    let mut came_with = None;
    for rule in rules {
        if !all_match(&rule.matchers, event) {
            continue;
        }
        if rule.drop {
            return Applied::Dropped;
        }
        if let Some(sev) = rule.set_severity {
            event.severity = sev;
        }
        if let Some(rk) = &rule.set_routing_key {
            let old = std::mem::replace(&mut event.routing_key, rk.clone());
            came_with.get_or_insert(old);
        }
        for (k, v) in &rule.set_label {
            event.labels.set(k, v);
        }
        if let Some(enrich) = &rule.enrich {
            if let Some(row) = enrich.table.get(event.field(&enrich.field)) {
                for (k, v) in row {
                    if event.labels.get(k).is_none() {
                        event.labels.push(k, v);
                    }
                }
            }
        }
    }
    match came_with {
        Some(old) if old != event.routing_key => Applied::Rerouted(old),
        _ => Applied::Kept,
    }
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
            .correlate
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
        assert_eq!(apply(&rules, &mut e), Applied::Rerouted("rk".into()));
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
        assert_eq!(apply(&rules, &mut t), Applied::Dropped);
        let mut other = event("web-1");
        assert_eq!(apply(&rules, &mut other), Applied::Kept);
        assert_eq!(other.routing_key, "rk");
    }

    #[test]
    fn a_key_set_back_to_the_one_it_came_with_is_no_reroute() {
        let rules = rules(
            r#"
            [[event_rules]]
            set_routing_key = "other"
            [[event_rules]]
            matchers = [{ name = "source", op = "=", value = "db-1" }]
            set_routing_key = "rk"
            "#,
        );
        assert_eq!(apply(&rules, &mut event("db-1")), Applied::Kept);
        assert_eq!(
            apply(&rules, &mut event("web-1")),
            Applied::Rerouted("rk".into())
        );
    }

    #[test]
    fn enrich_adds_the_rows_columns_the_event_lacks() {
        let dir = std::env::temp_dir().join(format!("sluice-enrich-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let table = dir.join("hosts.csv");
        std::fs::write(&table, "host,team,tier\ndb-1,dba,1\n").unwrap();
        let rules = rules(&format!(
            "[[event_rules]]\nset_label = {{ tier = \"0\" }}\n[[event_rules]]\nenrich = {{ file = {:?}, field = \"source\" }}\n",
            table.to_str().unwrap()
        ));
        let mut e = event("db-1");
        assert_eq!(apply(&rules, &mut e), Applied::Kept);
        assert_eq!(
            e.labels,
            [
                ("tier".to_string(), "0".to_string()),
                ("team".into(), "dba".into())
            ],
            "a label the event has stays"
        );
        let mut other = event("web-1");
        apply(&rules, &mut other);
        assert_eq!(other.labels, [("tier".to_string(), "0".to_string())]);
    }

    #[test]
    fn a_rule_needs_an_action() {
        let err = Config::from_toml("[[event_rules]]\nname = \"noop\"", Vec::new()).unwrap_err();
        assert_eq!(
            err.problems,
            vec!["event_rules[0]: has no action (drop, set_severity, set_routing_key, set_label, enrich)"]
        );
    }
}
