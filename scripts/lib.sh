# shellcheck shell=bash disable=SC2034 # variables are used by the scripts that source this
# Shared helpers for scripts/install-deps.sh, services-up.sh and services-down.sh.
# Sourced, never run. Sets no shell options itself: the calling scripts use `set -euo pipefail`.
#
# Everything can be sourced from an interactive bash too, e.g. to use the Kafka CLI:
#   source scripts/lib.sh && tally_kafka_cli org.apache.kafka.tools.TopicCommand \
#       --bootstrap-server 127.0.0.1:19092 --list

TALLY_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TALLY_SCRIPTS_DIR="$TALLY_REPO_ROOT/scripts"

# Where data, logs and pid files live. Must be reachable (x on every parent) by the postgres user.
TALLY_SERVICES_DIR="${TALLY_SERVICES_DIR:-$TALLY_REPO_ROOT/.services}"
[[ "$TALLY_SERVICES_DIR" == /* ]] || TALLY_SERVICES_DIR="$PWD/$TALLY_SERVICES_DIR"

# Apache Kafka from Maven Central. Keep the default in step with <kafka.version> in
# scripts/kafka/pom.xml (the scripts always pass it with -Dkafka.version).
TALLY_KAFKA_VERSION="${TALLY_KAFKA_VERSION:-4.3.1}"
TALLY_KAFKA_HOME="${TALLY_KAFKA_HOME:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/tally/kafka-$TALLY_KAFKA_VERSION}"
TALLY_KAFKA_LIBS="$TALLY_KAFKA_HOME/libs"
TALLY_KAFKA_POM="$TALLY_SCRIPTS_DIR/kafka/pom.xml"
TALLY_KAFKA_LOG4J2="$TALLY_SCRIPTS_DIR/kafka/log4j2.yaml"

# Fixed loopback ports, away from a system PostgreSQL (5432) / Redis (6379) / Kafka (9092).
TALLY_KAFKA_PORT=19092
TALLY_KAFKA_CONTROLLER_PORT=19093
TALLY_REDIS_PORT=16379
TALLY_REDIS_CLUSTER_PORTS=(17001 17002 17003)
TALLY_PG_PORT=15432
TALLY_PG_REPLICA_PORT=15433

# Layout under $TALLY_SERVICES_DIR.
TALLY_KAFKA_DIR="$TALLY_SERVICES_DIR/kafka"
TALLY_KAFKA_PIDFILE="$TALLY_KAFKA_DIR/kafka.pid"
TALLY_REDIS_DIR="$TALLY_SERVICES_DIR/redis"
TALLY_REDIS_CLUSTER_DIR="$TALLY_SERVICES_DIR/redis-cluster"
TALLY_PG_DIR="$TALLY_SERVICES_DIR/pg"
TALLY_PG_REPLICA_DIR="$TALLY_SERVICES_DIR/pg-replica"

tally_log() { printf '[tally-services] %s\n' "$*" >&2; }
tally_die() {
  printf '[tally-services] ERROR: %s\n' "$*" >&2
  exit 1
}

# tally_port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
tally_port_open() {
  # shellcheck disable=SC2016 # $1 is for the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# tally_pid_alive PID: the process exists and is not a zombie.
tally_pid_alive() {
  local pid="${1:-}" state
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ "$state" != Z ]]
}

# tally_read_pid FILE: prints the first line of FILE if it is a number, else nothing.
tally_read_pid() {
  local pid=""
  if [[ -f "$1" ]]; then read -r pid <"$1" 2>/dev/null || true; fi
  [[ "$pid" =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
  return 0
}

# tally_wait_pid_exit PID SECONDS: 0 once PID is gone, 1 if still alive after SECONDS.
tally_wait_pid_exit() {
  local pid="$1" deadline=$((SECONDS + $2))
  while tally_pid_alive "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
  return 0
}

# tally_stop_pid NAME PID SECONDS: SIGTERM, then SIGKILL after SECONDS.
tally_stop_pid() {
  local name="$1" pid="$2" grace="$3"
  tally_pid_alive "$pid" || return 0
  tally_log "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! tally_wait_pid_exit "$pid" "$grace"; then
    tally_log "$name: still alive after ${grace}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    tally_wait_pid_exit "$pid" 10 || tally_die "$name: pid $pid survived SIGKILL"
  fi
}

# tally_tail_log FILE...: the last lines of each existing file, for error messages.
tally_tail_log() {
  local f
  for f in "$@"; do
    [[ -s "$f" ]] || continue
    printf -- '----- last lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

# tally_lock: serialise concurrent services-up/services-down runs (fd stays open until exit).
# Every long-lived server must be spawned with `{TALLY_LOCK_FD}>&-`, or it inherits the fd and
# holds the lock for as long as it runs.
tally_lock() {
  mkdir -p "$TALLY_SERVICES_DIR"
  exec {TALLY_LOCK_FD}>"$TALLY_SERVICES_DIR/.lock"
  if ! flock -w 900 "$TALLY_LOCK_FD"; then
    tally_die "another services-up/down still holds $TALLY_SERVICES_DIR/.lock after 900s"
  fi
}

# ---------------------------------------------------------------------------------------------
# Per-service pid look-ups: print the pid of OUR running process, or fail.

# tally_kafka_pid: the broker started from $TALLY_KAFKA_DIR, if alive.
tally_kafka_pid() {
  local pid cmd
  pid="$(tally_read_pid "$TALLY_KAFKA_PIDFILE")"
  tally_pid_alive "$pid" || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmd" == *"kafka.Kafka $TALLY_KAFKA_DIR/server.properties"* ]] || return 1
  printf '%s\n' "$pid"
}

# tally_redis_pid DIR: the redis-server whose pidfile is DIR/redis.pid, if alive.
tally_redis_pid() {
  local pid
  pid="$(tally_read_pid "$1/redis.pid")"
  tally_pid_alive "$pid" || return 1
  grep -qa redis "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# tally_pg_pid DATADIR: the postmaster running on DATADIR, if alive.
tally_pg_pid() {
  local pid
  pid="$(tally_read_pid "$1/postmaster.pid")"
  tally_pid_alive "$pid" || return 1
  grep -qa -e postgres -e postmaster "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# tally_port_pid PORT: pid of the process listening on PORT (needs ss; only root sees all).
tally_port_pid() {
  command -v ss >/dev/null 2>&1 || return 1
  local out pid
  out="$(ss -Hltnp "sport = :$1" 2>/dev/null || true)"
  [[ "$out" =~ pid=([0-9]+) ]] || return 1
  pid="${BASH_REMATCH[1]}"
  printf '%s\n' "$pid"
}

# tally_pid_services_dir PID: which services dir a listening server belongs to, judged from its
# working directory (postgres and redis chdir into their data dir) and the absolute paths on its
# command line (kafka's server.properties). Returns 2 for an orphan: a java/redis-server/postgres
# whose services paths have been deleted (e.g. a work tree laid anew while its servers kept
# running); else prints the dir holding .tally-services and returns 0; 1 when neither.
tally_pid_services_dir() {
  local pid="$1" comm cwd arg p d _
  local -a paths=()
  comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
  cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
  [[ -n "$cwd" ]] && paths+=("$cwd")
  while IFS= read -r -d '' arg; do
    [[ "$arg" == /* ]] && paths+=("$arg")
  done <"/proc/$pid/cmdline" 2>/dev/null || true
  case "$comm" in java | redis-server | postgres) ;; *) return 1 ;; esac
  for p in "${paths[@]}"; do
    d="${p% (deleted)}"
    case "$d" in
      */kafka/server.properties | */redis | */redis-cluster/[0-9]* | */pg/data | */pg-replica/data)
        if [[ "$p" == *" (deleted)" || ! -e "$d" ]]; then return 2; fi
        ;;
    esac
  done
  for p in "${paths[@]}"; do
    d="${p% (deleted)}"
    for _ in 1 2 3; do
      d="$(dirname "$d")"
      if [[ -f "$d/.tally-services" ]]; then
        printf '%s\n' "$(cd "$d" && pwd -P)"
        return 0
      fi
    done
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL helpers

# Directory holding initdb/pg_ctl/postgres: TALLY_PG_BIN, else the newest /usr/lib/postgresql/*/bin.
tally_pg_bin() {
  if [[ -n "${TALLY_PG_BIN:-}" ]]; then
    printf '%s\n' "$TALLY_PG_BIN"
    return 0
  fi
  local d
  d="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' -printf '%h\n' 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$d" ]] || return 1
  printf '%s\n' "$d"
}

