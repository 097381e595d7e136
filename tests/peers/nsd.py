"""NSD, a real authoritative DNS server, on a loopback port of its own."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from monitor.lab.dns import nsd_conf
from tests.peers.proc import free_port, require, running, wait_tcp


def portal_zone(serial: int = 2025010101, a: str = "127.0.0.10") -> str:
    """Zone text for ``portal.test``: SOA, 2 NS, A, AAAA, 2 MX, TXT, a CNAME."""
    return f"""$ORIGIN portal.test.
$TTL 300
@     IN SOA   ns1.portal.test. hostmaster.portal.test. ( {serial} 3600 600 86400 300 )
@     IN NS    ns1.portal.test.
@     IN NS    ns2.portal.test.
ns1   IN A     127.0.0.1
ns2   IN A     127.0.0.1
@     IN A     {a}
@     IN AAAA  2001:db8::10
@     IN MX    10 mail.portal.test.
@     IN MX    20 mail2.portal.test.
mail  IN A     127.0.0.11
@     IN TXT   "v=spf1 -all"
www   IN CNAME portal.test.
"""


@dataclass(frozen=True)
class Nsd:
    host: str
    port: int
    directory: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@contextlib.contextmanager
def nsd_server(directory: Path, zones: dict[str, str], host: str = "127.0.0.1",
               port: int | None = None) -> Iterator[Nsd]:
    """Run ``nsd -d`` serving ``zones`` (name -> zone text) on ``host``, UDP and TCP; ``port``
    to start it again where a stopped one was."""
    binary = require("nsd")
    directory.mkdir(parents=True, exist_ok=True)
    port = port or _free_udp_tcp_port(host)  # nsd binds both: a UDP-only free port may be taken over TCP
    for name, text in zones.items():
        (directory / f"{name}.zone").write_text(text)
    conf = directory / "nsd.conf"
    conf.write_text(nsd_conf(directory, port, list(zones), host))
    with running([binary, "-d", "-c", str(conf)], directory / "nsd.out") as proc:
        wait_tcp(host, port, proc=proc)
        # Listening is not serving: one real query, answered, says the zones are loaded.
        first = next(iter(zones))
        reply = dns.query.udp(dns.message.make_query(first, "SOA"), host, timeout=10, port=port)
        if reply.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(f"nsd answers {dns.rcode.to_text(reply.rcode())} for {first} SOA")
        yield Nsd(host, port, directory)


def _free_udp_tcp_port(host: str) -> int:
    for _ in range(50):
        port = free_port(host, socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    raise OSError(f"no port free for both UDP and TCP on {host}")
