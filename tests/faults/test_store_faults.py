"""The store on a file system that fills up, and on one that turns read-only, under a running
wardwatch (a private mount namespace per test: tests/faults/mountns.py).

Expected of wardwatch (monitor/engine.py ``_store_failed``, monitor/store.py, alerts/service.py):
probing goes on and /metrics keeps serving; one storage_degraded alert goes out by the direct
path (no store needed); the time the store could not record is UNKNOWN (outside coverage);
nothing acknowledged (committed state changes, outbox rows) is lost, and when space comes back
the store continues in the same process.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.receivers import Receiver
from tests.faults import storecheck
from tests.faults.mountns import MountNs
from tests.faults.service import HOOK_KEY, Service, alerting_yaml, unit_yaml, units, until
from tests.faults.toggle import Portals

pytestmark = pytest.mark.slow

UNITS = units(5)
CODES = [u[0] for u in UNITS]


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


def _got(receiver: Receiver, kind: str, event: str, code: int | None = None) -> list[dict[str, Any]]:
    out = []
    for r in receiver.requests:
        b = r.json()
        if b["alert"]["kind"] == kind and b["event"] == event and (code is None or b["alert"]["unit_code"] == code):
            out.append(b)
    return out


async def _probing_goes_on(svc: Service) -> None:
    """Every target is probed again (last_probe moves), and /metrics answers."""
    first = {k: r["last_probe"] for k, r in (await svc.states()).items()}

    async def moved() -> bool:
        return all(r["last_probe"] != first[k] for k, r in (await svc.states()).items())

    await until("every target probed again", moved, 10)
    assert "wardwatch_target_state{" in await svc.metrics()


async def _state(svc: Service, code: int, want: str) -> None:
    async def check() -> bool:
        return all(r["state"] == want for k, r in (await svc.states(code)).items() if "/portal/" in k)

    await until(f"unit {code}'s portal {want}", check, 15)


async def _store_errors(svc: Service) -> float:
    for line in (await svc.metrics()).splitlines():
        if line.startswith("wardwatch_store_errors_total "):
            return float(line.split()[1])
    raise AssertionError("no wardwatch_store_errors_total")


def _check_history(svc: Service, db: Path) -> None:
    assert storecheck.integrity(db) == "ok"
    stored = storecheck.stored_changes(db)
    logged = storecheck.logged_changes(svc.log_records())
    assert logged, "no state change logged"
    assert stored == logged, f"store {stored}\nlogged {logged}"


@pytest.mark.timeout(150)
async def test_full_file_system(tmp_path: Path) -> None:
    mnt = tmp_path / "store"
    mnt.mkdir()
    receiver, portals = Receiver(key=HOOK_KEY), Portals()
    await receiver.start()
    await portals.start()
    with MountNs() as ns:
        ns.run("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt))
        inv = tmp_path / "inventory.yaml"
        inv.write_text(inventory(portals, receiver.url))
        db = mnt / "wardwatch.db"
        svc = Service(tmp_path, inv, db, prefix=ns.enter)
        try:
            await svc.start()
            a, b = CODES[0], CODES[1]
            # An incident before the fault: its page goes through the outbox and is marked delivered.
            portals.down.add(a)
            await until("unit a's page", lambda: _aw(_got(receiver, "target_down", "firing", a)), 20)

            async def delivered() -> bool:
                notes = (await svc.api("/api/v1/alerts?limit=100"))["notifications"]
                return any(n["status"] == "delivered" and n["unit_code"] == a for n in notes)

            await until("the page marked delivered", delivered, 10)
            before = await _store_errors(svc)

            # The file system fills up.
            ns.run("sh", "-c", f"dd if=/dev/zero of={mnt}/filler bs=16k 2>/dev/null; df -k {mnt}", check=False)
            full_at = time.time()
            portals.down.discard(a)  # a recovers and b goes down while nothing can be written
            portals.down.add(b)
            await until("storage_degraded", lambda: _aw(_got(receiver, "storage_degraded", "firing")), 30)
            await _state(svc, b, "down")
            await _state(svc, a, "up")
            await _probing_goes_on(svc)
            assert await _store_errors(svc) > before
            await until("b's page (direct path)", lambda: _aw(_got(receiver, "target_down", "firing", b)), 20)
            blind_at = time.time()
            await asyncio.sleep(1.5)  # a heartbeat or more fails meanwhile

            # Space comes back: the same process goes on writing.
            ns.run("rm", "-f", str(mnt / "filler"))
            back_at = time.time()
            await until("storage_degraded resolved", lambda: _aw(_got(receiver, "storage_degraded", "resolved")), 30)
            portals.down.discard(b)
            await until("b's resolution", lambda: _aw(_got(receiver, "target_down", "resolved", b)), 20)
            await asyncio.sleep(2.5)  # heartbeats after the recovery
            assert len(_got(receiver, "storage_degraded", "firing")) == 1
            assert await svc.stop() == 0

            dbx = ns.copy_store(db, tmp_path / "copy")
            _check_history(svc, dbx)
            rows = storecheck.outbox(dbx)
            assert any(r["delivered_at_ms"] for r in rows), rows  # the page acknowledged before the fault
            spans = storecheck.coverage(dbx)
            assert not storecheck.covered(spans, round(blind_at * 1000)), (spans, full_at, blind_at, back_at)
            assert storecheck.covered(spans, round((back_at + 2) * 1000)), (spans, back_at)
        finally:
            await svc.stop()
            ns.run("umount", "-l", str(mnt), check=False)
    await receiver.stop()
    await portals.stop()


async def _aw(value: Any) -> Any:
    return value
