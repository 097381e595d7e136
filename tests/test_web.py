"""The HTTP endpoints, served by a real Engine over a real inventory, probing a real nginx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.engine import Engine
from monitor.inventory import load_inventory
from monitor.web import probe_timeout, serve
from tests.peers.blackbox import HOST, IpNginx, ip_nginx  # noqa: F401 - fixture
from tests.peers.proc import free_port
from tests.peers.promtool import check_metrics

UNIT_8 = """
  - code: 8
    name: Phường Ngọc Hà
    type: phường
    checks:
      - {{service: vc_gov, probe: tcp, target: "{host}:{closed}"}}
"""


def inventory_text(n: IpNginx, *, allow_any: bool = False, extra: str = "") -> str:
    return f"""
province: 1
monitor:
  allow_any_target: {"true" if allow_any else "false"}
  modules:
    http_2xx: {{probe: http, timeout: 3s}}
defaults:
  interval: 2s
  timeout: 1s
  rechecks: 0
units:
  - code: 4
    name: Phường Ba Đình
    type: phường
    portal:
      url: {n.url(n.plain)}
{UNIT_8.format(host=HOST, closed=n.closed)}{extra}"""


@dataclass
class Served:
    engine: Engine
    base: str
    inventory: Path
    session: aiohttp.ClientSession
    nginx: IpNginx


@pytest.fixture
async def served(tmp_path: Path, ip_nginx: IpNginx) -> AsyncIterator[Served]:  # noqa: F811
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_text(ip_nginx), encoding="utf-8")
    engine = Engine(load_inventory(path))
    port = free_port()
    runner = await serve(engine, HOST, port)
    try:
        async with aiohttp.ClientSession() as session:
            yield Served(engine, f"http://{HOST}:{port}", path, session, ip_nginx)
    finally:
        await engine.stop()
        await runner.cleanup()


async def get(s: Served, path: str, **params: str) -> tuple[int, str]:
    async with s.session.get(s.base + path, params=params) as resp:
        return resp.status, await resp.text()


async def started(s: Served) -> None:
    await s.engine.start()
    async with asyncio.timeout(15):
        await s.engine.ready.wait()


async def test_health_and_readiness(served: Served) -> None:
    assert await get(served, "/healthz") == (200, "OK")
    status, _ = await get(served, "/readyz")
    assert status == 503
    await started(served)
    assert await get(served, "/readyz") == (200, "OK")


async def test_targets_api_and_filters(served: Served) -> None:
    await started(served)
    async with served.session.get(served.base + "/api/v1/targets") as resp:
        assert resp.status == 200
        rows = await resp.json()
    by_service = {r["service"]: r for r in rows}
    assert set(by_service) == {"portal", "vc_gov"}
    portal, vc = by_service["portal"], by_service["vc_gov"]
    assert portal["state"] == "up" and portal["success"] is True
    assert portal["unit"] == "Phường Ba Đình" and portal["unit_code"] == 4
    assert portal["key"] == f"4/portal/http/{served.nginx.url(served.nginx.plain)}"
    assert portal["since"].endswith("Z") and portal["last_probe"].endswith("Z")
    assert portal["last_duration_seconds"] > 0
    assert vc["state"] == "down" and vc["reason"] == "refused" and vc["success"] is False
    assert vc["message"]

    async def keys(**q: str) -> list[str]:
        async with served.session.get(served.base + "/api/v1/targets", params=q) as resp:
            assert resp.status == 200, await resp.text()
            return [r["key"] for r in await resp.json()]

    assert await keys(unit_code="4") == [portal["key"]]
    assert await keys(service="vc_gov") == [vc["key"]]
    assert await keys(state="down") == [vc["key"]]
    assert await keys(state="up", service="vc_gov") == []
    assert (await get(served, "/api/v1/targets", state="sideways"))[0] == 400
    assert (await get(served, "/api/v1/targets", unit_code="x"))[0] == 400


async def test_probe_endpoint(served: Served) -> None:
    n = served.nginx
    # Named module, inventory target: the real probe runs against nginx.
    status, text = await get(served, "/probe", module="http_2xx", target=n.url(n.plain))
    assert status == 200, text
    values = {
        s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels
    }
    assert values["probe_success"] == 1 and values["probe_http_status_code"] == 200
    assert values["probe_timeout_seconds"] == 3  # the module's timeout (no scrape header)
    assert "province=" not in text  # no target labels, like blackbox_exporter

    # A bare probe kind is a module with default options.
    status, text = await get(served, "/probe", module="tcp", target=f"{HOST}:{n.closed}")
    assert status == 200 and "probe_success 0\n" in text

    # Not in the inventory (for that kind): refused with a reason.
    status, text = await get(served, "/probe", module="http_2xx", target=n.url(n.valid))
    assert status == 403 and "not in the inventory" in text and "allow_any_target" in text
    status, text = await get(served, "/probe", module="icmp", target=f"{HOST}:{n.closed}")
    assert status == 403

    assert await get(served, "/probe", module="nosuch", target="x") == (400, 'Unknown module "nosuch"\n')
    # A bare kind whose probe needs options is a clear 400, not a 500.
    status, text = await get(served, "/probe", module="dns", target="127.0.0.1:53")
    assert status == 400 and "query_name" in text and "monitor.modules" in text
    assert (await get(served, "/probe", module="tcp"))[0] == 400

    status, text = await get(served, "/probe", module="http_2xx", target=n.url(n.plain), debug="true")
    assert status == 200
    assert "Metrics that would have been returned:" in text and "probe_success 1" in text
    assert "Module configuration:" in text


async def test_probe_timeout_header(served: Served) -> None:
    n = served.nginx
    async with served.session.get(
        served.base + "/probe",
        params={"module": "http_2xx", "target": n.url(n.plain)},
        headers={"X-Prometheus-Scrape-Timeout-Seconds": "2"},
    ) as resp:
        assert "probe_timeout_seconds 1.5\n" in await resp.text()
    async with served.session.get(
        served.base + "/probe",
        params={"module": "http_2xx", "target": n.url(n.plain)},
        headers={"X-Prometheus-Scrape-Timeout-Seconds": "abc"},
    ) as resp:
        assert resp.status == 400


def test_probe_timeout_rule() -> None:
    assert probe_timeout(None, None) == 10.0
    assert probe_timeout(None, 5.0) == 5.0
    assert probe_timeout("10", 5.0) == 5.0
    assert probe_timeout("4", 5.0) == 3.5
    assert probe_timeout("4", None) == 3.5
    assert probe_timeout("0.2", 5.0) == 5.0  # negative budget: blackbox falls back to the module's
    with pytest.raises(ValueError):
        probe_timeout("abc", 5.0)


async def test_metrics_endpoint(served: Served) -> None:
    await started(served)
    async with served.session.get(served.base + "/metrics", headers={"Accept-Encoding": "gzip"}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    assert 'wardwatch_target_state{province="1",unit_code="4",unit="Phường Ba Đình"' in text
    assert 'wardwatch_target_failure_reason_info{province="1",unit_code="8"' in text
    assert 'reason="refused"} 1' in text
    assert 'wardwatch_targets{service="portal",state="up"} 1' in text
    # Concurrent scrapes share one render and all get the whole body.
    bodies = await asyncio.gather(*(get(served, "/metrics") for _ in range(4)))
    assert all(code == 200 and "wardwatch_build_info" in body for code, body in bodies)
    code, out = await asyncio.to_thread(check_metrics, text)
    assert code == 0 and out == "", out


async def test_reload(served: Served) -> None:
    n = served.nginx
    assert (await get(served, "/-/reload"))[0] == 405
    before = set(served.engine.entries)

    served.inventory.write_text(inventory_text(n) + "    bogus: 1\n", encoding="utf-8")
    async with served.session.post(served.base + "/-/reload") as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["status"] == "error" and body["problems"]
    assert any("bogus" in p for p in body["problems"]), body
    assert set(served.engine.entries) == before  # running inventory kept

    # A valid file: accepted, and what it says takes effect (here: any target may be probed).
    served.inventory.write_text(inventory_text(n, allow_any=True), encoding="utf-8")
    async with served.session.post(served.base + "/-/reload") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "success"}
    status, text = await get(served, "/probe", module="http_2xx", target=n.url(n.valid, "/down"))
    assert status == 200 and "probe_success 0\n" in text  # allowed now; nginx answers 503 there
