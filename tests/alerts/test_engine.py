"""The built-in alert engine's decisions, driven by a fake clock with real Target/ProbeResult objects."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path

import yaml

from alerts.engine import ActiveAlert, AlertEngine, AlertPolicy
from alerts.maintenance import MaintenanceCalendar, Window
from alerts.model import AlertKind, Event
from monitor.targets import Target
from probes.base import ProbeResult, Reason, Sample
from tests.alerts.helpers import (
    FAIL,
    OK,
    UNIT,
    Sim,
    at,
    cut,
    events,
    fail,
    feed,
    firing,
    ok,
    target,
    unit_targets,
)

POLICY = AlertPolicy()
ROOT = Path(__file__).resolve().parents[2]


def engine(*targets: object, policy: AlertPolicy = POLICY, **kw: object) -> AlertEngine:
    return AlertEngine(policy, list(targets), **kw)  # type: ignore[arg-type]


# -- open / close ----------------------------------------------------------------------------


def test_one_lost_probe_between_healthy_ones_sends_nothing() -> None:
    t = target()
    eng = engine(t)
    assert feed(eng, t, "uudu" "u") == []
    assert eng.active() == []


def test_three_failures_page_once_dated_from_the_first_and_two_successes_resolve() -> None:
    t = target()
    eng = engine(t)
    notes = feed(eng, t, "uddd")
    assert events(notes) == [(f"target_down:{t.key}", "firing")]
    (n,) = notes
    assert n.alert.started_at == at(30)  # the first failed probe, not the confirmation at 90 s
    assert n.at == at(90) and n.receiver == "" and n.alert.severity == "page"
    assert n.alert.reason == "timeout" and n.alert.unit_code == UNIT and n.alert.service == "portal"
    assert feed(eng, t, "dddd", start=120) == []  # still down: nothing more
    assert feed(eng, t, "u", start=240) == []  # one success is not enough
    (res,) = feed(eng, t, "u", start=270)
    assert res.event is Event.RESOLVED and res.ended_at == at(240) and res.alert.started_at == at(30)
    assert eng.active() == []


def test_any_success_resets_the_failure_count_and_an_unconfirmed_failure_sends_nothing() -> None:
    t = target()
    eng = engine(t)
    assert feed(eng, t, "dduddudduu") == []
    # a success in the middle of a recovery also restarts the success count
    assert firing(feed(eng, t, "ddd", start=1000)) == [f"target_down:{t.key}"]
    assert feed(eng, t, "udud", start=1100) == []
    assert [n.event for n in feed(eng, t, "uu", start=1300)] == [Event.RESOLVED]


def test_thresholds_are_data() -> None:
    t = target()
    eng = engine(t, policy=AlertPolicy(open_after=5, close_after=1))
    assert feed(eng, t, "dddd") == []
    assert len(feed(eng, t, "d", start=200)) == 1
    assert [n.event for n in feed(eng, t, "u", start=300)] == [Event.RESOLVED]


def test_old_domain_redirect_failure_is_its_own_kind() -> None:
    t = target("portal", "http", addr="https://old-xa.example.vn/", expect_redirect_to="https://new.example.vn/")
    eng = engine(t)
    out = []
    for i in range(3):
        out += eng.on_result(t, fail(Reason.REDIRECT_MISSING), at(i))
    (n,) = out
    assert n.alert.kind is AlertKind.REDIRECT_BROKEN and n.alert.id == f"redirect_broken:{t.key}"
    assert n.alert.reason == "redirect_missing"


def test_snmp_interface_down_and_reboot_from_results() -> None:
    t = target("link", "snmp", addr="127.0.0.1:1161", community="public")
    eng = engine(t)
    out = []
    reboot = Sample("wardwatch_snmp_reboot_detected", 1.0)
    no_reboot = Sample("wardwatch_snmp_reboot_detected", 0.0)
    out += eng.on_result(t, ok(reboot), at(0))
    out += eng.on_result(t, ok(no_reboot), at(30))
    out += eng.on_result(t, ok(no_reboot), at(60))
    assert events(out) == [(f"snmp_reboot:{t.key}", "firing"), (f"snmp_reboot:{t.key}", "resolved")]
    bad = fail(Reason.SNMP_INTERFACE_DOWN, no_reboot)
    out = [n for i in range(3) for n in eng.on_result(t, bad, at(100 + i))]
    assert events(out) == [(f"snmp_interface_down:{t.key}", "firing")]
    # an interface down on the router is not the unit cut off
    assert not any(a.alert.kind is AlertKind.UNIT_ISOLATED for a in eng.active())


def test_link_degraded_after_k_rounds_over_thresholds() -> None:
    link = target("link", "icmp")
    eng = engine(link)
    k = AlertPolicy().degraded_rounds

    def icmp(loss: float, rtt: float) -> object:
        avg = Sample("wardwatch_icmp_rtt_seconds", rtt, (("stat", "avg"),))
        return ok(Sample("wardwatch_icmp_loss_ratio", loss), avg)

    out = []
    bad = [(0.4, 0.01), (0.0, 0.3)]  # over the loss limit, over the RTT limit
    for i in range(3 * k):  # bad rounds, but never k in a row
        loss, rtt = bad[i % 2] if i % k else (0.0, 0.01)
        out += eng.on_result(link, icmp(loss, rtt), at(i * 30))  # type: ignore[arg-type]
    assert out == []
    out = [n for i in range(k) for n in eng.on_result(link, icmp(0.4, 0.01), at(1000 + i * 30))]  # type: ignore[arg-type]
    assert events(out) == [(f"link_degraded:{link.key}", "firing")]
    assert "40% packet loss" in out[0].alert.message and out[0].alert.severity == "ticket"
    out = [n for i in range(2) for n in eng.on_result(link, icmp(0.0, 0.01), at(2000 + i * 30))]  # type: ignore[arg-type]
    assert events(out) == [(f"link_degraded:{link.key}", "resolved")]
    # the link probe's own grading, when present, decides
    graded = ok(Sample("wardwatch_link_quality", 1.0), Sample("wardwatch_icmp_loss_ratio", 0.0))
    out = [n for i in range(k) for n in eng.on_result(link, graded, at(3000 + i * 30))]
    assert firing(out) == [f"link_degraded:{link.key}"]


def test_one_lost_ping_in_every_round_is_not_a_degraded_link() -> None:
    # The 5%-loss soak's case: 5 pings a round, one lost each time, for an hour.
    link = target("link", "icmp")
    eng = engine(link)
    out = [n for i in range(120) for n in eng.on_result(link, ok(Sample("wardwatch_icmp_loss_ratio", 0.2)), at(i * 30))]
    assert out == []


def test_link_degraded_limits_match_the_prometheus_rule() -> None:
    # Both paths must ticket the same link: the built-in defaults are the rule's numbers.
    doc = yaml.safe_load((ROOT / "alerts" / "rules" / "wardwatch.yml").read_text(encoding="utf-8"))
    rules = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "WardwatchLinkDegraded"]
    by = {r["labels"]["degradation"]: r for r in rules}
    loss = re.search(r"wardwatch_icmp_loss_ratio\{[^}]*\}\)? > ([0-9.]+)", by["loss"]["expr"])
    rtt = re.search(r"\) > ([0-9.]+)", by["latency"]["expr"])
    assert loss and rtt
    p = AlertPolicy()
    assert float(loss.group(1)) == p.degraded_loss_ratio and float(rtt.group(1)) == p.degraded_rtt_seconds
    rounds_in_for = 120 / 30  # for: 2m at the 30 s interval; the engine confirms on the next round
    assert by["loss"]["for"] == by["latency"]["for"] == "2m" and p.degraded_rounds == rounds_in_for + 1


# -- certificates ---------------------------------------------------------------------------------


def test_expired_certificate_probed_every_minute_for_an_hour_is_one_message() -> None:
    t = target("certs", "tls", addr="portal.example.vn:443")
    eng = engine(t)
    not_after = at(-3600).timestamp()
    r = fail(Reason.TLS_EXPIRED, Sample("probe_ssl_earliest_cert_expiry", not_after))
    out = [n for m in range(60) for n in eng.on_result(t, r, at(m * 60))]
    assert events(out) == [(f"cert_expired:{t.key}#@{int(not_after)}", "firing")]
    assert out[0].alert.kind is AlertKind.CERT_EXPIRED and out[0].alert.severity == "page"
    assert not any(a.alert.kind is AlertKind.TARGET_DOWN for a in eng.active())  # not also "down"


def test_certificate_tiers_one_message_each_and_renewal_resolves() -> None:
    t = target("portal", "http")
    eng = engine(t)
    not_after = at(40 * 86400).timestamp()
    r = ok(Sample("probe_ssl_earliest_cert_expiry", not_after))
    out = []
    for hour in range(0, 41 * 24, 1):  # hourly for 41 days: 30, 14, 7, 1 days, then expired
        out += eng.on_result(t, r if hour < 40 * 24 else fail(Reason.TLS_EXPIRED, *r.samples), at(hour * 3600))
    tiers = [(n.alert.kind.value, n.alert.tier) for n in out]
    assert tiers == [("cert_expiring", 30), ("cert_expiring", 14), ("cert_expiring", 7), ("cert_expiring", 1),
                     ("cert_expired", None)]
    assert all(n.event is Event.FIRING for n in out)
    assert [n.alert.severity for n in out] == ["ticket", "ticket", "page", "page", "page"]
    assert out[1].alert.supersedes == out[0].alert.id and out[0].alert.supersedes == ""
    assert out[0].alert.started_at == at(10 * 86400)  # when the 30-day tier began: stable across restarts
    assert len(eng.active()) == 1
    renewed = ok(Sample("probe_ssl_earliest_cert_expiry", at(400 * 86400).timestamp()))
    out = eng.on_result(t, renewed, at(41 * 86400)) + eng.on_result(t, renewed, at(41 * 86400 + 60))
    assert events(out) == [(out[0].alert.id, "resolved")] and out[0].alert.kind is AlertKind.CERT_EXPIRED
    assert eng.active() == []


def test_certificate_files_alert_per_certificate() -> None:
    t = target("certs", "certfile", addr="/etc/pki/unit")

    def cert(file: str, serial: str, days: float) -> Sample:
        return Sample("wardwatch_certfile_not_after_timestamp_seconds", at(days * 86400).timestamp(),
                      (("file", file), ("subject", "CN=x"), ("serial", serial), ("issuer", "CN=ca")))

    samples = (cert("/etc/pki/unit/a.pem", "01", 20), cert("/etc/pki/unit/b.pem", "02", 5),
               cert("/etc/pki/unit/b.pem", "03", 300),
               Sample("probe_ssl_earliest_cert_expiry", at(5 * 86400).timestamp()))
    eng = engine(t)
    out = [n for m in range(100) for n in eng.on_result(t, ok(*samples), at(m * 60))]
    assert sorted((n.alert.tier, dict(n.alert.labels)["serial"]) for n in out) == [(7, "02"), (30, "01")]
    assert len(out) == 2


def _chain(fingerprint: str, not_after: float, *, expired: bool = False) -> ProbeResult:
    samples = (Sample("probe_ssl_earliest_cert_expiry", not_after),
               Sample("probe_ssl_last_chain_info", 1.0, (("fingerprint_sha256", fingerprint), ("subject", "CN=x"))))
    return fail(Reason.TLS_EXPIRED, *samples) if expired else ok(*samples)


def _cert_endpoints() -> list[Target]:
    """One certificate served by a unit's portal, its old domain (redirecting to the portal: the
    final host's chain), its certs/tls target, and another unit's portal."""
    return [target("portal", "http"),
            target("portal", "http", addr="https://old-xa.example.vn/", expect_redirect_to="https://new.example.vn/"),
            target("certs", "tls", addr="portal.example.vn:443"),
            target("portal", "http", unit=UNIT + 1)]


def test_one_certificate_on_several_endpoints_is_one_alert_per_tier_listing_where() -> None:
    ends = _cert_endpoints()
    eng = engine(*ends)
    not_after = at(-3 * 86400).timestamp()
    r = _chain("ab" * 32, not_after, expired=True)
    out = [n for m in range(60) for t in ends for n in eng.on_result(t, r, at(m * 60))]
    assert events(out) == [(f"cert_expired:sha256:{'ab' * 32}@{int(not_after)}", "firing")]
    (a,) = eng.active()
    assert a.alert.unit_code == UNIT and a.alert.target == ends[0].target
    assert a.alert.children == tuple(t.key for t in ends)
    # renewed on all but one endpoint: still open; then on the last one too: one resolution
    renewed = _chain("cd" * 32, at(400 * 86400).timestamp())
    out = [n for m in range(60, 65) for t in ends[:3] for n in eng.on_result(t, renewed, at(m * 60))]
    assert out == [] and len(eng.active()) == 1
    out = [n for m in range(65, 70) for n in eng.on_result(ends[3], renewed, at(m * 60))]
    assert events(out) == [(a.alert.id, "resolved")] and eng.active() == []


def test_a_shared_certificate_walks_its_tiers_once_whichever_endpoint_reports() -> None:
    ends = _cert_endpoints()
    eng = engine(*ends)
    not_after = at(40 * 86400).timestamp()
    out = []
    for hour in range(0, 41 * 24, 6):
        t = ends[(hour // 6) % len(ends)]
        out += eng.on_result(t, _chain("ef" * 32, not_after, expired=hour >= 40 * 24), at(hour * 3600))
    assert [(n.alert.kind.value, n.alert.tier) for n in out] == [
        ("cert_expiring", 30), ("cert_expiring", 14), ("cert_expiring", 7), ("cert_expiring", 1),
        ("cert_expired", None)]
    assert len(eng.active()) == 1


def test_a_shared_certificate_is_suppressed_only_while_every_endpoint_is_in_maintenance() -> None:
    ends = _cert_endpoints()[:3]
    r = _chain("01" * 32, at(-86400).timestamp(), expired=True)
    whole = MaintenanceCalendar([Window(UNIT, None, at(0), at(10_000))])
    eng = AlertEngine(POLICY, ends, whole)
    assert [n for t in ends for n in eng.on_result(t, r, at(60))] == []
    portal_only = MaintenanceCalendar([Window(UNIT, "portal", at(0), at(10_000))])
    eng = AlertEngine(POLICY, ends, portal_only)
    out = [n for t in ends for n in eng.on_result(t, r, at(60))]
    assert len(out) == 1 and out[0].alert.kind is AlertKind.CERT_EXPIRED  # certs/tls is not in a window


def test_shared_certificate_survives_restart_and_format_1_state_is_adopted() -> None:
    ends = _cert_endpoints()
    eng = engine(*ends)
    r = _chain("ab" * 32, at(-86400).timestamp(), expired=True)
    assert len([n for t in ends for n in eng.on_result(t, r, at(60))]) == 1
    eng2 = AlertEngine.load(POLICY, ends, json.loads(json.dumps(eng.dump())))
    assert [n for t in ends for n in eng2.on_result(t, r, at(120))] == []
    assert [a.alert.children for a in eng2.active()] == [a.alert.children for a in eng.active()]
    # a target removed from the inventory: the certificate is still seen elsewhere, nothing resolves
    assert eng2.set_targets(ends[1:], at(130)) == []
    assert len(eng2.active()) == 1

    # format 1 (certificates per target, before identities): the same alert continues
    t = ends[0]
    legacy = f"@{int(at(-86400).timestamp())}"
    aid = f"cert_expired:{t.key}#{legacy}"
    (a,) = eng.active()
    old = replace(a, key=t.key, alert=replace(a.alert, id=aid, children=(), labels=()))
    v1 = {"version": 1, "alerts": [old.to_json()], "targets": {t.key: {"certs": {legacy: [aid, 0]}}},
          "global": {"firing": False}}
    eng3 = AlertEngine.load(POLICY, ends, json.loads(json.dumps(v1)))
    assert [n for t2 in ends for n in eng3.on_result(t2, r, at(180))] == []
    renewed = _chain("cd" * 32, at(400 * 86400).timestamp())
    out = [n for m in range(4, 8) for t2 in ends for n in eng3.on_result(t2, renewed, at(m * 60))]
    assert events(out) == [(aid, "resolved")]


# -- dependencies: link -> children ------------------------------------------------------------------


def isolation_sim(*units: int) -> tuple[AlertEngine, Sim]:
    targets = [t for u in units for t in unit_targets(u)]
    eng = AlertEngine(POLICY, targets)
    return eng, Sim(eng, targets)


def test_link_cut_is_one_unit_isolated_and_restore_one_resolved() -> None:
    eng, sim = isolation_sim(UNIT, UNIT + 1)
    cut_unit = cut(lambda t: t.unit_code == UNIT, 100, 400)
    notes = sim.run(1000, cut_unit)
    assert events(notes) == [(f"unit_isolated:{UNIT}", "firing"), (f"unit_isolated:{UNIT}", "resolved")]
    fired = notes[0]
    children = {t.key for t in unit_targets(UNIT) if t.service != "link"}
    assert set(fired.alert.children) == children
    assert fired.alert.started_at >= at(100) and fired.alert.started_at <= at(130)
    # detected within one interval plus the re-checks of the first failure
    (t_fire,) = [s for s, n in sim.notes if n.event is Event.FIRING]
    assert t_fire - 100 <= 30 + 5


def test_children_are_recorded_suppressed_while_the_link_is_down() -> None:
    eng, sim = isolation_sim(UNIT)
    sim.run(300, cut(lambda t: True, 100))
    by_kind = {a.alert.kind: a for a in eng.active()}
    assert by_kind[AlertKind.UNIT_ISOLATED].notified
    downs = [a for a in eng.active() if a.alert.kind is AlertKind.TARGET_DOWN]
    assert len(downs) == 5 and all(not a.notified and a.suppressed == "unit_isolated" for a in downs)


def test_a_child_that_paged_before_the_link_failed_still_resolves() -> None:
    eng, sim = isolation_sim(UNIT)
    portal = next(t for t in unit_targets(UNIT) if t.service == "portal")

    def faults(t: object, s: float) -> object:
        if t == portal and 100 <= s < 900:
            return FAIL
        return FAIL if 300 <= s < 600 else OK

    notes = sim.run(1500, faults)  # type: ignore[arg-type]
    assert sorted(events(notes)) == sorted([
        (f"target_down:{portal.key}", "firing"), (f"unit_isolated:{UNIT}", "firing"),
        (f"unit_isolated:{UNIT}", "resolved"), (f"target_down:{portal.key}", "resolved"),
    ])
    assert events(notes)[0] == (f"target_down:{portal.key}", "firing")
    assert events(notes)[-1] == (f"target_down:{portal.key}", "resolved")


def test_when_the_link_recovers_a_child_still_down_pages_within_one_round() -> None:
    eng, sim = isolation_sim(UNIT)
    portal = next(t for t in unit_targets(UNIT) if t.service == "portal")

    def faults(t: object, s: float) -> object:
        if t == portal and s >= 100:
            return FAIL
        return FAIL if 100 <= s < 400 else OK

    notes = sim.run(1000, faults)  # type: ignore[arg-type]
    assert events(notes) == [
        (f"unit_isolated:{UNIT}", "firing"), (f"unit_isolated:{UNIT}", "resolved"),
        (f"target_down:{portal.key}", "firing"),
    ]
    t_resolved, t_page = (s for s, n in sim.notes[1:])
    assert 0 < t_page - t_resolved <= portal.interval + 1
    assert notes[2].alert.started_at <= at(130)  # dated from its first failure


def test_a_child_alone_down_pages_once_the_link_has_answered() -> None:
    eng, sim = isolation_sim(UNIT)
    portal = next(t for t in unit_targets(UNIT) if t.service == "portal")
    notes = sim.run(600, cut(lambda t: t == portal, 100))
    assert events(notes) == [(f"target_down:{portal.key}", "firing")]
    (t_page,) = [s for s, _ in sim.notes]
    assert t_page - 100 <= 30 + 30 + 5  # first failure within a round, link answer within another


def test_dependency_hold_runs_out_when_the_link_is_not_probed() -> None:
    link, portal = target("link", "icmp"), target("portal", "http")
    eng = engine(link, portal)
    assert eng.on_result(link, OK, at(0)) == []
    assert feed(eng, portal, "ddd", start=10, step=2) == []  # held: has the link failed too?
    (a,) = eng.active()
    assert a.suppressed == "dependency"
    assert eng.on_tick(at(40)) == []
    grace = 2 * link.interval + (link.rechecks + 1) * (link.timeout + link.recheck_spacing)
    assert firing(eng.on_tick(at(10 + grace))) == [f"target_down:{portal.key}"]


def test_a_link_probe_in_flight_when_the_link_is_cut_does_not_clear_a_fast_failing_child() -> None:
    # The cut comes at 10 s: the portal fails at once (a reset), re-checked and confirmed by
    # 10.4 s, while a link round begun at 9 s still comes back answered at 10.5 s. That answer
    # is from before the cut: the portal stays held, and the link's next rounds make it one
    # unit_isolated, no page for the portal.
    link, portal = target("link", "icmp"), target("portal", "http")
    eng = engine(link, portal)
    assert eng.on_result(link, OK, at(0)) == []
    assert eng.on_result(portal, OK, at(1)) == []
    reset = ProbeResult(False, Reason.CONNECTION_RESET, "reset", 0.01, (Sample("probe_success", 0.0),))
    out = [n for i in range(3) for n in eng.on_result(portal, reset, at(10 + i * 0.2))]
    in_flight = ProbeResult(True, None, "", 1.5, (Sample("probe_success", 1.0),))
    out += eng.on_result(link, in_flight, at(10.5))  # began at 9.0 s
    assert out == [] and [a.suppressed for a in eng.active()] == ["dependency"]
    out = [n for i in range(3) for n in eng.on_result(link, FAIL, at(20 + i * 12))]
    assert firing(out) == [f"unit_isolated:{UNIT}"]


# -- global guard ----------------------------------------------------------------------------------


def test_uplink_cut_168_units_within_10s_is_one_monitoring_degraded_page() -> None:
    units = [UNIT + i for i in range(168)]
    eng, sim = isolation_sim(*units)

    def uplink(t: object, s: float) -> object:
        start = 100 + (t.unit_code - UNIT) % 10  # type: ignore[attr-defined]
        return FAIL if start <= s < 700 else OK

    notes = sim.run(1500, uplink)  # type: ignore[arg-type]
    assert events(notes) == [("monitoring_degraded", "firing"), ("monitoring_degraded", "resolved")]
    assert eng.active() == []


def test_after_the_global_guard_clears_targets_still_down_page() -> None:
    units = [UNIT + i for i in range(40)]
    eng, sim = isolation_sim(*units)
    portal = next(t for t in unit_targets(UNIT) if t.service == "portal")

    def faults(t: object, s: float) -> object:
        if t == portal and s >= 100:
            return FAIL
        return FAIL if 100 <= s < 400 else OK

    notes = sim.run(1000, faults)  # type: ignore[arg-type]
    assert events(notes) == [("monitoring_degraded", "firing"), ("monitoring_degraded", "resolved"),
                             (f"target_down:{portal.key}", "firing")]
    t_clear, t_page = (s for s, n in sim.notes[1:])
    # its unit's link was cut too and needs close_after=2 rounds to count as back; then the
    # portal pages on its next failed round (with its re-checks): at most three intervals,
    # however the targets' phases fall
    assert t_page - t_clear <= 3 * portal.interval + portal.rechecks * portal.recheck_spacing + 1


def test_long_standing_failures_do_not_hold_a_new_outage() -> None:
    """20% of the targets fail from the start (built-in breakage): they are not a network-wide cut,
    so a new single-target outage pages within its confirmation time (+ at most the guard's window)."""
    units = [UNIT + i for i in range(40)]
    eng, sim = isolation_sim(*units)
    broken = {t.key for t in sim.targets if t.service != "link"}
    broken = set(sorted(broken)[: len(sim.targets) // 5])
    portal = next(t for t in sim.targets if t.service == "portal" and t.key not in broken)

    def faults(t: object, s: float) -> object:
        if t.key in broken or (t == portal and s >= 600):  # type: ignore[attr-defined]
            return FAIL
        return OK

    sim.run(590, faults)  # type: ignore[arg-type]
    assert not any(a.suppressed == "global_check" for a in eng.active())  # start-up wait over
    notes = sim.run(900, faults)  # type: ignore[arg-type]
    assert events(notes) == [(f"target_down:{portal.key}", "firing")]
    (t_page,) = [s for s, n in sim.notes if n.alert.id == notes[0].alert.id]
    confirm = portal.interval + portal.rechecks * portal.recheck_spacing + portal.interval + 5  # + the link's answer
    assert t_page - 600 <= confirm + POLICY.global_window_seconds


def test_global_check_holds_a_page_at_most_the_guard_window() -> None:
    """A steady drip of new failures (one a second, never enough to trip the guard) keeps it
    'arming'; each page it holds goes out after at most global_window_seconds."""
    policy = AlertPolicy(open_after=1)
    drip = [target(unit=UNIT + i, rechecks=0) for i in range(60)]
    fill = [target("procedures", unit=UNIT + 100 + i, rechecks=0) for i in range(200)]
    eng = AlertEngine(policy, drip + fill)
    paged: dict[str, float] = {}
    k = 0
    for s in range(60):
        for _ in range(4):  # healthy rounds: the failures stay under the guard's share
            eng.on_result(fill[k % len(fill)], OK, at(s + 0.5))
            k += 1
        for n in eng.on_result(drip[s], FAIL, at(s)) + eng.on_tick(at(s + 0.9)):
            paged.setdefault(n.alert.id, s + 0.9)
    for s in range(60, 80):
        for n in eng.on_tick(at(s)):
            paged.setdefault(n.alert.id, s)
    assert not any(a.alert.kind.value == "monitoring_degraded" for a in eng.active())
    assert len(paged) == 60
    waits = [paged[f"target_down:{t.key}"] - i for i, t in enumerate(drip)]
    assert max(waits) <= policy.global_window_seconds + 1, waits


# -- flapping --------------------------------------------------------------------------------------


def test_target_toggling_every_round_for_30_minutes_is_at_most_a_flapping_start_and_stop() -> None:
    t = target(rechecks=0)  # each result is a round
    eng = engine(t)
    notes = feed(eng, t, "ud" * 30) + feed(eng, t, "u" * 40, start=1800)
    assert events(notes) == [(f"flapping:{t.key}", "firing"), (f"flapping:{t.key}", "resolved")]


def test_toggling_with_rechecks_pages_the_first_outage_then_only_flapping() -> None:
    # A round that fails with its re-checks is a confirmed outage before any history says it
    # flaps: that first page is unavoidable. After it: only the flapping start and stop, and the
    # held resolution once it settles.
    t = target()
    eng = engine(t)
    sim = Sim(eng, [t])
    notes = sim.run(1800 + 60, lambda _t, s: FAIL if 60 <= s < 1860 and int(s // 30) % 2 == 0 else OK)
    notes += sim.run(4000, lambda _t, s: OK)
    assert events(notes) == [(f"target_down:{t.key}", "firing"), (f"flapping:{t.key}", "firing"),
                             (f"flapping:{t.key}", "resolved"), (f"target_down:{t.key}", "resolved")]


def test_flapping_holds_the_down_and_up_messages_until_it_settles() -> None:
    t = target(rechecks=0)
    eng = engine(t, policy=AlertPolicy(open_after=1, close_after=1))
    notes = feed(eng, t, "u")
    notes += feed(eng, t, "du" * 12, start=30)
    ids = [i for i, _ in events(notes)]
    assert f"flapping:{t.key}" in ids
    first_flap = ids.index(f"flapping:{t.key}")
    assert all(i == f"flapping:{t.key}" for i in ids[first_flap:])  # nothing else while flapping
    notes = feed(eng, t, "d" * 30, start=2000)  # settles down: held page goes out once it settles
    assert events(notes) == [(f"flapping:{t.key}", "resolved"), (f"target_down:{t.key}", "firing")] or events(
        notes) == [(f"flapping:{t.key}", "resolved")]  # (if the down was already sent before flapping began)


# -- maintenance -------------------------------------------------------------------------------------


def test_maintenance_suppresses_and_marks_and_pages_when_the_window_ends_while_down() -> None:
    t = target()
    cal = MaintenanceCalendar([Window(UNIT, "portal", at(0), at(600), "thay máy chủ", "inventory")])
    eng = engine(t, maintenance=cal)
    assert feed(eng, t, "ddddd") == []
    (a,) = eng.active()
    assert a.suppressed == "maintenance" and a.alert.in_maintenance and not a.notified
    assert eng.on_tick(at(595)) == []
    (n,) = eng.on_tick(at(600))
    assert n.event is Event.FIRING and not n.alert.in_maintenance and n.alert.started_at == at(0)


def test_a_resolution_inside_a_window_is_still_sent() -> None:
    t = target()
    cal = MaintenanceCalendar()
    eng = engine(t, maintenance=cal)
    assert len(feed(eng, t, "ddd")) == 1
    cal.add(Window(UNIT, None, at(100), at(1000), "bảo trì"))
    eng.on_tick(at(100))
    assert [n.event for n in feed(eng, t, "uu", start=200)] == [Event.RESOLVED]


def test_maintenance_of_other_services_or_units_does_not_apply() -> None:
    t = target()
    cal = MaintenanceCalendar([Window(UNIT, "email", at(0), at(600)), Window(UNIT + 1, None, at(0), at(600))])
    eng = engine(t, maintenance=cal)
    assert len(feed(eng, t, "ddd")) == 1


# -- ack and escalation ------------------------------------------------------------------------------


def test_unacknowledged_page_escalates_and_ack_stops_it() -> None:
    t, t2 = target(), target("procedures")
    chain = (("oncall", 900.0), ("lead", 1800.0), ("director", 0.0))
    eng = engine(t, t2, policy=AlertPolicy(escalation=chain))
    (n,) = feed(eng, t, "ddd")
    (n2,) = feed(eng, t2, "ddd")
    assert n.receiver == "oncall"
    assert eng.on_tick(at(60 + 899)) == []
    esc = eng.on_tick(at(60 + 900))
    assert sorted((e.alert.id, e.receiver) for e in esc) == sorted([(n.alert.id, "lead"), (n2.alert.id, "lead")])
    assert eng.ack(n.alert.id, "an.nguyen", at(1000))
    assert not eng.ack("nonexistent", "x", at(1000))
    esc = eng.on_tick(at(60 + 900 + 1800))
    assert [(e.alert.id, e.receiver) for e in esc] == [(n2.alert.id, "director")]
    assert eng.on_tick(at(100000)) == []  # end of the chain
    (a,) = [a for a in eng.active() if a.alert.id == n.alert.id]
    assert a.acked_by == "an.nguyen" and a.acked_at == at(1000)
    res = feed(eng, t2, "uu", start=200000)
    assert sorted(r.receiver for r in res) == ["director", "lead", "oncall"]  # everyone paged hears it ended


def test_no_default_receiver_and_tickets_do_not_escalate() -> None:
    t = target("portal", "http", addr="https://old.example.vn/", expect_redirect_to="https://new.example.vn/")
    eng = engine(t, policy=AlertPolicy(escalation=(("", 60.0), ("lead", 0.0))))
    (n,) = feed(eng, t, "ddd")
    assert n.receiver == "" and n.alert.severity == "ticket"
    assert eng.on_tick(at(10000)) == []


# -- storage ----------------------------------------------------------------------------------------


def test_storage_degraded_is_one_alert() -> None:
    eng = engine(target())
    assert firing(eng.storage_failed(at(0))) == ["storage_degraded"]
    assert eng.storage_failed(at(5)) == []
    (n,) = eng.storage_ok(at(60))
    assert n.event is Event.RESOLVED and n.ended_at == at(60)
    assert eng.storage_ok(at(70)) == []


# -- reload and restart --------------------------------------------------------------------------------


def test_the_saved_text_follows_every_change_though_only_changes_are_encoded_again() -> None:
    """dump_json keeps each track's and alert's text between calls: after every step it must
    still say what a fresh dump says (a stale text would be a state lost at the next restart)."""
    t, t2, t3 = target(), target("procedures"), target("email", "tcp")
    cal = MaintenanceCalendar([Window(UNIT, "email", at(0), at(10_000))])
    eng = AlertEngine(AlertPolicy(escalation=(("oncall", 900.0), ("lead", 0.0))), [t, t2, t3], cal)
    cert = ok(Sample("probe_ssl_earliest_cert_expiry", at(10 * 86400).timestamp()))
    steps = [
        lambda: feed(eng, t, "d"),
        lambda: feed(eng, t, "dd", start=10),  # confirmed: down, since, reason
        lambda: feed(eng, t2, "ddd", start=20),
        lambda: eng.ack(f"target_down:{t2.key}", "an", at(100)),
        lambda: eng.on_result(t2, cert, at(120)),  # a certificate tier, and t2's first success
        lambda: feed(eng, t3, "ddd", start=130),  # suppressed by the window
        lambda: eng.on_tick(at(2000)),  # escalation: t's alert goes to "lead"
        lambda: feed(eng, t, "udududud", start=3000),  # flapping history
        lambda: feed(eng, t2, "uu", start=4000),  # resolved
        lambda: eng.set_targets([t, t3], at(5000)),  # a removed target's text goes
        lambda: eng.on_tick(at(10_000)),  # the window ends
    ]
    texts = []
    for step in steps:
        step()
        texts.append(eng.dump_json())
        assert json.loads(texts[-1]) == json.loads(json.dumps(eng.dump())), len(texts)
    assert len(set(texts)) > len(steps) // 2  # the scenario did change the state along the way


def test_construction_sends_nothing_and_removed_targets_resolve() -> None:
    t, t2 = target(), target("procedures")
    eng = engine(t, t2)
    assert len(feed(eng, t, "ddd")) == 1
    out = eng.set_targets([t2], at(500))
    assert events(out) == [(f"target_down:{t.key}", "resolved")] and out[0].at == at(500)
    assert eng.on_result(t, FAIL, at(600)) == []  # no longer known


def test_restart_resumes_firing_acked_and_silenced_without_resending() -> None:
    t, t2, t3 = target(), target("procedures"), target("email", "tcp")
    cal = MaintenanceCalendar([Window(UNIT, "email", at(0), at(10_000))])
    chain = (("oncall", 900.0), ("lead", 0.0))
    policy = AlertPolicy(escalation=chain)
    eng = AlertEngine(policy, [t, t2, t3], cal)
    assert len(feed(eng, t, "ddd") + feed(eng, t2, "ddd") + feed(eng, t3, "ddd")) == 2
    assert eng.ack(f"target_down:{t2.key}", "an", at(100))
    cert = ok(Sample("probe_ssl_earliest_cert_expiry", at(10 * 86400).timestamp()))
    assert len(eng.on_result(t2, cert, at(120))) == 1  # cert 14-day tier (t2 counts 1 success)
    state = json.loads(eng.dump_json())  # what the service saves

    eng2 = AlertEngine.load(policy, [t, t2, t3], state, MaintenanceCalendar.from_json(cal.to_json()))
    assert [(a.alert.id, a.notified, a.acked_by, a.suppressed) for a in eng2.active()] == [
        (a.alert.id, a.notified, a.acked_by, a.suppressed) for a in eng.active()
    ]
    assert feed(eng2, t, "ddd", start=200) == []  # still down: not sent again
    assert eng2.on_result(t2, cert, at(300)) == []  # tier already sent
    assert feed(eng2, t3, "dd", start=400) == []  # still in maintenance
    esc = eng2.on_tick(at(2000))
    assert [(e.alert.id, e.receiver) for e in esc] == [(f"target_down:{t.key}", "lead")]  # t2 was acked
    assert [n.event for n in feed(eng2, t, "uu", start=3000)] == [Event.RESOLVED, Event.RESOLVED]
    assert events(eng2.on_tick(at(10_000))) == [(f"target_down:{t3.key}", "firing")]  # window over


def test_active_alert_json_round_trip() -> None:
    t = target()
    eng = engine(t)
    feed(eng, t, "ddd")
    (a,) = eng.active()
    assert ActiveAlert.from_json(json.loads(json.dumps(a.to_json()))) == a


# -- performance ---------------------------------------------------------------------------------------


def test_on_result_is_constant_time_for_a_national_inventory() -> None:
    targets = [t for u in range(5500) for t in unit_targets(10000 + u)]  # 33,000 targets
    assert len(targets) == 33_000
    eng = AlertEngine(POLICY, targets)
    icmp_ok = ok(Sample("probe_success", 1.0), Sample("wardwatch_icmp_loss_ratio", 0.0),
                 Sample("wardwatch_icmp_rtt_seconds", 0.01, (("stat", "avg"),)))
    n = 0
    start = time.perf_counter()
    for r in range(3):
        for i, t in enumerate(targets):
            s = r * 30 + i * 30 / len(targets)
            res = (FAIL if i % 97 == 0 else OK) if t.service != "link" else icmp_ok
            eng.on_result(t, res, at(s))
            n += 1
    per = (time.perf_counter() - start) / n
    tick_start = time.perf_counter()
    for k in range(100):
        eng.on_tick(at(100 + k * 5))
    per_tick = (time.perf_counter() - tick_start) / 100
    print(f"\non_result: {per * 1e6:.1f} us/result over {n} results; on_tick: {per_tick * 1e6:.0f} us "
          f"with {len(eng.active())} active alerts")
    assert per < 100e-6  # ~1,100 results/s nationally: well under 10% of one core
    assert per_tick < 20e-3
