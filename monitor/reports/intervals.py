"""The interval maths of the SLA report: pure functions over (start, end, state) intervals.

Times are POSIX seconds (floats); every interval is half-open [start, end). A timeline is a
sorted list of contiguous intervals covering the report range exactly.

- ``target_timeline``: a target's states from its initial state and its state changes.
- ``blind``: time outside wardwatch's coverage becomes UNKNOWN (it was not looking).
- ``combine``: a service of a unit from its targets, worst first (DOWN > UNREACHABLE >
  UNKNOWN > UP): one failing check of the portal is the portal down.
- ``with_maintenance``: intervals cut at maintenance edges and flagged.
- ``summarize``: availability, downtime, incidents, MTTR, MTBF, longest outage.

Definitions (what the report prints, see docs in monitor/reports/sla.py):
- maintenance time is taken out of the numerator and the denominator;
- UNKNOWN time is shown apart; policy ``exclude`` leaves it out of the denominator,
  ``down`` counts it as unavailable (it is never counted as an incident);
- UNREACHABLE (a service behind its unit's down link) is unavailable for that service: it
  counts in downtime and incidents, and is also shown on its own;
- an incident is a maximal run of DOWN/UNREACHABLE with some of it outside maintenance;
  MTTR = downtime / incidents, MTBF = uptime / incidents (None without incidents);
- availability = up / (up + down [+ unknown]) x 100, None ("no data") when that is 0.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from monitor.state import State

UnknownPolicy = Literal["exclude", "down"]

RANK: dict[State, int] = {State.UP: 0, State.UNKNOWN: 1, State.UNREACHABLE: 2, State.DOWN: 3}
UNAVAILABLE = (State.DOWN, State.UNREACHABLE)


class Interval(NamedTuple):  # a tuple: millions are made for a national report
    start: float
    end: float
    state: State
    reason: str | None = None
    maintenance: bool = False

    @property
    def seconds(self) -> float:
        return self.end - self.start


class Incident(NamedTuple):
    start: float
    end: float
    reason: str | None
    maintenance_seconds: float  # how much of it was inside maintenance
    unreachable: bool  # the service was cut off by its unit's link (not down on its own)
    open_start: bool = False  # began before the report range (or with it)
    open_end: bool = False  # still going at the end of the range

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def in_maintenance(self) -> str:
        if self.maintenance_seconds <= 0:
            return "no"
        return "yes" if self.maintenance_seconds >= self.seconds else "partly"


@dataclass(frozen=True, slots=True)
class Figures:
    range_seconds: float
    up: float
    down: float  # unavailable outside maintenance (unreachable included)
    unreachable: float  # the part of ``down`` that was UNREACHABLE
    unknown: float  # outside maintenance
    maintenance: float
    incidents: int
    longest: float
    availability: float | None  # percent; None: no data
    mttr: float | None
    mtbf: float | None
    incident_list: tuple[Incident, ...] = field(default=())

    @property
    def has_data(self) -> bool:
        return self.availability is not None


def merge_spans(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, non-overlapping union of [start, end) spans (empty ones dropped)."""
    out: list[tuple[float, float]] = []
    for s, e in sorted(x for x in spans if x[1] > x[0]):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def target_timeline(
    initial: State,
    changes: Sequence[tuple[float, State, str | None]],
    start: float,
    end: float,
    initial_reason: str | None = None,
) -> list[Interval]:
    """States over [start, end) from the state at ``start`` and the changes (at, new state,
    reason) sorted by time. Changes outside the range only move the state they leave."""
    out: list[Interval] = []
    state, reason, at = initial, initial_reason, start
    for t, new, why in changes:
        if t <= start:
            state, reason = new, why if new in UNAVAILABLE else None
            continue
        if t >= end:
            break
        if new is state:  # a repeated state keeps the reason it began with
            continue
        if t > at and new is not state:
            out.append(Interval(at, t, state, reason))
            at = t
        state, reason = new, why if new in UNAVAILABLE else None
    if end > at:
        out.append(Interval(at, end, state, reason))
    return _coalesce(out)


