"""The inventory matching a lab (``lab-inventory.yaml``) and what the lab expects it to show.

A lab within one province writes an inventory of that province; a larger one (``--units``
beyond the province, up to the national 3,321) writes a national one (``province: all``),
each unit's province taken from the official list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monitor.inventory import LINK_TIMEOUT
from monitor.lab import imperfections
from monitor.lab.config import LabConfig
from monitor.lab.plan import PROCEDURES_HOST, LabUnit
from monitor.units import provinces


@dataclass(frozen=True, slots=True)
class Expected:
    """One target the monitor should report failing, and why."""

    key: str  # the engine's target key: unit_code/service/probe/target
    unit_code: int
    service: str
    reason: str
    kind: str
    description: str


def signing_file(cfg: LabConfig, unit: LabUnit) -> Path:
    return (cfg.directory / "certs" / f"{unit.code}.pem").absolute()


def portal_url(cfg: LabConfig, unit: LabUnit) -> str:
    return f"https://{unit.portal_host}:{cfg.ports.https}/"


def old_url(cfg: LabConfig, host: str) -> str:
    return f"http://{host}:{cfg.ports.http}/"


def procedures_url(cfg: LabConfig, unit: LabUnit) -> str:
    return f"https://{PROCEDURES_HOST}:{cfg.ports.https}/{unit.code}/"


def dns_server(cfg: LabConfig) -> str:
    return f"127.0.0.1:{cfg.ports.dns}"


def _snmp_doc(cfg: LabConfig) -> dict[str, Any]:
    """The router's SNMP settings (snmpsim.py); the community is read from a file when wardwatch starts."""
    if not cfg.snmp:
        return {}
    community = (cfg.directory / "snmpsim" / "community").absolute()
    return {"snmp": {"port": cfg.ports.snmp, "community_file": str(community), "interfaces": ["Gi0/0"]}}


def _unit_doc(cfg: LabConfig, u: LabUnit, national: bool) -> dict[str, Any]:
    p = cfg.ports
    # Commune names recur across provinces: a national file lets the inventory derive
    # unique codenames (every URL below is explicit, so nothing depends on them).
    named = {} if national else {"codename": u.codename}
    return {
        "code": u.code,
        "name": u.name,
        "type": u.type,
        **named,
        "merged_from": [{"code": o.code, "name": o.name, "domains": [o.host]} for o in u.old_domains],
        "link": {"address": u.address("router"), **_snmp_doc(cfg)},
        # Each room: ping, H.323 call signalling (the vc port), SIP OPTIONS (UDP for the government
        # room, TCP for the Party room, so both transports are watched), STUN Binding.
        "vc_gov": {"address": u.address("vc_gov"), "h323": [p.vc],
                   "sip": [f"sip:{u.address('vc_gov')}:{p.sip};transport=udp"], "stun": [p.stun]},
        "vc_party": {"address": u.address("vc_party"), "h323": [p.vc],
                     "sip": [f"sip:{u.address('vc_party')}:{p.sip};transport=tcp"], "stun": [p.stun]},
        "portal": {"url": portal_url(cfg, u)},
        # MX lookup + SMTP + STARTTLS by the email probe (defaults.probes.email.smtp_port)
        "email": {"domain": u.mail_domain},
        "certs": {"hosts": [f"{u.portal_host}:{p.https}"], "files": [str(signing_file(cfg, u))]},
    }


def inventory_text(cfg: LabConfig, province: int | str, units: list[LabUnit]) -> str:
    t = cfg.timing
    link_timeout = min(LINK_TIMEOUT, t.timeout)
    where = "all provinces" if province == "all" else f"province {province} ({provinces()[int(province)]})"
    head = (
        f"# wardwatch lab inventory: {len(units)} simulated units of {where}.\n"
        "# Written by `wardwatch lab`; every address is on loopback (see monitor/lab/plan.py).\n"
    )
    doc: dict[str, Any] = {
        "province": province,
        "monitor": {"dns_servers": [dns_server(cfg)]},
        "defaults": {
            "interval": f"{t.interval:g}s",
            "timeout": f"{t.timeout:g}s",
            "rechecks": t.rechecks,
            "recheck_spacing": f"{t.recheck_spacing:g}s",
            "ca_file": str((cfg.directory / "ca.pem").absolute()),
            "templates": {
                "procedures": f"https://{PROCEDURES_HOST}:{cfg.ports.https}/{{code}}/",
                "old_domain_url": f"http://{{domain}}:{cfg.ports.http}/",
            },
            # The link as a real inventory would have it: its own short timeout (the parent's
            # confirmation dates every 'unit isolated') and 5 pings a round, so one lost ping
            # reads as 20% loss, not 50% (alerts/engine.py's link-degraded limit is > 20%).
            "services": {
                "link": {
                    "timeout": f"{link_timeout:g}s",
                    "icmp": {"count": 5, "interval_seconds": round(min(0.1, link_timeout / 10), 3)},
                },
            },
            "probes": {
                "icmp": {"count": 2, "interval_seconds": 0.1},
                "tls": {"fail_if_expires_within_days": imperfections.SOON_DAYS},
                "certfile": {"fail_if_expires_within_days": imperfections.SOON_DAYS},
                "email": {"smtp_port": cfg.ports.smtp},
            },
        },
        "units": [_unit_doc(cfg, u, province == "all") for u in units],
    }
    return head + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)


def expected_failures(cfg: LabConfig, units: list[LabUnit]) -> list[Expected]:
    """The targets the built-in imperfections make fail, with their reasons."""
    out: list[Expected] = []
    by_index = imperfections.assign(len(units))
    for u in units:
        imp = by_index.get(u.index)
        if imp is None:
            continue
        portal = f"{u.code}/portal/http/{portal_url(cfg, u)}"
        olds = [f"{u.code}/portal/http/{old_url(cfg, o.host)}" for o in u.old_domains]
        tls = f"{u.code}/certs/tls/{u.portal_host}:{cfg.ports.https}"
        certfile = f"{u.code}/certs/certfile/{signing_file(cfg, u)}"
        reasons: dict[str, str] = {}
        if imp.kind == "cert_expires_soon":
            reasons[tls] = "tls_expires_soon"
        elif imp.kind == "signing_soon":
            reasons[certfile] = "cert_expires_soon"
        elif imp.kind in ("cert_expired", "hostname_mismatch"):
            why = "tls_expired" if imp.kind == "cert_expired" else "tls_hostname_mismatch"
            reasons.update(dict.fromkeys([portal, *olds, tls], why))
        elif imp.kind == "redirect_missing":
            reasons[olds[0]] = "redirect_missing"
        elif imp.kind == "portal_503":
            reasons.update(dict.fromkeys([portal, *olds], "http_status"))
        elif imp.kind == "slow_portal":
            reasons.update(dict.fromkeys([portal, *olds], "timeout"))
        for key, why in reasons.items():
            service = key.split("/", 2)[1]
            out.append(Expected(key, u.code, service, why, imp.kind, imp.description))
    return out


def write(cfg: LabConfig, units: list[LabUnit]) -> list[Path]:
    """Write ``lab-inventory.yaml``; returns its path (in a list, for the callers' printing)."""
    spanned = {u.province for u in units}
    province: int | str = cfg.province if spanned <= {cfg.province} else "all"
    path = cfg.directory / "lab-inventory.yaml"
    path.write_text(inventory_text(cfg, province, units), encoding="utf-8")
    return [path]
