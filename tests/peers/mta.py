"""A real MTA on loopback: Debian's exim4 (daemon-light) with STARTTLS, in a private config dir.

Exim runs in the foreground (``-bdf``) with a config the fixture writes (``-C``): its own spool,
log and pid paths under the test's directory, listening on 127.0.0.1 and a free port, TLS
with a TestCA certificate, and no routers (it never accepts or delivers mail). Nothing of
/etc/exim4 is read or written. Why exim rather than postfix: postfix's ``master`` wants its
queue directory owned by the ``postfix`` user, a chroot layout and ``postfix -c`` bookkeeping
(alternate_config_directories), while exim takes one file and starts in ~50 ms.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.peers.pki import Issued
from tests.peers.proc import free_port, require, running, wait_tcp

BANNER = "ESMTP wardwatch-test-exim"

_CONF = """\
primary_hostname = {hostname}
spool_directory = {dir}/spool
log_file_path = {dir}/%slog
pid_file_path = {dir}/exim.pid
keep_environment =
local_interfaces = 127.0.0.1
daemon_smtp_ports = {port}
tls_advertise_hosts = *
tls_certificate = {cert}
tls_privatekey = {key}
smtp_banner = $smtp_active_hostname {banner}
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = acl_check_rcpt
exim_user = root
exim_group = root
never_users =
begin acl
acl_check_rcpt:
  deny message = this test MTA takes no mail
begin routers
begin transports
"""


@dataclass(frozen=True)
class Mta:
    port: int
    directory: Path


@contextlib.contextmanager
def exim_server(directory: Path, cert: Issued, hostname: str = "mx1.mail.test") -> Iterator[Mta]:
    binary = require("exim4")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spool").mkdir(exist_ok=True)
    port = free_port()
    conf = directory / "exim.conf"
    conf.write_text(_CONF.format(hostname=hostname, dir=directory, port=port, cert=cert.cert, key=cert.key,
                                 banner=BANNER))
    conf.chmod(0o644)
    with running([binary, "-bdf", "-C", str(conf)], directory / "exim.out") as proc:
        wait_tcp("127.0.0.1", port, proc=proc)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            greeting = s.recv(512)
        if not greeting.startswith(b"220 "):
            raise RuntimeError(f"exim greeted {greeting[:60]!r}")
        yield Mta(port, directory)
