"""Inventory loading: line-accurate problems, expansion to targets, the `inventory` commands."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal, get_args

import pytest
import yaml

from monitor.commands import inventory as inventory_cmd
from monitor.inventory import (
    Check,
    Inventory,
    InventoryError,
    Problem,
    load_inventory,
    parse_duration,
    parse_inventory,
    system_nameserver,
)
from monitor.units import official_units, skeleton
from probes import link, snmp
from probes.base import ProbeConfig
from probes.registry import KINDS

# The probe kinds a check may name, as the model declares them (the list grows with the probes).
CHECK_PROBES: tuple[str, ...] = get_args(Check.model_fields["probe"].annotation)


def _one_of_quoted(names: tuple[str, ...]) -> str:
    quoted = [f"'{n}'" for n in names]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}"

DATA = Path(__file__).parent / "data" / "inventory"
ROOT = Path(__file__).parent.parent


# Stand-ins with the Config fields the inventory relies on, so these tests do not depend on
# the probe modules; test_full_with_real_probe_configs runs the same file through the registry.
class Icmp(ProbeConfig):
    count: int = 3


class Tcp(ProbeConfig):
    starttls: Literal["smtp"] | None = None
    ca_file: str | None = None


class Http(ProbeConfig):
    expect_redirect_to: str | None = None
    valid_status_codes: tuple[int, ...] = ()
    ca_file: str | None = None


class Tls(ProbeConfig):
    ca_file: str | None = None


class Dns(ProbeConfig):
    query_name: str
    query_type: str = "A"


class Certfile(ProbeConfig):
    pass


class Sip(ProbeConfig):
    valid_status_codes: tuple[int, ...] = (200,)


class Stun(ProbeConfig):
    rto_seconds: float = 0.5


class H323(ProbeConfig):
    pass


class Email(ProbeConfig):
    dns_server: str | None = None
    smtp_port: int = 25
    ca_file: str | None = None


FAKE: dict[str, type[ProbeConfig]] = {
    "icmp": Icmp,
    "tcp": Tcp,
    "http": Http,
    "tls": Tls,
    "dns": Dns,
    "certfile": Certfile,
    "sip": Sip,
    "stun": Stun,
    "h323": H323,
    "email": Email,
    "snmp": snmp.Config,  # the real ones: link.snmp/link.quality map onto their fields and checks
    "link": link.Config,
}
RESOLVER = "127.0.0.53:53"


def load(path: Path) -> Inventory:
    return load_inventory(path, config_for=FAKE.__getitem__, system_resolver=RESOLVER)


def parse(text: str) -> Inventory:
    return parse_inventory(text, "inv.yaml", config_for=FAKE.__getitem__, system_resolver=RESOLVER)


def problems_of(text: str) -> list[str]:
    with pytest.raises(InventoryError) as info:
        parse(text)
    return [str(p) for p in info.value.problems]


# ------------------------------------------------------------------------------------------
# bad files: each next to the exact lines it must produce

BAD = sorted((DATA / "bad").glob("*.yaml"))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_file_gives_exact_problems(path: Path) -> None:
    expected = path.with_suffix(".txt").read_text(encoding="utf-8").splitlines()
    with pytest.raises(InventoryError) as info:
        load(path)
    got = [str(p).replace(str(path), path.name) for p in info.value.problems]
    assert got == expected


def test_every_bad_file_has_expectations() -> None:
    assert len(BAD) >= 15
    for path in BAD:
        assert path.with_suffix(".txt").is_file(), path


# ------------------------------------------------------------------------------------------
# the good file


@pytest.fixture(scope="module")
def full() -> Inventory:
    return load(DATA / "good" / "full.yaml")


def by_key(inv: Inventory) -> dict[str, object]:
    return {t.key: t for t in inv.targets}


def test_full_counts(full: Inventory) -> None:
    assert full.province == 79
    assert [u.code for u in full.units] == [26506, 26536, 25807, 27676]
    assert full.targets_by_service() == {
        "link": 3,
        "vc_gov": 8,
        "vc_party": 2,
        "portal": 7,
        "email": 8,
        "certs": 3,
        "procedures": 1,
    }
    assert len(full.targets) == 32
    assert full.summary().endswith(
        "OK: province 79 (Thành phố Hồ Chí Minh), 4 units, 32 targets "
        "(link 3, vc_gov 8, vc_party 2, portal 7, email 8, certs 3, procedures 1)"
    )


def test_full_keys(full: Inventory) -> None:
    keys = set(by_key(full))
    assert {
        "26506/link/icmp/127.0.0.1",
        "26506/vc_gov/icmp/127.0.1.1",
        "26506/vc_gov/tcp/127.0.1.1:443",
        "26506/vc_gov/tcp/127.0.1.1:5060",
        "26506/vc_gov/sip/sip:127.0.1.1;transport=udp",
        "26506/vc_gov/sip/sips:vc.hochiminhcity.gov.vn",
        "26506/vc_gov/stun/127.0.1.1:3478",
        "26506/vc_gov/h323/127.0.1.1:1720",
        "26506/vc_gov/h323/vc-gw.hochiminhcity.gov.vn:1720",
        "26506/vc_party/icmp/::1",
        "26506/vc_party/tcp/[::1]:443",
        "26506/portal/http/https://vungtau.hochiminhcity.gov.vn/",
        "26506/portal/http/https://phuong1.vungtau.gov.vn/",
        "26506/portal/http/https://phuong2.vungtau.gov.vn/",
        "26506/portal/http/https://p2.vungtau.gov.vn/",
        "26506/email/dns/127.10.0.53:53",
        "26506/email/email/vungtau.hochiminhcity.gov.vn",
        "26506/email/tcp/mx1.hochiminhcity.gov.vn:25",
        "26506/email/tcp/mx2.hochiminhcity.gov.vn:25",
        "26506/certs/tls/vungtau.hochiminhcity.gov.vn:443",
        "26506/certs/tls/mail.hochiminhcity.gov.vn:993",
        "26506/certs/certfile//etc/ssl/vungtau.pem",
        "26506/procedures/http/https://dvc.vungtau.gov.vn/",
        "26506/portal/dns/127.0.0.1:53",
        "26506/link/icmp/127.0.0.2",
        "26536/link/icmp/router.rachdua.example.vn",
        "26536/portal/http/https://phuong-rach-dua.hochiminhcity.gov.vn/",
        # Xã Thanh An and Xã Thạnh An share the official codename 'xa_thanh_an'
        "25807/portal/http/https://xa-thanh-an-25807.hochiminhcity.gov.vn/",
        "25807/email/dns/127.10.0.53:53",
        "25807/email/email/xa-thanh-an-25807.hochiminhcity.gov.vn",
        "27676/email/dns/127.10.0.53:53",
        "27676/email/email/xa-thanh-an-27676.hochiminhcity.gov.vn",
    } == keys


def test_full_old_domains_expect_redirect_to_portal(full: Inventory) -> None:
    old = [t for t in full.targets if t.service == "portal" and "vungtau.gov.vn" in t.target]
    assert len(old) == 3
    for t in old:
        assert t.probe == "http"
        assert t.config.expect_redirect_to == "https://vungtau.hochiminhcity.gov.vn/"
    main = by_key(full)["26506/portal/http/https://vungtau.hochiminhcity.gov.vn/"]
    assert main.config.expect_redirect_to is None


def test_full_ca_file_propagated(full: Inventory) -> None:
    t = by_key(full)
    for key in (
        "26506/vc_gov/tcp/127.0.1.1:443",
        "26506/email/tcp/mx1.hochiminhcity.gov.vn:25",
        "26506/portal/http/https://phuong1.vungtau.gov.vn/",
        "26536/portal/http/https://phuong-rach-dua.hochiminhcity.gov.vn/",
    ):
        assert t[key].config.ca_file == "/etc/wardwatch/ca.pem", key
    # set explicitly on the unit's certs block: wins over defaults.ca_file
    assert t["26506/certs/tls/vungtau.hochiminhcity.gov.vn:443"].config.ca_file == (
        "/etc/ssl/other-ca.pem"
    )
    # probes without a ca_file field do not get one
    assert "ca_file" not in type(t["26506/link/icmp/127.0.0.1"].config).model_fields


def test_full_option_precedence(full: Inventory) -> None:
    t = by_key(full)
    cfg = {k: v.config for k, v in t.items()}
    # defaults.probes.icmp (3) < defaults.services.link.icmp (5) < unit.link.icmp (7)
    assert cfg["26506/link/icmp/127.0.0.1"].count == 7
    assert cfg["26536/link/icmp/router.rachdua.example.vn"].count == 5
    assert cfg["26506/vc_gov/icmp/127.0.1.1"].count == 3
    # a check takes its service block's options too
    assert cfg["26506/link/icmp/127.0.0.2"].count == 7
    assert cfg["26506/portal/http/https://vungtau.hochiminhcity.gov.vn/"].valid_status_codes == (200, 301)
    assert cfg["26536/portal/http/https://phuong-rach-dua.hochiminhcity.gov.vn/"].valid_status_codes == (200,)
    assert cfg["26506/email/tcp/mx1.hochiminhcity.gov.vn:25"].starttls == "smtp"
    assert cfg["26506/vc_gov/tcp/127.0.1.1:443"].starttls is None
    dns = cfg["26506/email/dns/127.10.0.53:53"]
    assert (dns.query_name, dns.query_type) == ("vungtau.hochiminhcity.gov.vn", "MX")
    dns = cfg["25807/email/dns/127.10.0.53:53"]
    assert dns.query_name == "xa-thanh-an-25807.hochiminhcity.gov.vn"
    check = cfg["26506/portal/dns/127.0.0.1:53"]
    assert (check.query_name, check.query_type) == ("vungtau.gov.vn", "NS")


def test_full_timing_precedence(full: Inventory) -> None:
    t = {k: v for k, v in by_key(full).items()}

    def timing(key: str) -> tuple[float, float, int, float]:
        x = t[key]
        return (
            x.interval,
            x.timeout,
            x.rechecks,
            x.recheck_spacing,
        )

    assert timing("26506/vc_gov/icmp/127.0.1.1") == (30.0, 10.0, 2, 2.0)
    assert timing("26506/link/icmp/127.0.0.1") == (15.0, 5.0, 2, 2.0)  # defaults.services.link
    assert timing("26506/link/icmp/127.0.0.2") == (10.0, 2.0, 2, 2.0)  # the check's own
    assert timing("26506/procedures/http/https://dvc.vungtau.gov.vn/") == (60.0, 10.0, 2, 2.0)


def test_full_target_fields(full: Inventory) -> None:
    t = by_key(full)["26506/portal/http/https://phuong2.vungtau.gov.vn/"]
    assert t.unit_name == "Phường Vũng Tàu"  # doubled space normalised
    assert t.origin == "units[0].merged_from[1].domains[0]"
    assert t.province == 79


def test_full_lineage_and_modules(full: Inventory) -> None:
    vt = full.units[0]
    assert [(m.code, m.name, m.domains) for m in vt.merged_from] == [
        (26500, "Phường 1", ["phuong1.vungtau.gov.vn"]),
        (26503, "Phường 2", ["phuong2.vungtau.gov.vn", "p2.vungtau.gov.vn"]),
    ]
    assert full.monitor.dns_servers == ["127.10.0.53:53", "127.10.0.54:5353"]
    assert full.dns_server == "127.10.0.53:53"
    assert set(full.modules) == {"http_2xx", "smtp_starttls"}
    assert full.modules["http_2xx"].probe == "http"
    assert full.modules["http_2xx"].timeout == 5.0
    assert full.modules["http_2xx"].config.ca_file == "/etc/wardwatch/ca.pem"
    assert full.modules["smtp_starttls"].config.starttls == "smtp"
    assert full.modules["smtp_starttls"].timeout == 10.0


def test_full_with_real_probe_configs() -> None:
    inv = load_inventory(DATA / "good" / "full.yaml", system_resolver=RESOLVER)
    assert len(inv.targets) == 32
    old = [t for t in inv.targets if t.target == "https://phuong1.vungtau.gov.vn/"]
    assert old[0].config.expect_redirect_to == "https://vungtau.hochiminhcity.gov.vn/"


# ------------------------------------------------------------------------------------------
# smaller pieces


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1m30s", 90.0), (15, 15.0), (0.25, 0.25)],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "s", "1d", "", "30s5", True, None, [1]])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_problem_format() -> None:
    assert str(Problem("inv.yaml", 12, 26506, "link.address", "bad")) == "inv.yaml:12: unit 26506: link.address: bad"
    assert str(Problem("inv.yaml", 3, None, "defaults.timeout", "bad")) == "inv.yaml:3: defaults.timeout: bad"
    assert str(Problem("inv.yaml", None, None, "", "cannot read: gone")) == "inv.yaml: cannot read: gone"


MINIMAL = """\
province: 79
defaults:
  templates: {email: "{codename}.hochiminhcity.gov.vn", portal: "https://{name_slug}.example.vn/{code}/{province}"}
