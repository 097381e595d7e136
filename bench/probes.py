"""Probe cost on local targets: probes per second and CPU seconds per 1,000 probes.

Runs, in one process run and side by side:
  * wardwatch's probes (probes.runner.run_probe, the engine's own path), and
  * prometheus-blackbox-exporter driven the way Prometheus drives it (one /probe
    request per probe), its CPU read from /proc for its own process,
against the same nginx (http, https) and TCP port on loopback, and ICMP to 127.0.0.1.

    python bench/probes.py [--count 2000] [--concurrency 50] [--repeat 3] [--uvloop]

Both sides are measured with their own process CPU; the ratio column is
wardwatch / blackbox. Machines here are noisy: read the ratios, compare repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from probes import registry  # noqa: E402
from probes.base import ProbeContext, Resolver, TLSContexts  # noqa: E402
from probes.runner import run_probe  # noqa: E402
from tests.peers.pki import TestCA  # noqa: E402
from tests.peers.proc import free_port, require, running, wait_tcp  # noqa: E402

KINDS = ("http", "https", "tcp", "icmp")
CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def nginx_conf(d: Path, http_port: int, https_port: int, cert: Path, key: Path) -> Path:
    conf = d / "nginx.conf"
    conf.write_text(f"""
daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log warn; user root;
events {{ worker_connections 4096; }}
http {{
  access_log off; client_body_temp_path {d}/cb; proxy_temp_path {d}/px; fastcgi_temp_path {d}/fc;
  uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc; keepalive_timeout 0;
  server {{ listen 127.0.0.1:{http_port}; location / {{ return 200 "ok\\n"; }} }}
  server {{ listen 127.0.0.1:{https_port} ssl; ssl_certificate {cert}; ssl_certificate_key {key};
           location / {{ return 200 "ok\\n"; }} }}
}}
""")
    return conf


def blackbox_conf(d: Path, ca: Path) -> Path:
    conf = d / "blackbox.yml"
    conf.write_text(f"""
modules:
  http: {{prober: http, timeout: 5s, http: {{preferred_ip_protocol: ip4, tls_config: {{ca_file: {ca}}}}}}}
  https: {{prober: http, timeout: 5s, http: {{preferred_ip_protocol: ip4, tls_config: {{ca_file: {ca}}}}}}}
  tcp: {{prober: tcp, timeout: 5s, tcp: {{preferred_ip_protocol: ip4}}}}
  icmp: {{prober: icmp, timeout: 5s, icmp: {{preferred_ip_protocol: ip4}}}}
""")
    return conf


async def bounded(n: int, conc: int, one: Callable[[], Awaitable[bool]]) -> tuple[float, int]:
    """Run ``one`` n times, at most ``conc`` at once; returns (wall seconds, failures)."""
    sem = asyncio.Semaphore(conc)
    failures = 0

    async def wrapped() -> None:
        nonlocal failures
        async with sem:
            if not await one():
                failures += 1

    start = time.monotonic()
    await asyncio.gather(*(wrapped() for _ in range(n)))
    return time.monotonic() - start, failures


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ww-bench-") as tmp:
        d = Path(tmp)
        ca = TestCA(d / "pki")
        leaf = ca.issue("local", ["127.0.0.1", "localhost"])
        hp, sp, bp = free_port(), free_port(), free_port()
        nginx = require("nginx")
        bb = require("prometheus-blackbox-exporter")
        with running([nginx, "-c", str(nginx_conf(d, hp, sp, leaf.cert, leaf.key)), "-p", str(d)], d / "ng.log"), \
             running([bb, f"--config.file={blackbox_conf(d, ca.bundle)}",
                      f"--web.listen-address=127.0.0.1:{bp}", "--log.level=error"], d / "bb.log") as bbp:
            wait_tcp("127.0.0.1", hp)
            wait_tcp("127.0.0.1", sp)
            wait_tcp("127.0.0.1", bp)
            targets = {
                "http": ("http", f"http://127.0.0.1:{hp}/", {}),
                "https": ("http", f"https://127.0.0.1:{sp}/", {"ca_file": str(ca.bundle)}),
                "tcp": ("tcp", f"127.0.0.1:{hp}", {}),
                "icmp": ("icmp", "127.0.0.1", {"count": 1}),
            }
            resolver, tls = Resolver(), TLSContexts()
            rows: dict[str, dict[str, list[float]]] = {k: {"ww_cpu": [], "ww_rate": [], "bb_cpu": [], "bb_rate": []}
                                                       for k in KINDS}
            conn = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
            async with aiohttp.ClientSession(connector=conn) as http:
                for rep in range(args.repeat):
                    for kind in KINDS:
                        probe, target, opts = targets[kind]
                        spec = registry.get(probe)
                        cfg = spec.config(**opts)

                        async def ww_one(spec=spec, target=target, cfg=cfg) -> bool:  # type: ignore[no-untyped-def]
                            ctx = ProbeContext(timeout=5.0, resolver=resolver, tls=tls)
                            return (await run_probe(spec, target, cfg, ctx)).success

                        c0 = self_cpu()
                        wall, fails = await bounded(args.count, args.concurrency, ww_one)
                        cpu = self_cpu() - c0
                        rows[kind]["ww_cpu"].append(cpu / args.count * 1000)
                        rows[kind]["ww_rate"].append(args.count / wall)
                        if fails:
                            print(f"  warning: wardwatch {kind}: {fails} failures", file=sys.stderr)

                        async def bb_one(kind=kind, target=target, url=f"http://127.0.0.1:{bp}/probe") -> bool:  # type: ignore[no-untyped-def]
                            async with http.get(url, params={"module": kind, "target": target}) as r:
                                return "probe_success 1" in await r.text()

                        b0 = proc_cpu(bbp.pid)
                        wall, fails = await bounded(args.count, args.concurrency, bb_one)
                        bcpu = proc_cpu(bbp.pid) - b0
                        rows[kind]["bb_cpu"].append(bcpu / args.count * 1000)
                        rows[kind]["bb_rate"].append(args.count / wall)
                        if fails:
                            print(f"  warning: blackbox {kind}: {fails} failures", file=sys.stderr)
                    print(f"repeat {rep + 1}/{args.repeat} done", file=sys.stderr)

    med = statistics.median
    print(f"\n{args.count} probes per kind, concurrency {args.concurrency}, {args.repeat} repeats "
          f"(median; CPU = process user+system), loop={'uvloop' if args.uvloop else 'asyncio'}")
    print(f"{'kind':6} {'ww probes/s':>12} {'ww CPU s/1k':>12} {'bb probes/s':>12} {'bb CPU s/1k':>12} "
          f"{'ratio ww/bb':>12}  ww CPU s/1k per repeat")
    for k in KINDS:
        r = rows[k]
        print(f"{k:6} {med(r['ww_rate']):12.0f} {med(r['ww_cpu']):12.3f} {med(r['bb_rate']):12.0f} "
              f"{med(r['bb_cpu']):12.3f} {med(r['ww_cpu']) / max(med(r['bb_cpu']), 1e-9):12.2f}  "
              + " ".join(f"{v:.3f}" for v in r["ww_cpu"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=2000, help="probes per kind per repeat (bounded load)")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args()
    if not 1 <= args.count <= 100_000:
        p.error("--count must be between 1 and 100000")
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
