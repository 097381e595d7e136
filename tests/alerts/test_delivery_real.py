"""Built-in notifiers against real peers: a real prometheus-alertmanager (grouping, inhibition,
delivery to a webhook) and a real MTA (Debian's exim4 on loopback, STARTTLS required)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerts.config import AlertingConfig
from alerts.model import Alert, Event, Notification
from alerts.notifiers.base import Sender
from alerts.outbox import Outbox, OutboxDB, Routing
from tests.alerts.samples import DOWN, ISOLATED, firing, resolved
from tests.peers.alertmanager import EXAMPLE, alertmanager, am_alerts, render_config, webhook_receiver
from tests.peers.exim import exim
from tests.peers.pki import TestCA

UNIT = 25747


def _alert(a: Alert, **kw: object) -> Alert:
    """Started just now: Alertmanager flushes a group at once when its alert's startsAt is
    older than group_wait, which would defeat the grouping this test looks at."""
    now = datetime.now(UTC)
    return replace(a, unit_code=UNIT, unit="Phường Thủ Dầu Một", started_at=now, **kw)  # type: ignore[arg-type]


def _fire(a: Alert) -> Notification:
    return Notification(a, Event.FIRING, datetime.now(UTC))


def _resolve(a: Alert) -> Notification:
    now = datetime.now(UTC)
    return Notification(a, Event.RESOLVED, now, ended_at=now)


async def _drain(box: Outbox, n: int, within: float = 10, status: str = "delivered") -> None:
    """Poll the outbox table (another thread's SQLite commits have no event to await)."""
    async with asyncio.timeout(within):
        while box.db.counts().get(status, 0) < n:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_alertmanager_groups_inhibits_and_delivers(tmp_path: Path) -> None:
    async with webhook_receiver() as hook:
        with alertmanager(tmp_path / "am", render_config(EXAMPLE, hook.url)) as am:
            routing = Routing.from_config(AlertingConfig.model_validate(
                {"receivers": {"am": {"type": "alertmanager", "url": am.url}}, "default_receivers": ["am"]}))
            box = Outbox(OutboxDB(tmp_path / "s.db"), routing, Sender(), backoff_initial=0.2, backoff_max=1)
            box.start()
            try:
                await _am_case(box, hook, am.url)
            finally:
                await box.stop()
                await box.sender.close()


async def _am_case(box: Outbox, hook: Any, am_url: str) -> None:
    portal = _alert(DOWN)
    mail = _alert(DOWN, id="target_down:25747/portal/http/http://old.example.vn/", target="http://old.example.vn/")
    await box.write([_fire(portal), _fire(mail)], None)
    await _drain(box, 2)
    # One group (unit_code, alertname) with both alerts, not two pages.
    note = await hook.next(lambda n: n.unit_code == str(UNIT) and n.status == "firing", 15)
    assert note.alertnames == ["WardwatchTargetDown", "WardwatchTargetDown"]
    assert note.group_labels == {"unit_code": str(UNIT), "alertname": "WardwatchTargetDown"}
    assert {a["labels"]["target"] for a in note.alerts} == {portal.target, mail.target}
    assert all(a["annotations"]["summary"].startswith("[CẢNH BÁO]") for a in note.alerts)

    # The unit's link goes: its unit_isolated inhibits a new child alert of the same unit.
    isolated = _alert(ISOLATED)
    child = _alert(DOWN, id="target_down:25747/vc_gov/icmp/x", service="vc_gov", probe="icmp", target="x")
    await box.write([_fire(isolated), _fire(child)], None)
    await _drain(box, 4)
    await hook.next(lambda n: "WardwatchUnitIsolated" in n.alertnames, 15)
    [inhibited] = await am_alerts(am_url, 'target="x"')
    assert inhibited["status"]["state"] == "suppressed" and inhibited["status"]["inhibitedBy"]

    # Resolved (endsAt from the notification): Alertmanager sends the unit's resolution.
    await box.write([_resolve(portal), _resolve(mail), _resolve(child), _resolve(isolated)], None)
    await _drain(box, 8)
    done = await hook.next(lambda n: n.status == "resolved" and n.alertnames == ["WardwatchUnitIsolated"], 15)
    assert all(a["status"] == "resolved" for a in done.alerts)


async def test_email_through_a_real_mta_with_starttls(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "pki")
    with exim(ca) as mta:
        cfg = AlertingConfig.model_validate({
            "receivers": {"mail": {"type": "email", "smarthost": f"127.0.0.1:{mta.port}",
                                   "from": "wardwatch@ubnd.example.vn", "to": ["noc@ubnd.example.vn"],
                                   "ca_file": str(ca.bundle), "timeout": 5}},
            "default_receivers": ["mail"],
        })
        box = Outbox(OutboxDB(tmp_path / "s.db"), Routing.from_config(cfg), Sender(),
                     backoff_initial=0.2, backoff_max=1)
        box.start()
        await box.write([firing(), resolved()], None)
        await _drain(box, 2)
        # Both may be queued within the same second: tell them apart by what they say.
        messages = mta.messages()
        assert len(messages) == 2
        first = next(m for m in messages if not m["Subject"].startswith("[ĐÃ KHẮC PHỤC]"))
        second = next(m for m in messages if m["Subject"].startswith("[ĐÃ KHẮC PHỤC]"))
        assert first["Subject"] == "[CẢNH BÁO] Mất kết nối dịch vụ: Phường Bến Thành (26734) cổng thông tin"
        assert first["To"] == "noc@ubnd.example.vn" and first["From"] == "wardwatch@ubnd.example.vn"
        assert "Nguyên nhân: mã trạng thái HTTP lỗi" in first.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert second["In-Reply-To"] == first["Message-ID"]  # the resolution threads under the page
        assert "P=esmtps X=TLS" in mta.log()  # both went over STARTTLS
        await box.stop()
        await box.sender.close()


async def test_starttls_off_is_refused_by_the_mta_and_recorded_as_failed(tmp_path: Path) -> None:
    """With starttls: false the MTA refuses the sender (550): a permanent failure, recorded."""
    ca = TestCA(tmp_path / "pki")
    with exim(ca) as mta:
        cfg = AlertingConfig.model_validate({
            "receivers": {"mail": {"type": "email", "smarthost": f"127.0.0.1:{mta.port}", "starttls": False,
                                   "from": "wardwatch@ubnd.example.vn", "to": ["noc@ubnd.example.vn"]}},
            "default_receivers": ["mail"],
        })
        box = Outbox(OutboxDB(tmp_path / "s.db"), Routing.from_config(cfg), Sender(), backoff_initial=0.2,
                     backoff_max=1)
        box.start()
        await box.write([firing()], None)
        await _drain(box, 1, status="failed")
        [row] = box.db.recent()
        assert "STARTTLS required" in row.last_error and mta.messages() == []
        await box.stop()
        await box.sender.close()
