"""What the SLA reports need from a running wardwatch besides its state changes (schema v4).

- **Coverage**: one ``coverage`` row per start; its heartbeat is moved forward every
  ``heartbeat`` seconds and ``stopped_ms`` is set on a clean stop. Time outside every
  [started, heartbeat or stopped] span is time wardwatch was blind: the reports call it
  UNKNOWN, never UP. After a crash at most one heartbeat of running time is lost.
- **Rollups**: every probe result (re-checks included) is counted in memory per target and
  minute, then written on each heartbeat into the minute buckets and the hour buckets at once
  (ok, failed, latency min/sum/max); pruning the minute rows is the downsampling.

Writes go through the store's writer thread (``Store.submit_job``), never the event loop.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monitor.store import Job, Store, connect

if TYPE_CHECKING:
    from monitor.engine import Engine, Entry
    from probes.base import ProbeResult

log = logging.getLogger("wardwatch.coverage")

# (target key, minute bucket ms) -> [ok, failed, lat_min, lat_max, lat_sum]
Buckets = dict[tuple[str, int], list[float]]


def _ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def add_result(buckets: Buckets, key: str, at_ms: int, success: bool, seconds: float) -> None:
    """Count one probe result in its minute bucket (pure, apart from ``buckets``)."""
    minute = at_ms - at_ms % 60_000
    b = buckets.get((key, minute))
    if b is None:
        buckets[(key, minute)] = [1.0 if success else 0.0, 0.0 if success else 1.0, seconds, seconds, seconds]
        return
    b[0 if success else 1] += 1
    b[2] = min(b[2], seconds)
    b[3] = max(b[3], seconds)
    b[4] += seconds


_UPSERT = (
    "INSERT INTO rollups (res_s, bucket_ms, target_id, ok, failed, lat_min, lat_max, lat_sum)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (res_s, bucket_ms, target_id) DO UPDATE SET"
    " ok = ok + excluded.ok, failed = failed + excluded.failed,"
    " lat_min = min(lat_min, excluded.lat_min), lat_max = max(lat_max, excluded.lat_max),"
    " lat_sum = lat_sum + excluded.lat_sum"
)


def write_buckets(conn: sqlite3.Connection, ids: Callable[[set[str]], dict[str, int]], buckets: Buckets) -> None:
    """Add minute buckets to the minute and hour rollups (inside the caller's transaction)."""
    if not buckets:
        return
    tid = ids({k for k, _ in buckets})
    rows = []
    for (key, minute), (ok, failed, lo, hi, total) in buckets.items():
        t = tid[key]
        rows.append((60, minute, t, int(ok), int(failed), lo, hi, total))
        rows.append((3600, minute - minute % 3_600_000, t, int(ok), int(failed), lo, hi, total))
    conn.executemany(_UPSERT, rows)


class Recorder:
    """Coverage heartbeats and rollups of one running wardwatch.

    A heartbeat that cannot be written (disk full, read-only, state changes still unwritten:
    ``Job.after_changes``) leaves a gap: the next one that commits opens a new coverage row
    from its own time instead of stretching the old one over time the store did not record, so
    the reports call that time UNKNOWN. The rollups of a failed heartbeat are dropped with it."""

    def __init__(self, store: Store, shard: tuple[int, int] = (1, 1)) -> None:
        self.store = store
        self.shard = f"{shard[0]}/{shard[1]}"
        self.coverage_id: int | None = None  # after start(), owned by the store's writer thread
        self._gap = False  # a heartbeat failed since the last one that committed (writer thread)
        self._buckets: Buckets = {}

    def attach(self, engine: Engine) -> None:
        engine.result_listeners.append(self.on_result)

    def on_result(self, entry: Entry, result: ProbeResult, at: datetime) -> None:
        add_result(self._buckets, entry.target.key, _ms(at), result.success, result.duration_seconds)

    def start(self, now: datetime | None = None) -> None:
        """Open this run's coverage row (synchronously: before the first probe). A store that
        cannot take it (full, read-only) is logged; coverage then starts at the first heartbeat
        that commits."""
        at = _ms(now or datetime.now(UTC))
        try:
            conn = connect(self.store.path)
            try:
                cur = conn.execute(
                    "INSERT INTO coverage (started_ms, heartbeat_ms, shard) VALUES (?, ?, ?)", (at, at, self.shard)
                )
                self.coverage_id = cur.lastrowid
            finally:
                conn.close()
        except sqlite3.Error as exc:
            log.error("cannot record this run's start in the store (coverage starts when it can): %s", exc)

    def tick(self, now: datetime | None = None, *, stopping: bool = False) -> None:
        """Move the heartbeat forward and queue the rollups counted since the last tick."""
        at = _ms(now or datetime.now(UTC))
        buckets, self._buckets = self._buckets, {}
        opened: list[int] = []

        def job(conn: sqlite3.Connection, ids: Callable[[set[str]], dict[str, int]]) -> None:
            opened.clear()
            write_buckets(conn, ids, buckets)
            cid = self.coverage_id
            if cid is None or self._gap:
                cur = conn.execute("INSERT INTO coverage (started_ms, heartbeat_ms, shard) VALUES (?, ?, ?)",
                                   (at, at, self.shard))
                assert cur.lastrowid is not None
                opened.append(cur.lastrowid)
                cid = cur.lastrowid
            conn.execute(
                "UPDATE coverage SET heartbeat_ms = max(heartbeat_ms, ?)"
                + (", stopped_ms = ?" if stopping else "") + " WHERE id = ?",
                (at, at, cid) if stopping else (at, cid),
            )

        def committed() -> None:
            if opened:
                self.coverage_id, self._gap = opened[0], False
                log.info("store writable again: coverage resumes (the time since the last heartbeat is UNKNOWN)")

        def failed(_exc: BaseException) -> None:
            self._gap = True

        self.store.submit_job(Job(job, "heartbeat", after_changes=True, on_commit=committed, on_error=failed))

    async def heartbeat(self) -> None:  # an APScheduler job
        self.tick()

    async def downsample(self) -> None:  # an APScheduler job, hourly
        self.store.downsample()
