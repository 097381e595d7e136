"""``wardwatch run``: the service — engine, store, HTTP endpoints, reload on SIGHUP."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from monitor.engine import Engine, parse_shard
from monitor.inventory import Inventory, InventoryError, load_inventory
from monitor.store import Store, StoreError

log = logging.getLogger("wardwatch")

DEFAULT_LISTEN = "127.0.0.1:9168"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _shard(value: str) -> tuple[int, int]:
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="watch every target of an inventory")
    p.add_argument("-c", "--config", required=True, type=Path, help="inventory YAML")
    p.add_argument("--listen", type=parse_listen, default=parse_listen(DEFAULT_LISTEN), metavar="ADDR",
                   help=f"HTTP listen address (default {DEFAULT_LISTEN})")
    p.add_argument("--store", type=Path, default=Path("wardwatch.db"), help="SQLite store (default ./wardwatch.db)")
    p.add_argument("--shard", type=_shard, default=(1, 1), metavar="I/N",
                   help="probe only the targets whose stable hash falls in shard I of N")
    p.add_argument("--retention-days", type=float, default=400.0, help="keep state changes this long")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        inventory = load_inventory(args.config)
    except InventoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{args.config}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(inventory, args))


async def serve(inventory: Inventory, args: argparse.Namespace, started: asyncio.Event | None = None) -> int:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from monitor import web

    store = Store(args.store, retention_days=args.retention_days)
    try:
        store.open()
    except StoreError as exc:
        print(f"wardwatch: {exc}", file=sys.stderr)
        return 2
    engine = Engine(inventory, store, shard=args.shard)
    host, port = args.listen
    try:
        runner = await web.serve(engine, host, port)
    except OSError as exc:
        store.close()
        print(f"wardwatch: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    await engine.start()

    # Calendar jobs (not per-target timing: see monitor/engine.py for why).
    calendar = AsyncIOScheduler(timezone=UTC)
    calendar.add_job(_prune, "cron", hour=3, args=[store], id="store-prune", misfire_grace_time=3600)
    calendar.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[list[str]]] = set()

    def on_hup() -> None:
        t = loop.create_task(engine.reload())
        reloads.add(t)
        t.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "watching %d targets of %d units (shard %d/%d); metrics on http://%s:%d/metrics",
        len(engine.entries), len(inventory.units), *args.shard, host, port,
    )
    if started is not None:
        started.set()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        calendar.shutdown(wait=False)
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await engine.stop()
        await runner.cleanup()
        await store.flush()
        store.close()
    return 0


async def _prune(store: Store) -> None:
    removed = await asyncio.to_thread(store.prune_sync, datetime.now(UTC))
    log.info("store maintenance: %d old state changes pruned", removed)
