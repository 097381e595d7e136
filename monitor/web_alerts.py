"""The alerting part of the HTTP API (registered by ``monitor.web.create_app`` when alerting runs).

    GET    /api/v1/alerts                  active alerts, recent notifications and their delivery
    POST   /api/v1/alerts/{id}/ack         acknowledge (stops escalation); body {"by": "name"}
    GET    /api/v1/maintenance             maintenance windows
    POST   /api/v1/maintenance             add {"unit_code", "service"?, "from", "to", "reason"}
    DELETE /api/v1/maintenance/{id}        remove a window added at run time

No secret is ever part of an answer: receivers are listed by name only.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from alerts.config import MaintenanceWindow


class AlertsView(Protocol):
    def alerts_json(self) -> dict[str, Any]: ...
    async def notifications_json(self, limit: int = 100) -> list[dict[str, Any]]: ...
    async def ack(self, alert_id: str, by: str) -> bool: ...
    def maintenance_windows(self) -> list[dict[str, Any]]: ...
    async def add_maintenance(self, w: MaintenanceWindow) -> dict[str, Any]: ...
    async def remove_maintenance(self, window_id: str) -> bool: ...
    async def metrics_text(self) -> str: ...


ALERTS = web.AppKey("alerts", AlertsView)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any] | None:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def list_alerts(request: web.Request) -> web.Response:
    svc = request.app[ALERTS]
    out = svc.alerts_json()
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "100"))))
    except ValueError:
        return _error(400, "limit must be a number")
    out["notifications"] = await svc.notifications_json(limit)
    return web.json_response(out, dumps=_dumps)


async def ack(request: web.Request) -> web.Response:
    body = await _body(request)
    if body is None:
        return _error(400, "body must be a JSON object, e.g. {\"by\": \"name\"}")
    by = str(body.get("by") or "api").strip()[:100]
    alert_id = request.match_info["id"]
    if not await request.app[ALERTS].ack(alert_id, by):
        return _error(404, f"no active alert {alert_id!r}")
    return web.json_response({"status": "acknowledged", "id": alert_id, "by": by}, dumps=_dumps)


async def list_maintenance(request: web.Request) -> web.Response:
    return web.json_response({"windows": request.app[ALERTS].maintenance_windows()}, dumps=_dumps)


async def add_maintenance(request: web.Request) -> web.Response:
    body = await _body(request)
    if body is None:
        return _error(400, "body must be a JSON object")
    try:
        w = MaintenanceWindow.model_validate(body)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            where = ".".join(str(x) for x in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {msg}" if where else msg)
        return web.json_response({"error": "; ".join(problems), "problems": problems}, status=400)
    try:
        data = await request.app[ALERTS].add_maintenance(w)
    except ValueError as e:
        return _error(400, str(e))
    return web.json_response(data, status=201, dumps=_dumps)


async def remove_maintenance(request: web.Request) -> web.Response:
    window_id = request.match_info["id"]
    try:
        removed = await request.app[ALERTS].remove_maintenance(window_id)
    except ValueError as e:
        return _error(409, str(e))
    if not removed:
        return _error(404, f"no maintenance window {window_id!r}")
    return web.json_response({"status": "removed", "id": window_id})


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, default=str)


def register(app: web.Application, alerts: AlertsView) -> None:
    app[ALERTS] = alerts
    app.router.add_get("/api/v1/alerts", list_alerts)
    app.router.add_post("/api/v1/alerts/{id}/ack", ack)
    app.router.add_get("/api/v1/maintenance", list_maintenance)
    app.router.add_post("/api/v1/maintenance", add_maintenance)
    app.router.add_delete("/api/v1/maintenance/{id}", remove_maintenance)
