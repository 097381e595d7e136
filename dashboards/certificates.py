"""Certificates: every TLS and signing certificate wardwatch sees, sorted by days left."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import promql as q
from dashboards.panels import bar_gauge_panel, finish, prop, stat_panel, table_panel
from dashboards.variables import target_scope

UID = "wardwatch-certificates"
DAYS_STEPS = ((None, "red"), (0, "dark-red"), (1, "red"), (7, "orange"), (30, "yellow"), (60, "green"))


def build() -> dict[str, Any]:
    d = (
        db.Dashboard("wardwatch — Certificates").uid(UID).tags(["wardwatch", "certificates"])
        .description("Every TLS endpoint, signing-certificate file and MX certificate by days left.")
        .refresh("5m").time("now-24h", "now").timezone("browser")
    )
    d = target_scope(d)
    d = d.link(db.DashboardLink("wardwatch").type(dm.DashboardLinkType.DASHBOARDS).tags(["wardwatch"])
               .as_dropdown(True).include_vars(True).keep_time(True))
    days = q.cert_days_left()

    d = d.with_row(db.Row("Summary"))
    d = d.with_panel(stat_panel("Certificates", [(q.count_or_zero(days), "")], w=6, steps=((None, "blue"),)))
    d = d.with_panel(stat_panel("Expired", [(q.count_or_zero(f"{days} <= 0"), "")], w=6,
                                steps=((None, "green"), (1, "red"))))
    d = d.with_panel(stat_panel("Expire within 7 days", [(q.count_or_zero(f"{days} > 0 <= 7"), "")], w=6,
                                steps=((None, "green"), (1, "orange"))))
    d = d.with_panel(stat_panel("Expire within 30 days", [(q.count_or_zero(f"{days} > 7 <= 30"), "")], w=6,
                                steps=((None, "green"), (1, "yellow"))))

    d = d.with_row(db.Row("Every certificate"))
    d = d.with_panel(table_panel(
        "Certificates by days left", [days], w=24, h=16, unit="d", steps=DAYS_STEPS, colour_cells=False,
        sort="Days left", rename={
            "Value": "Days left", "unit_code": "Unit code", "unit": "Unit", "service": "Service", "probe": "Probe",
            "target": "Target", "subject": "Subject", "issuer": "Issuer", "serial": "Serial", "mx": "MX",
            "province": "Province",
        },
        overrides=[("Value", [prop("custom.cellOptions", {"type": "color-background", "mode": "basic"}),
                              prop("decimals", 1)])],
        description="TLS endpoints (earliest expiry of the presented chain; subject and issuer of the leaf), "
        "signing-certificate files (one row per certificate in the file) and each MX's STARTTLS chain.",
    ))
    d = d.with_panel(bar_gauge_panel(
        "Soonest 20", f"bottomk(20, {days})", "{{unit}} · {{target}}{{mx}}", unit="d", w=12, h=12,
        min_value=0, max_value=90, steps=DAYS_STEPS))
    tls = q.sel("wardwatch_tls_chain_verified")
    host = q.sel("wardwatch_tls_hostname_match")
    d = d.with_panel(table_panel(
        "TLS chain and host name", [
            f"min by (unit_code, unit, target) ({tls})",
            f"min by (unit_code, unit, target) ({host})",
        ], w=12, h=12, merge=True, rename={"Value #A": "Chain verified", "Value #B": "Host name matches"},
        mappings=[dm.ValueMap(options={"0": dm.ValueMappingResult(text="no", color="red", index=0),
                                       "1": dm.ValueMappingResult(text="yes", color="green", index=1)})],
        overrides=[(n, [prop("custom.cellOptions", {"type": "color-text"})]) for n in ("Value #A", "Value #B")],
        sort="Chain verified",
        description="Whether each TLS endpoint's chain verified against the trusted CAs and matched its name.",
    ))
    return finish(d)
