//! deploy/ checked with the tools that read each artifact, and against the real binary:
//! - the Prometheus rules with `promtool check rules` and `promtool test rules` (each alert
//!   tested firing and not firing), the scrape config with `promtool check config`, the
//!   Alertmanager example with `amtool check-config`;
//! - the Kubernetes manifests with kubernetes-validate (PyPI; it carries the Kubernetes JSON
//!   schemas, so this runs offline) in strict mode against 1.29 and 1.37, the deployment rules
//!   the manifests promise (non-root, read-only root, no capabilities, probes, resources, PDBs,
//!   secrets by reference), and each workload's ConfigMap through `sluice check-config` with
//!   that workload's environment;
//! - the systemd unit with `systemd-analyze verify` and `systemd-analyze security --offline`;
//! - the container build file's structure and what its runtime stage must carry (it is not
//!   built here: no container runtime runs on these machines), and its health check script
//!   against a running sluice;
//! - every metric name in the Grafana dashboard's queries and in the alerting rules against
//!   what running sluice processes export (memory mode, and Kafka mode on tansu).
//!
//! A missing tool (promtool, amtool, kubernetes-validate with PyYAML, systemd-analyze) skips
//! its checks with a message, unless `SLUICEDEV_REQUIRE_DEPLOY_TOOLS` is set (scripts/test.sh
//! sets it under CI): then it fails. scripts/install-tools.sh installs them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;
use sluice::send::HttpClient;

use crate::harness::{pd_post, post, Broker, Sluice, TempDir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether `name` runs (`args` answer with exit 0); `None` after saying why the checks that
/// need it are skipped, or a panic when `SLUICEDEV_REQUIRE_DEPLOY_TOOLS` is set.
fn tool(test: &str, name: &str, args: &[&str], what: &str) -> Option<()> {
    let runs = Command::new(name)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return Some(());
    }
    assert!(
        std::env::var_os("SLUICEDEV_REQUIRE_DEPLOY_TOOLS").is_none(),
        "{name} is not installed and SLUICEDEV_REQUIRE_DEPLOY_TOOLS is set: run \
         scripts/install-tools.sh ({what})"
    );
    eprintln!(
        "{test}: checks with {name} SKIPPED: it is not installed (run scripts/install-tools.sh: \
         {what}; set SLUICEDEV_REQUIRE_DEPLOY_TOOLS to make this a failure)"
    );
    None
}

/// Runs `cmd` and returns its output, panicking with both streams when it exits non-zero.
fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} exited {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---- Prometheus

/// Each `- alert:` name of the rules file, and the single-line `expr:` of every rule.
fn rules(text: &str) -> (Vec<String>, Vec<String>) {
    let alerts = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect();
    let exprs: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("expr:"))
        .map(|e| e.trim().to_string())
        .collect();
    for e in &exprs {
        assert!(
            !e.is_empty() && !e.starts_with('|') && !e.starts_with('>'),
            "keep every expr on its line (this test reads them line by line): {e:?}"
        );
    }
    (alerts, exprs)
}

#[test]
fn prometheus_rules_pass_promtool_and_every_alert_is_tested_firing_and_not() {
    let test = "prometheus_rules";
    let dir = deploy("prometheus");
    let text = read(&dir.join("sluice-rules.yml"));
    let (alerts, exprs) = rules(&text);
    assert!(alerts.len() >= 15, "{alerts:?}");
    assert_eq!(exprs.len(), alerts.len(), "one expr per alert");

    // Each alert has an evaluation expecting it (firing) and one expecting nothing.
    let tests = read(&dir.join("sluice-rules.test.yml"));
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("alertname:") {
            let next = lines[i + 1..].iter().find(|l| !l.is_empty()).unwrap();
            match *next {
                "exp_alerts: []" => quiet.insert(name.trim().to_string()),
                "exp_alerts:" => firing.insert(name.trim().to_string()),
                other => panic!("after alertname {name}: {other}"),
            };
        }
    }
    for alert in &alerts {
        assert!(firing.contains(alert), "{alert}: no test where it fires");
        assert!(
            quiet.contains(alert),
            "{alert}: no test where it stays quiet"
        );
    }
    let known: BTreeSet<_> = alerts.iter().cloned().collect();
    assert!(firing.is_subset(&known) && quiet.is_subset(&known));

    if tool(test, "promtool", &["--version"], "Debian's prometheus").is_some() {
        let out = run_ok(
            Command::new("promtool")
                .arg("check")
                .arg("rules")
                .arg(dir.join("sluice-rules.yml")),
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains(&format!("SUCCESS: {} rules found", alerts.len())),
            "{said}"
        );
        let out = run_ok(
            Command::new("promtool")
                .args(["test", "rules", "sluice-rules.test.yml"])
                .current_dir(&dir),
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("SUCCESS") && !said.contains("FAILED"),
            "{said}"
        );
        run_ok(
            Command::new("promtool")
                .arg("check")
                .arg("config")
                .arg(dir.join("prometheus.yml")),
        );
        // The tests can fail: a threshold moved makes promtool say so.
        let tmp = TempDir::new("promtool-mutant");
        std::fs::write(
            tmp.0.join("sluice-rules.yml"),
            text.replace("> 10000", "> 100000"),
        )
        .unwrap();
        std::fs::copy(
            dir.join("sluice-rules.test.yml"),
            tmp.0.join("sluice-rules.test.yml"),
        )
        .unwrap();
        let out = Command::new("promtool")
            .args(["test", "rules", "sluice-rules.test.yml"])
            .current_dir(&tmp.0)
            .output()
            .unwrap();
        assert!(!out.status.success(), "a changed threshold went unnoticed");
    }
    if tool(
        test,
        "amtool",
        &["--version"],
        "Debian's prometheus-alertmanager",
    )
    .is_some()
    {
        run_ok(
            Command::new("amtool")
                .arg("check-config")
                .arg(dir.join("alertmanager.yml")),
        );
    }
}

