#!/usr/bin/env bash
# The one command that sets everything up and runs the whole test suite, on a
# fresh machine or a dev box:
#
#   scripts/test.sh [PYTEST_ARGS...]      e.g. scripts/test.sh -x -k projection
#
# - creates .venv (if missing) and installs the project with its `dev` extra;
# - starts a throwaway PostgreSQL cluster (scripts/pg-cluster.sh) and exports
#   CRM_TEST_POSTGRES_URL / PGHOST / PGPORT / PGUSER / PGDATABASE for it;
# - starts a throwaway Kafka broker (scripts/kafka.sh) and exports CRM_TEST_KAFKA_BOOTSTRAP;
# - runs pytest with the given arguments and exits with its exit code
#   ("no tests collected" counts as a failure);
# - always stops the cluster and deletes its directory on exit, whether the
#   tests pass, fail, or are interrupted.
#
# Needs root on a machine without PostgreSQL or python3-venv (installed with
# apt-get); otherwise any user works.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

# --- Python environment --------------------------------------------------------
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
ensure_venv
log "installing the project and its dev dependencies into .venv"
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

# --- Services -------------------------------------------------------------------
PG_DIR=''
KAFKA_DIR=''

# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$KAFKA_DIR" ]; then
        scripts/kafka.sh stop "$KAFKA_DIR" >/dev/null 2>&1 || log "warning: could not stop the Kafka broker in $KAFKA_DIR"
    fi
    if [ -n "$PG_DIR" ]; then
        scripts/pg-cluster.sh stop "$PG_DIR" >/dev/null 2>&1 || log "warning: could not stop the PostgreSQL cluster in $PG_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

PG_DIR=$(mktemp -d /tmp/crm-test-pg.XXXXXX)
chmod 755 "$PG_DIR"   # the postgres user runs the server in it
log "starting PostgreSQL in $PG_DIR"
scripts/pg-cluster.sh start "$PG_DIR" >/dev/null
# shellcheck source=/dev/null
source "$PG_DIR/env"
log "PostgreSQL: $CRM_TEST_POSTGRES_URL"

# A throwaway Apache Kafka broker (KRaft, loopback; jars cached outside the repo).
KAFKA_DIR=$(mktemp -d /tmp/crm-test-kafka.XXXXXX)
log "starting Kafka in $KAFKA_DIR"
scripts/kafka.sh start "$KAFKA_DIR" >/dev/null
# shellcheck source=/dev/null
source "$KAFKA_DIR/env"
log "Kafka: $CRM_TEST_KAFKA_BOOTSTRAP"

# --- Tests ----------------------------------------------------------------------
rc=0
.venv/bin/python -m pytest "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    log "error: pytest collected no tests (exit 5); treating that as a failure"
    rc=1
fi
exit "$rc"