# The OS user that owns the PostgreSQL data dirs. PostgreSQL refuses to run as root, so as root
# this is `postgres` (Debian's package creates it) or, failing that, a `tally` system user.
tally_pg_os_user() {
  if ((EUID != 0)); then
    id -un
  elif id -u postgres >/dev/null 2>&1; then
    printf 'postgres\n'
  else
    printf 'tally\n'
  fi
}

# tally_as_pg CMD...: run CMD as the PostgreSQL OS user (as-is when not root).
tally_as_pg() {
  if ((EUID == 0)); then
    runuser -u "$(tally_pg_os_user)" -- "$@"
  else
    "$@"
  fi
}

# tally_as_owner PATH CMD...: run CMD as the owner of PATH (as-is when not root).
tally_as_owner() {
  local path="$1"
  shift
  if ((EUID == 0)); then
    runuser -u "$(stat -c %U "$path")" -- "$@"
  else
    "$@"
  fi
}

# ---------------------------------------------------------------------------------------------
# Kafka CLI: tally_kafka_cli MAIN_CLASS ARGS... runs a Kafka tool from the same jars as the
# broker, logging WARN and above to stderr. Classes in 4.x: org.apache.kafka.tools.TopicCommand,
# org.apache.kafka.tools.ConsoleProducer, org.apache.kafka.tools.consumer.ConsoleConsumer,
# org.apache.kafka.tools.consumer.group.ConsumerGroupCommand, kafka.tools.StorageTool.
tally_kafka_cli() {
  local cls="$1"
  shift
  [[ -f "$TALLY_KAFKA_LIBS/.tally-complete" ]] ||
    tally_die "Kafka jars missing in $TALLY_KAFKA_LIBS: run scripts/install-deps.sh"
  java -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$TALLY_KAFKA_LOG4J2" \
    -Dtally.kafka.log.ref=STDERR -Dtally.kafka.log.level=WARN \
    -cp "$TALLY_KAFKA_LIBS/*" "$cls" "$@"
}
