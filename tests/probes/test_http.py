"""http probe against a real nginx (and a few misbehaving asyncio peers)."""

from __future__ import annotations

import re
import time

import pytest
from pydantic import ValidationError

from probes import http
from probes.base import Reason
from tests.peers import badpeers
from tests.peers.nginx import (
    KEYWORD,
    LARGE_SIZE,
    Nginx,
    context,
    nginx_fixture,  # noqa: F401
)
from tests.peers.proc import free_port


def cfg(n: Nginx, **kw: object) -> http.Config:
    return http.Config(ca_file=str(n.ca.bundle), **kw)  # type: ignore[arg-type]


def phases(r: object) -> dict[str, float]:
    out = {}
    for p in http.PHASES:
        v = r.value("probe_http_duration_seconds", phase=p)  # type: ignore[attr-defined]
        assert v is not None, p
        out[p] = v
    return out


async def test_page_with_keyword(nginx: Nginx) -> None:
    c = cfg(nginx, fail_if_body_not_matches_regexp=[KEYWORD])
    r = await http.run(nginx.url("new"), c, context())
    assert r.success, r.message
    assert r.value("probe_http_status_code") == 200
    assert r.value("probe_http_ssl") == 1.0
    assert r.value("probe_http_version") == 1.1
    assert r.value("probe_http_redirects") == 0
    assert r.value("probe_failed_due_to_regex") == 0.0
    body_len = len(f"<h1>{KEYWORD}</h1>\n")
    assert r.value("probe_http_content_length") == body_len
    assert r.value("probe_http_uncompressed_body_length") == body_len
    assert r.value("probe_tls_version_info", version="TLS 1.3") == 1.0
    assert r.value("probe_ssl_earliest_cert_expiry") == pytest.approx(
        nginx.certs["new"].not_after.timestamp(), abs=1
    )
    p = phases(r)
    assert all(v >= 0 for v in p.values())
    assert p["tls"] > 0 and p["connect"] > 0
    assert r.value("probe_ip_protocol") == 4


async def test_plain_http_has_all_phases_and_no_ssl(nginx: Nginx) -> None:
    r = await http.run(nginx.url("new", scheme="http"), cfg(nginx), context())
    assert r.success, r.message
    assert r.value("probe_http_ssl") == 0.0
    assert phases(r)["tls"] == 0.0
    assert r.value("probe_ssl_earliest_cert_expiry") is None


@pytest.mark.parametrize(("path", "code"), [("/down", 503), ("/error", 500)])
async def test_bad_status(nginx: Nginx, path: str, code: int) -> None:
    r = await http.run(nginx.url("new", path), cfg(nginx), context())
    assert r.reason is Reason.HTTP_STATUS
    assert r.value("probe_http_status_code") == code
    ok = await http.run(nginx.url("new", path), cfg(nginx, valid_status_codes=[code]), context())
    assert ok.success


async def test_body_regexps(nginx: Nginx) -> None:
    r = await http.run(nginx.url("new"), cfg(nginx, fail_if_body_matches_regexp=["thong tin"]), context())
    assert r.reason is Reason.BODY_MISMATCH and r.value("probe_failed_due_to_regex") == 1.0
    r = await http.run(
        nginx.url("new"), cfg(nginx, fail_if_body_not_matches_regexp=["maintenance"]), context()
    )
    assert r.reason is Reason.BODY_MISMATCH and "maintenance" in r.message


def test_bad_regexp_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="fail_if_body_matches_regexp"):
        http.Config(fail_if_body_matches_regexp=["(unclosed"])  # type: ignore[list-item]
    c = http.Config(fail_if_body_not_matches_regexp=["ok"], headers={"X-A": "1"})  # type: ignore[arg-type]
    assert isinstance(c.fail_if_body_not_matches_regexp[0], re.Pattern)
    assert hash(c) == hash(http.Config(fail_if_body_not_matches_regexp=["ok"], headers={"X-A": "1"}))  # type: ignore[arg-type]


async def test_old_domain_redirects_to_new_portal(nginx: Nginx) -> None:
    start = nginx.url("old", "/", scheme="http")
    c = cfg(nginx, expect_redirect_to=nginx.url("new", ""))
    r = await http.run(start, c, context())
    assert r.success, r.message
    assert r.value("probe_http_redirects") == 2
    urls = [dict(s.labels)["url"] for s in r.samples if s.name == "wardwatch_http_redirect_hop"]
    assert urls == [start, nginx.url("old"), nginx.url("new")]
    # final host's cert is the new one; the first TLS host asked for was the old domain
    assert r.value("probe_ssl_earliest_cert_expiry") == pytest.approx(
        nginx.certs["new"].not_after.timestamp(), abs=1
    )
    old_expiry = nginx.certs["old"].not_after.timestamp()
    assert r.value("wardwatch_http_first_hop_ssl_earliest_cert_expiry") == pytest.approx(old_expiry, abs=1)
    https_start = await http.run(nginx.url("old"), c, context())
    assert https_start.success and https_start.value("probe_http_redirects") == 1
    first = https_start.value("wardwatch_http_first_hop_ssl_earliest_cert_expiry")
    assert first == pytest.approx(nginx.certs["old"].not_after.timestamp(), abs=1)
    assert all(v >= 0 for v in phases(r).values())


