//! The shard against a reference model, on random interleavings of triggers, repeated
//! triggers, acknowledges, resolves (also before any trigger, and of resolved alerts),
//! re-triggers after resolve, clock jumps across every window edge, a silence that starts and
//! ends, and inhibitors appearing and clearing.
//!
//! The model keeps plain vectors and recomputes everything from scratch at every step: which
//! alerts are silenced or inhibited, which incident a new alert joins, what every incident
//! publishes. It states the semantics of README "Correlation" directly; the shard reaches the
//! same answers through hash tables, an inhibition index and timers. They must publish the
//! same messages at every step.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::config::{InhibitRule, RuleConfig};
use crate::event::{Field, Severity};
use crate::integration::Integration;
use crate::matchers::Matcher;

const T0: u64 = 1_700_000_000_000;
const GROUP_WAIT: u64 = 10_000;
const GROUP_INTERVAL: u64 = 30_000;
const WINDOW: u64 = 60_000;
const MAX_DURATION: u64 = 150_000;

/// The six alert keys: (source, class, group). `class = down` inhibits `class = app` alerts
/// of the same group; the silence covers source `b`.
const KEYS: [(&str, &str, &str); 6] = [
    ("a", "app", "g1"),
    ("a", "app", "g2"),
    ("b", "app", "g1"),
    ("c", "down", "g1"),
    ("d", "down", "g2"),
    ("b", "app", "g2"),
];

#[derive(Clone, Debug)]
enum Op {
    Trigger(usize, Severity),
    Ack(usize),
    Resolve(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let sev = prop_oneof![
        Just(Severity::Warning),
        Just(Severity::Error),
        Just(Severity::Critical)
    ];
    let step = prop::sample::select(vec![
        0u64, 1, 999, 1_000, 5_000, 9_999, 10_000, 10_001, 29_999, 30_000, 59_999, 60_000, 60_001,
        150_000,
    ]);
    prop_oneof![
        4 => (0..KEYS.len(), sev).prop_map(|(k, s)| Op::Trigger(k, s)),
        1 => (0..KEYS.len()).prop_map(Op::Ack),
        2 => (0..KEYS.len()).prop_map(Op::Resolve),
        3 => step.prop_map(Op::Advance),
    ]
}

/// What the comparison looks at in a message.
type Canon = (String, String, u64, u64, u64, u64, String, String);

fn canon(v: &serde_json::Value) -> Canon {
    (
        v["group_key"]["source"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        v["type"].as_str().unwrap_or_default().to_string(),
        v["seq"].as_u64().unwrap_or_default(),
        v["alert_count"].as_u64().unwrap_or_default(),
        v["open_alert_count"].as_u64().unwrap_or_default(),
        v["event_count"].as_u64().unwrap_or_default(),
        v["status"].as_str().unwrap_or_default().to_string(),
        v["severity"].as_str().unwrap_or_default().to_string(),
    )
}

struct MAlert {
    key: usize,
    open: bool,
    acked: bool,
    severity: Severity,
    events: u64,
    /// None until first evaluated (a new alert).
    suppressed: Option<bool>,
}

struct MIncident {
    source: &'static str,
    opened_at: u64,
    window_end: u64,
    indexed: bool,
    closed: bool,
    alerts: Vec<MAlert>,
    events: u64,
    gathered: u64,
    dirty: bool,
    published: bool,
    seq: u64,
    last_published: u64,
    published_severity: Severity,
    published_status: &'static str,
    last_severity: Severity,
}

impl MIncident {
    fn open(&self) -> impl Iterator<Item = &MAlert> {
        self.alerts.iter().filter(|a| a.open)
    }

    fn severity(&self) -> Severity {
        self.open()
            .map(|a| a.severity)
            .max()
            .unwrap_or(self.last_severity)
    }

    fn status(&self) -> &'static str {
        let open = self.open().count();
        if open == 0 {
            "resolved"
        } else if self.open().all(|a| a.acked) {
            "acknowledged"
        } else {
            "triggered"
        }
    }

    fn visible(&self) -> usize {
        self.open().filter(|a| a.suppressed == Some(false)).count()
    }
}

struct Model {
    silence: (u64, u64),
    incidents: Vec<MIncident>,
    out: Vec<Canon>,
}

impl Model {
    fn find_open(&mut self, key: usize) -> Option<(usize, usize)> {
        self.incidents.iter().enumerate().find_map(|(i, inc)| {
            inc.alerts
                .iter()
                .position(|a| a.open && a.key == key)
                .map(|j| (i, j))
        })
    }

