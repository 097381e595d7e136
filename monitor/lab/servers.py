"""The simulated services: shared listeners on every 127.x address, one per protocol.

- HTTPS (portals, the shared procedures portal): the address a connection arrives on picks
  the unit, and with it the certificate (an SNI name of another lab host switches to that
  host's certificate). Contexts are built once per unit, on first use.
- HTTP (old domains): ``301`` to the unit's portal.
- SMTP with STARTTLS (mail hosts).
- TCP (video-conference rooms): accepted and held until the peer closes.
- SIP OPTIONS over UDP and TCP, STUN Binding over UDP (video-conference rooms; see voip.py).

Listeners bind ``bind`` (0.0.0.0 by default, so every 127.x address is served by one socket)
and drop at once any connection whose peer is not in 127.0.0.0/8. A service that is down
closes its connections right after accept (or, with nftables,
the kernel refuses them); a slow one answers after ``slow_delay``.
Hand-written asyncio Protocols keep the cost per connection low (no framework).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable
from pathlib import Path

from monitor.lab import voip
from monitor.lab.faults import FaultTable, Health
from monitor.lab.plan import PROCEDURES_ADDRESS, PROCEDURES_HOST, LabUnit, all_names, decode

log = logging.getLogger("wardwatch.lab")

IDLE_SECONDS = 30.0
HANDSHAKE_SECONDS = 10.0
_LINGER_RST = struct.pack("ii", 1, 0)
_REASONS = {200: "OK", 301: "Moved Permanently", 404: "Not Found", 503: "Service Unavailable"}
_ROLE_SERVICE = {
    "router": "link",
    "vc_gov": "vc_gov",
    "vc_party": "vc_party",
    "portal": "portal",
    "mail": "email",
    "old1": "portal",
    "old2": "portal",
    "old3": "portal",
}


class Behaviour:
    """What a unit's portal does beyond faults (the built-in imperfections)."""

    def __init__(self) -> None:
        self.portal_status: dict[int, int] = {}  # unit code -> status instead of 200
        self.portal_delay: dict[int, float] = {}  # unit code -> seconds before answering
        self.no_redirect: set[str] = set()  # old-domain hosts that answer 200 themselves


