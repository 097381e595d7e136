"""Reading a wardwatch store after a fault: integrity, state-change history, outbox, coverage;
and the state changes a wardwatch process logged (what it observed), to compare with."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any


def read(path: Path) -> sqlite3.Connection:
    """After wardwatch stopped (a read-only open of a WAL store needs its -shm file, gone by then)."""
    if not path.exists():
        raise FileNotFoundError(path)
    return sqlite3.connect(path, timeout=10)


def integrity(path: Path) -> str:
    with contextlib.closing(read(path)) as c:
        return str(c.execute("PRAGMA integrity_check").fetchone()[0])


def stored_changes(path: Path) -> dict[str, list[tuple[str, str]]]:
    """target key -> [(old, new), ...] in commit order."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with contextlib.closing(read(path)) as c:
        for key, old, new in c.execute(
            "SELECT t.key, c.old, c.new FROM changes c JOIN targets t ON t.id = c.target_id ORDER BY c.id"
        ):
            out[key].append((old, new))
    return dict(out)


def outbox(path: Path) -> list[dict[str, Any]]:
    with contextlib.closing(read(path)) as c:
        c.row_factory = sqlite3.Row
        return [dict(r) for r in c.execute("SELECT dedup_key, receiver, delivered_at_ms, created_at_ms FROM outbox")]


def coverage(path: Path) -> list[tuple[int, int]]:
    """[(started_ms, heartbeat or stopped ms)] of every run."""
    with contextlib.closing(read(path)) as c:
        return [(a, b) for a, b in c.execute(
            "SELECT started_ms, coalesce(stopped_ms, heartbeat_ms) FROM coverage ORDER BY started_ms")]


def covered(spans: list[tuple[int, int]], at_ms: int) -> bool:
    return any(a <= at_ms <= b for a, b in spans)


def logged_changes(records: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """The engine's state-change log lines (monitor/engine.py _log_change), as target key ->
    [(old, new), ...]: what the process observed and reported, in order."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in records:
        if r.get("logger") == "wardwatch.engine" and "state" in r and "target" in r:
            key = f"{r['unit_code']}/{r['service']}/{r['probe']}/{r['target']}"
            old = r["msg"].split(": ", 1)[1].split(" -> ")[0] if ": " in r["msg"] else ""
            out[key].append((old, r["state"]))
    return dict(out)
