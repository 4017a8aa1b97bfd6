#!/usr/bin/env bash
# The main job: sets up this machine (idempotently) and runs a local ambient mesh on fake nodes.
# Run as root. Ctrl-C tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "local-mesh: run as root (sudo scripts/local-mesh.sh): fake nodes are network namespaces with iptables rules" >&2
  exit 1
fi
scripts/setup.sh
exec node dist/localmesh/main.js
