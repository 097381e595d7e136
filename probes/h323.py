"""H.323 probe: a TCP connect to the H.225 call-signalling port (1720 by default).

Reachability only, through the tcp probe's machinery; a kind of its own so dashboards and
alert rules can tell a conference endpoint's signalling port from any other TCP check.
The target is ``host[:port]``.
"""

from __future__ import annotations

import time

from probes import tcp
from probes.base import ProbeConfig, ProbeContext, ProbeResult, bad_target, split_host_port

DEFAULT_PORT = 1720


class Config(ProbeConfig):
    pass


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    try:
        host, port = split_host_port(target, DEFAULT_PORT)
    except ValueError as e:
        return bad_target(target, e, time.monotonic())
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    inner = tcp.Config(ip_protocol=cfg.ip_protocol, ip_protocol_fallback=cfg.ip_protocol_fallback)
    return await tcp.run(hostport, inner, ctx)
