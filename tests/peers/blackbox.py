"""The reference: a real prometheus-blackbox-exporter, and an nginx both it and wardwatch can reach.

blackbox_exporter cannot use the tests' name resolver, so this nginx is reached by IP only:
one TLS port per certificate state (certificates carry the IP SAN 127.0.0.1, or another
name for the wrong-host case) and one plain-HTTP port.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers.nginx import preamble
from tests.peers.pki import Issued, TestCA
from tests.peers.proc import free_port, require, running, wait_tcp

HOST = "127.0.0.1"


@dataclass(frozen=True)
class IpNginx:
    valid: int  # cert for 127.0.0.1 from the test CA
    expired: int  # same, expired three days ago
    wrong_host: int  # valid cert for another name
    plain: int  # plain HTTP
    closed: int  # nothing listens here
    ca: TestCA
    certs: dict[str, Issued]

    def url(self, port: int, path: str = "/") -> str:
        scheme = "http" if port in (self.plain, self.closed) else "https"
        return f"{scheme}://{HOST}:{port}{path}"


def _tls_server(port: int, cert: Issued) -> str:
    return f"""
    server {{
        listen {HOST}:{port} ssl;
        ssl_certificate {cert.cert};
        ssl_certificate_key {cert.key};
        location = / {{ return 200 "ok {port}\\n"; }}
        location = /down {{ return 503 "down\\n"; }}
    }}"""


def _nginx_config(tmp: Path, n: IpNginx) -> str:
    return preamble(tmp) + f"""
    default_type text/plain;
    ssl_protocols TLSv1.2 TLSv1.3;
    {_tls_server(n.valid, n.certs["valid"])}
    {_tls_server(n.expired, n.certs["expired"])}
    {_tls_server(n.wrong_host, n.certs["wrong"])}
    server {{
        listen {HOST}:{n.plain};
        location = / {{ return 200 "plain\\n"; }}
        location = /down {{ return 503 "down\\n"; }}
    }}
}}
"""


@pytest.fixture(scope="session")
def ip_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpNginx]:
    binary = require("nginx")
    tmp = tmp_path_factory.mktemp("ip-nginx")
    ca = TestCA(tmp / "pki")
    certs = {
        "valid": ca.issue("valid", [HOST]),
        "expired": ca.issue("expired", [HOST], days=-3),
        "wrong": ca.issue("wrong", ["somewhere-else.portal.test"]),
    }
    n = IpNginx(free_port(), free_port(), free_port(), free_port(), free_port(), ca, certs)
    conf = tmp / "nginx.conf"
    conf.write_text(_nginx_config(tmp, n))
    argv = [binary, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log")]
    with running(argv, tmp / "nginx.out") as proc:
        for port in (n.valid, n.expired, n.wrong_host, n.plain):
            wait_tcp(HOST, port, proc=proc)
        yield n


def blackbox_config(ca_file: Path) -> str:
    """blackbox_exporter modules; wardwatch's equivalents are in the differential test."""
    return f"""
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca_file}
  http_no_verify:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        insecure_skip_verify: true
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
  dns_soa:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: portal.test
      query_type: SOA
  dns_mx:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: portal.test
      query_type: MX
  dns_nxdomain:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: nosuch.portal.test
      query_type: A
"""


@dataclass(frozen=True)
class Blackbox:
    port: int

    @property
    def probe_url(self) -> str:
        return f"http://{HOST}:{self.port}/probe"


@pytest.fixture(scope="session")
def blackbox(tmp_path_factory: pytest.TempPathFactory, ip_nginx: IpNginx) -> Iterator[Blackbox]:
    binary = require("prometheus-blackbox-exporter")
    tmp = tmp_path_factory.mktemp("blackbox")
    conf = tmp / "blackbox.yml"
    conf.write_text(blackbox_config(ip_nginx.ca.bundle))
    port = free_port()
    argv = [binary, f"--config.file={conf}", f"--web.listen-address={HOST}:{port}"]
    with running(argv, tmp / "blackbox.out") as proc:
        wait_tcp(HOST, port, proc=proc)
        yield Blackbox(port)
