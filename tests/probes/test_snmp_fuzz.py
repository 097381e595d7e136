"""Fuzzing what the snmp probe does with an agent's answer: the pure ``read_values`` / ``derived``
over varbinds of any SNMP type and value, then whole polls against a v2c responder on loopback
that answers each GET with those varbinds encoded for real (and sometimes byte-mutated)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1902, rfc1905

from probes import snmp
from probes.base import ProbeContext, ProbeResult, Reason
from tests.fuzzing import UdpPeer, assert_reasoned, loop_with, mutated, udp_peer

V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
COMMUNITY = "fuzz"

_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(rfc1902.Integer32),
    st.integers(0, 2**32 - 1).map(rfc1902.Counter32),
    st.integers(0, 2**32 - 1).map(rfc1902.Gauge32),
    st.integers(0, 2**32 - 1).map(rfc1902.TimeTicks),
    st.integers(0, 2**64 - 1).map(rfc1902.Counter64),
    st.binary(max_size=300).map(rfc1902.OctetString),
    st.sampled_from(["127.0.0.1", "0.0.0.0", "255.255.255.255"]).map(rfc1902.IpAddress),
    st.sampled_from(["1.3.6.1", "0.0"]).map(rfc1902.ObjectName),
    st.binary(max_size=8).map(rfc1902.Opaque),
    st.just(rfc1905.NoSuchObject("")), st.just(rfc1905.NoSuchInstance("")), st.just(rfc1905.EndOfMibView("")),
)
ORDER = [1, 2]
OIDS = [snmp.SYS_UPTIME] + [f"{oid}.{i}" for i in ORDER for oid, _ in snmp.IF_COLUMNS.values()]


@st.composite
def varbinds(draw: st.DrawFn) -> dict[str, Any]:
    """An answer to the probe's GET: each OID present (any type) or left out."""
    return {oid: draw(_VALUES) for oid in OIDS if draw(st.integers(0, 9))}


@given(varbinds(), varbinds(), st.floats(min_value=-1, max_value=1e6, allow_nan=False))
@example({snmp.SYS_UPTIME: rfc1902.OctetString(b"up")}, {}, 30.0)  # int() raised ValueError
@example({snmp.SYS_UPTIME: rfc1902.TimeTicks(1), "1.3.6.1.2.1.2.2.1.8.1": rfc1902.IpAddress("127.0.0.1")}, {}, 1.0)
@example({snmp.SYS_UPTIME: rfc1902.TimeTicks(1), "1.3.6.1.2.1.2.2.1.8.1": rfc1902.Integer32(1),
          "1.3.6.1.2.1.31.1.1.1.6.1": rfc1902.OctetString(b"many")}, {}, 1.0)
def test_read_values_is_total(first: dict[str, Any], second: dict[str, Any], seconds: float) -> None:
    polls = []
    for values in (first, second):
        try:
            polls.append(snmp.read_values(values, ORDER))
        except snmp.SnmpFailure as e:
            assert e.reason in (Reason.SNMP_NO_SUCH_OBJECT, Reason.SNMP_ERROR) and str(e)
    for ticks, rows, absent in polls:
        assert ticks >= 0
        assert {r.index for r in rows} | {int(a) for a in absent} == set(ORDER)
        assert all(isinstance(v, int) for r in rows for v in r.values.values())
    if len(polls) == 2:
        prev = {r.index: r.values for r in polls[0][1]}
        for s in snmp.derived(polls[1][1], prev, seconds):
            assert s.value == s.value  # never NaN


def _answer(request: bytes, values: dict[str, Any]) -> list[bytes]:
    msg, _ = decoder.decode(request, asn1Spec=V2C.Message())
    req = V2C.apiMessage.get_pdu(msg)
    resp = V2C.apiMessage.get_response(msg)
    pdu = V2C.apiMessage.get_pdu(resp)
    asked = [str(oid) for oid, _ in V2C.apiPDU.get_varbinds(req)]
    V2C.apiPDU.set_varbinds(pdu, [(oid, values.get(oid, rfc1905.NoSuchInstance(""))) for oid in asked])
    return [encoder.encode(resp)]


@pytest.fixture(scope="module")
def responder() -> Iterator[tuple[asyncio.Runner, UdpPeer]]:
    """One loop for the module: pysnmp's engine (0.3 s of CPU to build) lives per loop."""
    with loop_with(udp_peer) as (runner, peer):
        yield runner, peer  # type: ignore[misc]


def _poll(responder: tuple[asyncio.Runner, UdpPeer]) -> ProbeResult:
    runner, peer = responder
    cfg = snmp.Config(community=COMMUNITY, interfaces=("1", "2"), retries=0)  # type: ignore[arg-type]
    return runner.run(snmp.run(f"127.0.0.1:{peer.port}", cfg, ProbeContext(timeout=0.3)))


# A reply pysnmp drops costs the whole timeout: fewer examples than the pure tests.
NETWORK = settings(max_examples=max(20, settings.default.max_examples // 3))


@NETWORK
@given(values=varbinds())
@example(values={snmp.SYS_UPTIME: rfc1902.OctetString(b"up")})  # was internal_error: int() of an OctetString
def test_poll_against_a_responder(responder: tuple[asyncio.Runner, UdpPeer], values: dict[str, Any]) -> None:
    responder[1].answer = lambda request: _answer(request, values)
    result = _poll(responder)
    assert_reasoned(result)
    assert result.reason is None or result.reason.value.startswith("snmp_"), result
    if snmp.SYS_UPTIME not in values:
        assert result.reason is Reason.SNMP_NO_SUCH_OBJECT, result


@NETWORK
@given(values=varbinds(), data=st.data())
def test_mutated_replies(responder: tuple[asyncio.Runner, UdpPeer], values: dict[str, Any],
                         data: st.DataObject) -> None:
    responder[1].answer = lambda request: [data.draw(mutated(_answer(request, values)[0], max_ops=3))]
    result = _poll(responder)
    assert_reasoned(result)
    assert result.reason is None or result.reason.value.startswith("snmp_"), result
