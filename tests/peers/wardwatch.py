"""A real `python -m monitor run` child process on loopback, awaited until its first round."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiohttp

from tests.peers.proc import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Wardwatch:
    url: str
    listen: str  # host:port, for a scrape config
    log: Path
    pid: int = 0  # also its process group: to signal it (SIGHUP: reload) or kill it


def _log_file(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")


@contextlib.asynccontextmanager
async def wardwatch_run(
    tmp: Path, inventory: Path, *, ready_timeout: float = 60.0, extra: tuple[str, ...] = (),
    port: int | None = None, tls: ssl.SSLContext | None = None,
) -> AsyncIterator[Wardwatch]:
    """Start ``wardwatch run`` on the inventory; yield once /readyz says its first round is done.
    ``tls``: the client context to reach it over https (its --web-config serves TLS).
    Stopped with SIGTERM (SIGKILL after 10 s) on exit."""
    port = port or free_port()  # a fixed port: a restart keeps Prometheus' scrape target
    listen = f"127.0.0.1:{port}"
    log = tmp / "wardwatch.log"
    with _log_file(log) as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", "run", "-c", str(inventory), "--listen", listen,
            "--store", str(tmp / "wardwatch.db"), "--log-level", "warning", *extra,
            stdout=out, stderr=asyncio.subprocess.STDOUT, cwd=REPO, start_new_session=True,
        )
    url = f"{'https' if tls else 'http'}://{listen}"
    try:
        async with asyncio.timeout(ready_timeout), aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls if tls is not None else True)
        ) as http:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"wardwatch exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url + "/readyz") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.05)  # /readyz is the only readiness signal a child offers
        yield Wardwatch(url, listen, log, proc.pid)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
