"""Fuzzing targets: any string handed to a probe gives a result, never an exception (a bad
port used to raise ValueError out of stun, tls, dns, snmp, h323 and tcp); and ``wardwatch check``
refuses a target the inventory would refuse with exit 2 and one line, never a traceback.

Probes resolve through the tests' ``NamesResolver`` (127.0.0.1 only), so whatever a fuzzed
target names, nothing leaves loopback."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor import cli
from monitor.inventory import normal_target
from probes import registry
from probes.base import ProbeContext, Reason, ResolveError, Resolver
from tests.peers.nginx import context

CONFIGS: dict[str, dict[str, Any]] = {
    "tcp": {}, "tls": {}, "http": {}, "dns": {"query_name": "example.invalid"}, "sip": {}, "stun": {},
    "h323": {}, "email": {}, "snmp": {"community": "public", "retries": 0},
}
_PIECES = ["127.0.0.1", "localhost", "::1", "[::1]", "[", "]", ":", "::", "0", "1", "65535", "65536", "99999999",
           "-1", "²", "١", "abc", "/", "//", "@", "?", "#", "%", ";transport=tcp", ";transport=sctp", "sip:",
           "sips:", "http://", "https://", "ftp://", " ", "\t", "\n", "é", "x" * 70, ".", "..", "*"]
TARGETS = st.one_of(st.text(max_size=40), st.lists(st.sampled_from(_PIECES), max_size=8).map("".join))


@settings(max_examples=max(30, settings.default.max_examples // 3), deadline=None)
@given(st.sampled_from(sorted(CONFIGS)), TARGETS)
@example("stun", "127.0.0.1:abc")  # ValueError out of the probe: internal_error with a Python message
@example("tls", "127.0.0.1:²")
@example("dns", "[::1]:x")
@example("snmp", "127.0.0.1:99999999")
@example("h323", "localhost:-1")
@example("email", "x" * 70)  # dnspython's LabelTooLong escaped the MX lookup
@example("email", ".é")  # and the IDNA codec's UnicodeError
def test_any_target_gives_a_result(kind: str, target: str) -> None:
    spec = registry.get(kind)
    cfg = spec.config(**CONFIGS[kind])
    ctx = context(timeout=0.2)
    if kind == "email":  # MX lookups ask the context's DNS servers: a closed port on loopback
        ctx = ProbeContext(timeout=0.2, resolver=Resolver(["127.0.0.1:9"]))
    result = asyncio.run(asyncio.wait_for(spec.run(target, cfg, ctx), 2))  # never raises
    assert result.success or (result.reason is not None and result.message), result


def _check(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(argv)
    return rc, err.getvalue()


@settings(max_examples=max(30, settings.default.max_examples // 3), deadline=None)
@given(st.sampled_from(sorted(CONFIGS)), TARGETS)
@example("stun", "127.0.0.1:abc")
@example("http", "http://[::1")
def test_check_command_refuses_a_bad_target(kind: str, target: str) -> None:
    try:
        normal_target(kind, target)
    except ValueError:
        pass
    else:
        return  # a well-formed target would be probed for real: test_any_target_gives_a_result did
    required = {"dns": ["--query-name", "example.invalid"], "snmp": ["--community", "public"]}.get(kind, [])
    rc, err = _check(["check", kind, target, "--timeout", "0.2", *required])
    assert rc == 2, err
    assert err.startswith(f"wardwatch check {kind}: target: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize(("kind", "target"), [("stun", "127.0.0.1:abc"), ("http", "http://[::1"),
                                              ("sip", "sip:127.0.0.1:99999")])
def test_check_command_in_a_process(kind: str, target: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "monitor", "check", kind, target], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith(f"wardwatch check {kind}: target: ")


@pytest.mark.parametrize("name", ["x" * 70, "a..b", "é" * 70])
def test_a_name_that_is_none_is_a_resolve_error(name: str) -> None:
    """Found with the email target: dnspython (LabelTooLong, EmptyLabel) and the IDNA codec
    (UnicodeError) raised out of the resolver instead of a ResolveError."""
    resolver = Resolver(["127.0.0.1:9"])  # dnspython, asking a closed port on loopback
    with pytest.raises(ResolveError) as e:
        asyncio.run(resolver.resolve(name))
    assert e.value.reason is Reason.DNS_NXDOMAIN and "is not a host name" in str(e.value)


def test_a_non_idna_name_is_a_resolve_error_with_the_system_resolver() -> None:
    with pytest.raises(ResolveError) as e:  # fails in the IDNA codec, before any lookup
        asyncio.run(Resolver().resolve("é" * 70))
    assert e.value.reason is Reason.DNS_NXDOMAIN
