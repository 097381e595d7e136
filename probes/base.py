"""The one contract every probe module follows.

A probe module exports ``Config`` (a pydantic model, subclass of ``ProbeConfig``)
and ``async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult``.
It touches no globals, store or registry: the deadline, resolver and TLS
contexts come in through ``ctx``. Target-side failures are returned as data with
a ``Reason``; only bugs raise (the engine turns those into ``internal_error``).

Samples use blackbox_exporter's metric names so existing dashboards and rules
keep working; ``probe_success`` and ``probe_duration_seconds`` are added by the
caller (engine or /probe handler), not by the probe.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver
from pydantic import BaseModel, ConfigDict, model_validator

from monitor.secrets import Secret
from probes import addrguard


class Reason(StrEnum):
    """Machine-readable failure reasons, shared by every probe."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    CONNECTION_RESET = "connection_reset"
    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_SERVFAIL = "dns_servfail"
    DNS_NO_ANSWER = "dns_no_answer"
    DNS_TIMEOUT = "dns_timeout"
    DNS_RCODE = "dns_rcode"
    DNS_ANSWER_MISMATCH = "dns_answer_mismatch"
    DNS_SERVERS_DISAGREE = "dns_servers_disagree"
    TLS_EXPIRED = "tls_expired"
    TLS_NOT_YET_VALID = "tls_not_yet_valid"
    TLS_HOSTNAME_MISMATCH = "tls_hostname_mismatch"
    TLS_UNTRUSTED = "tls_untrusted"
    TLS_HANDSHAKE = "tls_handshake_failed"
    TLS_VERSION = "tls_version"
    TLS_EXPIRES_SOON = "tls_expires_soon"  # tls probe: fail_if_expires_within_days
    HTTP_STATUS = "http_status"
    HTTP_PROTOCOL = "http_protocol_error"
    BODY_MISMATCH = "body_mismatch"
    BODY_TOO_LARGE = "body_too_large"
    REDIRECT_MISSING = "redirect_missing"
    REDIRECT_MISMATCH = "redirect_mismatch"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    EXPECT_MISMATCH = "expect_mismatch"
    STARTTLS_UNSUPPORTED = "starttls_unsupported"
    PACKET_LOSS = "packet_loss"
    PERMISSION_DENIED = "permission_denied"
    CERT_EXPIRED = "cert_expired"
    CERT_EXPIRES_SOON = "cert_expires_soon"  # certfile probe: fail_if_expires_within_days
    CERT_UNREADABLE = "cert_unreadable"
    CERT_BAD_PASSWORD = "cert_bad_password"
    FILE_NOT_FOUND = "file_not_found"
    SNMP_TIMEOUT = "snmp_timeout"  # also a wrong v2c community: agents drop it silently
    SNMP_AUTH_ERROR = "snmp_auth_error"  # SNMPv3 USM report: unknown user, wrong digest, decryption
    SNMP_NO_SUCH_OBJECT = "snmp_no_such_object"  # a configured interface or OID is missing
    SNMP_INTERFACE_DOWN = "snmp_interface_down"  # ifAdminStatus up, ifOperStatus not up
    SNMP_CREDENTIALS = "snmp_credentials_unavailable"  # the env var / file holding a secret is missing
    SNMP_ERROR = "snmp_error"  # any other SNMP error-status or engine error
    SIP_STATUS = "sip_status"  # a final SIP response with a code not accepted
    SIP_NO_RESPONSE = "sip_no_response"  # request sent (and retransmitted), no final response
    SIP_PROTOCOL = "sip_protocol_error"  # the reply is not a SIP response
    STUN_ERROR = "stun_error"  # a STUN error response (ERROR-CODE)
    STUN_NO_RESPONSE = "stun_no_response"  # Binding request sent (and retransmitted), no answer
    STUN_PROTOCOL = "stun_protocol_error"  # the reply is not a valid STUN message
    SMTP_BANNER = "smtp_banner"  # no 220 greeting
    SMTP_EHLO = "smtp_ehlo_refused"  # EHLO not answered 250
    EMAIL_NO_MX = "email_no_mx"  # the mail domain does not exist or has no (usable) MX
    ADDRESS_DENIED = "address_denied"  # /probe outside the inventory: the address guard refused it
    INTERNAL_ERROR = "internal_error"


@dataclass(slots=True, frozen=True)
class Sample:
    """One exported value: metric name, labels of its own (e.g. phase), value."""

    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True, frozen=True)