units:
  - {code: 26536, name: Phường Rạch Dừa, type: phường}
"""


def test_templates_and_system_resolver() -> None:
    inv = parse(MINIMAL)
    assert [t.key for t in inv.targets] == [
        "26536/portal/http/https://rach-dua.example.vn/26536/79",
        f"26536/email/dns/{RESOLVER}",
        "26536/email/email/phuong-rach-dua.hochiminhcity.gov.vn",
    ]
    assert inv.dns_server == RESOLVER


def test_system_nameserver(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver fe80::1%eth0\nnameserver 127.0.0.1\n")
    assert system_nameserver(conf) == "[fe80::1]:53"
    conf.write_text("options ndots:1\n")
    assert system_nameserver(conf) == "127.0.0.1:53"
    assert system_nameserver(tmp_path / "missing") == "127.0.0.1:53"


def test_enabled_false_at_defaults_and_unit() -> None:
    text = MINIMAL.replace("units:", "  services: {email: {enabled: false}}\nunits:") + (
        "  - {code: 26506, name: Phường Vũng Tàu, type: phường, email: {enabled: true}, portal: {enabled: false}}\n"
    )
    inv = parse(text)
    assert [t.key for t in inv.targets] == [
        "26536/portal/http/https://rach-dua.example.vn/26536/79",
        f"26506/email/dns/{RESOLVER}",
        "26506/email/email/phuong-vung-tau.hochiminhcity.gov.vn",
    ]


def test_all_problems_collected_not_just_first() -> None:
    text = """\
