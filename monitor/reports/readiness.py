"""The cutover readiness checklist: per unit, is every new service in place?

Items, each from the current state of the unit's targets (a running wardwatch's
/api/v1/targets, or the store's last statuses):

- link up (every link target);
- both VC rooms reachable (every vc_gov and vc_party target, and both rooms configured);
- portal on the new domain answering with a valid certificate (the portal URL's http probe:
  it validates the certificate over HTTPS);
- every old domain redirecting to the new portal (the old domains' http probes; n/a for a
  unit without old domains);
- MX present and SMTP STARTTLS valid (the email targets: MX query, SMTP + STARTTLS);
- certificates valid for more than 30 days (the certs targets: the signing certificate file
  and the TLS hosts; the probes fail with cert/tls_expires_soon under their threshold);
- procedures system reachable.

An item passes when all its targets are UP; a target never probed (UNKNOWN) is "no data"
and so not ready. A unit is ready when every item passes (or is n/a).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any, Literal

from monitor.inventory import Inventory
from monitor.targets import Target

Outcome = Literal["ok", "fail", "no data", "not monitored", "n/a"]


@dataclass(frozen=True, slots=True)
class TargetState:
    key: str
    state: str
    reason: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    outcome: Outcome
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome in ("ok", "n/a")


@dataclass(frozen=True, slots=True)
class UnitReadiness:
    code: int
    name: str
    items: tuple[Item, ...]

    @property
    def ready(self) -> bool:
        return all(i.passed for i in self.items)

    @property
    def failing(self) -> list[Item]:
        return [i for i in self.items if not i.passed]


ITEMS: tuple[str, ...] = (
    "link up",
    "both VC rooms reachable",
    "portal on the new domain, valid certificate",
    "old domains redirect to the new portal",
    "MX present, SMTP STARTTLS valid",
    "certificates valid > 30 days",
    "procedures system reachable",
)


def _is_redirect(t: Target) -> bool:
    return getattr(t.config, "expect_redirect_to", None) is not None


def _item(name: str, targets: Sequence[Target], states: dict[str, TargetState], *, optional: bool = False) -> Item:
    if not targets:
        return Item(name, "n/a" if optional else "not monitored",
                    "" if optional else "no target for this in the inventory")
    bad: list[str] = []
    unknown: list[str] = []
    for t in targets:
        st = states.get(t.key)
        if st is None or st.state == "unknown":
            unknown.append(t.target)
        elif st.state != "up":
            why = st.reason or st.state
            bad.append(f"{t.target}: {why}" + (f" ({st.message})" if st.message else ""))
    if bad:
        return Item(name, "fail", "; ".join(bad))
    if unknown:
        return Item(name, "no data", "not probed yet: " + ", ".join(unknown))
    return Item(name, "ok")


def evaluate(inventory: Inventory, states: Iterable[TargetState], units: Sequence[int] | None = None
             ) -> list[UnitReadiness]:
    by_key = {s.key: s for s in states}
    by_unit: dict[int, list[Target]] = {}
    for t in inventory.targets:
        by_unit.setdefault(t.unit_code, []).append(t)
    out: list[UnitReadiness] = []
    wanted = set(units) if units else None
    for u in inventory.units:
        if wanted is not None and u.code not in wanted:
            continue
        ts = by_unit.get(u.code, [])

        def of(service: str, ts: list[Target] = ts) -> list[Target]:
            return [t for t in ts if t.service == service]

        vc_gov, vc_party = of("vc_gov"), of("vc_party")
        vc = _item(ITEMS[1], vc_gov + vc_party, by_key)
        if vc.outcome == "ok" and not (vc_gov and vc_party):
            vc = Item(ITEMS[1], "not monitored", "only one room in the inventory")
        portal = of("portal")
        items = (
            _item(ITEMS[0], of("link"), by_key),
            vc,
            _item(ITEMS[2], [t for t in portal if not _is_redirect(t)], by_key),
            _item(ITEMS[3], [t for t in portal if _is_redirect(t)], by_key, optional=not u.merged_from),
            _item(ITEMS[4], of("email"), by_key),
            _item(ITEMS[5], of("certs"), by_key),
            _item(ITEMS[6], of("procedures"), by_key),
        )
        out.append(UnitReadiness(u.code, u.name, items))
    return out


def from_api(rows: Iterable[dict[str, Any]]) -> list[TargetState]:
    return [TargetState(r["key"], r.get("state") or "unknown", r.get("reason"), r.get("message") or "")
            for r in rows]


def summary(units: Sequence[UnitReadiness]) -> dict[str, Any]:
    return {
        "units": len(units),
        "ready": sum(u.ready for u in units),
        "not_ready": sum(not u.ready for u in units),
        "failing_by_item": {name: sum(1 for u in units for i in u.items if i.name == name and not i.passed)
                            for name in ITEMS},
    }


def render_csv(units: Sequence[UnitReadiness]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["unit_code", "unit", "ready", *ITEMS, "failing"])
    for u in units:
        w.writerow([u.code, u.name, "ready" if u.ready else "not ready", *(i.outcome for i in u.items),
                    " | ".join(f"{i.name}: {i.outcome}" + (f" ({i.detail})" if i.detail else "") for i in u.failing)])
    return buf.getvalue()


def render_html(units: Sequence[UnitReadiness], source: str, now: datetime | None = None) -> str:
    s = summary(units)
    now = now or datetime.now(UTC)
    mark = {"ok": "✔", "fail": "✘", "no data": "?", "not monitored": "–", "n/a": "n/a"}
    colour = {"ok": "#137333", "fail": "#b3261e", "no data": "#8a6d00", "not monitored": "#b3261e", "n/a": "#888"}
    out = [
        '<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"><title>Cutover readiness</title><style>'
        'body{font-family:"DejaVu Sans","Noto Sans",Arial,sans-serif;font-size:11px;margin:24px}'
        "table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:2px 6px}th{background:#f2f2f2}"
        "td.c{text-align:center}.kpi{display:inline-block;margin:6px 18px 6px 0}.kpi b{display:block;font-size:18px}"
        "</style></head><body><h1>Cutover readiness</h1>",
        f"<p>source: {escape(source)}; generated {now.isoformat(timespec='seconds')}</p>",
        f'<span class="kpi"><b>{s["units"]}</b>units</span><span class="kpi"><b style="color:#137333">{s["ready"]}'
        f'</b>ready</span><span class="kpi"><b style="color:#b3261e">{s["not_ready"]}</b>not ready</span>',
        "<h2>Failing items</h2><table><tr><th>item</th><th>units failing</th></tr>",
        *(f"<tr><td>{escape(k)}</td><td class=c>{v}</td></tr>" for k, v in s["failing_by_item"].items()),
        "</table><h2>Units</h2><table><tr><th>unit</th><th>ready</th>",
        *(f"<th>{escape(n)}</th>" for n in ITEMS),
        "<th>why not</th></tr>",
    ]
    for u in sorted(units, key=lambda u: (u.ready, u.code)):
        cells = "".join(
            f'<td class=c style="color:{colour[i.outcome]}" title="{escape(i.detail)}">{mark[i.outcome]}</td>'
            for i in u.items)
        why = "<br>".join(escape(f"{i.name}: {i.outcome}" + (f" — {i.detail}" if i.detail else "")) for i in u.failing)
        out.append(f"<tr><td>{u.code} {escape(u.name)}</td><td class=c>{'ready' if u.ready else 'NOT READY'}</td>"
                   f"{cells}<td>{why}</td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out)
