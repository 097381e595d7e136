"""Scale-out and high availability, end to end with real components:

* an 8-unit lab;
* three ``wardwatch run --shard i/3 --replicas 2 --vantage site-i`` instances, each pushing its
  built-in alerts to both Alertmanagers;
* a real Prometheus scraping all three with the shipped rules (alerts/rules/wardwatch.yml, every
  `for:` scaled by 2/30 as in tests/test_prometheus_path.py) and alerting to both Alertmanagers;
* a 2-node Alertmanager cluster peered over gossip on loopback, running the example configuration
  plus one route that sends the built-in engine's pushes (they carry ``alert_id``) to their own
  webhook path, so each path's notifications can be counted apart;
* one webhook receiver.

Scenarios: kill one wardwatch -> every inventory target is still probed; cut a unit's link ->
exactly one notification per path; kill one Alertmanager -> another cut still gives exactly one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from monitor import cli
from monitor.inventory import load_inventory
from monitor.lab.config import LabConfig, Ports, Timing
from monitor.lab.runner import Lab
from monitor.placement import owners, unit_key
from tests.peers import prometheus as prom
from tests.peers.alertmanager import (
    EXAMPLE,
    Cluster,
    Notification,
    alertmanager,
    cluster_peers,
    render_config,
    webhook_receiver,
)
from tests.peers.proc import free_port
from tests.peers.wardwatch import Wardwatch, wardwatch_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

UNITS = 8
N, R = 3, 2
PROBE_INTERVAL = 2.0
SCALE = PROBE_INTERVAL / 30.0
# Units of an 8-unit lab with no built-in fault that pages (monitor/lab/imperfections.py: 0-2
# only have certificates expiring within weeks, 7 none); a link cut there is the only page.
QUIET_UNITS = (7, 0, 1, 2)
PEER_TIMEOUT = 2.0  # Alertmanager's --cluster.peer-timeout here
# After a first notification, how long a duplicate could still come: the second peer's wait
# (one peer timeout), a group_interval (2 s), a replica's later push (one probe round + re-check),
# with room for a loaded machine.
QUIET = PEER_TIMEOUT + 2.0 + PROBE_INTERVAL + 4.0


def am_config(hook: str) -> str:
    """The example configuration (timers shortened), with the built-in pushes on their own route."""
    cfg = yaml.safe_load(render_config(EXAMPLE, hook))
    cfg["route"]["routes"].insert(0, {
        "receiver": "builtin", "matchers": ['alert_id=~".+"'], "group_wait": "1s", "group_interval": "2s",
    })
    cfg["receivers"].append({"name": "builtin", "webhook_configs": [{"url": f"{hook}/hooks/builtin"}]})
    return yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False)


def alerting_yaml(am_urls: list[str]) -> str:
    receivers = "\n".join(f'    am{i}: {{type: alertmanager, url: "{u}"}}' for i, u in enumerate(am_urls, 1))
    names = ", ".join(f"am{i}" for i in range(1, len(am_urls) + 1))
    return f"""
alerting:
  receivers:
{receivers}
  default_receivers: [{names}]
  delivery: {{backoff_initial: 0.5s, backoff_max: 2s, tick: 0.5s, alertmanager_resend: 1m}}
