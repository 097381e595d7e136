"""Small wrappers over grafana-foundation-sdk's builders, so each dashboard module reads as a list
of panels: one Prometheus data source variable, queries that always name it, severity colours,
and ``finish`` turning a builder into the deterministic JSON committed under dashboards/json/.

The builders come from the SDK build pinned for Grafana 11.6 (schemaVersion 41); method names
differ between the SDK's builds, so the pin in pyproject.toml matters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import bargauge, common, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

from dashboards.promql import SEVERITY_TEXT

# Every panel, query and variable reads the data source chosen in the ${datasource} variable:
# no data source UID is written into the JSON.
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
WIDTH = 24  # Grafana's grid


def query(expr: str, legend: str = "", *, instant: bool = False, table_format: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).datasource(DS)
    q = q.instant() if instant else q.range()
    if legend:
        q = q.legend_format(legend)
    if table_format:
        q = q.format(pm.PromQueryFormat.TABLE)
    return q


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=v, color=c) for v, c in steps]
    )


def severity_mappings() -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(options={
            str(k): dm.ValueMappingResult(text=t, color=c, index=k) for k, (t, c) in SEVERITY_TEXT.items()
        })
    ]


SEVERITY_THRESHOLDS = (
    (None, "green"), (1, "text"), (2, "yellow"), (3, "purple"), (4, "red"),
)


def datasource_variable() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Data source").type("prometheus")


def query_variable(
    name: str, label: str, query_text: str, *, multi: bool = True, regex: str = "", sort_numeric: bool = False
) -> db.QueryVariable:
    v = (
        db.QueryVariable(name).label(label).datasource(DS)
        .query(query_text)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.NUMERICAL_ASC if sort_numeric else dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi).include_all(multi)
    )
    if multi:
        v = v.all_value(".*")
    if regex:
        v = v.regex(regex)
    return v


P = TypeVar("P", stat.Panel, table.Panel, timeseries.Panel, statetimeline.Panel, bargauge.Panel)


def _common(p: P, title: str, description: str, w: int, h: int) -> P:
    p = p.title(title).datasource(DS).span(w).height(h)
    return p.description(description) if description else p


def stat_panel(
    title: str, exprs: Sequence[tuple[str, str]], *, description: str = "", unit: str = "short", w: int = 4, h: int = 4,
    steps: Sequence[tuple[float | None, str]] = ((None, "blue"),), mappings: list[dm.ValueMapping] | None = None,
    decimals: float | None = None, time_from: str = "", text_mode: cm.BigValueTextMode = cm.BigValueTextMode.AUTO,
) -> stat.Panel:
    p = _common(stat.Panel(), title, description, w, h).unit(unit).thresholds(thresholds(*steps))
    p = p.color_mode(cm.BigValueColorMode.BACKGROUND).graph_mode(cm.BigValueGraphMode.NONE).text_mode(text_mode)
    p = p.reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    for expr, legend in exprs:
        p = p.with_target(query(expr, legend, instant=True))
    if mappings:
        p = p.mappings(mappings)
    if decimals is not None:
        p = p.decimals(decimals)
    if time_from:
        p = p.time_from(time_from)
    return p


def table_panel(
    title: str, exprs: Sequence[str], *, description: str = "", unit: str = "short", w: int = 12, h: int = 8,
    rename: dict[str, str] | None = None, hide: Sequence[str] = ("Time",), sort: str = "", desc: bool = False,
    transformations: Sequence[dm.DataTransformerConfig] = (),
    steps: Sequence[tuple[float | None, str]] = ((None, "text"),),
    mappings: list[dm.ValueMapping] | None = None, colour_cells: bool = False, merge: bool = False,
    overrides: Sequence[tuple[str, list[dm.DynamicConfigValue]]] = (),
) -> table.Panel:
    p = _common(table.Panel(), title, description, w, h).unit(unit).thresholds(thresholds(*steps))
    for expr in exprs:
        p = p.with_target(query(expr, instant=True, table_format=True))
    if mappings:
        p = p.mappings(mappings)
    if colour_cells:
        p = p.cell_options(cm.TableColoredBackgroundCellOptions(mode=cm.TableCellBackgroundDisplayMode.BASIC))
    if merge:
        p = p.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
    for t in transformations:
        p = p.with_transformation(t)
    if rename or hide:
        p = p.with_transformation(dm.DataTransformerConfig(id_val="organize", options={
            "excludeByName": dict.fromkeys(hide, True), "renameByName": dict(rename or {}),
            "indexByName": {}, "includeByName": {},
        }))
    if sort:
        p = p.sort_by([common.TableSortByFieldState().display_name(sort).desc(desc)])
    for name, props in overrides:
        p = p.override_by_name(name, props)
    return p.filterable(True)


def timeseries_panel(
    title: str, exprs: Sequence[tuple[str, str]], *, description: str = "", unit: str = "short", w: int = 12,
    h: int = 8, stack: bool = False, bars: bool = False, fill: float = 10, min_value: float | None = None,
    max_value: float | None = None, overrides: Sequence[tuple[str, list[dm.DynamicConfigValue]]] = (),
    regexp_overrides: Sequence[tuple[str, list[dm.DynamicConfigValue]]] = (),
) -> timeseries.Panel:
    p = _common(timeseries.Panel(), title, description, w, h).unit(unit).fill_opacity(fill).line_width(1)
    p = p.legend(common.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE).placement(
        cm.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"]))
    for expr, legend in exprs:
        p = p.with_target(query(expr, legend))
    if stack:
        p = p.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
    if bars:
        p = p.draw_style(cm.GraphDrawStyle.BARS)
    if min_value is not None:
        p = p.min(min_value)
    if max_value is not None:
        p = p.max(max_value)
    for name, props in overrides:
        p = p.override_by_name(name, props)
    for rx, props in regexp_overrides:
        p = p.override_by_regexp(rx, props)
    return p


def state_timeline_panel(
    title: str, expr: str, legend: str, *, description: str = "", w: int = 24, h: int = 10,
) -> statetimeline.Panel:
    p = _common(statetimeline.Panel(), title, description, w, h)
    p = p.with_target(query(expr, legend)).mappings(severity_mappings()).thresholds(thresholds(*SEVERITY_THRESHOLDS))
    return p.show_value(cm.VisibilityMode.NEVER).merge_values(True).row_height(0.8).fill_opacity(80)


def bar_gauge_panel(
    title: str, expr: str, legend: str, *, description: str = "", unit: str = "short", w: int = 12, h: int = 8,
    steps: Sequence[tuple[float | None, str]] = ((None, "green"),), min_value: float | None = None,
    max_value: float | None = None,
) -> bargauge.Panel:
    p = _common(bargauge.Panel(), title, description, w, h).unit(unit).thresholds(thresholds(*steps))
    p = p.with_target(query(expr, legend, instant=True)).display_mode(cm.BarGaugeDisplayMode.BASIC)
    p = p.orientation(cm.VizOrientation.HORIZONTAL).reduce_options(
        common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    if min_value is not None:
        p = p.min(min_value)
    if max_value is not None:
        p = p.max(max_value)
    return p


def prop(name: str, value: object) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=name, value=value)


# -- from builder to committed JSON ---------------------------------------------------------


def _layout(panels: list[dict[str, Any]]) -> None:
    """Ids 1..n in order, and grid positions flowing left to right, rows across the full width."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        pos = p.setdefault("gridPos", {"w": WIDTH, "h": 8})
        w, h = int(pos.get("w", WIDTH)), int(pos.get("h", 8))
        if p.get("type") == "row":
            w, h = WIDTH, 1
        if x + w > WIDTH or p.get("type") == "row":
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x, row_h = x + w, max(row_h, h)
        if p.get("type") == "row":
            x, y, row_h = 0, y + h, 0
        for j, t in enumerate(p.get("targets", [])):
            t["refId"] = t.get("refId") or chr(ord("A") + j)


def finish(d: db.Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data with ids, grid positions and query refIds filled in."""
    doc: dict[str, Any] = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    _layout(doc["panels"])
    doc["annotations"] = {"list": [{
        "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
    }]}
    doc["id"] = None
    return doc


def render(doc: dict[str, Any]) -> str:
    """The committed form: sorted keys, two-space indent, UTF-8 kept, one trailing newline."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
