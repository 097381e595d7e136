"""The inventory: which units exist, what each of them runs, and how often to look.

``load_inventory(path)`` reads the YAML file (keeping the line of every key), validates it
strictly (unknown keys are errors, like blackbox_exporter's config), checks it against the
official list of units, and expands it into the ``Target`` list the engine probes. Every
problem found is collected and raised together in one ``InventoryError``; each names the
file, line, unit and field, e.g.::

    inventory.yaml:42: unit 26506: link.address: not an IP address or host name: '127.0.0.300'
"""

from __future__ import annotations

import gc
import ipaddress
import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, ValidationError
from pydantic_core import PydanticCustomError

from monitor import units as official
from monitor.secrets import Secret, collect
from monitor.targets import SERVICES, Target
from probes import addrguard
from probes.base import ProbeConfig, secret_fields
from probes.registry import KINDS

PathKey = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)
ConfigLookup = Callable[[str], type[ProbeConfig]]

TEMPLATE_FIELDS: tuple[str, ...] = ("code", "codename", "province", "name_slug")
_TEMPLATE_KEYS = ("portal", "email", "procedures", "old_domain_url")

# ---------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an inventory file, where it is and what is wrong."""

    file: str
    line: int | None
    unit_code: int | None
    field: str
    message: str

    def __str__(self) -> str:
        parts = [f"{self.file}:{self.line}" if self.line else self.file]
        if self.unit_code is not None:
            parts.append(f"unit {self.unit_code}")
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class InventoryError(Exception):
    """The inventory is not usable; ``problems`` lists everything found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# ---------------------------------------------------------------------------------------------
# Value types


def _err(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """'500ms', '30s', '5m', '1h', '1m30s' or a number of seconds -> seconds (float)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _err("duration", f"not a duration: {value!r} (use e.g. 500ms, 30s, 5m, 1h or seconds)")
    if isinstance(value, str):
        text = value.strip()
        pos, total = 0, 0.0
        for m in _DURATION_PART.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        if not text or pos != len(text):
            try:
                total = float(text)
            except ValueError:
                raise _err(
                    "duration", f"not a duration: {value!r} (use e.g. 500ms, 30s, 5m, 1h or seconds)"
                ) from None
        return total
    return float(value)


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if not seconds > 0:
        raise _err("duration", f"must be positive, got {value!r}")
    return seconds


