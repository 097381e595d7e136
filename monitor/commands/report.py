"""``wardwatch report sla|readiness``: post-cutover reports (monitor/reports/).

    wardwatch report sla -c INVENTORY --from 2026-01-01 --to 2026-01-31 [--unit CODE ...]
        [--service S ...] [--format html|pdf|csv|json] -o FILE [--tz Asia/Ho_Chi_Minh]
        [--unknown-policy exclude|down] [--store wardwatch.db | --prometheus URL [--step 15s]]
        [--progress]
    wardwatch report readiness -c INVENTORY [--url URL | --store wardwatch.db] [--format html|csv] -o FILE

Bad input (a reversed or empty range, unknown unit codes, an empty store) is one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.inventory import Inventory, InventoryError, load_inventory, parse_duration
from monitor.targets import SERVICES

if TYPE_CHECKING:
    from monitor.reports.readiness import TargetState
    from monitor.reports.sla import MaintenanceSpan

FORMATS = ("html", "pdf", "csv", "json")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", parents=[common], help="SLA and cutover readiness reports")
    kinds = p.add_subparsers(dest="report_kind", metavar="REPORT", required=True)

    s = kinds.add_parser("sla", parents=[common], help="availability per unit and service against the SLA targets")
    s.add_argument("-c", "--config", required=True, type=Path, help="inventory YAML (units, SLA targets)")
    s.add_argument("--from", dest="start", required=True, metavar="WHEN", help="date or ISO datetime")
    s.add_argument("--to", dest="end", required=True, metavar="WHEN",
                   help="date (its whole day is included) or ISO datetime (exclusive)")
    s.add_argument("--unit", type=int, action="append", metavar="CODE", help="only this unit (repeatable)")
    s.add_argument("--service", choices=SERVICES, action="append", help="only this service (repeatable)")
    s.add_argument("--format", choices=FORMATS, default=None, help="default: from -o's extension, else html")
    s.add_argument("-o", "--output", required=True, type=Path, help="output file ('-': stdout, not for pdf)")
    s.add_argument("--tz", default="Asia/Ho_Chi_Minh", help="time zone of dates and days (default Asia/Ho_Chi_Minh)")
    s.add_argument("--unknown-policy", choices=("exclude", "down"), default="exclude",
                   help="unknown time: left out of the denominator (default) or counted as down")
    s.add_argument("--store", type=Path, default=Path("wardwatch.db"), help="the store (default ./wardwatch.db)")
    s.add_argument("--prometheus", metavar="URL", help="compute from this Prometheus' range queries instead")
    s.add_argument("--step", default="15s", help="with --prometheus: the scrape interval (default 15s)")
    s.add_argument("--progress", action="store_true", help="show a progress bar on stderr even when not a TTY")
    s.set_defaults(func=cmd_sla)

    r = kinds.add_parser("readiness", parents=[common], help="the cutover checklist of every unit")
    r.add_argument("-c", "--config", required=True, type=Path, help="inventory YAML")
    r.add_argument("--url", help="a running wardwatch (its /api/v1/targets); default: the store's last statuses")
    r.add_argument("--store", type=Path, default=Path("wardwatch.db"), help="the store (default ./wardwatch.db)")
    r.add_argument("--unit", type=int, action="append", metavar="CODE", help="only this unit (repeatable)")
    r.add_argument("--format", choices=("html", "csv"), default=None, help="default: from -o's extension, else html")
    r.add_argument("-o", "--output", required=True, type=Path, help="output file ('-': stdout)")
    r.set_defaults(func=cmd_readiness)


class _Bad(Exception):
    pass


def _inventory(path: Path) -> Inventory:
    try:
        return load_inventory(path)
    except InventoryError as exc:
        raise _Bad("\n".join(str(p) for p in exc.problems)) from None


def _format(args: argparse.Namespace, allowed: tuple[str, ...]) -> str:
    if args.format:
        return str(args.format)
    ext = args.output.suffix.lstrip(".").lower()
    return ext if ext in allowed else "html"


def _write(path: Path, text: str) -> None:
    if str(path) == "-":
        sys.stdout.write(text)
        return
    path.write_text(text, encoding="utf-8")


class ProgressBar:
    """A one-line bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream, self.label, self._last = stream, label, 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        frac = done / total if total else 1.0
        bar = "#" * int(30 * frac)
        self.stream.write(f"\r{self.label} [{bar:<30}] {done}/{total}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def cmd_sla(args: argparse.Namespace) -> int:
    try:
        return _sla(args)
    except _Bad as exc:
        print(f"wardwatch report sla: {exc}", file=sys.stderr)
        return 2


def _sla(args: argparse.Namespace) -> int:
    from monitor.reports import sla

    try:
        zone = ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise _Bad(f"unknown time zone {args.tz!r} (e.g. Asia/Ho_Chi_Minh)") from None
    fmt = _format(args, FORMATS)
    if fmt == "pdf" and str(args.output) == "-":
        raise _Bad("a PDF needs a file: give -o FILE.pdf")
    try:
        start = sla.parse_when(args.start, zone)
        end = sla.parse_when(args.end, zone, end=True)
        sla.check_range(start, end)
        inventory = _inventory(args.config)
        sla.select_units(inventory, args.unit)  # unknown codes: fail before reading any history
        keys = {t.key for t in inventory.targets}
        if args.prometheus:
            from monitor.reports.prometheus import load_prometheus

            try:
                step = parse_duration(args.step)
            except Exception:
                raise _Bad(f"--step: not a duration: {args.step!r} (e.g. 15s)") from None
            history = load_prometheus(args.prometheus, start.timestamp(), end.timestamp(), step, keys)
            history.maintenance = sla.inventory_windows(inventory) + _store_windows(args.store)
        else:
            history = sla.load_store(args.store, start, end, keys)
            history.maintenance += sla.inventory_windows(inventory)
        show = args.progress or sys.stderr.isatty()
        report = sla.build(
            inventory, history, units=args.unit, services=args.service, tz=args.tz, policy=args.unknown_policy,
            progress=ProgressBar(sys.stderr, "units") if show else None,
        )
    except sla.ReportError as exc:
        raise _Bad(str(exc)) from None
    if not report.units:
        raise _Bad("no unit has a target of the selected services in the inventory")
    try:
        if fmt == "json":
            from monitor.reports import render_json

            _write(args.output, render_json.render(report))
        elif fmt == "csv":
            from monitor.reports import render_csv

            _write(args.output, render_csv.render(report))
        else:
            from monitor.reports import render_html

            html = render_html.render(report)
            if fmt == "pdf":
                from monitor.reports.render_pdf import html_to_pdf

                html_to_pdf(html, args.output)
            else:
                _write(args.output, html)
    except sla.ReportError as exc:
        raise _Bad(str(exc)) from None
    except OSError as exc:
        raise _Bad(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    c = report.counts()
    print(f"{args.output}: {c['units']} units, {c['passed']} pass, {c['failed']} fail, {c['no_data']} no data, "
          f"{c['incidents']} incidents", file=sys.stderr)
    return 0


def _store_windows(path: Path) -> list[MaintenanceSpan]:
    """Runtime maintenance windows from the store, when there is one (for --prometheus)."""
    import contextlib
    import sqlite3

    from monitor.reports import sla

    if not path.exists():
        return []
    with contextlib.suppress(sqlite3.Error), contextlib.closing(
        sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    ) as conn:
        return list(sla._store_windows(conn))
    return []


def cmd_readiness(args: argparse.Namespace) -> int:
    from monitor.reports import readiness

    try:
        inventory = _inventory(args.config)
        if args.unit:
            from monitor.reports.sla import ReportError, select_units

            try:
                select_units(inventory, args.unit)
            except ReportError as exc:
                raise _Bad(str(exc)) from None
        if args.url:
            from monitor.commands._api import ApiError, call

            try:
                rows = call(args.url, "GET", "/api/v1/targets", timeout=60.0)
            except ApiError as exc:
                raise _Bad(str(exc)) from None
            states = readiness.from_api(rows)
            source = f"{args.url} (live)"
        else:
            states = _store_states(args.store)
            source = f"{args.store} (last statuses)"
        units = readiness.evaluate(inventory, states, args.unit)
        fmt = _format(args, ("html", "csv"))
        text = readiness.render_csv(units) if fmt == "csv" else readiness.render_html(units, source)
        try:
            _write(args.output, text)
        except OSError as exc:
            raise _Bad(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    except _Bad as exc:
        print(f"wardwatch report readiness: {exc}", file=sys.stderr)
        return 2
    s = readiness.summary(units)
    print(f"{args.output}: {s['units']} units, {s['ready']} ready, {s['not_ready']} not ready", file=sys.stderr)
    return 0


def _store_states(path: Path) -> list[TargetState]:
    import contextlib
    import sqlite3

    from monitor.reports.readiness import TargetState as State

    if not path.exists():
        raise _Bad(f"{path}: no such store (give --store, or --url of a running wardwatch)")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT key, state, reason, message FROM target_status").fetchall()
    except sqlite3.Error as exc:
        raise _Bad(f"{path}: not a readable wardwatch store: {exc}") from None
    if not rows:
        raise _Bad(f"{path}: the store is empty (no target has been probed yet)")
    return [State(k, s, r, m or "") for k, s, r, m in rows]
