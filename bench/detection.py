"""Detection time: from a unit's link cut in the lab to the notification at a webhook receiver.

    python bench/detection.py --path prometheus --units 30 --faults 6 --spacing 20

Prometheus path: the lab (``--units`` units, probe interval ``--interval``, timeout, re-checks),
a real ``wardwatch run`` on its inventory, a real Prometheus scraping it every ``--scrape`` and
evaluating every ``--eval`` the shipped rules (alerts/rules/*.yml, shipped `for:`), a real
Alertmanager with the shipped example configuration (alerts/alertmanager.yml: group_wait 30 s)
whose receivers point at a webhook receiver in this process. ``--faults`` link cuts on distinct
clean units (no built-in imperfection), ``--spacing`` seconds apart so they land at every phase
of the probe schedule; each is timed from the cut to its WardwatchUnitIsolated notification,
then restored. Notifications about units that were not cut (other than the lab's built-in
imperfections) are counted as false.

    python bench/detection.py --path builtin --units 40 --faults 10 --spacing 13 --netns
    python bench/detection.py --path builtin --units 168 --soak-minutes 30 --drop 0.05

Built-in path: the same lab and faults, a real ``wardwatch run`` whose own alert engine sends
to a webhook receiver in this process (HMAC-signed), with the shipped engine policy and
delivery timing (the inventory's ``alerting:`` names the receiver and nothing else); each cut
is timed to its ``unit_isolated`` firing notification. For the cut units anything else firing
(a child's ``target_down``, a second ``unit_isolated``) is false too.

Soak (``--soak-minutes``, built-in path): no fault is injected; after ``--settle`` seconds (the
first rounds: the lab's built-in imperfections page then) every firing notification for
``--soak-minutes`` is counted, except those of the imperfections themselves (by unit, kind and
target, from the lab's ``expected`` failures). ``--drop P``: every packet to or from one of the
lab's addresses is dropped with probability P (nftables ``numgen random`` in a table of the
benchmark's own). ``--netns`` (implied by ``--drop``): the benchmark first moves into a network
namespace of its own (loopback only), so its lab, wardwatch and the drop rule share nothing with
other labs on the host (labs share one address plan: another lab's link cut would cut ours).
``--record FILE`` keeps every notification received (JSON lines).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor import cli  # noqa: E402
from monitor.inventory import load_inventory  # noqa: E402
from monitor.lab import imperfections, plan  # noqa: E402
from monitor.lab.config import LabConfig, Ports, Timing  # noqa: E402
from monitor.lab.runner import Lab  # noqa: E402
from tests.alerts.receivers import Received, Receiver  # noqa: E402
from tests.peers import prometheus as prom  # noqa: E402
from tests.peers.alertmanager import (  # noqa: E402
    EXAMPLE,
    Notification,
    WebhookReceiver,
    alertmanager,
    render_config,
    webhook_receiver,
)
from tests.peers.wardwatch import wardwatch_run  # noqa: E402


@dataclass
class Result:
    path: str
    detections: list[float] = field(default_factory=list)  # seconds, one per fault
    missed: list[int] = field(default_factory=list)  # unit codes never notified in time
    false_notifications: int = 0
    notes: list[str] = field(default_factory=list)


def _started_after(n: Notification, code: str, at: datetime, alertname: str) -> bool:
    return n.status == "firing" and any(
        a["labels"].get("unit_code") == code
        and a["labels"].get("alertname") == alertname
        and datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")) >= at
        for a in n.alerts
    )


class Notifications(Protocol):
    """What ``measure`` needs of a path's receiver."""

    async def fired(self, code: str, at: datetime, t0: float, within: float) -> float:
        """Seconds from ``t0`` (monotonic) to the unit's isolation notification (TimeoutError)."""
        ...

    def false(self, cut: set[str], imperfect: set[str]) -> list[str]:
        """Descriptions of the firing notifications that name no cut or imperfect unit."""
        ...


