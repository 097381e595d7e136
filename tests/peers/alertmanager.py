"""A real prometheus-alertmanager on loopback, a webhook receiver for it, and the v2 push.

Used by the Alertmanager-path and Prometheus-path tests, the built-in notifier's tests and
bench/detection.py:

    with alertmanager(tmp_path, render_config(EXAMPLE, hook.url)) as am:
        await push_alerts(am.url, [alert(...), ...])
        note = await hook.next(lambda n: n.unit_code == "25747")

Alerts carry the labels both paths use (alertname, severity, province, unit_code, unit,
service, probe, target): the example configuration (alerts/alertmanager.yml) groups them by
unit_code and alertname, routes them by severity and service, and inhibits a unit's alerts
while its WardwatchUnitIsolated alert fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from tests.peers.proc import free_port, require, running

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "alerts" / "alertmanager.yml"
PLACEHOLDER = "http://127.0.0.1:5001"  # the receivers' address in the example


def render_config(
    src: Path,
    webhook_base: str,
    *,
    group_wait: str | None = "1s",
    group_interval: str | None = "2s",
) -> str:
    """The example configuration, its webhook placeholders pointing at ``webhook_base`` and,
    unless None, every route's group_wait / group_interval replaced (tests cannot wait 30 s
    and 5 m). Routes, grouping, receivers and inhibit_rules are kept as they are."""
    cfg = yaml.safe_load(src.read_text())

    def walk(route: dict[str, Any], top: bool) -> None:
        if group_wait is not None and (top or "group_wait" in route):
            route["group_wait"] = group_wait
        if group_interval is not None and (top or "group_interval" in route):
            route["group_interval"] = group_interval
        for child in route.get("routes", []):
            walk(child, False)

    walk(cfg["route"], True)
    text = yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False)
    return text.replace(PLACEHOLDER, webhook_base.rstrip("/"))


@dataclass(frozen=True)
class Alertmanager:
    url: str
    port: int
    log: Path
    pid: int = 0  # its process group, for a test that kills it


async def cluster_peers(am_url: str) -> list[str]:
    """The peers this Alertmanager's gossip sees (GET /api/v2/status), itself included."""
    async with aiohttp.ClientSession() as http, http.get(f"{am_url}/api/v2/status") as resp:
        resp.raise_for_status()
        body = await resp.json()
        return [str(p.get("address", "")) for p in (body.get("cluster") or {}).get("peers") or []]


