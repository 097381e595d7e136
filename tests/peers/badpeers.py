"""Tiny misbehaving peers on 127.0.0.1: they run in the test's own event loop.

- ``silent()``: accepts and never answers.
- ``endless_body()``: HTTP headers, then body bytes forever (until the client leaves).
- ``resetter()``: accepts and resets the connection at once.
- ``smtp(cert)``: banner / EHLO / STARTTLS, then TLS with a TestCA certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from tests.peers.pki import Issued

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Peer:
    port: int
    connections: int = 0
    sent: int = 0  # bytes written by the endless body
    lines: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _serve(
    handler: Callable[[Peer, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[Peer]:
    peer = Peer(0)
    tasks: set[asyncio.Task[None]] = set()

    async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        peer.connections += 1
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)  # type: ignore[arg-type]
        try:
            await handler(peer, r, w)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            w.transport.abort()
            tasks.discard(task)  # type: ignore[arg-type]

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    try:
        async with server:
            yield peer
            server.close()
            for t in list(tasks):
                t.cancel()
            for t in list(tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await t
    finally:
        server.close()


def silent() -> contextlib.AbstractAsyncContextManager[Peer]:
    async def h(peer: Peer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()  # never answers; cancelled at teardown

    return _serve(h)


def talker(lines: list[bytes]) -> contextlib.AbstractAsyncContextManager[Peer]:
    """Sends ``lines`` then echoes every line it receives with 'echo: ' in front."""

    async def h(peer: Peer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        for line in lines:
            w.write(line)
        await w.drain()
        while line := await r.readline():
            peer.lines.append(line.decode().rstrip())
            w.write(b"echo: " + line)
            await w.drain()
        await asyncio.Event().wait()

    return _serve(h)


def endless_body(chunked: bool = False) -> contextlib.AbstractAsyncContextManager[Peer]:
    async def h(peer: Peer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        te = b"Transfer-Encoding: chunked\r\n" if chunked else b""
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + te + b"\r\n")
        block = b"y" * 65536
        if chunked:
            block = b"10000\r\n" + block + b"\r\n"
        while True:
            w.write(block)
            peer.sent += len(block)
            await w.drain()

    return _serve(h)


def resetter(after_bytes: int = 0) -> contextlib.AbstractAsyncContextManager[Peer]:
    """Resets the connection (RST) on accept, or once the client sent ``after_bytes``
    (1: mid TLS handshake, right after the ClientHello)."""

    async def h(peer: Peer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if after_bytes:
            await r.readexactly(after_bytes)
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()

    return _serve(h)


def smtp(cert: Issued, offer_starttls: bool = True) -> contextlib.AbstractAsyncContextManager[Peer]:
    """Just enough ESMTP for a STARTTLS probe; a real MTA comes later."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)

    async def h(peer: Peer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 mail.portal.test ESMTP wardwatch-test\r\n")
        while line := await r.readline():
            cmd = line.decode().strip()
            peer.lines.append(cmd)
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                ext = b"250-STARTTLS\r\n" if offer_starttls else b""
                w.write(b"250-mail.portal.test\r\n250-PIPELINING\r\n" + ext + b"250 8BITMIME\r\n")
            elif verb == "STARTTLS" and offer_starttls:
                w.write(b"220 2.0.0 Ready to start TLS\r\n")
                await w.drain()
                await w.start_tls(ctx)
            elif verb == "QUIT":
                w.write(b"221 bye\r\n")
                break
            else:
                w.write(b"502 5.5.2 command not recognized\r\n")
            await w.drain()

    return _serve(h)
