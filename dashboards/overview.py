"""NOC overview: which units are in trouble and in what, at a glance."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import promql as q
from dashboards.panels import (
    SEVERITY_THRESHOLDS,
    bar_gauge_panel,
    finish,
    prop,
    severity_mappings,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from dashboards.variables import target_scope

UID = "wardwatch-overview"
UNIT_LINK = "/d/wardwatch-unit/unit?var-unit_code=${__data.fields.unit_code}&${datasource:queryparam}"


def _count_units(level: int) -> str:
    return q.count_or_zero(f"{q.unit_severity()} == {level}")


def build() -> dict[str, Any]:
    d = (
        db.Dashboard("wardwatch — NOC overview").uid(UID).tags(["wardwatch", "noc"])
        .description("Every unit by service, worst state wins; counts, isolated units, alerts, certificates.")
        .refresh("30s").time("now-6h", "now").timezone("browser")
    )
    d = target_scope(d)
    d = d.link(db.DashboardLink("wardwatch").type(dm.DashboardLinkType.DASHBOARDS).tags(["wardwatch"])
               .as_dropdown(True).include_vars(True).keep_time(True))

    d = d.with_row(db.Row("Now"))
    d = d.with_panel(stat_panel("Units up", [(_count_units(0), "")], steps=((None, "green"),), w=3))
    d = d.with_panel(stat_panel("Units degraded", [(_count_units(2), "")], w=3,
                                description="Link quality degraded (loss or latency over its thresholds).",
                                steps=((None, "green"), (1, "yellow"))))
    d = d.with_panel(stat_panel("Units down", [(_count_units(4), "")], w=3,
                                description="Units with at least one service down.",
                                steps=((None, "green"), (1, "red"))))
    d = d.with_panel(stat_panel("Units isolated", [(q.units_isolated(), "")], w=3,
                                description="Every link target of the unit is down: the unit is cut off.",
                                steps=((None, "green"), (1, "red"))))
    d = d.with_panel(stat_panel(
        "Services unreachable", [(q.count_or_zero(f"{q.unit_service_severity()} == 3"), "")], w=3,
        description="Unit services failing behind a down link (not counted as down on their own).",
        steps=((None, "green"), (1, "purple"))))
    d = d.with_panel(stat_panel(
        "Active alerts", [(q.count_or_zero('ALERTS{alertstate="firing",alertname=~"Wardwatch.*"}'), "")], w=3,
        description="Firing alerts from the wardwatch Prometheus rules (alerts/rules).",
        steps=((None, "green"), (1, "orange"))))
    d = d.with_panel(stat_panel(
        "Availability today", [(f"avg({q.availability()})", "")], unit="percentunit", decimals=2, w=3,
        time_from="now/d", description="Share of successful probes since midnight, all units and services "
        "in scope (certificates excluded).",
        steps=((None, "red"), (0.99, "orange"), (0.995, "green"))))
    d = d.with_panel(stat_panel(
        "Down from some vantages", [(q.targets_down_from_some_vantages(), "")], w=3,
        description="Targets some wardwatch replicas see down while another sees them up: a path problem "
        "from one site, not the service (always 0 with one instance).",
        steps=((None, "green"), (1, "yellow"))))

    d = d.with_row(db.Row("Status grid"))
    grid = (
        f'label_join({q.unit_service_severity()}, "unit_label", " · ", "unit_code", "unit")'
    )
    d = d.with_panel(table_panel(
        "Status by unit and service", [grid], w=24, h=14, mappings=severity_mappings(),
        steps=SEVERITY_THRESHOLDS, colour_cells=True,
        description="One row per unit, one column per service; a cell is the worst state of the service's "
        "targets (up, unknown, degraded, unreachable, down).",
        transformations=[dm.DataTransformerConfig(id_val="groupingToMatrix", options={
            "columnField": "service", "rowField": "unit_label", "valueField": "Value", "emptyValue": "null"})],
        hide=(), rename={"unit_label\\service": "Unit"},
    ))
    d = d.with_panel(table_panel(
        "Failing targets and why", [
            f"max by ({q.TARGET_LABELS}, reason) ({q.sel('wardwatch_target_failure_reason_info')} == 1)"
        ], w=24, h=9, hide=("Time", "Value"),
        description="Targets not up now, with the reason the probe gave.",
        overrides=[("unit_code", [prop("links", [{"title": "Unit drill-down", "url": UNIT_LINK}])])],
    ))

    d = d.with_row(db.Row("Alerts and certificates"))
    d = d.with_panel(table_panel(
        "Active alerts", [
            'max by (alertname, severity, province, unit_code, unit, service, target) '
            '(ALERTS{alertstate="firing",alertname=~"Wardwatch.*",province=~"$province|",unit_code=~"$unit_code|"})'
        ], w=12, h=9, hide=("Time", "Value"),
        description="From Prometheus' ALERTS series (the rules in alerts/rules must be loaded).",
    ))
    d = d.with_panel(bar_gauge_panel(
        "Certificates expiring soonest", f"bottomk(10, {q.cert_days_left()})", "{{unit}} · {{target}}",
        unit="d", w=12, h=9, min_value=0, max_value=90,
        steps=((None, "red"), (7, "orange"), (30, "yellow"), (60, "green")),
        description="Days left of the ten certificates (TLS endpoints, signing files, mail) expiring first.",
    ))

    d = d.with_row(db.Row("Trend"))
    d = d.with_panel(timeseries_panel("Targets not up", [
        (q.count_or_zero(f"{q.target_severity()} == 4"), "down"),
        (q.count_or_zero(f"{q.target_severity()} == 3"), "unreachable"),
        (q.count_or_zero(f"{q.target_severity()} == 1"), "unknown"),
    ], w=24, h=7, stack=True, overrides=[
        ("down", [prop("color", {"mode": "fixed", "fixedColor": "red"})]),
        ("unreachable", [prop("color", {"mode": "fixed", "fixedColor": "purple"})]),
        ("unknown", [prop("color", {"mode": "fixed", "fixedColor": "text"})]),
    ]))
    return finish(d)
