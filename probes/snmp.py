"""SNMP probe: a router's uptime and the health of the interfaces that carry the unit's link.

One poll is (normally) one GET: ``sysUpTime.0`` plus, for every configured interface,
its IF-MIB/ifXTable row (ifName, ifDescr, ifOperStatus, ifAdminStatus, ifHCIn/OutOctets,
ifHighSpeed, ifIn/OutErrors, ifIn/OutDiscards). Interfaces named by ifName or ifDescr
are resolved to an ifIndex with a ``bulk_walk_cmd`` of that column
(``lexicographicMode=False``: it otherwise walks past the table) and the mapping is
remembered until the router reboots or the index stops answering.

Metric names follow snmp_exporter's ``if_mib`` module (``ifOperStatus``,
``ifHCInOctets``, ... with labels ifIndex, ifName, ifDescr) so its dashboards apply;
the octet and error counters are exported with TYPE counter, as snmp_exporter does.
Rates need the previous poll, and the probe itself is stateless: the previous values
live in ``ctx.memory`` (a dict the engine keeps per target). The maths is pure
functions below (``counter_delta``, ``rebooted``, ``rate``, ``utilisation``); the
derived gauges (``wardwatch_snmp_if_*``) appear from the second poll on, and not in
the poll right after a reboot (counters restarted: a delta would be meaningless).

Reasons: ``snmp_timeout`` (no answer; an SNMPv1/v2c agent **silently drops** a wrong
community, so a wrong community is indistinguishable from a dead agent and is reported
as ``snmp_timeout`` with a hint), ``snmp_auth_error`` (v3: the agent's USM report
names an unknown user, a wrong digest or a failed decryption), ``snmp_no_such_object``
(a configured interface or an OID the agent does not have), ``snmp_interface_down``
(a configured interface is oper-down while admin-up; admin-down is intentional and not
a failure), ``snmp_error`` (any other error-status or engine error, e.g. garbage), and
``snmp_credentials_unavailable`` (the env var or file holding a secret is missing).

Secrets (community, keys) are ``monitor.secrets.Secret``s: from an environment variable or
a file (``*_env`` / ``*_file``; a literal only on the ``check`` command line), revealed only
when pysnmp's credentials object is built, and never in samples, messages or logs.

One ``SnmpEngine`` (one UDP socket) is shared by every v2c probe on an event loop, and
one by every v3 probe with the same credentials (pysnmp keeps a single USM entry per
user name in an engine). Unlike the ICMP pinger's socket, an engine outlives its last
probe by ``LINGER_SECONDS`` (building one costs ~0.3 s of CPU) and is closed when the
event loop shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pyasn1.type import univ
from pydantic import Field, model_validator
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_walk_cmd,
    get_cmd,
)
from pysnmp.hlapi.v3arch.asyncio import auth as _auth
from pysnmp.proto import errind
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from monitor.secrets import Secret, SecretUnavailable
from probes.base import (
    AddressDenied,
    ProbeConfig,
    ProbeContext,
    ProbeResult,
    Reason,
    ResolveError,
    Sample,
    bad_target,
    failure,
    split_host_port,
)

AuthProtocol = Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"]
PrivProtocol = Literal["des", "3des", "aes", "aes192", "aes256"]

_AUTH = {
    "md5": _auth.USM_AUTH_HMAC96_MD5,
    "sha": _auth.USM_AUTH_HMAC96_SHA,
    "sha224": _auth.USM_AUTH_HMAC128_SHA224,
    "sha256": _auth.USM_AUTH_HMAC192_SHA256,
    "sha384": _auth.USM_AUTH_HMAC256_SHA384,
    "sha512": _auth.USM_AUTH_HMAC384_SHA512,
}
_PRIV = {
    "des": _auth.USM_PRIV_CBC56_DES,
    "3des": _auth.USM_PRIV_CBC168_3DES,
    "aes": _auth.USM_PRIV_CFB128_AES,
    "aes192": _auth.USM_PRIV_CFB192_AES,
    "aes256": _auth.USM_PRIV_CFB256_AES,
}


class Config(ProbeConfig):
    version: Literal["2c", "3"] | None = Field(None, description="SNMP version (default: 3 when --v3-user is set)")
    port: int = Field(161, ge=1, le=65535, description="UDP port when the target names none")
    community: Secret | None = Field(None, description="v2c community: visible to every local user on a command "
                                     "line; prefer community_env/community_file")
    community_env: str | None = Field(None, description="environment variable holding the v2c community")
    community_file: str | None = Field(None, description="file holding the v2c community")
    v3_user: str | None = Field(None, description="SNMPv3 user name")
    auth_protocol: AuthProtocol = Field("sha", description="SNMPv3 authentication protocol")
    auth_key: Secret | None = Field(None, description="SNMPv3 authentication passphrase (prefer auth_key_env/_file)")
    auth_key_env: str | None = Field(None, description="environment variable holding the auth passphrase")
    auth_key_file: str | None = Field(None, description="file holding the auth passphrase")
    priv_protocol: PrivProtocol = Field("aes", description="SNMPv3 privacy protocol (used when a priv key is set)")
    priv_key: Secret | None = Field(None, description="SNMPv3 privacy passphrase (prefer priv_key_env/_file)")
    priv_key_env: str | None = Field(None, description="environment variable holding the privacy passphrase")
    priv_key_file: str | None = Field(None, description="file holding the privacy passphrase")
    interfaces: tuple[str, ...] = Field(
        (),
        description="interface by ifName, ifDescr or ifIndex number",
        json_schema_extra={"cli_flag": "interface"},
    )
    retries: int = Field(1, ge=0, le=5, description="retransmissions per request, within the timeout")
    max_repetitions: int = Field(25, ge=1, le=100, description="GETBULK max-repetitions when resolving names")

    @model_validator(mode="after")
    def _check(self) -> Config:
        # ProbeConfig turned every *_env / *_file into the Secret field (one source each).
        v3 = self.effective_version == "3"
        if v3:
            if not self.v3_user:
                raise ValueError("SNMPv3 needs a user name (v3_user; `user` in the inventory)")
            if self.priv_key is not None and self.auth_key is None:
                raise ValueError("an SNMPv3 privacy key needs an authentication key (auth_key*)")
        elif self.community is None:
            raise ValueError("SNMP v2c needs community, community_env or community_file")
        return self

    @property
    def effective_version(self) -> str:
        return self.version or ("3" if self.v3_user else "2c")


# -- OIDs -------------------------------------------------------------------------------------

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"

# snmp_exporter (if_mib) name -> (column OID, counter width in bits, 0 for a gauge/enum)
IF_COLUMNS: dict[str, tuple[str, int]] = {
    "ifName": (IF_NAME, 0),
    "ifDescr": (IF_DESCR, 0),
    "ifOperStatus": ("1.3.6.1.2.1.2.2.1.8", 0),
    "ifAdminStatus": ("1.3.6.1.2.1.2.2.1.7", 0),
    "ifHCInOctets": ("1.3.6.1.2.1.31.1.1.1.6", 64),
    "ifHCOutOctets": ("1.3.6.1.2.1.31.1.1.1.10", 64),
    "ifHighSpeed": ("1.3.6.1.2.1.31.1.1.1.15", 0),
    "ifInErrors": ("1.3.6.1.2.1.2.2.1.14", 32),
    "ifOutErrors": ("1.3.6.1.2.1.2.2.1.20", 32),
    "ifInDiscards": ("1.3.6.1.2.1.2.2.1.13", 32),
    "ifOutDiscards": ("1.3.6.1.2.1.2.2.1.19", 32),
}
# Names exported as samples (ifName/ifDescr are labels); all must be in exporter.METRICS.
EXPORTED = ("sysUpTime", *(n for n in IF_COLUMNS if n not in ("ifName", "ifDescr")))
IF_UP = 1

# -- pure maths ---------------------------------------------------------------------------------

TICKS_WRAP = 2**32  # sysUpTime is TimeTicks (1/100 s), 32 bits: wraps after ~497 days


def counter_delta(prev: int, cur: int, bits: int) -> int:
    """Increase of an SNMP counter of ``bits`` width between two reads, across one wrap."""
    if cur >= prev:
        return cur - prev
    return cur + (1 << bits) - prev


def rebooted(prev_ticks: int, cur_ticks: int, elapsed_seconds: float) -> bool:
    """True when sysUpTime went backwards, unless it is the 32-bit TimeTicks wrap.

    A wrap is told apart from a reboot by where the previous value was: the uptime
    would have had to pass 2^32 ticks within the elapsed time (plus a minute of slack).
    """
    if cur_ticks >= prev_ticks:
        return False
    slack = (elapsed_seconds + 60.0) * 100.0
    wrapped = prev_ticks + slack >= TICKS_WRAP and cur_ticks <= slack
    return not wrapped


def rate(delta: float, seconds: float) -> float | None:
    """Per-second rate, or None when there is no time between the two reads."""
    if seconds <= 0:
        return None
    return delta / seconds


def utilisation(bits_per_second: float, high_speed_mbps: float) -> float | None:
    """Share (0-1, may exceed 1 on a wrong ifHighSpeed) of the interface speed used."""
    if high_speed_mbps <= 0:
        return None
    return bits_per_second / (high_speed_mbps * 1_000_000.0)


# -- credentials -------------------------------------------------------------------------------


class CredentialError(Exception):
    """A secret's source is missing; the message names the source, never the value."""


