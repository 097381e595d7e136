"""bench/national.py keeps working: a tiny lab, every prober, every kind, seconds not minutes.

Asserts only that it completes and reports sane numbers, never timings (the benchmark
itself is a script: see BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"


@pytest.mark.slow
@pytest.mark.timeout(330)  # a loaded 2-core CI machine takes a minute just to start the lab
def test_national_bench_smoke(tmp_path: Path) -> None:
    for tool in (BLACKBOX, "unshare", "nsd"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed by bench/national.py (see the test setup)")
    out = tmp_path / "report.json"
    cmd = [sys.executable, str(ROOT / "bench" / "national.py"), "--units", "40", "--interval", "1.5",
           "--minutes", "0.05", "--kind-seconds", "1.5", "--warmup", "1", "--scrapes", "2",
           "--dir", str(tmp_path / "work"), "--json", str(out)]
    # Its own session, so a timeout ends the whole tree (lab, nsd, snmpsim, blackbox): an
    # orphaned lab would keep the shared 127.x lab addresses busy for every later test.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything it left behind, or all of it on timeout
        proc.wait()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    report = json.loads(out.read_text())

    main = report["main"]
    assert main["probes"] > 0
    assert main["cpu"] >= 0 and 0 < main["peak_rss_mib"] < 2000
    assert main["lateness"]["count"] > 0 and 0 <= main["lateness"]["p50"] <= main["lateness"]["p99"]
    assert main["metrics"]["wall_median"] > 0 and main["metrics"]["bytes"] > 0
    assert main["store"]["bytes_end"] > 0

    assert set(report["kinds"]) == {"http", "https", "tcp", "icmp"}
    for kind, sides in report["kinds"].items():
        for prober in ("wardwatch", "blackbox", "naive"):
            r = sides[prober]
            assert r["probes"] > 0, (kind, prober)
            assert r["cpu"] >= 0 and not math.isnan(r["cpu_per_1k"]), (kind, prober)
        # the lab answers (a few built-in imperfections fail on purpose)
        assert sides["blackbox"]["ok"] > 0 and sides["naive"]["ok"] > 0, kind
    assert "| kind | targets |" in stdout
