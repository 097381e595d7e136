"""TCP probe: connect, optionally TLS or SMTP STARTTLS, then send/expect steps.

Like blackbox_exporter's tcp prober: each ``send`` is written followed by a
newline; each ``expect`` reads lines until one matches (regex search).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict

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

_LINE_LIMIT = 64 * 1024
# Bytes read while waiting for an ``expect`` line, and of one SMTP reply: a peer that talks for
# ever (never the line expected, a multi-line banner that never ends) fails the probe there
# instead of holding a CPU core, and the reply's lines memory, until the deadline. 64 KiB is a
# banner many times over (RFC 5321 caps a reply line at 512 octets; EHLO replies are under
# 2 KiB) and costs ~3 ms of CPU in short lines; 1 MiB cost ~50 ms, the largest share of 1,000
# hostile targets' CPU (bench/hostile.py).
EXPECT_READ_LIMIT = 64 * 1024
SMTP_REPLY_LIMIT = 64 * 1024
_MAX_REPLY_LINES = 1000


class QueryStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    send: str | None = None
    expect: re.Pattern[str] | None = None


class Config(ProbeConfig):
    query_response: tuple[QueryStep, ...] = ()
    tls: bool = False  # TLS right after connect
    starttls: Literal["smtp"] | None = None
    server_name: str | None = None  # SNI / name checked; default: the target host
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    smtp_ehlo_name: str = "wardwatch.invalid"


class _Fail(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def _smtp_reply(reader: asyncio.StreamReader) -> tuple[int, list[str]]:
    """One (possibly multi-line) SMTP reply: code and text lines."""
    lines: list[str] = []
    size = 0
    while True:
        try:
            raw = await reader.readline()
        except ValueError as e:  # over the stream's limit: the email probe did not catch it
            raise _Fail(Reason.STARTTLS_UNSUPPORTED, f"SMTP reply line too long ({e})") from None
        if not raw:
            raise _Fail(Reason.STARTTLS_UNSUPPORTED, "SMTP server closed the connection")
        size += len(raw)
        if size > SMTP_REPLY_LIMIT:
            raise _Fail(Reason.STARTTLS_UNSUPPORTED, f"SMTP reply longer than {SMTP_REPLY_LIMIT} bytes")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if len(line) < 3 or not (line[:3].isascii() and line[:3].isdigit()):  # not '²²²': int() refuses it
            raise _Fail(Reason.STARTTLS_UNSUPPORTED, f"not an SMTP reply: {line[:80]!r}")
        lines.append(line[4:])
        if len(lines) > _MAX_REPLY_LINES:  # a peer that never ends its reply must not fill memory
            raise _Fail(Reason.STARTTLS_UNSUPPORTED, f"SMTP reply longer than {_MAX_REPLY_LINES} lines")
        if line[3:4] != "-":
            return int(line[:3]), lines


async def _smtp_starttls(streams: tlsprobe.Streams, ehlo: str) -> None:
    await smtp_starttls(streams, ehlo)


SmtpFailure = _Fail  # what smtp_starttls raises: ``.reason`` and the message


async def smtp_starttls(streams: tlsprobe.Streams, ehlo: str, *, detailed: bool = False) -> str:
    """Banner, EHLO, STARTTLS; returns the banner text. Raises ``SmtpFailure``: with
    ``detailed`` (the email probe) a bad banner is ``smtp_banner`` and a refused EHLO
    ``smtp_ehlo_refused``; otherwise all three are ``starttls_unsupported`` (the tcp probe)."""
    reader, writer = streams
    try:
        code, text = await _smtp_reply(reader)
    except _Fail as f:
        raise _Fail(Reason.SMTP_BANNER if detailed else f.reason, f"SMTP banner: {f}") from None
    banner = " ".join(text)
    if code != 220:
        why = Reason.SMTP_BANNER if detailed else Reason.STARTTLS_UNSUPPORTED
        raise _Fail(why, f"SMTP banner {code} {banner[:120]}")
    writer.write(f"EHLO {ehlo}\r\n".encode())
    code, text = await _smtp_reply(reader)
    if code != 250:
        why = Reason.SMTP_EHLO if detailed else Reason.STARTTLS_UNSUPPORTED
        raise _Fail(why, f"EHLO refused: {code} {' '.join(text)[:120]}")
    if not any(t.split(" ", 1)[0].upper() == "STARTTLS" for t in text[1:]):
        raise _Fail(Reason.STARTTLS_UNSUPPORTED, "server does not offer STARTTLS in its EHLO reply")
    writer.write(b"STARTTLS\r\n")
    code, text = await _smtp_reply(reader)
    if code != 220:
        raise _Fail(Reason.STARTTLS_UNSUPPORTED, f"STARTTLS refused: {code} {' '.join(text)[:120]}")
    return banner


async def _expect(reader: asyncio.StreamReader, pattern: re.Pattern[str], seen: list[str]) -> None:
    """Read lines until one matches; ``seen`` keeps the last line for a timeout message."""
    size = 0
    while True:
        raw = await reader.readline()
        if not raw:
            last = f" (last: {seen[-1][:80]!r})" if seen else ""
            raise _Fail(Reason.EXPECT_MISMATCH, f"no line matched {pattern.pattern!r} before EOF{last}")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        seen[:] = [line]
        if pattern.search(line):
            return
        size += len(raw)
        if size > EXPECT_READ_LIMIT:
            raise _Fail(
                Reason.EXPECT_MISMATCH,
                f"no line matched {pattern.pattern!r} in the first {EXPECT_READ_LIMIT} bytes (last: {line[:80]!r})",
            )


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    try:
        host, port = split_host_port(target, 0)
    except ValueError as e:
        return bad_target(target, e, start)
    if not port:
        return failure(Reason.INTERNAL_ERROR, f"target {target!r} has no port", start)
    name = cfg.server_name or host
    samples: list[Sample] = []
    phase = "resolve"
    writer: asyncio.StreamWriter | None = None
    expecting: re.Pattern[str] | None = None
    seen: list[str] = []
    try:
        async with asyncio.timeout(ctx.remaining()):
            try:
                resolved = await ctx.resolve(host, cfg.ip_protocol, cfg.ip_protocol_fallback)
            except ResolveError as e:
                return failure(e.reason, str(e), start)
            samples.extend(resolved.samples())

            async def opener() -> tlsprobe.Streams:
                streams = await ctx.open_connection(resolved.address, port, limit=_LINE_LIMIT)
                if cfg.starttls == "smtp":
                    try:
                        await _smtp_starttls(streams, cfg.smtp_ehlo_name)
                    except BaseException:
                        streams[1].transport.abort()
                        raise
                return streams

            phase = "connect"
            try:
                streams = await opener()
            except OSError as e:
                return failure(
                    os_error_reason(e), f"connect to {resolved.address}:{port}: {e}", start, *samples
                )
            writer = streams[1]
            if cfg.tls or cfg.starttls:
                phase = "TLS handshake"
                verify = not cfg.insecure_skip_verify
                hs = await tlsprobe.upgrade(
                    streams, name, ctx.tls.get(cfg.ca_file, verify), ctx.tls.get(cfg.ca_file, False), opener
                )
                samples.extend(hs.samples())
                if hs.streams is None:
                    writer = None
                    assert hs.reason is not None
                    return failure(hs.reason, hs.message, start, *samples)
                streams = hs.streams
                writer = streams[1]
            reader = streams[0]
            for i, step in enumerate(cfg.query_response):
                phase = f"query_response step {i}"
                if step.expect is not None:
                    expecting = step.expect
                    seen.clear()
                    try:
                        await _expect(reader, step.expect, seen)
                    except _Fail as f:
                        samples.append(Sample("probe_failed_due_to_regex", 1.0))
                        return failure(f.reason, f"step {i}: {f}", start, *samples)
                if step.send is not None:
                    writer.write(step.send.encode() + b"\n")
                    await writer.drain()
            expecting = None
            if cfg.query_response:
                samples.append(Sample("probe_failed_due_to_regex", 0.0))
    except _Fail as f:
        return failure(f.reason, str(f), start, *samples)
    except TimeoutError:
        if expecting is not None and seen:  # the peer talked, just never what we wanted
            samples.append(Sample("probe_failed_due_to_regex", 1.0))
            return failure(
                Reason.EXPECT_MISMATCH,
                f"{phase}: no line matched {expecting.pattern!r} "
                f"within {ctx.timeout:g}s (last: {seen[-1][:80]!r})",
                start,
                *samples,
            )
        return failure(timeout_reason(phase), f"no answer during {phase} within {ctx.timeout:g}s", start, *samples)
    except (OSError, ValueError) as e:  # reset mid-dialogue, or a line over the limit
        reason = os_error_reason(e) if isinstance(e, OSError) else Reason.EXPECT_MISMATCH
        return failure(reason, f"{phase}: {e}", start, *samples)
    finally:
        if writer is not None:
            await tlsprobe.close(writer)
    return ProbeResult(
        True, None, f"connected to {resolved.address}:{port}", time.monotonic() - start, tuple(samples)
    )
