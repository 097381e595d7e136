"""The TLS handshake shared by the tls, tcp (TLS / STARTTLS) and http probes.

Why a second, unverified handshake: OpenSSL aborts a handshake whose certificate
fails verification, so the peer chain is lost exactly when it matters. On
``SSLCertVerificationError`` we reconnect once (through the caller's ``reopen``,
which also replays e.g. the SMTP dialogue) with a non-verifying context, only to
read the chain: expiry is still exported and the reason (expired, wrong host,
untrusted) comes from OpenSSL's verify code, which is more precise than any
re-verification of our own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from probes.base import Reason, Sample
from probes.certs import CertInfo, chain_samples, describe_der, now_utc

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Opener = Callable[[], Awaitable[Streams]]

# OpenSSL X509_V_ERR_* codes -> reason.
_VERIFY_REASONS: dict[int, Reason] = {
    9: Reason.TLS_NOT_YET_VALID,  # CERT_NOT_YET_VALID
    10: Reason.TLS_EXPIRED,  # CERT_HAS_EXPIRED
    62: Reason.TLS_HOSTNAME_MISMATCH,  # HOSTNAME_MISMATCH
    64: Reason.TLS_HOSTNAME_MISMATCH,  # IP_ADDRESS_MISMATCH
    2: Reason.TLS_UNTRUSTED,  # UNABLE_TO_GET_ISSUER_CERT
    18: Reason.TLS_UNTRUSTED,  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: Reason.TLS_UNTRUSTED,  # SELF_SIGNED_CERT_IN_CHAIN
    20: Reason.TLS_UNTRUSTED,  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: Reason.TLS_UNTRUSTED,  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    24: Reason.TLS_UNTRUSTED,  # INVALID_CA
    27: Reason.TLS_UNTRUSTED,  # CERT_UNTRUSTED
}
VERIFY_REASONS = frozenset(_VERIFY_REASONS.values())

_VERSION_ERRORS = (
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
    "UNKNOWN_PROTOCOL",
    "VERSION_TOO_LOW",
    "VERSION_TOO_HIGH",
)


def version_label(version: str | None) -> str:
    """OpenSSL's 'TLSv1.3' / 'TLSv1' -> blackbox_exporter's 'TLS 1.3' / 'TLS 1.0'."""
    if not version:
        return ""
    if version.startswith("TLSv"):
        num = version[4:]
        return f"TLS {num if '.' in num else num + '.0'}"
    return version


def hostname_matches(cert: CertInfo, host: str) -> bool:
    """RFC 6125 matching of ``host`` against the SANs (CN only when there are none)."""
    host = host.rstrip(".").lower()
    names = cert.sans or ((cert.common_name,) if cert.common_name else ())
    for raw in names:
        name = raw.rstrip(".").lower()
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            label, rest = host.split(".", 1)
            if label and rest == name[2:]:
                return True
    return False


def peer_chain(sslobj: ssl.SSLObject | None) -> list[CertInfo]:
    """The chain the peer sent, leaf first; only the leaf where no chain API exists."""
    if sslobj is None:
        return []
    ders: list[bytes] = []
    # Public on Python 3.13 (DER bytes), private on 3.10-3.12 (_ssl.Certificate objects).
    getter: Any = getattr(sslobj, "get_unverified_chain", None) or getattr(
        getattr(sslobj, "_sslobj", None), "get_unverified_chain", None
    )
    if getter is not None:
        with contextlib.suppress(Exception):
            for item in getter() or ():
                ders.append(item if isinstance(item, bytes) else item.public_bytes(2))  # ENCODING_DER
    if not ders:
        leaf = sslobj.getpeercert(binary_form=True)
        if leaf:
            ders.append(leaf)
    chain: list[CertInfo] = []
    for der in ders:
        with contextlib.suppress(ValueError):
            chain.append(describe_der(der))
    return chain


def _ago(when: datetime, now: datetime) -> str:
    days = (now - when).total_seconds() / 86400
    return f"{days:.0f} days" if abs(days) >= 1 else f"{days * 24:.1f} hours"


def verify_message(reason: Reason, chain: list[CertInfo], host: str, detail: str) -> str:
    now = now_utc()
    if reason is Reason.TLS_EXPIRED and chain:
        cert = min(chain, key=lambda c: c.not_after)
        return (
            f"certificate {cert.common_name or cert.subject!r} expired {_ago(cert.not_after, now)} ago "
            f"(notAfter {cert.not_after.isoformat()})"
        )
    if reason is Reason.TLS_NOT_YET_VALID and chain:
        cert = max(chain, key=lambda c: c.not_before)
        return f"certificate not valid before {cert.not_before.isoformat()}"
    if reason is Reason.TLS_HOSTNAME_MISMATCH and chain:
        return f"certificate names {', '.join(chain[0].sans) or chain[0].common_name!r}, not {host}"
    if reason is Reason.TLS_UNTRUSTED and chain:
        leaf = chain[0]
        kind = "self-signed certificate" if leaf.self_signed else f"certificate issued by {leaf.issuer}"
        return f"{kind} is not trusted ({detail})"
    return f"certificate verification failed: {detail}"


@dataclass(slots=True)
class Handshake:
    """Outcome of one TLS upgrade: the chain is filled in even when verification failed."""

    reason: Reason | None = None
    message: str = ""
    chain: list[CertInfo] = field(default_factory=list)
    version: str = ""  # blackbox form: "TLS 1.3"
    cipher: str = ""
    verified: bool = False  # OpenSSL verified the chain (and the host name) on this handshake
    seconds: float = 0.0
    streams: Streams | None = None  # open TLS streams when the handshake succeeded

    @property
    def ok(self) -> bool:
        return self.reason is None

    def samples(self) -> tuple[Sample, ...]:
        out = list(chain_samples(self.chain))
        if self.version:
            out.append(Sample("probe_tls_version_info", 1.0, (("version", self.version),)))
        if self.cipher:
            out.append(Sample("probe_tls_cipher_info", 1.0, (("cipher", self.cipher),)))
        return tuple(out)


def _fill(hs: Handshake, writer: asyncio.StreamWriter) -> None:
    sslobj = writer.get_extra_info("ssl_object")
    hs.chain = peer_chain(sslobj)
    if sslobj is not None:
        hs.version = version_label(sslobj.version())
        cipher = sslobj.cipher()
        hs.cipher = cipher[0] if cipher else ""


async def close(writer: asyncio.StreamWriter | None) -> None:
    """Close without waiting long for a peer that does not answer the TLS close_notify."""
    if writer is None:
        return
    if writer.transport.is_closing():
        # Aborted already (a handshake cut by the deadline): its close waiter belongs to the TLS
        # protocol asyncio put in between and never fires here, so waiting would only add 0.2 s
        # past the probe's timeout.
        return
    writer.close()
    try:
        async with asyncio.timeout(0.2):
            await writer.wait_closed()
    except (TimeoutError, OSError, ssl.SSLError):
        writer.transport.abort()
    except asyncio.CancelledError:
        # After a failed start_tls, asyncio cancels the plain stream's close waiter:
        # that is not our task being cancelled, so it must not end the probe.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        writer.transport.abort()


async def upgrade(
    streams: Streams,
    server_hostname: str,
    context: ssl.SSLContext,
    fallback: ssl.SSLContext,
    reopen: Opener,
) -> Handshake:
    """Start TLS on ``streams``. On success ``Handshake.streams`` holds the TLS streams;
    otherwise every stream is closed and the reason says why."""
    reader, writer = streams
    hs = Handshake()
    start = time.monotonic()
    sni = server_hostname or None
    try:
        await writer.start_tls(context, server_hostname=sni)
    except ssl.SSLCertVerificationError as exc:
        hs.seconds = time.monotonic() - start
        await close(writer)
        hs.reason = _VERIFY_REASONS.get(exc.verify_code, Reason.TLS_HANDSHAKE)
        detail = exc.verify_message or str(exc)
        # Second connection only to read the chain; its failure keeps the first reason.
        w2: asyncio.StreamWriter | None = None
        try:
            _, w2 = await reopen()
            await w2.start_tls(fallback, server_hostname=sni)
            _fill(hs, w2)
        except (OSError, ssl.SSLError, EOFError):
            pass
        finally:
            await close(w2)
        hs.message = verify_message(hs.reason, hs.chain, server_hostname, detail)
        return hs
    except ssl.SSLError as exc:
        hs.seconds = time.monotonic() - start
        await close(writer)
        text = f"{exc.reason or ''} {exc}"
        if any(v in text for v in _VERSION_ERRORS):
            hs.reason = Reason.TLS_VERSION
            hs.message = f"no TLS version in common with the peer ({exc.reason or exc})"
        else:
            hs.reason = Reason.TLS_HANDSHAKE
            hs.message = f"TLS handshake failed: {exc.reason or exc}"
        return hs
    except (OSError, EOFError) as exc:
        hs.seconds = time.monotonic() - start
        await close(writer)
        hs.reason = Reason.TLS_HANDSHAKE
        hs.message = f"TLS handshake failed: peer closed the connection ({type(exc).__name__})"
        return hs
    except BaseException:  # cancelled (deadline): no await here, just drop the socket
        writer.transport.abort()
        raise
    hs.seconds = time.monotonic() - start
    hs.verified = context.verify_mode != ssl.CERT_NONE
    _fill(hs, writer)
    hs.streams = (reader, writer)
    return hs
