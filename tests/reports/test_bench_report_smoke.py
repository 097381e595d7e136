"""bench/report.py keeps working: a tiny store, every cheap format, the rollup growth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_report_bench_smoke(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "report.py"), "--units", "4", "--days", "3", "--formats",
           "json,csv,html", "--growth", "1", "--dir", str(tmp_path)]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "4 units" in out and out.count(", exit 0,") == 3 and "bytes/row" in out
