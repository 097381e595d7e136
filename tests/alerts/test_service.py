"""AlertService with the real alert engine: the store failing never loses a page, and
storage_degraded goes out by the path that needs no store."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.service import AlertService
from monitor.engine import Entry
from monitor.inventory import parse_inventory
from probes.base import ProbeResult, Reason
from tests.alerts.receivers import Receiver


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def _inventory(url: str) -> str:
    return f"""
province: 79
units:
  - code: 25747
    name: Phường Thủ Dầu Một
    type: phường
    checks:
      - {{service: portal, probe: tcp, target: "127.0.0.1:9"}}
alerting:
  receivers:
    hook: {{type: webhook, url: "{url}/hook"}}
  default_receivers: [hook]
  delivery: {{backoff_initial: 100ms, backoff_max: 500ms, tick: 100ms}}
"""


async def test_store_failing_sends_the_page_and_storage_degraded_directly(tmp_path: Path, hook: Receiver) -> None:
    inv = parse_inventory(_inventory(hook.url), "inv.yaml", system_resolver="127.0.0.1:53")
    svc = AlertService.create(inv, tmp_path / "s.db")
    svc.start()
    try:
        def full() -> None:
            raise sqlite3.OperationalError("database or disk is full")

        svc.db.fail = full
        entry = Entry(inv.targets[0])
        t0 = datetime.now(UTC)
        for i in range(3):
            svc.on_result(entry, ProbeResult(False, Reason.REFUSED, "refused", 0.001), t0 + timedelta(seconds=i))
        got = await hook.wait_for(2, 5)
        assert {r.json()["alert"]["kind"] for r in got} == {"storage_degraded", "target_down"}

        svc.db.fail = None  # writable again: the next flush succeeds and storage_degraded resolves
        async with asyncio.timeout(5):
            while not any(r.json()["alert"]["kind"] == "storage_degraded" and r.json()["event"] == "resolved"
                          for r in hook.requests):
                await hook.wait_for(len(hook.requests) + 1, 5)
        assert sum(r.json()["alert"]["kind"] == "target_down" for r in hook.requests) == 1  # not resent
    finally:
        await svc.stop()


def _inventory_escalation(url: str) -> str:
    return f"""
province: 79
units:
  - code: 25747
    name: Phường Thủ Dầu Một
    type: phường
    checks:
      - {{service: portal, probe: tcp, target: "127.0.0.1:9"}}
      - {{service: email, probe: tcp, target: "127.0.0.1:8"}}
alerting:
  receivers:
    first: {{type: webhook, url: "{url}/first"}}
    boss: {{type: webhook, url: "{url}/boss"}}
  default_receivers: [first]
  escalation: [{{after: 300ms, receiver: boss}}]
  delivery: {{backoff_initial: 100ms, backoff_max: 500ms, tick: 100ms}}