class AlertmanagerNotifications:
    def __init__(self, hook: WebhookReceiver, alertname: str) -> None:
        self.hook, self.alertname = hook, alertname

    async def fired(self, code: str, at: datetime, t0: float, within: float) -> float:
        await self.hook.next(lambda n: _started_after(n, code, at, self.alertname), within=within)
        return time.monotonic() - t0

    def false(self, cut: set[str], imperfect: set[str]) -> list[str]:
        out = []
        for n in self.hook.received:
            units = {a["labels"].get("unit_code", "") for a in n.alerts}
            if n.status == "firing" and not units <= (cut | imperfect):
                out.append(f"false: {n.receiver} {n.alertnames} units {sorted(units)}")
        return out


async def measure(lab: Lab, hook: Notifications, args: argparse.Namespace, result: Result) -> None:
    """Cut ``--faults`` clean units' links ``--spacing`` s apart; time each to its notification."""
    bad = set(imperfections.assign(len(lab.units)))
    # From the end of the plan: labs share the loopback address plan, so a link fault injected
    # by another lab on this host (tests use small labs: the first units) would cut ours too.
    clean = [u for i, u in reversed(list(enumerate(lab.units))) if i not in bad]
    if len(clean) < args.faults:
        raise SystemExit(f"only {len(clean)} clean units for {args.faults} faults: raise --units")
    chosen = clean[: args.faults]
    imperfect_codes = {str(lab.units[i].code) for i in bad}

    async def one(i: int, code: str) -> None:
        await asyncio.sleep(i * args.spacing)  # the schedule of the experiment, not a wait for an event
        at = datetime.now(UTC)
        t0 = time.monotonic()
        await asyncio.to_thread(cli.main, ["lab", "fault", code, "link", "down", "--lab-dir", str(lab.dir)])
        try:
            result.detections.append(await hook.fired(code, at, t0, args.max_wait))
            print(f"  unit {code}: {result.detections[-1]:.1f} s", flush=True)
        except TimeoutError:
            result.missed.append(int(code))
            print(f"  unit {code}: no notification within {args.max_wait:.0f} s", flush=True)
        finally:
            await asyncio.to_thread(cli.main, ["lab", "fault", code, "link", "restore", "--lab-dir", str(lab.dir)])

    await asyncio.gather(*(one(i, str(u.code)) for i, u in enumerate(chosen)))
    for note in hook.false({str(u.code) for u in chosen}, imperfect_codes):
        result.false_notifications += 1
        result.notes.append(note)


async def prometheus_path(args: argparse.Namespace, tmp: Path) -> Result:
    result = Result("prometheus")
    lab = Lab(_lab_config(args, tmp))
    await lab.start()
    try:
        inv = load_inventory(lab.inventory_path)
        async with webhook_receiver() as hook, wardwatch_run(tmp / "ww", lab.inventory_path, ready_timeout=300) as ww:
            # The shipped configuration: shipped group timings, only the receivers' address changed.
            am_text = render_config(EXAMPLE, hook.url, group_wait=None, group_interval=None)
            with alertmanager(tmp / "am", am_text) as am:
                cfg = prom.config(scrape_targets=[ww.listen], alertmanagers=[f"127.0.0.1:{am.port}"],
                                  rule_files=sorted(prom.RULES.glob("*.yml")),
                                  scrape_interval=args.scrape, evaluation_interval=args.eval)
                with prom.prometheus(tmp / "prom", cfg) as p:
                    # Baseline: Prometheus has scraped every target of the lab at least once.
                    async with asyncio.timeout(args.max_wait):
                        while True:
                            got = await prom.query(p.url, "count(wardwatch_target_state >= 0)")
                            if got and int(float(got[0]["value"][1])) >= len(inv.targets) * 0.9:
                                break
                            await asyncio.sleep(1)  # Prometheus has no push to await
                    print(f"prometheus path: {len(lab.units)} units, {len(inv.targets)} targets, "
                          f"probe {args.interval:g} s, scrape {args.scrape}, eval {args.eval}", flush=True)
                    await measure(lab, AlertmanagerNotifications(hook, "WardwatchUnitIsolated"), args, result)
    finally:
        await lab.stop()
    return result


