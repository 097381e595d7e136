"""Push the generated dashboards to a Grafana over its HTTP API, with grafana-client.

Idempotent: the folder is found by its UID (or title) before it is created; each dashboard is read
back by UID and saved (``POST /api/dashboards/db`` with ``overwrite: true`` and the folder's UID)
only when it is new or differs, so a second push changes nothing and adds no dashboard version.

Errors come back as :class:`PushError` with one line for the operator (Grafana unreachable, token
refused, a 412 from Grafana); the token is never part of a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import niquests
from grafana_client.api import AsyncGrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

from monitor.secrets import Secret

MESSAGE = "wardwatch dashboards push"
# Keys Grafana adds or changes on save: ignored when deciding whether a dashboard changed.
_VOLATILE = ("id", "version", "iteration")


class PushError(Exception):
    """One line for the operator."""


@dataclass(slots=True)
class PushResult:
    folder_uid: str
    folder_created: bool
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def folder_uid(name: str) -> str:
    """A stable folder UID from its name ("wardwatch" -> "wardwatch"), at most 40 characters."""
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", name.strip().lower()).strip("-") or "wardwatch"
    return slug[:40]


def redact(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k not in _VOLATILE} == {k: v for k, v in b.items() if k not in _VOLATILE}


def _explain(exc: Exception, what: str, url: str) -> PushError:
    if isinstance(exc, GrafanaUnauthorizedError):
        return PushError(f"Grafana at {url} refused the token (401 Unauthorized) while {what}")
    if isinstance(exc, GrafanaClientError):
        status = exc.status_code
        msg = exc.response.get("message") if isinstance(exc.response, dict) else None
        detail = f": {msg}" if msg else ""
        if status == 403:
            return PushError(f"Grafana at {url} denied {what} (403 Forbidden{detail}); the token needs the "
                             "Editor role or dashboards:write and folders:create permissions")
        if status == 412:
            return PushError(f"Grafana at {url} refused {what} (412 Precondition Failed{detail}); another "
                             "dashboard has the same name or UID in this folder, or it changed meanwhile")
        return PushError(f"Grafana at {url} refused {what} ({status}{detail})")
    if isinstance(exc, GrafanaException) and exc.status_code:
        return PushError(f"Grafana at {url} failed while {what} ({exc.status_code})")
    return PushError(f"Grafana at {url} is unreachable ({type(exc).__name__}) while {what}")


async def push(
    url: str, token: Secret, dashboards: Mapping[str, Mapping[str, Any]], *, folder: str = "wardwatch",
    request_timeout: float = 15.0,
) -> PushResult:
    """Create ``folder`` if needed and save every dashboard into it, by UID."""
    shown = redact(url)
    api = AsyncGrafanaApi.from_url(url, credential=token.reveal(), timeout=request_timeout)
    step = "checking its health"
    try:
        health = await api.client.GET("/health")
        if not isinstance(health, dict) or health.get("database") not in (None, "ok"):
            raise PushError(f"Grafana at {shown} is not healthy: {health!r}")

        step = "listing folders"
        uid = folder_uid(folder)
        folders = await api.folder.get_all_folders()
        match = next((f for f in folders if f.get("uid") == uid), None) or next(
            (f for f in folders if f.get("title") == folder), None)
        created_folder = match is None
        if match is None:
            step = f"creating folder {folder!r}"
            match = await api.folder.create_folder(folder, uid=uid)
        result = PushResult(str(match["uid"]), created_folder)

        step = "searching its dashboards"
        found = await api.search.search_dashboards(type_="dash-db", folder_uids=[result.folder_uid])
        existing = {str(h.get("uid")) for h in found if isinstance(h, dict)}

        for doc in dashboards.values():
            uid_d = str(doc["uid"])
            step = f"reading dashboard {uid_d}"
            if uid_d in existing:
                current = await api.dashboard.get_dashboard(uid_d)
                if _same(current.get("dashboard", {}), doc) and (
                    current.get("meta", {}).get("folderUid") in (None, result.folder_uid)
                ):
                    result.unchanged.append(uid_d)
                    continue
            step = f"saving dashboard {uid_d}"
            await api.dashboard.update_dashboard({
                "dashboard": {**doc, "id": None}, "folderUid": result.folder_uid, "overwrite": True,
                "message": MESSAGE,
            })
            (result.updated if uid_d in existing else result.created).append(uid_d)
        return result
    except PushError:
        raise
    except (GrafanaException, niquests.exceptions.RequestException, OSError) as exc:
        raise _explain(exc, step, shown) from None
    finally:
        await api.client.s.close()
