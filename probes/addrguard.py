"""The address policy for /probe targets outside the inventory: pure functions, no I/O.

With ``monitor.allow_any_target: true`` anyone who reaches /probe chooses what wardwatch
connects to. The policy decides, for one IP address, whether that is allowed:

1. the built-in deny list (``BUILTIN_DENY``: unspecified, link-local, cloud metadata
   endpoints, multicast, broadcast and reserved) always wins, even over ``probe_allow``;
2. then ``monitor.probe_deny``;
3. then, when ``monitor.probe_allow`` is not empty, the address must be inside it.

Every textual form a resolver or the kernel would take as the same address is brought to
one form first (``parse_host``), and an IPv6 address that carries an IPv4 address
(``::ffff:a.b.c.d``, ``::a.b.c.d``, NAT64's ``64:ff9b::/96``, 6to4, Teredo) is judged by
the IPv4 address too (``embedded_ipv4``), so no spelling gets around a rule.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DENY_FIELD = "monitor.probe_deny"
ALLOW_FIELD = "monitor.probe_allow"

# (network, why): most specific first, so a refusal names the metadata service rather than
# the link-local block that contains it.
BUILTIN_DENY: tuple[tuple[str, str], ...] = (
    ("169.254.169.254/32", "cloud metadata service (AWS, GCP, Azure, OpenStack, Oracle, ...)"),
    ("169.254.170.2/32", "cloud metadata service (AWS ECS task credentials)"),
    ("fd00:ec2::254/128", "cloud metadata service (AWS IPv6)"),
    ("fd20:ce::254/128", "cloud metadata service (GCP IPv6)"),
    ("100.100.100.200/32", "cloud metadata service (Alibaba Cloud)"),
    ("192.0.0.192/32", "cloud metadata service (Oracle Cloud Classic)"),
    ("168.63.129.16/32", "cloud platform service (Azure WireServer)"),
    ("169.254.0.0/16", "link-local"),
    ("fe80::/10", "link-local"),
    ("0.0.0.0/8", "unspecified ('this network': reaches the local host)"),
    ("::/128", "unspecified (reaches the local host)"),
    ("255.255.255.255/32", "broadcast"),
    ("224.0.0.0/4", "multicast"),
    ("ff00::/8", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_BUILTIN: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why) for net, why in BUILTIN_DENY
)

_NAT64_WKP = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_V4_COMPAT = ipaddress.IPv6Network("::/96")  # RFC 4291 IPv4-compatible (deprecated)

# One part of an inet_aton address, as glibc's strtoul(..., 0) reads it: hex, octal, decimal.
_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")
_CSPACE = " \t\n\v\f\r"  # isspace() in the C locale


def parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address glibc's inet_aton() reads from ``text``, or None.

    It takes 1 to 4 parts separated by dots, each decimal, octal (leading 0) or hex (0x);
    the last part fills the remaining bytes (``127.1``, ``2852039166``); anything after
    white space is ignored. getaddrinfo() and many URL parsers share these rules, so a
    target written this way must be judged as the address it reaches.
    """
    parts: list[int] = []
    pos = 0
    while True:
        m = _PART.match(text, pos)
        if m is None:
            return None
        digits = m.group()
        if digits[:2].lower() == "0x":
            value = int(digits[2:], 16)
        elif digits.startswith("0"):
            value = int(digits, 8)
        else:
            value = int(digits)
        parts.append(value)
        pos = m.end()
        if pos < len(text) and text[pos] == ".":
            if len(parts) == 4 or value > 0xFF:
                return None
            pos += 1
            continue
        if pos < len(text) and text[pos] not in _CSPACE:
            return None
        break
    last_max = (0xFFFFFFFF, 0xFFFFFF, 0xFFFF, 0xFF)[len(parts) - 1]
    if parts[-1] > last_max:
        return None
    value = parts[-1]
    for i, byte in enumerate(parts[:-1]):
        value |= byte << (24 - 8 * i)
    return ipaddress.IPv4Address(value)


