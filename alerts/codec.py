"""Notifications and maintenance windows to and from JSON (the outbox payload, the API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerts.model import Alert, AlertKind, Event, Notification


def _ts(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def alert_to_json(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind.value,
        "severity": a.severity,
        "started_at": _ts(a.started_at),
        "unit_code": a.unit_code,
        "unit": a.unit,
        "service": a.service,
        "probe": a.probe,
        "target": a.target,
        "reason": a.reason,
        "message": a.message,
        "tier": a.tier,
        "children": list(a.children),
        "in_maintenance": a.in_maintenance,
        "labels": [list(kv) for kv in a.labels],
        "supersedes": a.supersedes,
    }


def alert_from_json(d: dict[str, Any]) -> Alert:
    started = _dt(d["started_at"])
    assert started is not None
    return Alert(
        id=d["id"],
        kind=AlertKind(d["kind"]),
        severity=d["severity"],
        started_at=started,
        unit_code=d.get("unit_code"),
        unit=d.get("unit", ""),
        service=d.get("service", ""),
        probe=d.get("probe", ""),
        target=d.get("target", ""),
        reason=d.get("reason", ""),
        message=d.get("message", ""),
        tier=d.get("tier"),
        children=tuple(d.get("children", ())),
        in_maintenance=bool(d.get("in_maintenance", False)),
        labels=tuple((str(k), str(v)) for k, v in d.get("labels", ())),
        supersedes=d.get("supersedes", ""),
    )


def notification_to_json(n: Notification) -> dict[str, Any]:
    return {
        "alert": alert_to_json(n.alert),
        "event": n.event.value,
        "at": _ts(n.at),
        "receiver": n.receiver,
        "ended_at": _ts(n.ended_at),
        "dedup_key": n.dedup_key,
    }


def notification_from_json(d: dict[str, Any]) -> Notification:
    at = _dt(d["at"])
    assert at is not None
    return Notification(
        alert=alert_from_json(d["alert"]),
        event=Event(d["event"]),
        at=at,
        receiver=d.get("receiver", ""),
        ended_at=_dt(d.get("ended_at")),
    )
