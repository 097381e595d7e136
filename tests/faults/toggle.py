"""Portals the test turns down and up: one aiohttp server answering ``/u/<code>/`` with 200, or
503 while the code is in ``down``. Faults without nftables, no waiting on a lab's peers."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from tests.peers.proc import free_port


@dataclass
class Portals:
    host: str = "127.0.0.1"
    port: int = 0
    down: set[int] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    def url(self, code: int) -> str:
        return f"http://{self.host}:{self.port}/u/{code}/"

    async def start(self) -> None:
        self.port = self.port or free_port(self.host)
        app = web.Application()
        app.router.add_get("/u/{code}/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        if int(request.match_info["code"]) in self.down:
            return web.Response(status=503, text="down for the test")
        return web.Response(text="ok")
