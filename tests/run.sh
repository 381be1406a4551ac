#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, and end-to-end tests that start real
# mdbc-server processes and drive them with psql, pgbench, psycopg2, SQLAlchemy,
# node-postgres and tokio-postgres. Installs whatever of those is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

apt_missing=()
command -v psql >/dev/null 2>&1 || apt_missing+=(postgresql-client)
{ command -v pgbench >/dev/null 2>&1 || [ -x /usr/lib/postgresql/15/bin/pgbench ]; } || apt_missing+=(postgresql-15)
command -v openssl >/dev/null 2>&1 || apt_missing+=(openssl)
command -v node >/dev/null 2>&1 || apt_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_missing+=(npm)
command -v python3 >/dev/null 2>&1 || apt_missing+=(python3 python3-pip)
if [ ${#apt_missing[@]} -gt 0 ]; then
  log "installing ${apt_missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi
# pgbench lives outside PATH in Debian's server package.
if ! command -v pgbench >/dev/null 2>&1 && [ -x /usr/lib/postgresql/15/bin/pgbench ]; then
  export PATH="/usr/lib/postgresql/15/bin:$PATH"
fi

if ! python3 -c 'import psycopg2, psycopg, sqlalchemy' >/dev/null 2>&1; then
  log "installing psycopg2-binary, psycopg 3 and SQLAlchemy"
  python3 -m pip install -q psycopg2-binary 'psycopg[binary]' 'sqlalchemy>=2' ||
    python3 -m pip install -q --break-system-packages psycopg2-binary 'psycopg[binary]' 'sqlalchemy>=2'
fi
if [ ! -d tests/clients/node_modules/pg ]; then
  log "installing node-postgres"
  (cd tests/clients && npm install --no-audit --no-fund --silent)
fi

log "module graph (no import cycles)"
./scripts/module-graph --quiet
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -q -- -D warnings
log "cargo test"
cargo build -q -p mdbc-server --bin mdbc-server
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace (cargo prints one per test binary).
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$out" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .*; ([0-9]+) failed' "$out" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
# PostgreSQL's own regression SQL, statement by statement against PostgreSQL 15: fails on
# any wrong answer not yet listed in tests/pgregress/known (a release build; ~10 min).
log "pgregress (PostgreSQL 15 regression SQL, compared with PostgreSQL)"
if ./tests/pgregress/check; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  status=1
fi
echo "total: ${passed} passed, ${failed} failed"
exit "$status"
