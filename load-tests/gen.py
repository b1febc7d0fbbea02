#!/usr/bin/env python3
"""Corpus generator for sluice's load tests (standard library only, fixed seed).

Writes one file per body set into OUT_DIR (default: load-tests/corpus), one compact JSON
request body per line, so the wrk Lua scripts can cycle through them:

  s1_pd_recurring.jsonl   scenario 1: single PagerDuty v2 triggers over 1,000 recurring
                          dedup keys (4,000 bodies, each key re-sent about 4 times per cycle).
  s2_pd_new.jsonl         scenario 2, single events: PagerDuty v2 triggers whose dedup_key holds
                          the placeholder @@N@@; the Lua script replaces it with a per-request
                          counter, so every request is a new alert however long the run.
  s2_api1_new.jsonl       scenario 2, the same storm as 1-alert Alertmanager API v2 arrays
                          (POST /api/v2/alerts), for targets that only take that format.
  s2_api50_new.jsonl      scenario 2, batches: 50-alert Alertmanager API v2 arrays; every
                          alert's `alert_id` label holds @@N@@ plus its index, so all are new.
  s3_webhook50.jsonl      scenario 3: Alertmanager webhook payloads (version 4) with 50 alerts,
  s3_webhook250.jsonl     and 250: a fixed population of alerts re-notified group by group.
  s3_api50.jsonl          scenario 3 for Alertmanager itself: the same alerts, as API v2 arrays
  s3_api250.jsonl         (its /api/v2/alerts takes postable alerts, not webhook payloads).
  s4_api64_warm.jsonl     scenario 4, Prometheus' own traffic to /api/v2/alerts: a population of
  s4_api256_warm.jsonl    10,240 alerts (8-16 labels, 2-4 annotations, 0.3-1 KB each), all firing,
                          in batches of 64 and 256: posted once, unmeasured, to reach the steady
                          state.
  s4_api64.jsonl          the same population re-sent in the same batches, as Prometheus re-sends
  s4_api256.jsonl         every active alert: 95 % firing (endsAt in the future), 5 % resolved
                          (endsAt in the past; Prometheus re-sends resolved alerts for 15 min).
  rss_api256.jsonl        RSS per open alert: 40 batches of 256 distinct alerts like scenario 4's,
                          firing with endsAt in the future; every alert's `alert_id` label holds
                          @@N@@ plus its index, so post.py makes any number of distinct alerts.

Alerts of scenarios 1-3 carry 10-11 labels and 3 annotations (about 0.5 KB each), as
Prometheus sends them. Scenario 4's and rss_*'s `startsAt`/`endsAt` are relative to --now
(default: the time of generation), so their firing alerts are still firing when posted; the
rest of the corpus does not depend on the date.
Usage: gen.py [--now UNIX_SECONDS] [OUT_DIR]
"""

import hashlib
import json
import os
import random
import sys
import time

SEED = 20261121
ROUTING_KEY = "R0UT1NGKEYL0ADTEST00000000000000"  # 32 characters, as PagerDuty's
PLACEHOLDER = "@@N@@"

ALERTNAMES = [
    "HostDown", "HighCPU", "HighMemory", "DiskFull", "DiskIOSaturated", "NetworkErrors",
    "PodCrashLooping", "PodNotReady", "DeploymentReplicasMismatch", "APIHighLatency",
    "APIErrorRate", "PostgresReplicationLag", "PostgresTooManyConnections", "KafkaConsumerLag",
    "CertificateExpiring", "NodeClockSkew", "TargetDown", "ProbeFailed", "QueueBacklog",
    "OOMKilled",
]
SEVERITIES = ["critical", "error", "warning", "info"]
CLUSTERS = ["prod-eu-1", "prod-us-1", "prod-ap-1", "staging-eu-1"]
REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-1"]
TEAMS = ["payments", "checkout", "search", "platform", "data", "identity"]
SERVICES = ["api", "web", "worker", "postgres", "kafka", "redis", "ingress", "scheduler"]
HOSTS = ["host-%03d.example.internal:9100" % i for i in range(200)]

rng = random.Random(SEED)


def alert_labels(alertname, instance, extra=None):
    service = rng.choice(SERVICES)
    labels = {
        "alertname": alertname,
        "instance": instance,
        "job": "node" if alertname.startswith(("Host", "Disk", "Network", "Node")) else service,
        "severity": rng.choice(SEVERITIES),
        "cluster": rng.choice(CLUSTERS),
        "namespace": rng.choice(TEAMS) + "-" + rng.choice(["prod", "canary"]),
        "pod": "%s-%s-%05x" % (service, rng.choice(["7d9f8", "5c6b4", "84f2a"]), rng.randrange(1 << 20)),
        "service": service,
        "region": rng.choice(REGIONS),
        "team": rng.choice(TEAMS),
    }
    if extra:
        labels.update(extra)
    return labels


