"""ICMP echo ("ping") probe, IPv4 and IPv6.

Own socket loop instead of icmplib's ``ping`` (field notes): icmplib matches replies
on (identifier, sequence) only and opens one raw socket per ping, each of which
sees every ICMP packet, so a dead host could be reported alive and CPU grew with
concurrency. Here every event loop shares ONE socket per (address family, mode)
through a small demultiplexer, ``_Pinger``:

* each echo request gets a sequence number unique on that socket; the pending
  entry remembers destination, identifier and payload;
* a reply counts only if its **source address**, identifier, sequence and payload
  all match that entry; anything else is ignored, so a reply from another host
  can never make a dead one look alive;
* ICMP errors (destination unreachable, time exceeded) are matched on the
  destination, identifier and sequence of the request quoted inside them.

The socket is opened when the first ping on a loop starts and closed when the
last one ends (a lease count), so nothing outlives its loop and no file
descriptor leaks, while concurrent probes still share a single socket.

Modes: ``raw`` (SOCK_RAW, needs root or CAP_NET_RAW) and ``dgram`` (the kernel's
unprivileged ICMP sockets, allowed only when ``net.ipv4.ping_group_range``
includes our group; the kernel assigns the identifier). ``privileged=None``
tries raw first and falls back to dgram. In dgram mode ICMP errors are not
delivered (no IP_RECVERR handling), so an unreachable host shows as a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import os
import socket
import struct
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from probes.base import (
    AddressDenied,
    ProbeConfig,
    ProbeContext,
    ProbeResult,
    Reason,
    ResolveError,
    Sample,
    failure,
    os_error_reason,
)


class Config(ProbeConfig):
    count: int = Field(3, ge=1, le=100)
    interval_seconds: float = Field(0.2, ge=0.0, le=10.0)
    payload_size: int = Field(56, ge=0, le=1400)
    # Fail with packet_loss when more than this share of requests got no reply.
    # 1.0 (default) keeps blackbox semantics: any reply is a success.
    max_loss_ratio: float = Field(1.0, ge=0.0, le=1.0)
    # None: raw socket if permitted, else the unprivileged ICMP socket.
    privileged: bool | None = None


Mode = Literal["auto", "raw", "dgram"]

_V4_ECHO_REQUEST, _V4_ECHO_REPLY, _V4_UNREACH, _V4_TIME_EXCEEDED = 8, 0, 3, 11
_V6_ECHO_REQUEST, _V6_ECHO_REPLY, _V6_UNREACH, _V6_TIME_EXCEEDED = 128, 129, 1, 3
_ICMP_FILTER = 1  # SOL_RAW option, Linux <linux/icmp.h>
_ICMP6_FILTER = 1  # IPPROTO_ICMPV6 option, <netinet/icmp6.h>
_SOL_RAW = 255
_IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
_IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_ANC = socket.CMSG_SPACE(4) * 4
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_RCVBUF = 4 << 20


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(v6: bool, ident: int, seq: int, payload: bytes) -> bytes:
    kind = _V6_ECHO_REQUEST if v6 else _V4_ECHO_REQUEST
    head = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:  # the kernel fills the ICMPv6 checksum (it covers a pseudo-header)
        return head + payload
    return struct.pack("!BBHHH", kind, 0, checksum(head + payload), ident, seq) + payload


@dataclass(slots=True, frozen=True)
class Parsed:
    """One received ICMP message reduced to what matching needs."""

    kind: Literal["reply", "error"]
    ident: int
    seq: int
    peer: str  # reply: its source; error: the destination quoted in it
    payload: bytes = b""
    detail: str = ""


def parse(v6: bool, data: bytes, ip_header: bool) -> Parsed | None:
    """Parse an ICMP(v6) message; ``ip_header``: IPv4 raw sockets see the IP header."""
    if ip_header:
        if len(data) < 20:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < 8:
        return None
    kind, code, _, ident, seq = struct.unpack("!BBHHH", data[:8])
    if kind == (_V6_ECHO_REPLY if v6 else _V4_ECHO_REPLY):
        return Parsed("reply", ident, seq, "", data[8:])
    unreach, exceeded = (_V6_UNREACH, _V6_TIME_EXCEEDED) if v6 else (_V4_UNREACH, _V4_TIME_EXCEEDED)
    if kind not in (unreach, exceeded):
        return None
    quoted = data[8:]
    if v6:
        if len(quoted) < 48 or quoted[6] != 58:  # next header must be ICMPv6
            return None
        dst = str(ipaddress.IPv6Address(quoted[24:40]))
        inner = quoted[40:48]
        want = _V6_ECHO_REQUEST
    else:
        if len(quoted) < 20 or quoted[9] != 1:
            return None
        ihl = (quoted[0] & 0x0F) * 4
        if len(quoted) < ihl + 8:
            return None
        dst = str(ipaddress.IPv4Address(quoted[16:20]))
        inner = quoted[ihl : ihl + 8]
        want = _V4_ECHO_REQUEST
    ikind, _, _, iident, iseq = struct.unpack("!BBHHH", inner)
    if ikind != want:
        return None
    what = "destination unreachable" if kind == unreach else "time exceeded"
    return Parsed("error", iident, iseq, dst, detail=f"{what} (code {code})")


@dataclass(slots=True)
class Reply:
    rtt: float | None = None  # None: an ICMP error answered instead
    hop_limit: int | None = None
    error: str = ""


@dataclass(slots=True)
class _Pending:
    dst: str
    ident: int | None  # None in dgram mode: the kernel owns the identifier
    payload: bytes
    sent: float
    future: asyncio.Future[Reply]


@dataclass(slots=True)
class _Pinger:
    """One ICMP socket for one loop and family; routes replies to waiting requests."""

    loop: asyncio.AbstractEventLoop
    family: int
    mode: Mode
    sock: socket.socket | None = None
    raw: bool = False
    users: int = 0
    ident: int = 0
    seq: int = 0
    pending: dict[int, _Pending] = field(default_factory=dict)

    @property
    def v6(self) -> bool:
        return self.family == socket.AF_INET6

    def open(self) -> None:
        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        sock: socket.socket | None = None
        if self.mode in ("auto", "raw"):
            try:
                sock = socket.socket(self.family, socket.SOCK_RAW, proto)
            except PermissionError:
                if self.mode == "raw":
                    raise
        if sock is None:
            sock = socket.socket(self.family, socket.SOCK_DGRAM, proto)
        self.raw = sock.type == socket.SOCK_RAW
        sock.setblocking(False)
        # One socket serves every concurrent ping: give bursts of replies room.
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        if self.v6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVHOPLIMIT, 1)
            if self.raw:  # pass only echo reply and errors (bit set = blocked)
                words = [0xFFFFFFFF] * 8
                for t in (_V6_ECHO_REPLY, _V6_UNREACH, _V6_TIME_EXCEEDED):
                    words[t >> 5] &= ~(1 << (t & 31))
                sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("8I", *words))
        elif self.raw:
            mask = 0xFFFFFFFF & ~((1 << _V4_ECHO_REPLY) | (1 << _V4_UNREACH) | (1 << _V4_TIME_EXCEEDED))
            sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("I", mask))
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVTTL, 1)
        self.sock = sock
        self.ident = int.from_bytes(os.urandom(2), "big")
        self.seq = int.from_bytes(os.urandom(2), "big")
        self.loop.add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        for p in self.pending.values():
            if not p.future.done():
                p.future.cancel()
        self.pending.clear()

    def send(self, dst: str, payload: bytes) -> asyncio.Future[Reply]:
        """Send one echo request; the future resolves on its reply (never on another's)."""
        assert self.sock is not None
        if len(self.pending) >= 0xFFFF:
            raise OSError("too many ICMP requests in flight")
        self.seq = (self.seq + 1) & 0xFFFF
        while self.seq in self.pending:
            self.seq = (self.seq + 1) & 0xFFFF
        seq = self.seq
        packet = echo_request(self.v6, self.ident, seq, payload)
        future: asyncio.Future[Reply] = self.loop.create_future()
        entry = _Pending(_norm(dst), self.ident if self.raw else None, payload, time.monotonic(), future)
        self.pending[seq] = entry
        try:
            self.sock.sendto(packet, (dst, 0))
        except BaseException:
            del self.pending[seq]
            raise
        entry.sent = time.monotonic()
        future.add_done_callback(lambda _f: self._forget(seq, entry))
        return future

    def _forget(self, seq: int, entry: _Pending) -> None:
        if self.pending.get(seq) is entry:
            del self.pending[seq]

    def _readable(self) -> None:
        while self.sock is not None:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, _ANC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. a queued ICMP error on a dgram socket: nothing to route
                return
            now = time.monotonic()
            msg = parse(self.v6, data, ip_header=self.raw and not self.v6)
            if msg is None:
                continue
            entry = self.pending.get(msg.seq)
            if entry is None or entry.future.done():
                continue
            if entry.ident is not None and entry.ident != msg.ident:
                continue
            if msg.kind == "reply":
                if _norm(addr[0]) != entry.dst or msg.payload != entry.payload:
                    continue  # another host's reply, or not our packet: never counts
                entry.future.set_result(Reply(now - entry.sent, _hop_limit(self, data, anc)))
            elif msg.peer == entry.dst:
                entry.future.set_result(Reply(None, None, f"{msg.detail} from {addr[0]}"))


def _hop_limit(p: _Pinger, data: bytes, anc: list[tuple[int, int, bytes]]) -> int | None:
    if p.raw and not p.v6:
        return data[8]
    for level, kind, value in anc:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, _IPV6_HOPLIMIT)):
            return int.from_bytes(value[:4], "little") if len(value) >= 4 else value[0]
    return None


