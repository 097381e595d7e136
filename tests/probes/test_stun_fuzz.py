"""Fuzzing the stun probe: the pure decoder, and Binding requests answered by a UDP peer on
loopback with mutations of a matching response (followed by a good one)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from probes import stun
from probes.base import Reason
from tests.fuzzing import assert_reasoned, fuzzed, loop_with, mutated, udp_peer
from tests.peers.nginx import context

MARK = b"\xaa" * 12  # stands for the request's transaction id in the seeds
GOOD = stun.encode_message(stun.BINDING_SUCCESS, MARK, [
    (stun.ATTR_XOR_MAPPED_ADDRESS, stun.xor_address("127.0.0.1", 40000, MARK)),
    (stun.ATTR_SOFTWARE, b"coturn"),
])
SEEDS = [
    GOOD,
    stun.encode_message(stun.BINDING_SUCCESS, MARK, [
        (stun.ATTR_XOR_MAPPED_ADDRESS_OLD, stun.xor_address("::1", 3478, MARK)),
        (stun.ATTR_MAPPED_ADDRESS, bytes([0, 1, 0x9c, 0x40, 127, 0, 0, 1]))]),
    stun.encode_message(stun.BINDING_ERROR, MARK, [(stun.ATTR_ERROR_CODE, b"\0\0\x04\x00Bad Request")]),
]


@given(fuzzed(SEEDS))
def test_decode_is_total(data: bytes) -> None:
    msg = stun.decode(data)
    assert isinstance(msg, stun.StunMessage | stun.StunError)
    if isinstance(msg, stun.StunMessage):
        assert len(msg.transaction_id) == 12
        mapped = msg.mapped_address()
        assert mapped is None or 0 <= mapped[1] < 65536
        err = msg.error()
        assert err is None or 0 <= err[0] <= 799
        assert isinstance(msg.software(), str)


@given(st.sampled_from(SEEDS).flatmap(lambda s: mutated(s, max_ops=4)))
def test_binding_always_gives_a_reason(reply: bytes) -> None:
    with loop_with(udp_peer) as (runner, peer):
        def answer(request: bytes) -> list[bytes]:
            tid = request[8:20]
            return [reply.replace(MARK, tid), GOOD.replace(MARK, tid)]

        peer.answer = answer  # type: ignore[attr-defined]
        cfg = stun.Config(rto_seconds=0.1)
        result = runner.run(stun.run(f"127.0.0.1:{peer.port}", cfg, context(timeout=1)))  # type: ignore[attr-defined]
    assert_reasoned(result)
    # a good answer always follows: never a wait for one in vain
    assert result.reason in (None, Reason.STUN_ERROR, Reason.STUN_PROTOCOL), result
