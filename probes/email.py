"""Email probe: can the unit's mail domain receive? The target is the mail domain.

1. MX lookup of the domain (the servers of ``dns_server`` if set, else the context
   resolver's, else the system's). NXDOMAIN, no MX, or only a null MX (RFC 7505) fail
   with ``email_no_mx``.
2. For every MX, by preference and all at once: connect to ``smtp_port`` (25), read the
   220 banner, EHLO, STARTTLS, TLS handshake verified against ``ca_file`` for the MX host
   name, certificate expiry (the tcp probe's SMTP dialogue and the shared TLS handshake).
3. Success when every MX passed (``require_all_mx``, the default) or at least one did.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
from pydantic import Field

from probes import tcp, tlsprobe
from probes.base import (
    ProbeConfig,
    ProbeContext,
    ProbeResult,
    Reason,
    ResolveError,
    Resolver,
    Sample,
    dns_query,
    failure,
    os_error_reason,
    split_host_port,
)
from probes.certs import now_utc

BANNER_LIMIT = 80  # characters of the SMTP greeting kept in the info label


class Config(ProbeConfig):
    dns_server: str | None = Field(None, description="DNS server (host[:port]) asked for the MX records")
    smtp_port: int = Field(25, ge=1, le=65535)
    require_all_mx: bool = True
    max_mx: int = Field(5, ge=1, description="MX hosts checked at most (by preference)")
    ehlo_name: str = "wardwatch.invalid"
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    fail_if_expires_within_days: float | None = None


@dataclass(slots=True)
class MxResult:
    host: str
    preference: int
    reason: Reason | None = None
    message: str = ""
    banner: str | None = None
    handshake: tlsprobe.Handshake | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason is None


def _resolver(cfg: Config, ctx: ProbeContext) -> Resolver:
    if cfg.dns_server and cfg.dns_server not in ctx.resolver.nameservers:
        return Resolver((cfg.dns_server,), timeout=max(ctx.remaining(), 0.1))
    return ctx.resolver


def _mx_resolver(resolver: Resolver) -> dns.asyncresolver.Resolver:
    dns_resolver = getattr(resolver, "_dns", None)
    if isinstance(dns_resolver, dns.asyncresolver.Resolver):
        return dns_resolver
    return dns.asyncresolver.Resolver()  # the system's (/etc/resolv.conf)


async def lookup_mx(domain: str, resolver: Resolver, lifetime: float) -> list[tuple[int, str]]:
    """MX records (preference, host) sorted by preference; ResolveError when there are none."""
    ans = await dns_query(_mx_resolver(resolver), domain, "MX", absent=Reason.EMAIL_NO_MX, lifetime=lifetime)
    records = sorted(
        (int(rd.preference), rd.exchange.to_text(omit_final_dot=True))
        for rd in ans
    )
    records = [(p, h) for p, h in records if h not in ("", ".")]
    if not records:
        raise ResolveError(Reason.EMAIL_NO_MX, f"{domain}: null MX, the domain accepts no mail")
    return records


async def _check_mx(mx: MxResult, cfg: Config, ctx: ProbeContext, resolver: Resolver) -> None:
    host, port = split_host_port(mx.host, cfg.smtp_port) if mx.host.startswith("[") else (mx.host, cfg.smtp_port)
    try:
        resolved = await ctx.resolve(host, cfg.ip_protocol, cfg.ip_protocol_fallback, resolver=resolver)
    except ResolveError as e:
        mx.reason, mx.message = e.reason, f"MX {host}: {e}"
        return
    banners: list[str] = []

    async def opener() -> tlsprobe.Streams:
        streams = await ctx.open_connection(resolved.address, port, limit=64 * 1024)
        try:
            banners.append(await tcp.smtp_starttls(streams, cfg.ehlo_name, detailed=True))
        except BaseException:
            streams[1].transport.abort()
            raise
        return streams

    try:
        streams = await opener()
    except tcp.SmtpFailure as f:
        mx.reason, mx.message = f.reason, f"MX {host}:{port}: {f}"
        return
    except OSError as e:
        mx.reason, mx.message = os_error_reason(e), f"MX {host}:{port}: connect: {e}"
        return
    mx.banner = banners[0]
    verify = ctx.tls.get(cfg.ca_file, True)
    hs = await tlsprobe.upgrade(streams, host, verify, ctx.tls.get(cfg.ca_file, False), opener)
    mx.handshake = hs
    if hs.streams is not None:
        writer = hs.streams[1]
        writer.write(b"QUIT\r\n")
        await tlsprobe.close(writer)
    if not hs.ok:
        assert hs.reason is not None
        if not (cfg.insecure_skip_verify and hs.reason in tlsprobe.VERIFY_REASONS and hs.chain):
            mx.reason, mx.message = hs.reason, f"MX {host}:{port}: {hs.message}"
            return
    limit = cfg.fail_if_expires_within_days
    if limit is not None and hs.chain:
        left = min(c.days_left(now_utc()) for c in hs.chain)
        if left < limit:
            mx.reason = Reason.TLS_EXPIRED if left <= 0 else Reason.TLS_EXPIRES_SOON
            mx.message = f"MX {host}:{port}: certificate expires in {left:.1f} days, less than {limit:g}"


def _mx_samples(mx: MxResult) -> list[Sample]:
    label = (("mx", mx.host),)
    out = [Sample("wardwatch_email_mx_up", 1.0 if mx.ok else 0.0, label)]
    if mx.banner is not None:
        out.append(Sample("wardwatch_email_smtp_banner_info", 1.0, (*label, ("banner", mx.banner[:BANNER_LIMIT]))))
    hs = mx.handshake
    if hs is not None and hs.chain:
        earliest = min(c.not_after for c in hs.chain).timestamp()
        out.append(Sample("wardwatch_email_mx_ssl_earliest_cert_expiry", earliest, label))
    return out


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    domain = target.strip().rstrip(".").lower()
    resolver = _resolver(cfg, ctx)
    samples: list[Sample] = []
    checks: list[MxResult] = []
    try:
        async with asyncio.timeout(ctx.remaining()):
            try:
                records = await lookup_mx(domain, resolver, max(ctx.remaining(), 0.1))
            except ResolveError as e:
                samples.append(Sample("wardwatch_email_mx_records", 0.0))
                return failure(e.reason, str(e), start, *samples)
            samples.append(Sample("wardwatch_email_mx_records", float(len(records))))
            checks = [MxResult(h, p) for p, h in records[: cfg.max_mx]]
            await asyncio.gather(*(_check_mx(mx, cfg, ctx, resolver) for mx in checks))
    except TimeoutError:
        for mx in checks:
            if mx.ok and mx.handshake is None:
                mx.reason = Reason.TIMEOUT
                phase = "TLS handshake" if mx.banner is not None else "SMTP dialogue"
                mx.message = f"MX {mx.host}: no answer during {phase} within {ctx.timeout:g}s"
        if not checks:
            return failure(Reason.DNS_TIMEOUT, f"{domain} MX: no answer within {ctx.timeout:g}s", start, *samples)
    for mx in checks:
        samples += _mx_samples(mx)
    expiries = [c.not_after for mx in checks if mx.handshake for c in mx.handshake.chain]
    if expiries:
        samples.append(Sample("probe_ssl_earliest_cert_expiry", min(expiries).timestamp()))
    bad = [mx for mx in checks if not mx.ok]
    good = len(checks) - len(bad)
    if bad and (cfg.require_all_mx or not good):
        first = bad[0]
        assert first.reason is not None
        more = f" (and {len(bad) - 1} more MX failing)" if len(bad) > 1 else ""
        return failure(first.reason, first.message + more, start, *samples)
    names = ", ".join(mx.host for mx in checks if mx.ok)
    note = f"; {len(bad)} MX failing: {bad[0].message}" if bad else ""
    return ProbeResult(True, None, f"STARTTLS OK on {names}{note}", time.monotonic() - start, tuple(samples))
