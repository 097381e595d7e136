"""The engine gives each target its own ProbeContext.memory, kept from one run to the next
(the snmp probe's previous counters live there)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from probes import registry
from probes.base import ProbeContext, ProbeResult
from tests.test_engine import Peer, peer, started, tcp_check, write_inventory  # noqa: F401 - fixture


async def test_memory_is_per_target_and_survives_between_runs(tmp_path: Path, peer: Peer) -> None:  # noqa: F811
    seen: dict[str, list[int]] = {}
    enough = asyncio.Event()

    async def remembering(target: str, cfg: Any, ctx: ProbeContext) -> ProbeResult:
        ctx.memory["runs"] = ctx.memory.get("runs", 0) + 1
        seen.setdefault(target, []).append(ctx.memory["runs"])
        if len(seen) == 2 and all(len(v) >= 2 for v in seen.values()):
            enough.set()
        return ProbeResult(True, None)

    spec = registry.ProbeSpec("tcp", registry.get("tcp").config, remembering)
    inv = write_inventory(tmp_path / "inv.yaml", [tcp_check(peer.port), tcp_check(peer.port + 1)],
                          interval="200ms", timeout="100ms", rechecks="0")
    engine, _ = await started(inv, probes=lambda kind: spec)
    try:
        async with asyncio.timeout(5):
            await enough.wait()
    finally:
        await engine.stop()
    for runs in seen.values():
        assert runs[:2] == [1, 2]  # the second run saw the first one's memory, and only its own
