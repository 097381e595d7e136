"""wardwatch's /probe against the real blackbox_exporter, same modules, same real targets.

Both are asked the same (module, target) questions; they must agree on probe_success,
probe_http_status_code and probe_ssl_earliest_cert_expiry (present in both or in neither,
and then exactly equal).

One deliberate difference: when certificate verification fails (expired, wrong host),
blackbox_exporter reports no certificate at all, while wardwatch still reports the
certificate's expiry (re-reading the chain without verification), because "when did it
expire" is exactly what the on-call operator needs. That extra series is allowed only on
a failed probe, and its value is checked against the certificate itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.engine import Engine
from monitor.inventory import load_inventory
from monitor.web import serve
from tests.peers.blackbox import HOST, Blackbox, IpNginx, blackbox, ip_nginx  # noqa: F401 - fixtures
from tests.peers.nsd import Nsd, nsd_server, portal_zone
from tests.peers.proc import free_port

COMPARED = (
    "probe_success",
    "probe_http_status_code",
    "probe_ssl_earliest_cert_expiry",
    "probe_dns_serial",
    "probe_dns_answer_rrs",
)


def wardwatch_inventory(path: Path, ca_file: Path) -> Path:
    """The wardwatch modules equivalent to tests.peers.blackbox.blackbox_config."""
    path.write_text(
        f"""
province: 1
monitor:
  allow_any_target: true
  modules:
    http_2xx: {{probe: http, timeout: 5s, ca_file: "{ca_file}"}}
    http_no_verify: {{probe: http, timeout: 5s, insecure_skip_verify: true}}
    tcp_connect: {{probe: tcp, timeout: 5s}}
    icmp: {{probe: icmp, timeout: 5s}}
    dns_soa: {{probe: dns, timeout: 5s, query_name: portal.test, query_type: SOA}}
    dns_mx: {{probe: dns, timeout: 5s, query_name: portal.test, query_type: MX}}
    dns_nxdomain: {{probe: dns, timeout: 5s, query_name: nosuch.portal.test, query_type: A}}
units: []
""",
        encoding="utf-8",
    )
    return path


@dataclass(frozen=True)
class Wardwatch:
    port: int

    @property
    def probe_url(self) -> str:
        return f"http://{HOST}:{self.port}/probe"


@pytest.fixture
async def wardwatch(tmp_path: Path, ip_nginx: IpNginx) -> AsyncIterator[Wardwatch]:  # noqa: F811
    inv = load_inventory(wardwatch_inventory(tmp_path / "inventory.yaml", ip_nginx.ca.bundle))
    engine = Engine(inv)
    port = free_port()
    runner = await serve(engine, HOST, port)
    try:
        yield Wardwatch(port)
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nsd]:
    with nsd_server(tmp_path_factory.mktemp("nsd"), {"portal.test": portal_zone(2025010101)}) as n:
        yield n


def cases(n: IpNginx, ns: Nsd) -> list[tuple[str, str]]:
    return [
        ("http_2xx", n.url(n.valid)),
        ("http_2xx", n.url(n.valid, "/down")),
        ("http_2xx", n.url(n.expired)),
        ("http_2xx", n.url(n.wrong_host)),
        ("http_no_verify", n.url(n.valid)),
        ("http_no_verify", n.url(n.expired)),
        ("http_no_verify", n.url(n.wrong_host)),
        ("http_2xx", n.url(n.plain)),
        ("http_2xx", n.url(n.plain, "/down")),
        ("http_2xx", n.url(n.closed)),
        ("tcp_connect", f"{HOST}:{n.plain}"),
        ("tcp_connect", f"{HOST}:{n.closed}"),
        ("icmp", HOST),
        ("dns_soa", ns.address),
        ("dns_mx", ns.address),
        ("dns_nxdomain", ns.address),
        ("dns_soa", f"{HOST}:{n.closed}"),  # nothing listens there
    ]


async def scrape(session: aiohttp.ClientSession, url: str, module: str, target: str) -> dict[str, float]:
    async with session.get(
        url,
        params={"module": module, "target": target},
        headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"},
    ) as resp:
        text = await resp.text()
        assert resp.status == 200, f"{url} {module} {target}: {resp.status} {text}"
    values: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in COMPARED and not s.labels:
                values[s.name] = s.value
    return values


@pytest.mark.slow
async def test_probe_agrees_with_blackbox_exporter(
    ip_nginx: IpNginx,  # noqa: F811
    blackbox: Blackbox,  # noqa: F811
    wardwatch: Wardwatch,
    nsd: Nsd,
) -> None:
    disagreements = []
    rows = []
    async with aiohttp.ClientSession() as session:
        for module, target in cases(ip_nginx, nsd):
            ref = await scrape(session, blackbox.probe_url, module, target)
            ours = await scrape(session, wardwatch.probe_url, module, target)
            if "probe_ssl_earliest_cert_expiry" not in ref and ref.get("probe_success") == 0:
                ours.pop("probe_ssl_earliest_cert_expiry", None)  # the deliberate difference above
            rows.append(f"{module:15} {target:32} blackbox={ref} wardwatch={ours}")
            if ref != ours:
                disagreements.append(rows[-1])
    print("\n" + "\n".join(rows))
    assert not disagreements, "wardwatch and blackbox_exporter disagree:\n" + "\n".join(disagreements)


async def test_expired_cert_expiry_is_exact(
    ip_nginx: IpNginx,  # noqa: F811
    blackbox: Blackbox,  # noqa: F811
    wardwatch: Wardwatch,
) -> None:
    """Not just equal to each other: equal to the certificate's notAfter, to the second."""
    want = float(int(ip_nginx.certs["expired"].x509.not_valid_after_utc.timestamp()))
    async with aiohttp.ClientSession() as session:
        for url in (blackbox.probe_url, wardwatch.probe_url):
            got = await scrape(session, url, "http_no_verify", ip_nginx.url(ip_nginx.expired))
            assert got.get("probe_ssl_earliest_cert_expiry") == want, url
