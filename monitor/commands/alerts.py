"""``wardwatch alerts list|ack``: the running service's alerts, over its HTTP API.

    wardwatch alerts list [--url http://127.0.0.1:9168] [--json]
    wardwatch alerts ack ALERT_ID [--by NAME] [--url ...]

Exit status: 0 done, 1 refused by the service (no such alert), 2 usage or service unreachable.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from monitor.commands._api import ApiError, add_url, call


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("alerts", parents=[common], help="list or acknowledge the running service's alerts")
    actions = p.add_subparsers(dest="alerts_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", parents=[common], help="active alerts and recent notifications")
    add_url(ls)
    ls.add_argument("--json", action="store_true", help="print the API's JSON")
    ls.add_argument("--limit", type=int, default=20, help="recent notifications to show (default 20)")
    ls.set_defaults(func=cmd_list)
    ack = actions.add_parser("ack", parents=[common], help="acknowledge an alert (stops its escalation)")
    ack.add_argument("alert_id", metavar="ALERT_ID")
    ack.add_argument("--by", default=None, help="who acknowledges (default: your user name)")
    add_url(ack)
    ack.set_defaults(func=cmd_ack)


def _get(d: Any, *names: str) -> Any:
    for n in names:
        if isinstance(d, dict) and d.get(n) not in (None, ""):
            return d[n]
    return None


def _line(a: dict[str, Any]) -> str:
    alert = a.get("alert") if isinstance(a.get("alert"), dict) else a
    parts = [
        str(_get(alert, "id") or "?"),
        str(_get(alert, "kind") or ""),
        str(_get(alert, "severity") or ""),
        f"unit {_get(alert, 'unit_code')}" if _get(alert, "unit_code") is not None else "",
        str(_get(alert, "service") or ""),
        str(_get(alert, "target") or ""),
        f"since {_get(alert, 'started_at')}" if _get(alert, "started_at") else "",
    ]
    acked = _get(a, "acked_by", "ack_by")
    if acked:
        parts.append(f"acked by {acked}")
    if _get(alert, "in_maintenance"):
        parts.append("(maintenance)")
    return "  ".join(p for p in parts if p)


def cmd_list(args: argparse.Namespace) -> int:
    try:
        data = call(args.url, "GET", f"/api/v1/alerts?limit={max(1, args.limit)}")
    except ApiError as e:
        print(f"wardwatch alerts: {e}", file=sys.stderr)
        return e.code
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    alerts = data.get("alerts") or []
    print(f"{len(alerts)} active alert(s)")
    for a in alerts:
        print("  " + _line(a))
    notes = data.get("notifications") or []
    if not data.get("receivers"):
        print("no receivers configured: notifications are recorded, not sent")
    if notes:
        print("recent notifications:")
        for n in notes:
            to = n.get("receiver") or "-"
            err = f"  ({n['last_error']})" if n.get("last_error") and n.get("status") != "delivered" else ""
            print(f"  {n.get('at')}  {n.get('event'):8} {n.get('alert_id')}  -> {to}: {n.get('status')}{err}")
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    by = args.by or getpass.getuser()
    try:
        call(args.url, "POST", f"/api/v1/alerts/{_quote(args.alert_id)}/ack", {"by": by})
    except ApiError as e:
        print(f"wardwatch alerts ack: {e}", file=sys.stderr)
        return e.code
    print(f"alert {args.alert_id} acknowledged by {by}")
    return 0


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
