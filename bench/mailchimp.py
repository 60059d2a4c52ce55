#!/usr/bin/env python3
"""audex benchmark: N profiles into a Mailchimp tag at the connection floor.

Runs, against the Mailchimp simulator with Mailchimp's limit (10 connections
a user) and a latency of 0.4 s + 2 ms per member in the call (Mailchimp
publishes none: about 1.4 s for 500), both time-scaled:
  first      a first full export (every profile new)
  unchanged  a second run with nothing changed
  churn      1% changed, 1% left, 1% new (mirror mode)
  faults     a first full export into another tag with 5% of calls faulted
and prints, per scenario: wall time, the floor for its calls at this scale
(the calls' summed latency over 10 connections), utilisation (floor / wall),
calls used versus the minimum, 429 answers, audex's CPU seconds and peak
memory, and whether the tag is exact (its members' emails equal the
segment's valid, deduplicated emails).

Usage: python3 bench/mailchimp.py [--rows 1000000] [--scale 20]
See docs/benchmarks.md.
"""

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import churn, expected_members, fmt, log, run_audex, sh  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 500
CONNECTIONS = 10
BASE_LATENCY = 0.4
PER_MEMBER = 0.002
AUDIENCE = "a1b2c3d4e5"
API_KEY = "0123456789abcdef0123456789abcdef-us6"
FAULT_KINDS = ["http_429", "http_403", "http_500", "http_502", "http_503", "close_before", "close_after"]
# Operations that write (the ones the floor counts).
WRITES = ("batch_subscribe", "batch_segment")


