"""bench/hostile.py keeps working: a tiny lab, 30 hostile endpoints, one round of baseline and
hostile runs in a network namespace of the bench's own. Asserts that it completes and reports
sane numbers and the hostile probes' reasons, never timings (those are BENCHMARKS.md's)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers import hostile

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(330)
def test_hostile_bench_smoke(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.fail("the bench runs in a network namespace of its own: it needs root and iproute2 "
                    "(as CI has; see scripts/setup-test-env.sh)")
    out = tmp_path / "report.json"
    cmd = [sys.executable, str(ROOT / "bench" / "hostile.py"), "--units", "5", "--hostile", "30",
           "--interval", "6", "--timeout", "1.5", "--spacing", "0.5", "--seconds", "12", "--sample", "1",
           "--repeats", "1", "--dir", str(tmp_path / "work"), "--json", str(out)]
    # Its own session, so a timeout ends the whole tree (lab, nsd, hostile server, wardwatch).
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    report = json.loads(out.read_text())
    assert sum(report["hostile_kinds"].values()) == 30 and set(report["hostile_kinds"]) == set(hostile.BY_NAME)

    (rnd,) = report["rounds"]
    base, hos = rnd["baseline"], rnd["hostile"]
    for run in (base, hos):
        assert run["lateness"]["count"] > 0 and 0 <= run["lateness"]["p50"] <= run["lateness"]["p99"]
        assert run["healthy_probes"] > 0 and run["healthy_targets"] > 0
        assert 0 < run["rss_median_mib"] <= run["rss_peak_mib"] < 2000
        assert 0 < run["fds_min"] <= run["fds_median"] <= run["fds_max"]
        assert run["in_flight_max"] <= run["concurrency"]
    assert "hostile" not in base
    h = hos["hostile"]
    assert h["targets"] == 30 and h["probes_seen"] >= 30
    for kind_reason, n in h["by_reason"].items():
        kind, reason = kind_reason.split(":")
        # None: the target was still being re-checked (its state shows no reason yet)
        assert reason == "None" or reason in hostile.BY_NAME[kind].reasons, (kind_reason, n)
    assert not any("hung" in b for b in h["bad"]), h["bad"]
    assert set(rnd["ratio"]) >= {"lateness_p99", "healthy_probes_per_second", "rss_median", "fds_median"}
    assert "hostile/baseline" in stdout
