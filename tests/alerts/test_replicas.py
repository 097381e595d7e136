"""Replicas of a wardwatch fleet (``run --replicas``) each run the built-in alert engine on their
own probe results; pushed to an Alertmanager cluster, the same incident must carry the same
labels from every replica (Alertmanager's identity of an alert) so it becomes one notification.
The end-to-end proof is tests/test_ha.py; this is the pure half."""

from __future__ import annotations

from alerts.engine import AlertEngine, AlertPolicy
from alerts.model import Event, Notification
from alerts.notifiers.alertmanager import alert_json
from alerts.notifiers.base import RenderContext
from alerts.templates import Texts
from monitor.targets import Target
from tests.alerts.helpers import FAIL, OK, UNIT, Sim, target, unit_targets


def _unit_with_two_links() -> list[Target]:
    return [*unit_targets(UNIT), target("link", "icmp", addr="127.77.0.2")]


def _replica(results: dict[str, float], until: float, generator: str) -> list[dict[str, object]]:
    """One replica: its own engine and probe timing; `results` = target key -> when it starts failing
    as seen from this replica (different sites and phases see a cut at different moments)."""
    targets = _unit_with_two_links()
    eng = AlertEngine(AlertPolicy(), targets)
    sim = Sim(eng, targets)

    def result(t: Target, s: float):  # type: ignore[no-untyped-def]
        start = results.get(t.key)
        return FAIL if start is not None and s >= start else OK

    notes: list[Notification] = sim.run(until, result)
    ctx = RenderContext(Texts(), receiver="alertmanager", generator_url=generator)
    return [alert_json(n, ctx) for n in notes if n.event is Event.FIRING]


def test_the_same_incident_has_the_same_labels_from_every_replica() -> None:
    link1, link2 = (t.key for t in _unit_with_two_links() if t.service == "link")
    portal = next(t.key for t in unit_targets(UNIT) if t.service == "portal")
    # Replica A sees link 1 fail first, replica B link 2, seconds apart; the portal fails for both.
    a = _replica({link1: 100, link2: 110, portal: 40}, 600, "http://ww1:9168/api/v1/alerts")
    b = _replica({link2: 100, link1: 131, portal: 47}, 600, "http://ww2:9168/api/v1/alerts")
    kinds = sorted(x["labels"]["alertname"] for x in a)  # type: ignore[index]
    assert kinds == ["WardwatchTargetDown", "WardwatchUnitIsolated"], a
    assert sorted(kinds) == sorted(x["labels"]["alertname"] for x in b)  # type: ignore[index]
    by_name_a = {x["labels"]["alertname"]: x for x in a}  # type: ignore[index]
    by_name_b = {x["labels"]["alertname"]: x for x in b}  # type: ignore[index]
    for name in kinds:
        assert by_name_a[name]["labels"] == by_name_b[name]["labels"], name
    # What does differ stays out of the labels: when, which link first, where from.
    iso_a, iso_b = by_name_a["WardwatchUnitIsolated"], by_name_b["WardwatchUnitIsolated"]
    assert iso_a["annotations"]["link"] != iso_b["annotations"]["link"]  # type: ignore[index]
    assert iso_a["generatorURL"] != iso_b["generatorURL"]
    assert "target" not in iso_a["labels"] and "probe" not in iso_a["labels"]  # type: ignore[operator]
    assert not {"instance", "vantage", "shard"} & set(iso_a["labels"])  # type: ignore[arg-type]
