"""Settings of one lab: where it writes, which ports its shared listeners use, probe timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Ports:
    """Ports of the shared listeners (0: any free port, chosen at start)."""

    https: int = 8443  # portals, procedures
    http: int = 8080  # old domains (redirect to the HTTPS portal)
    smtp: int = 2525  # mail hosts, with STARTTLS
    vc: int = 1720  # video-conference rooms (H.323 call signalling)
    dns: int = 10053  # NSD, on 127.0.0.1, UDP and TCP
    control: int = 0  # fault control, on 127.0.0.1
    # Video-conference rooms beside the vc port: SIP OPTIONS (UDP and TCP) and STUN Binding (UDP).
    # -1 (unset): 5060 / 3478, or any free port when the vc port is any free port (0), so a
    # caller that asks every other listener on a free port never collides on these two.
    sip: int = -1
    stun: int = -1

    def __post_init__(self) -> None:
        for name, default in (("sip", 5060), ("stun", 3478)):
            if getattr(self, name) < 0:
                object.__setattr__(self, name, 0 if self.vc == 0 else default)
    snmp: int = 1161  # routers (snmpsim), UDP, on every router address (127.10.x.y)


@dataclass(frozen=True, slots=True)
class Timing:
    """What the written inventory asks of the monitor (defaults block)."""

    interval: float = 30.0
    timeout: float = 5.0
    rechecks: int = 2
    recheck_spacing: float = 2.0


@dataclass(frozen=True, slots=True)
class LabConfig:
    directory: Path = Path("lab")
    province: int = 79
    units: int | None = None  # None: every unit of the province
    ports: Ports = field(default_factory=Ports)
    timing: Timing = field(default_factory=Timing)
    bind: str = "0.0.0.0"
    nft_table: str = "wardwatch_lab"  # "" disables nftables (link faults then only stop services)
    flap_period: float = 10.0
    snmp: bool = True  # routers answer SNMP (snmpsim; off, or when not installed: ping only)
