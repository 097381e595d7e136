"""The floor for bench/national.py: one asyncio process probing a list of targets and nothing else.

    python bench/naive_loop.py TARGETS.json --interval 30 --seconds 60 --warmup 3 [--loop uvloop]

TARGETS.json: {"kind": "http"|"https"|"tcp"|"icmp", "ca_file": ..., "hosts": {name: address},
"targets": [...]} as bench/national.py writes it. Every target is probed once per interval at
a fixed phase (spread over the interval), like the engine does, with the least code that
still checks what the engine checks:

  http   GET over asyncio streams, ``Connection: close``; success = 301 with a Location
  https  the same over TLS (one shared SSL context, fresh handshake per probe); success = 200
  tcp    connect, close
  icmp   one echo request on ONE raw socket shared by all probes, replies matched on
         (source address, identifier, sequence)

Names are resolved once at start from the ``hosts`` map (bench/national.py writes the lab's
own name -> address table): no DNS per probe. Prints one JSON line with the CPU seconds
(getrusage, this process) and the probes completed in the measured window (after --warmup).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import ssl
import struct
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 5.0


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


class Pinger:
    """One raw ICMP socket; replies demultiplexed to waiting futures."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.setblocking(False)
        self.ident = os.getpid() & 0xFFFF
        self.seq = 0
        self.waiting: dict[tuple[str, int], asyncio.Future[float]] = {}
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                data, (addr, _) = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            ihl = (data[0] & 0x0F) * 4
            typ, _, _, ident, seq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if typ != 0 or ident != self.ident:
                continue
            fut = self.waiting.pop((addr, seq), None)
            if fut is not None and not fut.done():
                fut.set_result(time.monotonic())

    async def ping(self, addr: str) -> bool:
        self.seq = (self.seq + 1) & 0xFFFF
        seq = self.seq
        payload = b"\0" * 56
        header = struct.pack("!BBHHH", 8, 0, 0, self.ident, seq)
        header = struct.pack("!BBHHH", 8, 0, checksum(header + payload), self.ident, seq)
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[(addr, seq)] = fut
        try:
            self.sock.sendto(header + payload, (addr, 0))
            async with asyncio.timeout(TIMEOUT):
                await fut
            return True
        except (TimeoutError, OSError):
            return False
        finally:
            self.waiting.pop((addr, seq), None)


async def http_get(url: str, hosts: dict[str, str], tls: ssl.SSLContext | None) -> tuple[int, bytes]:
    u = urlsplit(url)
    host = u.hostname or ""
    port = u.port or (443 if u.scheme == "https" else 80)
    addr = hosts.get(host, host)
    reader, writer = await asyncio.open_connection(addr, port, ssl=tls, server_hostname=host if tls else None)
    try:
        writer.write(f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\nUser-Agent: naive\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read(-1)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


def prober(kind: str, hosts: dict[str, str], ca_file: str | None) -> Callable[[str], Awaitable[bool]]:
    if kind == "icmp":
        pinger = Pinger()
        return lambda t: pinger.ping(hosts.get(t, t))
    if kind == "tcp":
        async def tcp(t: str) -> bool:
            host, port = t.rsplit(":", 1)
            _, writer = await asyncio.open_connection(hosts.get(host, host), int(port))
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return tcp
    if kind == "http":
        async def http(t: str) -> bool:
            status, data = await http_get(t, hosts, None)
            return status in (301, 302, 307, 308) and b"\r\nlocation:" in data.lower()
        return http
    ctx = ssl.create_default_context(cafile=ca_file)

    async def https(t: str) -> bool:
        status, _ = await http_get(t, hosts, ctx)
        return 200 <= status < 300
    return https


async def main(args: argparse.Namespace, spec: dict[str, Any]) -> dict[str, object]:
    kind, targets = spec["kind"], spec["targets"]
    one = prober(kind, spec.get("hosts", {}), spec.get("ca_file"))
    counts = {"ok": 0, "fail": 0}
    window = {"on": False}
    tasks: set[asyncio.Task[None]] = set()

    async def probe(t: str) -> None:
        try:
            async with asyncio.timeout(TIMEOUT):
                ok = await one(t)
        except (OSError, TimeoutError, ssl.SSLError, ValueError, IndexError):
            ok = False
        if window["on"]:
            counts["ok" if ok else "fail"] += 1

    # phase of each target: a stable spread over the interval, as the engine does
    order = sorted((zlib.crc32(t.encode()) / 2**32 * args.interval, t) for t in targets)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    end = t0 + args.warmup + args.seconds
    c0 = 0.0
    w0 = t0 + args.warmup
    rnd = 0
    while True:
        for phase, t in order:
            due = t0 + rnd * args.interval + phase
            if due >= end:
                break
            now = loop.time()
            if not window["on"] and now >= w0:
                window["on"], c0, w0 = True, cpu(), now
            if due > now:
                await asyncio.sleep(due - now)
            task = asyncio.create_task(probe(t))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            rnd += 1
            continue
        break
    if loop.time() < end:
        await asyncio.sleep(end - loop.time())
    if not window["on"]:
        window["on"], c0, w0 = True, cpu(), loop.time()
    c1, w1 = cpu(), loop.time()
    window["on"] = False
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"kind": kind, "targets": len(targets), "cpu": c1 - c0, "seconds": w1 - w0, "ok": counts["ok"],
            "fail": counts["fail"]}


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets")
    p.add_argument("--interval", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = p.parse_args()
    if not (0 < args.seconds <= 3600 and 0 < args.interval <= 600):
        p.error("--seconds must be in (0, 3600] and --interval in (0, 600]")
    spec = json.loads(Path(args.targets).read_text())
    if args.loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
            out = r.run(main(args, spec))
    else:
        out = asyncio.run(main(args, spec))
    out["peak_rss_kib"] = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                                   if line.startswith("VmHWM:")))
    print(json.dumps(out), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    cli()
