"""tcp probe: connect, send/expect, TLS and SMTP STARTTLS against real sockets."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator

import pytest

from probes import tcp
from probes.base import Reason
from tests.peers import badpeers, hostile
from tests.peers import pki as pki_mod
from tests.peers.nginx import (
    DOMAIN,
    Nginx,
    context,
    nginx_fixture,  # noqa: F401
)
from tests.peers.proc import free_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pki_mod.TestCA]:
    yield pki_mod.TestCA(tmp_path_factory.mktemp("smtp-pki"))


async def test_connect_ok_and_refused(nginx: Nginx) -> None:
    ok = await tcp.run(f"127.0.0.1:{nginx.http}", tcp.Config(), context())
    assert ok.success and ok.value("probe_ip_protocol") == 4
    refused = await tcp.run(f"127.0.0.1:{free_port()}", tcp.Config(), context())
    assert refused.reason is Reason.REFUSED


async def test_query_response_over_plain_tcp(nginx: Nginx) -> None:
    steps = [{"send": f"GET / HTTP/1.0\r\nHost: new.{DOMAIN}\r\n\r"}, {"expect": r"^HTTP/1\.1 200"}]
    r = await tcp.run(f"new.{DOMAIN}:{nginx.http}", tcp.Config(query_response=steps), context())  # type: ignore[arg-type]
    assert r.success, r.message
    assert r.value("probe_failed_due_to_regex") == 0.0


async def test_expect_mismatch_at_eof(nginx: Nginx) -> None:
    steps = [{"send": "GET / HTTP/1.0\r\n\r"}, {"expect": "^SSH-2.0"}]
    r = await tcp.run(f"127.0.0.1:{nginx.http}", tcp.Config(query_response=steps), context())  # type: ignore[arg-type]
    assert r.reason is Reason.EXPECT_MISMATCH, r.message
    assert r.value("probe_failed_due_to_regex") == 1.0


async def test_expect_mismatch_with_a_talking_peer() -> None:
    async with badpeers.talker([b"220 hello\r\n"]) as peer:
        steps = [{"expect": "^220"}, {"send": "PING"}, {"expect": "^PONG"}]
        r = await tcp.run(f"127.0.0.1:{peer.port}", tcp.Config(query_response=steps), context(0.5))  # type: ignore[arg-type]
        assert r.reason is Reason.EXPECT_MISMATCH, r.message
        assert "echo: PING" in r.message
        assert peer.lines == ["PING"]


async def test_silent_server_times_out() -> None:
    async with badpeers.silent() as peer:
        t = time.monotonic()
        steps = [{"expect": "^220"}]
        r = await tcp.run(f"127.0.0.1:{peer.port}", tcp.Config(query_response=steps), context(0.5))  # type: ignore[arg-type]
        assert r.reason is Reason.TIMEOUT
        assert time.monotonic() - t < 1.5


async def test_tls_after_connect(nginx: Nginx) -> None:
    good = tcp.Config(tls=True, ca_file=str(nginx.ca.bundle))
    r = await tcp.run(f"new.{DOMAIN}:{nginx.https}", good, context())
    assert r.success, r.message
    assert r.value("probe_tls_version_info", version="TLS 1.3") == 1.0
    assert r.value("probe_ssl_earliest_cert_expiry") == pytest.approx(
        nginx.certs["new"].not_after.timestamp(), abs=1
    )
    bad = await tcp.run(f"expired.{DOMAIN}:{nginx.https}", good, context())
    assert bad.reason is Reason.TLS_EXPIRED
    assert bad.value("probe_ssl_earliest_cert_expiry") is not None
    plain = await tcp.run(f"new.{DOMAIN}:{nginx.http}", good, context())
    assert plain.reason is Reason.TLS_HANDSHAKE, plain.message


async def test_smtp_starttls(pki: pki_mod.TestCA) -> None:
    cert = pki.issue("mail", ["mail.portal.test"], days=20)
    async with badpeers.smtp(cert) as peer:
        c = tcp.Config(starttls="smtp", ca_file=str(pki.bundle), server_name="mail.portal.test")
        r = await tcp.run(f"127.0.0.1:{peer.port}", c, context())
        assert r.success, r.message
        assert r.value("probe_ssl_earliest_cert_expiry") == pytest.approx(cert.not_after.timestamp(), abs=1)
        assert any(s.name == "probe_tls_version_info" for s in r.samples)
        assert peer.lines[:2] == ["EHLO wardwatch.invalid", "STARTTLS"]
        # the wrong name: verification fails, the chain is still read on a second session
        wrong = tcp.Config(starttls="smtp", ca_file=str(pki.bundle), server_name="smtp.elsewhere.test")
        r = await tcp.run(f"127.0.0.1:{peer.port}", wrong, context())
        assert r.reason is Reason.TLS_HOSTNAME_MISMATCH
        assert r.value("probe_ssl_earliest_cert_expiry") == pytest.approx(cert.not_after.timestamp(), abs=1)


async def test_smtp_without_starttls(pki: pki_mod.TestCA) -> None:
    cert = pki.issue("mail2", ["mail.portal.test"])
    async with badpeers.smtp(cert, offer_starttls=False) as peer:
        r = await tcp.run(f"127.0.0.1:{peer.port}", tcp.Config(starttls="smtp"), context())
        assert r.reason is Reason.STARTTLS_UNSUPPORTED, r.message


def test_bad_expect_regexp_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="expect"):
        tcp.Config(query_response=[{"expect": "("}])  # type: ignore[list-item]


async def test_line_flood_is_cut_at_the_read_limit() -> None:
    """A peer that talks for ever, never the line expected: the probe gives up after
    EXPECT_READ_LIMIT bytes, long before its deadline, and says so."""
    async with hostile.serving("line_flood") as peer:
        t = time.monotonic()
        steps = [{"expect": "^220 "}]
        r = await tcp.run(f"127.0.0.1:{peer.port}", tcp.Config(query_response=steps), context(30))  # type: ignore[arg-type]
    assert r.reason is Reason.EXPECT_MISMATCH, r.message
    assert f"first {tcp.EXPECT_READ_LIMIT} bytes" in r.message
    assert r.value("probe_failed_due_to_regex") == 1.0
    assert time.monotonic() - t < 10


@pytest.mark.parametrize("kind", ["smtp_endless_banner", "smtp_slow_banner"])
async def test_smtp_banner_that_never_ends(kind: str) -> None:
    """A multi-line greeting that never ends is cut at SMTP_REPLY_LIMIT bytes or _MAX_REPLY_LINES
    lines, whichever comes first (memory stays small); one that trickles ends at the deadline."""
    async with hostile.serving(kind, hostile.Options(drip=0.2)) as peer:
        tracemalloc.start()
        t = time.monotonic()
        try:
            r = await tcp.run(f"127.0.0.1:{peer.port}", tcp.Config(starttls="smtp"), context(3))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        elapsed = time.monotonic() - t
    if kind == "smtp_endless_banner":
        assert r.reason is Reason.STARTTLS_UNSUPPORTED, r.message
        assert (f"longer than {tcp.SMTP_REPLY_LIMIT} bytes" in r.message
                or f"longer than {tcp._MAX_REPLY_LINES} lines" in r.message), r.message
        assert elapsed < 2.5
    else:
        assert r.reason is Reason.TIMEOUT, r.message
        assert 2.9 < elapsed < 3.6
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB held while reading the banner"
