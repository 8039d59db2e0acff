#!/usr/bin/env bash
# Installs helm, which checks and renders the chart of charts/tally (`helm lint`, `helm template`
# in scripts/k8s.test.ts), by building it from source with the local Go toolchain
# (`go install helm.sh/helm/v3/cmd/helm@<version>`, GOTOOLCHAIN=local: no toolchain or binary is
# downloaded, only Go modules). Idempotent: does nothing when the pinned version is installed.
# Prints the path of the binary last.
#
#   scripts/install-helm.sh               install (about 4 to 6 minutes on 2 cores the first time)
#   scripts/install-helm.sh --print-path  only print where the binary is (or would be)
#
# Environment: TALLY_HELM_VERSION (default below), XDG_CACHE_HOME (the binary goes to
# ${XDG_CACHE_HOME:-$HOME/.cache}/tally/bin/helm), GO (default: go on PATH, else /usr/local/go/bin/go).
set -euo pipefail

TALLY_HELM_VERSION="${TALLY_HELM_VERSION:-v3.22.0}"
bin_dir="${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/tally/bin"
helm="$bin_dir/helm"

log() { printf '[install-helm] %s\n' "$*" >&2; }
die() {
  printf '[install-helm] ERROR: %s\n' "$*" >&2
  exit 1
}

case "${1:-}" in
  --print-path)
    printf '%s\n' "$helm"
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

# The build below stamps the version, so `helm version --template '{{.Version}}'` prints `v3.22.0`.
installed_version() {
  [[ -x "$helm" ]] || return 1
  "$helm" version --template '{{.Version}}' 2>/dev/null
}

if [[ "$(installed_version || true)" == "$TALLY_HELM_VERSION" ]]; then
  log "helm $TALLY_HELM_VERSION is already installed"
  printf '%s\n' "$helm"
  exit 0
fi

go="${GO:-$(command -v go || true)}"
[[ -n "$go" ]] || go=/usr/local/go/bin/go
[[ -x "$go" ]] || die "Go not found at $go (GO, else go on PATH, else /usr/local/go/bin/go): install Go 1.26 or newer"
go_version="$(GOTOOLCHAIN=local "$go" env GOVERSION)"
if ! [[ "$go_version" =~ ^go1\.([0-9]+) ]] || ((BASH_REMATCH[1] < 26)); then
  die "helm $TALLY_HELM_VERSION needs Go 1.26 or newer; $go is $go_version"
fi

mkdir -p "$bin_dir"
# One build at a time; a second caller waits, then finds the binary installed.
exec {lock_fd}>"$bin_dir/.helm.lock"
flock "$lock_fd"
if [[ "$(installed_version || true)" == "$TALLY_HELM_VERSION" ]]; then
  log "helm $TALLY_HELM_VERSION is already installed"
  printf '%s\n' "$helm"
  exit 0
fi

# helm's release builds stamp its version and the Kubernetes version it assumes without a cluster
# (`.Capabilities.KubeVersion`: one minor above its k8s.io/client-go module, v0.37 → 1.37); a plain
# `go install` would report `v3.22` and Kubernetes 1.20. Read client-go's version from helm's go.mod.
log "reading helm $TALLY_HELM_VERSION's go.mod"
gomod="$(GOTOOLCHAIN=local GOFLAGS=-mod=mod "$go" mod download -json "helm.sh/helm/v3@$TALLY_HELM_VERSION" |
  awk -F'"' '$2 == "GoMod" { print $4 }')"
[[ -f "$gomod" ]] || die "could not download helm.sh/helm/v3@$TALLY_HELM_VERSION's go.mod"
client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")"
[[ "$client_go" =~ ^v0\.([0-9]+)\. ]] || die "no k8s.io/client-go v0.N requirement in $gomod"
kube_minor="${BASH_REMATCH[1]}"
ldflags="-s -w"
ldflags+=" -X helm.sh/helm/v3/internal/version.version=$TALLY_HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kube_minor"
ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kube_minor"

# Build into a private directory, then move into place: an interrupted build leaves no half binary.
staging="$(mktemp -d "$bin_dir/.helm-build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
log "building helm $TALLY_HELM_VERSION with $go_version (go install helm.sh/helm/v3/cmd/helm@$TALLY_HELM_VERSION, GOTOOLCHAIN=local)"
log "this takes about 4 to 6 minutes on 2 cores the first time (module downloads and compilation)"
started=$SECONDS
CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN="$staging" "$go" install -trimpath -ldflags "$ldflags" \
  "helm.sh/helm/v3/cmd/helm@$TALLY_HELM_VERSION" ||
  die "go install helm.sh/helm/v3/cmd/helm@$TALLY_HELM_VERSION failed (see above)"
mv -f "$staging/helm" "$helm"
log "installed helm $(installed_version) (built with $go_version; Kubernetes 1.$kube_minor when no cluster is asked) in $((SECONDS - started)) s"
printf '%s\n' "$helm"
