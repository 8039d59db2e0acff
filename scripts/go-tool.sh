#!/usr/bin/env bash
# Sourced by scripts/install-{helm,k6,grpcurl}.sh: what they share to build one pinned Go tool
# from source with the local toolchain (`go install <package>@<version>`, GOTOOLCHAIN=local: only
# Go modules are downloaded, never a toolchain or a binary) into
# ${XDG_CACHE_HOME:-$HOME/.cache}/tally/bin, idempotently, one build at a time, and never leaving a
# half-built binary. The sourcing script defines `installed_version` (prints the installed
# binary's version, or fails) and calls, in order:
#
#   go_tool_init <name> <version>   # sets $tool_path; `log` and `die` speak as install-<name>
#   go_tool_args "$@"               # --print-path, --help, or nothing
#   go_tool_done_if_installed       # exits 0, printing the path, when the version is there
#   go_tool_find_go <min minor>     # sets $go and $go_version, or dies naming what is needed
#   go_tool_lock                    # waits for another build, then exits 0 if it installed it
#   go_tool_install <pkg@version> [go install flags…]   # builds, moves into place, prints the path
#
# Environment: XDG_CACHE_HOME, GO (default: go on PATH, else /usr/local/go/bin/go); `go_tool_env`
# (an array of VAR=value) is put in the build's environment.

go_tool_init() {
  tool="$1"
  tool_version="$2"
  bin_dir="${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/tally/bin"
  tool_path="$bin_dir/$tool"
}

log() { printf '[install-%s] %s\n' "$tool" "$*" >&2; }
die() {
  printf '[install-%s] ERROR: %s\n' "$tool" "$*" >&2
  exit 1
}

go_tool_args() {
  case "${1:-}" in
    --print-path)
      printf '%s\n' "$tool_path"
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
}

go_tool_done_if_installed() {
  if [[ "$(installed_version || true)" == "$tool_version" ]]; then
    log "$tool $tool_version is already installed"
    printf '%s\n' "$tool_path"
    exit 0
  fi
}

go_tool_find_go() {
  local min="$1"
  go="${GO:-$(command -v go || true)}"
  [[ -n "$go" ]] || go=/usr/local/go/bin/go
  [[ -x "$go" ]] || die "Go not found at $go (GO, else go on PATH, else /usr/local/go/bin/go): install Go 1.$min or newer"
  go_version="$(GOTOOLCHAIN=local "$go" env GOVERSION)"
  if ! [[ "$go_version" =~ ^go1\.([0-9]+) ]] || ((BASH_REMATCH[1] < min)); then
    die "$tool $tool_version needs Go 1.$min or newer; $go is $go_version"
  fi
}

go_tool_lock() {
  mkdir -p "$bin_dir"
  # One build at a time; a second caller waits, then finds the binary installed.
  exec {go_tool_lock_fd}>"$bin_dir/.$tool.lock"
  flock "$go_tool_lock_fd"
  go_tool_done_if_installed
}

go_tool_install() {
  local package="$1"
  shift
  # Build into a private directory, then move into place: an interrupted build leaves no half binary.
  go_tool_staging="$(mktemp -d "$bin_dir/.$tool-build.XXXXXX")"
  trap 'rm -rf "$go_tool_staging"' EXIT
  log "building $tool $tool_version with $go_version (go install $package, GOTOOLCHAIN=local)"
  local started=$SECONDS
  env "${go_tool_env[@]}" GOTOOLCHAIN=local GOBIN="$go_tool_staging" "$go" install "$@" "$package" ||
    die "go install $package failed (see above)"
  mv -f "$go_tool_staging/$tool" "$tool_path"
  log "installed $tool $(installed_version) in $((SECONDS - started)) s"
  printf '%s\n' "$tool_path"
}

go_tool_env=()
