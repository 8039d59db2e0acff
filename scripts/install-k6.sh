#!/usr/bin/env bash
# Installs k6, the load-test runner of loadtest/, by building it from source with the local Go
# toolchain (`go install go.k6.io/k6@<version>`, GOTOOLCHAIN=local: no toolchain or binary is
# downloaded, only Go modules). Idempotent: does nothing when the pinned version is installed.
# Prints the path of the binary last.
#
#   scripts/install-k6.sh               install (about 3 minutes on 2 cores with a cold cache)
#   scripts/install-k6.sh --print-path  only print where the binary is (or would be)
#
# Environment: TALLY_K6_VERSION (default below), XDG_CACHE_HOME (the binary goes to
# ${XDG_CACHE_HOME:-$HOME/.cache}/tally/bin/k6), GO (default: go on PATH, else /usr/local/go/bin/go).
set -euo pipefail

TALLY_K6_VERSION="${TALLY_K6_VERSION:-v1.8.1}"
bin_dir="${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/tally/bin"
k6="$bin_dir/k6"

log() { printf '[install-k6] %s\n' "$*" >&2; }
die() {
  printf '[install-k6] ERROR: %s\n' "$*" >&2
  exit 1
}

case "${1:-}" in
  --print-path)
    printf '%s\n' "$k6"
    exit 0
    ;;
  -h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
  "") ;;
  *)
    printf 'usage: %s [--print-path]\n' "$0" >&2
    exit 2
    ;;
esac

# `k6 version` prints `k6 v1.8.1 (go1.26.8, linux/amd64)`.
installed_version() {
  [[ -x "$k6" ]] || return 1
  "$k6" version 2>/dev/null | awk 'NR == 1 && $1 == "k6" { print $2 }'
}

if [[ "$(installed_version || true)" == "$TALLY_K6_VERSION" ]]; then
  log "k6 $TALLY_K6_VERSION is already installed"
  printf '%s\n' "$k6"
  exit 0
fi

go="${GO:-$(command -v go || true)}"
[[ -n "$go" ]] || go=/usr/local/go/bin/go
[[ -x "$go" ]] || die "Go not found at $go (GO, else go on PATH, else /usr/local/go/bin/go): install Go 1.25 or newer"
go_version="$(GOTOOLCHAIN=local "$go" env GOVERSION)"
if ! [[ "$go_version" =~ ^go1\.([0-9]+) ]] || ((BASH_REMATCH[1] < 25)); then
  die "k6 $TALLY_K6_VERSION needs Go 1.25 or newer; $go is $go_version"
fi

mkdir -p "$bin_dir"
# One build at a time; a second caller waits, then finds the binary installed.
exec {lock_fd}>"$bin_dir/.k6.lock"
flock "$lock_fd"
if [[ "$(installed_version || true)" == "$TALLY_K6_VERSION" ]]; then
  log "k6 $TALLY_K6_VERSION is already installed"
  printf '%s\n' "$k6"
  exit 0
fi

# Build into a private directory, then move into place: an interrupted build leaves no half binary.
staging="$(mktemp -d "$bin_dir/.k6-build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
log "building k6 $TALLY_K6_VERSION with $go_version (go install go.k6.io/k6@$TALLY_K6_VERSION, GOTOOLCHAIN=local)"
log "this takes about 3 minutes on 2 cores the first time (module downloads and compilation)"
started=$SECONDS
GOTOOLCHAIN=local GOBIN="$staging" "$go" install "go.k6.io/k6@$TALLY_K6_VERSION" ||
  die "go install go.k6.io/k6@$TALLY_K6_VERSION failed (see above)"
mv -f "$staging/k6" "$k6"
log "installed $("$k6" version | head -n 1) in $((SECONDS - started)) s"
printf '%s\n' "$k6"
