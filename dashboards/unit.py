"""Unit drill-down: everything wardwatch knows about one unit (variable ``unit_code``)."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import promql as q
from dashboards.panels import (
    SEVERITY_THRESHOLDS,
    bar_gauge_panel,
    finish,
    prop,
    severity_mappings,
    stat_panel,
    state_timeline_panel,
    table_panel,
    timeseries_panel,
)
from dashboards.variables import target_scope

UID = "wardwatch-unit"
UNIT = (q.PROVINCE, q.UNITS)  # panels about one kind of target ignore the service variable
LINK, PORTAL, EMAIL = 'service="link"', 'service="portal"', 'service="email"'
STDDEV, NOT_STDDEV = 'stat="stddev"', 'stat!="stddev"'


def _u(metric: str, *matchers: str) -> str:
    return q.sel(metric, *matchers, scope=UNIT)


def build() -> dict[str, Any]:
    d = (
        db.Dashboard("wardwatch — Unit").uid(UID).tags(["wardwatch", "unit"])
        .description("One unit: its services' state and history, link, traffic, rooms, portal, mail, certificates.")
        .refresh("30s").time("now-3h", "now").timezone("browser")
    )
    d = target_scope(d, multi_unit=False)
    d = d.link(db.DashboardLink("wardwatch").type(dm.DashboardLinkType.DASHBOARDS).tags(["wardwatch"])
               .as_dropdown(True).include_vars(True).keep_time(True))

    # -- state --
    d = d.with_row(db.Row("State"))
    d = d.with_panel(stat_panel(
        "Services", [(q.unit_service_severity(), "{{service}}")], w=24, h=4, mappings=severity_mappings(),
        steps=SEVERITY_THRESHOLDS, description="Worst state of each service's targets."))
    d = d.with_panel(state_timeline_panel(
        "State history", q.target_severity(), "{{service}} · {{probe}} · {{target}}", h=10,
        description="Every target's state over the range (up, unknown, degraded, unreachable, down)."))
    d = d.with_panel(table_panel(
        "State changes", [
            f"max by (service, probe, target) ({q.sel('wardwatch_target_last_change_timestamp_seconds')}) * 1000",
            f"max by (service, probe, target) (changes({q.sel('wardwatch_target_state')}[$__range]))",
        ], w=14, h=9, merge=True, rename={"Value #A": "Current state since", "Value #B": "Changes in range"},
        sort="Current state since", desc=True,
        overrides=[("Value #A", [prop("unit", "dateTimeAsIso")]), ("Value #B", [prop("unit", "none")])],
        description="When each target's current state began and how often it changed over the range."))
    d = d.with_panel(table_panel(
        "Why it fails", [f"max by (service, probe, target, reason) ({q.sel('wardwatch_target_failure_reason_info')})"],
        w=10, h=9, hide=("Time", "Value"), description="The current reason of every target that is not up."))

    # -- link --
    d = d.with_row(db.Row("Link"))
    rtt = (
        f"max by (target, stat) ({_u('wardwatch_link_rtt_seconds')}) "
        f"or max by (target, stat) ({_u('wardwatch_icmp_rtt_seconds', LINK, NOT_STDDEV)})"
    )
    d = d.with_panel(timeseries_panel(
        "Link RTT (SmokePing-style)", [(rtt, "{{stat}} · {{target}}")], unit="s", w=12, h=8, fill=0,
        description="Round-trip time of each round: the band between min and max is the spread, the line "
        "in it the median (link-quality rounds) or the mean (ICMP probe).",
        regexp_overrides=[
            ("^max · .*", [prop("custom.lineWidth", 0), prop("custom.fillOpacity", 25)]),
            ("^min · .*", [prop("custom.lineWidth", 0)]),
        ]))
    loss = (
        f"max by (target) ({_u('wardwatch_link_loss_ratio')}) "
        f"or max by (target) ({_u('wardwatch_icmp_loss_ratio', LINK)})"
    )
    d = d.with_panel(timeseries_panel(
        "Link loss", [(loss, "{{target}}")], unit="percentunit", w=6, h=8, bars=True, min_value=0, max_value=1))
    jitter = (
        f"max by (target) ({_u('wardwatch_link_jitter_seconds')}) "
        f"or max by (target) ({_u('wardwatch_icmp_rtt_seconds', LINK, STDDEV)})"
    )
    d = d.with_panel(timeseries_panel(
        "Link jitter", [(jitter, "{{target}}")], unit="s", w=6, h=8,
        description="Mean difference of consecutive RTTs (link-quality rounds), else the ICMP probe's RTT "
        "standard deviation."))

    # -- traffic --
    d = d.with_row(db.Row("Traffic and interfaces"))
    d = d.with_panel(timeseries_panel("Traffic", [
        (f"max by (ifName) ({_u('wardwatch_snmp_if_in_bits_per_second')})", "in · {{ifName}}"),
        (f"-max by (ifName) ({_u('wardwatch_snmp_if_out_bits_per_second')})", "out · {{ifName}}"),
    ], unit="bps", w=12, h=8, description="Bits per second between the last two SNMP polls (ifHCIn/OutOctets); "
        "out is drawn below the axis."))
    d = d.with_panel(timeseries_panel(
        "Utilisation", [(f"max by (ifName, direction) ({_u('wardwatch_snmp_if_utilisation_ratio')})",
                         "{{direction}} · {{ifName}}")],
        unit="percentunit", w=6, h=8, min_value=0, description="Share of ifHighSpeed used."))
    d = d.with_panel(timeseries_panel(
        "Interface errors and discards",
        [(f"max by (ifName, direction, kind) ({_u('wardwatch_snmp_if_errors_per_second')})",
          "{{kind}} {{direction}} · {{ifName}}")],
        unit="pps", w=6, h=8, min_value=0))
    d = d.with_panel(stat_panel(
        "Interface status", [(f"max by (ifName) ({_u('ifOperStatus')})", "{{ifName}}")], w=6, h=4,
        mappings=[dm.ValueMap(options={
            "1": dm.ValueMappingResult(text="up", color="green", index=0),
            "2": dm.ValueMappingResult(text="down", color="red", index=1),
            "7": dm.ValueMappingResult(text="lower layer down", color="red", index=2),
        })], steps=((None, "orange"),)))
    d = d.with_panel(stat_panel(
        "Router uptime", [(f"max by (target) ({_u('sysUpTime')}) / 100", "")], unit="s", w=6, h=4,
        steps=((None, "blue"),)))
    d = d.with_panel(stat_panel(
        "Router rebooted", [(f"max by (target) (max_over_time({_u('wardwatch_snmp_reboot_detected')}[$__range]))",
                             "")],
        w=6, h=4, steps=((None, "green"), (1, "orange")), description="1 when sysUpTime went backwards in the range.",
        mappings=[dm.ValueMap(options={"0": dm.ValueMappingResult(text="no", index=0),
                                       "1": dm.ValueMappingResult(text="yes", index=1)})]))
    d = d.with_panel(stat_panel(
        "Interface speed", [(f"max by (ifName) ({_u('ifHighSpeed')}) * 1e6", "{{ifName}}")], unit="bps", w=6, h=4))

    # -- video conference rooms --
    d = d.with_row(db.Row("Video-conference rooms"))
    rooms = 'service=~"vc_gov|vc_party"'
    d = d.with_panel(timeseries_panel(
        "SIP OPTIONS response time", [(f"max by (service, target) ({_u('wardwatch_sip_response_seconds', rooms)})",
                                       "{{service}} · {{target}}")], unit="s", w=8, h=8))
    d = d.with_panel(timeseries_panel(
        "STUN Binding RTT", [(f"max by (service, target) ({_u('wardwatch_stun_rtt_seconds', rooms)})",
                              "{{service}} · {{target}}")], unit="s", w=8, h=8))
    d = d.with_panel(timeseries_panel(
        "Room probes (ICMP, H.323, SIP, STUN)", [(f"max by (service, probe) ({_u('probe_duration_seconds', rooms)})",
                                                  "{{service}} · {{probe}}")], unit="s", w=8, h=8))
    d = d.with_panel(stat_panel(
        "SIP status", [(f"max by (service) ({_u('wardwatch_sip_status_code', rooms)})", "{{service}}")], w=8, h=4,
        steps=((None, "green"), (300, "orange"), (400, "red")), decimals=0))
    d = d.with_panel(stat_panel(
        "SIP retransmissions", [(f"max by (service) ({_u('wardwatch_sip_retransmissions', rooms)})", "{{service}}")],
        w=8, h=4, steps=((None, "green"), (1, "orange"))))
    d = d.with_panel(stat_panel(
        "STUN retransmissions", [(f"max by (service) ({_u('wardwatch_stun_retransmissions', rooms)})",
                                  "{{service}}")], w=8, h=4, steps=((None, "green"), (1, "orange"))))

    # -- portal --
    d = d.with_row(db.Row("Portal, old domains, procedures"))
    web = 'service=~"portal|procedures"'
    d = d.with_panel(timeseries_panel(
        "Portal phases", [(f"max by (service, phase) ({_u('probe_http_duration_seconds', web)})",
                           "{{service}} · {{phase}}")], unit="s", w=12, h=8, stack=True, bars=True, fill=80,
        description="Resolve, connect, TLS, processing and transfer time of the last request (summed over "
        "redirects)."))
    d = d.with_panel(stat_panel(
        "HTTP status", [(f"max by (target) ({_u('probe_http_status_code', web)})", "{{target}}")], w=12, h=8,
        steps=((None, "red"), (200, "green"), (300, "orange"), (400, "red")), decimals=0,
        text_mode=cm.BigValueTextMode.VALUE_AND_NAME))
    d = d.with_panel(table_panel(
        "Old-domain redirects", [
            f"max by (target, hop, url) ({_u('wardwatch_http_redirect_hop', PORTAL)})"
        ], w=24, h=7, rename={"Value": "Status"}, sort="target",
        description="Each hop of each redirect chain: an old domain should answer 301/308 to the portal, "
        "which answers 200.",
        steps=((None, "red"), (200, "green"), (300, "blue"), (400, "red"))))

    # -- mail --
    d = d.with_row(db.Row("Mail"))
    d = d.with_panel(stat_panel(
        "MX up", [(f"max by (mx) ({_u('wardwatch_email_mx_up')})", "{{mx}}")], w=8, h=4,
        mappings=[dm.ValueMap(options={"0": dm.ValueMappingResult(text="down", color="red", index=0),
                                       "1": dm.ValueMappingResult(text="up", color="green", index=1)})],
        steps=((None, "red"), (1, "green")), text_mode=cm.BigValueTextMode.VALUE_AND_NAME,
        description="SMTP, EHLO and STARTTLS with a valid certificate, per MX."))
    d = d.with_panel(stat_panel(
        "MX records", [(f"max by (target) ({_u('wardwatch_email_mx_records')})", "")], w=4, h=4,
        steps=((None, "red"), (1, "green"))))
    d = d.with_panel(timeseries_panel(
        "Mail probe time", [(f"max by (target) ({_u('probe_duration_seconds', EMAIL)})", "{{target}}")],
        unit="s", w=12, h=4))

    # -- certificates --
    d = d.with_row(db.Row("Certificates"))
    d = d.with_panel(bar_gauge_panel(
        "Certificate days left", q.cert_days_left(scope=UNIT), "{{probe}} · {{target}}{{mx}}", unit="d",
        w=24, h=7, min_value=0, max_value=400, steps=((None, "red"), (7, "orange"), (30, "yellow"), (60, "green"))))
    return finish(d)
