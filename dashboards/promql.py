"""PromQL shared by the dashboards: label selectors and the state, certificate and availability
expressions, written once so every panel agrees on what "down" or "days left" means.

Aggregation never keeps ``instance`` or ``job``: with several wardwatch processes (sharded, each
a slice of the inventory, or replicated, each the whole of it) a target's series come from one or
more instances, and every expression below first reduces them by the target labels:

* per target, across replicas, the *best* view (``min`` of the severity, ``max`` of a success or
  a certificate's days left): one replica with a broken uplink does not paint a unit red;
* per unit and service, across targets, the *worst* (``max`` of the severity): worst state wins.

The severity scale (what the status grid shows) orders wardwatch_target_state's values by how bad
they are, which its raw values (-2 unreachable, -1 unknown, 0 down, 1 up) do not:
0 up, 1 unknown, 2 degraded (link quality), 3 unreachable (behind a down link), 4 down.
"""

from __future__ import annotations

from collections.abc import Iterable

TARGET_LABELS = "province, unit_code, unit, service, probe, target"
UNIT_SERVICE = "province, unit_code, unit, service"
UNIT = "province, unit_code, unit"

SEVERITY_TEXT: dict[int, tuple[str, str]] = {
    0: ("up", "green"),
    1: ("unknown", "text"),
    2: ("degraded", "yellow"),
    3: ("unreachable", "purple"),
    4: ("down", "red"),
}

# Grafana's variables, as each dashboard names them.
PROVINCE = 'province=~"$province"'
UNITS = 'unit_code=~"$unit_code"'
SERVICES = 'service=~"$service"'
SCOPE = (PROVINCE, UNITS, SERVICES)


def sel(metric: str, *matchers: str, scope: Iterable[str] = SCOPE) -> str:
    """``metric{province=~"$province",unit_code=~"$unit_code",service=~"$service",<matchers>}``."""
    parts = [*scope, *matchers]
    return f"{metric}{{{','.join(parts)}}}"


def target_severity(*matchers: str, scope: Iterable[str] = SCOPE) -> str:
    """Per target, the best severity any instance reports (0 up, 1 unknown, 3 unreachable, 4 down)."""
    s = sel("wardwatch_target_state", *matchers, scope=scope)
    return (
        f"min by ({TARGET_LABELS}) ("
        f"4 * ({s} == bool 0) + 3 * ({s} == bool -2) + ({s} == bool -1))"
    )


def link_degraded(*matchers: str, scope: Iterable[str] = SCOPE) -> str:
    """2 for a link whose last quality round was degraded (wardwatch_link_quality 1), else 0."""
    q = sel("wardwatch_link_quality", *matchers, scope=scope)
    return f"min by ({TARGET_LABELS}) (2 * ({q} == bool 1))"


def unit_service_severity(*matchers: str, scope: Iterable[str] = SCOPE) -> str:
    """Per unit and service, the worst target severity: worst state wins."""
    return (
        f"max by ({UNIT_SERVICE}) ({target_severity(*matchers, scope=scope)} "
        f"or {link_degraded(*matchers, scope=scope)})"
    )


def unit_severity(*matchers: str, scope: Iterable[str] = SCOPE) -> str:
    """Per unit, its worst service."""
    return f"max by ({UNIT}) ({unit_service_severity(*matchers, scope=scope)})"


def count_or_zero(expr: str) -> str:
    """``count(expr)``, 0 rather than no data when nothing matches (a stat shows 0, not "No data")."""
    return f"count({expr}) or vector(0)"


def units_isolated(scope: Iterable[str] = (PROVINCE, UNITS)) -> str:
    """Units whose every link target is down (the best view of each across instances)."""
    link = sel("wardwatch_target_state", 'service="link"', scope=scope)
    return count_or_zero(f"max by ({UNIT}) (max by ({TARGET_LABELS}) ({link})) == 0")


def targets_down_from_some_vantages(scope: Iterable[str] = SCOPE) -> str:
    """Targets some replicas see DOWN while another sees them UP (a path problem from one site:
    alerts/rules WardwatchTargetDownFromSomeVantages). Always 0 with one instance."""
    s = sel("wardwatch_target_state", scope=scope)
    return count_or_zero(f"(min by ({TARGET_LABELS}) ({s}) == 0) and (max by ({TARGET_LABELS}) ({s}) == 1)")


def cert_days_left(scope: Iterable[str] = SCOPE) -> str:
    """Days left of every certificate wardwatch sees, one series per certificate:

    * TLS endpoints (http and tls probes): the earliest expiry of the presented chain, with the
      leaf's subject and issuer from probe_ssl_last_chain_info where the probe exported it;
    * certificate files (signing certificates): one series per certificate in the file;
    * mail: each MX's STARTTLS chain.
    """
    keep = f"instance, job, {TARGET_LABELS}"
    tls = f"({sel('probe_ssl_earliest_cert_expiry', scope=scope)} - time()) / 86400"
    info = f"max by ({keep}, subject, issuer) ({sel('probe_ssl_last_chain_info', scope=scope)})"
    with_issuer = f"max by ({TARGET_LABELS}, subject, issuer) ({tls} * on ({keep}) group_left (subject, issuer) {info})"
    without = f"max by ({TARGET_LABELS}) ({tls})"
    files = f"max by ({TARGET_LABELS}, subject, serial) ({sel('wardwatch_certfile_days_left', scope=scope)})"
    mx = (
        f"max by ({TARGET_LABELS}, mx) "
        f"(({sel('wardwatch_email_mx_ssl_earliest_cert_expiry', scope=scope)} - time()) / 86400)"
    )
    return f"{with_issuer} or on ({TARGET_LABELS}) {without} or {files} or {mx}"


def availability(window: str = "$__range", scope: Iterable[str] = SCOPE) -> str:
    """Per unit and service, the share of successful probes over ``window`` (the SLO's SLI:
    alerts/rules/slo.yml). ``certs`` is left out: its probes fail on purpose weeks before expiry."""
    ok = sel("probe_success", 'service!="certs"', scope=scope)
    # Each target once, at the best share any replica saw (as alerts/rules/slo.yml counts it).
    return f"avg by ({UNIT_SERVICE}) (max by ({TARGET_LABELS}) (avg_over_time({ok}[{window}])))"


def budget_remaining(window: str = "$__range", scope: Iterable[str] = SCOPE) -> str:
    """Share of the error budget left over ``window``: 1 - errors / budget (negative: overspent).
    The budget per service is the recording rule wardwatch:slo_error_budget:ratio."""
    return (
        f"1 - (1 - {availability(window, scope)}) "
        "/ on (service) group_left () wardwatch:slo_error_budget:ratio"
    )


def objective_per_row(window: str = "$__range", scope: Iterable[str] = SCOPE) -> str:
    """The service's objective on every unit-and-service row of :func:`availability`."""
    return f"0 * {availability(window, scope)} + on (service) group_left () wardwatch:slo_objective:ratio"