province: 79
defaults: {templates: {portal: null, email: null}}
units:
  - {code: 26506, name: Phường Vũng Tàu, type: phường, link: {address: 1.2.3.999}}
  - {code: 26536, name: Phường Rạch Dừa, type: phường, link: {address: 127.0.0.1, interval: 1s}}
  - {code: 26506, name: Phường Vũng Tàu, type: phường}
"""
    assert problems_of(text) == [
        "inv.yaml:4: unit 26506: link.address: not an IP address or host name: '1.2.3.999'",
        "inv.yaml:5: unit 26536: link.interval: timeout 2s must be shorter than interval 1s",
        "inv.yaml:6: unit 26506: code: duplicate unit code (first at line 4)",
    ]


def test_bad_default_timing_reported_once() -> None:
    units = "\n".join(
        f"  - {{code: {u.code}, name: {u.name}, type: {u.type}, link: {{address: 127.0.0.{n + 1}}}}}"
        for n, u in enumerate(official_units(79)[:20])
    )
    text = f"province: 79\ndefaults: {{timeout: 40s, templates: {{portal: null}}}}\nunits:\n{units}\n"
    assert problems_of(text) == ["inv.yaml:2: defaults.timeout: timeout 40s must be shorter than interval 30s"]


def test_check_targets_validated_per_kind() -> None:
    text = """\
