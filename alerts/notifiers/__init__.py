"""Notifiers: one module each (its ``Config`` and a pure ``render``), registered here only.

    render(n: Notification, cfg: Config, ctx: RenderContext) -> Request

``Request`` is plain data (method, URL, headers, body bytes) so every notifier is tested
against golden payloads without a network; ``alerts.notifiers.base.send`` delivers it (HTTP
with aiohttp, ``SMTP`` with smtplib in a thread). Delivery goes through the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from alerts.model import Notification
from alerts.notifiers import alertmanager, email, telegram, webhook
from alerts.notifiers.base import RenderContext, Request

Render = Callable[[Notification, object, RenderContext], Request]

# type (as written in the inventory) -> module; the contract test walks this.
REGISTRY: dict[str, ModuleType] = {
    "alertmanager": alertmanager,
    "webhook": webhook,
    "email": email,
    "telegram": telegram,
}


def render(n: Notification, cfg: object, ctx: RenderContext) -> Request:
    kind = getattr(cfg, "type", None)
    module = REGISTRY.get(str(kind))
    if module is None:
        raise ValueError(f"no notifier for receiver type {kind!r}")
    req: Request = module.render(n, cfg, ctx)
    return req