def _norm(addr: str) -> str:
    return str(ipaddress.ip_address(addr.split("%", 1)[0]))


_PINGERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, Mode], _Pinger]] = (
    weakref.WeakKeyDictionary()
)


@contextlib.contextmanager
def lease(family: int, mode: Mode) -> Iterator[_Pinger]:
    """The loop's shared pinger for ``family``; opened on first use, closed after the last."""
    loop = asyncio.get_running_loop()
    per_loop = _PINGERS.setdefault(loop, {})
    pinger = per_loop.get((family, mode))
    if pinger is None:
        pinger = per_loop[(family, mode)] = _Pinger(loop, family, mode)
    if pinger.users == 0:
        pinger.open()
    pinger.users += 1
    try:
        yield pinger
    finally:
        pinger.users -= 1
        if pinger.users == 0:
            pinger.close()


# -- which socket this process may open ---------------------------------------------------------

PING_GROUP_RANGE = "/proc/sys/net/ipv4/ping_group_range"


@dataclass(frozen=True, slots=True)
class Access:
    """What ICMP socket this process may open: ``raw``, ``dgram`` or None, and why, in words."""

    mode: Literal["raw", "dgram"] | None
    detail: str


def ping_group_range(path: str = PING_GROUP_RANGE) -> tuple[int, int] | None:
    """net.ipv4.ping_group_range of this network namespace ("1 0", the default, allows no group)."""
    try:
        low, high = (int(x) for x in Path(path).read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return None
    return low, high


def permission_hint() -> str:
    """What to do when neither socket may be opened: for the probe's message and the start-up log."""
    gid = os.getegid()
    rng = ping_group_range()
    now = f"now '{rng[0]} {rng[1]}'" if rng else "unknown here"
    return (f"grant CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW, as in contrib/wardwatch.service; or "
            f"setcap cap_net_raw+ep on the interpreter) or let group {gid} open unprivileged ICMP sockets: "
            f"sysctl -w net.ipv4.ping_group_range='{gid} {gid}' ({now})")


def detect(family: int = socket.AF_INET) -> Access:
    """Try both sockets now (the same order as the probes' ``privileged: null``). Blocking but
    instant; called once at start to say which mode the icmp and link probes will use."""
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    errors = []
    for kind, mode in ((socket.SOCK_RAW, "raw"), (socket.SOCK_DGRAM, "dgram")):
        try:
            socket.socket(family, kind, proto).close()
        except OSError as e:
            errors.append(f"{mode}: {e.strerror or e}")
            continue
        if mode == "raw":
            return Access("raw", "raw ICMP sockets (root or CAP_NET_RAW)")
        rng = ping_group_range()
        span = f" {rng[0]}-{rng[1]}" if rng else ""
        return Access("dgram", f"unprivileged ICMP datagram sockets (group {os.getegid()} is in "
                               f"net.ipv4.ping_group_range{span}; no CAP_NET_RAW)")
    return Access(None, f"no ICMP socket may be opened ({'; '.join(errors)}): icmp and link probes will fail; "
                        + permission_hint())


def socket_error(e: OSError, mode: Mode) -> str:
    """The message of a probe that could not open its socket; says what to do when it is permissions."""
    if isinstance(e, AddressDenied):
        return f"echo request: {e.strerror or e}"
    if isinstance(e, PermissionError):
        which = {"auto": "a raw or an unprivileged", "raw": "a raw (privileged: true)",
                 "dgram": "an unprivileged (privileged: false)"}[mode]
        return f"no permission to open {which} ICMP socket ({e.strerror or e}): {permission_hint()}"
    return f"ICMP socket: {e.strerror or e}"


def rtt_stats(rtts: list[float]) -> dict[str, float]:
    """min/avg/max and population standard deviation (ping's mdev, i.e. jitter)."""
    avg = sum(rtts) / len(rtts)
    return {
        "min": min(rtts),
        "avg": avg,
        "max": max(rtts),
        "stddev": math.sqrt(sum((r - avg) ** 2 for r in rtts) / len(rtts)),
    }


def _phases(resolve: float, setup: float, rtt: float) -> list[Sample]:
    return [
        Sample("probe_icmp_duration_seconds", v, (("phase", k),))
        for k, v in (("resolve", resolve), ("setup", setup), ("rtt", rtt))
    ]


@dataclass(slots=True)
class Round:
    """What one round of echoes gave: a future per request sent (in order), the send error
    that cut the round short if any, and the time spent opening the socket."""

    futures: list[asyncio.Future[Reply]]
    send_error: OSError | None
    setup_seconds: float

    def replies(self) -> list[Reply | None]:
        return [f.result() if f.done() and not f.cancelled() else None for f in self.futures]


async def echo_round(
    family: int, mode: Mode, addr: str, payload: bytes, *, count: int, spacing: float, wait: float,
    ctx: ProbeContext,
) -> Round:
    """Send ``count`` echoes ``spacing`` apart (stopping early rather than overrun the
    deadline), then wait up to ``wait`` for the replies. OSError opening the socket raises;
    shared by the icmp and link probes so both pace and match replies the same way."""
    futures: list[asyncio.Future[Reply]] = []
    send_error: OSError | None = None
    setup_start = time.monotonic()
    ctx.pin(addr)  # connect-time check of the address the echoes go to (icmp and link alike)
    with lease(family, mode) as pinger:
        setup_s = time.monotonic() - setup_start
        try:
            for i in range(count):
                if i and spacing:
                    if ctx.remaining() <= spacing:
                        break
                    await asyncio.sleep(spacing)  # pacing, not waiting for an event
                try:
                    futures.append(pinger.send(addr, payload))
                except OSError as e:
                    send_error = e
                    break
            if futures:
                await asyncio.wait(futures, timeout=min(ctx.remaining(), wait))
        finally:
            for f in futures:
                f.cancel()
    return Round(futures, send_error, setup_s)


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    try:
        resolved = await ctx.resolve(target, cfg.ip_protocol, cfg.ip_protocol_fallback)
    except ResolveError as e:
        return failure(e.reason, str(e), start, *_phases(time.monotonic() - start, 0.0, 0.0))
    resolve_s = time.monotonic() - start
    addr = resolved.address
    mode: Mode = "auto" if cfg.privileged is None else ("raw" if cfg.privileged else "dgram")
    payload = os.urandom(cfg.payload_size)
    setup_start = time.monotonic()
    try:
        rnd = await echo_round(
            resolved.family, mode, addr, payload,
            count=cfg.count, spacing=cfg.interval_seconds, wait=ctx.remaining(), ctx=ctx,
        )
    except OSError as e:
        return failure(
            os_error_reason(e), socket_error(e, mode), start, *resolved.samples(),
            *_phases(resolve_s, time.monotonic() - setup_start, 0.0),
        )

    setup_s, send_error = rnd.setup_seconds, rnd.send_error
    replies = [r for r in rnd.replies() if r is not None]
    answered = [r for r in replies if r.rtt is not None]
    errors = [r.error for r in replies if r.rtt is None]
    rtts = [r.rtt for r in answered if r.rtt is not None]
    sent, received = len(rnd.futures), len(rtts)
    loss = 1.0 - received / sent if sent else 1.0
    stats = rtt_stats(rtts) if rtts else {}
    samples: list[Sample] = [*resolved.samples(), *_phases(resolve_s, setup_s, stats.get("avg", 0.0))]
    samples += [
        Sample("wardwatch_icmp_packets_sent", float(sent)),
        Sample("wardwatch_icmp_packets_received", float(received)),
        Sample("wardwatch_icmp_loss_ratio", loss),
    ]
    samples += [Sample("wardwatch_icmp_rtt_seconds", v, (("stat", k),)) for k, v in stats.items()]
    hops = [r.hop_limit for r in answered if r.hop_limit is not None]
    if hops:
        samples.append(Sample("probe_icmp_reply_hop_limit", float(hops[-1])))

    if sent == 0 and send_error is not None:
        return failure(os_error_reason(send_error), f"cannot send to {addr}: {send_error.strerror}", start,
                       *samples)
    if received == 0:
        if errors:
            return failure(Reason.UNREACHABLE, f"{addr}: {errors[0]}", start, *samples)
        return failure(Reason.TIMEOUT, f"no echo reply from {addr} ({sent} sent)", start, *samples)
    if loss > cfg.max_loss_ratio:
        return failure(
            Reason.PACKET_LOSS,
            f"{addr}: {loss:.0%} packet loss ({received}/{sent} replies), limit {cfg.max_loss_ratio:.0%}",
            start, *samples,
        )
    return ProbeResult(True, None, "", time.monotonic() - start, tuple(samples))
