"""A name that cannot be resolved because the DNS server is gone is a DNS failure, whatever the
probe: found by tests/faults/test_dns_down.py, where every portal reported a plain 'timeout'
("no answer during resolve") once the lab's NSD stopped, so nothing told the DNS outage apart
from the portals' own. The resolver keeps retrying a server that refuses (a closed UDP port)
until the probe's deadline; that deadline passing in the resolve phase is dns_timeout."""

from __future__ import annotations

import socket

import pytest

from probes import http, sip, tcp, tls
from probes.base import ProbeContext, Reason, Resolver, timeout_reason
from tests.peers.proc import free_port


def test_timeout_reason_by_phase() -> None:
    assert timeout_reason("resolve") is Reason.DNS_TIMEOUT
    assert timeout_reason("connect") is Reason.TIMEOUT
    assert timeout_reason("TLS handshake") is Reason.TIMEOUT


@pytest.mark.parametrize(("run", "target", "cfg"), [
    (http.run, "http://portal.faults.test:8080/", http.Config()),
    (tcp.run, "portal.faults.test:8080", tcp.Config()),
    (tls.run, "portal.faults.test:8443", tls.Config()),
    (sip.run, "sip:portal.faults.test:5060;transport=tcp", sip.Config()),
])
async def test_a_dead_dns_server_is_a_dns_reason(run, target, cfg) -> None:  # type: ignore[no-untyped-def]
    dead = f"127.0.0.1:{free_port('127.0.0.1', socket.SOCK_DGRAM)}"  # nothing listens: port unreachable
    r = await run(target, cfg, ProbeContext(timeout=0.5, resolver=Resolver([dead])))
    assert not r.success
    assert r.reason is not None and r.reason.value.startswith("dns_"), (r.reason, r.message)
