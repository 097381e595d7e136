"""The SLA report as JSON: the same numbers as every other format (sla.to_json)."""

from __future__ import annotations

import json

from monitor.reports.sla import Report, to_json


def render(report: Report) -> str:
    return json.dumps(to_json(report), ensure_ascii=False, separators=(",", ":")) + "\n"
