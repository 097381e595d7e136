"""Per-target timing at scale: APScheduler 3 against wardwatch's engine loop, one run.

    python bench/scheduler.py [--jobs 30000] [--interval 10] [--cycles 3] [--stall 3]

Each side runs ``--jobs`` jobs at ``--interval`` seconds with starts spread over the
interval, doing nothing but recording when they ran (so only the scheduler costs CPU).
Halfway, the event loop is blocked for ``--stall`` seconds (a slow disk, a GC pause,
a suspended VM): afterwards every job is overdue at once. Reported per side: runs,
runs lost, lateness p50/p99/max, CPU seconds per 1,000 runs.

wardwatch's side is the real monitor.engine.Engine with a no-op probe passed in.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.engine import Engine  # noqa: E402
from monitor.targets import Target  # noqa: E402
from probes import registry  # noqa: E402
from probes.base import ProbeContext, ProbeResult  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def stall_once(after: float, seconds: float) -> None:
    await asyncio.sleep(after)
    time.sleep(seconds)  # noqa: ASYNC251 - blocking the loop on purpose is the scenario


async def run_apscheduler(args: argparse.Namespace) -> dict[str, Any]:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    lateness: list[float] = []
    sched = AsyncIOScheduler(timezone=UTC)
    start = datetime.now(UTC) + timedelta(seconds=1)
    first_due: dict[str, float] = {}

    async def job(jid: str) -> None:
        # Late by how much past the most recent slot (a dropped run must not skew it).
        lateness.append((time.time() - first_due[jid]) % args.interval)

    for i in range(args.jobs):
        first = start + timedelta(seconds=args.interval * i / args.jobs)
        jid = f"j{i}"
        first_due[jid] = first.timestamp()
        sched.add_job(job, "interval", seconds=args.interval, next_run_time=first, args=[jid], id=jid)
    c0 = cpu()
    sched.start()
    total = args.interval * args.cycles
    await asyncio.gather(asyncio.sleep(total + 1), stall_once(1 + total / 2, args.stall))
    sched.shutdown(wait=False)
    used = cpu() - c0
    window = total + 1
    expected = sum(_slots(window - 1 - args.interval * i / args.jobs, args.interval) for i in range(args.jobs))
    return {"runs": len(lateness), "expected": expected, "lateness": lateness, "cpu": used}


async def run_engine(args: argparse.Namespace) -> dict[str, Any]:
    lateness: list[float] = []
    targets = [
        Target(79, 26506, "bench", "link", "tcp", f"127.0.0.1:{i}", registry.get("tcp").config(),
               interval=args.interval, timeout=1.0, rechecks=0)
        for i in range(args.jobs)
    ]
    inventory = SimpleNamespace(
        monitor=SimpleNamespace(dns_servers=(), concurrency=args.jobs, per_host_concurrency=args.jobs),
        targets=targets, units=[], source=Path("bench"),
    )

    async def noop(target: str, cfg: Any, ctx: ProbeContext) -> ProbeResult:
        return ProbeResult(True, None)

    spec = registry.ProbeSpec("tcp", registry.get("tcp").config, noop)
    engine = Engine(inventory, None, probes=lambda kind: spec)  # type: ignore[arg-type]
    record = engine.stats.observe_lateness

    def observe(seconds: float) -> None:  # exact samples beside the engine's own histogram
        lateness.append(seconds)
        record(seconds)

    engine.stats.observe_lateness = observe  # type: ignore[method-assign]
    c0 = cpu()
    await engine.start()
    total = args.interval * args.cycles
    await asyncio.gather(asyncio.sleep(total + 1), stall_once(1 + total / 2, args.stall))
    await engine.stop()
    used = cpu() - c0
    window = total + 1
    expected = sum(_slots(window - t.stable_hash() / 2**64 * args.interval, args.interval) for t in targets)
    return {"runs": len(lateness), "expected": expected, "lateness": lateness, "cpu": used}


def _slots(span: float, interval: float) -> int:
    """Runs due within ``span`` seconds of the first one."""
    return 0 if span < 0 else int(span // interval) + 1


def report(name: str, r: dict[str, Any]) -> str:
    lat = r["lateness"]
    lost = max(0, r["expected"] - r["runs"])
    mean = statistics.fmean(lat) if lat else float("nan")
    return (f"{name:12} runs {r['runs']:7d} of {r['expected']:7d} due  lost {lost:6d}  "
            f"lateness p50 {pct(lat, .5) * 1000:7.1f} ms  p99 {pct(lat, .99) * 1000:7.1f} ms  "
            f"max {max(lat, default=0) * 1000:7.1f} ms  mean {mean * 1000:6.1f} ms  "
            f"CPU {r['cpu'] / max(1, r['runs']) * 1000:6.3f} s/1k runs")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=30000)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--stall", type=float, default=3.0, help="seconds the loop is blocked halfway (0: none)")
    args = p.parse_args()
    if not (1 <= args.jobs <= 200_000 and 1 <= args.cycles <= 20 and 0.5 <= args.interval <= 120):
        p.error("bounded load only: jobs <= 200000, cycles <= 20, interval 0.5-120 s")
    gc.collect()
    aps = asyncio.run(run_apscheduler(args))
    gc.collect()
    eng = asyncio.run(run_engine(args))
    print(f"{args.jobs} jobs, interval {args.interval:g} s, {args.cycles} cycles, "
          f"loop stalled {args.stall:g} s halfway")
    print(report("apscheduler", aps))
    print(report("engine", eng))


if __name__ == "__main__":
    main()
