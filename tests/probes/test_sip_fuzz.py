"""Fuzzing the sip probe: the pure parser, the stream framing, and whole OPTIONS probes against
a UDP and a TCP peer on loopback that answer with mutations of a matching response."""

from __future__ import annotations

import asyncio
import re

from hypothesis import example, given
from hypothesis import strategies as st

from probes import sip
from probes.base import ProbeContext, Reason
from tests.fuzzing import assert_reasoned, fuzzed, loop_with, mutated, tcp_peer, udp_peer
from tests.peers.nginx import context

SEED = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKabc;rport=5999\r\n"
    b"From: <sip:ww@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>;tag=2\r\n"
    b"Call-ID: call-1@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
    b"Server: Example PBX\r\n 1.0 (folded)\r\nContent-Length: 4\r\n\r\nbody"
)
COMPACT = (
    b"SIP/2.0 100 Trying\r\nv: SIP/2.0/TCP h;branch=z9hG4bKabc\r\ni: call-1@127.0.0.1\r\n"
    b"CSeq: 1 OPTIONS\r\nl: 0\r\n\r\n"
)
SEEDS = [SEED, COMPACT, SEED.replace(b"200 OK", b"401 Unauthorized")]


def _check_response(r: sip.SipResponse) -> None:
    assert 100 <= r.status <= 699
    assert all(k == k.lower() and k for k, _ in r.headers)
    r.via_branch(), r.cseq(), sip.response_samples(r)  # total too
    length = r.header("content-length")
    if length is not None:
        assert len(r.body) <= int(length)


@given(fuzzed(SEEDS))
# Found by this test: digits str.isdigit() accepts but int() does not (superscripts).
@example(b"SIP/2.0 \xc2\xb2\xc2\xb2\xc2\xb2 OK\r\nVia: x\r\nCall-ID: y\r\nCSeq: 1 OPTIONS\r\n\r\n")
@example(SEED.replace(b"Content-Length: 4", "Content-Length: ²".encode()))
@example(SEED.replace(b"CSeq: 1 OPTIONS", "CSeq: ² OPTIONS".encode()))
def test_parse_message_is_total(data: bytes) -> None:
    r = sip.parse_message(data)
    assert isinstance(r, sip.SipResponse | sip.SipError)
    if isinstance(r, sip.SipResponse):
        _check_response(r)
        assert r.matches(sip.Request(b"", "z9hG4bKabc", "call-1@127.0.0.1", 1)) in (True, False)
    else:
        assert r.message


async def _frames(data: bytes) -> list[sip.SipResponse | sip.SipError]:
    reader = asyncio.StreamReader(limit=sip.MAX_MESSAGE)
    reader.feed_data(data)
    reader.feed_eof()
    messages = sip._StreamMessages(reader)
    out: list[sip.SipResponse | sip.SipError] = []
    for _ in range(8):
        try:
            msg = await messages.next()
        except (sip._Fail, asyncio.IncompleteReadError):  # both handled by run()
            break
        out.append(msg)
        if isinstance(msg, sip.SipError):
            break
    return out


@given(st.lists(fuzzed(SEEDS), min_size=1, max_size=3).map(b"".join))
@example(COMPACT.replace(b"l: 0", "l: ²".encode()))
def test_stream_framing_is_total(data: bytes) -> None:
    for msg in asyncio.run(_frames(data)):
        if isinstance(msg, sip.SipResponse):
            _check_response(msg)


def _answer_to(request: bytes, template: bytes) -> bytes:
    """``template`` made to match ``request`` (branch, Call-ID), so the probe parses it fully."""
    text = request.decode()
    branch = re.search(r"branch=([^;\r\n]+)", text)
    call_id = re.search(r"Call-ID: ([^\r\n]+)", text)
    assert branch and call_id
    return template.replace(b"z9hG4bKabc", branch.group(1).encode()).replace(
        b"call-1@127.0.0.1", call_id.group(1).encode())


_ANSWERED = (None, Reason.SIP_STATUS, Reason.SIP_PROTOCOL)


def _ctx() -> ProbeContext:
    return context(timeout=0.3)


@given(st.sampled_from(SEEDS).flatmap(lambda s: st.tuples(st.just(s), mutated(s, max_ops=4))))
def test_options_over_udp_always_gives_a_reason(case: tuple[bytes, bytes]) -> None:
    _, reply = case
    with loop_with(udp_peer) as (runner, peer):
        # the fuzzed reply, then a good one: a reply the probe skips must not cost the whole timeout
        peer.answer = lambda req: [_answer_to(req, reply), _answer_to(req, SEED)]  # type: ignore[attr-defined]
        cfg = sip.Config(t1_seconds=0.1)
        result = runner.run(sip.run(f"sip:127.0.0.1:{peer.port}", cfg, _ctx()))  # type: ignore[attr-defined]
    assert_reasoned(result)
    # a good final response always follows, so the probe never waits for one in vain
    assert result.reason in _ANSWERED, result


@given(st.lists(st.sampled_from(SEEDS).flatmap(lambda s: mutated(s, max_ops=4)), min_size=1, max_size=3))
def test_options_over_tcp_always_gives_a_reason(replies: list[bytes]) -> None:
    with loop_with(tcp_peer) as (runner, peer):
        peer.reply = lambda req: b"".join(_answer_to(req, r) for r in (*replies, SEED))  # type: ignore[attr-defined]
        target = f"sip:127.0.0.1:{peer.port};transport=tcp"  # type: ignore[attr-defined]
        result = runner.run(sip.run(target, sip.Config(), _ctx()))
    assert_reasoned(result)
    # a fuzzed message may swallow the good one that follows (its Content-Length); the peer
    # closes the connection after writing, so the probe never waits for its deadline
    assert result.reason in (*_ANSWERED, Reason.SIP_NO_RESPONSE), result
    assert "within" not in result.message