class ProbeResult:
    success: bool
    reason: Reason | None
    message: str = ""
    duration_seconds: float = 0.0
    samples: tuple[Sample, ...] = ()

    def value(self, name: str, **labels: str) -> float | None:
        """First sample called ``name`` whose labels include ``labels``."""
        want = set(labels.items())
        for s in self.samples:
            if s.name == name and want <= set(s.labels):
                return s.value
        return None


class ProbeConfig(BaseModel):
    """Base of every probe's Config: strict (unknown keys are errors) and hashable.

    A credential is a field of type ``Secret`` (monitor/secrets.py) named ``X``; the same
    model may have ``X_env`` and ``X_file`` fields naming where to read it, which are turned
    into ``X`` here (one of the three at most). Errors never echo an input value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    ip_protocol: Literal["ip4", "ip6"] = "ip4"
    ip_protocol_fallback: bool = True

    @model_validator(mode="before")
    @classmethod
    def _secret_sources(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name in secret_fields(cls):
            group = (name, f"{name}_env", f"{name}_file")
            given = [g for g in group if data.get(g) is not None]
            if len(given) > 1:
                raise ValueError(f"give only one of {', '.join(group)} (got {', '.join(given)})")
            if given and given[0] != name:
                env, file = data.get(f"{name}_env"), data.get(f"{name}_file")
                if not isinstance(env or file, str):
                    raise ValueError(f"{given[0]}: must be a string")
                data = {**data, name: Secret.from_source(env, file, where=given[0])}
        return data


def secret_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a Config that hold a ``Secret``."""
    found = _SECRET_FIELDS.get(cls)
    if found is None:
        found = _SECRET_FIELDS[cls] = tuple(
            name for name, info in cls.model_fields.items() if Secret in _type_args(info.annotation)
        )
    return found


_SECRET_FIELDS: dict[type[BaseModel], tuple[str, ...]] = {}


def _type_args(tp: Any) -> tuple[Any, ...]:
    args = getattr(tp, "__args__", None)
    return (tp, *args) if args else (tp,)


