"""Hostile targets alongside the lab: do healthy targets keep their schedule, does memory stay bounded?

    python bench/hostile.py [--units 168] [--hostile 1000] [--seconds 120] [--repeats 2]
                            [--interval 30] [--timeout 5] [--json FILE] [--no-netns] [--pin]

The bench first moves into a network namespace of its own (loopback only: other labs on the
machine share the 127.x plan), then starts the lab (``python -m monitor lab``, ``--units``
units) and the hostile server (``python -m tests.peers.hostile``: ``--hostile`` endpoints that
never finish — slow-loris headers, endless bodies, a huge Content-Length never delivered, a
gzip bomb, a stalled TLS handshake, silent and never-accepting TCP, endless and slow SMTP
banners, SIP answered byte by byte or with '100 Trying' for ever; see its KINDS).

Two inventories: the lab's as written (baseline) and the same plus one check per hostile
endpoint, given to the lab's units in turn (the inventory takes only official unit codes and
a 168-unit lab uses all of province 79's, so there is no room for a pseudo-unit). For each of
``--repeats`` rounds, ``wardwatch run`` runs on the baseline, then on the hostile inventory,
one after the other (2 cores: side by side they would measure each other), each for
``--warmup`` (the first round, its re-checks, every hostile target DOWN) and then a window of
``--seconds``. In the window:

- schedule lateness p50/p99: deltas of wardwatch's ``wardwatch_schedule_lateness_seconds``. It
  is one histogram for all targets; it is the healthy targets' lateness as long as no
  concurrency limit holds a probe back (lateness is observed once the global and per-host
  semaphores are held): every hostile endpoint has an address of its own, and the peak of
  ``wardwatch_probes_in_flight`` is reported against ``monitor.concurrency``.
- healthy probes/s: distinct probe results of the healthy targets seen in
  ``/api/v1/targets`` (read every ``--sample`` s, in both runs alike);
- RSS (peak VmHWM, median and last VmRSS of the window), open fds (median, max), CPU;
- per hostile target: every probe result seen — its reason must be one its kind allows, its
  duration within the timeout (+0.5 s, the runner's grace), no ``internal_error``, and its last
  probe recent at the end (a hung probe stops its target's schedule).

Ratios hostile/baseline are printed per round (the machine is noisy: compare rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detection import enter_netns  # noqa: E402
from bench.national import (  # noqa: E402
    Scrape,
    delta_buckets,
    free_port,
    parse_metrics,
    proc_cpu,
    proc_status,
    quantile,
    spawn,
    stop,
    wait_for,
)
from tests.peers import hostile  # noqa: E402

GRACE = 0.5  # probes/runner.py: the safety net past a probe's own deadline


def hostile_inventory(doc: dict[str, Any], endpoints: list[hostile.Endpoint]) -> dict[str, Any]:
    """The lab inventory plus one check per hostile endpoint, dealt to the units in turn."""
    units = doc["units"]
    for i, e in enumerate(endpoints):
        units[i % len(units)].setdefault("checks", []).append(hostile.check(e))
    return doc


@dataclass
class Probe:
    at: str
    seconds: float
    success: bool
    reason: str | None


@dataclass
class Watch:
    """What one window saw of each target (by key) through /api/v1/targets."""

    probes: dict[str, dict[str, Probe]] = field(default_factory=dict)  # key -> last_probe -> Probe
    last: dict[str, str | None] = field(default_factory=dict)
    before: dict[str, str | None] = field(default_factory=dict)  # the last probes before the window

    def start(self, rows: list[dict[str, Any]]) -> None:
        self.before = {r["key"]: r["last_probe"] for r in rows}
        self.last = dict(self.before)

    def add(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            self.last[r["key"]] = r["last_probe"]
            if r["last_probe"] is not None and r["last_probe"] != self.before.get(r["key"]):
                self.probes.setdefault(r["key"], {})[r["last_probe"]] = Probe(
                    r["last_probe"], r["last_duration_seconds"] or 0.0, bool(r["success"]), r["reason"])


async def scrape(http: aiohttp.ClientSession, url: str) -> tuple[Scrape, float]:
    """(the lateness histogram and probe counters, probes in flight) from /metrics."""
    t0 = time.monotonic()
    async with http.get(url) as r:
        text = await r.text()
    probes: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    in_flight = 0.0
    wanted = [line for line in text.splitlines() if line.startswith("wardwatch_")]
    for name, labels, value in parse_metrics("\n".join(wanted)):
        if name == "wardwatch_probes_total":
            k = f"{labels['probe']}:{labels['result']}"
            probes[k] = probes.get(k, 0.0) + value
        elif name == "wardwatch_schedule_lateness_seconds_bucket":
            buckets.append((float(labels["le"]), value))
        elif name == "wardwatch_probes_in_flight":
            in_flight = value
    buckets.sort()
    return Scrape(t0, probes, buckets, 0.0, time.monotonic() - t0, len(text)), in_flight


def run_wait(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of the process's main thread:
    the wait is what the rest of the machine (the lab, the hostile server, other work) costs it."""
    on, wait, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(on) / 1e9, int(wait) / 1e9


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Bench:
    def __init__(self, a: argparse.Namespace, d: Path) -> None:
        self.a = a
        self.d = d
        self.labdir = d / "lab"
        self.wardwatch_cpus: set[int] | None = a.wardwatch_cpus
        self.report: dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path | set) else v
                                                for k, v in vars(a).items()}, "rounds": []}

    @property
    def warmup(self) -> float:
        a = self.a
        # one interval (every first probe), then the re-checks that take a failing target DOWN
        return a.warmup if a.warmup is not None else a.interval + 3 * (a.timeout + a.spacing) + 5

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        a = self.a
        cmd = [sys.executable, "-m", "monitor", "--log-level", "warning", "lab", "--units", str(a.units),
               "--dir", str(self.labdir), "--no-nft", "--interval", f"{a.interval:g}s",
               "--timeout", f"{a.timeout:g}s", "--recheck-spacing", f"{a.spacing:g}s"]
        for name in ("https", "http", "smtp", "vc", "dns"):
            cmd += [f"--{name}-port", "0"]
        t0 = time.monotonic()
        lab = spawn(cmd, self.d / "lab.log")
        self.lab_pid = lab.pid
        stack.callback(stop, lab, 60)
        state = self.labdir / "lab-state.json"

        async def lab_ready() -> bool:
            return state.exists()
        await wait_for(lab_ready, "lab", 900, lab)
        print(f"lab: {a.units} units up in {time.monotonic() - t0:.0f}s", flush=True)

        out = self.d / "endpoints.json"
        total = (a.repeats * 2) * (self.warmup + a.seconds + 120) + 600
        srv = spawn([sys.executable, "-m", "tests.peers.hostile", "--count", str(a.hostile), "--out", str(out),
                     "--seconds", f"{min(total, 7200):g}", "--drip", f"{a.drip:g}"], self.d / "hostile.log")
        stack.callback(stop, srv, 30)

        async def srv_ready() -> bool:
            return out.exists()
        await wait_for(srv_ready, "hostile server", 120, srv)
        self.hostile_pid = srv.pid
        self.endpoints = hostile.load(out)

        doc = yaml.safe_load((self.labdir / "lab-inventory.yaml").read_text())
        self.baseline = self.d / "baseline.yaml"
        self.baseline.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
        self.concurrency = int(doc.get("monitor", {}).get("concurrency", 1000))
        self.hostile = self.d / "hostile.yaml"
        self.hostile.write_text(yaml.safe_dump(hostile_inventory(doc, self.endpoints), allow_unicode=True,
                                               sort_keys=False))
        self.hostile_kind = {}
        units = doc["units"]
        for i, e in enumerate(self.endpoints):
            c = hostile.check(e)
            key = f"{units[i % len(units)]['code']}/{c['service']}/{c['probe']}/{c['target']}"
            self.hostile_kind[key] = e.kind
        kinds = {k: sum(e.kind == k for e in self.endpoints) for k in hostile.BY_NAME}
        self.report["hostile_kinds"] = kinds
        print(f"hostile: {len(self.endpoints)} endpoints {kinds}", flush=True)

    async def run_one(self, http: aiohttp.ClientSession, inventory: Path, name: str) -> dict[str, Any]:
        a = self.a
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "monitor", "--log-level", "warning", "run", "-c", str(inventory),
               "--listen", f"127.0.0.1:{port}", "--store", str(self.d / f"{name}.db"), "--loop", a.loop]
        p = spawn(cmd, self.d / f"{name}.log", self.wardwatch_cpus)
        try:
            async def up() -> bool:
                try:
                    async with http.get(base + "/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False
            await wait_for(up, f"wardwatch {name}", 300, p)
            await asyncio.sleep(self.warmup)  # the experiment's schedule: the first round, then DOWN
            watch = Watch()
            async with http.get(base + "/api/v1/targets") as r:
                watch.start(await r.json())
            s0, flight = await scrape(http, base + "/metrics")
            c0, rw0 = proc_cpu(p.pid), run_wait(p.pid)
            others0 = proc_cpu(self.lab_pid), proc_cpu(self.hostile_pid)
            rss: list[int] = []
            fd: list[int] = []
            in_flight = [flight]
            end = s0.at + a.seconds
            next_sample = time.monotonic() + a.sample
            while time.monotonic() < end:
                await asyncio.sleep(min(1.0, max(0.0, end - time.monotonic())))
                if p.poll() is not None:
                    raise RuntimeError(f"wardwatch {name} exited with {p.returncode}")
                rss.append(proc_status(p.pid, "VmRSS"))
                fd.append(fds(p.pid))
                if time.monotonic() >= next_sample:
                    next_sample += a.sample
                    async with http.get(base + "/api/v1/targets") as r:
                        watch.add(await r.json())
                    _, f = await scrape(http, base + "/metrics")
                    in_flight.append(f)
            async with http.get(base + "/api/v1/targets") as r:
                watch.add(await r.json())
            c1, rw1 = proc_cpu(p.pid), run_wait(p.pid)
            others1 = proc_cpu(self.lab_pid), proc_cpu(self.hostile_pid)
            s1, f = await scrape(http, base + "/metrics")
            in_flight.append(f)
            seconds = s1.at - s0.at
            lat = delta_buckets(s0, s1)
            healthy = {k: v for k, v in watch.probes.items() if k not in self.hostile_kind}
            n_healthy = sum(len(v) for v in healthy.values())
            out: dict[str, Any] = {
                "seconds": seconds,
                "lateness": {"p50": quantile(0.5, lat), "p99": quantile(0.99, lat),
                             "count": lat[-1][1] if lat else 0},
                "healthy_targets": len(healthy), "healthy_probes": n_healthy,
                "healthy_probes_per_second": n_healthy / seconds,
                "probes_total": {k: s1.probes.get(k, 0.0) - s0.probes.get(k, 0.0) for k in s1.probes},
                "cpu_seconds": c1 - c0, "runqueue_wait_seconds": rw1[1] - rw0[1],
                "lab_cpu_seconds": others1[0] - others0[0], "hostile_server_cpu_seconds": others1[1] - others0[1],
                "rss_peak_mib": proc_status(p.pid, "VmHWM") / 1024,
                "rss_median_mib": statistics.median(rss) / 1024, "rss_max_mib": max(rss) / 1024,
                "rss_first_mib": rss[0] / 1024, "rss_last_mib": rss[-1] / 1024,
                "fds_median": statistics.median(fd), "fds_max": max(fd), "fds_min": min(fd),
                "in_flight_max": max(in_flight), "concurrency": self.concurrency,
            }
            if name.startswith("hostile"):
                out["hostile"] = self.judge(watch, s1.at)
            return out
        finally:
            stop(p)

    def judge(self, watch: Watch, now_mono: float) -> dict[str, Any]:
        """Every hostile probe seen: the right reason, within its timeout; no target left hanging."""
        a = self.a
        limit = a.timeout + GRACE
        seen = unjudged = 0
        by_reason: dict[str, int] = {}
        bad: list[str] = []
        max_seconds = 0.0
        newest: list[float] = []
        now = datetime.now().astimezone()
        for key, kind in self.hostile_kind.items():
            probes = watch.probes.get(key, {})
            allowed = hostile.BY_NAME[kind].reasons
            for pr in probes.values():
                seen += 1
                by_reason[f"{kind}:{pr.reason}"] = by_reason.get(f"{kind}:{pr.reason}", 0) + 1
                max_seconds = max(max_seconds, pr.seconds)
                # /api/v1/targets shows the state's reason: none while a failure is re-checked
                known = pr.reason is not None
                unjudged += not known
                if pr.success or (known and pr.reason not in allowed) or pr.seconds > limit:
                    bad.append(f"{kind} {key}: success={pr.success} reason={pr.reason} {pr.seconds:.2f}s")
            last = watch.last.get(key)
            age = (now - datetime.fromisoformat(last.replace("Z", "+00:00"))).total_seconds() if last else 1e9
            newest.append(age)
            if age > a.interval + limit + a.sample + 5:
                bad.append(f"{kind} {key}: last probe {age:.0f}s ago (hung?)")
        return {"targets": len(self.hostile_kind), "probes_seen": seen, "reason_unknown": unjudged,
                "max_seconds": max_seconds,
                "oldest_last_probe_seconds": max(newest) if newest else 0.0, "by_reason": by_reason,
                "bad": bad[:50], "bad_count": len(bad)}

    async def run(self) -> dict[str, Any]:
        a = self.a
        task = asyncio.current_task()
        assert task is not None
        # SIGTERM (a test's timeout, kill): unwind, so the lab, the server and wardwatch are stopped.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        async with contextlib.AsyncExitStack() as stack:
            await self.start(stack)
            http = await stack.enter_async_context(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)))
            for r in range(a.repeats):
                rnd: dict[str, Any] = {}
                for name, inv in (("baseline", self.baseline), ("hostile", self.hostile)):
                    print(f"round {r + 1}/{a.repeats} {name}: warmup {self.warmup:.0f}s, window {a.seconds:g}s",
                          flush=True)
                    rnd[name] = await self.run_one(http, inv, f"{name}-{r + 1}")
                    print_run(name, rnd[name])
                rnd["ratio"] = ratios(rnd["baseline"], rnd["hostile"])
                print(f"round {r + 1} hostile/baseline: " + ", ".join(f"{k} {v:.2f}" for k, v in rnd["ratio"].items()),
                      flush=True)
                self.report["rounds"].append(rnd)
            self.report["hostile_server_cpu_seconds"] = proc_cpu(self.hostile_pid)
        return self.report


