"""The state machine: one lost packet never flips a target; outages date from the first failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.state import STATE_VALUE, State, Status, needs_recheck, observe
from probes.base import ProbeResult, Reason

T0 = datetime(2026, 7, 1, tzinfo=UTC)
OK = ProbeResult(True, None)
FAIL = ProbeResult(False, Reason.TIMEOUT, "no answer")


def run(seq: str, confirm: int = 3, start: Status | None = None) -> tuple[Status, list[tuple[State, State, datetime]]]:
    st = start or Status()
    changes = []
    for i, c in enumerate(seq):
        st, ch = observe(st, OK if c == "u" else FAIL, T0 + timedelta(seconds=i), confirm)
        if ch:
            changes.append((ch.old, ch.new, ch.at))
    return st, changes


def test_first_success_goes_up_from_unknown() -> None:
    st, changes = run("u")
    assert st.state is State.UP and changes == [(State.UNKNOWN, State.UP, T0)]


def test_single_failure_between_successes_changes_nothing() -> None:
    st, changes = run("uudu" "u")
    assert st.state is State.UP
    assert changes == [(State.UNKNOWN, State.UP, T0)]
    assert st.failures == 0


def test_failures_short_of_confirmation_then_success_reset_the_count() -> None:
    st, changes = run("uddudd")
    assert st.state is State.UP and st.failures == 2
    assert len(changes) == 1


def test_confirmed_outage_is_dated_from_first_failure() -> None:
    st, changes = run("uuddd")
    assert st.state is State.DOWN
    assert changes[-1] == (State.UP, State.DOWN, T0 + timedelta(seconds=2))
    assert st.since == T0 + timedelta(seconds=2)
    assert st.reason is Reason.TIMEOUT


def test_recovery_is_one_success_and_further_failures_keep_outage_start() -> None:
    st, changes = run("uddddddu")
    assert [c[1] for c in changes] == [State.UP, State.DOWN, State.UP]
    assert changes[1][2] == T0 + timedelta(seconds=1)
    assert st.since == T0 + timedelta(seconds=7)


def test_needs_recheck_only_while_unconfirmed() -> None:
    st, _ = run("ud")
    assert needs_recheck(st, 3)
    st, _ = run("uddd")
    assert not needs_recheck(st, 3)  # confirmed: back to the normal interval
    st, _ = run("u")
    assert not needs_recheck(st, 3)


def test_confirm_after_one_means_no_rechecks() -> None:
    st, changes = run("d", confirm=1)
    assert st.state is State.DOWN and changes == [(State.UNKNOWN, State.DOWN, T0)]


def test_failures_while_the_parent_link_is_down_are_unreachable_not_down() -> None:
    st = Status()
    seen = []
    for i, (c, parent) in enumerate([("u", False), ("d", True), ("d", True), ("d", True), ("d", True),
                                     ("d", False), ("u", False)]):
        st, ch = observe(st, OK if c == "u" else FAIL, T0 + timedelta(seconds=i), 3, parent_down=parent)
        if ch:
            seen.append((ch.old, ch.new, ch.at))
    assert seen == [
        (State.UNKNOWN, State.UP, T0),
        (State.UP, State.UNREACHABLE, T0 + timedelta(seconds=1)),  # dated from the first failure
        (State.UNREACHABLE, State.DOWN, T0 + timedelta(seconds=1)),  # link back, still failing: its own outage
        (State.DOWN, State.UP, T0 + timedelta(seconds=6)),
    ]


def test_unreachable_is_not_rechecked_and_a_target_already_down_stays_down() -> None:
    st, _ = run("ddd")
    st, ch = observe(st, FAIL, T0 + timedelta(seconds=9), 3, parent_down=True)
    assert st.state is State.DOWN and ch is None  # it paged before the link failed: it stays DOWN
    st = Status()
    for i in range(3):
        st, _ = observe(st, FAIL, T0 + timedelta(seconds=i), 3, parent_down=True)
    assert st.state is State.UNREACHABLE and not needs_recheck(st, 3)
    assert STATE_VALUE[State.UNREACHABLE] == -2
