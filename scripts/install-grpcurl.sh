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

# shellcheck source=SCRIPTDIR/go-tool.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/go-tool.sh"
go_tool_init grpcurl "$TALLY_GRPCURL_VERSION"
go_tool_args "$@"

# A binary built by `go install` records its module's version: `go version -m` prints
# `	mod	github.com/fullstorydev/grpcurl	v1.9.3	h1:…`.
installed_version() {
  [[ -x "$tool_path" && -n "${go:-}" ]] || return 1
  GOTOOLCHAIN=local "$go" version -m "$tool_path" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }'
}

go_tool_find_go 24 # before the check: the installed version is read with `go version -m`
go_tool_done_if_installed
go_tool_lock
go_tool_install "$module/cmd/grpcurl@$TALLY_GRPCURL_VERSION"
