"""wardwatch itself: is the monitor keeping time, how much it probes, why probes fail, and the
health of its store, inventory and (when exported) notifiers."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.panels import datasource_variable, finish, query_variable, stat_panel, timeseries_panel
from monitor.exporter import METRICS

UID = "wardwatch-self"
INST = 'instance=~"$instance"'
FAILING, KNOWN = 'state!~"up|unknown"', 'state!="unknown"'


def _s(metric: str, *matchers: str) -> str:
    return f"{metric}{{{','.join((INST, *matchers))}}}"


def build() -> dict[str, Any]:
    d = (
        db.Dashboard("wardwatch — the monitor").uid(UID).tags(["wardwatch", "self"])
        .description("wardwatch's own health: schedule lateness, probe rates, failures, store, notifiers.")
        .refresh("30s").time("now-3h", "now").timezone("browser")
    )
    d = d.with_variable(datasource_variable()).with_variable(
        query_variable("instance", "Instance", "label_values(wardwatch_build_info, instance)"))
    d = d.link(db.DashboardLink("wardwatch").type(dm.DashboardLinkType.DASHBOARDS).tags(["wardwatch"])
               .as_dropdown(True).include_vars(False).keep_time(True))

    d = d.with_row(db.Row("Now"))
    d = d.with_panel(stat_panel("Instances up", [(f"count(up{{{INST}}} == 1) or vector(0)", "")], w=4,
                                steps=((None, "red"), (1, "green"))))
    d = d.with_panel(stat_panel("Version", [(f"count by (version) ({_s('wardwatch_build_info')})", "{{version}}")],
                                w=4, text_mode=cm.BigValueTextMode.NAME, steps=((None, "blue"),)))
    d = d.with_panel(stat_panel("Targets", [(f"sum by (instance) ({_s('wardwatch_targets')})", "{{instance}}")],
                                w=4, steps=((None, "blue"),)))
    d = d.with_panel(stat_panel(
        "Targets failing", [(f"sum({_s('wardwatch_targets', FAILING)}) "
                             f"/ sum({_s('wardwatch_targets', KNOWN)})", "")],
        unit="percentunit", w=4, steps=((None, "green"), (0.1, "orange"), (0.4, "red")),
        description="A large share failing at once is the monitor's own uplink or DNS."))
    d = d.with_panel(stat_panel(
        "Last inventory reload", [(f"max({_s('wardwatch_inventory_last_reload_success_timestamp_seconds')}) * 1000",
                                   "")], unit="dateTimeFromNow", w=4, steps=((None, "blue"),)))
    d = d.with_panel(stat_panel(
        "Store errors (range)", [(f"sum(increase({_s('wardwatch_store_errors_total')}[$__range]))", "")], w=4,
        decimals=0, steps=((None, "green"), (1, "red"))))

    d = d.with_panel(stat_panel(
        "Instances: vantage, shard, replicas",
        [(f"count by (instance, vantage, shard, replicas) ({_s('wardwatch_instance_info')})",
          "{{instance}} · {{vantage}} · {{shard}} ×{{replicas}}")],
        w=24, text_mode=cm.BigValueTextMode.NAME, steps=((None, "blue"),),
        description="Where each instance probes from (wardwatch run --vantage) and its share of the "
        "inventory (--shard I/N, every target probed by --replicas of them)."))

    d = d.with_row(db.Row("Scheduling and probes"))
    bucket = _s("wardwatch_schedule_lateness_seconds_bucket")
    d = d.with_panel(timeseries_panel("Schedule lateness", [
        (f"histogram_quantile({p}, sum by (instance, le) (rate({bucket}[$__rate_interval])))",
         f"p{round(p * 100)} · {{{{instance}}}}") for p in (0.5, 0.9, 0.99)
    ], unit="s", w=12, h=8, min_value=0, description="How late probes start after they are due."))
    d = d.with_panel(timeseries_panel(
        "Probes per second by kind",
        [(f"sum by (probe) (rate({_s('wardwatch_probes_total')}[$__rate_interval]))", "{{probe}}")],
        unit="ops", w=12, h=8, stack=True))
    d = d.with_panel(timeseries_panel(
        "Probe failures by reason",
        [(f"sum by (probe, reason) (rate({_s('wardwatch_probe_failures_total')}[$__rate_interval]))",
          "{{probe}} · {{reason}}")], unit="ops", w=12, h=8, stack=True))
    d = d.with_panel(timeseries_panel("Probe results", [
        (f"sum by (result) (rate({_s('wardwatch_probes_total')}[$__rate_interval]))", "{{result}}"),
    ], unit="ops", w=6, h=8, stack=True))
    d = d.with_panel(timeseries_panel(
        "Probes in flight", [(f"sum by (instance) ({_s('wardwatch_probes_in_flight')})", "{{instance}}")],
        w=6, h=8))

    d = d.with_row(db.Row("Store, inventory, notifiers, process"))
    d = d.with_panel(timeseries_panel("Store errors per second", [
        (f"sum by (instance) (rate({_s('wardwatch_store_errors_total')}[$__rate_interval]))", "{{instance}}"),
    ], unit="ops", w=8, h=7, min_value=0))
    d = d.with_panel(timeseries_panel("Inventory reloads", [
        (f"sum by (result) (increase({_s('wardwatch_inventory_reloads_total')}[$__rate_interval]))", "{{result}}"),
    ], w=8, h=7, bars=True, min_value=0))
    for title, expr, legend, unit in _notifier_panels():
        d = d.with_panel(timeseries_panel(title, [(expr, legend)], unit=unit, w=8, h=7, min_value=0))
    d = d.with_panel(timeseries_panel("/metrics render time", [
        (f"max by (instance) ({_s('wardwatch_metrics_render_seconds')})", "{{instance}}"),
    ], unit="s", w=8, h=7, min_value=0))
    d = d.with_panel(timeseries_panel("Memory", [
        (f"max by (instance) ({_s('process_resident_memory_bytes')})", "{{instance}}"),
    ], unit="bytes", w=8, h=7, min_value=0))
    d = d.with_panel(timeseries_panel("CPU", [
        (f"sum by (instance) (rate({_s('process_cpu_seconds_total')}[$__rate_interval]))", "{{instance}}"),
    ], unit="percentunit", w=8, h=7, min_value=0))
    return finish(d)


def _notifier_panels() -> list[tuple[str, str, str, str]]:
    """The built-in alerting's health (alerts/service.py metrics_text): deliveries by receiver and
    result, what waits in the outbox, the engine's alerts. Names are checked against
    monitor.exporter.METRICS at build time: the dashboard shows what the exporter has."""
    panels = [
        ("Notifications per second", "wardwatch_notifications_total",
         "sum by (receiver, result) (rate({m}[$__rate_interval]))", "{{receiver}}: {{result}}", "ops"),
        ("Outbox: waiting to be delivered", "wardwatch_outbox_pending",
         "max by (receiver, instance) ({m})", "{{receiver}} ({{instance}})", "short"),
        # Replicas each run an engine with the same alerts: max, not sum.
        ("Built-in alerts by severity and state", "wardwatch_alerts",
         "max by (severity, state) ({m})", "{{severity}} {{state}}", "short"),
    ]
    out = []
    for title, name, expr, legend, unit in panels:
        if name not in METRICS:
            raise ValueError(f"{name}: not exported by monitor.exporter")
        out.append((title, expr.format(m=_s(name)), legend, unit))
    return out
