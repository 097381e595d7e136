"""Acceptance harness for the built-in alerting path, in the spirit of Alertmanager's own:
a real ``wardwatch run`` process watching a lab, a timeline of lab faults pushed at given
offsets through the lab's control endpoint, and the notifications a real webhook receiver got,
checked against expectations with time windows.

    h = await Harness.start(tmp_path)              # lab (10 units) + receiver + wardwatch
    await h.timeline([(0.0, h.cut(unit)), (12.0, h.restore(unit))])
    await h.expect(kind="unit_isolated", event="firing", unit_code=unit, count=1, within=(0, 12))

Timing of the lab inventory: interval 3 s, timeout 2 s, 2 re-checks 0.3 s apart; the alert
engine's defaults (open after 3 failed results, close after 2 successes); delivery backoff
0.5 s doubling to 2 s; the alert tick 0.5 s. A link cut is confirmed in ~5-8 s. ``received``
counts what arrived since the clock's zero (``reset_clock``), so the lab's built-in
imperfections paging at start-up stay out of a case.
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
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.lab import control
from monitor.lab.config import LabConfig, Ports, Timing
from monitor.lab.runner import Lab
from tests.alerts.receivers import Receiver
from tests.peers.proc import free_port

UNITS = 10  # the smallest lab with imperfection-free units (indices 0 and 9)
HOOK_KEY = "harness-hmac-key"
# A 2 s timeout (not 1 s): on a loaded 2-core machine the lab's TLS handshakes (in the test
# process) sometimes took over a second in the first round, and three such results page.
TIMING = Timing(interval=3.0, timeout=2.0, rechecks=2, recheck_spacing=0.3)

Step = Callable[[], Awaitable[None]]


def _free_ports() -> Ports:
    """Every shared listener on a free port (0), whatever listeners the lab has."""
    import dataclasses

    return Ports(**{f.name: 0 for f in dataclasses.fields(Ports)})


def alerting_yaml(receiver_url: str, extra: str = "") -> str:
    return f"""
