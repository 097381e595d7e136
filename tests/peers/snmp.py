"""SNMP agents for tests: Debian's net-snmp ``snmpd`` and ``snmpsim`` (PyPI), on loopback.

Both run in the foreground in their own process group (``running``) with configuration
and data this module writes into a temporary directory; nothing reads or writes the
system's /etc/snmp or /var/lib/snmp (``-C`` and ``SNMP_PERSISTENT_DIR``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.proc import free_port, require, running

COMMUNITY = "wardwatch-ro"
V3_USER = "noc"
V3_AUTH = "auth-passphrase-1"  # SHA
V3_PRIV = "priv-passphrase-1"  # AES


def wait_snmp(host: str, port: int, community: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Until the agent answers a GET of sysUpTime (UDP has no connect to wait on)."""
    snmpget = require("snmpget")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"SNMP agent exited with {proc.returncode} before answering on {host}:{port}")
        r = subprocess.run(
            [snmpget, "-v2c", "-c", community, "-t", "0.2", "-r", "0", "-m", "", f"{host}:{port}",
             "1.3.6.1.2.1.1.3.0"],
            capture_output=True, check=False,
        )
        if r.returncode == 0:
            return
    raise TimeoutError(f"no SNMP agent answering on {host}:{port} after {timeout}s")


@dataclass(frozen=True)
class Agent:
    host: str
    port: int

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


@contextlib.contextmanager
def snmpd(tmp: Path) -> Iterator[Agent]:
    """net-snmp with a v2c community and a v3 authPriv (SHA/AES) user, on 127.0.0.1."""
    port = free_port("127.0.0.1", socket.SOCK_DGRAM)
    state = tmp / "snmpd-state"
    state.mkdir(parents=True, exist_ok=True)
    conf = tmp / "snmpd.conf"
    conf.write_text(
        f"agentAddress udp:127.0.0.1:{port}\n"
        f"rocommunity {COMMUNITY} 127.0.0.1\n"
        f'createUser {V3_USER} SHA "{V3_AUTH}" AES "{V3_PRIV}"\n'
        f"rouser {V3_USER} priv\n"
        "dontLogTCPWrappersConnects yes\n"
    )
    argv = [require("snmpd"), "-f", "-Lo", "-C", "-c", str(conf), "-p", str(tmp / "snmpd.pid"),
            "-m", "", "-I", "-smux"]
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(state), "MIBS": "", "MIBDIRS": ""}
    with running(argv, tmp / "snmpd.log", env=env) as proc:
        wait_snmp("127.0.0.1", port, COMMUNITY, proc)
        yield Agent("127.0.0.1", port)


# -- snmpsim ---------------------------------------------------------------------------------------

IF_OID = {
    "ifDescr": ("1.3.6.1.2.1.2.2.1.2", 4),
    "ifAdminStatus": ("1.3.6.1.2.1.2.2.1.7", 2),
    "ifOperStatus": ("1.3.6.1.2.1.2.2.1.8", 2),
    "ifInDiscards": ("1.3.6.1.2.1.2.2.1.13", 65),
    "ifInErrors": ("1.3.6.1.2.1.2.2.1.14", 65),
    "ifOutDiscards": ("1.3.6.1.2.1.2.2.1.19", 65),
    "ifOutErrors": ("1.3.6.1.2.1.2.2.1.20", 65),
    "ifName": ("1.3.6.1.2.1.31.1.1.1.1", 4),
    "ifHCInOctets": ("1.3.6.1.2.1.31.1.1.1.6", 70),
    "ifHCOutOctets": ("1.3.6.1.2.1.31.1.1.1.10", 70),
    "ifHighSpeed": ("1.3.6.1.2.1.31.1.1.1.15", 66),
}


def router_record(uptime_ticks: int, interfaces: Mapping[int, Mapping[str, object]]) -> str:
    """A .snmprec recording (OID|type|value lines, sorted by OID) of a router's tables."""
    rows: list[tuple[tuple[int, ...], str]] = [
        ((1, 3, 6, 1, 2, 1, 1, 1, 0), "4|wardwatch test router"),
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), f"67|{uptime_ticks}"),
    ]
    for idx, values in interfaces.items():
        for name, value in values.items():
            oid, typ = IF_OID[name]
            rows.append((tuple(int(x) for x in f"{oid}.{idx}".split(".")), f"{typ}|{value}"))
    rows.sort()
    return "".join(f"{'.'.join(map(str, o))}|{v}\n" for o, v in rows)


# scripts/setup-test-env.sh installs snmpsim into its own venv (Debian's python3): kept out of
# the project's environment, where its pysmi would change how pysnmp loads MIBs.
SNMPSIM_VENV = Path("/opt/wardwatch-snmpsim")


def snmpsim_binary() -> str:
    venv = SNMPSIM_VENV / "bin" / "snmpsim-command-responder"
    return str(venv) if os.access(venv, os.X_OK) else require("snmpsim-command-responder")


def snmpsim_argv(data_dir: Path, cache_dir: Path, endpoints: list[str]) -> list[str]:
    argv = [snmpsim_binary(), f"--data-dir={data_dir}", f"--cache-dir={cache_dir}",
            # snmpsim insists on a user to drop to when run as root; root keeps the data
            # and cache directories we made readable without a chown.
            "--process-user=root", "--process-group=root", "--log-level=error"]
    argv += [f"--agent-udpv4-endpoint={e}" for e in endpoints]
    return argv


@dataclass
class Simulator:
    host: str
    port: int
    data_dir: Path
    _bump: int = field(default=0)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def record(self, community: str, text: str) -> None:
        """(Re)write a recording; snmpsim re-indexes a data file newer than its index."""
        path = self.data_dir / f"{community}.snmprec"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        self._bump += 2
        stamp = time.time() + self._bump  # strictly newer than the index, whatever the fs resolution
        os.utime(tmp, (stamp, stamp))
        tmp.replace(path)


@contextlib.contextmanager
def snmpsim(tmp: Path, recordings: Mapping[str, str]) -> Iterator[Simulator]:
    data = tmp / "snmpsim-data"
    cache = tmp / "snmpsim-cache"
    for d in (data, cache):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    sim = Simulator("127.0.0.1", free_port("127.0.0.1", socket.SOCK_DGRAM), data)
    for community, text in recordings.items():
        sim.record(community, text)
    with running(snmpsim_argv(data, cache, [sim.target]), tmp / "snmpsim.log") as proc:
        wait_snmp(sim.host, sim.port, next(iter(recordings)), proc)
        yield sim


# -- bad agents -------------------------------------------------------------------------------------


@contextlib.contextmanager
def udp_peer(reply: bytes | None) -> Iterator[tuple[str, int, list[int]]]:
    """A UDP 'agent' on 127.0.0.1 that drops every datagram (reply None) or answers with ``reply``.

    Yields (host, port, received): ``received`` counts datagrams seen.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stop = threading.Event()
    received: list[int] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            received.append(len(data))
            if reply is not None:
                sock.sendto(reply, addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield "127.0.0.1", int(sock.getsockname()[1]), received
    finally:
        stop.set()
        t.join(2)
        sock.close()
