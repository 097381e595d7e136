"""SIP probe cost: CPU per probe of wardwatch's sip probe against a local kamailio.

One probe = one OPTIONS transaction through probes.runner.run_probe as the engine runs it
(a fresh socket per probe, as each target gets): over UDP (the case recorded in
BENCHMARKS.md), then TCP and TLS (a full handshake, chain verified against the test CA),
and for context the stun probe against coturn. Servers on loopback, started as the tests
start them (tests/peers/voip.py):

    python bench/probes_sip.py [--count 2000] [--concurrency 50] [--repeat 3] [--uvloop]

CPU is this process's (user + system) over the run divided by the probes run; the server's
own CPU (every process of it) is shown beside it for context. Machines here are shared and
noisy: compare repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.probes import bounded, proc_cpu, self_cpu  # noqa: E402
from probes import registry, sip, stun  # noqa: E402
from probes.base import ProbeConfig, ProbeContext, TLSContexts  # noqa: E402
from probes.runner import run_probe  # noqa: E402
from tests.peers import voip  # noqa: E402
from tests.peers.pki import TestCA  # noqa: E402


def server_cpu(marker: str) -> float:
    """CPU seconds of every process whose command line mentions ``marker`` (kamailio forks)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                total += proc_cpu(int(pid))
        except OSError:
            continue
    return total


async def measure(kind: str, target: str, cfg: ProbeConfig, *, marker: str, count: int, conc: int,
                  tls: TLSContexts) -> dict[str, float]:
    spec = registry.get(kind)
    failures = 0

    async def one() -> bool:
        nonlocal failures
        r = await run_probe(spec, target, cfg, ProbeContext(timeout=5.0, tls=tls))
        failures += not r.success
        return r.success

    await one()  # untimed: builds the TLS contexts once, as the engine keeps them
    cpu0, server0, t0 = self_cpu(), server_cpu(marker), time.monotonic()
    await bounded(count, conc, one)
    wall = time.monotonic() - t0
    return {
        "cpu_ms": (self_cpu() - cpu0) / count * 1000,
        "server_ms": (server_cpu(marker) - server0) / count * 1000,
        "per_s": count / wall,
        "failures": float(failures),
    }


async def bench(args: argparse.Namespace) -> None:
    tls = TLSContexts()
    with tempfile.TemporaryDirectory(prefix="ww-bench-sip-") as tmp:
        d = Path(tmp)
        ca = TestCA(d / "pki")
        cert = ca.issue("sip", ["sip.test", "127.0.0.1"])
        with voip.kamailio_server(d / "kamailio", cert) as k, voip.coturn_server(d / "coturn") as c:
            kam, turn = str(d / "kamailio"), str(d / "coturn")
            cases: list[tuple[str, str, str, ProbeConfig, str]] = [
                ("sip UDP (kamailio)", "sip", f"sip:127.0.0.1:{k.port};transport=udp", sip.Config(), kam),
                ("sip TCP (kamailio)", "sip", f"sip:127.0.0.1:{k.port};transport=tcp", sip.Config(), kam),
                ("sip TLS (kamailio)", "sip", f"sips:127.0.0.1:{k.tls_port}",
                 sip.Config(ca_file=str(ca.bundle), server_name="sip.test"), kam),
                ("stun UDP (coturn)", "stun", f"127.0.0.1:{c.port}", stun.Config(), turn),
            ]
            rows: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in cases}
            for _ in range(args.repeat):
                for name, kind, target, cfg, marker in cases:
                    rows[name].append(await measure(kind, target, cfg, marker=marker, count=args.count,
                                                    conc=args.concurrency, tls=tls))
    print(f"{args.count} probes per case x {args.repeat} repeats, concurrency {args.concurrency}, "
          f"loop {'uvloop' if args.uvloop else 'asyncio'}")
    print(f"{'case':22} {'CPU ms/probe (median)':>22} {'repeats':>22} {'server ms':>9} {'probes/s':>9} {'fail':>5}")
    for name, runs in rows.items():
        cpu = [r["cpu_ms"] for r in runs]
        print(f"{name:22} {statistics.median(cpu):22.3f} {' '.join(f'{x:.3f}' for x in cpu):>22} "
              f"{statistics.median(r['server_ms'] for r in runs):9.3f} "
              f"{statistics.median(r['per_s'] for r in runs):9.0f} {sum(r['failures'] for r in runs):5.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=2000, help="probes per case per repeat")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args()
    if args.uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(bench(args))
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
