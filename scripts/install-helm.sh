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

# shellcheck source=SCRIPTDIR/go-tool.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/go-tool.sh"
go_tool_init helm "$TALLY_HELM_VERSION"
go_tool_args "$@"

# The build below stamps the version, so `helm version --template '{{.Version}}'` prints `v3.22.0`.
installed_version() {
  [[ -x "$tool_path" ]] || return 1
  "$tool_path" version --template '{{.Version}}' 2>/dev/null
}

go_tool_done_if_installed
go_tool_find_go 26
go_tool_lock

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

log "this takes about 4 to 6 minutes on 2 cores the first time (module downloads and compilation)"
log "Kubernetes 1.$kube_minor is what the binary assumes when no cluster is asked"
go_tool_env=(CGO_ENABLED=0)
go_tool_install "helm.sh/helm/v3/cmd/helm@$TALLY_HELM_VERSION" -trimpath -ldflags "$ldflags"
