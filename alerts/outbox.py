"""Durable, at-least-once delivery of notifications, with their deduplication key.

Order of commits (what makes it safe against SIGKILL at any instant):

1. The alert engine decides notifications; they are held in memory with a snapshot of the
   engine's state taken at the same instant on the event loop.
2. ``Outbox.write`` commits, in ONE SQLite transaction (synchronous=FULL), one outbox row per
   (dedup key, receiver) and the engine's state. Only after this commit does a notification
   count as accepted. Killed before it: neither the rows nor the state that produced them
   exist; the restarted engine starts from the older state and decides them again from the
   next probe results. Killed after it: both exist and agree.
3. A per-receiver sender delivers pending rows oldest first and then marks each delivered
   (a second commit). **The one window for a duplicate** is between the receiver accepting a
   delivery and that mark being committed: after a crash there the row is sent again with the
   same dedup key (webhook header and payload ``dedup_key``, e-mail Message-ID, Alertmanager's
   identical label set), which lets the receiver drop it. Nothing delivered and marked is
   ever sent again; nothing committed is lost.

While a receiver fails, its sender backs off exponentially (``backoff_initial`` doubling up
to ``backoff_max``, with ±20 % jitter) and keeps its rows in order. A 4xx answer (other than
408/425/429) is permanent: the row is marked given-up with the error, and logged.

The store failing never stops probing and never loses a page: ``DirectSender`` delivers from
memory with the same backoff, used for ``storage_degraded`` and for notifications that could
not be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerts import notifiers
from alerts.codec import notification_from_json, notification_to_json
from alerts.config import AlertingConfig
from alerts.model import Notification
from alerts.notifiers.base import DeliveryError, RenderContext, Request, Sender
from alerts.templates import Texts
from monitor.secrets import Secret, check

log = logging.getLogger("wardwatch.alerts.outbox")

RECORD_ONLY = ""  # the receiver of a row kept for the record when nothing is configured


def _ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def _now_ms() -> int:
    return round(time.time() * 1000)


# -- routing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiverSpec:
    name: str
    config: Any  # one of alerts.config's receiver models
    secret: Secret | None = None  # read (loaded) already; revealed only when a request is rendered


class Routing:
    """Who gets what, and how each receiver's messages are rendered."""

    def __init__(self, cfg: AlertingConfig, receivers: dict[str, ReceiverSpec], generator_url: str = "") -> None:
        self.cfg = cfg
        self.receivers = receivers
        self.texts = Texts(
            language=cfg.language,
            timezone=cfg.timezone,
            dashboard_url=cfg.dashboard_url,
            overrides=tuple((k, v) for k, v in cfg.templates.model_dump().items() if v is not None),
        )
        self.generator_url = generator_url

    @classmethod
    def from_config(cls, cfg: AlertingConfig | None, generator_url: str = "") -> Routing:
        """Read every receiver's secret now; ValueError naming the receiver (never the value)."""
        cfg = cfg or AlertingConfig()
        specs: dict[str, ReceiverSpec] = {}
        problems: list[str] = []
        for name, rc in cfg.receivers.items():
            secret = rc.secret
            if secret is not None:
                # the inventory loader located it (FILE:LINE: field); a config built in code names the key
                secret.where = secret.where or f"alerting.receivers.{name}.{rc.secrets()[0][0]}"
                problems += check([secret])
            specs[name] = ReceiverSpec(name, rc, secret)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(cfg, specs, generator_url)

    def route(self, n: Notification) -> list[str]:
        if n.receiver:
            return [n.receiver] if n.receiver in self.receivers else []
        a = n.alert
        out: list[str] = []
        for r in self.cfg.routes:
            if r.matches(a.service, a.unit_code, a.kind.value, a.severity):
                out.extend(x for x in r.receivers if x not in out)
                if not r.continue_:
                    return out
        if not out:
            out = list(self.cfg.default_receivers)
        return out

    def context(self, name: str) -> RenderContext:
        spec = self.receivers[name]
        gen = getattr(spec.config, "generator_url", None) or self.generator_url
        return RenderContext(texts=self.texts, receiver=name, secret=spec.secret, generator_url=gen)

    def render(self, name: str, n: Notification) -> Request:
        return notifiers.render(n, self.receivers[name].config, self.context(name))

    def timeout(self, name: str) -> float:
        return float(self.receivers[name].config.timeout)


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    dedup_key: str
    receiver: str
    notification: Notification
    attempts: int
    next_attempt_at_ms: int
    delivered_at_ms: int | None
    gave_up_at_ms: int | None
    last_error: str
    created_at_ms: int

    def status(self) -> str:
        if self.delivered_at_ms is not None:
            return "delivered"
        if self.receiver == RECORD_ONLY:
            return "recorded"
        if self.gave_up_at_ms is not None:
            return "failed"
        return "pending"


