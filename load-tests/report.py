#!/usr/bin/env python3
"""Prints compare.sh's report from the files its phases wrote (markdown tables; medians and
min-max over the repetitions). load-tests/README.md describes every column.

Usage: report.py CLK_TCK MAX_TSV E2E_TSV RATE_TSV RSS_TSV LOG_TSV
"""

import statistics
import sys
from collections import OrderedDict


def num(x):
    if x < 1000:
        return "%.0f" % x
    return "%.1fk" % (x / 1000) if x < 10**6 else "%.2fM" % (x / 10**6)


def ms(x):
    return "%.2f" % x if x < 100 else "%.0f" % x


def cpu_fmt(x):
    return "%.1f" % x if x < 100 else "%.0f" % x


def spread(runs, key, fmt=num):
    vals = [r[key] for r in runs if r[key] is not None]
    if not vals:
        return "-"
    if len(vals) == 1 or fmt(min(vals)) == fmt(max(vals)):
        return fmt(vals[0])
    return "%s (%s-%s)" % (fmt(statistics.median(vals)), fmt(min(vals)), fmt(max(vals)))


def median(runs, key):
    vals = [r[key] for r in runs if r[key] is not None]
    return statistics.median(vals) if vals else None


def table(header, rows):
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    out = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    print("\n".join(out))


def lines(path):
    with open(path) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def max_phase(clk, path):
    rows = OrderedDict()
    for line in lines(path):
        (target, scenario, rep, events, counted, cpu, rejects, req, dur_us, non2xx, sockerr, p50,
         p99) = line.split()
        secs = int(dur_us) / 1e6
        ok = int(req) - int(non2xx)
        sent = ok * int(events)
        rows.setdefault((scenario, target), []).append(dict(
            rps=int(req) / secs, eps=sent / secs, p50=int(p50) / 1000, p99=int(p99) / 1000,
            cpu=(int(cpu) / clk) / sent * 1e6 if sent else None,
            non2xx=int(non2xx), sockerr=int(sockerr), sent=sent, rejects=rejects,
            counted=None if counted == "-" else int(counted)))
    if not rows:
        return {}
    print("### Maximum throughput (closed loop, wrk)")
    print()
    out = []
    for (scenario, target), runs in rows.items():
        counted = [r for r in runs if r["counted"] is not None]
        ck = "-" if not counted else "%d/%d runs match" % (
            sum(1 for r in counted if r["counted"] >= r["sent"]), len(counted))
        out.append((scenario, target, spread(runs, "rps"), spread(runs, "eps"),
                    ms(median(runs, "p50")), ms(median(runs, "p99")), spread(runs, "cpu", cpu_fmt),
                    str(sum(r["non2xx"] for r in runs)), str(sum(r["sockerr"] for r in runs)), ck))
    table(("scenario", "target", "req/s median (min-max)", "events/s median (min-max)",
           "p50 ms", "p99 ms", "CPU s / M events", "non-2xx", "socket errors", "server counted"), out)
    print()
    for (scenario, target), runs in rows.items():
        bad = [r for r in runs if r["non2xx"]]
        if bad:
            reasons = OrderedDict()
            for r in runs:
                for item in r["rejects"].split(","):
                    if ":" in item:
                        k, v = item.split(":")
                        reasons[k] = reasons.get(k, 0) + int(float(v))
            why = ", ".join("%s %d" % kv for kv in reasons.items())
            print("%s %s: non-2xx in %d of %d runs%s" % (
                scenario, target, len(bad), len(runs),
                "; events refused by sluice (sluice_events_rejected_total, by reason): " + why if why else ""))
    if any(r["non2xx"] for runs in rows.values() for r in runs):
        print()
    eps = {k: median(v, "eps") for k, v in rows.items()}
    cpu = {k: median(v, "cpu") for k, v in rows.items()}
    for (scenario, target), e in eps.items():
        if target != "sluice":
            continue
        for other in ("floor", "alertmanager"):
            if (scenario, other) in eps:
                line = "%-19s sluice / %-12s = %5.2fx events/s" % (scenario, other, e / eps[(scenario, other)])
                if cpu.get((scenario, target)) and cpu.get((scenario, other)):
                    line += "; CPU per event: %s / sluice = %5.2fx" % (other, cpu[(scenario, other)] / cpu[(scenario, target)])
                print(line)
    e2e = [k for k in eps if k[1] == "sluice+tansu"]
    for key in e2e:
        base = ("2:new-key-api-x50", "sluice")
        if base in eps:
            print("%-19s sluice+tansu / sluice with the embedded broker (2:new-key-api-x50) = %.2fx events/s"
                  % (key[0], eps[key] / eps[base]))
    return rows


