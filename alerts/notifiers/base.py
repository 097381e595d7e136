"""What every notifier shares: the request it renders, the context it renders with, the sender."""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from typing import Any

import aiohttp

from alerts.templates import Texts
from monitor.secrets import REDACTED, Secret
from monitor.secrets import scrub as scrub_known


@dataclass(frozen=True, slots=True, repr=False)
class Request:
    """One delivery, as data. ``method`` is an HTTP method or ``SMTP``."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    # Strings that must never appear in logs or errors (tokens in URLs): replaced by "<secret>".
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # SMTP only: envelope and connection details.
    smtp: dict[str, Any] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        return scrub(f"{self.method} {self.url}", self.secrets)

    def __repr__(self) -> str:  # never the token in a traceback or a log line
        return f"Request({self.describe()!r}, {len(self.body)} bytes)"

    def to_json(self) -> dict[str, Any]:
        """The golden-file form: body decoded (JSON bodies parsed), secrets scrubbed."""
        body: Any
        if self.method == "SMTP":  # the text as a reader sees it, not its transfer encoding
            msg = message_from_bytes(self.body, policy=policy.default)
            body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        else:
            body = self.body.decode("utf-8")
            if dict(self.headers).get("Content-Type", "").startswith("application/json"):
                body = json.loads(body)
        return {
            "method": self.method,
            "url": scrub(self.url, self.secrets),
            "headers": {k: scrub(v, self.secrets) for k, v in self.headers},
            "body": body,
        }


@dataclass(frozen=True, slots=True)
class RenderContext:
    texts: Texts = field(default_factory=Texts)
    receiver: str = ""
    secret: Secret | None = None  # the receiver's secret (HMAC key, bot token, SMTP password)
    generator_url: str = ""  # where an alert comes from (Alertmanager's generatorURL)


class DeliveryError(Exception):
    """A delivery failed; ``permanent`` when retrying cannot help (a 4xx answer)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` without this request's secrets, nor any other secret the process has read."""
    for s in secrets:
        if s:
            text = text.replace(s, REDACTED)
    return scrub_known(text)


def json_body(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


class Sender:
    """Delivers ``Request``s; one aiohttp session for all HTTP receivers."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, req: Request, limit: float | None = None) -> None:
        """Deliver; raise DeliveryError (message scrubbed of secrets) on failure."""
        limit = limit or self.timeout
        try:
            if req.method == "SMTP":
                await asyncio.wait_for(asyncio.to_thread(_smtp_send, req, limit), limit + 1)
            else:
                await self._http(req, limit)
        except DeliveryError as e:
            raise DeliveryError(scrub(str(e), req.secrets), e.permanent) from None
        except TimeoutError:
            raise DeliveryError(f"{req.describe()}: timed out after {limit:g}s") from None
        except (OSError, aiohttp.ClientError, smtplib.SMTPException, ssl.SSLError) as e:
            msg = scrub(f"{type(e).__name__}: {e}", req.secrets)
            permanent = isinstance(e, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused)
            raise DeliveryError(f"{req.describe()}: {msg}", permanent) from None

    async def _http(self, req: Request, limit: float) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(
            req.method, req.url, data=req.body, headers=dict(req.headers),
            timeout=aiohttp.ClientTimeout(total=limit), allow_redirects=False,
        ) as resp:
            text = (await resp.content.read(512)).decode("utf-8", "replace")
            if 200 <= resp.status < 300:
                return
            permanent = 400 <= resp.status < 500 and resp.status not in (408, 425, 429)
            raise DeliveryError(f"{req.describe()}: HTTP {resp.status}: {text.strip()[:200]}", permanent)


def _smtp_send(req: Request, timeout: float) -> None:
    s = req.smtp
    msg = message_from_bytes(req.body, policy=policy.SMTP)
    with smtplib.SMTP(s["host"], int(s["port"]), local_hostname=s.get("hello") or None, timeout=timeout) as smtp:
        smtp.ehlo()
        if s.get("starttls", True):
            if not smtp.has_extn("starttls"):
                raise DeliveryError(f"{req.describe()}: the server does not offer STARTTLS", permanent=False)
            ctx = ssl.create_default_context(cafile=s.get("ca_file") or None)
            smtp.starttls(context=ctx)
            smtp.ehlo()
        if s.get("username"):
            smtp.login(s["username"], s.get("password") or "")
        smtp.send_message(msg, from_addr=s["from"], to_addrs=list(s["to"]))