"""


async def _poll(what: str, check: Callable[[], Any], within: float, every: float = 0.3) -> Any:
    """Await an external state (a process, Prometheus) that has no event to await: poll with a
    deadline; ``check`` returns a truthy result when done."""
    last: Any = None
    try:
        async with asyncio.timeout(within):
            while True:
                last = await check()
                if last:
                    return last
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {within:g} s (last: {last!r})") from None


async def _get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        resp.raise_for_status()
        return await resp.json()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


async def test_fleet_survives_a_lost_wardwatch_and_a_lost_alertmanager(tmp_path: Path) -> None:
    lab = Lab(LabConfig(
        directory=tmp_path / "lab", units=UNITS,
        ports=Ports(https=0, http=0, smtp=0, vc=0, dns=0, control=0),
        timing=Timing(interval=PROBE_INTERVAL, timeout=0.5, rechecks=1, recheck_spacing=0.3),
        nft_table=f"wardwatch_ha_test_{os.getpid()}", flap_period=1.0, snmp=False,
    ))
    await lab.start()
    try:
        async with webhook_receiver() as hook, contextlib.AsyncExitStack() as stack:
            await _run(tmp_path, lab, hook, stack)
    finally:
        await lab.stop()


async def _run(tmp: Path, lab: Lab, hook: Any, stack: contextlib.AsyncExitStack) -> None:
    inv = load_inventory(lab.inventory_path)
    keys = {t.key for t in inv.targets}
    # Placement is by unit (monitor/placement.py): a unit's link and its children on the same two.
    owners_of = {t.key: set(owners(unit_key(t.unit_code), range(1, N + 1), R)) for t in inv.targets}

    # Which wardwatch to kill, and which units to cut: units whose link both survivors probe, so
    # the same incident really comes from two replicas.
    def link_owners(i: int) -> set[int]:
        code = lab.units[i].code
        return set().union(*(owners_of[t.key] for t in inv.targets if t.unit_code == code and t.service == "link"))

    killed = max(range(1, N + 1), key=lambda k: sum(k not in link_owners(i) for i in QUIET_UNITS))
    cut_units = sorted(QUIET_UNITS, key=lambda i: killed in link_owners(i))[:2]
    codes = [str(lab.units[i].code) for i in cut_units]

    # -- the Alertmanager cluster ---------------------------------------------------------------
    gossip, web = [free_port(), free_port()], [free_port(), free_port()]
    cfg = am_config(hook.url)
    ams = [
        stack.enter_context(alertmanager(
            tmp / f"am{i + 1}", cfg, port=web[i],
            cluster=Cluster(gossip[i], [gossip[1 - i]], peer_timeout=f"{PEER_TIMEOUT:g}s"),
        ))
        for i in range(2)
    ]

    async def peered() -> bool:
        return all([len(await cluster_peers(am.url)) == 2 for am in ams])

    await _poll("the two Alertmanagers see each other", peered, 20)

    # -- three wardwatch instances, each target probed by two ------------------------------------
    inventory = tmp / "inventory.yaml"
    inventory.write_text(lab.inventory_path.read_text() + alerting_yaml([am.url for am in ams]))
    wws: list[Wardwatch] = []
    for i in range(1, N + 1):
        wws.append(await stack.enter_async_context(wardwatch_run(
            tmp / f"ww{i}", inventory,
            extra=("--shard", f"{i}/{N}", "--replicas", str(R), "--vantage", f"site-{i}"),
        )))
    index_of = {w.listen: i for i, w in enumerate(wws, 1)}

    rules = [p for p in prom.render_rules(tmp / "rules", scale=SCALE) if p.name == "wardwatch.yml"]
    p = stack.enter_context(prom.prometheus(tmp / "prom", prom.config(
        scrape_targets=[w.listen for w in wws], alertmanagers=[f"127.0.0.1:{am.port}" for am in ams],
        rule_files=rules, scrape_interval="1s", evaluation_interval="1s",
    )))

    # Prometheus sees every target from exactly the two instances rendezvous hashing chose.
    async def placed() -> dict[str, set[int]]:
        seen: dict[str, set[int]] = {}
        for s in await prom.query(p.url, "wardwatch_target_state"):
            m = s["metric"]
            seen.setdefault(f"{m['unit_code']}/{m['service']}/{m['probe']}/{m['target']}", set()).add(
                index_of[m["instance"]])
        return seen if seen == owners_of else {}

    await _poll("every target scraped from its two owners", placed, 30)
    info = await prom.query(p.url, "wardwatch_instance_info")
    assert sorted((s["metric"]["shard"], s["metric"]["replicas"], s["metric"]["vantage"]) for s in info) == [
        (f"{i}/{N}", str(R), f"site-{i}") for i in range(1, N + 1)
    ]
    shares = {i: sum(i in o for o in owners_of.values()) for i in range(1, N + 1)}
    assert sum(shares.values()) == R * len(keys) and all(shares.values()), shares

    # -- 1. kill one wardwatch: every target is still probed --------------------------------------
    dead = wws[killed - 1]
    alive = [w for w in wws if w is not dead]
    _kill(dead.pid)
    killed_at = datetime.now(UTC)

    async def still_probed() -> bool:
        fresh: set[str] = set()
        for w in alive:
            for row in await _get_json(w.url + "/api/v1/targets"):
                if row["last_probe"] and datetime.fromisoformat(row["last_probe"].replace("Z", "+00:00")) > killed_at:
                    fresh.add(row["key"])
        return fresh == keys

    await _poll("every inventory target probed after the kill", still_probed, 3 * PROBE_INTERVAL + 10)

    async def prometheus_agrees() -> bool:
        up = {s["metric"]["instance"]: s["value"][1] for s in await prom.query(p.url, 'up{job="wardwatch"}')}
        n = await prom.query(p.url, "count(count by (unit_code, service, probe, target) (wardwatch_target_state))")
        return up.get(dead.listen) == "0" and bool(n) and int(n[0]["value"][1]) == len(keys)

    await _poll("Prometheus: the instance down, every target still there", prometheus_agrees, 15)

    # -- 2. a link cut: one notification per path ------------------------------------------------
    await _incident(lab, hook, p.url, codes[0])

    # Restore it, and wait until every replica sees the unit whole again: with two of eight units
    # cut at once, a third of an instance's targets would fail and read as the monitor's own
    # uplink failing (WardwatchMonitoringDegraded, which holds back every page).
    assert await asyncio.to_thread(
        cli.main, ["lab", "fault", codes[0], "link", "restore", "--lab-dir", str(lab.dir)]) == 0

    async def whole_again() -> bool:
        got = await prom.query(p.url, f'wardwatch_target_state{{unit_code="{codes[0]}"}} != 1')
        degraded = await prom.query(p.url, "wardwatch:monitor_degraded")
        return not got and not degraded

    await _poll(f"unit {codes[0]} up again from every replica", whole_again, 30)

    # -- 3. kill one Alertmanager: another cut is still one notification per path ----------------
    _kill(ams[0].pid)
    await _poll("the survivor's gossip drops the dead peer",
                lambda: _peer_count_is(ams[1].url, 1), 30)
    await _incident(lab, hook, p.url, codes[1])
    print(f"killed ww{killed} (owners of the cut links: {[sorted(link_owners(i)) for i in cut_units]}); "
          f"per-instance shares {shares}")


async def _peer_count_is(am_url: str, n: int) -> bool:
    return len(await cluster_peers(am_url)) == n


async def _incident(lab: Lab, hook: Any, prom_url: str, code: str) -> None:
    fault_at = datetime.now(UTC)

    def of_incident(n: Notification) -> bool:
        return any(a["labels"].get("unit_code") == code
                   and datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")) >= fault_at
                   for a in n.alerts)

    def on(path: str) -> Callable[[Notification], bool]:
        return lambda n: n.path == path and of_incident(n)

    mark = len(hook.received)
    t0 = time.monotonic()
    assert await asyncio.to_thread(cli.main, ["lab", "fault", code, "link", "down", "--lab-dir", str(lab.dir)]) == 0
    try:
        rules_page = await hook.next(on("/hooks/network-oncall"), within=40, after=mark)
        builtin_page = await hook.next(on("/hooks/builtin"), within=40, after=mark)
    except TimeoutError:
        got = [(n.path, n.status, [(a["labels"].get("alertname"), a["labels"].get("unit_code"),
                                    a["labels"].get("target"), a["startsAt"]) for a in n.alerts])
               for n in hook.received[mark:]]
        alerts = [(a["labels"], a["state"]) for a in await prom.alerts(prom_url)
                  if a["labels"].get("unit_code") == code]
        raise AssertionError(f"unit {code}: received {got}; Prometheus alerts {alerts}") from None
    took = time.monotonic() - t0
    for page in (rules_page, builtin_page):
        assert page.status == "firing" and page.alertnames == ["WardwatchUnitIsolated"], page.body
    assert "instance" not in rules_page.alerts[0]["labels"]
    assert "alert_id" in builtin_page.alerts[0]["labels"] and "target" not in builtin_page.alerts[0]["labels"]

    # Nothing else about this incident for longer than a duplicate could take to arrive.
    last = max(hook.received.index(rules_page), hook.received.index(builtin_page))
    await hook.none(of_incident, within=QUIET, after=last + 1)
    mine = [(n.path, n.status, n.alertnames) for n in hook.received[mark:] if of_incident(n)]
    # (Not only those two: a page for one of the unit's services would be a second notification.)
    assert sorted(mine) == [
        ("/hooks/builtin", "firing", ["WardwatchUnitIsolated"]),
        ("/hooks/network-oncall", "firing", ["WardwatchUnitIsolated"]),
    ], mine
    # Prometheus holds one alert for it (no instance label), whatever the replicas.
    firing = await prom.query(prom_url, f'ALERTS{{alertname="WardwatchUnitIsolated",unit_code="{code}"}}')
    assert len(firing) == 1, firing
    print(f"unit {code}: link cut -> both notifications in {took:.1f} s")
