"""The SLA report as one CSV: a ``record`` column says what each row is (city, unit,
unit_service, incident); durations in seconds, availability in percent (empty: no data)."""

from __future__ import annotations

import csv
import io

from monitor.reports.intervals import Figures
from monitor.reports.sla import Report, incident_rows, iso_utc

COLUMNS = (
    "record", "unit_code", "unit", "service", "availability_percent", "sla_target_percent", "passed",
    "downtime_seconds", "unreachable_seconds", "incidents", "mttr_seconds", "mtbf_seconds",
    "longest_outage_seconds", "maintenance_seconds", "unknown_seconds", "up_seconds",
    "incident_start", "incident_end", "incident_duration_seconds", "reason", "in_maintenance",
)


def _num(v: float | None, digits: int = 3) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _figs(f: Figures) -> list[str]:
    return [_num(f.down), _num(f.unreachable), str(f.incidents), _num(f.mttr), _num(f.mtbf), _num(f.longest),
            _num(f.maintenance), _num(f.unknown), _num(f.up)]


def _passed(p: bool | None) -> str:
    return {True: "pass", False: "fail", None: ""}[p]


def render(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    c = report.city
    w.writerow(["city", "", "", "", _num(c.availability, 6), "", "", *_figs(c), "", "", "", "", ""])
    for u in report.units:
        w.writerow(["unit", u.code, u.name, "", _num(u.figures.availability, 6), "", _passed(u.passed),
                    *_figs(u.figures), "", "", "", "", ""])
        for r in u.services:
            w.writerow(["unit_service", u.code, u.name, r.service, _num(r.figures.availability, 6),
                        "" if r.target is None else f"{r.target:g}", _passed(r.passed), *_figs(r.figures),
                        "", "", "", "", ""])
    for u, r, i in incident_rows(report):
        w.writerow(["incident", u.code, u.name, r.service, "", "", "", "", "", "", "", "", "", "", "", "",
                    iso_utc(i.start), iso_utc(i.end),
                    _num(i.seconds), (i.reason or "") + (" (unreachable)" if i.unreachable else ""),
                    i.in_maintenance])
    return buf.getvalue()
