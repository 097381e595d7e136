"""Every PromQL expression of every generated dashboard, and every template variable query, run
against a real Prometheus scraping a real ``wardwatch run`` probing the lab: each must parse and
return data. A broken or empty query fails with its dashboard, panel title and expression.

The lab has 8 units with its built-in imperfections (expiring and expired certificates, a host name
mismatch, a 503 portal, a slow portal), so failure, reason and alert panels have something to show.
Probe interval 2 s, scrape and rule evaluation 1 s; the rules of alerts/rules (recording rules the
Availability dashboard reads, alerts the overview counts) are loaded with every `for:` scaled by
2/30 like tests/test_prometheus_path.py. Variables take the values their own queries return (one
value for single-value variables, all of them as a regex alternation for multi-value ones, as
Grafana formats them); $__rate_interval and $__interval are 1m, $__range 5m.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dashboards.build import JSON_DIR
from monitor.lab.config import LabConfig, Ports, Timing
from monitor.lab.runner import Lab
from tests.dashboards import queries as dq
from tests.peers import prometheus as prom
from tests.peers.proc import free_port
from tests.peers.wardwatch import wardwatch_run

pytestmark = pytest.mark.slow

UNITS = 8
PROBE_INTERVAL = 2.0
WITHIN = 150.0  # seconds for every query to return data (generous: the machines are shared and loaded)


@dataclass
class Stack:
    lab: Lab
    prom: prom.Prometheus


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    lab = Lab(LabConfig(
        directory=tmp_path / "lab", units=UNITS,
        ports=Ports(https=0, http=0, smtp=0, vc=0, dns=0, control=0, snmp=0),
        timing=Timing(interval=PROBE_INTERVAL, timeout=0.5, rechecks=1, recheck_spacing=0.3),
        nft_table="", flap_period=1.0,
    ))
    await lab.start()
    try:
        # With the built-in alerting on, so the notifier panels have series: the lab's imperfections
        # page a receiver that is down (failed deliveries, a pending outbox).
        inv = tmp_path / "inventory-alerting.yaml"
        inv.write_text(lab.inventory_path.read_text(encoding="utf-8") + (
            "alerting:\n"
            f"  receivers: {{hook: {{type: webhook, url: 'http://127.0.0.1:{free_port()}/hook'}}}}\n"
            "  default_receivers: [hook]\n"
            "  delivery: {backoff_initial: 200ms, backoff_max: 1s}\n"
        ), encoding="utf-8")
        async with wardwatch_run(tmp_path / "ww", inv) as ww:
            rules = prom.render_rules(tmp_path / "rules", scale=PROBE_INTERVAL / 30.0)
            cfg = prom.config(scrape_targets=[ww.listen], alertmanagers=[], rule_files=rules,
                              scrape_interval="1s", evaluation_interval="1s")
            with prom.prometheus(tmp_path / "prom", cfg) as p:
                yield Stack(lab, p)
    finally:
        await lab.stop()


class Api:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url

    async def _get(self, path: str, params: dict[str, str] | list[tuple[str, str]]) -> Any:
        async with self.http.get(self.url + path, params=params) as resp:
            body = await resp.json()
        if body.get("status") != "success":
            raise AssertionError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    async def instant(self, expr: str) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/query", {"query": expr})
        return list(data["result"]) if data["resultType"] in ("vector", "matrix") else [data["result"]]

    async def range(self, expr: str) -> list[dict[str, Any]]:
        end = time.time()
        data = await self._get("/api/v1/query_range", {"query": expr, "start": f"{end - 120:.3f}",
                                                       "end": f"{end:.3f}", "step": "5"})
        return list(data["result"])

    async def label_values(self, label: str, match: str) -> list[str]:
        params = [("match[]", match)] if match else []
        return list(await self._get(f"/api/v1/label/{label}/values", params))


async def resolve_variables(api: Api, doc: dict[str, Any]) -> dict[str, str]:
    """Each query variable, in order, from its own query (so the variable queries are tested too)."""
    values: dict[str, str] = {}
    for v in dq.variables(doc):
        kind, expr, label = dq.parse_variable_query(v.query)
        expr = dq.substitute(expr, values)
        if kind == "label_values":
            texts = await api.label_values(label, expr)
        else:
            texts = dq.query_result_lines(await api.instant(expr))
        options = sorted(set(dq.apply_regex(v.regex, texts)))
        if not options:
            raise AssertionError(f"variable ${v.name}: {v.query!r} returned no options")
        values[v.name] = dq.variable_value(options, v.multi)
    return values


@pytest.mark.timeout(420)
async def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    t0 = time.monotonic()
    docs = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(JSON_DIR.glob("*.json"))}
    assert len(docs) >= 5
    async with aiohttp.ClientSession() as http:
        api = Api(http, stack.prom.url)
        # Prometheus has scraped every target at least once, and rates have two samples.
        n_targets = 0
        async with asyncio.timeout(90):
            while n_targets == 0 or len(await api.instant("wardwatch_target_state")) < n_targets:
                n_targets = n_targets or int(float(
                    (await api.instant("sum(wardwatch_targets)") or [{"value": [0, "0"]}])[0]["value"][1]))
                await asyncio.sleep(0.5)

        pending: dict[tuple[str, str, str], str] = {}
        exprs: list[tuple[dq.Expr, str]] = []
        deadline = time.monotonic() + WITHIN
        # Variables are resolved once their queries return data (units appear as they are probed).
        for name, doc in docs.items():
            while True:
                try:
                    values = await resolve_variables(api, doc)
                    break
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
            for e in dq.expressions(name, doc):
                exprs.append((e, dq.substitute(e.expr, values)))
        assert len(exprs) > 60, "fewer expressions than the dashboards have"

        todo = list(exprs)
        while todo:
            still = []
            for e, expr in todo:
                key = (e.dashboard, e.panel, e.ref)
                try:
                    result = await (api.instant(expr) if e.instant else api.range(expr))
                except AssertionError as err:  # a parse or evaluation error is never going to pass
                    pytest.fail(f"{e.dashboard} / {e.panel!r} [{e.ref}]: {err}\n  {expr}")
                if not result:
                    still.append((e, expr))
                    pending[key] = expr
                else:
                    pending.pop(key, None)
            todo = still
            if todo and time.monotonic() > deadline:
                lines = [f"{d} / {p!r} [{r}]: no data\n  {x}" for (d, p, r), x in sorted(pending.items())]
                pytest.fail(f"{len(lines)} of {len(exprs)} dashboard queries returned no data:\n" + "\n".join(lines))
            if todo:
                await asyncio.sleep(1.0)
        print(f"{len(exprs)} dashboard queries returned data after {time.monotonic() - t0:.1f} s")

        # And a few say what they should about the lab.
        def find(dashboard: str, panel: str) -> str:
            return next(x for e, x in exprs if e.dashboard == dashboard and e.panel == panel)

        grid = await api.instant(find("overview.json", "Status by unit and service"))
        assert len({r["metric"]["unit_code"] for r in grid}) == UNITS
        assert {float(r["value"][1]) for r in grid} <= {0, 1, 2, 3, 4}
        assert any(r["metric"]["service"] == "portal" and float(r["value"][1]) == 4 for r in grid)  # the 503 portal
        certs = await api.instant(find("certificates.json", "Certificates by days left"))
        assert any(r["metric"].get("issuer") == "CN=wardwatch lab CA" for r in certs)
        assert any(r["metric"].get("probe") == "certfile" and r["metric"].get("subject") for r in certs)
        assert any(float(r["value"][1]) < 0 for r in certs)  # the expired portal certificate
        avail = await api.instant(find("availability.json", "Availability by unit and service"))
        assert all(0 <= float(r["value"][1]) <= 1 for r in avail) and len(avail) >= UNITS
