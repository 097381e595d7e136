"""SIP probe: an OPTIONS ping (RFC 3261) over UDP, TCP or TLS.

The target is a SIP URI: ``sip:host[:port][;transport=udp|tcp|tls]`` (``sips:`` means TLS,
default port 5061; otherwise 5060 and UDP). The request carries what a proxy expects of a
real client: a Via with an RFC 3261 branch (``z9hG4bK…``) and ``rport``, a From tag, To,
Call-ID, CSeq, Max-Forwards 70, Contact and Content-Length 0.

Success is a final response (>= 200) whose code is in ``valid_status_codes`` (200 by
default; add 401/407/403/404 to count "alive but refusing" as up). Provisional 1xx are
skipped. Over UDP the request is retransmitted like a non-INVITE client transaction (Timer
E: T1, 2·T1, 4·T1 … capped at T2; T2 after a provisional), within the probe's deadline.

``parse_message`` is pure and total: any bytes give a ``SipResponse`` or a ``SipError``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from probes import tlsprobe
from probes.base import (
    ProbeConfig,
    ProbeContext,
    ProbeResult,
    Reason,
    ResolveError,
    Sample,
    failure,
    os_error_reason,
    split_host_port,
    timeout_reason,
)
from probes.certs import now_utc

Transport = Literal["udp", "tcp", "tls"]

MAX_MESSAGE = 64 * 1024
# Responses read for one OPTIONS before giving up on a final one: retransmissions and proxies
# give a handful of 100 Trying; a peer that sends them for ever would otherwise keep the probe
# parsing (a CPU core) until its deadline.
MAX_RESPONSES = 100
_INFO_LIMIT = 120  # characters kept of Server / User-Agent values

# RFC 3261 7.3.3 (and later RFCs) compact header forms -> full names, lower case.
COMPACT: dict[str, str] = {
    "v": "via", "i": "call-id", "f": "from", "t": "to", "m": "contact", "l": "content-length",
    "c": "content-type", "e": "content-encoding", "k": "supported", "s": "subject",
    "o": "event", "u": "allow-events", "r": "refer-to", "b": "referred-by", "x": "session-expires",
    "a": "accept-contact", "j": "reject-contact", "d": "request-disposition", "y": "identity",
    "n": "identity-info",
}


class Config(ProbeConfig):
    valid_status_codes: tuple[int, ...] = Field((200,), description="final codes that count as up")
    from_user: str = "wardwatch"
    from_domain: str | None = None  # default: the probe's own address
    user_agent: str = "wardwatch"
    t1_seconds: float = Field(0.5, gt=0, description="RFC 3261 T1 (UDP retransmission start)")
    t2_seconds: float = Field(4.0, gt=0, description="RFC 3261 T2 (UDP retransmission cap)")
    server_name: str | None = None  # TLS: SNI and the name checked; default: the URI host
    ca_file: str | None = None
    insecure_skip_verify: bool = False


# -- the target -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SipUri:
    scheme: str  # sip | sips
    user: str
    host: str
    port: int
    transport: Transport

    @property
    def request_uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{self.scheme}:{user}{host}:{self.port}"


def parse_uri(text: str) -> SipUri:
    """``sip:[user@]host[:port][;transport=x][;…]`` -> SipUri; ValueError when malformed.

    A bare ``host[:port]`` is taken as ``sip:``.
    """
    value = text.strip()
    scheme = "sip"
    low = value.lower()
    if low.startswith(("sip:", "sips:")):
        scheme, _, value = value.partition(":")
        scheme = scheme.lower()
    value = value.split("?", 1)[0]
    hostpart, *params = value.split(";")
    user, at, hostport = hostpart.rpartition("@")
    if not at:
        user, hostport = "", hostpart
    transport: str | None = None
    for p in params:
        k, _, v = p.partition("=")
        if k.strip().lower() == "transport":
            transport = v.strip().lower()
    if scheme == "sips":
        if transport not in (None, "tcp", "tls"):
            raise ValueError(f"sips: URI cannot use transport={transport}")
        transport = "tls"
    transport = transport or "udp"
    if transport not in ("udp", "tcp", "tls"):
        raise ValueError(f"unsupported transport {transport!r} (udp, tcp or tls)")
    default = 5061 if transport == "tls" else 5060
    try:
        host, port = split_host_port(hostport, default)
    except ValueError:
        raise ValueError(f"bad port in SIP URI {text!r}") from None
    if not host or not 0 < port < 65536 or any(c in host for c in " /@"):
        raise ValueError(f"not a SIP URI: {text!r}")
    return SipUri(scheme, user, host, port, transport)  # type: ignore[arg-type]


# -- messages ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    data: bytes
    branch: str
    call_id: str
    cseq: int


def build_options(uri: SipUri, local: tuple[str, int], cfg: Config, cseq: int = 1) -> Request:
    """The OPTIONS request for ``uri`` sent from ``local`` (address, port)."""
    branch = "z9hG4bK" + secrets.token_hex(10)
    tag = secrets.token_hex(6)
    addr, lport = local
    host = f"[{addr}]" if ":" in addr else addr
    call_id = f"{secrets.token_hex(12)}@{host}"
    via_transport = uri.transport.upper()
    domain = cfg.from_domain or host
    contact_scheme = "sips" if uri.scheme == "sips" else "sip"
    transport_param = "" if uri.transport == "udp" else f";transport={uri.transport}"
    lines = [
        f"OPTIONS {uri.request_uri} SIP/2.0",
        f"Via: SIP/2.0/{via_transport} {host}:{lport};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{cfg.from_user}@{domain}>;tag={tag}",
        f"To: <{uri.request_uri}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} OPTIONS",
        f"Contact: <{contact_scheme}:{cfg.from_user}@{host}:{lport}{transport_param}>",
        "Accept: application/sdp",
        f"User-Agent: {cfg.user_agent}",
        "Content-Length: 0",
    ]
    return Request(("\r\n".join(lines) + "\r\n\r\n").encode(), branch, call_id, cseq)


@dataclass(frozen=True, slots=True)
class SipResponse:
    status: int
    phrase: str
    headers: tuple[tuple[str, str], ...]  # (lower-case full name, value), in order
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """First value of a header (full or compact name, any case)."""
        want = COMPACT.get(name.lower(), name.lower())
        return next((v for k, v in self.headers if k == want), None)

    def via_branch(self) -> str | None:
        via = self.header("via")
        if via is None:
            return None
        first = via.split(",", 1)[0]
        for param in first.split(";")[1:]:
            k, _, v = param.partition("=")
            if k.strip().lower() == "branch":
                return v.strip()
        return None

    def cseq(self) -> tuple[int, str] | None:
        raw = self.header("cseq")
        parts = raw.split() if raw else []
        number = _number(parts[0]) if len(parts) == 2 else None
        if number is None:
            return None
        return number, parts[1].upper()

    def matches(self, req: Request) -> bool:
        """Is this the answer to ``req`` (same top Via branch, Call-ID and CSeq)?"""
        return (
            self.via_branch() == req.branch
            and (self.header("call-id") or "").strip() == req.call_id
            and self.cseq() == (req.cseq, "OPTIONS")
        )


@dataclass(frozen=True, slots=True)
class SipError:
    message: str


def _number(text: str, max_digits: int = 10) -> int | None:
    """ASCII digits only (str.isdigit() also takes '²' and '١', which int() refuses or reads)."""
    text = text.strip()
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """(head, rest) at the first blank line, or None when it has not arrived yet."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = data.find(sep)
        if i >= 0:
            return data[:i], data[i + len(sep):]
    return None