async def _secret(secret: Secret | None) -> str | None:
    """The value, read at the point of use (a file read off the event loop, once)."""
    if secret is None:
        return None
    try:
        await asyncio.to_thread(secret.load)
    except SecretUnavailable as e:
        raise CredentialError(str(e)) from None
    return secret.reveal()


async def auth_data(cfg: Config) -> tuple[CommunityData | UsmUserData, str]:
    """pysnmp's credentials object and the key of the shared engine that may use it."""
    if cfg.effective_version == "2c":
        community = await _secret(cfg.community)
        assert community is not None  # the Config validator requires a source
        # mpModel 1 = v2c. The community index names the entry in the shared engine.
        index = "c" + hashlib.sha256(community.encode()).hexdigest()[:16]
        return CommunityData(index, community, mpModel=1), "v2c"
    auth_key = await _secret(cfg.auth_key)
    priv_key = await _secret(cfg.priv_key)
    user = cfg.v3_user or ""
    digest = hashlib.sha256(
        "\0".join((user, auth_key or "", priv_key or "", cfg.auth_protocol, cfg.priv_protocol)).encode()
    ).hexdigest()[:16]
    data = UsmUserData(
        user,
        authKey=auth_key,
        privKey=priv_key,
        authProtocol=_AUTH[cfg.auth_protocol] if auth_key else None,
        privProtocol=_PRIV[cfg.priv_protocol] if priv_key else None,
    )
    return data, f"v3-{digest}"


