"""sip probe: the pure parser and URI handling, then OPTIONS against a real kamailio (UDP, TCP,
TLS) and tiny UDP peers that drop, delay with a provisional, refuse or send garbage."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from probes import sip
from probes.base import Reason
from tests.peers import badpeers, hostile, voip
from tests.peers import pki as pki_mod
from tests.peers.nginx import context
from tests.peers.proc import free_port

# -- pure parts --------------------------------------------------------------------------------


OK = (
    b"SIP/2.0 200 OK\r\n"
    b"v: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKabc;rport=5999\r\n"
    b"f: <sip:ww@127.0.0.1>;tag=1\r\nt: <sip:127.0.0.1>;tag=2\r\n"
    b"i: call-1@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
    b"Server: Example PBX\r\n 1.0 (folded)\r\nl: 4\r\n\r\nbodyEXTRA"
)


def test_parse_compact_and_folded_headers() -> None:
    r = sip.parse_message(OK)
    assert isinstance(r, sip.SipResponse)
    assert (r.status, r.phrase) == (200, "OK")
    assert r.header("Call-ID") == r.header("i") == "call-1@127.0.0.1"
    assert r.header("server") == "Example PBX 1.0 (folded)"
    assert r.via_branch() == "z9hG4bKabc"
    assert r.cseq() == (1, "OPTIONS")
    assert r.body == b"body"
    req = sip.Request(b"", "z9hG4bKabc", "call-1@127.0.0.1", 1)
    assert r.matches(req)
    assert not r.matches(sip.Request(b"", "z9hG4bKother", "call-1@127.0.0.1", 1))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00garbage\r\n\r\n", "UTF-8"),
        (b"HTTP/1.1 200 OK\r\n\r\n", "status line"),
        (b"OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n", "request"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "status code"),
        (b"SIP/2.0 099 Low\r\n\r\n", "status code"),
        (b"SIP/2.0 200 OK\r\n folded first\r\n\r\n", "continuation"),
        (b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
        (b"SIP/2.0 200 OK\r\nVia: x\r\n", "blank line"),
        (b"SIP/2.0 200 OK\r\nVia: x\r\nCall-ID: y\r\n\r\n", "CSeq"),
        (b"SIP/2.0 200 OK\r\nVia: x\r\nCall-ID: y\r\nCSeq: 1 OPTIONS\r\nContent-Length: -1\r\n\r\n", "Length"),
    ],
)
def test_parse_garbage_gives_an_error_never_raises(data: bytes, why: str) -> None:
    r = sip.parse_message(data)
    assert isinstance(r, sip.SipError)
    assert why.lower() in r.message.lower()


def test_parse_never_raises_on_random_bytes() -> None:
    import random

    rnd = random.Random(5060)
    for _ in range(2000):
        n = rnd.randrange(0, 200)
        data = bytes(rnd.randrange(256) for _ in range(n))
        if rnd.random() < 0.5:
            data = b"SIP/2.0 200 OK\r\n" + data
        sip.parse_message(data)  # must return, whatever the bytes


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("sip:127.0.0.1", ("sip", "", "127.0.0.1", 5060, "udp")),
        ("sip:127.0.0.1:5070;transport=TCP", ("sip", "", "127.0.0.1", 5070, "tcp")),
        ("sips:pbx.example.vn", ("sips", "", "pbx.example.vn", 5061, "tls")),
        ("sip:room1@[::1]:5080;transport=tls;lr", ("sip", "room1", "::1", 5080, "tls")),
        ("pbx.example.vn:5062", ("sip", "", "pbx.example.vn", 5062, "udp")),
    ],
)
def test_parse_uri(text: str, want: tuple[object, ...]) -> None:
    u = sip.parse_uri(text)
    assert (u.scheme, u.user, u.host, u.port, u.transport) == want


@pytest.mark.parametrize("text", ["sip:h;transport=sctp", "sips:h;transport=udp", "sip:h:0", "sip:h:x", "sip:"])
def test_parse_uri_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        sip.parse_uri(text)


def test_request_has_rfc3261_fields() -> None:
    req = sip.build_options(sip.parse_uri("sip:pbx.example.vn;transport=tcp"), ("127.0.0.1", 40000), sip.Config())
    text = req.data.decode()
    assert text.startswith("OPTIONS sip:pbx.example.vn:5060 SIP/2.0\r\n")
    assert f"Via: SIP/2.0/TCP 127.0.0.1:40000;branch={req.branch};rport\r\n" in text
    assert req.branch.startswith("z9hG4bK") and len(req.branch) > 16
    for header in ("Max-Forwards: 70\r\n", "CSeq: 1 OPTIONS\r\n", f"Call-ID: {req.call_id}\r\n",
                   "To: <sip:pbx.example.vn:5060>\r\n", "Content-Length: 0\r\n\r\n"):
        assert header in text
    assert ";tag=" in text.split("From: ", 1)[1].split("\r\n", 1)[0]
    assert "Contact: <sip:wardwatch@127.0.0.1:40000;transport=tcp>" in text


def test_timer_e_intervals() -> None:
    assert sip.retransmit_intervals(0.5, 4.0, 10.0) == [0.5, 1.0, 2.0, 4.0]
    assert sip.retransmit_intervals(0.5, 4.0, 19.0) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert sip.retransmit_intervals(0.5, 4.0, 0.4) == []


# -- against real peers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> pki_mod.TestCA:
    return pki_mod.TestCA(tmp_path_factory.mktemp("sip-pki"))


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory, pki: pki_mod.TestCA) -> Iterator[voip.Kamailio]:
    cert = pki.issue("sip", ["sip.test", "127.0.0.1"])
    with voip.kamailio_server(tmp_path_factory.mktemp("kamailio"), cert) as k:
        yield k


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_kamailio_answers_options(kamailio: voip.Kamailio, transport: str) -> None:
    r = await sip.run(f"sip:127.0.0.1:{kamailio.port};transport={transport}", sip.Config(), context())
    assert r.success, r.message
    assert r.value("wardwatch_sip_status_code") == 200
    assert r.value("wardwatch_sip_retransmissions") == 0
    assert r.value("wardwatch_sip_server_info", server=voip.KAMAILIO_SERVER) == 1
    seconds = r.value("wardwatch_sip_response_seconds")
    assert seconds is not None and 0 < seconds < 1


async def test_kamailio_over_tls_verified(kamailio: voip.Kamailio, pki: pki_mod.TestCA) -> None:
    cfg = sip.Config(ca_file=str(pki.bundle), server_name="sip.test")
    r = await sip.run(f"sips:127.0.0.1:{kamailio.tls_port}", cfg, context())
    assert r.success, r.message
    assert r.value("wardwatch_sip_status_code") == 200
    assert r.value("wardwatch_tls_chain_verified") == 1
    assert r.value("probe_ssl_earliest_cert_expiry") is not None
    assert any(s.name == "probe_tls_version_info" for s in r.samples)


async def test_kamailio_over_tls_untrusted(kamailio: voip.Kamailio, pki: pki_mod.TestCA) -> None:
    target = f"sip:127.0.0.1:{kamailio.tls_port};transport=tls"
    r = await sip.run(target, sip.Config(), context())  # no CA: the TestCA is not trusted
    assert r.reason is Reason.TLS_UNTRUSTED, r.message
    assert r.value("probe_ssl_earliest_cert_expiry") is not None  # expiry still measured
    skipped = await sip.run(target, sip.Config(insecure_skip_verify=True), context())
    assert skipped.success, skipped.message
    assert skipped.value("wardwatch_tls_chain_verified") == 0


async def test_retransmits_until_answered() -> None:
    async with voip.sip_responder(drop_first=2) as peer:
        cfg = sip.Config(t1_seconds=0.05)
        r = await sip.run(f"sip:127.0.0.1:{peer.port}", cfg, context(2))
    assert r.success, r.message
    assert r.value("wardwatch_sip_retransmissions") == 2
    assert len(peer.received) == 3
    assert len({m for m in peer.received}) == 1  # the same request (same branch) each time


async def test_provisional_is_skipped_and_codes_configurable() -> None:
    async with voip.sip_responder(provisional=True, status="401 Unauthorized",
                                  extra="User-Agent: Example-PBX/2.1") as peer:
        target = f"sip:127.0.0.1:{peer.port}"
        r = await sip.run(target, sip.Config(), context())
        assert r.reason is Reason.SIP_STATUS, r.message
        assert r.value("wardwatch_sip_status_code") == 401
        assert r.value("wardwatch_sip_server_info", user_agent="Example-PBX/2.1") == 1
        alive = await sip.run(target, sip.Config(valid_status_codes=(200, 401, 403, 404, 407)), context())
        assert alive.success, alive.message


async def test_no_response_over_udp_retransmits_within_timeout() -> None:
    async with voip.udp_silent() as peer:
        t = time.monotonic()
        r = await sip.run(f"sip:127.0.0.1:{peer.port}", sip.Config(t1_seconds=0.05, t2_seconds=0.2), context(0.6))
        elapsed = time.monotonic() - t
    assert r.reason is Reason.SIP_NO_RESPONSE, r.message
    assert elapsed < 0.9
    # 0.05, 0.1, 0.2, 0.2 … within 0.6 s: several retransmissions, counted
    n = r.value("wardwatch_sip_retransmissions")
    assert n is not None and n >= 3
    assert len(peer.received) == n + 1


async def test_garbage_over_udp_is_a_protocol_error() -> None:
    async with voip.udp_garbage() as peer:
        t = time.monotonic()
        r = await sip.run(f"sip:127.0.0.1:{peer.port}", sip.Config(), context(3))
    assert r.reason is Reason.SIP_PROTOCOL, r.message
    assert time.monotonic() - t < 1


async def test_refused_over_udp_and_tcp() -> None:
    port = free_port()
    for transport in ("udp", "tcp"):
        r = await sip.run(f"sip:127.0.0.1:{port};transport={transport}", sip.Config(), context(2))
        assert r.reason is Reason.REFUSED, (transport, r.message)


async def test_silent_tcp_peer_gives_no_response() -> None:
    async with badpeers.silent() as peer:
        t = time.monotonic()
        r = await sip.run(f"sip:127.0.0.1:{peer.port};transport=tcp", sip.Config(), context(0.5))
    assert r.reason is Reason.SIP_NO_RESPONSE, r.message
    assert time.monotonic() - t < 1.0


async def test_tcp_peer_talking_garbage() -> None:
    async with badpeers.talker([b"220 this is SMTP, not SIP\r\n\r\n"]) as peer:
        r = await sip.run(f"sip:127.0.0.1:{peer.port};transport=tcp", sip.Config(), context(1))
    assert r.reason is Reason.SIP_PROTOCOL, r.message


async def test_bad_target_is_reported() -> None:
    r = await sip.run("sip:host;transport=sctp", sip.Config(), context())
    assert r.reason is Reason.INTERNAL_ERROR and "sctp" in r.message


def test_check_command_by_hand(kamailio: voip.Kamailio, pki: pki_mod.TestCA) -> None:
    """`wardwatch check sip|h323 …` as an operator types it, against kamailio."""
    for target in (f"sip:127.0.0.1:{kamailio.port};transport=udp", f"sip:127.0.0.1:{kamailio.port};transport=tcp"):
        doc = _check_json("sip", target)
        assert doc["success"] is True, doc
        assert doc["metrics"]["wardwatch_sip_status_code"] == 200
    doc = _check_json("sip", f"sips:127.0.0.1:{kamailio.tls_port}", "--ca-file", str(pki.bundle),
                      "--server-name", "sip.test", "--valid-status-codes", "200", "--valid-status-codes", "401")
    assert doc["success"] is True, doc
    doc = _check_json("h323", f"127.0.0.1:{kamailio.port}")  # any TCP listener will do
    assert doc["success"] is True, doc
    doc = _check_json("sip", f"sip:127.0.0.1:{free_port()}", "--timeout", "1")
    assert doc["reason"] == "refused"


def _check_json(kind: str, target: str, *extra: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "monitor", "check", kind, target, "--json", *extra]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode in (0, 1), out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


async def test_tcp_provisional_and_final_in_one_segment() -> None:
    """100 Trying and 200 OK arriving together must both be read (framing by Content-Length)."""
    import asyncio

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        request = await r.readuntil(b"\r\n\r\n")
        w.write(voip.sip_reply(request, "100 Trying") + voip.sip_reply(request, "200 OK", "Server: one-segment"))
        await w.drain()
        await r.read()  # until the probe leaves
        w.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        r = await sip.run(f"sip:127.0.0.1:{port};transport=tcp", sip.Config(), context(2))
    assert r.success, r.message
    assert r.value("wardwatch_sip_server_info", server="one-segment") == 1


async def test_endless_provisional_over_tcp_is_cut() -> None:
    """'100 Trying' for ever: the probe stops after MAX_RESPONSES rather than parsing until its
    deadline."""
    async with hostile.serving("sip_flood") as peer:
        t = time.monotonic()
        r = await sip.run(f"sip:127.0.0.1:{peer.port};transport=tcp", sip.Config(), context(20))
    assert r.reason is Reason.SIP_PROTOCOL, r.message
    assert f"{sip.MAX_RESPONSES} responses without a final one" in r.message
    assert time.monotonic() - t < 5


async def test_endless_provisional_over_udp_is_cut() -> None:
    """Over UDP too: a burst of 100 Trying datagrams per request, never the final answer."""
    import asyncio

    class Flood(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
            for _ in range(sip.MAX_RESPONSES + 20):
                self.transport.sendto(voip.sip_reply(data, "100 Trying"), addr)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Flood, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        t = time.monotonic()
        r = await sip.run(f"sip:127.0.0.1:{port}", sip.Config(), context(20))
    finally:
        transport.close()
    assert r.reason is Reason.SIP_PROTOCOL, r.message
    assert time.monotonic() - t < 5
