"""Acceptance cases of the built-in path: a real wardwatch process, lab faults on a timeline,
notifications at a real webhook receiver (tests/alerts/harness.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.harness import TIMING, Harness

pytestmark = pytest.mark.slow

# Unit index 9 of the 10-unit lab: no built-in imperfection. Not index 0: lab faults are nftables
# rules on the lab's fixed loopback addresses, shared by every lab on the machine, and other lab
# tests break unit 0 (run the suite serially; concurrent labs see each other's faults).
CLEAN = 25813
EXPIRED = 25771  # unit index 4: its portal certificate expired 3 days ago


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness.start(tmp_path)
    try:
        yield harness
    finally:
        await harness.stop()


async def test_link_cut_pages_once_for_the_unit_and_restore_resolves_once(h: Harness) -> None:
    h.reset_clock()
    await h.timeline([(0.0, h.cut(CLEAN))])
    await h.wait_for(15, unit_code=CLEAN, kind="unit_isolated", event="firing")
    await h.timeline([(h.now() + 3.0, h.restore(CLEAN))])  # children confirm meanwhile: still one page
    restored = h.now()
    await h.expect(unit_code=CLEAN, kind="unit_isolated", event="firing", count=1, within=(2.0, 15))
    await h.expect(unit_code=CLEAN, kind="unit_isolated", event="resolved", count=1, within=(restored, restored + 12))
    # none for its children (portal, rooms, mail...): nothing but the unit's own alert
    others = [g for g in h.received(unit_code=CLEAN) if g.kind != "unit_isolated"]
    assert others == [], [(g.kind, g.event, g.body["alert"]["target"]) for g in others]
    [fire] = h.received(unit_code=CLEAN, kind="unit_isolated", event="firing")
    assert fire.body["alert"]["children"], "the unreachable children are listed in the one page"
    assert "Đơn vị mất kết nối" in fire.body["text"] and f"http://status.lab.test/units/{CLEAN}" in fire.body["link"]
    assert h.duplicates() == []


async def test_one_lost_probe_between_healthy_ones_sends_nothing(h: Harness) -> None:
    """The portal refused for less than the re-check span (0.45 s < 2 x 0.3 s), timed to catch
    a scheduled probe: at most two failed results in a row, never the three that open an alert."""
    path = f"/api/v1/targets?unit_code={CLEAN}&service=portal"

    async def portal() -> dict[str, Any]:
        rows = await asyncio.to_thread(h.api, path)
        return next(r for r in rows if "/portal/http/https://" in r["key"])

    seen_failure = False
    h.reset_clock()
    for _ in range(4):
        last = (await portal())["last_probe"]
        while (await portal())["last_probe"] == last:  # noqa: ASYNC110 - a scheduled probe just ran...
            await asyncio.sleep(0.05)
        await asyncio.sleep(TIMING.interval - 0.25)  # ...the next one is due one interval later
        await h.fault(CLEAN, "portal", "down")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while loop.time() - t0 < 0.45:
            if (await portal())["success"] is False:
                seen_failure = True
            await asyncio.sleep(0.03)
        await h.fault(CLEAN, "portal", "restore")
        if seen_failure:
            break
    assert seen_failure, "the short fault never caught a probe"
    await h.expect(unit_code=CLEAN, count=0, within=(0, h.now() + 8))


async def test_receiver_down_during_the_incident_gets_it_when_back(h: Harness) -> None:
    await h.receiver.stop()  # connection refused from now on
    h.reset_clock()
    await h.timeline([(0.0, h.cut(CLEAN))])
    for _ in range(150):  # the page is in the outbox, and deliveries to the receiver are failing
        notes = (await asyncio.to_thread(h.api, "/api/v1/alerts?limit=1000"))["notifications"]
        mine = [n for n in notes if n["kind"] == "unit_isolated" and n["unit_code"] == CLEAN]
        if any(n["status"] == "pending" for n in mine) and any(
                n["attempts"] >= 1 and n["status"] == "pending" for n in notes):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"no failing delivery recorded: {notes}")
    back = h.now() + 1.0
    await asyncio.sleep(1.0)
    await h.receiver.start()
    await h.expect(unit_code=CLEAN, kind="unit_isolated", event="firing", count=1, within=(back, back + 6))
    await h.fault(CLEAN, "link", "restore")


async def test_sigkill_mid_incident_neither_duplicates_nor_loses(h: Harness) -> None:
    await h.receiver.stop()
    h.reset_clock()
    await h.timeline([(0.0, h.cut(CLEAN))])
    for _ in range(150):  # accepted into the outbox (durably), not yet delivered
        notes = (await asyncio.to_thread(h.api, "/api/v1/alerts?limit=1000"))["notifications"]
        mine = [n for n in notes if n["kind"] == "unit_isolated" and n["unit_code"] == CLEAN]
        if any(n["status"] == "pending" for n in mine):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the page never reached the outbox: {notes}")
    h.kill()
    await h.receiver.start()
    await h.start_wardwatch()  # same store: the pending page goes out, once
    await h.wait_for(10, unit_code=CLEAN, kind="unit_isolated", event="firing")
    # Killed again after it was delivered: the restarted service does not page again.
    await asyncio.sleep(1.0)
    h.kill()
    await h.start_wardwatch()
    restored = h.now()
    await h.fault(CLEAN, "link", "restore")
    await h.expect(unit_code=CLEAN, kind="unit_isolated", event="resolved", count=1,
                   within=(restored, restored + 14))
    assert len(h.received(unit_code=CLEAN, kind="unit_isolated", event="firing")) == 1
    assert h.duplicates() == []


async def test_expired_certificate_probed_every_round_is_one_message(h: Harness) -> None:
    """Six rounds of the lab's expired portal certificate, served by several endpoints (certs/tls,
    the portal and its old domains, which redirect to it): one cert_expired message for the one
    certificate, sent once, listing where it was seen, and no 'down' page on top of it."""
    await asyncio.sleep(18)
    got = h.received(unit_code=EXPIRED, everything=True)
    expired = [g for g in got if g.kind == "cert_expired"]
    assert [g.event for g in expired] == ["firing"], [g.body["alert"] for g in expired]
    (fire,) = expired
    mine = {t.key: t.target for t in _targets(h) if t.unit_code == EXPIRED and t.service in ("portal", "certs")}
    assert fire.body["alert"]["target"] in mine.values()  # the first endpoint that reported it
    # the page went out when the first endpoint reported it; the active alert lists every one since
    active = (await asyncio.to_thread(h.api, "/api/v1/alerts"))["alerts"]
    (cur,) = [a for a in active if a["id"] == fire.body["alert"]["id"]]
    seen_at = cur["alert"]["children"]
    assert len(seen_at) >= 2 and set(seen_at) <= set(mine), seen_at  # one message for several endpoints
    assert [g for g in got if g.kind == "target_down"] == []  # not also paged as 'down'
    assert fire.at < 8, "sent in the first rounds"


def _targets(h: Harness) -> list[Any]:
    from monitor.inventory import load_inventory

    return list(load_inventory(h.inventory).targets)
