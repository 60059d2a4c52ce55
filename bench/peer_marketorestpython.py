#!/usr/bin/env python3
"""The peer in the benchmark: what a typical hand-written integration does with
marketorestpython, the most used Marketo client. Read the CSV, upsert 300 leads
at a time, add the returned lead ids to the static list 300 at a time, one call
after another. It talks to the simulator exactly as it would talk to Marketo.

The library paces itself at 5 calls a second (100 per 20 s) in real time.
Against a simulator whose time runs X times faster, its clock is scaled by
the same X (--time-scale), so it paces as it would against Marketo.

Prints one JSON object: rows read, upserted, added, calls, wall seconds.
"""

import argparse
import csv
import json
import sys
import time

from marketorestpython.client import MarketoClient
from marketorestpython.helper import http_lib

class ScaledTime:
    """`time` as the library's pacing sees it, running `scale` times faster."""

    def __init__(self, scale):
        self.scale = scale

    def time(self):
        return time.time() * self.scale

    def sleep(self, secs):
        time.sleep(secs / self.scale)


MAPPING = {
    "email": "email",
    "firstName": "first_name",
    "lastName": "last_name",
    "city": "city",
    "state": "state",
    "country": "country",
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--list-id", type=int, required=True)
    ap.add_argument("--rows", type=int, default=0, help="stop after this many rows (0: all)")
    ap.add_argument("--client-id", default="sim-client-id")
    ap.add_argument("--client-secret", default="sim-client-secret")
    ap.add_argument("--time-scale", type=float, default=1.0, help="the simulator's --time-scale")
    a = ap.parse_args()
    if a.time_scale != 1.0:
        http_lib.time = ScaledTime(a.time_scale)

    mc = MarketoClient("000-SIM-000", a.client_id, a.client_secret)
    mc.host = a.base_url.rstrip("/")

    started = time.monotonic()
    calls = 0
    rows = upserted = added = 0
    batch = []

    def flush(batch):
        nonlocal calls, upserted, added
        result = mc.execute(method="create_update_leads", leads=batch, action="createOrUpdate", lookupField="email")
        calls += 1
        ids = [r["id"] for r in result if r.get("status") in ("created", "updated") and "id" in r]
        upserted += len(ids)
        if ids:
            mc.execute(method="add_leads_to_list", listId=a.list_id, id=ids)
            calls += 1
            added += len(ids)

    with open(a.csv, newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            rows += 1
            email = (row.get("email") or "").strip()
            if not email:
                continue
            batch.append({k: (row.get(col) or "").strip() for k, col in MAPPING.items()})
            if len(batch) == 300:
                flush(batch)
                batch = []
            if a.rows and rows >= a.rows:
                break
    if batch:
        flush(batch)

    json.dump(
        {"rows": rows, "upserted": upserted, "added": added, "calls": calls, "wall_s": time.monotonic() - started},
        sys.stdout,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
