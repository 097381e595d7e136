"""bench/detection.py keeps working: one link cut on a small, fast lab through the real
Prometheus and Alertmanager (shipped rules and configuration). Asserts that the fault is
detected and nothing else is notified, never the timing (that is BENCHMARKS.md's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_detection_bench_smoke() -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "detection.py"), "--path", "prometheus", "--units", "12",
           "--faults", "1", "--interval", "2", "--timeout", "0.5", "--rechecks", "1", "--recheck-spacing", "0.3",
           "--scrape", "1s", "--eval", "1s", "--max-wait", "90"]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["path"] == "prometheus"
    assert len(result["detections"]) == 1 and not result["missed"], proc.stdout[-3000:]
    # Shipped `for: 30s` on a 2 s probe: at least the `for:`, well under the wait.
    assert 30 <= result["detections"][0] < 90
    assert result["false_notifications"] == 0, proc.stdout[-3000:]
