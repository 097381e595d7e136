"""The address guard end to end: a real `wardwatch run` serving /probe with
``allow_any_target: true`` and ``probe_deny: [127.0.0.66/32]``, names from a real NSD and from a
rebinding DNS responder, a real nginx redirecting, and recorders on the denied address that
prove nothing ever reached it. Loopback only; the suite runs in a network namespace of its own,
so the metadata and link-local requests could not leave even if they were attempted (their
reason shows they were not: an attempt would fail as ``unreachable``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.peers.nginx import preamble
from tests.peers.nsd import Nsd, nsd_server
from tests.peers.proc import free_port, require, running, wait_tcp
from tests.peers.recorder import Rebinder, Recorder, Seen, free_common_port, rebinding_dns, recorder
from tests.peers.wardwatch import Wardwatch, wardwatch_run

ALLOWED = "127.0.0.65"
DENIED = "127.0.0.66"
ZONE = "guard.test"
REBIND = "rebind.test"
DENIED_BY = f"address {DENIED} denied by monitor.probe_deny ({DENIED}/32)"
NOTHING = Seen(0, 0, 0)


def zone() -> str:
    return f"""$ORIGIN {ZONE}.
$TTL 300
@       IN SOA ns.{ZONE}. hostmaster.{ZONE}. ( 1 3600 600 86400 300 )
@       IN NS  ns.{ZONE}.
ns      IN A   127.0.0.1
denied  IN A   {DENIED}
allowed IN A   {ALLOWED}
"""


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nsd]:
    with nsd_server(tmp_path_factory.mktemp("nsd"), {ZONE: zone()}) as server:
        yield server


@dataclass(frozen=True)
class Setup:
    ww: Wardwatch
    http: aiohttp.ClientSession
    port: int  # the recorders' port, on both addresses
    denied: Recorder  # DENIED:port, must never see /probe traffic
    allowed: Recorder  # ALLOWED:port
    trusted: Recorder  # DENIED:another port, the inventory's own target
    nginx: int  # ALLOWED:nginx, redirecting
    rebinder: Rebinder

    async def probe(self, module: str, target: str) -> tuple[float, str]:
        """(probe_success, the debug report)."""
        params = {"module": module, "target": target, "debug": "true"}
        async with self.http.get(self.ww.url + "/probe", params=params) as r:
            text = await r.text()
            assert r.status == 200, text
        success = next(float(line.split()[1]) for line in text.splitlines() if line.startswith("probe_success "))
        return success, text

    def inventory_target(self) -> str:
        return f"http://{DENIED}:{self.trusted.port}/inventory"


def redirector_conf(tmp: Path, port: int, rport: int) -> str:
    to = {
        "to-denied": f"http://{DENIED}:{rport}/",
        "to-denied-name": f"http://denied.{ZONE}:{rport}/",
        "to-hex": f"http://0x7f000042:{rport}/",
        "to-mapped": f"http://[::ffff:{DENIED}]:{rport}/",
        "to-rebind": f"http://{REBIND}:{rport}/",
        "to-allowed": f"http://{ALLOWED}:{rport}/",
    }
    locations = "".join(f"        location = /{k} {{ return 302 {v}; }}\n" for k, v in to.items())
    return preamble(tmp) + f"""
    server {{
        listen {ALLOWED}:{port};
{locations}    }}
}}
"""


@contextlib.contextmanager
def redirector(tmp: Path, rport: int) -> Iterator[int]:
    binary = require("nginx")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port(ALLOWED)
    conf = tmp / "nginx.conf"
    conf.write_text(redirector_conf(tmp, port, rport))
    with running([binary, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log")], tmp / "nginx.out") as p:
        wait_tcp(ALLOWED, port, proc=p)
        yield port


def inventory(nsd: Nsd, rebinder: Rebinder, trusted_url: str) -> str:
    # NSD answers REFUSED for rebind.test, so the resolver then asks the rebinding responder.
    return f"""
province: 1
monitor:
  dns_servers: ["{nsd.address}", "{rebinder.address}"]
  allow_any_target: true
  probe_deny: [{DENIED}/32]
  modules:
    http_2xx: {{probe: http, timeout: 3s}}
    tcp_connect: {{probe: tcp, timeout: 2s}}
    icmp: {{probe: icmp, timeout: 2s, count: 1}}
    dns_a: {{probe: dns, timeout: 2s, query_name: {ZONE}}}
defaults:
  interval: 2s
  timeout: 1s
  rechecks: 0
units:
  - code: 4
    name: Phường Ba Đình
    type: phường
    checks:
      - {{service: portal, probe: http, target: "{trusted_url}"}}
