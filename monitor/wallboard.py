"""The built-in status wallboard (``/``), its JSON and server-sent-events API, and the
optional read-only public status page (``/public``).

    GET /                        the wallboard: every unit coloured by its worst state (static HTML + JS)
    GET /static/{file}           its assets (monitor/static/, shipped as package data; no CDN)
    GET /api/v1/wallboard        every unit's worst state, per service, counts, since; certificates expiring soonest
    GET /api/v1/units/{code}     one unit: its targets, their reasons and since-when, recent state changes (store)
    GET /api/v1/events           server-sent events: ``event: units`` with the summaries of units whose
                                 state changed (coalesced over ``COALESCE_SECONDS``), ``: ping`` keep-alives
    GET /public                  read-only public status page (only with ``monitor.public_status: true`` in
    GET /public/status.json      the inventory or ``wardwatch run --public-status``; else 404): per-unit,
                                 per-service state, never a target, an address or a reason; its assets are
                                 under /public/ too, so a proxy can publish /public alone

A unit's state is the worst of its targets': down > unreachable > degraded > unknown > up, where
"degraded" is a link that answers but whose last round graded it degraded (wardwatch_link_quality 1).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from monitor.exporter import EntryView
from monitor.state import Change, State
from monitor.targets import SERVICES

log = logging.getLogger("wardwatch.wallboard")

# Worst first. "degraded" is not a State: an UP link graded degraded by its last round.
RANK: dict[str, int] = {"down": 5, "unreachable": 4, "degraded": 3, "unknown": 2, "up": 1}
DEGRADED = "degraded"
LINK_QUALITY = "wardwatch_link_quality"
CERT_EXPIRY = "probe_ssl_earliest_cert_expiry"
CERTIFICATES_SHOWN = 12
HISTORY_DAYS = 30
HISTORY_LIMIT = 50
COALESCE_SECONDS = 0.3
KEEPALIVE_SECONDS = 15.0
SUBSCRIBER_QUEUE = 64
STATIC_FILES = ("index.html", "wallboard.js", "wallboard.css", "public.html", "public.js", "favicon.svg")
PUBLIC_FILES = {"public.js": "public.js", "wallboard.css": "wallboard.css", "favicon.svg": "favicon.svg"}


# -- what the wallboard reads (monitor.engine.Engine satisfies these) ---------------------------


class BoardUnit(Protocol):
    @property
    def code(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...


class ChangesStore(Protocol):
    def changes_sync(self, key: str | None = None, since: datetime | None = None) -> Sequence[Any]: ...


# -- pure summaries ---------------------------------------------------------------------------


def iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def shown_state(entry: EntryView) -> str:
    """The state a tile shows for one target (adds "degraded" to the engine's states)."""
    state = entry.status.state.value
    if state == State.UP.value and entry.last is not None and entry.last.value(LINK_QUALITY) == 1:
        return DEGRADED
    return state


def worst(states: Iterable[str]) -> str:
    return max(states, key=RANK.__getitem__, default=State.UNKNOWN.value)


def unit_summary(code: int, name: str, kind: str, entries: Sequence[EntryView]) -> dict[str, Any]:
    """One tile: the unit's worst state, per service, counts per state, since when it is in it."""
    services: dict[str, str] = {}
    counts: dict[str, int] = {}
    states: list[tuple[str, EntryView]] = []
    for e in entries:
        s = shown_state(e)
        states.append((s, e))
        svc = e.target.service
        services[svc] = worst((services[svc], s)) if svc in services else s
        counts[s] = counts.get(s, 0) + 1
    w = worst(s for s, _ in states)
    sinces = [e.status.since for s, e in states if s == w and e.status.since is not None]
    return {
        "code": code,
        "name": name,
        "type": kind,
        "worst": w,
        "since": iso(min(sinces)) if sinces and w != "up" else None,
        "services": {s: services[s] for s in _ordered(services)},
        "counts": counts,
    }


def _ordered(services: Iterable[str]) -> list[str]:
    order = {s: i for i, s in enumerate(SERVICES)}
    return sorted(services, key=lambda s: (order.get(s, len(order)), s))


def cert_rows(entries: Iterable[EntryView], now: datetime, limit: int = CERTIFICATES_SHOWN) -> list[dict[str, Any]]:
    """Certificates expiring soonest, from the last result of every TLS, HTTPS and certfile probe."""
    rows: list[tuple[float, dict[str, Any]]] = []
    for e in entries:
        if e.last is None:
            continue
        ts = e.last.value(CERT_EXPIRY)
        if ts is None:
            continue
        t = e.target
        rows.append((ts, {
            "unit_code": t.unit_code, "unit": t.unit_name, "service": t.service, "probe": t.probe,
            "target": t.target, "expires_at": iso(datetime.fromtimestamp(ts, UTC)),
            "days_left": round((ts - now.timestamp()) / 86400, 1),
        }))
    rows.sort(key=lambda r: (r[0], r[1]["target"]))
    return [r for _, r in rows[:limit]]


def target_row(e: EntryView) -> dict[str, Any]:
    t, st, last = e.target, e.status, e.last
    return {
        "key": t.key, "service": t.service, "probe": t.probe, "target": t.target,
        "state": shown_state(e), "since": iso(st.since),
        "reason": st.reason.value if st.reason is not None else None, "message": st.message,
        "last_probe": iso(e.last_at),
        "last_duration_seconds": last.duration_seconds if last is not None else None,
    }


@dataclass(slots=True)
class UnitIndex:
    """unit code -> (name, type, entries), rebuilt when a reload replaces the entries or units."""

    of: tuple[object, object] = (None, None)
    units: dict[int, tuple[str, str]] = field(default_factory=dict)
    keys: dict[int, list[str]] = field(default_factory=dict)


def _units_of(engine: Any) -> list[BoardUnit]:
    return list(getattr(getattr(engine, "inventory", None), "units", None) or [])


def index(engine: Any, cache: UnitIndex) -> UnitIndex:
    entries: Mapping[str, EntryView] = engine.entries
    units = _units_of(engine)
    inventory = getattr(engine, "inventory", None)
    if cache.of[0] is entries and cache.of[1] is inventory:
        return cache
    names: dict[int, tuple[str, str]] = {u.code: (u.name, str(u.type)) for u in units}
    keys: dict[int, list[str]] = {code: [] for code in names}
    for key, e in entries.items():
        t = e.target
        names.setdefault(t.unit_code, (t.unit_name, ""))
        keys.setdefault(t.unit_code, []).append(key)
    cache.of, cache.units, cache.keys = (entries, inventory), names, keys
    return cache


def summaries(engine: Any, idx: UnitIndex, codes: Iterable[int]) -> list[dict[str, Any]]:
    entries: Mapping[str, EntryView] = engine.entries
    out = []
    for code in codes:
        name, kind = idx.units.get(code, (str(code), ""))
        es = [entries[k] for k in idx.keys.get(code, ()) if k in entries]
        out.append(unit_summary(code, name, kind, es))
    return out


def board(engine: Any, idx: UnitIndex, now: datetime, alerts: bool) -> dict[str, Any]:
    units = summaries(engine, idx, idx.units)
    totals: dict[str, int] = {}
    for u in units:
        totals[u["worst"]] = totals.get(u["worst"], 0) + 1
    present = {s for u in units for s in u["services"]}
    inv = getattr(engine, "inventory", None)
    return {
        "generated_at": iso(now),
        "province": getattr(inv, "province_name", None),
        "services": _ordered(present),
        "units": units,
        "totals": totals,
        "certificates": cert_rows(engine.entries.values(), now),
        "alerts": "/api/v1/alerts" if alerts else None,
    }


def public_board(engine: Any, idx: UnitIndex, now: datetime) -> dict[str, Any]:
    """What the public page may show: unit code, name, worst and per-service state. Nothing else;
    "unreachable" (an internal dependency detail) is shown as "down"."""

    def public(state: str) -> str:
        return "down" if state == State.UNREACHABLE.value else state

    return {
        "generated_at": iso(now),
        "units": [
            {"code": u["code"], "name": u["name"], "worst": public(u["worst"]),
             "services": {s: public(v) for s, v in u["services"].items()}}
            for u in summaries(engine, idx, idx.units)
        ],
    }


# -- live updates -----------------------------------------------------------------------------


class Hub:
    """Engine state changes -> coalesced ``units`` events to every /api/v1/events subscriber."""

    def __init__(self, engine: Any, idx: UnitIndex) -> None:
        self.engine = engine
        self.idx = idx
        self.subscribers: set[asyncio.Queue[bytes | None]] = set()
        self._pending: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._listener: Callable[[Any, Change], None] | None = None

    def attach(self) -> None:
        listeners = getattr(self.engine, "listeners", None)
        if isinstance(listeners, list):
            self._listener = self.on_change
            listeners.append(self._listener)

    def detach(self) -> None:
        listeners = getattr(self.engine, "listeners", None)
        if isinstance(listeners, list) and self._listener in listeners:
            listeners.remove(self._listener)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for q in list(self.subscribers):
            self._offer(q, None)

    def on_change(self, entry: Any, change: Change) -> None:
        """An engine listener (called on the loop): must never raise into the engine."""
        if not self.subscribers:
            return
        try:
            self._pending.add(entry.target.unit_code)
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(COALESCE_SECONDS, self._flush_safely)
        except Exception:
            log.exception("wallboard: cannot queue a live update")

    def _flush_safely(self) -> None:
        try:
            self.flush()
        except Exception:
            log.exception("wallboard: cannot send a live update")

    def flush(self) -> None:
        self._timer = None
        codes, self._pending = sorted(self._pending), set()
        if not codes or not self.subscribers:
            return
        idx = index(self.engine, self.idx)
        body = json.dumps({"units": summaries(self.engine, idx, codes)}, ensure_ascii=False, separators=(",", ":"))
        event = f"event: units\ndata: {body}\n\n".encode()
        for q in list(self.subscribers):
            self._offer(q, event)

    def _offer(self, q: asyncio.Queue[bytes | None], item: bytes | None) -> None:
        try:
            q.put_nowait(item)
        except asyncio.QueueFull:  # a stalled client: drop it; its browser reconnects and reloads
            self.subscribers.discard(q)
            q.get_nowait()
            q.put_nowait(None)


# -- handlers ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Wallboard:
    engine: Any
    static: Path
    public: bool = False  # wardwatch run --public-status; the inventory's monitor.public_status also turns it on
    idx: UnitIndex = field(default_factory=UnitIndex)
    hub: Hub | None = None

    def public_enabled(self) -> bool:
        """Read at every request, so an inventory reload turns the page on or off."""
        mon = getattr(getattr(self.engine, "inventory", None), "monitor", None)
        return self.public or getattr(mon, "public_status", False) is True


WALLBOARD = web.AppKey("wallboard", Wallboard)


def _json(data: Any) -> web.Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return web.Response(body=body, content_type="application/json", charset="utf-8",
                        headers={"Cache-Control": "no-store"})


def _file(wb: Wallboard, name: str) -> web.FileResponse:
    return web.FileResponse(wb.static / name, headers={"Cache-Control": "no-cache"})


def _has_alerts(app: web.Application) -> bool:
    return any(getattr(r, "canonical", None) == "/api/v1/alerts" for r in app.router.resources())


async def index_page(request: web.Request) -> web.FileResponse:
    return _file(request.app[WALLBOARD], "index.html")


async def static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    return _file(request.app[WALLBOARD], name)


async def favicon(request: web.Request) -> web.FileResponse:
    return _file(request.app[WALLBOARD], "favicon.svg")


async def wallboard_json(request: web.Request) -> web.Response:
    wb = request.app[WALLBOARD]
    idx = index(wb.engine, wb.idx)  # on the loop; the summaries are built off it (3k units nationally)
    data = await asyncio.to_thread(board, wb.engine, idx, datetime.now(UTC), _has_alerts(request.app))
    return _json(data)


async def unit_json(request: web.Request) -> web.Response:
    wb = request.app[WALLBOARD]
    try:
        code = int(request.match_info["code"])
    except ValueError:
        return web.json_response({"error": "unit code must be a number"}, status=400)
    idx = index(wb.engine, wb.idx)
    if code not in idx.units:
        return web.json_response({"error": f"no unit {code}"}, status=404)
    entries: Mapping[str, EntryView] = wb.engine.entries
    es = [entries[k] for k in idx.keys.get(code, ()) if k in entries]
    name, kind = idx.units[code]
    out = unit_summary(code, name, kind, es)
    unit = next((u for u in _units_of(wb.engine) if u.code == code), None)
    out["merged_from"] = [{"code": m.code, "name": m.name} for m in getattr(unit, "merged_from", None) or []]
    order = {s: i for i, s in enumerate(SERVICES)}
    rows = [target_row(e) for e in es]
    rows.sort(key=lambda r: (-RANK[r["state"]], order.get(r["service"], 99), r["probe"], r["target"]))
    out["targets"] = rows
    store = getattr(wb.engine, "store", None)
    out["history"] = await asyncio.to_thread(_history, store, es) if store is not None else []
    return _json(out)


def _history(store: ChangesStore, entries: Sequence[EntryView]) -> list[dict[str, Any]]:
    """The unit's recent state changes, newest first (a thread: SQLite reads block)."""
    since = datetime.now(UTC) - timedelta(days=HISTORY_DAYS)
    targets = {e.target.key: e.target for e in entries}
    rows: list[tuple[datetime, dict[str, Any]]] = []
    for key, t in targets.items():
        try:
            changes = store.changes_sync(key=key, since=since)
        except Exception as exc:  # a broken store must not break the page
            log.warning("cannot read state changes of %s: %s", key, exc)
            return []
        for c in changes[-HISTORY_LIMIT:]:
            rows.append((c.at, {
                "at": iso(c.at), "service": t.service, "probe": t.probe, "target": t.target,
                "old": c.old.value, "new": c.new.value, "reason": c.reason, "message": c.message,
            }))
    rows.sort(key=lambda r: r[0], reverse=True)
    return [r for _, r in rows[:HISTORY_LIMIT]]


async def events(request: web.Request) -> web.StreamResponse:
    wb = request.app[WALLBOARD]
    hub = wb.hub
    if hub is None:
        raise web.HTTPServiceUnavailable(text="live updates not running")
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
    })
    await resp.prepare(request)
    q: asyncio.Queue[bytes | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
    hub.subscribers.add(q)
    try:
        await resp.write(b"retry: 3000\nevent: hello\ndata: {}\n\n")
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    item = await q.get()
            except TimeoutError:
                item = b": ping\n\n"
            if item is None:
                break
            await resp.write(item)
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        hub.subscribers.discard(q)
    return resp


# -- the public page --------------------------------------------------------------------------


def _public_only(wb: Wallboard) -> None:
    if not wb.public_enabled():
        raise web.HTTPNotFound(text="the public status page is off (monitor.public_status, --public-status)")


async def public_page(request: web.Request) -> web.FileResponse:
    wb = request.app[WALLBOARD]
    _public_only(wb)
    return _file(wb, "public.html")


async def public_asset(request: web.Request) -> web.FileResponse:
    wb = request.app[WALLBOARD]
    _public_only(wb)
    name = PUBLIC_FILES.get(request.match_info["name"])
    if name is None:
        raise web.HTTPNotFound()
    return _file(wb, name)


async def public_json(request: web.Request) -> web.Response:
    wb = request.app[WALLBOARD]
    _public_only(wb)
    idx = index(wb.engine, wb.idx)
    return _json(await asyncio.to_thread(public_board, wb.engine, idx, datetime.now(UTC)))


# -- registration -----------------------------------------------------------------------------


def static_dir() -> Path:
    return Path(str(resources.files("monitor") / "static"))


def settings(app: web.Application) -> Wallboard:
    """The wallboard's settings of a created app (``wardwatch run --public-status`` sets ``public``)."""
    return app[WALLBOARD]


def register(app: web.Application, engine: object, *, public: bool = False) -> None:
    wb = Wallboard(engine=engine, static=static_dir(), public=public)
    app[WALLBOARD] = wb

    async def start(_: web.Application) -> None:
        wb.hub = Hub(engine, wb.idx)
        wb.hub.attach()

    async def stop(_: web.Application) -> None:  # before aiohttp waits for open handlers
        if wb.hub is not None:
            wb.hub.detach()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    r = app.router
    r.add_get("/", index_page)
    r.add_get("/favicon.ico", favicon)
    r.add_get("/static/{name}", static)
    r.add_get("/api/v1/wallboard", wallboard_json)
    r.add_get("/api/v1/units/{code}", unit_json)
    r.add_get("/api/v1/events", events)
    r.add_get("/public", public_page)
    r.add_get("/public/status.json", public_json)
    r.add_get("/public/{name}", public_asset)

