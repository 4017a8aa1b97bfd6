#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian machine for this project: system packages, npm packages, build.
# Everything installed lives outside the repository (Debian packages, ~/.npm, /var/cache/ambient-mesh)
# except node_modules/ and dist/, which are git-ignored. Safe to re-run; a second run does nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

# Programs the tests, the local mesh and the benchmarks run for real:
#   iptables/iproute2   in-pod redirection rules and fake-node namespaces
#   containernetworking-plugins  the CNI reference plugins (bridge, host-local, loopback) a kubelet would call
#   etcd-server         the API server's storage (tier 4)
#   curl, nginx-light   real clients and servers as apps; iperf3, wrk  benchmarks; tcpdump  proof of encryption
PACKAGES=(iptables iproute2 containernetworking-plugins etcd-server curl nginx-light iperf3 wrk tcpdump openssl procps)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root (sudo) so they can be installed" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  # Packages such as nginx would start their system service on install; we only want the binaries.
  policy=/usr/sbin/policy-rc.d
  had_policy=0; [[ -e $policy ]] && had_policy=1
  if [[ $had_policy -eq 0 ]]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [[ $had_policy -eq 1 ]] || rm -f "$policy"
fi

# npm packages, exactly as locked; skipped when node_modules already matches the lock file.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

npm run build --silent
