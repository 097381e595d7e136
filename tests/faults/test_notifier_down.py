"""The notifier down, beyond what tests/alerts/test_acceptance.py covers (connection refused
during an incident, then back; SIGKILL with a pending page) and tests/alerts/test_outbox.py
(503 retried and 4xx given up, in-process): here a real wardwatch process and a receiver that

1. hangs (accepts the request, never answers) while a whole incident happens, firing and
   resolution: each delivery times out and is retried, probing and /metrics go on;
2. is still hanging when wardwatch is stopped: the stop is clean and prompt, the rows stay;
3. answers 503 to the restarted wardwatch: retried again;
4. is back: the firing and then the resolution arrive, each exactly once, in that order.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.receivers import Receiver
from tests.faults.service import HOOK_KEY, Service, alerting_yaml, unit_yaml, units, until
from tests.faults.toggle import Portals

pytestmark = pytest.mark.slow

UNITS = units(3)
CODE = UNITS[0][0]


def inventory(portals: Portals, receiver: str) -> str:
    return (
        "province: 79\n"
        "defaults: {interval: 1s, timeout: 0.5s, rechecks: 1, recheck_spacing: 0.2s,"
        " probes: {icmp: {count: 1}}}\n"
        "units:\n"
        + "".join(unit_yaml(*u, f'link: {{address: 127.0.0.1}}\nportal: {{url: "{portals.url(u[0])}"}}')
                  for u in UNITS)
        + alerting_yaml(receiver)
    )


@pytest.mark.timeout(150)
async def test_receiver_hanging_then_503_then_back(tmp_path: Path) -> None:
    receiver, portals = Receiver(key=HOOK_KEY), Portals()
    await receiver.start()
    await portals.start()
    inv = tmp_path / "inventory.yaml"
    inv.write_text(inventory(portals, receiver.url))
    svc = Service(tmp_path, inv, tmp_path / "wardwatch.db")
    try:
        await svc.start()

        async def mine() -> list[dict[str, Any]]:
            notes = (await svc.api("/api/v1/alerts?limit=100"))["notifications"]
            return [n for n in notes if n["unit_code"] == CODE and n["kind"] == "target_down"]

        receiver.hold()
        portals.down.add(CODE)

        async def firing_tried() -> bool:
            return any(n["event"] == "firing" and n["attempts"] >= 1 and n["status"] == "pending"
                       for n in await mine())

        await until("the page tried and timed out", firing_tried, 20)
        assert receiver.held >= 1 and receiver.requests == []
        portals.down.discard(CODE)

        async def both_pending() -> list[dict[str, Any]]:
            notes = await mine()
            ok = sorted(n["event"] for n in notes if n["status"] == "pending") == ["firing", "resolved"]
            return notes if ok else []

        notes = await until("firing and resolution both pending", both_pending, 30)
        # In order: the resolution waits behind the page that keeps timing out.
        assert all("timed out" in n["last_error"] or (n["event"], n["attempts"]) == ("resolved", 0)
                   for n in notes), notes
        first = {k: r["last_probe"] for k, r in (await svc.states()).items()}
        await asyncio.sleep(1.5)
        assert all(r["last_probe"] != first[k] for k, r in (await svc.states()).items()), "probing stalled"
        assert "wardwatch_target_state{" in await svc.metrics()

        t = time.monotonic()
        assert await svc.stop() == 0  # a delivery hanging does not hold the stop
        assert time.monotonic() - t < 10

        receiver.release()
        receiver.down = True  # 503 from now on
        await svc.start()

        async def retried_503() -> bool:
            notes = {n["event"]: n for n in await mine()}
            f, r = notes["firing"], notes["resolved"]
            return (f["status"] == r["status"] == "pending" and "HTTP 503" in f["last_error"]
                    and f["attempts"] >= 3)

        await until("deliveries answered 503 and kept", retried_503, 20)
        assert receiver.requests == []

        receiver.down = False

        def got() -> list[tuple[str, str]]:
            return [(b["alert"]["kind"], b["event"]) for b in (r.json() for r in receiver.requests)
                    if b["alert"]["unit_code"] == CODE]

        async def both() -> bool:
            return len(got()) >= 2

        await until("firing and resolution delivered", both, 20)
        await asyncio.sleep(2)  # no repeat comes after them
        assert got() == [("target_down", "firing"), ("target_down", "resolved")]
        keys = [r.json()["dedup_key"] for r in receiver.requests]
        assert len(keys) == len(set(keys)) and receiver.bad_signatures == 0
        assert all(n["status"] == "delivered" for n in await mine())
    finally:
        await svc.stop()
        await receiver.stop()
        await portals.stop()
