"""The address policy and its normalisation, without a network: every spelling of a denied
address must be judged as that address."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.addrguard import (
    ALLOW_FIELD,
    BUILTIN_DENY,
    DENY_FIELD,
    AddressPolicy,
    builtin_reason,
    destination,
    embedded_ipv4,
    parse_host,
    parse_inet_aton,
    parse_network,
    policy,
)

METADATA = "169.254.169.254"

# Every spelling of 169.254.169.254 that some resolver, URL parser or the kernel takes for it.
METADATA_SPELLINGS = [
    "169.254.169.254",
    "0xA9FEA9FE",  # one hex number
    "0xa9fea9fe",
    "0XA9FEA9FE",
    "2852039166",  # one decimal number
    "025177524776",  # one octal number
    "0251.0376.0251.0376",  # octal parts
    "0xa9.0xfe.0xa9.0xfe",  # hex parts
    "0xa9.254.0251.0xFE",  # mixed
    "169.16689662",  # a.b: the last part fills three bytes
    "169.254.43518",  # a.b.c: the last part fills two bytes
    "169.254.169.254 trailing",  # inet_aton stops at white space
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:a9fe:a9fe",
    "[::ffff:169.254.169.254]",
    "::169.254.169.254",  # IPv4-compatible (deprecated)
    "64:ff9b::169.254.169.254",  # NAT64 well-known prefix
    "64:ff9b::a9fe:a9fe",
]


@pytest.mark.parametrize("text", METADATA_SPELLINGS)
def test_every_spelling_of_the_metadata_address_is_denied(text: str) -> None:
    addr = parse_host(text)
    assert addr is not None, text
    why = AddressPolicy().check(addr)
    assert why is not None and "cloud metadata" in why and DENY_FIELD in why, (text, why)
    assert "169.254.169.254" in why


@pytest.mark.parametrize("text", METADATA_SPELLINGS)
def test_an_allow_list_never_reopens_the_built_in_deny_list(text: str) -> None:
    everything = policy(("0.0.0.0/0", "::/0"), ())
    addr = parse_host(text)
    assert addr is not None
    assert everything.check(addr) is not None
    assert everything.check(ipaddress.ip_address("127.0.0.1")) is None  # the lists do apply


def test_inet_aton_forms() -> None:
    want = ipaddress.IPv4Address(METADATA)
    for text in METADATA_SPELLINGS[:12]:
        assert parse_inet_aton(text) == want, text
    assert parse_inet_aton("127.1") == ipaddress.IPv4Address("127.0.0.1")
    assert parse_inet_aton("0") == ipaddress.IPv4Address("0.0.0.0")
    assert parse_inet_aton("4294967295") == ipaddress.IPv4Address("255.255.255.255")
    for bad in ("", "0x", "0x.1", "08", "1.2.3.", ".1.2.3", "1..2", "256.1.1.1", "1.2.3.4.5", "4294967296",
                "1.2.3.4x", " 1.2.3.4", "1.16777216", "1.2.65536", "1.2.3.256", "00x1", "-1", "+1", "1.-2"):
        assert parse_inet_aton(bad) is None, bad


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789abcdefxX. \t", max_size=24))
def test_inet_aton_agrees_with_the_c_library(text: str) -> None:
    try:
        libc: ipaddress.IPv4Address | None = ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        libc = None
    assert parse_inet_aton(text) == libc


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["{:d}", "0x{:x}", "0X{:X}", "0{:o}"]), st.integers(1, 4))
def test_inet_aton_number_forms_agree_with_the_c_library(value: int, fmt: str, parts: int) -> None:
    """Every way of splitting an address into 1-4 numbers in every base reads back the same."""
    b = value.to_bytes(4, "big")
    numbers = [*b[: parts - 1], int.from_bytes(b[parts - 1 :], "big")]
    text = ".".join(fmt.format(n) if not (fmt == "0{:o}" and n == 0) else "0" for n in numbers)
    assert parse_inet_aton(text) == ipaddress.IPv4Address(socket.inet_aton(text)) == ipaddress.IPv4Address(value)


@pytest.mark.parametrize("text", ["::1", "::ffff:1.2.3.4", "64:ff9b::1.2.3.4", "fe80::1", "2001:db8::", "::",
                                  "1:2:3:4:5:6:7:8", "::ffff:0:0", "fd00:ec2::254"])
def test_ipv6_literals_agree_with_inet_pton(text: str) -> None:
    addr = parse_host(text)
    assert addr is not None and addr.packed == socket.inet_pton(socket.AF_INET6, text)


def test_embedded_ipv4_and_destination() -> None:
    v4 = ipaddress.IPv4Address(METADATA)
    teredo = ipaddress.IPv6Address("2001:0:7f00:1:0:ffff:5601:5601")  # client ~169.254.169.254
    assert teredo.teredo is not None and teredo.teredo[1] == v4
    assert v4 in embedded_ipv4(teredo)
    assert AddressPolicy().check(teredo) is not None
    sixtofour = ipaddress.IPv6Address("2002:a9fe:a9fe::1")
    assert embedded_ipv4(sixtofour) == (v4,)
    assert AddressPolicy().check(sixtofour) is not None
    # ::1 and :: are not IPv4-compatible addresses (0.0.0.1 / 0.0.0.0 would be "denied").
    assert embedded_ipv4(ipaddress.IPv6Address("::1")) == ()
    assert AddressPolicy().check(ipaddress.IPv6Address("::1")) is None
    assert destination(ipaddress.IPv6Address("::ffff:127.0.0.65")) == ipaddress.IPv4Address("127.0.0.65")
    assert destination(ipaddress.IPv6Address("64:ff9b::7f00:41")) == ipaddress.IPv4Address("127.0.0.65")
    assert destination(ipaddress.IPv6Address("::1")) == ipaddress.IPv6Address("::1")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%lo", "link-local"),  # a zone id changes nothing
        ("fd00:ec2::254", "cloud metadata"),
        ("[fd00:ec2::254]", "cloud metadata"),
        ("fd20:ce::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("192.0.0.192", "cloud metadata"),
        ("169.254.170.2", "cloud metadata"),
        ("168.63.129.16", "Azure WireServer"),
        ("0.0.0.0", "unspecified"),
        ("0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:0.0.0.0", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("4294967295", "broadcast"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("::ffff:224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_built_in_deny_list(text: str, why: str) -> None:
    addr = parse_host(text)
    assert addr is not None
    got = AddressPolicy().check(addr)
    assert got is not None and why in got and "built-in deny list" in got


def test_every_built_in_network_is_denied_at_both_ends() -> None:
    for net_text, _ in BUILTIN_DENY:
        net = ipaddress.ip_network(net_text)
        for addr in (net.network_address, net.broadcast_address):
            assert AddressPolicy().check(addr) is not None, addr


# The e2e tests' loopback addresses: .65 allowed, .66 denied.
DENIED_SPELLINGS = ["127.0.0.66", "0x7f000042", "2130706498", "017700000102", "0177.0.0.0102", "127.66",
                    "127.0.66", "0x7f.0.0.0x42", "::ffff:127.0.0.66", "::ffff:7f00:42", "::127.0.0.66",
                    "64:ff9b::127.0.0.66", "127.0.0.66\tx"]


@pytest.mark.parametrize("text", DENIED_SPELLINGS)
def test_probe_deny_catches_every_spelling(text: str) -> None:
    p = policy((), ("127.0.0.66/32",))
    addr = parse_host(text)
    assert addr is not None
    why = p.check(addr)
    assert why is not None and why.endswith(f"denied by {DENY_FIELD} (127.0.0.66/32)"), why
    assert p.check(ipaddress.ip_address("127.0.0.65")) is None


def test_denial_messages_name_the_address_and_the_field() -> None:
    p = policy((), ("127.0.0.66/32",))
    denied = "denied by monitor.probe_deny (127.0.0.66/32)"
    assert p.check(ipaddress.ip_address("127.0.0.66")) == f"address 127.0.0.66 {denied}"
    mapped = ipaddress.ip_address("::ffff:127.0.0.66")  # its text form differs between Python versions
    assert p.check(mapped) == f"address {mapped} (IPv4 127.0.0.66) {denied}"
    assert AddressPolicy().check(ipaddress.ip_address(METADATA)) == (
        "address 169.254.169.254 denied by the built-in deny list of monitor.probe_deny: "
        "cloud metadata service (AWS, GCP, Azure, OpenStack, Oracle, ...)"
    )


def test_allow_list() -> None:
    p = policy(("127.0.0.64/30", "::1/128"), ("127.0.0.66/32",))
    ok = ["127.0.0.65", "::ffff:127.0.0.65", "64:ff9b::7f00:41", "0x7f000041", "::1", "127.0.0.67"]
    for text in ok:
        addr = parse_host(text)
        assert addr is not None and p.check(addr) is None, text
    for text in ("127.0.0.70", "::ffff:127.0.0.70", "127.1", "fd00::1"):
        addr = parse_host(text)
        assert addr is not None
        why = p.check(addr)
        assert why is not None and why.endswith(f"not in {ALLOW_FIELD}"), (text, why)
    addr = parse_host("127.0.0.66")
    assert addr is not None and "denied by monitor.probe_deny" in (p.check(addr) or "")  # deny beats allow


def test_names_are_not_addresses() -> None:
    for name in ("portal.example", "0x7f000042.example", "localhost", "127.0.0.66.", "1.2.3.4.5", "g"):
        assert parse_host(name) is None, name


def test_parse_network() -> None:
    assert str(parse_network("127.0.0.66")) == "127.0.0.66/32"
    assert str(parse_network("fd00::/8")) == "fd00::/8"
    with pytest.raises(ValueError, match="host bits set: did you mean 127.0.0.0/24"):
        parse_network("127.0.0.66/24")
    for bad in ("0x7f000042/32", "127.1/32", "10.0.0.0/33", "not a network", "127.000.0.1/32"):
        with pytest.raises(ValueError, match="CIDR"):
            parse_network(bad)
    assert builtin_reason(parse_network("169.254.0.0/24")) is not None
    assert builtin_reason(parse_network("169.254.169.254/32")) is not None
    assert builtin_reason(parse_network("10.0.0.0/8")) is None
    assert builtin_reason(parse_network("0.0.0.0/0")) is None  # overlaps, but not inside: allowed, still denied inside
