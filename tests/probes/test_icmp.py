"""ICMP probe against the kernel on loopback and inside network namespaces we create.

Topology (module fixture; nothing touches the host's own interfaces):

    ns P (probe)  p0 198.18.0.1/24  <-veth->  h0 198.18.0.2/24  ns H (host)
    P routes 198.18.1.0/24 via 198.18.0.2; H does not forward, so those
    addresses never answer -- except as the test reflector in H decides:
      198.18.1.3  reflector answers with the right id/seq/payload but FROM
                  198.18.0.2 (another, live host): must never count
      198.18.1.4  reflector answers only even sequence numbers (50 % loss)
      198.18.1.5  silence (dead)
      198.18.1.6  reflector sends "destination unreachable" from 198.18.0.2
    P routes 198.18.2.0/24 as "unreachable": sendto fails locally.

netem/iptables/nft are not available here, so loss is made by the reflector.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import select
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from probes import icmp
from probes.base import ProbeContext, ProbeResult, Reason

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

LIVE, SPOOFED, LOSSY, DEAD, ROUTER_UNREACH, LOCAL_UNREACH = (
    "198.18.0.2", "198.18.1.3", "198.18.1.4", "198.18.1.5", "198.18.1.6", "198.18.2.1",
)


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh thread that has joined network namespace ``ns``."""
    out: dict[str, object] = {}

    def body() -> None:
        try:
            _setns(ns)
            out["r"] = fn()
        except BaseException as e:
            out["e"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join(30)
    if "e" in out:
        raise out["e"]  # type: ignore[misc]
    return out["r"]  # type: ignore[return-value]


def _setns(ns: str) -> None:
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def probe_in(ns: str, target: str, cfg: icmp.Config, timeout: float = 0.6) -> ProbeResult:
    return in_netns(ns, lambda: asyncio.run(icmp.run(target, cfg, ProbeContext(timeout=timeout))))


def _ip(cmd: str) -> None:
    subprocess.run(["ip", *cmd.split()], check=True, capture_output=True)


@dataclass
class Reflector:
    """Answers (or not) echo requests H's kernel would drop, as the module docstring says."""

    ns: str
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    seen: dict[str, int] = field(default_factory=dict)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(5)

    def close(self) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join(5)

    def _run(self) -> None:
        _setns(self.ns)
        with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800)) as cap, \
                socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as out:
            cap.bind(("h0", 0x0800))
            self.ready.set()
            while not self.stop.is_set():
                if not select.select([cap], [], [], 0.05)[0]:
                    continue
                pkt, addr = cap.recvfrom(65535)
                if addr[2] == socket.PACKET_OUTGOING or len(pkt) < 28 or pkt[9] != 1:
                    continue
                ihl = (pkt[0] & 0x0F) * 4
                src, dst = socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20])
                icmp_part = pkt[ihl:]
                if icmp_part[0] != 8:
                    continue
                self.seen[dst] = self.seen.get(dst, 0) + 1
                ident, seq = struct.unpack("!HH", icmp_part[4:8])
                reply = _icmp(0, 0, ident, seq, icmp_part[8:])
                if dst == SPOOFED:
                    out.sendto(_iphdr(LIVE, src, reply), (src, 0))
                elif dst == LOSSY and seq % 2 == 0:
                    out.sendto(_iphdr(LOSSY, src, reply), (src, 0))
                elif dst == ROUTER_UNREACH:
                    err = _icmp(3, 1, 0, 0, pkt[: ihl + 8])
                    out.sendto(_iphdr(LIVE, src, err), (src, 0))


def _icmp(kind: int, code: int, ident: int, seq: int, payload: bytes) -> bytes:
    head = struct.pack("!BBHHH", kind, code, 0, ident, seq)
    return struct.pack("!BBHHH", kind, code, icmp.checksum(head + payload), ident, seq) + payload


def _iphdr(src: str, dst: str, body: bytes) -> bytes:
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, 1, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    return hdr + body


