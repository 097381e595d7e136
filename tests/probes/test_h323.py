"""h323 probe: TCP reachability of the H.225 call-signalling port."""

from __future__ import annotations

from probes import h323
from probes.base import Reason
from tests.peers import badpeers
from tests.peers.nginx import context
from tests.peers.proc import free_port


async def test_listener_reachable_even_when_silent() -> None:
    async with badpeers.silent() as peer:
        r = await h323.run(f"127.0.0.1:{peer.port}", h323.Config(), context(1))
    assert r.success, r.message
    assert r.value("probe_ip_protocol") == 4


async def test_refused() -> None:
    r = await h323.run(f"127.0.0.1:{free_port()}", h323.Config(), context(1))
    assert r.reason is Reason.REFUSED