RATIOS = (("lateness_p50", lambda r: r["lateness"]["p50"]), ("lateness_p99", lambda r: r["lateness"]["p99"]),
          ("healthy_probes_per_second", lambda r: r["healthy_probes_per_second"]),
          ("rss_median", lambda r: r["rss_median_mib"]), ("rss_peak", lambda r: r["rss_peak_mib"]),
          ("fds_median", lambda r: r["fds_median"]), ("cpu", lambda r: r["cpu_seconds"]),
          ("runqueue_wait", lambda r: r["runqueue_wait_seconds"]))


def ratios(base: dict[str, Any], hos: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, f in RATIOS:
        b = f(base)
        out[name] = f(hos) / b if b else float("nan")
    return out


def print_run(name: str, r: dict[str, Any]) -> None:
    lat = r["lateness"]
    print(f"  {name}: lateness p50 {lat['p50'] * 1000:.1f} ms p99 {lat['p99'] * 1000:.1f} ms over {lat['count']:.0f} "
          f"starts; healthy {r['healthy_probes_per_second']:.1f} probes/s ({r['healthy_targets']} targets); "
          f"CPU {r['cpu_seconds']:.1f}s in {r['seconds']:.0f}s (waited {r['runqueue_wait_seconds']:.1f}s for a core; "
          f"lab {r['lab_cpu_seconds']:.1f}s, hostile server {r['hostile_server_cpu_seconds']:.1f}s); "
          f"RSS peak {r['rss_peak_mib']:.0f} MiB, window "
          f"median {r['rss_median_mib']:.0f} max {r['rss_max_mib']:.0f} (first {r['rss_first_mib']:.0f} last "
          f"{r['rss_last_mib']:.0f}); fds median {r['fds_median']:.0f} max {r['fds_max']}; in flight max "
          f"{r['in_flight_max']:.0f} of {r['concurrency']}", flush=True)
    h = r.get("hostile")
    if h:
        print(f"  hostile: {h['probes_seen']} probes seen on {h['targets']} targets, longest {h['max_seconds']:.2f}s, "
              f"oldest last probe {h['oldest_last_probe_seconds']:.0f}s ago, {h['reason_unknown']} still re-checked "
              f"(reason not shown yet), {h['bad_count']} bad", flush=True)
        for line in h["bad"][:10]:
            print(f"    bad: {line}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--units", type=int, default=168, help="lab units (1..3321)")
    p.add_argument("--hostile", type=int, default=1000, help=f"hostile endpoints (1..{hostile.MAX_COUNT})")
    p.add_argument("--seconds", type=float, default=120.0, help="measured window per run (after the warmup)")
    p.add_argument("--warmup", type=float, default=None, help="seconds before the window (default: first round "
                   "and its re-checks)")
    p.add_argument("--repeats", type=int, default=2, help="rounds of baseline + hostile")
    p.add_argument("--interval", type=float, default=30.0)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--spacing", type=float, default=2.0, help="recheck spacing")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between /api/v1/targets reads")
    p.add_argument("--drip", type=float, default=2.0, help="hostile server: seconds between slow bytes")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None, help="write the full report here")
    p.add_argument("--no-netns", dest="netns", action="store_false", help="stay in this network namespace")
    p.add_argument("--pin", action="store_true", help="wardwatch on the first CPU, the lab, the hostile server "
                   "and the bench on the others (the hostile peers then take no CPU from the monitor)")
    a = p.parse_args()
    if not 1 <= a.units <= 3321 or not 1 <= a.hostile <= hostile.MAX_COUNT or not 0 < a.seconds <= 3600:
        p.error(f"--units 1..3321, --hostile 1..{hostile.MAX_COUNT}, --seconds (0, 3600]")
    if not 1 <= a.repeats <= 10 or not 1 <= a.interval <= 300 or not 0 < a.timeout < a.interval:
        p.error("--repeats 1..10, --interval 1..300, 0 < --timeout < --interval")
    a.wardwatch_cpus = None
    if a.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            p.error(f"--pin needs two CPUs or more, this process may use {len(cpus)}")
        os.sched_setaffinity(0, cpus[1:])  # the lab and the hostile server inherit it
        a.wardwatch_cpus = {cpus[0]}
        print(f"pinned: wardwatch on CPU {cpus[0]}; lab, hostile server and bench on {cpus[1:]}", flush=True)
    if a.netns:
        enter_netns()
    with contextlib.ExitStack() as stack:
        d = a.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ww-hostile-")))
        d.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(Bench(a, d.absolute()).run())
        if a.json:
            a.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    bad = sum(r["hostile"]["hostile"]["bad_count"] for r in report["rounds"])
    print(json.dumps({"rounds": len(report["rounds"]), "bad": bad,
                      "ratios": [r["ratio"] for r in report["rounds"]]}))


if __name__ == "__main__":
    main()
