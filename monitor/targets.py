"""What the engine probes: one Target per (unit, service, probe kind, address)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from probes.base import ProbeConfig

SERVICES: tuple[str, ...] = ("link", "vc_gov", "vc_party", "portal", "email", "certs", "procedures")


@dataclass(frozen=True, slots=True)
class Target:
    province: int
    unit_code: int
    unit_name: str
    service: str
    probe: str
    target: str
    config: ProbeConfig
    interval: float = 30.0
    timeout: float = 10.0
    rechecks: int = 2
    recheck_spacing: float = 2.0
    # Where in the inventory this target came from ("units[3].portal"), for messages.
    origin: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.unit_code}/{self.service}/{self.probe}/{self.target}"

    @property
    def host(self) -> str:
        """The host a per-host concurrency limit applies to."""
        t = self.target
        if "://" in t:
            t = t.split("://", 1)[1]
        t = t.split("/", 1)[0].rsplit("@", 1)[-1]
        if t.startswith("["):
            return t[1:].split("]", 1)[0]
        return t.rsplit(":", 1)[0] if t.count(":") == 1 else t

    def stable_hash(self) -> int:
        """Hash of the key that is the same on every machine and run (unlike hash())."""
        return int.from_bytes(hashlib.blake2b(self.key.encode(), digest_size=8).digest(), "big")

    def labels(self) -> dict[str, str]:
        """The identifying labels every per-target series carries."""
        return {
            "province": str(self.province),
            "unit_code": str(self.unit_code),
            "unit": self.unit_name,
            "service": self.service,
            "probe": self.probe,
            "target": self.target,
        }
