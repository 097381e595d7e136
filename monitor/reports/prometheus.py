"""The SLA report's second source: Prometheus range queries over wardwatch's own metrics.

``wardwatch_target_state`` (1 up, 0 down, -1 unknown, -2 unreachable) is asked for over the
range with ``step`` = the scrape interval; a sample at t stands for [t, t + step). Where
Prometheus has no sample (wardwatch was not scraped: staleness markers end the series) the
target is UNKNOWN, as the store's coverage makes it. An outage is dated from its first failed
probe by walking back over the ``probe_success == 0`` samples just before the confirmed DOWN,
so both sources agree within one scrape interval. Better still, a change is dated by
``wardwatch_target_last_change_timestamp_seconds`` (the store's own date of it) when Prometheus
has it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from monitor.reports.intervals import Interval, TargetHistory, _coalesce
from monitor.reports.sla import History, ReportError
from monitor.state import State

VALUE_STATE = {1: State.UP, 0: State.DOWN, -1: State.UNKNOWN, -2: State.UNREACHABLE}
MAX_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series per query


def _key(m: dict[str, str]) -> str | None:
    try:
        return f"{m['unit_code']}/{m['service']}/{m['probe']}/{m['target']}"
    except KeyError:
        return None


def query_range(url: str, expr: str, start: float, end: float, step: float, *, timeout: float = 60.0
                ) -> dict[str, list[tuple[float, float]]]:
    """{target key: [(t, value), ...]} over [start, end], in chunks Prometheus accepts."""
    out: dict[str, list[tuple[float, float]]] = {}
    t = start
    while t < end:
        stop = min(end, t + step * MAX_POINTS)
        q = urllib.parse.urlencode({"query": expr, "start": f"{t:.3f}", "end": f"{stop:.3f}", "step": f"{step}"})
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/query_range?{q}", timeout=timeout) as r:
                body: dict[str, Any] = json.load(r)
        except urllib.error.HTTPError as exc:
            raise ReportError(f"prometheus {url}: {exc.code} {exc.read()[:300].decode(errors='replace')}") from None
        except (OSError, ValueError) as exc:
            raise ReportError(f"prometheus {url}: {exc}") from None
        if body.get("status") != "success":
            raise ReportError(f"prometheus {url}: {body.get('error', body)}")
        for series in body["data"]["result"]:
            key = _key(series["metric"])
            if key is None:
                continue
            pts = out.setdefault(key, [])
            for raw_t, v in series["values"]:
                at = float(raw_t)
                if not pts or at > pts[-1][0]:
                    pts.append((at, float(v)))
        t = stop + step
    return out


def timeline_from_samples(
    states: list[tuple[float, float]],
    success: list[tuple[float, float]],
    start: float,
    end: float,
    *,
    step: float,
    since: list[tuple[float, float]] | None = None,
) -> list[Interval]:
    """A target's timeline from its state samples. A change seen between two consecutive
    samples is dated by wardwatch's own ``wardwatch_target_last_change_timestamp_seconds``
    (an outage's first failed probe) when that lies in the window, else, for an outage, by
    the ``probe_success == 0`` samples just before its confirmation, else at the sample."""
    failed = {round(t, 3) for t, v in success if v == 0}
    changed_at = {round(t, 3): v for t, v in since or ()}
    out: list[Interval] = []
    at = start
    prev_state: State | None = None
    prev_t = -1.0
    for i, (t, v) in enumerate(states):
        if t >= end:
            break
        state = VALUE_STATE.get(int(v), State.UNKNOWN)
        begin = max(t, start)
        if prev_state is not None and state is not prev_state and t - prev_t <= 1.5 * step:
            exact = changed_at.get(round(t, 3))
            if exact is not None and prev_t - 2 * step <= exact < t:
                begin = max(exact, start)
            elif state in (State.DOWN, State.UNREACHABLE) and prev_state is State.UP:
                j = i - 1
                while j >= 0 and VALUE_STATE.get(int(states[j][1])) is State.UP and round(states[j][0], 3) in failed:
                    j -= 1
                if j < i - 1:
                    begin = max(states[j + 1][0], start)
            if begin < t:
                while out and out[-1].start >= begin:
                    out.pop()
                if out and out[-1].end > begin:
                    last = out[-1]
                    out[-1] = Interval(last.start, begin, last.state, last.reason)
                at = begin
        if begin > at:
            out.append(Interval(at, begin, State.UNKNOWN))
        stop = min(end, t + step, states[i + 1][0] if i + 1 < len(states) else end)
        if stop > begin:
            out.append(Interval(begin, stop, state))
        at = max(at, stop)
        prev_state, prev_t = state, t
    if end > at:
        out.append(Interval(at, end, State.UNKNOWN))
    return _coalesce(out)


def load_prometheus(url: str, start: float, end: float, step: float, keys: set[str] | None = None) -> History:
    # With replicas (wardwatch run --replicas) a target has a series per instance: read the best
    # state any of them saw, as alerts/rules does; the earliest change date among them.
    states = query_range(url, "max without (instance) (wardwatch_target_state)", start, end, step)
    if not states:
        raise ReportError(f"prometheus {url}: no wardwatch_target_state samples in the range "
                          "(is it scraping wardwatch, and does it keep data that old?)")
    success = query_range(url, "max without (instance) (probe_success)", start, end, step)
    since = query_range(url, "min without (instance) (wardwatch_target_last_change_timestamp_seconds)",
                        start, end, step)
    targets: dict[str, TargetHistory] = {}
    for k, v in states.items():
        if keys is not None and k not in keys:
            continue
        tl = timeline_from_samples(v, success.get(k, []), start, end, step=step, since=since.get(k))
        targets[k] = (tl[0].state, tl[0].reason, [(iv.start, iv.state, iv.reason) for iv in tl[1:]])
    return History(start, end, targets, [], [(start, end)], "prometheus")
