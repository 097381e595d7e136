"""Injected faults: which service of which unit is down, slow or flapping (pure state).

A fault on ``link`` stands for the unit's access link: every other service of the unit is
behind it, so a link fault applies to all of them too (their state is the worse of the two).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SERVICES: tuple[str, ...] = ("portal", "vc_gov", "vc_party", "email", "procedures", "link", "certs")
MODES: tuple[str, ...] = ("down", "slow", "flap", "restore")


class Health(StrEnum):
    UP = "up"
    SLOW = "slow"
    DOWN = "down"


_RANK = {Health.UP: 0, Health.SLOW: 1, Health.DOWN: 2}


@dataclass(frozen=True, slots=True)
class Fault:
    mode: str  # down | slow | flap
    since: float  # monotonic seconds
    period: float  # flap: seconds down, then as many up, and so on

    def health(self, now: float) -> Health:
        if self.mode == "down":
            return Health.DOWN
        if self.mode == "slow":
            return Health.SLOW
        phase = int(max(0.0, now - self.since) // self.period)
        return Health.DOWN if phase % 2 == 0 else Health.UP


class FaultTable:
    def __init__(self) -> None:
        self.faults: dict[tuple[int, str], Fault] = {}

    def set(self, code: int, service: str, mode: str, now: float, period: float) -> None:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r} (known: {', '.join(SERVICES)})")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
        if not period > 0:
            raise ValueError("flap period must be positive")
        if mode == "restore":
            self.faults.pop((code, service), None)
        else:
            self.faults[(code, service)] = Fault(mode, now, period)

    def health(self, code: int, service: str, now: float) -> Health:
        """The service's own state, made worse by a fault of the unit's link."""
        if not self.faults:
            return Health.UP
        own = self.faults.get((code, service))
        h = own.health(now) if own is not None else Health.UP
        if service != "link":
            link = self.faults.get((code, "link"))
            if link is not None:
                lh = link.health(now)
                h = lh if _RANK[lh] > _RANK[h] else h
        return h

    def flapping(self) -> bool:
        return any(f.mode == "flap" for f in self.faults.values())

    def listing(self, now: float) -> list[dict[str, object]]:
        return [
            {"unit_code": c, "service": s, "mode": f.mode, "period": f.period, "now": f.health(now).value}
            for (c, s), f in sorted(self.faults.items())
        ]
