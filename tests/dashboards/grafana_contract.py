"""A Grafana-compatible HTTP endpoint answering like Grafana 11 from recorded responses
(tests/data/grafana/), with the state a real one keeps (folders, dashboards, versions), and every
request it received kept for the test to assert on.

Only what ``wardwatch dashboards push`` uses: GET /api/health, GET and POST /api/folders,
GET /api/search, POST /api/dashboards/db, GET /api/dashboards/uid/{uid}. Like Grafana, every
/api route but /api/health needs ``Authorization: Bearer <token>`` (401 otherwise), and saving a
dashboard whose UID exists without ``overwrite: true`` is refused with 412.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

DATA = Path(__file__).resolve().parents[1] / "data" / "grafana"


def recorded(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: Any


@dataclass
class FakeGrafana:
    token: str
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> {"dashboard", "folderUid", "version"}
    refuse_saves_with_412: bool = False

    def calls(self, method: str | None = None, path: str | None = None) -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method)
                and (path is None or r.path == path or (path.endswith("*") and r.path.startswith(path[:-1])))]

    # -- handlers --

    async def _record(self, request: web.Request) -> Request:
        body = await request.json() if request.can_read_body else None
        query: dict[str, list[str]] = {}
        for k, v in request.query.items():
            query.setdefault(k, []).append(v)
        r = Request(request.method, request.path, query, request.headers.get("Authorization"), body)
        self.requests.append(r)
        return r

    def _authorised(self, r: Request) -> bool:
        return r.authorization == f"Bearer {self.token}"

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return web.json_response(data, status=status)

    async def handle(self, request: web.Request) -> web.Response:
        r = await self._record(request)
        if r.path == "/api/health" and r.method == "GET":
            return self._json(recorded("health.json"))
        if not self._authorised(r):
            return self._json(recorded("unauthorized.json"), 401)
        if r.path == "/api/folders" and r.method == "GET":
            return self._json([{"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in self.folders.values()])
        if r.path == "/api/folders" and r.method == "POST":
            uid = r.body.get("uid") or f"f{len(self.folders) + 1}"
            if uid in self.folders or any(f["title"] == r.body["title"] for f in self.folders.values()):
                return self._json({"message": "a folder with the same name already exists"}, 409)
            folder = recorded("folder_created.json") | {
                "uid": uid, "title": r.body["title"], "id": 12 + len(self.folders),
                "url": f"/dashboards/f/{uid}/{_slug(r.body['title'])}",
            }
            self.folders[uid] = folder
            return self._json(folder)
        if r.path == "/api/search" and r.method == "GET":
            folder_uids = set(r.query.get("folderUIDs", []))
            hits = []
            for uid, d in sorted(self.dashboards.items()):
                if folder_uids and d["folderUid"] not in folder_uids:
                    continue
                hits.append(recorded("search_hit.json") | {
                    "uid": uid, "title": d["dashboard"]["title"], "folderUid": d["folderUid"],
                    "url": f"/d/{uid}/{_slug(d['dashboard']['title'])}", "tags": d["dashboard"].get("tags", []),
                })
            return self._json(hits)
        if r.path == "/api/dashboards/db" and r.method == "POST":
            return self._save(r.body)
        if (m := re.fullmatch(r"/api/dashboards/uid/([^/]+)", r.path)) and r.method == "GET":
            d = self.dashboards.get(m[1])
            if d is None:
                return self._json(recorded("not_found.json"), 404)
            got = recorded("dashboard_get.json")
            got["dashboard"] = copy.deepcopy(d["dashboard"])
            got["meta"] |= {"folderUid": d["folderUid"], "version": d["version"],
                            "url": f"/d/{m[1]}/{_slug(d['dashboard']['title'])}"}
            return self._json(got)
        return self._json({"message": "Not found"}, 404)

    def _save(self, body: dict[str, Any]) -> web.Response:
        doc = body["dashboard"]
        uid = doc["uid"]
        old = self.dashboards.get(uid)
        if self.refuse_saves_with_412 or (old is not None and not body.get("overwrite")):
            return self._json(recorded("precondition_failed.json"), 412)
        folder_uid = body.get("folderUid") or ""
        if folder_uid and folder_uid not in self.folders:
            return self._json({"message": "folder not found", "status": "not-found"}, 400)
        version = (old["version"] + 1) if old else 1
        stored = copy.deepcopy(doc) | {"id": 41 + len(self.dashboards), "version": version}
        self.dashboards[uid] = {"dashboard": stored, "folderUid": folder_uid, "version": version}
        return self._json(recorded("dashboard_saved.json") | {
            "uid": uid, "version": version, "folderUid": folder_uid, "slug": _slug(doc["title"]),
            "url": f"/d/{uid}/{_slug(doc['title'])}", "id": stored["id"],
        })


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@contextlib.asynccontextmanager
async def fake_grafana(token: str) -> AsyncIterator[FakeGrafana]:
    fake = FakeGrafana(token)
    fake.folders = {f["uid"]: f for f in recorded("folders.json")}  # the Grafana already has a folder
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
