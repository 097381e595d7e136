"""Store schema v3 (the alerting tables): a v2 store upgrades with its history intact, and the
outbox opens on it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from alerts.outbox import OutboxDB
from monitor.state import State
from monitor.store import MIGRATIONS, Store, migrate

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def test_upgrade_from_v2_keeps_history_and_adds_the_alerting_tables(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:2]:  # exactly what a v2 release created
        if callable(step):
            step(conn)
        else:
            for stmt in step.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO targets (id, key) VALUES (1, 'a')")
    conn.execute("INSERT INTO changes (target_id, at_ms, old, new, reason, message)"
                 " VALUES (1, ?, 'up', 'down', 'timeout', 't')", (round(T0.timestamp() * 1000),))
    conn.close()

    store = Store(path)
    store.open()
    assert [(c.key, c.at, c.new) for c in store.changes_sync()] == [("a", T0, State.DOWN)]
    store.close()
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 3
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"outbox", "alert_state", "maintenance"} <= tables
    db = OutboxDB(path)
    assert db.write([("k", "r", "{}", 0)], '{"version": 1}') == 1
    assert db.load_state() == {"version": 1} and db.counts() == {"pending": 1}
    db.close()


def test_outbox_key_is_unique_per_receiver(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    migrate(conn)
    conn.close()
    db = OutboxDB(tmp_path / "s.db")
    assert db.write([("k", "a", "{}", 0), ("k", "b", "{}", 0), ("k", "a", "{}", 0)], None) == 2
    db.close()
