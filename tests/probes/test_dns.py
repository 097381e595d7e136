"""DNS probe against real NSD servers on loopback (and two tiny misbehaving peers)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import dns.message
import dns.rcode
import pytest
from pydantic import ValidationError

from probes import dns as dnsprobe
from probes.base import ProbeContext, ProbeResult, Reason, Resolver
from tests.peers.nsd import Nsd, nsd_server, portal_zone
from tests.peers.proc import free_port

SERIAL_A, SERIAL_B = 2025010101, 2025010202


@pytest.fixture(scope="module")
def ns1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nsd]:
    with nsd_server(tmp_path_factory.mktemp("nsd1"), {"portal.test": portal_zone(SERIAL_A)}) as n:
        yield n


@pytest.fixture(scope="module")
def ns1_twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nsd]:
    with nsd_server(tmp_path_factory.mktemp("nsd1b"), {"portal.test": portal_zone(SERIAL_A)}) as n:
        yield n


@pytest.fixture(scope="module")
def ns2_stale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nsd]:
    zone = portal_zone(SERIAL_B, a="127.0.0.20")
    with nsd_server(tmp_path_factory.mktemp("nsd2"), {"portal.test": zone}) as n:
        yield n


class _Servfail(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = dns.message.make_response(dns.message.from_wire(data))
        reply.set_rcode(dns.rcode.SERVFAIL)
        self.transport.sendto(reply.to_wire(), addr)


@pytest.fixture
async def servfail_server() -> AsyncIterator[str]:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        _Servfail, local_addr=("127.0.0.1", 0)
    )
    try:
        yield f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"
    finally:
        transport.close()


def ctx(timeout: float = 3.0) -> ProbeContext:
    return ProbeContext(timeout=timeout)


async def probe(server: Nsd | str, budget: float = 3.0, **cfg: object) -> ProbeResult:
    target = server.address if isinstance(server, Nsd) else server
    return await dnsprobe.run(target, dnsprobe.Config.model_validate(cfg), ctx(budget))


@pytest.mark.parametrize(
    ("qtype", "answers", "expected"),
    [
        ("A", 1, ("127.0.0.10",)),
        ("AAAA", 1, ("2001:db8::10",)),
        ("MX", 2, ("10 mail.portal.test", "20 mail2.portal.test.")),
        ("NS", 2, ("ns1.portal.test.", "ns2.portal.test.")),
        ("TXT", 1, ("v=spf1 -all",)),
    ],
)
async def test_record_types(ns1: Nsd, qtype: str, answers: int, expected: tuple[str, ...]) -> None:
    r = await probe(ns1, query_name="portal.test", query_type=qtype, expected_answers=expected)
    assert r.success, r.message
    assert r.value("probe_dns_answer_rrs") == answers
    assert r.value("probe_dns_query_succeeded") == 1
    assert r.value("probe_ip_protocol") == 4
    for phase in ("resolve", "connect", "request"):
        assert r.value("probe_dns_duration_seconds", phase=phase) is not None
    assert r.value("probe_dns_serial") is None


async def test_soa_serial_and_sections_over_tcp(ns1: Nsd) -> None:
    r = await probe(ns1, query_name="portal.test", query_type="SOA", transport="tcp")
    assert r.success, r.message
    assert r.value("probe_dns_serial") == SERIAL_A
    assert r.value("probe_dns_answer_rrs") == 1
    assert r.value("probe_dns_authority_rrs") == 2  # nsd adds the NS set
    assert r.value("probe_dns_additional_rrs") is not None


async def test_nxdomain(ns1: Nsd) -> None:
    r = await probe(ns1, query_name="nope.portal.test")
    assert not r.success and r.reason is Reason.DNS_NXDOMAIN
    assert "NXDOMAIN" in r.message
    ok = await probe(ns1, query_name="nope.portal.test", valid_rcodes=["NXDOMAIN"])
    assert ok.success


async def test_refused_for_foreign_zone_is_rcode(ns1: Nsd) -> None:
    r = await probe(ns1, query_name="example.org")
    assert not r.success and r.reason is Reason.DNS_RCODE
    assert "REFUSED" in r.message


async def test_servfail(servfail_server: str) -> None:
    r = await probe(servfail_server, query_name="portal.test")
    assert not r.success and r.reason is Reason.DNS_SERVFAIL
    assert r.value("probe_dns_query_succeeded") == 1


async def test_timeout_when_server_is_silent() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        r = await probe(f"127.0.0.1:{silent.getsockname()[1]}", budget=0.3, query_name="portal.test")
    assert not r.success and r.reason is Reason.DNS_TIMEOUT
    assert r.value("probe_dns_query_succeeded") == 0
    assert r.duration_seconds < 1


async def test_refused_when_nothing_listens() -> None:
    port = free_port("127.0.0.1", socket.SOCK_DGRAM)
    r = await probe(f"127.0.0.1:{port}", query_name="portal.test")
    assert not r.success and r.reason is Reason.REFUSED
    tcp = await probe(f"127.0.0.1:{free_port()}", query_name="portal.test", transport="tcp")
    assert not tcp.success and tcp.reason is Reason.REFUSED


async def test_no_answer(ns1: Nsd) -> None:
    blackbox = await probe(ns1, query_name="mail.portal.test", query_type="MX")
    assert blackbox.success and blackbox.value("probe_dns_answer_rrs") == 0
    r = await probe(ns1, query_name="mail.portal.test", query_type="MX", fail_if_no_answer=True)
    assert not r.success and r.reason is Reason.DNS_NO_ANSWER


async def test_expected_answers_mismatch(ns1: Nsd) -> None:
    r = await probe(ns1, query_name="portal.test", expected_answers=["127.0.0.99"])
    assert not r.success and r.reason is Reason.DNS_ANSWER_MISMATCH
    assert "127.0.0.10" in r.message and "127.0.0.99" in r.message


@pytest.mark.parametrize(
    ("validator", "ok"),
    [
        ({"fail_if_not_matches_regexp": [r"portal\.test\.\s+\d+\s+IN\s+A\s+127\.0\.0\.10"]}, True),
        ({"fail_if_matches_regexp": [r"127\.0\.0\.10"]}, False),
        ({"fail_if_none_matches_regexp": [r"10\.0\.0\.1"]}, False),
        ({"fail_if_all_match_regexp": [r"IN\s+A\s"]}, False),
    ],
)
async def test_regexp_validation(ns1: Nsd, validator: dict[str, list[str]], ok: bool) -> None:
    r = await probe(ns1, query_name="portal.test", validate_answer_rrs=validator)
    assert r.success is ok, r.message
    if not ok:
        assert r.reason is Reason.DNS_ANSWER_MISMATCH


async def test_authority_validation(ns1: Nsd) -> None:
    cfg = {"fail_if_none_matches_regexp": [r"IN\s+NS\s+ns1\.portal\.test\."]}
    r = await probe(ns1, query_name="portal.test", query_type="SOA", validate_authority_rrs=cfg)
    assert r.success, r.message


async def test_servers_agree(ns1: Nsd, ns1_twin: Nsd) -> None:
    r = await probe(ns1, query_name="portal.test", query_type="SOA", consistent_with=[ns1_twin.address])
    assert r.success, r.message
    assert r.value("wardwatch_dns_servers_agree") == 1
    assert r.value("wardwatch_dns_server_serial", server=ns1_twin.address) == SERIAL_A


async def test_servers_disagree(ns1: Nsd, ns1_twin: Nsd, ns2_stale: Nsd) -> None:
    others = [ns1_twin.address, ns2_stale.address]
    soa = await probe(ns1, query_name="portal.test", query_type="SOA", consistent_with=others)
    assert not soa.success and soa.reason is Reason.DNS_SERVERS_DISAGREE
    assert ns2_stale.address in soa.message and str(SERIAL_B) in soa.message
    assert soa.value("wardwatch_dns_server_serial", server=ns2_stale.address) == SERIAL_B
    assert soa.value("wardwatch_dns_servers_agree") == 0
    a = await probe(ns1, query_name="portal.test", consistent_with=others)
    assert not a.success and a.reason is Reason.DNS_SERVERS_DISAGREE
    assert "127.0.0.20" in a.message
    mx = await probe(ns1, query_name="portal.test", query_type="MX", consistent_with=others)
    assert mx.success, mx.message  # only SOA and A differ


async def test_consistency_server_down(ns1: Nsd) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        other = f"127.0.0.1:{silent.getsockname()[1]}"
        r = await probe(ns1, budget=0.3, query_name="portal.test", consistent_with=[other])
    assert not r.success and r.reason is Reason.DNS_SERVERS_DISAGREE
    assert other in r.message


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError, match="bad regexp"):
        dnsprobe.Config(query_name="x", validate_answer_rrs={"fail_if_matches_regexp": ["("]})
    with pytest.raises(ValidationError, match="unknown rcode"):
        dnsprobe.Config(query_name="x", valid_rcodes=("NOPE",))
    with pytest.raises(ValidationError, match="not valid A data"):
        dnsprobe.Config(query_name="x", expected_answers=("not-an-ip",))
    with pytest.raises(ValidationError):
        dnsprobe.Config(query_name="x", query_tpye="A")  # type: ignore[call-arg]



async def test_two_servers_on_one_host_keep_their_own_ports(ns1: Nsd) -> None:
    # The first server serves, the second listens nowhere (same host, another port). A host -> port
    # map would keep only the last port and ask the dead one: the name would not resolve.
    resolver = Resolver([ns1.address, f"{ns1.host}:{free_port(ns1.host)}"], timeout=3.0)
    got = await resolver.resolve("portal.test")
    assert got.address == "127.0.0.10"