def annotations(labels):
    return {
        "summary": "%s on %s" % (labels["alertname"], labels["instance"]),
        "description": "%s has been firing for more than 5 minutes on %s in %s (value: %.2f)."
        % (labels["alertname"], labels["instance"], labels["cluster"], rng.uniform(0, 100)),
        "runbook_url": "https://runbooks.example.internal/alerts/%s" % labels["alertname"].lower(),
    }


def starts_at(i):
    return "2026-11-21T%02d:%02d:%02d.%03dZ" % (8 + i // 3600 % 10, i // 60 % 60, i % 60, i % 1000)


def api_alert(labels, i):
    """One postable alert, as Prometheus sends it to /api/v2/alerts."""
    return {
        "labels": labels,
        "annotations": annotations(labels),
        "startsAt": starts_at(i),
        # No endsAt: both sluice and Alertmanager then hold the alert for their resolve timeout
        # (5m), so the corpus means the same on any date.
        "generatorURL": "http://prometheus-0.example.internal:9090/graph?g0.expr=%s&g0.tab=1"
        % labels["alertname"],
    }


def pd_event(dedup_key, i):
    alertname = rng.choice(ALERTNAMES)
    host = rng.choice(HOSTS)
    return {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": "%s on %s" % (alertname, host),
            "source": host,
            "severity": rng.choice(SEVERITIES),
            "component": rng.choice(SERVICES),
            "group": rng.choice(TEAMS),
            "class": alertname,
            "timestamp": starts_at(i),
            "custom_details": {
                "cluster": rng.choice(CLUSTERS),
                "region": rng.choice(REGIONS),
                "value": round(rng.uniform(0, 100), 2),
                "runbook": "https://runbooks.example.internal/alerts/%s" % alertname.lower(),
            },
        },
        "client": "Prometheus",
        "client_url": "http://prometheus-0.example.internal:9090/alerts",
    }


