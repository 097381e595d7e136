"""Schema v4 (coverage, rollups): an upgrade from v3 keeps every change and the reports read
the old history as covered; the recorder writes heartbeats and rollups; pruning downsamples."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.coverage import Recorder
from monitor.reports.sla import load_store
from monitor.state import State
from monitor.store import MIGRATIONS, Store
from probes.base import ProbeResult, Reason

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _v3_store(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for v, step in enumerate(MIGRATIONS[:3]):
        if callable(step):
            step(conn)
        else:
            for stmt in step.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
        conn.execute(f"PRAGMA user_version = {v + 1}")
    conn.execute("INSERT INTO targets (id, key) VALUES (1, '1/link/icmp/127.0.0.1')")
    conn.executemany(
        "INSERT INTO changes (target_id, at_ms, old, new, reason, message) VALUES (1, ?, ?, ?, ?, '')",
        [(_ms(T0), "unknown", "up", None), (_ms(T0 + timedelta(hours=1)), "up", "down", "timeout"),
         (_ms(T0 + timedelta(hours=2)), "down", "up", None)],
    )
    conn.execute("INSERT INTO target_status (key, state, message, failures)"
                 " VALUES ('1/link/icmp/127.0.0.1', 'up', '', 0)")
    window = {"id": "mw-1", "unit_code": 1, "service": "link", "start": (T0 + timedelta(hours=3)).isoformat(),
              "end": (T0 + timedelta(hours=4)).isoformat(), "reason": "swap", "source": "runtime"}
    conn.execute("INSERT INTO maintenance (id, data) VALUES ('mw-1', ?)", (json.dumps(window),))
    conn.close()


def test_upgrade_from_v3_keeps_history_and_reports_it(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    _v3_store(path)
    store = Store(path)
    store.open()
    assert [(c.at, c.new) for c in store.changes_sync()] == [
        (T0, State.UP), (T0 + timedelta(hours=1), State.DOWN), (T0 + timedelta(hours=2), State.UP)]
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT count(*) FROM coverage").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM maintenance").fetchone()[0] == 1
    # no coverage rows yet: the history before the first coverage row counts as watched
    h = load_store(path, T0, T0 + timedelta(hours=5))
    [(initial, _, changes)] = h.targets.values()
    assert initial is State.UP and [(c[0] - T0.timestamp(), c[1]) for c in changes] == [
        (3600, State.DOWN), (7200, State.UP)]
    assert h.covered and h.covered[0][0] == T0.timestamp()
    assert [(w.unit_code, w.service, w.end - w.start) for w in h.maintenance] == [(1, "link", 3600)]


@dataclass
class _Target:
    key: str


@dataclass
class _Entry:
    target: _Target


async def test_recorder_writes_heartbeats_and_rollups_and_prune_downsamples(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", rollup_minute_days=1, rollup_hour_days=30)
    store.open()
    rec = Recorder(store)
    rec.start(T0)
    e = _Entry(_Target("1/link/icmp/127.0.0.1"))
    for i, ok in enumerate([True, True, False, True]):
        rec.on_result(e, ProbeResult(success=ok, reason=None if ok else Reason.TIMEOUT,  # type: ignore[arg-type]
                                  duration_seconds=0.01 * (i + 1)),
                      T0 + timedelta(seconds=20 * i))
    rec.tick(T0 + timedelta(seconds=70), stopping=True)
    await store.flush()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT started_ms, heartbeat_ms, stopped_ms FROM coverage").fetchall() == [
            (_ms(T0), _ms(T0) + 70_000, _ms(T0) + 70_000)]
        rows = conn.execute("SELECT res_s, bucket_ms, ok, failed, lat_min, lat_max, round(lat_sum, 6)"
                            " FROM rollups ORDER BY res_s, bucket_ms").fetchall()
    assert rows == [(60, _ms(T0), 2, 1, 0.01, 0.03, 0.06), (60, _ms(T0) + 60_000, 1, 0, 0.04, 0.04, 0.04),
                    (3600, _ms(T0), 3, 1, 0.01, 0.04, 0.1)]
    store.prune_sync(T0 + timedelta(days=2))  # minute rows beyond 1 day go, the hour row stays
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT res_s FROM rollups").fetchall() == [(3600,)]
    store.close()


async def test_downsampling_runs_in_the_writer_thread(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", rollup_minute_days=0.25, rollup_hour_days=2)
    store.open()
    rec = Recorder(store)
    e = _Entry(_Target("1/link/icmp/127.0.0.1"))
    for h in (0, 10, 30, 60):
        rec.on_result(e, ProbeResult(success=True, reason=None, duration_seconds=0.01),  # type: ignore[arg-type]
                      T0 + timedelta(hours=h))
    rec.tick(T0)
    store.downsample(T0 + timedelta(hours=61))
    await store.flush()
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute("SELECT res_s, bucket_ms FROM rollups ORDER BY res_s, bucket_ms").fetchall()
    assert rows == [(60, _ms(T0 + timedelta(hours=60))), (3600, _ms(T0 + timedelta(hours=30))),
                    (3600, _ms(T0 + timedelta(hours=60)))]
    store.close()


async def test_a_heartbeat_the_store_could_not_write_leaves_a_gap(tmp_path: Path) -> None:
    """Found by tests/faults/test_store_faults.py: after a full disk the next heartbeat stretched
    the run's coverage over the time nothing could be recorded, which the reports then counted
    as watched. Coverage resumes in a new row: that time is UNKNOWN."""
    from monitor.state import Change, Status

    store = Store(tmp_path / "s.db")
    store.open()
    rec = Recorder(store)
    rec.start(T0)
    rec.tick(T0 + timedelta(seconds=15))
    await store.flush()
    with sqlite3.connect(store.path) as c:
        c.execute("CREATE TRIGGER no_writes BEFORE INSERT ON changes BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    at = T0 + timedelta(seconds=20)
    store.submit("1/link/icmp/127.0.0.1", Change(State.UP, State.DOWN, at, None, ""), Status(State.DOWN, at))
    rec.tick(T0 + timedelta(seconds=30))  # refused: a state change before it is not written
    await store.flush()
    with sqlite3.connect(store.path) as c:
        c.execute("DROP TRIGGER no_writes")
    rec.tick(T0 + timedelta(seconds=45))
    rec.tick(T0 + timedelta(seconds=60), stopping=True)
    await store.flush()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT started_ms, heartbeat_ms, stopped_ms FROM coverage ORDER BY id").fetchall() == [
            (_ms(T0), _ms(T0) + 15_000, None), (_ms(T0) + 45_000, _ms(T0) + 60_000, _ms(T0) + 60_000)]
    assert [c.at for c in store.changes_sync()] == [at]  # written late, at its own time
    store.close()
