"""The lab's DNS server (NSD, a real one: tests/peers/nsd.py) stopped under a running wardwatch.

Each unit has targets that need DNS (its portal by name, a DNS check of its name) and targets
that do not (link and meeting room by address). With the server gone: the service keeps probing
and serving /metrics; exactly the DNS-dependent targets fail, with a DNS reason; and since they
are a large share of every probe round (40 %, over the guard's 30 % and 20 rounds), the alert
engine's global guard (alerts/engine.py) sends one monitoring_degraded page instead of one page
per target. The server back: everything recovers, the one alert resolves, no target pages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.receivers import Receiver
from tests.faults.service import HOOK_KEY, Service, alerting_yaml, unit_yaml, units, until
from tests.faults.toggle import Portals
from tests.peers.nsd import Nsd, nsd_server

pytestmark = pytest.mark.slow

ZONE = "faults.test"
UNITS = units(25)


def zone() -> str:
    # TTL 1 s: the resolver's cache (probes/base.py, which honours TTLs) hides the outage only a second.
    names = "".join(f"u{code} IN A 127.0.0.1\n" for code, *_ in UNITS)
    return (f"$ORIGIN {ZONE}.\n$TTL 1\n@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. ( 1 3600 600 86400 1 )\n"
            f"@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n{names}")


def inventory(nsd: Nsd, portals: Portals, receiver: str) -> str:
    body = ""
    for u in UNITS:
        code = u[0]
        body += unit_yaml(*u, (
            "link: {address: 127.0.0.1}\n"
            f"vc_gov: {{address: 127.0.0.1, tcp_ports: [{portals.port}]}}\n"
            f'portal: {{url: "http://u{code}.{ZONE}:{portals.port}/u/{code}/"}}\n'
            f'checks: [{{service: email, probe: dns, target: "{nsd.address}", query_name: "u{code}.{ZONE}",'
            " query_type: A}]"))
    return (
        f"province: 79\nmonitor: {{dns_servers: [\"{nsd.address}\"]}}\n"
        "defaults: {interval: 2s, timeout: 1s, rechecks: 1, recheck_spacing: 0.3s,"
        " probes: {icmp: {count: 1}}}\n"
        "units:\n" + body + alerting_yaml(receiver)
    )


def _dns_dependent(key: str) -> bool:
    return "/portal/" in key or "/email/dns/" in key


@contextlib.contextmanager
def _nsd(tmp: Path, port: int | None = None) -> Iterator[Nsd]:
    with nsd_server(tmp / "nsd", {ZONE: zone()}, port=port) as nsd:
        yield nsd


@pytest.mark.timeout(150)
async def test_dns_server_stopped(tmp_path: Path) -> None:
    receiver, portals = Receiver(key=HOOK_KEY), Portals()
    await receiver.start()
    await portals.start()
    stack = contextlib.ExitStack()
    nsd = await asyncio.to_thread(stack.enter_context, _nsd(tmp_path))
    inv = tmp_path / "inventory.yaml"
    inv.write_text(inventory(nsd, portals, receiver.url))
    svc = Service(tmp_path, inv, tmp_path / "wardwatch.db")
    try:
        await svc.start()

        async def all_up() -> bool:
            return all(r["state"] == "up" for r in (await svc.states()).values())

        await until("every target up", all_up, 30)
        assert receiver.requests == []

        await asyncio.to_thread(stack.close)  # NSD stopped (SIGTERM, then gone)

        async def dns_failing() -> dict[str, Any] | None:
            rows = await svc.states()
            dep = {k: r for k, r in rows.items() if _dns_dependent(k)}
            if all(r["state"] == "down" for r in dep.values()):
                return rows
            return None

        rows = await until("every DNS-dependent target down", dns_failing, 30)
        dep = {k: r for k, r in rows.items() if _dns_dependent(k)}
        assert len(dep) == 2 * len(UNITS)
        # Names: a DNS reason (a plain 'timeout' before the fix in probes/base.py timeout_reason).
        by_name = {r["reason"] for k, r in dep.items() if "/portal/" in k}
        assert by_name and by_name <= {"dns_servfail", "dns_timeout"}, by_name
        # The DNS checks ask the server itself: its port answers "unreachable", i.e. refused.
        assert {r["reason"] for k, r in dep.items() if "/email/dns/" in k} == {"refused"}
        assert all(r["state"] == "up" for k, r in rows.items() if not _dns_dependent(k)), "only DNS fails"
        text = await svc.metrics()  # /metrics goes on, and shows the DNS reason
        assert 'wardwatch_target_failure_reason_info{' in text and 'reason="dns_' in text

        def got(kind: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
            return [b for b in (r.json() for r in receiver.requests)
                    if kind in (None, b["alert"]["kind"]) and event in (None, b["event"])]

        async def degraded() -> list[dict[str, Any]]:
            return got("monitoring_degraded", "firing")

        await until("monitoring_degraded", degraded, 20)
        await asyncio.sleep(4)  # two more rounds of failures: still that one page
        assert [(b["alert"]["kind"], b["event"]) for b in got()] == [("monitoring_degraded", "firing")]

        nsd = await asyncio.to_thread(stack.enter_context, _nsd(tmp_path, nsd.port))
        await until("every target up again", all_up, 30)

        async def resolved() -> list[dict[str, Any]]:
            return got("monitoring_degraded", "resolved")

        await until("monitoring_degraded resolved", resolved, 30)
        await asyncio.sleep(3)
        assert [(b["alert"]["kind"], b["event"]) for b in got()] == [
            ("monitoring_degraded", "firing"), ("monitoring_degraded", "resolved")]
        assert await svc.stop() == 0
    finally:
        await svc.stop()
        await asyncio.to_thread(stack.close)
        await receiver.stop()
        await portals.stop()
