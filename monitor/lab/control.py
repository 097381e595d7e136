"""The lab's fault-control endpoint (HTTP on 127.0.0.1) and its client.

    POST /faults   {"unit_code": 26734, "service": "portal", "mode": "down", "period": 10}
    GET  /faults   the faults in force
    GET  /         the lab's state (units, ports, files)

The port is recorded in ``<lab dir>/lab-state.json``, which is how ``wardwatch lab fault``
finds a running lab.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

STATE_FILE = "lab-state.json"

SetFault = Callable[[int, str, str, float | None], Awaitable[dict[str, Any]]]


class ControlError(RuntimeError):
    pass


def app(
    set_fault: SetFault, faults: Callable[[], list[dict[str, Any]]], info: Callable[[], dict[str, Any]]
) -> web.Application:
    async def post_fault(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            code = int(body["unit_code"])
            service, mode = str(body["service"]), str(body["mode"])
            period = float(body["period"]) if body.get("period") is not None else None
        except (ValueError, KeyError, TypeError) as e:
            return web.json_response({"error": f"bad request: {e}"}, status=400)
        try:
            result = await set_fault(code, service, mode, period)
        except (KeyError, ValueError) as e:
            return web.json_response({"error": str(e).strip("'\"")}, status=400)
        return web.json_response(result)

    async def get_faults(_: web.Request) -> web.Response:
        return web.json_response(faults())

    async def get_info(_: web.Request) -> web.Response:
        return web.json_response(info())

    a = web.Application()
    a.router.add_post("/faults", post_fault)
    a.router.add_get("/faults", get_faults)
    a.router.add_get("/", get_info)
    return a


def read_state(lab_dir: Path) -> dict[str, Any]:
    path = lab_dir / STATE_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ControlError(f"no running lab in {lab_dir} ({path} not found; start one with `wardwatch lab`)") from None
    except (OSError, ValueError) as e:
        raise ControlError(f"{path}: unreadable: {e}") from None
    return data


def request(lab_dir: Path, method: str, path: str, body: dict[str, Any] | None = None,
            timeout: float = 10.0) -> Any:
    """Call the control endpoint of the lab running from ``lab_dir`` (blocking)."""
    control = read_state(lab_dir).get("control")
    if not control:
        raise ControlError(f"{lab_dir / STATE_FILE}: no control address")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{control}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("error", e.reason)
        except ValueError:
            msg = e.reason
        raise ControlError(str(msg)) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ControlError(f"lab control endpoint {control} not answering ({reason}); is the lab running?") from None


def set_fault(lab_dir: Path, unit_code: int, service: str, mode: str, period: float | None = None) -> Any:
    return request(lab_dir, "POST", "/faults",
                   {"unit_code": unit_code, "service": service, "mode": mode, "period": period})