class LabServers:
    def __init__(
        self,
        units: list[LabUnit],
        tls_dir: Path,
        leaf_key: Path,
        faults: FaultTable,
        behaviour: Behaviour,
        *,
        slow_delay: float,
        https_port: int,
        bind: str = "0.0.0.0",
    ) -> None:
        self.units = units
        self.by_code = {u.code: u for u in units}
        self.tls_dir = tls_dir
        self.leaf_key = leaf_key
        self.faults = faults
        self.behaviour = behaviour
        self.slow_delay = slow_delay
        self.https_port = https_port
        self.bind = bind
        self._names: dict[str, tuple[int, str]] = {}
        for host, addr in all_names(units).items():
            d = decode(addr)
            if d is not None:
                self._names[host] = d
        self._contexts: dict[tuple[int, str], ssl.SSLContext] = {}
        self._servers: list[asyncio.Server] = []
        self._udp: list[voip.UdpService] = []
        self.transports: set[asyncio.Transport] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.ports: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, ports: dict[str, int]) -> dict[str, int]:
        """Listen on ``ports`` (kind -> port, 0 for any); returns the ports actually bound."""
        loop = asyncio.get_running_loop()
        factories: dict[str, Callable[[], asyncio.Protocol]] = {
            "https": lambda: _Http(self, tls=True),
            "http": lambda: _Http(self, tls=False),
            "smtp": lambda: _Smtp(self),
            "vc": lambda: _Room(self),
            "sip": lambda: _SipTcp(self),
        }
        try:
            for kind, port in ports.items():
                if kind == "stun":
                    self.ports[kind] = self._udp_service(voip.stun_answer, port)
                    continue
                if kind == "sip":  # UDP first, then TCP on the same port
                    for _ in range(20 if port == 0 else 1):
                        udp = voip.UdpService(voip.sip_answer, self.room_delay)
                        bound = udp.start(self.bind, port)
                        try:
                            server = await loop.create_server(
                                factories[kind], self.bind, bound, reuse_address=True, backlog=4096
                            )
                        except OSError:
                            udp.stop()
                            if port:
                                raise
                            continue
                        self._udp.append(udp)
                        break
                    else:
                        raise OSError("no port free for SIP over both UDP and TCP")
                else:
                    server = await loop.create_server(
                        factories[kind], self.bind, port, reuse_address=True, backlog=4096
                    )
                self._servers.append(server)
                self.ports[kind] = server.sockets[0].getsockname()[1]
        except OSError:
            await self.stop()
            raise
        return dict(self.ports)

    def _udp_service(self, answer: voip.Answer, port: int) -> int:
        udp = voip.UdpService(answer, self.room_delay)
        bound = udp.start(self.bind, port)
        self._udp.append(udp)
        return bound

    def room_delay(self, local: str) -> float | None:
        """How long a video-conference room at ``local`` waits before answering; None: it does not."""
        d = decode(local)
        if d is None or d[0] >= len(self.units) or d[1] not in ("vc_gov", "vc_party"):
            return None
        h = self.health(self.units[d[0]], d[1])
        if h is Health.DOWN:
            return None
        return self.slow_delay if h is Health.SLOW else 0.0

    async def stop(self) -> None:
        for u in self._udp:
            u.stop()
        self._udp.clear()
        for s in self._servers:
            s.close()
        for t in list(self.transports):
            t.abort()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for s in self._servers:
            await s.wait_closed()
        self._servers.clear()

    # -- helpers used by the protocols -----------------------------------------------------------
    def route(self, transport: asyncio.Transport) -> tuple[LabUnit | None, str] | None:
        """(unit, role) a connection is for; None (and the connection dropped) if not ours."""
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if not peer or not str(peer[0]).startswith("127.") or not local:
            transport.abort()
            return None
        addr = str(local[0])
        if addr == PROCEDURES_ADDRESS:
            return None, "procedures"
        d = decode(addr)
        if d is None or d[0] >= len(self.units):
            return None, "unknown"
        return self.units[d[0]], d[1]

    def health(self, unit: LabUnit | None, role: str) -> Health:
        if unit is None:
            return Health.UP
        return self.faults.health(unit.code, _ROLE_SERVICE[role], time.monotonic())

    def context(self, unit: LabUnit | None, role: str) -> ssl.SSLContext:
        """The server context of a unit's portal or mail host, or of the procedures portal."""
        key = (unit.code, role) if unit is not None else (0, "procedures")
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            name = "procedures" if unit is None else (f"{unit.code}-mail" if role == "mail" else str(unit.code))
            ctx.load_cert_chain(self.tls_dir / f"{name}.pem", self.leaf_key)
            ctx.sni_callback = self._sni
            self._contexts[key] = ctx
        return ctx

    def _sni(self, obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        if name is None:
            return
        if name == PROCEDURES_HOST:
            obj.context = self.context(None, "procedures")
            return
        found = self._names.get(name)
        if found is not None and found[1] in ("portal", "mail") and found[0] < len(self.units):
            obj.context = self.context(self.units[found[0]], found[1])

    def spawn(self, coro: asyncio.Future[None] | asyncio.Task[None] | object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def reset(transport: asyncio.Transport, rst: bool = False) -> None:
    """Close a connection to a service that is down, right after accept.

    A plain close (FIN) by default: closing with RST (``rst``) before a TLS handshake makes
    ``probes.tlsprobe.close`` raise CancelledError out of the http/tls probes (reported).
    With nftables the lab refuses such connections in the kernel instead (see netfilter).
    """
    if rst:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        transport.abort()
    else:
        transport.close()


class _Base(asyncio.Protocol):
    def __init__(self, lab: LabServers) -> None:
        self.lab = lab
        self.transport: asyncio.Transport | None = None
        self.raw: asyncio.Transport | None = None
        self.unit: LabUnit | None = None
        self.role = ""
        self.timers: list[asyncio.TimerHandle] = []
        # Between STARTTLS/accept and the end of the handshake: the TLS protocol may hand us the
        # first plaintext before start_tls() returns the new transport, so input waits.
        self.tls_pending = False

    def accept(self, transport: asyncio.BaseTransport) -> bool:
        assert isinstance(transport, asyncio.Transport)
        self.raw = self.transport = transport
        routed = self.lab.route(transport)
        if routed is None:
            return False
        self.unit, self.role = routed
        self.lab.transports.add(transport)
        if self.role != "procedures" and self.lab.health(self.unit, self.role) is Health.DOWN:
            reset(transport)
            return False
        self.later(IDLE_SECONDS, self.close)
        return True

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        self.timers.append(asyncio.get_running_loop().call_later(delay, fn))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        for t in self.timers:
            t.cancel()
        if self.raw is not None:
            self.lab.transports.discard(self.raw)

    def start_tls(self, ctx: ssl.SSLContext) -> None:
        # Nothing may reach this protocol before the TLS layer takes the transport over (the
        # ClientHello could otherwise arrive first); loop.start_tls() resumes reading.
        assert self.transport is not None
        self.transport.pause_reading()
        self.tls_pending = True
        self.lab.spawn(self._upgrade(ctx))

    async def _upgrade(self, ctx: ssl.SSLContext) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                self.transport, self, ctx, server_side=True, ssl_handshake_timeout=HANDSHAKE_SECONDS
            )
        except (OSError, ConnectionError, TimeoutError, RuntimeError):
            self.close()
            return
        if tls is None:
            return
        self.transport = tls
        self.tls_pending = False
        self.data_received(b"")


class _Http(_Base):
    def __init__(self, lab: LabServers, tls: bool) -> None:
        super().__init__(lab)
        self.tls = tls
        self.buf = b""
        self.answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.accept(transport) and self.tls:
            self.start_tls(self.lab.context(self.unit, self.role))

    def data_received(self, data: bytes) -> None:
        if self.answered:
            return
        self.buf += data
        if self.tls_pending:
            return
        if b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 16384:
                self.close()
            return
        self.answered = True
        head = self.buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        first = head.split("\r\n", 1)[0].split(" ")
        method = first[0] if first else ""
        path = first[1] if len(first) > 1 else "/"
        self.respond(method, path)

    def respond(self, method: str, path: str) -> None:
        unit, role, b = self.unit, self.role, self.lab.behaviour
        delay = 0.0
        headers: list[tuple[str, str]] = []
        if role == "procedures":
            code_text = path.strip("/").split("/", 1)[0]
            unit = self.lab.by_code.get(int(code_text)) if code_text.isdigit() else None
            if unit is None:
                status, body = 404, "no such unit\n"
            else:
                h = self.lab.faults.health(unit.code, "procedures", time.monotonic())
                if h is Health.DOWN:
                    assert self.transport is not None
                    reset(self.transport)
                    return
                delay = self.lab.slow_delay if h is Health.SLOW else 0.0
                status, body = 200, f"<h1>Dịch vụ công: {unit.name}</h1>\n"
        elif unit is None or role not in ("portal", "old1", "old2", "old3"):
            status, body = 404, "not a lab web host\n"
        else:
            if self.lab.health(unit, role) is Health.SLOW:
                delay = self.lab.slow_delay
            if role == "portal":
                delay = max(delay, b.portal_delay.get(unit.code, 0.0))
                status = b.portal_status.get(unit.code, 200)
                body = f"<h1>Cổng thông tin {unit.name}</h1>\n"
            else:
                old = unit.old_domains[int(role[3:]) - 1] if int(role[3:]) <= len(unit.old_domains) else None
                if old is not None and old.host in b.no_redirect:
                    status, body = 200, f"<h1>{old.name} (trang cũ)</h1>\n"
                else:
                    status, body = 301, "moved\n"
                    headers.append(("Location", f"https://{unit.portal_host}:{self.lab.https_port}/"))
        payload = body.encode()
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Content-Type: text/html; charset=utf-8",
                 f"Content-Length: {len(payload)}", "Connection: close", "Server: wardwatch-lab"]
        lines += [f"{k}: {v}" for k, v in headers]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + (payload if method != "HEAD" else b"")
        if delay > 0:
            self.later(delay, lambda: self.send(data))
        else:
            self.send(data)

    def send(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)
            t.close()


