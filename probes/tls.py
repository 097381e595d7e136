"""TLS probe: handshake with ``host:port`` and report the certificate chain.

Always tries a verifying handshake first so ``wardwatch_tls_chain_verified`` is
meaningful even with ``insecure_skip_verify`` (which only decides whether a
verification failure fails the probe).
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from probes import tlsprobe
from probes.base import (
    ProbeConfig,
    ProbeContext,
    ProbeResult,
    Reason,
    ResolveError,
    Sample,
    bad_target,
    failure,
    os_error_reason,
    split_host_port,
    timeout_reason,
)
from probes.certs import now_utc

TLSVersionName = Literal["TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3"]


class Config(ProbeConfig):
    server_name: str | None = None  # SNI and the name checked; default: the target host
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    min_version: TLSVersionName | None = None
    max_version: TLSVersionName | None = None
    fail_if_expires_within_days: float | None = None


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    try:
        host, port = split_host_port(target, 443)
    except ValueError as e:
        return bad_target(target, e, start)
    name = cfg.server_name or host
    samples: list[Sample] = []
    phase = "resolve"
    try:
        async with asyncio.timeout(ctx.remaining()):
            try:
                resolved = await ctx.resolve(host, cfg.ip_protocol, cfg.ip_protocol_fallback)
            except ResolveError as e:
                return failure(e.reason, str(e), start)
            samples.extend(resolved.samples())

            async def opener() -> tlsprobe.Streams:
                return await ctx.open_connection(resolved.address, port)

            phase = "connect"
            try:
                streams = await opener()
            except OSError as e:
                return failure(
                    os_error_reason(e), f"connect to {resolved.address}:{port}: {e}", start, *samples
                )
            phase = "TLS handshake"
            verified_ctx = ctx.tls.get(cfg.ca_file, True, cfg.min_version, cfg.max_version)
            plain_ctx = ctx.tls.get(cfg.ca_file, False, cfg.min_version, cfg.max_version)
            hs = await tlsprobe.upgrade(streams, name, verified_ctx, plain_ctx, opener)
            if hs.streams is not None:
                await tlsprobe.close(hs.streams[1])
    except TimeoutError:
        return failure(timeout_reason(phase), f"no answer during {phase} within {ctx.timeout:g}s", start, *samples)

    samples.extend(hs.samples())
    samples.append(Sample("wardwatch_tls_chain_verified", 1.0 if hs.verified else 0.0))
    if hs.chain:
        leaf_match = tlsprobe.hostname_matches(hs.chain[0], name)
        samples.append(Sample("wardwatch_tls_hostname_match", 1.0 if leaf_match else 0.0))
        days_left = min(c.days_left(now_utc()) for c in hs.chain)
        samples.append(Sample("wardwatch_tls_cert_days_left", days_left))
    if not hs.ok:
        assert hs.reason is not None
        if not (cfg.insecure_skip_verify and hs.reason in tlsprobe.VERIFY_REASONS and hs.chain):
            return failure(hs.reason, hs.message, start, *samples)
    limit = cfg.fail_if_expires_within_days
    if limit is not None and hs.chain:
        first = min(hs.chain, key=lambda c: c.not_after)
        left = first.days_left(now_utc())
        if left < limit:
            reason = Reason.TLS_EXPIRED if left <= 0 else Reason.TLS_EXPIRES_SOON
            return failure(
                reason,
                f"certificate {first.common_name or first.subject!r} expires in {left:.1f} days "
                f"(notAfter {first.not_after.isoformat()}), less than {limit:g}",
                start,
                *samples,
            )
    msg = f"{hs.version} {hs.cipher}" + ("" if hs.ok else f"; verification skipped: {hs.message}")
    return ProbeResult(True, None, msg, time.monotonic() - start, tuple(samples))