    fn apply(&mut self, op: &Op, now: u64) {
        match *op {
            Op::Trigger(k, sev) => match self.find_open(k) {
                Some((i, j)) => {
                    let inc = &mut self.incidents[i];
                    inc.events += 1;
                    let a = &mut inc.alerts[j];
                    a.events += 1;
                    if a.severity != sev {
                        a.severity = sev;
                        inc.dirty = true;
                    }
                }
                None => {
                    let source = KEYS[k].0;
                    let current = self
                        .incidents
                        .iter()
                        .position(|inc| !inc.closed && inc.indexed && inc.source == source);
                    let i = match current {
                        Some(i) if now < self.incidents[i].window_end => i,
                        other => {
                            if let Some(i) = other {
                                self.incidents[i].indexed = false;
                            }
                            self.incidents.push(MIncident {
                                source,
                                opened_at: now,
                                window_end: now + WINDOW,
                                indexed: true,
                                closed: false,
                                alerts: Vec::new(),
                                events: 0,
                                gathered: 0,
                                dirty: false,
                                published: false,
                                seq: 0,
                                last_published: now,
                                published_severity: sev,
                                published_status: "triggered",
                                last_severity: sev,
                            });
                            self.incidents.len() - 1
                        }
                    };
                    let inc = &mut self.incidents[i];
                    inc.window_end = inc
                        .window_end
                        .max((now + WINDOW).min(inc.opened_at + MAX_DURATION));
                    inc.events += 1;
                    inc.dirty = true;
                    inc.alerts.push(MAlert {
                        key: k,
                        open: true,
                        acked: false,
                        severity: sev,
                        events: 1,
                        suppressed: None,
                    });
                }
            },
            Op::Ack(k) => {
                if let Some((i, j)) = self.find_open(k) {
                    let inc = &mut self.incidents[i];
                    inc.events += 1;
                    inc.alerts[j].events += 1;
                    if !inc.alerts[j].acked {
                        inc.alerts[j].acked = true;
                        inc.dirty = true;
                    }
                }
            }
            Op::Resolve(k) => {
                if let Some((i, j)) = self.find_open(k) {
                    let inc = &mut self.incidents[i];
                    inc.events += 1;
                    let before = inc.severity();
                    let a = &mut inc.alerts[j];
                    a.events += 1;
                    a.open = false;
                    a.acked = false;
                    if inc.open().count() == 0 {
                        inc.last_severity = before;
                    }
                    inc.dirty = true;
                }
            }
            Op::Advance(_) => {}
        }
    }

    /// Recomputes every open alert's suppression from scratch.
    fn suppress(&mut self, now: u64) {
        let inhibitors: Vec<&str> = self
            .incidents
            .iter()
            .flat_map(|inc| inc.open())
            .filter(|a| KEYS[a.key].1 == "down")
            .map(|a| KEYS[a.key].2)
            .collect();
        let silence_active = now >= self.silence.0 && now < self.silence.1;
        for inc in &mut self.incidents {
            for a in inc.alerts.iter_mut().filter(|a| a.open) {
                let (source, class, group) = KEYS[a.key];
                let silenced = silence_active && source == "b";
                let inhibited = class == "app" && inhibitors.contains(&group);
                let now_suppressed = silenced || inhibited;
                match a.suppressed {
                    None => inc.gathered += u64::from(!now_suppressed),
                    Some(true) if !now_suppressed => {
                        inc.gathered += 1;
                        inc.dirty = true;
                    }
                    Some(false) if now_suppressed => inc.dirty = true,
                    _ => {}
                }
                a.suppressed = Some(now_suppressed);
            }
        }
    }

