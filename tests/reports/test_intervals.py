"""The SLA interval maths: worked examples and properties (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.reports.intervals import (
    Calendar,
    Interval,
    TargetHistory,
    blind,
    combine,
    incidents,
    merge_spans,
    per_day,
    service_figures,
    summarize,
    target_timeline,
    with_maintenance,
)
from monitor.state import State

UP, DOWN, UNK, UNR = State.UP, State.DOWN, State.UNKNOWN, State.UNREACHABLE


def test_a_worked_example() -> None:
    # 0..100: up, down 10..20 (timeout), up, wardwatch blind 40..50, down 60..80 of which 70..80 maintenance
    tl = target_timeline(UP, [(10, DOWN, "timeout"), (20, UP, None), (60, DOWN, "refused"), (80, UP, None)], 0, 100)
    tl = with_maintenance(blind(tl, [(0, 40), (50, 100)]), [(70, 80)])
    f = summarize(tl, 0, 100)
    assert (f.up, f.down, f.unknown, f.maintenance) == (60, 20, 10, 10)
    assert f.incidents == 2 and f.longest == 10 and f.mttr == 10 and f.mtbf == 30
    assert f.availability == 75.0
    assert [(i.start, i.end, i.reason, i.in_maintenance) for i in f.incident_list] == [
        (10, 20, "timeout", "no"), (60, 80, "refused", "partly")]
    down_policy = summarize(tl, 0, 100, "down")
    assert down_policy.availability == 100 * 60 / 90


def test_no_data_is_never_100_percent() -> None:
    f = summarize(blind(target_timeline(UP, [], 0, 100), []), 0, 100)
    assert f.availability is None and f.unknown == 100 and not f.has_data


def test_changes_before_the_range_set_the_initial_state() -> None:
    tl = target_timeline(UNK, [(-50, DOWN, "timeout"), (30, UP, None), (200, DOWN, "x")], 0, 100)
    assert tl == [Interval(0, 30, DOWN, "timeout"), Interval(30, 100, UP)]


def test_combine_takes_the_worst_and_unreachable_counts_as_down() -> None:
    a = [Interval(0, 10, UP), Interval(10, 20, UNR, "timeout"), Interval(20, 30, UP)]
    b = [Interval(0, 15, UP), Interval(15, 25, DOWN, "refused"), Interval(25, 30, UP)]
    c = combine([a, b], 0, 30)
    assert c == [Interval(0, 10, UP), Interval(10, 15, UNR, "timeout"), Interval(15, 25, DOWN, "refused"),
                 Interval(25, 30, UP)]
    f = summarize(c, 0, 30)
    assert f.down == 15 and f.unreachable == 5 and f.incidents == 1


def test_an_outage_wholly_in_maintenance_is_listed_not_counted() -> None:
    tl = with_maintenance(target_timeline(UP, [(10, DOWN, "t"), (20, UP, None)], 0, 100), [(5, 25)])
    f = summarize(tl, 0, 100)
    assert f.incidents == 0 and f.down == 0 and f.maintenance == 20
    assert [i.in_maintenance for i in f.incident_list] == ["yes"]


def test_per_day_splits_at_the_edges() -> None:
    tl = target_timeline(UP, [(90, DOWN, "t"), (110, UP, None)], 0, 200)
    assert per_day(tl, [0, 100, 200]) == [(90, 10), (90, 10)]


# -- properties ---------------------------------------------------------------------------------

states = st.sampled_from([UP, DOWN, UNK, UNR])
END = 1000.0


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[list[Interval]], list[tuple[float, float]], list[tuple[float, float]]]:
    n = draw(st.integers(1, 4))
    tls = []
    for _ in range(n):
        times = sorted(draw(st.lists(st.floats(-100, END + 100, allow_nan=False), max_size=12)))
        changes = [(t, draw(states), draw(st.sampled_from([None, "timeout", "refused"]))) for t in times]
        tls.append(target_timeline(draw(states), changes, 0.0, END))
    spans = st.tuples(st.floats(-50, END + 50, allow_nan=False), st.floats(0, 400, allow_nan=False)).map(
        lambda x: (x[0], x[0] + x[1]))
    covered = merge_spans(draw(st.lists(spans, max_size=5)))
    maint = merge_spans(draw(st.lists(spans, max_size=3)))
    return tls, covered, maint


@settings(max_examples=200, deadline=None)
@given(histories(), st.sampled_from(["exclude", "down"]))
def test_times_add_up_and_availability_is_a_percentage(
    h: tuple[list[list[Interval]], list[tuple[float, float]], list[tuple[float, float]]], policy: str
) -> None:
    tls, covered, maint = h
    for tl in tls:  # each timeline covers the range exactly, contiguous
        assert tl[0].start == 0.0 and tl[-1].end == END
        assert all(a.end == b.start for a, b in zip(tl, tl[1:], strict=False))
    tl = with_maintenance(blind(combine(tls, 0.0, END), covered), maint)
    assert all(a.end == b.start for a, b in zip(tl, tl[1:], strict=False))
    f = summarize(tl, 0.0, END, policy)  # type: ignore[arg-type]
    assert math.isclose(f.up + f.down + f.unknown + f.maintenance, END, abs_tol=1e-6)
    assert f.availability is None or 0.0 <= f.availability <= 100.0
    if f.up + f.down == 0 and (policy == "exclude" or f.unknown == 0):
        assert f.availability is None
    assert 0 <= f.unreachable <= f.down + 1e-9
    assert f.longest <= f.down + 1e-6
    if f.incidents:
        assert f.mttr is not None and math.isclose(f.mttr * f.incidents, f.down, abs_tol=1e-6)
    # incidents never overlap and lie in the range
    inc = incidents(tl, 0.0, END)
    assert all(0 <= i.start < i.end <= END for i in inc)
    assert all(a.end <= b.start for a, b in zip(inc, inc[1:], strict=False))
    # outside coverage nothing is up or down
    for iv in tl:
        if iv.state in (UP, DOWN, UNR):
            assert any(s <= iv.start and iv.end <= e for s, e in covered)


@st.composite
def raw_histories(draw: st.DrawFn) -> tuple[list[TargetHistory], list[tuple[float, float]], list[tuple[float, float]],
                                            list[float]]:
    n = draw(st.integers(0, 4))
    targets: list[TargetHistory] = []
    for _ in range(n):
        times = sorted(draw(st.lists(st.integers(-100, int(END) + 100).map(float), max_size=12)))
        changes = [(t, draw(states), draw(st.sampled_from([None, "timeout", "refused"]))) for t in times]
        targets.append((draw(states), None, changes))
    spans = st.tuples(st.integers(-50, int(END) + 50), st.integers(0, 400)).map(lambda x: (float(x[0]),
                                                                                         float(x[0] + x[1])))
    covered = merge_spans(draw(st.lists(spans, max_size=5)))
    maint = merge_spans(draw(st.lists(spans, max_size=3)))
    days = sorted({0.0, *draw(st.lists(st.integers(1, int(END) - 1).map(float), max_size=4))})
    return targets, covered, maint, days


@settings(max_examples=200, deadline=None)
@given(raw_histories(), st.sampled_from(["exclude", "down"]))
def test_the_fused_sweep_equals_the_composed_definition(
    h: tuple[list[TargetHistory], list[tuple[float, float]], list[tuple[float, float]], list[float]], policy: str
) -> None:
    targets, covered, maint, days = h
    tls = [target_timeline(init, changes, 0.0, END, why) for init, why, changes in targets]
    tl = with_maintenance(blind(combine(tls, 0.0, END), covered), maint)
    want = summarize(tl, 0.0, END, policy)  # type: ignore[arg-type]
    want_days = per_day(tl, [*days, END])
    got, got_days = service_figures(targets, Calendar.make(0.0, END, covered, days), maint, policy)  # type: ignore[arg-type]
    for name in ("up", "down", "unreachable", "unknown", "maintenance", "longest"):
        assert math.isclose(getattr(got, name), getattr(want, name), abs_tol=1e-6), name
    assert got.incidents == want.incidents and got.availability == pytest.approx(want.availability)
    assert [(i.start, i.end, i.maintenance_seconds, i.unreachable, i.open_end) for i in got.incident_list] == [
        (i.start, i.end, i.maintenance_seconds, i.unreachable, i.open_end) for i in want.incident_list]
    assert got_days == pytest.approx(want_days)


@given(st.integers(0, 4_102_444_800_000))  # 1970 .. 2100, in milliseconds
def test_iso_utc_is_isoformat(ms: int) -> None:
    from datetime import UTC, datetime

    from monitor.reports.sla import iso_utc

    assert iso_utc(ms / 1000) == datetime.fromtimestamp(ms / 1000, UTC).isoformat()