"""


@pytest.fixture
async def setup(tmp_path: Path, nsd: Nsd) -> AsyncIterator[Setup]:
    port = free_common_port(ALLOWED, DENIED)
    async with (
        recorder(DENIED, port) as denied,
        recorder(ALLOWED, port) as allowed,
        recorder(DENIED) as trusted,
        # its own address: Resolver keys nameserver ports by host, so NSD's 127.0.0.1 is taken
        rebinding_dns(REBIND, (ALLOWED, DENIED), host="127.0.0.67") as rebinder,
    ):
        with redirector(tmp_path / "nginx", port) as nginx:
            path = tmp_path / "inventory.yaml"
            path.write_text(inventory(nsd, rebinder, f"http://{DENIED}:{trusted.port}/inventory"), encoding="utf-8")
            async with wardwatch_run(tmp_path, path, ready_timeout=30) as ww, aiohttp.ClientSession() as http:
                s = Setup(ww, http, port, denied, allowed, trusted, nginx, rebinder)
                assert await denied.flush() == NOTHING  # wardwatch's own round did not touch it
                yield s


def assert_refused(text: str, *parts: str) -> None:
    assert "Probe failed (address_denied: " in text, text
    for part in parts:
        assert part in text, (part, text)


async def test_literal_denied_address_in_every_spelling(setup: Setup) -> None:
    p = setup.port
    for module, target in [
        ("http_2xx", f"http://{DENIED}:{p}/"),
        ("http_2xx", f"http://0x7f000042:{p}/"),
        ("http_2xx", f"http://[::ffff:{DENIED}]:{p}/"),
        ("tcp_connect", f"2130706498:{p}"),
        ("tcp_connect", f"0177.0.0.0102:{p}"),
        ("tcp", f"[::ffff:7f00:42]:{p}"),
        ("icmp", "127.66"),
        ("dns_a", f"{DENIED}:{p}"),
        ("stun", f"{DENIED}:{p}"),
        ("sip", f"sip:{DENIED}:{p};transport=udp"),
    ]:
        success, text = await setup.probe(module, target)
        assert success == 0
        assert_refused(text, DENIED_BY.removeprefix(f"address {DENIED}"), "probe refused: ")
    assert await setup.denied.flush() == NOTHING
    # The guard is not a wall: the allowed address is probed as usual.
    success, text = await setup.probe("http_2xx", f"http://{ALLOWED}:{p}/")
    assert success == 1, text
    assert (await setup.allowed.flush()).tcp == 1


async def test_name_resolving_to_a_denied_address(setup: Setup) -> None:
    p = setup.port
    success, text = await setup.probe("http_2xx", f"http://denied.{ZONE}:{p}/")
    assert success == 0
    assert_refused(text, f"denied.{ZONE} resolves to {DENIED}: {DENIED_BY}")
    success, text = await setup.probe("tcp_connect", f"denied.{ZONE}:{p}")
    assert success == 0
    assert_refused(text, DENIED_BY)
    assert await setup.denied.flush() == NOTHING
    success, text = await setup.probe("http_2xx", f"http://allowed.{ZONE}:{p}/")
    assert success == 1, text


async def test_redirect_hop_to_a_denied_address(setup: Setup) -> None:
    base = f"http://{ALLOWED}:{setup.nginx}"
    for path in ("to-denied", "to-denied-name", "to-hex", "to-mapped"):
        success, text = await setup.probe("http_2xx", f"{base}/{path}")
        assert success == 0
        assert_refused(text, "denied by monitor.probe_deny (127.0.0.66/32)")
        # nginx answered the first hop; the refusal came at the second.
        assert f'wardwatch_http_redirect_hop{{hop="0",url="{base}/{path}"}} 302' in text, text
        assert "probe_http_redirects 1\n" in text
    assert await setup.denied.flush() == NOTHING
    success, text = await setup.probe("http_2xx", f"{base}/to-allowed")
    assert success == 1, text
    assert "probe_http_redirects 1\n" in text


async def test_dns_rebinding_never_reaches_the_denied_address(setup: Setup) -> None:
    """rebind.test answers 127.0.0.65 then 127.0.0.66, alternately, TTL 0. A probe that checked
    one answer and then resolved again to connect would reach .66 half the time."""
    rounds = 6
    outcomes = []
    for _ in range(rounds):
        success, text = await setup.probe("http_2xx", f"http://{REBIND}:{setup.port}/")
        outcomes.append(success)
        if not success:
            assert_refused(text, f"{REBIND} resolves to {DENIED}: {DENIED_BY}")
    assert outcomes == [1.0, 0.0] * (rounds // 2)  # the answer really changed every time
    assert setup.rebinder.queries == rounds  # one lookup per probe: what was checked is what was used
    assert (await setup.allowed.flush()).tcp == rounds // 2
    # And as a redirect hop: each hop is resolved once and checked.
    before = setup.rebinder.queries
    for _ in range(2):
        await setup.probe("http_2xx", f"http://{ALLOWED}:{setup.nginx}/to-rebind")
    assert setup.rebinder.queries - before == 2
    assert (await setup.allowed.flush()).tcp == rounds // 2 + 1
    assert await setup.denied.flush() == NOTHING


async def test_metadata_and_link_local_refused_before_any_socket(setup: Setup) -> None:
    for module, target, why in [
        ("http_2xx", "http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http_2xx", "http://0xA9FEA9FE/latest/meta-data/", "cloud metadata"),
        ("http_2xx", "http://2852039166/latest/meta-data/", "cloud metadata"),
        ("http_2xx", "http://[::ffff:169.254.169.254]/latest/meta-data/", "cloud metadata"),
        ("http_2xx", "http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"),
        ("tcp_connect", "100.100.100.200:80", "cloud metadata"),
        ("tcp_connect", "168.63.129.16:80", "Azure WireServer"),
        ("tcp_connect", "169.254.10.1:22", "link-local"),
        ("icmp", "fe80::1", "link-local"),
        ("icmp", "224.0.0.1", "multicast"),
        ("tcp_connect", "0.0.0.0:80", "unspecified"),
    ]:
        success, text = await setup.probe(module, target)
        assert success == 0
        # address_denied, not unreachable: no connection was attempted.
        assert_refused(text, "built-in deny list of monitor.probe_deny", why)


async def test_inventory_targets_are_trusted(setup: Setup) -> None:
    """The inventory's own target on the denied address is probed (engine and /probe alike):
    the guard applies to anyone's targets, not the operator's."""
    before = await setup.trusted.flush()
    success, text = await setup.probe("http", setup.inventory_target())
    assert success == 1, text
    assert (await setup.trusted.flush()).tcp > before.tcp
    # A local file is not an address: certfile is never run for a target outside the inventory.
    async with setup.http.get(setup.ww.url + "/probe", params={"module": "certfile", "target": "/etc"}) as r:
        assert r.status == 403 and "inventory targets only" in await r.text()
