"""Properties over random up/down sequences: firing and resolved alternate per alert, never
starting with resolved; a single isolated failure never notifies."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine import AlertEngine, AlertPolicy
from alerts.model import Event
from tests.alerts.helpers import FAIL, OK, at, target, unit_targets

TARGETS = unit_targets()


@settings(max_examples=200, deadline=None)
@given(
    seqs=st.lists(st.tuples(st.integers(0, len(TARGETS) - 1), st.booleans(), st.floats(0.5, 40)),
                  min_size=1, max_size=300),
    open_after=st.integers(1, 4),
    close_after=st.integers(1, 3),
)
def test_notifications_alternate_per_alert_and_never_start_resolved(
    seqs: list[tuple[int, bool, float]], open_after: int, close_after: int
) -> None:
    eng = AlertEngine(AlertPolicy(open_after=open_after, close_after=close_after, global_min_targets=1000), TARGETS)
    now = 0.0
    last: dict[str, Event] = {}
    for i, up, gap in seqs:
        now += gap
        notes = eng.on_result(TARGETS[i], OK if up else FAIL, at(now))
        notes += eng.on_tick(at(now))
        for n in notes:
            prev = last.get(n.alert.id)
            if n.event is Event.FIRING:
                assert prev is not Event.FIRING, f"{n.alert.id} fired twice"
            else:
                assert prev is Event.FIRING, f"{n.alert.id} resolved without firing"
            last[n.alert.id] = n.event
    # what is firing is exactly what active() says was sent
    assert {k for k, v in last.items() if v is Event.FIRING} == {a.alert.id for a in eng.active() if a.notified}


@settings(max_examples=100, deadline=None)
@given(before=st.integers(0, 30), after=st.integers(0, 30), rechecks=st.integers(0, 3))
def test_a_single_isolated_failure_never_notifies(before: int, after: int, rechecks: int) -> None:
    t = target(rechecks=rechecks)
    eng = AlertEngine(AlertPolicy(), [t])
    seq = [True] * before + [False] + [True] * after
    for k, up in enumerate(seq):
        assert eng.on_result(t, OK if up else FAIL, at(k * 30)) == []
        assert eng.on_tick(at(k * 30 + 1)) == []
