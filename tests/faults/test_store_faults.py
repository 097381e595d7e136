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
import subprocess
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


def _chain(history: dict[str, list[tuple[str, str]]]) -> None:
    """Each target's stored changes follow on from one another (old = the previous new)."""
    for key, seq in history.items():
        for (_, prev), (old, _) in zip(seq, seq[1:], strict=False):
            assert old == prev, f"{key}: {seq}"


@pytest.mark.timeout(180)
async def test_read_only_file_system(tmp_path: Path) -> None:
    """ext4 on a loop device, mounted errors=remount-ro; the kernel's own error path
    (/sys/fs/ext4/<dev>/trigger_fs_error) turns it read-only under the running service, as a
    failing disk does. tmpfs cannot be used for this: ``mount -o remount,ro`` is refused
    (EBUSY) while SQLite holds its files open for writing, and an ext4 that went read-only on an
    error takes no ``remount,rw`` either: recovery is stop, fsck, mount, start."""
    image, mnt = tmp_path / "ext4.img", tmp_path / "store"
    mnt.mkdir()
    await asyncio.to_thread(_make_ext4, image)
    receiver, portals = Receiver(key=HOOK_KEY), Portals()
    await receiver.start()
    await portals.start()
    with MountNs() as ns:
        ns.run("mount", "-o", "loop,errors=remount-ro", str(image), str(mnt))
        inv = tmp_path / "inventory.yaml"
        inv.write_text(inventory(portals, receiver.url))
        db = mnt / "wardwatch.db"
        svc = Service(tmp_path, inv, db, prefix=ns.enter)
        try:
            await svc.start()
            a, b = CODES[0], CODES[1]
            portals.down.add(a)
            await until("unit a's page", lambda: _aw(_got(receiver, "target_down", "firing", a)), 20)

            async def delivered() -> bool:
                notes = (await svc.api("/api/v1/alerts?limit=100"))["notifications"]
                return any(n["status"] == "delivered" and n["unit_code"] == a for n in notes)

            await until("the page marked delivered", delivered, 10)
            before_fault = storecheck.logged_changes(svc.log_records())

            dev = ns.run("findmnt", "-n", "-o", "SOURCE", str(mnt)).stdout.strip()
            await asyncio.to_thread(_fs_error, dev)
            ro_at = time.time()
            portals.down.add(b)
            await until("storage_degraded", lambda: _aw(_got(receiver, "storage_degraded", "firing")), 30)
            await _state(svc, b, "down")
            await until("b's page (direct path)", lambda: _aw(_got(receiver, "target_down", "firing", b)), 20)
            await _probing_goes_on(svc)
            assert await _store_errors(svc) > 0
            await asyncio.sleep(1.5)
            blind_at = time.time()
            assert len(_got(receiver, "storage_degraded", "firing")) == 1
            assert await svc.stop() == 0, svc.log()[-3000:]  # a clean stop, on a store it cannot write

            # The operator's recovery: unmount, fsck, mount, start on the same store.
            ns.run("umount", str(mnt))
            await asyncio.to_thread(_fsck, image)
            ns.run("mount", "-o", "loop,errors=remount-ro", str(image), str(mnt))
            await svc.start()
            await _state(svc, b, "down")
            portals.down.discard(b)
            portals.down.discard(a)
            await _state(svc, b, "up")
            await _state(svc, a, "up")
            await asyncio.sleep(2.5)  # heartbeats
            assert await svc.stop() == 0

            dbx = ns.copy_store(db, tmp_path / "copy")
            assert storecheck.integrity(dbx) == "ok"
            stored = storecheck.stored_changes(dbx)
            _chain(stored)
            for key, seq in before_fault.items():  # committed before the fault: all kept
                assert stored[key][: len(seq)] == seq, (key, stored[key], seq)
            second_run = [r for r in svc.log_records() if r["ts"] > _iso(blind_at)]
            for key, seq in storecheck.logged_changes(second_run).items():  # after the recovery: all kept
                assert stored[key][-len(seq):] == seq, (key, stored[key], seq)
            assert any(r["delivered_at_ms"] for r in storecheck.outbox(dbx))
            spans = storecheck.coverage(dbx)
            assert not storecheck.covered(spans, round(blind_at * 1000)), (spans, ro_at, blind_at)
            assert len(_got(receiver, "storage_degraded", "firing")) == 1
        finally:
            await svc.stop()
            ns.run("umount", "-l", str(mnt), check=False)
    await receiver.stop()
    await portals.stop()


def _make_ext4(image: Path) -> None:
    with open(image, "wb") as f:
        f.truncate(16 * 2**20)
    mkfs = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True, check=False)
    assert mkfs.returncode == 0, f"mkfs.ext4 (apt-get install e2fsprogs): {mkfs.stderr}"


def _fs_error(dev: str) -> None:
    """ext4's own error path: with errors=remount-ro the file system is read-only from now on."""
    Path(f"/sys/fs/ext4/{Path(dev).name}/trigger_fs_error").write_text("wardwatch fault test\n")


def _fsck(image: Path) -> None:
    fsck = subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True, text=True, check=False)
    assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr  # 1: errors corrected


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
