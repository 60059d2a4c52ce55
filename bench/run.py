#!/usr/bin/env python3
"""audex benchmark: N profiles into a Marketo static list at the rate-limit floor.

Runs, against the simulator with Marketo's limits (100 calls per 20 s, 10 in
flight) and its realistic latency, both time-scaled:
  first      a first full export (every profile new)
  unchanged  a second run with nothing changed
  churn      1% changed, 1% left, 1% new (mirror mode)
  faults     a first full export into another list with 5% of calls faulted
  peer       marketorestpython doing what a hand-written integration does,
             on a fresh simulator with the same data
and prints, per scenario: wall time, the floor for its calls at this scale,
utilisation (floor / wall), calls used versus the minimum, 606/615 answers,
audex's CPU seconds and peak memory, and whether the list is exact (its
members' emails equal the segment's valid, deduplicated emails).

Usage: python3 bench/run.py [--rows 1000000] [--scale 20] [--peer-rows N]
See docs/benchmarks.md.
"""

import argparse
import csv
import json
import math
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 300
CALLS_PER_WINDOW = 100
WINDOW_SECS = 20.0
MAX_CONCURRENCY = 10
FAULT_KINDS = ["http_502", "http_503", "code_604", "code_608", "code_611", "code_713", "slow",
               "close_connection", "token_expiry"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    log("+ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


class Sim:
    """The simulator as a child process, steered through its side channel."""

    def __init__(self, binary, scale, out, name):
        self.log = open(os.path.join(out, f"sim-{name}.log"), "w")
        self.proc = subprocess.Popen(
            [
                binary, "--port", "0", "--time-scale", str(scale), "--latency", "realistic",
                "--rate-calls", str(CALLS_PER_WINDOW), "--rate-window-secs", str(int(WINDOW_SECS)),
                "--max-concurrency", str(MAX_CONCURRENCY), "--daily-quota", "100000000",
                # marketorestpython sends the token as a query parameter too.
                "--accept-query-token",
            ],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
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

    def member_emails(self, list_id):
        """The list's members, as lowercased emails (None for a lead without one)."""
        emails, after = [], None
        while True:
            q = f"/_sim/lists/{list_id}/members?limit=100000&emails=true"
            if after is not None:
                q += f"&after={after}"
            page = self.get(q)
            emails.extend(e.lower() if e else None for e in page["emails"])
            after = page.get("next_after")
            if after is None:
                return emails

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def write_config(path, base, table_path, list_id, state, scale, name="marketo_bench"):
    window = WINDOW_SECS / scale
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
    type: marketo
    display_name: Benchmark
    endpoint: {base}
    client_id: sim-client-id
    client_secret: sim-client-secret
    data_privacy_consent: true
    export_user: bench@example.com
    mapping:
      email: email
      firstName: first_name
      lastName: last_name
      city: city
      state: state
      country: country
    list_id: {list_id}
    mode: mirror
    exports:
      - segment: everyone
    max_profiles: 5000000
    rate_limit:
      calls: {CALLS_PER_WINDOW}
      window_secs: {window}
      max_concurrency: {MAX_CONCURRENCY}
      daily_call_budget: 100000000
""")


def run_audex(audex, config, out, label):
    """Run `audex run` and measure it: wall, CPU (user + system), peak RSS.

    Through /usr/bin/time when there is one: a child forked straight from
    this (large) Python process would report Python's peak RSS as its own
    (Linux keeps the high-water mark across exec)."""
    usage = os.path.join(out, f"{label}.usage")
    cmd = [audex, "run", "-c", config, "--output", "json"]
    if os.access("/usr/bin/time", os.X_OK):
        cmd = ["/usr/bin/time", "-o", usage, "-f", "%U %S %M"] + cmd
    started = time.monotonic()
    with open(os.path.join(out, f"{label}.stderr"), "w") as err:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    wall = time.monotonic() - started
    code = proc.returncode
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"{label}: audex exited {code} without a JSON report; see {out}/{label}.stderr")
    if os.path.exists(usage):
        user, system, rss_kb = open(usage).read().split()[-3:]
        return report, code, wall, float(user) + float(system), int(rss_kb) / 1024.0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return report, code, wall, None, ru.ru_maxrss / 1024.0


def minimum_calls(upserted, added, removed):
    return math.ceil(upserted / BATCH) + math.ceil(added / BATCH) + math.ceil(removed / BATCH)


def floor_secs(calls, scale):
    """The time `calls` take at the rate limit, at this time scale."""
    return calls / CALLS_PER_WINDOW * (WINDOW_SECS / scale)


def marketo_calls(before, after):
    """Calls that count against Marketo's limits (identity is free), by operation."""
    ops = set(before["by_op"]) | set(after["by_op"])
    d = {op: after["by_op"].get(op, 0) - before["by_op"].get(op, 0) for op in ops}
    d.pop("identity", None)
    d = {op: n for op, n in d.items() if n}
    return sum(d.values()), d


def code_delta(before, after, code):
    return after["codes"].get(code, 0) - before["codes"].get(code, 0)


def norm(email):
    return (email or "").strip().lower()


def expected_members(data_csv, rejects_path):
    """The segment's emails that must be list members: every email of the
    file, less the rows audex rejected with a reason (invalid email, refused
    by Marketo); a duplicate's first row still counts."""
    rows = Counter()
    with open(data_csv, newline="", encoding="utf-8-sig") as f:
        for r in csv.DictReader(f):
            rows[norm(r.get("email"))] += 1
    refused = Counter()
    if rejects_path and os.path.exists(rejects_path):
        with open(rejects_path, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                if r["code"] != "duplicate_key" and r["row"]:
                    refused[norm(r["key"])] += 1
    return {e for e, n in rows.items() if e and n > refused.get(e, 0)}


def list_check(sim, list_id, data_csv, report):
    want = expected_members(data_csv, report.get("rejects_file"))
    got = sim.member_emails(list_id)
    have = set(got)
    return {
        "list_members": len(got),
        "list_expected": len(want),
        "list_missing": len(want - have),
        "list_extra": len(have - want) + (len(got) - len(have)),
        "list_exact": have == want and len(got) == len(have),
    }


def scenario(sim, audex, config, out, label, scale, data_csv, list_id):
    before = sim.get("/_sim/counters")
    report, code, wall, cpu, rss = run_audex(audex, config, out, label)
    after = sim.get("/_sim/counters")
    calls, by_op = marketo_calls(before, after)
    segs = report["segments"]
    total = {k: sum(s[k] for s in segs) for k in ("read", "rejected", "upserted", "added", "removed",
                                                   "unchanged", "failed")}
    minimum = minimum_calls(total["upserted"], total["added"], total["removed"])
    floor = floor_secs(minimum, scale)
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
        "calls_reported": report["calls_total"],
        "min_calls": minimum,
        "calls_over_min": calls - minimum,
        "answers_606": code_delta(before, after, "606"),
        "answers_615": code_delta(before, after, "615"),
        "peak_concurrency": after.get("peak_concurrency"),
        "cpu_s": round(cpu, 2) if cpu is not None else None,
        "peak_rss_mb": round(rss, 1),
        "by_op": by_op,
    }
    row.update(list_check(sim, list_id, data_csv, report))
    print(json.dumps(row), flush=True)
    return row


def churn(src, dst, seed=11):
    """1% of rows changed (first name), 1% removed, 1% new. Streams: the
    bench's own memory stays small."""
    with open(src, newline="", encoding="utf-8-sig") as f:
        n = sum(1 for _ in csv.reader(f)) - 1
    k = n // 100
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    changed, gone = set(idx[:k]), set(idx[k:2 * k])
    del idx
    with open(src, newline="", encoding="utf-8-sig") as f, open(dst, "w", newline="", encoding="utf-8") as o:
        reader = csv.DictReader(f)
        w = csv.DictWriter(o, fieldnames=reader.fieldnames)
        w.writeheader()
        firsts = []
        for i, r in enumerate(reader):
            if i < k:
                firsts.append(r)
            if i in gone:
                continue
            if i in changed:
                r = dict(r, first_name=(r["first_name"] or "X")[:200] + "-changed")
            w.writerow(r)
        for j, r in enumerate(firsts):
            r = dict(r, email=f"churn-new-{j}@bench.example.com")
            if "customer_id" in r:
                r["customer_id"] = f"NEW{j}"
            w.writerow(r)


def run_peer(simbin, scale, out, csv_path, peer_rows):
    """marketorestpython on a fresh simulator with the same data."""
    sim = Sim(simbin, scale, out, "peer")
    try:
        before = sim.get("/_sim/counters")
        cmd = [sys.executable, os.path.join(ROOT, "bench", "peer_marketorestpython.py"), "--base-url", sim.base,
               "--csv", csv_path, "--list-id", "1003", "--rows", str(peer_rows), "--time-scale", str(scale)]
        log("+ " + " ".join(cmd))
        started = time.monotonic()
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        wall = time.monotonic() - started
        after = sim.get("/_sim/counters")
    finally:
        sim.stop()
    peer = json.loads(res.stdout)
    calls, by_op = marketo_calls(before, after)
    return {
        "scenario": "peer",
        "rows": peer["rows"],
        "upserted": peer["upserted"],
        "added": peer["added"],
        "wall_s": round(wall, 2),
        "floor_s": round(floor_secs(calls, scale), 2),
        "utilisation": round(floor_secs(calls, scale) / wall, 3),
        "calls": calls,
        "answers_606": code_delta(before, after, "606"),
        "answers_615": code_delta(before, after, "615"),
        "by_op": by_op,
    }


def pause_for_window(scale):
    """Each audex process has its own limiter: let the simulator's rolling
    window empty before the next one starts, as it would between two
    scheduled runs."""
    time.sleep(WINDOW_SECS / scale + 0.25)


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return str(v)


def summary(rows, n, scale):
    cols = [("scenario", "scenario"), ("status", "status"), ("wall_s", "wall s"), ("floor_s", "floor s"),
            ("utilisation", "util"), ("calls", "calls"), ("min_calls", "min"), ("answers_606", "606"),
            ("answers_615", "615"), ("cpu_s", "cpu s"), ("peak_rss_mb", "rss MB"), ("list_exact", "exact")]
    table = [[h for _, h in cols]] + [[fmt(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(cols))]
    lines = [f"audex benchmark: {n} rows, time scale {scale}"]
    for r in table:
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--source", choices=["csv", "parquet"], default="csv",
                    help="file audex reads in the first, unchanged and faults runs (the churn run and the peer read CSV)")
    ap.add_argument("--fault-rate", type=float, default=0.05)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--peer-rows", type=int, default=0, help="rows the peer sends (0: all)")
    ap.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    a = ap.parse_args()

    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    if not a.no_build:
        # The whole workspace, as everyone builds it: a package selection
        # would rebuild DataFusion with other features.
        sh(["cargo", "build", "--workspace", "--release", "--locked"], cwd=ROOT)
    rel = os.path.join(ROOT, "target", "release")
    audex, simbin, datagen = (os.path.join(rel, b) for b in ("audex", "audex-marketo-sim", "audex-datagen"))

    data = os.path.join(a.out, "data")
    sh([datagen, "--rows", str(a.rows), "--seed", str(a.seed), "--bad-share", "0.01",
        "--duplicate-share", "0.005", "--out", data, "--format", "csv,parquet"])
    csv_path = os.path.join(data, "profiles.csv")
    source_path = os.path.join(data, f"profiles.{a.source}")
    churned = os.path.join(data, "profiles_churned.csv")
    churn(csv_path, churned)

    rows = []
    sim = Sim(simbin, a.scale, a.out, "audex")
    try:
        main_cfg = os.path.join(a.out, "audex.yaml")
        write_config(main_cfg, sim.base, source_path, 1001, os.path.join(a.out, "state.db"), a.scale)
        rows.append(scenario(sim, audex, main_cfg, a.out, "first", a.scale, csv_path, 1001))
        pause_for_window(a.scale)
        rows.append(scenario(sim, audex, main_cfg, a.out, "unchanged", a.scale, csv_path, 1001))
        pause_for_window(a.scale)

        churn_cfg = os.path.join(a.out, "audex-churn.yaml")
        write_config(churn_cfg, sim.base, churned, 1001, os.path.join(a.out, "state.db"), a.scale)
        rows.append(scenario(sim, audex, churn_cfg, a.out, "churn", a.scale, churned, 1001))
        pause_for_window(a.scale)

        fault_cfg = os.path.join(a.out, "audex-faults.yaml")
        write_config(fault_cfg, sim.base, source_path, 1002, os.path.join(a.out, "state-faults.db"), a.scale,
                     name="marketo_faults")
        sim.post("/_sim/faults", {"seed": 5, "rate": a.fault_rate, "kinds": FAULT_KINDS})
        rows.append(scenario(sim, audex, fault_cfg, a.out, "faults", a.scale, csv_path, 1002))
        sim.post("/_sim/faults", {"seed": 0, "rate": 0.0, "kinds": []})
        rows[-1]["faults_injected"] = sum(sim.get("/_sim/counters").get("faults", {}).values())
    finally:
        sim.stop()

    first, unchanged, churn_row = rows[0], rows[1], rows[2]
    unchanged["calls_share_of_first"] = round(unchanged["calls"] / max(first["calls"], 1), 5)
    churn_row["calls_over_min_share"] = round(churn_row["calls_over_min"] / max(churn_row["min_calls"], 1), 4)

    if not a.skip_peer:
        peer = run_peer(simbin, a.scale, a.out, csv_path, a.peer_rows)
        # Time per profile sent, so a peer run on fewer rows still compares.
        audex_per_row = first["wall_s"] / max(first["upserted"], 1)
        peer_per_row = peer["wall_s"] / max(peer["upserted"], 1)
        peer["audex_over_peer"] = round(audex_per_row / peer_per_row, 4)
        peer["peer_over_audex"] = round(peer_per_row / audex_per_row, 1)
        print(json.dumps(peer), flush=True)
        rows.append(peer)

    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"rows": a.rows, "scale": a.scale, "source": a.source, "results": rows}, f, indent=2)
    print(summary(rows, a.rows, a.scale))
    if not a.skip_peer:
        print(f"audex / peer (wall time per profile): {rows[-1]['audex_over_peer']} "
              f"(the peer takes {rows[-1]['peer_over_audex']}x as long per profile; peer sent {rows[-1]['upserted']} rows)")
    log(f"results: {os.path.join(a.out, 'results.json')}")


if __name__ == "__main__":
    main()