def _ready(url: str, timeout: float, proc: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: exited with {proc.returncode} before it was ready")
        with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(
            url + "/-/ready", timeout=1
        ) as resp:
            if resp.status == 200:
                return
        time.sleep(0.02)  # no readiness event to await: a process on its own port
    raise TimeoutError(f"{url} not ready after {timeout}s")


@dataclass(frozen=True)
class Cluster:
    """This node's gossip port and its peers' (an Alertmanager HA cluster on loopback)."""

    port: int
    peers: Sequence[int]
    peer_timeout: str = "2s"  # the wait per position before a later peer sends (default 15s)


def cluster_args(c: Cluster | None) -> list[str]:
    if c is None:
        return ["--cluster.listen-address="]  # its default would bind 0.0.0.0:9094
    return [
        f"--cluster.listen-address=127.0.0.1:{c.port}",
        f"--cluster.advertise-address=127.0.0.1:{c.port}",
        *(f"--cluster.peer=127.0.0.1:{p}" for p in c.peers),
        f"--cluster.peer-timeout={c.peer_timeout}",
        "--cluster.settle-timeout=5s",
        "--cluster.reconnect-timeout=1m",
    ]


@contextlib.contextmanager
def alertmanager(
    tmp: Path, config_text: str, *, ready_timeout: float = 15.0, cluster: Cluster | None = None,
    port: int | None = None,
) -> Iterator[Alertmanager]:
    """prometheus-alertmanager on a free loopback port, storage under ``tmp``; no cluster
    listener unless ``cluster`` says whom to peer with (on loopback)."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "alertmanager.yml"
    config.write_text(config_text)
    port = port or free_port()
    log = tmp / "alertmanager.log"
    argv = [
        require("prometheus-alertmanager"),
        f"--config.file={config}",
        f"--storage.path={tmp / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *cluster_args(cluster),
        "--log.level=info",
    ]
    with running(argv, log) as proc:
        url = f"http://127.0.0.1:{port}"
        _ready(url, ready_timeout, proc)
        yield Alertmanager(url, port, log, proc.pid)


# -- the push, the way wardwatch's Alertmanager notifier does it ---------------------------


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert(
    alertname: str,
    *,
    unit_code: str,
    service: str,
    severity: str = "page",
    unit: str = "",
    target: str = "",
    probe: str = "",
    province: str = "79",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    annotations: Mapping[str, str] | None = None,
    **extra: str,
) -> dict[str, Any]:
    """One postable alert (API v2). ``ends_at`` set to now or earlier resolves it."""
    labels = {"alertname": alertname, "severity": severity, "province": province, "unit_code": unit_code,
              "unit": unit, "service": service, "probe": probe, "target": target, **extra}
    body: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if v != ""},
        "annotations": dict(annotations or {"summary": f"{alertname} {unit_code} {service}"}),
        "startsAt": _iso(starts_at or datetime.now(UTC)),
    }
    if ends_at is not None:
        body["endsAt"] = _iso(ends_at)
    return body


def resolved(body: Mapping[str, Any], at: datetime | None = None) -> dict[str, Any]:
    out = dict(body)
    out["endsAt"] = _iso(at or datetime.now(UTC))
    return out


async def push_alerts(am_url: str, alerts: Sequence[Mapping[str, Any]]) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{am_url}/api/v2/alerts", json=list(alerts)) as resp:
        if resp.status != 200:
            raise RuntimeError(f"POST /api/v2/alerts: {resp.status} {await resp.text()}")


async def am_alerts(am_url: str, *filters: str) -> list[dict[str, Any]]:
    """GET /api/v2/alerts (filters like 'unit_code="25747"'), with their status: state
    active|suppressed, inhibitedBy, silencedBy."""
    params = [("filter", f) for f in filters]
    async with aiohttp.ClientSession() as http, http.get(f"{am_url}/api/v2/alerts", params=params) as resp:
        resp.raise_for_status()
        data: list[dict[str, Any]] = await resp.json()
        return data


# -- the webhook receiver ------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One webhook delivery from Alertmanager."""

    path: str  # /hooks/<receiver>
    received_at: float  # time.monotonic()
    wall: datetime
    body: dict[str, Any]

    @property
    def receiver(self) -> str:
        return str(self.body.get("receiver", ""))

    @property
    def status(self) -> str:
        return str(self.body.get("status", ""))

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return list(self.body.get("alerts", []))

    @property
    def group_labels(self) -> dict[str, str]:
        return dict(self.body.get("groupLabels", {}))

    @property
    def unit_code(self) -> str:
        return str(self.body.get("commonLabels", {}).get("unit_code", ""))

    @property
    def alertnames(self) -> list[str]:
        return sorted(a["labels"].get("alertname", "") for a in self.alerts)


@dataclass
class WebhookReceiver:
    """Collects every notification; ``next`` awaits the next one matching a predicate."""

    url: str = ""
    received: list[Notification] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)  # replaced on every arrival

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(Notification(request.path, time.monotonic(), datetime.now(UTC), body))
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return web.Response(text="ok")

    def matching(self, pred: Callable[[Notification], bool]) -> list[Notification]:
        return [n for n in self.received if pred(n)]

    async def next(
        self, pred: Callable[[Notification], bool], within: float, *, after: int = 0
    ) -> Notification:
        """The first notification at index >= ``after`` matching ``pred``, awaited for up to
        ``within`` seconds (TimeoutError after)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            changed = self._changed  # taken before looking: an arrival after this sets it
            note = next((n for n in self.received[after:] if pred(n)), None)
            if note is not None:
                return note
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no matching notification within {within:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def none(self, pred: Callable[[Notification], bool], within: float, *, after: int = 0) -> None:
        """Assert that no notification matching ``pred`` arrives within ``within`` seconds
        (an absence can only be awaited for a bounded time)."""
        try:
            note = await self.next(pred, within, after=after)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected notification: {json.dumps(note.body, ensure_ascii=False)}")


@contextlib.asynccontextmanager
async def webhook_receiver(host: str = "127.0.0.1") -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", hook._handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    port = free_port(host)
    site = web.TCPSite(runner, host, port)
    await site.start()
    hook.url = f"http://{host}:{port}"
    try:
        yield hook
    finally:
        await runner.cleanup()


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
