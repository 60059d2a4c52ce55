#!/usr/bin/env bash
# Every test of the workspace, on a fresh machine: the README's test command,
# and the one CI runs.
#
# Installs what the tests need when it is missing (as root, from the
# machine's package manager and PyPI; otherwise it says what to install):
# PostgreSQL server binaries (initdb, pg_ctl), openssl (the TLS tests make
# their certificates with it), marketorestpython and mailchimp-marketing (the
# protocol cross-checks). Starts one PostgreSQL server on a free loopback
# port in a temporary folder for the whole run (unless
# AUDEX_TEST_DATABASE_URL is already set) and stops it at the end, then runs
# `cargo test --workspace`, the cross-check of the Marketo simulator with
# marketorestpython and the cross-check of the Mailchimp simulator with
# Mailchimp's official Python client (mailchimp-marketing).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
  if ! as_root || ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/all.sh: please install $* (e.g. sudo apt-get install $*), then run again" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  apt-get install -y -qq "$@" >/dev/null
}

pg_bin() {
  if command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
  else
    # shellcheck disable=SC2012
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
  fi
}

echo "== what the tests need"
if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
  apt_install postgresql
fi
command -v openssl >/dev/null 2>&1 || apt_install openssl
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import marketorestpython" 2>/dev/null; then
  "$PYTHON" -m pip install --quiet --disable-pip-version-check marketorestpython==0.5.25
fi
if ! "$PYTHON" -c "import mailchimp_marketing" 2>/dev/null; then
  "$PYTHON" -m pip install --quiet --disable-pip-version-check mailchimp-marketing==3.0.80
fi

if [ -z "${AUDEX_TEST_DATABASE_URL:-}" ]; then
  echo "== PostgreSQL for the tests, on loopback, from the machine's initdb/pg_ctl"
  PG_BIN="$(pg_bin)"
  PG_DIR="$(mktemp -d /tmp/audex-test-pg.XXXXXX)"
  PG_PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # initdb refuses to run as root.
  as_pg() { if as_root; then runuser -u postgres -- "$@"; else "$@"; fi; }
  if as_root; then chown postgres:postgres "$PG_DIR"; fi
  stop_pg() {
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  }
  trap stop_pg EXIT
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U audex -A trust -E UTF8 --no-locale --no-sync >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  export AUDEX_TEST_DATABASE_URL="postgres://audex@127.0.0.1:$PG_PORT/postgres"
  echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
fi

echo "== cargo test --workspace"
cargo test --workspace --locked

echo "== protocol cross-check: marketorestpython against the simulator"
bash tests/marketo_python/run.sh

echo "== protocol cross-check: mailchimp-marketing against the simulator"
bash tests/mailchimp_python/run.sh
