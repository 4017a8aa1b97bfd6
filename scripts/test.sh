#!/usr/bin/env bash
# The test command: sets up a fresh machine (idempotently) and runs every test tier.
# Run as root: the fake-node tier creates network namespaces and iptables rules.
#   TIERS="unit inprocess" scripts/test.sh    runs only some tiers
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The Kubernetes tier runs a real kube-apiserver, built once from its Go module (minutes the first time, then cached).
echo "test: kube-apiserver at $(scripts/tools/kube-apiserver.sh)"
# Lint and format check of the whole tree (biome); the build in run-tests type-checks.
npm run lint --silent
export LOG_LEVEL="${LOG_LEVEL:-silent}"
# shellcheck disable=SC2086
node scripts/run-tests.mjs ${TIERS:-}