// ---- metric names

/// Metric names in a PromQL expression: identifiers outside strings, label matchers, ranges
/// and grouping clauses that are not calls or keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let strings = Regex::new(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`"#).unwrap();
    let braces = Regex::new(r"\{[^}]*\}|\[[^\]]*\]").unwrap();
    let grouping =
        Regex::new(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)").unwrap();
    let ident = Regex::new(r"(?:^|[^A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*)").unwrap();
    const KEYWORDS: &[&str] = &[
        "and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN",
    ];
    let text = strings.replace_all(expr, " ");
    let text = braces.replace_all(&text, " ");
    let text = grouping.replace_all(&text, " ");
    ident
        .captures_iter(&text)
        .map(|c| c.get(1).unwrap())
        // a call: a function or an aggregation
        .filter(|m| !text[m.end()..].trim_start().starts_with('('))
        .map(|m| m.as_str().to_string())
        .filter(|n| !KEYWORDS.contains(&n.as_str()))
        .collect()
}

#[test]
fn promql_metric_names_are_found_and_nothing_else() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le, integration) (rate(sluice_request_duration_seconds_bucket{job=~"$job", x="a b"}[$__rate_interval])))"#
        ),
        ["sluice_request_duration_seconds_bucket"]
    );
    assert_eq!(
        names("sum(increase(a_total[1h])) / on(job) group_left (x) b offset 5m > bool 3 and up"),
        ["a_total", "b", "up"]
    );
    assert_eq!(names("absent(up{job=~\"sluice.*\"})"), ["up"]);
}

/// A metric name as `src/metrics.rs` declares it: a histogram's `_bucket`, `_sum` and
/// `_count` series (and a summary's) name their metric.
fn declared_name(name: &str) -> String {
    let declared = |n: &str| sluice::metrics::ALL.iter().any(|(m, _)| *m == n);
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|s| name.strip_suffix(s))
        .find(|base| !declared(name) && declared(base))
        .unwrap_or(name)
        .to_string()
}

/// Metrics that appear only after a fault these runs do not make: a failed delivery, a full
/// producer queue, a snapshot not written, an aborted transaction (needs a broker with
/// transactions), a correlator paused past its session, a TLS certificate that failed to
/// reload. Each must still be declared in `src/metrics.rs` and used by the dashboard or rules.
const AFTER_A_FAULT: &[&str] = &[
    "sluice_messages_failed_total",
    "sluice_publish_queue_full_total",
    "sluice_event_delivery_failures_total",
    "sluice_snapshot_failures_total",
    "sluice_transactions_aborted_total",
    "sluice_fenced_writes_total",
    "sluice_tls_reloads_total",
];

/// Prometheus's own series.
const PROMETHEUS_OWN: &[&str] = &["up"];

/// The names a running sluice at `url` exports now, as declared.
async fn exported(url: &str) -> BTreeSet<String> {
    let mut client = HttpClient::connect(url).await.unwrap();
    let body = client.get("/metrics").await.unwrap().body;
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(declared_name)
        .collect()
}

