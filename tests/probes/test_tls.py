"""tls probe against a real nginx: every certificate state, expiry always measured."""

from __future__ import annotations

import pytest

from probes import tls
from probes.base import Reason
from tests.peers.nginx import (
    DOMAIN,
    Nginx,
    context,
    nginx_fixture,  # noqa: F401
)
from tests.peers.proc import free_port


def target(n: Nginx, name: str) -> str:
    return f"{name}.{DOMAIN}:{n.https}"


async def test_valid_chain_exports_expiry_version_and_names(nginx: Nginx) -> None:
    cfg = tls.Config(ca_file=str(nginx.ca.bundle))
    r = await tls.run(target(nginx, "new"), cfg, context())
    assert r.success, r.message
    leaf = nginx.certs["new"]
    assert r.value("probe_ssl_earliest_cert_expiry") == pytest.approx(leaf.not_after.timestamp(), abs=1)
    assert r.value("wardwatch_tls_chain_verified") == 1.0
    assert r.value("wardwatch_tls_hostname_match") == 1.0
    assert r.value("probe_ssl_last_chain_info", subjectalternative=f"new.{DOMAIN}") == 1.0
    assert r.value("probe_tls_version_info", version="TLS 1.3") == 1.0
    assert any(s.name == "probe_tls_cipher_info" for s in r.samples)
    days = r.value("wardwatch_tls_cert_days_left")
    assert days is not None and 89 < days < 91


async def test_expiring_soon_fails_only_with_threshold(nginx: Nginx) -> None:
    base = {"ca_file": str(nginx.ca.bundle)}
    ok = await tls.run(target(nginx, "soon"), tls.Config(**base), context())
    assert ok.success
    r = await tls.run(target(nginx, "soon"), tls.Config(**base, fail_if_expires_within_days=14), context())
    assert not r.success and r.reason is Reason.TLS_EXPIRES_SOON
    days = r.value("wardwatch_tls_cert_days_left")
    assert days is not None and 4.9 < days < 5.1
    assert "expires in 5.0 days" in r.message


@pytest.mark.parametrize(
    ("name", "reason", "text"),
    [
        ("expired", Reason.TLS_EXPIRED, "expired 3 days ago"),
        ("wrong", Reason.TLS_HOSTNAME_MISMATCH, "somewhere-else"),
        ("selfsigned", Reason.TLS_UNTRUSTED, "self-signed"),
    ],
)
async def test_verification_failures_keep_the_chain(
    nginx: Nginx, name: str, reason: Reason, text: str
) -> None:
    r = await tls.run(target(nginx, name), tls.Config(ca_file=str(nginx.ca.bundle)), context())
    assert not r.success
    assert r.reason is reason, r.message
    assert text in r.message
    assert r.value("wardwatch_tls_chain_verified") == 0.0
    expiry = r.value("probe_ssl_earliest_cert_expiry")
    assert expiry == pytest.approx(nginx.certs[name].not_after.timestamp(), abs=1)


async def test_unknown_ca_is_untrusted_without_ca_file(nginx: Nginx) -> None:
    r = await tls.run(target(nginx, "new"), tls.Config(), context())
    assert r.reason is Reason.TLS_UNTRUSTED
    assert r.value("probe_ssl_earliest_cert_expiry") is not None


async def test_insecure_skip_verify_succeeds_and_still_measures(nginx: Nginx) -> None:
    r = await tls.run(target(nginx, "expired"), tls.Config(insecure_skip_verify=True), context())
    assert r.success, r.message
    assert r.value("wardwatch_tls_chain_verified") == 0.0
    days = r.value("wardwatch_tls_cert_days_left")
    assert days is not None and days < 0
    wrong = await tls.run(target(nginx, "wrong"), tls.Config(insecure_skip_verify=True), context())
    assert wrong.success and wrong.value("wardwatch_tls_hostname_match") == 0.0


async def test_server_name_overrides_sni(nginx: Nginx) -> None:
    cfg = tls.Config(ca_file=str(nginx.ca.bundle), server_name=f"soon.{DOMAIN}")
    r = await tls.run(f"127.0.0.1:{nginx.https}", cfg, context())
    assert r.success, r.message
    assert r.value("probe_ssl_earliest_cert_expiry") == pytest.approx(
        nginx.certs["soon"].not_after.timestamp(), abs=1
    )


# TLSContexts sets minimum_version=TLSv1, which Python flags as deprecated.
async def test_tls10_only_server(nginx: Nginx) -> None:
    t = f"legacy.{DOMAIN}:{nginx.tls10}"
    modern = await tls.run(t, tls.Config(ca_file=str(nginx.ca.bundle)), context())
    assert not modern.success and modern.reason is Reason.TLS_VERSION, modern.message
    old = await tls.run(t, tls.Config(ca_file=str(nginx.ca.bundle), min_version="TLSv1"), context())
    if nginx.tls10_ok:
        assert old.success, old.message
        assert old.value("probe_tls_version_info", version="TLS 1.0") == 1.0
    else:  # this OpenSSL build cannot do TLS 1.0 at all: the probe must say so precisely
        assert old.reason in (Reason.TLS_VERSION, Reason.TLS_HANDSHAKE)


async def test_refused() -> None:
    r = await tls.run(f"127.0.0.1:{free_port()}", tls.Config(), context())
    assert r.reason is Reason.REFUSED


async def test_bad_version_name_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="min_version"):
        tls.Config(min_version="TLSv9")  # type: ignore[arg-type]