    fn emit(&mut self, i: usize, kind: &str, now: u64) {
        let inc = &mut self.incidents[i];
        inc.seq += 1;
        self.out.push((
            inc.source.to_string(),
            kind.to_string(),
            inc.seq,
            inc.alerts.len() as u64,
            inc.open().count() as u64,
            inc.events,
            inc.status().to_string(),
            inc.severity().as_str().to_string(),
        ));
        inc.published = true;
        inc.published_severity = inc.severity();
        inc.published_status = inc.status();
        inc.last_published = now;
        inc.dirty = false;
    }

    /// The instants up to `to` at which something may happen without an event: the end of a
    /// `group_wait`, a coalesced update coming due, a silence starting or ending.
    fn deadlines(&self, after: u64, to: u64) -> Vec<u64> {
        let mut at: Vec<u64> = self
            .incidents
            .iter()
            .filter(|i| !i.closed)
            .flat_map(|i| [i.opened_at + GROUP_WAIT, i.last_published + GROUP_INTERVAL])
            .chain([self.silence.0, self.silence.1])
            .filter(|t| *t > after && *t <= to)
            .collect();
        at.sort_unstable();
        at.dedup();
        at
    }

    /// Lets time run from `from` to `to`, stopping at every deadline on the way.
    fn run(&mut self, from: u64, to: u64) {
        let mut t = from;
        while let Some(&next) = self.deadlines(t, to).first() {
            self.suppress(next);
            self.review(next);
            t = next;
        }
    }

