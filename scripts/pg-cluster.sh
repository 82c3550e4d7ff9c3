#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests and benchmarks.
#
#   scripts/pg-cluster.sh start DIR   # create + start a cluster in DIR, print its env file
#   scripts/pg-cluster.sh stop DIR    # stop the cluster in DIR and delete DIR
#
# DIR must be reachable by the `postgres` system user (e.g. a directory under
# /tmp); it must be empty or absent, or a directory previously created by this
# script. The server listens only on 127.0.0.1 on a free port, its unix socket
# lives in DIR, its log is DIR/log. Superuser `crm` (trust auth), database `crm`.
# DIR/env holds:
#   export CRM_TEST_POSTGRES_URL=postgresql://crm@127.0.0.1:PORT/crm
#   export PGHOST=127.0.0.1 PGPORT=PORT PGUSER=crm PGDATABASE=crm
# `start` on a DIR whose cluster is already running just prints the env again;
# `stop` on a DIR that does not exist does nothing.
#
# Run as root: PostgreSQL runs as the `postgres` user (initdb/pg_ctl refuse
# root), and a missing server is installed with apt-get. Run as a non-root
# user, the cluster runs as that user and PostgreSQL must already be installed.
set -euo pipefail

PROG=${0##*/}
MARKER=.pg-cluster   # marks DIR as ours, so `stop` never deletes anything else

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { printf 'usage: %s start|stop DIR\n' "$PROG" >&2; exit 2; }

# Run a command as the user that owns the cluster.
as_pg() {
    if [ "$EUID" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_bindir() {
    local initdb
    initdb=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1)
    [ -n "$initdb" ] && dirname "$initdb"
}

install_postgres() {
    [ "$EUID" -eq 0 ] || die "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin and not root; install the 'postgresql' package"
    command -v apt-get >/dev/null || die "PostgreSQL not installed and apt-get not available"
    log "installing PostgreSQL with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the package's postinst from starting the default "main" cluster on
    # port 5432: a policy-rc.d exiting 101 forbids service starts (Docker
    # images already ship one). Only add it if there is none, and remove it after.
    local policy=/usr/sbin/policy-rc.d added_policy=''
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# temporary, added by %s\nexit 101\n' "$PROG" >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    local rc=0
    {
        apt-get update -qq &&
        apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 \
            postgresql postgresql-contrib >/dev/null
    } || rc=$?
    [ -z "$added_policy" ] || rm -f "$policy"
    [ "$rc" -eq 0 ] || die "apt-get install postgresql failed (exit $rc)"
}

free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    else
        local p
        while :; do
            p=$((20000 + RANDOM % 40000))
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
                echo "$p"
                return
            fi
        done
    fi
}

is_running() {
    [ -f "$DATA/PG_VERSION" ] || return 1
    as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1 || return 1
    # pg_ctl only checks that the PID exists; a crashed postmaster that nobody
    # has reaped yet (a zombie) still does.
    local pid state
    pid=$(sed -n 1p "$DATA/postmaster.pid" 2>/dev/null) || return 1
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d ' ' -f 1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

write_env() {
    local port=$1
    cat >"$DIR/env.tmp" <<ENV
export CRM_TEST_POSTGRES_URL=postgresql://crm@127.0.0.1:$port/crm
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=crm PGDATABASE=crm
ENV
    chmod 644 "$DIR/env.tmp"
    mv -f "$DIR/env.tmp" "$DIR/env"
}

cmd_start() {
    BIN=$(pg_bindir) || true
    if [ -z "$BIN" ]; then
        install_postgres
        BIN=$(pg_bindir) || die "PostgreSQL installed but no /usr/lib/postgresql/*/bin/initdb found"
    fi
    [ -x "$BIN/pgbench" ] || log "warning: $BIN/pgbench not found (benchmarks need it)"

    # Already running here? Then just (re)print the env.
    if is_running; then
        local port
        port=$(sed -n 4p "$DATA/postmaster.pid")
        [[ $port =~ ^[0-9]+$ ]] || die "cannot read the port from $DATA/postmaster.pid"
        write_env "$port"
        cat "$DIR/env"
        return
    fi

    if [ -e "$DIR" ]; then
        [ -d "$DIR" ] || die "$DIR exists and is not a directory"
        if [ ! -e "$DIR/$MARKER" ] && [ -n "$(ls -A "$DIR")" ]; then
            die "$DIR is not empty and was not created by $PROG; refusing to use it"
        fi
    else
        mkdir -p "$DIR"
    fi
    touch "$DIR/$MARKER"
    if [ "$EUID" -eq 0 ]; then
        chown postgres:postgres "$DIR"
    fi
    chmod 755 "$DIR"   # world-readable so any user can read DIR/env and DIR/log
    as_pg test -w "$DIR" -a -x "$DIR" ||
        die "$DIR is not accessible to user $(as_pg id -un); pick a directory under /tmp, or make its parents searchable (chmod o+x)"

    if [ ! -f "$DATA/PG_VERSION" ]; then
        log "initdb ($BIN) in $DATA"
        rm -rf "$DATA"
        if ! as_pg "$BIN/initdb" -D "$DATA" -U crm -E UTF8 --locale=C \
                --auth-local=trust --auth-host=trust --no-sync >"$DIR/initdb.log" 2>&1; then
            cat "$DIR/initdb.log" >&2
            die "initdb failed"
        fi
        # fsync stays on (the default): benchmarks are compared against pgbench.
        as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<CONF

# --- added by $PROG ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
max_connections = 200
shared_buffers = 256MB
fsync = on
CONF
    fi

    # pg_ctl would create the log file mode 600; make it readable by the caller.
    as_pg touch "$DIR/log"
    as_pg chmod 644 "$DIR/log"

    # Left over from a crashed server (we know it is not running): PostgreSQL
    # would refuse to start while that PID is still an unreaped zombie.
    rm -f "$DATA/postmaster.pid"

    # The port is picked before the server binds it; retry if someone wins the race.
    local port='' attempt started=''
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        if as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$DIR/log" -o "-p $port" -w -t 60 >/dev/null 2>&1; then
            started=1
            break
        fi
        log "start attempt $attempt on port $port failed"
        sleep 1
    done
    if [ -z "$started" ]; then
        tail -n 30 "$DIR/log" >&2 || true
        die "could not start PostgreSQL (log: $DIR/log)"
    fi

    local i
    for i in $(seq 1 120); do
        "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        [ "$i" -lt 120 ] || die "server on port $port not ready after 60s (log: $DIR/log)"
        sleep 0.5
    done

    local exists
    exists=$("$BIN/psql" -X -qtA -h 127.0.0.1 -p "$port" -U crm -d postgres \
        -c "select 1 from pg_database where datname = 'crm'")
    if [ "$exists" != 1 ]; then
        "$BIN/createdb" -h 127.0.0.1 -p "$port" -U crm -E UTF8 crm
    fi

    write_env "$port"
    log "PostgreSQL $(cat "$DATA/PG_VERSION") running on 127.0.0.1:$port (data: $DATA, log: $DIR/log)"
    cat "$DIR/env"
}

cmd_stop() {
    if [ ! -e "$DIR" ]; then
        log "$DIR does not exist; nothing to stop"
        return
    fi
    [ -e "$DIR/$MARKER" ] || die "$DIR was not created by $PROG; refusing to delete it"
    BIN=$(pg_bindir) || true
    if [ -n "$BIN" ] && is_running; then
        if ! as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null 2>&1; then
            log "fast shutdown failed; trying immediate"
            as_pg "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 30 >/dev/null 2>&1 || true
        fi
        if is_running; then
            local pid
            pid=$(sed -n 1p "$DATA/postmaster.pid" 2>/dev/null || true)
            if [[ $pid =~ ^[0-9]+$ ]]; then
                log "killing postmaster $pid"
                kill -KILL "$pid" 2>/dev/null || true
                sleep 1
            fi
        fi
    fi
    rm -rf -- "$DIR"
    log "stopped and removed $DIR"
}

[ $# -eq 2 ] || usage
ACTION=$1
[ -n "$2" ] || usage
DIR=$(realpath -m -- "$2")
[ "$DIR" != / ] || die "refusing to use /"
# DIR ends up inside postgresql.conf and a socket path: keep it simple and short.
[[ $DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR may only contain letters, digits and . _ / + -"
[ "${#DIR}" -le 80 ] || die "DIR is too long for a unix socket path (max 80 characters)"
DATA=$DIR/data
BIN=
cd /   # the postgres user may not be able to read the caller's working directory

case $ACTION in
    start) cmd_start ;;
    stop) cmd_stop ;;
    *) usage ;;
esac
