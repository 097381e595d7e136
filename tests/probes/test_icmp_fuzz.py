"""Fuzzing the ICMP(v6) message parser every echo reply and error goes through (the pinger's
socket reader calls it for whatever arrives: another process's pings, errors quoting anything)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from probes import icmp
from tests.fuzzing import fuzzed

_IPV4 = bytes.fromhex("450000540000400040010000") + bytes([127, 0, 0, 1, 127, 0, 0, 2])
_REQUEST = icmp.echo_request(False, 0x1234, 7, b"wardwatch")
SEEDS = [
    _IPV4 + bytes([0, 0, 0, 0, 0x12, 0x34, 0, 7]) + b"wardwatch",  # echo reply, with the IP header
    _IPV4 + bytes([3, 1, 0, 0, 0, 0, 0, 0]) + _IPV4[:9] + b"\x01" + _IPV4[10:] + _REQUEST,  # unreachable
    bytes([129, 0, 0, 0, 0x12, 0x34, 0, 7]) + b"wardwatch",  # ICMPv6 echo reply
    bytes([3, 0, 0, 0, 0, 0, 0, 0]) + bytes(6) + b"\x3a" + bytes(17) + bytes(15) + b"\x01"
    + icmp.echo_request(True, 1, 2, b""),  # ICMPv6 time exceeded quoting our request
]


@given(st.booleans(), st.booleans(), fuzzed(SEEDS))
def test_parse_is_total(v6: bool, ip_header: bool, data: bytes) -> None:
    msg = icmp.parse(v6, data, ip_header)
    if msg is not None:
        assert msg.kind in ("reply", "error")
        assert 0 <= msg.ident < 65536 and 0 <= msg.seq < 65536
        if msg.kind == "error":
            assert msg.peer and msg.detail


def test_seeds_parse() -> None:
    assert icmp.parse(False, SEEDS[0], True) == icmp.Parsed("reply", 0x1234, 7, "", b"wardwatch")
    err = icmp.parse(False, SEEDS[1], True)
    assert err is not None and (err.kind, err.ident, err.seq, err.peer) == ("error", 0x1234, 7, "127.0.0.2")
    assert icmp.parse(True, SEEDS[3], False) is not None