def blind(timeline: Sequence[Interval], covered: Sequence[tuple[float, float]]) -> list[Interval]:
    """Turn every moment outside the ``covered`` spans (merged, sorted) into UNKNOWN."""
    out: list[Interval] = []
    spans = covered
    j = 0
    for iv in timeline:
        at = iv.start
        while j < len(spans) and spans[j][1] <= at:
            j += 1
        k = j
        while at < iv.end:
            if k >= len(spans) or spans[k][0] >= iv.end:
                out.append(Interval(at, iv.end, State.UNKNOWN, None, iv.maintenance))
                break
            s, e = spans[k]
            if s > at:
                out.append(Interval(at, s, State.UNKNOWN, None, iv.maintenance))
                at = s
            stop = min(e, iv.end)
            out.append(Interval(at, stop, iv.state, iv.reason, iv.maintenance))
            at = stop
            if e <= iv.end:
                k += 1
    return _coalesce(out)


def combine(timelines: Sequence[Sequence[Interval]], start: float, end: float) -> list[Interval]:
    """One timeline, the worst state of all at each moment (no timelines: all UNKNOWN).

    A sweep over the intervals that are not UP only (usually few), so a service of many
    healthy targets costs next to nothing."""
    if not timelines:
        return [Interval(start, end, State.UNKNOWN)] if end > start else []
    if len(timelines) == 1:
        return list(timelines[0])
    events: list[tuple[float, int, int, str | None]] = []
    for tl in timelines:
        for iv in tl:
            if iv.state is not State.UP:
                r = RANK[iv.state]
                events.append((iv.start, 1, r, iv.reason))
                events.append((iv.end, -1, r, iv.reason))
    if not events:
        return [Interval(start, end, State.UP)] if end > start else []
    events.sort(key=lambda ev: ev[0])
    active: list[dict[str | None, int]] = [{} for _ in BY_RANK]
    out: list[Interval] = []
    at = start
    i, n = 0, len(events)
    while i < n:
        t = events[i][0]
        if t > at:
            out.append(_worst(at, t, active))
            at = t
        while i < n and events[i][0] == t:
            _, delta, r, why = events[i]
            bucket = active[r]
            left = bucket.get(why, 0) + delta
            if left:
                bucket[why] = left
            else:
                bucket.pop(why, None)
            i += 1
    if end > at:
        out.append(_worst(at, end, active))
    return _coalesce(out)


BY_RANK: tuple[State, ...] = tuple(sorted(RANK, key=RANK.__getitem__))


def _worst(a: float, b: float, active: list[dict[str | None, int]]) -> Interval:
    for r in (3, 2, 1):
        bucket = active[r]
        if bucket:
            why = None
            for k in bucket:
                if k:
                    why = k
                    break
            return Interval(a, b, BY_RANK[r], why)
    return Interval(a, b, State.UP)


def with_maintenance(timeline: Sequence[Interval], windows: Sequence[tuple[float, float]]) -> list[Interval]:
    """Cut intervals at the (merged, sorted) maintenance spans and flag the parts inside."""
    if not windows:
        return list(timeline)
    out: list[Interval] = []
    j = 0
    for iv in timeline:
        at = iv.start
        while j < len(windows) and windows[j][1] <= at:
            j += 1
        k = j
        while at < iv.end:
            if k >= len(windows) or windows[k][0] >= iv.end:
                out.append(Interval(at, iv.end, iv.state, iv.reason, False))
                break
            s, e = windows[k]
            if s > at:
                out.append(Interval(at, s, iv.state, iv.reason, False))
                at = s
            stop = min(e, iv.end)
            out.append(Interval(at, stop, iv.state, iv.reason, True))
            at = stop
            if e <= iv.end:
                k += 1
    return out