province: 79
units:
  - code: 26506
    name: Phường Vũng Tàu
    type: phường
    checks:
      - {service: link, probe: tcp, target: 127.0.0.1}
      - {service: link, probe: icmp, target: "127.0.0.1:80"}
      - {service: portal, probe: http, target: "vungtau.example.vn"}
      - {service: portal, probe: dns, target: "127.0.0.53"}
      - {service: portal, probe: http, target: "https://x.example.vn/", enabled: false, nonsense: 1}
"""
    assert problems_of(text) == [
        "inv.yaml:7: unit 26506: checks[0].target: not host:port: '127.0.0.1'",
        "inv.yaml:8: unit 26506: checks[1].target: not an IP address or host name: '127.0.0.1:80'",
        "inv.yaml:9: unit 26506: checks[2].target: URL scheme must be http or https: 'vungtau.example.vn'",
        "inv.yaml:10: unit 26506: checks[3].query_name: dns probe: required",
        # a disabled check is still checked (nonsense is not an http option)
        "inv.yaml:11: unit 26506: checks[4].nonsense: unknown http probe option "
        "(known: ip_protocol, ip_protocol_fallback, expect_redirect_to, valid_status_codes, ca_file)",
    ]
    text = text.split("    checks:", maxsplit=1)[0] + "    checks:\n      - {service: wifi, probe: ping, target: x}\n"
    assert problems_of(text) == [
        "inv.yaml:7: unit 26506: checks[0].service: must be 'link', 'vc_gov', 'vc_party', 'portal', "
        "'email', 'certs' or 'procedures', got 'wifi'",
        f"inv.yaml:7: unit 26506: checks[0].probe: must be {_one_of_quoted(CHECK_PROBES)}, got 'ping'",
    ]


def test_check_options_nested_or_flat() -> None:
    text = """\
