#!/usr/bin/env bash
# Starts a Prometheus on loopback that scrapes a locally running Tally and evaluates Tally's
# recording and alert rules (observability/prometheus/*.rules.yml), and prints its address. It runs
# in the foreground until Ctrl-C; its data stays in $TALLY_SERVICES_DIR/prometheus for the next run.
#
#   scripts/observe.sh                                   # `npm start` / `bin/tally all` on :8080
#   scripts/observe.sh gateway=127.0.0.1:8080 ingest=127.0.0.1:9464 persister+counter=127.0.0.1:9465
#
# Each target is ROLE=HOST:PORT: the roles the process runs (its `role` label) and where it serves
# /metrics (the gateway's HTTP port, else TALLY_METRICS_PORT; each process logs it as "metrics
# listening"). Targets can also come from TALLY_OBSERVE_TARGETS (space-separated).
#
# Environment: TALLY_PROMETHEUS_PORT (default 19090), TALLY_OBSERVE_INTERVAL (scrape and rule
# evaluation interval, default 5s), TALLY_SERVICES_DIR. Needs Debian's prometheus package
# (scripts/install-deps.sh installs it).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/lib.sh"

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac

port="${TALLY_PROMETHEUS_PORT:-19090}"
interval="${TALLY_OBSERVE_INTERVAL:-5s}"
dir="$TALLY_SERVICES_DIR/prometheus"
node="$TALLY_REPO_ROOT/node_modules/.bin/node"

targets=("$@")
if ((${#targets[@]} == 0)); then
  read -r -a targets <<<"${TALLY_OBSERVE_TARGETS:-all=127.0.0.1:8080}"
fi

command -v prometheus >/dev/null 2>&1 ||
  tally_die "prometheus not found: run scripts/install-deps.sh (or: apt-get install prometheus)"
command -v curl >/dev/null 2>&1 || tally_die "curl not found (apt-get install curl)"
[[ -x "$node" ]] || tally_die "no $node: run npm install (or make install) first"
if tally_port_open "$port"; then
  tally_die "port $port is already taken (another Prometheus?): set TALLY_PROMETHEUS_PORT"
fi

mkdir -p "$dir/data"
"$node" "$TALLY_REPO_ROOT/observability/prometheus/local-config.ts" --interval "$interval" "${targets[@]}" \
  >"$dir/prometheus.yml" || exit 2

for target in "${targets[@]}"; do
  address="${target#*=}"
  if ! tally_port_open "${address##*:}"; then
    tally_log "warning: nothing listens on ${address} yet (${target%%=*}); Prometheus will show it down until it does"
  fi
done

log="$dir/prometheus.log"
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --storage.tsdb.retention.time=31d --web.listen-address="127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
trap 'exit 0' INT TERM

deadline=$((SECONDS + 60))
until curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; do
  if ! tally_pid_alive "$pid"; then
    tally_tail_log "$log"
    tally_die "prometheus exited (log: $log)"
  fi
  ((SECONDS < deadline)) || { tally_tail_log "$log"; tally_die "prometheus not ready after 60s (log: $log)"; }
  sleep 0.5
done

url="http://127.0.0.1:$port"
cat <<EOF
Prometheus is scraping ${targets[*]} every $interval with Tally's rules.
  UI:      $url
  targets: $url/targets
  alerts:  $url/alerts
  rules:   $url/rules
Dashboards: import observability/dashboards/json/*.json into Grafana with this Prometheus as data source.
Logs: $log. Ctrl-C stops it (data kept in $dir/data).
EOF
wait "$pid"
