#!/usr/bin/env bash
# The main job, from a fresh clone: install what the lab needs (nsd for its DNS zone,
# nftables for fault injection) and wardwatch itself, then start a simulated network of
# Ho Chi Minh City's 168 units on loopback and watch it with the embedded store.
# Ctrl-C stops everything. Extra arguments go to `wardwatch demo` (e.g. --units 500).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for p in nsd nftables; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d   # no system-wide daemons started
  chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
python3 -m pip install -q --disable-pip-version-check -e .
exec wardwatch demo "$@"