province: 79
defaults: {templates: {portal: null, email: null}}
units:
  - code: 26506
    name: Phường Vũng Tàu
    type: phường
    checks:
      - {service: email, probe: dns, target: "127.0.0.53", dns: {query_name: a.vn, query_type: NS}}
      - {service: email, probe: dns, target: "127.0.0.54", dns: {query_name: a.vn}, query_name: b.vn}
"""
    cfgs = [t.config for t in parse(text).targets]
    assert [(c.query_name, c.query_type) for c in cfgs] == [("a.vn", "NS"), ("b.vn", "A")]  # type: ignore[attr-defined]
    bad = text.replace("query_type: NS", "query_typo: NS")
    assert problems_of(bad) == [
        "inv.yaml:8: unit 26506: checks[0].dns.query_typo: unknown dns probe option "
        "(known: ip_protocol, ip_protocol_fallback, query_name, query_type)"
    ]


def test_unknown_module_probe() -> None:
    text = MINIMAL.replace(
        "defaults:", "monitor:\n  modules:\n    m1: {probe: ping}\n    m2: {probe: http, bogus: 1}\ndefaults:"
    )
    assert problems_of(text) == [
        f"inv.yaml:4: monitor.modules.m1.probe: must be one of {', '.join(KINDS)}, got 'ping'",
        "inv.yaml:5: monitor.modules.m2.bogus: unknown http probe option "
        "(known: ip_protocol, ip_protocol_fallback, expect_redirect_to, valid_status_codes, ca_file)",
    ]


def test_missing_probe_module_is_a_problem_not_a_crash() -> None:
    def config_for(kind: str) -> type[ProbeConfig]:
        if kind == "dns":
            raise ImportError("No module named 'probes.dns'")
        return FAKE[kind]

    with pytest.raises(InventoryError) as info:
        parse_inventory(MINIMAL, "inv.yaml", config_for=config_for, system_resolver=RESOLVER)
    assert [str(p) for p in info.value.problems] == [
        "inv.yaml: probes: probe kind 'dns' is not available: No module named 'probes.dns'"
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        load(tmp_path / "nope.yaml")
    missing = tmp_path / "nope.yaml"
    assert [str(p) for p in info.value.problems] == [f"{missing}: cannot read: No such file or directory"]
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"province: 79\nunits: [{name: Ph\xf0\xfeng}]\n")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load(bad)


def test_yaml_specials_do_not_crash() -> None:
    text = "province: 79\nunits: []\non: 1\n? [a, b]\n: 2\nx: &a {y: 1}\nz: *a\n"
    assert problems_of(text) == [
        "inv.yaml:3: True: unknown key (allowed: province, monitor, defaults, units, alerting, maintenance)",
        "inv.yaml:4: keys must be scalars",
        "inv.yaml:6: x: unknown key (allowed: province, monitor, defaults, units, alerting, maintenance)",
        "inv.yaml:7: z: unknown key (allowed: province, monitor, defaults, units, alerting, maintenance)",
    ]


def test_yaml_anchors_and_merge_keys() -> None:
    text = """\
province: 79
defaults: {templates: {portal: null, email: null}}
units:
  - code: 26506
    name: Phường Vũng Tàu
    type: phường
    vc_gov: &vc {address: 127.0.0.1, tcp_ports: [443]}
    vc_party: {<<: *vc, address: 127.0.0.2}
