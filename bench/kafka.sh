#!/usr/bin/env bash
# The event-stream benchmarks (issue 3): relay throughput beside raw kafka-python, projection
# throughput with 1 and 2 Kafka-fed workers beside the store-fed worker, end-to-end lag at a
# steady command rate. Prints a markdown table, also written to bench/results/kafka-*.md.
#
#   bench/kafka.sh                      # full sizes (≈ 3 minutes on 2 cores)
#   bench/kafka.sh --events 10000 --seconds 8      # a quick run
#   bench/kafka.sh --only lag --rate 200 --seconds 30
#
# Starts a throwaway PostgreSQL cluster (scripts/pg-cluster.sh) and Kafka broker
# (scripts/kafka.sh), loopback only, and always stops them; when CRM_TEST_POSTGRES_URL and
# CRM_TEST_KAFKA_BOOTSTRAP are already set, uses those instead. Needs the project's .venv
# (scripts/test.sh or bench/run.sh creates it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'bench/kafka.sh: %s\n' "$*" >&2; }

[ -x .venv/bin/python ] || { log "error: no .venv; run scripts/test.sh once first"; exit 1; }

PG_DIR=''
KAFKA_DIR=''
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$KAFKA_DIR" ]; then
        scripts/kafka.sh stop "$KAFKA_DIR" >/dev/null 2>&1 || log "warning: could not stop Kafka in $KAFKA_DIR"
    fi
    if [ -n "$PG_DIR" ]; then
        scripts/pg-cluster.sh stop "$PG_DIR" >/dev/null 2>&1 || log "warning: could not stop PostgreSQL in $PG_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if [ -z "${CRM_TEST_POSTGRES_URL:-}" ]; then
    PG_DIR=$(mktemp -d /tmp/crm-bench-pg.XXXXXX)
    chmod 755 "$PG_DIR"
    log "starting PostgreSQL in $PG_DIR"
    scripts/pg-cluster.sh start "$PG_DIR" >/dev/null
    # shellcheck source=/dev/null
    source "$PG_DIR/env"
fi
if [ -z "${CRM_TEST_KAFKA_BOOTSTRAP:-}" ]; then
    KAFKA_DIR=$(mktemp -d /tmp/crm-bench-kafka.XXXXXX)
    log "starting Kafka in $KAFKA_DIR"
    scripts/kafka.sh start "$KAFKA_DIR" >/dev/null
    # shellcheck source=/dev/null
    source "$KAFKA_DIR/env"
fi
export CRM_TEST_POSTGRES_URL CRM_TEST_KAFKA_BOOTSTRAP
PYTHONPATH=. .venv/bin/python bench/kafka_bench.py "$@"
