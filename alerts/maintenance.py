"""Maintenance windows: while one covers a target, its new alerts are suppressed and marked.

Pure data: a window is (unit_code | None, service | None, start, end, reason, source, id);
``active(target, at)`` answers whether one covers the target at that instant. Windows come
from the inventory's ``maintenance:`` section (source "inventory") or are added at run time
(CLI, HTTP API: source "runtime"). The calendar is JSON-able so runtime windows survive a
restart with the alert engine's state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from monitor.targets import Target

Source = Literal["inventory", "runtime"]


@dataclass(frozen=True, slots=True)
class Window:
    unit_code: int | None
    service: str | None
    start: datetime  # aware
    end: datetime  # aware, exclusive
    reason: str = ""
    source: Source = "runtime"
    id: str = ""  # stable: derived from the other fields when not given

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("maintenance window times must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("a maintenance window must end after it starts")
        if not self.id:
            object.__setattr__(self, "id", window_id(self.unit_code, self.service, self.start, self.end))

    def covers(self, unit_code: int | None, service: str | None, at: datetime) -> bool:
        """Whether the window applies to (unit, service) at ``at``. ``service=None`` asks about the
        unit as a whole (unit-level alerts such as unit_isolated): only a window over the whole
        unit or over its link covers it."""
        if not self.start <= at < self.end:
            return False
        if self.unit_code is not None and self.unit_code != unit_code:
            return False
        if self.service is None:
            return True
        return self.service == (service or "link")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "unit_code": self.unit_code,
            "service": self.service,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "reason": self.reason,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Window:
        return cls(
            unit_code=d.get("unit_code"),
            service=d.get("service"),
            start=datetime.fromisoformat(d["start"]),
            end=datetime.fromisoformat(d["end"]),
            reason=d.get("reason", ""),
            source=d.get("source", "runtime"),
            id=d.get("id", ""),
        )


def window_id(unit_code: int | None, service: str | None, start: datetime, end: datetime) -> str:
    raw = f"{unit_code}|{service}|{start.isoformat()}|{end.isoformat()}"
    return "mw-" + hashlib.blake2b(raw.encode(), digest_size=6).hexdigest()


@dataclass
class MaintenanceCalendar:
    """The set of windows, indexed by unit so a lookup costs O(windows of that unit + global ones)."""

    _by_id: dict[str, Window] = field(default_factory=dict)
    _by_unit: dict[int | None, list[Window]] = field(default_factory=dict)

    def __init__(self, windows: Iterable[Window] = ()) -> None:
        self._by_id = {}
        self._by_unit = {}
        for w in windows:
            self.add(w)

    def __iter__(self) -> Iterator[Window]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, window: Window) -> Window:
        """Add (or replace, same id) a window; returns it."""
        self.remove(window.id)
        self._by_id[window.id] = window
        self._by_unit.setdefault(window.unit_code, []).append(window)
        return window

    def remove(self, window_id: str) -> bool:
        w = self._by_id.pop(window_id, None)
        if w is None:
            return False
        lst = self._by_unit[w.unit_code]
        lst.remove(w)
        if not lst:
            del self._by_unit[w.unit_code]
        return True

    def get(self, window_id: str) -> Window | None:
        return self._by_id.get(window_id)

    def replace_source(self, source: Source, windows: Iterable[Window]) -> None:
        """Replace every window of one source (an inventory reload), keeping the others."""
        for w in [w for w in self._by_id.values() if w.source == source]:
            self.remove(w.id)
        for w in windows:
            self.add(w)

    def covering(self, unit_code: int | None, service: str | None, at: datetime) -> Window | None:
        if not self._by_id:
            return None
        for key in (unit_code, None) if unit_code is not None else (None,):
            for w in self._by_unit.get(key, ()):
                if w.covers(unit_code, service, at):
                    return w
        return None

    def active(self, target: Target, at: datetime) -> Window | None:
        """The window covering this target at ``at``, if any."""
        return self.covering(target.unit_code, target.service, at)

    def active_ids(self, at: datetime) -> frozenset[str]:
        return frozenset(w.id for w in self._by_id.values() if w.start <= at < w.end)

    def prune(self, before: datetime) -> int:
        """Drop windows that ended before ``before``; returns how many."""
        old = [w.id for w in self._by_id.values() if w.end < before]
        for i in old:
            self.remove(i)
        return len(old)

    def to_json(self) -> list[dict[str, Any]]:
        return [w.to_json() for w in self._by_id.values()]

    @classmethod
    def from_json(cls, data: Iterable[dict[str, Any]]) -> MaintenanceCalendar:
        return cls(Window.from_json(d) for d in data)
