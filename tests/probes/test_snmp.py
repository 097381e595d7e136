"""SNMP probe against real agents on loopback: net-snmp's snmpd (live Linux interface table,
v2c and v3 authPriv) and snmpsim serving router recordings this module writes (counters
moved between two polls), plus agents that never answer or answer garbage."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.exporter import METRICS
from probes import snmp
from probes.base import ProbeContext, ProbeResult, Reason
from tests.peers import snmp as peers

COMMUNITY_SECRET = peers.COMMUNITY


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[peers.Agent]:
    with peers.snmpd(tmp_path_factory.mktemp("snmpd")) as a:
        yield a


IF1 = {"ifName": "Gi0/0", "ifDescr": "GigabitEthernet0/0", "ifAdminStatus": 1, "ifOperStatus": 1,
       "ifHighSpeed": 100, "ifHCInOctets": 1_000_000, "ifHCOutOctets": 2**64 - 1_000,
       "ifInErrors": 10, "ifOutErrors": 2**32 - 5, "ifInDiscards": 0, "ifOutDiscards": 0}
IF2 = {"ifName": "Gi0/1", "ifDescr": "GigabitEthernet0/1", "ifAdminStatus": 1, "ifOperStatus": 2,
       "ifHighSpeed": 1000, "ifHCInOctets": 0, "ifHCOutOctets": 0,
       "ifInErrors": 0, "ifOutErrors": 0, "ifInDiscards": 0, "ifOutDiscards": 0}
IF3 = {**IF2, "ifName": "Gi0/2", "ifDescr": "GigabitEthernet0/2", "ifAdminStatus": 2}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[peers.Simulator]:
    recs = {"router": peers.router_record(500_000, {1: IF1, 2: IF2, 3: IF3})}
    with peers.snmpsim(tmp_path_factory.mktemp("snmpsim"), recs) as s:
        yield s


def v2c(**kw: object) -> snmp.Config:
    return snmp.Config(community=COMMUNITY_SECRET, **kw)  # type: ignore[arg-type]


def v3(**kw: object) -> snmp.Config:
    base: dict[str, object] = {"v3_user": peers.V3_USER, "auth_key": peers.V3_AUTH, "priv_key": peers.V3_PRIV}
    return snmp.Config(**{**base, **kw})  # type: ignore[arg-type]


async def poll(target: str, cfg: snmp.Config, timeout: float = 3.0,  # noqa: ASYNC109 - the probe's budget
               memory: dict[str, object] | None = None) -> ProbeResult:
    ctx = ProbeContext(timeout=timeout)
    if memory is not None:
        ctx.memory = memory
    return await snmp.run(target, cfg, ctx)


def no_secret(r: ProbeResult, *secrets: str) -> None:
    text = r.message + " ".join(f"{s.name}{s.labels}" for s in r.samples)
    for secret in secrets:
        assert secret not in text


# -- pure maths ------------------------------------------------------------------------------------


def test_counter_delta_wraps_at_width() -> None:
    assert snmp.counter_delta(10, 25, 32) == 15
    assert snmp.counter_delta(2**32 - 5, 10, 32) == 15
    assert snmp.counter_delta(2**64 - 1_000, 500, 64) == 1_500
    assert snmp.counter_delta(7, 7, 64) == 0


def test_reboot_is_uptime_backwards_but_not_a_ticks_wrap() -> None:
    assert not snmp.rebooted(1000, 4000, 30)
    assert snmp.rebooted(500_000, 1_000, 30)
    assert not snmp.rebooted(2**32 - 1_000, 2_000, 30)  # TimeTicks wrapped after 497 days
    assert snmp.rebooted(2**32 - 1_000_000, 2_000, 30)  # far from the wrap: a reboot


def test_rate_and_utilisation() -> None:
    assert snmp.rate(300, 30) == 10
    assert snmp.rate(1, 0) is None
    assert snmp.utilisation(50_000_000, 100) == 0.5
    assert snmp.utilisation(1, 0) is None


def test_derived_rates_from_two_polls() -> None:
    labels = (("ifIndex", "1"), ("ifName", "x"), ("ifDescr", "x"))
    row = snmp.Row(1, "x", "x", {"ifHCInOctets": 1_250_000, "ifHCOutOctets": 10, "ifHighSpeed": 10,
                                 "ifInErrors": 20, "ifOutErrors": 0, "ifInDiscards": 4, "ifOutDiscards": 0})
    prev = {1: {"ifHCInOctets": 0, "ifHCOutOctets": 2**64 - 10, "ifInErrors": 0, "ifOutErrors": 0,
                "ifInDiscards": 0, "ifOutDiscards": 0}}
    got = {(s.name, s.labels): s.value for s in snmp.derived([row], prev, 10.0)}
    assert got[("wardwatch_snmp_if_in_bits_per_second", labels)] == 1_000_000
    assert got[("wardwatch_snmp_if_out_bits_per_second", labels)] == 16.0  # 20 octets across the wrap
    assert got[("wardwatch_snmp_if_utilisation_ratio", (*labels, ("direction", "in")))] == 0.1
    assert got[("wardwatch_snmp_if_errors_per_second", (*labels, ("direction", "in"), ("kind", "errors")))] == 2
    assert got[("wardwatch_snmp_if_errors_per_second", (*labels, ("direction", "in"), ("kind", "discards")))] == 0.4
    assert snmp.derived([row], {}, 10.0) == []


def test_every_snmp_series_is_documented() -> None:
    names = set(snmp.EXPORTED)
    assert not sorted(n for n in names if n not in METRICS)
    assert METRICS["ifHCInOctets"][0] == "counter" and METRICS["ifOperStatus"][0] == "gauge"


def test_config_needs_one_credential_source() -> None:
    with pytest.raises(ValueError, match="community"):
        snmp.Config()
    with pytest.raises(ValueError, match="only one"):
        snmp.Config(community="x", community_env="Y")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="privacy key needs an authentication"):
        snmp.Config(v3_user="u", priv_key="p")  # type: ignore[arg-type]
    assert snmp.Config(v3_user="u").effective_version == "3"
    assert "s3cr3t" not in repr(snmp.Config(community="s3cr3t"))  # type: ignore[arg-type]


# -- snmpd: a live agent ---------------------------------------------------------------------------


async def test_v2c_uptime_and_loopback_interface(agent: peers.Agent) -> None:
    r = await poll(agent.target, v2c(interfaces=("lo",)))
    assert r.success, r.message
    assert (r.value("sysUpTime") or 0) > 0
    lo = {"ifIndex": "1", "ifName": "lo", "ifDescr": "lo"}
    assert r.value("ifOperStatus", **lo) == 1 and r.value("ifAdminStatus", **lo) == 1
    assert r.value("ifHCInOctets", **lo) is not None and r.value("ifHighSpeed", **lo) is not None
    assert r.value("ifInErrors", **lo) == 0
    assert r.value("wardwatch_snmp_reboot_detected") is None  # first poll: nothing to compare
    no_secret(r, COMMUNITY_SECRET)


async def test_v3_authpriv_sha_aes(agent: peers.Agent) -> None:
    r = await poll(agent.target, v3(interfaces=("1",)))
    assert r.success, r.message
    assert r.value("ifOperStatus", ifName="lo") == 1
    no_secret(r, peers.V3_AUTH, peers.V3_PRIV)


async def test_v3_keys_from_env_and_file(agent: peers.Agent, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "auth").write_text(peers.V3_AUTH + "\n")
    monkeypatch.setenv("WW_TEST_PRIV", peers.V3_PRIV)
    cfg = snmp.Config(v3_user=peers.V3_USER, auth_key_file=str(tmp_path / "auth"), priv_key_env="WW_TEST_PRIV")
    r = await poll(agent.target, cfg)
    assert r.success, r.message
    missing = await poll(agent.target, snmp.Config(community_env="WW_TEST_UNSET_COMMUNITY"))
    assert missing.reason is Reason.SNMP_CREDENTIALS and "WW_TEST_UNSET_COMMUNITY" in missing.message


async def test_second_poll_gives_rates(agent: peers.Agent) -> None:
    memory: dict[str, object] = {}
    first = await poll(agent.target, v2c(interfaces=("lo",)), memory=memory)
    second = await poll(agent.target, v2c(interfaces=("lo",)), memory=memory)
    assert first.success and second.success
    assert second.value("wardwatch_snmp_reboot_detected") == 0
    # net-snmp caches interface counters for a few seconds: the rate may be 0, but it is there
    assert second.value("wardwatch_snmp_if_in_bits_per_second", ifName="lo") is not None
    assert second.value("wardwatch_snmp_if_utilisation_ratio", ifName="lo", direction="out") is not None


async def test_wrong_community_is_a_quick_timeout(agent: peers.Agent) -> None:
    start = time.monotonic()
    r = await poll(agent.target, snmp.Config(community="not-the-community"), timeout=0.6)  # type: ignore[arg-type]
    assert r.reason is Reason.SNMP_TIMEOUT
    assert "wrong community" in r.message
    assert time.monotonic() - start < 1.0
    no_secret(r, "not-the-community")


async def test_wrong_v3_key_is_an_auth_error(agent: peers.Agent) -> None:
    r = await poll(agent.target, v3(auth_key="not-the-auth-key"))
    assert r.reason is Reason.SNMP_AUTH_ERROR, r.message
    no_secret(r, "not-the-auth-key", peers.V3_PRIV)
    unknown = await poll(agent.target, v3(v3_user="nobody"))
    assert unknown.reason is Reason.SNMP_AUTH_ERROR, unknown.message


async def test_missing_interface_is_no_such_object(agent: peers.Agent) -> None:
    r = await poll(agent.target, v2c(interfaces=("no-such-if0",)))
    assert r.reason is Reason.SNMP_NO_SUCH_OBJECT and "no-such-if0" in r.message
    by_index = await poll(agent.target, v2c(interfaces=("4242",)))
    assert by_index.reason is Reason.SNMP_NO_SUCH_OBJECT and "4242" in by_index.message


def test_check_cli_against_snmpd(agent: peers.Agent, tmp_path: Path) -> None:
    (tmp_path / "K").write_text(peers.V3_AUTH)
    (tmp_path / "P").write_text(peers.V3_PRIV)
    base = [sys.executable, "-m", "monitor", "check", "snmp", agent.target, "--timeout", "3", "--json"]
    one = subprocess.run([*base, "--community", COMMUNITY_SECRET, "--interface", "lo"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert one.returncode == 0, one.stderr
    # a literal secret works, with a warning that argv is readable by every local user (and no echo of it)
    assert "--community puts the secret on the command line" in one.stderr and "--community-file" in one.stderr
    assert COMMUNITY_SECRET not in one.stdout + one.stderr
    out = json.loads(one.stdout)
    assert out["success"] and out["metrics"]['ifOperStatus{ifIndex="1",ifName="lo",ifDescr="lo"}'] == 1
    three = subprocess.run(
        [*base, "--v3-user", peers.V3_USER, "--auth-protocol", "sha", "--auth-key-file", str(tmp_path / "K"),
         "--priv-protocol", "aes", "--priv-key-file", str(tmp_path / "P"), "--interface", "lo"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert three.returncode == 0, three.stdout + three.stderr
    assert peers.V3_AUTH not in three.stdout + three.stderr


# -- snmpsim: a router whose counters we move ----------------------------------------------------------


async def test_router_rates_wrap_and_reboot(sim: peers.Simulator) -> None:
    cfg = snmp.Config(community="router", interfaces=("Gi0/0", "GigabitEthernet0/2"))  # type: ignore[arg-type]
    memory: dict[str, object] = {}
    first = await poll(sim.target, cfg, memory=memory)
    assert first.success, first.message  # Gi0/2 is admin-down: not a failure
    assert first.value("ifHighSpeed", ifName="Gi0/0") == 100
    t1 = memory["at"]

    moved = {**IF1, "ifHCInOctets": 1_000_000 + 12_500_000, "ifHCOutOctets": 1_500,  # wrapped (64 bit)
             "ifInErrors": 30, "ifOutErrors": 5}  # ifOutErrors wrapped (32 bit)
    sim.record("router", peers.router_record(503_000, {1: moved, 2: IF2, 3: IF3}))
    second = await poll(sim.target, cfg, memory=memory)
    assert second.success, second.message
    secs = float(memory["at"]) - float(t1)  # type: ignore[arg-type]
    gi = {"ifName": "Gi0/0"}
    assert second.value("wardwatch_snmp_reboot_detected") == 0
    assert second.value("wardwatch_snmp_if_in_bits_per_second", **gi) == pytest.approx(100_000_000 / secs)
    assert second.value("wardwatch_snmp_if_out_bits_per_second", **gi) == pytest.approx(2_500 * 8 / secs)
    assert second.value("wardwatch_snmp_if_utilisation_ratio", **gi, direction="in") == pytest.approx(1 / secs)
    assert second.value("wardwatch_snmp_if_errors_per_second", **gi, direction="in", kind="errors") == \
        pytest.approx(20 / secs)
    assert second.value("wardwatch_snmp_if_errors_per_second", **gi, direction="out", kind="errors") == \
        pytest.approx(10 / secs)

    sim.record("router", peers.router_record(2_000, {1: {**IF1, "ifHCInOctets": 5}, 2: IF2, 3: IF3}))
    third = await poll(sim.target, cfg, memory=memory)
    assert third.success, third.message
    assert third.value("wardwatch_snmp_reboot_detected") == 1
    assert third.value("wardwatch_snmp_if_in_bits_per_second", **gi) is None  # no rate across a reboot
    fourth = await poll(sim.target, cfg, memory=memory)
    assert fourth.value("wardwatch_snmp_reboot_detected") == 0
    assert fourth.value("wardwatch_snmp_if_in_bits_per_second", **gi) == 0


async def test_oper_down_while_admin_up_fails(sim: peers.Simulator) -> None:
    r = await poll(sim.target, snmp.Config(community="router", interfaces=("Gi0/1",)))  # type: ignore[arg-type]
    assert r.reason is Reason.SNMP_INTERFACE_DOWN and "Gi0/1" in r.message
    assert r.value("ifOperStatus", ifName="Gi0/1") == 2  # observations kept on failure


async def test_unknown_community_on_simulator_times_out(sim: peers.Simulator) -> None:
    r = await poll(sim.target, snmp.Config(community="no-such-device"), timeout=0.4)  # type: ignore[arg-type]
    assert r.reason is Reason.SNMP_TIMEOUT


# -- bad agents --------------------------------------------------------------------------------------


async def test_silent_agent_times_out_without_stalling_others(agent: peers.Agent) -> None:
    with peers.udp_peer(None) as (host, port, received):
        start = time.monotonic()
        silent, good = await asyncio.gather(
            poll(f"{host}:{port}", v2c(retries=2), timeout=0.8),
            poll(agent.target, v2c(interfaces=("lo",)), timeout=3),
        )
        assert silent.reason is Reason.SNMP_TIMEOUT
        assert good.success and good.duration_seconds < 0.5
        assert time.monotonic() - start < 1.2
        assert len(received) == 3  # first try + 2 retries, all within the timeout


async def test_garbage_replies_give_a_reason(agent: peers.Agent) -> None:
    for junk in (b"\x00garbage\xff" * 5, b"\x30\x03\x02\x01\x01", b"\x30\x82\xff\xff"):
        with peers.udp_peer(junk) as (host, port, received):
            r = await poll(f"{host}:{port}", v2c(), timeout=0.5)
            assert not r.success and r.reason in (Reason.SNMP_TIMEOUT, Reason.SNMP_ERROR), r
            assert received
    after = await poll(agent.target, v2c())
    assert after.success  # the shared engine survived


async def test_exposition_parses_and_only_lints_like_snmp_exporter(sim: peers.Simulator) -> None:
    from monitor.exporter import render_samples
    from tests.peers.promtool import check_metrics

    cfg = snmp.Config(community="router", interfaces=("1",))  # type: ignore[arg-type]
    memory: dict[str, object] = {}
    await poll(sim.target, cfg, memory=memory)
    r = await poll(sim.target, cfg, memory=memory)
    text = render_samples(r.samples)
    assert "# TYPE ifHCInOctets counter" in text and "# TYPE ifOperStatus gauge" in text
    assert 'wardwatch_snmp_if_utilisation_ratio{ifIndex="1",ifName="Gi0/0",ifDescr="GigabitEthernet0/0",' \
           'direction="in"}' in text
    code, out = check_metrics(text)
    # Parsed; what remains are promtool's naming lints: camelCase and counters without _total
    # (snmp_exporter's own if_mib output gets the same), and "bytes, not bits" for the
    # *_bits_per_second gauges (bits are what network operators read; named as asked).
    allowed = ("snake_case", '"_total" suffix', 'use base unit "bytes" instead of "bits"')
    lints = [line for line in out.splitlines() if line.strip()]
    assert code in (0, 3) and all(any(a in line for a in allowed) for line in lints), out
