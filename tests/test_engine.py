"""The probe engine against real TCP peers: schedule, re-checks, state, reload, shards, restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from monitor.engine import Engine, Entry, in_shard
from monitor.inventory import load_inventory
from monitor.placement import parse_shard
from monitor.state import Change, State
from monitor.store import Store
from monitor.units import official_units
from probes import registry
from probes.base import ProbeContext, ProbeResult, Reason

UNIT = 26506  # Phường Vũng Tàu, an official code of province 79


@dataclass
class Peer:
    """A real TCP listener that can be closed and reopened on the same port."""

    port: int = 0
    server: asyncio.Server | None = None
    accepted: list[float] = field(default_factory=list)
    open_now: int = 0
    peak: int = 0
    hold: bool = False

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.accepted.append(time.monotonic())
        self.open_now += 1
        self.peak = max(self.peak, self.open_now)
        try:
            if self.hold:
                await r.read()  # keep the connection until the client gives up
        finally:
            self.open_now -= 1
            w.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    await p.start()
    yield p
    if p.server is not None and p.server.is_serving():
        await p.stop()


def write_inventory(path: Path, checks: list[str], **timing: str) -> Path:
    t = {"interval": "1s", "timeout": "500ms", "rechecks": "2", "recheck_spacing": "100ms", **timing}
    lines = [
        "province: 79",
        "defaults:",
        *(f"  {k}: {v}" for k, v in t.items()),
        "  templates: {portal: null, email: null}",
        "units:",
        f"  - code: {UNIT}",
        "    name: Phường Vũng Tàu",
        "    type: phường",
        "    checks:",
        *(f"      - {c}" for c in checks),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tcp_check(port: int, service: str = "vc_gov", extra: str = "") -> str:
    return f"{{service: {service}, probe: tcp, target: '127.0.0.1:{port}'{extra}}}"


class Changes:
    """Collects state changes and lets a test await the next one."""

    def __init__(self) -> None:
        self.seen: list[tuple[Entry, Change]] = []
        self._cond = asyncio.Condition()

    def __call__(self, entry: Entry, change: Change) -> None:
        self.seen.append((entry, change))
        loop = asyncio.get_running_loop()
        loop.create_task(self._notify())  # noqa: RUF006 - short-lived, nothing to await

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def wait_for(self, pred: Callable[[Change], bool], within: float = 10) -> Change:
        async with asyncio.timeout(within), self._cond:
            while True:
                for _, ch in self.seen:
                    if pred(ch):
                        return ch
                await self._cond.wait()


async def started(inv_path: Path, store: Store | None = None, **kw: Any) -> tuple[Engine, Changes]:
    engine = Engine(load_inventory(inv_path), store, **kw)
    changes = Changes()
    engine.listeners.append(changes)
    await engine.start()
    return engine, changes


async def test_target_goes_down_after_rechecks_dated_from_first_failure(tmp_path: Path, peer: Peer) -> None:
    engine, changes = await started(write_inventory(tmp_path / "inv.yaml", [tcp_check(peer.port)]))
    try:
        await changes.wait_for(lambda c: c.new is State.UP)
        await asyncio.wait_for(engine.ready.wait(), 5)
        await peer.stop()
        stopped_at = time.time()
        down = await changes.wait_for(lambda c: c.new is State.DOWN)
        failures = engine.stats.probes[("tcp", "failure")]
        # the first failure plus exactly the two re-checks, 100 ms apart
        assert failures == 3
        assert down.reason is Reason.REFUSED
        assert down.at.timestamp() >= stopped_at
        detected = time.time()
        assert detected - down.at.timestamp() >= 0.2 - 0.02  # dated from the first failure, not the third
        assert detected - stopped_at < 1 + 0.2 + 1.0  # within one interval plus the re-checks
        await peer.start()
        up = await changes.wait_for(lambda c: c.old is State.DOWN and c.new is State.UP)
        assert up.at > down.at
    finally:
        await engine.stop()


async def test_probe_that_raises_becomes_internal_error_and_schedule_goes_on(tmp_path: Path, peer: Peer) -> None:
    calls = 0
    real = registry.get("tcp")

    async def flaky(target: str, cfg: Any, ctx: ProbeContext) -> ProbeResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("bug in a probe")
        if calls == 2:
            raise asyncio.CancelledError  # a stray one from a library: not a stop request
        return await real.run(target, cfg, ctx)

    spec = registry.ProbeSpec("tcp", real.config, flaky)
    inv = write_inventory(tmp_path / "inv.yaml", [tcp_check(peer.port)], rechecks="0")
    engine, changes = await started(inv, probes=lambda kind: spec)
    try:
        down = await changes.wait_for(lambda c: c.new is State.DOWN)
        assert down.reason is Reason.INTERNAL_ERROR and "bug in a probe" in down.message
        await changes.wait_for(lambda c: c.new is State.UP)  # the next rounds ran as scheduled
        assert engine.stats.probes[("tcp", "internal_error")] == 2
    finally:
        await engine.stop()


async def test_first_probes_spread_over_one_interval(tmp_path: Path, peer: Peer) -> None:
    # 60 distinct hosts (127.0.0.1-60), so the per-host limit does not serialise them.
    hosts = [f"127.0.0.{i + 1}" for i in range(60)]
    checks = [f"{{service: vc_gov, probe: tcp, target: '{h}:{peer.port}'}}" for h in hosts]
    await peer.stop()
    server = await asyncio.start_server(peer._handle, hosts[1:], peer.port)
    await peer.start()  # 127.0.0.1 again
    try:
        inv = write_inventory(tmp_path / "inv.yaml", checks, interval="2s", timeout="1s")
        t0 = time.monotonic()
        engine, _ = await started(inv)
        await asyncio.wait_for(engine.ready.wait(), 5)
        await engine.stop()
        offsets = sorted(a - t0 for a in peer.accepted)
        assert len(offsets) == 60
        assert offsets[-1] - offsets[0] > 1.0  # spread over most of the 2 s interval
        # never a third of them in one 200 ms slice (phases are hash-spread, not exact, and a
        # busy CI loop bunches a few more; all-at-once would put all 60 in one slice)
        worst = max(sum(1 for o in offsets if s <= o < s + 0.2) for s in offsets)
        assert worst < 20
    finally:
        server.close()
        await server.wait_closed()


async def test_per_host_concurrency_limit_holds(tmp_path: Path, peer: Peer) -> None:
    # 12 silent listeners on one host, one shared counter: at most 3 probes may hold
    # a connection to 127.0.0.1 at any moment.
    peer.hold = True
    extra = [await asyncio.start_server(peer._handle, "127.0.0.1", 0) for _ in range(11)]
    ports = [peer.port] + [s.sockets[0].getsockname()[1] for s in extra]
    expect = "tcp: {query_response: [{expect: never}]}"
    checks = [f"{{service: vc_gov, probe: tcp, target: '127.0.0.1:{p}', {expect}}}" for p in ports]
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, checks, interval="3s", timeout="1s", rechecks="0")
    inv.write_text(inv.read_text().replace("province: 79\n", "province: 79\nmonitor: {per_host_concurrency: 3}\n"))
    engine, _ = await started(inv)
    try:
        await asyncio.wait_for(engine.ready.wait(), 10)
        assert peer.peak == 3  # the limit was reached and never exceeded
    finally:
        await engine.stop()
        for s in extra:
            s.close()
            await s.wait_closed()


async def test_reload_keeps_unchanged_targets_and_refuses_a_bad_file(tmp_path: Path, peer: Peer) -> None:
    inv = write_inventory(tmp_path / "inv.yaml", [tcp_check(peer.port), tcp_check(peer.port, "vc_party")])
    engine, changes = await started(inv)
    try:
        await asyncio.wait_for(engine.ready.wait(), 5)
        kept = engine.entries[f"{UNIT}/vc_gov/tcp/127.0.0.1:{peer.port}"]
        inv.write_text(inv.read_text() + "  - {code: 1, name: x}\n  bogus: [\n")
        problems = await engine.reload()
        assert problems and all(str(inv) in p for p in problems)
        assert engine.stats.reloads["failure"] == 1 and len(engine.entries) == 2

        write_inventory(inv, [tcp_check(peer.port)])  # vc_party removed, vc_gov unchanged
        assert await engine.reload() == []
        assert list(engine.entries) == [kept.target.key]
        assert engine.entries[kept.target.key] is kept  # same state, same schedule
        assert kept.status.state is State.UP
    finally:
        await engine.stop()


async def test_state_survives_restart_through_the_store(tmp_path: Path, peer: Peer) -> None:
    await peer.stop()
    inv = write_inventory(tmp_path / "inv.yaml", [tcp_check(peer.port)], rechecks="0")
    store = Store(tmp_path / "s.db")
    store.open()
    engine, changes = await started(inv, store)
    down = await changes.wait_for(lambda c: c.new is State.DOWN)
    await engine.stop()
    await store.flush()
    store.close()

    store2 = Store(tmp_path / "s.db")
    store2.open()
    engine2 = Engine(load_inventory(inv), store2)
    await engine2.start()
    try:
        (entry,) = engine2.entries.values()
        assert entry.status.state is State.DOWN and entry.status.since == down.at
    finally:
        await engine2.stop()
        store2.close()


def test_shards_partition_the_units_and_keep_each_unit_together(tmp_path: Path) -> None:
    units = official_units(79)[:60]
    text = "province: 79\ndefaults: {templates: {portal: null, email: null}}\nunits:\n" + "".join(
        f"  - {{code: {u.code}, name: {u.name}, type: {u.type}, link: {{address: 127.1.{n}.1}},\n"
        f"     vc_gov: {{address: 127.1.{n}.2}}}}\n"
        for n, u in enumerate(units)
    )
    (tmp_path / "inv.yaml").write_text(text, encoding="utf-8")
    targets = load_inventory(tmp_path / "inv.yaml").targets
    for replicas in (1, 2):
        shards = [{t.key for t in targets if in_shard(t, (i, 3), replicas)} for i in (1, 2, 3)]
        assert sum(len(s) for s in shards) == replicas * len(targets)
        assert set().union(*shards) == {t.key for t in targets}
        for s in shards:  # a unit's link and its children always land together
            codes = {t.unit_code for t in targets if t.key in s}
            assert s == {t.key for t in targets if t.unit_code in codes}
            assert 10 * replicas <= len(codes) <= 30 * replicas
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "x", "1-3"):
        with pytest.raises(ValueError):
            parse_shard(bad)


async def test_children_of_a_down_link_are_unreachable_and_down_once_the_link_is_back(tmp_path: Path) -> None:
    link, child = Peer(), Peer()
    await link.start()
    await child.start()
    inv = write_inventory(tmp_path / "inv.yaml", [tcp_check(link.port, "link"), tcp_check(child.port, "portal")],
                          rechecks="0")
    engine, changes = await started(inv)
    child_key = f"{UNIT}/portal/tcp/127.0.0.1:{child.port}"
    try:
        await asyncio.wait_for(engine.ready.wait(), 5)
        await link.stop()
        await changes.wait_for(lambda c: c.new is State.DOWN)  # the link
        await child.stop()
        unreachable = await changes.wait_for(lambda c: c.new is State.UNREACHABLE)
        assert engine.entries[child_key].status.state is State.UNREACHABLE
        await link.start()
        down = await changes.wait_for(lambda c: c.old is State.UNREACHABLE and c.new is State.DOWN)
        assert down.at == unreachable.at  # one outage, dated from its first failure
        await child.start()
        await changes.wait_for(lambda c: c.old is State.DOWN and c.new is State.UP and c.at > down.at
                               and engine.entries[child_key].status.state is State.UP)
    finally:
        await engine.stop()
        for p in (link, child):
            if p.server is not None and p.server.is_serving():
                await p.stop()


async def test_a_failing_child_has_its_link_probed_at_once(tmp_path: Path, peer: Peer) -> None:
    """Isolation or not must be known within the child's re-checks, not at the link's next slot."""
    from monitor.targets import Target

    interval = 20.0
    # A link target whose own first slot is late in the interval, so an early probe of it
    # can only come from the hurry (deterministic: the phase is a hash of the key).
    async def late_link_server() -> tuple[asyncio.Server, int]:
        for _ in range(200):
            server = await asyncio.start_server(peer._handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            link = Target(79, UNIT, "x", "link", "tcp", f"127.0.0.1:{port}", registry.get("tcp").config())
            if link.stable_hash() / 2**64 > 0.5:
                return server, port
            server.close()
            await server.wait_closed()
        raise AssertionError("no port with a late phase found")

    link_server, link_port = await late_link_server()
    closed = await asyncio.start_server(peer._handle, "127.0.0.1", 0)
    child_port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()  # the child's port now refuses
    inv = write_inventory(
        tmp_path / "inv.yaml",
        [
            f"{{service: link, probe: tcp, target: '127.0.0.1:{link_port}', interval: {interval:g}s}}",
            f"{{service: portal, probe: tcp, target: '127.0.0.1:{child_port}', interval: 1s}}",
        ],
        interval="1s", timeout="500ms", rechecks="2", recheck_spacing="100ms",
    )
    link_probed = asyncio.Event()
    t0 = time.monotonic()
    engine = Engine(load_inventory(inv))
    engine.result_listeners.append(
        lambda e, r, at: link_probed.set() if e.target.service == "link" else None
    )
    await engine.start()
    try:
        await asyncio.wait_for(link_probed.wait(), 5)
        assert time.monotonic() - t0 < interval / 2  # long before its own slot
        assert engine.stats.probes[("tcp", "failure")] >= 1  # the child's failure came first
    finally:
        await engine.stop()
        link_server.close()
        await link_server.wait_closed()


async def test_reload_under_wardwatch_run_freezes_the_new_inventory(tmp_path: Path, peer: Peer) -> None:
    """`wardwatch run` turns monitor/gcpolicy.py on: a reloaded inventory, long-lived from then
    on, leaves the collector's full passes like the first one did."""
    import gc

    from monitor import gcpolicy

    inv = write_inventory(tmp_path / "inv.yaml", [tcp_check(peer.port)])
    engine, _changes = await started(inv)
    thresholds = gc.get_threshold()
    try:
        gcpolicy.start()
        old = engine.inventory
        write_inventory(inv, [tcp_check(peer.port), tcp_check(peer.port, "vc_party")])
        assert await engine.reload() == []
        new = engine.inventory
        assert new is not old
        tracked = {id(o) for o in gc.get_objects()}
        assert id(new) not in tracked and all(id(t) not in tracked for t in new.targets)
    finally:
        await engine.stop()
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gcpolicy._Policy.active = False
