"""Link quality: SmokePing-style rounds of N pings, so a degrading link shows before it is down.

One run is one round: ``count`` echo requests ``spacing_seconds`` apart (20 x 50 ms by
default), sent through the ICMP probe's shared socket and strict reply matching
(``probes.icmp.lease``: a reply counts only from the pinged address, with our identifier,
sequence and payload). A request still unanswered ``reply_timeout_seconds`` after the
last one was sent (or at the probe deadline) counts as lost.

Per round it exports the loss ratio, RTT percentiles of the replies (min, median, p90,
p95, max, mean: SmokePing's sorted-RTT view reduced to a few quantiles) and the jitter,
the mean absolute difference of consecutive RTTs (in send order, over pairs of answered
requests; RFC 3550's interarrival jitter without its 1/16 smoothing, since each round
stands alone).

``wardwatch_link_quality`` grades the round: 2 good, 1 degraded (loss above
``degraded_loss_ratio``, median RTT above ``degraded_rtt_seconds`` or jitter above
``degraded_jitter_seconds``), 0 down (loss at or above ``down_loss_ratio``). Only down
is a failure (reason ``packet_loss``); degraded is a state shown by the gauge and the
message, not a failure, so a slow-but-working link does not page like a dead one.
"""

from __future__ import annotations

import math
import os
import time

from pydantic import Field, model_validator

from probes.base import (
    ProbeConfig,
    ProbeContext,
    ProbeResult,
    Reason,
    ResolveError,
    Sample,
    failure,
    os_error_reason,
)
from probes.icmp import Mode, echo_round, socket_error

GOOD, DEGRADED, DOWN = 2, 1, 0


class Config(ProbeConfig):
    count: int = Field(20, ge=1, le=200, description="echo requests per round")
    spacing_seconds: float = Field(0.05, ge=0.0, le=5.0, description="time between two requests of a round")
    reply_timeout_seconds: float = Field(
        1.0, gt=0.0, le=30.0, description="how long the last request of a round may take to be answered"
    )
    payload_size: int = Field(56, ge=0, le=1400)
    degraded_loss_ratio: float = Field(0.02, ge=0.0, le=1.0, description="loss above this: degraded")
    degraded_rtt_seconds: float = Field(0.15, gt=0.0, description="median RTT above this: degraded")
    degraded_jitter_seconds: float | None = Field(None, gt=0.0, description="jitter above this: degraded")
    down_loss_ratio: float = Field(0.5, gt=0.0, le=1.0, description="loss at or above this: down (failure)")
    privileged: bool | None = None

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.degraded_loss_ratio >= self.down_loss_ratio:
            raise ValueError(
                f"degraded_loss_ratio ({self.degraded_loss_ratio}) must be below down_loss_ratio "
                f"({self.down_loss_ratio})"
            )
        return self


# -- pure maths ---------------------------------------------------------------------------------


def percentile(ordered: list[float], q: float) -> float:
    """Linear-interpolated percentile (0 <= q <= 1) of an ascending, non-empty list."""
    if not ordered:
        raise ValueError("percentile of no values")
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def jitter(rtts: list[float | None]) -> float | None:
    """Mean absolute difference of consecutive RTTs (send order; a lost request breaks the pair)."""
    diffs = [abs(b - a) for a, b in zip(rtts, rtts[1:], strict=False) if a is not None and b is not None]
    return sum(diffs) / len(diffs) if diffs else None


def round_stats(rtts: list[float | None]) -> dict[str, float]:
    """min, median, p90, p95, max, mean of the answered requests."""
    got = sorted(r for r in rtts if r is not None)
    if not got:
        return {}
    return {
        "min": got[0],
        "median": percentile(got, 0.5),
        "p90": percentile(got, 0.9),
        "p95": percentile(got, 0.95),
        "max": got[-1],
        "mean": sum(got) / len(got),
    }


def grade(loss: float, median: float | None, jit: float | None, cfg: Config) -> tuple[int, str]:
    """(quality, why) for one round: 2 good, 1 degraded, 0 down."""
    if loss >= cfg.down_loss_ratio or median is None:
        return DOWN, f"{loss:.0%} loss (down at {cfg.down_loss_ratio:.0%})"
    why = []
    if loss > cfg.degraded_loss_ratio:
        why.append(f"{loss:.0%} loss (degraded above {cfg.degraded_loss_ratio:.0%})")
    if median > cfg.degraded_rtt_seconds:
        why.append(f"median RTT {median * 1000:.1f} ms (degraded above {cfg.degraded_rtt_seconds * 1000:g} ms)")
    if cfg.degraded_jitter_seconds is not None and jit is not None and jit > cfg.degraded_jitter_seconds:
        why.append(f"jitter {jit * 1000:.1f} ms (degraded above {cfg.degraded_jitter_seconds * 1000:g} ms)")
    return (DEGRADED, "; ".join(why)) if why else (GOOD, "")


# -- the probe -----------------------------------------------------------------------------------


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    try:
        resolved = await ctx.resolve(target, cfg.ip_protocol, cfg.ip_protocol_fallback)
    except ResolveError as e:
        return failure(e.reason, str(e), start)
    addr = resolved.address
    mode: Mode = "auto" if cfg.privileged is None else ("raw" if cfg.privileged else "dgram")
    payload = os.urandom(cfg.payload_size)
    try:
        rnd = await echo_round(
            resolved.family, mode, addr, payload,
            count=cfg.count, spacing=cfg.spacing_seconds, wait=cfg.reply_timeout_seconds, ctx=ctx,
        )
    except OSError as e:
        return failure(os_error_reason(e), socket_error(e, mode), start, *resolved.samples())

    rtts: list[float | None] = [r.rtt if r is not None else None for r in rnd.replies()]
    send_error = rnd.send_error
    sent = len(rnd.futures)
    received = sum(r is not None for r in rtts)
    loss = 1.0 - received / sent if sent else 1.0
    stats = round_stats(rtts)
    jit = jitter(rtts)
    quality, why = grade(loss, stats.get("median"), jit, cfg)
    samples: list[Sample] = [
        *resolved.samples(),
        Sample("wardwatch_link_packets_sent", float(sent)),
        Sample("wardwatch_link_packets_received", float(received)),
        Sample("wardwatch_link_loss_ratio", loss),
        *(Sample("wardwatch_link_rtt_seconds", v, (("stat", k),)) for k, v in stats.items()),
        Sample("wardwatch_link_quality", float(quality)),
    ]
    if jit is not None:
        samples.append(Sample("wardwatch_link_jitter_seconds", jit))
    if sent == 0 and send_error is not None:
        return failure(
            os_error_reason(send_error), f"cannot send to {addr}: {send_error.strerror}", start, *samples
        )
    if quality == DOWN:
        return failure(Reason.PACKET_LOSS, f"{addr}: {why} ({received}/{sent} replies)", start, *samples)
    message = f"degraded: {why}" if quality == DEGRADED else ""
    return ProbeResult(True, None, message, time.monotonic() - start, tuple(samples))
