"""Alertmanager path: a real prometheus-alertmanager, running the example configuration
(alerts/alertmanager.yml, shortened group timings), receives alerts pushed to /api/v2/alerts the
way wardwatch's notifier pushes them, groups them by unit, inhibits a cut-off unit's other
alerts, and delivers to a webhook receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import pytest

from tests.peers.alertmanager import (
    EXAMPLE,
    Alertmanager,
    Notification,
    WebhookReceiver,
    ago,
    alert,
    alertmanager,
    am_alerts,
    push_alerts,
    render_config,
    resolved,
    webhook_receiver,
)

A, A_NAME = "25747", "Phường Thủ Dầu Một"  # its link is cut
B, B_NAME = "25750", "Phường Phú Lợi"  # two services down, link fine
GROUP_INTERVAL = 2.0  # what render_config sets


@pytest.fixture
async def am_and_hook(tmp_path: Path) -> AsyncIterator[tuple[Alertmanager, WebhookReceiver]]:
    async with webhook_receiver() as hook:
        with alertmanager(tmp_path / "am", render_config(EXAMPLE, hook.url)) as am:
            yield am, hook


def _children_of_a(since: datetime | None = None) -> list[dict[str, object]]:
    return [
        alert("WardwatchTargetDown", unit_code=A, unit=A_NAME, service="portal", probe="http",
              target="https://phuong-thu-dau-mot.lab.test/", starts_at=since),
        alert("WardwatchTargetDown", unit_code=A, unit=A_NAME, service="email", probe="tcp",
              target="mail.phuong-thu-dau-mot.lab.test:2525", starts_at=since),
        alert("WardwatchTargetDown", unit_code=A, unit=A_NAME, service="vc_gov", probe="tcp",
              target="127.12.0.1:1720", starts_at=since),
        alert("WardwatchErrorBudgetBurn", unit_code=A, unit=A_NAME, service="portal", long_window="1h",
              short_window="5m", burn_rate="14.4", starts_at=since),
        alert("WardwatchCertificateExpiring", unit_code=A, unit=A_NAME, service="certs", probe="tls",
              target="phuong-thu-dau-mot.lab.test:8443", severity="ticket", tier="7", starts_at=since),
    ]


def _parent_of_a() -> dict[str, object]:
    return alert("WardwatchUnitIsolated", unit_code=A, unit=A_NAME, service="link", starts_at=ago(25))


def _b() -> list[dict[str, object]]:
    return [
        alert("WardwatchTargetDown", unit_code=B, unit=B_NAME, service="portal", probe="http",
              target="https://phuong-phu-loi.lab.test/"),
        alert("WardwatchTargetDown", unit_code=B, unit=B_NAME, service="procedures", probe="http",
              target="https://dichvucong.lab.test/"),
    ]


def _of(unit: str) -> Callable[[Notification], bool]:
    return lambda n: n.unit_code == unit



async def _push_parent_first(am_url: str) -> None:
    """The unit's alert, pushed and listed by Alertmanager before its children come: a child
    older than group_wait is flushed at once, and Alertmanager's inhibitor learns of the parent
    asynchronously after storing it (under load the child could win that race)."""
    await push_alerts(am_url, [_parent_of_a()])
    for _ in range(200):  # an external process's store: polled, 10 s at most
        if await am_alerts(am_url, 'alertname="WardwatchUnitIsolated"', f'unit_code="{A}"'):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("Alertmanager never listed the unit's alert")
    await asyncio.sleep(0.2)  # the inhibitor's subscription: no event of Alertmanager's to await

async def test_unit_alert_inhibits_its_children_and_groups_by_unit(
    am_and_hook: tuple[Alertmanager, WebhookReceiver],
) -> None:
    am, hook = am_and_hook
    # The children first, just confirmed (startsAt now), in their own push: inhibition is decided
    # when a group is flushed, and a new group waits group_wait before its first flush, so the
    # unit's alert arriving within it still mutes them. (An alert whose startsAt is older than
    # group_wait is flushed at once: see the next test.)
    children = _children_of_a()
    await push_alerts(am.url, children + _b())
    await push_alerts(am.url, [_parent_of_a()])

    a_first = await hook.next(_of(A), within=15)
    b_first = await hook.next(_of(B), within=15)

    # Unit A: one notification, the unit alert alone, to the network team.
    assert a_first.status == "firing"
    assert a_first.alertnames == ["WardwatchUnitIsolated"]
    assert a_first.path == "/hooks/network-oncall" and a_first.receiver == "network-oncall"
    assert a_first.group_labels == {"alertname": "WardwatchUnitIsolated", "unit_code": A}

    # Unit B: both of its targets in one notification (grouped by unit), to the web team.
    assert b_first.status == "firing"
    assert b_first.alertnames == ["WardwatchTargetDown", "WardwatchTargetDown"]
    assert sorted(a["labels"]["service"] for a in b_first.alerts) == ["portal", "procedures"]
    assert b_first.path == "/hooks/web-oncall"

    # Alertmanager itself says why A's children stay quiet.
    status = {(a["labels"]["alertname"], a["labels"].get("service")): a["status"]
              for a in await am_alerts(am.url, f'unit_code="{A}"')}
    assert len(status) == len(children) + 1
    for (name, _service), st in status.items():
        if name == "WardwatchUnitIsolated":
            assert st["state"] == "active" and not st["inhibitedBy"]
        else:
            assert st["state"] == "suppressed" and st["inhibitedBy"], (name, st)

    # Nothing else for A across more than a group interval (all its groups have been flushed).
    await hook.none(_of(A), within=2 * GROUP_INTERVAL + 1, after=len(hook.received))
    assert len(hook.matching(_of(A))) == 1
    assert len(hook.matching(_of(B))) == 1

    # The link comes back and the unit's services with it: exactly one "resolved" for A,
    # none for the children that never paged.
    mark = len(hook.received)
    await push_alerts(am.url, [resolved(_parent_of_a()), *(resolved(c) for c in children)])
    done = await hook.next(_of(A), within=15, after=mark)
    assert done.status == "resolved" and done.alertnames == ["WardwatchUnitIsolated"]
    await hook.none(_of(A), within=2 * GROUP_INTERVAL + 1, after=mark + 1 + hook.received[mark:].index(done))
    assert [n.status for n in hook.matching(_of(A))] == ["firing", "resolved"]


async def test_children_dated_from_the_outage_start_are_inhibited_once_the_unit_alert_is_in(
    am_and_hook: tuple[Alertmanager, WebhookReceiver],
) -> None:
    """Alerts dated from the first failed probe (startsAt older than group_wait) skip the wait
    and flush at once; inhibition holds as long as the unit's alert was pushed first, which is
    the order the built-in engine (suppressing children itself) and the rules keep."""
    am, hook = am_and_hook
    await _push_parent_first(am.url)
    children = _children_of_a(since=ago(60))
    await push_alerts(am.url, children)
    first = await hook.next(_of(A), within=15)
    assert first.alertnames == ["WardwatchUnitIsolated"]
    await hook.none(_of(A), within=2 * GROUP_INTERVAL + 1, after=len(hook.received))
    assert len(hook.matching(_of(A))) == 1


async def test_child_still_down_when_the_link_comes_back_pages(
    am_and_hook: tuple[Alertmanager, WebhookReceiver],
) -> None:
    am, hook = am_and_hook
    portal = alert("WardwatchTargetDown", unit_code=A, unit=A_NAME, service="portal", probe="http",
                   target="https://phuong-thu-dau-mot.lab.test/", starts_at=ago(20))
    await _push_parent_first(am.url)
    await push_alerts(am.url, [portal])
    first = await hook.next(_of(A), within=15)
    assert first.alertnames == ["WardwatchUnitIsolated"]

    # The link recovers, the portal does not: the inhibition ends and the portal pages.
    mark = len(hook.received)
    await push_alerts(am.url, [resolved(_parent_of_a())])
    seen = [await hook.next(_of(A), within=15, after=mark)]
    seen.append(await hook.next(lambda n: _of(A)(n) and n is not seen[0], within=15, after=mark))
    got = sorted((n.status, tuple(n.alertnames), n.path) for n in seen)
    assert got == [
        ("firing", ("WardwatchTargetDown",), "/hooks/web-oncall"),
        ("resolved", ("WardwatchUnitIsolated",), "/hooks/network-oncall"),
    ]


async def test_monitoring_degraded_inhibits_pages_not_tickets(
    am_and_hook: tuple[Alertmanager, WebhookReceiver],
) -> None:
    am, hook = am_and_hook
    degraded = alert("WardwatchMonitoringDegraded", unit_code="", service="wardwatch", province="",
                     instance="127.0.0.1:9168", job="wardwatch")
    pages = [alert("WardwatchUnitIsolated", unit_code=str(25800 + i), service="link") for i in range(20)]
    ticket = alert("WardwatchRedirectBroken", unit_code=B, unit=B_NAME, service="portal", severity="ticket",
                   target="http://old1-257501.lab.test:8080/", reason="redirect_missing")
    await push_alerts(am.url, [*pages, ticket])
    await push_alerts(am.url, [degraded])
    got_degraded = await hook.next(lambda n: "WardwatchMonitoringDegraded" in n.alertnames, within=15)
    assert got_degraded.path == "/hooks/monitoring-team"
    got_ticket = await hook.next(lambda n: "WardwatchRedirectBroken" in n.alertnames, within=15)
    assert got_ticket.path == "/hooks/tickets"
    await hook.none(lambda n: "WardwatchUnitIsolated" in n.alertnames, within=2 * GROUP_INTERVAL + 1)
    assert len(hook.received) == 2
