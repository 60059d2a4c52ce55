#!/usr/bin/env bash
# The quickstart, in one command from a fresh clone:
#
#   bash examples/quickstart/run.sh
#
# Builds audex and the Marketo and Mailchimp simulators (release), starts
# them on free ports, checks the connections, exports the example segments
# (examples/quickstart/audex.yaml) to both, prints the run reports and the
# resulting list and tag sizes, and stops the simulators. A second run
# sends nothing (only changes go).
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

# The simulators accept the credentials the example config falls back to.
client_id="${MARKETO_CLIENT_ID:-quickstart-client}"
export AUDEX_SIM_CLIENT_SECRET="${MARKETO_CLIENT_SECRET:-quickstart-secret}"
export AUDEX_SIM_MAILCHIMP_KEY="${MAILCHIMP_API_KEY:-0123456789abcdef0123456789abcdef-us6}"

config="$here/.quickstart.yaml"
outs=()
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -f "${outs[@]}" "$config"
}
trap cleanup EXIT

# Start a simulator on a free port (in this shell, so the cleanup stops
# it); it prints its base URL once it listens, into `sim_url`.
start_sim() {
  local out
  out="$(mktemp)"
  outs+=("$out")
  "$@" --port 0 >"$out" 2>/dev/null &
  pids+=($!)
  sim_url=""
  for _ in $(seq 1 100); do
    sim_url="$(head -n 1 "$out" 2>/dev/null || true)"
    [[ -n "$sim_url" ]] && break
    sleep 0.1
  done
  if [[ -z "$sim_url" ]]; then
    echo "$1 did not start" >&2
    exit 1
  fi
}

echo "== starting the Marketo and Mailchimp simulators"
start_sim "$bin/audex-marketo-sim" --client-id "$client_id"
base="$sim_url"
echo "   Marketo:   $base"
start_sim "$bin/audex-mailchimp-sim"
mc_base="$sim_url"
echo "   Mailchimp: $mc_base"

# Same folder as audex.yaml, so its relative paths (data, state) still hold;
# only the simulators' addresses change. They start empty each time, so the
# state from an earlier quickstart run is cleared too.
sed -E -e "s#^([[:space:]]*endpoint:).*#\1 $base#" \
  -e "s#^([[:space:]]*base_url:).*#\1 $mc_base/3.0#" "$here/audex.yaml" >"$config"
rm -rf "$here/.audex"

echo "== audex check: the connection test of the destinations and their source"
"$bin/audex" check -c "$config"

echo
echo "== audex run -c examples/quickstart/audex.yaml (both destinations: the simulators)"
status=0
"$bin/audex" run -c "$config" || status=$?

echo
echo "== the same run as JSON (a second run: nothing changed, so nothing is sent)"
"$bin/audex" run -c "$config" --output json || status=$?

echo
echo "== list sizes in the Marketo simulator"
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
echo "== tag sizes in the Mailchimp simulator"
mc_state="$(curl -fsS "$mc_base/_sim/state")"
if command -v python3 >/dev/null 2>&1; then
  python3 - "$mc_state" <<'PY'
import json, sys
state = json.loads(sys.argv[1])
for a in state["audiences"]:
    print(f"audience {a['id']} ({a['name']}): {sum(a['contacts'].values())} contacts")
    for s in a["segments"]:
        print(f"  tag {s['name']!r} (segment {s['id']}): {s['members']} members")
PY
else
  echo "$mc_state"
fi
echo
echo "== history: audex runs -c examples/quickstart/audex.yaml"
"$bin/audex" runs -c "$config" --limit 5 || true
exit "$status"
