"""E-mail over SMTP with STARTTLS (smtplib, in a worker thread).

Subject, From, To, Date and Message-ID are stable for one notification (the Message-ID is
derived from the dedup key, so a repeat delivery is recognisable); a resolved message replies
to its firing one (In-Reply-To / References), so mail clients thread an incident.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import format_datetime

from alerts import templates
from alerts.config import EmailReceiver as Config
from alerts.model import Event, Notification
from alerts.notifiers.base import RenderContext, Request

__all__ = ["Config", "render", "message_id"]


def message_id(alert_id: str, event: str, started_at: str, receiver: str, domain: str) -> str:
    digest = hashlib.sha256(f"{alert_id}|{event}|{started_at}|{receiver}".encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def render(n: Notification, cfg: Config, ctx: RenderContext) -> Request:
    from monitor.inventory import split_host_port

    host, port = split_host_port(cfg.smarthost, 25)
    domain = cfg.sender.rsplit("@", 1)[1]
    a = n.alert
    vals = templates.values(n, ctx.texts)
    msg = EmailMessage()
    msg["Subject"] = templates.title(n, ctx.texts, vals)
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    msg["Date"] = format_datetime(n.at)
    msg["Message-ID"] = message_id(a.id, n.event.value, a.started_at.isoformat(), ctx.receiver, domain)
    if n.event is Event.RESOLVED:
        first = message_id(a.id, Event.FIRING.value, a.started_at.isoformat(), ctx.receiver, domain)
        msg["In-Reply-To"] = first
        msg["References"] = first
    msg["X-Wardwatch-Dedup-Key"] = n.dedup_key
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(templates.body(n, ctx.texts, vals) + "\n", charset="utf-8", cte="quoted-printable")
    body = msg.as_bytes()
    password = ctx.secret.reveal() if ctx.secret is not None else None
    headers = tuple((k, str(v)) for k, v in msg.items() if k not in ("Content-Type", "Content-Transfer-Encoding",
                                                                       "MIME-Version"))
    return Request(
        "SMTP",
        f"smtp://{cfg.smarthost}",
        headers,
        body,
        secrets=(password,) if password else (),
        smtp={
            "host": host, "port": port, "starttls": cfg.starttls, "username": cfg.username,
            "password": password, "from": cfg.sender, "to": list(cfg.to), "ca_file": cfg.ca_file,
            "hello": cfg.hello,
        },
    )
