"""``wardwatch run``: the service — engine, store, HTTP endpoints, reload on SIGHUP."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor import gcpolicy, secrets
from monitor.engine import Engine
from monitor.inventory import Inventory, InventoryError, load_inventory
from monitor.placement import Placement, check_vantage, parse_shard
from monitor.store import Store, StoreError

if TYPE_CHECKING:
    from alerts.service import AlertService
    from monitor.coverage import Recorder
    from monitor.webconfig import WebConfig

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


def _replicas(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of instances, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {n})")
    return n


def _vantage(value: str) -> str:
    try:
        return check_vantage(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def default_vantage() -> str:
    """The host name (its first label), when it makes a valid vantage; else "default"."""
    name = socket.gethostname().split(".")[0]
    try:
        return check_vantage(name)
    except ValueError:
        return "default"


def placement(args: argparse.Namespace) -> Placement:
    """--shard, --replicas and --vantage together (ValueError: the one line to print)."""
    index, count = args.shard
    vantage = getattr(args, "vantage", None) or default_vantage()
    return Placement(index, count, getattr(args, "replicas", 1), vantage)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="watch every target of an inventory")
    p.add_argument("-c", "--config", required=True, type=Path, help="inventory YAML")
    p.add_argument("--listen", type=parse_listen, default=parse_listen(DEFAULT_LISTEN), metavar="ADDR",
                   help=f"HTTP listen address (default {DEFAULT_LISTEN})")
    p.add_argument("--store", type=Path, default=Path("wardwatch.db"), help="SQLite store (default ./wardwatch.db)")
    p.add_argument("--shard", type=_shard, default=(1, 1), metavar="I/N",
                   help="this is instance I of N: probe only the targets rendezvous hashing gives it")
    p.add_argument("--replicas", type=_replicas, default=1, metavar="R",
                   help="probe every target from R of the N instances (default 1; R <= N)")
    p.add_argument("--vantage", type=_vantage, default=None, metavar="NAME",
                   help="where this instance probes from (a site name), exported as "
                   "wardwatch_instance_info{vantage} (default: the host name)")
    p.add_argument("--retention-days", type=float, default=400.0, help="keep state changes this long")
    p.add_argument("--public-status", action="store_true",
                   help="serve the read-only public status page at /public (unit and service states only; "
                   "also: monitor.public_status in the inventory)")
    p.add_argument("--web-config", type=Path, metavar="FILE",
                   help="TLS and basic auth for the HTTP endpoints: exporter-toolkit's web config keys, "
                   "plus wardwatch.roles (README: Securing the web endpoints); re-read on SIGHUP and reload")
    p.add_argument("--rollup-minute-days", type=float, default=0.25,
                   help="keep per-minute probe rollups this long (default 0.25 = 6 h; sizes in BENCHMARKS.md)")
    p.add_argument("--rollup-hour-days", type=float, default=35.0,
                   help="keep per-hour probe rollups this long (default 35)")
    p.add_argument("--heartbeat", type=float, default=15.0, metavar="SECONDS",
                   help="coverage heartbeat and rollup flush period (default 15)")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default=default_loop(),
                   help=f"event loop (default {default_loop()}: uvloop when installed; it cut probe CPU "
                   "in bench/national.py)")
    p.set_defaults(func=cmd_run)


def default_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_loop(main: Coroutine[Any, Any, int], loop: str = "asyncio") -> int:
    """asyncio.run, on uvloop when asked (and installed)."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed: using asyncio's own event loop")
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        placement(args)
    except ValueError as exc:
        print(f"wardwatch run: {exc}", file=sys.stderr)
        return 2
    problems: list[object] = []
    try:
        inventory = load_inventory(args.config)
        # Every secret is read now (README "Secrets"): a missing one stops the start, named by its line.
        problems += secrets.check(inventory.secrets())
    except InventoryError as exc:
        problems += exc.problems
    except OSError as exc:
        problems.append(f"{args.config}: cannot read: {exc.strerror or exc}")
    web_config = None
    if getattr(args, "web_config", None) is not None:
        from monitor.webconfig import WebConfigError, load_web_config

        try:
            web_config = load_web_config(args.web_config)
        except WebConfigError as exc:
            problems += exc.problems
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 2
    return run_loop(serve(inventory, args, web_config=web_config), getattr(args, "loop", "asyncio"))


