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

# shellcheck source=SCRIPTDIR/go-tool.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/go-tool.sh"
go_tool_init k6 "$TALLY_K6_VERSION"
go_tool_args "$@"

# `k6 version` prints `k6 v1.8.1 (go1.26.8, linux/amd64)`.
installed_version() {
  [[ -x "$tool_path" ]] || return 1
  "$tool_path" version 2>/dev/null | awk 'NR == 1 && $1 == "k6" { print $2 }'
}

go_tool_done_if_installed
go_tool_find_go 25
go_tool_lock
log "this takes about 3 minutes on 2 cores the first time (module downloads and compilation)"
go_tool_install "go.k6.io/k6@$TALLY_K6_VERSION"
