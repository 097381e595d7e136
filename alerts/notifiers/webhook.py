"""Generic webhook: the notification as JSON, signed with HMAC-SHA256 over the exact body.

    X-Wardwatch-Signature: sha256=<hex HMAC of the body with the shared key>
    X-Wardwatch-Dedup-Key: <the notification's deduplication key>

A receiver verifies the signature and drops a repeated dedup key (delivery is at least once).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from alerts import templates
from alerts.config import WebhookReceiver as Config
from alerts.model import Event, Notification
from alerts.notifiers.base import RenderContext, Request, json_body

__all__ = ["Config", "render", "payload", "signature"]

VERSION = "1"


def _ts(at: Any) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def payload(n: Notification, ctx: RenderContext) -> dict[str, Any]:
    a = n.alert
    vals = templates.values(n, ctx.texts)
    return {
        "version": VERSION,
        "dedup_key": n.dedup_key,
        "event": n.event.value,
        "receiver": ctx.receiver,
        "at": _ts(n.at),
        "alert": {
            "id": a.id,
            "kind": a.kind.value,
            "severity": a.severity,
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
            "labels": dict(a.labels),
            "started_at": _ts(a.started_at),
            "ended_at": _ts(n.ended_at) if n.event is Event.RESOLVED else None,
        },
        "title": templates.title(n, ctx.texts, vals),
        "text": templates.body(n, ctx.texts, vals),
        "link": vals["link"],
    }


def signature(key: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def render(n: Notification, cfg: Config, ctx: RenderContext) -> Request:
    body = json_body(payload(n, ctx))
    headers = [("Content-Type", "application/json"), ("X-Wardwatch-Dedup-Key", n.dedup_key)]
    if ctx.secret is not None:
        headers.append(("X-Wardwatch-Signature", signature(ctx.secret.reveal(), body)))
    return Request("POST", cfg.url, tuple(headers), body)
