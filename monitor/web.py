"""The HTTP face of wardwatch: /metrics, blackbox-style /probe, health, targets API, reload.

Endpoints
  GET  /metrics           every target's last observations + wardwatch's own (exporter.py);
                          rendered in a worker thread, gzipped when the client accepts it;
                          concurrent scrapes share one render.
  GET  /probe             blackbox_exporter's multi-target endpoint: ?module=M&target=T[&debug=true].
  GET  /healthz           200 "OK" while the process serves.
  GET  /readyz            200 once the first round of probes is done, else 503.
  GET  /api/v1/targets    JSON list of targets and their state; filters unit_code, service, state.
  POST /-/reload          re-read the inventory and the web config (PUT too, like Prometheus); 400
                          lists the problems.
  /api/v1/alerts, /api/v1/maintenance: see monitor/web_alerts.py (when alerting runs).
  /, /api/v1/wallboard, /api/v1/units/{code}, /api/v1/events, /public: see monitor/wallboard.py.

TLS, basic auth with roles, request size and rate limits: monitor/webconfig.py (the file),
monitor/webauth.py (the middleware every request goes through).
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from monitor import wallboard, web_alerts, webauth
from monitor.exporter import CONTENT_TYPE, EngineView, EntryView, MetricsRenderer, render_samples, snapshot
from monitor.secrets import scrub
from monitor.state import State
from monitor.targets import Target
from monitor.web_alerts import AlertsView
from monitor.webconfig import WebConfig
from probes import addrguard, registry
from probes.base import ProbeConfig, ProbeContext
from probes.runner import common_samples, run_probe

log = logging.getLogger("wardwatch.web")

DEFAULT_PROBE_TIMEOUT = 10.0
# blackbox_exporter keeps this much of Prometheus' scrape timeout for the answer itself.
SCRAPE_TIMEOUT_OFFSET = 0.5
# Below this size gzip costs more than it saves.
GZIP_MIN_BYTES = 1024


# -- what the web layer reads (monitor.engine.Engine and monitor.inventory satisfy these) --------


class ModuleView(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def probe(self) -> str: ...
    @property
    def config(self) -> ProbeConfig: ...
    @property
    def timeout(self) -> float: ...


class MonitorSettingsView(Protocol):
    @property
    def allow_any_target(self) -> bool: ...
    @property
    def probe_allow(self) -> Sequence[str]: ...
    @property
    def probe_deny(self) -> Sequence[str]: ...


class InventoryView(Protocol):
    @property
    def monitor(self) -> MonitorSettingsView: ...
    @property
    def modules(self) -> Mapping[str, ModuleView]: ...
    @property
    def targets(self) -> list[Target]: ...


class WebEngine(EngineView, Protocol):
    @property
    def inventory(self) -> InventoryView: ...
    @property
    def ready(self) -> asyncio.Event: ...
    async def reload(self) -> list[str]: ...
    def context(self, timeout: float) -> ProbeContext: ...


# -- /metrics ----------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Rendered:
    body: bytes
    gzipped: bytes | None


class MetricsCache:
    """One render at a time; scrapes that arrive meanwhile get that render's answer."""

    def __init__(self, renderer: MetricsRenderer) -> None:
        self.renderer = renderer
        self._pending: asyncio.Future[bytes] | None = None

    async def body(self, engine: EngineView) -> bytes:
        if self._pending is None:
            snap = snapshot(engine)  # on the loop: the counters it copies are mutated here
            fut = asyncio.ensure_future(asyncio.to_thread(self.renderer.render, snap))
            self._pending = fut
            fut.add_done_callback(self._done)
        # shield: one scraper going away must not cancel the render others wait for.
        return await asyncio.shield(self._pending)

    def _done(self, fut: asyncio.Future[bytes]) -> None:
        if self._pending is fut:
            self._pending = None
        if not fut.cancelled():
            fut.exception()  # retrieved, so a failed render is not also logged as "never retrieved"


def accepts_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _gzip(body: bytes) -> bytes:
    # Level 1: ~0.2 s for 120 MB of exposition (about 7 MB out); higher levels buy little here.
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1, mtime=0) as f:
        f.write(body)
    return buf.getvalue()