def _non_negative_duration(value: object) -> float:
    seconds = parse_duration(value)
    if not seconds >= 0:
        raise _err("duration", f"must not be negative, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def is_hostname(value: str) -> bool:
    """Host name syntax (RFC 1123 labels); an all-numeric name is not a host name."""
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if all(label.isdigit() for label in labels):
        return False
    return all(_HOST_LABEL.match(label) for label in labels)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _address(value: object) -> str:
    if not isinstance(value, str) or not (_is_ip(value) or is_hostname(value)):
        raise _err("address", f"not an IP address or host name: {value!r}")
    return value


def _hostname(value: object) -> str:
    if not isinstance(value, str) or not is_hostname(value):
        raise _err("hostname", f"not a host name: {value!r}")
    return value.lower().rstrip(".")


def split_host_port(value: str, default_port: int | None) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port', 'v6' -> (host, port); ValueError when malformed."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(value)
        port_text = rest[1:] if rest else None
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, None
    if port_text is None:
        if default_port is None:
            raise ValueError("port required")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("bad port")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_port(default_port: int | None) -> Callable[[object], str]:
    def validate(value: object) -> str:
        want = "host:port" if default_port is None else "host[:port]"
        if not isinstance(value, str):
            raise _err("host_port", f"not {want}: {value!r}")
        try:
            host, port = split_host_port(value, default_port)
        except ValueError:
            raise _err("host_port", f"not {want}: {value!r}") from None
        if not (_is_ip(host) or is_hostname(host)):
            raise _err("host_port", f"not an IP address or host name: {host!r}")
        return join_host_port(host, port)

    return validate


def check_url(value: object) -> str:
    """An http(s) URL with a valid host; returns it unchanged or raises ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"not a URL: {value!r}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"not a URL: {value!r} ({e})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"URL scheme must be http or https: {value!r}")
    host = parts.hostname
    if not host or not (_is_ip(host) or is_hostname(host)):
        raise ValueError(f"URL has no valid host: {value!r}")
    if port == 0:
        raise ValueError(f"URL has a bad port: {value!r}")
    return value


def _no_password(url: str) -> str:
    """A probed URL is a label value, a log field and an API answer: no password in it (and the
    http probe does not send one). The URL is not echoed, since it holds the password."""
    if urlsplit(url).password is not None:
        raise ValueError("a password in a URL would show in every metric label, log line and API answer "
                         "(the http probe does not send it): remove user:password@")
    return url


def _url(value: object) -> str:
    try:
        return _no_password(check_url(value))
    except ValueError as e:
        raise _err("url", str(e)) from None


def _codename(value: object) -> str:
    if not isinstance(value, str) or not official.is_dns_label(value):
        raise _err("codename", f"not a DNS label (a-z, 0-9, '-', at most 63): {value!r}")
    return value


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _err("name", "must be a non-empty string")
    return official.normalise_name(value)


def _unit_type(value: object) -> object:
    return unicodedata.normalize("NFC", value).strip() if isinstance(value, str) else value


def _env_var_name(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        # not echoed: it may be the secret itself, written where its variable's name belongs
        raise _err("env", "not an environment variable name (letters, digits, '_'; the value is not shown)")
    return value


def _non_empty(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        raise _err("empty", "must not be empty")
    return value


StrictInt = Annotated[int, Strict()]
Duration = Annotated[float, BeforeValidator(_positive_duration)]
SpacingDuration = Annotated[float, BeforeValidator(_non_negative_duration)]
Address = Annotated[str, BeforeValidator(_address)]
Hostname = Annotated[str, BeforeValidator(_hostname)]
Url = Annotated[str, BeforeValidator(_url)]
Codename = Annotated[str, BeforeValidator(_codename)]
UnitName = Annotated[str, BeforeValidator(_name)]
UnitType = Annotated[Literal["phường", "xã", "đặc khu"], BeforeValidator(_unit_type)]
NonEmptyStr = Annotated[str, BeforeValidator(_non_empty)]
EnvVarName = Annotated[str, BeforeValidator(_env_var_name)]
DnsServer = Annotated[str, BeforeValidator(_host_port(53))]


def _network(value: object) -> str:
    if not isinstance(value, str):
        raise _err("network", f"not a network in CIDR notation (e.g. 127.0.0.66/32): {value!r}")
    try:
        return str(addrguard.parse_network(value))
    except ValueError as e:
        raise _err("network", str(e)) from None


def _allowed_network(value: object) -> str:
    net = _network(value)
    inside = addrguard.builtin_reason(addrguard.parse_network(net))
    if inside is not None:
        raise _err("network", f"{net} lies inside the built-in deny list ({inside}): it can never be allowed")
    return net


DeniedNetwork = Annotated[str, BeforeValidator(_network)]
AllowedNetwork = Annotated[str, BeforeValidator(_allowed_network)]
SmtpHost = Annotated[str, BeforeValidator(_host_port(25))]
TlsHost = Annotated[str, BeforeValidator(_host_port(443))]


def _room_endpoint(default_port: int) -> Callable[[object], int | str]:
    """A port of the room's own address (an integer), or host[:port] elsewhere."""
    host_port = _host_port(default_port)

    def validate(value: object) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 < value < 65536:
                raise _err("port", f"not a port number (1-65535): {value}")
            return value
        return host_port(value)

    return validate


StunEndpoint = Annotated[int | str, BeforeValidator(_room_endpoint(3478))]
H323Endpoint = Annotated[int | str, BeforeValidator(_room_endpoint(1720))]


def check_sip_uri(value: object) -> str:
    """A SIP URI the sip probe accepts, with a valid host; returns it unchanged or raises ValueError."""
    from probes.sip import parse_uri

    if not isinstance(value, str) or not value.lower().startswith(("sip:", "sips:")):
        raise ValueError(f"not a SIP URI (sip:host[:port][;transport=udp|tcp|tls] or sips:…): {value!r}")
    uri = parse_uri(value)
    if not (_is_ip(uri.host) or is_hostname(uri.host)):
        raise ValueError(f"SIP URI has no valid host: {value!r}")
    return value


def _sip_uri(value: object) -> str:
    try:
        return check_sip_uri(value)
    except ValueError as e:
        raise _err("sip_uri", str(e)) from None


SipUri = Annotated[str, BeforeValidator(_sip_uri)]


def _positive_int(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
        raise _err("positive", f"must be positive, got {value}")
    return value


def _non_negative_int(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise _err("non_negative", f"must not be negative, got {value}")
    return value


def _port(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool) and not 0 < value < 65536:
        raise _err("port", f"not a port number (1-65535): {value}")
    return value


PositiveInt = Annotated[int, Strict(), BeforeValidator(_positive_int)]
NonNegativeInt = Annotated[int, Strict(), BeforeValidator(_non_negative_int)]
Port = Annotated[int, Strict(), BeforeValidator(_port)]
Options = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# Models (the file as written)

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Timing(BaseModel):
    model_config = _STRICT

    interval: Duration | None = None
    timeout: Duration | None = None
    rechecks: NonNegativeInt | None = None
    recheck_spacing: SpacingDuration | None = None


class KindOptions(BaseModel):
    """Per probe kind option dicts, validated later by that probe's Config."""

    model_config = _STRICT

    icmp: Options | None = None
    tcp: Options | None = None
    http: Options | None = None
    tls: Options | None = None
    dns: Options | None = None
    certfile: Options | None = None
    sip: Options | None = None
    stun: Options | None = None
    h323: Options | None = None
    email: Options | None = None

    def options(self, kind: str) -> Options | None:
        value: Options | None = getattr(self, kind, None)
        return value


class ServiceSettings(Timing, KindOptions):
    """What every service block accepts (and defaults.services.<service>)."""

    enabled: bool = True


def _snmp_version(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class SnmpSettings(BaseModel):
    """link.snmp (and defaults.services.link.snmp): how to poll the unit's router.

    Secrets are never written here: only the environment variable or file holding them.
    Keys left out fall back to defaults.services.link.snmp, key by key.
    """

    model_config = _STRICT

    enabled: bool | None = None
    version: Annotated[Literal["2c", "3"], BeforeValidator(_snmp_version)] | None = None
    port: Port | None = None
    community_env: EnvVarName | None = None
    community_file: NonEmptyStr | None = None
    user: NonEmptyStr | None = None
    auth_protocol: Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"] | None = None
    auth_key_env: EnvVarName | None = None
    auth_key_file: NonEmptyStr | None = None
    priv_protocol: Literal["des", "3des", "aes", "aes192", "aes256"] | None = None
    priv_key_env: EnvVarName | None = None
    priv_key_file: NonEmptyStr | None = None
    interfaces: list[Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)]] | None = None
    retries: NonNegativeInt | None = None


class QualitySettings(BaseModel):
    """link.quality (and defaults.services.link.quality): SmokePing-style rounds instead of a plain ping."""

    model_config = _STRICT

    enabled: bool | None = None
    count: PositiveInt | None = None
    spacing: SpacingDuration | None = None
    reply_timeout: Duration | None = None
    degraded_loss_ratio: float | None = None
    degraded_rtt: Duration | None = None
    degraded_jitter: Duration | None = None
    down_loss_ratio: float | None = None


# inventory key -> snmp / link probe Config field
_SNMP_FIELDS = {"version": "version", "community_env": "community_env", "community_file": "community_file",
                "user": "v3_user", "auth_protocol": "auth_protocol", "auth_key_env": "auth_key_env",
                "auth_key_file": "auth_key_file", "priv_protocol": "priv_protocol", "priv_key_env": "priv_key_env",
                "priv_key_file": "priv_key_file", "interfaces": "interfaces", "retries": "retries"}
_QUALITY_FIELDS = {"count": "count", "spacing": "spacing_seconds", "reply_timeout": "reply_timeout_seconds",
                   "degraded_loss_ratio": "degraded_loss_ratio", "degraded_rtt": "degraded_rtt_seconds",
                   "degraded_jitter": "degraded_jitter_seconds", "down_loss_ratio": "down_loss_ratio"}


class LinkDefaults(ServiceSettings):
    snmp: SnmpSettings | None = None
    quality: QualitySettings | None = None

    # `snmp` here is the router's settings, not snmp probe options.
    def options(self, kind: str) -> Options | None:
        return None if kind == "snmp" else super().options(kind)


class LinkBlock(LinkDefaults):
    address: Address


_VC_LISTS = frozenset({"sip", "stun", "h323", "http"})


class VcBlock(ServiceSettings):
    address: Address
    tcp_ports: list[Port] = []
    # These four replace KindOptions' option dicts of the same names (see options() below).
    sip: list[SipUri] = []  # type: ignore[assignment]  # SIP URIs answering OPTIONS ('sip:host[:port][;transport=…]', 'sips:…')
    stun: list[StunEndpoint] = []  # type: ignore[assignment]  # STUN servers: host[:port] (3478), or a port of the room address
    h323: list[H323Endpoint] = []  # type: ignore[assignment]  # H.225 call signalling: host[:port] (1720), or a port of the room address
    http: list[Url] = []  # type: ignore[assignment]  # the room's web interface

    # In a room block the sip/stun/h323/http keys list targets; those probes' options are set
    # in defaults.services.<vc_gov|vc_party>.<kind> or defaults.probes.<kind> instead.
    def options(self, kind: str) -> Options | None:
        return None if kind in _VC_LISTS else super().options(kind)


class PortalBlock(ServiceSettings):
    url: Url | None = None


class EmailBlock(ServiceSettings):
    domain: Hostname | None = None
    smtp: list[SmtpHost] = []


class CertsBlock(ServiceSettings):
    hosts: list[TlsHost] = []
    files: list[NonEmptyStr] = []


class ProceduresBlock(ServiceSettings):
    url: Url | None = None


class Check(Timing):
    """An explicit extra target; keys other than these are options of the probe's Config."""

    model_config = ConfigDict(extra="allow", frozen=True)

    service: Literal["link", "vc_gov", "vc_party", "portal", "email", "certs", "procedures"]
    probe: Literal["icmp", "tcp", "http", "tls", "dns", "certfile", "sip", "stun", "h323", "email"]
    target: NonEmptyStr
    enabled: bool = True


class MergedUnit(BaseModel):
    """An old (pre-2025) unit merged into this one."""

    model_config = _STRICT

    code: PositiveInt
    name: UnitName
    domains: list[Hostname] = []


class Unit(BaseModel):
    model_config = _STRICT

    code: PositiveInt
    name: UnitName
    type: UnitType
    codename: Codename | None = None
    merged_from: list[MergedUnit] = []
    link: LinkBlock | None = None
    vc_gov: VcBlock | None = None
    vc_party: VcBlock | None = None
    portal: PortalBlock | None = None
    email: EmailBlock | None = None
    certs: CertsBlock | None = None
    procedures: ProceduresBlock | None = None
    checks: list[Check] = []

    def block(self, service: str) -> ServiceSettings | None:
        value: ServiceSettings | None = getattr(self, service)
        return value


class Templates(BaseModel):
    model_config = _STRICT

    portal: str | None = None
    email: str | None = None
    procedures: str | None = None
    old_domain_url: str = "https://{domain}/"


class ServicesDefaults(BaseModel):
    model_config = _STRICT

    link: LinkDefaults | None = None
    vc_gov: ServiceSettings | None = None
    vc_party: ServiceSettings | None = None
    portal: ServiceSettings | None = None
    email: ServiceSettings | None = None
    certs: ServiceSettings | None = None
    procedures: ServiceSettings | None = None

    def block(self, service: str) -> ServiceSettings | None:
        value: ServiceSettings | None = getattr(self, service)
        return value


def _sla_targets(value: object) -> object:
    """``defaults.sla``: {service: availability target in percent}, for ``wardwatch report sla``."""
    if not isinstance(value, dict):
        raise _err("sla", "must be a mapping of service to percent, e.g. {link: 99.5, portal: 99.9}")
    out: dict[str, float] = {}
    for k, v in value.items():
        if k not in SERVICES:
            raise _err("sla", f"{k!r}: not a service (known: {', '.join(SERVICES)})")
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 100:
            raise _err("sla", f"{k}: expected a percent in (0, 100], got {v!r}")
        out[k] = float(v)
    return out


SlaTargets = Annotated[dict[str, float], BeforeValidator(_sla_targets)]


class Defaults(BaseModel):
    model_config = _STRICT

    interval: Duration = 30.0
    timeout: Duration = 10.0
    rechecks: NonNegativeInt = 2
    recheck_spacing: SpacingDuration = 2.0
    ca_file: NonEmptyStr | None = None
    templates: Templates = Templates()
    probes: KindOptions = KindOptions()
    services: ServicesDefaults = ServicesDefaults()
    sla: SlaTargets = {}  # per-service availability targets (percent) of the SLA report


_MODULE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class MonitorSettings(BaseModel):
    model_config = _STRICT

    dns_servers: list[DnsServer] = []
    concurrency: PositiveInt = 1000
    per_host_concurrency: PositiveInt = 8
    allow_any_target: bool = False
    # /probe outside the inventory (allow_any_target): the address guard (probes/addrguard.py).
    probe_allow: list[AllowedNetwork] = []  # empty: any address not denied
    probe_deny: list[DeniedNetwork] = []  # on top of the built-in list
    public_status: bool = False  # serve the read-only public status page at /public (monitor/wallboard.py)
    modules: dict[str, Options] = {}


@dataclass(frozen=True, slots=True)
class Module:
    """A named /probe module (like blackbox_exporter's modules)."""

    name: str
    probe: str
    config: ProbeConfig
    timeout: float


@dataclass(slots=True)
class Inventory:
    source: Path
    province: int
    province_name: str
    monitor: MonitorSettings
    defaults: Defaults
    units: list[Unit]
    modules: dict[str, Module]
    targets: list[Target]
    dns_server: str  # the resolver email (MX) checks ask
    # The ``alerting:`` and ``maintenance:`` sections (alerts/config.py); None / [] when absent.
    alerting: Any = None
    maintenance: list[Any] = field(default_factory=list)

    def secrets(self) -> list[Secret]:
        """Every secret the inventory names (probe options and alert receivers), to read at start."""
        configs = {id(c): c for c in (*(t.config for t in self.targets), *(m.config for m in self.modules.values()))}
        found = [s for c in configs.values() for s in collect(c)]
        if self.alerting is not None:
            found += [s for r in self.alerting.receivers.values() for _k, s in r.secrets()]

        def line(s: Secret) -> int:  # in file order, as the loader reports problems
            m = re.search(r":(\d+): ", s.where)
            return int(m.group(1)) if m else 0

        return sorted(found, key=line)

    def targets_by_service(self) -> dict[str, int]:
        counts = dict.fromkeys(SERVICES, 0)
        for t in self.targets:
            counts[t.service] = counts.get(t.service, 0) + 1
        return {s: n for s, n in counts.items() if n}

    def summary(self) -> str:
        by = ", ".join(f"{s} {n}" for s, n in self.targets_by_service().items())
        return (
            f"{self.source}: OK: province {self.province} ({self.province_name}), "
            f"{len(self.units)} units, {len(self.targets)} targets" + (f" ({by})" if by else "")
        )


# ---------------------------------------------------------------------------------------------
# YAML with line numbers

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(slots=True)
class _Doc:
    data: Any
    lines: dict[PathKey, int]
    # Problems found while reading keys (duplicates): (path, line, message).
    key_problems: list[tuple[PathKey, int, str]] = field(default_factory=list)
    last_line: int = 1 << 30

    def line(self, path: PathKey) -> int | None:
        for n in range(len(path), -1, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                return min(line, self.last_line)  # '---' alone: libyaml's null node is on line 2
        return None


# Collections nested deeper than this are refused: real inventories nest under 10 levels, and
# libyaml's composer recurses in C without a limit (tens of thousands of '[' crash the process).
MAX_DEPTH = 64
# Aliases may repeat a node, but not blow a small file up into millions of values (the
# "billion laughs"): the values built may exceed the file's characters by this many at most.
MAX_ALIAS_EXPANSION = 100_000


class _Refused(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _check_depth(text: str) -> None:
    """Refuse a document nested deeper than ``MAX_DEPTH`` from its flat event stream, before
    anything recursive sees it (~10% of the load time of a 3,321-unit inventory)."""
    loader = _Loader(text)
    try:
        depth = 0
        while (event := loader.get_event()) is not None:
            kind = type(event)
            if kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Refused(event.start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels")
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                depth -= 1
    finally:
        loader.dispose()


_LINE_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a line break


def _last_line(text: str) -> int:
    return len(_LINE_BREAKS.findall(text.rstrip("\r\n\x85\u2028\u2029"))) + 1


def _yaml_problem(e: yaml.YAMLError, text: str, file: str) -> Problem:
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        # libyaml marks the end of the stream one line past a last line without a newline
        line = min(mark.line + 1, _last_line(text)) if mark is not None else None
        what = e.problem or e.context or "malformed"
        if e.context and e.problem:
            where = e.context_mark
            started = f" started at line {where.line + 1}" if where is not None and where is not mark else ""
            what = f"{e.problem} ({e.context}{started})"
        return Problem(file, line, None, "", f"YAML syntax error: {what}")
    if isinstance(e, yaml.reader.ReaderError):  # a character YAML does not allow, e.g. NUL
        line = text.count("\n", 0, e.position) + 1
        return Problem(file, line, None, "", f"YAML error: character #x{e.character:04x} not allowed: {e.reason}")
    return Problem(file, None, None, "", f"YAML error: {e}")


def _compose(text: str, file: str) -> tuple[_Doc | None, list[Problem]]:
    key_problems: list[tuple[PathKey, int, str]] = []
    try:
        _check_depth(text)
    except _Refused as e:
        return None, [Problem(file, e.line, None, "", e.message)]
    except yaml.YAMLError as e:
        return None, [_yaml_problem(e, text, file)]
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [Problem(file, 1, None, "", "file is empty")]
        lines: dict[PathKey, int] = {(): node.start_mark.line + 1}
        explicit: set[PathKey] = set()  # keys written in the mapping itself, not merged in by '<<'
        # ids of the collections being built (an alias to one of them is a cycle), and how many
        # values may still be built: every value written takes a character, aliases repeat them.
        active: set[int] = set()
        budget = len(text) + MAX_ALIAS_EXPANSION

        def construct(node: yaml.Node) -> Any:
            try:
                return loader.construct_object(node, deep=True)
            except yaml.YAMLError:
                raise
            except Exception as e:  # PyYAML's constructors raise on 2025-13-01, '!!float ""', 5,000 digits
                why = str(e) or type(e).__name__
                raise _Refused(node.start_mark.line + 1, f"cannot read {str(node.value)[:40]!r}: {why}") from None

        def build(node: yaml.Node, path: PathKey) -> Any:
            nonlocal budget
            budget -= 1
            if budget < 0:
                raise _Refused(node.start_mark.line + 1, "anchors and aliases expand to too many values")
            if type(node) is yaml.ScalarNode:
                # most scalars are strings: skip the constructor's bookkeeping
                return node.value if node.tag == _STR_TAG else construct(node)
            if id(node) in active:
                raise _Refused(node.start_mark.line + 1, "an alias refers to a collection that contains it")
            if len(active) >= MAX_DEPTH:
                raise _Refused(node.start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels")
            active.add(id(node))
            try:
                return build_collection(node, path)  # type: ignore[arg-type]
            finally:
                active.discard(id(node))

        def build_collection(node: yaml.CollectionNode, path: PathKey) -> Any:
            if isinstance(node, yaml.MappingNode):
                explicit_count = sum(1 for k, _ in node.value if k.tag != _MERGE_TAG)
                loader.flatten_mapping(node)
                merged_count = len(node.value) - explicit_count  # '<<' entries come first
                out: dict[Any, Any] = {}
                for n, (key_node, value_node) in enumerate(node.value):
                    line = key_node.start_mark.line + 1
                    if isinstance(key_node, yaml.CollectionNode):
                        key_problems.append((path, line, "keys must be scalars"))
                        continue
                    key = construct(key_node)
                    if not isinstance(key, str | int | float | bool) and key is not None:
                        key_problems.append((path, line, "keys must be scalars"))
                        continue
                    if isinstance(key, bool) or not isinstance(key, str | int):
                        key = str(key)  # 'on:', 'null:', '1.5:' as written-ish; reported as unknown keys
                    if key in out and n >= merged_count and (*path, key) in explicit:
                        first = lines[(*path, key)]
                        key_problems.append(((*path, key), line, f"duplicate key (first at line {first})"))
                        continue
                    if n >= merged_count:
                        explicit.add((*path, key))
                    lines[(*path, key)] = line
                    out[key] = build(value_node, (*path, key))
                return out
            items = []
            for i, item in enumerate(node.value):
                lines[(*path, i)] = item.start_mark.line + 1
                items.append(build(item, (*path, i)))
            return items

        data = build(node, ())
    except _Refused as e:
        return None, [Problem(file, e.line, None, "", e.message)]
    except yaml.YAMLError as e:
        return None, [_yaml_problem(e, text, file)]
    finally:
        loader.dispose()
    return _Doc(data, lines, key_problems, _last_line(text)), []


def _field(path: Iterable[str | int]) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
            continue
        name = p if p.isprintable() else repr(p)  # a key with a line break must not split the line
        out += f".{name}" if out else name
    return out


# ---------------------------------------------------------------------------------------------
# Loading


def load_inventory(
    path: str | Path,
    *,
    config_for: ConfigLookup | None = None,
    system_resolver: str | None = None,
) -> Inventory:
    """Read, validate and expand an inventory file; raises ``InventoryError`` with every problem.

    ``config_for(kind)`` gives a probe kind's Config class (default: ``probes.registry``);
    ``system_resolver`` is the DNS server email checks ask when ``monitor.dns_servers`` is empty
    (default: the first nameserver of /etc/resolv.conf).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        problem = Problem(str(path), None, None, "", f"cannot read: not UTF-8 ({e.reason})")
        raise InventoryError([problem]) from e
    except OSError as e:
        raise InventoryError([Problem(str(path), None, None, "", f"cannot read: {e.strerror or e}")]) from e
    return parse_inventory(text, path, config_for=config_for, system_resolver=system_resolver)


def parse_inventory(
    text: str,
    source: str | Path = "<inventory>",
    *,
    config_for: ConfigLookup | None = None,
    system_resolver: str | None = None,
) -> Inventory:
    """Like ``load_inventory`` for text already read; ``source`` names it in problems."""
    source = Path(source)
    file = str(source)
    # Loading allocates ~100 small objects per unit and frees none of them: the cyclic GC
    # would re-scan them over and over (half the time for 3,321 units), so it waits.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        doc, problems = _compose(text, file)
        if doc is None:
            raise InventoryError(problems)
        b = _Builder(file, doc, config_for or _registry_config, system_resolver)
        b.problems.extend(problems)
        inv = b.build(source)
    finally:
        if gc_was_enabled:
            gc.enable()
    if b.problems:
        raise InventoryError(_ordered(b.problems))
    assert inv is not None
    return inv


def _registry_config(kind: str) -> type[ProbeConfig]:
    from probes import registry

    return registry.get(kind).config


def system_nameserver(resolv_conf: Path = Path("/etc/resolv.conf")) -> str:
    """The first 'nameserver' of resolv.conf as 'host:53' ('127.0.0.1:53' when there is none)."""
    try:
        for line in resolv_conf.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                return join_host_port(parts[1].split("%", 1)[0], 53)
    except OSError:
        pass
    return "127.0.0.1:53"


def _ordered(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    unique = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return sorted(unique, key=lambda p: p.line or 0)


@dataclass(slots=True)
class _Setting:
    value: Any
    path: PathKey
    level: int


@dataclass(slots=True)
class _Level:
    """One layer of settings (defaults, defaults.services.<svc>, the unit's block, a check)."""

    path: PathKey
    timing: Timing | Defaults | None
    options: Mapping[str, Options | None] = field(default_factory=dict)
    enabled: bool | None = None
    # Where this level's options for a kind live: <options_at>.<kind>.<key>, or
    # <options_at>.<key> for a check (its options sit flat next to service/probe/target).
    options_at: PathKey | None = None
    flat_options: bool = False
    builtin: bool = False  # wardwatch's own default, not written in the inventory

    def options_path(self, kind: str) -> PathKey:
        at = self.path if self.options_at is None else self.options_at
        return at if self.flat_options else (*at, kind)


_TOP_KEYS = ("province", "monitor", "defaults", "units", "alerting", "maintenance")
_TIMING_FIELDS = ("interval", "timeout", "rechecks", "recheck_spacing")

# A unit's link echo runs on the city's own network (RTT in milliseconds), and it is the parent
# whose confirmation (3 failed results: 3 timeouts + 2 re-check spacings) dates every 'unit
# isolated' page; 2 s instead of the services' timeout brings that confirmation from ~34 s (10 s
# default) or ~19 s (5 s) down to ~10 s. Applies only while no timeout is written anywhere: an
# explicit defaults.timeout, defaults.services.link.timeout or unit link timeout wins.
LINK_TIMEOUT = 2.0


def _builtin_levels(defaults: Defaults, service: str) -> list[_Level]:
    if service != "link" or "timeout" in defaults.model_fields_set:
        return []
    return [_Level(("defaults", "services", "link"), Timing(timeout=LINK_TIMEOUT), builtin=True)]


class _Builder:
    def __init__(self, file: str, doc: _Doc, config_for: ConfigLookup, system_resolver: str | None) -> None:
        self.file = file
        self.doc = doc
        self.config_for = config_for
        self.system_resolver = system_resolver
        self.problems: list[Problem] = []
        self.unit_codes: dict[int, int] = {}  # index in units -> code, for messages
        self.configs: dict[str, type[ProbeConfig] | None] = {}
        self.config_cache: dict[tuple[Any, ...], ProbeConfig | list[Any]] = {}
        self.bad_templates: set[str] = set()
        # One Secret per (key, source, location): targets configured at the same line share it.
        self.secret_cache: dict[tuple[str, str, str], Secret] = {}

    # -- problems -------------------------------------------------------------------------------
    def _located(self, path: PathKey, message: str, line: int | None = None) -> Problem:
        unit_code = None
        rel: PathKey = path
        if len(path) >= 2 and path[0] == "units" and isinstance(path[1], int):
            unit_code = self.unit_codes.get(path[1])
            if unit_code is not None:
                rel = path[2:]
        return Problem(self.file, self.doc.line(path) if line is None else line, unit_code, _field(rel), message)

    def problem(self, path: PathKey, message: str, line: int | None = None) -> None:
        self.problems.append(self._located(path, message, line))

    def where(self, path: PathKey) -> str:
        """``FILE:LINE: unit CODE: field`` of ``path``: how a secret names itself in errors."""
        return str(self._located(path, "")).removesuffix(": ")

    def validation_errors(self, prefix: PathKey, exc: ValidationError) -> None:
        for e in exc.errors():
            loc = tuple(e["loc"])
            path = (*prefix, *loc)
            if e["type"] == "extra_forbidden":
                msg = "unknown key"
            elif e["type"] == "missing":
                msg = "required"
            elif e["type"] == "list_type" and len(loc) >= 2 and loc[-2] in ("vc_gov", "vc_party") \
                    and loc[-1] in _VC_LISTS:
                msg = (f"must be a list of {loc[-1]} targets (options of the {loc[-1]} probe go in "
                       f"defaults.services.{loc[-2]}.{loc[-1]})")
            elif e["type"] == "literal_error":
                msg = f"must be {e.get('ctx', {}).get('expected', '?')}, got {e['input']!r}"
            else:
                msg = e["msg"]
            self.problem(path, msg)

    def validate(self, model: type[M], data: Any, prefix: PathKey) -> M | None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.problem(prefix, f"must be a mapping, got {type(data).__name__}")
            return None
        try:
            return model.model_validate(data)
        except ValidationError as e:
            self.validation_errors(prefix, e)
            return None

    # -- the whole file -------------------------------------------------------------------------
    def build(self, source: Path) -> Inventory | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.problem((), "the top level must be a mapping (province, monitor, defaults, units)")
            return None
        raw_list = data.get("units")
        for i, raw in enumerate(raw_list if isinstance(raw_list, list) else []):
            code = raw.get("code") if isinstance(raw, dict) else None
            if isinstance(code, int) and not isinstance(code, bool):
                self.unit_codes[i] = code
        for path, line, message in self.doc.key_problems:
            self.problem(path, message, line)
        for key in data:
            if key not in _TOP_KEYS:
                self.problem((key,), f"unknown key (allowed: {', '.join(_TOP_KEYS)})")

        province = data.get("province")
        province_ok = False
        province_code = 0
        national = province == "all"  # a whole-country inventory: each unit's province from the official list
        if "province" not in data:
            self.problem(("province",), "required")
        elif national:
            province_ok = True
        elif isinstance(province, bool) or not isinstance(province, int):
            self.problem(
                ("province",), f"must be an official province code (a number) or 'all', got {province!r}"
            )
        elif province not in official.provinces():
            self.problem(
                ("province",),
                f"unknown province code {province} (valid: {', '.join(map(str, official.provinces()))})",
            )
        else:
            province_ok, province_code = True, province

        monitor = self.validate(MonitorSettings, data.get("monitor"), ("monitor",)) or MonitorSettings()
        defaults = self.validate(Defaults, data.get("defaults"), ("defaults",)) or Defaults()
        self.defaults = defaults
        self.check_defaults(defaults)
        modules = self.build_modules(monitor, defaults)

        if monitor.dns_servers:
            self.dns_server = monitor.dns_servers[0]
        else:
            self.dns_server = self.system_resolver or system_nameserver()

        raw_units = data.get("units")
        units: list[Unit] = []
        if "units" not in data:
            self.problem(("units",), "required")
            raw_units = []
        elif raw_units is None:
            raw_units = []
        elif not isinstance(raw_units, list):
            self.problem(("units",), "must be a list of units")
            raw_units = []
        first_index: dict[int, int] = {}
        codenames: dict[str, int] = {}
        if national:
            index = {u.code: u for u in official.official_units(None)}
        else:
            index = official.official_index(province_code) if province_ok else {}
        targets: list[Target] = []
        seen_keys: dict[str, PathKey] = {}
        for i, raw in enumerate(raw_units):
            raw_code = self.unit_codes.get(i)
            if raw_code is not None and raw_code in first_index:
                first = self.doc.line(("units", first_index[raw_code]))
                self.problem(("units", i, "code"), f"duplicate unit code (first at line {first})")
                continue
            if raw_code is not None:
                first_index[raw_code] = i
            unit = self.validate(Unit, raw, ("units", i))
            if unit is None:
                continue
            off = index.get(unit.code)
            if province_ok and off is None:
                self.problem(
                    ("units", i, "code"),
                    "not an official commune-level unit"
                    + ("" if national else f" of province {province_code}"),
                )
            elif off is not None and off.type != unit.type:
                self.problem(("units", i, "type"), f"the official type is {off.type!r}, not {unit.type!r}")
            codename = unit.codename or (off.codename if off else official.ascii_slug(unit.name))
            if national and not unit.codename and codename in codenames:
                codename = f"{codename}-{unit.code}"  # the same commune name recurs across provinces
            if codename in codenames:
                written = "" if unit.codename else " (derived from the name; set one)"
                self.problem(
                    ("units", i, "codename"),
                    f"codename {codename!r} is also used by unit {codenames[codename]}{written}",
                )
            else:
                codenames[codename] = unit.code
            units.append(unit)
            unit_province = off.province if (national and off is not None) else province_code
            for t, path in self.expand_unit(i, unit, unit_province, codename):
                if t.key in seen_keys:
                    first = self.doc.line(seen_keys[t.key])
                    self.problem(path, f"duplicate target {t.key} (first at line {first})")
                    continue
                seen_keys[t.key] = path
                targets.append(t)
        alerting, maintenance = self.build_alerting(data)
        if self.problems:
            return None
        return Inventory(
            source=source,
            province=province_code,
            province_name="Việt Nam" if national else official.provinces()[province_code],
            monitor=monitor,
            defaults=defaults,
            units=units,
            modules=modules,
            targets=targets,
            dns_server=self.dns_server,
            alerting=alerting,
            maintenance=maintenance,
        )

    # -- alerting (alerts/config.py) -------------------------------------------------------------
    def build_alerting(self, data: dict[Any, Any]) -> tuple[Any, list[Any]]:
        from alerts.config import AlertingConfig, MaintenanceWindow

        alerting = None
        if data.get("alerting") is not None:
            alerting = self.validate_alerting(AlertingConfig, data.get("alerting"), ("alerting",))
        if alerting is not None:
            for name, receiver in alerting.receivers.items():
                for key, secret in receiver.secrets():
                    secret.where = self.where(("alerting", "receivers", name, key))
        if alerting is not None and alerting.policy:
            try:
                from alerts.service import build_policy

                build_policy(alerting)
            except ImportError:
                pass
            except (ValueError, TypeError) as e:
                self.problem(("alerting", "policy"), str(e).removeprefix("alerting.policy."))
        windows: list[Any] = []
        raw = data.get("maintenance")
        if raw is not None and not isinstance(raw, list):
            self.problem(("maintenance",), "must be a list of windows")
        for i, item in enumerate(raw if isinstance(raw, list) else []):
            w = self.validate_alerting(MaintenanceWindow, item, ("maintenance", i))
            if w is not None:
                windows.append(w)
        return alerting, windows

    def validate_alerting(self, model: type[M], data: Any, prefix: PathKey) -> M | None:
        """Like ``validate``, minus pydantic's noise: the receiver type tag in paths, 'Value error, '."""
        if not isinstance(data, dict):
            self.problem(prefix, f"must be a mapping, got {type(data).__name__}")
            return None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for e in exc.errors():
                loc = list(e["loc"])
                if len(loc) >= 3 and loc[0] == "receivers" and loc[2] in ("alertmanager", "webhook", "email",
                                                                          "telegram"):
                    del loc[2]
                if e["type"] == "extra_forbidden":
                    msg = "unknown key"
                elif e["type"] == "missing":
                    msg = "required"
                elif e["type"] == "union_tag_invalid":
                    msg = "type must be one of alertmanager, webhook, email, telegram"
                else:
                    msg = str(e["msg"]).removeprefix("Value error, ")
                self.problem((*prefix, *loc), msg)
            return None

    # -- defaults, templates and modules --------------------------------------------------------
    def check_defaults(self, defaults: Defaults) -> None:
        base = _Level(("defaults",), defaults, _kind_options(defaults.probes), None, ("defaults", "probes"))
        self.effective_timing([base])
        for kind in KINDS:
            self.check_option_keys(kind, ("defaults", "probes", kind), defaults.probes.options(kind))
        for svc in SERVICES:
            block = defaults.services.block(svc)
            if block is not None:
                lv = [base, *_builtin_levels(defaults, svc), _Level(("defaults", "services", svc), block)]
                self.effective_timing(lv)
                for kind in KINDS:
                    self.check_option_keys(kind, ("defaults", "services", svc, kind), block.options(kind))
        t = defaults.templates
        for key in _TEMPLATE_KEYS:
            tmpl = getattr(t, key)
            if tmpl is None:
                continue
            allowed = (*TEMPLATE_FIELDS, "domain") if key == "old_domain_url" else TEMPLATE_FIELDS
            try:
                names = [f for _, f, _, _ in string.Formatter().parse(tmpl) if f is not None]
            except ValueError as e:
                self.problem(("defaults", "templates", key), f"bad template {tmpl!r}: {e}")
                self.bad_templates.add(key)
                continue
            for name in names:
                if name not in allowed:
                    known = ", ".join("{" + a + "}" for a in allowed)
                    self.problem(
                        ("defaults", "templates", key), f"unknown placeholder {{{name}}} (known: {known})"
                    )
                    self.bad_templates.add(key)

    def render(self, key: str, values: Mapping[str, object]) -> str | None:
        tmpl: str | None = getattr(self.defaults.templates, key)
        if tmpl is None or key in self.bad_templates:
            return None
        return tmpl.format_map(values)

    def build_modules(self, monitor: MonitorSettings, defaults: Defaults) -> dict[str, Module]:
        modules: dict[str, Module] = {}
        for name, raw in monitor.modules.items():
            path: PathKey = ("monitor", "modules", name)
            if not _MODULE_NAME.match(name):
                self.problem(path, "module names may use A-Z, a-z, 0-9, '_', '.', '-'")
            if not isinstance(raw, dict):
                self.problem(path, "must be a mapping {probe: KIND, <probe options>}")
                continue
            kind = raw.get("probe")
            if kind not in KINDS:
                self.problem((*path, "probe"), f"must be one of {', '.join(KINDS)}, got {kind!r}")
                continue
            timeout = defaults.timeout
            if "timeout" in raw:
                try:
                    timeout = _positive_duration(raw["timeout"])
                except PydanticCustomError as e:
                    self.problem((*path, "timeout"), e.message())
            opts = {k: v for k, v in raw.items() if k not in ("probe", "timeout")}
            self.check_option_keys(kind, path, opts)
            merged = {k: _Setting(v, (*path, k), 0) for k, v in opts.items()}
            cfg = self.make_config(kind, merged, path)
            if cfg is not None:
                modules[name] = Module(name, kind, cfg, timeout)
        return modules

    # -- probe options --------------------------------------------------------------------------
    def config_class(self, kind: str) -> type[ProbeConfig] | None:
        if kind not in self.configs:
            try:
                self.configs[kind] = self.config_for(kind)
            except Exception as e:  # a probe module missing or broken: one problem, not a traceback
                self.problems.append(
                    Problem(self.file, None, None, "probes", f"probe kind {kind!r} is not available: {e}")
                )
                self.configs[kind] = None
        return self.configs[kind]

    def check_option_keys(self, kind: str, path: PathKey, opts: Mapping[str, Any] | None) -> None:
        if not opts:
            return
        cls = self.config_class(kind)
        if cls is None:
            return
        for key in opts:
            if key not in cls.model_fields:
                known = ", ".join(cls.model_fields)
                self.problem((*path, key), f"unknown {kind} probe option (known: {known})")

    def make_config(self, kind: str, merged: dict[str, _Setting], block_path: PathKey) -> ProbeConfig | None:
        cls = self.config_class(kind)
        if cls is None:
            return None
        if (
            "ca_file" in cls.model_fields
            and "ca_file" not in merged
            and self.defaults.ca_file is not None
        ):
            merged["ca_file"] = _Setting(self.defaults.ca_file, ("defaults", "ca_file"), 0)
        if not self.secret_settings(cls, merged):
            return None
        values = {k: s.value for k, s in merged.items() if k in cls.model_fields}
        try:
            cache_key: tuple[Any, ...] = (kind, _freeze(values))
        except TypeError:
            cache_key = ()
        cached = self.config_cache.get(cache_key) if cache_key else None
        if cached is None:
            try:
                cached = cls(**values)
            except ValidationError as e:
                cached = list(e.errors())
            if cache_key:
                self.config_cache[cache_key] = cached
        if isinstance(cached, ProbeConfig):
            return cached
        for err in cached:
            loc = tuple(err["loc"])
            if loc and isinstance(loc[0], str) and loc[0] in merged:
                path = (*merged[loc[0]].path, *loc[1:])
            else:
                path = (*block_path, *loc)
            msg = "required" if err["type"] == "missing" else err["msg"].removeprefix("Value error, ")
            self.problem(path, f"{kind} probe: {msg}")
        return None

    def secret_settings(self, cls: type[ProbeConfig], merged: dict[str, _Setting]) -> bool:
        """Turn ``X_env`` / ``X_file`` settings into the Config's ``X`` Secret, located at the
        line that names it; a secret written in the file itself is refused (False)."""
        ok = True
        for name in secret_fields(cls):
            literal = merged.get(name)
            if literal is not None and not isinstance(literal.value, Secret):
                self.problem(literal.path, f"a secret is never written in the inventory: name the environment "
                                           f"variable ({name}_env) or the file ({name}_file) that holds it")
                ok = False
                continue
            sources = [(k, merged[k]) for k in (f"{name}_env", f"{name}_file") if k in merged]
            if len(sources) != 1 or literal is not None:
                continue  # none, or several: the Config says "give only one of"
            key, setting = sources[0]
            if not isinstance(setting.value, str) or not setting.value.strip():
                continue  # the Config reports the type
            where = self.where(setting.path)
            secret = self.secret_cache.get((key, setting.value, where))
            if secret is None:
                if key.endswith("_env"):
                    secret = Secret.from_env(setting.value, where)
                else:
                    secret = Secret.from_file(setting.value, where)
                self.secret_cache[(key, setting.value, where)] = secret
            del merged[key]
            merged[name] = _Setting(secret, setting.path, setting.level)
        return ok

    def merge_options(self, kind: str, levels: list[_Level]) -> dict[str, _Setting]:
        merged: dict[str, _Setting] = {}
        for n, level in enumerate(levels):
            opts = level.options.get(kind)
            if opts:
                kind_path = level.options_path(kind)
                for k, v in opts.items():
                    merged[k] = _Setting(v, (*kind_path, k), n)
        return merged

    # -- timing ---------------------------------------------------------------------------------
    def effective_timing(self, levels: list[_Level]) -> dict[str, _Setting]:
        eff: dict[str, _Setting] = {}
        for name in _TIMING_FIELDS:
            for n in range(len(levels) - 1, -1, -1):
                t = levels[n].timing
                value = getattr(t, name, None) if t is not None else None
                if value is not None:
                    eff[name] = _Setting(value, (*levels[n].path, name), n)
                    break
        interval, timeout = eff["interval"], eff["timeout"]
        rechecks, spacing = eff["rechecks"], eff["recheck_spacing"]
        if timeout.value >= interval.value:
            where = max((timeout, interval), key=lambda s: s.level)
            self.problem(
                where.path,
                f"timeout {format_duration(timeout.value)} must be shorter than "
                f"interval {format_duration(interval.value)}",
            )
        elif timeout.value + rechecks.value * spacing.value > interval.value:
            where = max((rechecks, spacing, timeout, interval), key=lambda s: s.level)
            budget = timeout.value + rechecks.value * spacing.value
            self.problem(
                where.path,
                f"timeout {format_duration(timeout.value)} + {rechecks.value} rechecks x "
                f"{format_duration(spacing.value)} = {format_duration(budget)} does not fit in "
                f"interval {format_duration(interval.value)}",
            )
        return eff

    # -- expansion ------------------------------------------------------------------------------
    def levels(self, i: int, unit: Unit, service: str) -> list[_Level]:
        d = self.defaults
        out = [_Level(("defaults",), d, _kind_options(d.probes), None, ("defaults", "probes"))]
        out += _builtin_levels(d, service)
        sd = d.services.block(service)
        if sd is not None:
            out.append(
                _Level(
                    ("defaults", "services", service),
                    sd,
                    _kind_options(sd),
                    sd.enabled if "enabled" in sd.model_fields_set else None,
                )
            )
        block = unit.block(service)
        if block is not None:
            out.append(
                _Level(
                    ("units", i, service),
                    block,
                    _kind_options(block),
                    block.enabled if "enabled" in block.model_fields_set else None,
                )
            )
        return out

    def expand_unit(
        self, i: int, unit: Unit, province: int, codename: str
    ) -> list[tuple[Target, PathKey]]:
        values = {
            "code": unit.code,
            "codename": codename,
            "province": province,
            "name_slug": official.name_slug(unit.name),
        }
        out: list[tuple[Target, PathKey]] = []

        def emit(
            service: str,
            levels: list[_Level],
            kind: str,
            target: str,
            path: PathKey,
            *,
            fixed: Mapping[str, Any] | None = None,
            error_path: PathKey | None = None,  # where a Config-wide error is reported
        ) -> None:
            timing = self.effective_timing(levels)
            for level in levels[1:]:  # defaults were checked once already
                opts = level.options.get(kind)
                if opts:
                    self.check_option_keys(kind, level.options_path(kind), opts)
            merged = self.merge_options(kind, levels)
            for k, v in (fixed or {}).items():
                merged[k] = v if isinstance(v, _Setting) else _Setting(v, path, len(levels))
            cfg = self.make_config(kind, merged, error_path or levels[-1].path)
            if cfg is None:
                return
            out.append(
                (
                    Target(
                        province=province,
                        unit_code=unit.code,
                        unit_name=unit.name,
                        service=service,
                        probe=kind,
                        target=target,
                        config=cfg,
                        interval=float(timing["interval"].value),
                        timeout=float(timing["timeout"].value),
                        rechecks=int(timing["rechecks"].value),
                        recheck_spacing=float(timing["recheck_spacing"].value),
                        origin=_field(path),
                    ),
                    path,
                )
            )

        def enabled(levels: list[_Level]) -> bool:
            for level in reversed(levels):
                if level.enabled is not None:
                    return level.enabled
            return True

        base: PathKey = ("units", i)
        for svc in ("link", "vc_gov", "vc_party"):
            block = unit.block(svc)
            lv = self.levels(i, unit, svc)
            if not isinstance(block, LinkBlock | VcBlock) or not enabled(lv):
                continue
            if isinstance(block, LinkBlock):
                self.expand_link(i, block, lv, emit)
            else:
                emit(svc, lv, "icmp", block.address, (*base, svc, "address"))
            if isinstance(block, VcBlock):
                for j, port in enumerate(block.tcp_ports):
                    emit(svc, lv, "tcp", join_host_port(block.address, port), (*base, svc, "tcp_ports", j))
                for j, uri in enumerate(block.sip):
                    emit(svc, lv, "sip", uri, (*base, svc, "sip", j))
                for key in ("stun", "h323"):
                    for j, where in enumerate(getattr(block, key)):
                        hostport = (join_host_port(block.address, where) if isinstance(where, int)
                                    else where)
                        emit(svc, lv, key, hostport, (*base, svc, key, j))
                for j, web in enumerate(block.http):
                    emit(svc, lv, "http", web, (*base, svc, "http", j))

        # portal, and the old units' domains that must redirect to it
        lv = self.levels(i, unit, "portal")
        portal_url = None
        if enabled(lv):
            portal_url = self.url_for(unit.portal, "portal", values, (*base, "portal"))
            if portal_url is not None:
                emit("portal", lv, "http", portal_url, (*base, "portal", "url"))
            for k, merged_unit in enumerate(unit.merged_from):
                for j, old_domain in enumerate(merged_unit.domains):
                    opath: PathKey = (*base, "merged_from", k, "domains", j)
                    if portal_url is None:
                        self.problem(opath, "an old domain needs a portal URL to redirect to (portal.url)")
                        continue
                    url = self.render("old_domain_url", {**values, "domain": old_domain})
                    if url is None:
                        continue
                    try:
                        check_url(url)
                    except ValueError as e:
                        self.problem(opath, f"defaults.templates.old_domain_url: {e}")
                        continue
                    emit("portal", lv, "http", url, opath, fixed={"expect_redirect_to": portal_url})

        lv = self.levels(i, unit, "procedures")
        if enabled(lv):
            url = self.url_for(unit.procedures, "procedures", values, (*base, "procedures"))
            if url is not None:
                emit("procedures", lv, "http", url, (*base, "procedures", "url"))

        lv = self.levels(i, unit, "email")
        if enabled(lv):
            domain: str | None = unit.email.domain if unit.email is not None else None
            dpath: PathKey = (*base, "email", "domain")
            if domain is None:
                rendered = self.render("email", values)
                if rendered is not None:
                    dpath = ("defaults", "templates", "email")
                    if is_hostname(rendered):
                        domain = rendered.lower().rstrip(".")
                    elif "email" not in self.bad_templates:
                        self.bad_templates.add("email")
                        self.problem(dpath, f"renders {rendered!r} for unit {unit.code}: not a host name")
            if domain is not None:
                emit(
                    "email",
                    lv,
                    "dns",
                    self.dns_server,
                    dpath if dpath[0] == "units" else (*base, "email"),
                    fixed={"query_name": domain, "query_type": "MX"},
                )
                # MX hosts, SMTP banner, STARTTLS and their certificates, asked of the same DNS server
                emit(
                    "email",
                    lv,
                    "email",
                    domain,
                    dpath if dpath[0] == "units" else (*base, "email"),
                    fixed={"dns_server": self.dns_server},
                )
            if unit.email is not None:
                for j, smtp in enumerate(unit.email.smtp):
                    emit("email", lv, "tcp", smtp, (*base, "email", "smtp", j), fixed={"starttls": "smtp"})

        lv = self.levels(i, unit, "certs")
        if unit.certs is not None and enabled(lv):
            for j, host in enumerate(unit.certs.hosts):
                emit("certs", lv, "tls", host, (*base, "certs", "hosts", j))
            for j, file in enumerate(unit.certs.files):
                emit("certs", lv, "certfile", file, (*base, "certs", "files", j))

        for j, check in enumerate(unit.checks):
            cpath: PathKey = (*base, "checks", j)
            lv = self.levels(i, unit, check.service)
            extra = dict(check.model_extra or {})
            # options as `tcp: {...}` (like a service block) and/or flat next to `target`
            nested = extra.pop(check.probe, None)
            if nested is not None and not isinstance(nested, dict):
                self.problem((*cpath, check.probe), f"must be a mapping of {check.probe} probe options")
                nested = None
            if nested:
                lv.append(_Level(cpath, check, {check.probe: nested}, check.enabled))
            lv.append(_Level(cpath, check, {check.probe: extra}, check.enabled, flat_options=True))
            if not check.enabled:  # not probed, but typos in its options still count
                self.check_option_keys(check.probe, cpath, extra)
                self.check_option_keys(check.probe, (*cpath, check.probe), nested)
                continue
            target = self.check_target(check.probe, check.target, (*cpath, "target"))
            if target is not None:
                emit(check.service, lv, check.probe, target, (*cpath, "target"))
        return out

    def expand_link(self, i: int, block: LinkBlock, lv: list[_Level], emit: Callable[..., None]) -> None:
        """The router: a plain ping, or quality rounds (link.quality); SNMP when link.snmp says so."""
        base: PathKey = ("units", i, "link")
        dflt = self.defaults.services.link
        quality = _merged(dflt.quality if dflt else None, block.quality)
        if quality is None or quality.get("enabled") is False:
            emit("link", lv, "icmp", block.address, (*base, "address"))
        else:
            # a key written as null is a key not written (was: int(None) raised)
            fixed = {_QUALITY_FIELDS[k]: v for k, v in quality.items() if k in _QUALITY_FIELDS and v is not None}
            qpath: PathKey = (*base, "quality") if block.quality is not None else (*base, "address")
            timeout = self.effective_timing(lv)["timeout"].value
            cls = self.config_class("link")
            if cls is not None:
                f = cls.model_fields
                need = (int(fixed.get("count", f["count"].default)) - 1) * float(
                    fixed.get("spacing_seconds", f["spacing_seconds"].default)
                ) + float(fixed.get("reply_timeout_seconds", f["reply_timeout_seconds"].default))
                if need >= timeout:
                    self.problem(
                        qpath,
                        f"a round of pings takes up to {format_duration(need)}: more than the link timeout "
                        f"{format_duration(timeout)}",
                    )
                    return
            emit("link", lv, "link", block.address, qpath, fixed=fixed, error_path=qpath)
        snmp = _merged(dflt.snmp if dflt else None, block.snmp)
        if snmp is None or snmp.get("enabled") is False:
            return
        spath: PathKey = (*base, "snmp") if block.snmp is not None else ("defaults", "services", "link", "snmp")
        own = block.snmp.model_fields_set if block.snmp is not None else set()
        snmp_fixed = {
            # each setting where it is written (the unit's block or the defaults): a secret's errors name that line
            _SNMP_FIELDS[k]: _Setting(
                tuple(v) if k == "interfaces" else v,
                (*base, "snmp", k) if k in own else ("defaults", "services", "link", "snmp", k), len(lv),
            )
            for k, v in snmp.items() if k in _SNMP_FIELDS and v is not None
        }
        target = join_host_port(block.address, int(snmp.get("port") or 161))
        # The short echo timeout is not for SNMP: a walk of a router's interface table takes longer.
        emit("link", [x for x in lv if not x.builtin], "snmp", target, spath, fixed=snmp_fixed, error_path=spath)

    def url_for(
        self,
        block: PortalBlock | ProceduresBlock | None,
        key: str,
        values: Mapping[str, object],
        path: PathKey,
    ) -> str | None:
        if block is not None and block.url is not None:
            return block.url
        rendered = self.render(key, values)
        if rendered is None:
            if block is not None and key not in self.bad_templates:
                self.problem((*path, "url"), f"required (defaults.templates.{key} is not set)")
            return None
        try:
            return check_url(rendered)
        except ValueError as e:
            if key not in self.bad_templates:
                self.bad_templates.add(key)
                self.problem(("defaults", "templates", key), f"renders an invalid URL: {e}")
            return None

    def check_target(self, kind: str, target: str, path: PathKey) -> str | None:
        try:
            return normal_target(kind, target)
        except ValueError as e:
            self.problem(path, str(e))
            return None


def normal_target(kind: str, target: str) -> str:
    """``target`` checked for a ``kind`` probe (as the inventory and ``wardwatch check`` take it),
    in its normal form; ValueError says what is wrong with it."""
    try:
        if kind == "icmp":
            return _address(target)
        if kind in ("tcp", "tls"):
            return _host_port(None)(target)
        if kind == "dns":
            return _host_port(53)(target)
        if kind == "http":
            return _no_password(check_url(target))
        if kind == "sip":
            return check_sip_uri(target)
        if kind == "stun":
            return _host_port(3478)(target)
        if kind == "h323":
            return _host_port(1720)(target)
        if kind == "email":
            return _hostname(target)
    except PydanticCustomError as e:
        raise ValueError(e.message()) from None
    return target


def _merged(default: BaseModel | None, own: BaseModel | None) -> dict[str, Any] | None:
    """Keys set in ``own`` over keys set in ``default``; None when neither is given."""
    if default is None and own is None:
        return None
    out: dict[str, Any] = {}
    for m in (default, own):
        if m is not None:
            out.update({k: getattr(m, k) for k in m.model_fields_set})
    return out


_KIND_SET = frozenset(KINDS)


def _kind_options(opts: KindOptions) -> dict[str, Options | None]:
    # Only the keys written (every kind's options default to None): with a dozen probe kinds,
    # asking each of them on every level of every unit was a third of loading 3,321 units.
    return {k: opts.options(k) for k in opts.model_fields_set if k in _KIND_SET}


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    hash(value)
    return (type(value).__name__, value)