def fingerprint(labels):
    # Only needs to be stable and distinct per label set; sluice recomputes its own anyway.
    text = "\xff".join("%s\xff%s" % kv for kv in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def write(out_dir, name, bodies):
    path = os.path.join(out_dir, name)
    with open(path, "w") as f:
        for body in bodies:
            line = dumps(body)
            assert "\n" not in line
            f.write(line + "\n")
    size = os.path.getsize(path)
    print("gen.py: %-22s %5d bodies, %7.1f KB mean" % (name, len(bodies), size / len(bodies) / 1024))


# Scenario 4 and RSS: alerts as a Prometheus server's rules produce them, with 8-16 labels.
OPTIONAL_LABELS = [
    ("cluster", lambda: rng.choice(CLUSTERS)),
    ("namespace", lambda: rng.choice(TEAMS) + "-" + rng.choice(["prod", "canary"])),
    ("pod", lambda: "%s-%s-%05x" % (rng.choice(SERVICES), rng.choice(["7d9f8", "5c6b4", "84f2a"]),
                                    rng.randrange(1 << 20))),
    ("service", lambda: rng.choice(SERVICES)),
    ("region", lambda: rng.choice(REGIONS)),
    ("team", lambda: rng.choice(TEAMS)),
    ("container", lambda: rng.choice(SERVICES + ["istio-proxy", "sidecar"])),
    ("node", lambda: "ip-10-%d-%d-%d.ec2.internal" % (rng.randrange(256), rng.randrange(256), rng.randrange(256))),
    ("endpoint", lambda: rng.choice(["http-metrics", "https", "web", "metrics"])),
    ("prometheus", lambda: "monitoring/k8s"),
    ("device", lambda: rng.choice(["nvme0n1", "nvme1n1", "sda", "eth0", "ens5"])),
    ("mountpoint", lambda: rng.choice(["/", "/var/lib/docker", "/data", "/var/log"])),
    ("fstype", lambda: rng.choice(["ext4", "xfs"])),
    ("code", lambda: rng.choice(["500", "502", "503", "504"])),
    ("method", lambda: rng.choice(["GET", "POST", "PUT"])),
    ("handler", lambda: rng.choice(["/api/v1/orders", "/api/v1/users/{id}", "/healthz", "/graphql"])),
]


def prom_labels(extra=None):
    """8-16 labels: alertname, instance, job, severity and 4-12 others."""
    alertname = rng.choice(ALERTNAMES)
    labels = {
        "alertname": alertname,
        "instance": rng.choice(HOSTS),
        "job": rng.choice(["node-exporter", "kube-state-metrics", "kubelet", "blackbox"] + SERVICES),
        "severity": rng.choice(SEVERITIES),
    }
    want = rng.randint(8, 16) - len(labels) - len(extra or {})
    for name, value in rng.sample(OPTIONAL_LABELS, want):
        labels[name] = value()
    if extra:
        labels.update(extra)
    return labels


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def prom_alert(labels, now, resolved=False):
    """One postable alert as Prometheus sends it: endsAt is always set (now + 4 x the resend
    delay for firing alerts; here an hour, so nothing expires during a run)."""
    ann = {"summary": "%s on %s" % (labels["alertname"], labels["instance"])}
    if rng.random() < 0.8:
        ann["description"] = "%s: %s has been above its threshold for %d minutes (current value: %.3f)." % (
            labels["alertname"], labels["instance"], rng.choice([5, 10, 15, 30]), rng.uniform(0, 1000))
    if rng.random() < 0.7:
        ann["runbook_url"] = "https://runbooks.example.internal/alerts/%s" % labels["alertname"].lower()
    if rng.random() < 0.4:
        ann["dashboard"] = "https://grafana.example.internal/d/%08x/overview?var-instance=%s" % (
            rng.randrange(1 << 32), labels["instance"])
    started = now - rng.randrange(60, 6 * 3600)
    return {
        "labels": labels,
        "annotations": ann,
        "startsAt": rfc3339(started),
        "endsAt": rfc3339(now - 30 if resolved else now + 3600),
        "generatorURL": "http://prometheus-0.example.internal:9090/graph?g0.expr=%s&g0.tab=1"
        % labels["alertname"],
    }


def scenario4(out_dir, now):
    population, seen = [], set()
    while len(population) < 10240:
        labels = prom_labels()
        fp = fingerprint(labels)
        if fp not in seen:
            seen.add(fp)
            population.append(labels)
    resolved = set(rng.sample(range(len(population)), len(population) // 20))
    # The annotations and startsAt stay the same from the warm-up to the re-sends.
    state = rng.getstate()
    for size in (64, 256):
        batches = [range(b, b + size) for b in range(0, len(population), size)]
        rng.setstate(state)
        warm = [[prom_alert(population[i], now) for i in b] for b in batches]
        rng.setstate(state)
        resend = [[prom_alert(population[i], now, resolved=i in resolved) for i in b] for b in batches]
        write(out_dir, "s4_api%d_warm.jsonl" % size, warm)
        write(out_dir, "s4_api%d.jsonl" % size, resend)


def rss_corpus(out_dir, now):
    write(out_dir, "rss_api256.jsonl",
          [[prom_alert(prom_labels({"alert_id": "%s-%d" % (PLACEHOLDER, j)}), now) for j in range(256)]
           for _ in range(40)])


def main():
    args = sys.argv[1:]
    now = time.time()
    if args[:1] == ["--now"]:
        now = float(args[1])
        args = args[2:]
    out_dir = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out_dir, exist_ok=True)

    # Scenario 1: 1,000 recurring dedup keys, 4,000 single events drawn from them.
    keys = ["%s/%s" % (rng.choice(ALERTNAMES), h) for h in ("k%04d" % i for i in range(1000))]
    write(out_dir, "s1_pd_recurring.jsonl", [pd_event(rng.choice(keys), i) for i in range(4000)])

    # Scenario 2: every key new. The placeholder makes each request's keys unique at run time.
    write(out_dir, "s2_pd_new.jsonl",
          [pd_event("storm-%s-%d" % (PLACEHOLDER, i), i) for i in range(1000)])
    write(out_dir, "s2_api1_new.jsonl",
          [[api_alert(alert_labels(rng.choice(ALERTNAMES), rng.choice(HOSTS),
                                   {"alert_id": "%s-0" % PLACEHOLDER}), i)] for i in range(1000)])
    write(out_dir, "s2_api50_new.jsonl",
          [[api_alert(alert_labels(rng.choice(ALERTNAMES), rng.choice(HOSTS),
                                   {"alert_id": "%s-%d" % (PLACEHOLDER, j)}), b * 50 + j)
            for j in range(50)] for b in range(200)])

    # Scenario 3: a fixed population of firing alerts, notified in groups of 50 and 250 (one
    # group per alertname and cluster, as an Alertmanager route grouping by those would).
    for size, count in ((50, 200), (250, 40)):
        webhooks, apis = [], []
        for b in range(count):
            alertname, cluster = ALERTNAMES[b % len(ALERTNAMES)], CLUSTERS[b // len(ALERTNAMES) % len(CLUSTERS)]
            alerts = []
            for j in range(size):
                labels = alert_labels(alertname, HOSTS[(b * size + j) % len(HOSTS)],
                                      {"cluster": cluster, "alert_id": "g%d-%d" % (b, j)})
                alerts.append(api_alert(labels, b * size + j))
            apis.append(alerts)
            group_labels = {"alertname": alertname, "cluster": cluster}
            webhooks.append({
                "version": "4",
                "groupKey": '{}:{alertname="%s", cluster="%s"}' % (alertname, cluster),
                "truncatedAlerts": 0,
                "status": "firing",
                "receiver": "sluice",
                "groupLabels": group_labels,
                "commonLabels": group_labels,
                "commonAnnotations": {},
                "externalURL": "http://alertmanager-0.example.internal:9093",
                "alerts": [dict(a, status="firing", endsAt="0001-01-01T00:00:00Z",
                                      fingerprint=fingerprint(a["labels"])) for a in alerts],
            })
        write(out_dir, "s3_webhook%d.jsonl" % size, webhooks)
        write(out_dir, "s3_api%d.jsonl" % size, apis)

    # Scenario 4 and the RSS corpus come last, so the bodies above do not change with them.
    scenario4(out_dir, now)
    rss_corpus(out_dir, now)


if __name__ == "__main__":
    main()