class ResolveError(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AddressDenied(OSError):
    """Connect time: the address is outside the address policy (``ProbeContext.pin``).

    An OSError so that every probe's connect error path reports it unchanged;
    ``os_error_reason`` maps it to ``address_denied``."""


@dataclass(slots=True, frozen=True)
class Resolved:
    address: str
    family: int  # socket.AF_INET / AF_INET6
    lookup_seconds: float

    def samples(self) -> tuple[Sample, ...]:
        return (
            Sample("probe_dns_lookup_time_seconds", self.lookup_seconds),
            Sample("probe_ip_protocol", 6.0 if self.family == socket.AF_INET6 else 4.0),
        )


class Resolver:
    """Name resolution for probes.

    With ``nameservers`` set (``host`` or ``host:port``), names are asked of those
    servers with dnspython (the lab and the tests point this at their own DNS
    server); otherwise the system resolver (``getaddrinfo``, /etc/hosts first).
    """

    def __init__(self, nameservers: Iterable[str] = (), timeout: float = 5.0) -> None:
        self.nameservers = tuple(nameservers)
        self._dns: dns.asyncresolver.Resolver | None = None
        if self.nameservers:
            r = dns.asyncresolver.Resolver(configure=False)
            # One Nameserver object each: two servers on one host with different ports stay two
            # (a host -> port map, dnspython's older form, keeps only the last port).
            r.nameservers = [dns.nameserver.Do53Nameserver(*split_host_port(ns, 53)) for ns in self.nameservers]
            r.lifetime = timeout
            r.cache = dns.resolver.LRUCache(max_size=100_000)
            self._dns = r

    async def resolve(self, host: str, ip_protocol: str = "ip4", fallback: bool = True) -> Resolved:
        start = time.monotonic()
        host = host.strip("[]")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            return Resolved(str(ip), fam, 0.0)
        order = ["ip4", "ip6"] if ip_protocol == "ip4" else ["ip6", "ip4"]
        if not fallback:
            order = order[:1]
        last: ResolveError | None = None
        for proto in order:
            try:
                addr = await self._lookup(host, proto)
            except ResolveError as e:
                last = e
                if e.reason in (Reason.DNS_TIMEOUT, Reason.DNS_SERVFAIL):
                    break
                continue
            fam = socket.AF_INET6 if proto == "ip6" else socket.AF_INET
            return Resolved(addr, fam, time.monotonic() - start)
        assert last is not None
        raise last

    async def _lookup(self, host: str, proto: str) -> str:
        if self._dns is not None and host != "localhost":
            ans = await dns_query(self._dns, host, "AAAA" if proto == "ip6" else "A")
            return str(ans[0])
        fam = socket.AF_INET6 if proto == "ip6" else socket.AF_INET
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, family=fam, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            if e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
                raise ResolveError(Reason.DNS_NXDOMAIN, f"{host}: {e.strerror}") from e
            raise ResolveError(Reason.DNS_SERVFAIL, f"{host}: {e.strerror}") from e
        except (UnicodeError, ValueError) as e:  # the IDNA encoding of a name that is none
            raise ResolveError(Reason.DNS_NXDOMAIN, f"{host[:100]!r} is not a host name ({e})") from e
        return str(infos[0][4][0])


async def dns_query(
    resolver: dns.asyncresolver.Resolver,
    name: str,
    rdtype: str,
    *,
    absent: Reason | None = None,
    **kw: Any,
) -> dns.resolver.Answer:
    """One DNS query, its failures as ResolveError with a reason and a message naming the query.

    ``absent``: the reason when the name or the record does not exist, or the name is none
    (default DNS_NXDOMAIN / DNS_NO_ANSWER); the email probe says EMAIL_NO_MX for all three.
    """
    what = name if rdtype in ("A", "AAAA") else f"{name} {rdtype}"
    try:
        return await resolver.resolve(name, rdtype, search=False, **kw)
    except dns.resolver.NXDOMAIN as e:
        raise ResolveError(absent or Reason.DNS_NXDOMAIN, f"{name}: no such domain") from e
    except dns.resolver.NoAnswer as e:
        raise ResolveError(absent or Reason.DNS_NO_ANSWER, f"{name}: no {rdtype} record") from e
    except dns.resolver.NoNameservers as e:
        raise ResolveError(Reason.DNS_SERVFAIL, f"{what}: no nameserver answered ({e})") from e
    except dns.exception.Timeout as e:
        raise ResolveError(Reason.DNS_TIMEOUT, f"{what}: DNS lookup timed out") from e
    except (dns.exception.DNSException, UnicodeError, ValueError) as e:  # a label over 63, bad IDNA
        raise ResolveError(absent or Reason.DNS_NXDOMAIN, f"{name[:100]!r} is not a host name ({e})") from e


class TLSContexts:
    """SSL contexts built once and reused: creating one costs ~25 ms (field notes)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str | None, bool, str | None, str | None], ssl.SSLContext] = {}

    def get(
        self,
        ca_file: str | None = None,
        verify: bool = True,
        min_version: str | None = None,
        max_version: str | None = None,
    ) -> ssl.SSLContext:
        key = (ca_file, verify, min_version, max_version)
        ctx = self._cache.get(key)
        if ctx is None:
            ctx = ssl.create_default_context(cafile=ca_file) if verify else ssl.SSLContext(
                ssl.PROTOCOL_TLS_CLIENT
            )
            if not verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if min_version or max_version:
                # Old peers (TLS 1.0) must still be measurable when a target asks for it.
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            # Asking for TLS 1.0/1.1 on purpose (to measure an old peer) is not a mistake here.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                if min_version:
                    ctx.minimum_version = ssl.TLSVersion[min_version]
                if max_version:
                    ctx.maximum_version = ssl.TLSVersion[max_version]
            self._cache[key] = ctx
        return ctx


@dataclass(slots=True)
class ProbeContext:
    """What a probe may use: its time budget, resolver, TLS contexts and logger."""

    timeout: float
    resolver: Resolver = field(default_factory=Resolver)
    tls: TLSContexts = field(default_factory=TLSContexts)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("wardwatch.probe"))
    started: float = field(default_factory=time.monotonic)
    # What a probe keeps from one run to the next of the same target (the engine keeps
    # one dict per target; one-shot callers pass a fresh one). Only probes that compute
    # rates use it (snmp: previous counters); it must stay small.
    memory: dict[str, Any] = field(default_factory=dict)
    # The address policy, set by /probe for targets outside the inventory (the engine's
    # inventory targets are trusted: None). Checked after resolution and again at connect time.
    guard: addrguard.AddressPolicy | None = None

    def remaining(self) -> float:
        """Seconds left before the probe's deadline (never negative)."""
        return max(0.0, self.timeout - (time.monotonic() - self.started))

    async def resolve(
        self, host: str, ip_protocol: str = "ip4", fallback: bool = True, resolver: Resolver | None = None
    ) -> Resolved:
        """Resolve ``host`` (with ``resolver``, default ``self.resolver``) and, under a guard,
        check the one address the probe will connect to; ResolveError(address_denied) if refused.

        A host written as an address in any form getaddrinfo() takes (``0x7f000001``,
        ``127.1``, ``::ffff:127.0.0.1``) is judged as that address and never sent to DNS.
        """
        r = resolver or self.resolver
        if self.guard is None:
            return await r.resolve(host, ip_protocol, fallback)
        literal = addrguard.parse_host(host.strip("[]") if host.startswith("[") else host)
        if literal is not None:
            self._refuse(literal, f"{host}: ")
            fam = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            return Resolved(str(literal), fam, 0.0)
        resolved = await r.resolve(host, ip_protocol, fallback)
        checked = addrguard.parse_literal(resolved.address)
        if checked is None:  # a resolver never hands out anything else; refuse rather than guess
            raise ResolveError(Reason.ADDRESS_DENIED, f"{host}: resolved to {resolved.address!r}, not an address")
        self._refuse(checked, f"{host} resolves to {resolved.address}: ")
        return resolved

    def _refuse(self, addr: addrguard.IPAddress, context: str) -> None:
        assert self.guard is not None
        why = self.guard.check(addr)
        if why is not None:
            self.logger.warning("probe refused: %s%s", context, why)
            raise ResolveError(Reason.ADDRESS_DENIED, context + why)

    def pin(self, address: str) -> str:
        """Connect time: ``address`` must be an IP literal (never a name: no second resolution
        between the check and the connect) that the guard admits. Returns it; AddressDenied if not."""
        if self.guard is None:
            return address
        addr = addrguard.parse_literal(address)
        if addr is None:
            why = f"{address!r} is not an IP address: refusing to resolve it again at connect time"
        else:
            why = self.guard.check(addr) or ""
        if why:
            self.logger.warning("not connecting: %s", why)
            raise AddressDenied(why)
        return address

    async def open_connection(self, address: str, port: int, **kwargs: Any) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter
    ]:
        """asyncio.open_connection to the resolved ``address``, checked (``pin``) and numeric
        only (AI_NUMERICHOST: a name would fail rather than be resolved here)."""
        return await asyncio.open_connection(
            self.pin(address), port, flags=socket.AI_NUMERICHOST, **kwargs
        )


