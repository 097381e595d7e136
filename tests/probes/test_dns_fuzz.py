"""Fuzzing the dns probe with a peer on loopback that answers each query (UDP and TCP) with a
mutation of a real response to it, its id kept so dnspython reads it through."""

from __future__ import annotations

import struct

import dns.message
import dns.rrset
from hypothesis import given
from hypothesis import strategies as st

from probes import dns as dns_probe
from probes.base import Reason
from tests.fuzzing import assert_reasoned, loop_with, mutated, tcp_peer, udp_peer
from tests.peers.nginx import context

NAME = "vungtau.example.invalid."


def _response(query: bytes, kind: int) -> bytes:
    q = dns.message.from_wire(query)
    r = dns.message.make_response(q)
    if kind == 0:
        r.answer.append(dns.rrset.from_text(NAME, 300, "IN", "A", "127.0.0.1", "127.0.0.2"))
    elif kind == 1:
        r.answer.append(dns.rrset.from_text(NAME, 300, "IN", "SOA",
                                            "ns1.example.invalid. admin.example.invalid. 2025070101 1 1 1 1"))
        r.authority.append(dns.rrset.from_text(NAME, 300, "IN", "NS", "ns1.example.invalid."))
    else:
        r.answer.append(dns.rrset.from_text(NAME, 300, "IN", "TXT", '"v=spf1 -all"', '"\\255\\000"'))
    return r.to_wire()


def _fuzz(query: bytes, kind: int, data: st.DataObject) -> bytes:
    wire = data.draw(mutated(_response(query, kind), max_ops=4))
    return query[:2] + wire[2:]  # the query's id: a reply with another one is only waited past


CFG = {
    0: dns_probe.Config(query_name=NAME, query_type="A", expected_answers=("127.0.0.1", "127.0.0.2"),
                        validate_answer_rrs={"fail_if_not_matches_regexp": ["127"]}),  # type: ignore[arg-type]
    1: dns_probe.Config(query_name=NAME, query_type="SOA", fail_if_no_answer=True),
    2: dns_probe.Config(query_name=NAME, query_type="TXT", validate_answer_rrs={  # type: ignore[arg-type]
        "fail_if_matches_regexp": ["spf2"]}),
}


@given(st.integers(0, 2), st.data())
def test_udp_answers(kind: int, data: st.DataObject) -> None:
    with loop_with(udp_peer) as (runner, peer):
        peer.answer = lambda query: [_fuzz(query, kind, data)]  # type: ignore[attr-defined]
        result = runner.run(dns_probe.run(f"127.0.0.1:{peer.port}", CFG[kind], context(timeout=0.5)))  # type: ignore[attr-defined]
    assert_reasoned(result)


def test_tcp_answer_shorter_than_announced() -> None:
    """Found by test_tcp_answers: dnspython's EOFError escaped the probe (internal_error)."""
    def reply(request: bytes) -> bytes:
        wire = _response(request[2:], 0)
        return struct.pack("!H", len(wire) + 1) + wire

    with loop_with(tcp_peer) as (runner, peer):
        peer.until = b""
        peer.reply = reply  # type: ignore[attr-defined]
        cfg = CFG[0].model_copy(update={"transport": "tcp"})
        result = runner.run(dns_probe.run(f"127.0.0.1:{peer.port}", cfg, context(timeout=0.5)))  # type: ignore[attr-defined]
    assert result.reason is Reason.CONNECTION_RESET, result
    assert "closed in the middle of the answer" in result.message


@given(st.integers(0, 2), st.data())
def test_tcp_answers(kind: int, data: st.DataObject) -> None:
    cfg = CFG[kind].model_copy(update={"transport": "tcp"})

    def reply(request: bytes) -> bytes:
        wire = _fuzz(request[2:], kind, data)
        length = data.draw(st.sampled_from([len(wire), len(wire) + 1, max(0, len(wire) - 1), 0, 65535]))
        return struct.pack("!H", length) + wire

    with loop_with(tcp_peer) as (runner, peer):
        peer.until = b""  # answer as soon as the query is in
        peer.reply = reply  # type: ignore[attr-defined]
        result = runner.run(dns_probe.run(f"127.0.0.1:{peer.port}", cfg, context(timeout=0.5)))  # type: ignore[attr-defined]
    assert_reasoned(result)
