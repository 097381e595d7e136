"""The lab's routers answer SNMP: one ``snmpsim`` process, one UDP endpoint per unit's router.

Every router (``127.10.x.y``, plan.py) serves the same recording this module writes: system
group plus one interface, ``Gi0/0`` (ifIndex 1, 100 Mbit/s), whose octet and error counters
move with snmpsim's ``numeric`` variation module (about 20 Mbit/s in, 5 Mbit/s out, an
error every ~20 s), so the snmp probe's rates and utilisation have something to show.
The community is the recording's name (snmpsim's rule); the lab writes it into a file
that the lab inventory references (``link.snmp.community_file``), never into the inventory.

A link fault (``wardwatch lab fault CODE link down|flap``) silences SNMP too: nftables'
``cut`` set drops every packet to the router's address, UDP included (netfilter.py).
A ``slow`` link fault does not delay SNMP (snmpsim answers at once).

Measured (3,321 endpoints, one process): ~68 MB RSS, answering ~2 s after start; so SNMP
is on by default at every lab size (``--no-snmp`` turns it off). snmpsim comes from its
own venv (scripts/setup-test-env.sh); without it the lab runs without SNMP and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import time
from pathlib import Path

from monitor.lab.plan import LabUnit

log = logging.getLogger("wardwatch.lab")

COMMUNITY = "wardwatch-lab"
INTERFACE = "Gi0/0"
VENV_BINARY = Path("/opt/wardwatch-snmpsim/bin/snmpsim-command-responder")

_RECORD = [
    ("1.3.6.1.2.1.1.1.0", "4", "wardwatch lab router"),
    ("1.3.6.1.2.1.1.3.0", "67:numeric", "rate=100,initial=8640000"),  # up one day at start
    ("1.3.6.1.2.1.1.5.0", "4", "router"),
    ("1.3.6.1.2.1.2.2.1.1.1", "2", "1"),
    ("1.3.6.1.2.1.2.2.1.2.1", "4", "GigabitEthernet0/0"),
    ("1.3.6.1.2.1.2.2.1.7.1", "2", "1"),
    ("1.3.6.1.2.1.2.2.1.8.1", "2", "1"),
    ("1.3.6.1.2.1.2.2.1.13.1", "65", "0"),
    ("1.3.6.1.2.1.2.2.1.14.1", "65:numeric", "rate=0.05,initial=12"),
    ("1.3.6.1.2.1.2.2.1.19.1", "65", "0"),
    ("1.3.6.1.2.1.2.2.1.20.1", "65", "0"),
    ("1.3.6.1.2.1.31.1.1.1.1.1", "4", INTERFACE),
    ("1.3.6.1.2.1.31.1.1.1.6.1", "70:numeric", "rate=2500000,initial=1000000000"),
    ("1.3.6.1.2.1.31.1.1.1.10.1", "70:numeric", "rate=625000,initial=500000000"),
    ("1.3.6.1.2.1.31.1.1.1.15.1", "66", "100"),
]


def recording() -> str:
    """The .snmprec every lab router serves (OID|tag[:variation]|value, in OID order)."""
    rows = sorted(_RECORD, key=lambda r: tuple(int(x) for x in r[0].split(".")))
    return "".join(f"{oid}|{tag}|{value}\n" for oid, tag, value in rows)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def binary() -> str | None:
    if os.access(VENV_BINARY, os.X_OK):
        return str(VENV_BINARY)
    return shutil.which("snmpsim-command-responder")


class Snmpsim:
    def __init__(self, directory: Path, port: int) -> None:
        self.dir = directory
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None
        self.last: str | None = None

    @property
    def community_file(self) -> Path:
        return self.dir / "community"

    async def start(self, units: list[LabUnit]) -> bool:
        await self.launch(units)
        return await self.ready()

    async def launch(self, units: list[LabUnit]) -> None:
        """Start serving every unit's router (snmpsim takes ~1.5 s to answer: see ``ready``)."""
        self.last = units[-1].address("router") if units else None
        exe = binary()
        if exe is None or not units:
            if units:
                log.warning("snmpsim is not installed (scripts/setup-test-env.sh): lab routers will not answer SNMP")
            return
        data, cache = self.dir / "data", self.dir / "cache"
        for d in (data, cache):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        (data / f"{COMMUNITY}.snmprec").write_text(recording())
        self.community_file.write_text(COMMUNITY + "\n")
        argv = [exe, f"--data-dir={data}", f"--cache-dir={cache}", "--log-level=error",
                # as root snmpsim insists on a user to drop to; root keeps the lab's files readable
                "--process-user=root", "--process-group=root"]
        argv += [f"--agent-udpv4-endpoint={u.address('router')}:{self.port}" for u in units]
        out = (self.dir / "snmpsim.log").open("wb")  # noqa: ASYNC230 - a local file, once per lab start
        try:
            self.proc = await asyncio.create_subprocess_exec(
                # the lab's own process group (like nsd): killing the lab's group ends it too; and
                # if the lab itself is killed outright, the kernel ends snmpsim (PR_SET_PDEATHSIG)
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        finally:
            out.close()

    async def ready(self) -> bool:
        """True once the last router answers; False (with a warning) if snmpsim is absent or failed."""
        if self.proc is None or self.last is None:
            return False
        try:
            await self._wait(self.last, 60.0)
        except RuntimeError as e:
            log.warning("lab routers will not answer SNMP: %s", e)
            await self.stop()
            return False
        return True

    async def _wait(self, address: str, limit: float) -> None:
        """Until the last endpoint answers (snmpsim binds them in order)."""
        from probes import snmp
        from probes.base import ProbeContext, Reason

        cfg = snmp.Config(community=COMMUNITY)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.returncode is not None:
                raise RuntimeError(f"snmpsim exited; see {self.dir / 'snmpsim.log'}")
            r = await snmp.run(f"{address}:{self.port}", cfg, ProbeContext(timeout=0.5))
            if r.success:
                return
            if r.reason is not Reason.SNMP_TIMEOUT:  # e.g. port unreachable before the bind
                await asyncio.sleep(0.1)  # a UDP agent has no readiness event to await
        raise RuntimeError(f"snmpsim did not answer on {address}:{self.port} within {limit:g}s")

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
