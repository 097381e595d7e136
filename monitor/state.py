"""Per-target state and its transitions, as pure functions of (status, result, time).

A target turns DOWN only after ``confirm_after`` consecutive failures (the first
probe plus the engine's quick re-checks), so one lost packet or one slow answer
never flips it; the outage is dated from the first of those failures. One
success brings it back UP.

A target behind its unit's link (every service but ``link`` itself) that would
turn DOWN while that link is DOWN is recorded UNREACHABLE instead: still probed,
its outage dated the same way, but not an outage of its own. It turns DOWN at its
first failure once the link is no longer down, UP at its first success.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from probes.base import ProbeResult, Reason


class State(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"
    UNREACHABLE = "unreachable"  # failing while its unit's link is down


# Numeric encoding of wardwatch_target_state, stable for dashboards and rules.
STATE_VALUE: dict[State, int] = {State.UNREACHABLE: -2, State.UNKNOWN: -1, State.DOWN: 0, State.UP: 1}


@dataclass(slots=True, frozen=True)
class Status:
    state: State = State.UNKNOWN
    since: datetime | None = None  # when the current state began (UTC)
    reason: Reason | None = None
    message: str = ""
    failures: int = 0  # consecutive failed probes, re-checks included
    first_failure_at: datetime | None = None


@dataclass(slots=True, frozen=True)
class Change:
    old: State
    new: State
    at: datetime
    reason: Reason | None
    message: str


def observe(
    status: Status, result: ProbeResult, at: datetime, confirm_after: int, parent_down: bool = False
) -> tuple[Status, Change | None]:
    """Fold one probe result into the status; return the change it makes, if any.

    ``parent_down``: the target's unit link is DOWN (the caller knows the dependency)."""
    if result.success:
        new = Status(State.UP, status.since if status.state is State.UP else at)
        if status.state is State.UP:
            return new, None
        return new, Change(status.state, State.UP, at, None, "")
    failures = status.failures + 1
    first = status.first_failure_at if status.failures else at
    assert first is not None
    if status.state is State.DOWN or (status.state is State.UNREACHABLE and parent_down):
        # Still down (or still cut off): keep the outage's start, refresh the reason shown to operators.
        return replace(status, failures=failures, reason=result.reason, message=result.message), None
    if failures < confirm_after and status.state is not State.UNREACHABLE:
        return replace(status, failures=failures, first_failure_at=first), None
    if status.state is State.UNREACHABLE:  # the link is back and this target still fails: its own outage
        first = status.since or first
    new_state = State.UNREACHABLE if parent_down else State.DOWN
    new = Status(new_state, first, result.reason, result.message, failures, first)
    return new, Change(status.state, new_state, first, result.reason, result.message)


def needs_recheck(status: Status, confirm_after: int) -> bool:
    """A failure not yet confirmed: probe again soon rather than at the next interval."""
    return status.state not in (State.DOWN, State.UNREACHABLE) and 0 < status.failures < confirm_after
