"""Embedded store size: what 33,210 targets cost over 90 days.

    python bench/store_growth.py [--targets 33210] [--changes 500000]

Writes ``--targets`` status rows and ``--changes`` state-change rows through the real
Store (same schema, indexes and writer thread), measures the file, and extrapolates
linearly to 90 days at several change rates. Probe results are not stored, so the file
grows only with state changes; the status table is fixed at one row per target.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.state import Change, State, Status  # noqa: E402
from monitor.store import Store  # noqa: E402
from probes.base import Reason  # noqa: E402


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def fill(store: Store, keys: list[str], n: int, start: datetime) -> None:
    rnd = random.Random(7)
    state = dict.fromkeys(keys, State.UP)
    reasons = [Reason.TIMEOUT, Reason.REFUSED, Reason.HTTP_STATUS, Reason.TLS_EXPIRED]
    step = timedelta(days=90) / max(1, n)
    for i in range(n):
        k = rnd.choice(keys)
        old = state[k]
        new = State.DOWN if old is State.UP else State.UP
        at = start + step * i
        reason = rnd.choice(reasons) if new is State.DOWN else None
        msg = "no answer within 10s" if reason else ""
        store.submit(k, Change(old, new, at, reason, msg), Status(new, at, reason, msg, 3 if reason else 0, at))
        state[k] = new
        if i % 20000 == 0:
            await store.flush()
    await store.flush()


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wardwatch.db"
        store = Store(path)
        store.open()
        keys = [f"{26000 + u}/{svc}/http/https://phuong-{u}.hochiminhcity.gov.vn/"
                for u in range(args.targets // 10 + 1) for svc in range(10)][: args.targets]
        t0 = time.monotonic()
        start = datetime(2026, 7, 1, tzinfo=UTC)
        await fill(store, keys, len(keys), start)  # every target gets a status row
        base = size(path)
        await fill(store, keys, args.changes, start)
        elapsed = time.monotonic() - t0
        store.close()
        total = size(path)
    per_change = (total - base) / args.changes
    print(f"{args.targets} targets: status rows + first changes {base / 1e6:.1f} MB; "
          f"{args.changes} more changes -> {total / 1e6:.1f} MB; {per_change:.0f} bytes per state change "
          f"(incl. indexes); {(len(keys) + args.changes) / elapsed:.0f} changes/s written")
    print("\n90 days at an average change rate per target per day:")
    for rate in (0.1, 1, 10):
        changes = args.targets * rate * 90
        print(f"  {rate:>4} changes/target/day: {changes / 1e6:6.2f} M changes -> "
              f"~{(base + changes * per_change) / 1e6:8.0f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", type=int, default=33210)
    p.add_argument("--changes", type=int, default=500_000)
    args = p.parse_args()
    if not (1 <= args.targets <= 200_000 and 1 <= args.changes <= 5_000_000):
        p.error("bounded: targets <= 200000, changes <= 5000000")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