async def metrics(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    body = await request.app[METRICS].body(engine)
    alerts = request.app.get(web_alerts.ALERTS)
    if alerts is not None:  # a few lines, rendered per scrape (not shared like the targets' render)
        body += (await alerts.metrics_text()).encode()
    headers = {"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"}
    if accepts_gzip(request) and len(body) >= GZIP_MIN_BYTES:
        body = await asyncio.to_thread(_gzip, body)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


# -- /probe ------------------------------------------------------------------------------------


class AllowedTargets:
    """(probe kind, target) pairs of the running inventory, rebuilt when a reload replaces it."""

    def __init__(self) -> None:
        self._of: object = None
        self._pairs: frozenset[tuple[str, str]] = frozenset()

    def allows(self, inventory: InventoryView, kind: str, target: str) -> bool:
        if inventory is not self._of:
            self._pairs = frozenset((t.probe, t.target) for t in inventory.targets)
            self._of = inventory
        return (kind, target) in self._pairs


def probe_timeout(header: str | None, module_timeout: float | None) -> float:
    """blackbox_exporter's rule: the scrape timeout minus 0.5 s, capped by the module's timeout.

    Raises ValueError for a header that is not a number.
    """
    limit = module_timeout if module_timeout and module_timeout > 0 else None
    if not header:
        return limit or DEFAULT_PROBE_TIMEOUT
    scrape = float(header)
    if not math.isfinite(scrape):
        raise ValueError(header)
    if scrape <= 0:
        return limit or DEFAULT_PROBE_TIMEOUT
    budget = scrape - SCRAPE_TIMEOUT_OFFSET
    if budget <= 0:
        return limit or DEFAULT_PROBE_TIMEOUT
    return min(budget, limit) if limit is not None else budget


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(scrub(self.format(record)))


async def probe(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    q = request.query
    module_name = q.get("module", "http_2xx")  # blackbox's default module name
    target = q.get("target", "")
    if not target:
        return _text(400, "Target parameter is missing")
    inv = engine.inventory
    module = inv.modules.get(module_name)
    if module is not None:
        kind, cfg, mod_timeout = module.probe, module.config, module.timeout
    elif module_name in registry.KINDS:
        spec = registry.get(module_name)
        try:
            cfg = spec.config()
        except ValueError as e:  # a kind with required options (dns: query_name) needs a named module
            first = e.errors()[0] if isinstance(e, ValidationError) and e.errors() else None
            what = f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else str(e)
            return _text(400, f'Module "{module_name}" needs options ({what}): name a module in monitor.modules')
        kind, mod_timeout = module_name, DEFAULT_PROBE_TIMEOUT
    else:
        return _text(400, f'Unknown module "{module_name}"')
    try:
        timeout = probe_timeout(request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"), mod_timeout)
    except ValueError:
        return _text(400, "Failed to parse timeout from Prometheus header")
    in_inventory = request.app[ALLOWED].allows(inv, kind, target)
    if not inv.monitor.allow_any_target and not in_inventory:
        return _text(
            403,
            f"target {target!r} is not in the inventory for probe {kind}: /probe only checks "
            "inventory targets unless monitor.allow_any_target is true",
        )
    if not in_inventory and kind == "certfile":  # a local path, not an address: no policy can judge it
        return _text(
            403, f"probe certfile reads local files: /probe runs it for inventory targets only, not {target!r}"
        )

    ctx = engine.context(timeout)
    if not in_inventory:  # anyone's target: every address it reaches goes through the guard
        ctx.guard = addrguard.policy(tuple(inv.monitor.probe_allow), tuple(inv.monitor.probe_deny))
    debug = q.get("debug", "").lower() == "true"
    capture: _Capture | None = None
    if debug:
        capture = _Capture()
        logger = logging.Logger(f"wardwatch.probe.debug.{kind}", logging.DEBUG)  # not registered: no leak
        logger.addHandler(capture)
        logger.propagate = False
        ctx.logger = logger
    spec = registry.get(kind)
    result = await run_probe(spec, target, cfg, ctx)
    text = render_samples((*result.samples, *common_samples(result, timeout)))
    if not debug:
        return web.Response(text=text, headers={"Content-Type": CONTENT_TYPE})
    assert capture is not None
    outcome = "succeeded" if result.success else f"failed ({result.reason}: {result.message})"
    report = (
        "Logs for the probe:\n"
        + "".join(f"{line}\n" for line in capture.lines)
        + f"Probe {outcome} in {result.duration_seconds:.6f}s\n"
        + "\n\n\nMetrics that would have been returned:\n"
        + text
        + "\n\n\nModule configuration:\n"
        + f"probe: {kind}\ntimeout: {timeout:g}s\n"
        + json.dumps(cfg.model_dump(mode="json"), indent=2, ensure_ascii=False, default=str)
        + "\n"
    )
    return web.Response(text=scrub(report), content_type="text/plain")


# -- health, targets, reload ------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="OK", content_type="text/plain")


async def readyz(request: web.Request) -> web.Response:
    if request.app[ENGINE].ready.is_set():
        return web.Response(text="OK", content_type="text/plain")
    return web.Response(status=503, text="not ready: the first round of probes is running", content_type="text/plain")


def _iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def _target_rows(
    entries: Sequence[tuple[str, EntryView]], unit_code: int | None, service: str | None, state: str | None
) -> bytes:
    """The /api/v1/targets body; run in a thread (33k rows take a while to build and encode)."""
    rows: list[dict[str, Any]] = []
    for key, e in entries:
        t = e.target
        st = e.status
        if unit_code is not None and t.unit_code != unit_code:
            continue
        if service is not None and t.service != service:
            continue
        if state is not None and st.state.value != state:
            continue
        last = e.last
        rows.append(
            {
                "key": key,
                "unit_code": t.unit_code,
                "unit": t.unit_name,
                "service": t.service,
                "probe": t.probe,
                "target": t.target,
                "state": st.state.value,
                "since": _iso(st.since),
                "reason": st.reason.value if st.reason is not None else None,
                "message": st.message,
                "last_probe": _iso(e.last_at),
                "last_duration_seconds": last.duration_seconds if last is not None else None,
                "success": last.success if last is not None else None,
            }
        )
    return json.dumps(rows, ensure_ascii=False).encode()


async def targets(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    q = request.query
    unit_code: int | None = None
    if "unit_code" in q:
        try:
            unit_code = int(q["unit_code"])
        except ValueError:
            return web.json_response({"error": f"unit_code must be a number, got {q['unit_code']!r}"}, status=400)
    service = q.get("service")
    state = q.get("state")
    if state is not None and state not in {s.value for s in State}:
        return web.json_response(
            {"error": f"state must be one of {', '.join(s.value for s in State)}, got {state!r}"}, status=400
        )
    items = tuple(engine.entries.items())  # on the loop; the rows are built off it
    body = await asyncio.to_thread(_target_rows, items, unit_code, service, state)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def reload_config(app: web.Application) -> list[str]:
    """SIGHUP and POST /-/reload: the inventory, then the web config; the problems of both."""
    problems = await app[ENGINE].reload()
    return problems + await webauth.reload(app)


async def reload(request: web.Request) -> web.Response:
    problems = await reload_config(request.app)
    if problems:
        return web.json_response({"status": "error", "problems": problems}, status=400)
    return web.json_response({"status": "success"})


# -- the app ----------------------------------------------------------------------------------

ENGINE = web.AppKey[WebEngine]("engine")
METRICS = web.AppKey("metrics", MetricsCache)
ALLOWED = web.AppKey("allowed", AllowedTargets)


@web.middleware
async def scrub_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Error answers quote their input (a bad unit_code, an unknown module): a secret pasted into
    a query never comes back (monitor/secrets.py). Only error bodies: they are small."""
    resp: web.StreamResponse = await handler(request)
    if resp.status >= 400 and isinstance(resp, web.Response) and isinstance(resp.body, bytes):
        text = resp.body.decode(resp.charset or "utf-8", "replace")
        clean = scrub(text)
        if clean != text:
            resp.body = clean.encode(resp.charset or "utf-8")
    return resp


def create_app(
    engine: WebEngine, *, process_metrics: bool = True, alerts: AlertsView | None = None,
    web_config: WebConfig | None = None,
) -> web.Application:
    app = web.Application(middlewares=[scrub_errors, webauth.middleware], client_max_size=webauth.MAX_BODY_BYTES)
    webauth.install(app, web_config or WebConfig())  # no file: no TLS, no auth; limits still apply
    app[ENGINE] = engine
    app[METRICS] = MetricsCache(MetricsRenderer(process_metrics=process_metrics))
    app[ALLOWED] = AllowedTargets()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/probe", probe)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/targets", targets)
    app.router.add_post("/-/reload", reload)
    app.router.add_put("/-/reload", reload)
    if alerts is not None:  # /api/v1/alerts, /api/v1/maintenance (monitor/web_alerts.py)
        web_alerts.register(app, alerts)
    wallboard.register(app, engine)  # /, /static, /api/v1/wallboard|units|events, /public (monitor/wallboard.py)
    return app


async def serve(
    engine: WebEngine, host: str, port: int, alerts: AlertsView | None = None, web_config: WebConfig | None = None,
) -> web.AppRunner:
    """Start serving; the caller stops with ``await runner.cleanup()``."""
    cfg = web_config or WebConfig()
    runner = web.AppRunner(create_app(engine, alerts=alerts, web_config=cfg), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=cfg.ssl_context)
    await site.start()
    log.info("listening on %s://%s:%d/", "https" if cfg.ssl_context else "http", host, port)
    webauth.warn_if_exposed(host, cfg)
    return runner
