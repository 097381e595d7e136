"""The probe engine: every target probed at its interval, quick re-checks on failure,
state kept per target and written durably on change.

Why not APScheduler for per-target timing: measured here (see NOTES and
bench/scheduler.py), APScheduler 3 drops every run as "missed" when many are due
at once (after a pause, a reload or a slow event loop) and spends about twice the
CPU per run of a heap + sleep loop. Probe timing is that loop below; APScheduler
keeps the calendar jobs (store maintenance) where its cron semantics pay off.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monitor import gcpolicy, secrets
from monitor.placement import Placement, unit_key
from monitor.state import Change, State, Status, needs_recheck, observe
from monitor.targets import Target
from probes import registry
from probes.base import ProbeContext, ProbeResult, Reason, Resolver, TLSContexts
from probes.runner import run_probe

if TYPE_CHECKING:
    from monitor.inventory import Inventory
    from monitor.store import Store

log = logging.getLogger("wardwatch.engine")

# 75/150/200 ms give the national benchmark's p99 (target: under 250 ms) a usable resolution.
LATENESS_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Entry:
    """One target and what is known of it."""

    target: Target
    status: Status = field(default_factory=Status)
    last: ProbeResult | None = None
    last_at: datetime | None = None
    changes: int = 0
    # The probe's own memory between runs (ProbeContext.memory), e.g. snmp's previous counters.
    memory: dict[str, Any] = field(default_factory=dict)
    # Sequence number of this entry's one live heap item (-1: a probe is running);
    # an item with another number is stale and skipped, so re-scheduling never doubles up.
    slot: int = -1


@dataclass
class EngineStats:
    lateness_buckets: tuple[float, ...] = LATENESS_BUCKETS
    lateness_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BUCKETS) + 1))
    lateness_sum: float = 0.0
    lateness_count: int = 0
    in_flight: int = 0
    probes: Counter[tuple[str, str]] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    reloads: Counter[str] = field(default_factory=Counter)
    last_reload_success: float = 0.0
    store_errors: int = 0

    def observe_lateness(self, seconds: float) -> None:
        i = 0
        for i, bound in enumerate(self.lateness_buckets):  # noqa: B007 - index used after loop
            if seconds <= bound:
                break
        else:
            i = len(self.lateness_buckets)
        self.lateness_counts[i] += 1
        self.lateness_sum += seconds
        self.lateness_count += 1


def in_shard(target: Target, shard: tuple[int, int], replicas: int = 1) -> bool:
    """Whether instance I of N probes ``target`` (rendezvous hashing: monitor/placement.py)."""
    return Placement(shard[0], shard[1], replicas).owns(unit_key(target.unit_code))


class Engine:
    def __init__(
        self,
        inventory: Inventory,
        store: Store | None = None,
        *,
        shard: tuple[int, int] = (1, 1),
        placement: Placement | None = None,
        probes: Callable[[str], registry.ProbeSpec] = registry.get,
    ) -> None:
        self.inventory = inventory
        self._probes = probes
        self.store = store
        self.placement = placement or Placement(*shard)
        self.shard = (self.placement.index, self.placement.count)
        self.stats = EngineStats()
        self.entries: dict[str, Entry] = {}
        self.ready = asyncio.Event()
        self.started = False
        mon = inventory.monitor
        self.resolver = Resolver(mon.dns_servers)
        self.tls = TLSContexts()
        self._global = asyncio.Semaphore(mon.concurrency)
        self._per_host_limit = mon.per_host_concurrency
        self._per_host: dict[str, asyncio.Semaphore] = {}
        self._heap: list[tuple[float, int, Entry]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._pending_first: set[str] = set()
        self._links: dict[int, list[Entry]] = {}
        self._hurry_after: set[str] = set()  # links in flight when a child failed: probe again when done
        self._reload_lock = asyncio.Lock()
        # Called with (entry, change) after every state change: the alert engine and
        # tests subscribe here instead of polling.
        self.listeners: list[Callable[[Entry, Change], None]] = []
        # Called with (entry, result, at) after every probe result, re-checks included: the
        # alert engine counts rounds itself. A listener must not raise (it is caught and logged).
        self.result_listeners: list[Callable[[Entry, ProbeResult, datetime], None]] = []

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        persisted: dict[str, Status] = {}
        if self.store is not None:
            try:
                persisted = await self.store.load_statuses()
            except Exception as exc:  # a broken store must not stop probing
                self.stats.store_errors += 1
                log.error("cannot read persisted state: %s", exc)
        self._install(self._select(self.inventory.targets), persisted)
        self.started = True
        self._loop_task = asyncio.create_task(self._run(), name="wardwatch-scheduler")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.started = False

    def context(self, timeout: float) -> ProbeContext:
        return ProbeContext(timeout=timeout, resolver=self.resolver, tls=self.tls)

    def _select(self, targets: list[Target]) -> list[Target]:
        if self.placement.everything:
            return list(targets)
        return [t for t in targets if self.placement.owns(unit_key(t.unit_code))]

    def _install(self, targets: list[Target], persisted: dict[str, Status]) -> None:
        """Build entries; keep the entry (state and schedule) of every unchanged target."""
        old = self.entries
        new: dict[str, Entry] = {}
        now = time.monotonic()
        for t in targets:
            prev = old.get(t.key)
            if prev is not None and prev.target == t:
                new[t.key] = prev
                continue
            entry = Entry(t, status=prev.status if prev else persisted.get(t.key, Status()))
            new[t.key] = entry
            self._pending_first.add(t.key)
            # First probes spread over one interval by a stable phase, so 33k targets
            # never fire at once and a restart keeps roughly the same rhythm.
            phase = (t.stable_hash() / 2**64) * t.interval
            self._push(now + phase, entry)
        self._pending_first &= new.keys()
        self.entries = new
        # A unit's link entries: the parent of its other services (UNREACHABLE while it is DOWN).
        links: dict[int, list[Entry]] = {}
        for e in new.values():
            if e.target.service == "link":
                links.setdefault(e.target.unit_code, []).append(e)
        self._links = links
        self._check_ready()
        self._wake.set()

    def _push(self, due: float, entry: Entry) -> None:
        seq = next(self._seq)
        entry.slot = seq
        heapq.heappush(self._heap, (due, seq, entry))
        if self._heap[0][2] is entry:
            self._wake.set()  # earlier than what the loop sleeps for

    def _hurry_links(self, unit_code: int) -> None:
        """A child of this unit just failed: probe its link now rather than at the link's
        next slot, so isolation (one page) or not (the child pages) is known at once."""
        now = time.monotonic()
        for link in self._links.get(unit_code, ()):
            if link.slot < 0:  # running now: it may have begun before the child failed, so once
                self._hurry_after.add(link.target.key)  # it ends, probe it again at once
                continue
            if link.status.failures:  # already re-checking
                continue
            age = None if link.last_at is None else (utcnow() - link.last_at).total_seconds()
            if age is None or age >= link.target.recheck_spacing:
                self._push(now, link)

    def first_round(self) -> tuple[int, int]:
        """(targets probed at least once, all targets): the progress of the first round."""
        return len(self.entries) - len(self._pending_first), len(self.entries)

    def _check_ready(self) -> None:
        if not self._pending_first:
            self.ready.set()

    # -- reload ------------------------------------------------------------

    async def reload(self) -> list[str]:
        """Re-read the inventory; on any problem keep the running one and say why."""
        from monitor.inventory import InventoryError, load_inventory

        async with self._reload_lock:
            try:
                inv = await asyncio.to_thread(load_inventory, self.inventory.source)
            except InventoryError as exc:
                problems = [str(p) for p in exc.problems]
                self.stats.reloads["failure"] += 1
                log.error("inventory reload refused, keeping the running one: %s", "; ".join(problems))
                return problems
            except OSError as exc:
                self.stats.reloads["failure"] += 1
                msg = f"{self.inventory.source}: cannot read: {exc.strerror or exc}"
                log.error("inventory reload refused: %s", msg)
                return [msg]
            missing = await asyncio.to_thread(secrets.check, inv.secrets())
            if missing:
                self.stats.reloads["failure"] += 1
                log.error("inventory reload refused, keeping the running one: %s", "; ".join(missing))
                return missing
            self.inventory = inv
            self._install(self._select(inv.targets), {})
            gcpolicy.settle("a reload")  # the old inventory goes, the new one is long-lived (monitor/gcpolicy.py)
            self.stats.reloads["success"] += 1
            self.stats.last_reload_success = time.time()
            log.info("inventory reloaded: %d targets", len(self.entries))
            return []

    # -- scheduling ----------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            due, _, entry = self._heap[0]
            delay = due - time.monotonic()
            if delay > 0:
                self._wake.clear()
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            _, seq, _ = heapq.heappop(self._heap)
            if seq != entry.slot or self.entries.get(entry.target.key) is not entry:
                continue  # superseded by a newer slot, or removed/replaced by a reload
            entry.slot = -1
            task = asyncio.create_task(self._probe(entry, due))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _host_sem(self, host: str) -> asyncio.Semaphore:
        sem = self._per_host.get(host)
        if sem is None:
            sem = self._per_host[host] = asyncio.Semaphore(self._per_host_limit)
        return sem

    async def _probe(self, entry: Entry, due: float) -> None:
        t = entry.target
        async with self._global, self._host_sem(t.host):
            self.stats.observe_lateness(max(0.0, time.monotonic() - due))
            self.stats.in_flight += 1
            try:
                ctx = self.context(t.timeout)
                ctx.memory = entry.memory
                result = await run_probe(self._probes(t.probe), t.target, t.config, ctx)
            finally:
                self.stats.in_flight -= 1
        if self.entries.get(t.key) is not entry:
            return
        self._record(entry, result)
        now = time.monotonic()
        if t.key in self._hurry_after:
            self._hurry_after.discard(t.key)
            if result.success:  # an answer from before the child's failure says nothing: ask again
                self._push(now, entry)
                return
        if needs_recheck(entry.status, t.rechecks + 1):
            self._push(now + t.recheck_spacing, entry)
        else:
            nxt = due + t.interval
            if nxt <= now:  # fell behind (slow probe, busy loop): skip, keep the phase
                nxt += ((now - nxt) // t.interval + 1) * t.interval
            self._push(nxt, entry)

    def _record(self, entry: Entry, result: ProbeResult) -> None:
        t = entry.target
        at = utcnow()
        outcome = "success" if result.success else (
            "internal_error" if result.reason is Reason.INTERNAL_ERROR else "failure"
        )
        self.stats.probes[(t.probe, outcome)] += 1
        if result.reason is not None:
            self.stats.reasons[(t.probe, result.reason.value)] += 1
        # The link DOWN, or failing and not yet confirmed: a child failing now is behind it. A cut
        # link's children often fail faster than the link confirms (a refused or unreachable
        # connect is instant, the echo waits out its timeout), and they would be confirmed DOWN
        # first. Should the link then answer, the child's next failure makes it DOWN, dated
        # from its first failure (monitor/state.py).
        parent_down = not result.success and t.service != "link" and any(
            e.status.state is State.DOWN or e.status.failures > 0 for e in self._links.get(t.unit_code, ())
        )
        status, change = observe(entry.status, result, at, t.rechecks + 1, parent_down)
        if not result.success and entry.status.failures == 0 and t.service != "link":
            self._hurry_links(t.unit_code)
        entry.status, entry.last, entry.last_at = status, result, at
        if t.key in self._pending_first:
            self._pending_first.discard(t.key)
            self._check_ready()
        if change is not None:
            entry.changes += 1
            self._log_change(t, change)
            if self.store is not None:
                self.store.submit(t.key, change, status, self._store_failed)
            for listener in self.listeners:
                listener(entry, change)
        for on_result in self.result_listeners:
            try:
                on_result(entry, result, at)
            except Exception:  # an alerting bug must never stop probing
                log.exception("result listener failed for %s", t.key)

    def _store_failed(self, exc: BaseException) -> None:
        self.stats.store_errors += 1
        log.error("store write failed (probing continues): %s", exc)

    @staticmethod
    def _log_change(t: Target, change: Change) -> None:
        log.info(
            "%s %s %s: %s -> %s%s",
            t.unit_code,
            t.service,
            t.target,
            change.old,
            change.new,
            f" ({change.reason}: {change.message})" if change.reason else "",
            extra={
                "unit_code": t.unit_code,
                "service": t.service,
                "probe": t.probe,
                "target": t.target,
                "state": change.new.value,
                "reason": change.reason.value if change.reason else None,
            },
        )

