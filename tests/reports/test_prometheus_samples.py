"""Prometheus samples to a timeline (monitor/reports/prometheus.py), without a server."""

from __future__ import annotations

from monitor.reports.intervals import Interval
from monitor.reports.prometheus import timeline_from_samples
from monitor.state import State


def _states(values: list[float | None]) -> list[tuple[float, float]]:
    return [(float(t), v) for t, v in enumerate(values) if v is not None]


def test_a_change_is_dated_by_wardwatchs_own_timestamp() -> None:
    states = _states([1, 1, 1, 0, 0, 0, 1, 1])
    since = [(3.0, 2.3), (4.0, 2.3), (5.0, 2.3), (6.0, 5.6), (7.0, 5.6)]
    tl = timeline_from_samples(states, [], 0.0, 8.0, step=1.0, since=since)
    assert tl == [Interval(0.0, 2.3, State.UP), Interval(2.3, 5.6, State.DOWN), Interval(5.6, 8.0, State.UP)]


def test_without_it_failed_probes_date_the_outage_and_gaps_are_unknown() -> None:
    states = _states([1, 1, 1, 0, 0, None, None, 1])
    success = [(2.0, 0.0), (3.0, 0.0)]
    tl = timeline_from_samples(states, success, 0.0, 8.0, step=1.0)
    assert tl == [Interval(0.0, 2.0, State.UP), Interval(2.0, 5.0, State.DOWN), Interval(5.0, 7.0, State.UNKNOWN),
                  Interval(7.0, 8.0, State.UP)]
