#!/usr/bin/env bash
# Installs grpcurl, the command-line gRPC client that the reflection test runs against a live
# Tally (services/grpcurl.test.ts), by building it from source with the local Go
# toolchain (`go install github.com/fullstorydev/grpcurl/cmd/grpcurl@<version>`,
# GOTOOLCHAIN=local: no toolchain or binary is downloaded, only Go modules). Idempotent: does
# nothing when the pinned version is installed. Prints the path of the binary last.
#
#   scripts/install-grpcurl.sh               install (about 2 minutes on 2 cores the first time)
#   scripts/install-grpcurl.sh --print-path  only print where the binary is (or would be)
#
# Environment: TALLY_GRPCURL_VERSION (default below), XDG_CACHE_HOME (the binary goes to
# ${XDG_CACHE_HOME:-$HOME/.cache}/tally/bin/grpcurl), GO (default: go on PATH, else /usr/local/go/bin/go).
set -euo pipefail

TALLY_GRPCURL_VERSION="${TALLY_GRPCURL_VERSION:-v1.9.3}"
module=github.com/fullstorydev/grpcurl
bin_dir="${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/tally/bin"
grpcurl="$bin_dir/grpcurl"

log() { printf '[install-grpcurl] %s\n' "$*" >&2; }
die() {
  printf '[install-grpcurl] ERROR: %s\n' "$*" >&2
  exit 1
}

case "${1:-}" in
  --print-path)
    printf '%s\n' "$grpcurl"
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

go="${GO:-$(command -v go || true)}"
[[ -n "$go" ]] || go=/usr/local/go/bin/go
[[ -x "$go" ]] || die "Go not found at $go (GO, else go on PATH, else /usr/local/go/bin/go): install Go 1.24 or newer"

# A binary built by `go install` records its module's version: `go version -m` prints
# `	mod	github.com/fullstorydev/grpcurl	v1.9.3	h1:…`.
installed_version() {
  [[ -x "$grpcurl" ]] || return 1
  GOTOOLCHAIN=local "$go" version -m "$grpcurl" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }'
}

if [[ "$(installed_version || true)" == "$TALLY_GRPCURL_VERSION" ]]; then
  log "grpcurl $TALLY_GRPCURL_VERSION is already installed"
  printf '%s\n' "$grpcurl"
  exit 0
fi

go_version="$(GOTOOLCHAIN=local "$go" env GOVERSION)"
if ! [[ "$go_version" =~ ^go1\.([0-9]+) ]] || ((BASH_REMATCH[1] < 24)); then
  die "grpcurl $TALLY_GRPCURL_VERSION needs Go 1.24 or newer; $go is $go_version"
fi

mkdir -p "$bin_dir"
# One build at a time; a second caller waits, then finds the binary installed.
exec {lock_fd}>"$bin_dir/.grpcurl.lock"
flock "$lock_fd"
if [[ "$(installed_version || true)" == "$TALLY_GRPCURL_VERSION" ]]; then
  log "grpcurl $TALLY_GRPCURL_VERSION is already installed"
  printf '%s\n' "$grpcurl"
  exit 0
fi

# Build into a private directory, then move into place: an interrupted build leaves no half binary.
staging="$(mktemp -d "$bin_dir/.grpcurl-build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
log "building grpcurl $TALLY_GRPCURL_VERSION with $go_version (go install $module/cmd/grpcurl@$TALLY_GRPCURL_VERSION, GOTOOLCHAIN=local)"
started=$SECONDS
GOTOOLCHAIN=local GOBIN="$staging" "$go" install "$module/cmd/grpcurl@$TALLY_GRPCURL_VERSION" ||
  die "go install $module/cmd/grpcurl@$TALLY_GRPCURL_VERSION failed (see above)"
mv -f "$staging/grpcurl" "$grpcurl"
log "installed grpcurl $(installed_version) in $((SECONDS - started)) s"
printf '%s\n' "$grpcurl"
