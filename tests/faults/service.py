"""A real ``wardwatch run`` child process for the fault-injection suite: started (optionally
behind a command prefix such as ``nsenter``), awaited on /readyz, killed with SIGKILL or stopped
with SIGTERM, restarted on the same store; plus a small inventory writer for official units.

Unlike tests/peers/wardwatch.py this keeps every run's log, lets the caller choose the store
path and the command prefix, and restarts: the faults under test happen to the process itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.units import official_units
from tests.peers.proc import free_port

REPO = Path(__file__).resolve().parents[2]
HOOK_KEY = "faults-hmac-key"


def units(n: int, province: int = 79) -> list[tuple[int, str, str, str]]:
    """The first ``n`` official units of the province: (code, name, type, codename)."""
    return [(u.code, u.name, u.type, u.codename) for u in official_units(province)[:n]]


def unit_yaml(code: int, name: str, kind: str, codename: str, body: str) -> str:
    """One unit of an inventory; ``body`` is its service blocks, one per line, unindented."""
    lines = "".join(f"    {line}\n" for line in body.strip().splitlines())
    return f"  - code: {code}\n    name: {name}\n    type: {kind}\n    codename: {codename}\n{lines}"


def alerting_yaml(receiver_url: str, policy: str = "") -> str:
    """The webhook receiver of tests/alerts/receivers.py as the only receiver; quick retries."""
    return f"""alerting:
  language: en
  receivers:
    hook: {{type: webhook, url: "{receiver_url}/hook", hmac_key_env: WW_FAULTS_HOOK_KEY, timeout: 2s}}
  default_receivers: [hook]
  delivery: {{backoff_initial: 0.3s, backoff_max: 1s, tick: 0.3s, alertmanager_resend: 1h}}
{policy}"""


@dataclass
class Service:
    dir: Path
    inventory: Path
    store: Path
    port: int = field(default_factory=free_port)
    prefix: Sequence[str] = ()  # e.g. ("nsenter", "-t", PID, "-m", "--")
    extra: Sequence[str] = ("--heartbeat", "1")
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, ready_timeout: float = 60.0) -> None:
        self.runs += 1
        self.proc = self._spawn()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wardwatch exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            with contextlib.suppress(OSError):
                if (await asyncio.to_thread(self.get, "/readyz"))[0] == 200:
                    return
            await asyncio.sleep(0.05)  # /readyz is the only readiness signal the child offers
        raise TimeoutError(f"wardwatch not ready after {ready_timeout}s:\n{self.log()[-3000:]}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "WW_FAULTS_HOOK_KEY": HOOK_KEY, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        argv = [*self.prefix, sys.executable, "-m", "monitor", "--log-format", "json", "run",
                "-c", str(self.inventory), "--listen", f"127.0.0.1:{self.port}", "--store", str(self.store),
                "--loop", "asyncio", *self.extra]
        with open(self.dir / f"wardwatch-{self.runs}.log", "wb") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                    start_new_session=True)

    def log(self) -> str:
        return "".join((self.dir / f"wardwatch-{i}.log").read_text(errors="replace")
                       for i in range(1, self.runs + 1) if (self.dir / f"wardwatch-{i}.log").exists())

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    async def api(self, path: str) -> Any:
        status, body = await asyncio.to_thread(self.get, path)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    async def metrics(self) -> str:
        status, body = await asyncio.to_thread(self.get, "/metrics")
        assert status == 200, status
        return body.decode()

    async def states(self, unit_code: int | None = None) -> dict[str, dict[str, Any]]:
        rows = await self.api("/api/v1/targets" + (f"?unit_code={unit_code}" if unit_code else ""))
        return {r["key"]: r for r in rows}

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    async def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 20 s); the exit status, None if it had to be killed."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, 20)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


async def until(what: str, check: Any, within: float, every: float = 0.1) -> Any:
    """Poll ``await check()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not within {within}s (last: {last!r})")