# -- the shared engine ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Shared:
    engine: SnmpEngine
    users: int = 0
    idle_close: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _LoopEngines:
    engines: dict[str, _Shared] = field(default_factory=dict)
    closer: AsyncGenerator[None, None] | None = None

    def close(self, key: str) -> None:
        shared = self.engines.get(key)
        if shared is not None and shared.users == 0:
            del self.engines[key]
            shared.engine.close_dispatcher()

    def close_all(self) -> None:
        for key, shared in list(self.engines.items()):
            if shared.idle_close is not None:
                shared.idle_close.cancel()
            del self.engines[key]
            shared.engine.close_dispatcher()


# A new SnmpEngine costs ~0.3 s of CPU before its first answer (MIB view set-up): an idle
# engine is kept this long for the next probe instead of being rebuilt every poll.
LINGER_SECONDS = 120.0
_ENGINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopEngines] = weakref.WeakKeyDictionary()


async def _close_at_loop_shutdown(pool: _LoopEngines) -> AsyncGenerator[None, None]:
    # An async generator left suspended is closed by loop.shutdown_asyncgens() (asyncio.run,
    # uvloop, pytest-asyncio): the only loop-shutdown hook asyncio has. Closes the sockets.
    try:
        yield
    finally:
        pool.close_all()


@contextlib.asynccontextmanager
async def lease(key: str) -> AsyncIterator[SnmpEngine]:
    """The loop's shared SnmpEngine for ``key`` (one UDP socket).

    pysnmp keeps one USM entry per user name in an engine (and rewrites it when the keys
    differ), so every distinct v3 credential set gets its own engine; all v2c shares one.
    An engine is closed ``LINGER_SECONDS`` after its last probe, or when the loop shuts down.
    """
    loop = asyncio.get_running_loop()
    pool = _ENGINES.get(loop)
    if pool is None:
        pool = _ENGINES[loop] = _LoopEngines()
        pool.closer = _close_at_loop_shutdown(pool)
        await pool.closer.__anext__()
    shared = pool.engines.get(key)
    if shared is None:
        shared = pool.engines[key] = _Shared(SnmpEngine())
    if shared.idle_close is not None:
        shared.idle_close.cancel()
        shared.idle_close = None
    shared.users += 1
    try:
        yield shared.engine
    finally:
        shared.users -= 1
        if shared.users == 0 and pool.engines.get(key) is shared:
            shared.idle_close = loop.call_later(LINGER_SECONDS, pool.close, key)


