#!/usr/bin/env bash
# The test command: sets up a fresh machine (idempotently) and runs every test tier.
# Run as root: the fake-node tier creates network namespaces and iptables rules.
#   TIERS="unit inprocess" scripts/test.sh    runs only some tiers
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
npm run typecheck --silent
export LOG_LEVEL="${LOG_LEVEL:-silent}"
# shellcheck disable=SC2086
node scripts/run-tests.mjs ${TIERS:-}
