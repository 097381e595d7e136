"""Hostile targets beside healthy ones, at test scale (bench/hostile.py is the full one).

The engine (in this process) probes 12 healthy targets on a real nginx and 105 hostile
endpoints (tests/peers/hostile.py in a process of its own: slow-loris headers, endless bodies,
a gzip bomb, stalled TLS, silent and never-accepting TCP, endless SMTP banners, SIP answered
byte by byte or with '100 Trying' for ever) every 2 s for about 12 s. Asserted: the schedule
stays on time (lateness p99), memory growth is bounded, every hostile probe ends with its
kind's reason within its timeout and no hostile target stops being probed, and once the engine
stops every socket it opened is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from monitor.engine import Engine, Entry
from monitor.inventory import load_inventory
from probes.base import ProbeResult
from tests.peers import hostile
from tests.peers.nginx import DOMAIN, Nginx, nginx_fixture  # noqa: F401

UNITS = (26506, 26737)  # official codes of province 79 (Phường Vũng Tàu, Phường Sài Gòn)
INTERVAL, TIMEOUT = 2.0, 1.0
GRACE = 0.5  # probes/runner.py: the safety net past a probe's own deadline
HOSTILE = 7 * len(hostile.KINDS)  # every kind 7 times
ROOT = Path(__file__).resolve().parent.parent


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextlib.asynccontextmanager
async def hostile_server(tmp: Path, count: int) -> AsyncIterator[list[hostile.Endpoint]]:
    out = tmp / "endpoints.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.peers.hostile", "--count", str(count), "--out", str(out), "--seconds", "120",
        "--drip", "0.5", cwd=ROOT, stdout=subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(30):
            while not out.exists():  # the server's only signal: it writes the list once listening
                if proc.returncode is not None:
                    raise RuntimeError(f"hostile server exited with {proc.returncode}")
                await asyncio.sleep(0.05)
        yield hostile.load(out)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


def inventory(path: Path, nginx: Nginx, endpoints: list[hostile.Endpoint]) -> Path:
    healthy = [{"service": "portal", "probe": "http", "target": f"http://127.0.0.1:{nginx.http}/?n={i}",
                "headers": {"Host": f"new.{DOMAIN}"}} for i in range(8)]
    healthy += [{"service": "vc_gov", "probe": "tcp", "target": f"{host}:{port}"}
                for host in ("127.0.0.1", "localhost") for port in (nginx.http, nginx.https)]
    healthy += [{"service": "certs", "probe": "tls", "target": f"127.0.0.1:{nginx.https}",
                 "server_name": f"new.{DOMAIN}", "ca_file": str(nginx.ca.bundle)},
                {"service": "portal", "probe": "http", "target": f"https://127.0.0.1:{nginx.https}/",
                 "headers": {"Host": f"new.{DOMAIN}"}, "insecure_skip_verify": True}]
    units: list[dict[str, object]] = [
        {"code": UNITS[0], "name": "Phường Vũng Tàu", "type": "phường", "checks": healthy},
        {"code": UNITS[1], "name": "Phường Sài Gòn", "type": "phường",
         "checks": [hostile.check(e) for e in endpoints]},
    ]
    doc = {"province": 79, "monitor": {"concurrency": 1000},
           "defaults": {"interval": f"{INTERVAL:g}s", "timeout": f"{TIMEOUT:g}s", "rechecks": 1,
                        "recheck_spacing": "500ms", "templates": {"portal": None, "email": None}},
           "units": units}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def p99_upper(engine: Engine) -> float:
    """Upper bound of the bucket holding the 99th percentile of schedule lateness."""
    s = engine.stats
    rank = 0.99 * s.lateness_count
    seen = 0
    for bound, n in zip((*s.lateness_buckets, float("inf")), s.lateness_counts, strict=True):
        seen += n
        if seen >= rank:
            return bound
    return float("inf")


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_hostile_targets_leave_healthy_ones_alone(tmp_path: Path, nginx: Nginx) -> None:
    async with hostile_server(tmp_path, HOSTILE) as endpoints:
        inv = load_inventory(inventory(tmp_path / "inventory.yaml", nginx, endpoints))
        kind_of = {}
        for t in inv.targets:
            for e in endpoints:
                if t.target == e.target:
                    kind_of[t.key] = e.kind
        assert len(kind_of) == HOSTILE
        healthy_keys = {t.key for t in inv.targets} - kind_of.keys()
        results: dict[str, list[ProbeResult]] = {}

        def on_result(entry: Entry, result: ProbeResult, at: object) -> None:
            results.setdefault(entry.target.key, []).append(result)

        fds0, rss0 = open_fds(), rss_kib()
        cpu0, t0 = time.process_time(), time.monotonic()
        engine = Engine(inv)
        engine.result_listeners.append(on_result)
        await engine.start()
        rss_max = rss0
        try:
            t_end = time.monotonic() + 6 * INTERVAL
            while time.monotonic() < t_end:
                await asyncio.sleep(0.25)  # sampling RSS while the engine runs
                rss_max = max(rss_max, rss_kib())
        finally:
            await engine.stop()
            elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0

        # every socket a probe opened is closed once the engine stops (closing takes a loop turn)
        for _ in range(100):
            if open_fds() <= fds0:
                break
            await asyncio.sleep(0.05)
        assert open_fds() <= fds0, f"{open_fds() - fds0} descriptors still open after the engine stopped"

    # the healthy targets kept their schedule and answered
    for key in healthy_keys:
        got = results.get(key, [])
        assert len(got) >= 5, (key, len(got))
        assert all(r.success for r in got), (key, [r.message for r in got if not r.success][:3])
    # Lenient bounds, the machine is shared (bench/hostile.py measures the ratios): before the
    # read caps, one hostile peer held a core until its probe's deadline, lateness went past 10 s.
    assert p99_upper(engine) <= 1.0, (engine.stats.lateness_counts, engine.stats.lateness_buckets)
    assert cpu < 0.5 * elapsed, f"the engine used {cpu:.1f} s of CPU in {elapsed:.1f} s"
    # memory: the probes hold no endless body, banner or response list
    assert (rss_max - rss0) < 64 * 1024, f"RSS grew {(rss_max - rss0) / 1024:.0f} MiB"
    # every hostile probe ended with its kind's reason, within its timeout; none stopped
    for key, kind in kind_of.items():
        got = results.get(key, [])
        assert len(got) >= 3, (kind, key, len(got))  # probed again and again: nothing hung
        allowed = hostile.BY_NAME[kind].reasons
        for r in got:
            assert not r.success and r.reason is not None and r.reason.value in allowed, (kind, r.reason, r.message)
            assert r.duration_seconds <= TIMEOUT + GRACE, (kind, r.duration_seconds, r.message)