def parse_message(data: bytes) -> SipResponse | SipError:
    """Parse one SIP response (a whole datagram, or head + body from a stream). Never raises."""
    data = data.lstrip(b"\r\n")  # keep-alive CRLFs before a message are allowed
    if not data:
        return SipError("empty message")
    parts = split_head(data)
    head, body = parts if parts is not None else (data, b"")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return SipError("not UTF-8 text")
    lines = text.replace("\r\n", "\n").split("\n")
    first = lines[0]
    if not first.startswith("SIP/2.0 "):
        if first.endswith(" SIP/2.0"):
            return SipError(f"got a request, not a response: {first[:60]!r}")
        return SipError(f"not a SIP/2.0 status line: {first[:60]!r}")
    _, code, *phrase = first.split(" ", 2)
    status = _number(code, 3)
    if status is None or len(code) != 3 or not 100 <= status <= 699:
        return SipError(f"bad status code in {first[:60]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":  # folded continuation of the previous header
            if not headers:
                return SipError("continuation line before any header")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name or any(c in name for c in " \t"):
            return SipError(f"malformed header line {line[:60]!r}")
        headers.append((COMPACT.get(name, name), value.strip()))
    if parts is None:
        return SipError("message ends before the blank line after the headers")
    resp = SipResponse(status, phrase[0] if phrase else "", tuple(headers), body)
    for required in ("via", "call-id", "cseq"):
        if resp.header(required) is None:
            return SipError(f"response without {required.title()} header")
    length = resp.header("content-length")
    if length is not None:
        size = _number(length)
        if size is None:
            return SipError(f"bad Content-Length {length[:20]!r}")
        resp = SipResponse(resp.status, resp.phrase, resp.headers, body[:size])
    return resp


def response_samples(resp: SipResponse) -> list[Sample]:
    server = (resp.header("server") or "")[:_INFO_LIMIT]
    agent = (resp.header("user-agent") or "")[:_INFO_LIMIT]
    out = [Sample("wardwatch_sip_status_code", float(resp.status))]
    if server or agent:
        out.append(Sample("wardwatch_sip_server_info", 1.0, (("server", server), ("user_agent", agent))))
    return out


def retransmit_intervals(t1: float, t2: float, budget: float) -> list[float]:
    """Timer E: the waits before each retransmission (T1, 2T1, 4T1 … capped at T2) in ``budget``."""
    out: list[float] = []
    wait, total = t1, 0.0
    while total + wait < budget and len(out) < 64:
        out.append(wait)
        total += wait
        wait = min(wait * 2, t2)
    return out


# -- transports ------------------------------------------------------------------------------------


class _Fail(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait(exc)


def _count(responses: int) -> int:
    """One more response read; too many without a final one is a protocol error."""
    if responses >= MAX_RESPONSES:
        raise _Fail(Reason.SIP_PROTOCOL, f"{MAX_RESPONSES} responses without a final one")
    return responses + 1


@dataclass(slots=True)
class _Outcome:
    response: SipResponse
    seconds: float  # from the first transmission to the final response
    retransmissions: int


async def _over_udp(uri: SipUri, address: str, family: int, *, cfg: Config, ctx: ProbeContext,
                    sent: list[int]) -> _Outcome:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Datagrams, remote_addr=(ctx.pin(address), uri.port), family=family
    )
    try:
        local = transport.get_extra_info("sockname")
        req = build_options(uri, (str(local[0]), int(local[1])), cfg)
        start = time.monotonic()
        transport.sendto(req.data)
        waits = retransmit_intervals(cfg.t1_seconds, cfg.t2_seconds, ctx.remaining())
        next_send = start + (waits.pop(0) if waits else ctx.remaining())
        provisional = False
        responses = 0
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_send - time.monotonic())):
                    item = await proto.queue.get()
            except TimeoutError:
                if ctx.remaining() <= 0:
                    raise
                transport.sendto(req.data)
                sent[0] += 1
                wait = cfg.t2_seconds if provisional else (waits.pop(0) if waits else cfg.t2_seconds)
                next_send = time.monotonic() + wait
                continue
            if isinstance(item, Exception):
                raise item
            responses = _count(responses)
            msg = parse_message(item)
            if isinstance(msg, SipError):
                raise _Fail(Reason.SIP_PROTOCOL, f"unparseable reply from {address}:{uri.port}: {msg.message}")
            if not msg.matches(req):
                continue  # a stray answer to an earlier request
            if msg.status < 200:
                provisional = True
                continue
            return _Outcome(msg, time.monotonic() - start, sent[0])
    finally:
        transport.abort()


