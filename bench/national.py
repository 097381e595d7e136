"""National scale: the lab at 3,321 units, wardwatch beside blackbox_exporter and a naive loop.

    python bench/national.py [--units 3321] [--minutes 5] [--kind-seconds 60] [--interval 30]
                             [--loop uvloop|asyncio] [--json FILE]

Processes (all on loopback): the lab (``python -m monitor lab``), the prober under test
(``python -m monitor run``, ``prometheus-blackbox-exporter`` or ``bench/naive_loop.py``),
and this script (orchestrator; for blackbox it also plays Prometheus). Each prober's CPU and
peak RSS are its own process's, read from /proc. The machine has 2 cores, so the probers
run one after the other (never at once) against the same lab and the same targets.

Phases:
  1. main: ``wardwatch run`` on the lab inventory trimmed to exactly 10 targets per unit
     (33,210 at 3,321 units) for --minutes: probes/s, schedule lateness (deltas of its own
     ``wardwatch_schedule_lateness_seconds`` histogram), CPU per 1,000 probes, peak RSS,
     /metrics render time (client wall + ``wardwatch_metrics_render_seconds``), store growth.
  2. per kind (http, https, tcp, icmp), the same targets for each prober, --kind-seconds each,
     one prober after the other: wardwatch, blackbox (one /probe per target per interval at
     a fixed phase, like Prometheus), naive loop. CPU per 1,000 probes and the ratios.
     wardwatch is measured after its first round (one interval): the first round's one-off
     work (a store row per new target, one DNS lookup per name) is in the main phase only.

The 10 targets per unit (from the lab's 13-ish): link icmp; vc_gov and vc_party icmp + tcp;
portal https; the first old domain's http redirect (checked without following it: plain
HTTP); email MX (dns) and SMTP STARTTLS (tcp); the portal's certificate (tls). Dropped:
the certificate file, the national procedures portal, the 2nd/3rd old domains. ICMP sends
one echo request per probe (the lab writes 2) so all three probers do the same work.

Name resolution: wardwatch asks the lab's nsd and caches answers for their TTL (300 s),
blackbox resolves every probe through the Go resolver and an /etc/hosts that lists the lab
names (bind-mounted in a private mount namespace: the host's file is untouched), and the
naive loop resolves once at start. None of them pays a DNS round trip per probe in steady
state.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.lab.plan import all_names, build_plan, select_units  # noqa: E402

KINDS = ("http", "https", "tcp", "icmp")
CLK = os.sysconf("SC_CLK_TCK")
# CPU s per 1,000 probes, the targets: wardwatch / blackbox at most this
BB_TARGET = {"http": 0.5, "https": 1.0, "tcp": 0.4, "icmp": 0.3}
NAIVE_TARGET = 1.2
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


# -- process helpers -------------------------------------------------------------------------
def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def proc_status(pid: int, key: str) -> int:
    """A kB value of /proc/<pid>/status (VmHWM: peak RSS, VmRSS: now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def spawn(cmd: list[str], log: Path, cpus: set[int] | None = None) -> subprocess.Popen[bytes]:
    """``cpus``: the child runs on these CPUs only (taskset execs it: same pid, its threads inherit them)."""
    if cpus is not None:
        cmd = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd]
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
                            start_new_session=True)


