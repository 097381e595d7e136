"""``wardwatch maintenance add|list|remove``: maintenance windows of the running service.

    wardwatch maintenance add --unit CODE [--service S] --from ISO --to ISO --reason TEXT [--url ...]
    wardwatch maintenance list [--url ...]
    wardwatch maintenance remove ID [--url ...]

Times are ISO 8601 with an offset (2026-11-22T22:00+07:00); without one they are taken as
Vietnam time (UTC+7). Exit status: 0 done, 1 refused by the service, 2 usage or unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone

from monitor.commands._api import ApiError, add_url, call
from monitor.targets import SERVICES

VN = timezone(timedelta(hours=7))


def _when(value: str) -> str:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r} (e.g. 2026-11-22T22:00+07:00)") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=VN)
    return at.isoformat()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("maintenance", parents=[common], help="declare, list or remove maintenance windows")
    actions = p.add_subparsers(dest="maintenance_action", metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[common], help="declare a window: alerts inside it are suppressed")
    add.add_argument("--unit", type=int, required=True, metavar="CODE", help="unit code")
    add.add_argument("--service", choices=SERVICES, default=None, help="one service only (default: the whole unit)")
    add.add_argument("--from", dest="start", type=_when, required=True, metavar="ISO", help="start (ISO 8601)")
    add.add_argument("--to", dest="end", type=_when, required=True, metavar="ISO", help="end (ISO 8601)")
    add.add_argument("--reason", required=True, help="why (shown with suppressed alerts)")
    add_url(add)
    add.set_defaults(func=cmd_add)
    ls = actions.add_parser("list", parents=[common], help="windows in force or to come")
    ls.add_argument("--json", action="store_true")
    add_url(ls)
    ls.set_defaults(func=cmd_list)
    rm = actions.add_parser("remove", parents=[common], help="remove a window added at run time")
    rm.add_argument("window_id", metavar="ID")
    add_url(rm)
    rm.set_defaults(func=cmd_remove)


def cmd_add(args: argparse.Namespace) -> int:
    body = {"unit_code": args.unit, "service": args.service, "from": args.start, "to": args.end,
            "reason": args.reason}
    try:
        w = call(args.url, "POST", "/api/v1/maintenance", body)
    except ApiError as e:
        print(f"wardwatch maintenance add: {e}", file=sys.stderr)
        return e.code
    print(f"maintenance window {w.get('id')} added: unit {args.unit}"
          f"{' ' + args.service if args.service else ''} {args.start} .. {args.end}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    try:
        data = call(args.url, "GET", "/api/v1/maintenance")
    except ApiError as e:
        print(f"wardwatch maintenance list: {e}", file=sys.stderr)
        return e.code
    windows = data.get("windows") or []
    if args.json:
        print(json.dumps(windows, ensure_ascii=False, indent=2))
        return 0
    if not windows:
        print("no maintenance windows")
    for w in windows:
        what = f"unit {w.get('unit_code')}" if w.get("unit_code") is not None else "all units"
        if w.get("service"):
            what += f" {w['service']}"
        print(f"{w.get('id')}  {what}  {w.get('from')} .. {w.get('to')}  [{w.get('source')}]  {w.get('reason')}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    try:
        call(args.url, "DELETE", f"/api/v1/maintenance/{quote(args.window_id, safe='')}")
    except ApiError as e:
        print(f"wardwatch maintenance remove: {e}", file=sys.stderr)
        return e.code
    print(f"maintenance window {args.window_id} removed")
    return 0
