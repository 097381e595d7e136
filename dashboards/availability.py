"""Availability: per unit and service over the chosen range, against the SLO objectives of
alerts/rules/slo.yml (recording rules wardwatch:slo_objective:ratio and
wardwatch:slo_error_budget:ratio must be loaded in Prometheus), and the error budget left."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import promql as q
from dashboards.panels import bar_gauge_panel, finish, prop, stat_panel, table_panel, timeseries_panel
from dashboards.variables import target_scope

# The UID the SLO alerts link to (alerts/rules/slo.yml: .../d/wardwatch-slo/slo?var-unit_code=...).
UID = "wardwatch-slo"
AVAIL_STEPS = ((None, "red"), (0.99, "orange"), (0.995, "yellow"), (0.999, "green"))
BUDGET_STEPS = ((None, "red"), (0, "orange"), (0.25, "yellow"), (0.5, "green"))


def build() -> dict[str, Any]:
    d = (
        db.Dashboard("wardwatch — Availability and SLO").uid(UID).tags(["wardwatch", "slo"])
        .description("Availability per unit and service over the range against the SLO objectives, "
                     "error budget left.")
        .refresh("5m").time("now-30d", "now").timezone("browser")
    )
    d = target_scope(d)
    d = d.link(db.DashboardLink("wardwatch").type(dm.DashboardLinkType.DASHBOARDS).tags(["wardwatch"])
               .as_dropdown(True).include_vars(True).keep_time(True))
    av = q.availability()
    objective = "on (service) group_left () wardwatch:slo_objective:ratio"

    d = d.with_row(db.Row("Over the range"))
    d = d.with_panel(stat_panel("Availability", [(f"avg({av})", "")], unit="percentunit", decimals=3, w=6,
                                steps=AVAIL_STEPS, description="Mean over units and services in scope."))
    d = d.with_panel(stat_panel(
        "Below objective", [(q.count_or_zero(f"{av} < {objective}"), "")], w=6,
        steps=((None, "green"), (1, "red")), description="Unit services whose availability is under the "
        "service's objective."))
    d = d.with_panel(stat_panel(
        "Budget overspent", [(q.count_or_zero(f"{q.budget_remaining()} < 0"), "")], w=6,
        steps=((None, "green"), (1, "red"))))
    d = d.with_panel(stat_panel(
        "Objectives", [('wardwatch:slo_objective:ratio{service=~"$service"}', "{{service}}")],
        unit="percentunit", decimals=1, w=6, steps=((None, "blue"),)))

    d = d.with_panel(table_panel(
        "Availability by unit and service", [av, q.objective_per_row(), q.budget_remaining()],
        w=24, h=16, merge=True, unit="percentunit", sort="Budget left",
        rename={"Value #A": "Availability", "Value #B": "Objective", "Value #C": "Budget left",
                "unit_code": "Unit code", "unit": "Unit", "service": "Service", "province": "Province"},
        overrides=[
            ("Value #A", [prop("decimals", 3), prop("thresholds", {"mode": "absolute", "steps": [
                {"color": c, "value": v} for v, c in AVAIL_STEPS]}),
                prop("custom.cellOptions", {"type": "color-text"})]),
            ("Value #B", [prop("decimals", 1)]),
            ("Value #C", [prop("decimals", 1), prop("thresholds", {"mode": "absolute", "steps": [
                {"color": c, "value": v} for v, c in BUDGET_STEPS]}),
                prop("custom.cellOptions", {"type": "gauge", "mode": "basic"}), prop("min", -1), prop("max", 1)]),
        ],
        description="Share of successful probes over the range (certificates excluded), the service's "
        "objective, and the share of the error budget left (1 - errors / (1 - objective)).",
    ))
    d = d.with_panel(bar_gauge_panel(
        "Least available", f"bottomk(15, {av})", "{{unit}} · {{service}}", unit="percentunit", w=12, h=10,
        min_value=0.9, max_value=1, steps=AVAIL_STEPS))
    d = d.with_panel(timeseries_panel("Error ratio (recorded)", [
        (f"max by (service) ({q.sel('wardwatch:slo_errors:ratio_rate5m')})", "5m · {{service}}"),
        (f"max by (service) ({q.sel('wardwatch:slo_errors:ratio_rate1h')})", "1h · {{service}}"),
        ('max by (service) (wardwatch:slo_error_budget:ratio{service=~"$service"})', "budget · {{service}}"),
    ], unit="percentunit", w=12, h=10, min_value=0, description="Worst unit per service: the 5-minute and "
        "1-hour error ratios the burn-rate alerts read, against the budget (1 - objective).",
        regexp_overrides=[("^budget · .*", [prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})])]))
    return finish(d)
