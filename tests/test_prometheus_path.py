"""Prometheus path: a real Prometheus scrapes a real wardwatch probing the lab, evaluates
alerts/rules and sends to a real Alertmanager running the example configuration, which
delivers to a webhook receiver. A unit's link cut is one incident: one notification, then one
"resolved".

Everything runs 15 times faster than the shipped timing: probe interval 2 s (shipped 30 s),
scrape and evaluation 1 s (shipped 15 s), and the rules are rendered from alerts/rules with
every `for:` multiplied by 2/30 (tests/peers/prometheus.py: render_rules). Alertmanager's
group_wait / group_interval are 1 s / 2 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor import cli
from monitor.inventory import load_inventory
from monitor.lab.config import LabConfig, Ports, Timing
from monitor.lab.runner import Lab
from tests.peers import prometheus as prom
from tests.peers.alertmanager import (
    EXAMPLE,
    Alertmanager,
    Notification,
    WebhookReceiver,
    alertmanager,
    render_config,
    webhook_receiver,
)
from tests.peers.wardwatch import wardwatch_run

UNITS = 12  # imperfections sit at 1-4 and 6-9 (monitor/lab/imperfections.py): 0, 5, 10, 11 are clean
PROBE_INTERVAL = 2.0
SCALE = PROBE_INTERVAL / 30.0  # shipped rules assume a 30 s probe interval, 15 s scrape


@dataclass
class Stack:
    lab: Lab
    prom: prom.Prometheus
    am: Alertmanager
    hook: WebhookReceiver


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    lab = Lab(LabConfig(
        directory=tmp_path / "lab", units=UNITS,
        ports=Ports(https=0, http=0, smtp=0, vc=0, dns=0, control=0),
        timing=Timing(interval=PROBE_INTERVAL, timeout=0.5, rechecks=1, recheck_spacing=0.3),
        nft_table=f"wardwatch_prom_test_{os.getpid()}", flap_period=1.0,
        snmp=False,  # routers answer ping only: the link is an icmp target
    ))
    await lab.start()
    try:
        async with webhook_receiver() as hook, wardwatch_run(tmp_path / "ww", lab.inventory_path) as ww:
            # wardwatch.yml only: slo.yml's windows (5 m .. 3 d) are not scaled, and over a TSDB a
            # few seconds old any failure is a huge share of "the last hour" (promtool covers it).
            rules = [p for p in prom.render_rules(tmp_path / "rules", scale=SCALE) if p.name == "wardwatch.yml"]
            with alertmanager(tmp_path / "am", render_config(EXAMPLE, hook.url)) as am:
                cfg = prom.config(scrape_targets=[ww.listen], alertmanagers=[f"127.0.0.1:{am.port}"],
                                  rule_files=rules, scrape_interval="1s", evaluation_interval="1s")
                with prom.prometheus(tmp_path / "prom", cfg) as p:
                    yield Stack(lab, p, am, hook)
    finally:
        await lab.stop()


async def _until(prom_url: str, expr: str, want: int, within: float) -> None:
    """Wait until the instant query returns ``want`` series (Prometheus has no push to await)."""
    got: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(within):
            while True:
                got = await prom.query(prom_url, expr)
                if len(got) == want:
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"{expr}: {len(got)} series, not {want}: {[g['metric'] for g in got]}") from None


def test_rendered_rules_only_shorten_for(tmp_path: Path) -> None:
    import yaml

    [slo, ww] = prom.render_rules(tmp_path, scale=SCALE)
    shipped = yaml.safe_load((prom.RULES / "wardwatch.yml").read_text())
    rendered = yaml.safe_load(ww.read_text())
    for g_s, g_r in zip(shipped["groups"], rendered["groups"], strict=True):
        for r_s, r_r in zip(g_s["rules"], g_r["rules"], strict=True):
            if "for" in r_s:
                assert prom.parse_duration(r_r["for"]) == round(prom.parse_duration(r_s["for"]) * SCALE)
            assert {k: v for k, v in r_s.items() if k != "for"} == {k: v for k, v in r_r.items() if k != "for"}
    assert slo.name == "slo.yml"
    unit_isolated = next(r for g in rendered["groups"] for r in g["rules"] if r.get("alert") == "WardwatchUnitIsolated")
    assert unit_isolated["for"] == "2000ms"


async def test_link_cut_is_one_incident_through_prometheus_and_alertmanager(stack: Stack) -> None:
    lab, hook = stack.lab, stack.hook
    # The last unit (clean). Not one of the first ten: labs share the loopback address plan, so
    # a link fault (nftables drop) injected by another lab on this host cuts the same unit here
    # too, and other tests run 10-unit labs and fault their units.
    unit = lab.units[-1]
    code = str(unit.code)
    inv = load_inventory(lab.inventory_path)
    n_targets = sum(1 for t in inv.targets if t.unit_code == unit.code)
    behind_link = sum(1 for t in inv.targets if t.unit_code == unit.code and t.service != "link"
                      and t.probe != "dns")  # the lab's DNS server is not behind the unit's link

    def of_unit(n: Notification) -> bool:
        return any(a["labels"].get("unit_code") == code for a in n.alerts)

    fault_at: list[datetime] = []

    def of_incident(n: Notification) -> bool:
        """About this unit and started after the fault (Prometheus dates an alert from when it
        went pending), so a notification left over from start-up cannot be mistaken for it."""
        return of_unit(n) and any(
            datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")) >= fault_at[0] for a in n.alerts
        )

    # Prometheus has seen every target of the unit up.
    await _until(stack.prom.url, f'wardwatch_target_state{{unit_code="{code}"}} == 1', n_targets, 30)

    mark = len(hook.received)
    t0 = time.monotonic()
    fault_at.append(datetime.now(UTC))
    assert await asyncio.to_thread(cli.main, ["lab", "fault", code, "link", "down", "--lab-dir", str(lab.dir)]) == 0
    page = await hook.next(of_incident, within=30, after=mark)
    detection = time.monotonic() - t0
    assert page.status == "firing", json.dumps(page.body, ensure_ascii=False)
    assert page.alertnames == ["WardwatchUnitIsolated"], json.dumps(page.body, ensure_ascii=False)
    assert page.path == "/hooks/network-oncall"
    labels = page.alerts[0]["labels"]
    assert labels["unit"] == unit.name and labels["severity"] == "page" and labels["service"] == "link"
    assert "mất kết nối" in page.alerts[0]["annotations"]["summary"]

    # The unit's services are down too (Prometheus sees them), yet nothing else about the unit
    # arrives for longer than a child's `for` (4 s) + group_wait + a scrape and an evaluation.
    # (DOWN, or UNREACHABLE: wardwatch's own state for a target failing behind a down link.)
    await _until(stack.prom.url, f'wardwatch_target_state{{unit_code="{code}",service!="link"}} != 1',
                 behind_link, 20)
    await hook.none(of_incident, within=4 + 1 + 2 + 2, after=mark + 1 + hook.received[mark:].index(page))

    # Restore: exactly one "resolved", for the unit alert.
    mark2 = len(hook.received)
    assert await asyncio.to_thread(cli.main, ["lab", "fault", code, "link", "restore", "--lab-dir", str(lab.dir)]) == 0
    done = await hook.next(of_incident, within=30, after=mark2)
    assert done.status == "resolved" and done.alertnames == ["WardwatchUnitIsolated"], done.body
    await _until(stack.prom.url, f'wardwatch_target_state{{unit_code="{code}"}} == 1', n_targets, 20)
    await hook.none(of_incident, within=2 + 2, after=mark2 + 1 + hook.received[mark2:].index(done))

    mine = hook.matching(of_incident)
    assert [(n.status, n.alertnames) for n in mine] == [
        ("firing", ["WardwatchUnitIsolated"]), ("resolved", ["WardwatchUnitIsolated"])
    ], [n.body for n in mine]
    # Nothing about the unit before the fault either (no false alarm at start-up) ...
    assert all(of_incident(n) for n in hook.matching(of_unit)), [n.body for n in hook.matching(of_unit)]
    # ... and the monitor was never "degraded": one unit of twelve is not a large share.
    assert not hook.matching(lambda n: "WardwatchMonitoringDegraded" in n.alertnames)
    print(f"link cut -> notification: {detection:.1f} s (probe 2 s, scrape/eval 1 s, for x{SCALE:.3f})")