"""
    assert [t.key for t in parse(text).targets] == [
        "26506/vc_gov/icmp/127.0.0.1",
        "26506/vc_gov/tcp/127.0.0.1:443",
        "26506/vc_party/icmp/127.0.0.2",
        "26506/vc_party/tcp/127.0.0.2:443",
    ]


def nationwide_text() -> str:
    """Every official unit of the country, each with link, vc, lineage, email and certs."""
    units = []
    for n, u in enumerate(official_units()):
        a = f"10.{n // 250}.{n % 250}.1"
        units.append(
            {
                "code": u.code,
                "name": u.name,
                "type": u.type,
                "codename": f"{u.codename}-p{u.province}",
                "merged_from": [{"code": 90000 + n, "name": "Phường 1", "domains": [f"old{n}.example.gov.vn"]}],
                "link": {"address": a},
                "vc_gov": {"address": a, "tcp_ports": [443]},
                "email": {"smtp": [f"mx.{u.codename}.example.vn"]},
                "certs": {"hosts": [f"{u.codename}.example.vn:443"]},
            }
        )
    head = skeleton(79).split("\nunits:")[0]
    return head + "\n" + yaml.safe_dump({"units": units}, allow_unicode=True, sort_keys=False)


@pytest.mark.slow
def test_loading_3321_units_is_fast() -> None:
    """An inventory holds one province, so the 3,153 units outside 79 are 'not official';
    every unit is still validated and expanded (8 targets each), which is what is timed."""
    text = nationwide_text()
    start = time.perf_counter()
    with pytest.raises(InventoryError) as info:
        parse(text)
    elapsed = time.perf_counter() - start
    assert {p.message for p in info.value.problems} == {"not an official commune-level unit of province 79"}
    assert len(info.value.problems) == 3321 - 168
    assert elapsed < 3.0, f"{elapsed:.2f}s"


# ------------------------------------------------------------------------------------------
# commands


def test_validate_command_ok_and_bad() -> None:
    out, err = io.StringIO(), io.StringIO()
    rc = inventory_cmd.validate_inventory(
        DATA / "good" / "full.yaml", config_for=FAKE.__getitem__, system_resolver=RESOLVER, out=out, err=err
    )
    assert rc == 0
    assert err.getvalue() == ""
    assert out.getvalue().count("\n") == 1
    assert "4 units, 32 targets (link 3," in out.getvalue()

    out, err = io.StringIO(), io.StringIO()
    bad = DATA / "bad" / "duplicate_units.yaml"
    rc = inventory_cmd.validate_inventory(bad, config_for=FAKE.__getitem__, out=out, err=err)
    assert rc == 2
    assert out.getvalue() == ""
    assert err.getvalue().replace(str(bad), bad.name).splitlines() == (
        bad.with_suffix(".txt").read_text(encoding="utf-8").splitlines()
    )


def test_validate_command_internal_error_is_one_line() -> None:
    def broken(kind: str) -> type[ProbeConfig]:
        raise RuntimeError("boom")

    err = io.StringIO()
    rc = inventory_cmd.validate_inventory(DATA / "good" / "full.yaml", config_for=broken, err=err)
    assert rc == 2
    assert "Traceback" not in err.getvalue()
    assert all(": probes: probe kind " in line for line in err.getvalue().splitlines())


def test_register_adds_init_and_validate() -> None:
    parser = argparse.ArgumentParser(prog="wardwatch")
    sub = parser.add_subparsers(dest="command", required=True)
    inventory_cmd.register(sub)
    args = parser.parse_args(["inventory", "validate", "x.yaml"])
    assert args.func is inventory_cmd.cmd_validate
    assert args.file == Path("x.yaml")
    args = parser.parse_args(["inventory", "init", "--province", "79", "-o", "i.yaml", "--force"])
    assert args.func is inventory_cmd.cmd_init
    assert (args.province, args.output, args.force, args.domain_suffix) == (79, "i.yaml", True, None)


CLI = (
    "import sys; from monitor.commands.inventory import validate_inventory, init_inventory; "
    "sys.exit(validate_inventory(sys.argv[1]) if sys.argv[2] == 'v' else init_inventory(int(sys.argv[1]), '-'))"
)


@pytest.mark.parametrize(
    "arg",
    ["tests/data/inventory/bad/syntax_error.yaml", "tests/data/inventory/bad/empty.yaml", "missing.yaml", "tests"],
)
def test_cli_validate_no_traceback(arg: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CLI, arg, "v"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(arg + ":")
    assert proc.stdout == ""


def test_cli_init_unknown_province_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CLI, "99", "i"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "unknown province code 99; valid codes: 1 (Thành phố Hà Nội)" in proc.stderr
    assert "79 (Thành phố Hồ Chí Minh)" in proc.stderr


def test_national_inventory_takes_each_units_province_from_the_official_list(tmp_path: Path) -> None:
    from monitor.units import official_units

    units = [u for u in official_units(None) if u.province == 1][:2] + [
        u for u in official_units(None) if u.province == 79
    ][:2]
    templates = "{portal: 'https://{codename}.example.test/', email: null}"
    lines = ["province: all", f"defaults: {{templates: {templates}}}", "units:"]
    for u in units:
        lines.append(f"  - {{code: {u.code}, name: '{u.name}', type: {u.type}}}")
    lines.append("  - {code: 999999, name: Nowhere, type: xã}")
    path = tmp_path / "national.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InventoryError) as exc:
        load_inventory(path)
    assert [p.unit_code for p in exc.value.problems] == [999999]
    assert "not an official commune-level unit" in str(exc.value.problems[0])
    path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    inv = load_inventory(path)
    assert {t.unit_code: t.province for t in inv.targets} == {u.code: u.province for u in units}
