"""SIGKILL at random moments: a wardwatch watching portals that go down and up on a seeded random
timeline is killed (SIGKILL, no shutdown code) after a random delay and restarted on the same
store, many times over; then it runs to a clean stop with every fault cleared.

Checked after every kill (what the next start opens): ``PRAGMA integrity_check``. At the end:

- state changes neither lost nor duplicated: each target's stored changes form one chain from
  'unknown' (each change's old state is the previous one's new state: a committed change lost,
  or one written twice, breaks it), and each run's stored changes are, per target, the start of
  what that run logged (observed), in order: nothing stored that was not observed, and a change
  missing only where the run was killed before committing it;
- every notification the outbox accepted reached the webhook receiver at least once;
- per alert, the receiver saw one dedup key per transition: firing and resolved alternate (a
  repeat of the same dedup key is the documented at-least-once redelivery, which it can drop;
  a second key for the same incident would be a second page) and nothing is left firing.

Seed: WARDWATCH_FAULTS_SEED (printed; re-run with it to replay a failure's timeline).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.alerts.receivers import Receiver
from tests.faults import storecheck
from tests.faults.service import HOOK_KEY, Service, alerting_yaml, unit_yaml, units, until
from tests.faults.toggle import Portals

pytestmark = pytest.mark.slow

UNITS = units(6)
CODES = [u[0] for u in UNITS]
KILLS = 24


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


async def _toggle(portals: Portals, rnd: random.Random, stop: asyncio.Event) -> None:
    """Portals down and up at random (seeded) moments until told to stop."""
    while not stop.is_set():
        code = rnd.choice(CODES)
        if code in portals.down:
            portals.down.discard(code)
        else:
            portals.down.add(code)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rnd.uniform(0.4, 2.5)):
                await stop.wait()


def _integrity(db: Path) -> str:
    # A read-write open, as the restarted service makes: it recovers the WAL of the killed run.
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as c:
        return str(c.execute("PRAGMA integrity_check").fetchone()[0])


def _changes_by_run(db: Path, bounds: list[tuple[float, float]]) -> list[dict[str, list[tuple[str, str]]]]:
    runs: list[dict[str, list[tuple[str, str]]]] = [defaultdict(list) for _ in bounds]
    with contextlib.closing(sqlite3.connect(db)) as c:
        for key, at_ms, old, new in c.execute(
            "SELECT t.key, c.at_ms, c.old, c.new FROM changes c JOIN targets t ON t.id = c.target_id ORDER BY c.id"
        ):
            i = next(i for i, (a, b) in enumerate(bounds) if a * 1000 - 1 <= at_ms <= b * 1000 + 1)
            runs[i][key].append((old, new))
    return runs


@pytest.mark.timeout(300)
async def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    seed = int(os.environ.get("WARDWATCH_FAULTS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"WARDWATCH_FAULTS_SEED={seed}")
    rnd = random.Random(seed)
    receiver, portals = Receiver(key=HOOK_KEY), Portals()
    await receiver.start()
    await portals.start()
    inv = tmp_path / "inventory.yaml"
    inv.write_text(inventory(portals, receiver.url))
    db = tmp_path / "wardwatch.db"
    svc = Service(tmp_path, inv, db)
    stop = asyncio.Event()
    toggler = asyncio.create_task(_toggle(portals, rnd, stop))
    bounds: list[tuple[float, float]] = []
    delays: list[str] = []
    try:
        for _ in range(KILLS):
            # A quarter of the kills during start-up (migrations, loading state, first round),
            # timed from the spawn; the others while it runs, timed from /readyz.
            during_startup = rnd.random() < 0.25
            delay = round(rnd.uniform(0.1, 2.0) if during_startup else rnd.uniform(0.2, 5.0), 2)
            delays.append(f"{'start+' if during_startup else 'ready+'}{delay}")
            began = time.time()
            if during_startup:
                svc.runs += 1
                svc.proc = await asyncio.to_thread(svc._spawn)
            else:
                await svc.start()
            await asyncio.sleep(delay)
            assert svc.proc is not None and svc.proc.poll() is None, f"exited by itself:\n{svc.log()[-3000:]}"
            svc.kill()
            bounds.append((began, time.time()))
            assert await asyncio.to_thread(_integrity, db) == "ok", f"after kill {len(bounds)} ({delays[-1]})"
        print(f"kill delays (s): {' '.join(delays)}")

        stop.set()
        await toggler
        portals.down.clear()  # the last run sees everything come back, and drains its outbox
        began = time.time()
        await svc.start()

        async def settled() -> bool:
            up = all(r["state"] == "up" for r in (await svc.states()).values())
            alerts = await svc.api("/api/v1/alerts?limit=1000")
            return up and not alerts["alerts"] and all(n["status"] == "delivered" for n in alerts["notifications"])

        await until("all up, no active alert, every notification delivered", settled, 40)
        assert await svc.stop() == 0
        bounds.append((began, time.time()))
    finally:
        stop.set()
        await toggler
        await svc.stop()
        await receiver.stop()
        await portals.stop()

    assert await asyncio.to_thread(_integrity, db) == "ok"
    # State changes: one chain per target...
    stored = storecheck.stored_changes(db)
    for key, seq in stored.items():
        states = [seq[0][0]] + [new for _, new in seq]
        assert states[0] == "unknown" and all(o == p for (o, _), p in zip(seq, states, strict=False)), (key, seq)
    # ...and each run's stored changes the start of what it logged (the last run: all of it).
    logs = [(tmp_path / f"wardwatch-{i}.log").read_text(errors="replace") for i in range(1, len(bounds) + 1)]
    by_run = _changes_by_run(db, bounds)
    total_logged = total_stored = 0
    for i, (text, got) in enumerate(zip(logs, by_run, strict=True)):
        logged = storecheck.logged_changes([json.loads(x) for x in text.splitlines() if x.startswith("{")])
        for key, seq in got.items():
            assert logged.get(key, [])[: len(seq)] == seq, (i + 1, key, seq, logged.get(key))
        if i == len(bounds) - 1:
            assert dict(got) == logged, "the cleanly stopped run lost a change"
        total_logged += sum(map(len, logged.values()))
        total_stored += sum(map(len, got.values()))
    assert total_stored > 2 * len(stored), "the faults made too few state changes to prove anything"

    # Notifications: everything accepted arrived, one dedup key per transition, nothing left firing.
    received = [r.json() for r in receiver.requests]
    keys = {b["dedup_key"] for b in received}
    with contextlib.closing(sqlite3.connect(db)) as c:
        accepted = {k for (k,) in c.execute("SELECT dedup_key FROM outbox WHERE receiver = 'hook'")}
    assert accepted and accepted <= keys, sorted(accepted - keys)
    events: dict[str, list[tuple[str, str]]] = defaultdict(list)
    seen: set[str] = set()
    for b in sorted(received, key=lambda b: b["alert"]["started_at"] + b["event"]):
        if b["dedup_key"] not in seen:
            seen.add(b["dedup_key"])
            events[b["alert"]["id"]].append((b["event"], b["alert"]["started_at"]))
    for aid, evs in events.items():
        kinds = [e for e, _ in evs]
        assert kinds == ["firing", "resolved"] * (len(kinds) // 2), (aid, evs)
    redelivered = len(received) - len(keys)
    print(f"{len(bounds) - 1} kills; {total_stored} of {total_logged} logged state changes stored; "
          f"{len(keys)} notifications ({redelivered} redelivered with the same key)")


