"""The lab's video-conference rooms as SIP and STUN servers: light, shared, fault-aware.

- SIP OPTIONS over UDP and TCP on one port (``Ports.sip``) and STUN Binding over UDP
  (``Ports.stun``), on every room address at once: one socket per protocol bound to the
  lab's bind address, like the lab's other listeners.
- UDP needs the address a datagram was sent *to* (it picks the unit and room, and the reply
  must come *from* it, or the probe's connected socket drops it): ``IP_PKTINFO`` on receive,
  and the same address as the source on send. asyncio's datagram transport hides both, so
  this is a plain non-blocking socket under ``loop.add_reader``.
- A room that is down ignores requests (with nftables its link may also be cut); a slow one
  answers after the lab's slow delay. Anything that is not a request for us gets no answer.

``sip_answer`` and ``stun_answer`` are pure: request bytes in, reply bytes (or None) out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import struct
from collections.abc import Callable

from probes import stun

SERVER = "wardwatch-lab"
_PKTINFO = struct.Struct("I4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_ANC_SIZE = socket.CMSG_SPACE(_PKTINFO.size)
_COPIED = ("via", "from", "to", "call-id", "cseq")
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id"}


def sip_answer(request: bytes, peer: tuple[str, int], server: str = SERVER) -> bytes | None:
    """The reply to one SIP request: 200 OK to OPTIONS, 501 to other methods, None for anything
    that is not a request (responses, garbage). Via gets ``received``/``rport`` (RFC 3581)."""
    try:
        head = request.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0" or not parts[0].isalpha():
        return None
    method = parts[0].upper()
    copied: list[str] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = _COMPACT.get(name.strip().lower(), name.strip().lower())
        if not colon or key not in _COPIED:
            continue
        value = value.strip()
        if key == "via" and not any(c.startswith("Via:") for c in copied):
            value = value.replace(";rport", f";rport={peer[1]}", 1) + f";received={peer[0]}"
        if key == "to" and ";tag=" not in value:
            value += ";tag=" + hashlib.sha1(request).hexdigest()[:12]
        copied.append(f"{key.title() if key != 'call-id' else 'Call-ID'}: {value}")
    if not all(any(c.lower().startswith(k + ":") for c in copied) for k in ("via", "call-id", "cseq")):
        return None
    status = "200 OK" if method == "OPTIONS" else "501 Not Implemented"
    allow = ["Allow: OPTIONS", "Accept: application/sdp"] if method == "OPTIONS" else []
    out = [f"SIP/2.0 {status}", *copied, *allow, f"Server: {server}", "Content-Length: 0"]
    return ("\r\n".join(out) + "\r\n\r\n").encode()


def stun_answer(request: bytes, peer: tuple[str, int]) -> bytes | None:
    """A Binding success response with XOR-MAPPED-ADDRESS; None for anything else."""
    msg = stun.decode(request)
    if isinstance(msg, stun.StunError) or msg.msg_type != stun.BINDING_REQUEST:
        return None
    attrs = [(stun.ATTR_XOR_MAPPED_ADDRESS, stun.xor_address(peer[0], peer[1], msg.transaction_id)),
             (stun.ATTR_SOFTWARE, SERVER.encode())]
    return stun.encode_message(stun.BINDING_SUCCESS, msg.transaction_id, attrs)


# local address -> delay before answering (None: no answer), from the lab's faults
Policy = Callable[[str], float | None]
Answer = Callable[[bytes, tuple[str, int]], bytes | None]


class UdpService:
    """One UDP socket answering on every local address it receives on (IP_PKTINFO)."""

    def __init__(self, answer: Answer, policy: Policy) -> None:
        self.answer = answer
        self.policy = policy
        self.sock: socket.socket | None = None

    def start(self, bind: str, port: int) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((bind, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        return int(sock.getsockname()[1])

    def stop(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        for _ in range(64):  # bounded: other listeners get their turn
            try:
                data, anc, _flags, addr = sock.recvmsg(65535, _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            local = _destination(anc)
            peer = (str(addr[0]), int(addr[1]))
            if local is None or not peer[0].startswith("127."):
                continue
            delay = self.policy(local)
            if delay is None:
                continue
            reply = self.answer(data, peer)
            if reply is None:
                continue
            if delay > 0:  # a late answer after stop() finds no socket and is dropped
                asyncio.get_running_loop().call_later(delay, self._send, reply, local, peer)
            else:
                self._send(reply, local, peer)

    def _send(self, reply: bytes, local: str, peer: tuple[str, int]) -> None:
        if self.sock is None:
            return
        info = _PKTINFO.pack(0, socket.inet_aton(local), b"\0\0\0\0")
        with contextlib.suppress(OSError):
            self.sock.sendmsg([reply], [(socket.IPPROTO_IP, _IP_PKTINFO, info)], 0, peer)


def _destination(ancillary: list[tuple[int, int, bytes]]) -> str | None:
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == _IP_PKTINFO and len(data) >= _PKTINFO.size:
            return socket.inet_ntoa(_PKTINFO.unpack_from(data)[2])
    return None
