"""Hostile endpoints on loopback: servers that never finish, for probes to give up on.

    python -m tests.peers.hostile --count 1000 --out endpoints.json [--seconds 900]

One endpoint per address (127.66.<i // 250>.<i % 250 + 1>: nothing else uses 127.66/16), so a
per-host concurrency limit never groups them; its kind is ``KINDS[i % len(KINDS)]``. Every
listener gets a free port; the list (kind, address, port) is written to ``--out`` once all of
them listen, and ``checks()`` turns it into inventory checks. What each kind does, and what a
probe must answer (``Kind.reasons``), is in ``KINDS``.

Bounded: at most ``--count`` endpoints (5,000), ``--max-connections`` connections at once
(more are closed at accept), each connection closed after ``--connection-seconds``, the whole
process gone after ``--seconds``. Endless streams are written with back-pressure (``drain``),
so they go only as fast as the client reads. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_COUNT = 5000
PREFIX = "127.66"
PER_BLOCK = 250
BLOCK = 64 * 1024


@dataclass(frozen=True)
class Options:
    drip: float = 2.0  # seconds between the bytes of a slow answer
    connection_seconds: float = 60.0
    max_connections: int = 4000


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Options], Awaitable[None]]


async def _request_head(r: asyncio.StreamReader) -> None:
    with contextlib.suppress(asyncio.LimitOverrunError, asyncio.IncompleteReadError):
        await r.readuntil(b"\r\n\r\n")


async def _drip(w: asyncio.StreamWriter, data: bytes, o: Options) -> None:
    """``data`` one byte every ``o.drip`` seconds, then nothing: an answer that never ends."""
    for i in range(len(data)):
        w.write(data[i : i + 1])
        await w.drain()
        await asyncio.sleep(o.drip)  # the slowness is the point
    await asyncio.Event().wait()


async def _flood(w: asyncio.StreamWriter, block: bytes) -> None:
    while True:
        w.write(block)
        await w.drain()


def _repeat(unit: bytes) -> bytes:
    return unit * max(1, BLOCK // len(unit))


async def slow_headers(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    await _request_head(r)
    await _drip(w, b"HTTP/1.1 200 OK\r\nX-Slow-Loris: " + b"z" * 1000, o)


async def header_flood(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    await _request_head(r)
    w.write(b"HTTP/1.1 200 OK\r\n")
    await _flood(w, _repeat(b"X-Flood: yes\r\n"))


async def endless_body(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    await _request_head(r)
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    await _flood(w, b"y" * BLOCK)


async def endless_chunked(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    await _request_head(r)
    w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    await _flood(w, b"%x\r\n" % BLOCK + b"y" * BLOCK + b"\r\n")


async def huge_length(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    """Announces a petabyte, delivers a trickle."""
    await _request_head(r)
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\n")
    await _drip(w, b"y" * 100, o)


async def short_length_stall(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    """A Content-Length under any body limit, then a stall one kilobyte in."""
    await _request_head(r)
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 500000\r\n\r\n" + b"y" * 1024)
    await _drip(w, b"y" * 100, o)


_GZIP_BOMB: list[bytes] = []


def gzip_bomb_body() -> bytes:
    """64 MiB of zeros, gzip'd (~64 KiB): small on the wire, huge once decoded."""
    if not _GZIP_BOMB:
        c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        zeros = bytes(1 << 20)
        _GZIP_BOMB.append(b"".join(c.compress(zeros) for _ in range(64)) + c.flush())
    return _GZIP_BOMB[0]


