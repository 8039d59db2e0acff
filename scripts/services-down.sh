#!/usr/bin/env bash
# Stops the servers started by scripts/services-up.sh (graceful first, SIGKILL after a timeout).
# Idempotent: what is not running is skipped. --purge also deletes $TALLY_SERVICES_DIR
# (default <repo>/.services): all data, logs and pid files. The Kafka jar cache is kept.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/lib.sh"

usage() {
  cat <<'EOF'
usage: scripts/services-down.sh [--purge]
  --purge   also delete the data directory ($TALLY_SERVICES_DIR, default <repo>/.services)
EOF
}

purge=0
for arg in "$@"; do
  case "$arg" in
    --purge) purge=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; tally_die "unknown argument: $arg" ;;
  esac
done

# Without the directory there is no pid file to read, but orphans (below) may still run.
have_dir=0
if [[ -d "$TALLY_SERVICES_DIR" ]]; then
  have_dir=1
  tally_lock
fi

pg_stop() { # NAME DIR
  local name="$1" data="$2/data" pid bin
  pid="$(tally_pg_pid "$data")" || return 0
  tally_log "$name: stopping (pid $pid)"
  bin="$(tally_pg_bin)" || bin=""
  if [[ -n "$bin" ]] && tally_as_owner "$data" "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1; then
    return 0
  fi
  tally_log "$name: fast shutdown did not finish in 30s, trying immediate"
  if [[ -n "$bin" ]] && tally_as_owner "$data" "$bin/pg_ctl" -D "$data" -m immediate -w -t 15 stop >/dev/null 2>&1; then
    return 0
  fi
  tally_stop_pid "$name" "$pid" 5
}

redis_stop() { # NAME DIR PORT
  local name="$1" dir="$2" port="$3" pid
  pid="$(tally_redis_pid "$dir")" || return 0
  tally_log "$name: stopping (pid $pid)"
  timeout 10 redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  tally_wait_pid_exit "$pid" 10 || tally_stop_pid "$name" "$pid" 10
}

kafka_stop() {
  local pid
  pid="$(tally_kafka_pid)" || return 0
  # SIGTERM runs Kafka's controlled shutdown; a single node usually needs a few seconds.
  tally_stop_pid kafka "$pid" "${TALLY_KAFKA_STOP_TIMEOUT:-60}"
}

pg_stop pg-replica "$TALLY_PG_REPLICA_DIR"
pg_stop pg "$TALLY_PG_DIR"
for port in "${TALLY_REDIS_CLUSTER_PORTS[@]}"; do
  redis_stop "redis-cluster:$port" "$TALLY_REDIS_CLUSTER_DIR/$port" "$port"
done
redis_stop redis "$TALLY_REDIS_DIR" "$TALLY_REDIS_PORT"
kafka_stop
rm -f "$TALLY_KAFKA_PIDFILE"

# Fallback by port: a server of this services dir whose pid file is gone, or an orphan whose
# services dir was deleted while it ran (nothing else could stop it).
real_dir="$TALLY_SERVICES_DIR"
((have_dir)) && real_dir="$(cd "$TALLY_SERVICES_DIR" && pwd -P)"
for port in "$TALLY_PG_REPLICA_PORT" "$TALLY_PG_PORT" "${TALLY_REDIS_CLUSTER_PORTS[@]}" \
  "$TALLY_REDIS_PORT" "$TALLY_KAFKA_PORT"; do
  tally_port_open "$port" || continue
  pid="$(tally_port_pid "$port")" || continue
  rc=0
  dir="$(tally_pid_services_dir "$pid")" || rc=$?
  if ((rc == 2)) || [[ $rc == 0 && "$dir" == "$real_dir" ]]; then
    # postgres: SIGINT is its fast shutdown (SIGTERM waits for clients to leave).
    if [[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == postgres ]]; then
      kill -INT "$pid" 2>/dev/null || true
    fi
    tally_stop_pid "127.0.0.1:$port (no pid file)" "$pid" 60
  fi
done
tally_log "all stopped"

if ((purge && have_dir)); then
  dir="$(cd "$TALLY_SERVICES_DIR" && pwd -P)"
  case "$dir" in
    / | "$TALLY_REPO_ROOT" | "${HOME:-/}" | /root | /home | /tmp | /var | /usr | /etc)
      tally_die "refusing to delete $dir" ;;
  esac
  [[ -f "$dir/.tally-services" ]] ||
    tally_die "refusing to delete $dir: no .tally-services marker (not created by services-up.sh)"
  rm -rf -- "$dir"
  tally_log "purged $dir"
fi
