"""Peers that prove what was (never) sent to an address.

- ``recorder(host, port)``: records every TCP connection, UDP datagram and ICMP echo request
  that reaches ``host`` (TCP/UDP on ``port``); a TCP client gets ``response`` (an HTTP answer)
  and is closed. ``await rec.flush()`` sends a sentinel on each channel and waits until all
  three arrived: packets on loopback arrive in order, so everything sent before the call has
  been recorded by then, and the counts it returns can be compared before/after a probe.
- ``rebinding_dns(answers)``: an authoritative DNS responder whose A answer for one name walks
  through ``answers`` on every query, TTL 0 (DNS rebinding); REFUSED for any other name, so a
  resolver with it after a real server asks it only for that name.

Both run in the test's own event loop, on loopback only. ICMP needs CAP_NET_RAW (the tests
run as root in a network namespace of their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from probes.icmp import echo_request
from tests.peers.proc import free_port

SENTINEL = b"wardwatch-recorder-sentinel"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


@dataclass(frozen=True)
class Seen:
    tcp: int
    udp: int
    icmp: int


@dataclass
class Recorder:
    host: str
    port: int
    response: bytes = OK
    tcp: list[tuple[str, int]] = field(default_factory=list)  # peer of each accepted connection
    udp: list[bytes] = field(default_factory=list)
    icmp: list[bytes] = field(default_factory=list)  # echo request payloads
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _sentinel_tcp: set[int] = field(default_factory=set)  # indexes in ``tcp`` of our own sentinels
    _round: int = 0

    def seen(self) -> Seen:
        return Seen(
            len(self.tcp) - len(self._sentinel_tcp),
            sum(1 for d in self.udp if not d.startswith(SENTINEL)),
            sum(1 for d in self.icmp if not d.startswith(SENTINEL)),
        )

    def _note(self) -> None:
        self._changed.set()

    async def flush(self) -> Seen:
        """Everything sent to the host before this call, recorded (sentinels not counted)."""
        self._round += 1
        mark = SENTINEL + b"-%d-%d" % (self.port, self._round)
        first = len(self.tcp)
        _, writer = await asyncio.open_connection(self.host, self.port)
        local = writer.get_extra_info("sockname")
        peer = (str(local[0]), int(local[1]))
        writer.close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(mark, (self.host, self.port))
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
            raw.sendto(echo_request(False, 0x5E57, self._round & 0xFFFF, mark), (self.host, 0))
        async with asyncio.timeout(5):
            while not (peer in self.tcp[first:] and mark in self.udp and mark in self.icmp):
                self._changed.clear()
                await self._changed.wait()
        self._sentinel_tcp.add(first + self.tcp[first:].index(peer))
        return self.seen()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.rec.udp.append(data)
        self.rec._note()


@contextlib.asynccontextmanager
async def recorder(host: str, port: int | None = None, response: bytes = OK) -> AsyncIterator[Recorder]:
    port = port or free_common_port(host)
    rec = Recorder(host, port, response)
    loop = asyncio.get_running_loop()

    async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        rec.tcp.append((str(peer[0]), int(peer[1])))
        rec._note()
        try:
            writer.write(rec.response)
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(on_tcp, host, port)
    udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(rec), local_addr=(host, port))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    raw.setblocking(False)
    want = socket.inet_aton(host)

    def on_icmp() -> None:
        while True:
            try:
                packet = raw.recv(65535)
            except BlockingIOError:
                return
            ihl = (packet[0] & 0x0F) * 4
            if packet[16:20] == want and len(packet) >= ihl + 8 and packet[ihl] == 8:  # echo request to host
                rec.icmp.append(packet[ihl + 8:])
                rec._note()

    loop.add_reader(raw.fileno(), on_icmp)
    try:
        yield rec
    finally:
        loop.remove_reader(raw.fileno())
        raw.close()
        udp.close()
        server.close()
        await server.wait_closed()


def free_common_port(*hosts: str) -> int:
    """A port free for TCP and UDP on every one of ``hosts`` (one port for several peers)."""
    for _ in range(50):
        port = free_port(hosts[0])
        try:
            for host in hosts:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((host, port))
        except OSError:
            continue
        return port
    raise OSError(f"no port free for both TCP and UDP on {', '.join(hosts)}")


# -- DNS rebinding -------------------------------------------------------------------------------


@dataclass
class Rebinder:
    host: str
    port: int
    name: str
    answers: tuple[str, ...]
    queries: int = 0  # A queries for ``name`` answered

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class _Dns(asyncio.DatagramProtocol):
    def __init__(self, rb: Rebinder) -> None:
        self.rb = rb
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # a DatagramTransport (not by isinstance on every loop)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # not DNS: ignore, like a real server
            return
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        q = query.question[0] if query.question else None
        if q is None or q.name.to_text(omit_final_dot=True).lower() != self.rb.name:
            reply.set_rcode(dns.rcode.REFUSED)
        elif q.rdtype == dns.rdatatype.A:
            answer = self.rb.answers[self.rb.queries % len(self.rb.answers)]
            self.rb.queries += 1
            reply.answer.append(dns.rrset.from_text(q.name, 0, dns.rdataclass.IN, dns.rdatatype.A, answer))
        self.transport.sendto(reply.to_wire(), addr)


@contextlib.asynccontextmanager
async def rebinding_dns(name: str, answers: tuple[str, ...], host: str = "127.0.0.1") -> AsyncIterator[Rebinder]:
    rb = Rebinder(host, 0, name.lower().rstrip("."), answers)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Dns(rb), local_addr=(host, 0))
    rb.port = int(transport.get_extra_info("sockname")[1])
    try:
        yield rb
    finally:
        transport.close()
