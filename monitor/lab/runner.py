"""Start and stop a whole lab: certificates, DNS, simulated servers, faults, written files."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.lab import control, imperfections
from monitor.lab import inventory as lab_inventory
from monitor.lab.config import LabConfig
from monitor.lab.dns import Nsd
from monitor.lab.faults import FaultTable, Health
from monitor.lab.netfilter import Netfilter
from monitor.lab.pki import LabCA
from monitor.lab.plan import PROCEDURES_HOST, LabUnit, build_plan, select_units
from monitor.lab.servers import Behaviour, LabServers
from monitor.lab.snmpsim import Snmpsim

log = logging.getLogger("wardwatch.lab")

IMPERFECTIONS_FILE = "imperfections.json"
NORMAL_CERT_DAYS = 397.0


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_dns_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise OSError("no free port for DNS on 127.0.0.1")


class LabError(RuntimeError):
    """The lab cannot start (and says why in one line)."""


class Lab:
    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.directory.absolute()
        self.units: list[LabUnit] = []
        self.faults = FaultTable()
        self.behaviour = Behaviour()
        self.servers: LabServers | None = None
        self.nsd: Nsd | None = None
        self.snmpsim: Snmpsim | None = None
        self.netfilter = Netfilter(cfg.nft_table)
        self.inventories: list[Path] = []
        self.expected: list[lab_inventory.Expected] = []
        self._control: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._foreign_state = False
        self.slow_delay = imperfections.SLOW_FACTOR * cfg.timing.timeout

    @property
    def inventory_path(self) -> Path:
        return self.dir / "lab-inventory.yaml"

    @property
    def ca_path(self) -> Path:
        return self.dir / "ca.pem"

    # -- start / stop ---------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cfg = dataclasses.replace(self.cfg, directory=self.dir)
        self._check_not_running()
        (self.dir / control.STATE_FILE).unlink(missing_ok=True)
        self.units = build_plan(select_units(self.cfg.units, self.cfg.province))
        assigned = imperfections.assign(len(self.units))
        for i, kind in assigned.items():
            u = self.units[i]
            if kind.kind == "portal_503":
                self.behaviour.portal_status[u.code] = 503
            elif kind.kind == "slow_portal":
                self.behaviour.portal_delay[u.code] = self.slow_delay
            elif kind.kind == "redirect_missing":
                self.behaviour.no_redirect.add(u.old_domains[0].host)
        if self.cfg.snmp:  # launched first: it answers ~1.5 s later, while the rest starts
            snmp_port = self.cfg.ports.snmp or free_port(socket.SOCK_DGRAM, self.units[0].address("router"))
            self.cfg = dataclasses.replace(self.cfg, ports=dataclasses.replace(self.cfg.ports, snmp=snmp_port))
            self.snmpsim = Snmpsim(self.dir / "snmpsim", snmp_port)
            await self.snmpsim.launch(self.units)
        ca = await asyncio.to_thread(self._issue, assigned)

        p = self.cfg.ports
        self.servers = LabServers(
            self.units, self.dir / "tls", ca.leaf_key_path, self.faults, self.behaviour,
            slow_delay=self.slow_delay, https_port=p.https, bind=self.cfg.bind,
        )
        bound = await self.servers.start(
            {"https": p.https, "http": p.http, "smtp": p.smtp, "vc": p.vc, "sip": p.sip, "stun": p.stun}
        )
        dns_port = p.dns or free_dns_port()
        self.cfg = dataclasses.replace(
            self.cfg, ports=dataclasses.replace(p, dns=dns_port, **bound)
        )
        self.servers.https_port = self.cfg.ports.https
        self.nsd = Nsd(self.dir / "dns", dns_port)
        await self.nsd.start(self.units)
        await self.netfilter.start()
        if self.snmpsim is not None:
            self.cfg = dataclasses.replace(self.cfg, snmp=await self.snmpsim.ready())

        self.inventories = lab_inventory.write(self.cfg, self.units)
        self.expected = lab_inventory.expected_failures(self.cfg, self.units)
        (self.dir / IMPERFECTIONS_FILE).write_text(json.dumps(self._imperfections(assigned), indent=2,
                                                              ensure_ascii=False) + "\n")

        self._control = web.AppRunner(
            control.app(self.set_fault, self._fault_list, self.info), access_log=None, handle_signals=False
        )
        await self._control.setup()
        site = web.TCPSite(self._control, "127.0.0.1", self.cfg.ports.control)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        cport = sockets[0].getsockname()[1] if sockets else self.cfg.ports.control
        self.cfg = dataclasses.replace(self.cfg, ports=dataclasses.replace(self.cfg.ports, control=cport))
        state = self.dir / control.STATE_FILE
        state.write_text(json.dumps(self.info(), indent=2, ensure_ascii=False) + "\n")

    def _check_not_running(self) -> None:
        try:
            pid = json.loads((self.dir / control.STATE_FILE).read_text()).get("pid")
        except (OSError, ValueError, AttributeError):
            return
        if not isinstance(pid, int) or pid == os.getpid():
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # a lab that died without cleaning up
        except PermissionError:
            pass
        self._foreign_state = True
        raise LabError(f"a lab is already running from {self.dir} (pid {pid}): stop it or use another --dir")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        if not self._foreign_state:
            (self.dir / control.STATE_FILE).unlink(missing_ok=True)
        if self._control is not None:
            await self._control.cleanup()
            self._control = None
        if self.servers is not None:
            await self.servers.stop()
            self.servers = None
        if self.nsd is not None:
            await self.nsd.stop()
            self.nsd = None
        if self.snmpsim is not None:
            await self.snmpsim.stop()
            self.snmpsim = None
        await self.netfilter.stop()
        for u in self.units:  # certificate files hidden by a certs fault come back
            hidden = self._hidden(u)
            if hidden.exists():
                with contextlib.suppress(OSError):
                    hidden.rename(lab_inventory.signing_file(self.cfg, u))

    # -- certificates ---------------------------------------------------------------------------
    def _issue(self, assigned: dict[int, imperfections.Kind]) -> LabCA:
        ca = LabCA(self.dir)
        tls = self.dir / "tls"
        certs = self.dir / "certs"
        for stale in (*tls.glob("*.pem"), *certs.glob("*.pem"), *certs.glob(".*.hidden")):
            stale.unlink()
        ca.server(tls / "procedures.pem", [PROCEDURES_HOST], NORMAL_CERT_DAYS)
        for u in self.units:
            kind = assigned.get(u.index)
            hosts = [u.portal_host]
            if kind is not None and kind.kind == "hostname_mismatch":
                hosts = [f"www-other.{u.zone_label}.lab.test"]
            days = kind.cert_days if kind is not None and kind.cert_days is not None else NORMAL_CERT_DAYS
            ca.server(tls / f"{u.code}.pem", hosts, days)
            ca.server(tls / f"{u.code}-mail.pem", [u.mail_host], NORMAL_CERT_DAYS)
            sdays = kind.signing_days if kind is not None and kind.signing_days is not None else 730.0
            ca.signing(lab_inventory.signing_file(self.cfg, u), f"{u.name} ({u.code}) - ký số", sdays)
        return ca

    def _hidden(self, u: LabUnit) -> Path:
        return self.dir / "certs" / f".{u.code}.pem.hidden"

    # -- faults ---------------------------------------------------------------------------------
    async def set_fault(self, code: int, service: str, mode: str, period: float | None = None) -> dict[str, Any]:
        if not any(u.code == code for u in self.units):
            raise KeyError(f"unit {code} is not in this lab")
        async with self._lock:
            self.faults.set(code, service, mode, time.monotonic(), period or self.cfg.flap_period)
            await self._reconcile()
            if self.faults.flapping() and self._ticker is None:
                self._ticker = asyncio.create_task(self._flap_loop(), name="wardwatch-lab-flap")
        log.info("fault: unit %d %s %s", code, service, mode)
        return {"unit_code": code, "service": service, "mode": mode, "faults": self._fault_list(),
                "netfilter": self.netfilter.available}

    async def _reconcile(self) -> None:
        """Make the packet filter and the certificate files match the faults in force now."""
        now = time.monotonic()
        cut: set[str] = set()
        noping: set[str] = set()
        refuse: set[str] = set()
        hide: set[int] = set()
        p = self.cfg.ports
        by_code = {u.code: u for u in self.units}
        for (code, service), _ in self.faults.faults.items():
            u = by_code[code]
            if self.faults.health(code, service, now) is not Health.DOWN:
                continue
            if service == "link":
                cut.update(u.address(r) for r in ("router", "vc_gov", "vc_party", "portal", "mail"))
                cut.update(o.address for o in u.old_domains)
                hide.add(code)
            elif service in ("vc_gov", "vc_party"):
                noping.add(u.address(service))
                refuse.add(f"{u.address(service)} . {p.vc}")
                refuse.add(f"{u.address(service)} . {p.sip}")  # SIP over TCP; UDP SIP/STUN go silent
            elif service == "portal":
                refuse.add(f"{u.address('portal')} . {p.https}")
                refuse.update(f"{o.address} . {p.http}" for o in u.old_domains)
            elif service == "email":
                refuse.add(f"{u.address('mail')} . {p.smtp}")
            elif service == "certs":
                hide.add(code)
        await self.netfilter.apply({"cut": cut, "noping": noping, "refuse": refuse})
        for u in self.units:
            path, hidden = lab_inventory.signing_file(self.cfg, u), self._hidden(u)
            if u.code in hide and path.exists():
                path.rename(hidden)
            elif u.code not in hide and hidden.exists():
                hidden.rename(path)

    async def _flap_loop(self) -> None:
        try:
            while self.faults.flapping():
                now = time.monotonic()
                wait = min(f.period - ((now - f.since) % f.period)
                           for f in self.faults.faults.values() if f.mode == "flap")
                await asyncio.sleep(wait + 0.01)  # until the next flap edge
                async with self._lock:
                    await self._reconcile()
        finally:
            self._ticker = None

    def _fault_list(self) -> list[dict[str, Any]]:
        return self.faults.listing(time.monotonic())

    # -- reporting ------------------------------------------------------------------------------
    def _imperfections(self, assigned: dict[int, imperfections.Kind]) -> dict[str, Any]:
        return {
            "units": len(self.units),
            "imperfections": [
                {"kind": k.kind, "description": k.description, "index": i, "unit_code": self.units[i].code,
                 "unit": self.units[i].name}
                for i, k in sorted(assigned.items())
            ],
            "expected": [dataclasses.asdict(e) for e in self.expected],
        }

    def info(self) -> dict[str, Any]:
        p = self.cfg.ports
        return {
            "pid": os.getpid(),
            "directory": str(self.dir),
            "province": self.cfg.province,
            "units": len(self.units),
            "control": f"127.0.0.1:{p.control}",
            "dns": f"127.0.0.1:{p.dns}",
            "ports": dataclasses.asdict(p),
            "inventories": [str(x) for x in self.inventories],
            "ca": str(self.ca_path),
            "imperfections": str(self.dir / IMPERFECTIONS_FILE),
            "netfilter": self.netfilter.table if self.netfilter.available else None,
        }

    def describe(self) -> str:
        p = self.cfg.ports
        nft = (f"nftables table inet {self.netfilter.table}" if self.netfilter.available
               else "no nftables: link faults stop services but pings keep answering")
        lines = [
            f"lab: {len(self.units)} units on 127.10-17.x.y (province {self.cfg.province}); "
            f"https :{p.https}, http :{p.http}, smtp :{p.smtp}, vc :{p.vc}, sip :{p.sip}, stun :{p.stun}/udp; "
            f"DNS 127.0.0.1:{p.dns} (nsd)",
            f"lab: inventory  {self.inventory_path}",
        ]
        lines += [f"lab: inventory  {x}" for x in self.inventories[1:]]
        lines += [
            f"lab: CA bundle  {self.ca_path}",
            f"lab: expected   {self.dir / IMPERFECTIONS_FILE} ({len(self.expected)} failing targets)",
            f"lab: control    http://127.0.0.1:{p.control}/ ({nft})",
        ]
        return "\n".join(lines)
