"""Test receivers on loopback: a recording webhook server and a Telegram Bot API stand-in.

The Telegram server answers like api.telegram.org does (recorded JSON shapes of ``sendMessage``
success and of the error for a wrong token); it is a contract test, not the real service.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.peers.proc import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server that records every request; ``down`` makes it answer 503; ``stop``/``start``
    take the port away entirely (connection refused); ``hold()`` makes it accept requests and
    never answer them until ``release()`` (a receiver that hangs)."""

    host: str = "127.0.0.1"
    port: int = 0
    key: str | None = None  # HMAC key: verify X-Wardwatch-Signature
    requests: list[Received] = field(default_factory=list)
    down: bool = False
    status: int = 200
    bad_signatures: int = 0
    held: int = 0  # requests that arrived while held (never answered, not recorded)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition | None = None
    _released: asyncio.Event | None = None  # set: answering; clear: holding every request

    def hold(self) -> None:
        self._released = self._released or asyncio.Event()
        self._released.clear()

    def release(self) -> None:
        if self._released is not None:
            self._released.set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        if not self.port:
            self.port = free_port(self.host)
        self._arrived = self._arrived or asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        self.release()  # a held request must not keep the server from stopping
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self._released is not None and not self._released.is_set():
            self.held += 1
            await self._released.wait()
            raise web.HTTPServiceUnavailable(text="was held")  # the client gave up long ago
        if self.down:
            return web.Response(status=503, text="down for the test")
        if self.key is not None:
            want = "sha256=" + hmac.new(self.key.encode(), body, hashlib.sha256).hexdigest()
            if request.headers.get("X-Wardwatch-Signature") != want:
                self.bad_signatures += 1
                return web.Response(status=401, text="bad signature")
        self.requests.append(Received(request.path, dict(request.headers), body))
        assert self._arrived is not None
        async with self._arrived:
            self._arrived.notify_all()
        return web.Response(status=self.status, text="ok")

    async def wait_for(self, count: int, within: float) -> list[Received]:
        assert self._arrived is not None
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests


# -- Telegram Bot API contract -------------------------------------------------------------------
# Shapes recorded from api.telegram.org (Bot API 7.x): sendMessage success and a wrong token.
TG_OK = {
    "ok": True,
    "result": {
        "message_id": 0,
        "from": {"id": 7000000001, "is_bot": True, "first_name": "wardwatch", "username": "wardwatch_bot"},
        "chat": {"id": 0, "title": "NOC", "type": "group", "all_members_are_administrators": True},
        "date": 1763700000,
        "text": "",
    },
}
TG_UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}
TG_BAD_CHAT = {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}


@dataclass
class TelegramBotApi:
    token: str
    chat_id: int = -1001234567890
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self.port = self.port or free_port(self.host)
        app = web.Application()
        app.router.add_post("/bot{token}/sendMessage", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _send(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(TG_UNAUTHORIZED, status=401)
        if request.content_type != "application/json":
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: message text is empty"}, status=400)
        body = await request.json()
        if str(body.get("chat_id")) != str(self.chat_id):
            return web.json_response(TG_BAD_CHAT, status=400)
        if not body.get("text"):
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: message text is empty"}, status=400)
        self.messages.append(body)
        answer = json.loads(json.dumps(TG_OK))
        answer["result"].update(message_id=len(self.messages), text=body["text"])
        answer["result"]["chat"]["id"] = self.chat_id
        return web.json_response(answer)
