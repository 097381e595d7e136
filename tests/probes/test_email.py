"""email probe: MX from a real NSD, SMTP + STARTTLS against a real exim on loopback, and the
bad cases (no MX, null MX, a dead MX, a wrong certificate name, a silent or non-SMTP port)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from probes import email
from probes.base import ProbeContext, Reason, Resolver, TLSContexts
from tests.peers import badpeers
from tests.peers import pki as pki_mod
from tests.peers.mta import BANNER, Mta, exim_server
from tests.peers.nsd import Nsd, nsd_server

WARDWATCH = [sys.executable, "-m", "monitor"]

ZONE = """$ORIGIN mail.test.
$TTL 300
@         IN SOA ns1.mail.test. hostmaster.mail.test. ( 1 3600 600 86400 300 )
@         IN NS  ns1.mail.test.
ns1       IN A   127.0.0.1
ok        IN MX  10 mx1.mail.test.
ok        IN MX  20 mx2.mail.test.
partial   IN MX  10 mx1.mail.test.
partial   IN MX  20 dead.mail.test.
wrong     IN MX  10 wrongname.mail.test.
nullmx    IN MX  0 .
nomx      IN A   127.0.0.1
mx1       IN A   127.0.0.1
mx2       IN A   127.0.0.1
wrongname IN A   127.0.0.1
dead      IN A   127.0.0.2
"""

# The example of the issue: `wardwatch check email phuong-sai-gon.example.test --dns-server …`
EXAMPLE_ZONE = """$ORIGIN example.test.
$TTL 300
@    IN SOA ns1.example.test. hostmaster.example.test. ( 1 3600 600 86400 300 )
@    IN NS  ns1.example.test.
ns1  IN A   127.0.0.1
phuong-sai-gon       IN MX 10 mail.phuong-sai-gon.example.test.
mail.phuong-sai-gon  IN A  127.0.0.1
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> pki_mod.TestCA:
    return pki_mod.TestCA(tmp_path_factory.mktemp("mail-pki"))


@pytest.fixture(scope="module")
def ns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nsd]:
    with nsd_server(tmp_path_factory.mktemp("mail-nsd"), {"mail.test": ZONE, "example.test": EXAMPLE_ZONE}) as n:
        yield n


@pytest.fixture(scope="module")
def mta(tmp_path_factory: pytest.TempPathFactory, pki: pki_mod.TestCA) -> Iterator[Mta]:
    cert = pki.issue("mx", ["mx1.mail.test", "mx2.mail.test", "mail.phuong-sai-gon.example.test"])
    with exim_server(tmp_path_factory.mktemp("exim"), cert) as m:
        yield m


_TLS = TLSContexts()


def ctx(ns: Nsd, timeout: float = 5.0) -> ProbeContext:
    return ProbeContext(timeout=timeout, resolver=Resolver([ns.address]), tls=_TLS)


def cfg(mta_port: int, pki: pki_mod.TestCA, **kw: object) -> email.Config:
    return email.Config(smtp_port=mta_port, ca_file=str(pki.bundle), **kw)


async def test_every_mx_starttls_ok(ns: Nsd, mta: Mta, pki: pki_mod.TestCA) -> None:
    r = await email.run("ok.mail.test", cfg(mta.port, pki), ctx(ns))
    assert r.success, r.message
    assert r.value("wardwatch_email_mx_records") == 2
    for mx in ("mx1.mail.test", "mx2.mail.test"):
        assert r.value("wardwatch_email_mx_up", mx=mx) == 1
        assert r.value("wardwatch_email_mx_ssl_earliest_cert_expiry", mx=mx) is not None
        banner = [s for s in r.samples if s.name == "wardwatch_email_smtp_banner_info" and ("mx", mx) in s.labels]
        assert banner and BANNER in dict(banner[0].labels)["banner"]
    assert r.value("probe_ssl_earliest_cert_expiry") == pytest.approx(
        r.value("wardwatch_email_mx_ssl_earliest_cert_expiry", mx="mx1.mail.test"))


async def test_dns_server_in_config_instead_of_context(ns: Nsd, mta: Mta, pki: pki_mod.TestCA) -> None:
    plain = ProbeContext(timeout=5, tls=_TLS)  # system resolver: knows nothing of mail.test
    r = await email.run("ok.mail.test", cfg(mta.port, pki, dns_server=ns.address), plain)
    assert r.success, r.message