# -- built-in path -------------------------------------------------------------------------------
HOOK_ENV = "WW_BENCH_HOOK_KEY"
HOOK_KEY = "bench-detection-hmac-key"
# The receiver and nothing else: the engine's policy and the delivery timing are the shipped ones.
ALERTING = (
    "\nalerting:\n  receivers:\n"
    '    hook: {{type: webhook, url: "{url}/hook", hmac_key_env: ' + HOOK_ENV + "}}\n"
    "  default_receivers: [hook]\n"
)


def _body(r: Received) -> dict[str, Any]:
    body: dict[str, Any] = r.json()
    return body


def _describe(r: Received, zero: float) -> str:
    b = _body(r)
    a = b["alert"]
    return (f"+{r.at - zero:.0f}s {b['event']} {a['kind']} unit {a['unit_code']} {a.get('service')} "
            f"{a.get('target')} reason {a.get('reason')}: {a.get('message')} (since {a.get('started_at')})")


class BuiltinNotifications:
    def __init__(self, rx: Receiver) -> None:
        self.rx = rx
        self.zero = time.monotonic()

    async def fired(self, code: str, at: datetime, t0: float, within: float) -> float:
        def match() -> Received | None:
            for r in self.rx.requests:
                b = _body(r)
                if (r.at >= t0 and b["event"] == "firing" and b["alert"]["kind"] == "unit_isolated"
                        and str(b["alert"]["unit_code"]) == code):
                    return r
            return None

        cond = self.rx._arrived  # the receiver's own arrival signal: no polling
        assert cond is not None
        async with asyncio.timeout(within), cond:
            await cond.wait_for(lambda: match() is not None)
        got = match()
        assert got is not None
        return got.at - t0

    def false(self, cut: set[str], imperfect: set[str]) -> list[str]:
        out, isolated = [], set()
        for r in self.rx.requests:
            b = _body(r)
            if b["event"] != "firing":
                continue
            code, kind = str(b["alert"]["unit_code"]), b["alert"]["kind"]
            if code in imperfect and code not in cut:
                continue
            if code in cut and kind == "unit_isolated" and code not in isolated:
                isolated.add(code)
                continue
            out.append("false: " + _describe(r, self.zero))
        return out


def _imperfection(b: dict[str, Any], expected: dict[int, set[str]]) -> bool:
    """A notification the lab's built-in imperfections cause (by unit, kind and target)."""
    a = b["alert"]
    code = a["unit_code"]
    if code not in expected or a.get("service") not in ("portal", "certs"):
        return False
    kind = a["kind"]
    if kind in ("cert_expiring", "cert_expired"):
        return True
    if kind in ("target_down", "redirect_broken"):
        key = str(a["id"]).split(":", 1)[1]
        return key in expected[code]
    return False


