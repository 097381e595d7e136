"""The ``alerting:`` and ``maintenance:`` sections of the inventory, as strict models.

Validated by ``monitor.inventory`` like the rest of the file (unknown keys are errors, each
problem names file:line and field). Secrets are never written in the file: a receiver names
the environment variable (``*_env``) or the file (``*_file``) that holds them, a
``monitor.secrets.Secret`` read once at start-up; they never appear in logs, metrics or API output.

Example::

    alerting:
      language: vi                      # vi (default) | en
      dashboard_url: "https://status.example.vn/units/{{unit_code}}"
      receivers:
        oncall:  {type: webhook, url: "https://hooks.example.vn/wardwatch", hmac_key_env: WW_HOOK_KEY}
        am:      {type: alertmanager, url: "http://127.0.0.1:9093"}
        mail:    {type: email, smarthost: "mail.example.vn:587", from: "wardwatch@example.vn",
                  to: ["noc@example.vn"], username: wardwatch, password_file: /etc/wardwatch/smtp}
        tg:      {type: telegram, chat_id: "-1001234", bot_token_env: WW_TG_TOKEN}
      routes:                           # first match wins (unless continue: true)
        - {services: [vc_gov, vc_party], receivers: [tg]}
        - {units: [26734], receivers: [mail], continue: true}
      default_receivers: [oncall]       # when no route matches; empty: record only, send nothing
      escalation:                       # not acknowledged within `after`: also to `receiver`
        - {after: 15m, receiver: mail}
      policy: {open_after: 3, close_after: 2}
    maintenance:
      - {unit_code: 26734, service: portal, from: "2026-11-22T22:00:00+07:00",
         to: "2026-11-23T02:00:00+07:00", reason: "thay máy chủ"}
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator
from pydantic_core import PydanticCustomError

from alerts.templates import TEMPLATE_KEYS, placeholders
from monitor.secrets import Secret, remember

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _err(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _duration(value: object) -> float:
    from monitor.inventory import parse_duration

    seconds = parse_duration(value)
    if not seconds > 0:
        raise _err("duration", f"must be positive, got {value!r}")
    return seconds


def _http_url(value: object) -> str:
    from monitor.inventory import check_url

    try:
        url = check_url(value)
    except ValueError as e:
        raise _err("url", str(e)) from None
    password = urlsplit(url).password
    if password:  # Basic auth for a receiver (aiohttp sends it): scrubbed from every text like a Secret
        remember(password)
    return url


def _template(value: object) -> object:
    if isinstance(value, str):
        unknown = [name for name in placeholders(value) if name not in TEMPLATE_KEYS]
        if unknown:
            raise _err(
                "template",
                f"unknown placeholder {{{{{unknown[0]}}}}} (known: {', '.join(TEMPLATE_KEYS)})",
            )
    return value


def _env_name(value: object) -> object:
    if isinstance(value, str) and not _ENV.match(value):
        # not echoed: it may be the secret itself, written where its variable's name belongs
        raise _err("env", "not an environment variable name (letters, digits, '_'; the value is not shown)")
    return value


def _aware(value: object) -> object:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _err("datetime", f"not an ISO 8601 date and time: {value!r}") from None
    if isinstance(value, datetime) and value.tzinfo is None:
        raise _err("datetime", "needs a UTC offset (e.g. 2026-11-22T22:00:00+07:00)")
    return value


Seconds = Annotated[float, BeforeValidator(_duration)]
HttpUrl = Annotated[str, BeforeValidator(_http_url)]
Template = Annotated[str, BeforeValidator(_template)]
EnvName = Annotated[str, BeforeValidator(_env_name)]
AwareDatetime = Annotated[datetime, BeforeValidator(_aware)]


class _Receiver(BaseModel):
    model_config = _STRICT

    timeout: Seconds = 10.0
    # The receiver's credential (monitor/secrets.py), from its *_env / *_file key; read when
    # wardwatch starts (alerts/outbox.py Routing.from_config), revealed only to render a request.
    _secret: Secret | None = PrivateAttr(None)
    _secret_key: str = PrivateAttr("")

    def _source(self, what: str) -> None:
        env, file = getattr(self, f"{what}_env"), getattr(self, f"{what}_file")
        if env and file:
            raise ValueError(f"{what}_env and {what}_file: give one of them")
        self._secret = Secret.from_source(env, file)
        self._secret_key = f"{what}_env" if env else f"{what}_file"

    @property
    def secret(self) -> Secret | None:
        return self._secret

    def secrets(self) -> list[tuple[str, Secret]]:
        """(the inventory key naming it, the Secret) for each secret this receiver needs."""
        return [(self._secret_key, self._secret)] if self._secret is not None else []


class AlertmanagerReceiver(_Receiver):
    type: Literal["alertmanager"]
    url: HttpUrl  # base URL; wardwatch POSTs to <url>/api/v2/alerts
    generator_url: HttpUrl | None = None  # default: the dashboard link, else wardwatch's /api/v1/alerts


class WebhookReceiver(_Receiver):
    type: Literal["webhook"]
    url: HttpUrl
    hmac_key_env: EnvName | None = None
    hmac_key_file: str | None = None

    @model_validator(mode="after")
    def _one_key(self) -> WebhookReceiver:
        self._source("hmac_key")
        return self


class EmailReceiver(_Receiver):
    type: Literal["email"]
    smarthost: str  # host:port
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    starttls: bool = True  # required unless false; the connection is refused without it
    username: str | None = None
    password_env: EnvName | None = None
    password_file: str | None = None
    ca_file: str | None = None  # CA bundle for the smarthost's certificate (default: system)
    hello: str = "wardwatch"

    @model_validator(mode="after")
    def _check(self) -> EmailReceiver:
        from monitor.inventory import split_host_port

        try:
            split_host_port(self.smarthost, 25)
        except ValueError:
            raise ValueError(f"smarthost: not host[:port]: {self.smarthost!r}") from None
        self._source("password")
        if (self.password_env or self.password_file) and not self.username:
            raise ValueError("a password needs a username")
        for addr in (self.sender, *self.to):
            if "@" not in addr or any(c in addr for c in "\r\n"):
                raise ValueError(f"not an e-mail address: {addr!r}")
        return self


class TelegramReceiver(_Receiver):
    type: Literal["telegram"]
    chat_id: str | int
    base_url: HttpUrl = "https://api.telegram.org"
    bot_token_env: EnvName | None = None
    bot_token_file: str | None = None

    @model_validator(mode="after")
    def _token(self) -> TelegramReceiver:
        if bool(self.bot_token_env) == bool(self.bot_token_file):
            raise ValueError("give exactly one of bot_token_env, bot_token_file")
        self._source("bot_token")
        return self


ReceiverConfig = Annotated[
    AlertmanagerReceiver | WebhookReceiver | EmailReceiver | TelegramReceiver, Field(discriminator="type")
]


class Route(BaseModel):
    """Which receivers get a notification; every given matcher must match (empty: any)."""

    model_config = _STRICT

    services: list[str] = []
    units: list[int] = []
    kinds: list[str] = []
    severities: list[str] = []
    receivers: list[str] = Field(min_length=1)
    continue_: bool = Field(default=False, alias="continue")

    def matches(self, service: str, unit_code: int | None, kind: str, severity: str) -> bool:
        return (
            (not self.services or service in self.services)
            and (not self.units or unit_code in self.units)
            and (not self.kinds or kind in self.kinds)
            and (not self.severities or severity in self.severities)
        )


class EscalationStep(BaseModel):
    model_config = _STRICT

    after: Seconds
    receiver: str


class Templates(BaseModel):
    """Override the built-in message texts; ``{{key}}`` placeholders only (see alerts.templates)."""

    model_config = _STRICT

    firing_title: Template | None = None
    resolved_title: Template | None = None
    firing_body: Template | None = None
    resolved_body: Template | None = None


class Delivery(BaseModel):
    model_config = _STRICT

    backoff_initial: Seconds = 1.0
    backoff_max: Seconds = 300.0
    tick: Seconds = 5.0  # how often the alert engine's clock ticks (escalation, flapping)
    alertmanager_resend: Seconds = 60.0  # re-push firing alerts so Alertmanager keeps them


class AlertingConfig(BaseModel):
    model_config = _STRICT

    language: Literal["vi", "en"] = "vi"
    timezone: str = "Asia/Ho_Chi_Minh"
    dashboard_url: Template | None = None
    receivers: dict[str, ReceiverConfig] = {}
    routes: list[Route] = []
    default_receivers: list[str] = []
    escalation: list[EscalationStep] = []
    policy: dict[str, Any] = {}
    templates: Templates = Templates()
    delivery: Delivery = Delivery()

    @model_validator(mode="after")
    def _names(self) -> AlertingConfig:
        for name in self.receivers:
            if not _NAME.match(name):
                raise ValueError(f"receiver name {name!r}: use letters, digits, '_', '.', '-'")
        known = set(self.receivers)
        used = [*self.default_receivers, *(r for route in self.routes for r in route.receivers)]
        used += [s.receiver for s in self.escalation]
        for name in used:
            if name not in known:
                raise ValueError(
                    f"receiver {name!r} is not defined (defined: {', '.join(sorted(known)) or 'none'})"
                )
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except Exception:
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None
        return self


class MaintenanceWindow(BaseModel):
    """A declared window: alerts of the unit (or of one of its services) inside it are suppressed."""

    model_config = _STRICT

    unit_code: int | None = None
    service: str | None = None
    start: AwareDatetime = Field(alias="from")
    end: AwareDatetime = Field(alias="to")
    reason: str = ""

    @model_validator(mode="after")
    def _order(self) -> MaintenanceWindow:
        if self.end <= self.start:
            raise ValueError("'to' must be after 'from'")
        if self.unit_code is None and self.service is None:
            raise ValueError("give unit_code, service or both (a window over everything is not allowed)")
        from monitor.targets import SERVICES

        if self.service is not None and self.service not in SERVICES:
            raise ValueError(f"service must be one of {', '.join(SERVICES)}, got {self.service!r}")
        return self