@dataclass(frozen=True)
class Lab:
    probe_ns: str
    host_ns: str
    reflector: Reflector


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    p, h = f"wwicmp{os.getpid()}p", f"wwicmp{os.getpid()}h"
    _ip(f"netns add {p}")
    try:
        _ip(f"netns add {h}")
        try:
            for cmd in (
                f"-n {p} link add p0 type veth peer name h0 netns {h}",
                f"-n {p} link set lo up",
                f"-n {h} link set lo up",
                f"-n {p} addr add 198.18.0.1/24 dev p0",
                f"-n {h} addr add 198.18.0.2/24 dev h0",
                f"-n {p} link set p0 up",
                f"-n {h} link set h0 up",
                f"-n {p} route add 198.18.1.0/24 via 198.18.0.2",
                f"-n {p} route add unreachable 198.18.2.0/24",
                f"-n {p} -6 addr add 2001:db8:77::1/64 dev p0 nodad",
                f"-n {h} -6 addr add 2001:db8:77::2/64 dev h0 nodad",
            ):
                _ip(cmd)
            reflector = Reflector(h)
            reflector.start()
            try:
                yield Lab(p, h, reflector)
            finally:
                reflector.close()
        finally:
            _ip(f"netns del {h}")
    finally:
        _ip(f"netns del {p}")


async def test_loopback_answers_with_all_series() -> None:
    r = await icmp.run("127.0.0.1", icmp.Config(count=3, interval_seconds=0.01), ProbeContext(timeout=2))
    assert r.success, r.message
    assert r.reason is None
    assert r.value("wardwatch_icmp_packets_sent") == 3
    assert r.value("wardwatch_icmp_packets_received") == 3
    assert r.value("wardwatch_icmp_loss_ratio") == 0
    for phase in ("resolve", "setup", "rtt"):
        assert r.value("probe_icmp_duration_seconds", phase=phase) is not None
    lo, avg, hi = (r.value("wardwatch_icmp_rtt_seconds", stat=s) for s in ("min", "avg", "max"))
    assert lo is not None and avg is not None and hi is not None
    assert 0 < lo <= avg <= hi
    assert r.value("probe_icmp_duration_seconds", phase="rtt") == avg
    assert r.value("wardwatch_icmp_rtt_seconds", stat="stddev") is not None
    assert r.value("probe_icmp_reply_hop_limit") == 64
    assert r.value("probe_ip_protocol") == 4


async def test_ipv6_loopback_answers() -> None:
    r = await icmp.run("::1", icmp.Config(count=2, interval_seconds=0), ProbeContext(timeout=2))
    assert r.success, r.message
    assert r.value("probe_ip_protocol") == 6
    assert r.value("wardwatch_icmp_packets_received") == 2
    assert r.value("probe_icmp_reply_hop_limit") == 64


async def test_concurrent_probes_share_one_socket() -> None:
    loop = asyncio.get_running_loop()
    cfg = icmp.Config(count=2, interval_seconds=0.05)
    tasks = [asyncio.create_task(icmp.run("127.0.0.1", cfg, ProbeContext(timeout=2))) for _ in range(50)]
    await asyncio.sleep(0.01)  # let every probe start and send its first packet
    pingers = icmp._PINGERS[loop]
    assert len(pingers) == 1
    (pinger,) = pingers.values()
    assert pinger.users == 50 and pinger.sock is not None
    results = await asyncio.gather(*tasks)
    assert all(r.success for r in results)
    assert pinger.users == 0 and pinger.sock is None and not pinger.pending


def test_dead_host_reported_dead(lab: Lab) -> None:
    r = probe_in(lab.probe_ns, DEAD, icmp.Config(count=2, interval_seconds=0.05), timeout=0.5)
    assert not r.success
    assert r.reason is Reason.TIMEOUT
    assert r.value("wardwatch_icmp_packets_received") == 0
    assert r.value("wardwatch_icmp_loss_ratio") == 1.0
    assert r.value("wardwatch_icmp_rtt_seconds", stat="avg") is None


def test_live_veth_host_answers(lab: Lab) -> None:
    r = probe_in(lab.probe_ns, LIVE, icmp.Config(count=2, interval_seconds=0))
    assert r.success, r.message
    r6 = probe_in(lab.probe_ns, "2001:db8:77::2", icmp.Config(count=2, interval_seconds=0, ip_protocol="ip6"))
    assert r6.success, r6.message