def stop(p: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def wait_for(pred: Any, what: str, limit: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    end = time.monotonic() + limit
    while not await pred():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        if time.monotonic() > end:
            raise RuntimeError(f"{what}: not ready within {limit:g}s")
        await asyncio.sleep(0.2)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- metrics ------------------------------------------------------------------------------------
def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


@dataclass
class Scrape:
    at: float
    probes: dict[str, float]  # by probe kind, all outcomes
    buckets: list[tuple[float, float]]  # (le, cumulative count)
    render: float
    wall: float
    size: int


async def scrape(http: aiohttp.ClientSession, url: str) -> Scrape:
    t0 = time.monotonic()
    async with http.get(url, headers={"Accept-Encoding": "gzip"}) as r:
        text = await r.text()
    wall = time.monotonic() - t0
    probes: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    render = 0.0
    for name, labels, value in parse_metrics(text):
        if name == "wardwatch_probes_total":
            probes[labels["probe"]] = probes.get(labels["probe"], 0.0) + value
        elif name == "wardwatch_schedule_lateness_seconds_bucket":
            buckets.append((float(labels["le"]), value))
        elif name == "wardwatch_metrics_render_seconds":
            render = value
    buckets.sort()
    return Scrape(t0, probes, buckets, render, wall, len(text))


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """histogram_quantile: linear interpolation inside the bucket (Prometheus' estimate)."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return 0.0
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
    return prev_le


def bucket_max(buckets: list[tuple[float, float]]) -> tuple[float, float]:
    """(lower, upper) bound of the highest non-empty bucket: the max lies in it."""
    prev_le, prev_c = 0.0, 0.0
    lo, hi = 0.0, 0.0
    for le, c in buckets:
        if c > prev_c:
            lo, hi = prev_le, le
        prev_le, prev_c = le, c
    return lo, hi


def delta_buckets(a: Scrape, b: Scrape) -> list[tuple[float, float]]:
    before = dict(a.buckets)
    return [(le, c - before.get(le, 0.0)) for le, c in b.buckets]


# -- inventories and target lists -----------------------------------------------------------
@dataclass
class Targets:
    by_kind: dict[str, list[str]] = field(default_factory=dict)
    checks: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)  # kind -> (unit, check)


def trim_inventory(doc: dict[str, Any]) -> dict[str, Any]:
    """The lab inventory cut to exactly 10 targets per unit (see the module docstring)."""
    d = doc["defaults"]
    d["templates"].pop("procedures", None)
    d["probes"]["icmp"] = {**d["probes"].get("icmp", {}), "count": 1}
    d.get("services", {}).get("link", {}).pop("icmp", None)  # the link pings once too
    d["probes"]["http"] = {**d["probes"].get("http", {}), "follow_redirects": False}
    for u in doc["units"]:
        u["merged_from"] = u["merged_from"][:1]
        u["merged_from"][0]["domains"] = u["merged_from"][0]["domains"][:1]
        u["certs"].pop("files", None)
    return doc


def kind_targets(doc: dict[str, Any]) -> Targets:
    """The HTTP, HTTPS, TCP and ICMP targets of the trimmed inventory, one list per kind."""
    old_url = doc["defaults"]["templates"]["old_domain_url"]
    t = Targets({k: [] for k in KINDS}, {k: [] for k in KINDS})
    for u in doc["units"]:
        code = u["code"]
        portal = u["portal"]["url"]
        old = old_url.replace("{domain}", u["merged_from"][0]["domains"][0])
        t.by_kind["https"].append(portal)
        t.checks["https"].append((code, {"service": "portal", "probe": "http", "target": portal}))
        t.by_kind["http"].append(old)
        t.checks["http"].append((code, {"service": "portal", "probe": "http", "target": old,
                                        "expect_redirect_to": portal, "follow_redirects": False}))
        for svc in ("link", "vc_gov", "vc_party"):
            addr = u[svc]["address"]
            t.by_kind["icmp"].append(addr)
            t.checks["icmp"].append((code, {"service": svc, "probe": "icmp", "target": addr}))
        for svc in ("vc_gov", "vc_party"):
            # The lab's room port is the H.323 call-signalling port (older labs: tcp_ports).
            port = (u[svc].get("tcp_ports") or u[svc]["h323"])[0]
            tgt = f"{u[svc]['address']}:{port}"
            t.by_kind["tcp"].append(tgt)
            t.checks["tcp"].append((code, {"service": svc, "probe": "tcp", "target": tgt}))
    return t


def kind_inventory(doc: dict[str, Any], checks: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    by_unit: dict[int, list[dict[str, Any]]] = {}
    for code, c in checks:
        by_unit.setdefault(code, []).append(c)
    defaults = {k: v for k, v in doc["defaults"].items() if k != "templates"}
    units = [{"code": u["code"], "name": u["name"], "type": u["type"], "checks": by_unit.get(u["code"], [])}
             for u in doc["units"]]
    return {"province": doc["province"], "monitor": doc["monitor"], "defaults": defaults, "units": units}


def blackbox_conf(ca: str, timeout: float) -> str:
    to = f"{timeout:g}s"
    return f"""modules:
  http: {{prober: http, timeout: {to}, http: {{preferred_ip_protocol: ip4, ip_protocol_fallback: false,
         follow_redirects: false, valid_status_codes: [301, 302, 307, 308]}}}}
  https: {{prober: http, timeout: {to}, http: {{preferred_ip_protocol: ip4, ip_protocol_fallback: false,
          tls_config: {{ca_file: {ca}}}}}}}
  tcp: {{prober: tcp, timeout: {to}, tcp: {{preferred_ip_protocol: ip4, ip_protocol_fallback: false}}}}
  icmp: {{prober: icmp, timeout: {to}, icmp: {{preferred_ip_protocol: ip4, ip_protocol_fallback: false}}}}
"""


# -- the phases -----------------------------------------------------------------------------
@dataclass
class Result:
    probes: float = 0.0
    ok: float = 0.0
    cpu: float = 0.0
    seconds: float = 0.0
    rss_kib: int = 0

    @property
    def per_1k(self) -> float:
        return self.cpu / self.probes * 1000 if self.probes else float("nan")


class Bench:
    def __init__(self, args: argparse.Namespace, d: Path) -> None:
        self.args = args
        self.d = d
        self.http: aiohttp.ClientSession | None = None
        self.lab: subprocess.Popen[bytes] | None = None
        self.labdir = d / "lab"
        self.report: dict[str, Any] = {"args": {k: (str(v) if isinstance(v, Path) else v)
                                                for k, v in vars(args).items()}}

    @property
    def timeout(self) -> float:
        return min(5.0, self.args.interval / 4)

    async def start_lab(self) -> None:
        a = self.args
        spacing = min(2.0, a.interval / 8)
        cmd = [sys.executable, "-m", "monitor", "--log-level", "warning", "lab", "--units", str(a.units),
               "--dir", str(self.labdir), "--no-nft", "--interval", f"{a.interval:g}s",
               "--timeout", f"{self.timeout:g}s", "--recheck-spacing", f"{spacing:g}s"]
        for name in ("https", "http", "smtp", "vc", "dns"):
            cmd += [f"--{name}-port", "0"]
        t0 = time.monotonic()
        self.lab = spawn(cmd, self.d / "lab.log")
        state = self.labdir / "lab-state.json"

        async def ready() -> bool:
            return state.exists()
        await wait_for(ready, "lab", 900, self.lab)
        self.report["lab_start_seconds"] = time.monotonic() - t0
        print(f"lab: {a.units} units up in {time.monotonic() - t0:.0f}s (pid {self.lab.pid})", flush=True)

    def prepare(self) -> None:
        doc = yaml.safe_load((self.labdir / "lab-inventory.yaml").read_text())
        doc = trim_inventory(doc)
        (self.d / "national.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
        self.targets = kind_targets(doc)
        self.ca = doc["defaults"]["ca_file"]
        for k in KINDS:
            (self.d / f"ww-{k}.yaml").write_text(yaml.safe_dump(kind_inventory(doc, self.targets.checks[k]),
                                                                allow_unicode=True, sort_keys=False))
        names = all_names(build_plan(select_units(self.args.units, 79)))
        need = {urlsplit(u).hostname for k in ("http", "https") for u in self.targets.by_kind[k]}
        self.hosts = {n: a for n, a in names.items() if n in need}
        (self.d / "hosts").write_text("127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, a in self.hosts.items()))
        for k in KINDS:
            (self.d / f"naive-{k}.json").write_text(json.dumps({
                "kind": k, "targets": self.targets.by_kind[k], "ca_file": self.ca, "hosts": self.hosts}))
        (self.d / "blackbox.yml").write_text(blackbox_conf(self.ca, self.timeout))
        counts = {k: len(v) for k, v in self.targets.by_kind.items()}
        self.report["targets_per_kind"] = counts
        print(f"targets: national inventory {self.d / 'national.yaml'}; per kind {counts}", flush=True)

    # wardwatch -------------------------------------------------------------------------------
    async def wardwatch(self, inventory: Path, seconds: float, name: str, main: bool = False) -> dict[str, Any]:
        assert self.http is not None
        port = free_port()
        store = self.d / f"{name}.db"
        cmd = [sys.executable, "-m", "monitor", "--log-level", "warning", "run", "-c", str(inventory),
               "--listen", f"127.0.0.1:{port}", "--store", str(store), "--loop", self.args.loop]
        url = f"http://127.0.0.1:{port}/metrics"
        t_spawn = time.monotonic()
        p = spawn(cmd, self.d / f"{name}.log")
        http = self.http
        try:
            async def up() -> bool:
                try:
                    async with http.get(url.replace("/metrics", "/healthz")) as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False
            await wait_for(up, f"wardwatch {name}", 300, p)
            started = time.monotonic()
            # Per-kind phases measure the steady state: after the first round, whose one-off
            # work (a store row per new target, a DNS cache miss per name) blackbox and the
            # naive loop never do. The main phase measures from the start, first round included.
            await asyncio.sleep(self.args.warmup + (0 if main else self.args.interval + self.timeout))
            s0 = await scrape(http, url)
            c0 = proc_cpu(p.pid)
            first_round_end = started + self.args.interval + 2 * self.timeout + 5
            size_at: tuple[float, int] | None = None
            end = s0.at + seconds
            rss_now = 0
            while time.monotonic() < end:
                await asyncio.sleep(min(1.0, max(0.0, end - time.monotonic())))
                rss_now = max(rss_now, proc_status(p.pid, "VmRSS"))
                if size_at is None and time.monotonic() >= first_round_end:
                    size_at = (time.monotonic(), store_size(store))
            c1 = proc_cpu(p.pid)
            s1 = await scrape(http, url)
            size_end = (time.monotonic(), store_size(store))
            out: dict[str, Any] = {"startup_seconds": started - t_spawn}
            res = Result(sum(s1.probes.values()) - sum(s0.probes.values()), 0, c1 - c0, s1.at - s0.at,
                         proc_status(p.pid, "VmHWM"))
            out.update(probes=res.probes, cpu=res.cpu, seconds=res.seconds, cpu_per_1k=res.per_1k,
                       probes_per_second=res.probes / res.seconds, peak_rss_mib=res.rss_kib / 1024,
                       rss_while_probing_mib=rss_now / 1024,
                       by_kind={k: s1.probes.get(k, 0) - s0.probes.get(k, 0) for k in s1.probes})
            if main:
                lat = delta_buckets(s0, s1)
                out["lateness"] = {"p50": quantile(0.5, lat), "p99": quantile(0.99, lat),
                                   "max_bucket": bucket_max(lat), "count": lat[-1][1] if lat else 0,
                                   "buckets": lat}
                walls, renders = [], []
                for _ in range(self.args.scrapes):
                    s = await scrape(http, url)
                    walls.append(s.wall)
                    renders.append(s.render)  # the render before this one: read all of them
                out["metrics"] = {"wall_median": statistics.median(walls), "wall_max": max(walls),
                                  "render_median": statistics.median(renders[1:] or renders),
                                  "render_max": max(renders[1:] or renders), "bytes": s1.size}
                if size_at is None:
                    size_at = (s0.at, store_size(store))
                span = size_end[0] - size_at[0]
                out["store"] = {"bytes_end": size_end[1], "bytes_after_first_round": size_at[1],
                                "growth_per_hour": (size_end[1] - size_at[1]) / span * 3600 if span > 0 else 0.0,
                                "steady_seconds": span}
            return out
        finally:
            stop(p)

    # blackbox, driven like Prometheus ----------------------------------------------------------
    async def blackbox_kind(self, bb: _Pid, port: int, kind: str, seconds: float) -> Result:
        targets = self.targets.by_kind[kind]
        interval = self.args.interval
        order = sorted((zlib.crc32(t.encode()) / 2**32 * interval, t) for t in targets)
        conn = aiohttp.TCPConnector(limit=0, keepalive_timeout=interval * 2)
        counts = {"n": 0, "ok": 0}
        window = {"on": False}
        tasks: set[asyncio.Task[None]] = set()
        url = f"http://127.0.0.1:{port}/probe"
        headers = {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
                   "Accept-Encoding": "gzip", "X-Prometheus-Scrape-Timeout-Seconds": f"{self.timeout + 0.5:g}"}
        async with aiohttp.ClientSession(connector=conn) as http:
            async def one(t: str) -> None:
                try:
                    async with http.get(url, params={"module": kind, "target": t}, headers=headers) as r:
                        ok = "probe_success 1" in await r.text()
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if window["on"]:
                    counts["n"] += 1
                    counts["ok"] += ok

            loop = asyncio.get_running_loop()
            t0 = loop.time()
            w0 = t0 + self.args.warmup
            end = w0 + seconds
            c0 = 0.0
            rnd = 0
            done = False
            while not done:
                for phase, t in order:
                    due = t0 + rnd * interval + phase
                    if due >= end:
                        done = True
                        break
                    now = loop.time()
                    if not window["on"] and now >= w0:
                        window["on"], c0, w0 = True, proc_cpu(bb.pid), now
                    if due > now:
                        await asyncio.sleep(due - now)
                    task = asyncio.create_task(one(t))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                rnd += 1
            if loop.time() < end:
                await asyncio.sleep(end - loop.time())
            if not window["on"]:
                c0, w0 = proc_cpu(bb.pid), loop.time()
            c1, w1 = proc_cpu(bb.pid), loop.time()
            window["on"] = False
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return Result(counts["n"], counts["ok"], c1 - c0, w1 - w0, proc_status(bb.pid, "VmHWM"))

    async def naive_kind(self, kind: str, seconds: float) -> Result:
        cmd = [sys.executable, str(ROOT / "bench" / "naive_loop.py"), str(self.d / f"naive-{kind}.json"),
               "--interval", f"{self.args.interval:g}", "--seconds", f"{seconds:g}",
               "--warmup", f"{self.args.warmup:g}", "--loop", self.args.loop]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
        async with asyncio.timeout(seconds + self.args.warmup + 120):
            out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"naive loop {kind} exited with {proc.returncode}")
        r = json.loads(out.decode().strip().splitlines()[-1])
        return Result(r["ok"] + r["fail"], r["ok"], r["cpu"], r["seconds"], r["peak_rss_kib"])

    async def run(self) -> dict[str, Any]:
        a = self.args
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            self.http = http
            await self.start_lab()
            self.prepare()
            if a.minutes > 0:
                print(f"phase main: wardwatch on {self.d / 'national.yaml'} for {a.minutes:g} min", flush=True)
                self.report["main"] = await self.wardwatch(self.d / "national.yaml", a.minutes * 60, "main", True)
                print_main(self.report)
            if not a.kinds:
                if self.lab is not None:
                    stop(self.lab, 60)
                return self.report
            bport = free_port()
            bb_cmd = ["unshare", "-m", "sh", "-c",
                      'mount --bind "$0" /etc/hosts && exec "$@"', str(self.d / "hosts"),
                      "/usr/bin/prometheus-blackbox-exporter", f"--config.file={self.d / 'blackbox.yml'}",
                      f"--web.listen-address=127.0.0.1:{bport}", "--log.level=error"]
            bb = spawn(bb_cmd, self.d / "blackbox.log")

            async def bb_up() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{bport}/metrics") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False
            kinds: dict[str, Any] = {}
            self.report["kinds"] = kinds
            try:
                await wait_for(bb_up, "blackbox", 60, bb)
                bb_pid = child_pid(bb.pid)
                for k in a.kinds:
                    print(f"phase {k}: {len(self.targets.by_kind[k])} targets, {a.kind_seconds:g}s per prober",
                          flush=True)
                    ww = await self.wardwatch(self.d / f"ww-{k}.yaml", a.kind_seconds, f"ww-{k}")
                    bbr = await self.blackbox_kind(_Pid(bb_pid), bport, k, a.kind_seconds)
                    nv = await self.naive_kind(k, a.kind_seconds)
                    kinds[k] = {"wardwatch": ww, "blackbox": vars(bbr) | {"cpu_per_1k": bbr.per_1k},
                                "naive": vars(nv) | {"cpu_per_1k": nv.per_1k}}
                    print_kind(k, kinds[k], flush=True)
                self.report["blackbox_peak_rss_mib"] = proc_status(bb_pid, "VmHWM") / 1024
            finally:
                stop(bb)
                if self.lab is not None:
                    self.report["lab_cpu_seconds"] = proc_cpu(self.lab.pid)
                    stop(self.lab, 60)
        return self.report


@dataclass
class _Pid:
    pid: int


def child_pid(pid: int) -> int:
    """blackbox runs under ``unshare sh -c 'mount ... && exec'``: the exec keeps the pid of sh,
    but unshare itself forks only with --fork, so the pid is blackbox's once exec'd."""
    for _ in range(50):
        try:
            if Path(f"/proc/{pid}/exe").resolve().name.startswith("prometheus-blackbox"):
                return pid
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"pid {pid} is not blackbox_exporter")


def store_size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


# -- printing -------------------------------------------------------------------------------
def print_main(report: dict[str, Any]) -> None:
    m = report["main"]
    lat, met, st = m["lateness"], m["metrics"], m["store"]
    lo, hi = lat["max_bucket"]
    print(f"main: {m['probes']:.0f} probes in {m['seconds']:.0f}s = {m['probes_per_second']:.0f}/s; "
          f"CPU {m['cpu']:.1f}s = {m['cpu_per_1k']:.3f} s/1k; RSS {m['rss_while_probing_mib']:.0f} MiB while "
          f"probing, peak {m['peak_rss_mib']:.0f} MiB (after the timed /metrics renders)", flush=True)
    print(f"main: probes by kind {m['by_kind']}", flush=True)
    print(f"main: lateness p50 {lat['p50'] * 1000:.1f} ms, p99 {lat['p99'] * 1000:.1f} ms, "
          f"max in ({lo * 1000:g}, {hi * 1000:g}] ms over {lat['count']:.0f} starts", flush=True)
    print(f"main: /metrics wall median {met['wall_median'] * 1000:.0f} ms max {met['wall_max'] * 1000:.0f} ms; "
          f"render median {met['render_median'] * 1000:.0f} ms max {met['render_max'] * 1000:.0f} ms; "
          f"{met['bytes'] / 1e6:.1f} MB", flush=True)
    print(f"main: store {st['bytes_end'] / 1e6:.1f} MB; growth {st['growth_per_hour'] / 1e6:.2f} MB/h "
          f"over {st['steady_seconds']:.0f}s after the first round", flush=True)


def print_kind(k: str, r: dict[str, Any], flush: bool = True) -> None:
    ww, bb, nv = r["wardwatch"], r["blackbox"], r["naive"]
    print(f"  {k:5} wardwatch {ww['cpu_per_1k']:.3f} s/1k ({ww['probes']:.0f} probes, RSS "
          f"{ww['peak_rss_mib']:.0f} MiB) | blackbox {bb['cpu_per_1k']:.3f} ({bb['probes']:.0f}, ok {bb['ok']:.0f}) | "
          f"naive {nv['cpu_per_1k']:.3f} ({nv['probes']:.0f}, ok {nv['ok']:.0f}) | ww/bb "
          f"{ww['cpu_per_1k'] / bb['cpu_per_1k']:.2f} ww/naive {ww['cpu_per_1k'] / nv['cpu_per_1k']:.2f}",
          flush=flush)


def print_table(report: dict[str, Any]) -> None:
    kinds = report.get("kinds", {})
    if not kinds:
        return
    print("\n| kind | targets | wardwatch CPU s/1k | blackbox CPU s/1k | naive CPU s/1k | ww/bb (target) "
          "| ww/naive (target 1.2) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k, r in kinds.items():
        ww, bb, nv = (r[x]["cpu_per_1k"] for x in ("wardwatch", "blackbox", "naive"))
        print(f"| {k} | {report['targets_per_kind'][k]:,} | {ww:.3f} | {bb:.3f} | {nv:.3f} | "
              f"**{ww / bb:.2f}** ({BB_TARGET[k]}) | **{ww / nv:.2f}** |")
    print(f"\nblackbox peak RSS {report.get('blackbox_peak_rss_mib', 0):.0f} MiB; naive peak RSS "
          + ", ".join(f"{k} {r['naive']['rss_kib'] / 1024:.0f}" for k, r in kinds.items()) + " MiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--units", type=int, default=3321, help="lab units (1..3321; 10 targets each)")
    p.add_argument("--minutes", type=float, default=5.0, help="main phase length (0..60; 0 skips it)")
    p.add_argument("--kind-seconds", type=float, default=60.0, help="per-kind phase length, per prober")
    p.add_argument("--kinds", type=lambda s: tuple(k for k in s.split(",") if k), default=KINDS,
                   help="per-kind phases (default http,https,tcp,icmp; '' skips them)")
    p.add_argument("--interval", type=float, default=30.0, help="probe interval (default 30s)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds after start before measuring")
    p.add_argument("--scrapes", type=int, default=5, help="/metrics scrapes timed at the end of the main phase")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None, help="write the full report here")
    a = p.parse_args()
    if not 1 <= a.units <= 3321 or not 0 <= a.minutes <= 60 or not 0 < a.kind_seconds <= 600:
        p.error("--units 1..3321, --minutes 0..60, --kind-seconds (0, 600]")
    if not 1 <= a.interval <= 300 or not 1 <= a.scrapes <= 50 or any(k not in KINDS for k in a.kinds):
        p.error("--interval 1..300, --scrapes 1..50, --kinds from http,https,tcp,icmp")
    with contextlib.ExitStack() as stack:
        d = a.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ww-national-")))
        d.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(Bench(a, d.absolute()).run())
        print_table(report)
        if a.json:
            a.json.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