class Sim:
    """The Mailchimp simulator as a child process, steered through its side channel."""

    def __init__(self, binary, scale, out):
        self.log = open(os.path.join(out, "sim-mailchimp.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--time-scale", str(scale), "--latency", "realistic",
             "--max-concurrency", str(CONNECTIONS)],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
            env=dict(os.environ, AUDEX_SIM_MAILCHIMP_KEY=API_KEY),
        )
        self.base = self.proc.stdout.readline().strip()
        if not self.base.startswith("http"):
            raise SystemExit(f"simulator did not start: {self.base!r}")

    def get(self, path):
        with urllib.request.urlopen(self.base + path) as r:
            return json.load(r)

    def post(self, path, body=None):
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(self.base + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def tag_emails(self, tag):
        """The tag's members (every status), as lowercased emails."""
        state = self.get("/_sim/state")
        seg = None
        for aud in state["audiences"]:
            if aud["id"] == AUDIENCE:
                seg = next((s["id"] for s in aud["segments"] if s["name"] == tag), None)
        if seg is None:
            return []
        emails, offset = [], 0
        while True:
            page = self.get(f"/_sim/audiences/{AUDIENCE}/segments/{seg}/members?offset={offset}&limit=100000")
            emails.extend(e.lower() for e in page["emails"])
            offset += len(page["emails"])
            if not page["emails"] or offset >= page["total"]:
                return emails

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def write_config(path, base, table_path, tag, state, name="mailchimp_bench"):
    with open(path, "w") as f:
        f.write(f"""state: {state}
sources:
  crm:
    type: files
    tables:
      profiles: {table_path}
segments:
  everyone:
    source: crm
    table: profiles
destinations:
  {name}:
    type: mailchimp
    display_name: Benchmark
    api_key: ${{BENCH_MAILCHIMP_KEY}}
    base_url: {base}/3.0
    audience_id: {AUDIENCE}
    data_privacy_consent: true
    export_user: bench@example.com
    status_if_new: subscribed
    mapping:
      email: email
      FNAME: first_name
      LNAME: last_name
    tag: {tag}
    create_tag: true
    mode: mirror
    exports:
      - segment: everyone
    max_profiles: 5000000
""")


def minimum_calls(upserted, added, removed):
    # Adds and removes share a call, 500 of each.
    return math.ceil(upserted / BATCH) + max(math.ceil(added / BATCH), math.ceil(removed / BATCH))


def floor_secs(calls, members, scale):
    """The least time `calls` carrying `members` members take over 10
    connections at this scale."""
    return (calls * BASE_LATENCY + members * PER_MEMBER) / CONNECTIONS / scale


def writes(before, after):
    ops = set(before["by_op"]) | set(after["by_op"])
    d = {op: after["by_op"].get(op, 0) - before["by_op"].get(op, 0) for op in ops}
    d = {op: n for op, n in d.items() if n}
    return sum(n for op, n in d.items() if op in WRITES), d


def scenario(sim, audex, config, out, label, scale, data_csv, tag):
    before = sim.get("/_sim/counters")
    report, code, wall, cpu, rss = run_audex(audex, config, out, label)
    after = sim.get("/_sim/counters")
    calls, by_op = writes(before, after)
    segs = report["segments"]
    total = {k: sum(s[k] for s in segs) for k in ("read", "rejected", "upserted", "added", "removed",
                                                   "unchanged", "failed")}
    minimum = minimum_calls(total["upserted"], total["added"], total["removed"])
    floor = floor_secs(minimum, total["upserted"] + total["added"] + total["removed"], scale)
    want = expected_members(data_csv, report.get("rejects_file"))
    got = sim.tag_emails(tag)
    have = set(got)
    row = {
        "scenario": label,
        "exit": code,
        "status": report["status"],
        **total,
        "wall_s": round(wall, 2),
        "audex_duration_s": round(report["duration_ms"] / 1000.0, 2),
        "floor_s": round(floor, 2),
        "utilisation": round(floor / wall, 3) if minimum else None,
        "calls": calls,
        "calls_all": sum(by_op.values()),
        "calls_reported": report["calls_total"],
        "min_calls": minimum,
        "answers_429": after.get("too_many_requests", 0) - before.get("too_many_requests", 0),
        "max_in_flight": after.get("max_in_flight"),
        "cpu_s": round(cpu, 2) if cpu is not None else None,
        "peak_rss_mb": round(rss, 1),
        "by_op": by_op,
        "tag_members": len(got),
        "tag_expected": len(want),
        "tag_missing": len(want - have),
        "tag_extra": len(have - want) + (len(got) - len(have)),
        "tag_exact": have == want and len(got) == len(have),
    }
    print(json.dumps(row), flush=True)
    return row


def summary(rows, n, scale):
    cols = [("scenario", "scenario"), ("status", "status"), ("wall_s", "wall s"), ("floor_s", "floor s"),
            ("utilisation", "util"), ("calls", "calls"), ("min_calls", "min"), ("answers_429", "429"),
            ("cpu_s", "cpu s"), ("peak_rss_mb", "rss MB"), ("tag_exact", "exact")]
    table = [[h for _, h in cols]] + [[fmt(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(cols))]
    lines = [f"audex Mailchimp benchmark: {n} rows, time scale {scale}"]
    for r in table:
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fault-rate", type=float, default=0.05)
    ap.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out-mailchimp"))
    a = ap.parse_args()

    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    if not a.no_build:
        sh(["cargo", "build", "--workspace", "--release", "--locked"], cwd=ROOT)
    rel = os.path.join(ROOT, "target", "release")
    audex, simbin, datagen = (os.path.join(rel, b) for b in ("audex", "audex-mailchimp-sim", "audex-datagen"))
    os.environ["BENCH_MAILCHIMP_KEY"] = API_KEY

    data = os.path.join(a.out, "data")
    sh([datagen, "--rows", str(a.rows), "--seed", str(a.seed), "--bad-share", "0.01",
        "--duplicate-share", "0.005", "--out", data, "--format", "csv"])
    csv_path = os.path.join(data, "profiles.csv")
    churned = os.path.join(data, "profiles_churned.csv")
    churn(csv_path, churned)

    rows = []
    sim = Sim(simbin, a.scale, a.out)
    try:
        main_cfg = os.path.join(a.out, "audex.yaml")
        write_config(main_cfg, sim.base, csv_path, "Everyone", os.path.join(a.out, "state.db"))
        rows.append(scenario(sim, audex, main_cfg, a.out, "first", a.scale, csv_path, "Everyone"))
        rows.append(scenario(sim, audex, main_cfg, a.out, "unchanged", a.scale, csv_path, "Everyone"))
        churn_cfg = os.path.join(a.out, "audex-churn.yaml")
        write_config(churn_cfg, sim.base, churned, "Everyone", os.path.join(a.out, "state.db"))
        rows.append(scenario(sim, audex, churn_cfg, a.out, "churn", a.scale, churned, "Everyone"))

        fault_cfg = os.path.join(a.out, "audex-faults.yaml")
        write_config(fault_cfg, sim.base, csv_path, "Faults", os.path.join(a.out, "state-faults.db"),
                     name="mailchimp_faults")
        sim.post("/_sim/faults", {"seed": 5, "rate": a.fault_rate, "kinds": FAULT_KINDS})
        rows.append(scenario(sim, audex, fault_cfg, a.out, "faults", a.scale, csv_path, "Faults"))
        sim.post("/_sim/faults", {"seed": 0, "rate": 0.0, "kinds": []})
    finally:
        sim.stop()

    first, unchanged = rows[0], rows[1]
    unchanged["calls_share_of_first"] = round(unchanged["calls_all"] / max(first["calls_all"], 1), 5)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"rows": a.rows, "scale": a.scale, "results": rows}, f, indent=2)
    print(summary(rows, a.rows, a.scale))
    log(f"results: {os.path.join(a.out, 'results.json')}")


if __name__ == "__main__":
    main()