def incidents(timeline: Sequence[Interval], start: float, end: float) -> list[Incident]:
    """Maximal runs of DOWN/UNREACHABLE; those wholly inside maintenance are kept (flagged)."""
    out: list[Incident] = []
    run: list[Interval] = []

    def close() -> None:
        if not run:
            return
        maint = sum(iv.seconds for iv in run if iv.maintenance)
        reason = next((iv.reason for iv in run if iv.reason), None)
        out.append(Incident(
            run[0].start, run[-1].end, reason, maint,
            all(iv.state is State.UNREACHABLE for iv in run),
            run[0].start <= start, run[-1].end >= end,
        ))
        run.clear()

    for iv in timeline:
        if iv.state in UNAVAILABLE and (not run or run[-1].end == iv.start):
            run.append(iv)
        elif iv.state in UNAVAILABLE:
            close()
            run.append(iv)
        else:
            close()
    close()
    return out


def summarize(
    timeline: Sequence[Interval], start: float, end: float, policy: UnknownPolicy = "exclude"
) -> Figures:
    up = down = unreachable = unknown = maintenance = 0.0
    for iv in timeline:
        d = iv.seconds
        if iv.maintenance:
            maintenance += d
        elif iv.state is State.UP:
            up += d
        elif iv.state is State.UNKNOWN:
            unknown += d
        else:
            down += d
            if iv.state is State.UNREACHABLE:
                unreachable += d
    found = incidents(timeline, start, end)
    counted = [i for i in found if i.seconds - i.maintenance_seconds > 0]
    n = len(counted)
    longest = max((i.seconds - i.maintenance_seconds for i in counted), default=0.0)
    denominator = up + down + (unknown if policy == "down" else 0.0)
    availability = None if denominator <= 0 else min(100.0, max(0.0, 100.0 * up / denominator))
    return Figures(
        range_seconds=end - start,
        up=up,
        down=down,
        unreachable=unreachable,
        unknown=unknown,
        maintenance=maintenance,
        incidents=n,
        longest=longest,
        availability=availability,
        mttr=down / n if n else None,
        mtbf=up / n if n else None,
        incident_list=tuple(found),
    )


def per_day(timeline: Sequence[Interval], edges: Sequence[float]) -> list[tuple[float, float]]:
    """(up, down) seconds outside maintenance in each [edges[i], edges[i+1]) day."""
    days = len(edges) - 1
    up = [0.0] * days
    down = [0.0] * days
    for iv in timeline:
        state = iv.state
        if iv.maintenance or state is State.UNKNOWN:
            continue
        acc = up if state is State.UP else down
        s, e = iv.start, iv.end
        k = bisect_right(edges, s) - 1
        k = max(k, 0)
        while k < days and edges[k] < e:
            hi = edges[k + 1]
            if e <= hi:
                acc[k] += e - (s if s > edges[k] else edges[k])
                break
            acc[k] += hi - (s if s > edges[k] else edges[k])
            k += 1
    return list(zip(up, down, strict=True))


def availability(up: float, down: float) -> float | None:
    total = up + down
    return None if total <= 0 else 100.0 * up / total


