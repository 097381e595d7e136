"""The embedded store: SQLite, one writer thread, versioned schema.

What is kept (and so what the file grows with): one row per target with its
current state, and one row per state change (~72 bytes with indexes, measured by
bench/store_growth.py). Probe results themselves are not
kept here (they are on /metrics for Prometheus); state changes are pruned after
``retention_days``. Writes go through one thread so the event loop never waits
on the disk, and are committed with synchronous=FULL: a state change that has
been acknowledged survives a crash or power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.state import Change, State, Status
from probes.base import Reason

log = logging.getLogger("wardwatch.store")

# Each entry upgrades the schema by one version: SQL text, or a function for steps that
# transform data. Never edit a released one; append.
def _v2_target_ids(conn: sqlite3.Connection) -> None:
    """State changes keyed by a small target id and integer milliseconds (v1 repeated the
    long target key in every row and index: ~265 bytes a change, now ~3x less)."""
    conn.execute("CREATE TABLE targets (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE)")
    conn.execute("INSERT OR IGNORE INTO targets (key) SELECT key FROM target_status")
    conn.execute("INSERT OR IGNORE INTO targets (key) SELECT key FROM state_changes ORDER BY id")
    conn.execute(
        "CREATE TABLE changes (id INTEGER PRIMARY KEY, target_id INTEGER NOT NULL REFERENCES targets (id),"
        " at_ms INTEGER NOT NULL, old TEXT NOT NULL, new TEXT NOT NULL, reason TEXT,"
        " message TEXT NOT NULL DEFAULT '')"
    )
    rows = conn.execute(
        "SELECT c.id, t.id, c.at, c.old, c.new, c.reason, c.message"
        " FROM state_changes c JOIN targets t ON t.key = c.key ORDER BY c.id"
    ).fetchall()
    conn.executemany(
        "INSERT INTO changes (id, target_id, at_ms, old, new, reason, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(i, tid, _ms(datetime.fromisoformat(at)), o, n, r, m) for i, tid, at, o, n, r, m in rows],
    )
    conn.execute("DROP TABLE state_changes")
    conn.execute("CREATE INDEX changes_target_at ON changes (target_id, at_ms)")
    conn.execute("CREATE INDEX changes_at ON changes (at_ms)")


# v3: the alerting tables (alerts/outbox.py owns them). ``outbox`` is the durable queue of
# notifications, one row per (dedup key, receiver); ``alert_state`` holds the alert engine's
# dump (one JSON document, written in the same transaction as the outbox rows it decided);
# ``maintenance`` the windows declared at run time.
_V3_ALERTING = """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        dedup_key TEXT NOT NULL,
        receiver TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms INTEGER NOT NULL DEFAULT 0,
        delivered_at_ms INTEGER,
        gave_up_at_ms INTEGER,
        last_error TEXT NOT NULL DEFAULT '',
        UNIQUE (dedup_key, receiver)
    );
    CREATE INDEX outbox_pending ON outbox (receiver, id) WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL;
    CREATE TABLE alert_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        saved_at_ms INTEGER NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE maintenance (
        id TEXT PRIMARY KEY,
        data TEXT NOT NULL
    )
"""

# v4: what the SLA reports need besides the state changes (monitor/reports/, monitor/coverage.py).
# ``coverage``: one row per start of wardwatch, its heartbeat moved forward every few seconds
# (stopped_ms on a clean stop), so time it was not running reads UNKNOWN, never UP.
# ``rollups``: per target probe counts ok/failed and latency min/sum/max, in minute buckets
# (res_s 60, short retention) and hour buckets (res_s 3600, long retention); both are written
# as results arrive, so downsampling is pruning the minute rows.
_V4_REPORTS = """
    CREATE TABLE coverage (
        id INTEGER PRIMARY KEY,
        started_ms INTEGER NOT NULL,
        heartbeat_ms INTEGER NOT NULL,
        stopped_ms INTEGER,
        shard TEXT NOT NULL DEFAULT '1/1'
    );
    CREATE INDEX coverage_heartbeat ON coverage (heartbeat_ms);
    CREATE TABLE rollups (
        res_s INTEGER NOT NULL,
        bucket_ms INTEGER NOT NULL,
        target_id INTEGER NOT NULL REFERENCES targets (id),
        ok INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        lat_min REAL,
        lat_max REAL,
        lat_sum REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (res_s, bucket_ms, target_id)
    ) WITHOUT ROWID
