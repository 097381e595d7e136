"""A real nginx serving every certificate state the TLS/HTTP probes must tell apart.

One HTTPS port with name-based servers (SNI): new/old/soon/expired/wrong/selfsigned
.portal.test, one plain-HTTP port, and one TLS 1.0-only port. Names are reached by
IP with the test resolver in tests/probes (no DNS needed); SNI and Host carry them.

TLS 1.0: Debian's OpenSSL 3.0 refuses TLS 1.0 at the default security level, but
``ssl_ciphers DEFAULT:@SECLEVEL=0`` on the server with ``ssl_protocols TLSv1`` lets
nginx serve it, and a client context with min_version TLSv1 (SECLEVEL=0, see
probes.base.TLSContexts) negotiates it. ``tls10_ok`` records whether that worked.
"""

from __future__ import annotations

import os
import socket
import ssl
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from probes.base import ProbeContext, Reason, Resolved, ResolveError, Resolver, TLSContexts
from tests.peers.pki import Issued, TestCA
from tests.peers.proc import free_port, require, running, wait_tcp

DOMAIN = "portal.test"
LARGE_SIZE = 2 * 1024 * 1024
KEYWORD = "Cong thong tin dien tu xa"


@dataclass(frozen=True)
class Nginx:
    https: int
    http: int
    tls10: int
    ca: TestCA
    certs: dict[str, Issued]
    tls10_ok: bool

    def url(self, name: str, path: str = "/", scheme: str = "https") -> str:
        port = self.https if scheme == "https" else self.http
        return f"{scheme}://{name}.{DOMAIN}:{port}{path}"


def _server(name: str, cert: Issued, port: int, body: str) -> str:
    return f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {name}.{DOMAIN};
        ssl_certificate {cert.cert};
        ssl_certificate_key {cert.key};
        {body}
    }}"""


def preamble(tmp: Path) -> str:
    """Top of a test nginx.conf: foreground, every file under ``tmp``, an open ``http {`` block."""
    user = "user root;" if os.geteuid() == 0 else ""  # workers must read the tmp files
    return f"""
{user}
daemon off;
master_process on;
worker_processes 1;
error_log {tmp}/error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
"""


def _config(tmp: Path, n: Nginx) -> str:
    c = n.certs
    www = tmp / "www"
    www.mkdir(exist_ok=True)
    (www / "large.bin").write_bytes(b"x" * LARGE_SIZE)
    new = f"https://new.{DOMAIN}:{n.https}"
    new_locations = f"""
        root {www};
        location = / {{ default_type text/html; return 200 "<h1>{KEYWORD}</h1>\\n"; }}
        location = /down {{ return 503; }}
        location = /error {{ return 500; }}
        location = /elsewhere {{ return 302 https://other.{DOMAIN}:{n.https}/; }}
        location = /large.bin {{ gzip on; gzip_types application/octet-stream; gzip_min_length 1; }}
    """
    servers = [
        _server("new", c["new"], n.https, new_locations),
        _server("old", c["old"], n.https, f"return 301 {new}$request_uri;"),
        _server("soon", c["soon"], n.https, 'return 200 "soon\\n";'),
        _server("expired", c["expired"], n.https, 'return 200 "expired\\n";'),
        _server("wrong", c["wrong"], n.https, 'return 200 "wrong\\n";'),
        _server("selfsigned", c["selfsigned"], n.https, 'return 200 "selfsigned\\n";'),
    ]
    return preamble(tmp) + f"""
    types {{ application/octet-stream bin; }}
    ssl_protocols TLSv1.2 TLSv1.3;
    {"".join(servers)}
    server {{
        listen 127.0.0.1:{n.http};
        server_name old.{DOMAIN};
        return 301 https://old.{DOMAIN}:{n.https}$request_uri;
    }}
    server {{
        listen 127.0.0.1:{n.http};
        server_name new.{DOMAIN};
        location / {{ return 200 "plain {KEYWORD}\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{n.tls10} ssl;
        server_name legacy.{DOMAIN};
        ssl_certificate {c["legacy"].cert};
        ssl_certificate_key {c["legacy"].key};
        ssl_protocols TLSv1;
        ssl_ciphers DEFAULT:@SECLEVEL=0;
        return 200 "legacy\\n";
    }}
}}
"""


def _tls10_works(port: int, ca: TestCA) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca.bundle))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # "ssl.TLSVersion.TLSv1 is deprecated": that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=f"legacy.{DOMAIN}") as s,
        ):
            return s.version() == "TLSv1"
    except (ssl.SSLError, OSError):
        return False


class NamesResolver(Resolver):
    """Test double for name resolution only: *.portal.test -> 127.0.0.1."""

    async def resolve(self, host: str, ip_protocol: str = "ip4", fallback: bool = True) -> Resolved:
        if host.endswith(DOMAIN) or host in ("localhost", "127.0.0.1"):
            return Resolved("127.0.0.1", socket.AF_INET, 0.0)
        raise ResolveError(Reason.DNS_NXDOMAIN, f"{host}: no such domain")


def context(timeout: float = 5.0) -> ProbeContext:
    return ProbeContext(timeout=timeout, resolver=NamesResolver(), tls=_TLS)


_TLS = TLSContexts()  # shared like the engine does: contexts are costly to build


@pytest.fixture(scope="session", name="nginx")
def nginx_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = require("nginx")
    tmp = tmp_path_factory.mktemp("nginx")
    ca = TestCA(tmp / "pki")
    certs = {
        "new": ca.issue("new", [f"new.{DOMAIN}"]),
        "old": ca.issue("old", [f"old.{DOMAIN}"], days=5),
        "soon": ca.issue("soon", [f"soon.{DOMAIN}"], days=5),
        "expired": ca.issue("expired", [f"expired.{DOMAIN}"], days=-3),
        "wrong": ca.issue("wrong", [f"somewhere-else.{DOMAIN}"]),
        "selfsigned": ca.issue("selfsigned", [f"selfsigned.{DOMAIN}"], self_signed=True),
        "legacy": ca.issue("legacy", [f"legacy.{DOMAIN}"]),
    }
    n = Nginx(free_port(), free_port(), free_port(), ca, certs, False)
    conf = tmp / "nginx.conf"
    conf.write_text(_config(tmp, n))
    argv = [binary, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log")]
    with running(argv, tmp / "nginx.out") as proc:
        for port in (n.https, n.http, n.tls10):
            wait_tcp("127.0.0.1", port, proc=proc)
        yield Nginx(n.https, n.http, n.tls10, ca, certs, _tls10_works(n.tls10, ca))
