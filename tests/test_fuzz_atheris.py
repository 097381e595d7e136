"""The atheris (libFuzzer) harness in fuzz/parsers.py runs every target for a bounded number of
inputs without a crash; long runs are `python fuzz/parsers.py TARGET -max_total_time=...`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "fuzz" / "parsers.py"


def test_atheris_is_installed() -> None:
    assert importlib.util.find_spec("atheris") is not None, "missing: pip install -e '.[test]' (atheris)"


@pytest.mark.parametrize("target", ["sip", "stun", "http", "certs", "inventory"])
def test_bounded_atheris_run(target: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), target, "-runs=1500", "-max_len=4096", "-seed=1"],
        capture_output=True, text=True, timeout=110, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 1500 runs" in proc.stderr
    assert not list(tmp_path.glob("crash-*"))


def test_usage_without_a_target() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "usage: " in proc.stderr