"""

MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    """
    CREATE TABLE target_status (
        key TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since TEXT,
        reason TEXT,
        message TEXT NOT NULL DEFAULT '',
        failures INTEGER NOT NULL DEFAULT 0,
        first_failure_at TEXT
    );
    CREATE TABLE state_changes (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        at TEXT NOT NULL,
        old TEXT NOT NULL,
        new TEXT NOT NULL,
        reason TEXT,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX state_changes_key_at ON state_changes (key, at);
    CREATE INDEX state_changes_at ON state_changes (at);
    """,
    _v2_target_ids,
    _V3_ALERTING,
    _V4_REPORTS,
)

ErrorCallback = Callable[[BaseException], None]
PendingChange = tuple[str, Change, Status, "ErrorCallback | None"]  # a submitted state change


@dataclass(slots=True, frozen=True)
class StoredChange:
    key: str
    at: datetime
    old: State
    new: State
    reason: str | None
    message: str


def _ts(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class StoreError(Exception):
    pass


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; return it. Never drops history."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreError(
            f"store schema version {version} is newer than this wardwatch knows ({len(MIGRATIONS)}): "
            "upgrade wardwatch rather than opening it with an older one"
        )
    for v in range(version, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript() would commit on its own; one statement at a time keeps
            # the whole step (schema and version) in one transaction.
            step = MIGRATIONS[v]
            if callable(step):
                step(conn)
            else:
                for stmt in step.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {v + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


_STOP = object()


@dataclass(slots=True, frozen=True)
class Job:
    """Work for the writer thread in a transaction of its own: ``fn(conn, target_ids)`` where
    ``target_ids(keys)`` maps target keys to their ids (creating missing ones).

    ``after_changes``: run only once every state change submitted before it is committed (a
    coverage heartbeat must never claim time whose changes are not in the store); otherwise it
    fails like a failed write. ``on_commit``/``on_error`` are called on the writer thread."""

    fn: Callable[[sqlite3.Connection, Callable[[set[str]], dict[str, int]]], None]
    name: str = "job"
    after_changes: bool = False
    on_commit: Callable[[], None] | None = None
    on_error: Callable[[BaseException], None] | None = None


# State changes whose commit failed are kept and retried (oldest first) with every later write,
# so a full or failing disk loses none while the process lives; past this many the oldest go.
MAX_UNWRITTEN = 200_000


class Store:
    def __init__(
        self,
        path: str | Path,
        retention_days: float = 400.0,
        *,
        rollup_minute_days: float = 0.25,
        rollup_hour_days: float = 35.0,
    ) -> None:
        self.path = Path(path)
        self.retention = timedelta(days=retention_days)
        # Rollups (schema v4): minute buckets for a short window, hour buckets for longer.
        self.rollup_minute_retention = timedelta(days=rollup_minute_days)
        self.rollup_hour_retention = timedelta(days=rollup_hour_days)
        self._q: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._ids: dict[str, int] = {}  # target key -> id, owned by the writer thread
        self._unwritten: list[PendingChange] = []  # failed changes, retried first; owned by the writer thread

    def open(self) -> None:
        """Open (creating or upgrading) the file; raises StoreError with a clear message."""
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(self.path)
            migrate(self._conn)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open store: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open store: {exc.strerror or exc}") from exc
        self._loop = asyncio.get_running_loop() if _has_loop() else None
        self._thread = threading.Thread(target=self._writer, name="wardwatch-store", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._q.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- writes ----------------------------------------------------------------

    def submit(self, key: str, change: Change, status: Status, on_error: ErrorCallback | None = None) -> None:
        """Queue a state change; it is committed durably by the writer thread."""
        self._q.put((key, change, status, on_error))

    def submit_job(self, job: Job) -> None:
        """Queue other writes (coverage heartbeats, rollups) behind the state changes."""
        self._q.put(job)

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
        done = threading.Event()
        self._q.put(done)
        await asyncio.to_thread(done.wait)

    def _writer(self) -> None:
        assert self._conn is not None
        conn = self._conn
        while True:
            item = self._q.get()
            batch = [item]
            while len(batch) < 2000:  # one transaction for a burst (startup, mass outage)
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            jobs = [b for b in batch if isinstance(b, Job)]
            changes = [b for b in batch if isinstance(b, tuple)]
            # Retried with each batch: new changes, and the periodic jobs (a quiet service too).
            if self._unwritten and (changes or jobs):
                changes = self._unwritten + changes
            if changes:
                self._write_or_keep(conn, changes)
            for job in jobs:
                if job.after_changes and self._unwritten:
                    self._job_failed(job, StoreError(f"{len(self._unwritten)} state changes not yet written"))
                else:
                    self._run_job(conn, job)
            for b in batch:
                if isinstance(b, threading.Event):
                    b.set()
            if any(b is _STOP for b in batch):
                if self._unwritten:
                    log.error("store closed with %d state changes it could not write", len(self._unwritten))
                return

    def _write_or_keep(self, conn: sqlite3.Connection, changes: list[PendingChange]) -> None:
        try:
            self._write(conn, changes)
        except Exception as exc:  # disk full, read-only, locked: report, keep them, keep going
            dropped = max(0, len(changes) - MAX_UNWRITTEN)
            self._unwritten = changes[dropped:]
            log.error("store write failed for %d changes (kept, retried with the next write%s): %s",
                      len(changes), f"; {dropped} oldest dropped" if dropped else "", exc)
            callbacks: list[ErrorCallback] = []
            for *_, cb in changes:
                if cb is not None and cb not in callbacks:  # once per failed transaction
                    callbacks.append(cb)
            for cb in callbacks:
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(cb, exc)
        else:
            if self._unwritten:
                log.info("store writable again: %d state changes written late", len(self._unwritten))
            self._unwritten = []

    def _write(self, conn: sqlite3.Connection, changes: list[PendingChange]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = self._target_ids(conn, {k for k, *_ in changes})
            conn.executemany(
                "INSERT INTO changes (target_id, at_ms, old, new, reason, message) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (ids[k], _ms(c.at), c.old.value, c.new.value, c.reason.value if c.reason else None, c.message)
                    for k, c, _, _ in changes
                ],
            )
            conn.executemany(
                "INSERT INTO target_status (key, state, since, reason, message, failures, first_failure_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET state=excluded.state,"
                " since=excluded.since, reason=excluded.reason, message=excluded.message,"
                " failures=excluded.failures, first_failure_at=excluded.first_failure_at",
                [
                    (
                        k,
                        s.state.value,
                        _ts(s.since),
                        s.reason.value if s.reason else None,
                        s.message,
                        s.failures,
                        _ts(s.first_failure_at),
                    )
                    for k, _, s, _ in changes
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._ids.clear()  # ids handed out inside the rolled-back transaction are gone
            raise

    def _run_job(self, conn: sqlite3.Connection, job: Job) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                job.fn(conn, lambda keys: self._target_ids(conn, keys))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                self._ids.clear()
                raise
        except Exception as exc:  # like a failed change write: report, keep going
            self._job_failed(job, exc)
            return
        if job.on_commit is not None:
            job.on_commit()

    @staticmethod
    def _job_failed(job: Job, exc: BaseException) -> None:
        log.error("store %s failed: %s", job.name, exc)
        if job.on_error is not None:
            job.on_error(exc)

    def _target_ids(self, conn: sqlite3.Connection, keys: set[str]) -> dict[str, int]:
        missing = [k for k in keys if k not in self._ids]
        if missing:
            conn.executemany("INSERT OR IGNORE INTO targets (key) VALUES (?)", [(k,) for k in missing])
            for i in range(0, len(missing), 500):
                chunk = missing[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for tid, key in conn.execute(f"SELECT id, key FROM targets WHERE key IN ({marks})", chunk):
                    self._ids[key] = tid
        return self._ids

    # -- reads -----------------------------------------------------------------

    def _read(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5.0)
        conn.execute("PRAGMA query_only=ON")
        return conn

    def load_statuses_sync(self) -> dict[str, Status]:
        out: dict[str, Status] = {}
        with contextlib.closing(self._read()) as conn:
            for key, state, since, reason, message, failures, first in conn.execute(
                "SELECT key, state, since, reason, message, failures, first_failure_at FROM target_status"
            ):
                out[key] = Status(
                    State(state),
                    _dt(since),
                    _reason(reason),
                    message,
                    failures,
                    _dt(first),
                )
        return out

    async def load_statuses(self) -> dict[str, Status]:
        return await asyncio.to_thread(self.load_statuses_sync)

    def changes_sync(self, key: str | None = None, since: datetime | None = None) -> list[StoredChange]:
        sql = (
            "SELECT t.key, c.at_ms, c.old, c.new, c.reason, c.message"
            " FROM changes c JOIN targets t ON t.id = c.target_id"
        )
        where: list[str] = []
        args: list[str | int] = []
        if key is not None:
            where.append("t.key = ?")
            args.append(key)
        if since is not None:
            where.append("c.at_ms >= ?")
            args.append(_ms(since))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY c.at_ms, c.id"
        with contextlib.closing(self._read()) as conn:
            return [
                StoredChange(k, _from_ms(at), State(o), State(n), r, m)
                for k, at, o, n, r, m in conn.execute(sql, args)
            ]

    def prune_sync(self, now: datetime | None = None) -> int:
        """Drop state changes and coverage older than the retention, and rollups older than
        theirs (minute buckets go first: the hour buckets hold the same counts); returns how
        many state changes were dropped."""
        now = now or datetime.now(UTC)
        cutoff = now - self.retention
        with contextlib.closing(connect(self.path)) as conn:
            cur = conn.execute("DELETE FROM changes WHERE at_ms < ?", (_ms(cutoff),))
            removed = cur.rowcount
            conn.execute("DELETE FROM coverage WHERE heartbeat_ms < ?", (_ms(cutoff),))
        self.prune_rollups_sync(now)
        return removed

    def prune_rollups_sync(self, now: datetime | None = None) -> int:
        """Downsampling: drop minute rollups past their retention (the hour rows hold the same
        counts) and hour rollups past theirs; returns how many rows."""
        with contextlib.closing(connect(self.path)) as conn:
            return self._prune_rollups(conn, now or datetime.now(UTC))

    def downsample(self, now: datetime | None = None) -> None:
        """``prune_rollups_sync`` queued to the writer thread (hourly: a national store drops
        millions of minute rows at once; in the writer they wait their turn, never lock it out)."""
        at = now or datetime.now(UTC)
        self.submit_job(Job(lambda conn, _ids: log.debug("%d rollup rows pruned", self._prune_rollups(conn, at)),
                            "rollup downsampling"))

    def _prune_rollups(self, conn: sqlite3.Connection, now: datetime) -> int:
        n: int = conn.execute("DELETE FROM rollups WHERE res_s = 60 AND bucket_ms < ?",
                              (_ms(now - self.rollup_minute_retention),)).rowcount
        n += conn.execute("DELETE FROM rollups WHERE res_s = 3600 AND bucket_ms < ?",
                          (_ms(now - self.rollup_hour_retention),)).rowcount
        return n


def _reason(value: str | None) -> Reason | None:
    if value is None:
        return None
    try:
        return Reason(value)
    except ValueError:
        return Reason.INTERNAL_ERROR


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
