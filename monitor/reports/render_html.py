"""The SLA report as one self-contained HTML page: inline CSS and SVG drawn here, no script,
no font or image from anywhere else (printable: the PDF is this page printed by Chromium)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from zoneinfo import ZoneInfo

from monitor.reports.intervals import Incident
from monitor.reports.sla import (
    Report,
    UnitRow,
    fmt_duration,
    fmt_pct,
    incident_rows,
    verdict,
)

HEATMAP_MAX_UNITS = 200  # rows of the heat map (the worst first); every unit is in the tables
TIMELINE_MAX_UNITS = 40
INCIDENTS_MAX = 2000

CSS = """
body{font-family:"DejaVu Sans","Noto Sans",Arial,sans-serif;font-size:11px;color:#222;margin:24px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:22px 0 6px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:4px 0 10px}th,td{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}.pass{color:#137333}.fail{color:#b3261e;font-weight:bold}
.nodata{color:#888;font-style:italic}.muted{color:#666}.kpi{display:inline-block;margin:6px 18px 6px 0}
.kpi b{display:block;font-size:18px}svg{display:block;margin:6px 0}
@media print{h2{break-after:avoid}table,svg{break-inside:auto}tr{break-inside:avoid}}
"""


def _color(a: float | None) -> str:
    if a is None:
        return "#e0e0e0"
    if a >= 99.9:
        return "#1a9850"
    if a >= 99.5:
        return "#91cf60"
    if a >= 99.0:
        return "#d9ef8b"
    if a >= 98.0:
        return "#fee08b"
    if a >= 95.0:
        return "#fc8d59"
    return "#d73027"


def _cls(passed: bool | None) -> str:
    return {True: "pass", False: "fail", None: "nodata"}[passed]


def _pct_cell(a: float | None) -> str:
    return '<td class="nodata">no data</td>' if a is None else f"<td>{fmt_pct(a)}</td>"


def heatmap(report: Report) -> str:
    units = sorted(report.units, key=lambda u: (u.figures.availability is None,
                                                u.figures.availability or 0.0, u.code))[:HEATMAP_MAX_UNITS]
    days = report.day_starts
    if not units or not days:
        return ""
    zone = ZoneInfo(report.tz)
    cw = max(4, min(28, 800 // len(days)))
    ch, left, top = 12, 190, 28
    every = max(1, len(days) // 15)
    parts: list[str] = []
    # One SVG per 60 units: a picture never splits across printed pages, so keep each short.
    for first in range(0, len(units), 60):
        chunk = units[first:first + 60]
        w, h = left + cw * len(days) + 10, top + ch * len(chunk) + 4
        parts.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
                     f'aria-label="availability heat map">')
        for j, d in enumerate(days):
            if j % every == 0:
                parts.append(f'<text x="{left + j * cw}" y="{top - 6}" font-size="9">'
                             f'{d.astimezone(zone).strftime("%d/%m")}</text>')
        for i, u in enumerate(chunk):
            y = top + i * ch
            parts.append(f'<text x="{left - 4}" y="{y + ch - 2}" font-size="9" text-anchor="end">'
                         f'{escape(str(u.code))} {escape(u.name[:26])}</text>')
            for j, a in enumerate(u.days):
                tip = f"{u.code} {days[j].astimezone(zone):%Y-%m-%d}: {fmt_pct(a)}"
                parts.append(f'<rect x="{left + j * cw}" y="{y}" width="{cw - 1}" height="{ch - 1}" '
                             f'fill="{_color(a)}"><title>{escape(tip)}</title></rect>')
        parts.append("</svg>")
    legend = " ".join(
        f'<span style="display:inline-block;width:10px;height:10px;background:{_color(v)}"></span> {label}'
        for v, label in ((99.95, "≥99.9"), (99.6, "≥99.5"), (99.2, "≥99"), (98.5, "≥98"), (96.0, "≥95"),
                         (50.0, "<95"), (None, "no data"))
    )
    more = (f' <span class="muted">(the {HEATMAP_MAX_UNITS} lowest of {len(report.units)} units)</span>'
            if len(report.units) > HEATMAP_MAX_UNITS else "")
    return "".join(parts) + f"<div>{legend}{more}</div>"


def worst_bars(report: Report, n: int = 15) -> str:
    worst = report.worst(n)
    if not worst:
        return '<p class="nodata">no unit has data in this range</p>'
    lo = min(u.figures.availability or 0.0 for u in worst)
    floor = max(0.0, min(99.0, lo - (100 - lo) * 0.1))
    left, bw, bh = 220, 460, 16
    h = bh * len(worst) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + bw + 90}" height="{h}" role="img" '
             f'aria-label="worst units">']
    for i, u in enumerate(worst):
        a = u.figures.availability or 0.0
        width = bw * (a - floor) / (100 - floor) if a > floor else 1
        y = 4 + i * bh
        parts.append(f'<text x="{left - 4}" y="{y + bh - 5}" font-size="10" text-anchor="end">'
                     f'{u.code} {escape(u.name[:30])}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{width:.1f}" height="{bh - 3}" fill="{_color(a)}"/>')
        parts.append(f'<text x="{left + width + 4:.1f}" y="{y + bh - 5}" font-size="10">{fmt_pct(a)}</text>')
    parts.append(f'<text x="{left}" y="{h}" font-size="8" fill="#666">axis from {floor:.1f}%</text></svg>')
    return "".join(parts)


def timeline(report: Report, unit: UnitRow) -> str:
    s, e = report.start.timestamp(), report.end.timestamp()
    left, width, rh = 90, 640, 14
    rows = [r for r in unit.services]
    h = rh * len(rows) + 16
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 10}" height="{h}" role="img" '
             f'aria-label="incident timeline of unit {unit.code}">']

    def x(t: float) -> float:
        return left + width * (t - s) / (e - s)

    for i, r in enumerate(rows):
        y = i * rh
        parts.append(f'<text x="{left - 4}" y="{y + rh - 4}" font-size="9" text-anchor="end">{r.service}</text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{width}" height="{rh - 4}" fill="#e8f5e9"/>')
        for inc in r.figures.incident_list:
            parts.append(_inc_rect(inc, x(inc.start), x(inc.end), y, rh))
    zone = ZoneInfo(report.tz)
    parts.append(f'<text x="{left}" y="{h - 2}" font-size="8" fill="#666">'
                 f'{report.start.astimezone(zone):%Y-%m-%d %H:%M}</text>')
    parts.append(f'<text x="{left + width}" y="{h - 2}" font-size="8" fill="#666" text-anchor="end">'
                 f'{report.end.astimezone(zone):%Y-%m-%d %H:%M}</text></svg>')
    return "".join(parts)


def _inc_rect(inc: Incident, x0: float, x1: float, y: float, rh: int) -> str:
    fill = "#9e9e9e" if inc.in_maintenance == "yes" else ("#fb8c00" if inc.unreachable else "#d32f2f")
    tip = f"{fmt_duration(inc.seconds)} {inc.reason or ''}"
    return (f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(1.0, x1 - x0):.1f}" height="{rh - 4}" fill="{fill}">'
            f"<title>{escape(tip)}</title></rect>")


def render(report: Report) -> str:
    zone = ZoneInfo(report.tz)

    def when(t: float | datetime) -> str:
        dt = t if isinstance(t, datetime) else datetime.fromtimestamp(t, UTC)
        return dt.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    c = report.counts()
    city = report.city
    out: list[str] = [
        "<!DOCTYPE html><html lang=\"vi\"><head><meta charset=\"utf-8\">",
        f"<title>SLA report {when(report.start)} – {when(report.end)}</title><style>{CSS}</style></head><body>",
        "<h1>Service availability (SLA) report</h1>",
        f'<p class="muted">{when(report.start)} → {when(report.end)} ({escape(report.tz)}); source: '
        f"{escape(report.source)}; unknown time: {'counted as down' if report.policy == 'down' else 'excluded'}; "
        f"generated {when(report.generated_at)}</p>",
        '<div>',
        f'<span class="kpi"><b>{fmt_pct(city.availability)}</b>city-wide availability</span>',
        f'<span class="kpi"><b>{c["units"]}</b>units</span>',
        f'<span class="kpi"><b class="pass">{c["passed"]}</b>meet every target</span>',
        f'<span class="kpi"><b class="fail">{c["failed"]}</b>miss a target</span>',
        f'<span class="kpi"><b>{c["no_data"]}</b>no data</span>',
        f'<span class="kpi"><b>{c["incidents"]}</b>incidents</span>',
        f'<span class="kpi"><b>{fmt_duration(city.down)}</b>downtime</span>',
        f'<span class="kpi"><b>{fmt_duration(city.unknown)}</b>unknown (not monitored)</span>',
        "</div>",
        "<p class=\"muted\">Availability = up / (up + down) over time outside maintenance. Unknown time "
        "(wardwatch not running, or no data) is shown apart"
        + (" and counted as down" if report.policy == "down" else " and left out") +
        "; a service unreachable behind its unit's down link counts as down for that service. "
        "Outages are dated from their first failed probe.</p>",
        "<h2>SLA targets</h2><table><tr>" + "".join(f"<th>{escape(s)}</th>" for s in report.services) + "</tr><tr>"
        + "".join(f"<td>{report.targets_sla[s]:g}%</td>" if s in report.targets_sla else "<td>—</td>"
                  for s in report.services) + "</tr></table>",
        "<h2>Availability by unit and day</h2>", heatmap(report),
        "<h2>Worst units</h2>", worst_bars(report),
        "<h2>Units</h2><table><tr><th>#</th><th class=l>unit</th><th>availability</th><th>verdict</th>"
        "<th>downtime</th><th>incidents</th><th>MTTR</th><th>MTBF</th><th>longest</th><th>maintenance</th>"
        "<th>unknown</th></tr>",
    ]
    for n, u in enumerate(sorted(report.units, key=lambda u: u.code), 1):
        f = u.figures
        out.append(
            f"<tr><td>{n}</td><td class=l>{u.code} {escape(u.name)}</td>{_pct_cell(f.availability)}"
            f'<td class="{_cls(u.passed)}">{verdict(u.passed)}</td><td>{fmt_duration(f.down)}</td>'
            f"<td>{f.incidents}</td><td>{fmt_duration(f.mttr)}</td><td>{fmt_duration(f.mtbf)}</td>"
            f"<td>{fmt_duration(f.longest)}</td><td>{fmt_duration(f.maintenance)}</td>"
            f"<td>{fmt_duration(f.unknown)}</td></tr>"
        )
    out.append("</table>")
    out.append("<h2>Units × services</h2><table><tr><th class=l>unit</th><th class=l>service</th>"
               "<th>availability</th><th>target</th><th>verdict</th><th>downtime</th><th>of which unreachable</th>"
               "<th>incidents</th><th>MTTR</th><th>MTBF</th><th>longest</th><th>maintenance</th><th>unknown</th></tr>")
    for u in sorted(report.units, key=lambda u: u.code):
        for r in u.services:
            f = r.figures
            out.append(
                f"<tr><td class=l>{u.code} {escape(u.name)}</td><td class=l>{r.service}</td>"
                f"{_pct_cell(f.availability)}<td>{'—' if r.target is None else f'{r.target:g}%'}</td>"
                f'<td class="{_cls(r.passed)}">{verdict(r.passed)}</td><td>{fmt_duration(f.down)}</td>'
                f"<td>{fmt_duration(f.unreachable)}</td><td>{f.incidents}</td><td>{fmt_duration(f.mttr)}</td>"
                f"<td>{fmt_duration(f.mtbf)}</td><td>{fmt_duration(f.longest)}</td>"
                f"<td>{fmt_duration(f.maintenance)}</td><td>{fmt_duration(f.unknown)}</td></tr>"
            )
    out.append("</table>")
    merged = [u for u in report.units if u.merged_from]
    if merged:
        out.append("<h2>By former unit (merged_from)</h2><table><tr><th class=l>former unit</th>"
                   "<th class=l>now part of</th><th>unit availability</th><th class=l>old domains → redirect "
                   "availability</th></tr>")
        for u in merged:
            for code, name, _domains in u.merged_from:
                reds = "; ".join(f"{escape(url)}: {fmt_pct(a)}" for c, _, url, a in u.old_domains if c == code)
                out.append(f"<tr><td class=l>{code} {escape(name)}</td><td class=l>{u.code} {escape(u.name)}</td>"
                           f"{_pct_cell(u.figures.availability)}<td class=l>{reds or '—'}</td></tr>")
        out.append("</table>")
    with_inc = sorted((u for u in report.units if u.figures.incidents),
                      key=lambda u: (-u.figures.down, u.code))[:TIMELINE_MAX_UNITS]
    if with_inc:
        out.append("<h2>Incident timelines</h2><p class=muted>red: down; orange: unreachable behind the "
                   "unit's link; grey: inside maintenance.</p>")
        for u in with_inc:
            out.append(f"<h3>{u.code} {escape(u.name)}</h3>{timeline(report, u)}")
    rows = incident_rows(report)
    out.append(f"<h2>Incidents ({len(rows)})</h2>")
    if rows:
        out.append("<table><tr><th class=l>unit</th><th class=l>service</th><th>start</th><th>end</th>"
                   "<th>duration</th><th class=l>reason</th><th>in maintenance</th></tr>")
        for u, r, i in rows[:INCIDENTS_MAX]:
            end = when(i.end) + (" (ongoing)" if i.open_end else "")
            reason = (i.reason or "") + (" (unreachable)" if i.unreachable else "")
            out.append(f"<tr><td class=l>{u.code} {escape(u.name)}</td><td class=l>{r.service}</td>"
                       f"<td>{when(i.start)}</td><td>{end}</td><td>{fmt_duration(i.seconds)}</td>"
                       f"<td class=l>{escape(reason)}</td><td>{i.in_maintenance}</td></tr>")
        out.append("</table>")
        if len(rows) > INCIDENTS_MAX:
            out.append(f"<p class=muted>first {INCIDENTS_MAX} of {len(rows)}; every incident is in the CSV and "
                       "JSON formats.</p>")
    else:
        out.append("<p>none</p>")
    out.append("</body></html>")
    return "\n".join(out)
