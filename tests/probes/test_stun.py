"""stun probe: the pure encoder/decoder, then Binding against a real coturn and tiny UDP peers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import subprocess
import sys
import time
import typing
from collections.abc import AsyncIterator, Iterator

import pytest

from probes import stun
from probes.base import Reason
from tests.peers import voip
from tests.peers.nginx import context
from tests.peers.proc import free_port

TID = bytes(range(12))


def test_binding_request_bytes() -> None:
    data = stun.encode_binding_request(TID)
    assert data == b"\x00\x01\x00\x00\x21\x12\xa4\x42" + TID
    with pytest.raises(ValueError):
        stun.encode_binding_request(b"short")


@pytest.mark.parametrize(("address", "port"), [("192.0.2.7", 40000), ("2001:db8::7", 3478)])
def test_xor_mapped_address_round_trip(address: str, port: int) -> None:
    data = stun.encode_message(stun.BINDING_SUCCESS, TID, [(stun.ATTR_XOR_MAPPED_ADDRESS,
                                                             stun.xor_address(address, port, TID))])
    msg = stun.decode(data)
    assert isinstance(msg, stun.StunMessage)
    assert msg.msg_type == stun.BINDING_SUCCESS and msg.transaction_id == TID
    assert msg.mapped_address() == (address, port)


def test_rfc5769_sample_ipv4_response() -> None:
    # RFC 5769 2.2: XOR-MAPPED-ADDRESS 192.0.2.1:32853 (SOFTWARE, MESSAGE-INTEGRITY, FINGERPRINT kept)
    data = bytes.fromhex(
        "0101003c2112a442b7e7a701bc34d686fa87dfae"
        "8022000b7465737420766563746f7220"
        "002000080001a147e112a643"
        "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
        "80280004c07d4c96"
    )
    msg = stun.decode(data)
    assert isinstance(msg, stun.StunMessage), msg
    assert msg.mapped_address() == ("192.0.2.1", 32853)
    assert msg.software() == "test vector"


def test_mapped_address_fallback_and_error_code() -> None:
    plain = struct.pack("!BBH", 0, 1, 5000) + bytes([127, 0, 0, 9])
    msg = stun.decode(stun.encode_message(stun.BINDING_SUCCESS, TID, [(stun.ATTR_MAPPED_ADDRESS, plain)]))
    assert isinstance(msg, stun.StunMessage) and msg.mapped_address() == ("127.0.0.9", 5000)
    err = stun.encode_message(stun.BINDING_ERROR, TID, [(stun.ATTR_ERROR_CODE, b"\0\0\x04\x14Unknown Attribute")])
    msg = stun.decode(err)
    assert isinstance(msg, stun.StunMessage) and msg.error() == (420, "Unknown Attribute")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "shorter"),
        (b"\x01\x01\x00\x00" + b"\0" * 16, "cookie"),
        (b"\xc1\x01\x00\x00\x21\x12\xa4\x42" + TID, "two bits"),
        (b"\x01\x01\x00\x04\x21\x12\xa4\x42" + TID, "length"),
        (b"\x01\x01\x00\x08\x21\x12\xa4\x42" + TID + b"\x00\x20\x00\x10abcd", "past the end"),
        (b"\x01\x01\x00\x04\x21\x12\xa4\x42" + TID + b"\x00\x20", "length"),
    ],
)
def test_decode_garbage(data: bytes, why: str) -> None:
    msg = stun.decode(data)
    assert isinstance(msg, stun.StunError) and why in msg.message


def test_decode_never_raises_on_random_bytes() -> None:
    import random

    rnd = random.Random(3478)
    for _ in range(3000):
        body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 64)))
        header = struct.pack("!HHI12s", 0x0101, len(body), stun.MAGIC_COOKIE, TID)
        msg = stun.decode(header + body)
        if isinstance(msg, stun.StunMessage):
            msg.mapped_address()
            msg.error()
            msg.software()


# -- against peers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[voip.Coturn]:
    with voip.coturn_server(tmp_path_factory.mktemp("coturn")) as c:
        yield c


async def test_coturn_binding(coturn: voip.Coturn) -> None:
    r = await stun.run(f"127.0.0.1:{coturn.port}", stun.Config(), context())
    assert r.success, r.message
    assert r.value("wardwatch_stun_mapped_address_info", address="127.0.0.1") == 1
    assert r.value("wardwatch_stun_retransmissions") == 0
    rtt = r.value("wardwatch_stun_rtt_seconds")
    assert rtt is not None and 0 < rtt < 1


class _Stun(asyncio.DatagramProtocol):
    """Drops the first ``drop`` requests; answers with a stale id first, then ``kind``."""

    def __init__(self, drop: int, kind: str) -> None:
        self.drop, self.kind, self.seen = drop, kind, 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self.transport is not None
        self.seen += 1
        if self.seen <= self.drop:
            return
        tid = data[8:20]
        host, port = str(addr[0]), int(addr[1])
        stale = stun.encode_message(stun.BINDING_SUCCESS, b"x" * 12, [(stun.ATTR_XOR_MAPPED_ADDRESS,
                                                                        stun.xor_address("127.9.9.9", 9, b"x" * 12))])
        self.transport.sendto(stale, addr)  # another transaction's answer: ignored
        if self.kind == "flood":  # answers to everything but ours (bounded: 150 a request)
            for _ in range(150):
                self.transport.sendto(stale, addr)
            return
        if self.kind == "error":
            reply = stun.encode_message(stun.BINDING_ERROR, tid, [(stun.ATTR_ERROR_CODE, b"\0\0\x05\x00Server Error")])
        elif self.kind == "garbage":
            reply = b"\x00\x00 definitely not STUN"
        else:
            reply = stun.encode_message(stun.BINDING_SUCCESS, tid, [(stun.ATTR_XOR_MAPPED_ADDRESS,
                                                                     stun.xor_address(host, port, tid))])
        self.transport.sendto(reply, addr)


@contextlib.asynccontextmanager
async def stun_peer(drop: int = 0, kind: str = "ok") -> AsyncIterator[tuple[int, _Stun]]:
    loop = asyncio.get_running_loop()
    proto = _Stun(drop, kind)
    transport, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=("127.0.0.1", 0))
    try:
        yield transport.get_extra_info("sockname")[1], proto
    finally:
        transport.close()


async def test_retransmission_counted_and_stale_ids_ignored() -> None:
    async with stun_peer(drop=2) as (port, proto):
        r = await stun.run(f"127.0.0.1:{port}", stun.Config(rto_seconds=0.05), context(2))
    assert r.success, r.message
    assert r.value("wardwatch_stun_retransmissions") == 2
    assert proto.seen == 3
    assert r.value("wardwatch_stun_mapped_address_info", address="127.0.0.1") == 1


async def test_error_response() -> None:
    async with stun_peer(kind="error") as (port, _):
        r = await stun.run(f"127.0.0.1:{port}", stun.Config(), context())
    assert r.reason is Reason.STUN_ERROR, r.message
    assert "500 Server Error" in r.message
    assert r.value("wardwatch_stun_error_code") == 500


async def test_a_flood_of_other_transactions_ends_the_probe_early() -> None:
    async with stun_peer(kind="flood") as (port, _):
        t = time.monotonic()
        r = await stun.run(f"127.0.0.1:{port}", stun.Config(), context(5))
        elapsed = time.monotonic() - t
    assert r.reason is Reason.STUN_PROTOCOL and f"{stun.MAX_FOREIGN} messages" in r.message, r.message
    assert elapsed < 2  # not the 5 s deadline


async def test_garbage_reply() -> None:
    async with voip.udp_garbage() as peer:
        t = time.monotonic()
        r = await stun.run(f"127.0.0.1:{peer.port}", stun.Config(), context(3))
    assert r.reason is Reason.STUN_PROTOCOL, r.message
    assert time.monotonic() - t < 1


async def test_silent_peer_retransmits_within_the_timeout() -> None:
    async with voip.udp_silent() as peer:
        t = time.monotonic()
        r = await stun.run(f"127.0.0.1:{peer.port}", stun.Config(rto_seconds=0.05), context(0.5))
        elapsed = time.monotonic() - t
    assert r.reason is Reason.STUN_NO_RESPONSE, r.message
    assert elapsed < 0.8
    n = r.value("wardwatch_stun_retransmissions")
    assert n is not None and n >= 2 and len(peer.received) == n + 1  # 0.05, 0.1, 0.2 …


async def test_refused() -> None:
    r = await stun.run(f"127.0.0.1:{free_port()}", stun.Config(), context(2))
    assert r.reason is Reason.REFUSED, r.message


def test_check_command_by_hand(coturn: voip.Coturn) -> None:
    argv = [sys.executable, "-m", "monitor", "check", "stun", f"127.0.0.1:{coturn.port}", "--json"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr + out.stdout
    doc = json.loads(out.stdout)
    assert doc["success"] is True
    assert any(k.startswith('wardwatch_stun_mapped_address_info{address="127.0.0.1"') for k in doc["metrics"])
