"""``wardwatch report sla|readiness`` end to end on a small store: every format carries the
same numbers, the PDF is real, the HTML loads with no request leaving the page, bad input
is one clear line and exit 2."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from monitor import cli
from monitor.lab import inventory as lab_inventory
from monitor.lab import plan
from monitor.lab.config import LabConfig
from monitor.store import Store
from tests.peers.proc import require

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)  # 07:00 in Asia/Ho_Chi_Minh
UNITS = 3


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path, list[int]]:
    """A 3-unit lab inventory with SLA targets and a maintenance window, and a store where
    unit 0's link was down 01:00-01:30 and wardwatch was not running 05:00-06:00 (UTC)."""
    cfg = LabConfig(directory=tmp_path, units=UNITS)
    units = plan.build_plan(plan.select_units(UNITS))
    [inv] = lab_inventory.write(cfg, units)
    doc = yaml.safe_load(inv.read_text())
    doc["defaults"]["sla"] = {"link": 99.5, "portal": 99.9}
    codes = [u.code for u in units]
    doc["maintenance"] = [{"unit_code": codes[1], "service": "link", "from": (T0 + timedelta(hours=2)).isoformat(),
                           "to": (T0 + timedelta(hours=3)).isoformat(), "reason": "router swap"}]
    inv.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    from monitor.inventory import load_inventory

    keys = [t.key for t in load_inventory(inv).targets]
    db = tmp_path / "wardwatch.db"
    store = Store(db)
    store.open()
    store.close()
    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.executemany("INSERT INTO targets (id, key) VALUES (?, ?)", list(enumerate(keys, 1)))
        rows: list[tuple[int, int, str, str, str | None, str]] = [
            (i, _ms(T0) + 1000, "unknown", "up", None, "") for i in range(1, len(keys) + 1)]
        link = next(i for i, k in enumerate(keys, 1) if k.startswith(f"{codes[0]}/link/"))
        rows += [(link, _ms(T0 + timedelta(hours=1)), "up", "down", "timeout", "no answer"),
                 (link, _ms(T0 + timedelta(hours=1, minutes=30)), "down", "up", None, "")]
        link1 = next(i for i, k in enumerate(keys, 1) if k.startswith(f"{codes[1]}/link/"))
        rows += [(link1, _ms(T0 + timedelta(hours=2, minutes=10)), "up", "down", "timeout", ""),
                 (link1, _ms(T0 + timedelta(hours=2, minutes=20)), "down", "up", None, "")]
        conn.executemany("INSERT INTO changes (target_id, at_ms, old, new, reason, message) VALUES (?,?,?,?,?,?)",
                         rows)
        conn.executemany("INSERT INTO target_status (key, state, message, failures) VALUES (?, 'up', '', 0)",
                         [(k,) for k in keys])
        conn.executemany("INSERT INTO coverage (started_ms, heartbeat_ms, stopped_ms) VALUES (?, ?, ?)",
                         [(_ms(T0), _ms(T0 + timedelta(hours=5)), _ms(T0 + timedelta(hours=5))),
                          (_ms(T0 + timedelta(hours=6)), _ms(T0 + timedelta(hours=10)), None)])
    return inv, db, codes


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = cli.main(argv)
    return rc, capsys.readouterr().err


def _sla(inv: Path, db: Path, out: Path, *extra: str) -> list[str]:
    return ["report", "sla", "-c", str(inv), "--store", str(db), "--from", "2026-03-01T07:00",
            "--to", "2026-03-01T15:00", "-o", str(out), *extra]