_COLUMNS = ("id, dedup_key, receiver, payload, attempts, next_attempt_at_ms, delivered_at_ms, gave_up_at_ms,"
            " last_error, created_at_ms")


def _row(r: tuple[Any, ...]) -> Row:
    return Row(r[0], r[1], r[2], notification_from_json(json.loads(r[3])), r[4], r[5], r[6], r[7], r[8], r[9])


class OutboxDB:
    """The outbox, alert-state and maintenance tables of the store (schema v3, monitor/store.py).

    Its own SQLite connection (WAL: the store's writer thread and this one take turns),
    synchronous=FULL, one lock so calls from worker threads never interleave.
    """

    def __init__(self, path: str | Path) -> None:
        from monitor.store import connect, migrate

        self.path = Path(path)
        self._conn = connect(self.path)
        migrate(self._conn)
        self._lock = threading.Lock()
        self.fail: Callable[[], None] | None = None  # tests: raise inside a transaction

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(conn)
                if self.fail is not None:
                    self.fail()
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return out

    def write(self, rows: Sequence[tuple[str, str, str, int]], state: str | None) -> int:
        """Insert (dedup_key, receiver, payload, next_attempt_ms) rows (repeats ignored) and the
        engine state, atomically; returns how many rows were new."""

        def fn(conn: sqlite3.Connection) -> int:
            now = _now_ms()
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO outbox (dedup_key, receiver, payload, created_at_ms, next_attempt_at_ms,"
                " gave_up_at_ms, last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (k, r, p, now, nxt, now if r == RECORD_ONLY else None,
                     "no receiver configured" if r == RECORD_ONLY else "")
                    for k, r, p, nxt in rows
                ],
            )
            new = conn.total_changes - before
            if state is not None:
                conn.execute(
                    "INSERT INTO alert_state (id, saved_at_ms, data) VALUES (1, ?, ?)"
                    " ON CONFLICT(id) DO UPDATE SET saved_at_ms=excluded.saved_at_ms, data=excluded.data",
                    (now, state),
                )
            return new

        result: int = self._tx(fn)
        return result

    def pending(self, receiver: str, limit: int = 50) -> list[Row]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE receiver = ? AND delivered_at_ms IS NULL"
                " AND gave_up_at_ms IS NULL ORDER BY id LIMIT ?",
                (receiver, limit),
            ).fetchall()
        return [_row(r) for r in rows]

    def pending_receivers(self) -> set[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT receiver FROM outbox WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL"
            ).fetchall()
        return {r[0] for r in rows}

    def delivered(self, row_id: int, at_ms: int) -> None:
        self._tx(lambda c: c.execute("UPDATE outbox SET delivered_at_ms = ?, attempts = attempts + 1,"
                                     " last_error = '' WHERE id = ?", (at_ms, row_id)))

    def failed(self, row_id: int, next_ms: int, error: str, give_up: bool) -> None:
        self._tx(lambda c: c.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at_ms = ?, last_error = ?,"
            " gave_up_at_ms = ? WHERE id = ?",
            (next_ms, error[:500], _now_ms() if give_up else None, row_id),
        ))

    def recent(self, limit: int = 200) -> list[Row]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_row(r) for r in rows]

    def pending_counts(self) -> dict[str, int]:
        """Notifications not yet delivered and still being retried, per receiver."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT receiver, count(*) FROM outbox WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL"
                " AND receiver != '' GROUP BY receiver"
            ).fetchall()
        return {str(k): int(v) for k, v in rows}

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT CASE WHEN delivered_at_ms IS NOT NULL THEN 'delivered' WHEN receiver = '' THEN 'recorded'"
                " WHEN gave_up_at_ms IS NOT NULL THEN 'failed' ELSE 'pending' END, count(*) FROM outbox GROUP BY 1"
            ).fetchall()
        return {k: int(v) for k, v in rows}

    # -- alert state and maintenance ------------------------------------------------------------
    def load_state(self) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT data FROM alert_state WHERE id = 1").fetchone()
        return json.loads(row[0]) if row else None

    def save_state(self, state: str) -> None:
        self.write([], state)

    def maintenance(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT data FROM maintenance ORDER BY id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def add_maintenance(self, window_id: str, data: dict[str, Any]) -> None:
        self._tx(lambda c: c.execute(
            "INSERT OR REPLACE INTO maintenance (id, data) VALUES (?, ?)", (window_id, json.dumps(data))
        ))

    def remove_maintenance(self, window_id: str) -> bool:
        removed: int = self._tx(lambda c: c.execute("DELETE FROM maintenance WHERE id = ?", (window_id,)).rowcount)
        return removed > 0


# -- backoff -----------------------------------------------------------------------------------


def backoff(attempts: int, initial: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before attempt ``attempts + 1``: initial x 2^(attempts-1), capped, ±20 % jitter."""
    base = min(cap, initial * 2.0 ** max(0, attempts - 1))
    return base * (0.8 + 0.4 * rand())