async def soak(lab: Lab, rx: Receiver, args: argparse.Namespace, result: Result, ready_at: float) -> None:
    """No fault: wait ``--settle`` s, then count every firing notification for ``--soak-minutes``
    other than the imperfections' own."""
    expected: dict[int, set[str]] = {}
    for e in lab.expected:
        expected.setdefault(int(e.unit_code), set()).add(e.key)
    start = ready_at + args.settle
    end = start + args.soak_minutes * 60
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    n0 = len(rx.requests)
    print(f"soak: settled; counting for {args.soak_minutes:g} min ({n0} notifications so far, "
          f"{sum(_imperfection(_body(r), expected) for r in rx.requests)} of them the imperfections')",
          flush=True)
    last = n0
    while time.monotonic() < end:
        await asyncio.sleep(min(60.0, max(0.0, end - time.monotonic())))
        new = rx.requests[last:]
        last += len(new)
        for r in new:
            b = _body(r)
            if b["event"] == "firing" and not _imperfection(b, expected):
                print("  " + _describe(r, ready_at), flush=True)
        print(f"  {((time.monotonic() - start) / 60):.1f} min: {len(rx.requests) - n0} notifications since "
              f"settled", flush=True)
    for r in rx.requests:
        b = _body(r)
        inside = start <= r.at <= end
        if b["event"] != "firing":
            continue
        if _imperfection(b, expected):
            if inside:
                result.notes.append("imperfection (excluded): " + _describe(r, ready_at))
            continue
        if inside:
            result.false_notifications += 1
            result.notes.append("false: " + _describe(r, ready_at))
        elif r.at < start:
            result.notes.append("during settle (not counted): " + _describe(r, ready_at))
    kinds: dict[str, int] = {}
    for r in rx.requests:
        b = _body(r)
        if start <= r.at <= end:
            k = f"{b['event']} {b['alert']['kind']}"
            kinds[k] = kinds.get(k, 0) + 1
    result.notes.append(f"all notifications inside the window, by event and kind: {kinds or 'none'}")


class PacketDrop:
    """Every packet to or from one of the lab's addresses dropped with probability ``share``
    (nftables ``numgen random``), in a table of the benchmark's own, deleted at the end."""

    def __init__(self, lab: Lab, share: float) -> None:
        self.table = f"wardwatch_bench_drop_{os.getpid()}"
        addrs = [plan.address(i, role) for i in range(len(lab.units)) for role in plan.ROLES]
        addrs.append(plan.PROCEDURES_ADDRESS)
        pct = round(share * 100)
        if not 0 < pct < 100 or abs(pct - share * 100) > 1e-9:
            raise SystemExit("--drop: a whole percentage between 0.01 and 0.99")
        self.script = (
            f"table inet {self.table} {{\n"
            f"  set lab {{ type ipv4_addr; elements = {{ {', '.join(addrs)} }}; }}\n"
            f"  chain input {{\n    type filter hook input priority -20; policy accept;\n"
            f"    ip daddr @lab numgen random mod 100 < {pct} drop\n"
            f"    ip saddr @lab numgen random mod 100 < {pct} drop\n  }}\n}}\n")

    def _nft(self, script: str) -> None:
        subprocess.run(["nft", "-f", "-"], input=script.encode(), check=True, capture_output=True)

    def start(self) -> None:
        self._nft(self.script)

    def stop(self) -> None:
        self._nft(f"delete table inet {self.table}\n")


