"""bench/loopwatch: the diagnostic behind BENCHMARKS.md "Hostile targets" names what stopped the
event loop (a blocking call, a collector pass) in a process it was loaded into."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import asyncio, gc, sys, time

def hold_the_loop():
    time.sleep(0.2)  # a blocking call on the loop: what the watch must name

async def probing():
    time.sleep(0.03)  # one slow step of a task: named by the step timing

async def main():
    await asyncio.create_task(probing())
    await asyncio.sleep(0.05)
    hold_the_loop()
    junk = [[i] for i in range(200_000)]
    gc.collect()
    await asyncio.sleep(0.05)

asyncio.run(main())
"""


def _run(tmp_path: Path, *argv: str) -> list[Path]:
    env = {**os.environ, "LOOPWATCH": str(tmp_path / "lw"), "LOOPWATCH_STEPS": "20",
           "PYTHONPATH": str(ROOT / "bench" / "loopwatch")}
    subprocess.run([sys.executable, "-c", SCRIPT, *argv], env=env, cwd=tmp_path, check=True, timeout=60)
    return sorted(tmp_path.glob("lw.*"))


def test_a_blocking_call_and_a_collector_pass_are_named(tmp_path: Path) -> None:
    (out,) = _run(tmp_path, "run")
    text = out.read_text()
    stalls = re.search(r"stalls over 30 ms: (\d+), over 50 ms: (\d+), longest (\d+) ms", text)
    assert stalls is not None and int(stalls[2]) >= 1 and int(stalls[3]) >= 200, text
    assert "hold_the_loop" in text  # the loop's stack while it was held
    passes = re.search(r"gc generation 2: (\d+) passes", text)
    assert passes is not None and int(passes[1]) >= 1, text  # the explicit full collection at least
    steps = [line.split("\t")[3] for line in text.splitlines() if line.count("\t") == 3]
    assert "probing" in steps, text  # each slow step named by the coroutine that ran it
    assert any(name.endswith("main") for name in steps), text


def test_a_process_without_run_in_its_arguments_is_left_alone(tmp_path: Path) -> None:
    assert _run(tmp_path, "lab") == []
