"""Fixed notifications for golden-payload and delivery tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts.model import Alert, AlertKind, Event, Notification

T0 = datetime(2026, 11, 21, 1, 2, 3, tzinfo=UTC)  # 08:02:03 in Hà Nội / Hồ Chí Minh

DOWN = Alert(
    id="target_down:26734/portal/http/https://benthanh.example.vn/",
    kind=AlertKind.TARGET_DOWN,
    severity="page",
    started_at=T0,
    unit_code=26734,
    unit="Phường Bến Thành",
    service="portal",
    probe="http",
    target="https://benthanh.example.vn/",
    reason="http_status",
    message="HTTP 503",
    labels=(("province", "79"), ("note", "{{7*7}}")),
)
ISOLATED = Alert(
    id="unit_isolated:26734",
    kind=AlertKind.UNIT_ISOLATED,
    severity="page",
    started_at=T0,
    unit_code=26734,
    unit="Phường Bến Thành",
    service="link",
    probe="icmp",
    target="127.10.0.1",
    reason="timeout",
    children=("26734/portal/http/https://benthanh.example.vn/", "26734/vc_gov/icmp/127.11.0.1"),
)


def firing(alert: Alert = DOWN, minutes: float = 2) -> Notification:
    return Notification(alert, Event.FIRING, T0 + timedelta(minutes=minutes))


def resolved(alert: Alert = DOWN, minutes: float = 47) -> Notification:
    end = T0 + timedelta(minutes=minutes)
    return Notification(alert, Event.RESOLVED, end, ended_at=end)