async def gzip_bomb(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    await _request_head(r)
    body = gzip_bomb_body()
    w.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    await w.drain()
    await asyncio.Event().wait()


async def tls_stall(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    """Takes the ClientHello and never answers it."""
    await r.read(BLOCK)
    await asyncio.Event().wait()


async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    while await r.read(BLOCK):
        pass
    await asyncio.Event().wait()


async def line_flood(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    """Talks for ever, never the line expected."""
    await _flood(w, _repeat(b"hello from a hostile peer, not what you expect\r\n"))


async def smtp_endless_banner(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    """A multi-line 220 greeting whose last line never comes."""
    await _flood(w, _repeat(b"220-hostile.invalid ESMTP greeting that goes on and on and on\r\n"))


async def smtp_slow_banner(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    await _drip(w, b"220 hostile.invalid ESMTP " + b"z" * 1000, o)


async def sip_drip(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    await _request_head(r)
    await _drip(w, b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n" + b"X-Slow: " + b"z" * 1000, o)


async def sip_flood(r: asyncio.StreamReader, w: asyncio.StreamWriter, o: Options) -> None:
    """'100 Trying' to the request, for ever: never the final answer."""
    try:
        head = await r.readuntil(b"\r\n\r\n")
    except (asyncio.LimitOverrunError, asyncio.IncompleteReadError):
        return
    keep = (b"via:", b"from:", b"to:", b"call-id:", b"cseq:")
    echoed = b"".join(line + b"\r\n" for line in head.split(b"\r\n") if line.lower().startswith(keep))
    await _flood(w, _repeat(b"SIP/2.0 100 Trying\r\n" + echoed + b"Content-Length: 0\r\n\r\n"))


@dataclass(frozen=True)
class Kind:
    name: str
    handler: Handler | None  # None: listen without ever accepting
    probe: str
    service: str
    target: str  # {a}: address, {p}: port
    options: tuple[tuple[str, Any], ...]
    reasons: frozenset[str]  # what the probe must answer


def _k(name: str, handler: Handler | None, probe: str, service: str, target: str, *, reasons: str,
       **options: Any) -> Kind:
    return Kind(name, handler, probe, service, target, tuple(options.items()), frozenset(reasons.split()))


_EXPECT_220 = [{"expect": "^220 "}]
KINDS: tuple[Kind, ...] = (
    _k("slow_headers", slow_headers, "http", "portal", "http://{a}:{p}/", reasons="timeout"),
    _k("header_flood", header_flood, "http", "portal", "http://{a}:{p}/", reasons="http_protocol_error"),
    _k("endless_body", endless_body, "http", "portal", "http://{a}:{p}/", reasons="body_too_large"),
    _k("endless_chunked", endless_chunked, "http", "portal", "http://{a}:{p}/", reasons="body_too_large"),
    _k("huge_length", huge_length, "http", "portal", "http://{a}:{p}/", reasons="body_too_large"),
    _k("short_length_stall", short_length_stall, "http", "portal", "http://{a}:{p}/", reasons="timeout"),
    _k("gzip_bomb", gzip_bomb, "http", "portal", "http://{a}:{p}/", reasons="body_too_large",
       headers={"Accept-Encoding": "gzip"}),
    _k("tls_stall", tls_stall, "http", "portal", "https://{a}:{p}/", reasons="timeout"),
    _k("silent", silent, "tcp", "vc_gov", "{a}:{p}", reasons="timeout", query_response=_EXPECT_220),
    _k("no_accept", None, "tcp", "vc_gov", "{a}:{p}", reasons="timeout", query_response=_EXPECT_220),
    _k("line_flood", line_flood, "tcp", "vc_gov", "{a}:{p}", reasons="expect_mismatch",
       query_response=_EXPECT_220),
    _k("smtp_endless_banner", smtp_endless_banner, "tcp", "email", "{a}:{p}", reasons="starttls_unsupported",
       starttls="smtp"),
    _k("smtp_slow_banner", smtp_slow_banner, "tcp", "email", "{a}:{p}", reasons="timeout", starttls="smtp"),
    _k("sip_drip", sip_drip, "sip", "vc_party", "sip:{a}:{p};transport=tcp", reasons="sip_no_response"),
    _k("sip_flood", sip_flood, "sip", "vc_party", "sip:{a}:{p};transport=tcp", reasons="sip_protocol_error"),
)
BY_NAME = {k.name: k for k in KINDS}


@dataclass(frozen=True)
class Endpoint:
    kind: str
    address: str
    port: int

    @property
    def target(self) -> str:
        return BY_NAME[self.kind].target.format(a=self.address, p=self.port)


def address(i: int) -> str:
    return f"{PREFIX}.{i // PER_BLOCK}.{i % PER_BLOCK + 1}"


def plan(count: int, kinds: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(kind, address) of endpoint 0..count-1: the kinds in turn (all of them by default)."""
    names = kinds or tuple(BY_NAME)
    return [(names[i % len(names)], address(i)) for i in range(count)]


def check(e: Endpoint) -> dict[str, Any]:
    """The inventory check (a unit's ``checks:`` item) that probes this endpoint."""
    k = BY_NAME[e.kind]
    return {"service": k.service, "probe": k.probe, "target": e.target, **dict(k.options)}


def load(path: Path) -> list[Endpoint]:
    return [Endpoint(**e) for e in json.loads(path.read_text())]


class Server:
    def __init__(self, o: Options) -> None:
        self.o = o
        self.connections = 0
        self.accepted = 0
        self.refused = 0
        self.servers: list[asyncio.Server] = []
        self.raw: list[socket.socket] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def _client(self, handler: Handler) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            if self.connections >= self.o.max_connections:
                self.refused += 1
                w.transport.abort()
                return
            self.connections += 1
            self.accepted += 1
            task = asyncio.current_task()
            assert task is not None
            self.tasks.add(task)  # type: ignore[arg-type]
            try:
                async with asyncio.timeout(self.o.connection_seconds):
                    await handler(r, w, self.o)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                pass  # the client left, or the connection's time is up
            except asyncio.CancelledError:
                pass  # closing down (asyncio's stream callback would log a cancelled task)
            finally:
                self.connections -= 1
                self.tasks.discard(task)  # type: ignore[arg-type]
                w.transport.abort()

        return on_client

    async def listen(self, kind: str, addr: str) -> Endpoint:
        k = BY_NAME[kind]
        if k.handler is None:
            # Backlog 0 and never accepted: once the queue holds one connection, SYNs are dropped
            # and a connect hangs.
            s = socket.socket()
            s.bind((addr, 0))
            s.listen(0)
            self.raw.append(s)
            return Endpoint(kind, addr, s.getsockname()[1])
        srv = await asyncio.start_server(self._client(k.handler), addr, 0, limit=BLOCK, backlog=64)
        self.servers.append(srv)
        return Endpoint(kind, addr, srv.sockets[0].getsockname()[1])

    async def close(self) -> None:
        for srv in self.servers:
            srv.close()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for s in self.raw:
            s.close()


@contextlib.asynccontextmanager
async def serving(kind: str, o: Options | None = None, addr: str = "127.0.0.1") -> AsyncIterator[Endpoint]:
    """One endpoint of ``kind`` in the caller's event loop (the probe tests' peer)."""
    server = Server(o or Options())
    try:
        yield await server.listen(kind, addr)
    finally:
        await server.close()


async def serve(count: int, out: Path, o: Options, seconds: float, kinds: tuple[str, ...] = ()) -> None:
    server = Server(o)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gzip_bomb_body()
    try:
        endpoints = [await server.listen(kind, addr) for kind, addr in plan(count, kinds)]
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps([vars(e) for e in endpoints]))
        os.replace(tmp, out)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await stop.wait()
    finally:
        await server.close()
    print(json.dumps({"accepted": server.accepted, "refused": server.refused}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, required=True, help=f"endpoints (1..{MAX_COUNT})")
    p.add_argument("--out", type=Path, required=True, help="where the endpoint list (JSON) is written")
    p.add_argument("--kinds", default="", help=f"comma-separated subset of {','.join(BY_NAME)}")
    p.add_argument("--seconds", type=float, default=900.0, help="exit after this long (at most 7200)")
    p.add_argument("--drip", type=float, default=2.0, help="seconds between the bytes of a slow answer")
    p.add_argument("--connection-seconds", type=float, default=60.0, help="close a connection after this")
    p.add_argument("--max-connections", type=int, default=4000, help="connections open at once")
    a = p.parse_args()
    kinds = tuple(k for k in a.kinds.split(",") if k)
    if not 1 <= a.count <= MAX_COUNT or not 0 < a.seconds <= 7200 or any(k not in BY_NAME for k in kinds):
        p.error(f"--count 1..{MAX_COUNT}, --seconds (0, 7200], --kinds from {','.join(BY_NAME)}")
    o = Options(a.drip, a.connection_seconds, a.max_connections)
    asyncio.run(serve(a.count, a.out, o, a.seconds, kinds))


if __name__ == "__main__":
    main()
