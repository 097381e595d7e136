#!/usr/bin/env bash
# Installs everything the test suite runs against: the Debian test peers and the
# Python package with its test extras. Idempotent; needs root (CI and dev machines are).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  nginx-light            # HTTP/TLS peer for the http, tls and tcp probes
  nsd                    # authoritative DNS peer for the dns probe
  prometheus             # promtool (check metrics) and a real scraping server
  prometheus-blackbox-exporter  # differential test of /probe
  nftables               # lab fault injection (drops or refuses traffic to a unit's loopback addresses)
  iproute2 procps
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Debian's postinst scripts would start system-wide daemons on fixed ports; the
  # tests start their own on free loopback ports instead.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
