"""The single place that names every probe kind.

A probe kind is a module ``probes.<kind>`` exporting ``Config`` and ``run``;
``tests/probes/test_contract.py`` checks every kind listed here keeps that shape.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from probes.base import ProbeConfig, ProbeContext, ProbeResult

KINDS: tuple[str, ...] = (
    "icmp", "tcp", "http", "tls", "dns", "certfile", "snmp", "link", "sip", "stun", "h323", "email",
)


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    kind: str
    config: type[ProbeConfig]
    run: Callable[[str, Any, ProbeContext], Awaitable[ProbeResult]]


@cache
def get(kind: str) -> ProbeSpec:
    if kind not in KINDS:
        raise KeyError(f"unknown probe kind {kind!r} (known: {', '.join(KINDS)})")
    mod = importlib.import_module(f"probes.{kind}")
    return ProbeSpec(kind, mod.Config, mod.run)


def all_specs() -> list[ProbeSpec]:
    return [get(k) for k in KINDS]
