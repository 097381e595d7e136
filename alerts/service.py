"""The built-in alerting of ``wardwatch run``: alert engine + durable outbox + notifiers.

Wiring (monitor/commands/run.py): ``AlertService.create`` after the inventory has fully
loaded (nothing is sent before: there is no built-in default recipient), ``attach(engine)``
subscribes to every probe result, ``start()`` starts the tick, persister and senders.

Every result goes to ``AlertEngine.on_result`` on the event loop; the notifications it
returns are queued with a snapshot of the engine's state and committed together by the
persister (alerts/outbox.py explains the commit order). When the store fails, probing goes on,
``storage_failed`` raises one storage_degraded alert and it (and the notifications that
could not be written) go out by ``DirectSender``, which needs no store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alerts.codec import notification_to_json
from alerts.config import AlertingConfig, MaintenanceWindow
from alerts.model import AlertKind, Notification
from alerts.notifiers import alertmanager
from alerts.notifiers.base import Request, Sender, json_body
from alerts.outbox import DirectSender, Outbox, OutboxDB, Routing

if TYPE_CHECKING:
    from monitor.engine import Engine, Entry
    from monitor.inventory import Inventory
    from probes.base import ProbeResult

log = logging.getLogger("wardwatch.alerts")

STATE_SAVE_SECONDS = 15.0  # the engine's counters are saved at least this often while results arrive


def utcnow() -> datetime:
    return datetime.now(UTC)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def alerting_of(inventory: Inventory) -> AlertingConfig | None:
    value = getattr(inventory, "alerting", None)
    return value if isinstance(value, AlertingConfig) else None


def maintenance_of(inventory: Inventory) -> list[MaintenanceWindow]:
    return list(getattr(inventory, "maintenance", None) or [])


def build_policy(cfg: AlertingConfig | None) -> Any:
    from alerts.engine import AlertPolicy

    cfg = cfg or AlertingConfig()
    kwargs: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(AlertPolicy)}
    for key, value in cfg.policy.items():
        if key not in known:
            raise ValueError(f"alerting.policy.{key}: unknown (known: {', '.join(sorted(known))})")
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    if cfg.escalation:
        # The engine's chain: (receiver, seconds unacknowledged before the next one); the first
        # is the routed one (""). The inventory writes each step as "after X, also to R".
        receivers = ["", *(s.receiver for s in cfg.escalation)]
        afters = [s.after for s in cfg.escalation] + [0.0]
        kwargs["escalation"] = tuple(zip(receivers, afters, strict=True))
    return AlertPolicy(**kwargs)


def _window(w: MaintenanceWindow | dict[str, Any], source: str) -> Any:
    from alerts.maintenance import Window

    if isinstance(w, dict):
        if "start" in w:  # a stored Window.to_json()
            return Window.from_json(w)
        w = MaintenanceWindow.model_validate(w)
    return Window(
        unit_code=w.unit_code, service=w.service, start=w.start.astimezone(UTC), end=w.end.astimezone(UTC),
        reason=w.reason, source="inventory" if source == "inventory" else "runtime",
    )


def window_json(w: Any) -> dict[str, Any]:
    d: dict[str, Any] = w.to_json()
    d["from"], d["to"] = d["start"], d["end"]
    return d


class AlertService:
    def __init__(
        self,
        inventory: Inventory,
        db: OutboxDB,
        routing: Routing,
        engine: Any,
        calendar: Any,
        *,
        sender: Sender | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.inventory = inventory
        self.cfg = alerting_of(inventory) or AlertingConfig()
        self.db = db
        self.routing = routing
        self.engine = engine
        self.calendar = calendar
        self.clock = clock
        self.sender = sender or Sender()
        d = self.cfg.delivery
        self.outbox = Outbox(db, routing, self.sender, backoff_initial=d.backoff_initial, backoff_max=d.backoff_max)
        self.direct = DirectSender(routing, self.sender, backoff_initial=d.backoff_initial, backoff_max=d.backoff_max)
        self._pending: list[Notification] = []
        self._dirty = False
        self._kick = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._store_down = False
        self._core_store_errors = 0
        self._last_save = 0.0
        self._last_am_push = 0.0
        self._probe_engine: Engine | None = None
        self.accepted = 0  # notifications committed to the outbox

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def create(cls, inventory: Inventory, store_path: str | Path, *, generator_url: str = "",
               sender: Sender | None = None) -> AlertService:
        """Open the outbox tables, read secrets, restore the engine state; ValueError when unusable."""
        from alerts.engine import AlertEngine
        from alerts.maintenance import MaintenanceCalendar

        cfg = alerting_of(inventory)
        routing = Routing.from_config(cfg, generator_url)
        policy = build_policy(cfg)
        db = OutboxDB(store_path)
        calendar = MaintenanceCalendar()
        for w in maintenance_of(inventory):
            calendar.add(_window(w, "inventory"))
        for data in db.maintenance():
            try:
                calendar.add(_window(data, "runtime"))
            except Exception as e:  # an unreadable row must not stop start-up
                log.error("maintenance window %s unreadable, ignored: %s", data.get("id"), e)
        targets = list(inventory.targets)
        state = None
        try:
            state = db.load_state()
        except Exception as e:
            log.error("cannot read the saved alert state, starting fresh: %s", e)
        engine = None
        if state is not None:
            try:
                engine = AlertEngine.load(policy, targets, state, calendar)
            except Exception as e:
                log.error("saved alert state unusable, starting fresh: %s", e)
        if engine is None:
            engine = AlertEngine(policy, targets, calendar)
        if not routing.receivers:
            log.warning("alerting: no receivers configured; notifications are recorded, not sent")
        return cls(inventory, db, routing, engine, calendar, sender=sender)

    def attach(self, probe_engine: Engine) -> None:
        self._probe_engine = probe_engine
        probe_engine.result_listeners.append(self.on_result)

    def start(self) -> None:
        self.outbox.start()
        self._tasks.append(asyncio.create_task(self._persister(), name="wardwatch-alerts-persist"))
        self._tasks.append(asyncio.create_task(self._ticker(), name="wardwatch-alerts-tick"))

    async def stop(self) -> None:
        """Commit what is pending, then stop the senders (undelivered rows wait for the next start)."""
        with contextlib.suppress(Exception):
            await self._flush()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.outbox.stop()
        await self.direct.stop()
        await self.sender.close()
        with contextlib.suppress(Exception):
            self.db.close()

    # -- input ---------------------------------------------------------------------------------
    def on_result(self, entry: Entry, result: ProbeResult, at: datetime) -> None:
        self.accept(self.engine.on_result(entry.target, result, at))
        self._dirty = True

    def accept(self, notes: Sequence[Notification]) -> None:
        if notes:
            self._pending.extend(notes)
            self._kick.set()

    # -- persisting ----------------------------------------------------------------------------
    async def _persister(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            await self._flush()

    async def _flush(self) -> None:
        async with self._flush_lock:  # one commit at a time: a later state never precedes an older one
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        batch, self._pending = self._pending, []
        # Encoded here, the same instant as the batch, and on the loop: only what changed since
        # the last flush is encoded again (AlertEngine.dump_json). In a thread, the encoding
        # held the GIL the loop needed (bench/hostile.py).
        state = self.engine.dump_json()
        self._dirty = False  # before the await: a change meanwhile marks the next save
        try:
            await self.outbox.write(batch, state)
        except Exception as e:
            self._storage_failed(e)
            if batch:
                log.error("%d notifications not written to the store: sending them directly", len(batch))
                self.direct.send(batch)
            return
        self.accepted += len(batch)
        self._last_save = asyncio.get_running_loop().time()
        if self._store_down and self._core_store_ok():
            self._store_down = False
            log.info("store writable again")
            self.direct.send(self.engine.storage_ok(self.clock()))

    def _core_store_ok(self) -> bool:
        return self._probe_engine is None or self._probe_engine.stats.store_errors == self._core_store_errors

    def _storage_failed(self, exc: BaseException | str) -> None:
        if not self._store_down:
            log.error("store failing (probing goes on; alerts go out directly): %s", exc)
        self._store_down = True
        self.direct.send(self.engine.storage_failed(self.clock(), str(exc)[:200]))

    # -- the clock -----------------------------------------------------------------------------
    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.cfg.delivery.tick)
            try:
                await self.tick(loop.time())
            except Exception:
                log.exception("alert tick failed")

    async def tick(self, mono: float) -> None:
        pe = self._probe_engine
        if pe is not None:
            if pe.inventory is not self.inventory:  # reloaded
                self.inventory = pe.inventory
                self._reconfigure(pe.inventory)
                self.accept(self.engine.set_targets(list(pe.inventory.targets)))
            errors = pe.stats.store_errors
            if errors != self._core_store_errors:
                self._core_store_errors = errors
                self._storage_failed(f"{errors} state-change writes failed")
        self.accept(self.engine.on_tick(self.clock()))
        if self._store_down or (self._dirty and mono - self._last_save >= STATE_SAVE_SECONDS):
            self._kick.set()  # retries the store, and saves the counters
        if mono - self._last_am_push >= self.cfg.delivery.alertmanager_resend:
            self._last_am_push = mono
            await self._resend_to_alertmanager()

    def _reconfigure(self, inventory: Inventory) -> None:
        """A reloaded inventory: its maintenance windows, receivers and routes (secrets re-read;
        on a problem the running receivers stay, like a refused reload)."""
        self.calendar.replace_source("inventory", [_window(w, "inventory") for w in maintenance_of(inventory)])
        cfg = alerting_of(inventory) or AlertingConfig()
        if cfg == self.cfg:
            return
        try:
            routing = Routing.from_config(cfg, self.routing.generator_url)
        except ValueError as e:
            log.error("alerting configuration not applied, keeping the running receivers: %s", e)
            return
        self.cfg = cfg
        self.routing = self.outbox.routing = self.direct.routing = routing
        self.outbox.start()
        log.info("alerting reconfigured: %d receivers", len(routing.receivers))

    async def _resend_to_alertmanager(self) -> None:
        """Alertmanager resolves an alert it has not heard of for resolve_timeout: re-push firing ones."""
        names = [n for n, s in self.routing.receivers.items() if s.config.type == "alertmanager"]
        if not names:
            return
        firing = [r.notification for r in await asyncio.to_thread(self.db.recent, 500)
                  if r.notification.event.value == "firing" and r.receiver in names]
        active = {a.alert.id for a in self.active() if a.notified and a.condition}
        seen: set[str] = set()
        for n in firing:
            if n.alert.id in active and n.alert.id not in seen:
                seen.add(n.alert.id)
                for name in names:
                    if name in self.routing.route(n):
                        ctx = self.routing.context(name)
                        url = self.routing.receivers[name].config.url.rstrip("/") + "/api/v2/alerts"
                        req = Request("POST", url, (("Content-Type", "application/json"),),
                                      json_body([alertmanager.alert_json(n, ctx)]))
                        with contextlib.suppress(Exception):
                            await self.sender.send(req, self.routing.timeout(name))

    # -- /metrics ------------------------------------------------------------------------------
    async def metrics_text(self) -> str:
        """The notifier and alert families of /metrics (exposition text). Every configured
        receiver and every severity/state is present, zeros included, so a dashboard or an
        alert on them has a series from the start; the pending count is left out while the
        store cannot be read (store errors have their own metric)."""
        from monitor.exporter import family_header, labels_text

        receivers = sorted(self.routing.receivers)
        results = self.outbox.results + self.direct.results
        out = [family_header("wardwatch_notifications_total")]
        for r in receivers:
            for res in ("delivered", "failed", "refused"):
                out.append(f"wardwatch_notifications_total{{{labels_text((('receiver', r), ('result', res)))}}} "
                           f"{results.get((r, res), 0)}\n")
        try:
            pending = await asyncio.to_thread(self.db.pending_counts)
        except Exception:
            pending = None
        if pending is not None:
            out.append(family_header("wardwatch_outbox_pending"))
            out += [f"wardwatch_outbox_pending{{{labels_text((('receiver', r),))}}} {pending.get(r, 0)}\n"
                    for r in receivers]
        states: Counter[tuple[str, str]] = Counter()
        for a in self.active():
            if a.condition:
                states[(a.alert.severity, "acked" if a.acked_by else "suppressed" if a.suppressed else "active")] += 1
        out.append(family_header("wardwatch_alerts"))
        for sev in ("page", "ticket", "info"):
            for state in ("active", "suppressed", "acked"):
                out.append(f"wardwatch_alerts{{{labels_text((('severity', sev), ('state', state)))}}} "
                           f"{states.get((sev, state), 0)}\n")
        return "".join(out)

    # -- the API -------------------------------------------------------------------------------
    def active(self) -> list[Any]:
        result: list[Any] = self.engine.active()
        return result

    def alerts_json(self) -> dict[str, Any]:
        rows = []
        for a in self.active():
            d = a.to_json() if hasattr(a, "to_json") else _jsonable(a)
            d["id"] = a.alert.id
            rows.append(d)
        return {"alerts": rows, "receivers": sorted(self.routing.receivers)}

    async def notifications_json(self, limit: int = 100) -> list[dict[str, Any]]:
        out = []
        for r in await asyncio.to_thread(self.db.recent, limit):
            n = notification_to_json(r.notification)
            out.append({
                "dedup_key": r.dedup_key, "receiver": r.receiver or None, "status": r.status(),
                "attempts": r.attempts, "last_error": r.last_error,
                "event": n["event"], "alert_id": n["alert"]["id"], "kind": n["alert"]["kind"],
                "unit_code": n["alert"]["unit_code"], "service": n["alert"]["service"],
                "target": n["alert"]["target"], "at": n["at"],
            })
        return out

    async def ack(self, alert_id: str, by: str) -> bool:
        ok = bool(self.engine.ack(alert_id, by, self.clock()))
        if ok:
            log.info("alert %s acknowledged by %s", alert_id, by)
            self._dirty = True
            self._kick.set()
        return ok

    def maintenance_windows(self) -> list[dict[str, Any]]:
        return [window_json(w) for w in _windows(self.calendar)]

    async def add_maintenance(self, w: MaintenanceWindow) -> dict[str, Any]:
        """Add a run-time window (kept in the store); ValueError for a unit not in the inventory."""
        if w.unit_code is not None and all(u.code != w.unit_code for u in self.inventory.units):
            raise ValueError(f"unit {w.unit_code} is not in the inventory")
        win = _window(w, "runtime")
        data = window_json(win)
        await asyncio.to_thread(self.db.add_maintenance, win.id, win.to_json())
        self.calendar.add(win)
        log.info("maintenance window %s added: unit %s service %s %s..%s (%s)",
                 win.id, win.unit_code, win.service, data["from"], data["to"], win.reason)
        return data

    async def remove_maintenance(self, window_id: str) -> bool:
        win = self.calendar.get(window_id)
        if win is None:
            return False
        if win.source == "inventory":
            raise ValueError(f"window {window_id} is declared in the inventory: remove it there")
        await asyncio.to_thread(self.db.remove_maintenance, window_id)
        self.calendar.remove(window_id)
        return True


def _windows(calendar: Any) -> list[Any]:
    return sorted(calendar, key=lambda w: (w.start, w.id))


__all__ = ["AlertKind", "AlertService"]