    fn review(&mut self, now: u64) {
        for i in 0..self.incidents.len() {
            let inc = &self.incidents[i];
            if inc.closed {
                continue;
            }
            if inc.open().count() == 0 {
                if inc.published {
                    self.emit(i, "resolved", now);
                } else if inc.gathered > 0 {
                    self.emit(i, "opened", now);
                    self.emit(i, "resolved", now);
                }
                self.incidents[i].closed = true;
                self.incidents[i].indexed = false;
                continue;
            }
            if !inc.published {
                if now >= inc.opened_at + GROUP_WAIT && inc.gathered >= 1 && inc.visible() > 0 {
                    self.emit(i, "opened", now);
                }
                continue;
            }
            if !inc.dirty || inc.visible() == 0 {
                continue;
            }
            let urgent =
                inc.severity() > inc.published_severity || inc.status() != inc.published_status;
            if urgent || inc.last_published + GROUP_INTERVAL <= now {
                // Reaching acknowledged is its own message type.
                let acked =
                    inc.status() == "acknowledged" && inc.published_status != "acknowledged";
                self.emit(i, if acked { "acknowledged" } else { "updated" }, now);
            }
        }
    }
}

fn shard() -> Shard {
    shard_with(None, Caps::unbounded(100))
}

/// The model's shard with flap detection and caps (the model itself has neither).
fn shard_with(flap: Option<crate::config::FlapConfig>, caps: Caps) -> Shard {
    let rule = RuleConfig {
        flap,
        name: "model".into(),
        group_by: vec![Field::Source],
        window_duration: Duration::from_millis(WINDOW),
        max_duration: Duration::from_millis(MAX_DURATION),
        group_wait: Duration::from_millis(GROUP_WAIT),
        group_interval: Duration::from_millis(GROUP_INTERVAL),
        ..RuleConfig::plain()
    };
    let inhibit = InhibitRule {
        source: vec![Matcher::new("class", "=", "down").unwrap()],
        target: vec![Matcher::new("class", "=", "app").unwrap()],
        equal: vec![Field::Group],
    };
    let rules: Arc<[Rule]> = rules::with_fallback(&[rule]).into();
    let inhibit: Arc<[Inhibit]> = vec![Inhibit::from(&inhibit)].into();
    Shard::new(rules, inhibit, caps)
}

/// A shard under the built-in rule with every noise default, on the model's time scale.
fn noise_defaults_shard(caps: Caps) -> Shard {
    let rule = RuleConfig {
        name: "model".into(),
        window_duration: Duration::from_millis(WINDOW),
        max_duration: Duration::from_millis(MAX_DURATION),
        group_wait: Duration::from_millis(GROUP_WAIT),
        group_interval: Duration::from_millis(GROUP_INTERVAL),
        ..RuleConfig::default()
    };
    let rules: Arc<[Rule]> = rules::with_fallback(&[rule]).into();
    Shard::new(rules, Arc::from(Vec::new()), caps)
        .with_history(Duration::from_millis(20_000), Duration::from_millis(WINDOW))
}

/// The silence of source `b` from `from` to `to`.
fn silence_of_b(from: u64, to: u64) -> crate::correlate::silence::Silence {
    crate::correlate::silence::Silence {
        id: "sil".into(),
        matchers: vec![Matcher::new("source", "=", "b").unwrap()],
        starts_at: UnixMillis(from),
        ends_at: UnixMillis(to),
        created_by: "model".into(),
        comment: String::new(),
        created_at: UnixMillis(T0),
    }
}

fn event(op: &Op, now: u64) -> Option<Event> {
    let (k, action, sev) = match *op {
        Op::Trigger(k, s) => (k, Action::Trigger, s),
        Op::Ack(k) => (k, Action::Acknowledge, Severity::Error),
        Op::Resolve(k) => (k, Action::Resolve, Severity::Error),
        Op::Advance(_) => return None,
    };
    let mut e = Event::new(
        Integration::PagerDuty,
        action,
        "rk".into(),
        format!("k{k}"),
        UnixMillis(now),
    );
    if action == Action::Trigger {
        let (source, class, group) = KEYS[k];
        e.source = source.into();
        e.class = Some(class.into());
        e.group = Some(group.into());
        e.summary = format!("k{k}");
        e.severity = sev;
    }
    Some(e)
}

/// `e` with an end a few seconds on when it is a trigger of every other key (the ends fall in
/// several seconds, so some wait in their second's list and some are in the heap at a cut).
fn ending(mut e: Event, now: u64) -> Event {
    let k = e.dedup_key.as_bytes().last().copied().unwrap_or_default() as u64;
    if e.action == Action::Trigger && k % 2 == 0 {
        e.ends_at = Some(UnixMillis(now + 2_500 + (k % 5) * 1_100));
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_shard_publishes_what_the_model_says(
        ops in prop::collection::vec(op(), 1..80),
        silence_from in 0u64..200_000,
        silence_len in prop::sample::select(vec![0u64, 1, 10_000, 60_000, 1_000_000]),
    ) {
        let mut shard = shard();
        let mut model = Model { silence: (T0 + silence_from, T0 + silence_from + silence_len), incidents: Vec::new(), out: Vec::new() };
        let mut out = Vec::new();
        let mut now = T0;
        if silence_len > 0 {
            let s = silence_of_b(model.silence.0, model.silence.1);
            shard.set_silences(Arc::from(vec![s]), UnixMillis(now), &mut out);
        } else {
            model.silence = (0, 0);
        }
        for (step, op) in ops.iter().enumerate() {
            let before = now;
            if let Op::Advance(ms) = op {
                now += ms;
            }
            shard.advance(UnixMillis(now), &mut out);
            if let Some(e) = event(op, now) {
                shard.apply(e, UnixMillis(now), &mut out);
            }
            model.run(before, now);
            model.apply(op, now);
            model.suppress(now);
            model.review(now);

            let mut got: Vec<Canon> = out.drain(..).map(|m| canon(&serde_json::from_slice(&m.body).unwrap())).collect();
            let mut want: Vec<Canon> = model.out.drain(..).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want, "step {} ({:?}) at +{}ms", step, op, now - T0);
            let open: usize = model.incidents.iter().filter(|i| !i.closed).flat_map(|i| i.open()).count();
            prop_assert_eq!(shard.open_alerts(), open, "open alerts after step {}", step);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A shard restored from a snapshot taken at any step publishes, from then on, exactly
    /// what the shard that wrote it publishes (every body byte for byte), and ends with the same
    /// incidents.
    #[test]
    fn restored_shard_continues_exactly(
        ops in prop::collection::vec(op(), 1..80),
        cut in 0usize..80,
        silenced in any::<bool>(),
        flapping in any::<bool>(),
        max_alerts in prop::sample::select(vec![3usize, usize::MAX]),
        reroute in any::<bool>(),
        defaults in any::<bool>(),
    ) {
        let flap = flapping.then_some(crate::config::FlapConfig {
            max_changes: 2,
            within: Duration::from_millis(60_000),
            cooldown: Duration::from_millis(30_000),
        });
        let caps = Caps { max_alerts, ..Caps::unbounded(100) };
        // Source "a" re-routed to another key: its bare acknowledges and resolves follow the
        // route the door remembers, which the snapshot must carry.
        let event_rules: Arc<[crate::config::EventRule]> = if reroute {
            crate::config::Config::from_toml(
                "[[event_rules]]\nmatchers = [{ name = \"source\", op = \"=\", value = \"a\" }]\nset_routing_key = \"rk2\"",
                Vec::new(),
            ).unwrap().correlate.event_rules.into()
        } else {
            Arc::from(Vec::new())
        };
        let ttl = Duration::from_millis(MAX_DURATION);
        // With the noise defaults (automatic grouping, the pause by severity, flap detection,
        // the learned pause): their links, pauses and history must be restored too.
        let make = || {
            let shard = if defaults {
                noise_defaults_shard(caps)
            } else {
                shard_with(flap, caps)
            };
            shard.with_event_rules(Arc::clone(&event_rules), ttl)
        };
        let mut original = make();
        let silences: Arc<[crate::correlate::silence::Silence]> = if silenced {
            Arc::from(vec![silence_of_b(T0 + 20_000, T0 + 90_000)])
        } else {
            Arc::from(Vec::new())
        };
        let mut out = Vec::new();
        original.set_silences(Arc::clone(&silences), UnixMillis(T0), &mut out);
        let mut restored: Option<Shard> = None;
        let mut now = T0;
        for (step, op) in ops.iter().enumerate() {
            if step == cut.min(ops.len() - 1) {
                let mut bytes = Vec::new();
                original.snapshot(UnixMillis(now), &mut bytes);
                let template = make();
                let (r, at) = Shard::restore(
                    Arc::clone(&template.rules),
                    Arc::clone(template.inhibition.rules_arc()),
                    template.caps,
                    &bytes,
                ).unwrap();
                let mut r = r
                    .with_event_rules(Arc::clone(&event_rules), ttl)
                    .with_history(template.learned_pause, template.change_window);
                prop_assert_eq!(at, UnixMillis(now));
                let mut none = Vec::new();
                r.set_silences(Arc::clone(&silences), UnixMillis(now), &mut none);
                prop_assert!(none.is_empty(), "setting the same silences again published {}", none.len());
                restored = Some(r);
            }
            if let Op::Advance(ms) = op {
                now += ms;
            }
            let step_out = |s: &mut Shard| {
                let mut out = Vec::new();
                s.advance(UnixMillis(now), &mut out);
                if let Some(e) = event(op, now).map(|e| ending(e, now)) {
                    let at = UnixMillis(now);
                    if let Some(event) = s.apply_input(Input::Event(e), at, &mut out) {
                        s.apply_routed(event, None, at, &mut out);
                    }
                }
                out.into_iter().map(|m| (m.key, m.id, m.body)).collect::<Vec<_>>()
            };
            let want = step_out(&mut original);
            if let Some(r) = restored.as_mut() {
                let got = step_out(r);
                prop_assert_eq!(got, want, "step {} ({:?})", step, op);
            }
        }
        let r = restored.expect("restored at the cut");
        prop_assert_eq!(r.open_alerts(), original.open_alerts());
        prop_assert_eq!(r.open_incidents(), original.open_incidents());
        prop_assert_eq!(r.routes(), original.routes());
        prop_assert_eq!(&r.stats, &original.stats);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        original.snapshot(UnixMillis(now), &mut a);
        r.snapshot(UnixMillis(now), &mut b);
        // Maps serialize in hash order, and setting the silences again scheduled silence
        // timers: the incidents (but for their timer tokens), their alerts and the counters
        // must be the same.
        let slots = |bytes: &[u8]| {
            let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            for inc in v["slots"]["incidents"].as_array_mut().unwrap().iter_mut() {
                if let Some(inc) = inc.as_object_mut() {
                    inc.remove("timer");
                }
            }
            v
        };
        let (a, b) = (slots(&a), slots(&b));
        prop_assert_eq!(&a["slots"], &b["slots"]);
        prop_assert_eq!(&a["stats"], &b["stats"]);
    }
}