def _coalesce(ivs: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for iv in ivs:
        if iv.end <= iv.start:
            continue
        if out:
            last = out[-1]
            if last.state is iv.state and last.maintenance == iv.maintenance and last.end == iv.start and (
                last.reason == iv.reason or iv.state not in UNAVAILABLE
            ):
                out[-1] = Interval(last.start, iv.end, last.state, last.reason, last.maintenance)
                continue
        out.append(iv)
    return out


# -- the fused pass the reports use ------------------------------------------------------------
# The functions above, composed (target_timeline per target -> combine -> blind ->
# with_maintenance -> summarize + per_day), are the definition; ``service_figures`` computes
# the same in one sweep over the change points, without building a timeline per target
# (a national 90-day report has millions of changes). A property test holds them equal.

Changes = Sequence[tuple[float, State, "str | None"]]
TargetHistory = tuple[State, "str | None", Changes]  # (state at start, its reason, changes)

_COV, _MAINT, _DAY, _TARGET, _END = 0, 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class Calendar:
    """What every service of a report shares: the range, wardwatch's coverage, the day edges."""

    start: float
    end: float
    covered: tuple[tuple[float, float], ...]
    edges: tuple[float, ...]  # day starts, then ``end``
    events: tuple[tuple[float, int, int, int, str | None], ...]
    cov_starts: tuple[float, ...] = ()
    cov_before: tuple[float, ...] = ()  # covered seconds before each covered span
    day_covered: tuple[float, ...] = ()

    def covered_until(self, t: float) -> float:
        """Covered seconds in [start, t)."""
        i = bisect_right(self.cov_starts, t) - 1
        if i < 0:
            return 0.0
        a, b = self.covered[i]
        return self.cov_before[i] + (min(t, b) - a)

    @classmethod
    def make(cls, start: float, end: float, covered: Iterable[tuple[float, float]],
             day_starts: Sequence[float] | None = None) -> Calendar:
        cov = tuple(merge_spans((max(a, start), min(b, end)) for a, b in covered))
        edges = tuple(day_starts or (start,)) + (end,)
        ev: list[tuple[float, int, int, int, str | None]] = []
        for a, b in cov:
            ev.append((a, _COV, 1, 0, None))
            ev.append((b, _COV, -1, 0, None))
        ev.extend((t, _DAY, 0, 0, None) for t in edges[:-1])
        ev.sort(key=_first)
        before: list[float] = []
        total = 0.0
        for a, b in cov:
            before.append(total)
            total += b - a
        cal = cls(start, end, cov, edges, tuple(ev), tuple(a for a, _ in cov), tuple(before))
        days = tuple(cal.covered_until(edges[k + 1]) - cal.covered_until(edges[k]) for k in range(len(edges) - 1))
        return cls(start, end, cov, edges, tuple(ev), cal.cov_starts, cal.cov_before, days)


def _first(ev: tuple[float, int, int, int, str | None]) -> float:
    return ev[0]


def service_figures(
    targets: Sequence[TargetHistory],
    cal: Calendar,
    maintenance: Sequence[tuple[float, float]] = (),
    policy: UnknownPolicy = "exclude",
) -> tuple[Figures, list[tuple[float, float]]]:
    """Figures and per-day (up, down) of a service made of ``targets`` (the worst at each
    moment), blind outside the calendar's coverage, with ``maintenance`` (merged spans) cut out."""
    start, end = cal.start, cal.end
    ev: list[tuple[float, int, int, int, str | None]] = list(cal.events)
    for m0, m1 in maintenance:
        a, b = max(m0, start), min(m1, end)
        if b > a:
            ev.append((a, _MAINT, 1, 0, None))
            ev.append((b, _MAINT, -1, 0, None))
    if not targets:
        ev.append((start, _TARGET, 1, 1, None))  # no target: unknown throughout
    rank = RANK
    up_state = State.UP
    add = ev.append
    for initial, why0, changes in targets:
        state, reason = initial, why0
        opened = False
        for t, new, why in changes:
            if t <= start:
                state, reason = new, why
                continue
            if t >= end:
                break
            if new is state:
                continue
            if not opened:
                opened = True
                if state is not up_state:
                    add((start, _TARGET, 1, rank[state], reason))
            if state is not up_state:
                add((t, _TARGET, -1, rank[state], reason))
            if new is not up_state:
                add((t, _TARGET, 1, rank[new], why))
            state, reason = new, why
        if not opened and state is not up_state:
            add((start, _TARGET, 1, rank[state], reason))
    add((end, _END, 0, 0, None))
    ev.sort(key=_first)

    counts = [0, 0, 0, 0]
    reasons: list[dict[str | None, int]] = [{}, {}, {}, {}]
    cov = maint = 0
    day = -1
    ndays = len(cal.edges) - 1
    up_day = [0.0] * ndays
    down_day = [0.0] * ndays
    up = down = unreachable = unknown = maintenance_s = 0.0
    found: list[Incident] = []
    run_start = -1.0
    run_maint = 0.0
    run_reason: str | None = None
    run_unreachable = True
    prev = start

    def reason_of(r: int) -> str | None:
        for k in reasons[r]:
            if k:
                return k
        return None

    for at, kind, delta, r, why in ev:
        t = min(at, end)
        if t > prev:
            d = t - prev
            st = 3 if counts[3] else 2 if counts[2] else 1 if counts[1] else 0
            bad = cov and st >= 2
            if bad:
                if run_start < 0:
                    run_start, run_maint, run_reason, run_unreachable = prev, 0.0, reason_of(st), st == 2
                elif st == 3:
                    run_unreachable = False
                if run_reason is None:
                    run_reason = reason_of(st)
            elif run_start >= 0:
                found.append(Incident(run_start, prev, run_reason, run_maint, run_unreachable,
                                      run_start <= start, False))
                run_start = -1.0
            if maint:
                maintenance_s += d
                if bad:
                    run_maint += d
            elif not cov or st == 1:
                unknown += d
            elif st == 0:
                up += d
                up_day[day] += d
            else:
                down += d
                down_day[day] += d
                if st == 2:
                    unreachable += d
            prev = t
            if t >= end:
                break
        if kind == _TARGET:
            counts[r] += delta
            if delta and r >= 2:
                bucket = reasons[r]
                left = bucket.get(why, 0) + delta
                if left:
                    bucket[why] = left
                else:
                    bucket.pop(why, None)
        elif kind == _COV:
            cov += delta
        elif kind == _MAINT:
            maint += delta
        elif kind == _DAY:
            day += 1
    if run_start >= 0:
        found.append(Incident(run_start, end, run_reason, run_maint, run_unreachable, run_start <= start, True))
    n = 0
    longest = 0.0
    for i in found:
        own = i.end - i.start - i.maintenance_seconds
        if own > 0:
            n += 1
            longest = max(longest, own)
    denominator = up + down + (unknown if policy == "down" else 0.0)
    figures = Figures(
        range_seconds=end - start,
        up=up,
        down=down,
        unreachable=unreachable,
        unknown=unknown,
        maintenance=maintenance_s,
        incidents=n,
        longest=longest,
        availability=None if denominator <= 0 else min(100.0, max(0.0, 100.0 * up / denominator)),
        mttr=down / n if n else None,
        mtbf=up / n if n else None,
        incident_list=tuple(found),
    )
    return figures, list(zip(up_day, down_day, strict=True))


def _target_events(
    targets: Sequence[TargetHistory], start: float, end: float
) -> list[tuple[float, int, int, str | None]]:
    """(t, +1/-1, rank, reason) where the targets enter and leave a state other than UP, sorted."""
    ev: list[tuple[float, int, int, str | None]] = []
    add = ev.append
    rank = RANK
    up_state = State.UP
    if not targets:
        add((start, 1, 1, None))
    for initial, why0, changes in targets:
        state, reason = initial, why0
        opened = False
        for t, new, why in changes:
            if t <= start:
                state, reason = new, why
                continue
            if t >= end:
                break
            if new is state:
                continue
            if not opened:
                opened = True
                if state is not up_state:
                    add((start, 1, rank[state], reason))
            if state is not up_state:
                add((t, -1, rank[state], reason))
            if new is not up_state:
                add((t, 1, rank[new], why))
            state, reason = new, why
        if not opened and state is not up_state:
            add((start, 1, rank[state], reason))
    ev.sort(key=_first4)
    return ev


def _first4(ev: tuple[float, int, int, str | None]) -> float:
    return ev[0]
