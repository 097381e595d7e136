"""The lab's DNS: one zone, ``lab.test``, served by NSD (a real authoritative server).

Why NSD rather than an in-process responder: the monitor then talks to a real DNS server
(the same code path as production), NSD answers the ~23,000 names of the national lab from a
compiled zone at a few MB and next to no CPU, and it keeps DNS load off the lab's event loop.
It runs in the foreground (``nsd -d``) from the lab directory on 127.0.0.1:<port>.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode

from monitor.lab.plan import DOMAIN, LabUnit, all_names


class DnsError(RuntimeError):
    """NSD is missing or would not serve the zone."""


def zone_text(units: list[LabUnit], serial: int = 1) -> str:
    lines = [
        f"$ORIGIN {DOMAIN}.",
        "$TTL 300",
        f"@ IN SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. ( {serial} 3600 600 86400 300 )",
        f"@ IN NS ns.{DOMAIN}.",
        "ns IN A 127.0.0.1",
    ]
    for name, addr in all_names(units).items():
        lines.append(f"{name}. IN A {addr}")
    for u in units:
        lines.append(f"{u.mail_domain}. IN MX 10 {u.mail_host}.")
    return "\n".join(lines) + "\n"


def nsd_conf(directory: Path, port: int, zones: list[str], host: str = "127.0.0.1") -> str:
    """nsd.conf for a foreground nsd that keeps every file in ``directory`` and drops no
    privileges, serving ``zones`` (each from ``<zone>.zone`` there) on ``host@port``."""
    zone_blocks = "".join(f'zone:\n    name: {z}\n    zonefile: "{z}.zone"\n' for z in zones)
    return f"""server:
    ip-address: {host}@{port}
    port: {port}
    username: ""
    chroot: ""
    zonesdir: "{directory}"
    database: ""
    pidfile: "{directory}/nsd.pid"
    logfile: "{directory}/nsd.log"
    xfrdfile: "{directory}/xfrd.state"
    xfrdir: "{directory}"
    zonelistfile: "{directory}/zone.list"
    server-count: 1
    verbosity: 0
    do-ip6: no
    refuse-any: yes
remote-control:
    control-enable: no
{zone_blocks}"""


class Nsd:
    """``nsd -d`` serving the lab zone; ``start`` returns once it answers a query."""

    def __init__(self, directory: Path, port: int) -> None:
        self.dir = directory.absolute()
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None

    def prepare(self, units: list[LabUnit]) -> tuple[list[str], int]:
        """Write the zone and config (blocking); returns (argv, fd of the output log)."""
        binary = shutil.which("nsd") or ("/usr/sbin/nsd" if Path("/usr/sbin/nsd").exists() else None)
        if binary is None:
            raise DnsError("nsd is not installed (Debian package nsd)")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"{DOMAIN}.zone").write_text(zone_text(units, int(time.time())))
        conf = self.dir / "nsd.conf"
        conf.write_text(nsd_conf(self.dir, self.port, [DOMAIN]))
        for stale in ("zone.list", "xfrd.state", "nsd.pid"):
            (self.dir / stale).unlink(missing_ok=True)
        fd = os.open(self.dir / "nsd.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        return [binary, "-d", "-c", str(conf)], fd

    async def start(self, units: list[LabUnit], wait_seconds: float = 15.0) -> None:
        argv, fd = await asyncio.to_thread(self.prepare, units)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=fd
            )
        finally:
            os.close(fd)
        query = dns.message.make_query(f"{DOMAIN}.", "SOA")
        deadline = time.monotonic() + wait_seconds
        while True:
            if self.proc.returncode is not None:
                log = (await asyncio.to_thread((self.dir / "nsd.out").read_text, errors="replace")).strip()
                raise DnsError(f"nsd exited with {self.proc.returncode}: {log[-500:]}")
            try:
                reply = await dns.asyncquery.udp(query, "127.0.0.1", timeout=0.2, port=self.port)
            except (dns.exception.Timeout, OSError):
                reply = None
            if reply is not None and reply.rcode() == dns.rcode.NOERROR:
                return
            if time.monotonic() > deadline:
                await self.stop()
                raise DnsError(f"nsd did not answer on 127.0.0.1:{self.port} within {wait_seconds:g}s")
            # NSD has no readiness signal: ask again shortly (each ask waits up to 0.2 s).
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
