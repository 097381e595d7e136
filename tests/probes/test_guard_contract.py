"""Every probe kind that reaches an address goes through the address guard, at both layers.

For each kind, a name that resolves (through a real NSD) to a denied loopback address where a
recorder listens (TCP, UDP and ICMP) is probed three ways:

- no guard (the control): the recorder sees the probe, so the recorder could see a leak;
- guarded: refused after resolution (``ProbeContext.resolve``), ``address_denied``;
- a context that skips the resolution check, as a probe calling the resolver directly would:
  refused at connect time (``ProbeContext.pin``/``open_connection``) all the same.

In the last two the recorder must have seen nothing at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from probes import addrguard, registry
from probes.base import ProbeContext, Reason, Resolved, Resolver
from probes.runner import run_probe
from tests.peers.nsd import Nsd, nsd_server
from tests.peers.recorder import Recorder, Seen, recorder

DENIED = "127.0.0.66"
ZONE = "guard.test"
GUARD = addrguard.policy((), (f"{DENIED}/32",))


def zone() -> str:
    return f"""$ORIGIN {ZONE}.
$TTL 300
@       IN SOA ns.{ZONE}. hostmaster.{ZONE}. ( 1 3600 600 86400 300 )
@       IN NS  ns.{ZONE}.
ns      IN A   127.0.0.1
@       IN MX  10 mail.{ZONE}.
mail    IN A   {DENIED}
denied  IN A   {DENIED}
"""


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nsd]:
    with nsd_server(tmp_path_factory.mktemp("nsd"), {ZONE: zone()}) as server:
        yield server


@pytest.fixture
async def rec() -> AsyncIterator[Recorder]:
    async with recorder(DENIED) as r:
        yield r


@dataclass(frozen=True)
class Case:
    kind: str
    target: str
    options: dict[str, Any]
    channel: str  # what the recorder sees when the probe is let through: tcp, udp or icmp


def cases(port: int, nsd: Nsd) -> dict[str, Case]:
    name = f"denied.{ZONE}"
    return {
        "icmp": Case("icmp", name, {"count": 1}, "icmp"),
        "link": Case("link", name, {"count": 2, "spacing_seconds": 0.01, "reply_timeout_seconds": 0.5}, "icmp"),
        "tcp": Case("tcp", f"{name}:{port}", {}, "tcp"),
        "h323": Case("h323", f"{name}:{port}", {}, "tcp"),
        "tls": Case("tls", f"{name}:{port}", {}, "tcp"),
        "http": Case("http", f"http://{name}:{port}/", {}, "tcp"),
        "dns": Case("dns", f"{name}:{port}", {"query_name": ZONE}, "udp"),
        "snmp": Case("snmp", f"{name}:{port}", {"community": "public", "retries": 0}, "udp"),
        "sip-udp": Case("sip", f"sip:{name}:{port};transport=udp", {}, "udp"),
        "sip-tcp": Case("sip", f"sip:{name}:{port};transport=tcp", {}, "tcp"),
        "stun": Case("stun", f"{name}:{port}", {"max_transmissions": 1}, "udp"),
        "email": Case("email", ZONE, {"dns_server": nsd.address, "smtp_port": port}, "tcp"),
    }


CASE_IDS = list(cases(1, Nsd("127.0.0.1", 53, Path("."))))


def test_every_kind_that_reaches_an_address_has_a_case() -> None:
    covered = {c.kind for c in cases(1, Nsd("127.0.0.1", 53, Path("."))).values()}
    assert covered == set(registry.KINDS) - {"certfile"}  # certfile reads files: /probe refuses it


class ConnectCheckOnly(ProbeContext):
    """A context whose resolution skips the guard, like a probe that forgot ctx.resolve."""

    async def resolve(
        self, host: str, ip_protocol: str = "ip4", fallback: bool = True, resolver: Resolver | None = None
    ) -> Resolved:
        return await (resolver or self.resolver).resolve(host, ip_protocol, fallback)


def context(layer: str, nsd: Nsd) -> ProbeContext:
    resolver = Resolver([nsd.address])
    if layer == "control":
        return ProbeContext(timeout=1.0, resolver=resolver)
    if layer == "resolve":
        return ProbeContext(timeout=1.0, resolver=resolver, guard=GUARD)
    return ConnectCheckOnly(timeout=1.0, resolver=resolver, guard=GUARD)


@pytest.mark.parametrize("layer", ["control", "resolve", "connect"])
@pytest.mark.parametrize("case_id", CASE_IDS)
async def test_guard_refuses_before_anything_is_sent(case_id: str, layer: str, nsd: Nsd, rec: Recorder) -> None:
    case = cases(rec.port, nsd)[case_id]
    spec = registry.get(case.kind)
    cfg = spec.config(**case.options)
    before = await rec.flush()
    result = await run_probe(spec, case.target, cfg, context(layer, nsd))
    after = await rec.flush()
    if layer == "control":
        assert result.reason is not Reason.ADDRESS_DENIED
        assert getattr(after, case.channel) > getattr(before, case.channel), (result, after)
        return
    assert result.reason is Reason.ADDRESS_DENIED, result
    assert f"address {DENIED} denied by monitor.probe_deny ({DENIED}/32)" in result.message, result.message
    assert after == before == Seen(0, 0, 0), f"{case_id} reached {DENIED}: {after}"