# -- errors --------------------------------------------------------------------------------------

_AUTH_ERRORS = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.DecryptionError,
    errind.AuthenticationFailure,
    errind.AuthenticationError,
    errind.UnknownSecurityName,
    errind.UnsupportedSecurityLevel,
    errind.NotInTimeWindow,
)


class SnmpFailure(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _indication(ind: object, version: str, where: str) -> SnmpFailure:
    if isinstance(ind, errind.RequestTimedOut):
        hint = " (a wrong community looks the same: v2c agents do not answer it)" if version == "2c" else ""
        return SnmpFailure(Reason.SNMP_TIMEOUT, f"{where}: no SNMP response{hint}")
    if isinstance(ind, _AUTH_ERRORS):
        return SnmpFailure(Reason.SNMP_AUTH_ERROR, f"{where}: SNMPv3 authentication failed: {ind}")
    return SnmpFailure(Reason.SNMP_ERROR, f"{where}: {ind}")


@dataclass(slots=True)
class _Session:
    engine: SnmpEngine
    auth: CommunityData | UsmUserData
    host: str
    port: int
    version: str
    retries: int
    ctx: ProbeContext
    requests: int = 0

    async def target(self) -> UdpTransportTarget:
        budget = self.ctx.remaining() - 0.02
        if budget <= 0.02:
            raise SnmpFailure(Reason.SNMP_TIMEOUT, f"{self.where}: no time left for an SNMP request")
        # pysnmp's retransmission timer ticks every 0.1 s: whole ticks keep every retry in the budget
        per_try = max(0.1, int(budget / (self.retries + 1) * 10) / 10)
        return await UdpTransportTarget.create((self.host, self.port), timeout=per_try, retries=self.retries)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _late(self) -> SnmpFailure:
        hint = " (a wrong community looks the same: v2c agents do not answer it)" if self.version == "2c" else ""
        return SnmpFailure(Reason.SNMP_TIMEOUT, f"{self.where}: no SNMP response in time{hint}")

    async def get(self, oids: list[str], varbinds: list[ObjectType] | None = None) -> dict[str, Any]:
        """GET ``oids``; ``varbinds``: the same OIDs as ObjectTypes pysnmp has already resolved
        (it marks them clean and skips its MIB lookup, a third of the probe's CPU)."""
        self.requests += 1
        target = await self.target()
        try:
            # pysnmp's own retry timer ticks every 0.1 s; the deadline is ours to keep.
            async with asyncio.timeout(self.ctx.remaining()):
                ind, status, index, vbs = await get_cmd(
                    self.engine, self.auth, target, ContextData(),
                    *(varbinds or [ObjectType(ObjectIdentity(o)) for o in oids]), lookupMib=False,
                )
        except TimeoutError:
            raise self._late() from None
        if ind:
            raise _indication(ind, self.version, self.where)
        if status:
            bad = oids[int(index) - 1] if 0 < int(index) <= len(oids) else "?"
            reason = Reason.SNMP_NO_SUCH_OBJECT if str(status.prettyPrint()) == "noSuchName" else Reason.SNMP_ERROR
            raise SnmpFailure(reason, f"{self.where}: {status.prettyPrint()} at {bad}")
        return {str(vb[0]): vb[1] for vb in vbs}

    async def walk(self, column: str, max_repetitions: int) -> dict[int, str]:
        """One column of a table: {index: value as text}."""
        self.requests += 1
        out: dict[int, str] = {}
        prefix = column + "."
        target = await self.target()
        try:
            async with asyncio.timeout(self.ctx.remaining()):
                async for ind, status, _index, vbs in bulk_walk_cmd(
                    self.engine, self.auth, target, ContextData(), 0, max_repetitions,
                    ObjectType(ObjectIdentity(column)), lexicographicMode=False, lookupMib=False,
                ):
                    if ind:
                        raise _indication(ind, self.version, self.where)
                    if status:
                        raise SnmpFailure(
                            Reason.SNMP_ERROR, f"{self.where}: {status.prettyPrint()} walking {column}"
                        )
                    for oid, value in vbs:
                        name = str(oid)
                        if not name.startswith(prefix) or _missing(value):
                            continue
                        with contextlib.suppress(ValueError):
                            out[int(name[len(prefix):].split(".", 1)[0])] = _text(value)
        except TimeoutError:
            raise self._late() from None
        return out


def _missing(value: object) -> bool:
    return isinstance(value, NoSuchObject | NoSuchInstance | EndOfMibView)


def _text(value: Any) -> str:
    try:
        raw = value.asOctets() if hasattr(value, "asOctets") else str(value).encode()
    except Exception:  # pyasn1 refuses to render some values (e.g. a Null with a payload)
        raw = b""
    return bytes(raw).decode("utf-8", "replace").rstrip("\0")[:256]


# -- interface resolution ----------------------------------------------------------------------


async def resolve_interfaces(
    session: _Session, wanted: tuple[str, ...], cache: dict[str, int], max_repetitions: int
) -> dict[str, int]:
    """{configured name: ifIndex}; numbers are indexes, names are looked up in ifName, then ifDescr."""
    out: dict[str, int] = {}
    todo: list[str] = []
    for w in wanted:
        if w.isdigit():
            out[w] = int(w)
        elif w in cache:
            out[w] = cache[w]
        else:
            todo.append(w)
    for column in (IF_NAME, IF_DESCR):
        if not todo:
            break
        table = await session.walk(column, max_repetitions)
        by_value: dict[str, int] = {}
        for idx, value in sorted(table.items()):
            by_value.setdefault(value, idx)
        for w in list(todo):
            if w in by_value:
                out[w] = cache[w] = by_value[w]
                todo.remove(w)
    if todo:
        raise SnmpFailure(
            Reason.SNMP_NO_SUCH_OBJECT,
            f"{session.where}: no interface named {', '.join(map(repr, todo))} (ifName/ifDescr)",
        )
    return out


# -- the probe -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    index: int
    name: str
    descr: str
    values: dict[str, int] = field(default_factory=dict)

    def labels(self) -> tuple[tuple[str, str], ...]:
        return (("ifIndex", str(self.index)), ("ifName", self.name), ("ifDescr", self.descr))


def _integer(value: object) -> int | None:
    """An SNMP integer type's value; None for anything else (OctetString '12' included)."""
    return int(value) if isinstance(value, univ.Integer) else None


def read_values(values: Mapping[str, Any], order: list[int]) -> tuple[int, list[Row], list[str]]:
    """(sysUpTime ticks, the rows of the interfaces in ``order``, ifIndexes the agent lacks) from
    a GET's varbinds; raises ``SnmpFailure`` when sysUpTime or an ifOperStatus is missing or of
    a type no agent should send. Pure: what an odd agent answers cannot raise anything else."""
    uptime_v = values.get(SYS_UPTIME)
    if uptime_v is None or _missing(uptime_v):
        raise SnmpFailure(Reason.SNMP_NO_SUCH_OBJECT, "no sysUpTime.0")
    ticks = _integer(uptime_v)
    if ticks is None or ticks < 0:
        raise SnmpFailure(Reason.SNMP_ERROR, f"sysUpTime.0 is {_kind(uptime_v)}, not TimeTicks")
    rows: list[Row] = []
    absent: list[str] = []
    for idx in order:
        got: dict[str, int] = {}
        name = descr = ""
        for col, (oid, _) in IF_COLUMNS.items():
            v = values.get(f"{oid}.{idx}")
            if v is None or _missing(v):
                continue
            if col in ("ifName", "ifDescr"):
                name, descr = (_text(v), descr) if col == "ifName" else (name, _text(v))
                continue
            number = _integer(v)
            if number is None:
                if col == "ifOperStatus":
                    raise SnmpFailure(Reason.SNMP_ERROR, f"ifOperStatus.{idx} is {_kind(v)}, not an INTEGER")
                continue  # a counter of the wrong type: not exported, the rest still is
            got[col] = number
        if "ifOperStatus" not in got:
            absent.append(str(idx))
            continue
        rows.append(Row(idx, name, descr, got))
    return ticks, rows, absent


def _kind(value: object) -> str:
    return type(value).__name__


def derived(
    rows: list[Row], prev: Mapping[int, Mapping[str, int]], seconds: float
) -> list[Sample]:
    """Rates between the previous poll's counters and this one's (caller skips after a reboot)."""
    out: list[Sample] = []
    for row in rows:
        before = prev.get(row.index)
        if not before:
            continue
        labels = row.labels()

        def per_second(col: str, row: Row = row, before: Mapping[str, int] = before) -> float | None:
            if col not in row.values or col not in before:
                return None
            return rate(counter_delta(before[col], row.values[col], IF_COLUMNS[col][1]), seconds)

        speed = row.values.get("ifHighSpeed", 0)
        for direction, col in (("in", "ifHCInOctets"), ("out", "ifHCOutOctets")):
            octets = per_second(col)
            if octets is None:
                continue
            bps = octets * 8.0
            out.append(Sample(f"wardwatch_snmp_if_{direction}_bits_per_second", bps, labels))
            used = utilisation(bps, speed)
            if used is not None:
                out.append(Sample("wardwatch_snmp_if_utilisation_ratio", used, (*labels, ("direction", direction))))
        for direction, kind, col in (
            ("in", "errors", "ifInErrors"),
            ("out", "errors", "ifOutErrors"),
            ("in", "discards", "ifInDiscards"),
            ("out", "discards", "ifOutDiscards"),
        ):
            r = per_second(col)
            if r is not None:
                where = (*labels, ("direction", direction), ("kind", kind))
                out.append(Sample("wardwatch_snmp_if_errors_per_second", r, where))
    return out


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    try:
        host, port = split_host_port(target, cfg.port)
    except ValueError as e:
        return bad_target(target, e, start)
    try:
        resolved = await ctx.resolve(host, cfg.ip_protocol, cfg.ip_protocol_fallback)
    except ResolveError as e:
        return failure(e.reason, str(e), start)
    if ":" in resolved.address:
        return failure(Reason.SNMP_ERROR, f"{target}: SNMP over IPv6 is not supported yet", start)
    try:
        auth, engine_key = await auth_data(cfg)
    except CredentialError as e:
        return failure(Reason.SNMP_CREDENTIALS, str(e), start)
    memory = ctx.memory
    version = cfg.effective_version
    samples: list[Sample] = [*resolved.samples()]
    try:
        async with lease(engine_key) as engine:
            session = _Session(engine, auth, ctx.pin(resolved.address), port, version, cfg.retries, ctx)
            names: dict[str, int] = memory.setdefault("ifindex", {})
            indexes = await resolve_interfaces(session, cfg.interfaces, names, cfg.max_repetitions)
            oids = [SYS_UPTIME]
            order = sorted(set(indexes.values()))
            for idx in order:
                oids += [f"{oid}.{idx}" for oid, _ in IF_COLUMNS.values()]
            cached = memory.get("request")
            if cached is None or cached[0] != oids:
                cached = memory["request"] = (oids, [ObjectType(ObjectIdentity(o)) for o in oids])
            values = await session.get(oids, cached[1])
            at = time.monotonic()
    except SnmpFailure as e:
        return failure(e.reason, str(e), start, *samples)
    except OSError as e:
        reason = Reason.ADDRESS_DENIED if isinstance(e, AddressDenied) else Reason.SNMP_ERROR
        return failure(reason, f"{target}: {e.strerror or e}", start, *samples)

    try:
        ticks, rows, absent = read_values(values, order)
    except SnmpFailure as e:
        return failure(e.reason, f"{target}: {e}", start, *samples)
    samples.append(Sample("sysUpTime", float(ticks)))
    for row in rows:
        samples += [Sample(col, float(v), row.labels()) for col, v in row.values.items()]

    prev_at: float | None = memory.get("at")
    prev_ticks: int | None = memory.get("uptime")
    reboot = prev_at is not None and prev_ticks is not None and rebooted(prev_ticks, ticks, at - prev_at)
    if prev_at is not None:
        samples.append(Sample("wardwatch_snmp_reboot_detected", 1.0 if reboot else 0.0))
        if not reboot:
            samples += derived(rows, memory.get("counters", {}), at - prev_at)
    if reboot:
        names.clear()  # ifIndex may be renumbered after a reboot
    memory["at"], memory["uptime"] = at, ticks
    memory["counters"] = {r.index: dict(r.values) for r in rows}

    if absent:
        names.clear()
        wanted = [w for w, i in indexes.items() if str(i) in absent]
        return failure(
            Reason.SNMP_NO_SUCH_OBJECT,
            f"{target}: interface {', '.join(wanted)} (ifIndex {', '.join(absent)}) not found",
            start, *samples,
        )
    down = [r for r in rows if r.values.get("ifAdminStatus") == IF_UP and r.values.get("ifOperStatus") != IF_UP]
    if down:
        what = ", ".join(f"{r.name or r.descr or r.index} (ifOperStatus {r.values.get('ifOperStatus')})" for r in down)
        return failure(Reason.SNMP_INTERFACE_DOWN, f"{target}: admin up but not operating: {what}", start, *samples)
    return ProbeResult(True, None, "", time.monotonic() - start, tuple(samples))
