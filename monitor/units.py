"""The official list of commune-level units (from ``vietnam_provinces``), names, slugs and the
inventory skeleton ``wardwatch inventory init`` writes.

Since the July 2025 reorganisation Vietnam has 34 provinces and 3,321 commune-level units
(phường, xã, đặc khu); Ho Chi Minh City (province 79) has 168 of them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

import yaml

UNIT_TYPES: tuple[str, ...] = ("phường", "xã", "đặc khu")

# Provinces whose portal domain is not simply the slug of their name.
_DOMAIN_SUFFIXES: dict[int, str] = {79: "hochiminhcity.gov.vn"}

_WS = re.compile(r"\s+")
_NON_SLUG = re.compile(r"[^a-z0-9]+")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class UnknownProvinceError(ValueError):
    """A province code that is not one of the 34 official ones."""

    def __init__(self, code: object) -> None:
        listing = ", ".join(f"{c} ({n})" for c, n in provinces().items())
        super().__init__(f"unknown province code {code!r}; valid codes: {listing}")
        self.code = code


@dataclass(frozen=True, slots=True)
class OfficialUnit:
    """One commune-level unit as the official list describes it (names normalised)."""

    province: int
    code: int
    name: str  # "Phường Rạch Dừa"
    type: str  # "phường" | "xã" | "đặc khu"
    official_codename: str  # "phuong_rach_dua"
    # DNS-friendly slug: 'phuong_rach_dua' -> 'phuong-rach-dua'. A few official codenames are
    # shared by two units of one province (Xã Thanh An / Xã Thạnh An, both 'xa_thanh_an'); each
    # of those gets its code appended ('xa-thanh-an-25807', 'xa-thanh-an-27676').
    codename: str


def normalise_name(name: str) -> str:
    """NFC, single spaces, no surrounding blanks: 'Phường  Rạch Dừa' -> 'Phường Rạch Dừa'."""
    return _WS.sub(" ", unicodedata.normalize("NFC", name)).strip()


def ascii_slug(text: str) -> str:
    """'Phường Rạch Dừa' -> 'phuong-rach-dua' (diacritics dropped, đ -> d)."""
    t = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    t = "".join(c for c in t if not unicodedata.combining(c)).lower()
    return _NON_SLUG.sub("-", t).strip("-")


def codename_slug(codename: str) -> str:
    """An official codename as a DNS label: 'phuong_vung_tau' -> 'phuong-vung-tau'."""
    return ascii_slug(codename.replace("_", " "))


def name_slug(name: str) -> str:
    """Slug of a unit's name without its type: 'Phường Vũng Tàu' -> 'vung-tau'."""
    n = normalise_name(name)
    for t in sorted(UNIT_TYPES, key=len, reverse=True):
        if n.lower().startswith(t + " "):
            n = n[len(t) + 1 :]
            break
    return ascii_slug(n)


def is_dns_label(value: str) -> bool:
    return bool(_DNS_LABEL.match(value))


@cache
def provinces() -> dict[int, str]:
    """Official province code -> name, in code order (34 entries)."""
    from vietnam_provinces import Province

    return {int(p.code): normalise_name(p.name) for p in sorted(Province.iter_all(), key=lambda p: p.code)}


@cache
def _all_units() -> tuple[OfficialUnit, ...]:
    from vietnam_provinces import Ward

    wards = sorted(Ward.iter_all(), key=lambda w: (int(w.province_code), int(w.code)))
    seen: dict[tuple[int, str], int] = {}
    for w in wards:
        key = (int(w.province_code), codename_slug(str(w.codename)))
        seen[key] = seen.get(key, 0) + 1
    units = []
    for w in wards:
        slug = codename_slug(str(w.codename))
        if seen[(int(w.province_code), slug)] > 1:
            slug = f"{slug}-{int(w.code)}"
        units.append(
            OfficialUnit(
                province=int(w.province_code),
                code=int(w.code),
                name=normalise_name(w.name),
                type=str(w.division_type.value),
                official_codename=str(w.codename),
                codename=slug,
            )
        )
    return tuple(units)