def e2e_phase(clk, path, max_rows):
    ins = [r for (s, t), rs in max_rows.items() if t == "sluice+tansu" for r in rs]
    runs = []
    for i, line in enumerate(lines(path)):
        rep, opened, published, failed, delivered, distinct, broker_cpu = line.split()
        conv = lambda x: None if x in ("-", "-1") else int(x)
        sent = ins[i]["sent"] if i < len(ins) else 0
        runs.append(dict(opened=conv(opened), published=conv(published),
                         # sluice registers the failure counter at its first failure
                         failed=0 if failed == "-" else int(failed),
                         delivered=int(delivered), distinct=int(distinct),
                         broker_cpu=int(broker_cpu) / clk))
    if not runs:
        return
    print()
    print("### Scenario 5, end to end through tansu (read back from the topic by a consumer)")
    print()
    match = sum(1 for r in runs if r["published"] is not None and r["delivered"] == r["published"])
    table(("events/s in median (min-max)", "tansu CPU s per run", "incidents opened",
           "messages published", "delivered on the topic", "distinct incident keys",
           "publish failures", "delivered = published"),
          [(spread(ins, "eps") if ins else "-", spread(runs, "broker_cpu", lambda x: "%.2f" % x),
            spread(runs, "opened"), spread(runs, "published"), spread(runs, "delivered"),
            spread(runs, "distinct"), str(sum(r["failed"] for r in runs)),
            "%d/%d runs" % (match, len(runs)))])


def rate_phase(clk, path):
    rows = OrderedDict()
    notes = {}
    failures = []
    for line in lines(path):
        (target, scenario, rep, qps, events, cpu, achieved, ok, bad, errors, p50, p99, p999,
         note, detail) = line.split("\t")
        if detail != "-":
            failures.append("%s %s, repetition %s: %s" % (target, scenario, rep, detail))
        sent = int(ok) * int(events)
        rows.setdefault((scenario, target, int(qps), int(events)), []).append(dict(
            achieved=float(achieved), ok=int(ok), total=int(ok) + int(bad) + int(errors),
            bad=int(bad) + int(errors),
            p50=float(p50) * 1000, p99=float(p99) * 1000, p999=float(p999) * 1000,
            cpu=(int(cpu) / clk) / sent * 1e6 if sent else None))
        if note != "-":
            notes[(scenario, target)] = note.replace("_", " ")
    if not rows:
        return
    print()
    print("### Latency at a fixed rate (open loop, oha -q --latency-correction)")
    print()
    out = []
    for (scenario, target, qps, events), runs in rows.items():
        out.append((scenario, target, "%s (%s events/s)" % (num(qps), num(qps * events)),
                    spread(runs, "achieved"), spread(runs, "p50", ms), spread(runs, "p99", ms),
                    spread(runs, "p999", ms), spread(runs, "cpu", cpu_fmt),
                    "%d/%d" % (sum(r["total"] - r["bad"] for r in runs), sum(r["total"] for r in runs))))
    table(("scenario", "target", "rate req/s", "achieved req/s", "p50 ms", "p99 ms", "p99.9 ms",
           "CPU s / M events", "2xx/answered+errors"), out)
    for key, note in notes.items():
        print()
        print("%s %s: %s." % (key[1], key[0], note))
    if failures:
        print()
        print("Answers that were not 2xx (status codes from the server; anything else is oha's "
              "own error, such as a request cut at the end of the run):")
        print()
        for f in failures:
            print("- " + f)


def rss_phase(path):
    rows = OrderedDict()
    for line in lines(path):
        target, rep, posted, held, rss0, rss1, secs = line.split()
        posted = int(posted)
        rows.setdefault(target, []).append(dict(
            posted=posted, held=None if held == "-" else int(held), rss0=int(rss0) / 1024,
            rss1=int(rss1) / 1024, per=(int(rss1) - int(rss0)) * 1024 / posted, secs=float(secs)))
    if not rows:
        return
    print()
    print("### RSS per open alert (fresh process, distinct alerts held open)")
    print()
    mib = lambda x: "%.1f" % x
    table(("target", "alerts posted", "held (server's count)", "RSS before MiB", "RSS after MiB",
           "bytes per open alert", "posting took s"),
          [(t, spread(rs, "posted"), spread(rs, "held"), spread(rs, "rss0", mib),
            spread(rs, "rss1", mib), spread(rs, "per", lambda x: "%.0f" % x),
            spread(rs, "secs", lambda x: "%.1f" % x)) for t, rs in rows.items()])
    if "sluice" in rows and "alertmanager" in rows:
        print()
        print("alertmanager / sluice = %.2fx bytes per open alert" % (
            median(rows["alertmanager"], "per") / median(rows["sluice"], "per")))


def log_phase(path):
    seen = OrderedDict()
    for line in lines(path):
        label, text = line.split("\t", 1)
        seen.setdefault(text, []).append(label)
    print()
    print("### Warnings and errors in the servers' logs")
    print()
    if not seen:
        print("None.")
        return
    for text, labels in seen.items():
        where = OrderedDict()
        for l in labels:
            where[l] = where.get(l, 0) + 1
        print("- %s  (%s)" % (text, "; ".join("%s: %d run%s" % (l, n, "s" if n > 1 else "")
                                           for l, n in where.items())))


def main():
    clk = int(sys.argv[1])
    max_rows = max_phase(clk, sys.argv[2])
    e2e_phase(clk, sys.argv[3], max_rows)
    rate_phase(clk, sys.argv[4])
    rss_phase(sys.argv[5])
    log_phase(sys.argv[6])


if __name__ == "__main__":
    main()