def enter_netns() -> None:
    """Move this process (and what it starts from now on) into a new network namespace with its
    loopback up: nothing outside sees our addresses, packet filter or listeners."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
        raise SystemExit(f"--netns: unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())} (needs root)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


async def builtin_path(args: argparse.Namespace, tmp: Path) -> Result:
    result = Result("builtin" if not args.soak_minutes else "builtin-soak")
    lab = Lab(_lab_config(args, tmp))
    await lab.start()
    drop = PacketDrop(lab, args.drop) if args.drop else None
    rx = Receiver(key=HOOK_KEY)
    await rx.start()
    try:
        if drop is not None:
            await asyncio.to_thread(drop.start)
        inventory = tmp / "inventory.yaml"
        inventory.write_text(lab.inventory_path.read_text() + ALERTING.format(url=rx.url))
        inv = load_inventory(inventory)
        os.environ[HOOK_ENV] = HOOK_KEY
        async with wardwatch_run(tmp / "ww", inventory, ready_timeout=600):
            ready_at = time.monotonic()
            print(f"builtin path: {len(lab.units)} units, {len(inv.targets)} targets, probe {args.interval:g} s, "
                  f"timeout {args.timeout:g} s, {args.rechecks} re-checks {args.recheck_spacing:g} s apart, "
                  f"drop {args.drop:.0%}, netns {args.netns}", flush=True)
            if args.soak_minutes:
                await soak(lab, rx, args, result, ready_at)
            else:
                await measure(lab, BuiltinNotifications(rx), args, result)
    finally:
        if args.record:
            lines = "".join(json.dumps({**_body(r), "received_monotonic": round(r.at, 3)}, ensure_ascii=False) + "\n"
                            for r in rx.requests)
            await asyncio.to_thread(Path(args.record).write_text, lines, encoding="utf-8")
        await rx.stop()
        if drop is not None:
            await asyncio.to_thread(drop.stop)
        await lab.stop()
    return result


def _lab_config(args: argparse.Namespace, tmp: Path) -> LabConfig:
    return LabConfig(
        directory=tmp / "lab", units=args.units,
        ports=Ports(https=0, http=0, smtp=0, vc=0, dns=0, control=0),
        timing=Timing(interval=args.interval, timeout=args.timeout, rechecks=args.rechecks,
                      recheck_spacing=args.recheck_spacing),
        nft_table=f"wardwatch_bench_detect_{os.getpid()}",
        snmp=False,  # routers answer ping: the link target is icmp
    )


PATHS: dict[str, Callable[[argparse.Namespace, Path], Coroutine[object, object, Result]]] = {
    "prometheus": prometheus_path,
    "builtin": builtin_path,
}


def report(r: Result, args: argparse.Namespace) -> None:
    d = sorted(r.detections)
    if d:
        print(f"{r.path}: {len(d)}/{args.faults} detected; p50 {statistics.median(d):.1f} s, "
              f"min {d[0]:.1f} s, max {d[-1]:.1f} s; missed {len(r.missed)}; "
              f"false notifications {r.false_notifications}")
    else:
        print(f"{r.path}: nothing detected; missed {r.missed}")
    for note in r.notes:
        print("  " + note)
    print(json.dumps({"path": r.path, "detections": [round(x, 2) for x in d], "missed": r.missed,
                      "false_notifications": r.false_notifications, "units": args.units,
                      "interval": args.interval, "scrape": args.scrape, "eval": args.eval}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", choices=sorted(PATHS), default="prometheus")
    ap.add_argument("--units", type=int, default=30)
    ap.add_argument("--faults", type=int, default=6)
    ap.add_argument("--spacing", type=float, default=20.0, help="seconds between fault injections")
    ap.add_argument("--interval", type=float, default=30.0, help="probe interval (s)")
    ap.add_argument("--timeout", type=float, default=5.0, help="probe timeout (s)")
    ap.add_argument("--rechecks", type=int, default=2)
    ap.add_argument("--recheck-spacing", type=float, default=2.0)
    ap.add_argument("--scrape", default="15s", help="Prometheus scrape interval")
    ap.add_argument("--eval", default="15s", help="Prometheus evaluation interval")
    ap.add_argument("--max-wait", type=float, default=300.0, help="give up on one fault after this (s)")
    ap.add_argument("--soak-minutes", type=float, default=0.0, help="builtin: no faults, count notifications")
    ap.add_argument("--settle", type=float, default=120.0, help="soak: seconds after the first round not counted")
    ap.add_argument("--drop", type=float, default=0.0, help="share of the lab's packets dropped (implies --netns)")
    ap.add_argument("--netns", action="store_true", help="run in a network namespace of our own (root)")
    ap.add_argument("--record", help="write every notification received to this file (builtin)")
    args = ap.parse_args()
    if (args.soak_minutes or args.drop or args.record) and args.path != "builtin":
        ap.error("--soak-minutes, --drop and --record are for --path builtin")
    if args.drop:
        args.netns = True
    if args.netns:
        enter_netns()
    with tempfile.TemporaryDirectory(prefix="wardwatch-detect-") as d:
        result = asyncio.run(PATHS[args.path](args, Path(d)))
    report(result, args)


if __name__ == "__main__":
    main()
