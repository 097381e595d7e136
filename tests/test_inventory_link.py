"""link.snmp and link.quality in the inventory: what they expand into (with the real probe Configs)."""

from __future__ import annotations

from monitor.inventory import parse_inventory
from monitor.secrets import Secret
from probes import link, snmp

BASE = """
province: 79
defaults:
  templates: {portal: null, email: null}
  services:
    link:
      snmp: {community_env: WW_SNMP_COMMUNITY, interfaces: [Gi0/0]}
units:
  - code: 26506
    name: Phường Vũng Tàu
    type: phường
    link:
      address: 127.0.0.1
      snmp: {port: 1161, interfaces: [Gi0/1, 3]}
      quality: {count: 10, spacing: 20ms, degraded_rtt: 80ms}
  - code: 26536
    name: Phường Rạch Dừa
    type: phường
    link:
      address: 127.0.0.2
      snmp: {version: 3, user: noc, auth_key_file: /run/secrets/auth, priv_protocol: aes,
             priv_key_env: WW_PRIV}
  - code: 26526
    name: Phường Tam Thắng
    type: phường
    link:
      address: 127.0.0.3
      snmp: {enabled: false}
"""


def test_link_expands_to_quality_or_ping_plus_snmp() -> None:
    inv = parse_inventory(BASE, "inv.yaml", system_resolver="127.0.0.53:53")
    got = {(t.unit_code, t.probe): t for t in inv.targets if t.service == "link"}
    assert sorted(got) == [(26506, "link"), (26506, "snmp"), (26526, "icmp"), (26536, "icmp"), (26536, "snmp")]

    q = got[(26506, "link")].config
    assert isinstance(q, link.Config) and q.count == 10 and q.spacing_seconds == 0.02
    assert q.degraded_rtt_seconds == 0.08

    s1 = got[(26506, "snmp")]
    assert s1.target == "127.0.0.1:1161" and isinstance(s1.config, snmp.Config)
    assert s1.config.interfaces == ("Gi0/1", "3")  # the unit's list replaces the default one
    assert s1.config.community == Secret.from_env("WW_SNMP_COMMUNITY") and s1.config.effective_version == "2c"
    # a secret names the line that names it (the default's), for a missing variable at start
    assert s1.config.community.where == "inv.yaml:7: defaults.services.link.snmp.community_env"

    s2 = got[(26536, "snmp")]
    assert s2.target == "127.0.0.2:161" and isinstance(s2.config, snmp.Config)
    assert s2.config.effective_version == "3" and s2.config.v3_user == "noc"
    assert s2.config.auth_key == Secret.from_file("/run/secrets/auth")
    assert s2.config.priv_key == Secret.from_env("WW_PRIV")
    assert s2.config.priv_key.where == "inv.yaml:22: unit 26536: link.snmp.priv_key_env"
    assert s2.config.interfaces == ("Gi0/0",)


def _timeouts(defaults: str) -> dict[str, float]:
    text = BASE.replace("defaults:\n", "defaults:\n" + defaults, 1)
    inv = parse_inventory(text, "inv.yaml", system_resolver="127.0.0.53:53")
    return {t.probe: t.timeout for t in inv.targets if t.unit_code == 26536}


def test_link_echo_has_its_own_short_timeout_unless_one_is_written() -> None:
    assert _timeouts("") == {"icmp": 2.0, "snmp": 10.0}  # built-in: 2 s echo, SNMP keeps 10 s
    assert _timeouts("  timeout: 4s\n") == {"icmp": 4.0, "snmp": 4.0}  # a written timeout wins
    at = "    link:\n      snmp: {community_env"
    with_link = BASE.replace(at, "    link:\n      timeout: 3s\n      snmp: {community_env", 1)
    inv = parse_inventory(with_link, "inv.yaml", system_resolver="127.0.0.53:53")
    assert {t.probe: t.timeout for t in inv.targets if t.unit_code == 26536} == {"icmp": 3.0, "snmp": 3.0}
