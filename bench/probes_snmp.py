"""SNMP probe cost: CPU per probe of wardwatch's snmp probe against local agents.

One probe = one GET of sysUpTime.0 plus one interface row (ifIndex 1: ifName, ifDescr,
ifOperStatus, ifAdminStatus, ifHCIn/OutOctets, ifHighSpeed, ifIn/OutErrors, ifIn/OutDiscards;
12 varbinds), through probes.runner.run_probe as the engine runs it, with the engine's
per-target memory (so from the second poll on rates are computed too). Agents on loopback:

  * net-snmp snmpd, v2c community and v3 authPriv (SHA/AES) user;
  * snmpsim serving a router recording (v2c).

    python bench/probes_snmp.py [--count 2000] [--concurrency 50] [--repeat 3] [--uvloop]

CPU is this process's (user + system) over the run divided by the probes run; the agent's own
CPU is shown beside it for context. Machines here are shared and noisy: compare repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.probes import bounded, proc_cpu, self_cpu  # noqa: E402
from probes import registry, snmp  # noqa: E402
from probes.base import ProbeContext  # noqa: E402
from probes.runner import run_probe  # noqa: E402
from tests.peers import snmp as peers  # noqa: E402

ROUTER = {"ifName": "Gi0/0", "ifDescr": "GigabitEthernet0/0", "ifAdminStatus": 1, "ifOperStatus": 1,
          "ifHighSpeed": 100, "ifHCInOctets": 10**9, "ifHCOutOctets": 10**8, "ifInErrors": 1, "ifOutErrors": 0,
          "ifInDiscards": 0, "ifOutDiscards": 0}


async def measure(target: str, cfg: snmp.Config, agent_pid: int, count: int, conc: int) -> dict[str, float]:
    spec = registry.get("snmp")
    memory: dict[str, Any] = {}
    failures = 0

    async def one() -> bool:
        nonlocal failures
        ctx = ProbeContext(timeout=5.0)
        ctx.memory = memory  # one target polled over and over, as the engine would
        r = await run_probe(spec, target, cfg, ctx)
        failures += not r.success
        return r.success

    await one()  # untimed: builds the shared SnmpEngine (it then lingers) and the first counters
    cpu0, agent0, t0 = self_cpu(), proc_cpu(agent_pid), time.monotonic()
    await bounded(count, conc, one)
    wall = time.monotonic() - t0
    return {
        "cpu_ms": (self_cpu() - cpu0) / count * 1000,
        "agent_ms": (proc_cpu(agent_pid) - agent0) / count * 1000,
        "per_s": count / wall,
        "failures": float(failures),
    }


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "a").mkdir()
        (d / "b").mkdir()
        with peers.snmpd(d / "a") as agent, peers.snmpsim(
            d / "b", {"router": peers.router_record(100_000, {1: ROUTER})}
        ) as sim:
            snmpd_pid = int((d / "a" / "snmpd.pid").read_text().strip()) if (d / "a" / "snmpd.pid").exists() else 0
            sim_pid = _pid_of(sim)
            cases = [
                ("snmpd v2c", agent.target, snmp.Config(community=peers.COMMUNITY, interfaces=("1",)), snmpd_pid),
                ("snmpd v3 authPriv SHA/AES", agent.target,
                 snmp.Config(v3_user=peers.V3_USER, auth_key=peers.V3_AUTH, priv_key=peers.V3_PRIV,
                             interfaces=("1",)), snmpd_pid),
                ("snmpsim v2c", sim.target, snmp.Config(community="router", interfaces=("1",)), sim_pid),
            ]
            rows: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in cases}
            for _ in range(args.repeat):
                for name, target, cfg, pid in cases:
                    rows[name].append(await measure(target, cfg, pid, args.count, args.concurrency))
    print(f"{args.count} probes per case x {args.repeat} repeats, concurrency {args.concurrency}, "
          f"loop {'uvloop' if args.uvloop else 'asyncio'}")
    print(f"{'case':28} {'CPU ms/probe (median)':>22} {'repeats':>22} {'agent ms':>9} {'probes/s':>9} {'fail':>5}")
    for name, runs in rows.items():
        cpu = [r["cpu_ms"] for r in runs]
        print(f"{name:28} {statistics.median(cpu):22.3f} {' '.join(f'{c:.3f}' for c in cpu):>22} "
              f"{statistics.median(r['agent_ms'] for r in runs):9.3f} "
              f"{statistics.median(r['per_s'] for r in runs):9.0f} {sum(r['failures'] for r in runs):5.0f}")


def _pid_of(sim: peers.Simulator) -> int:
    """snmpsim's pid: the process owning the simulator's UDP port (from /proc/net/udp)."""
    import os

    port_hex = f"{sim.port:04X}"
    inodes = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1].endswith(":" + port_hex):
            inodes.add(f[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    return 0


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
