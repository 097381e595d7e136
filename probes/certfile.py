"""Certificates on disk: a file, or every certificate-like file in a directory.

Reads PEM (any number of certificates per file), DER and PKCS#12. A file that
cannot be read is reported (``wardwatch_certfile_read_errors{file,reason}``) and
the scan goes on. File I/O blocks, so the scan runs in a worker thread, bounded
by the probe's deadline, ``max_files`` and ``max_file_bytes``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from pydantic import Field

from monitor.secrets import Secret, SecretUnavailable
from probes.base import ProbeConfig, ProbeContext, ProbeResult, Reason, Sample, failure
from probes.certs import PARSE_ERRORS, CertInfo, describe, now_utc

_P12 = (".p12", ".pfx")


class Config(ProbeConfig):
    recursive: bool = False
    extensions: tuple[str, ...] = (".pem", ".crt", ".cer", ".der", ".p12", ".pfx")
    # PKCS#12 password (monitor/secrets.py): from password_env or password_file (a literal only
    # on the check command line); none means no password.
    password: Secret | None = None
    password_env: str | None = None
    password_file: str | None = None
    # Also fail (reason cert_expired) when a certificate expires within this many days.
    fail_if_expires_within_days: float | None = Field(None, ge=0)
    max_files: int = Field(10_000, ge=1)
    max_file_bytes: int = Field(1 << 20, ge=1)


@dataclass(slots=True)
class FileResult:
    path: str
    certs: list[CertInfo] = field(default_factory=list)
    reason: Reason | None = None
    error: str = ""


class _Unreadable(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _looks_like_der(data: bytes) -> bool:
    """A single DER SEQUENCE spanning the whole file (PKCS#12 is one)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    n = data[1]
    if n < 0x80:
        return 2 + n == len(data)
    k = n & 0x7F
    if k == 0 or k > 4 or len(data) < 2 + k:
        return False
    return 2 + k + int.from_bytes(data[2 : 2 + k], "big") == len(data)


def parse_certificates(name: str, data: bytes, password: bytes | None) -> list[x509.Certificate]:
    """Certificates in ``data`` (PEM, DER or PKCS#12 by content and name); raises _Unreadable."""
    if b"-----BEGIN" in data:
        try:
            return x509.load_pem_x509_certificates(data)
        except PARSE_ERRORS as e:
            raise _Unreadable(Reason.CERT_UNREADABLE, f"no readable PEM certificate: {e}") from e
    if not name.lower().endswith(_P12):
        try:
            return [x509.load_der_x509_certificate(data)]
        except PARSE_ERRORS:
            raise _Unreadable(Reason.CERT_UNREADABLE, "neither a PEM nor a DER certificate") from None
    try:
        _key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    except PARSE_ERRORS as e:
        if _looks_like_der(data):
            what = "wrong PKCS#12 password" if password else "PKCS#12 needs a password"
            raise _Unreadable(Reason.CERT_BAD_PASSWORD, what) from e
        raise _Unreadable(Reason.CERT_UNREADABLE, "not a PKCS#12 file") from e
    certs = ([cert] if cert is not None else []) + list(extra)
    if not certs:
        raise _Unreadable(Reason.CERT_UNREADABLE, "PKCS#12 holds no certificate")
    return certs


def _read(path: Path, cfg: Config, password: bytes | None) -> FileResult:
    out = FileResult(str(path))
    try:
        if path.stat().st_size > cfg.max_file_bytes:
            raise _Unreadable(Reason.CERT_UNREADABLE, f"larger than {cfg.max_file_bytes} bytes")
        data = path.read_bytes()
        out.certs = [describe(c) for c in parse_certificates(path.name, data, password)]
    except ValueError as e:  # a certificate that parses but whose fields cannot be read
        out.reason, out.error = Reason.CERT_UNREADABLE, str(e)
    except _Unreadable as e:
        out.reason, out.error = e.reason, str(e)
    except OSError as e:
        out.reason, out.error = Reason.CERT_UNREADABLE, e.strerror or str(e)
    return out


def scan(target: str, cfg: Config) -> list[FileResult]:
    """Blocking: read ``target`` (file or directory). Raises FileNotFoundError."""
    password = cfg.password.reveal().encode() if cfg.password is not None else None
    root = Path(target)
    if not root.exists():
        raise FileNotFoundError(target)
    if not root.is_dir():
        return [_read(root, cfg, password)]
    exts = tuple(e.lower() for e in cfg.extensions)
    walk = root.rglob("*") if cfg.recursive else root.iterdir()
    files: list[Path] = []
    for p in walk:
        if p.name.lower().endswith(exts) and p.is_file():
            files.append(p)
            if len(files) >= cfg.max_files:
                break
    return [_read(p, cfg, password) for p in sorted(files)]


def _samples(files: list[FileResult], now: datetime) -> list[Sample]:
    samples: list[Sample] = []
    certs = [(f.path, c) for f in files for c in f.certs]
    for path, c in certs:
        samples.append(Sample(
            "wardwatch_certfile_not_after_timestamp_seconds", c.not_after.timestamp(),
            (("file", path), ("subject", c.subject), ("serial", c.serial), ("issuer", c.issuer)),
        ))
        samples.append(Sample(
            "wardwatch_certfile_days_left", c.days_left(now),
            (("file", path), ("subject", c.subject), ("serial", c.serial)),
        ))
    samples += [
        Sample("wardwatch_certfile_read_errors", 1.0, (("file", f.path), ("reason", str(f.reason))))
        for f in files if f.reason is not None
    ]
    samples.append(Sample("wardwatch_certfile_files", float(len(files))))
    samples.append(Sample("wardwatch_certfile_certificates", float(len(certs))))
    if certs:
        earliest = min(c.not_after for _, c in certs)
        samples.append(Sample("probe_ssl_earliest_cert_expiry", earliest.timestamp()))
    return samples


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    try:
        async with asyncio.timeout(ctx.remaining()):
            files = await asyncio.to_thread(scan, target, cfg)
    except TimeoutError:
        return failure(Reason.TIMEOUT, f"reading {target} took longer than {ctx.timeout:g}s", start)
    except SecretUnavailable as e:
        return failure(Reason.CERT_BAD_PASSWORD, f"PKCS#12 password unavailable: {e}", start)
    except FileNotFoundError as e:
        return failure(Reason.FILE_NOT_FOUND, f"{e.filename or target}: no such file or directory", start)
    except OSError as e:
        return failure(Reason.CERT_UNREADABLE, f"{e.filename or target}: {e.strerror or e}", start)
    now = now_utc()
    samples = _samples(files, now)
    if not files:
        return failure(Reason.FILE_NOT_FOUND, f"{target}: no certificate files", start, *samples)
    certs = [(f.path, c) for f in files for c in f.certs]
    expired = [(p, c) for p, c in certs if c.not_after <= now]
    if expired:
        p, c = min(expired, key=lambda pc: pc[1].not_after)
        return failure(Reason.CERT_EXPIRED, f"{len(expired)} expired, e.g. {c.subject} in {p} "
                       f"(not after {c.not_after:%Y-%m-%d %H:%M} UTC)", start, *samples)
    bad = [f for f in files if f.reason is not None]
    if bad:
        f = bad[0]
        assert f.reason is not None
        return failure(f.reason, f"{len(bad)} unreadable file(s), e.g. {f.path}: {f.error}", start, *samples)
    limit = cfg.fail_if_expires_within_days
    if limit is not None:
        soon = [(p, c) for p, c in certs if c.days_left(now) < limit]
        if soon:
            p, c = min(soon, key=lambda pc: pc[1].not_after)
            return failure(Reason.CERT_EXPIRES_SOON, f"{c.subject} in {p} expires in {c.days_left(now):.1f} days "
                           f"(limit {limit:g})", start, *samples)
    return ProbeResult(True, None, "", time.monotonic() - start, tuple(samples))
