"""Telegram Bot API: ``POST {base_url}/bot{token}/sendMessage`` (plain text, no parse mode).

The token is part of the URL: every log line and error goes through ``Request.describe`` /
``scrub``, which replace it by ``<secret>``. ``base_url`` is configurable (a local Bot API
server, or the recorded-contract server the tests run).
"""

from __future__ import annotations

from alerts import templates
from alerts.config import TelegramReceiver as Config
from alerts.model import Notification
from alerts.notifiers.base import RenderContext, Request, json_body

__all__ = ["Config", "render"]

MAX_TEXT = 4096  # Bot API limit for one message


def render(n: Notification, cfg: Config, ctx: RenderContext) -> Request:
    token = ctx.secret.reveal() if ctx.secret is not None else ""
    vals = templates.values(n, ctx.texts)
    text = templates.title(n, ctx.texts, vals) + "\n\n" + templates.body(n, ctx.texts, vals)
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "…"
    body = {"chat_id": cfg.chat_id, "text": text, "disable_web_page_preview": True}
    return Request(
        "POST",
        f"{cfg.base_url.rstrip('/')}/bot{token}/sendMessage",
        (("Content-Type", "application/json"),),
        json_body(body),
        secrets=(token,) if token else (),
    )
