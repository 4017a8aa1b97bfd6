#!/usr/bin/env bash
# Builds kube-apiserver from the k8s.io/kubernetes Go module through the Go module proxy and caches the binary
# outside the repository. A second run with the same version is instant.
#
#   scripts/tools/kube-apiserver.sh            prints the path of the binary (building it if needed)
#
# Why a Go module and not a release tarball: this machine reaches the Go module proxy and no download site.
# k8s.io/kubernetes replaces its staging modules (k8s.io/api, k8s.io/apiserver, ...) with ./staging paths, which
# a dependent module cannot use; so the harness module pins each staging module to the matching v0.<minor>.<patch>.
set -euo pipefail
KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
CACHE="${MESH_TOOLS_CACHE:-/var/cache/ambient-mesh}"
OUT="$CACHE/bin/kube-apiserver-$KUBE_VERSION"
if [[ -x "$OUT" ]]; then echo "$OUT"; exit 0; fi
command -v go >/dev/null || { echo "kube-apiserver.sh: 'go' is required to build kube-apiserver" >&2; exit 1; }

STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
WORK="$CACHE/build/kube-apiserver-$KUBE_VERSION"
mkdir -p "$WORK" "$CACHE/bin"
cd "$WORK"
# Go's own client reads the module (and its go.mod) through whatever GOPROXY this machine is configured with.
modfile="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[[ -n "$modfile" && -f "$modfile" ]] || { echo "kube-apiserver.sh: go mod download k8s.io/kubernetes@$KUBE_VERSION gave no go.mod" >&2; exit 1; }
upstream_mod="$(cat "$modfile")"
go_line="$(grep -E '^go ' <<<"$upstream_mod" | head -1)"
{
  echo "module ambient-mesh/kube-apiserver-build"
  echo
  echo "$go_line"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  # every "k8s.io/x => ./staging/src/k8s.io/x" of upstream becomes "k8s.io/x => k8s.io/x v0.N.M"
  grep -E '=> \./staging/src/' <<<"$upstream_mod" | awk -v v="$STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
echo "kube-apiserver.sh: building k8s.io/kubernetes/cmd/kube-apiserver $KUBE_VERSION (staging $STAGING_VERSION) in $WORK" >&2
export GOFLAGS="-mod=mod" CGO_ENABLED=0
go mod tidy -e >&2 2>&1 || true
go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION" -o "$OUT.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
mv "$OUT.tmp" "$OUT"
echo "$OUT"