def test_reply_from_another_host_never_counts(lab: Lab) -> None:
    """The live host answers the dead host's exact id/seq/payload: still dead."""
    before = lab.reflector.seen.get(SPOOFED, 0)
    cfg = icmp.Config(count=3, interval_seconds=0.02)

    async def both() -> list[ProbeResult]:
        return list(await asyncio.gather(
            icmp.run(LIVE, cfg, ProbeContext(timeout=0.6)), icmp.run(SPOOFED, cfg, ProbeContext(timeout=0.6))
        ))

    live, dead = in_netns(lab.probe_ns, lambda: asyncio.run(both()))
    assert live.success and live.value("wardwatch_icmp_packets_received") == 3
    assert not dead.success and dead.reason is Reason.TIMEOUT, dead.message
    assert dead.value("wardwatch_icmp_packets_received") == 0
    assert lab.reflector.seen.get(SPOOFED, 0) - before == 3  # the forged replies were sent


def test_packet_loss_ratio(lab: Lab) -> None:
    r = probe_in(lab.probe_ns, LOSSY, icmp.Config(count=4, interval_seconds=0), timeout=0.5)
    assert r.success, r.message  # default: any reply is a success, like blackbox
    assert r.value("wardwatch_icmp_packets_sent") == 4
    assert r.value("wardwatch_icmp_packets_received") == 2
    assert r.value("wardwatch_icmp_loss_ratio") == 0.5
    strict = probe_in(lab.probe_ns, LOSSY, icmp.Config(count=4, interval_seconds=0, max_loss_ratio=0.25), 0.5)
    assert not strict.success and strict.reason is Reason.PACKET_LOSS
    assert "50%" in strict.message


def test_icmp_unreachable_from_router(lab: Lab) -> None:
    r = probe_in(lab.probe_ns, ROUTER_UNREACH, icmp.Config(count=2, interval_seconds=0), timeout=3)
    assert not r.success and r.reason is Reason.UNREACHABLE
    assert "destination unreachable" in r.message and LIVE in r.message
    assert r.duration_seconds < 1  # answered by the error, not by the deadline


def test_local_route_unreachable(lab: Lab) -> None:
    r = probe_in(lab.probe_ns, LOCAL_UNREACH, icmp.Config(count=2), timeout=3)
    assert not r.success and r.reason is Reason.UNREACHABLE
    assert r.duration_seconds < 1


def test_unprivileged_mode(lab: Lab) -> None:
    # A new namespace starts with ping_group_range "1 0": unprivileged ICMP is refused.
    denied = probe_in(lab.host_ns, "198.18.0.1", icmp.Config(privileged=False))
    assert not denied.success and denied.reason is Reason.PERMISSION_DENIED
    subprocess.run(
        ["ip", "netns", "exec", lab.probe_ns, "sh", "-c",
         "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range"], check=True,
    )
    cfg = icmp.Config(count=2, interval_seconds=0, privileged=False)
    live = probe_in(lab.probe_ns, LIVE, cfg)
    assert live.success, live.message
    assert live.value("probe_icmp_reply_hop_limit") == 64
    dead = probe_in(lab.probe_ns, SPOOFED, cfg, timeout=0.4)
    assert not dead.success and dead.reason is Reason.TIMEOUT


def test_parse_ignores_foreign_messages() -> None:
    req = icmp.echo_request(False, 7, 9, b"x")
    assert icmp.parse(False, req, ip_header=False) is None  # an echo request is not a reply
    assert icmp.parse(False, b"\0\0", ip_header=False) is None
    rep = icmp.parse(False, _icmp(0, 0, 7, 9, b"x"), ip_header=False)
    assert rep is not None and (rep.kind, rep.ident, rep.seq, rep.payload) == ("reply", 7, 9, b"x")


def test_rtt_stats() -> None:
    s = icmp.rtt_stats([0.001, 0.003])
    assert s == pytest.approx({"min": 0.001, "avg": 0.002, "max": 0.003, "stddev": 0.001})