const METRICS_CONFIG: &str = r#"
[kafka]
partitions = 2
[pipeline]
partitions = 2
commit_interval = "200ms"
watermark_interval = "200ms"
session_timeout = "6s"
[correlate]
max_alerts_per_routing_key = 2
[[correlate.rules]]
name = "by-source"
group_by = ["source"]
group_wait = "0s"
pause_transient = "0s"
"#;

/// Triggers (some repeated, some past the per-key cap), a resolve, and an invalid event.
async fn traffic(url: &str) {
    let mut client = HttpClient::connect(url).await.unwrap();
    for i in 0..4 {
        pd_post(&mut client, "trigger", &format!("disk-{i}"), "db-1").await;
    }
    pd_post(&mut client, "trigger", "disk-0", "db-1").await;
    pd_post(&mut client, "resolve", "disk-1", "db-1").await;
    let (status, _) = post(
        url,
        "/v2/enqueue",
        &[],
        r#"{"routing_key":"svc-payments","event_action":"trigger"}"#,
    )
    .await;
    assert_eq!(status, 400);
}

/// The dashboard's queries: every panel target's `expr` and every template variable's query.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(
                t["expr"]
                    .as_str()
                    .expect("a target without expr")
                    .to_string(),
            );
        }
    }
    let label_values = Regex::new(r"^label_values\((.*),\s*\w+\)$").unwrap();
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            let q = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .unwrap();
            out.push(
                label_values
                    .captures(q)
                    .map_or(q.to_string(), |c| c[1].to_string()),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alert_rules_name_only_metrics_sluice_exports() {
    let dashboard: Value =
        serde_json::from_str(&read(&deploy("grafana/sluice-dashboard.json"))).unwrap();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "{queries:#?}");
    let (_, exprs) = rules(&read(&deploy("prometheus/sluice-rules.yml")));
    let mut used: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (what, q) in queries
        .iter()
        .map(|q| ("dashboard", q))
        .chain(exprs.iter().map(|e| ("rules", e)))
    {
        let names = metric_names(q);
        assert!(!names.is_empty(), "{what}: no metric in {q}");
        for n in names {
            used.entry(declared_name(&n)).or_default().push(what);
        }
    }
    // What the issue asks the dashboard to show.
    for needed in [
        "sluice_events_received_total",
        "sluice_events_rejected_total",
        "sluice_incidents_opened_total",
        "sluice_incidents_resolved_total",
        "sluice_alerts_open",
        "sluice_incidents_open",
        "sluice_time_to_page_seconds",
        "sluice_kafka_connected",
        "sluice_consumer_lag",
        "sluice_request_duration_seconds",
    ] {
        assert!(
            used.get(needed).is_some_and(|w| w.contains(&"dashboard")),
            "the dashboard lacks {needed}"
        );
    }

    // Memory mode with the embedded broker, and Kafka mode on tansu: together they export
    // every metric but those that need a fault.
    let memory = Sluice::start("deploy-metrics-memory", "embedded", METRICS_CONFIG);
    traffic(&memory.url).await;
    let broker = Broker::start();
    let kafka = Sluice::start_with_env(
        "deploy-metrics-kafka",
        &broker.bootstrap,
        METRICS_CONFIG,
        &[("SLUICE_PIPELINE", "kafka")],
    );
    traffic(&kafka.url).await;
    // The consumer lag gauge is first set a session timeout (6 s) after the assignment.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut names = BTreeSet::new();
    while Instant::now() < deadline {
        names = exported(&memory.url).await;
        names.extend(exported(&kafka.url).await);
        if used.keys().all(|n| {
            names.contains(n)
                || AFTER_A_FAULT.contains(&n.as_str())
                || PROMETHEUS_OWN.contains(&n.as_str())
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let missing: Vec<String> = used
        .iter()
        .filter(|(n, _)| {
            !names.contains(*n)
                && !AFTER_A_FAULT.contains(&n.as_str())
                && !PROMETHEUS_OWN.contains(&n.as_str())
        })
        .map(|(n, w)| format!("{n} (used by {w:?})"))
        .collect();
    assert!(
        missing.is_empty(),
        "not exported by a running sluice: {missing:#?}\nexported: {names:#?}"
    );
    for n in AFTER_A_FAULT {
        assert!(
            sluice::metrics::ALL.iter().any(|(m, _)| m == n),
            "{n} is not in src/metrics.rs"
        );
        assert!(
            used.contains_key(*n),
            "{n} is listed as fault-only but nothing uses it"
        );
    }
    // The names found in the run are real: a misspelt one would have been missing.
    assert!(
        names.contains("sluice_consumer_lag") && names.contains("sluice_events_rejected_total")
    );

    // The dashboard's queries are PromQL promtool accepts (as recording rules, Grafana's
    // variables replaced).
    if tool(
        "dashboard_queries",
        "promtool",
        &["--version"],
        "Debian's prometheus",
    )
    .is_some()
    {
        let tmp = TempDir::new("dashboard-queries");
        let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
        for (i, q) in queries.iter().enumerate() {
            let q = q
                .replace("$__rate_interval", "5m")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            file += &format!(
                "      - record: dashboard:query{i}\n        expr: {}\n",
                serde_json::to_string(&q).unwrap()
            );
        }
        std::fs::write(tmp.0.join("dashboard.yml"), file).unwrap();
        run_ok(
            Command::new("promtool")
                .arg("check")
                .arg("rules")
                .arg(tmp.0.join("dashboard.yml")),
        );
    }
}

// ---- the container build file

/// The build file's instructions, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        current.push_str(line.trim_end_matches('\\'));
        current.push(' ');
        if !line.ends_with('\\') {
            let (word, rest) = current
                .trim()
                .split_once(' ')
                .unwrap_or((current.trim(), ""));
            out.push((word.to_uppercase(), rest.trim().to_string()));
            current.clear();
        }
    }
    out
}

/// What the deploy files must agree on with the container build file.
struct Image {
    uid: i64,
    port: i64,
    env: Vec<(String, String)>,
    runtime_packages: Vec<String>,
}

fn image() -> Image {
    let text = read(&deploy("Containerfile"));
    let ins = instructions(&text);
    let stages: Vec<&String> = ins
        .iter()
        .filter(|(w, _)| w == "FROM")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        stages.len(),
        2,
        "a build stage and a runtime stage: {stages:?}"
    );
    assert!(
        stages[0].contains("rust:")
            && stages[0].contains("bookworm")
            && stages[0].ends_with("AS builder"),
        "{}",
        stages[0]
    );
    assert!(
        stages[1].starts_with("docker.io/library/debian:bookworm-slim"),
        "{}",
        stages[1]
    );
    let runtime_at = ins.iter().rposition(|(w, _)| w == "FROM").unwrap();
    let (build, runtime) = ins.split_at(runtime_at);
    assert!(
        build
            .iter()
            .any(|(w, r)| w == "RUN" && r.contains("cargo build --release --locked")),
        "the builder builds with --release --locked"
    );
    let user = runtime
        .iter()
        .rfind(|(w, _)| w == "USER")
        .expect("a USER in the runtime stage");
    let uid: i64 = user
        .1
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric USER (runAsNonRoot needs one)");
    assert!(uid > 0, "the image runs as root");
    let port: i64 = runtime
        .iter()
        .find(|(w, _)| w == "EXPOSE")
        .expect("EXPOSE")
        .1
        .parse()
        .unwrap();
    let mut env = Vec::new();
    let pair = Regex::new(r"(SLUICE_[A-Z_]+)=(\S+)").unwrap();
    for (_, r) in runtime.iter().filter(|(w, _)| w == "ENV") {
        env.extend(
            pair.captures_iter(r)
                .map(|c| (c[1].to_string(), c[2].to_string())),
        );
    }
    let listen = env
        .iter()
        .find(|(k, _)| k == "SLUICE_LISTEN")
        .expect("SLUICE_LISTEN in the image");
    assert_eq!(
        listen.1,
        format!("0.0.0.0:{port}"),
        "the image listens where it EXPOSEs"
    );
    assert!(env.contains(&("SLUICE_CONFIG".into(), "/etc/sluice/sluice.toml".into())));
    let health = runtime
        .iter()
        .find(|(w, _)| w == "HEALTHCHECK")
        .expect("a HEALTHCHECK");
    assert!(
        health.1.contains("/usr/local/bin/sluice-healthcheck"),
        "{}",
        health.1
    );
    // Every file copied from the build context exists (and the health check is executable).
    for (_, r) in ins
        .iter()
        .filter(|(w, r)| w == "COPY" && !r.starts_with("--from"))
    {
        let parts: Vec<&str> = r.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            assert!(
                repo().join(src).exists(),
                "COPY {src}: not in the repository"
            );
        }
    }
    assert!(runtime.iter().any(|(w, r)| w == "COPY"
        && r == "deploy/container/healthcheck /usr/local/bin/sluice-healthcheck"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(deploy("container/healthcheck"))
        .unwrap()
        .permissions()
        .mode();
    assert!(
        mode & 0o111 != 0,
        "deploy/container/healthcheck is not executable"
    );
    let install =
        Regex::new(r"apt-get install -y --no-install-recommends ([a-z0-9.+\- ]+?)(?: &&|$)")
            .unwrap();
    let runtime_packages = runtime
        .iter()
        .filter(|(w, _)| w == "RUN")
        .filter_map(|(_, r)| install.captures(r))
        .flat_map(|c| {
            c[1].split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    Image {
        uid,
        port,
        env,
        runtime_packages,
    }
}

/// The container image is not built here (no container runtime runs on these machines, and
/// no image registry is reachable for its base images). What is checked: the file's shape,
/// and that its runtime stage installs every shared library the binary links to.
#[test]
fn container_file_has_two_stages_a_non_root_user_and_the_runtime_libraries() {
    let image = image();
    assert!(
        image
            .runtime_packages
            .contains(&"ca-certificates".to_string()),
        "{:?}",
        image.runtime_packages
    );
    let ldd = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .output();
    let Some(ldd) = ldd.ok().filter(|o| o.status.success()) else {
        eprintln!("container_file: ldd did not run; the runtime libraries are not checked");
        return;
    };
    // debian:bookworm-slim has libc6 and libgcc-s1 (and zlib1g) already.
    let mut have: Vec<String> = ["libc6", "libgcc-s1", "zlib1g"].map(String::from).to_vec();
    have.extend(image.runtime_packages);
    let mut checked = 0;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some(path) = line
            .split("=>")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        else {
            continue;
        };
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
        let owner = Command::new("dpkg").arg("-S").arg(&real).output();
        let Some(owner) = owner.ok().filter(|o| o.status.success()) else {
            eprintln!(
                "container_file: dpkg -S {} found no package; not checked",
                real.display()
            );
            continue;
        };
        let package = String::from_utf8_lossy(&owner.stdout)
            .split(':')
            .next()
            .unwrap()
            .to_string();
        assert!(
            have.contains(&package),
            "{path} comes from {package}, which the runtime stage does not install"
        );
        checked += 1;
    }
    assert!(checked >= 2, "{}", String::from_utf8_lossy(&ldd.stdout));
}

/// The image's HEALTHCHECK script, run as the image runs it, against the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_health_check_script_probes_a_running_sluice() {
    let script = deploy("container/healthcheck");
    let check = |listen: &str| {
        Command::new("bash")
            .arg(&script)
            .env_clear()
            .env("SLUICE_LISTEN", listen)
            .output()
            .unwrap()
    };
    let mut sluice = Sluice::start("deploy-healthcheck", "embedded", "");
    let port = sluice.url.rsplit(':').next().unwrap().to_string();
    for listen in [
        format!("127.0.0.1:{port}"),
        format!("0.0.0.0:{port}"),
        format!("[::]:{port}"),
    ] {
        let out = check(&listen);
        assert!(
            out.status.success(),
            "{listen}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A listener that answers something else than 200 is unhealthy.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = other.accept().unwrap();
        // The whole request first (bash may write it in pieces).
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        assert!(
            request.starts_with(b"GET /healthz HTTP/1.1\r\n"),
            "{request:?}"
        );
        conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    });
    let out = check(&format!("127.0.0.1:{other_port}"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("answered 503"),
        "{out:?}"
    );
    server.join().unwrap();
    assert!(sluice.terminate().success());
    let out = check(&format!("127.0.0.1:{port}"));
    assert!(!out.status.success(), "healthy with nothing listening");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing accepts connections"),
        "{out:?}"
    );
}

// ---- systemd

/// The value of `key=` in `unit` (the last one).
fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// A copy of the unit that runs the binary under test and reads `env_file`, in `dir`.
fn unit_copy(dir: &Path, unit: &str, env_file: &Path) -> PathBuf {
    let text = unit
        .replace("/usr/local/bin/sluice", env!("CARGO_BIN_EXE_sluice"))
        .replace(
            "-/etc/sluice/sluice.env",
            &format!("-{}", env_file.display()),
        );
    let path = dir.join("sluice.service");
    std::fs::write(&path, text).unwrap();
    path
}

/// The overall exposure `systemd-analyze security --offline=yes` gives the unit at `path`.
fn exposure(path: &Path) -> f64 {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let figure = Regex::new(r"Overall exposure level for sluice\.service: ([0-9.]+)").unwrap();
    figure
        .captures(&text)
        .unwrap_or_else(|| panic!("no exposure in:\n{text}"))[1]
        .parse()
        .unwrap()
}

#[test]
fn systemd_unit_verifies_and_its_exposure_stays_low() {
    let test = "systemd_unit";
    let unit = read(&deploy("systemd/sluice.service"));
    // Stop timeout above the drain: server.shutdown_grace of the example config.
    let config =
        sluice::config::Config::from_toml(&read(&repo().join("config/sluice.toml")), Vec::new())
            .unwrap();
    let stop: u64 = unit_value(&unit, "TimeoutStopSec")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        Duration::from_secs(stop) > config.server.shutdown_grace,
        "TimeoutStopSec={stop}"
    );
    // sluice reloads its config on SIGHUP (tests/e2e/transport.rs), which ExecReload sends.
    assert_eq!(
        unit_value(&unit, "ExecReload"),
        Some("/bin/kill -HUP $MAINPID")
    );
    assert_eq!(unit_value(&unit, "StateDirectory"), Some("sluice"));
    // Every variable the environment file names is one sluice takes (an unknown SLUICE_*
    // variable is an error), on a config with the [kafka.sasl] its password belongs to.
    let env_file = deploy("systemd/sluice.env.example");
    let names: Vec<String> = Regex::new(r"(?m)^#?(SLUICE_[A-Z_]+)=")
        .unwrap()
        .captures_iter(&read(&env_file))
        .map(|c| c[1].to_string())
        .collect();
    assert!(names.len() >= 3, "{names:?}");
    let tmp = TempDir::new("systemd-unit");
    let config = tmp.0.join("sluice.toml");
    std::fs::write(&config, "[kafka]\nbrokers = \"kafka-1:9093\"\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"sluice\"\n").unwrap();
    let mut check = Command::new(env!("CARGO_BIN_EXE_sluice"));
    check.arg("check-config").arg(&config);
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("SLUICE_")) {
        check.env_remove(name);
    }
    for name in &names {
        let value = match name.as_str() {
            "SLUICE_STATE_DIR" => tmp.0.join("state").display().to_string(),
            _ => "deploy-test-value-0123456789".to_string(),
        };
        check.env(name, value);
    }
    run_ok(&mut check);

    if tool(test, "systemd-analyze", &["--version"], "Debian's systemd").is_none() {
        return;
    }
    let path = unit_copy(&tmp.0, &unit, &env_file);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    // A misspelt directive is only a warning to systemd, and a failure here.
    let bad = tmp.0.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let misspelt = unit_copy(
        &bad,
        &unit.replace("ProtectHome=", "ProtectHom="),
        &env_file,
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&misspelt)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ProtectHom"),
        "{out:?}"
    );

    // `security --offline` came with systemd 250.
    let version =
        String::from_utf8_lossy(&run_ok(Command::new("systemd-analyze").arg("--version")).stdout)
            .to_string();
    let major: u32 = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if major < 250 {
        eprintln!(
            "{test}: systemd {major} has no `security --offline`; the exposure is not checked"
        );
        return;
    }
    // Measured with systemd 252: 1.1 (of 10; "OK"). The bound leaves room for another
    // systemd's weights, not for a hardening line lost: the unit without its hardening
    // section scores 9.6.
    let score = exposure(&path);
    assert!(score <= 1.5, "exposure {score} > 1.5");
    let start = unit.find("# An unprivileged user").unwrap();
    let end = unit.find("[Install]").unwrap();
    let bare = format!("{}{}", &unit[..start], &unit[end..]);
    let bare_dir = tmp.0.join("bare");
    std::fs::create_dir_all(&bare_dir).unwrap();
    let bare_score = exposure(&unit_copy(&bare_dir, &bare, &env_file));
    assert!(
        bare_score > 5.0,
        "the unhardened unit scores only {bare_score}"
    );
}

