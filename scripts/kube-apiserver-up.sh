#!/usr/bin/env bash
# A real kube-apiserver (built from the k8s.io/kubernetes Go module, cached in /var/cache/ambient-mesh) and etcd on
# loopback, with a service-account issuer, token authentication and an admin kubeconfig. Ctrl-C stops them.
#   scripts/kube-apiserver-up.sh [--crds]     --crds also installs the project's CRDs (charts/ambient/crds)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/tools/kube-apiserver.sh >/dev/null
exec node dist/testbed/kubeapi/cli.js "$@"
