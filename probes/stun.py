"""STUN probe: an RFC 5389 Binding request over UDP to ``host[:port]`` (default 3478).

Success is a Binding success response with our transaction id; the mapped address it
returns (XOR-MAPPED-ADDRESS, else the RFC 3489 MAPPED-ADDRESS) is exported as info. An
error response (ERROR-CODE) fails with ``stun_error``. The request is retransmitted per
RFC 5389 7.2.1 (RTO 500 ms, doubling) within the probe's deadline; answers with another
transaction id are ignored (a late answer to nothing of ours).

``encode_binding_request`` / ``decode`` are pure: any bytes decode to a ``StunMessage`` or a
``StunError``, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import struct
import time
from dataclasses import dataclass

from pydantic import Field

from probes.base import (
    ProbeConfig,
    ProbeContext,
    ProbeResult,
    Reason,
    ResolveError,
    Sample,
    bad_target,
    failure,
    os_error_reason,
    split_host_port,
)

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
ATTR_MAPPED_ADDRESS = 0x0001
ATTR_ERROR_CODE = 0x0009
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_XOR_MAPPED_ADDRESS_OLD = 0x8020  # pre-RFC drafts, still sent by some servers
ATTR_SOFTWARE = 0x8022
_HEADER = struct.Struct("!HHI12s")


class Config(ProbeConfig):
    rto_seconds: float = Field(0.5, gt=0, description="initial retransmission timeout (RFC 5389 RTO)")
    max_transmissions: int = Field(7, ge=1, description="RFC 5389 Rc: requests sent at most")


@dataclass(frozen=True, slots=True)
class StunMessage:
    msg_type: int
    transaction_id: bytes
    attributes: tuple[tuple[int, bytes], ...]

    def attribute(self, kind: int) -> bytes | None:
        return next((v for k, v in self.attributes if k == kind), None)

    def mapped_address(self) -> tuple[str, int] | None:
        """XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS, as (address, port); None if absent or bad."""
        for kind, xor in ((ATTR_XOR_MAPPED_ADDRESS, True), (ATTR_XOR_MAPPED_ADDRESS_OLD, True),
                          (ATTR_MAPPED_ADDRESS, False)):
            value = self.attribute(kind)
            if value is not None:
                got = _address(value, self.transaction_id if xor else None)
                if got is not None:
                    return got
        return None

    def error(self) -> tuple[int, str] | None:
        """ERROR-CODE as (code, reason phrase)."""
        value = self.attribute(ATTR_ERROR_CODE)
        if value is None or len(value) < 4:
            return None
        code = (value[2] & 0x07) * 100 + value[3]
        return code, value[4:].decode("utf-8", "replace")

    def software(self) -> str:
        value = self.attribute(ATTR_SOFTWARE)
        return value.decode("utf-8", "replace") if value else ""


@dataclass(frozen=True, slots=True)
class StunError:
    message: str


def new_transaction_id() -> bytes:
    return os.urandom(12)


def encode_binding_request(transaction_id: bytes) -> bytes:
    if len(transaction_id) != 12:
        raise ValueError("a STUN transaction id is 12 bytes")
    return _HEADER.pack(BINDING_REQUEST, 0, MAGIC_COOKIE, transaction_id)


def encode_message(msg_type: int, transaction_id: bytes, attributes: list[tuple[int, bytes]]) -> bytes:
    """Any STUN message (used by tests and the lab's responder); attributes padded to 4 bytes."""
    body = b""
    for kind, value in attributes:
        body += struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)
    return _HEADER.pack(msg_type, len(body), MAGIC_COOKIE, transaction_id) + body


def xor_address(address: str, port: int, transaction_id: bytes) -> bytes:
    """The value of an XOR-MAPPED-ADDRESS attribute for (address, port)."""
    ip = ipaddress.ip_address(address)
    family = 0x01 if ip.version == 4 else 0x02
    key = struct.pack("!I", MAGIC_COOKIE) + (transaction_id if ip.version == 6 else b"")
    raw = bytes(a ^ b for a, b in zip(ip.packed, key, strict=False))
    return struct.pack("!BBH", 0, family, port ^ (MAGIC_COOKIE >> 16)) + raw


def _address(value: bytes, transaction_id: bytes | None) -> tuple[str, int] | None:
    if len(value) < 8:
        return None
    family, port = value[1], struct.unpack("!H", value[2:4])[0]
    size = {0x01: 4, 0x02: 16}.get(family)
    if size is None or len(value) < 4 + size:
        return None
    raw = value[4:4 + size]
    if transaction_id is not None:
        port ^= MAGIC_COOKIE >> 16
        key = struct.pack("!I", MAGIC_COOKIE) + transaction_id
        raw = bytes(a ^ b for a, b in zip(raw, key, strict=False))
    return str(ipaddress.ip_address(raw)), port


