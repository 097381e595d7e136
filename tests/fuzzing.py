"""What the fuzz tests share: byte mutations of valid messages, peers on loopback that answer
with fuzzed bytes, and the property every probe result must have.

Peers run in one event loop per test (``asyncio.Runner``), started once and told per
example what to send, so a few hundred examples cost a few hundred loopback round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from hypothesis import strategies as st

from probes.base import ProbeResult, Reason

# Inputs are capped: bounded time and memory per example, as a peer is bounded by a datagram
# or by the probe's own read limits.
MAX_INPUT = 4096

_INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\r\n", b"\n", b" ", b":", b";", b"=", b",",
                b"\r\n\r\n", b"0", b"9", b"-1", b"\xc3\x28", b"\xed\xa0\x80", "²".encode(), "١".encode())


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, max_ops: int = 6) -> bytes:
    """``seed`` with a few byte-level edits (flip, insert, delete, duplicate, truncate, splice)."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(("flip", "set", "insert", "delete", "dup", "truncate", "interesting")))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            data[pos:pos + draw(st.integers(1, 16))] = b""
        elif op == "dup":
            chunk = data[pos:pos + draw(st.integers(1, 64))]
            data[pos:pos] = chunk * draw(st.integers(1, 8))
        elif op == "truncate":
            del data[pos:]
        elif op == "interesting":
            data[pos:pos + draw(st.integers(0, 2))] = draw(st.sampled_from(_INTERESTING))
    return bytes(data[:MAX_INPUT])


def fuzzed(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Mutations of any seed, and plain random bytes."""
    return st.one_of(
        st.sampled_from(seeds).flatmap(mutated),
        st.binary(max_size=MAX_INPUT),
    )


def assert_reasoned(result: ProbeResult) -> None:
    """A probe result is data: success, or a failure with a reason that is not a crash."""
    assert isinstance(result, ProbeResult)
    if result.success:
        assert result.reason is None
    else:
        assert isinstance(result.reason, Reason), result
        assert result.reason is not Reason.INTERNAL_ERROR, result.message
        assert result.message, result
    assert result.duration_seconds >= 0


# -- peers on loopback ----------------------------------------------------------------------------


@dataclass
class UdpPeer:
    """Answers each datagram with ``answer(request)`` (a list of datagrams; [] stays silent)."""

    answer: Callable[[bytes], list[bytes]] = lambda _req: []
    port: int = 0
    requests: list[bytes] = field(default_factory=list)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, peer: UdpPeer) -> None:
        self.peer = peer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.peer.requests.append(data)
        assert self.transport is not None
        for datagram in self.peer.answer(data):
            self.transport.sendto(datagram, addr)


@contextlib.asynccontextmanager
async def udp_peer(host: str = "127.0.0.1") -> AsyncIterator[UdpPeer]:
    peer = UdpPeer()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(peer), local_addr=(host, 0))
    peer.port = transport.get_extra_info("sockname")[1]
    try:
        yield peer
    finally:
        transport.close()


@dataclass
class TcpPeer:
    """For each connection: reads what the client sends until ``until`` (or a pause), then
    writes ``reply(request)`` and closes. ``dialogue`` replaces that with a scripted exchange."""

    reply: Callable[[bytes], bytes] = lambda _req: b""
    until: bytes = b"\r\n\r\n"
    dialogue: Callable[[asyncio.StreamReader, asyncio.StreamWriter], object] | None = None
    port: int = 0
    connections: int = 0


@contextlib.asynccontextmanager
async def tcp_peer(host: str = "127.0.0.1") -> AsyncIterator[TcpPeer]:
    peer = TcpPeer()
    tasks: set[asyncio.Task[None]] = set()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.connections += 1
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)  # type: ignore[arg-type]
        try:
            if peer.dialogue is not None:
                await peer.dialogue(reader, writer)  # type: ignore[misc]
            else:
                request = b""
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        while len(request) < 65536:
                            chunk = await reader.read(4096)
                            request += chunk
                            if not chunk or peer.until in request:  # b"": the first chunk will do
                                break
                writer.write(peer.reply(request))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            tasks.discard(task)  # type: ignore[arg-type]

    server = await asyncio.start_server(on_client, host, 0)
    peer.port = server.sockets[0].getsockname()[1]
    try:
        yield peer
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@contextlib.contextmanager
def loop_with(peer_cm: Callable[[], contextlib.AbstractAsyncContextManager[object]]) -> Iterator[
        tuple[asyncio.Runner, object]]:
    """An event loop for a whole test, with one peer running in it."""
    with asyncio.Runner() as runner:
        cm = peer_cm()
        peer = runner.run(cm.__aenter__())
        try:
            yield runner, peer
        finally:
            runner.run(cm.__aexit__(None, None, None))
