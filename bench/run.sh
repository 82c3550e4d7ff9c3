#!/usr/bin/env bash
# The one command that runs the benchmarks of the event-sourced core and prints their table:
#
#   bench/run.sh            # full sizes (≈ 12–15 minutes on 2 cores)
#   bench/run.sh --quick    # small sizes, a smoke run (< 1 minute)
#   bench/run.sh --rev HEAD  # the code of a commit (exported to a temp dir), not the work tree
#   bench/run.sh --only reads --wait-quiet 300    # any other option goes to bench/core.py
#   bench/run.sh --suite analytics   # bench/analytics_bench.py instead (bench/analytics.sh)
#
# - uses the repository's .venv, creating it and installing the project (like
#   scripts/test.sh) when it is missing or pyproject.toml changed since;
# - starts a throwaway PostgreSQL cluster (scripts/pg-cluster.sh, loopback only, fsync on)
#   in a fresh temporary directory, and always stops and deletes it on exit;
# - runs bench/core.py (or the --suite's script), which prints one table of figures, each beside a baseline measured in
#   the same run, and writes it as markdown to bench/results/<suite>-<timestamp>.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'bench/run.sh: %s\n' "$*" >&2; }

# --- Python environment --------------------------------------------------------------------
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
ensure_venv
# Install only when pyproject.toml changed since the last install by this script (or the
# project cannot be imported): a quick run should not spend its minute in pip.
STAMP=".venv/.bench-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -e "$STAMP" ] || ! .venv/bin/python -c 'import crm.app, httpx, rich, psycopg' 2>/dev/null; then
    log "installing the project and its dev dependencies into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
    rm -f .venv/.bench-installed-*
    touch "$STAMP"
fi

# --- Which code -----------------------------------------------------------------------------
# --rev REV benchmarks a commit while the work tree is being edited: its tree is exported to a
# temporary directory that goes first on PYTHONPATH (for this process and `crm serve`); the
# benchmarks themselves always come from this bench/.
REV=''
SUITE=bench/core.py
ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
        --suite) [ $# -ge 2 ] || { log "error: --suite needs core or analytics"; exit 2; }
            case $2 in
                core) SUITE=bench/core.py ;;
                analytics) SUITE=bench/analytics_bench.py ;;
                *) log "error: unknown suite $2 (core or analytics)"; exit 2 ;;
            esac
            shift 2 ;;
        --rev) [ $# -ge 2 ] || { log "error: --rev needs a commit"; exit 2; }; REV=$2; shift 2 ;;
        --rev=*) REV=${1#--rev=}; shift ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
SRC_DIR=''

# --- PostgreSQL -----------------------------------------------------------------------------
PG_DIR=''
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$SRC_DIR" ]; then rm -rf -- "$SRC_DIR"; fi
    if [ -n "$PG_DIR" ]; then
        scripts/pg-cluster.sh stop "$PG_DIR" >/dev/null 2>&1 ||
            log "warning: could not stop the PostgreSQL cluster in $PG_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

PG_DIR=$(mktemp -d /tmp/crm-bench-pg.XXXXXX)
chmod 755 "$PG_DIR"   # the postgres user runs the server in it
log "starting PostgreSQL in $PG_DIR"
scripts/pg-cluster.sh start "$PG_DIR" >/dev/null
# shellcheck source=/dev/null
source "$PG_DIR/env"

if [ -n "$REV" ]; then
    COMMIT=$(git rev-parse --verify "$REV^{commit}")
    SRC_DIR=$(mktemp -d /tmp/crm-bench-src.XXXXXX)
    git archive "$COMMIT" | tar -x -C "$SRC_DIR"
    export PYTHONPATH="$SRC_DIR${PYTHONPATH:+:$PYTHONPATH}" CRM_BENCH_REV="$COMMIT"
    log "benchmarking commit $(git rev-parse --short "$COMMIT") (exported to $SRC_DIR)"
fi

# --- Benchmarks -----------------------------------------------------------------------------
.venv/bin/python "$SUITE" --pg-url "$CRM_TEST_POSTGRES_URL" ${ARGS[@]+"${ARGS[@]}"}