class _StreamMessages:
    """SIP responses framed off a byte stream (RFC 3261 18.3: by Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buf = b""

    async def next(self) -> SipResponse | SipError:
        while (parts := split_head(self.buf.lstrip(b"\r\n"))) is None:
            if len(self.buf) > MAX_MESSAGE:
                return SipError("headers longer than 64 KiB")
            chunk = await self.reader.read(4096)
            if not chunk:
                if self.buf.strip():
                    return SipError("connection closed in the middle of a response")
                raise _Fail(Reason.SIP_NO_RESPONSE, "server closed the connection without answering")
            self.buf += chunk
        head, rest = parts
        first = parse_message(head + b"\r\n\r\n")
        if isinstance(first, SipError):
            return first
        length = _number(first.header("content-length") or "0") or 0  # parse_message checked it
        if length > MAX_MESSAGE:
            return SipError(f"Content-Length {length} too large")
        if len(rest) < length:
            rest += await self.reader.readexactly(length - len(rest))
        self.buf = rest[length:]  # a next message may already be here (100 Trying + 200 OK)
        return SipResponse(first.status, first.phrase, first.headers, rest[:length])


async def _over_stream(uri: SipUri, streams: tlsprobe.Streams, cfg: Config) -> _Outcome:
    reader, writer = streams
    local = writer.get_extra_info("sockname")
    req = build_options(uri, (str(local[0]), int(local[1])), cfg)
    start = time.monotonic()
    writer.write(req.data)
    await writer.drain()
    messages = _StreamMessages(reader)
    responses = 0
    while True:
        msg = await messages.next()
        responses = _count(responses)
        if isinstance(msg, SipError):
            raise _Fail(Reason.SIP_PROTOCOL, f"unparseable reply: {msg.message}")
        if not msg.matches(req) or msg.status < 200:
            continue
        return _Outcome(msg, time.monotonic() - start, 0)


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    try:
        uri = parse_uri(target)
    except ValueError as e:
        return failure(Reason.INTERNAL_ERROR, str(e), start)
    samples: list[Sample] = []
    sent = [0]
    phase = "resolve"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(ctx.remaining()):
            try:
                resolved = await ctx.resolve(uri.host, cfg.ip_protocol, cfg.ip_protocol_fallback)
            except ResolveError as e:
                return failure(e.reason, str(e), start)
            samples.extend(resolved.samples())
            if uri.transport == "udp":
                phase = "request"
                outcome = await _over_udp(uri, resolved.address, resolved.family, cfg=cfg, ctx=ctx, sent=sent)
            else:

                async def opener() -> tlsprobe.Streams:
                    return await ctx.open_connection(resolved.address, uri.port, limit=MAX_MESSAGE)

                phase = "connect"
                try:
                    streams = await opener()
                except OSError as e:
                    return failure(os_error_reason(e), f"connect to {resolved.address}:{uri.port}: {e}",
                                   start, *samples)
                writer = streams[1]
                if uri.transport == "tls":
                    phase = "TLS handshake"
                    name = cfg.server_name or uri.host
                    hs = await tlsprobe.upgrade(streams, name, ctx.tls.get(cfg.ca_file, True),
                                                ctx.tls.get(cfg.ca_file, False), opener)
                    samples.extend(hs.samples())
                    samples.append(Sample("wardwatch_tls_chain_verified", 1.0 if hs.verified else 0.0))
                    if hs.chain:
                        days = min(c.days_left(now_utc()) for c in hs.chain)
                        samples.append(Sample("wardwatch_tls_cert_days_left", days))
                    if hs.streams is None:
                        writer = None
                        assert hs.reason is not None
                        if not (cfg.insecure_skip_verify and hs.reason in tlsprobe.VERIFY_REASONS):
                            return failure(hs.reason, hs.message, start, *samples)
                        streams = await opener()
                        writer = streams[1]
                        hs = await tlsprobe.upgrade(streams, name, ctx.tls.get(cfg.ca_file, False),
                                                    ctx.tls.get(cfg.ca_file, False), opener)
                        if hs.streams is None:
                            writer = None
                            assert hs.reason is not None
                            return failure(hs.reason, hs.message, start, *samples)
                    streams = hs.streams
                    writer = streams[1]
                phase = "request"
                outcome = await _over_stream(uri, streams, cfg)
    except _Fail as f:
        samples.append(Sample("wardwatch_sip_retransmissions", float(sent[0])))
        return failure(f.reason, str(f), start, *samples)
    except TimeoutError:
        if phase == "request":
            samples.append(Sample("wardwatch_sip_retransmissions", float(sent[0])))
            extra = f" ({sent[0]} retransmissions)" if uri.transport == "udp" else ""
            return failure(Reason.SIP_NO_RESPONSE,
                           f"no final response to OPTIONS within {ctx.timeout:g}s{extra}", start, *samples)
        return failure(timeout_reason(phase), f"no answer during {phase} within {ctx.timeout:g}s", start, *samples)
    except (OSError, asyncio.IncompleteReadError) as e:
        reason = os_error_reason(e) if isinstance(e, OSError) else Reason.SIP_PROTOCOL
        return failure(reason, f"{phase}: {e}", start, *samples)
    finally:
        if writer is not None:
            await tlsprobe.close(writer)
    resp = outcome.response
    samples += response_samples(resp)
    samples.append(Sample("wardwatch_sip_response_seconds", outcome.seconds))
    samples.append(Sample("wardwatch_sip_retransmissions", float(outcome.retransmissions)))
    text = f"{resp.status} {resp.phrase}".strip()
    if resp.status not in cfg.valid_status_codes:
        accepted = ", ".join(map(str, cfg.valid_status_codes))
        return failure(Reason.SIP_STATUS, f"OPTIONS answered {text} (accepted: {accepted})", start, *samples)
    return ProbeResult(True, None, f"OPTIONS answered {text} over {uri.transport}",
                       time.monotonic() - start, tuple(samples))
