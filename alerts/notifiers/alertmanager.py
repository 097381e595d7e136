"""Alertmanager API v2: ``POST <url>/api/v2/alerts`` with one alert (the recommended production path).

Labels let Alertmanager group by unit and route by service (``alertname``, ``unit_code``,
``unit``, ``service``, ``target``, ``severity``, plus the alert's own labels; a unit alert has
no ``target``/``probe``, like the Prometheus rule's); a resolved notification carries
``endsAt``. Alertmanager deduplicates by label set itself, across replicas too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerts import templates
from alerts.config import AlertmanagerReceiver as Config
from alerts.model import Event, Notification
from alerts.notifiers.base import RenderContext, Request, json_body

__all__ = ["Config", "render", "alert_json"]

ALERTNAMES = {  # alert kind -> alertname, matching alerts/rules (CamelCase like Prometheus rules)
    "target_down": "WardwatchTargetDown",
    "link_degraded": "WardwatchLinkDegraded",
    "snmp_interface_down": "WardwatchInterfaceDown",
    "snmp_reboot": "WardwatchDeviceRebooted",
    "cert_expiring": "WardwatchCertificateExpiring",
    "cert_expired": "WardwatchCertificateExpired",
    "redirect_broken": "WardwatchRedirectBroken",
    "unit_isolated": "WardwatchUnitIsolated",
    "flapping": "WardwatchFlapping",
    "monitoring_degraded": "WardwatchMonitoringDegraded",
    "storage_degraded": "WardwatchStorageDegraded",
}


def _ts(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# Alerts about a whole unit: their labels name the unit, not which of its links failed first
# (that differs between replicas, and between two cuts of the same unit).
UNIT_ALERTS = frozenset({"unit_isolated"})
_TARGET_LABELS = ("probe", "target")


def alert_json(n: Notification, ctx: RenderContext) -> dict[str, Any]:
    """One postable alert. Its labels are the incident's identity and nothing else: every
    replica of a wardwatch fleet (``run --replicas``) pushing the same incident sends the same
    label set, so an Alertmanager cluster keeps one alert and sends one notification. Whatever
    differs between replicas (times, the first failing link, messages, generatorURL) goes to
    annotations, startsAt or generatorURL, which Alertmanager merges."""
    a = n.alert
    vals = templates.values(n, ctx.texts)
    unit_alert = a.kind.value in UNIT_ALERTS
    labels = {k: v for k, v in a.labels if not (unit_alert and k in _TARGET_LABELS)}
    labels.update({
        "alertname": ALERTNAMES.get(a.kind.value, a.kind.value),
        "severity": a.severity,
        "alert_id": a.id,
    })
    if a.unit_code is not None:
        labels["unit_code"] = str(a.unit_code)
    service = a.service or ("wardwatch" if a.unit_code is None else "")  # the monitor's own alerts
    for key, value in (("unit", a.unit), ("service", service), ("target", a.target), ("probe", a.probe)):
        if value and not (unit_alert and key in _TARGET_LABELS):
            labels[key] = value
    if a.tier is not None:
        labels["tier"] = str(a.tier)
    annotations = {
        "summary": templates.title(n, ctx.texts, vals),
        "description": templates.body(n, ctx.texts, vals),
    }
    if a.reason:
        annotations["reason"] = a.reason
    if unit_alert and a.target:
        annotations["link"] = a.target  # the link seen failing first, by this replica
    if a.children:
        cert = a.kind.value in ("cert_expiring", "cert_expired")
        annotations["seen_at" if cert else "unreachable"] = ", ".join(a.children)
    if a.in_maintenance:
        annotations["maintenance"] = "true"
    out: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _ts(a.started_at),
        "generatorURL": vals["link"] or ctx.generator_url,
    }
    if n.event is Event.RESOLVED:
        out["endsAt"] = _ts(n.ended_at or n.at)
    return out


def render(n: Notification, cfg: Config, ctx: RenderContext) -> Request:
    return Request(
        "POST",
        cfg.url.rstrip("/") + "/api/v2/alerts",
        (("Content-Type", "application/json"),),
        json_body([alert_json(n, ctx)]),
    )
