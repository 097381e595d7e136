"""Real Target and ProbeResult objects, a fake clock and a small scheduler that mirrors the core
engine (rounds at each target's phase, quick re-checks of an unconfirmed failure, the core state
machine deciding them), for driving the alert engine through time."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from alerts.engine import AlertEngine
from alerts.model import Event, Notification
from monitor.state import Status, needs_recheck, observe
from monitor.targets import Target
from probes import registry
from probes.base import ProbeConfig, ProbeResult, Reason, Sample

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
UNIT = 26506
OK = ProbeResult(True, None, "", 0.01, (Sample("probe_success", 1.0),))
FAIL = ProbeResult(False, Reason.TIMEOUT, "no answer", 10.0, (Sample("probe_success", 0.0),))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def target(
    service: str = "portal",
    probe: str = "http",
    *,
    addr: str = "",
    unit: int = UNIT,
    interval: float = 30.0,
    rechecks: int = 2,
    **cfg: object,
) -> Target:
    # Pure tests: these addresses are never contacted (loopback all the same).
    addr = addr or {"icmp": f"127.{unit % 250}.0.1", "tcp": f"127.{unit % 250}.0.2:443"}.get(
        probe, f"https://{service}-{unit}.example.vn/"
    )
    return Target(
        province=79, unit_code=unit, unit_name=f"Phường {unit}", service=service, probe=probe, target=addr,
        config=_config(probe, cfg), interval=interval, timeout=5.0, rechecks=rechecks,
        recheck_spacing=2.0,
    )


def unit_targets(unit: int = UNIT) -> list[Target]:
    """A unit as the inventory expands it: link (icmp), two VC rooms, portal, mail, procedures."""
    return [
        target("link", "icmp", unit=unit),
        target("vc_gov", "tcp", addr=f"127.{unit % 250}.1.1:1720", unit=unit),
        target("vc_party", "tcp", addr=f"127.{unit % 250}.1.2:1720", unit=unit),
        target("portal", "http", unit=unit),
        target("email", "tcp", addr=f"mail-{unit}.example.vn:25", unit=unit),
        target("procedures", "http", unit=unit),
    ]


def fail(reason: Reason = Reason.TIMEOUT, *samples: Sample) -> ProbeResult:
    return ProbeResult(False, reason, f"{reason.value}", 1.0, samples)


def ok(*samples: Sample) -> ProbeResult:
    return ProbeResult(True, None, "", 0.01, samples)


def feed(eng: AlertEngine, t: Target, seq: str, start: float = 0.0, step: float = 30.0) -> list[Notification]:
    """'u'/'d' results one `step` apart (no re-check timing: each letter is one result)."""
    out: list[Notification] = []
    for i, c in enumerate(seq):
        out += eng.on_result(t, OK if c == "u" else FAIL, at(start + i * step))
    return out


def events(notes: Iterable[Notification]) -> list[tuple[str, str]]:
    return [(n.alert.id, n.event.value) for n in notes]


def firing(notes: Iterable[Notification]) -> list[str]:
    return [n.alert.id for n in notes if n.event is Event.FIRING]


class Sim:
    """Probes targets the way monitor.engine does, with a fault model deciding each result."""

    def __init__(self, eng: AlertEngine, targets: list[Target], tick: float = 5.0) -> None:
        self.eng = eng
        self.targets = targets
        self.tick = tick
        self.status: dict[str, Status] = {t.key: Status() for t in targets}
        self.notes: list[tuple[float, Notification]] = []
        self.results = 0
        self._heap: list[tuple[float, int, str, Target | None, float]] = []
        self._seq = itertools.count()
        self.now = 0.0
        for t in targets:
            phase = (t.stable_hash() / 2**64) * t.interval
            heapq.heappush(self._heap, (phase, next(self._seq), "probe", t, phase))
        heapq.heappush(self._heap, (0.0, next(self._seq), "tick", None, 0.0))

    def run(self, until: float, result: Callable[[Target, float], ProbeResult]) -> list[Notification]:
        """Run to `until` seconds; returns the notifications decided meanwhile."""
        new: list[Notification] = []
        while self._heap and self._heap[0][0] <= until:
            s, _, kind, t, due = heapq.heappop(self._heap)
            self.now = s
            if kind == "tick":
                got = self.eng.on_tick(at(s))
                heapq.heappush(self._heap, (s + self.tick, next(self._seq), "tick", None, 0.0))
            else:
                assert t is not None
                r = result(t, s)
                confirm = t.rechecks + 1
                st, _ = observe(self.status[t.key], r, at(s), confirm)
                self.status[t.key] = st
                self.results += 1
                got = self.eng.on_result(t, r, at(s))
                if needs_recheck(st, confirm):
                    heapq.heappush(self._heap, (s + t.recheck_spacing, next(self._seq), "probe", t, due))
                else:
                    nxt = due + t.interval
                    heapq.heappush(self._heap, (max(nxt, s + 0.001), next(self._seq), "probe", t, nxt))
            self.notes += [(s, n) for n in got]
            new += got
        self.now = until
        return new


def cut(keys_or_pred: Callable[[Target], bool], start: float, end: float = float("inf"),
        bad: ProbeResult = FAIL) -> Callable[[Target, float], ProbeResult]:
    """Fault model: targets matching the predicate fail from `start` until `end`."""

    def result(t: Target, s: float) -> ProbeResult:
        return bad if keys_or_pred(t) and start <= s < end else OK

    return result


def _config(probe: str, cfg: dict[str, object]) -> ProbeConfig:
    """The kind's own Config where the kind exists; the alert engine never reads it."""
    if probe in registry.KINDS:
        return registry.get(probe).config(**cfg)
    return ProbeConfig()