async def test_one_dead_mx(ns: Nsd, mta: Mta, pki: pki_mod.TestCA) -> None:
    strict = await email.run("partial.mail.test", cfg(mta.port, pki), ctx(ns))
    assert strict.reason is Reason.REFUSED, strict.message
    assert "dead.mail.test" in strict.message
    assert strict.value("wardwatch_email_mx_up", mx="mx1.mail.test") == 1
    assert strict.value("wardwatch_email_mx_up", mx="dead.mail.test") == 0
    lenient = await email.run("partial.mail.test", cfg(mta.port, pki, require_all_mx=False), ctx(ns))
    assert lenient.success, lenient.message
    assert "1 MX failing" in lenient.message


@pytest.mark.parametrize("domain", ["nomx.mail.test", "nullmx.mail.test", "nothere.mail.test"])
async def test_no_mx(ns: Nsd, domain: str) -> None:
    r = await email.run(domain, email.Config(), ctx(ns))
    assert r.reason is Reason.EMAIL_NO_MX, r.message
    assert r.value("wardwatch_email_mx_records") == 0


async def test_certificate_name_mismatch(ns: Nsd, mta: Mta, pki: pki_mod.TestCA) -> None:
    r = await email.run("wrong.mail.test", cfg(mta.port, pki), ctx(ns))
    assert r.reason is Reason.TLS_HOSTNAME_MISMATCH, r.message
    assert r.value("wardwatch_email_mx_ssl_earliest_cert_expiry", mx="wrongname.mail.test") is not None
    skip = await email.run("wrong.mail.test", cfg(mta.port, pki, insecure_skip_verify=True), ctx(ns))
    assert skip.success, skip.message


async def test_untrusted_without_ca(ns: Nsd, mta: Mta) -> None:
    r = await email.run("ok.mail.test", email.Config(smtp_port=mta.port), ctx(ns))
    assert r.reason is Reason.TLS_UNTRUSTED, r.message


async def test_expiry_threshold(ns: Nsd, mta: Mta, pki: pki_mod.TestCA) -> None:
    r = await email.run("ok.mail.test", cfg(mta.port, pki, fail_if_expires_within_days=365), ctx(ns))
    assert r.reason is Reason.TLS_EXPIRES_SOON, r.message


async def test_silent_port_times_out_without_stalling(ns: Nsd) -> None:
    async with badpeers.silent() as peer:
        t = time.monotonic()
        r = await email.run("ok.mail.test", email.Config(smtp_port=peer.port), ctx(ns, 0.5))
    assert r.reason is Reason.TIMEOUT, r.message
    assert "SMTP" in r.message
    assert time.monotonic() - t < 1.0
    assert r.value("wardwatch_email_mx_up", mx="mx1.mail.test") == 0


async def test_not_smtp_banner(ns: Nsd) -> None:
    async with badpeers.talker([b"SSH-2.0-OpenSSH_9.2\r\n"]) as peer:
        r = await email.run("ok.mail.test", email.Config(smtp_port=peer.port), ctx(ns))
    assert r.reason is Reason.SMTP_BANNER, r.message


async def test_banner_554_and_no_starttls(ns: Nsd, pki: pki_mod.TestCA) -> None:
    async with badpeers.talker([b"554 go away\r\n"]) as peer:
        r = await email.run("ok.mail.test", email.Config(smtp_port=peer.port), ctx(ns))
    assert r.reason is Reason.SMTP_BANNER, r.message
    cert = pki.issue("plain", ["mx1.mail.test"])
    async with badpeers.smtp(cert, offer_starttls=False) as peer:
        r = await email.run("ok.mail.test", email.Config(smtp_port=peer.port), ctx(ns))
    assert r.reason is Reason.STARTTLS_UNSUPPORTED, r.message


def test_check_command_by_hand(ns: Nsd, mta: Mta, pki: pki_mod.TestCA) -> None:
    """The issue's example, as an operator types it (plus the lab's port and CA)."""
    argv = [*WARDWATCH, "check", "email", "phuong-sai-gon.example.test", "--dns-server", ns.address,
            "--smtp-port", str(mta.port), "--ca-file", str(pki.bundle), "--json"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr + out.stdout
    doc = json.loads(out.stdout)
    assert doc["success"] is True
    assert doc["metrics"]['wardwatch_email_mx_up{mx="mail.phuong-sai-gon.example.test"}'] == 1
    bad = subprocess.run([*WARDWATCH, "check", "email", "nomx.mail.test", "--dns-server", ns.address],
                         capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode == 1 and "email_no_mx" in bad.stdout
