"""Detection time: from a unit's link cut in the lab to the notification at a webhook receiver.

    python bench/detection.py --path prometheus --units 30 --faults 6 --spacing 20

Prometheus path: the lab (``--units`` units, probe interval ``--interval``, timeout, re-checks),
a real ``wardwatch run`` on its inventory, a real Prometheus scraping it every ``--scrape`` and
evaluating every ``--eval`` the shipped rules (alerts/rules/*.yml, shipped `for:`), a real
Alertmanager with the shipped example configuration (alerts/alertmanager.yml: group_wait 30 s)
whose receivers point at a webhook receiver in this process. ``--faults`` link cuts on distinct
clean units (no built-in imperfection), ``--spacing`` seconds apart so they land at every phase
of the probe schedule; each is timed from the cut to its WardwatchUnitIsolated notification,
then restored. Notifications about units that were not cut (other than the lab's built-in
imperfections) are counted as false.

Built-in path: not measured here yet. The built-in engine's owner adds a function with the
signature of ``prometheus_path`` to ``PATHS`` (same lab, same faults, its own receiver
configuration); ``measure`` and the report are shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor import cli  # noqa: E402
from monitor.inventory import load_inventory  # noqa: E402
from monitor.lab import imperfections  # noqa: E402
from monitor.lab.config import LabConfig, Ports, Timing  # noqa: E402
from monitor.lab.runner import Lab  # noqa: E402
from tests.peers import prometheus as prom  # noqa: E402
from tests.peers.alertmanager import (  # noqa: E402
    EXAMPLE,
    Notification,
    WebhookReceiver,
    alertmanager,
    render_config,
    webhook_receiver,
)
from tests.peers.wardwatch import wardwatch_run  # noqa: E402


@dataclass
class Result:
    path: str
    detections: list[float] = field(default_factory=list)  # seconds, one per fault
    missed: list[int] = field(default_factory=list)  # unit codes never notified in time
    false_notifications: int = 0
    notes: list[str] = field(default_factory=list)


def _started_after(n: Notification, code: str, at: datetime, alertname: str) -> bool:
    return n.status == "firing" and any(
        a["labels"].get("unit_code") == code
        and a["labels"].get("alertname") == alertname
        and datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")) >= at
        for a in n.alerts
    )


async def measure(
    lab: Lab, hook: WebhookReceiver, args: argparse.Namespace, alertname: str, result: Result
) -> None:
    """Cut ``--faults`` clean units' links ``--spacing`` s apart; time each to its notification."""
    bad = set(imperfections.assign(len(lab.units)))
    # From the end of the plan: labs share the loopback address plan, so a link fault injected
    # by another lab on this host (tests use small labs: the first units) would cut ours too.
    clean = [u for i, u in reversed(list(enumerate(lab.units))) if i not in bad]
    if len(clean) < args.faults:
        raise SystemExit(f"only {len(clean)} clean units for {args.faults} faults: raise --units")
    chosen = clean[: args.faults]
    imperfect_codes = {str(lab.units[i].code) for i in bad}

    async def one(i: int, code: str) -> None:
        await asyncio.sleep(i * args.spacing)  # the schedule of the experiment, not a wait for an event
        at = datetime.now(UTC)
        t0 = time.monotonic()
        await asyncio.to_thread(cli.main, ["lab", "fault", code, "link", "down", "--lab-dir", str(lab.dir)])
        try:
            await hook.next(lambda n: _started_after(n, code, at, alertname), within=args.max_wait)
            result.detections.append(time.monotonic() - t0)
            print(f"  unit {code}: {result.detections[-1]:.1f} s", flush=True)
        except TimeoutError:
            result.missed.append(int(code))
            print(f"  unit {code}: no notification within {args.max_wait:.0f} s", flush=True)
        finally:
            await asyncio.to_thread(cli.main, ["lab", "fault", code, "link", "restore", "--lab-dir", str(lab.dir)])

    await asyncio.gather(*(one(i, str(u.code)) for i, u in enumerate(chosen)))
    cut = {str(u.code) for u in chosen}
    for n in hook.received:
        units = {a["labels"].get("unit_code", "") for a in n.alerts}
        if n.status == "firing" and not units <= (cut | imperfect_codes):
            result.false_notifications += 1
            result.notes.append(f"false: {n.receiver} {n.alertnames} units {sorted(units)}")