def official_units(province: int | None = None) -> list[OfficialUnit]:
    """Commune-level units of ``province`` (None: all 3,321), ordered by (province, code).

    Raises ``UnknownProvinceError`` for a code that is not an official province.
    """
    if province is None:
        return list(_all_units())
    if province not in provinces():
        raise UnknownProvinceError(province)
    return [u for u in _all_units() if u.province == province]


@cache
def official_index(province: int) -> dict[int, OfficialUnit]:
    """Unit code -> unit for one province."""
    return {u.code: u for u in official_units(province)}


def default_domain_suffix(province: int) -> str:
    """'hochiminhcity.gov.vn' for 79; otherwise '<name without type>.gov.vn' ('hanoi.gov.vn')."""
    if province in _DOMAIN_SUFFIXES:
        return _DOMAIN_SUFFIXES[province]
    name = provinces().get(province)
    if name is None:
        raise UnknownProvinceError(province)
    name = re.sub(r"^(thành phố|tỉnh)\s+", "", name, flags=re.IGNORECASE)
    return ascii_slug(name).replace("-", "") + ".gov.vn"


_SKELETON_HEAD = """\
# wardwatch inventory for {province_name} (province {province}), {count} commune-level units.
# Generated by `wardwatch inventory init` from the official list (vietnam-provinces).
# Check it with `wardwatch inventory validate FILE`.
#
# The official list carries no lineage: fill `merged_from` with the old units merged into
# each unit (code, name, the old portal domains that must now redirect to the new portal).
#
# Service blocks a unit may have (all accept interval/timeout/rechecks/recheck_spacing,
# `enabled: false`, and per-probe options such as `icmp: {{count: 5}}`):
#   link:       {{address: 127.0.0.1}}                       # router -> icmp
#   vc_gov:     {{address: 127.0.1.1, tcp_ports: [443]}}     # video conference (government)
#   vc_party:   {{address: 127.0.2.1, tcp_ports: []}}        # video conference (party)
#   portal:     {{url: "https://..."}}                      # default: defaults.templates.portal
#   email:      {{domain: ..., smtp: ["mx1.example.vn:25"]}} # default domain: templates.email
#   certs:      {{hosts: ["host:443"], files: ["/etc/ssl/unit.pem"]}}
#   procedures: {{url: "https://..."}}                      # default: templates.procedures
#   checks:     [{{service: portal, probe: dns, target: "127.0.0.53:53", query_name: x.gov.vn}}]
"""


def skeleton(province: int, domain_suffix: str | None = None) -> str:
    """YAML text of an inventory listing every official unit of ``province``; it validates as is."""
    units = official_units(province)
    suffix = domain_suffix or default_domain_suffix(province)
    head = _SKELETON_HEAD.format(province_name=provinces()[province], province=province, count=len(units))
    doc_top = {
        "province": province,
        "monitor": {
            "dns_servers": [],
            "concurrency": 1000,
            "per_host_concurrency": 8,
            "allow_any_target": False,
            "modules": {},
        },
        "defaults": {
            "interval": "30s",
            "timeout": "10s",
            "rechecks": 2,
            "recheck_spacing": "2s",
            "ca_file": None,
            "templates": {
                "portal": f"https://{{codename}}.{suffix}/",
                "email": f"{{codename}}.{suffix}",
                "procedures": None,
                "old_domain_url": "https://{domain}/",
            },
            "probes": {},
            "services": {},
        },
    }
    doc_units = {
        "units": [
            {"code": u.code, "name": u.name, "type": u.type, "codename": u.codename, "merged_from": []}
            for u in units
        ]
    }

    def dump(d: object) -> str:
        return yaml.safe_dump(d, allow_unicode=True, sort_keys=False, default_flow_style=False, width=100)

    return head + "\n" + dump(doc_top) + "\n" + dump(doc_units)
