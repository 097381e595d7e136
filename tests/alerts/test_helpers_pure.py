"""The engine's pure helpers: flap ratio, certificate tiers, maintenance windows."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from alerts import flapping as flap
from alerts.certs import seen_certs, tier_of
from alerts.maintenance import MaintenanceCalendar, Window
from probes.base import Sample
from tests.alerts.helpers import T0, UNIT, at, ok, target


def test_flap_ratio_is_nagios_weighted() -> None:
    w = 21
    assert flap.change_ratio(flap.fill(False, w), w) == 0.0
    alternating = 0
    for k in range(w):
        alternating = flap.push(alternating, k % 2 == 1, w)
    assert flap.change_ratio(alternating, w) == pytest.approx(1.0)
    newest_change = flap.push(flap.fill(False, w), True, w)
    oldest_change = flap.fill(True, w) & ~((1 << (w - 1)) - 1)  # only the oldest round failed
    assert flap.change_ratio(newest_change, w) == pytest.approx(1.25 / 20)
    assert flap.change_ratio(oldest_change, w) == pytest.approx(0.75 / 20)
    assert flap.next_flapping(False, 0.5, 0.5, 0.25) and flap.next_flapping(True, 0.3, 0.5, 0.25)
    assert not flap.next_flapping(True, 0.2, 0.5, 0.25) and not flap.next_flapping(False, 0.4, 0.5, 0.25)


def test_cert_tiers() -> None:
    tiers = (30, 14, 7, 1)
    now = T0.timestamp()
    assert tier_of(now + 31 * 86400, now, tiers) is None
    assert tier_of(now + 30 * 86400, now, tiers) == 30
    assert tier_of(now + 10 * 86400, now, tiers) == 14
    assert tier_of(now + 3600, now, tiers) == 1
    assert tier_of(now, now, tiers) == 0


def test_seen_certs_prefers_the_files_over_their_earliest() -> None:
    r = ok(Sample("wardwatch_certfile_not_after_timestamp_seconds", 5.0, (("file", "/a.pem"), ("serial", "0a"))),
           Sample("probe_ssl_earliest_cert_expiry", 5.0))
    (c,) = seen_certs(r)
    assert c.subject == "/a.pem#0a" and c.ident == "/a.pem#0a@5"
    (e,) = seen_certs(ok(Sample("probe_ssl_earliest_cert_expiry", 7.0)))
    assert e.subject == "" and seen_certs(ok()) == []


def test_maintenance_calendar() -> None:
    portal, link = target("portal"), target("link", "icmp")
    w = Window(UNIT, "portal", at(0), at(3600), "nâng cấp", "runtime")
    cal = MaintenanceCalendar([w, Window(UNIT + 1, None, at(0), at(3600))])
    assert cal.active(portal, at(10)) == w and cal.active(portal, at(3600)) is None
    assert cal.active(link, at(10)) is None
    assert cal.covering(UNIT, None, at(10)) is None  # a portal window does not cover the unit's link
    whole = cal.add(Window(UNIT, None, at(7200), at(9000)))
    assert cal.active(link, at(8000)) == whole and cal.covering(UNIT, None, at(8000)) == whole
    assert cal.active_ids(at(10)) == {w.id, Window(UNIT + 1, None, at(0), at(3600)).id}
    again = MaintenanceCalendar.from_json(json.loads(json.dumps(cal.to_json())))
    assert sorted(x.id for x in again) == sorted(x.id for x in cal)
    assert cal.remove(w.id) and not cal.remove(w.id) and cal.active(portal, at(10)) is None
    cal.replace_source("inventory", [Window(UNIT, "email", at(0), at(60), source="inventory")])
    assert len(cal) == 3
    assert cal.prune(at(10_000)) == 3
    with pytest.raises(ValueError):
        Window(UNIT, None, at(10), at(5))
    with pytest.raises(ValueError):
        Window(UNIT, None, (T0 + timedelta(0)).replace(tzinfo=None), at(5))