def timeout_reason(phase: str) -> Reason:
    """The reason for a probe's deadline passing in ``phase``: while the name was still being
    resolved it is the DNS that did not answer (dns_timeout), not the target."""
    return Reason.DNS_TIMEOUT if phase == "resolve" else Reason.TIMEOUT


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port', 'v6' -> (host, port); ValueError names what is wrong."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
    elif value.count(":") == 1:
        host, port_text = value.rsplit(":", 1)
    else:
        host, port_text = value, None
    if port_text is None:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5 and 0 < int(port_text) < 65536):
        raise ValueError(f"bad port {port_text[:20]!r} in {value[:100]!r}")
    return host, int(port_text)


def bad_target(target: str, error: ValueError, start: float) -> ProbeResult:
    """A target the probe cannot even parse: data (internal_error, as a configuration
    mistake it is), not an exception out of the probe."""
    return failure(Reason.INTERNAL_ERROR, f"bad target {target[:200]!r}: {error}", start)


def failure(reason: Reason, message: str, start: float, *samples: Sample) -> ProbeResult:
    return ProbeResult(False, reason, message, time.monotonic() - start, tuple(samples))


def os_error_reason(exc: BaseException) -> Reason:
    """Map a socket-level exception to a reason."""
    if isinstance(exc, AddressDenied):
        return Reason.ADDRESS_DENIED
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return Reason.TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return Reason.REFUSED
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return Reason.CONNECTION_RESET
    if isinstance(exc, PermissionError):
        return Reason.PERMISSION_DENIED
    if isinstance(exc, OSError) and exc.errno in (101, 113, 65, 51):  # ENETUNREACH, EHOSTUNREACH
        return Reason.UNREACHABLE
    return Reason.UNREACHABLE
