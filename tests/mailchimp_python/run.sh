#!/usr/bin/env bash
# Protocol cross-check: drive the Mailchimp simulator with Mailchimp's
# official Python client (pip install mailchimp-marketing==3.0.80). Builds and
# starts the simulator binary on a free loopback port, runs crosscheck.py
# against it, stops it. Exits non-zero on any failure; the script's last line
# is "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c "import mailchimp_marketing" 2>/dev/null || {
  echo "mailchimp-marketing is not installed (pip install mailchimp-marketing==3.0.80)" >&2
  exit 1
}

cargo build --quiet -p audex-mailchimp-sim --bin audex-mailchimp-sim
BIN="${CARGO_TARGET_DIR:-target}/debug/audex-mailchimp-sim"

OUT="$(mktemp)"
"$BIN" --port 0 >"$OUT" &
SIM_PID=$!
cleanup() {
  kill -TERM "$SIM_PID" 2>/dev/null || true
  wait "$SIM_PID" 2>/dev/null || true
  rm -f "$OUT"
}
trap cleanup EXIT

BASE=""
for _ in $(seq 1 100); do
  BASE="$(head -n1 "$OUT" 2>/dev/null || true)"
  [ -n "$BASE" ] && break
  if ! kill -0 "$SIM_PID" 2>/dev/null; then
    echo "simulator exited before printing its address" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$BASE" ]; then
  echo "simulator did not print its address" >&2
  exit 1
fi
echo "simulator at $BASE"

"$PYTHON" tests/mailchimp_python/crosscheck.py "$BASE"
