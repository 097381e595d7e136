"""The embedded store: durable state changes, restart, migrations, errors that don't stop probing."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.state import Change, State, Status
from monitor.store import MIGRATIONS, Store, StoreError, migrate
from probes.base import Reason

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


async def test_changes_survive_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.open()
    down = Status(State.DOWN, T0, Reason.REFUSED, "connection refused", 3, T0)
    store.submit("26506/portal/http/https://x/", Change(State.UP, State.DOWN, T0, Reason.REFUSED, "refused"), down)
    await store.flush()
    store.close()

    again = Store(tmp_path / "s.db")
    again.open()
    statuses = await again.load_statuses()
    assert statuses["26506/portal/http/https://x/"] == down
    changes = again.changes_sync()
    assert [(c.old, c.new, c.at, c.reason) for c in changes] == [(State.UP, State.DOWN, T0, "refused")]
    again.close()


async def test_status_row_is_updated_not_duplicated(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.open()
    k = "1/link/icmp/127.0.0.1"
    store.submit(k, Change(State.UNKNOWN, State.UP, T0, None, ""), Status(State.UP, T0))
    later = T0 + timedelta(minutes=5)
    store.submit(k, Change(State.UP, State.DOWN, later, Reason.TIMEOUT, "t"), Status(State.DOWN, later, Reason.TIMEOUT))
    await store.flush()
    assert (await store.load_statuses())[k].state is State.DOWN
    assert len(store.changes_sync(key=k)) == 2
    assert len(store.changes_sync(key=k, since=later)) == 1
    store.close()


async def test_prune_drops_only_changes_older_than_retention(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", retention_days=30)
    store.open()
    for days in (40, 10):
        at = T0 - timedelta(days=days)
        store.submit("k", Change(State.UP, State.DOWN, at, None, ""), Status(State.DOWN, at))
    await store.flush()
    assert store.prune_sync(now=T0) == 1
    assert [c.at for c in store.changes_sync()] == [T0 - timedelta(days=10)]
    store.close()


def test_migrations_are_versioned_and_refuse_a_newer_schema(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    assert migrate(conn) == len(MIGRATIONS)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert migrate(conn) == len(MIGRATIONS)  # idempotent
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this wardwatch knows"):
        migrate(conn)
    conn.close()


async def test_write_failure_is_reported_not_raised(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.open()
    errors: list[BaseException] = []
    reported = asyncio.Event()

    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        reported.set()

    # Make the table unwritable underneath the writer: a failing write must come
    # back as a callback (counted as a store error), never stop the caller.
    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute(
            "CREATE TRIGGER no_writes BEFORE INSERT ON changes BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    store.submit("k", Change(State.UP, State.DOWN, T0, None, ""), Status(State.DOWN, T0), on_error)
    await asyncio.wait_for(reported.wait(), 5)
    assert len(errors) == 1 and "disk says no" in str(errors[0])
    assert await store.load_statuses() == {}  # the failed batch left nothing half-written
    store.close()


def test_unopenable_path_gives_a_clear_error(tmp_path: Path) -> None:
    # Root ignores directory permissions; a path through a regular file fails for everyone.
    f = tmp_path / "file"
    f.write_text("x")
    store = Store(f / "s.db")
    with pytest.raises(StoreError, match="cannot open store"):
        store.open()


def test_upgrade_from_v1_keeps_every_state_change(tmp_path: Path) -> None:
    """A store written by the first release opens in this one with its history intact."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for stmt in str(MIGRATIONS[0]).split(";"):
        if stmt.strip():
            conn.execute(stmt)
    conn.execute("PRAGMA user_version = 1")
    at1, at2 = T0.isoformat(), (T0 + timedelta(seconds=90.5)).isoformat()
    conn.executemany(
        "INSERT INTO state_changes (key, at, old, new, reason, message) VALUES (?, ?, ?, ?, ?, ?)",
        [("a", at1, "up", "down", "timeout", "t"), ("b", at1, "unknown", "up", None, ""),
         ("a", at2, "down", "up", None, "")],
    )
    conn.execute(
        "INSERT INTO target_status (key, state, since, message, failures) VALUES ('a', 'up', ?, '', 0)", (at2,)
    )
    conn.close()

    store = Store(path)
    store.open()
    got = [(c.key, c.at, c.old, c.new, c.reason) for c in store.changes_sync()]
    assert got == [
        ("a", T0, State.UP, State.DOWN, "timeout"),
        ("b", T0, State.UNKNOWN, State.UP, None),
        ("a", T0 + timedelta(seconds=90.5), State.DOWN, State.UP, None),
    ]
    assert store.load_statuses_sync()["a"].state is State.UP
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    store.close()


async def test_a_failed_write_is_kept_and_written_when_the_store_takes_writes_again(tmp_path: Path) -> None:
    """Found by tests/faults/test_store_faults.py: on a full disk the changes of that time were
    dropped, leaving the history inconsistent (a later 'down -> up' without its 'up -> down')."""
    store = Store(tmp_path / "s.db")
    store.open()
    errors: list[BaseException] = []
    failed = asyncio.Event()

    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        failed.set()

    up = Status(State.UP, T0)
    store.submit("k", Change(State.UNKNOWN, State.UP, T0, None, ""), up, on_error)
    await store.flush()
    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute("CREATE TRIGGER no_writes BEFORE INSERT ON changes BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    t1, t2 = T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)
    store.submit("k", Change(State.UP, State.DOWN, t1, Reason.TIMEOUT, "t"), Status(State.DOWN, t1), on_error)
    store.submit("k", Change(State.DOWN, State.UP, t2, None, ""), Status(State.UP, t2), on_error)
    await asyncio.wait_for(failed.wait(), 5)
    await store.flush()
    assert errors and "disk full" in str(errors[0])
    assert [c.new for c in store.changes_sync("k")] == [State.UP]  # nothing half-written meanwhile

    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute("DROP TRIGGER no_writes")
    t3 = T0 + timedelta(seconds=30)
    store.submit("k", Change(State.UP, State.DOWN, t3, None, ""), Status(State.DOWN, t3), on_error)
    await store.flush()
    got = [(c.at, c.old, c.new) for c in store.changes_sync("k")]
    assert got == [(T0, State.UNKNOWN, State.UP), (t1, State.UP, State.DOWN), (t2, State.DOWN, State.UP),
                   (t3, State.UP, State.DOWN)]
    assert (await store.load_statuses())["k"].state is State.DOWN
    store.close()
