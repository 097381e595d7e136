"""``wardwatch lab``: a simulated network of units on loopback; ``wardwatch lab fault``: break it.

    wardwatch lab [--province 79] [--units N] [--dir lab] [--https-port 8443] ...
    wardwatch lab fault UNIT_CODE SERVICE down|slow|flap|restore [--period S] [--lab-dir lab]
    wardwatch lab faults [--lab-dir lab]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from monitor.lab import control
from monitor.lab.config import LabConfig, Ports, Timing
from monitor.lab.dns import DnsError
from monitor.lab.faults import MODES, SERVICES
from monitor.lab.runner import Lab, LabError
from monitor.units import UnknownProvinceError, provinces

MAX_UNITS = 3321


def _duration(value: str) -> float:
    from monitor.inventory import parse_duration

    try:
        seconds = parse_duration(value)
    except Exception as exc:
        raise argparse.ArgumentTypeError(f"not a duration: {value!r} (e.g. 500ms, 5s, 1m)") from exc
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value!r}")
    return seconds


def _units(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_UNITS:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_UNITS} units, got {value!r}")
    return int(value)


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"not a port (0 for any free one): {value!r}")
    return int(value)


def add_lab_options(p: argparse.ArgumentParser, *, free_ports: bool, interval: float = 30.0) -> None:
    """Options shared by ``lab`` and ``demo`` (the demo picks free ports by default)."""
    d = Ports()
    g = p.add_argument_group("lab")
    g.add_argument("--province", type=int, default=79, help="province whose units come first (default 79)")
    g.add_argument("--units", type=_units, default=None, metavar="N",
                   help=f"number of units, 1..{MAX_UNITS} (default: all of the province; beyond it, "
                   "units of the other provinces in official order)")
    g.add_argument("--dir", type=Path, default=Path("lab"), help="lab directory (default ./lab)")
    for name, default in (("https", d.https), ("http", d.http), ("smtp", d.smtp), ("vc", d.vc), ("dns", d.dns)):
        g.add_argument(f"--{name}-port", type=_port, default=0 if free_ports else default, metavar="PORT",
                       help=f"port of the {name} listener (default {'any free' if free_ports else default}; 0: any)")
    for name, default in (("sip", d.sip), ("stun", d.stun)):
        shown = "any free" if free_ports else f"{default}, or any free with --vc-port 0"
        g.add_argument(f"--{name}-port", type=_port, default=0 if free_ports else -1, metavar="PORT",
                       help=f"port of the rooms' {name.upper()} listener (default {shown}; 0: any)")
    g.add_argument("--control-port", type=_port, default=0, metavar="PORT",
                   help="fault-control port on 127.0.0.1 (default any free; recorded in lab-state.json)")
    g.add_argument("--bind", default="0.0.0.0", help="listen address of the shared listeners (default 0.0.0.0)")
    g.add_argument("--nft-table", default="wardwatch_lab",
                   help="nftables table for link faults (default wardwatch_lab)")
    g.add_argument("--no-nft", action="store_true", help="do not use nftables")
    g.add_argument("--snmp-port", type=_port, default=0 if free_ports else d.snmp, metavar="PORT",
                   help=f"UDP port the routers answer SNMP on (default {'any free' if free_ports else d.snmp})")
    g.add_argument("--no-snmp", action="store_true", help="routers do not answer SNMP (no snmpsim)")
    g.add_argument("--flap-period", type=_duration, default=10.0, metavar="DURATION",
                   help="default flap period (default 10s)")
    t = p.add_argument_group("timing written into lab-inventory.yaml")
    t.add_argument("--interval", type=_duration, default=interval, metavar="DURATION",
                   help=f"probe interval (default {interval:g}s)")
    t.add_argument("--timeout", type=_duration, default=5.0, metavar="DURATION", help="probe timeout (default 5s)")
    t.add_argument("--rechecks", type=int, default=2, help="re-checks before a target is down (default 2)")
    t.add_argument("--recheck-spacing", type=_duration, default=2.0, metavar="DURATION",
                   help="between re-checks (default 2s)")


def lab_config(args: argparse.Namespace) -> LabConfig:
    if args.province not in provinces():
        raise UnknownProvinceError(args.province)
    if args.timeout + args.rechecks * args.recheck_spacing > args.interval:
        raise ValueError("timeout + rechecks x recheck-spacing must fit in the interval")
    return LabConfig(
        directory=args.dir,
        province=args.province,
        units=args.units,
        ports=Ports(args.https_port, args.http_port, args.smtp_port, args.vc_port, args.dns_port, args.control_port,
                    sip=args.sip_port, stun=args.stun_port, snmp=args.snmp_port),
        timing=Timing(args.interval, args.timeout, args.rechecks, args.recheck_spacing),
        bind=args.bind,
        nft_table="" if args.no_nft else args.nft_table,
        flap_period=args.flap_period,
        snmp=not args.no_snmp,
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("lab", parents=[common], help="run a simulated network of units on loopback",
                       description="Start a lab (no action) or act on a running one.")
    add_lab_options(p, free_ports=False)
    p.set_defaults(func=cmd_lab)
    actions = p.add_subparsers(dest="lab_action", metavar="ACTION")
    f = actions.add_parser("fault", parents=[common], help="inject or clear a fault in a running lab")
    f.add_argument("unit_code", type=int, metavar="UNIT_CODE")
    f.add_argument("service", choices=SERVICES, metavar="SERVICE", help=", ".join(SERVICES))
    f.add_argument("mode", choices=MODES, metavar="MODE", help=", ".join(MODES))
    f.add_argument("--period", type=_duration, default=None, metavar="DURATION",
                   help="flap: seconds down, then as many up (default: the lab's --flap-period)")
    f.add_argument("--lab-dir", type=Path, default=Path("lab"), help="directory of the running lab (default ./lab)")
    f.set_defaults(func=cmd_fault)
    s = actions.add_parser("faults", parents=[common], help="list the faults in force in a running lab")
    s.add_argument("--lab-dir", type=Path, default=Path("lab"), help="directory of the running lab (default ./lab)")
    s.set_defaults(func=cmd_faults)


def cmd_fault(args: argparse.Namespace) -> int:
    try:
        result = control.set_fault(args.lab_dir, args.unit_code, args.service, args.mode, args.period)
    except control.ControlError as exc:
        print(f"wardwatch lab fault: {exc}", file=sys.stderr)
        return 2
    note = ""
    if args.service == "link" and args.mode != "restore" and not result.get("netfilter"):
        note = " (no nftables: services behind the link stop, pings still answered)"
    print(f"unit {args.unit_code} {args.service}: {args.mode}{note}")
    return 0


def cmd_faults(args: argparse.Namespace) -> int:
    try:
        faults = control.request(args.lab_dir, "GET", "/faults")
    except control.ControlError as exc:
        print(f"wardwatch lab faults: {exc}", file=sys.stderr)
        return 2
    if not faults:
        print("no faults")
    for f in faults:
        print(json.dumps(f, ensure_ascii=False))
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    try:
        cfg = lab_config(args)
    except ValueError as exc:
        print(f"wardwatch lab: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run_lab(cfg))


async def start_lab(cfg: LabConfig, stop: asyncio.Event) -> Lab | None:
    """Start a lab unless ``stop`` is set first; None (and a message) when it cannot start."""
    lab = Lab(cfg)
    starting = asyncio.create_task(lab.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()
    try:
        await starting
    except asyncio.CancelledError:
        await lab.stop()
        return None
    except (OSError, DnsError, LabError) as exc:
        print(f"wardwatch lab: cannot start: {exc}", file=sys.stderr)
        return None
    return lab


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[asyncio.Event]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


async def run_lab(cfg: LabConfig) -> int:
    stop = asyncio.Event()
    with stop_on_signals(stop):
        lab = await start_lab(cfg, stop)
        if lab is None:
            return 0 if stop.is_set() else 2
        try:
            print(lab.describe(), flush=True)
            print(f"lab: ready; break it with `wardwatch lab fault UNIT_CODE SERVICE down --lab-dir {lab.dir}`; "
                  "Ctrl-C stops", flush=True)
            await stop.wait()
        finally:
            await lab.stop()
    print("lab: stopped", flush=True)
    return 0