"""


async def test_unacknowledged_page_escalates_an_acknowledged_one_does_not(tmp_path: Path, hook: Receiver) -> None:
    inv = parse_inventory(_inventory_escalation(hook.url), "inv.yaml", system_resolver="127.0.0.1:53")
    svc = AlertService.create(inv, tmp_path / "s.db")
    svc.start()
    try:
        portal, email = (Entry(t) for t in inv.targets)
        t0 = datetime.now(UTC)
        for i in range(3):
            for e in (portal, email):
                svc.on_result(e, ProbeResult(False, Reason.REFUSED, "refused", 0.001), t0 + timedelta(seconds=i * 0.01))
        await hook.wait_for(2, 5)
        assert sorted(r.path for r in hook.requests) == ["/first", "/first"]
        email_id = next(a.alert.id for a in svc.active() if a.alert.service == "email")
        assert await svc.ack(email_id, "Lan")
        await hook.wait_for(3, 5)  # the portal page, not acknowledged, goes on to the boss
        await asyncio.sleep(0.6)
        boss = [r.json() for r in hook.requests if r.path == "/boss"]
        assert [b["alert"]["service"] for b in boss] == ["portal"]
        assert boss[0]["receiver"] == "boss"
    finally:
        await svc.stop()


async def test_maintenance_window_added_at_run_time_suppresses_and_survives_restart(tmp_path: Path,
                                                                                  hook: Receiver) -> None:
    from alerts.config import MaintenanceWindow

    inv = parse_inventory(_inventory(hook.url), "inv.yaml", system_resolver="127.0.0.1:53")
    svc = AlertService.create(inv, tmp_path / "s.db")
    svc.start()
    now = datetime.now(UTC)
    try:
        w = await svc.add_maintenance(MaintenanceWindow.model_validate(
            {"unit_code": 25747, "from": (now - timedelta(minutes=1)).isoformat(),
             "to": (now + timedelta(hours=1)).isoformat(), "reason": "thay máy chủ"}))
        entry = Entry(inv.targets[0])
        for i in range(3):
            svc.on_result(entry, ProbeResult(False, Reason.REFUSED, "refused", 0.001), now + timedelta(seconds=i))
        await asyncio.sleep(0.5)
        assert hook.requests == []  # suppressed...
        [a] = svc.active()
        assert a.suppressed == "maintenance" and a.alert.in_maintenance  # ...and marked
    finally:
        await svc.stop()
    again = AlertService.create(inv, tmp_path / "s.db")
    try:
        assert [x["id"] for x in again.maintenance_windows()] == [w["id"]]
        assert [a.alert.id for a in again.active()] == [a.alert.id]
    finally:
        await again.stop()


async def test_firing_alerts_are_pushed_to_alertmanager_again(tmp_path: Path, hook: Receiver) -> None:
    """Alertmanager forgets an alert not re-sent within resolve_timeout: firing ones are re-pushed."""
    text = _inventory(hook.url).replace('hook: {type: webhook, url: "' + hook.url + '/hook"}',
                                        'hook: {type: alertmanager, url: "' + hook.url + '"}')
    inv = parse_inventory(text, "inv.yaml", system_resolver="127.0.0.1:53")
    svc = AlertService.create(inv, tmp_path / "s.db")
    svc.start()
    try:
        entry = Entry(inv.targets[0])
        now = datetime.now(UTC)
        for i in range(3):
            svc.on_result(entry, ProbeResult(False, Reason.REFUSED, "refused", 0.001), now + timedelta(seconds=i))
        [first] = await hook.wait_for(1, 5)
        await svc.tick(1e9)  # long after the last push
        again = (await hook.wait_for(2, 5))[1]
        assert first.path == again.path == "/api/v2/alerts"
        assert again.json()[0]["labels"] == first.json()[0]["labels"] and "endsAt" not in again.json()[0]
    finally:
        await svc.stop()


async def test_a_reloaded_inventory_reconfigures_receivers_and_windows(tmp_path: Path, hook: Receiver) -> None:
    from types import SimpleNamespace

    inv = parse_inventory(_inventory(hook.url), "inv.yaml", system_resolver="127.0.0.1:53")
    svc = AlertService.create(inv, tmp_path / "s.db")
    probe_engine = SimpleNamespace(inventory=inv, stats=SimpleNamespace(store_errors=0))
    svc._probe_engine = probe_engine  # type: ignore[assignment]
    try:
        text = _inventory(hook.url).replace("default_receivers: [hook]", "default_receivers: [other]").replace(
            'hook: {type: webhook, url: "' + hook.url + '/hook"}',
            'hook: {type: webhook, url: "' + hook.url + '/hook"}\n    other: {type: webhook, url: "'
            + hook.url + '/other"}',
        ) + """maintenance:
  - {unit_code: 25747, from: "2026-11-22T22:00:00+07:00", to: "2026-11-23T02:00:00+07:00", reason: x}
"""
        probe_engine.inventory = parse_inventory(text, "inv.yaml", system_resolver="127.0.0.1:53")
        await svc.tick(0.0)
        assert sorted(svc.routing.receivers) == ["hook", "other"]
        assert [w["source"] for w in svc.maintenance_windows()] == ["inventory"]
        with pytest.raises(ValueError, match="declared in the inventory"):
            await svc.remove_maintenance(svc.maintenance_windows()[0]["id"])
    finally:
        await svc.stop()
