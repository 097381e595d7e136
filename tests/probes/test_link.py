"""Link quality rounds against loopback and a network namespace pair this module builds.

Same approach as test_icmp.py (whose helpers it reuses): namespace P probes, namespace H
holds a reflector that answers echo requests H's kernel would drop, as we decide:
    198.18.1.4  every fourth request unanswered (25 % loss)
    198.18.1.7  every request answered 40 ms late (a slow link)
    198.18.1.5  never answered (a dead link)
"""

from __future__ import annotations

import asyncio
import heapq
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from probes import link
from probes.base import ProbeContext, ProbeResult, Reason
from tests.probes.test_icmp import _icmp, _ip, _iphdr, _setns, in_netns

LOSSY, SLOW, DEAD = "198.18.1.4", "198.18.1.7", "198.18.1.5"
DELAY = 0.04


@dataclass
class Reflector:
    ns: str
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
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
        later: list[tuple[float, int, bytes, str]] = []
        n = 0
        with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800)) as cap, \
                socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as out:
            cap.bind(("h0", 0x0800))
            self.ready.set()
            while not self.stop.is_set():
                now = time.monotonic()
                while later and later[0][0] <= now:
                    _, _, pkt, to = heapq.heappop(later)
                    out.sendto(pkt, (to, 0))
                wait = min(0.05, later[0][0] - now) if later else 0.05
                if not select.select([cap], [], [], max(0.0, wait))[0]:
                    continue
                pkt, addr = cap.recvfrom(65535)
                if addr[2] == socket.PACKET_OUTGOING or len(pkt) < 28 or pkt[9] != 1:
                    continue
                ihl = (pkt[0] & 0x0F) * 4
                src, dst = socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20])
                body = pkt[ihl:]
                if body[0] != 8:
                    continue
                ident, seq = struct.unpack("!HH", body[4:8])
                reply = _iphdr(dst, src, _icmp(0, 0, ident, seq, body[8:]))
                if dst == LOSSY and seq % 4 != 0:
                    out.sendto(reply, (src, 0))
                elif dst == SLOW:
                    n += 1
                    heapq.heappush(later, (time.monotonic() + DELAY, n, reply, src))


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    p, h = f"wwlink{os.getpid()}p", f"wwlink{os.getpid()}h"
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
            ):
                _ip(cmd)
            reflector = Reflector(h)
            reflector.start()
            try:
                yield p
            finally:
                reflector.close()
        finally:
            _ip(f"netns del {h}")
    finally:
        _ip(f"netns del {p}")


ROUND = {"count": 8, "spacing_seconds": 0.01, "reply_timeout_seconds": 0.3}


def round_in(ns: str, target: str, timeout: float = 1.0, **kw: object) -> ProbeResult:
    cfg = link.Config(**{**ROUND, **kw})  # type: ignore[arg-type]
    return in_netns(ns, lambda: asyncio.run(link.run(target, cfg, ProbeContext(timeout=timeout))))


# -- pure maths ----------------------------------------------------------------------------------


def test_percentile_interpolates() -> None:
    assert link.percentile([1.0], 0.9) == 1.0
    assert link.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert link.percentile([float(i) for i in range(11)], 0.9) == pytest.approx(9.0)


def test_jitter_is_mean_abs_difference_of_consecutive_replies() -> None:
    assert link.jitter([0.010, 0.012, 0.009]) == pytest.approx((0.002 + 0.003) / 2)
    assert link.jitter([0.010, None, 0.020, 0.021]) == pytest.approx(0.001)  # a loss breaks the pair
    assert link.jitter([0.01]) is None


def test_grade_thresholds() -> None:
    cfg = link.Config(degraded_loss_ratio=0.1, degraded_rtt_seconds=0.05, down_loss_ratio=0.5,
                      degraded_jitter_seconds=0.01)
    assert link.grade(0.0, 0.01, 0.001, cfg)[0] == link.GOOD
    assert link.grade(0.2, 0.01, 0.001, cfg)[0] == link.DEGRADED
    assert link.grade(0.0, 0.08, 0.001, cfg)[0] == link.DEGRADED
    assert link.grade(0.0, 0.01, 0.02, cfg)[0] == link.DEGRADED
    assert link.grade(0.5, 0.01, None, cfg)[0] == link.DOWN
    assert link.grade(1.0, None, None, cfg)[0] == link.DOWN
    with pytest.raises(ValueError, match="below down_loss_ratio"):
        link.Config(degraded_loss_ratio=0.5, down_loss_ratio=0.5)


# -- rounds ----------------------------------------------------------------------------------------


async def test_loopback_round_is_good() -> None:
    r = await link.run("127.0.0.1", link.Config(**ROUND), ProbeContext(timeout=2))  # type: ignore[arg-type]
    assert r.success and r.message == ""
    assert r.value("wardwatch_link_packets_sent") == 8 and r.value("wardwatch_link_packets_received") == 8
    assert r.value("wardwatch_link_loss_ratio") == 0.0
    assert r.value("wardwatch_link_quality") == link.GOOD
    stats = {k: r.value("wardwatch_link_rtt_seconds", stat=k) for k in ("min", "median", "p90", "p95", "max")}
    assert all(v is not None for v in stats.values())
    assert stats["min"] <= stats["median"] <= stats["p90"] <= stats["p95"] <= stats["max"]  # type: ignore[operator]
    assert r.value("wardwatch_link_jitter_seconds") is not None


def test_loss_degrades_but_does_not_fail(netns: str) -> None:
    r = round_in(netns, LOSSY)
    assert r.success, r.message
    assert r.value("wardwatch_link_loss_ratio") == 0.25
    assert r.value("wardwatch_link_quality") == link.DEGRADED
    assert r.message.startswith("degraded: 25% loss")


def test_loss_at_the_down_threshold_fails(netns: str) -> None:
    r = round_in(netns, LOSSY, degraded_loss_ratio=0.1, down_loss_ratio=0.25)
    assert not r.success and r.reason is Reason.PACKET_LOSS
    assert r.value("wardwatch_link_quality") == link.DOWN


def test_slow_link_is_degraded_by_rtt(netns: str) -> None:
    r = round_in(netns, SLOW, degraded_rtt_seconds=0.02)
    assert r.success, r.message
    assert r.value("wardwatch_link_loss_ratio") == 0.0
    median = r.value("wardwatch_link_rtt_seconds", stat="median")
    assert median is not None and DELAY <= median < DELAY + 0.05
    assert r.value("wardwatch_link_quality") == link.DEGRADED and "median RTT" in r.message


def test_dead_link_is_down_quickly(netns: str) -> None:
    start = time.monotonic()
    r = round_in(netns, DEAD, timeout=3.0)
    assert not r.success and r.reason is Reason.PACKET_LOSS
    assert r.value("wardwatch_link_loss_ratio") == 1.0 and r.value("wardwatch_link_quality") == link.DOWN
    assert r.value("wardwatch_link_rtt_seconds", stat="median") is None
    assert time.monotonic() - start < 0.3 + 8 * 0.01 + 0.3  # reply_timeout after the last send, not the deadline