async def serve(
    inventory: Inventory, args: argparse.Namespace, started: asyncio.Event | None = None,
    web_config: WebConfig | None = None,
) -> int:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from monitor import wallboard, web

    store = Store(args.store, retention_days=args.retention_days,
                  rollup_minute_days=getattr(args, "rollup_minute_days", 0.25),
                  rollup_hour_days=getattr(args, "rollup_hour_days", 35.0))
    try:
        store.open()
    except StoreError as exc:
        print(f"wardwatch: {exc}", file=sys.stderr)
        return 2
    engine = Engine(inventory, store, placement=placement(args))
    await log_icmp_access(inventory)
    host, port = args.listen
    # Alerting starts only now, with the whole inventory loaded and validated.
    scheme = "https" if web_config is not None and web_config.tls is not None else "http"
    ok, alerting = _alerting(inventory, args, engine, scheme)
    if not ok:
        store.close()
        return 2
    try:
        runner = await web.serve(engine, host, port, alerts=alerting, web_config=web_config)
        wallboard.settings(runner.app).public = bool(getattr(args, "public_status", False))
    except OSError as exc:
        store.close()
        print(f"wardwatch: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if alerting is not None:
        alerting.start()
    recorder = _recorder(store, engine, args)  # coverage + rollups for the reports (monitor/coverage.py)
    await engine.start()
    gcpolicy.start()  # what is built so far lives as long as the process: out of the GC's full passes
    first_round = asyncio.create_task(_settle_after_first_round(engine), name="wardwatch-gc-settle")

    # Calendar jobs (not per-target timing: see monitor/engine.py for why).
    calendar = AsyncIOScheduler(timezone=UTC)
    calendar.add_job(_prune, "cron", hour=3, args=[store], id="store-prune", misfire_grace_time=3600)
    calendar.add_job(recorder.heartbeat, "interval", seconds=getattr(args, "heartbeat", 15.0),
                     id="coverage-heartbeat", misfire_grace_time=None, coalesce=True)
    calendar.add_job(recorder.downsample, "cron", minute=17, id="rollup-downsample", misfire_grace_time=3600)
    calendar.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[list[str]]] = set()

    def on_hup() -> None:
        t = loop.create_task(web.reload_config(runner.app))  # the inventory, then the web config
        reloads.add(t)
        t.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "watching %d targets of %d units (shard %s, replicas %d, vantage %s); metrics on %s://%s:%d/metrics",
        len(engine.entries), len(inventory.units), engine.placement.shard, engine.placement.replicas,
        engine.placement.vantage, scheme, host, port,
    )
    if started is not None:
        started.set()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        first_round.cancel()
        calendar.shutdown(wait=False)
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await engine.stop()
        if alerting is not None:
            await alerting.stop()
        await runner.cleanup()
        recorder.tick(stopping=True)
        await store.flush()
        store.close()
    return 0


async def _settle_after_first_round(engine: Engine) -> None:
    """Every target's state, resolver cache and SNMP engine exist now, and stay: freeze them too."""
    await engine.ready.wait()
    gcpolicy.settle("the first round")


async def log_icmp_access(inventory: Inventory) -> None:
    """Say once which ICMP socket the icmp and link probes will get (README "Running without root")."""
    from probes import icmp

    if any(t.probe in ("icmp", "link") for t in inventory.targets):
        access = await asyncio.to_thread(icmp.detect)
        (log.info if access.mode else log.warning)("ICMP: %s", access.detail)


def _alerting(
    inventory: Inventory, args: argparse.Namespace, engine: Engine, scheme: str = "http"
) -> tuple[bool, AlertService | None]:
    """The built-in alerting (alerts/service.py), attached to the engine; (False, None): cannot start."""
    from alerts.service import AlertService

    host, port = args.listen
    try:
        service = AlertService.create(
            inventory, args.store, generator_url=f"{scheme}://{host}:{port}/api/v1/alerts"
        )
    except Exception as exc:  # a secret missing, the store unreadable: one clear line, exit 2
        print(f"wardwatch: alerting: {exc}", file=sys.stderr)
        return False, None
    service.attach(engine)
    return True, service


async def _prune(store: Store) -> None:
    removed = await asyncio.to_thread(store.prune_sync, datetime.now(UTC))
    log.info("store maintenance: %d old state changes pruned", removed)


def _recorder(store: Store, engine: Engine, args: argparse.Namespace) -> Recorder:
    from monitor.coverage import Recorder

    recorder = Recorder(store, args.shard)
    recorder.start()
    recorder.attach(engine)
    return recorder