# -- the durable outbox ------------------------------------------------------------------------


class Outbox:
    def __init__(
        self,
        db: OutboxDB,
        routing: Routing,
        sender: Sender,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.db = db
        self.routing = routing
        self.sender = sender
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._warned_no_receiver = False
        self.sent = 0
        self.errors = 0
        # (receiver, delivered | failed | refused): one per delivery attempt, for /metrics.
        self.results: Counter[tuple[str, str]] = Counter()

    def rows_for(self, notes: Sequence[Notification]) -> list[tuple[str, str, str, int]]:
        rows: list[tuple[str, str, str, int]] = []
        for n in notes:
            payload = json.dumps(notification_to_json(n), ensure_ascii=False)
            targets = self.routing.route(n)
            if not targets:
                if not self.routing.receivers and not self._warned_no_receiver:
                    self._warned_no_receiver = True
                    log.warning("no alert receivers configured: notifications are recorded (wardwatch alerts list),"
                                " not sent")
                rows.append((n.dedup_key, RECORD_ONLY, payload, 0))
            rows.extend((n.dedup_key, r, payload, 0) for r in targets)
        return rows

    async def write(self, notes: Sequence[Notification], state: str | None) -> int:
        """Commit the notifications (one row per receiver) and the engine state; raises on a store error."""
        rows = self.rows_for(notes)
        new = await asyncio.to_thread(self.db.write, rows, state)
        for _, receiver, _, _ in rows:
            if receiver != RECORD_ONLY:
                self.wake(receiver)
        return new

    # -- senders ------------------------------------------------------------------------------
    def start(self) -> None:
        for name in self.routing.receivers:
            self._ensure(name)

    def _ensure(self, name: str) -> None:
        if name not in self._tasks and name in self.routing.receivers:
            self._wake[name] = asyncio.Event()
            self._tasks[name] = asyncio.create_task(self._run(name), name=f"wardwatch-outbox-{name}")

    def wake(self, receiver: str) -> None:
        self._ensure(receiver)
        ev = self._wake.get(receiver)
        if ev is not None:
            ev.set()

    async def stop(self) -> None:
        for t in self._tasks.values():
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def _run(self, name: str) -> None:
        wake = self._wake[name]
        while True:
            delay = 30.0
            try:
                delay = await self._drain(name)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the store failing: try again later, never crash the sender
                log.error("outbox %s: cannot read or update the store: %s", name, e)
                delay = min(self.backoff_max, 5.0)
            wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wake.wait()

    async def _drain(self, name: str) -> float:
        """Deliver what is due; return how long to sleep (until the next retry, or idle)."""
        while True:
            rows = await asyncio.to_thread(self.db.pending, name)
            if not rows:
                return 60.0
            now = _now_ms()
            for row in rows:
                if row.next_attempt_at_ms > now:
                    return (row.next_attempt_at_ms - now) / 1000  # in order: wait for the head
                try:
                    req = self.routing.render(name, row.notification)
                    await self.sender.send(req, self.routing.timeout(name))
                except DeliveryError as e:
                    self.errors += 1
                    self.results[(name, "refused" if e.permanent else "failed")] += 1
                    wait = backoff(row.attempts + 1, self.backoff_initial, self.backoff_max)
                    await asyncio.to_thread(self.db.failed, row.id, _now_ms() + round(wait * 1000), str(e),
                                            e.permanent)
                    if e.permanent:
                        log.error("alert %s to %s refused, not retried: %s", row.dedup_key, name, e)
                        continue
                    log.warning("alert %s to %s failed (attempt %d), retry in %.1fs: %s",
                                row.dedup_key, name, row.attempts + 1, wait, e)
                    return wait
                except Exception as e:  # a rendering bug: keep it from blocking the receiver forever
                    self.errors += 1
                    self.results[(name, "refused")] += 1
                    log.exception("alert %s to %s: cannot render", row.dedup_key, name)
                    await asyncio.to_thread(self.db.failed, row.id, _now_ms(), f"render: {e}", True)
                    continue
                await asyncio.to_thread(self.db.delivered, row.id, _now_ms())
                self.sent += 1
                self.results[(name, "delivered")] += 1
                log.info("alert %s delivered to %s", row.dedup_key, name)


# -- the path that needs no store ----------------------------------------------------------------


class DirectSender:
    """Delivers from memory with retries (storage_degraded, and pages the store could not keep)."""

    def __init__(self, routing: Routing, sender: Sender, *, backoff_initial: float = 1.0,
                 backoff_max: float = 300.0) -> None:
        self.routing = routing
        self.sender = sender
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.results: Counter[tuple[str, str]] = Counter()  # as Outbox.results

    def send(self, notes: Sequence[Notification]) -> None:
        for n in notes:
            receivers = self.routing.route(n)
            if not receivers:
                log.warning("alert %s (%s): no receiver, not sent", n.dedup_key, n.event.value)
            for name in receivers:
                t = asyncio.create_task(self._deliver(name, n))
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)

    async def _deliver(self, name: str, n: Notification) -> None:
        attempts = 0
        while True:
            attempts += 1
            try:
                await self.sender.send(self.routing.render(name, n), self.routing.timeout(name))
            except DeliveryError as e:
                self.results[(name, "refused" if e.permanent else "failed")] += 1
                if e.permanent:
                    log.error("alert %s to %s refused (direct path): %s", n.dedup_key, name, e)
                    return
                wait = backoff(attempts, self.backoff_initial, self.backoff_max)
                log.warning("alert %s to %s failed (direct path, attempt %d), retry in %.1fs: %s",
                            n.dedup_key, name, attempts, wait, e)
                await asyncio.sleep(wait)
                continue
            self.sent += 1
            self.results[(name, "delivered")] += 1
            log.info("alert %s delivered to %s (direct path, not via the store)", n.dedup_key, name)
            return

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def utcnow() -> datetime:
    return datetime.now(UTC)