// ---- Kubernetes

/// Every manifest under deploy/kubernetes/, sorted.
fn manifests() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![deploy("kubernetes")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Each YAML document of `files` as JSON (PyYAML, which kubernetes-validate brings along).
fn yaml_documents(files: &[PathBuf]) -> Vec<Value> {
    let out = run_ok(
        Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml\n\
                 json.dump([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d], sys.stdout)",
            ])
            .args(files),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A quantity in base units: cores or bytes (the suffixes these manifests use).
fn quantity(q: &Value) -> f64 {
    let q = q
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| q.to_string());
    let (number, factor) = [("Mi", 1048576.0), ("Gi", 1073741824.0), ("m", 0.001)]
        .iter()
        .find_map(|(s, f)| q.strip_suffix(s).map(|n| (n.to_string(), *f)))
        .unwrap_or((q.clone(), 1.0));
    number
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("quantity {q}"))
        * factor
}

/// The documents of kind `kind`.
fn of_kind<'a>(docs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    docs.iter().filter(move |d| d["kind"] == kind)
}

/// Whether `selector` (matchLabels, or a Service's plain map) selects pods labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.get("matchLabels").unwrap_or(selector);
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[test]
fn kubernetes_manifests_validate_offline_and_keep_the_deploy_rules() {
    let test = "kubernetes_manifests";
    let files = manifests();
    assert!(files.len() >= 6, "{files:?}");
    let what = "kubernetes-validate from PyPI, with PyYAML";
    if tool(
        test,
        "python3",
        &["-c", "import yaml, kubernetes_validate"],
        what,
    )
    .is_none()
    {
        return;
    }
    let docs = yaml_documents(&files);
    // Strict: an unknown field is an error, not ignored. The oldest and newest schemas the
    // pinned kubernetes-validate carries that these manifests are meant for.
    for version in ["1.29.0", "1.37.0"] {
        let out = run_ok(
            Command::new("python3")
                .args(["-m", "kubernetes_validate", "--strict", "-k", version])
                .args(&files),
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            said.matches(" passed for resource ").count(),
            docs.len(),
            "{said}"
        );
        assert!(!said.contains("ERROR") && !said.contains("WARN"), "{said}");
    }
    // ... and it refuses what it should.
    let tmp = TempDir::new("kubernetes");
    let wrong = tmp.0.join("wrong.yaml");
    std::fs::write(
        &wrong,
        read(&files[0]).replace("metadata:", "metadata:\n  colour: red"),
    )
    .unwrap();
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict"])
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown field passed");

    let image = image();
    let configmaps: BTreeMap<&str, &str> = of_kind(&docs, "ConfigMap")
        .map(|c| {
            (
                c["metadata"]["name"].as_str().unwrap(),
                c["data"]["sluice.toml"].as_str().expect("sluice.toml"),
            )
        })
        .collect();
    let pdbs: Vec<&Value> = of_kind(&docs, "PodDisruptionBudget").collect();
    let workloads: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
        .collect();
    assert_eq!(
        workloads.len(),
        3,
        "memory mode's Deployment, Kafka mode's ingest and correlate"
    );
    let mut roles_seen = BTreeSet::new();
    for w in &workloads {
        let name = w["metadata"]["name"].as_str().unwrap();
        let pod = &w["spec"]["template"];
        let spec = &pod["spec"];
        assert!(
            selects(&w["spec"]["selector"], &pod["metadata"]["labels"]),
            "{name}: selector"
        );
        assert_eq!(spec["automountServiceAccountToken"], false, "{name}");
        let psc = &spec["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true, "{name}");
        assert_eq!(psc["runAsUser"], image.uid, "{name}: the image's USER");
        assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        let containers = spec["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "{name}");
        let c = &containers[0];
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        assert_eq!(c["ports"][0]["name"], "http", "{name}");
        assert_eq!(
            c["ports"][0]["containerPort"], image.port,
            "{name}: the image's EXPOSE"
        );
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            assert_eq!(c[probe]["httpGet"]["path"], path, "{name}: {probe}");
            assert_eq!(c[probe]["httpGet"]["port"], "http", "{name}: {probe}");
        }
        for resource in ["cpu", "memory"] {
            let request = quantity(&c["resources"]["requests"][resource]);
            let limit = quantity(&c["resources"]["limits"][resource]);
            assert!(
                request > 0.0 && request <= limit,
                "{name}: {resource} {request} / {limit}"
            );
        }

        // The environment the pod gets: the image's, then the manifest's (secrets by reference).
        let mut env: BTreeMap<String, String> = image.env.iter().cloned().collect();
        for e in c["env"].as_array().unwrap() {
            let key = e["name"].as_str().unwrap().to_string();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
                format!("{name}-0")
            } else {
                assert!(
                    e["valueFrom"]["secretKeyRef"]["name"].is_string(),
                    "{name}: {key} from where?"
                );
                "deploy-test-secret-0123456789".to_string()
            };
            env.insert(key, value);
        }
        for secret in ["SLUICE_ADMIN_TOKEN", "SLUICE_KAFKA_SASL_PASSWORD"] {
            let e = c["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == secret);
            let e = e.unwrap_or_else(|| panic!("{name}: no {secret}"));
            assert!(
                e["value"].is_null() && e["valueFrom"]["secretKeyRef"]["key"].is_string(),
                "{name}: {secret} must come from a Secret"
            );
        }
        // The ConfigMap is mounted where SLUICE_CONFIG points.
        let config_path = PathBuf::from(&env["SLUICE_CONFIG"]);
        let volume_of = |mount: &Path| {
            let m = c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| Path::new(m["mountPath"].as_str().unwrap()) == mount);
            let m = m.unwrap_or_else(|| panic!("{name}: nothing mounted at {}", mount.display()));
            spec["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == m["name"])
                .unwrap()
                .clone()
        };
        let configmap = volume_of(config_path.parent().unwrap())["configMap"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let toml = configmaps
            .get(configmap.as_str())
            .unwrap_or_else(|| panic!("{name}: no ConfigMap {configmap}"));

        // sluice itself takes that file with that environment.
        let file = tmp.0.join(format!("{name}.toml"));
        std::fs::write(&file, toml).unwrap();
        let mut check = Command::new(env!("CARGO_BIN_EXE_sluice"));
        check.arg("check-config").arg(&file);
        for (var, _) in std::env::vars().filter(|(n, _)| n.starts_with("SLUICE_")) {
            check.env_remove(var);
        }
        check.envs(env.iter().filter(|(k, _)| *k != "SLUICE_CONFIG"));
        run_ok(&mut check);
        let env_pairs = env
            .iter()
            .filter(|(k, _)| *k != "SLUICE_CONFIG")
            .map(|(k, v)| (k.clone(), v.clone()));
        let config = sluice::config::Config::from_toml(toml, env_pairs)
            .unwrap_or_else(|e| panic!("{name}: {e}"));

        // SIGKILL comes after the drain: the grace period covers preStop and shutdown_grace.
        let pre_stop: u64 = c["lifecycle"]["preStop"]["exec"]["command"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            Duration::from_secs(grace)
                > config.server.shutdown_grace + Duration::from_secs(pre_stop),
            "{name}: grace {grace}"
        );

        let replicas = w["spec"]["replicas"].as_i64().unwrap();
        let covered: Vec<&&Value> = pdbs
            .iter()
            .filter(|p| selects(&p["spec"]["selector"], &pod["metadata"]["labels"]))
            .collect();
        match config.pipeline.mode {
            sluice::config::PipelineMode::Memory => {
                // State is per process: one replica, the old one gone before the new one starts.
                assert_eq!(replicas, 1, "{name}: memory mode runs one replica");
                assert_eq!(w["kind"], "Deployment");
                assert_eq!(w["spec"]["strategy"]["type"], "Recreate", "{name}");
                assert!(
                    covered.is_empty(),
                    "{name}: a PDB on one replica only blocks drains"
                );
                let state = config
                    .pipeline
                    .state_dir
                    .as_ref()
                    .expect("memory mode keeps its state");
                let volume = volume_of(state);
                let claim = volume["persistentVolumeClaim"]["claimName"]
                    .as_str()
                    .expect("state on a claim");
                assert!(
                    of_kind(&docs, "PersistentVolumeClaim").any(|p| p["metadata"]["name"] == claim),
                    "{claim}"
                );
                roles_seen.insert("memory");
            }
            sluice::config::PipelineMode::Kafka => {
                assert_eq!(covered.len(), 1, "{name}: one PodDisruptionBudget");
                let roles = &config.pipeline.roles;
                assert!(roles.ingest != roles.correlate, "{name}: one role each");
                if roles.ingest {
                    assert!(
                        replicas >= 2,
                        "{name}: ingest is stateless, run two or more"
                    );
                    roles_seen.insert("ingest");
                } else {
                    assert!(
                        replicas <= i64::from(config.pipeline.partitions),
                        "{name}: more correlators than partitions"
                    );
                    assert_eq!(w["kind"], "StatefulSet", "{name}: stable instance names");
                    roles_seen.insert("correlate");
                }
            }
        }
    }
    assert_eq!(
        roles_seen,
        BTreeSet::from(["memory", "ingest", "correlate"])
    );
    // Every Service and PodDisruptionBudget selects pods of a workload, on a port they have.
    for s in of_kind(&docs, "Service") {
        let name = s["metadata"]["name"].as_str().unwrap();
        let selected: Vec<_> = workloads
            .iter()
            .filter(|w| {
                selects(
                    &s["spec"]["selector"],
                    &w["spec"]["template"]["metadata"]["labels"],
                )
            })
            .collect();
        assert!(!selected.is_empty(), "Service {name} selects no pods");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], "http", "{name}");
    }
    for p in &pdbs {
        assert!(workloads.iter().any(|w| selects(
            &p["spec"]["selector"],
            &w["spec"]["template"]["metadata"]["labels"]
        )));
    }
}