def decode(data: bytes) -> StunMessage | StunError:
    """Parse one STUN message (RFC 5389 6, 15). Never raises."""
    if len(data) < _HEADER.size:
        return StunError(f"{len(data)} bytes, shorter than a STUN header")
    msg_type, length, cookie, tid = _HEADER.unpack_from(data)
    if msg_type & 0xC000:
        return StunError("the first two bits are not zero")
    if cookie != MAGIC_COOKIE:
        return StunError(f"magic cookie 0x{cookie:08x}, not 0x{MAGIC_COOKIE:08x}")
    if length % 4 or len(data) != _HEADER.size + length:
        return StunError(f"length {length} does not match the {len(data) - _HEADER.size} bytes after the header")
    attrs: list[tuple[int, bytes]] = []
    pos = _HEADER.size
    while pos < len(data):
        if pos + 4 > len(data):
            return StunError("truncated attribute header")
        kind, size = struct.unpack_from("!HH", data, pos)
        end = pos + 4 + size
        if end > len(data):
            return StunError(f"attribute 0x{kind:04x} runs past the end of the message")
        attrs.append((kind, data[pos + 4:end]))
        pos = end + (-size % 4)
    return StunMessage(msg_type, tid, tuple(attrs))


# A peer flooding answers to other transactions must not keep the probe parsing (a core) until
# its deadline, nor queue datagrams without bound: like SIP's MAX_RESPONSES.
MAX_FOREIGN = 100
_QUEUE_LIMIT = 64  # datagrams waiting to be read; beyond it they are dropped, as a full socket would


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue(_QUEUE_LIMIT)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(exc)


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    try:
        host, port = split_host_port(target, 3478)
    except ValueError as e:
        return bad_target(target, e, start)
    samples: list[Sample] = []
    sent = 0
    try:
        async with asyncio.timeout(ctx.remaining()):
            try:
                resolved = await ctx.resolve(host, cfg.ip_protocol, cfg.ip_protocol_fallback)
            except ResolveError as e:
                return failure(e.reason, str(e), start)
            samples.extend(resolved.samples())
            loop = asyncio.get_running_loop()
            transport, proto = await loop.create_datagram_endpoint(
                _Datagrams, remote_addr=(ctx.pin(resolved.address), port), family=resolved.family
            )
            try:
                tid = new_transaction_id()
                request = encode_binding_request(tid)
                rto = cfg.rto_seconds
                sent_at = time.monotonic()
                transport.sendto(request)
                sent, foreign = 1, 0
                while True:
                    # After the last request, wait 16 x RTO (RFC 5389 Rm) or until the deadline.
                    wait = rto if sent < cfg.max_transmissions else 16 * cfg.rto_seconds
                    deadline = sent_at + wait
                    try:
                        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                            item = await proto.queue.get()
                    except TimeoutError:
                        if sent >= cfg.max_transmissions:
                            raise
                        sent_at = time.monotonic()
                        transport.sendto(request)
                        sent += 1
                        rto *= 2
                        continue
                    if isinstance(item, OSError):
                        reason = Reason.REFUSED if isinstance(item, ConnectionRefusedError) else Reason.UNREACHABLE
                        return failure(reason, f"{resolved.address}:{port}: {item}", start, *samples)
                    if isinstance(item, Exception):
                        raise item
                    msg = decode(item)
                    if isinstance(msg, StunError):
                        samples.append(Sample("wardwatch_stun_retransmissions", float(sent - 1)))
                        return failure(Reason.STUN_PROTOCOL,
                                       f"unparseable reply from {resolved.address}:{port}: {msg.message}",
                                       start, *samples)
                    if msg.transaction_id != tid:
                        foreign += 1
                        if foreign >= MAX_FOREIGN:
                            samples.append(Sample("wardwatch_stun_retransmissions", float(sent - 1)))
                            return failure(Reason.STUN_PROTOCOL,
                                           f"{foreign} messages from {resolved.address}:{port} for other "
                                           "transactions and none for ours", start, *samples)
                        continue
                    rtt = time.monotonic() - sent_at
                    break
            finally:
                transport.abort()
    except TimeoutError:
        samples.append(Sample("wardwatch_stun_retransmissions", float(max(0, sent - 1))))
        if sent:
            return failure(Reason.STUN_NO_RESPONSE,
                           f"no answer to {sent} Binding requests within {ctx.timeout:g}s", start, *samples)
        return failure(Reason.TIMEOUT, f"no answer within {ctx.timeout:g}s", start, *samples)
    except OSError as e:  # opening the socket (address refused by the guard, no route)
        return failure(os_error_reason(e), f"{host}:{port}: {e}", start, *samples)
    samples.append(Sample("wardwatch_stun_retransmissions", float(sent - 1)))
    samples.append(Sample("wardwatch_stun_rtt_seconds", rtt))
    if msg.msg_type == BINDING_ERROR:
        code, phrase = msg.error() or (0, "no ERROR-CODE attribute")
        samples.append(Sample("wardwatch_stun_error_code", float(code)))
        return failure(Reason.STUN_ERROR, f"Binding error response {code} {phrase}".strip(), start, *samples)
    if msg.msg_type != BINDING_SUCCESS:
        return failure(Reason.STUN_PROTOCOL, f"message type 0x{msg.msg_type:04x} is not a Binding response",
                       start, *samples)
    mapped = msg.mapped_address()
    if mapped is None:
        return failure(Reason.STUN_PROTOCOL, "Binding success response without a (valid) mapped address",
                       start, *samples)
    samples.append(Sample("wardwatch_stun_mapped_address_info", 1.0,
                          (("address", mapped[0]), ("port", str(mapped[1])))))
    software = f" ({msg.software()})" if msg.software() else ""
    return ProbeResult(True, None, f"mapped address {mapped[0]}:{mapped[1]}{software}",
                       time.monotonic() - start, tuple(samples))