class _Smtp(_Base):
    def __init__(self, lab: LabServers) -> None:
        super().__init__(lab)
        self.buf = b""
        self.secure = False
        self.host = "mail.lab.test"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.accept(transport):
            return
        if self.unit is not None:
            self.host = self.unit.mail_host
        greeting = f"220 {self.host} ESMTP wardwatch-lab\r\n".encode()
        if self.lab.health(self.unit, self.role) is Health.SLOW:
            self.later(self.lab.slow_delay, lambda: self.write(greeting))
        else:
            self.write(greeting)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.tls_pending:
            return
        if len(self.buf) > 8192:
            self.close()
            return
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            verb = line.decode("latin-1").strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                ext = "" if self.secure or self.unit is None else "250-STARTTLS\r\n"
                self.write(f"250-{self.host}\r\n{ext}250 8BITMIME\r\n".encode())
            elif verb == "STARTTLS" and not self.secure and self.unit is not None:
                self.write(b"220 2.0.0 Ready to start TLS\r\n")
                self.buf = b""
                self.secure = True
                self.start_tls(self.lab.context(self.unit, "mail"))
                return
            elif verb == "QUIT":
                self.write(b"221 2.0.0 Bye\r\n")
                if self.transport is not None:
                    self.transport.close()
                return
            elif verb in ("NOOP", "RSET"):
                self.write(b"250 2.0.0 OK\r\n")
            else:
                self.write(b"502 5.5.2 Command not implemented\r\n")


class _Room(_Base):
    """A video-conference room: accepts and holds the call-signalling connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.accept(transport)

    def data_received(self, data: bytes) -> None:
        pass


class _SipTcp(_Base):
    """SIP over TCP on a video-conference room: answers each request on the connection."""

    def __init__(self, lab: LabServers) -> None:
        super().__init__(lab)
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.accept(transport) and self.role not in ("vc_gov", "vc_party"):
            self.close()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > 65536:
            self.close()
            return
        while b"\r\n\r\n" in self.buf:  # requests to rooms carry no body (Content-Length: 0)
            request, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.buf = self.buf.lstrip(b"\r\n")
            assert self.transport is not None
            peer = self.transport.get_extra_info("peername")
            reply = voip.sip_answer(request + b"\r\n\r\n", (str(peer[0]), int(peer[1])))
            if reply is None:
                self.close()
                return
            delay = self.lab.slow_delay if self.lab.health(self.unit, self.role) is Health.SLOW else 0.0
            if delay > 0:
                self.later(delay, functools.partial(self.write, reply))
            else:
                self.write(reply)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