alerting:
  language: vi
  dashboard_url: "http://status.lab.test/units/{{{{unit_code}}}}"
  receivers:
    hook: {{type: webhook, url: "{receiver_url}/hook", hmac_key_env: WW_HARNESS_HOOK_KEY, timeout: 2s}}
  default_receivers: [hook]
  delivery: {{backoff_initial: 0.5s, backoff_max: 2s, tick: 0.5s, alertmanager_resend: 1h}}
  # The global guard runs with its defaults: the lab's built-in imperfections fail from the start,
  # which is not a new failure, and any 'global_check' wait is bounded by the guard's window.
{extra}"""


@dataclass
class Got:
    at: float  # seconds since the harness clock's zero
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["alert"]["kind"])

    @property
    def event(self) -> str:
        return str(self.body["event"])

    @property
    def unit_code(self) -> int | None:
        code = self.body["alert"]["unit_code"]
        return int(code) if code is not None else None


@dataclass
class Harness:
    dir: Path
    lab: Lab
    receiver: Receiver
    inventory: Path
    store: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    zero: float = field(default_factory=time.monotonic)
    runs: int = 0

    # -- set-up ----------------------------------------------------------------------------------
    @classmethod
    async def start(cls, tmp: Path, extra_alerting: str = "") -> Harness:
        lab = Lab(LabConfig(
            directory=tmp / "lab", units=UNITS, ports=_free_ports(),
            timing=TIMING, nft_table=f"wardwatch_alerts_{os.getpid()}", flap_period=1.0,
        ))
        await lab.start()
        receiver = Receiver(key=HOOK_KEY)
        await receiver.start()
        inventory = tmp / "inventory.yaml"
        inventory.write_text(lab.inventory_path.read_text() + alerting_yaml(receiver.url, extra_alerting))
        h = cls(tmp, lab, receiver, inventory, tmp / "wardwatch.db", free_port())
        await h.start_wardwatch()
        return h

    async def start_wardwatch(self) -> None:
        self.runs += 1
        self.proc = await asyncio.to_thread(self._spawn)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wardwatch exited with {self.proc.returncode}: {self.log()[-2000:]}")
            with contextlib.suppress(OSError):
                if await asyncio.to_thread(self._get, "/readyz") == 200:
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError("wardwatch not ready after 30 s")

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "WW_HARNESS_HOOK_KEY": HOOK_KEY, "PYTHONUNBUFFERED": "1"}
        with open(self.dir / f"wardwatch-{self.runs}.log", "wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "monitor", "--log-format", "json", "run", "-c", str(self.inventory),
                 "--listen", f"127.0.0.1:{self.port}", "--store", str(self.store), "--loop", "asyncio"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )

    def _get(self, path: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
            return int(r.status)

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return json.loads(r.read())

    def log(self) -> str:
        return "".join((self.dir / f"wardwatch-{i}.log").read_text(errors="replace") for i in range(1, self.runs + 1))

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
        await self.receiver.stop()
        await self.lab.stop()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    # -- the timeline ------------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.zero

    def reset_clock(self) -> None:
        self.zero = time.monotonic()

    async def fault(self, unit: int, service: str, mode: str) -> None:
        await asyncio.to_thread(control.set_fault, self.lab.dir, unit, service, mode)

    def cut(self, unit: int, service: str = "link") -> Step:
        return lambda: self.fault(unit, service, "down")

    def restore(self, unit: int, service: str = "link") -> Step:
        return lambda: self.fault(unit, service, "restore")

    async def timeline(self, steps: Sequence[tuple[float, Step]]) -> None:
        """Run each step at its offset (seconds since the clock's zero)."""
        for at, step in sorted(steps, key=lambda s: s[0]):
            delay = at - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            await step()

    # -- what arrived --------------------------------------------------------------------------------
    def received(self, *, unit_code: int | None = None, kind: str | None = None,
                 event: str | None = None, everything: bool = False) -> list[Got]:
        out = []
        for r in self.receiver.requests:
            body = r.json()
            got = Got(r.at - self.zero, body)
            if got.at < 0 and not everything:
                continue
            if unit_code is not None and got.unit_code != unit_code:
                continue
            if kind is not None and got.kind != kind:
                continue
            if event is not None and got.event != event:
                continue
            out.append(got)
        return out

    async def expect(self, *, count: int, within: tuple[float, float], unit_code: int | None = None,
                     kind: str | None = None, event: str | None = None) -> list[Got]:
        """Exactly ``count`` matching notifications, each arrived inside ``within``; waits until
        the window's end when more could still come (count 0, or to prove there is no extra)."""
        end = within[1]
        while self.now() < end:
            if count and len(self.received(unit_code=unit_code, kind=kind, event=event)) > count:
                break
            await asyncio.sleep(0.1)
        got = self.received(unit_code=unit_code, kind=kind, event=event)
        what = f"{kind or 'any'}/{event or 'any'} for unit {unit_code}"
        assert len(got) == count, f"{what}: expected {count}, got {len(got)}: {[g.body for g in got]}"
        for g in got:
            assert within[0] <= g.at <= within[1], f"{what} arrived at {g.at:.1f}s, outside {within}"
        return got

    async def wait_for(self, within: float, *, unit_code: int | None = None, kind: str | None = None,
                       event: str | None = None) -> Got:
        deadline = self.now() + within
        while self.now() < deadline:
            got = self.received(unit_code=unit_code, kind=kind, event=event)
            if got:
                return got[0]
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {kind}/{event} for unit {unit_code} within {within}s; got "
                             f"{[(g.kind, g.event, g.unit_code) for g in self.received()]}")

    def duplicates(self) -> list[str]:
        keys = [r.json()["dedup_key"] for r in self.receiver.requests]
        return sorted({k for k in keys if keys.count(k) > 1})