def parse_literal(text: str) -> IPAddress | None:
    """A strict IP literal (what the resolver hands out, optionally in brackets), or None."""
    try:
        return ipaddress.ip_address(text.strip("[]") if text.startswith("[") else text)
    except ValueError:
        return None


def parse_host(text: str) -> IPAddress | None:
    """The address a host written as an IP literal in any accepted form stands for; None for a name."""
    literal = parse_literal(text)
    if literal is not None:
        return literal
    return parse_inet_aton(text)


def embedded_ipv4(addr: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """IPv4 addresses an IPv6 address carries: the packets may end up there."""
    if isinstance(addr, ipaddress.IPv4Address):
        return ()
    out: list[ipaddress.IPv4Address] = []
    plain = ipaddress.IPv6Address(int(addr))  # without a zone id
    if plain.ipv4_mapped is not None:
        out.append(plain.ipv4_mapped)
    elif plain in _NAT64_WKP or (plain in _V4_COMPAT and int(plain) > 1):  # not :: nor ::1
        out.append(ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF))
    if plain.sixtofour is not None:
        out.append(plain.sixtofour)
    if plain.teredo is not None:
        out.extend(plain.teredo)  # (server, client)
    return tuple(out)


def destination(addr: IPAddress) -> IPAddress:
    """Where a connection to ``addr`` really goes: the IPv4 address inside a mapped,
    compatible or NAT64 address, else ``addr`` itself. ``probe_allow`` is matched on this."""
    if isinstance(addr, ipaddress.IPv6Address):
        plain = ipaddress.IPv6Address(int(addr))
        if plain.ipv4_mapped is not None:
            return plain.ipv4_mapped
        if plain in _NAT64_WKP or (plain in _V4_COMPAT and int(plain) > 1):
            return ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF)
    return addr


def parse_network(text: str) -> IPNetwork:
    """A CIDR (``127.0.0.66/32``, ``10.0.0.0/8``, ``fd00::/8``) or a bare address; ValueError
    with a message for the user otherwise (host bits set, inet_aton spellings, garbage)."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"not a network in CIDR notation (e.g. 127.0.0.66/32, fd00::/8): {text!r}") from e
        raise ValueError(f"{text!r} has host bits set: did you mean {loose}?") from e


def builtin_reason(net: IPNetwork) -> str | None:
    """Why ``net`` can never be allowed: it lies entirely inside the built-in deny list."""
    for builtin, why in _BUILTIN:
        if net.version == builtin.version and net.subnet_of(builtin):  # type: ignore[arg-type]  # same version
            return f"{builtin}: {why}"
    return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    def check(self, addr: IPAddress) -> str | None:
        """None when ``addr`` may be connected to, else why not (names the rule)."""
        candidates: tuple[IPAddress, ...] = (addr, *embedded_ipv4(addr))
        for cand in candidates:
            shown = _shown(addr, cand)
            for net, why in _BUILTIN:
                if cand in net:
                    return f"address {shown} denied by the built-in deny list of {DENY_FIELD}: {why}"
            for net in self.deny:
                if cand in net:
                    return f"address {shown} denied by {DENY_FIELD} ({net})"
        if self.allow:
            dest = destination(addr)
            if not any(dest in net for net in self.allow):
                return f"address {_shown(addr, dest)} not in {ALLOW_FIELD}"
        return None


def _shown(addr: IPAddress, cand: IPAddress) -> str:
    return str(addr) if cand == addr else f"{addr} (IPv4 {cand})"


@lru_cache(maxsize=16)
def policy(allow: tuple[str, ...], deny: tuple[str, ...]) -> AddressPolicy:
    """The policy of a validated inventory's lists (built once per distinct pair of lists)."""
    return AddressPolicy(tuple(map(parse_network, allow)), tuple(map(parse_network, deny)))
