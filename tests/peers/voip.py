"""Real SIP and STUN servers on loopback (kamailio, coturn), and tiny UDP peers in the test's loop.

- ``kamailio_server``: Debian's kamailio answering OPTIONS over UDP, TCP and TLS (tls.so with
  a TestCA certificate); the config follows NOTES-libraries.md (pv + sl + siputils).
- ``coturn_server``: ``turnserver --stun-only`` (Binding requests only).
- ``sip_responder``: an asyncio UDP SIP server that can drop the first N requests (to make
  the probe retransmit), answer with any code, send a provisional 100 first, or garbage.
- ``udp_garbage``: answers every datagram with bytes that are neither SIP nor STUN.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import struct
import subprocess
import time
import typing
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.pki import Issued
from tests.peers.proc import free_port, require, running, wait_tcp

KAMAILIO_SERVER = "wardwatch-test-kamailio"

_KAMAILIO_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
children=1
tcp_children=1
enable_tls=yes
auto_aliases=no
dns=no
rev_dns=no
server_header="Server: {server}"
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
listen=tls:127.0.0.1:{tls_port}
mpath="{modules}"
loadmodule "pv.so"
loadmodule "sl.so"
loadmodule "siputils.so"
loadmodule "tls.so"
modparam("tls", "config", "{tls_cfg}")
request_route {{
  if (method=="OPTIONS") {{ options_reply(); exit; }}
  sl_send_reply("501", "Not Implemented");
}}
"""

_TLS_CFG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = {key}
certificate = {cert}

[client:default]
verify_certificate = no
require_certificate = no
"""


def _kamailio_modules() -> str:
    for d in ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/aarch64-linux-gnu/kamailio/modules",
              "/usr/lib/kamailio/modules"):
        if os.path.exists(os.path.join(d, "tls.so")):
            return d
    raise RuntimeError("kamailio modules (with tls.so) not found: run scripts/setup-test-env.sh")


def options_request(port: int, transport: str = "UDP") -> bytes:
    branch = "z9hG4bK" + secrets.token_hex(8)
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:9;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:fixture@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
        f"Call-ID: {branch}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@dataclass(frozen=True)
class Kamailio:
    port: int  # UDP and TCP
    tls_port: int
    directory: Path


@contextlib.contextmanager
def kamailio_server(directory: Path, cert: Issued) -> Iterator[Kamailio]:
    binary = require("kamailio")
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_udp_tcp_port()
    tls_port = free_port()
    tls_cfg = directory / "tls.cfg"
    tls_cfg.write_text(_TLS_CFG.format(key=cert.key, cert=cert.cert))
    cfg = directory / "kamailio.cfg"
    cfg.write_text(_KAMAILIO_CFG.format(server=KAMAILIO_SERVER, port=port, tls_port=tls_port,
                                        modules=_kamailio_modules(), tls_cfg=tls_cfg))
    argv = [binary, "-DD", "-E", "-f", str(cfg), "-P", str(directory / "kamailio.pid"),
            "-Y", str(directory), "-w", str(directory), "-m", "32", "-M", "8"]
    with running(argv, directory / "kamailio.out") as proc:
        wait_tcp("127.0.0.1", tls_port, proc=proc)
        wait_tcp("127.0.0.1", port, proc=proc)
        # Listening is not answering: one real OPTIONS over UDP, answered 200.
        reply = _udp_ask(port, options_request(port), proc)
        if not reply.startswith(b"SIP/2.0 200"):
            raise RuntimeError(f"kamailio answered {reply[:40]!r}")
        yield Kamailio(port, tls_port, directory)


@dataclass(frozen=True)
class Coturn:
    port: int


@contextlib.contextmanager
def coturn_server(directory: Path) -> Iterator[Coturn]:
    binary = require("turnserver")
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_udp_tcp_port()
    argv = [binary, "-n", "--stun-only", "--listening-ip=127.0.0.1", f"--listening-port={port}", "--no-cli",
            "--no-tls", "--no-dtls", f"--pidfile={directory / 'turnserver.pid'}", "--log-file=stdout",
            f"--userdb={directory / 'turndb'}",
            "--simple-log"]
    with running(argv, directory / "turnserver.out") as proc:
        wait_tcp("127.0.0.1", port, proc=proc)  # its TCP listener comes up with the UDP one
        # Its UDP listener may come a moment after the TCP one: a Binding request, retransmitted
        # like a client does, answered with our transaction id says it serves.
        tid = os.urandom(12)
        reply = _udp_ask(port, struct.pack("!HHI12s", 1, 0, 0x2112A442, tid), proc)
        if reply[:2] != b"\x01\x01" or reply[8:20] != tid:
            raise RuntimeError(f"turnserver answered {reply[:20]!r}")
        yield Coturn(port)


def _udp_ask(port: int, request: bytes, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> bytes:
    """Send ``request`` to 127.0.0.1:``port`` until a reply comes (retransmitting every 100 ms)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.1)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"peer exited with {proc.returncode}")
            s.sendto(request, ("127.0.0.1", port))
            try:
                return s.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                continue
    raise TimeoutError(f"no UDP answer on 127.0.0.1:{port} after {timeout}s")


def _free_udp_tcp_port() -> int:
    for _ in range(50):
        port = free_port(kind=socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise OSError("no port free for both UDP and TCP on 127.0.0.1")


# -- tiny UDP peers in the test's own event loop -----------------------------------------------


@dataclass
class UdpPeer:
    port: int = 0
    received: list[bytes] = field(default_factory=list)


def sip_reply(request: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    """A response to ``request`` copying Via, From, To, Call-ID and CSeq, as a UAS does."""
    head = request.split(b"\r\n\r\n", 1)[0].decode()
    copied = [line for line in head.split("\r\n")[1:]
              if line.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    lines = [f"SIP/2.0 {status}", *copied, *([extra] if extra else []), "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, peer: UdpPeer, *, drop_first: int, status: str, provisional: bool,
                 garbage: bytes | None, extra: str) -> None:
        self.peer, self.drop_first, self.status = peer, drop_first, status
        self.provisional, self.garbage, self.extra = provisional, garbage, extra
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self.transport is not None
        self.peer.received.append(data)
        if len(self.peer.received) <= self.drop_first:
            return
        if self.garbage is not None:
            self.transport.sendto(self.garbage, addr)
            return
        if self.provisional:
            self.transport.sendto(sip_reply(data, "100 Trying"), addr)
        self.transport.sendto(sip_reply(data, self.status, self.extra), addr)


@contextlib.asynccontextmanager
async def sip_responder(*, drop_first: int = 0, status: str = "200 OK", provisional: bool = False,
                        garbage: bytes | None = None, extra: str = "") -> AsyncIterator[UdpPeer]:
    peer = UdpPeer()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Responder(peer, drop_first=drop_first, status=status, provisional=provisional,
                           garbage=garbage, extra=extra), local_addr=("127.0.0.1", 0)
    )
    peer.port = transport.get_extra_info("sockname")[1]
    try:
        yield peer
    finally:
        transport.close()


def udp_garbage(garbage: bytes = b"\x16\x03\x01 hello, this is not SIP nor STUN\r\n") -> (
        contextlib.AbstractAsyncContextManager[UdpPeer]):
    return sip_responder(garbage=garbage)


@contextlib.asynccontextmanager
async def udp_silent() -> AsyncIterator[UdpPeer]:
    """Receives and never answers (a port that is open but mute)."""
    async with sip_responder(drop_first=1 << 30) as peer:
        yield peer
