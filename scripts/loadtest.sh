#!/usr/bin/env bash
# Runs the k6 load tests of loadtest/ against a running Tally, one script after the other, and
# writes each script's JSON summary to the output directory.
#
#   scripts/loadtest.sh [--list] [scenario…]     (default: every scenario)
#
# Scenarios: rest-single rest-batch grpc-unary grpc-stream grpc-stream-acked ws-subscribers
# (loadtest/<name>.js).
# Environment: TALLY_URL (default http://127.0.0.1:8080), TALLY_GRPC (default 127.0.0.1:50051),
# DURATION, RATE, VUS, … (loadtest/README.md lists them; each script has short defaults),
# K6 (the k6 binary; default: the one scripts/install-k6.sh installs, else k6 on PATH),
# LOADTEST_OUT_DIR (default loadtest/results/<UTC time>).
# Exits non-zero when a scenario fails a threshold or cannot run.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
all_scenarios=(rest-single rest-batch grpc-unary grpc-stream grpc-stream-acked ws-subscribers)

log() { printf '[loadtest] %s\n' "$*" >&2; }
die() {
  printf '[loadtest] ERROR: %s\n' "$*" >&2
  exit 1
}

scenarios=()
for arg in "$@"; do
  case "$arg" in
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
      exit 0
      ;;
    --list)
      printf '%s\n' "${all_scenarios[@]}"
      exit 0
      ;;
    -*) die "unknown option $arg (scripts/loadtest.sh --help)" ;;
    *)
      [[ -f "$repo/loadtest/$arg.js" && " ${all_scenarios[*]} " == *" $arg "* ]] ||
        die "unknown scenario '$arg': choose from ${all_scenarios[*]}"
      scenarios+=("$arg")
      ;;
  esac
done
((${#scenarios[@]} > 0)) || scenarios=("${all_scenarios[@]}")

export TALLY_URL="${TALLY_URL:-http://127.0.0.1:8080}"
export TALLY_GRPC="${TALLY_GRPC:-127.0.0.1:50051}"
TALLY_URL="${TALLY_URL%/}"

# k6: $K6, else the project's build, else one on PATH.
k6="${K6:-}"
if [[ -n "$k6" ]]; then
  [[ -x "$k6" ]] || die "K6=$k6 is not an executable"
else
  k6="$("$repo/scripts/install-k6.sh" --print-path)"
  if [[ ! -x "$k6" ]]; then
    k6="$(command -v k6 || true)"
    [[ -n "$k6" ]] ||
      die "k6 is not installed: run scripts/install-k6.sh (builds k6 from source with Go, about 3 minutes), or set K6"
  fi
fi

# tcp_open HOST PORT: something accepts TCP connections there.
tcp_open() {
  # shellcheck disable=SC2016 # $1 and $2 are for the inner bash
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# The gateway answers /readyz 200 once it serves; any gRPC scenario also needs the gRPC port.
start_hint="start it with \`npm start\` (or \`bin/tally all\`), or point TALLY_URL / TALLY_GRPC at it"
if command -v curl >/dev/null 2>&1; then
  if ! curl -fsS -m 5 -o /dev/null "$TALLY_URL/readyz" 2>/dev/null; then
    if curl -fsS -m 5 -o /dev/null "$TALLY_URL/healthz" 2>/dev/null; then
      die "Tally at $TALLY_URL is up but not ready (GET /readyz fails): wait for it, or see its log"
    fi
    die "Tally is not reachable at $TALLY_URL (GET /readyz): $start_hint"
  fi
else
  hostport="${TALLY_URL#*://}"
  tcp_open "${hostport%:*}" "${hostport##*:}" || die "Tally is not reachable at $TALLY_URL: $start_hint"
fi
if [[ " ${scenarios[*]} " == *" grpc-"* ]]; then
  tcp_open "${TALLY_GRPC%:*}" "${TALLY_GRPC##*:}" ||
    die "Tally's gRPC port is not reachable at $TALLY_GRPC: $start_hint"
fi

out_dir="${LOADTEST_OUT_DIR:-$repo/loadtest/results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out_dir"
log "$("$k6" version | head -n 1); Tally at $TALLY_URL and $TALLY_GRPC; summaries in $out_dir"

k6_flags=(--no-usage-report)
[[ -t 1 ]] || k6_flags+=(--quiet)
failed=()
for scenario in "${scenarios[@]}"; do
  log "running $scenario"
  rc=0
  "$k6" run "${k6_flags[@]}" -e SUMMARY_JSON="$out_dir/$scenario.json" "$repo/loadtest/$scenario.js" || rc=$?
  case "$rc" in
    0) log "$scenario: every threshold passed" ;;
    99) failed+=("$scenario (thresholds crossed)") ;;
    *) failed+=("$scenario (k6 exited with $rc)") ;;
  esac
done

if ((${#failed[@]} > 0)); then
  log "failed: $(printf '%s, ' "${failed[@]}" | sed 's/, $//')"
  log "summaries in $out_dir"
  exit 1
fi
log "all ${#scenarios[@]} scenarios passed; summaries in $out_dir"
