"""The lab's address and name plan: pure functions of (unit index, role).

Every unit ``i`` (0-based, in the order the lab lists them) gets one loopback address per
role::

    127.<10 + role>.<i // 250>.<i % 250 + 1>

    role 0 router (link)   127.10.x.y      role 4 mail host         127.14.x.y
    role 1 vc_gov room     127.11.x.y      role 5 old domain 1      127.15.x.y
    role 2 vc_party room   127.12.x.y      role 6 old domain 2      127.16.x.y
    role 3 portal          127.13.x.y      role 7 old domain 3      127.17.x.y

so unit 0's portal is 127.13.0.1 and unit 3,320's router 127.10.13.71. ``decode`` inverts it
(the servers find the unit and role from the address a connection arrived on). The shared
national procedures portal is ``dichvucong.lab.test`` at 127.9.0.1; nothing else uses 127.9/16.

Names live under ``lab.test`` (``.test`` is reserved for testing, RFC 2606)::

    portal     <codename>.p<province>.lab.test         (also the unit's mail domain)
    mail host  mail.<codename>.p<province>.lab.test   (MX of the mail domain)
    router     router.<codename>.p<province>.lab.test
    vc rooms   vc-gov.<...>, vc-party.<...>
    old domain old<k>-<old code>.lab.test              k = 1..3, 1 + i % 3 of them per unit

Old (pre-2025) units are synthetic: the official list carries no lineage. Their codes are
``unit code * 10 + k`` (never an official commune code, which has 5 digits).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from monitor.units import OfficialUnit, official_units

DOMAIN = "lab.test"
ROLES: tuple[str, ...] = ("router", "vc_gov", "vc_party", "portal", "mail", "old1", "old2", "old3")
ROLE_BASE = 10
PER_BLOCK = 250
MAX_UNITS = PER_BLOCK * 256
PROCEDURES_HOST = f"dichvucong.{DOMAIN}"
PROCEDURES_ADDRESS = "127.9.0.1"
MAX_OLD_DOMAINS = 3


def address(index: int, role: str) -> str:
    """The loopback address of ``role`` for unit ``index``."""
    if not 0 <= index < MAX_UNITS:
        raise ValueError(f"unit index {index} outside 0..{MAX_UNITS - 1}")
    r = ROLES.index(role)
    return f"127.{ROLE_BASE + r}.{index // PER_BLOCK}.{index % PER_BLOCK + 1}"


def decode(addr: str) -> tuple[int, str] | None:
    """(unit index, role) of a lab address; None for any other address."""
    try:
        ip = ipaddress.IPv4Address(addr)
    except ValueError:
        return None
    a, b, c, d = ip.packed
    r = b - ROLE_BASE
    if a != 127 or not 0 <= r < len(ROLES) or not 1 <= d <= PER_BLOCK:
        return None
    return c * PER_BLOCK + d - 1, ROLES[r]


@dataclass(frozen=True, slots=True)
class OldDomain:
    code: int
    name: str
    host: str
    address: str


@dataclass(frozen=True, slots=True)
class LabUnit:
    index: int
    province: int
    code: int
    name: str
    type: str
    codename: str
    zone_label: str  # "<codename>.p<province>", relative to DOMAIN
    old_domains: tuple[OldDomain, ...]

    def address(self, role: str) -> str:
        return address(self.index, role)

    def host(self, role: str) -> str:
        prefix = {"router": "router.", "vc_gov": "vc-gov.", "vc_party": "vc-party.", "mail": "mail.", "portal": ""}
        return f"{prefix[role]}{self.zone_label}.{DOMAIN}"

    @property
    def portal_host(self) -> str:
        return self.host("portal")

    @property
    def mail_domain(self) -> str:
        return self.portal_host

    @property
    def mail_host(self) -> str:
        return self.host("mail")


def select_units(count: int | None, province: int = 79) -> list[OfficialUnit]:
    """``count`` units (None: all of ``province``): the province's first, then the rest of the
    official list in (province, code) order, so any count up to 3,321 is possible."""
    own = official_units(province)
    if count is None:
        return own
    if count <= len(own):
        return own[:count]
    others = [u for u in official_units(None) if u.province != province]
    chosen = own + others[: count - len(own)]
    if len(chosen) < count:
        raise ValueError(f"only {len(chosen)} official units exist, {count} asked")
    return chosen


def build_plan(units: list[OfficialUnit]) -> list[LabUnit]:
    out: list[LabUnit] = []
    for i, u in enumerate(units):
        olds = tuple(
            OldDomain(
                code=u.code * 10 + k,
                name=f"Đơn vị cũ {k} của {u.name}",
                host=f"old{k}-{u.code * 10 + k}.{DOMAIN}",
                address=address(i, f"old{k}"),
            )
            for k in range(1, 2 + i % MAX_OLD_DOMAINS)
        )
        out.append(LabUnit(i, u.province, u.code, u.name, u.type, u.codename, f"{u.codename}.p{u.province}", olds))
    return out


def all_names(units: list[LabUnit]) -> dict[str, str]:
    """Every lab host name -> its address (the A records of the zone)."""
    names: dict[str, str] = {PROCEDURES_HOST: PROCEDURES_ADDRESS}
    for u in units:
        for role in ("router", "vc_gov", "vc_party", "portal", "mail"):
            names[u.host(role)] = u.address(role)
        for old in u.old_domains:
            names[old.host] = old.address
    return names
