"""The built-in alert engine: probe results and the clock in, notifications out.

Pure decisions, no I/O: every method takes the time it should act at, so tests drive it
with a fake clock, and delivery (outbox, notifiers) only sends what it returns.

What it decides, per target (``on_result``, O(1) per result):

- **down** (``target_down``; ``redirect_broken`` for an old domain that must redirect;
  ``snmp_interface_down`` when that is the reason): opens after ``open_after`` consecutive
  failed results (the engine's re-checks count), dated from the first of them; resolves after
  ``close_after`` consecutive successes. A failure that recovers before that sends nothing.
  Certificate reasons (expired, expiring) are left to the certificate alerts, not counted as
  down: one expired certificate is one message.
- **certificates**: each certificate (``alerts.certs``: an endpoint's leaf fingerprint + earliest
  notAfter, or a file's path + serial + notAfter) gets one message per tier (30/14/7/1 days, then
  expired) however often it is probed and however many endpoints serve it (a portal, its old
  domains redirecting to it, a ``certs`` target; in one unit or several); a more urgent tier
  supersedes the previous one (``Alert.supersedes``). The alert carries the unit, service and
  target of the first endpoint that reported it (so routing by unit stays stable once sent) and
  lists every endpoint that reported it in ``children`` (label ``certificate``: its identity);
  maintenance suppresses it only while every such endpoint is in a window. It resolves when no
  endpoint reports it any more (each for ``close_after`` of its certificate-bearing results):
  renewed or removed.
- **link degraded**: a link over the loss / RTT thresholds (or graded degraded by the link probe)
  for ``degraded_rounds`` rounds; **SNMP reboot** from ``wardwatch_snmp_reboot_detected``.
- **flapping**: Nagios' weighted state-change ratio over the last ``flap_window`` rounds;
  while flapping, the target's down/up messages are held (a resolution too) until it settles.

And across targets:

- **dependencies**: a unit's ``link`` targets are the parent of its other services. A confirmed
  link outage is one ``unit_isolated`` alert listing the unreachable children; the children's
  new alerts are suppressed. A child that confirms while its link is failing but not yet
  confirmed, or before the link has been probed since the child began failing, is held
  ("dependency") until the link answers or ``2 link intervals + re-checks`` have passed. When the
  link recovers, a child still down pages on its next failed result (never on a failure seen
  while the link was down). Resolutions are never suppressed.
- **global guard**: when, over the last ``global_window_seconds``, at least
  ``global_min_targets`` probe rounds and ``global_share`` of all rounds were *new* failures (a
  target seen succeeding whose failure began within the window: targets failing for longer, or
  since the engine started, such as long-standing breakage, are not a sign of a network-wide cut
  and count as any other round; so a monitor that starts with its own uplink already down is not
  caught here), one ``monitoring_degraded`` alert fires and individual pages are held; it clears
  when the failures of targets that began failing from the window before it tripped fall below
  ``global_min_targets`` rounds or half that share, and a target still down then pages on its
  next failed result. While new failures build up towards the threshold (a fifth of the share,
  half the count) new pages wait ("global_check") so the first targets to confirm in a
  network-wide cut do not page before the guard trips; that wait ends after at most
  ``global_window_seconds`` per alert if the guard has not tripped.
- **maintenance**: alerts inside a window are suppressed and marked ``in_maintenance``; a window
  ending while the condition holds pages on the next tick.
- **ack and escalation**: a page not acknowledged within the chain's time goes to the next receiver.
- **storage degraded**: ``storage_failed``/``storage_ok``, needing no store.

``dump()``/``load()`` keep firing, acknowledged and suppressed alerts and each target's down /
flapping / certificate state across a restart, so nothing already sent is sent again. The
counters of a failure sequence not yet confirmed, and the link-degraded round counts, restart
from zero.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts import flapping as flap
from alerts.certs import DAY, ENDPOINT_EXPIRY, FILE_EXPIRY, seen_certs, tier_of
from alerts.codec import alert_from_json, alert_to_json
from alerts.maintenance import MaintenanceCalendar
from alerts.model import Alert, AlertKind, Event, Notification
from monitor.targets import Target
from probes.base import ProbeResult

LINK = "link"
# Failures that are a certificate's condition, not the service's availability.
CERT_REASONS = frozenset({"tls_expired", "tls_expires_soon", "cert_expired", "cert_expires_soon"})
# A reason that makes a down incident a kind of its own.
KIND_BY_REASON: dict[str, AlertKind] = {"snmp_interface_down": AlertKind.SNMP_INTERFACE_DOWN}
DOWN_KINDS = frozenset({AlertKind.TARGET_DOWN, AlertKind.REDIRECT_BROKEN, AlertKind.SNMP_INTERFACE_DOWN})
CERT_KINDS = frozenset({AlertKind.CERT_EXPIRING, AlertKind.CERT_EXPIRED})
SEVERITY: dict[AlertKind, str] = {
    AlertKind.TARGET_DOWN: "page",
    AlertKind.UNIT_ISOLATED: "page",
    AlertKind.SNMP_INTERFACE_DOWN: "page",
    AlertKind.MONITORING_DEGRADED: "page",
    AlertKind.STORAGE_DEGRADED: "page",
    AlertKind.CERT_EXPIRED: "page",
    AlertKind.CERT_EXPIRING: "ticket",  # 7 and 1 days: page (see _cert_severity)
    AlertKind.REDIRECT_BROKEN: "ticket",
    AlertKind.LINK_DEGRADED: "ticket",
    AlertKind.FLAPPING: "ticket",
    AlertKind.SNMP_REBOOT: "info",
}
PAGE_TIER_DAYS = 7

LOSS = "wardwatch_icmp_loss_ratio"
RTT = "wardwatch_icmp_rtt_seconds"
QUALITY = "wardwatch_link_quality"  # probes/link.py: 2 good, 1 degraded, 0 down
REBOOT = "wardwatch_snmp_reboot_detected"
_WATCHED = frozenset({LOSS, RTT, QUALITY, REBOOT, ENDPOINT_EXPIRY, FILE_EXPIRY})

# Why an alert is not (yet) sent; "" = it may be.
MAINTENANCE = "maintenance"
ISOLATED = "unit_isolated"
DEPENDENCY = "dependency"
FLAPPING = "flapping"
GLOBAL = "monitoring_degraded"
ARMING = "global_check"  # many targets failing at once: the global guard may be about to trip

# 2: certificates by identity (engine-wide "certs"), not per target; format 1 is still read.
STATE_VERSION = 2


@dataclass(frozen=True)
class AlertPolicy:
    """Thresholds as data (the inventory's ``alerting.policy``)."""

    open_after: int = 3  # consecutive failed results (re-checks included) before a down alert opens
    close_after: int = 2  # consecutive successes before it resolves
    cert_tiers: tuple[int, ...] = (30, 14, 7, 1)
    # The same limits as the Prometheus rule WardwatchLinkDegraded (> 20% loss or > 250 ms mean RTT
    # for 2m, i.e. ~5 rounds at 30 s): a lone lost ping in a short round must not open a ticket.
    degraded_loss_ratio: float = 0.2
    degraded_rtt_seconds: float = 0.250
    degraded_rounds: int = 5
    flap_window: int = 21
    flap_high: float = 0.5
    flap_low: float = 0.25
    global_share: float = 0.3
    # Short on purpose: the share must rise faster than the first targets confirm (re-checks, ~4 s).
    global_window_seconds: float = 10.0
    global_min_targets: int = 20
    # (receiver, seconds unacknowledged before moving on to the next); the first is the initial
    # receiver ("" = route by configuration). Applies to alerts of severity "page".
    escalation: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.open_after < 1 or self.close_after < 1 or self.degraded_rounds < 1:
            raise ValueError("open_after, close_after and degraded_rounds must be at least 1")
        if not 2 <= self.flap_window <= 64:
            raise ValueError("flap_window must be between 2 and 64 rounds")
        if not 0 <= self.flap_low <= self.flap_high <= 1:
            raise ValueError("need 0 <= flap_low <= flap_high <= 1")


@dataclass(slots=True)
class ActiveAlert:
    """An alert whose condition holds (or whose resolution is held), sent or not."""

    alert: Alert
    notified: bool = False  # firing sent (to receivers 0..receiver of the chain)
    suppressed: str = ""  # why not sent: maintenance | unit_isolated | dependency | flapping | monitoring_degraded
    acked_by: str = ""
    acked_at: datetime | None = None
    receiver: int = 0  # index in the escalation chain of the last receiver paged
    notified_at: datetime | None = None  # when that receiver was paged
    condition: bool = True  # False: over, resolution held while the target flaps
    key: str = ""  # the target's key; "" for unit-level and global alerts
    ended_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "alert": alert_to_json(self.alert),
            "supersedes": self.alert.supersedes,
            "notified": self.notified,
            "suppressed": self.suppressed,
            "acked_by": self.acked_by,
            "acked_at": _ts(self.acked_at),
            "receiver": self.receiver,
            "notified_at": _ts(self.notified_at),
            "condition": self.condition,
            "key": self.key,
            "ended_at": _ts(self.ended_at),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ActiveAlert:
        alert = alert_from_json(d["alert"])
        if d.get("supersedes"):
            alert = replace(alert, supersedes=d["supersedes"])
        return cls(
            alert=alert,
            notified=bool(d.get("notified")),
            suppressed=d.get("suppressed", ""),
            acked_by=d.get("acked_by", ""),
            acked_at=_dt(d.get("acked_at")),
            receiver=int(d.get("receiver", 0)),
            notified_at=_dt(d.get("notified_at")),
            condition=bool(d.get("condition", True)),
            key=d.get("key", ""),
            ended_at=_dt(d.get("ended_at")),
        )


_EPOCH = datetime.fromtimestamp(0, UTC)


def _ts(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(slots=True)
class _Cert:
    """One certificate (``SeenCert.identity``), its open alert and where it is seen."""

    alert_id: str
    level: int  # tier in days, 0 = expired
    # target key -> consecutive certificate-bearing results of that target without it
    where: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class _Track:
    """What the alert engine keeps per target."""

    target: Target
    fails: int = 0
    first_fail_at: datetime | None = None
    last_fail_at: datetime | None = None
    oks: int = 0
    first_ok_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_at: datetime | None = None
    last_started_at: datetime | None = None  # when the probe behind last_at began
    down: bool = False
    down_since: datetime | None = None
    kind: AlertKind = AlertKind.TARGET_DOWN
    reason: str = ""
    message: str = ""
    down_id: str = ""  # the open down alert's id
    release_after: datetime | None = None  # page only on a failure at/after this instant
    release_why: str = ""
    hist: int = 0
    seen: bool = False
    flapping: bool = False
    deg_bad: int = 0
    deg_good: int = 0
    degraded: bool = False
    reboot: bool = False
    certs: set[str] | None = None  # identities of the certificates (with a tier) this target reports

    @property
    def key(self) -> str:
        return self.target.key

    @property
    def is_link(self) -> bool:
        return self.target.service == LINK

    @property
    def isolating(self) -> bool:
        """A confirmed outage of a link target: its unit is cut off."""
        return self.down and self.is_link and self.kind is AlertKind.TARGET_DOWN


@dataclass(slots=True, eq=False)
class _Unit:
    code: int
    name: str
    links: list[_Track] = field(default_factory=list)
    children: list[_Track] = field(default_factory=list)
    isolated: bool = False
    grace: float = 0.0  # seconds a child's page waits for the link to answer
    pending: set[str] = field(default_factory=set)


def down_kind(target: Target, reason: str) -> AlertKind:
    if reason in KIND_BY_REASON:
        return KIND_BY_REASON[reason]
    if getattr(target.config, "expect_redirect_to", None):
        return AlertKind.REDIRECT_BROKEN
    return AlertKind.TARGET_DOWN


class AlertEngine:
    def __init__(
        self,
        policy: AlertPolicy,
        targets: Iterable[Target],
        maintenance: MaintenanceCalendar | None = None,
    ) -> None:
        self.policy = policy
        self.maintenance = maintenance if maintenance is not None else MaintenanceCalendar()
        self._tracks: dict[str, _Track] = {}
        self._units: dict[int, _Unit] = {}
        self._alerts: dict[str, ActiveAlert] = {}
        self._escalating: set[str] = set()
        self._pending: dict[str, datetime] = {}  # child key -> when the dependency hold ends
        self._held_global: set[str] = set()
        # global guard: probe rounds (not re-checks) within the window: (at, a new failure, when
        # the target's failure began or None if it succeeded)
        self._rounds: deque[tuple[datetime, bool, datetime | None]] = deque()
        self._n_rounds = 0
        self._global = False
        self._held_arming: set[str] = set()
        self._arm_since: dict[str, datetime] = {}  # alert id -> when "global_check" first held it
        self._n_new = 0  # rounds in the window that are new failures
        self._cohort_since: datetime | None = None  # guard firing: failures begun from then count
        self._n_cohort = 0
        self._certs: dict[str, _Cert] = {}  # certificate identity -> its state
        self._maint_ids: frozenset[str] = frozenset()
        self._clock: datetime | None = None  # the latest instant the engine was told of
        self._json_cache: dict[str, tuple[tuple[Any, ...], str]] = {}  # dump_json's texts
        self._install(targets)

    # -- targets -------------------------------------------------------------

    def _install(self, targets: Iterable[Target]) -> None:
        old = self._tracks
        self._tracks = {}
        for t in targets:
            tr = old.get(t.key)
            if tr is None:
                tr = _Track(t)
            else:
                tr.target = t
            self._tracks[t.key] = tr
        self._units = {}
        for tr in self._tracks.values():
            t = tr.target
            unit = self._units.get(t.unit_code)
            if unit is None:
                unit = self._units[t.unit_code] = _Unit(t.unit_code, t.unit_name)
            (unit.links if tr.is_link else unit.children).append(tr)
        for unit in self._units.values():
            unit.isolated = any(tr.isolating for tr in unit.links)
            # Up to one interval for the link's next probe (the core probes it again at once when a
            # child fails, but a busy loop can delay that), its confirmation, and one interval of
            # slack. A child whose link answers is released at once, so this only bounds the wait.
            unit.grace = max(
                (2 * lk.target.interval
                 + (lk.target.rechecks + 1) * (lk.target.timeout + lk.target.recheck_spacing) for lk in unit.links),
                default=0.0,
            )

    def set_targets(self, targets: Iterable[Target], at: datetime | None = None) -> list[Notification]:
        """Replace the targets (an inventory reload); the alerts of removed ones resolve (dated
        ``at``, by default the last instant the engine was told of)."""
        targets = list(targets)
        keep = {t.key for t in targets}
        out: list[Notification] = []
        gone = [k for k in self._tracks if k not in keep]
        when = at or self._clock
        for ident, st in list(self._certs.items()):  # a certificate still seen elsewhere stays open
            for k in [k for k in st.where if k not in keep]:
                if ident in self._certs:
                    ca = self._alerts.get(st.alert_id)
                    self._cert_gone(ident, st, k, when or (ca.notified_at or ca.alert.started_at if ca else _EPOCH),
                                    out)
        for a in list(self._alerts.values()):
            if a.key and a.key not in keep:
                self._force_resolve(a, when or a.notified_at or a.alert.started_at, out)
        for k in gone:
            self._pending.pop(k, None)
        self._install(targets)
        # unit-level alerts whose unit or link went away
        for a in list(self._alerts.values()):
            if a.alert.kind is AlertKind.UNIT_ISOLATED and a.alert.unit_code is not None:
                unit = self._units.get(a.alert.unit_code)
                if unit is None or not unit.isolated:
                    self._force_resolve(a, when or a.notified_at or a.alert.started_at, out)
        return out

    def _force_resolve(self, a: ActiveAlert, at: datetime, out: list[Notification]) -> None:
        if a.notified:
            self._send_resolved(a, at, out)
        self._drop(a)

    # -- results ---------------------------------------------------------------

    def on_result(self, target: Target, result: ProbeResult, at: datetime) -> list[Notification]:
        """Fold one probe result in (O(1)); returns what to send."""
        tr = self._tracks.get(target.key)
        if tr is None:
            return []
        out: list[Notification] = []
        p = self.policy
        self._clock = at
        reason = result.reason.value if result.reason is not None else ""
        failed = not result.success and reason not in CERT_REASONS
        # A re-check continues the round it re-checks (the core engine re-checks an unconfirmed failure).
        new_round = not 0 < tr.fails < tr.target.rechecks + 1
        if not tr.seen:
            tr.hist, tr.seen = flap.fill(failed, p.flap_window), True
        elif new_round:
            tr.hist = flap.push(tr.hist, failed, p.flap_window)
        else:
            tr.hist = flap.amend(tr.hist, failed)
        tr.last_at = at
        tr.last_started_at = at - timedelta(seconds=max(0.0, result.duration_seconds))
        if new_round:
            # a new failure: a target seen succeeding that began failing (start-up failures are not)
            began = (tr.first_fail_at or at) if failed and tr.last_ok_at is not None else None
            fresh = began is not None and (at - began).total_seconds() <= p.global_window_seconds
            self._rounds.append((at, fresh, began))
            self._n_rounds += 1
            self._n_new += fresh
            if self._in_cohort(began):
                self._n_cohort += 1
            self._prune(at)
            if self._global:
                if not failed:
                    self._check_global_clear(at, out)
            elif fresh:
                self._check_global(at, out)
        changed = False
        if failed:
            tr.oks = 0
            if tr.fails == 0:
                tr.first_fail_at = at
            tr.fails += 1
            tr.last_fail_at = at
            tr.reason, tr.message = reason, result.message
            if not tr.down and tr.fails >= p.open_after:
                tr.down, tr.down_since, changed = True, tr.first_fail_at, True
                tr.kind = down_kind(tr.target, reason)
        else:
            tr.fails, tr.first_fail_at = 0, None
            if tr.oks == 0:
                tr.first_ok_at = at
            tr.oks += 1
            tr.last_ok_at = at
            if tr.down and tr.oks >= p.close_after:
                tr.down, changed = False, True
            if not tr.down:
                tr.release_after = None
        self._update_flapping(tr, at, out)
        unit = self._units[tr.target.unit_code]
        if tr.is_link and tr.kind is AlertKind.TARGET_DOWN and (changed or tr.down or unit.isolated):
            self._sync_unit(unit, at, out)
        elif tr.down or tr.down_id:
            self._sync_down(tr, at, out)
        if tr.is_link and unit.pending:
            for ck in list(unit.pending):
                child = self._tracks.get(ck)
                if child is not None:
                    self._sync_down(child, at, out)
        if result.samples:
            self._samples(tr, result, at, failed, out)
        return out

    # -- down, units, dependencies ---------------------------------------------

    def _down_alert(self, tr: _Track) -> Alert:
        kind = tr.kind
        assert tr.down_since is not None
        return self._target_alert(tr, kind, f"{kind.value}:{tr.key}", tr.down_since, reason=tr.reason,
                                  message=tr.message)

    def _target_alert(
        self,
        tr: _Track,
        kind: AlertKind,
        aid: str,
        started: datetime,
        *,
        reason: str = "",
        message: str = "",
        severity: str | None = None,
        tier: int | None = None,
        extra: tuple[tuple[str, str], ...] = (),
        supersedes: str = "",
    ) -> Alert:
        t = tr.target
        return Alert(
            id=aid,
            kind=kind,
            severity=severity or SEVERITY[kind],
            started_at=started,
            unit_code=t.unit_code,
            unit=t.unit_name,
            service=t.service,
            probe=t.probe,
            target=t.target,
            reason=reason,
            message=message,
            tier=tier,
            labels=(*t.labels().items(), *extra),
            supersedes=supersedes,
        )

    def _sync_down(self, tr: _Track, at: datetime, out: list[Notification]) -> None:
        a = self._alerts.get(tr.down_id) if tr.down_id else None
        if tr.down:
            if a is None:
                a = ActiveAlert(self._down_alert(tr), key=tr.key)
                self._alerts[a.alert.id] = a
                tr.down_id = a.alert.id
            elif not a.notified:
                a.alert = self._down_alert(tr)  # latest reason until it is sent
            a.condition = True
        elif a is not None:
            a.condition, a.ended_at = False, tr.first_ok_at or at
        else:
            return
        self._reconcile(a, at, out)

    def _unit_alert(self, unit: _Unit, at: datetime) -> Alert:
        down = [lk for lk in unit.links if lk.isolating]
        first = min(down, key=lambda lk: lk.down_since or at)
        since = first.down_since or at
        children = tuple(
            c.key for c in unit.children if not (c.last_ok_at is not None and c.last_ok_at >= since)
        )
        t = first.target
        return Alert(
            id=f"{AlertKind.UNIT_ISOLATED.value}:{unit.code}",
            kind=AlertKind.UNIT_ISOLATED,
            severity=SEVERITY[AlertKind.UNIT_ISOLATED],
            started_at=since,
            unit_code=unit.code,
            unit=unit.name,
            service=LINK,
            probe=t.probe,
            target=t.target,
            reason=first.reason,
            message=first.message,
            children=children,
            labels=(("province", str(t.province)), ("unit_code", str(unit.code)), ("unit", unit.name),
                    ("service", LINK), ("probe", t.probe), ("target", t.target)),
        )

    def _sync_unit(self, unit: _Unit, at: datetime, out: list[Notification]) -> None:
        was = unit.isolated
        unit.isolated = any(lk.isolating for lk in unit.links)
        aid = f"{AlertKind.UNIT_ISOLATED.value}:{unit.code}"
        a = self._alerts.get(aid)
        if unit.isolated:
            if a is None:
                a = ActiveAlert(self._unit_alert(unit, at))
                self._alerts[aid] = a
            elif not a.notified:
                a.alert = self._unit_alert(unit, at)
            a.condition = True
            self._reconcile(a, at, out)
            if not was:  # children: suppressed from now on (those already paged stay, and resolve)
                for c in unit.children:
                    if c.key in unit.pending or c.down_id:
                        self._sync_down(c, at, out)
        else:
            if a is not None:
                ends = [lk.first_ok_at for lk in unit.links if lk.first_ok_at is not None]
                a.condition, a.ended_at = False, max(ends) if ends else at
                self._reconcile(a, at, out)
            if was:  # a child still down pages on its next failure, not on one seen while cut off
                for c in unit.children:
                    if c.fails or c.down:
                        c.release_after, c.release_why = at, ISOLATED
                    if c.down_id:
                        self._sync_down(c, at, out)

    def _dependency_pending(self, unit: _Unit, tr: _Track, at: datetime) -> bool:
        """The link has not yet said whether this child's failure is its own."""
        since = tr.first_fail_at or tr.down_since
        if not unit.links or since is None:
            return False
        if (at - since).total_seconds() >= unit.grace:
            return False
        answered = False
        for lk in unit.links:
            if lk.fails and not lk.down:
                return True  # failing, not yet confirmed
            # Only a probe that *began* after the child's failure speaks for the link now: one in
            # flight when the link was cut can still come back answered (a child that fails fast,
            # a reset, would then page on its own).
            if lk.last_started_at is not None and lk.last_started_at >= since:
                answered = True
        return not answered

    # -- the one place that decides whether to send --------------------------------

    def _why(self, a: ActiveAlert, at: datetime) -> str:
        """Why this alert may not be sent now ("" = it may)."""
        kind = a.alert.kind
        if kind in (AlertKind.MONITORING_DEGRADED, AlertKind.STORAGE_DEGRADED):
            return ""
        tr = self._tracks.get(a.key) if a.key else None
        code = a.alert.unit_code
        unit = self._units.get(code) if code is not None else None
        cert_maint = self._cert_in_maintenance(a, at) if kind in CERT_KINDS else None
        if cert_maint is not None:
            if cert_maint:
                return MAINTENANCE
        elif tr is not None:
            if self.maintenance.active(tr.target, at) is not None:
                return MAINTENANCE
        elif self.maintenance.covering(code, None, at) is not None:
            return MAINTENANCE
        if kind in CERT_KINDS or kind is AlertKind.SNMP_REBOOT:
            return ""
        if kind is AlertKind.UNIT_ISOLATED:
            assert unit is not None
            down = [lk for lk in unit.links if lk.isolating]
            if unit.links and all(lk.flapping for lk in (down or unit.links)):
                return FLAPPING
            released = [lk for lk in down if not _waiting(lk)]
            if down and not released:
                return down[0].release_why or GLOBAL
            if self._global:
                return GLOBAL
            return ARMING if self._arming() and not self._arm_expired(a.alert.id, at) else ""
        assert tr is not None
        if kind in DOWN_KINDS and tr.flapping:
            return FLAPPING
        if unit is not None and unit.isolated and not tr.is_link:
            return ISOLATED
        if kind in DOWN_KINDS and _waiting(tr):
            return tr.release_why or GLOBAL
        if self._global:
            return GLOBAL
        if kind in DOWN_KINDS and self._arming() and not self._arm_expired(a.alert.id, at):
            return ARMING
        if kind in DOWN_KINDS and unit is not None and not tr.is_link and self._dependency_pending(unit, tr, at):
            return DEPENDENCY
        return ""

    def _reconcile(self, a: ActiveAlert, at: datetime, out: list[Notification]) -> None:
        why = self._why(a, at)
        self._note_hold(a, why, at)
        if a.condition:
            if a.notified:
                return
            if why:
                a.suppressed = why
                if (why == MAINTENANCE) != a.alert.in_maintenance:
                    a.alert = replace(a.alert, in_maintenance=why == MAINTENANCE)
                return
            self._send_firing(a, at, out)
            return
        if a.notified and why == FLAPPING:
            a.suppressed = FLAPPING  # the resolution waits until the target settles
            return
        if a.notified:
            self._send_resolved(a, at, out)
        self._drop(a)

    def _note_hold(self, a: ActiveAlert, why: str, at: datetime) -> None:
        aid = a.alert.id
        if why == GLOBAL and not a.notified:
            self._held_global.add(aid)
        else:
            self._held_global.discard(aid)
        if why == ARMING and not a.notified:
            self._held_arming.add(aid)
            self._arm_since.setdefault(aid, at)
        else:
            self._held_arming.discard(aid)
        if a.key and a.alert.kind in DOWN_KINDS:
            tr = self._tracks.get(a.key)
            code = a.alert.unit_code
            unit = self._units.get(code) if code is not None else None
            if why == DEPENDENCY and a.condition and not a.notified and tr is not None and unit is not None:
                since = tr.first_fail_at or tr.down_since or at
                self._pending[a.key] = since + timedelta(seconds=unit.grace)
                unit.pending.add(a.key)
            else:
                self._pending.pop(a.key, None)
                if unit is not None:
                    unit.pending.discard(a.key)

    def _chain(self, a: ActiveAlert) -> bool:
        return bool(self.policy.escalation) and a.alert.severity == "page"

    def _receiver(self, a: ActiveAlert, i: int) -> str:
        return self.policy.escalation[i][0] if self._chain(a) else ""

    def _send_firing(self, a: ActiveAlert, at: datetime, out: list[Notification]) -> None:
        if a.alert.in_maintenance:
            a.alert = replace(a.alert, in_maintenance=False)
        a.notified, a.suppressed, a.receiver, a.notified_at = True, "", 0, at
        self._arm_since.pop(a.alert.id, None)
        out.append(Notification(a.alert, Event.FIRING, at, self._receiver(a, 0)))
        if self._chain(a) and len(self.policy.escalation) > 1 and not a.acked_by:
            self._escalating.add(a.alert.id)

    def _send_resolved(self, a: ActiveAlert, at: datetime, out: list[Notification]) -> None:
        ended = a.ended_at or at
        receivers = dict.fromkeys(self._receiver(a, i) for i in range(a.receiver + 1))
        for r in receivers:
            out.append(Notification(a.alert, Event.RESOLVED, at, r, ended_at=ended))

    def _drop(self, a: ActiveAlert) -> None:
        aid = a.alert.id
        self._alerts.pop(aid, None)
        self._escalating.discard(aid)
        self._held_global.discard(aid)
        self._held_arming.discard(aid)
        self._arm_since.pop(aid, None)
        if a.key:
            self._pending.pop(a.key, None)
            tr = self._tracks.get(a.key)
            if tr is not None and tr.down_id == aid:
                tr.down_id = ""
            code = a.alert.unit_code
            unit = self._units.get(code) if code is not None else None
            if unit is not None:
                unit.pending.discard(a.key)

    # -- flapping ------------------------------------------------------------------

    def _update_flapping(self, tr: _Track, at: datetime, out: list[Notification]) -> None:
        p = self.policy
        h = tr.hist
        if not tr.flapping and (h == 0 or h == (1 << p.flap_window) - 1):
            return
        now = flap.next_flapping(tr.flapping, flap.change_ratio(h, p.flap_window), p.flap_high, p.flap_low)
        if now == tr.flapping:
            return
        tr.flapping = now
        aid = f"{AlertKind.FLAPPING.value}:{tr.key}"
        if now:
            ratio = flap.change_ratio(h, p.flap_window)
            a = ActiveAlert(
                self._target_alert(
                    tr, AlertKind.FLAPPING, aid, at, reason=tr.reason,
                    message=f"state changed in {ratio:.0%} (weighted) of the last {p.flap_window} rounds",
                ),
                key=tr.key,
            )
            self._alerts[aid] = a
            self._reconcile(a, at, out)
            return
        old = self._alerts.get(aid)
        if old is not None:
            old.condition, old.ended_at = False, at
            self._reconcile(old, at, out)
        # settled: the held down/up decision is made now, on the current state
        if tr.is_link and tr.kind is AlertKind.TARGET_DOWN:
            self._sync_unit(self._units[tr.target.unit_code], at, out)
        elif tr.down or tr.down_id:
            self._sync_down(tr, at, out)

    # -- samples: link quality, SNMP reboot, certificates ------------------------------

    def _samples(self, tr: _Track, result: ProbeResult, at: datetime, failed: bool, out: list[Notification]) -> None:
        names = {s.name for s in result.samples if s.name in _WATCHED}
        if not names:
            return
        if tr.is_link and not failed and (QUALITY in names or LOSS in names or RTT in names):
            self._link_quality(tr, result, at, out)
        if REBOOT in names:
            self._reboot(tr, result.value(REBOOT) == 1.0, at, out)
        if ENDPOINT_EXPIRY in names or FILE_EXPIRY in names:
            self._cert_samples(tr, result, at, out)

    def _link_quality(self, tr: _Track, result: ProbeResult, at: datetime, out: list[Notification]) -> None:
        p = self.policy
        quality = result.value(QUALITY)
        why = ""
        if quality is not None:
            bad = quality < 2
            why = result.message
        else:
            loss = result.value(LOSS)
            rtt = result.value(RTT, stat="avg")
            bad = False
            if loss is not None and loss > p.degraded_loss_ratio:
                bad, why = True, f"{loss:.0%} packet loss (limit {p.degraded_loss_ratio:.0%})"
            elif rtt is not None and rtt > p.degraded_rtt_seconds:
                bad, why = True, f"average RTT {rtt * 1000:.0f} ms (limit {p.degraded_rtt_seconds * 1000:.0f} ms)"
        if bad:
            tr.deg_bad, tr.deg_good = tr.deg_bad + 1, 0
        else:
            tr.deg_good, tr.deg_bad = tr.deg_good + 1, 0
        aid = f"{AlertKind.LINK_DEGRADED.value}:{tr.key}"
        if not tr.degraded and tr.deg_bad >= p.degraded_rounds:
            tr.degraded = True
            a = ActiveAlert(self._target_alert(tr, AlertKind.LINK_DEGRADED, aid, at, message=why), key=tr.key)
            self._alerts[aid] = a
            self._reconcile(a, at, out)
        elif tr.degraded and tr.deg_good >= p.close_after:
            tr.degraded = False
            old = self._alerts.get(aid)
            if old is not None:
                old.condition, old.ended_at = False, at
                self._reconcile(old, at, out)

    def _reboot(self, tr: _Track, rebooted: bool, at: datetime, out: list[Notification]) -> None:
        if rebooted == tr.reboot:
            return
        tr.reboot = rebooted
        aid = f"{AlertKind.SNMP_REBOOT.value}:{tr.key}"
        if rebooted:
            alert = self._target_alert(tr, AlertKind.SNMP_REBOOT, aid, at, message="device rebooted")
            a = ActiveAlert(alert, key=tr.key)
            self._alerts[aid] = a
            self._reconcile(a, at, out)
        else:
            a2 = self._alerts.get(aid)
            if a2 is not None:
                a2.condition, a2.ended_at = False, at
                self._reconcile(a2, at, out)

    def _cert_samples(self, tr: _Track, result: ProbeResult, at: datetime, out: list[Notification]) -> None:
        p = self.policy
        now = at.timestamp()
        mine = tr.certs if tr.certs is not None else set()
        seen: set[str] = set()
        for c in seen_certs(result):
            level = tier_of(c.not_after, now, p.cert_tiers)
            if level is None:
                continue
            ident = c.identity(tr.key)
            seen.add(ident)
            st = self._certs.get(ident)
            if st is None:
                st = self._adopt(tr, f"{tr.key}#{c.ident}", ident)
            if st is not None:
                st.where[tr.key] = 0
                mine.add(ident)
                cur = self._alerts.get(st.alert_id)
                if cur is not None and tr.key not in cur.alert.children:
                    cur.alert = replace(cur.alert, children=tuple(st.where))  # seen here too
                    if not cur.notified:
                        self._reconcile(cur, at, out)  # held for maintenance: this endpoint may not be
                if st.level <= level:
                    continue  # this tier (or a more urgent one) was decided already
            old = self._alerts.get(st.alert_id) if st is not None else None
            supersedes = old.alert.id if old is not None and old.notified else ""
            if old is not None:
                self._drop(old)  # a more urgent tier replaces it, without a message of its own
            where = st.where if st is not None else {tr.key: 0}
            # the first endpoint that reported it: the alert's unit, service and target
            anchor = (self._tracks.get(old.key) if old is not None else None) or tr
            expires = datetime.fromtimestamp(c.not_after, at.tzinfo)
            if level == 0:
                kind, aid, started = AlertKind.CERT_EXPIRED, f"{AlertKind.CERT_EXPIRED.value}:{ident}", expires
                msg, sev, tier = f"expired {expires.isoformat()}", SEVERITY[kind], None
            else:
                kind = AlertKind.CERT_EXPIRING
                aid = f"{kind.value}:{ident}:{level}"
                started = datetime.fromtimestamp(c.not_after - level * DAY, at.tzinfo)
                msg = f"expires {expires.isoformat()} (in {(c.not_after - now) / DAY:.1f} days)"
                sev, tier = ("page" if level <= PAGE_TIER_DAYS else "ticket"), level
            alert = replace(self._target_alert(
                anchor, kind, aid, started, reason=result.reason.value if result.reason else "", message=msg,
                severity=sev, tier=tier,
                extra=(*c.labels, ("not_after", str(int(c.not_after))), ("certificate", ident)),
                supersedes=supersedes,
            ), children=tuple(where))
            a = ActiveAlert(alert, key=anchor.key)
            self._alerts[aid] = a
            self._certs[ident] = _Cert(aid, level, where)
            mine.add(ident)
            self._reconcile(a, at, out)
        for ident in [i for i in mine if i not in seen]:
            st = self._certs.get(ident)
            missing = (st.where.get(tr.key, 0) + 1) if st is not None else p.close_after
            if st is not None and missing < p.close_after:
                st.where[tr.key] = missing
                continue
            mine.discard(ident)  # renewed or removed here: no longer seen
            if st is not None:
                self._cert_gone(ident, st, tr.key, at, out)
        tr.certs = mine or None

    def _adopt(self, tr: _Track, legacy: str, ident: str) -> _Cert | None:
        """A certificate loaded from state format 1 (keyed by target): from now on, by identity."""
        st = self._certs.pop(legacy, None) if legacy != ident else None
        if st is None:
            return None
        self._certs[ident] = st
        if tr.certs is not None:
            tr.certs.discard(legacy)
        return st

    def _cert_gone(self, ident: str, st: _Cert, key: str, at: datetime, out: list[Notification]) -> None:
        """``key`` no longer reports the certificate: it resolves when no endpoint does."""
        st.where.pop(key, None)
        a = self._alerts.get(st.alert_id)
        if st.where:
            if a is not None and a.key == key:
                a.key = next(iter(st.where))  # maintenance and removals follow an endpoint still seeing it
            return
        del self._certs[ident]
        if a is not None:
            a.condition, a.ended_at = False, at
            self._reconcile(a, at, out)

    def _cert_in_maintenance(self, a: ActiveAlert, at: datetime) -> bool | None:
        """Every endpoint seeing the certificate is in a window (None: not a certificate we track)."""
        st = self._certs.get(dict(a.alert.labels).get("certificate", ""))
        if st is None or st.alert_id != a.alert.id:
            return None
        tracks = [self._tracks.get(k) for k in st.where]
        return all(t is not None and self.maintenance.active(t.target, at) is not None for t in tracks)

    # -- global guard --------------------------------------------------------------------

    def _prune(self, now: datetime) -> None:
        limit = now - timedelta(seconds=self.policy.global_window_seconds)
        r = self._rounds
        while r and r[0][0] < limit:
            _, fresh, began = r.popleft()
            self._n_rounds -= 1
            self._n_new -= fresh
            if self._in_cohort(began):
                self._n_cohort -= 1

    def _in_cohort(self, began: datetime | None) -> bool:
        return began is not None and self._cohort_since is not None and began >= self._cohort_since

    def _arming(self) -> bool:
        """New failures building up towards the global threshold: hold new pages a moment."""
        p = self.policy
        return (not self._global and self._n_new >= max(1, p.global_min_targets // 2)
                and self._n_new >= p.global_share / 5 * self._n_rounds)

    def _arm_expired(self, aid: str, at: datetime) -> bool:
        """This alert has waited for the guard as long as it may (``global_window_seconds``)."""
        since = self._arm_since.get(aid)
        return since is not None and (at - since).total_seconds() >= self.policy.global_window_seconds

    def _check_global(self, at: datetime, out: list[Notification]) -> None:
        p = self.policy
        n = self._n_new
        if n < p.global_min_targets or n < p.global_share * self._n_rounds:
            return
        self._global = True
        # From now until it clears: the failures of targets that began failing in this window or later.
        self._cohort_since = at - timedelta(seconds=p.global_window_seconds)
        self._n_cohort = sum(self._in_cohort(began) for _, _, began in self._rounds)
        self._held_global |= self._held_arming
        self._held_arming = set()
        first = next((t for t, fresh, _ in self._rounds if fresh), at)
        aid = AlertKind.MONITORING_DEGRADED.value
        a = ActiveAlert(Alert(
            id=aid,
            kind=AlertKind.MONITORING_DEGRADED,
            severity=SEVERITY[AlertKind.MONITORING_DEGRADED],
            started_at=first,
            message=f"{n} of {self._n_rounds} probe rounds in the last {p.global_window_seconds:g}s failed: "
                    "the monitor's own network or DNS is the likely cause",
        ))
        self._alerts[aid] = a
        self._reconcile(a, at, out)

    def _check_global_clear(self, at: datetime, out: list[Notification]) -> None:
        p = self.policy
        n = self._n_cohort
        if n >= p.global_min_targets and n >= p.global_share / 2 * self._n_rounds:
            return
        self._global = False
        self._cohort_since, self._n_cohort = None, 0
        a = self._alerts.get(AlertKind.MONITORING_DEGRADED.value)
        if a is not None:
            a.condition, a.ended_at = False, at
            self._reconcile(a, at, out)
        for aid in list(self._held_global):
            held = self._alerts.get(aid)
            if held is None:
                self._held_global.discard(aid)
                continue
            if held.alert.kind is AlertKind.UNIT_ISOLATED and held.alert.unit_code is not None:
                unit = self._units.get(held.alert.unit_code)
                for lk in unit.links if unit is not None else ():
                    if lk.down:
                        lk.release_after, lk.release_why = at, GLOBAL
            elif held.key and held.alert.kind in DOWN_KINDS:
                tr = self._tracks.get(held.key)
                if tr is not None:
                    tr.release_after, tr.release_why = at, GLOBAL
            self._reconcile(held, at, out)

    # -- the clock -------------------------------------------------------------------------

    def on_tick(self, now: datetime) -> list[Notification]:
        """Escalations, dependency holds running out, maintenance windows starting or ending,
        the global guard's window: O(active alerts + windows)."""
        out: list[Notification] = []
        self._clock = now
        self._prune(now)
        if self._global:
            self._check_global_clear(now, out)
        elif self._held_arming:
            arming = self._arming()
            for aid in list(self._held_arming):
                held = self._alerts.get(aid)
                if held is None:
                    self._held_arming.discard(aid)
                elif not arming or self._arm_expired(aid, now):
                    self._reconcile(held, now, out)
        for key, until in list(self._pending.items()):
            if now >= until:
                tr = self._tracks.get(key)
                if tr is None:
                    self._pending.pop(key, None)
                else:
                    self._sync_down(tr, now, out)
        ids = self.maintenance.active_ids(now)
        if ids != self._maint_ids:
            self._maint_ids = ids
            for a in [a for a in self._alerts.values() if a.suppressed == MAINTENANCE]:
                self._reconcile(a, now, out)
        steps = self.policy.escalation
        for aid in list(self._escalating):
            a2 = self._alerts.get(aid)
            if a2 is None or not a2.notified or a2.acked_by or a2.receiver + 1 >= len(steps):
                self._escalating.discard(aid)
                continue
            assert a2.notified_at is not None
            if (now - a2.notified_at).total_seconds() >= steps[a2.receiver][1]:
                a2.receiver += 1
                a2.notified_at = now
                out.append(Notification(a2.alert, Event.FIRING, now, steps[a2.receiver][0]))
                if a2.receiver + 1 >= len(steps):
                    self._escalating.discard(aid)
        return out

    # -- operators ---------------------------------------------------------------------------

    def ack(self, alert_id: str, by: str, at: datetime) -> bool:
        """Acknowledge an active alert: its escalation stops. False if there is no such alert."""
        a = self._alerts.get(alert_id)
        if a is None:
            return False
        a.acked_by, a.acked_at = by, at
        self._escalating.discard(alert_id)
        return True

    def active(self) -> list[ActiveAlert]:
        """Every alert whose condition holds (sent or suppressed), oldest first; copies."""
        return sorted((replace(a) for a in self._alerts.values()), key=lambda a: (a.alert.started_at, a.alert.id))

    def get(self, alert_id: str) -> ActiveAlert | None:
        a = self._alerts.get(alert_id)
        return replace(a) if a is not None else None

    # -- storage ------------------------------------------------------------------------------

    def storage_failed(self, at: datetime, message: str = "") -> list[Notification]:
        """The store failed (locked, full, read-only): one alert, sent by a path without the store."""
        aid = AlertKind.STORAGE_DEGRADED.value
        if aid in self._alerts:
            return []
        out: list[Notification] = []
        a = ActiveAlert(Alert(id=aid, kind=AlertKind.STORAGE_DEGRADED, severity=SEVERITY[AlertKind.STORAGE_DEGRADED],
                              started_at=at, message=message))
        self._alerts[aid] = a
        self._reconcile(a, at, out)
        return out

    def storage_ok(self, at: datetime) -> list[Notification]:
        a = self._alerts.get(AlertKind.STORAGE_DEGRADED.value)
        if a is None:
            return []
        out: list[Notification] = []
        a.condition, a.ended_at = False, at
        self._reconcile(a, at, out)
        return out

    # -- restart ------------------------------------------------------------------------------

    @staticmethod
    def _dump_track(tr: _Track) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if tr.down:
            d.update(down=True, since=_ts(tr.down_since), kind=tr.kind.value, reason=tr.reason, message=tr.message)
        if tr.flapping:
            d["flapping"] = True
        if tr.seen and tr.hist:
            d["hist"] = tr.hist
        if tr.degraded:
            d["degraded"] = True
        if tr.reboot:
            d["reboot"] = True
        if tr.release_after is not None:
            d["release"] = [_ts(tr.release_after), tr.release_why]
        return d

    def dump(self) -> dict[str, Any]:
        """JSON-able state: alerts (sent, acknowledged, suppressed) and what each target's alerts
        depend on. Size: O(active alerts + targets with something open)."""
        targets: dict[str, Any] = {}
        for key, tr in self._tracks.items():
            d = self._dump_track(tr)
            if d:
                targets[key] = d
        return {
            "version": STATE_VERSION,
            "alerts": [a.to_json() for a in self._alerts.values()],
            "targets": targets,
            **self._dump_rest(),
        }

    def _dump_rest(self) -> dict[str, Any]:
        """The small part of the state, besides alerts and targets."""
        return {
            "certs": {i: [st.alert_id, st.level, st.where] for i, st in self._certs.items()},
            "global": {"firing": self._global, "arming": {k: _ts(v) for k, v in self._arm_since.items()}},
            "maintenance_active": sorted(self._maint_ids),
        }

    def dump_json(self) -> str:
        """``dump()`` encoded as JSON text, re-encoding only what changed since the last call.

        Saved at every flush while results arrive, on the event loop: with a thousand failing
        targets the whole dump, converted and encoded each time, held the loop (or, in a
        thread, the GIL) for tens of milliseconds (BENCHMARKS.md "Hostile targets"). Each
        track keeps its last text with the dict it was made from, each alert with the fields
        its ``to_json`` reads (building that dict per alert and flush was the cost); what is
        unchanged is compared, not encoded.
        """
        cache = self._json_cache
        targets: list[str] = []
        seen: set[str] = set()
        for key, tr in self._tracks.items():
            d = self._dump_track(tr)  # small (empty for most targets): compared, encoded only when changed
            fp = tuple(d.items())
            hit = cache.get(key)
            if hit is None or hit[0] != fp:
                hit = cache[key] = (fp, f"{json.dumps(key, ensure_ascii=False)}:{json.dumps(d, ensure_ascii=False)}"
                                    if d else "")
            if hit[1]:
                targets.append(hit[1])
            seen.add(key)
        alerts: list[str] = []
        for aid, a in self._alerts.items():
            afp = (a.alert, a.notified, a.suppressed, a.acked_by, a.acked_at, a.receiver, a.notified_at,
                   a.condition, a.key, a.ended_at)
            ckey = "\0alert\0" + aid  # never a target key: those have no NUL
            hit = cache.get(ckey)
            if hit is None or hit[0] != afp:
                hit = cache[ckey] = (afp, json.dumps(a.to_json(), ensure_ascii=False))
            alerts.append(hit[1])
            seen.add(ckey)
        if len(cache) > len(seen):
            for gone in [k for k in cache if k not in seen]:
                del cache[gone]
        rest = json.dumps(self._dump_rest(), ensure_ascii=False)
        return (f'{{"version":{STATE_VERSION},"alerts":[{",".join(alerts)}],'
                f'"targets":{{{",".join(targets)}}},{rest[1:]}')

    @classmethod
    def load(
        cls,
        policy: AlertPolicy,
        targets: Iterable[Target],
        data: dict[str, Any] | None,
        maintenance: MaintenanceCalendar | None = None,
    ) -> AlertEngine:
        """An engine resuming a dumped state: what was sent is not sent again. Alerts of targets
        no longer in the inventory are dropped here; ``set_targets`` is what resolves removals."""
        eng = cls(policy, targets, maintenance)
        if not data:
            return eng
        version = data.get("version")
        if version not in (1, STATE_VERSION):
            raise ValueError(f"alert engine state version {version!r} (expected 1 or {STATE_VERSION})")
        for key, d in data.get("targets", {}).items():
            tr = eng._tracks.get(key)
            if tr is None:
                continue
            if d.get("down"):
                tr.down, tr.down_since = True, _dt(d.get("since"))
                tr.kind = AlertKind(d.get("kind", AlertKind.TARGET_DOWN.value))
                tr.reason, tr.message = d.get("reason", ""), d.get("message", "")
                # an outage already confirmed: its next failures continue it, not a new streak
                tr.fails, tr.first_fail_at = policy.open_after, tr.down_since
            if "hist" in d:
                tr.hist, tr.seen = int(d["hist"]) & ((1 << policy.flap_window) - 1), True
            tr.flapping = bool(d.get("flapping"))
            tr.degraded = bool(d.get("degraded"))
            if tr.degraded:
                tr.deg_bad = policy.degraded_rounds
            tr.reboot = bool(d.get("reboot"))
            if version == 1 and d.get("certs"):  # per target: adopted by identity on the next report
                for i, v in d["certs"].items():
                    eng._certs[f"{key}#{i}"] = _Cert(str(v[0]), int(v[1]), {key: 0})
            if d.get("release"):
                tr.release_after, tr.release_why = _dt(d["release"][0]), str(d["release"][1])
        for ad in data.get("alerts", []):
            a = ActiveAlert.from_json(ad)
            if a.key and a.key not in eng._tracks and a.alert.kind not in CERT_KINDS:
                continue
            code = a.alert.unit_code
            if a.alert.kind is AlertKind.UNIT_ISOLATED and (code is None or code not in eng._units):
                continue
            eng._alerts[a.alert.id] = a
            if a.key and a.alert.kind in DOWN_KINDS:
                eng._tracks[a.key].down_id = a.alert.id
            if a.notified and not a.acked_by and eng._chain(a) and a.receiver + 1 < len(policy.escalation):
                eng._escalating.add(a.alert.id)
            if a.suppressed == GLOBAL:
                eng._held_global.add(a.alert.id)
            elif a.suppressed == ARMING:
                eng._held_arming.add(a.alert.id)
        for i, v in data.get("certs", {}).items():
            eng._certs[i] = _Cert(str(v[0]), int(v[1]), {str(k): int(m) for k, m in v[2].items()})
        for i, st in list(eng._certs.items()):
            st.where = {k: m for k, m in st.where.items() if k in eng._tracks}
            if not st.where:
                del eng._certs[i]
                continue
            for k in st.where:
                tr2 = eng._tracks[k]
                tr2.certs = (tr2.certs or set()) | {i}
            ca = eng._alerts.get(st.alert_id)
            if ca is not None and ca.key not in st.where:
                ca.key = next(iter(st.where))
        live = {st.alert_id for st in eng._certs.values()}
        for aid in [aid for aid, a in eng._alerts.items() if a.alert.kind in CERT_KINDS]:
            if aid not in live:
                eng._drop(eng._alerts[aid])  # every endpoint that saw it is gone
        for unit in eng._units.values():
            unit.isolated = any(tr.isolating for tr in unit.links)
        g = data.get("global", {})
        eng._global = bool(g.get("firing"))
        for aid, since in (g.get("arming") or {}).items():
            if aid in eng._held_arming and since:
                eng._arm_since[aid] = datetime.fromisoformat(since)
        eng._maint_ids = frozenset(data.get("maintenance_active", ()))
        return eng


def _waiting(tr: _Track) -> bool:
    """Released after a hold (link back, global guard cleared) but no failure seen since."""
    return tr.release_after is not None and (tr.last_fail_at is None or tr.last_fail_at < tr.release_after)
