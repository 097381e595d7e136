"""How long ``wardwatch report sla`` takes on a store filled at the national benchmark's rate,
and how fast the store grows with the report tables (schema v4).

    python bench/report.py --units 168 --days 30
    python bench/report.py --units 3321 --days 90 --formats json,csv,html

The inventory is the lab's (monitor/lab: ~18 targets a unit, every service, old domains),
with ``defaults.sla`` targets and two maintenance windows. The generator writes, per target,
state changes at ``--changes`` a day on average (outage + recovery pairs, outages lasting
1-60 min, every 20th one an UNREACHABLE child behind its unit's link), one coverage row a day
with a 5-minute gap (a restart) and the target statuses; then the report is run in-process
through the CLI (inventory loading included) for each format and timed. ``--growth`` also
writes a day of rollups at one probe per 30 s to measure bytes per rollup row.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor import cli  # noqa: E402
from monitor.coverage import write_buckets  # noqa: E402
from monitor.lab import inventory as lab_inventory  # noqa: E402
from monitor.lab import plan  # noqa: E402
from monitor.lab.config import LabConfig  # noqa: E402
from monitor.store import Store  # noqa: E402

SLA = {"link": 99.5, "portal": 99.9, "email": 99.5, "vc_gov": 99.0, "vc_party": 99.0, "certs": 99.0,
       "procedures": 99.5}


def write_inventory(directory: Path, units: int, start: datetime) -> Path:
    cfg = LabConfig(directory=directory, units=units)
    [path] = lab_inventory.write(cfg, plan.build_plan(plan.select_units(units)))
    doc = yaml.safe_load(path.read_text())
    doc["defaults"]["sla"] = SLA
    first = doc["units"][0]["code"]
    doc["maintenance"] = [
        {"unit_code": first, "from": (start + timedelta(days=1)).isoformat(),
         "to": (start + timedelta(days=1, hours=2)).isoformat(), "reason": "planned router swap"},
        {"service": "portal", "from": (start + timedelta(days=2)).isoformat(),
         "to": (start + timedelta(days=2, minutes=30)).isoformat(), "reason": "portal upgrade"},
    ]
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return path


def fill(store_path: Path, keys: list[str], start: datetime, days: float, rate: float, *, seed: int = 1) -> int:
    """State changes, coverage and statuses; returns the number of changes written."""
    rnd = random.Random(seed)
    s_ms = int(start.timestamp() * 1000)
    span_ms = int(days * 86_400_000)
    store = Store(store_path)
    store.open()
    store.close()
    conn = sqlite3.connect(store_path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO targets (id, key) VALUES (?, ?)", [(i + 1, k) for i, k in enumerate(keys)])
    rows: list[tuple[int, int, str, str, str | None, str]] = []
    status: list[tuple[str, str, str]] = []
    n = 0
    for i, key in enumerate(keys):
        tid = i + 1
        t = s_ms + rnd.randrange(0, 120_000)
        rows.append((tid, t, "unknown", "up", None, ""))
        outages = max(0, round(rnd.expovariate(2 / (rate * days)) if rate > 0 else 0))
        starts = sorted(rnd.randrange(s_ms + 600_000, s_ms + span_ms - 3_600_000) for _ in range(outages))
        last_end = t
        state = "up"
        for o in starts:
            if o <= last_end:
                continue
            dur = rnd.randrange(60_000, 3_600_000)
            bad = "unreachable" if rnd.random() < 0.05 and "/link/" not in key else "down"
            rows.append((tid, o, "up", bad, "timeout", "no answer"))
            rows.append((tid, o + dur, bad, "up", None, ""))
            last_end = o + dur
        status.append((key, state, datetime.fromtimestamp(last_end / 1000, UTC).isoformat()))
        if len(rows) > 200_000:
            conn.executemany("INSERT INTO changes (target_id, at_ms, old, new, reason, message) VALUES (?,?,?,?,?,?)",
                             rows)
            n += len(rows)
            rows.clear()
    conn.executemany("INSERT INTO changes (target_id, at_ms, old, new, reason, message) VALUES (?,?,?,?,?,?)", rows)
    n += len(rows)
    conn.executemany("INSERT INTO target_status (key, state, since, message, failures) VALUES (?, ?, ?, '', 0)",
                     status)
    cov = []
    for d in range(int(days) + 1):
        a = s_ms + d * 86_400_000
        b = min(s_ms + span_ms, a + 86_400_000 - 300_000)
        if b > a:
            cov.append((a, b, b))
    conn.executemany("INSERT INTO coverage (started_ms, heartbeat_ms, stopped_ms) VALUES (?, ?, ?)", cov)
    conn.execute("COMMIT")
    conn.close()
    return n


def rollup_growth(store_path: Path, keys: list[str], start: datetime, hours: int) -> tuple[int, int, int]:
    """(minute rows, hour rows, bytes added) for ``hours`` of rollups at one probe per 30 s."""
    before = store_path.stat().st_size
    conn = sqlite3.connect(store_path, isolation_level=None)
    ids = dict(conn.execute("SELECT key, id FROM targets").fetchall())
    s_ms = int(start.timestamp() * 1000)
    for h in range(hours):
        buckets = {(k, s_ms + h * 3_600_000 + m * 60_000): [2.0, 0.0, 0.01, 0.05, 0.06]
                   for k in keys for m in range(60)}
        conn.execute("BEGIN")
        write_buckets(conn, lambda ks: ids, buckets)
        conn.execute("COMMIT")
    minute = conn.execute("SELECT count(*) FROM rollups WHERE res_s = 60").fetchone()[0]
    hour = conn.execute("SELECT count(*) FROM rollups WHERE res_s = 3600").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return minute, hour, store_path.stat().st_size - before


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--units", type=int, default=168)
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--changes", type=float, default=1.0, help="state changes per target per day (default 1)")
    p.add_argument("--formats", default="json,csv,html", help="formats to time (pdf: headless Chromium)")
    p.add_argument("--growth", type=int, default=0, metavar="HOURS", help="also write this many hours of rollups")
    p.add_argument("--dir", type=Path, default=None)
    a = p.parse_args()
    if not 1 <= a.units <= 3321 or not 0 < a.days <= 400:
        p.error("1 <= units <= 3321, 0 < days <= 400")
    with contextlib.ExitStack() as stack:
        d = a.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wardwatch-bench-report-")))
        d.mkdir(parents=True, exist_ok=True)
        end = datetime(2026, 3, 1, tzinfo=UTC)
        start = end - timedelta(days=a.days)
        t0 = time.perf_counter()
        inv_path = write_inventory(d, a.units, start)
        from monitor.inventory import load_inventory

        inv = load_inventory(inv_path)
        keys = [t.key for t in inv.targets]
        store_path = d / "wardwatch.db"
        store_path.unlink(missing_ok=True)
        n = fill(store_path, keys, start, a.days, a.changes)
        size = store_path.stat().st_size
        print(f"{a.units} units, {len(keys)} targets, {a.days:g} days: {n} state changes "
              f"({n / len(keys) / a.days:.2f}/target/day), store {size / 1e6:.1f} MB; filled in "
              f"{time.perf_counter() - t0:.1f}s")
        for fmt in [f for f in a.formats.split(",") if f]:
            out = d / f"sla.{fmt}"
            argv = ["report", "sla", "-c", str(inv_path), "--store", str(store_path),
                    "--from", start.isoformat(), "--to", end.isoformat(), "--format", fmt, "-o", str(out)]
            err = io.StringIO()
            t = time.perf_counter()
            with contextlib.redirect_stderr(err):
                rc = cli.main(argv)
            took = time.perf_counter() - t
            print(f"  report sla --format {fmt}: {took:.2f}s, exit {rc}, {out.stat().st_size / 1e6:.2f} MB"
                  + ("" if rc == 0 else f"  {err.getvalue().strip()}"))
        if a.growth:
            minute, hour, added = rollup_growth(store_path, keys, start, a.growth)
            rows = minute + hour
            print(f"  rollups: {a.growth} h at one probe/30 s: {minute} minute rows + {hour} hour rows, "
                  f"{added / 1e6:.1f} MB, {added / rows:.0f} bytes/row")
            per_target_day_min = 1440 * added / rows
            per_target_day_hour = 24 * added / rows
            for label, targets in (("168 units", 168 * 18), ("3,321 units", 3321 * 18)):
                print(f"    {label} (~{targets} targets): minute rollups {targets * per_target_day_min / 1e6:.0f} MB"
                      f"/day of retention, hour rollups {targets * per_target_day_hour / 1e6:.1f} MB/day")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
