//! Generated alert storms with ground truth: each scenario is a function of a seed that returns
//! abstract events (what a monitoring tool decided, when, and which real problem or which
//! kind of noise it belongs to) and the list of real problems. Renderers turn the abstract
//! events into what real senders post:
//!
//! - Prometheus-origin alerts as Alertmanager API v2 batches (`POST /api/v2/alerts`), sent the
//!   way Prometheus sends them: on rule-evaluation ticks (every 15 s, a phase per server), a
//!   firing alert re-sent while firing once its last send is more than 1 min old
//!   (`resend_delay`), `endsAt` = now + 4 min on firing sends, and a resolved alert sent with
//!   `endsAt` = its resolve tick and re-sent the same way for 15 min (Prometheus'
//!   `resolvedRetention`). HA pairs: two servers with their own phase, labels equal except
//!   `replica="a"`/`"b"`.
//! - Other tools as PagerDuty Events v2 (`POST /v2/enqueue`), one request per trigger or
//!   resolve, and deploys as PagerDuty change events (`POST /v2/change/enqueue`).
//!
//! [`render_sluice`] writes sluice's recording format (what `sluice replay` reads);
//! [`prometheus_sends`] is the same storm as Prometheus would send it to an Alertmanager (the
//! PagerDuty events translated to labels), for the comparison run.
//!
//! Summaries are unique per alert identity within a routing key (the scorer maps alerts back to
//! the truth by `(routing_key, summary)`); [`Scenario::check`] asserts it. HA replicas share a
//! summary on purpose: they are one alert sent twice.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sluice::recording::Recorded;
use sluice::time::UnixMillis;

/// Seeds the defaults are tuned on, and seeds kept out of tuning (reported apart).
pub const TUNING_SEEDS: [u64; 3] = [1, 2, 3];
pub const HOLDOUT_SEEDS: [u64; 3] = [101, 102, 103];

/// Scenario time zero, 2026-11-02T09:00:00Z, in Unix milliseconds.
pub const BASE_MS: u64 = 1_793_610_000_000;

const SEC: u64 = 1000;
const MIN: u64 = 60 * SEC;

/// Prometheus: rule evaluation interval, `resend_delay`, how far `endsAt` of a firing alert
/// is pushed (4 × max(evaluation interval, resend delay)), and how long a resolved alert is
/// still sent.
const EVAL_MS: u64 = 15 * SEC;
const RESEND_MS: u64 = MIN;
const FIRING_ENDS_MS: u64 = 4 * MIN;
const RESOLVED_RETENTION_MS: u64 = 15 * MIN;

/// splitmix64: small, seedable, good enough for jitter.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "{lo}..={hi}");
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64 - 1) as usize]
    }

    /// `n` distinct numbers from `lo..=hi`.
    fn distinct(&mut self, n: usize, lo: u64, hi: u64) -> Vec<u64> {
        let mut pool: Vec<u64> = (lo..=hi).collect();
        assert!(n <= pool.len());
        for i in 0..n {
            let j = self.range(i as u64, pool.len() as u64 - 1) as usize;
            pool.swap(i, j);
        }
        pool.truncate(n);
        pool
    }

    fn hex(&mut self, digits: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..digits)
            .map(|_| ALPHABET[self.range(0, ALPHABET.len() as u64 - 1) as usize] as char)
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Trigger,
    Resolve,
}

/// What an alert really is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Truth {
    /// Part of the real problem of this name.
    Problem(String),
    /// Noise of this kind (`blip`, `chatter`).
    Noise(&'static str),
}

/// Who sends an alert and its identity there.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Identity {
    /// A Prometheus alert: its labels (with `severity`); `ha` = sent by both replicas.
    Prometheus {
        labels: BTreeMap<String, String>,
        ha: bool,
    },
    /// A tool speaking PagerDuty Events v2.
    PagerDuty {
        dedup_key: String,
        source: String,
        component: String,
        group: String,
        class: String,
        details: BTreeMap<String, String>,
    },
}

/// One decision of a monitoring tool.
#[derive(Clone, Debug)]
pub struct Event {
    /// Offset from the scenario's start.
    pub at_ms: u64,
    pub routing_key: String,
    pub identity: Identity,
    pub summary: String,
    pub severity: Severity,
    pub action: Action,
    pub truth: Truth,
}

