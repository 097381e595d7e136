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
  prometheus-alertmanager  # a real Alertmanager (+ amtool): the built-in notifier's pushes, grouping, inhibition
  nftables               # lab fault injection (drops or refuses traffic to a unit's loopback addresses)
  snmpd snmp             # net-snmp agent (snmp probe's live peer) and snmpget (waits for agents to answer)
  python3-venv python3-gdbm  # Debian python for snmpsim's own venv (simulated routers, tests and lab)
  kamailio kamailio-tls-modules  # SIP server answering OPTIONS over UDP, TCP and TLS (sip probe's peer)
  coturn                 # STUN server (turnserver --stun-only) for the stun probe
  exim4-daemon-light     # MTA with STARTTLS for the email probe (a private config per test: tests/peers/mta.py)
  iproute2 procps
  util-linux mount e2fsprogs  # unshare/nsenter/setpriv, mount -o loop, mkfs.ext4/e2fsck: tests/faults/, tests/probes/test_icmp_unprivileged.py
  systemd                # systemd-analyze verify/security for contrib/wardwatch.service (tests/test_systemd_unit.py)
  chromium chromium-driver  # headless browser for the wallboard tests (tests/test_wallboard.py, selenium)
  fonts-noto-core        # Vietnamese glyphs in the wallboard screenshots
  poppler-utils          # pdftoppm: the SLA report's PDF is rendered to PNG in tests/reports/
  fonts-dejavu-core      # the SLA report's first font (Vietnamese glyphs in its PDF, printed by chromium)
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

# grafana-client pulls in urllib3-future, whose wheel installs a .pth that overwrites the
# real urllib3 at every interpreter start (selenium and requests then run on the fork).
# Its documented opt-out: build it from source with URLLIB3_NO_OVERRIDE=1.
URLLIB3_NO_OVERRIDE=1 python3 -m pip install -q --disable-pip-version-check --no-binary urllib3-future -e '.[test]'

# snmpsim (simulated SNMP routers for the snmp tests and the lab) in a venv of its own on
# Debian's python3: its pysmi must not land in the project's environment (pysnmp would pick
# it up), and a Python under /root would not be importable after snmpsim drops privileges.
SNMPSIM_VENV=/opt/wardwatch-snmpsim
if [ ! -x "$SNMPSIM_VENV/bin/snmpsim-command-responder" ]; then
  /usr/bin/python3 -m venv "$SNMPSIM_VENV"
  "$SNMPSIM_VENV/bin/pip" install -q --disable-pip-version-check 'snmpsim>=1.2,<2' 'pysmi>=1.5'
fi
