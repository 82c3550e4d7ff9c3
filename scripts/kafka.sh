#!/usr/bin/env bash
# Start and stop a real Apache Kafka broker (KRaft, one node that is both
# broker and controller) on 127.0.0.1, for tests and benchmarks.
#
# Usage:
#   scripts/kafka.sh start DIR           configure (first time), format, start, wait until
#                                        ready; print `export CRM_TEST_KAFKA_BOOTSTRAP=...`
#                                        (also written to DIR/env). Already running: print env.
#                                        DIR configured but stopped: start it again, data kept.
#   scripts/kafka.sh stop DIR            stop the broker and delete DIR (never fails)
#   scripts/kafka.sh stop-broker DIR     stop the java process only; data, config, ports kept
#   scripts/kafka.sh start-broker DIR    start it again on the same ports, wait until ready
#   scripts/kafka.sh restart-broker DIR  stop-broker + start-broker (a broker outage)
#   scripts/kafka.sh kill-broker DIR     SIGKILL the java process (a crash); start-broker
#                                        brings it back, recovering its logs
#   scripts/kafka.sh status DIR          exit 0 and print env if running, else exit 1
#   scripts/kafka.sh fetch               only make sure the jars are in the cache
#
# Typical use:  eval "$(scripts/kafka.sh start /tmp/crm-kafka)"   # sets CRM_TEST_KAFKA_BOOTSTRAP
# Only the env line goes to stdout; progress and errors go to stderr.
#
# Java 17 and Maven are installed with apt-get when missing (as root, on Debian).
# The jars (Kafka 4.4.0 and its runtime deps, ~43 MB) are fetched once with Maven
# (scripts/kafka/pom.xml) into ${CRM_KAFKA_CACHE:-$HOME/.cache/monton-crm/kafka-4.4.0};
# later starts need no network.
#
# Environment knobs:
#   CRM_KAFKA_CACHE          jar cache directory (see above)
#   CRM_KAFKA_HEAP_OPTS      default "-Xms256m -Xmx512m"
#   CRM_KAFKA_JVM_OPTS       extra JVM flags, appended
#   CRM_KAFKA_LOG_LEVEL      root log level of the broker (default INFO)
#   CRM_KAFKA_START_TIMEOUT  seconds to wait for readiness (default 60)
#   CRM_KAFKA_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 30)
#   CRM_KAFKA_NUM_PARTITIONS default partitions of auto-created topics (default 4)
set -euo pipefail