/// A deploy, sent as a PagerDuty change event.
#[derive(Clone, Debug)]
pub struct Change {
    pub at_ms: u64,
    pub routing_key: String,
    pub summary: String,
    pub source: String,
    pub details: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct Problem {
    pub name: String,
    pub critical: bool,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub seed: u64,
    /// In time order.
    pub events: Vec<Event>,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
    /// The last event's offset.
    pub end_ms: u64,
}

impl Scenario {
    /// Every `(routing_key, summary)` names one alert identity (replicas aside), every
    /// problem has alerts, every event's problem is listed.
    pub fn check(&self) {
        let mut by_summary: BTreeMap<(&str, &str), &Identity> = BTreeMap::new();
        for e in &self.events {
            let prev = by_summary.insert((&e.routing_key, &e.summary), &e.identity);
            assert!(
                prev.is_none_or(|p| p == &e.identity),
                "{} seed {}: summary {:?} names two alerts: {:?} and {:?}",
                self.name,
                self.seed,
                e.summary,
                prev,
                e.identity
            );
            if let Truth::Problem(p) = &e.truth {
                assert!(
                    self.problems.iter().any(|q| &q.name == p),
                    "{}: unlisted problem {p}",
                    self.name
                );
            }
        }
        for p in &self.problems {
            assert!(
                self.events
                    .iter()
                    .any(|e| e.truth == Truth::Problem(p.name.clone())),
                "{}: problem {} has no alert",
                self.name,
                p.name
            );
        }
        assert!(self.events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    }

    /// The truth of each `(routing_key, summary)`.
    pub fn truth_map(&self) -> BTreeMap<(String, String), Truth> {
        self.events
            .iter()
            .map(|e| ((e.routing_key.clone(), e.summary.clone()), e.truth.clone()))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Building scenarios

/// The scenario being built: where new alerts go, and the counters that keep names unique.
struct Gen {
    rng: Rng,
    rk: String,
    site: String,
    ha: bool,
    events: Vec<Event>,
    changes: Vec<Change>,
    problems: Vec<Problem>,
    serial: u64,
}

/// An alert under construction: identity, summary, severity, truth.
struct Alert {
    identity: Identity,
    summary: String,
    severity: Severity,
    truth: Truth,
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            rng: Rng::new(seed),
            rk: "team-infra".into(),
            site: "fra1".into(),
            ha: false,
            events: Vec::new(),
            changes: Vec::new(),
            problems: Vec::new(),
            serial: 0,
        }
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn problem(&mut self, name: String, critical: bool) -> Truth {
        self.problems.push(Problem {
            name: name.clone(),
            critical,
        });
        Truth::Problem(name)
    }

    /// A Prometheus alert; `pairs` without `severity` (added from `severity`).
    fn prom(
        &self,
        pairs: &[(&str, &str)],
        summary: String,
        severity: Severity,
        truth: &Truth,
    ) -> Alert {
        let mut l = labels(pairs);
        l.entry("severity".into())
            .or_insert_with(|| severity.as_str().into());
        Alert {
            identity: Identity::Prometheus {
                labels: l,
                ha: self.ha,
            },
            summary,
            severity,
            truth: truth.clone(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn pd(
        &self,
        dedup_key: String,
        source: &str,
        component: &str,
        group: &str,
        class: &str,
        details: &[(&str, &str)],
        summary: String,
        severity: Severity,
        truth: &Truth,
    ) -> Alert {
        Alert {
            identity: Identity::PagerDuty {
                dedup_key,
                source: source.into(),
                component: component.into(),
                group: group.into(),
                class: class.into(),
                details: labels(details),
            },
            summary,
            severity,
            truth: truth.clone(),
        }
    }

    fn push(&mut self, at_ms: u64, alert: &Alert, action: Action) {
        self.events.push(Event {
            at_ms,
            routing_key: self.rk.clone(),
            identity: alert.identity.clone(),
            summary: alert.summary.clone(),
            severity: alert.severity,
            action,
            truth: alert.truth.clone(),
        });
    }

    /// Fires at `start`, resolves at `end`.
    fn episode(&mut self, alert: &Alert, start: u64, end: u64) {
        assert!(end > start, "{}: {start}..{end}", alert.summary);
        self.push(start, alert, Action::Trigger);
        self.push(end, alert, Action::Resolve);
    }

    /// `ms` of background noise on each of `routing_keys`, marked [`HISTORY`].
    fn history(&mut self, routing_keys: &[&str], ms: u64) {
        if ms == 0 {
            return;
        }
        let before = self.events.len();
        for rk in routing_keys {
            self.rk = (*rk).into();
            self.ha = false;
            background(self, 0, ms);
        }
        for e in &mut self.events[before..] {
            e.truth = Truth::Noise(HISTORY);
        }
    }

    fn finish(mut self, name: &'static str, seed: u64) -> Scenario {
        self.events.sort_by_key(|e| e.at_ms);
        self.changes.sort_by_key(|c| c.at_ms);
        let end_ms = self
            .events
            .iter()
            .map(|e| e.at_ms)
            .chain(self.changes.iter().map(|c| c.at_ms))
            .max()
            .unwrap_or(0);
        let s = Scenario {
            name,
            seed,
            events: self.events,
            changes: self.changes,
            problems: self.problems,
            end_ms,
        };
        s.check();
        s
    }
}

const SERVICES: [&str; 32] = [
    "checkout",
    "cart",
    "payments",
    "search",
    "auth",
    "catalog",
    "pricing",
    "inventory",
    "shipping",
    "orders",
    "reviews",
    "recommend",
    "notify",
    "mailer",
    "gateway",
    "profile",
    "sessions",
    "media",
    "thumbnails",
    "ledger",
    "fraud",
    "loyalty",
    "coupons",
    "tax",
    "invoices",
    "reports",
    "export",
    "webhooks",
    "geo",
    "translate",
    "audit",
    "feature-flags",
];

// --- noise -------------------------------------------------------------------------------------

/// One transient blip: a batch job, a GC pause, a probe timeout, ... that resolves within
/// 30 s-3 min. Prometheus or PagerDuty, mostly warning or error.
fn blip(g: &mut Gen, at: u64) {
    let n = g.next_serial();
    let severity = match g.rng.range(0, 9) {
        0 => Severity::Critical,
        1..=3 => Severity::Error,
        _ => Severity::Warning,
    };
    let truth = Truth::Noise("blip");
    let site = g.site.clone();
    let node = format!("{site}-node-{:02}", g.rng.range(1, 60));
    let svc = *g.rng.pick(&SERVICES);
    let pod = format!("{svc}-{}-{}", g.rng.hex(5), g.rng.hex(5));
    let alert = match g.rng.range(0, 6) {
        0 => {
            let job = format!("nightly-report-{n}");
            g.prom(
                &[
                    ("alertname", "KubeJobFailed"),
                    ("job_name", &job),
                    ("namespace", "batch"),
                    ("cluster", &format!("{site}-k8s")),
                    ("job", "kube-state-metrics"),
                ],
                format!("Job batch/{job} failed to complete"),
                severity,
                &truth,
            )
        }
        1 => {
            let instance = format!("{node}:9404");
            g.prom(
                &[
                    ("alertname", "JvmGcPauseHigh"),
                    ("instance", &instance),
                    ("job", "jvm"),
                    ("service", svc),
                    ("node", &node),
                    ("pod", &pod),
                ],
                format!("GC pauses above 2s on {svc} pod {pod} (blip {n})"),
                severity,
                &truth,
            )
        }
        2 => g.prom(
            &[
                ("alertname", "CPUThrottlingHigh"),
                ("namespace", "apps"),
                ("pod", &pod),
                ("container", svc),
                ("node", &node),
                ("job", "kubelet"),
            ],
            format!("{svc} container in pod {pod} throttled 60% of the time (blip {n})"),
            severity,
            &truth,
        ),
        3 => {
            let target = format!("https://{svc}.example.net/health?b={n}");
            g.prom(
                &[
                    ("alertname", "ProbeFailed"),
                    ("instance", &target),
                    ("job", "blackbox"),
                    ("service", svc),
                ],
                format!("Probe of {target} failed"),
                severity,
                &truth,
            )
        }
        4 => g.pd(
            format!("synthetics/{svc}/{n}"),
            "synthetics-eu",
            svc,
            "synthetics",
            "synthetic_latency",
            &[("check", &format!("{svc}-login-flow-{n}"))],
            format!("Synthetic check {svc}-login-flow-{n} slower than 5s"),
            severity,
            &truth,
        ),
        5 => {
            let queue = format!("{svc}-events-{n}");
            let mq = format!("{site}-mq-{}", g.rng.range(1, 3));
            g.pd(
                format!("queue-depth/{queue}"),
                &mq,
                "rabbitmq",
                &format!("{site}-mq"),
                "queue_depth",
                &[("queue", &queue)],
                format!("Queue {queue} depth above 10k"),
                severity,
                &truth,
            )
        }
        _ => {
            let dev = format!("sd{}", (b'a' + g.rng.range(0, 5) as u8) as char);
            g.prom(
                &[
                    ("alertname", "NodeDiskIOSaturation"),
                    ("instance", &format!("{node}:9100")),
                    ("job", "node-exporter"),
                    ("node", &node),
                    ("host", &node),
                    ("device", &dev),
                    ("blip", &n.to_string()),
                ],
                format!("Disk {dev} on {node} saturated (blip {n})"),
                severity,
                &truth,
            )
        }
    };
    let dur = g.rng.range(30 * SEC, 3 * MIN);
    g.episode(&alert, at, at + dur);
}

/// Info-severity chatter from one of several sources, resolving after 1-5 min.
fn chatter(g: &mut Gen, at: u64) {
    let n = g.next_serial();
    let truth = Truth::Noise("chatter");
    let site = g.site.clone();
    let svc = *g.rng.pick(&SERVICES);
    let alert = match g.rng.range(0, 3) {
        0 => g.pd(
            format!("backup/{site}/{n}"),
            &format!("{site}-backup-1"),
            "backup",
            "backups",
            "backup_done",
            &[("run", &n.to_string())],
            format!("Backup of {svc}-db completed (run {n})"),
            Severity::Info,
            &truth,
        ),
        1 => g.pd(
            format!("cert/{svc}/{n}"),
            "cert-manager",
            "cert-manager",
            "certificates",
            "cert_renewed",
            &[],
            format!("Certificate {svc}-tls-{n} renewed"),
            Severity::Info,
            &truth,
        ),
        2 => {
            let hpa = format!("{svc}-{n}");
            g.prom(
                &[
                    ("alertname", "KubeHpaMaxedOut"),
                    ("horizontalpodautoscaler", &hpa),
                    ("namespace", "apps"),
                    ("job", "kube-state-metrics"),
                    ("cluster", &format!("{site}-k8s")),
                ],
                format!("HPA apps/{hpa} running at max replicas"),
                Severity::Info,
                &truth,
            )
        }
        _ => g.pd(
            format!("autoscaler/{site}/{n}"),
            "cluster-autoscaler",
            "autoscaler",
            &format!("{site}-k8s"),
            "scale_up",
            &[("nodegroup", "general")],
            format!("Cluster autoscaler added a node to {site}-k8s general (event {n})"),
            Severity::Info,
            &truth,
        ),
    };
    let dur = g.rng.range(MIN, 5 * MIN);
    g.episode(&alert, at, at + dur);
}

/// Background noise from `start` to `end`: a blip every ~4 min and chatter every ~6 min.
fn background(g: &mut Gen, start: u64, end: u64) {
    let mut t = start + g.rng.range(0, 2 * MIN);
    while t < end {
        blip(g, t);
        t += g.rng.range(2 * MIN, 6 * MIN);
    }
    let mut t = start + g.rng.range(0, 3 * MIN);
    while t < end {
        chatter(g, t);
        t += g.rng.range(3 * MIN, 9 * MIN);
    }
}

// --- problems ----------------------------------------------------------------------------------

/// A node goes down; ~25 services on it raise their own alerts within 1-2 min.
fn cascading_host(g: &mut Gen, t0: u64) -> u64 {
    let site = g.site.clone();
    let node = format!("{site}-node-{:02}", g.rng.range(61, 99));
    let cluster = format!("{site}-k8s");
    let truth = g.problem(format!("{node} down"), true);
    let down = t0 + g.rng.range(3 * MIN, 8 * MIN);
    let up = down + g.rng.range(12 * MIN, 20 * MIN);

    let node_down = g.prom(
        &[
            ("alertname", "NodeDown"),
            ("instance", &format!("{node}:9100")),
            ("job", "node-exporter"),
            ("node", &node),
            ("host", &node),
            ("cluster", &cluster),
        ],
        format!("Node {node} is down (node-exporter unreachable)"),
        Severity::Critical,
        &truth,
    );
    let start = down + g.rng.range(20 * SEC, 60 * SEC);
    let stop = up + g.rng.range(10 * SEC, 40 * SEC);
    g.episode(&node_down, start, stop);
    let ping = g.pd(
        format!("ping/{node}"),
        &node,
        "host",
        &cluster,
        "host_unreachable",
        &[("node", &node)],
        format!("Host {node} unreachable (ICMP)"),
        Severity::Critical,
        &truth,
    );
    let start = down + g.rng.range(5 * SEC, 40 * SEC);
    let stop = up + g.rng.range(5 * SEC, 30 * SEC);
    g.episode(&ping, start, stop);

    let n = g.rng.range(22, 28) as usize;
    let picked: Vec<&str> = g
        .rng
        .distinct(n, 0, SERVICES.len() as u64 - 1)
        .into_iter()
        .map(|i| SERVICES[i as usize])
        .collect();
    for svc in picked {
        let pod = format!("{svc}-{}-{}", g.rng.hex(9), g.rng.hex(5));
        let ip = format!(
            "10.{}.{}.{}:8080",
            g.rng.range(1, 9),
            g.rng.range(0, 255),
            g.rng.range(2, 250)
        );
        let start = down + g.rng.range(20 * SEC, 2 * MIN);
        let end = up + g.rng.range(30 * SEC, 3 * MIN);
        let kinds = 1 + usize::from(g.rng.chance(0.3));
        for k in g.rng.distinct(kinds, 0, 5) {
            let alert = if k == 5 {
                g.pd(
                    format!("apm/{svc}/{node}"),
                    &pod,
                    svc,
                    &format!("{svc}-prod"),
                    "apm_error_rate",
                    &[("node", &node), ("pod", &pod)],
                    format!("[APM] {svc}: error rate above 5% on {pod}"),
                    Severity::Error,
                    &truth,
                )
            } else {
                let (alertname, severity, text) = [
                    ("KubePodNotReady", Severity::Warning, "is not ready"),
                    ("TargetDown", Severity::Warning, "scrape target is down"),
                    ("HighErrorRate", Severity::Critical, "5xx ratio above 5%"),
                    ("ProbeFailed", Severity::Error, "readiness probe failing"),
                    (
                        "KubeDeploymentReplicasMismatch",
                        Severity::Warning,
                        "replicas mismatch",
                    ),
                ][k as usize];
                g.prom(
                    &[
                        ("alertname", alertname),
                        ("namespace", "apps"),
                        ("pod", &pod),
                        ("service", svc),
                        ("node", &node),
                        ("instance", &ip),
                        ("job", svc),
                        ("cluster", &cluster),
                    ],
                    format!("{alertname}: {svc} pod {pod} {text}"),
                    severity,
                    &truth,
                )
            };
            let jitter = g.rng.range(0, 20 * SEC);
            g.episode(&alert, start + jitter, end + jitter);
        }
    }
    up + 4 * MIN
}

/// A top-of-rack switch fails: 6 checks on 30 hosts of the rack, all with `rack=...`.
fn rack_failure(g: &mut Gen, t0: u64) -> u64 {
    let site = g.site.clone();
    let rack = format!("r{}", g.rng.range(10, 29));
    let rack_id = format!("{site}-{rack}");
    let truth = g.problem(format!("rack {rack_id} switch failure"), true);
    let fail = t0 + g.rng.range(3 * MIN, 7 * MIN);
    let back = fail + g.rng.range(15 * MIN, 25 * MIN);
    let tor = format!("{rack_id}-tor1");
    let switch = g.pd(
        format!("snmp/{tor}"),
        &tor,
        "network",
        &rack_id,
        "switch_down",
        &[("rack", &rack)],
        format!("Switch {tor} down (SNMP unreachable)"),
        Severity::Critical,
        &truth,
    );
    let s = fail + g.rng.range(5 * SEC, 25 * SEC);
    let stop = back + g.rng.range(5 * SEC, 20 * SEC);
    g.episode(&switch, s, stop);
    for h in 1..=30 {
        let host = format!("{rack_id}-n{h:02}");
        let instance = format!("{host}:9100");
        for check in 0..6 {
            if !g.rng.chance(0.9) {
                continue;
            }
            let alert = match check {
                0 => g.pd(
                    format!("ping/{host}"),
                    &host,
                    "host",
                    &rack_id,
                    "host_unreachable",
                    &[("rack", &rack)],
                    format!("Host {host} unreachable (ICMP)"),
                    Severity::Critical,
                    &truth,
                ),
                1 => g.prom(
                    &[
                        ("alertname", "NodeDown"),
                        ("instance", &instance),
                        ("job", "node-exporter"),
                        ("node", &host),
                        ("host", &host),
                        ("rack", &rack),
                    ],
                    format!("Node {host} is down (node-exporter unreachable)"),
                    Severity::Critical,
                    &truth,
                ),
                2 => g.prom(
                    &[
                        ("alertname", "KubeNodeNotReady"),
                        ("node", &host),
                        ("rack", &rack),
                        ("job", "kube-state-metrics"),
                        ("cluster", &format!("{site}-k8s")),
                    ],
                    format!("Kubernetes node {host} not ready"),
                    Severity::Warning,
                    &truth,
                ),
                3 => g.prom(
                    &[
                        ("alertname", "KubeletDown"),
                        ("instance", &format!("{host}:10250")),
                        ("node", &host),
                        ("rack", &rack),
                        ("job", "kubelet"),
                    ],
                    format!("Kubelet on {host} has disappeared"),
                    Severity::Critical,
                    &truth,
                ),
                4 => g.prom(
                    &[
                        ("alertname", "CephOSDDown"),
                        ("ceph_daemon", &format!("osd.{h}")),
                        ("host", &host),
                        ("rack", &rack),
                        ("job", "ceph"),
                    ],
                    format!("Ceph osd.{h} on {host} is down"),
                    Severity::Error,
                    &truth,
                ),
                _ => g.pd(
                    format!("ipmi/{host}"),
                    &format!("{host}-bmc"),
                    "ipmi",
                    &rack_id,
                    "bmc_unreachable",
                    &[("rack", &rack), ("host", &host)],
                    format!("BMC of {host} unreachable"),
                    Severity::Error,
                    &truth,
                ),
            };
            let start = fail + g.rng.range(15 * SEC, 150 * SEC);
            let stop = back + g.rng.range(20 * SEC, 3 * MIN);
            g.episode(&alert, start, stop);
        }
    }
    back + 4 * MIN
}

/// A deploy (a change event), then errors on the service's pods over a few minutes, until a
/// rollback.
fn deploy_wave(g: &mut Gen, t0: u64, svc: &str) -> u64 {
    let site = g.site.clone();
    let version = format!("v2.{}.0", g.rng.range(10, 60));
    let truth = g.problem(format!("bad deploy of {svc} {version}"), true);
    let deploy = t0 + g.rng.range(4 * MIN, 8 * MIN);
    let commit = g.rng.hex(7);
    g.changes.push(Change {
        at_ms: deploy,
        routing_key: g.rk.clone(),
        summary: format!("Deploy {svc} {version} to production ({site})"),
        source: "argo-cd".into(),
        details: labels(&[("service", svc), ("version", &version), ("commit", &commit)]),
    });
    let rollback = deploy + g.rng.range(15 * MIN, 22 * MIN);
    let rs = g.rng.hex(9);
    let pods = g.rng.range(8, 14);
    for i in 0..pods {
        let pod = format!("{svc}-{rs}-{}", g.rng.hex(5));
        let node = format!("{site}-node-{:02}", g.rng.range(1, 60));
        let start = deploy + MIN + i * g.rng.range(15 * SEC, 40 * SEC);
        let end = rollback + g.rng.range(MIN, 4 * MIN);
        let ip = format!("10.3.{}.{}:8080", g.rng.range(0, 255), g.rng.range(2, 250));
        let errors = g.prom(
            &[
                ("alertname", "HighErrorRate"),
                ("namespace", "shop"),
                ("pod", &pod),
                ("service", svc),
                ("node", &node),
                ("job", svc),
                ("instance", &ip),
            ],
            format!("HighErrorRate: {svc} pod {pod} 5xx ratio above 5%"),
            Severity::Error,
            &truth,
        );
        g.episode(&errors, start, end);
        if g.rng.chance(0.3) {
            let crash = g.prom(
                &[
                    ("alertname", "KubePodCrashLooping"),
                    ("namespace", "shop"),
                    ("pod", &pod),
                    ("service", svc),
                    ("node", &node),
                    ("job", "kube-state-metrics"),
                ],
                format!("Pod shop/{pod} is crash looping"),
                Severity::Warning,
                &truth,
            );
            let s = start + g.rng.range(MIN, 3 * MIN);
            g.episode(&crash, s, end);
        }
    }
    let slo = g.prom(
        &[
            ("alertname", "SLOErrorBudgetBurn"),
            ("namespace", "shop"),
            ("service", svc),
            ("slo", &format!("{svc}-availability")),
            ("job", "sloth"),
        ],
        format!("{svc} availability SLO burning error budget 14x"),
        Severity::Critical,
        &truth,
    );
    let s = deploy + g.rng.range(3 * MIN, 5 * MIN);
    let stop = rollback + g.rng.range(2 * MIN, 5 * MIN);
    g.episode(&slo, s, stop);
    let sentry = g.pd(
        format!("sentry/{svc}/{version}"),
        svc,
        svc,
        "shop",
        "error_spike",
        &[("release", &version)],
        format!("New issue spike in {svc}: NullPointerException in CartController ({version})"),
        Severity::Error,
        &truth,
    );
    let s = deploy + g.rng.range(90 * SEC, 4 * MIN);
    let stop = rollback + g.rng.range(MIN, 3 * MIN);
    g.episode(&sentry, s, stop);
    rollback + 6 * MIN
}

/// A ping that flaps every 30-60 s for 20 min, and a disk-latency check that flaps every
/// 5-8 min for an hour: two problems.
fn flapping(g: &mut Gen, t0: u64) -> u64 {
    let site = g.site.clone();
    let rtr = format!("{site}-edge-rtr-{}", g.rng.range(1, 4));
    let fast = g.problem(format!("{rtr} packet loss (flapping)"), false);
    let ping = g.pd(
        format!("ping-loss/{rtr}"),
        &rtr,
        "network",
        &format!("{site}-edge"),
        "ping_loss",
        &[("target", &rtr)],
        format!("Packet loss to {rtr} above 20%"),
        Severity::Error,
        &fast,
    );
    let mut t = t0 + g.rng.range(3 * MIN, 6 * MIN);
    let stop = t + 20 * MIN;
    while t < stop {
        let up = g.rng.range(30 * SEC, 60 * SEC);
        let down = g.rng.range(30 * SEC, 60 * SEC);
        g.episode(&ping, t, t + up);
        t += up + down;
    }
    let db = format!("{site}-db-{}", g.rng.range(1, 9));
    let slow = g.problem(format!("{db} disk latency (flapping)"), false);
    let disk = g.prom(
        &[
            ("alertname", "NodeDiskLatencyHigh"),
            ("instance", &format!("{db}:9100")),
            ("job", "node-exporter"),
            ("node", &db),
            ("host", &db),
            ("device", "nvme1n1"),
        ],
        format!("Disk nvme1n1 on {db}: read latency above 50ms"),
        Severity::Warning,
        &slow,
    );
    let mut t = t0 + g.rng.range(2 * MIN, 5 * MIN);
    let stop = t + 60 * MIN;
    while t < stop {
        let up = g.rng.range(5 * MIN, 8 * MIN);
        let down = g.rng.range(5 * MIN, 8 * MIN);
        g.episode(&disk, t, t + up);
        t += up + down;
    }
    t
}

/// ~20 batch/GC blips resolving within 30 s-3 min; no real problem.
fn transient_blips(g: &mut Gen, t0: u64) -> u64 {
    let n = g.rng.range(18, 22);
    let span = 35 * MIN;
    let mut times: Vec<u64> = (0..n).map(|_| t0 + g.rng.range(MIN, span)).collect();
    times.sort_unstable();
    for t in times {
        blip(g, t);
    }
    t0 + span + 4 * MIN
}

/// Over an hour: one service's latency warning, later an error-rate warning, later critical,
/// on more pods over time.
fn slow_burn(g: &mut Gen, t0: u64, svc: &str) -> u64 {
    let site = g.site.clone();
    let truth = g.problem(format!("{svc} slow burn"), true);
    let t1 = t0 + g.rng.range(3 * MIN, 6 * MIN);
    let t2 = t1 + g.rng.range(15 * MIN, 20 * MIN);
    let t3 = t1 + g.rng.range(35 * MIN, 45 * MIN);
    let end = t1 + g.rng.range(55 * MIN, 65 * MIN);
    let rs = g.rng.hex(9);
    let pods: Vec<String> = (0..12)
        .map(|_| format!("{svc}-{rs}-{}", g.rng.hex(5)))
        .collect();
    // Latency warnings: one pod first, another every 4-8 min.
    let mut t = t1;
    for pod in &pods {
        if t >= end - 5 * MIN {
            break;
        }
        let node = format!("{site}-node-{:02}", g.rng.range(1, 60));
        let a = g.prom(
            &[
                ("alertname", "HighLatencyP99"),
                ("namespace", "discovery"),
                ("pod", pod),
                ("service", svc),
                ("node", &node),
                ("job", svc),
            ],
            format!("{svc} pod {pod}: p99 latency above 800ms"),
            Severity::Warning,
            &truth,
        );
        let stop = end + g.rng.range(0, 3 * MIN);
        g.episode(&a, t, stop);
        t += g.rng.range(4 * MIN, 8 * MIN);
    }
    // Error-rate warnings from t2, two pods, then more.
    let mut t = t2;
    for pod in pods.iter().take(6) {
        if t >= end - 5 * MIN {
            break;
        }
        let a = g.prom(
            &[
                ("alertname", "ErrorRateElevated"),
                ("namespace", "discovery"),
                ("pod", pod),
                ("service", svc),
                ("job", svc),
            ],
            format!("{svc} pod {pod}: error rate above 1%"),
            Severity::Warning,
            &truth,
        );
        let stop = end + g.rng.range(0, 3 * MIN);
        g.episode(&a, t, stop);
        t += g.rng.range(SEC, 6 * MIN);
    }
    // Critical at t3: the service-level SLO, and the APM tool.
    let slo = g.prom(
        &[
            ("alertname", "SLOLatencyBudgetBurn"),
            ("namespace", "discovery"),
            ("service", svc),
            ("slo", &format!("{svc}-latency")),
            ("job", "sloth"),
        ],
        format!("{svc} latency SLO burning error budget 10x"),
        Severity::Critical,
        &truth,
    );
    let stop = end + g.rng.range(MIN, 3 * MIN);
    g.episode(&slo, t3, stop);
    let apm = g.pd(
        format!("apm/{svc}/apdex"),
        svc,
        svc,
        "discovery",
        "apdex",
        &[("apdex", "0.61")],
        format!("[APM] {svc}: Apdex below 0.7"),
        Severity::Critical,
        &truth,
    );
    let s = t3 + g.rng.range(30 * SEC, 3 * MIN);
    let stop = end + g.rng.range(0, 2 * MIN);
    g.episode(&apm, s, stop);
    end + 4 * MIN
}

/// Disk full on host X, and ~10 min later, while it is open, an unrelated application fault of
/// a service running on X: two problems.
fn two_on_one_host(g: &mut Gen, t0: u64) -> u64 {
    let site = g.site.clone();
    let host = format!("{site}-node-{:02}", g.rng.range(61, 99));
    let disk = g.problem(format!("{host} disk full"), true);
    let ta = t0 + g.rng.range(3 * MIN, 6 * MIN);
    let disk_end = ta + g.rng.range(30 * MIN, 40 * MIN);
    let instance = format!("{host}:9100");
    let filling = g.prom(
        &[
            ("alertname", "NodeFilesystemSpaceFillingUp"),
            ("instance", &instance),
            ("job", "node-exporter"),
            ("node", &host),
            ("host", &host),
            ("mountpoint", "/var/lib/docker"),
            ("device", "/dev/sdb1"),
        ],
        format!("Filesystem /var/lib/docker on {host} will fill up within 4 hours"),
        Severity::Warning,
        &disk,
    );
    g.episode(&filling, ta, disk_end);
    let full = g.prom(
        &[
            ("alertname", "NodeFilesystemAlmostOutOfSpace"),
            ("instance", &instance),
            ("job", "node-exporter"),
            ("node", &host),
            ("host", &host),
            ("mountpoint", "/var/lib/docker"),
            ("device", "/dev/sdb1"),
        ],
        format!("Filesystem /var/lib/docker on {host} has less than 3% space left"),
        Severity::Critical,
        &disk,
    );
    let s = ta + g.rng.range(2 * MIN, 4 * MIN);
    let stop = disk_end - g.rng.range(0, MIN);
    g.episode(&full, s, stop);
    let dd = g.pd(
        format!("dd/disk/{host}/docker"),
        &host,
        "disk",
        &format!("{site}-k8s"),
        "disk_usage",
        &[("mount", "/var/lib/docker")],
        format!("Disk usage 97% on {host}:/var/lib/docker"),
        Severity::Critical,
        &disk,
    );
    let s = ta + g.rng.range(3 * MIN, 5 * MIN);
    let stop = disk_end + g.rng.range(0, MIN);
    g.episode(&dd, s, stop);

    let svc = "billing";
    let app = g.problem(format!("{svc} payment-provider fault"), true);
    let tb = ta + g.rng.range(8 * MIN, 12 * MIN);
    let app_end = tb + g.rng.range(8 * MIN, 15 * MIN);
    let pd = g.pd(
        format!("apm/{svc}/provider-timeouts"),
        &host,
        svc,
        "billing",
        "app_error",
        &[("upstream", "psp.example.com")],
        format!("{svc}-worker: payment provider timeouts above 20%"),
        Severity::Critical,
        &app,
    );
    g.episode(&pd, tb, app_end);
    let pods = g.rng.range(2, 4);
    for i in 0..pods {
        let pod = format!("{svc}-worker-{}-{}", g.rng.hex(9), g.rng.hex(5));
        // The first pod runs on the host with the full disk.
        let node = if i == 0 {
            host.clone()
        } else {
            format!("{site}-node-{:02}", g.rng.range(1, 60))
        };
        let a = g.prom(
            &[
                ("alertname", "HighErrorRate"),
                ("namespace", "billing"),
                ("pod", &pod),
                ("service", svc),
                ("node", &node),
                ("job", svc),
            ],
            format!("HighErrorRate: {svc} pod {pod} 5xx ratio above 5%"),
            Severity::Critical,
            &app,
        );
        let s = tb + g.rng.range(20 * SEC, 2 * MIN);
        let stop = app_end + g.rng.range(0, 2 * MIN);
        g.episode(&a, s, stop);
    }
    disk_end.max(app_end) + 4 * MIN
}

/// Info-severity events from several sources, repeatedly, and Prometheus' always-firing
/// `Watchdog`; no real problem.
fn chatty_info(g: &mut Gen, t0: u64) -> u64 {
    let site = g.site.clone();
    let span = 40 * MIN;
    let noise = Truth::Noise("chatter");
    let watchdog = g.prom(
        &[
            ("alertname", "Watchdog"),
            ("severity", "none"),
            ("cluster", &format!("{site}-k8s")),
            ("prometheus", "monitoring/k8s"),
        ],
        format!("Watchdog: the alerting pipeline of {site}-k8s is alive"),
        Severity::Info,
        &noise,
    );
    let start = t0 + g.rng.range(0, 30 * SEC);
    g.episode(&watchdog, start, t0 + span);
    // One source re-triggers the same alert every ~3 min for 30 min.
    let host = format!("{site}-web-{}", g.rng.range(1, 9));
    let drift = g.pd(
        format!("drift/{host}"),
        &host,
        "puppet",
        "config",
        "config_drift",
        &[],
        format!("Config drift detected on {host}"),
        Severity::Info,
        &noise,
    );
    let mut t = t0 + g.rng.range(MIN, 3 * MIN);
    let until = t + 30 * MIN;
    while t < until {
        g.push(t, &drift, Action::Trigger);
        t += g.rng.range(150 * SEC, 210 * SEC);
    }
    g.push(t, &drift, Action::Resolve);
    let mut t = t0 + g.rng.range(0, MIN);
    while t < t0 + span - 5 * MIN {
        chatter(g, t);
        t += g.rng.range(40 * SEC, 2 * MIN);
    }
    t0 + span + 2 * MIN
}

// --- scenarios ---------------------------------------------------------------------------------

/// Every scenario's name, in report order.
pub const NAMES: [&str; 9] = [
    "cascading_host",
    "rack_failure",
    "deploy_wave",
    "flapping",
    "transient_blips",
    "slow_burn",
    "two_on_one_host",
    "chatty_info",
    "composite",
];

/// A scenario's story: alerts from `t0` on; returns when it is over.
type Part = fn(&mut Gen, u64) -> u64;

/// The scenario `name` for `seed`, starting cold (sluice has seen nothing of these senders).
pub fn scenario(name: &str, seed: u64) -> Scenario {
    scenario_after(name, seed, 0)
}

/// Noise of the kind [`Truth::Noise`] names for the history before a scenario: never scored.
pub const HISTORY: &str = "history";

pub fn is_history(truth: &Truth) -> bool {
    *truth == Truth::Noise(HISTORY)
}

/// The scenario `name` for `seed` after `history_ms` of its routing keys' everyday background
/// noise (blips and chatter, [`HISTORY`]), as a sluice that has been running sees it: what
/// it learned from that history applies to the scenario, whose story starts when it ends.
pub fn scenario_after(name: &str, seed: u64, history_ms: u64) -> Scenario {
    // Each scenario draws from its own stream.
    let salt = NAMES
        .iter()
        .position(|n| *n == name)
        .expect("a known scenario") as u64;
    let mut g = Gen::new(seed.wrapping_mul(1000).wrapping_add(salt));
    let name = NAMES[salt as usize];
    if name == "composite" {
        g.history(&["team-infra", "team-shop", "team-edge"], history_ms);
        composite(&mut g, history_ms);
        return g.finish(name, seed);
    }
    // Routing key, HA pair, what happens.
    let (rk, ha, part): (&str, bool, Part) = match name {
        "cascading_host" => ("team-infra", true, cascading_host),
        "rack_failure" => ("team-infra", false, rack_failure),
        "deploy_wave" => ("team-shop", true, |g, t| deploy_wave(g, t, "checkout")),
        "flapping" => ("team-edge", false, flapping),
        "transient_blips" => ("team-edge", false, transient_blips),
        "slow_burn" => ("team-shop", true, |g, t| slow_burn(g, t, "search")),
        "two_on_one_host" => ("team-infra", false, two_on_one_host),
        _ => ("team-shop", false, chatty_info),
    };
    g.history(&[rk], history_ms);
    g.rk = rk.into();
    g.ha = ha;
    let end = part(&mut g, history_ms);
    if name != "transient_blips" {
        background(&mut g, history_ms, end);
    }
    g.finish(name, seed)
}

/// All of the above at once on three teams' routing keys, staggered over 20 min, plus more
/// noise on each team.
fn composite(g: &mut Gen, from: u64) -> u64 {
    let parts: [(&str, &str, bool, Part); 8] = [
        ("team-infra", "fra1", true, cascading_host),
        ("team-infra", "fra2", false, rack_failure),
        ("team-infra", "ams1", false, two_on_one_host),
        ("team-shop", "fra1", true, |g, t| {
            deploy_wave(g, t, "checkout")
        }),
        ("team-shop", "fra2", true, |g, t| slow_burn(g, t, "search")),
        ("team-shop", "ams1", false, chatty_info),
        ("team-edge", "fra1", false, flapping),
        ("team-edge", "fra2", false, transient_blips),
    ];
    let mut end = 0;
    for (rk, site, ha, part) in parts {
        g.rk = rk.into();
        g.site = site.into();
        g.ha = ha;
        let t0 = from + g.rng.range(0, 20 * MIN);
        end = end.max(part(g, t0));
    }
    for rk in ["team-infra", "team-shop", "team-edge"] {
        g.rk = rk.into();
        g.site = "iad1".into();
        g.ha = false;
        background(g, from, end);
    }
    end
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// One alert as Prometheus sends it at `at_ms`: labels (with `replica` for HA pairs), summary,
/// `startsAt` and `endsAt` (offsets).
#[derive(Clone, Debug)]
pub struct PromSend {
    pub at_ms: u64,
    pub routing_key: String,
    /// `Some("a")`/`Some("b")` for the two servers of an HA pair.
    pub replica: Option<&'static str>,
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    pub starts_ms: u64,
    pub ends_ms: u64,
    pub truth: Truth,
}

/// An alert's first event, its firing intervals (`u64::MAX`: still firing) and, while
/// building, when its open interval started.
type Episodes<'a> = (&'a Event, Vec<(u64, u64)>, Option<u64>);

/// The firing intervals of each alert identity, from its trigger and resolve events (a repeat
/// trigger while firing and a resolve while resolved change nothing).
fn episodes<'a>(events: impl Iterator<Item = &'a Event>) -> Vec<(&'a Event, Vec<(u64, u64)>)> {
    let mut by_identity: BTreeMap<(&str, &Identity), Episodes<'a>> = BTreeMap::new();
    for e in events {
        let entry =
            by_identity
                .entry((&e.routing_key, &e.identity))
                .or_insert((e, Vec::new(), None));
        match (e.action, entry.2) {
            (Action::Trigger, None) => entry.2 = Some(e.at_ms),
            (Action::Resolve, Some(start)) => {
                entry.1.push((start, e.at_ms));
                entry.2 = None;
            }
            _ => {}
        }
    }
    by_identity
        .into_values()
        .map(|(e, mut eps, open)| {
            if let Some(start) = open {
                eps.push((start, u64::MAX));
            }
            (e, eps)
        })
        .collect()
}

/// What Prometheus servers send for the alerts of `events` whose identity is Prometheus' (or,
/// with `all`, every alert: PagerDuty ones translated to labels), in time order: every firing
/// and resolved send, per replica.
pub fn prometheus_sends(scenario: &Scenario, all: bool) -> Vec<PromSend> {
    let mut rng = Rng::new(scenario.seed ^ 0x5EED_5E4D);
    // One evaluation phase and send latency per (routing key, replica): each team has its
    // Prometheus (pair).
    let mut phases: BTreeMap<(String, Option<&str>), u64> = BTreeMap::new();
    let mut sends = Vec::new();
    let events = scenario
        .events
        .iter()
        .filter(|e| all || matches!(e.identity, Identity::Prometheus { .. }));
    for (e, eps) in episodes(events) {
        let (labels, ha) = match &e.identity {
            Identity::Prometheus { labels, ha } => (labels.clone(), *ha),
            Identity::PagerDuty { .. } => (pd_labels(e), false),
        };
        let replicas: &[Option<&'static str>] = if ha { &[Some("a"), Some("b")] } else { &[None] };
        for &replica in replicas {
            let phase = *phases
                .entry((e.routing_key.clone(), replica))
                .or_insert_with(|| rng.range(0, EVAL_MS - 1));
            let tick = |t: u64| {
                // The first evaluation at or after t.
                if t <= phase {
                    phase
                } else {
                    phase + (t - phase).div_ceil(EVAL_MS) * EVAL_MS
                }
            };
            let mut labels = labels.clone();
            if let Some(r) = replica {
                labels.insert("replica".into(), r.into());
            }
            let send = |at: u64, starts: u64, ends: u64| PromSend {
                at_ms: at,
                routing_key: e.routing_key.clone(),
                replica,
                labels: labels.clone(),
                summary: e.summary.clone(),
                starts_ms: starts,
                ends_ms: ends,
                truth: e.truth.clone(),
            };
            for (i, &(start, end)) in eps.iter().enumerate() {
                let fire = tick(start);
                let resolve = if end == u64::MAX {
                    u64::MAX
                } else {
                    tick(end).max(fire + EVAL_MS)
                };
                let next_fire = eps.get(i + 1).map_or(u64::MAX, |&(s, _)| tick(s));
                let mut last = fire;
                sends.push(send(fire, fire, fire + FIRING_ENDS_MS));
                let mut t = fire + EVAL_MS;
                while t < resolve && t <= scenario.end_ms + 10 * MIN {
                    if t > last + RESEND_MS {
                        sends.push(send(t, fire, t + FIRING_ENDS_MS));
                        last = t;
                    }
                    t += EVAL_MS;
                }
                if resolve == u64::MAX {
                    continue;
                }
                sends.push(send(resolve, fire, resolve));
                last = resolve;
                let mut t = resolve + EVAL_MS;
                while t < resolve + RESOLVED_RETENTION_MS && t < next_fire {
                    if t > last + RESEND_MS {
                        sends.push(send(t, fire, resolve));
                        last = t;
                    }
                    t += EVAL_MS;
                }
            }
        }
    }
    sends.sort_by(|a, b| {
        (a.at_ms, &a.routing_key, a.replica).cmp(&(b.at_ms, &b.routing_key, b.replica))
    });
    sends
}

/// A PagerDuty alert as Prometheus-style labels (for Alertmanager): `alertname` = class,
/// `instance` = source, `service` = component, `group`, `severity`, and the dedup key.
fn pd_labels(e: &Event) -> BTreeMap<String, String> {
    let Identity::PagerDuty {
        dedup_key,
        source,
        component,
        group,
        class,
        details,
    } = &e.identity
    else {
        unreachable!("a PagerDuty identity")
    };
    let mut l = details.clone();
    l.extend(labels(&[
        ("alertname", class),
        ("instance", source),
        ("service", component),
        ("group", group),
        ("severity", e.severity.as_str()),
        ("dedup_key", dedup_key),
    ]));
    l
}

/// A storm as recorded requests.
pub struct Rendered {
    /// `(offset, one line of the recording format)`, in time order.
    pub lines: Vec<(u64, String)>,
    /// Alert events sent (an item of an Alertmanager batch or a PagerDuty event; change events
    /// not counted): the denominator of compression.
    pub events: usize,
    /// Of those, the history's before the scenario (not scored).
    pub history_events: usize,
    /// Each problem's first sent event (offset).
    pub first_sent: BTreeMap<String, u64>,
}

/// Alertmanager batches are at most this long (Prometheus' `maxBatchSize`).
const MAX_BATCH: usize = 256;

/// The storm in sluice's recording format: Prometheus alerts as Alertmanager API v2 batches
/// (one per team, replica and evaluation), the others as PagerDuty Events v2, deploys as
/// PagerDuty change events.
pub fn render_sluice(scenario: &Scenario) -> Rendered {
    let mut out: Vec<(u64, String)> = Vec::new();
    let mut history = 0;
    let mut events = 0;
    let mut first_sent: BTreeMap<String, u64> = BTreeMap::new();
    let mut saw = |truth: &Truth, at: u64| {
        if let Truth::Problem(p) = truth {
            let t = first_sent.entry(p.clone()).or_insert(at);
            *t = (*t).min(at);
        }
    };
    // As `sluice serve --record` writes them.
    let line = |at: u64, path: &str, headers: &[(&str, &str)], body: Value| {
        let mut map = http::HeaderMap::new();
        map.insert("content-type", "application/json".parse().unwrap());
        for (k, v) in headers {
            let name = http::HeaderName::from_bytes(k.as_bytes()).unwrap();
            map.insert(name, v.parse().unwrap());
        }
        let at_text = UnixMillis(BASE_MS + at).to_string();
        let rec = Recorded::new(at_text, path, &map, body.to_string().as_bytes());
        (at, rec.to_line())
    };
    // Send latency of a batch after its evaluation, per batch.
    let mut rng = Rng::new(scenario.seed ^ 0xBA7C4);
    let sends = prometheus_sends(scenario, false);
    let mut i = 0;
    while i < sends.len() {
        let first = &sends[i];
        let mut j = i;
        while j < sends.len()
            && j - i < MAX_BATCH
            && (sends[j].at_ms, &sends[j].routing_key, sends[j].replica)
                == (first.at_ms, &first.routing_key, first.replica)
        {
            j += 1;
        }
        let batch = &sends[i..j];
        let at = first.at_ms + rng.range(5, 300);
        let items: Vec<Value> = batch
            .iter()
            .map(|s| {
                saw(&s.truth, at);
                json!({
                    "labels": s.labels,
                    "annotations": {"summary": s.summary},
                    "startsAt": UnixMillis(BASE_MS + s.starts_ms).to_string(),
                    "endsAt": UnixMillis(BASE_MS + s.ends_ms).to_string(),
                    "generatorURL": format!("http://prometheus-{}:9090/graph", first.replica.unwrap_or("0")),
                })
            })
            .collect();
        events += items.len();
        history += batch.iter().filter(|s| is_history(&s.truth)).count();
        // The routing key in the header (replica a, or no pair) or the query (replica b).
        let rk = &first.routing_key;
        let agent = ("user-agent", "Prometheus/2.53.0");
        let (path, headers) = if first.replica == Some("b") {
            (format!("/api/v2/alerts?routing_key={rk}"), vec![agent])
        } else {
            (
                "/api/v2/alerts".to_string(),
                vec![agent, ("x-routing-key", rk.as_str())],
            )
        };
        out.push(line(at, &path, &headers, Value::Array(items)));
        i = j;
    }
    for e in &scenario.events {
        let Identity::PagerDuty {
            dedup_key,
            source,
            component,
            group,
            class,
            details,
        } = &e.identity
        else {
            continue;
        };
        let body = match e.action {
            Action::Trigger => json!({
                "routing_key": e.routing_key,
                "event_action": "trigger",
                "dedup_key": dedup_key,
                "payload": {
                    "summary": e.summary,
                    "source": source,
                    "severity": e.severity.as_str(),
                    "component": component,
                    "group": group,
                    "class": class,
                    "custom_details": details,
                }
            }),
            Action::Resolve => json!({
                "routing_key": e.routing_key,
                "event_action": "resolve",
                "dedup_key": dedup_key,
            }),
        };
        if e.action == Action::Trigger {
            saw(&e.truth, e.at_ms);
        }
        events += 1;
        history += usize::from(is_history(&e.truth));
        out.push(line(e.at_ms, "/v2/enqueue", &[], body));
    }
    for c in &scenario.changes {
        let body = json!({
            "routing_key": c.routing_key,
            "payload": {
                "summary": c.summary,
                "source": c.source,
                "timestamp": UnixMillis(BASE_MS + c.at_ms).to_string(),
                "custom_details": c.details,
            },
            "links": [{"href": "https://argo.example.net/applications/checkout", "text": "Argo CD"}],
        });
        out.push(line(c.at_ms, "/v2/change/enqueue", &[], body));
    }
    out.sort_by_key(|(at, _)| *at);
    Rendered {
        lines: out,
        events,
        history_events: history,
        first_sent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_deterministic_and_checked() {
        for name in NAMES {
            let a = render_sluice(&scenario(name, 7));
            let b = render_sluice(&scenario(name, 7));
            assert_eq!(a.lines, b.lines, "{name}");
            assert_ne!(a.lines, render_sluice(&scenario(name, 8)).lines, "{name}");
        }
    }
}