async def prometheus_path(args: argparse.Namespace, tmp: Path) -> Result:
    result = Result("prometheus")
    lab = Lab(_lab_config(args, tmp))
    await lab.start()
    try:
        inv = load_inventory(lab.inventory_path)
        async with webhook_receiver() as hook, wardwatch_run(tmp / "ww", lab.inventory_path, ready_timeout=300) as ww:
            # The shipped configuration: shipped group timings, only the receivers' address changed.
            am_text = render_config(EXAMPLE, hook.url, group_wait=None, group_interval=None)
            with alertmanager(tmp / "am", am_text) as am:
                cfg = prom.config(scrape_targets=[ww.listen], alertmanagers=[f"127.0.0.1:{am.port}"],
                                  rule_files=sorted(prom.RULES.glob("*.yml")),
                                  scrape_interval=args.scrape, evaluation_interval=args.eval)
                with prom.prometheus(tmp / "prom", cfg) as p:
                    # Baseline: Prometheus has scraped every target of the lab at least once.
                    async with asyncio.timeout(args.max_wait):
                        while True:
                            got = await prom.query(p.url, "count(wardwatch_target_state >= 0)")
                            if got and int(float(got[0]["value"][1])) >= len(inv.targets) * 0.9:
                                break
                            await asyncio.sleep(1)  # Prometheus has no push to await
                    print(f"prometheus path: {len(lab.units)} units, {len(inv.targets)} targets, "
                          f"probe {args.interval:g} s, scrape {args.scrape}, eval {args.eval}", flush=True)
                    await measure(lab, hook, args, "WardwatchUnitIsolated", result)
    finally:
        await lab.stop()
    return result


def _lab_config(args: argparse.Namespace, tmp: Path) -> LabConfig:
    return LabConfig(
        directory=tmp / "lab", units=args.units,
        ports=Ports(https=0, http=0, smtp=0, vc=0, dns=0, control=0),
        timing=Timing(interval=args.interval, timeout=args.timeout, rechecks=args.rechecks,
                      recheck_spacing=args.recheck_spacing),
        nft_table=f"wardwatch_bench_detect_{os.getpid()}",
        snmp=False,  # routers answer ping: the link target is icmp
    )


PATHS: dict[str, Callable[[argparse.Namespace, Path], Coroutine[object, object, Result]]] = {
    "prometheus": prometheus_path,
    # "builtin": builtin_path,  -- the built-in engine's owner adds it (same lab and faults).
}


def report(r: Result, args: argparse.Namespace) -> None:
    d = sorted(r.detections)
    if d:
        print(f"{r.path}: {len(d)}/{args.faults} detected; p50 {statistics.median(d):.1f} s, "
              f"min {d[0]:.1f} s, max {d[-1]:.1f} s; missed {len(r.missed)}; "
              f"false notifications {r.false_notifications}")
    else:
        print(f"{r.path}: nothing detected; missed {r.missed}")
    for note in r.notes:
        print("  " + note)
    print(json.dumps({"path": r.path, "detections": [round(x, 2) for x in d], "missed": r.missed,
                      "false_notifications": r.false_notifications, "units": args.units,
                      "interval": args.interval, "scrape": args.scrape, "eval": args.eval}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", choices=sorted(PATHS), default="prometheus")
    ap.add_argument("--units", type=int, default=30)
    ap.add_argument("--faults", type=int, default=6)
    ap.add_argument("--spacing", type=float, default=20.0, help="seconds between fault injections")
    ap.add_argument("--interval", type=float, default=30.0, help="probe interval (s)")
    ap.add_argument("--timeout", type=float, default=5.0, help="probe timeout (s)")
    ap.add_argument("--rechecks", type=int, default=2)
    ap.add_argument("--recheck-spacing", type=float, default=2.0)
    ap.add_argument("--scrape", default="15s", help="Prometheus scrape interval")
    ap.add_argument("--eval", default="15s", help="Prometheus evaluation interval")
    ap.add_argument("--max-wait", type=float, default=300.0, help="give up on one fault after this (s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wardwatch-detect-") as d:
        result = asyncio.run(PATHS[args.path](args, Path(d)))
    report(result, args)


if __name__ == "__main__":
    main()