async def test_redirect_missing_and_mismatch(nginx: Nginx) -> None:
    c = cfg(nginx, expect_redirect_to=nginx.url("new"))
    missing = await http.run(nginx.url("new"), c, context())
    assert missing.reason is Reason.REDIRECT_MISSING
    c2 = cfg(nginx, expect_redirect_to=nginx.url("new"), follow_redirects=False)
    elsewhere = await http.run(nginx.url("new", "/elsewhere"), c2, context())
    assert elsewhere.reason is Reason.REDIRECT_MISMATCH, elsewhere.message
    assert "other.portal.test" in elsewhere.message
    not_followed_ok = await http.run(nginx.url("old"), c2, context())
    assert not_followed_ok.success, not_followed_ok.message


async def test_too_many_redirects(nginx: Nginx) -> None:
    r = await http.run(nginx.url("old", scheme="http"), cfg(nginx, max_redirects=1), context())
    assert r.reason is Reason.TOO_MANY_REDIRECTS


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("expired", Reason.TLS_EXPIRED),
        ("wrong", Reason.TLS_HOSTNAME_MISMATCH),
        ("selfsigned", Reason.TLS_UNTRUSTED),
    ],
)
async def test_tls_failures_keep_expiry(nginx: Nginx, name: str, reason: Reason) -> None:
    r = await http.run(nginx.url(name), cfg(nginx), context())
    assert r.reason is reason, r.message
    assert r.value("probe_ssl_earliest_cert_expiry") == pytest.approx(
        nginx.certs[name].not_after.timestamp(), abs=1
    )
    assert r.value("probe_http_ssl") == 0.0


async def test_insecure_skip_verify(nginx: Nginx) -> None:
    r = await http.run(nginx.url("expired"), http.Config(insecure_skip_verify=True), context())
    assert r.success, r.message
    expiry = r.value("probe_ssl_earliest_cert_expiry")
    assert expiry is not None and expiry < time.time()


async def test_without_ca_file_the_test_ca_is_untrusted(nginx: Nginx) -> None:
    r = await http.run(nginx.url("new"), http.Config(), context())
    assert r.reason is Reason.TLS_UNTRUSTED


async def test_large_body_limit_and_gzip_chunked(nginx: Nginx) -> None:
    url = nginx.url("new", "/large.bin")
    big = await http.run(url, cfg(nginx, body_size_limit=LARGE_SIZE), context())
    assert big.success, big.message
    assert big.value("probe_http_content_length") == LARGE_SIZE
    small = await http.run(url, cfg(nginx, body_size_limit=1000), context())
    assert small.reason is Reason.BODY_TOO_LARGE
    gz = await http.run(
        url, cfg(nginx, body_size_limit=LARGE_SIZE, headers={"Accept-Encoding": "gzip"}), context()
    )
    assert gz.success, gz.message
    assert gz.value("probe_http_content_length") == -1  # chunked
    assert gz.value("probe_http_uncompressed_body_length") == LARGE_SIZE
    gz_small = await http.run(
        url, cfg(nginx, body_size_limit=4096, headers={"Accept-Encoding": "gzip"}), context()
    )
    assert gz_small.reason is Reason.BODY_TOO_LARGE


@pytest.mark.parametrize("chunked", [False, True])
async def test_endless_body_is_bounded(chunked: bool) -> None:
    async with badpeers.endless_body(chunked) as peer:
        t = time.monotonic()
        r = await http.run(
            f"http://127.0.0.1:{peer.port}/", http.Config(body_size_limit=256 * 1024), context()
        )
        assert r.reason is Reason.BODY_TOO_LARGE, r.message
        assert time.monotonic() - t < 2
        assert r.value("probe_http_duration_seconds", phase="transfer") is not None


async def test_silent_server_times_out_with_partial_phases() -> None:
    async with badpeers.silent() as peer:
        t = time.monotonic()
        r = await http.run(f"http://127.0.0.1:{peer.port}/", http.Config(), context(timeout=0.5))
        assert r.reason is Reason.TIMEOUT
        assert "processing" in r.message
        assert 0.4 < time.monotonic() - t < 1.5
        assert r.value("probe_http_duration_seconds", phase="connect") is not None


async def test_refused_and_reset() -> None:
    r = await http.run(f"http://127.0.0.1:{free_port()}/", http.Config(), context())
    assert r.reason is Reason.REFUSED
    async with badpeers.resetter() as peer:
        r = await http.run(f"http://127.0.0.1:{peer.port}/", http.Config(), context())
        assert r.reason in (Reason.CONNECTION_RESET, Reason.HTTP_PROTOCOL), r.message


async def test_post_with_headers(nginx: Nginx) -> None:
    c = cfg(nginx, method="post", body="x=1", valid_status_codes=[200, 405])
    r = await http.run(nginx.url("new"), c, context())
    assert r.success, r.message


def test_normalise_url() -> None:
    assert http.normalise_url("HTTPS://New.Portal.Test:443/a/") == http.normalise_url(
        "https://new.portal.test/a"
    )
    assert http.normalise_url("https://x:8443/") != http.normalise_url("https://x/")


@pytest.mark.parametrize("kind", ["http", "tls", "tcp"])
async def test_reset_during_tls_handshake_is_a_reason_not_a_cancellation(kind: str) -> None:
    # Regression: a failed start_tls cancels asyncio's close waiter of the plain stream;
    # that CancelledError escaped the http probe and unscheduled the target for good.
    from probes import registry
    from probes.runner import run_probe

    async with badpeers.resetter(after_bytes=1) as peer:
        spec = registry.get(kind)
        target = f"https://127.0.0.1:{peer.port}/" if kind == "http" else f"127.0.0.1:{peer.port}"
        cfg = spec.config(**({"tls": True} if kind == "tcp" else {}))
        r = await run_probe(spec, target, cfg, context(2.0))
    assert not r.success and r.reason is Reason.TLS_HANDSHAKE