readonly KAFKA_VERSION=4.4.0
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly POM="$SCRIPT_DIR/kafka/pom.xml"
CACHE="${CRM_KAFKA_CACHE:-${HOME:-/tmp}/.cache/monton-crm/kafka-$KAFKA_VERSION}"
readonly MARKER=.crm-test-kafka   # a DIR with this file was made by this script
readonly READY_LINE='Kafka Server started'

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- tools
# Java 17 runs the broker; Maven fetches its jars once. On a fresh Debian machine, as root,
# install whichever is missing with apt-get (its output goes to stderr, like all progress).
ensure_tools() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  if [[ ! -f "$CACHE/.complete" ]] && ! command -v mvn >/dev/null; then
    missing+=(maven)
  fi
  ((${#missing[@]} == 0)) && return 0
  if [[ "${EUID:-$(id -u)}" -ne 0 ]] || ! command -v apt-get >/dev/null; then
    die "missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]})"
  fi
  log "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
    -o DPkg::Lock::Timeout=300 "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------- jars
ensure_jars() {
  ensure_tools
  [[ -f "$CACHE/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found, and no jars in $CACHE"
  mkdir -p "$(dirname "$CACHE")"
  # one download at a time; the lock fd is closed again before java starts
  (
    flock 9
    [[ -f "$CACHE/.complete" ]] && exit 0
    log "fetching Kafka $KAFKA_VERSION jars with Maven into $CACHE"
    tmp="$(mktemp -d "$CACHE.tmp.XXXXXX")"
    if ! mvn -B -q -Dstyle.color=never -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1; then
      cat "$tmp.mvn.log" >&2
      rm -rf "$tmp" "$tmp.mvn.log"
      exit 1
    fi
    rm -f "$tmp.mvn.log"
    ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null
    touch "$tmp/.complete"
    rm -rf "$CACHE"
    mv "$tmp" "$CACHE"
  ) 9>"$CACHE.lock" || die "could not fetch the Kafka jars (see Maven output above)"
}

java_cp() { printf '%s/*' "$CACHE"; }

# ---------------------------------------------------------------- helpers
abs_dir() {  # create DIR if needed and print its absolute path
  [[ -n "${1:-}" ]] || usage
  mkdir -p "$1"
  (cd "$1" && pwd -P)
}

existing_abs_dir() {  # absolute path of DIR if it exists, else the argument unchanged
  [[ -n "${1:-}" ]] || usage
  if [[ -d "$1" ]]; then (cd "$1" && pwd -P); else printf '%s\n' "$1"; fi
}

# pid of the broker of DIR if it is running, else nothing (exit 1)
broker_pid() {
  local dir="$1" pid
  [[ -f "$dir/kafka.pid" ]] || return 1
  pid="$(cat "$dir/kafka.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  # guard against a reused pid: it must be the java process started with our config
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/server.properties" || return 1
  pid_alive "$pid" || return 1
  printf '%s\n' "$pid"
}

# the process exists and has not finished exiting. After SIGKILL the JVM's main thread
# shows as a zombie while its other threads (and its listening sockets) still go away.
pid_alive() {
  local state tasks
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "$state" ]] || return 1
  [[ "$state" != Z && "$state" != X ]] && return 0
  tasks=("/proc/$1/task/"*)
  ((${#tasks[@]} > 1))
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# two distinct free TCP ports on 127.0.0.1: the kernel picks them (python3), or else
# random ports below the ephemeral range that nothing listens on
pick_ports() {
  if command -v python3 >/dev/null && python3 - 2>/dev/null <<'EOF'
import socket
socks = []
for _ in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
  then
    return 0
  fi
  local a b
  while :; do
    a=$((20000 + RANDOM % 12000))
    b=$((20000 + RANDOM % 12000))
    ((a != b)) && ! port_open "$a" && ! port_open "$b" && break
  done
  printf '%s %s\n' "$a" "$b"
}

# a Kafka cluster id: 16 random bytes, base64url without padding, not starting with '-'
random_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* && ${#id} -eq 22 ]] && break
  done
  printf '%s\n' "$id"
}

write_env() {
  local dir="$1" port
  port="$(sed -n 's/^BROKER_PORT=//p' "$dir/ports")"
  printf 'export CRM_TEST_KAFKA_BOOTSTRAP=127.0.0.1:%s\n' "$port" >"$dir/env"
}

print_env() { cat "$1/env"; }

# ---------------------------------------------------------------- configure + format
configure() {
  local dir="$1" bport cport cid
  read -r bport cport <<<"$(pick_ports)"
  [[ "$bport" =~ ^[0-9]+$ && "$cport" =~ ^[0-9]+$ ]] || die "could not pick free ports"
  printf 'BROKER_PORT=%s\nCONTROLLER_PORT=%s\n' "$bport" "$cport" >"$dir/ports"

  cat >"$dir/server.properties" <<EOF
# written by scripts/kafka.sh: single-node KRaft broker+controller for tests
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$bport
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data
num.partitions=${CRM_KAFKA_NUM_PARTITIONS:-4}
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
EOF

  cat >"$dir/log4j2.properties" <<EOF
# written by scripts/kafka.sh; the broker's stdout goes to kafka.log
status = warn
name = crm-test-kafka
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${CRM_KAFKA_LOG_LEVEL:-INFO}
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF

  cid="$(random_cluster_id)"
  printf '%s\n' "$cid" >"$dir/cluster.id"
  log "formatting $dir/data (cluster id $cid)"
  # a short-lived tool: C1 only and serial GC start ~0.4 s faster
  if ! java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:-UsePerfData \
      -Dlog4j2.configurationFile="$dir/log4j2.properties" \
      -cp "$(java_cp)" kafka.tools.StorageTool format \
      --config "$dir/server.properties" --cluster-id "$cid" >"$dir/format.log" 2>&1; then
    cat "$dir/format.log" >&2
    die "kafka-storage format failed"
  fi
}

# ---------------------------------------------------------------- launch + wait
launch() {
  local dir="$1" bport offset pid deadline
  bport="$(sed -n 's/^BROKER_PORT=//p' "$dir/ports")"
  deadline=$((SECONDS + 10))
  while port_open "$bport"; do  # e.g. a broker of DIR that was just killed, still exiting
    ((SECONDS < deadline)) ||
      die "port $bport on 127.0.0.1 is taken by another process; 'stop' and 'start' again for new ports"
    sleep 0.2
  done
  touch "$dir/kafka.log"
  offset="$(stat -c %s "$dir/kafka.log")"

  # word splitting of the option strings is intended
  # shellcheck disable=SC2086
  setsid nohup java ${CRM_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:-UsePerfData -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    ${CRM_KAFKA_JVM_OPTS:-} \
    -cp "$(java_cp)" kafka.Kafka "$dir/server.properties" \
    >>"$dir/kafka.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$dir/kafka.pid"
  log "broker pid $pid, log $dir/kafka.log; waiting for 127.0.0.1:$bport"

  deadline=$((SECONDS + ${CRM_KAFKA_START_TIMEOUT:-60}))
  while :; do
    # our own child (it may still be exec'ing setsid/nohup/java)
    if ! pid_alive "$pid"; then
      tail -n 40 "$dir/kafka.log" >&2 || true
      rm -f "$dir/kafka.pid"
      die "the broker exited while starting (log: $dir/kafka.log)"
    fi
    if tail -c "+$((offset + 1))" "$dir/kafka.log" | grep -qF "$READY_LINE" && port_open "$bport"; then
      break
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "$dir/kafka.log" >&2 || true
      stop_broker "$dir"
      die "the broker was not ready after ${CRM_KAFKA_START_TIMEOUT:-60}s (log: $dir/kafka.log)"
    fi
    sleep 0.2
  done
  write_env "$dir"
  log "ready on 127.0.0.1:$bport"
}

stop_broker() {  # DIR [SIGNAL]: TERM (default, then KILL after the timeout) or KILL
  local dir="$1" sig="${2:-TERM}" pid deadline
  pid="$(broker_pid "$dir")" || { rm -f "$dir/kafka.pid"; return 0; }
  log "stopping broker pid $pid (SIG$sig)"
  kill "-$sig" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + ${CRM_KAFKA_STOP_TIMEOUT:-30}))
  # pid_alive, not broker_pid: a zombie main thread has an empty cmdline
  while pid_alive "$pid"; do
    if ((SECONDS >= deadline)); then
      log "no exit ${CRM_KAFKA_STOP_TIMEOUT:-30}s after SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
      break
    fi
    sleep 0.1
  done
  rm -f "$dir/kafka.pid"
}

# ---------------------------------------------------------------- commands
cmd_start() {
  local dir
  dir="$(abs_dir "${1:-}")"
  if broker_pid "$dir" >/dev/null && [[ -f "$dir/env" ]]; then
    print_env "$dir"
    return 0
  fi
  ensure_jars
  if [[ ! -f "$dir/$MARKER" ]]; then
    [[ -z "$(ls -A "$dir")" ]] || die "$dir is not empty and was not made by this script"
    : >"$dir/$MARKER"
  fi
  if [[ ! -f "$dir/server.properties" || ! -f "$dir/data/meta.properties" ]]; then
    rm -rf "$dir/data"
    configure "$dir"
  fi
  launch "$dir"
  print_env "$dir"
}

cmd_start_broker() {
  local dir
  dir="$(existing_abs_dir "${1:-}")"
  [[ -f "$dir/server.properties" && -f "$dir/$MARKER" ]] || die "$dir has no broker; use 'start'"
  if broker_pid "$dir" >/dev/null && [[ -f "$dir/env" ]]; then
    print_env "$dir"
    return 0
  fi
  ensure_jars
  launch "$dir"
  print_env "$dir"
}

cmd_stop_broker() {
  local dir
  dir="$(existing_abs_dir "${1:-}")"
  [[ -d "$dir" ]] || return 0
  stop_broker "$dir"
}

cmd_kill_broker() {
  local dir
  dir="$(existing_abs_dir "${1:-}")"
  [[ -d "$dir" ]] || return 0
  stop_broker "$dir" KILL
}

cmd_stop() {
  local dir
  dir="$(existing_abs_dir "${1:-}")"
  [[ -d "$dir" ]] || return 0
  stop_broker "$dir"
  if [[ -f "$dir/$MARKER" ]]; then
    rm -rf "$dir"
  else
    log "not deleting $dir: it was not made by this script"
  fi
}

cmd_status() {
  local dir
  dir="$(existing_abs_dir "${1:-}")"
  broker_pid "$dir" >/dev/null && [[ -f "$dir/env" ]] || return 1
  print_env "$dir"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    stop-broker) cmd_stop_broker "$@" ;;
    start-broker) cmd_start_broker "$@" ;;
    restart-broker) cmd_stop_broker "$@" && cmd_start_broker "$@" ;;
    kill-broker) cmd_kill_broker "$@" ;;
    status) cmd_status "$@" ;;
    fetch) ensure_jars ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
