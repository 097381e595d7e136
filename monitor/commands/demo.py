"""``wardwatch demo``: the lab and the monitor in one command, with a first-round summary.

Starts a lab (default: the 168 units of Ho Chi Minh City, on free ports) and ``wardwatch run``
against its ``lab-inventory.yaml`` with the embedded store, in this one process; prints where
to look; shows one progress line while the first full round (and its re-checks) completes;
then what is failing and why, grouped by reason, against what the lab's built-in
imperfections should show. Ctrl-C (SIGINT) or SIGTERM stops everything and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp

from monitor.commands.lab import add_lab_options, lab_config, start_lab, stop_on_signals
from monitor.commands.run import DEFAULT_LISTEN, parse_listen, serve
from monitor.inventory import InventoryError, load_inventory
from monitor.lab.config import LabConfig
from monitor.lab.runner import IMPERFECTIONS_FILE, Lab

POLL_SECONDS = 0.5


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common], help="start a lab and watch it (one command)",
                       description=__doc__)
    p.add_argument("--listen", type=parse_listen, default=parse_listen(DEFAULT_LISTEN), metavar="ADDR",
                   help=f"HTTP listen address of the monitor (default {DEFAULT_LISTEN})")
    p.add_argument("--store", type=Path, default=None, help="SQLite store (default <dir>/wardwatch.db)")
    p.add_argument("--verbose", action="store_true", help="log every state change as well")
    add_lab_options(p, free_ports=True, interval=30.0)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        cfg = lab_config(args)
    except ValueError as exc:
        print(f"wardwatch demo: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run_demo(args, cfg))


async def run_demo(args: argparse.Namespace, cfg: LabConfig) -> int:
    stop = asyncio.Event()
    with stop_on_signals(stop):
        lab = await start_lab(cfg, stop)
        if lab is None:
            return 0 if stop.is_set() else 2
        try:
            return await _watch(args, lab, stop)
        finally:
            # serve() put back the default handlers when it returned: ignore signals meanwhile.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await lab.stop()
            print("demo: stopped", flush=True)


async def _watch(args: argparse.Namespace, lab: Lab, stop: asyncio.Event) -> int:
    print(lab.describe(), flush=True)
    try:
        inventory = await asyncio.to_thread(load_inventory, lab.inventory_path)
    except InventoryError as exc:  # a lab bug, but say it plainly
        for problem in exc.problems[:10]:
            print(problem, file=sys.stderr)
        return 2
    if not args.verbose:
        logging.getLogger("wardwatch.engine").setLevel(logging.WARNING)
    run_args = argparse.Namespace(
        config=lab.inventory_path, listen=args.listen, store=args.store or lab.dir / "wardwatch.db",
        shard=(1, 1), retention_days=400.0,
    )
    started = asyncio.Event()
    serving = asyncio.create_task(serve(inventory, run_args, started))
    waits = {asyncio.create_task(started.wait()), asyncio.create_task(stop.wait())}
    await asyncio.wait({serving, *waits}, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    if serving.done():
        return serving.result()
    if stop.is_set():  # a signal before serve() took the handlers over
        await _cancel_when_started(serving, started)
        return 0
    host, port = args.listen
    base = f"http://{host}:{port}"
    print(f"demo: monitor on {base}: wallboard {base}/  {base}/metrics  {base}/api/v1/targets", flush=True)
    progress = asyncio.create_task(_first_round(base, lab, len(inventory.targets), inventory))
    try:
        return await serving
    finally:
        progress.cancel()
        await asyncio.gather(progress, return_exceptions=True)


async def _cancel_when_started(serving: asyncio.Task[int], started: asyncio.Event) -> None:
    if not serving.done():
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({serving, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)


async def _first_round(base: str, lab: Lab, total: int, inventory: Any) -> None:
    tty = sys.stdout.isatty()
    t0 = time.monotonic()
    # Every target probed once, then failures confirmed by their re-checks; bounded anyway.
    d = inventory.defaults
    limit = 2 * d.interval + d.rechecks * (d.timeout + d.recheck_spacing) + 10
    last_shown = -1
    rows: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        while True:
            try:
                async with http.get(f"{base}/api/v1/targets") as resp:
                    rows = await resp.json()
            except (aiohttp.ClientError, TimeoutError, ValueError):
                await asyncio.sleep(POLL_SECONDS)
                continue
            probed = sum(1 for r in rows if r.get("last_probe"))
            up = sum(1 for r in rows if r["state"] == "up")
            down = sum(1 for r in rows if r["state"] == "down")
            checking = probed - up - down
            line = (f"first round: {probed}/{total} targets probed ({100 * probed // max(total, 1)}%), "
                    f"up {up}, down {down}, re-checking {checking}  [{time.monotonic() - t0:.0f}s]")
            done = probed >= total and checking == 0
            if tty:
                print("\r" + line.ljust(100), end="", flush=True)
            elif done or probed * 4 // max(total, 1) != last_shown:
                last_shown = probed * 4 // max(total, 1)
                print(line, flush=True)
            if done or time.monotonic() - t0 > limit:
                break
            await asyncio.sleep(POLL_SECONDS)
    if tty:
        print(flush=True)
    print(summary(rows, lab.dir / IMPERFECTIONS_FILE, time.monotonic() - t0), flush=True)
    print("demo: running; Ctrl-C to stop", flush=True)


def summary(rows: list[dict[str, Any]], imperfections_file: Path, seconds: float) -> str:
    """What is failing and why, grouped by reason, against what the lab says it injected."""
    down = [r for r in rows if r["state"] == "down"]
    up = sum(1 for r in rows if r["state"] == "up")
    out = [f"demo: first round done in {seconds:.0f}s: {len(rows)} targets, {up} up, {len(down)} down"]
    by_reason: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in down:
        by_reason[r.get("reason") or "unknown"].append(r)
    for reason, items in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        units = sorted({int(r["unit_code"]) for r in items})
        services = sorted({str(r["service"]) for r in items})
        out.append(f"  {reason:<24} {len(items):>3} targets ({', '.join(services)}) units "
                   + ", ".join(map(str, units)))
    try:
        data = json.loads(imperfections_file.read_text())
    except (OSError, ValueError):
        return "\n".join(out)
    seen = {r["key"]: r.get("reason") for r in down}
    expected = {e["key"]: e["reason"] for e in data.get("expected", [])}
    matched = sum(1 for k, why in expected.items() if seen.get(k) == why)
    out.append(f"demo: injected imperfections seen: {matched}/{len(expected)} expected failing targets")
    for imp in data.get("imperfections", []):
        keys = [e for e in data["expected"] if e["unit_code"] == imp["unit_code"]]
        ok = all(seen.get(e["key"]) == e["reason"] for e in keys)
        out.append(f"  {'ok ' if ok else 'MISSING'} unit {imp['unit_code']} {imp['unit']}: {imp['description']}")
    extra = sorted(k for k in seen if k not in expected)
    if extra:
        out.append(f"demo: {len(extra)} other failing targets: " + ", ".join(extra[:10]))
    return "\n".join(out)
