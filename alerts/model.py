"""The seam between the alert engine (pure decisions) and delivery (outbox, notifiers).

The engine turns probe results, state changes and the clock into ``Notification``s;
delivery renders and sends them and never decides anything. Both sides use only
these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class AlertKind(StrEnum):
    TARGET_DOWN = "target_down"
    LINK_DEGRADED = "link_degraded"
    SNMP_INTERFACE_DOWN = "snmp_interface_down"
    SNMP_REBOOT = "snmp_reboot"
    CERT_EXPIRING = "cert_expiring"  # tiers 30, 14, 7, 1 days: ``tier`` says which
    CERT_EXPIRED = "cert_expired"
    REDIRECT_BROKEN = "redirect_broken"  # old domain: redirect missing or pointing elsewhere
    UNIT_ISOLATED = "unit_isolated"  # the unit's link is down; children folded in
    FLAPPING = "flapping"
    MONITORING_DEGRADED = "monitoring_degraded"  # a large share of all targets failed at once
    STORAGE_DEGRADED = "storage_degraded"


class Event(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    id: str  # stable for one incident: kind + subject (+ tier); same across restarts
    kind: AlertKind
    severity: str  # "page" | "ticket" | "info"
    started_at: datetime  # UTC; for target_down: the first failed probe, not the confirmation
    unit_code: int | None = None
    unit: str = ""
    service: str = ""
    probe: str = ""
    target: str = ""
    reason: str = ""  # probes.base.Reason value where there is one
    message: str = ""
    tier: int | None = None  # certificate tier in days
    children: tuple[str, ...] = ()  # unit_isolated: target keys that are unreachable
    in_maintenance: bool = False
    labels: tuple[tuple[str, str], ...] = field(default=())
    # cert_expiring/cert_expired: the id of the less urgent tier's alert (of the same certificate)
    # this one replaces; that one ends without a message of its own. "" = none.
    supersedes: str = ""


@dataclass(frozen=True, slots=True)
class Notification:
    alert: Alert
    event: Event
    at: datetime  # UTC: when the engine decided it
    receiver: str = ""  # "" = route by the configuration; set by escalation
    ended_at: datetime | None = None  # resolved: when the incident ended

    @property
    def dedup_key(self) -> str:
        """The same incident's same event always has the same key (receivers and the
        outbox drop repeats); a new incident of the same subject gets a new one."""
        return f"{self.alert.id}|{self.event.value}|{self.alert.started_at.isoformat()}|{self.receiver}"