def test_json_and_csv_carry_the_same_exact_figures(world: tuple[Path, Path, list[int]], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    inv, db, codes = world
    assert _run(_sla(inv, db, tmp_path / "r.json"), capsys)[0] == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    u0 = next(u for u in rep["units"] if u["unit_code"] == codes[0])
    link = next(s for s in u0["services"] if s["service"] == "link")
    # 8 h range (07:00-15:00 local = 00:00-08:00 UTC), 1 h blind, the first second unknown
    assert link["downtime_seconds"] == 1800 and link["incidents"] == 1
    assert link["unknown_seconds"] == 3600 + 1
    assert link["availability_percent"] == pytest.approx(100 * (7 * 3600 - 1 - 1800) / (7 * 3600 - 1))
    assert link["passed"] is False and link["sla_target_percent"] == 99.5
    [inc] = link["incident_list"]
    assert inc["start"] == "2026-03-01T01:00:00+00:00" and inc["duration_seconds"] == 1800
    assert inc["reason"] == "timeout" and inc["in_maintenance"] == "no"
    # unit 1's outage lay inside its maintenance window: listed, not counted
    u1 = next(u for u in rep["units"] if u["unit_code"] == codes[1])
    link1 = next(s for s in u1["services"] if s["service"] == "link")
    assert link1["incidents"] == 0 and link1["maintenance_seconds"] == 3600 and link1["downtime_seconds"] == 0
    assert [i["in_maintenance"] for i in link1["incident_list"]] == ["yes"]
    assert link1["availability_percent"] == 100.0 and link1["passed"] is True
    assert rep["summary"]["units"] == UNITS
    # lineage: the old units merged into unit 0, and their old domains' redirect availability
    assert u0["merged_from"] and {d["old_unit_code"] for d in u0["old_domains"]} <= {
        m["code"] for m in u0["merged_from"]}
    assert all(d["availability_percent"] == 100.0 for d in u0["old_domains"])

    assert _run(_sla(inv, db, tmp_path / "r.csv"), capsys)[0] == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    row = next(r for r in rows if r["record"] == "unit_service" and r["unit_code"] == str(codes[0])
               and r["service"] == "link")
    assert float(row["downtime_seconds"]) == link["downtime_seconds"]
    assert float(row["availability_percent"]) == pytest.approx(link["availability_percent"], abs=1e-6)
    assert float(row["unknown_seconds"]) == link["unknown_seconds"]
    city = next(r for r in rows if r["record"] == "city")
    assert float(city["availability_percent"]) == pytest.approx(rep["city"]["availability_percent"], abs=1e-6)
    assert sum(r["record"] == "incident" for r in rows) == 2


def test_no_data_and_unknown_policy(world: tuple[Path, Path, list[int]], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    inv, db, codes = world
    argv = ["report", "sla", "-c", str(inv), "--store", str(db), "--from", "2026-03-01T12:05",
            "--to", "2026-03-01T12:55", "-o", str(tmp_path / "blind.json")]  # wholly in the 05:00-06:00 UTC gap
    assert _run(argv, capsys)[0] == 0
    rep = json.loads((tmp_path / "blind.json").read_text())
    assert all(u["availability_percent"] is None and u["no_data"] for u in rep["units"])
    assert rep["summary"]["no_data"] == UNITS
    assert _run([*_sla(inv, db, tmp_path / "d.json"), "--unknown-policy", "down", "--unit", str(codes[0])],
                capsys)[0] == 0
    rep = json.loads((tmp_path / "d.json").read_text())
    [u0] = rep["units"]
    link = next(s for s in u0["services"] if s["service"] == "link")
    assert link["availability_percent"] == pytest.approx(100 * (7 * 3600 - 1 - 1800) / (8 * 3600))


@pytest.mark.slow
def test_pdf_is_real_and_html_loads_with_no_outside_request(world: tuple[Path, Path, list[int]], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    inv, db, _ = world
    assert _run(_sla(inv, db, tmp_path / "r.html"), capsys)[0] == 0
    html = (tmp_path / "r.html").read_text()
    assert "<svg" in html and ("Xã" in html or "Phường" in html) and "By former unit" in html
    # self-contained: nothing to fetch (no src/href/url() and no script)
    assert not re.search(r"""(src|href)\s*=|url\(|<script|<link|@import""", html, re.I)
    chromium = require("chromium")
    prof = tmp_path / "profile"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={prof}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", (tmp_path / "r.html").as_uri()],
        capture_output=True, timeout=120, check=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert b"Service availability (SLA) report" in dom.stdout and b"<svg" in dom.stdout
    assert b"net::ERR" not in dom.stderr and b"Failed to load" not in dom.stderr

    assert _run(_sla(inv, db, tmp_path / "r.pdf"), capsys)[0] == 0
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    subprocess.run([require("pdftoppm"), "-r", "30", "-f", "1", "-l", "1", "-png", str(tmp_path / "r.pdf"),
                    str(tmp_path / "page")], check=True, timeout=60)
    [png] = list(tmp_path.glob("page*.png"))
    assert png.stat().st_size > 2000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-03-02", "--to", "2026-02-28"], "reversed range"),
        (["--from", "2026-03-01T08:00", "--to", "2026-03-01T08:00"], "empty range"),
        (["--from", "yesterday", "--to", "2026-03-01"], "not a date"),
        (["--from", "2026-03-01", "--to", "2026-03-02", "--unit", "99999999"], "unknown unit code: 99999999"),
        (["--from", "2026-03-01", "--to", "2026-03-02", "--tz", "Mars/Olympus"], "unknown time zone"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(world: tuple[Path, Path, list[int]], tmp_path: Path, args: list[str],
                                         message: str, capsys: pytest.CaptureFixture[str]) -> None:
    inv, db, _ = world
    rc, err = _run(["report", "sla", "-c", str(inv), "--store", str(db), "-o", str(tmp_path / "x.json"), *args],
                   capsys)
    assert rc == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_empty_or_missing_store_exit_2(world: tuple[Path, Path, list[int]], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    inv, _, _ = world
    empty = tmp_path / "empty.db"
    s = Store(empty)
    s.open()
    s.close()
    for db, msg in ((empty, "the store is empty"), (tmp_path / "nope.db", "no such store")):
        rc, err = _run(["report", "sla", "-c", str(inv), "--store", str(db), "--from", "2026-03-01",
                        "--to", "2026-03-02", "-o", str(tmp_path / "x.json")], capsys)
        assert rc == 2 and msg in err and "Traceback" not in err
        rc, err = _run(["report", "readiness", "-c", str(inv), "--store", str(db), "-o", str(tmp_path / "r.csv")],
                       capsys)
        assert rc == 2 and "Traceback" not in err


def test_readiness_from_the_store(world: tuple[Path, Path, list[int]], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    inv, db, codes = world
    with sqlite3.connect(db) as conn:  # unit 0: its portal down now; unit 2: the email never probed
        conn.execute("UPDATE target_status SET state = 'down', reason = 'http_status' WHERE key LIKE ?"
                     " AND key LIKE '%/portal/%' AND key NOT LIKE '%old%'", (f"{codes[0]}/%",))
        conn.execute("UPDATE target_status SET state = 'unknown' WHERE key LIKE ?", (f"{codes[2]}/email/%",))
    rc, err = _run(["report", "readiness", "-c", str(inv), "--store", str(db), "-o", str(tmp_path / "r.csv")], capsys)
    assert rc == 0, err
    rows = {int(r["unit_code"]): r for r in csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text()))}
    assert rows[codes[1]]["ready"] == "ready"
    assert rows[codes[0]]["ready"] == "not ready" and "http_status" in rows[codes[0]]["failing"]
    assert rows[codes[2]]["MX present, SMTP STARTTLS valid"] == "no data"
    rc, err = _run(["report", "readiness", "-c", str(inv), "--store", str(db), "-o", str(tmp_path / "r.html")], capsys)
    assert rc == 0 and "1 ready, 2 not ready" in err
    assert "NOT READY" in (tmp_path / "r.html").read_text()
