"""The lab: a pure address plan, a valid inventory, real servers that show the built-in
imperfections to the real probes, and faults the real engine sees."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509

from monitor import cli
from monitor.engine import Engine, Entry
from monitor.inventory import load_inventory
from monitor.lab import control, plan
from monitor.lab import inventory as lab_inventory
from monitor.lab.config import LabConfig, Ports, Timing
from monitor.lab.faults import FaultTable, Health
from monitor.lab.runner import Lab
from monitor.state import Change, State
from monitor.targets import Target
from probes import registry
from probes.runner import run_probe

UNITS = 12


def test_plan_is_pure_and_collision_free_at_national_scale() -> None:
    units = plan.build_plan(plan.select_units(3321))
    assert len(units) == 3321
    assert len({u.code for u in units}) == 3321
    assert plan.build_plan(plan.select_units(3321)) == units  # same input, same plan
    addresses: set[str] = set()
    for u in units:
        for role in plan.ROLES:
            a = plan.address(u.index, role)
            assert plan.decode(a) == (u.index, role)
            assert a not in addresses
            addresses.add(a)
    assert plan.PROCEDURES_ADDRESS not in addresses
    assert plan.decode(plan.PROCEDURES_ADDRESS) is None
    assert plan.decode("127.0.0.1") is None and plan.decode("192.0.2.1") is None
    names = plan.all_names(units)
    assert len(set(names.values())) == len(names)  # one name per address
    assert all(n.endswith(".lab.test") for n in names)
    assert units[0].address("portal") == "127.13.0.1" and units[3320].address("router") == "127.10.13.71"
    assert {len(u.old_domains) for u in units} == {1, 2, 3}


def test_faults_link_takes_the_unit_down() -> None:
    t = FaultTable()
    t.set(1, "link", "down", now=0.0, period=10)
    assert t.health(1, "portal", 1.0) is Health.DOWN and t.health(2, "portal", 1.0) is Health.UP
    t.set(1, "link", "flap", now=0.0, period=10)
    assert t.health(1, "email", 5.0) is Health.DOWN and t.health(1, "email", 15.0) is Health.UP
    t.set(1, "link", "restore", now=0.0, period=10)
    t.set(1, "portal", "slow", now=0.0, period=10)
    assert t.health(1, "portal", 1.0) is Health.SLOW and t.health(1, "vc_gov", 1.0) is Health.UP
    with pytest.raises(ValueError):
        t.set(1, "dns", "down", now=0.0, period=10)


def _cfg(tmp: Path, timing: Timing | None = None) -> LabConfig:
    return LabConfig(
        directory=tmp / "lab",
        units=UNITS,
        ports=Ports(https=0, http=0, smtp=0, vc=0, dns=0, control=0, sip=0, stun=0, snmp=0),
        timing=timing or Timing(interval=10, timeout=1, rechecks=1, recheck_spacing=0.5),
        nft_table=f"wardwatch_lab_test_{os.getpid()}",
        flap_period=1.0,
    )


def test_inventory_validates_with_every_target(tmp_path: Path) -> None:
    cfg = LabConfig(directory=tmp_path, units=UNITS)  # the default, fixed ports
    units = plan.build_plan(plan.select_units(UNITS))
    [path] = lab_inventory.write(cfg, units)
    inv = load_inventory(path)
    assert inv.monitor.dns_servers == [f"127.0.0.1:{cfg.ports.dns}"]
    assert inv.defaults.ca_file == str(cfg.directory.absolute() / "ca.pem")
    for u in units:
        kinds = sorted((t.service, t.probe) for t in inv.targets if t.unit_code == u.code)
        olds = len(u.old_domains)
        assert kinds == sorted(
            [("link", "icmp"), ("link", "snmp"), ("portal", "http"), *[("portal", "http")] * olds, ("email", "dns"),
             ("email", "email"),
             *[(room, kind) for room in ("vc_gov", "vc_party") for kind in ("icmp", "h323", "sip", "stun")],
             ("certs", "tls"), ("certs", "certfile"), ("procedures", "http")]
        )
    keys = {t.key for t in inv.targets}
    assert {e.key for e in lab_inventory.expected_failures(cfg, units)} <= keys


def test_inventory_beyond_one_province_is_national(tmp_path: Path) -> None:
    cfg = LabConfig(directory=tmp_path, units=200)
    units = plan.build_plan(plan.select_units(200))
    [path] = lab_inventory.write(cfg, units)
    inv = load_inventory(path)
    assert len(inv.units) == 200
    assert {t.province for t in inv.targets} == {u.province for u in units}
    assert len({u.province for u in units}) > 1


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    lab = Lab(_cfg(tmp_path))
    await lab.start()
    try:
        yield lab
    finally:
        await lab.stop()
    assert not (lab.dir / control.STATE_FILE).exists()
    if shutil.which("nft"):
        out = await asyncio.create_subprocess_exec("nft", "list", "tables", stdout=asyncio.subprocess.PIPE)
        tables, _ = await out.communicate()
        assert lab.cfg.nft_table.encode() not in tables


async def _probe_all(inventory_path: Path) -> dict[str, tuple[bool, str | None, str]]:
    inv = load_inventory(inventory_path)
    engine = Engine(inv)

    async def one(t: object) -> tuple[str, tuple[bool, str | None, str]]:
        from monitor.targets import Target

        assert isinstance(t, Target)
        r = await run_probe(registry.get(t.probe), t.target, t.config, engine.context(t.timeout))
        return t.key, (r.success, r.reason.value if r.reason else None, r.message)

    return dict(await asyncio.gather(*(one(t) for t in inv.targets)))


async def test_real_probes_see_exactly_the_built_in_imperfections(lab: Lab) -> None:
    seen = await _probe_all(lab.inventory_path)
    expected = {e["key"]: e["reason"] for e in json.loads((lab.dir / "imperfections.json").read_text())["expected"]}
    failing = {k: why for k, (ok, why, _) in seen.items() if not ok}
    assert failing == expected, {k: seen[k] for k in set(failing) ^ set(expected)}
    reasons = set(expected.values())
    assert {"tls_expired", "tls_hostname_mismatch", "redirect_missing", "http_status", "timeout",
            "tls_expires_soon", "cert_expires_soon"} <= reasons
    # Every portal answered over HTTPS with a certificate the lab CA signed (else tls_untrusted),
    # and every old domain redirected (else redirect_missing): the http probe checked both.
    portals = [k for k in seen if "/portal/http/https://" in k]
    assert len(portals) == UNITS and sum(seen[k][0] for k in portals) == UNITS - 4


async def test_vc_rooms_answer_sip_and_stun_and_honour_faults(lab: Lab) -> None:
    """Both rooms of a unit answer SIP (UDP and TCP) and STUN from their own address; a room
    fault silences them (UDP) or refuses them (TCP), a slow one answers late; restore heals."""
    inv = load_inventory(lab.inventory_path)
    engine = Engine(inv)
    unit, other = lab.units[0], lab.units[1]
    targets = [t for t in inv.targets if t.unit_code in (unit.code, other.code) and t.probe in ("sip", "stun", "h323")]
    assert len(targets) == 12

    async def states(budget: float = 0.6) -> dict[str, tuple[bool, str | None]]:
        async def one(t: Target) -> tuple[str, tuple[bool, str | None]]:
            r = await run_probe(registry.get(t.probe), t.target, t.config, engine.context(budget))
            if r.success and t.probe == "stun":  # the mapped address is the probe's own: loopback
                assert r.value("wardwatch_stun_mapped_address_info", address="127.0.0.1") == 1
            if r.success and t.probe == "sip":
                assert r.value("wardwatch_sip_server_info", server="wardwatch-lab") == 1
            return t.key, (r.success, r.reason.value if r.reason else None)

        return dict(await asyncio.gather(*(one(t) for t in targets)))

    before = await states()
    assert all(ok for ok, _ in before.values()), before
    await asyncio.to_thread(control.set_fault, lab.dir, unit.code, "vc_gov", "down")
    after = await states()
    for key, (ok, why) in after.items():
        if key.startswith(f"{unit.code}/vc_gov/"):
            assert not ok and why in ("sip_no_response", "stun_no_response", "refused", "timeout"), (key, why)
        else:
            assert ok, key  # the Party room and the other unit are untouched
    await asyncio.to_thread(control.set_fault, lab.dir, unit.code, "vc_gov", "slow")
    slow = await states(budget=0.3)  # answers come after the lab's slow delay (> the timeout)
    assert not any(ok for key, (ok, _) in slow.items()
                   if key.startswith(f"{unit.code}/vc_gov/") and "/h323/" not in key), slow
    await asyncio.to_thread(control.set_fault, lab.dir, unit.code, "vc_gov", "restore")
    assert all(ok for ok, _ in (await states()).values())


async def test_dns_answers_a_and_mx(lab: Lab) -> None:
    spec = registry.get("dns")
    from probes.dns import Config as DnsConfig
    inv = load_inventory(lab.inventory_path)
    ctx = Engine(inv).context(2.0)
    u = lab.units[0]
    server = f"127.0.0.1:{lab.cfg.ports.dns}"
    a = await run_probe(spec, server, DnsConfig(query_name=u.portal_host, query_type="A",
                                                  expected_answers=(u.address("portal"),)), ctx)
    mx = await run_probe(spec, server, DnsConfig(query_name=u.mail_domain, query_type="MX",
                                                   expected_answers=(f"10 {u.mail_host}.",)), ctx)
    old = await run_probe(spec, server, DnsConfig(query_name=u.old_domains[0].host, query_type="A",
                                                    expected_answers=(u.old_domains[0].address,)), ctx)
    assert (a.success, mx.success, old.success) == (True, True, True), (a, mx, old)


async def test_signing_certificate_files_have_the_planned_expiry(lab: Lab) -> None:
    now = dt.datetime.now(dt.UTC)
    soon = {i["unit_code"] for i in json.loads((lab.dir / "imperfections.json").read_text())["imperfections"]
            if i["kind"] == "signing_soon"}
    assert len(soon) == 1
    for u in lab.units:
        path = lab_inventory.signing_file(lab.cfg, u)
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        days = (cert.not_valid_after_utc - now).total_seconds() / 86400
        assert (8 < days < 9.01) if u.code in soon else days > 700


def _cli(*argv: str) -> int:
    return cli.main(list(argv))


async def test_portal_fault_seen_by_the_engine_and_restored(tmp_path: Path) -> None:
    lab = Lab(_cfg(tmp_path, Timing(interval=2.0, timeout=0.5, rechecks=1, recheck_spacing=0.3)))
    await lab.start()
    engine: Engine | None = None
    try:
        inv = load_inventory(lab.inventory_path)
        engine = Engine(inv)
        unit = lab.units[0]  # no built-in imperfection at index 0
        key = f"{unit.code}/portal/http/https://{unit.portal_host}:{lab.cfg.ports.https}/"
        changes: asyncio.Queue[Change] = asyncio.Queue()

        def on_change(entry: Entry, change: Change) -> None:
            if entry.target.key == key:
                changes.put_nowait(change)

        engine.listeners.append(on_change)
        await engine.start()
        first = await asyncio.wait_for(changes.get(), 5)
        assert first.new is State.UP

        # One interval, plus the re-checks and their timeouts, plus scheduling slack.
        budget = 2.0 + 1 * (0.5 + 0.3) + 0.5 + 1.5
        assert await asyncio.to_thread(_cli, "lab", "fault", str(unit.code), "portal", "down",
                                       "--lab-dir", str(lab.dir)) == 0
        down = await asyncio.wait_for(changes.get(), budget)
        assert down.new is State.DOWN and down.reason is not None
        assert down.reason.value in ("refused", "tls_handshake_failed", "http_protocol_error")

        assert await asyncio.to_thread(_cli, "lab", "fault", str(unit.code), "portal", "restore",
                                       "--lab-dir", str(lab.dir)) == 0
        up = await asyncio.wait_for(changes.get(), budget)
        assert up.new is State.UP
    finally:
        if engine is not None:
            await engine.stop()
        await lab.stop()


async def test_link_fault_cuts_the_unit_off_and_restore_brings_it_back(lab: Lab) -> None:
    inv = load_inventory(lab.inventory_path)
    engine = Engine(inv)
    unit = lab.units[0]
    targets = [t for t in inv.targets if t.unit_code == unit.code and t.service in ("link", "portal", "email")]

    async def states() -> dict[str, bool]:
        async def one(t: object) -> tuple[str, bool]:
            from monitor.targets import Target

            assert isinstance(t, Target)
            r = await run_probe(registry.get(t.probe), t.target, t.config, engine.context(t.timeout))
            return t.key, r.success

        return dict(await asyncio.gather(*(one(t) for t in targets)))

    assert all((await states()).values())
    result = await asyncio.to_thread(control.set_fault, lab.dir, unit.code, "link", "down")
    after = await states()
    email_dns = [k for k in after if "/email/dns/" in k]  # the lab's DNS is not behind the unit's link
    assert all(after[k] for k in email_dns)
    cut = {k: ok for k, ok in after.items() if k not in email_dns}
    if result["netfilter"]:
        assert not any(cut.values()), cut  # pings included
    else:
        assert not any(ok for k, ok in cut.items() if "/icmp/" not in k and "/snmp/" not in k), cut
    assert not lab_inventory.signing_file(lab.cfg, unit).exists()  # certs are behind the link too
    await asyncio.to_thread(control.set_fault, lab.dir, unit.code, "link", "restore")
    assert all((await states()).values())
    assert lab_inventory.signing_file(lab.cfg, unit).exists()


async def test_routers_answer_snmp_with_moving_counters(lab: Lab) -> None:
    inv = load_inventory(lab.inventory_path)
    [t] = [t for t in inv.targets if t.unit_code == lab.units[-1].code and t.probe == "snmp"]
    ctx = Engine(inv).context(t.timeout)
    first = await run_probe(registry.get("snmp"), t.target, t.config, ctx)
    assert first.success, first.message
    second = await run_probe(registry.get("snmp"), t.target, t.config, ctx)  # same memory: rates
    assert second.success, second.message
    assert (second.value("wardwatch_snmp_if_in_bits_per_second", ifName="Gi0/0") or 0) > 0
    assert second.value("ifHighSpeed", ifName="Gi0/0") == 100
    assert str(lab.dir) not in t.target and "wardwatch-lab" not in repr(t.config)  # the community stays in its file


async def test_fault_cli_without_a_running_lab_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await asyncio.to_thread(_cli, "lab", "fault", "26734", "portal", "down", "--lab-dir", str(tmp_path)) == 2
    assert "no running lab" in capsys.readouterr().err


async def test_unknown_unit_is_refused(lab: Lab) -> None:
    with pytest.raises(control.ControlError, match="not in this lab"):
        await asyncio.to_thread(control.set_fault, lab.dir, 1, "portal", "down")
