#!/usr/bin/env python3
"""audex benchmark: N profiles into a Marketo static list at the rate-limit floor.

Runs, against the simulator with Marketo's limits and latency both time-scaled:
  first     a first full export (every profile new)
  unchanged a second run with nothing changed
  faults    a first full export into another list with 5% of calls faulted
  churn     1% changed, 1% left, 1% new (mirror mode)
  peer      marketorestpython doing what a hand-written integration does
and prints, per scenario: wall time, the floor for its calls at this scale,
utilisation (floor / wall), calls used versus the minimum, 606/615 answers,
audex's CPU seconds and peak memory.

Usage: python3 bench/run.py [--rows 1000000] [--scale 20] [--skip-peer]
See docs/benchmarks.md.
"""

import argparse
import csv
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 300
CALLS_PER_WINDOW = 100
WINDOW_SECS = 20.0


def sh(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, **kw)


class Sim:
    def __init__(self, binary, scale, out):
        self.log = open(os.path.join(out, "sim.log"), "w")
        self.proc = subprocess.Popen(
            [
                binary, "--port", "0", "--time-scale", str(scale), "--latency", "realistic",
                "--rate-calls", str(CALLS_PER_WINDOW), "--rate-window-secs", str(int(WINDOW_SECS)),
                "--max-concurrency", "10", "--daily-quota", "100000000", "--accept-query-token",
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

    def members(self, list_id):
        ids, after = [], None
        while True:
            q = f"/_sim/lists/{list_id}/members?limit=100000" + (f"&after={after}" if after is not None else "")
            page = self.get(q)
            ids.extend(page["members"])
            after = page.get("next_after")
            if after is None:
                return ids

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
      max_concurrency: 10
      daily_call_budget: 100000000
""")


def run_audex(audex, config, out, label):
    """Run `audex run` as a child and measure it: wall, CPU, peak RSS."""
    started = time.monotonic()
    with open(os.path.join(out, f"{label}.stderr"), "w") as err:
        proc = subprocess.Popen([audex, "run", "-c", config, "--output", "json"],
                                stdout=subprocess.PIPE, stderr=err, text=True)
        stdout = proc.stdout.read()
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"{label}: audex exited {code} without a JSON report; see {out}/{label}.stderr")
    return report, code, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def minimum_calls(report):
    upserted = sum(s["upserted"] for s in report["segments"])
    added = sum(s["added"] for s in report["segments"])
    removed = sum(s["removed"] for s in report["segments"])
    return math.ceil(upserted / BATCH) + math.ceil(added / BATCH) + math.ceil(removed / BATCH)


def marketo_calls(before, after):
    """Calls that count against Marketo's limits (identity is free)."""
    ops = set(before["by_op"]) | set(after["by_op"])
    d = {op: after["by_op"].get(op, 0) - before["by_op"].get(op, 0) for op in ops}
    d.pop("identity", None)
    return sum(d.values()), d


def code_delta(before, after, code):
    return after["codes"].get(code, 0) - before["codes"].get(code, 0)


def scenario(sim, audex, config, out, label, scale):
    before = sim.get("/_sim/counters")
    report, code, wall, cpu, rss = run_audex(audex, config, out, label)
    after = sim.get("/_sim/counters")
    calls, by_op = marketo_calls(before, after)
    minimum = minimum_calls(report)
    # The floor: the minimum calls at the rate limit, at this time scale.
    floor = minimum / CALLS_PER_WINDOW * (WINDOW_SECS / scale)
    row = {
        "scenario": label,
        "exit": code,
        "status": report["status"],
        "read": sum(s["read"] for s in report["segments"]),
        "rejected": sum(s["rejected"] for s in report["segments"]),
        "upserted": sum(s["upserted"] for s in report["segments"]),
        "added": sum(s["added"] for s in report["segments"]),
        "removed": sum(s["removed"] for s in report["segments"]),
        "wall_s": round(wall, 2),
        "floor_s": round(floor, 2),
        "utilisation": round(floor / wall, 3) if wall > 0 and minimum else None,
        "calls": calls,
        "calls_reported": report["calls_total"],
        "min_calls": minimum,
        "calls_over_min": calls - minimum,
        "answers_606": code_delta(before, after, "606"),
        "answers_615": code_delta(before, after, "615"),
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(rss, 1),
        "by_op": by_op,
    }
    print(json.dumps(row), flush=True)
    return row


def churn(src, dst, seed=11):
    """1% of rows changed (first name), 1% removed, 1% new."""
    rnd = random.Random(seed)
    with open(src, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = list(reader)
    n = len(rows)
    k = n // 100
    idx = list(range(n))
    rnd.shuffle(idx)
    changed, gone = set(idx[:k]), set(idx[k:2 * k])
    with open(dst, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for i, r in enumerate(rows):
            if i in gone:
                continue
            if i in changed:
                r = dict(r, first_name=(r["first_name"] or "X") + "-changed")
            w.writerow(r)
        for j in range(k):
            r = dict(rows[j])
            r["email"] = f"churn-new-{j}@bench.example.com"
            r["customer_id"] = f"NEW{j}"
            w.writerow(r)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--peer-rows", type=int, default=0, help="rows the peer sends (0: all)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    a = ap.parse_args()

    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    sh(["cargo", "build", "--release", "--locked", "-p", "audex-cli", "-p", "audex-marketo-sim", "-p", "audex-datagen"],
       cwd=ROOT)
    rel = os.path.join(ROOT, "target", "release")
    audex, simbin, datagen = (os.path.join(rel, b) for b in ("audex", "audex-marketo-sim", "audex-datagen"))

    data = os.path.join(a.out, "data")
    sh([datagen, "--rows", str(a.rows), "--seed", str(a.seed), "--bad-share", "0.01",
        "--duplicate-share", "0.005", "--out", data, "--format", "csv"])
    csv_path = os.path.join(data, "profiles.csv")
    churned = os.path.join(data, "profiles_churned.csv")
    churn(csv_path, churned)

    sim = Sim(simbin, a.scale, a.out)
    rows = []
    try:
        main_cfg = os.path.join(a.out, "audex.yaml")
        write_config(main_cfg, sim.base, csv_path, 1001, os.path.join(a.out, "state.db"), a.scale)
        rows.append(scenario(sim, audex, main_cfg, a.out, "first", a.scale))
        rows.append(scenario(sim, audex, main_cfg, a.out, "unchanged", a.scale))

        fault_cfg = os.path.join(a.out, "audex-faults.yaml")
        write_config(fault_cfg, sim.base, csv_path, 1002, os.path.join(a.out, "state-faults.db"), a.scale,
                     name="marketo_faults")
        sim.post("/_sim/faults", {"seed": 5, "rate": 0.05,
                                  "kinds": ["http_502", "code_604", "code_611", "close_connection", "token_expiry"]})
        rows.append(scenario(sim, audex, fault_cfg, a.out, "faults", a.scale))
        sim.post("/_sim/faults", {"seed": 0, "rate": 0.0, "kinds": []})
        exact = sorted(sim.members(1002)) == sorted(sim.members(1001))
        rows[-1]["list_exact"] = exact
        print(json.dumps({"faults_list_exact": exact}), flush=True)

        write_config(main_cfg, sim.base, churned, 1001, os.path.join(a.out, "state.db"), a.scale)
        rows.append(scenario(sim, audex, main_cfg, a.out, "churn", a.scale))

        if not a.skip_peer:
            before = sim.get("/_sim/counters")
            cmd = [sys.executable, os.path.join(ROOT, "bench", "peer_marketorestpython.py"), "--base-url", sim.base,
                   "--csv", csv_path, "--list-id", "1003", "--rows", str(a.peer_rows)]
            started = time.monotonic()
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            wall = time.monotonic() - started
            after = sim.get("/_sim/counters")
            peer = json.loads(out)
            calls, _ = marketo_calls(before, after)
            first = rows[0]
            # Compare time per profile sent, so a peer run on fewer rows still compares.
            audex_per_row = first["wall_s"] / max(first["upserted"], 1)
            peer_per_row = wall / max(peer["upserted"], 1)
            row = {"scenario": "peer", "wall_s": round(wall, 2), "rows": peer["rows"], "upserted": peer["upserted"],
                   "added": peer["added"], "calls": calls,
                   "answers_606": code_delta(before, after, "606"), "answers_615": code_delta(before, after, "615"),
                   "peer_over_audex_time_per_profile": round(peer_per_row / audex_per_row, 2)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        sim.stop()

    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"rows": a.rows, "scale": a.scale, "results": rows}, f, indent=2)
    print(f"results: {os.path.join(a.out, 'results.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
