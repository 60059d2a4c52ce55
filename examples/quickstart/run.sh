#!/usr/bin/env bash
# The quickstart, in one command from a fresh clone:
#
#   bash examples/quickstart/run.sh
#
# Builds audex and the Marketo simulator (release), starts the simulator on a
# free port, checks the connection, exports the example segments
# (examples/quickstart/audex.yaml) to it, prints the run report and the resulting list sizes, and stops the
# simulator. Run it again to see a second run send nothing (only changes go).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

echo "== building (release)"
# Every binary of the workspace in one build (one feature resolution, so
# DataFusion is compiled once).
cargo build --release --quiet --workspace --bins
bin="${CARGO_TARGET_DIR:-$root/target}/release"

if [[ ! -f "$here/data/profiles.csv" ]]; then
  echo "== generating the example profiles"
  "$bin/audex-datagen" \
    --rows 3000 --seed 42 --out "$here/data" --format csv
fi

# The simulator accepts the credentials the example config falls back to.
client_id="${MARKETO_CLIENT_ID:-quickstart-client}"
export AUDEX_SIM_CLIENT_SECRET="${MARKETO_CLIENT_SECRET:-quickstart-secret}"

echo "== starting the Marketo simulator"
sim_out="$(mktemp)"
"$bin/audex-marketo-sim" --port 0 --client-id "$client_id" >"$sim_out" 2>/dev/null &
sim_pid=$!
config="$here/.quickstart.yaml"
cleanup() {
  kill "$sim_pid" 2>/dev/null || true
  wait "$sim_pid" 2>/dev/null || true
  rm -f "$sim_out" "$config"
}
trap cleanup EXIT

# The simulator prints its base URL once it listens.
base=""
for _ in $(seq 1 100); do
  base="$(head -n 1 "$sim_out" 2>/dev/null || true)"
  [[ -n "$base" ]] && break
  sleep 0.1
done
if [[ -z "$base" ]]; then
  echo "the simulator did not start" >&2
  exit 1
fi
echo "   listening on $base"

# Same folder as audex.yaml, so its relative paths (data, state) still hold;
# only the endpoint changes. The simulator starts empty each time, so the
# state from an earlier quickstart run is cleared too.
sed -E "s#^([[:space:]]*endpoint:).*#\1 $base#" "$here/audex.yaml" >"$config"
rm -rf "$here/.audex"

echo "== audex check: the connection test of the destination and its source"
"$bin/audex" check -c "$config"

echo
echo "== audex run -c examples/quickstart/audex.yaml (endpoint: the simulator)"
status=0
"$bin/audex" run -c "$config" || status=$?

echo
echo "== the same run as JSON (a second run: nothing changed, so nothing is sent)"
"$bin/audex" run -c "$config" --output json || status=$?

echo
echo "== list sizes in the simulator"
state="$(curl -fsS "$base/_sim/state")"
if command -v python3 >/dev/null 2>&1; then
  python3 - "$state" <<'PY'
import json, sys
state = json.loads(sys.argv[1])
print(f"leads: {state['leads']}")
for l in state["lists"]:
    if l["static"]:
        print(f"list {l['id']} ({l['name']}): {l['members']} members")
PY
else
  echo "$state"
fi
echo
echo "== history: audex runs -c examples/quickstart/audex.yaml"
"$bin/audex" runs -c "$config" --limit 5 || true
exit "$status"
